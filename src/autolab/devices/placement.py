"""Where in the cell a plate seen by the overhead camera sits: its location, and how far off it is. Pure (no ROS).

A location's pose is the labware's origin when seated there (bottom centre of
the footprint); the marker lies on the labware's top, centred, so a plate at a
location has its marker face `height + label thickness` above the location.
Each location (with the labware's height, or each height it accepts when the
type is unknown) is a hypothesis: the marker's corner rays are met with that
plane, and the plate is at the location whose pose is nearest, horizontally,
within the tolerance. A location whose plane is far from the height the
marker's apparent size gives (a plate held up by the gripper) is not one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from autolab.devices.errors import VisionError
from autolab.devices.vision import CameraExtrinsics, LevelMarker
from autolab.model.geometry import Pose, wrap_angle
from autolab.model.workcell import Workcell

#: The height a marker's apparent size gives is up to 15 mm off at 1.25 m in the sim (up to 40 mm in
#: bench_vision); a plate this much above or below a location's plane (under half the 0.12 m approach height)
#: is not at it.
HEIGHT_TOLERANCE_M = 0.05


@dataclass(frozen=True)
class Placement:
    location: str  # the location the labware sits at; empty when none is within the tolerance
    marker: Pose  # marker centre and yaw in world (on the location's plane when at one)
    labware: Pose | None  # labware origin in world; None when neither its type nor its location is known
    error_m: float  # horizontal offset of the labware's origin from the location's pose; 0 when at none
    error_rad: float  # yaw offset from the location's, modulo pi (SBS footprints are symmetric); 0 when at none


def yaw_offset(a: float, b: float) -> float:
    """|a - b| modulo a half turn, in [0, pi/2]: a symmetric footprint turned by pi is the same placement."""
    return abs(wrap_angle(2 * (a - b))) / 2


def overhead_camera(workcell: Workcell, device_id: str = "") -> CameraExtrinsics:
    """The extrinsics of the workcell's camera device `device_id` (default: its only camera)."""
    cameras = [d for d in workcell.devices.values() if d.type == "camera"]
    if device_id:
        dev = workcell.devices.get(device_id)
        if dev is None or dev.type != "camera":
            have = ", ".join(d.id for d in cameras) or "none"
            raise VisionError(f"{device_id!r} is not a camera device of {workcell.path} (cameras: {have})")
    elif len(cameras) == 1:
        dev = cameras[0]
    else:
        raise VisionError(
            f"{workcell.path} has {len(cameras)} camera devices ({', '.join(d.id for d in cameras) or 'none'}); "
            "name one"
        )
    return CameraExtrinsics.overhead(dev.pose)


class Locator:
    """Matches markers seen by the camera to the workcell's locations."""

    def __init__(
        self,
        workcell: Workcell,
        tolerance_m: float = 0.015,
        marker_above_top_m: float = 0.0,
        height_tolerance_m: float = HEIGHT_TOLERANCE_M,
    ) -> None:
        if not tolerance_m > 0:
            raise VisionError(f"location tolerance must be > 0, got {tolerance_m} m")
        self.workcell = workcell
        self.tolerance_m = tolerance_m
        self.marker_above_top_m = marker_above_top_m  # the label's thickness (autolab.sim.markers)
        self.height_tolerance_m = height_tolerance_m

    def _marker_above_origin(self, labware_type: str) -> float:
        lt = self.workcell.labware_types.get(labware_type)
        if lt is None:
            raise VisionError(f"unknown labware type {labware_type!r}")
        return lt.height_mm / 1000.0 + self.marker_above_top_m

    def place(self, marker: LevelMarker, labware_type: str = "") -> Placement:
        """Where the marker's labware is; `labware_type` empty tries every type each location accepts."""
        apparent_z = marker.height_m
        best: Placement | None = None
        for loc in self.workcell.locations.values():
            for type_id in (labware_type,) if labware_type else loc.accepts:
                face_z = loc.pose.z + self._marker_above_origin(type_id)
                if abs(apparent_z - face_z) > self.height_tolerance_m:
                    continue
                seen = marker.on_plane(face_z)
                error = math.hypot(seen.x - loc.pose.x, seen.y - loc.pose.y)
                if error <= self.tolerance_m and (best is None or error < best.error_m):
                    labware = Pose(seen.x, seen.y, loc.pose.z, seen.yaw)
                    best = Placement(loc.id, seen, labware, error, yaw_offset(seen.yaw, loc.pose.yaw))
        if best is not None:
            return best
        free = marker.pose()
        labware = None
        if labware_type:
            labware = Pose(free.x, free.y, free.z - self._marker_above_origin(labware_type), free.yaw)
        return Placement("", free, labware, 0.0, 0.0)
