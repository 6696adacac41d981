"""Vision node: labware identity, pose and place in the cell from the ArUco markers on plates.

Subscribes `camera/image_raw` and `camera/camera_info`; publishes
`vision/detections` (DetectionArray): for each marker, its id, the labware the
workcell inventory gives that id (id, type, barcode), its pose, the
reprojection error, and the workcell location the labware sits at with its
offset from that location's pose ("plate1 at reader1.nest, 0.8 mm / 0.3 deg
off"), so the executive can check a placement and a plate's identity.

`frame` says where poses are. `world` (the default): the camera's pose comes
from the workcell description (device `camera_device`, default its only
camera) and the marker is taken to lie level, as labware does in the cell
(autolab.devices.vision.LevelMarker); header frame `world`. `camera`: a free
6-DoF pose in the optical frame of the image header. Locations are filled in
either frame while the camera's pose is known (autolab.devices.placement): the
location whose pose is nearest the labware's origin, within
`location_tolerance_mm`; else an empty id. A workcell without a camera turns
`world` into `camera`, with a warning.

Parameters: `workcell` (empty: config/workcell.yaml), `frame`,
`camera_device`, `location_tolerance_mm` (15), `marker_length_m` and
`dictionary` (default: autolab.sim.markers, the values the simulation textures
with), `camera` (topic prefix). Detection runs in the image callback: a
640x480 frame takes a few ms (see bench/bench_vision.py), and the sensor QoS
drops frames rather than queueing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from autolab.devices.placement import Locator, Placement, overhead_camera
from autolab.devices.vision import (
    CameraExtrinsics,
    CameraModel,
    LevelMarker,
    MarkerDetector,
    MarkerObservation,
    VisionError,
)
from autolab.model.errors import DescriptionError
from autolab.model.geometry import yaw_to_quat_wxyz
from autolab.model.workcell import Workcell, load_workcell
from autolab.nodes.qos import SENSOR, STREAM
from autolab.nodes.runtime import StartupError, run_node
from autolab_interfaces.msg import Detection, DetectionArray, LabwareRef, LocationRef

WORLD_FRAME = "world"
FRAMES = ("world", "camera")

_CHANNELS = {"mono8": 1, "rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4}


def image_to_array(msg: Image) -> np.ndarray:
    """An 8-bit image message as a grey or RGB array (no copy beyond stride removal)."""
    channels = _CHANNELS.get(msg.encoding)
    if channels is None:
        raise VisionError(f"unsupported image encoding {msg.encoding!r}; use one of {', '.join(_CHANNELS)}")
    if msg.step < msg.width * channels or len(msg.data) < msg.step * msg.height:
        raise VisionError(
            f"image of {len(msg.data)} bytes is too short for {msg.width}x{msg.height} "
            f"{msg.encoding} with step {msg.step}"
        )
    rows = np.frombuffer(msg.data, dtype=np.uint8, count=msg.step * msg.height).reshape(msg.height, msg.step)
    img = rows[:, : msg.width * channels].reshape(msg.height, msg.width, channels)
    if channels == 1:
        return img[:, :, 0]
    if msg.encoding.startswith("bgr"):
        img = img[:, :, 2::-1]
    return np.ascontiguousarray(img[:, :, :3])


def _marker_defaults() -> tuple[float, str, float]:
    """Marker side, dictionary and label thickness: the simulation's, so both agree."""
    try:
        from autolab.sim import markers

        return markers.MARKER_SIDE_M, markers.DICTIONARY_NAME, markers.LABEL_THICKNESS_M
    except ImportError:
        return 0.06, "DICT_4X4_50", 0.0004


def _inventory_by_marker(wc: Workcell | None) -> dict[int, LabwareRef]:
    if wc is None:  # no description: detections carry marker ids only
        return {}
    return {
        int(i.aruco_id): LabwareRef(id=i.id, labware_type=i.type, barcode=i.barcode)
        for i in wc.inventory
        if getattr(i, "aruco_id", None) is not None
    }


class VisionNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("vision", **kwargs)
        length, dictionary, label_m = _marker_defaults()
        self.marker_length_m = float(
            self.declare_parameter(
                "marker_length_m", length, ParameterDescriptor(description="marker side, black border included")
            ).value
        )
        self.dictionary = str(self.declare_parameter("dictionary", dictionary).value)
        camera = str(self.declare_parameter("camera", "camera").value)
        workcell = str(self.declare_parameter("workcell", "", _doc("empty: config/workcell.yaml")).value)
        frame = str(self.declare_parameter("frame", "world", _doc("pose frame: world or camera")).value)
        camera_device = str(
            self.declare_parameter("camera_device", "", _doc("workcell camera device; empty: its only one")).value
        )
        tolerance_mm = float(
            self.declare_parameter("location_tolerance_mm", 15.0, _doc("furthest from a location's pose")).value
        )
        if not self.marker_length_m > 0:
            raise StartupError(self.get_name(), f"parameter 'marker_length_m' must be > 0, got {self.marker_length_m}")
        if frame not in FRAMES:
            raise StartupError(self.get_name(), f"parameter 'frame' must be one of {', '.join(FRAMES)}, got {frame!r}")
        if not tolerance_mm > 0:
            raise StartupError(self.get_name(), f"parameter 'location_tolerance_mm' must be > 0, got {tolerance_mm}")
        try:  # check the dictionary name now, not at the first frame
            MarkerDetector(CameraModel(1, 1, 0, 0, 1, 1), self.marker_length_m, self.dictionary)
        except VisionError as exc:
            raise StartupError(self.get_name(), f"parameter 'dictionary': {exc}") from exc
        wc = self._load_workcell(workcell)
        self.labware = _inventory_by_marker(wc)
        self.extrinsics = self._camera_pose(wc, camera_device)
        self.locator = Locator(wc, tolerance_mm / 1000.0, label_m) if self.extrinsics is not None else None
        if frame == "world" and self.extrinsics is None:
            self.get_logger().warning("the camera's pose in the cell is unknown: poses stay in the camera frame")
            frame = "camera"
        self.frame = frame
        self._detector: MarkerDetector | None = None
        self._camera: CameraModel | None = None
        self._pub = self.create_publisher(DetectionArray, "vision/detections", STREAM)
        self.create_subscription(CameraInfo, f"{camera}/camera_info", self._on_info, SENSOR)
        self.create_subscription(Image, f"{camera}/image_raw", self._on_image, SENSOR)
        self.frames = 0

    def _load_workcell(self, path: str) -> Workcell | None:
        try:
            return load_workcell(path or None)
        except DescriptionError as exc:
            if path:
                raise StartupError(self.get_name(), str(exc)) from None
            self.get_logger().warning(f"no workcell description ({exc}): marker ids only, no locations")
            return None

    def _camera_pose(self, wc: Workcell | None, device: str) -> CameraExtrinsics | None:
        if wc is None:
            return None
        try:
            return overhead_camera(wc, device)
        except VisionError as exc:
            if device:
                raise StartupError(self.get_name(), f"parameter 'camera_device': {exc}") from None
            self.get_logger().warning(f"{exc}: no locations")
            return None

    def _on_info(self, msg: CameraInfo) -> None:
        try:
            cam = CameraModel.from_k(list(msg.k), msg.width, msg.height, list(msg.d))
        except VisionError as exc:
            self.get_logger().warning(f"ignoring camera_info: {exc}", throttle_duration_sec=10.0)
            return
        if cam != self._camera:
            self._camera = cam
            self._detector = MarkerDetector(cam, self.marker_length_m, self.dictionary)

    def _on_image(self, msg: Image) -> None:
        if self._detector is None:
            self.get_logger().info("waiting for camera_info before detecting", throttle_duration_sec=10.0)
            return
        try:
            observations = self._detector.detect(image_to_array(msg))
        except VisionError as exc:
            self.get_logger().warning(f"cannot use image: {exc}", throttle_duration_sec=10.0)
            return
        out = DetectionArray()
        out.header.stamp = msg.header.stamp
        out.header.frame_id = WORLD_FRAME if self.frame == "world" else msg.header.frame_id
        for obs in observations:
            det = Detection(marker_id=obs.marker_id, reprojection_error_px=obs.reprojection_error_px)
            det.labware = self.labware.get(obs.marker_id, LabwareRef())
            det.pose.header = out.header
            placement = self._place(obs, det.labware.labware_type)
            p, q = det.pose.pose.position, det.pose.pose.orientation
            if self.frame == "world":
                if placement is None:
                    continue
                m = placement.marker
                p.x, p.y, p.z = m.x, m.y, m.z
                q.w, q.x, q.y, q.z = yaw_to_quat_wxyz(m.yaw)
            else:
                p.x, p.y, p.z = (float(v) for v in obs.position_m)
                q.x, q.y, q.z, q.w = obs.quaternion_xyzw
            if placement is not None:
                det.location = LocationRef(id=placement.location)
                det.location_error_mm = placement.error_m * 1e3
                det.location_error_deg = float(np.degrees(placement.error_rad))
            out.detections.append(det)
        self.frames += 1
        self._pub.publish(out)

    def _place(self, obs: MarkerObservation, labware_type: str) -> Placement | None:
        if self.extrinsics is None or self.locator is None or self._camera is None:
            return None
        try:
            marker = LevelMarker.from_corners(
                obs.marker_id, obs.corners_px, self._camera, self.extrinsics, self.marker_length_m
            )
            return self.locator.place(marker, labware_type)
        except VisionError as exc:
            self.get_logger().warning(f"cannot place marker {obs.marker_id}: {exc}", throttle_duration_sec=10.0)
            return None


def _doc(text: str) -> ParameterDescriptor:
    return ParameterDescriptor(description=text)


NODE_CLASS = VisionNode


def main(args: list[str] | None = None) -> int:
    return run_node(VisionNode, args=args)


if __name__ == "__main__":
    raise SystemExit(main())
