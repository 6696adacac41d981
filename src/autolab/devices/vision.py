"""Labware identity and pose from ArUco markers: detection, sub-pixel corners, solvePnP. Pure (no ROS).

Each plate carries one ArUco marker (dictionary DICT_4X4_50 by default) of a
known side length. The detector finds the marker's four corners, refines them
to sub-pixel accuracy (cv2.CORNER_REFINE_SUBPIX), and solves the square's pose
with IPPE (cv2.SOLVEPNP_IPPE_SQUARE), which is exact for four coplanar points.
Poses are in the camera's optical frame (x right, y down, z forward), metres.

With the camera's pose in the cell (`CameraExtrinsics`), `LevelMarker` places a
marker in world instead, taking its face to be level, as labware sits in the
cell; `autolab.devices.placement` then says which location that is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from autolab.devices.errors import VisionError
from autolab.devices.kinematics import quaternion_of
from autolab.model.geometry import Pose


@dataclass(frozen=True)
class CameraModel:
    """Pinhole intrinsics (pixels) and distortion coefficients of a camera."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    distortion: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not (self.fx > 0 and self.fy > 0 and self.width > 0 and self.height > 0):
            raise VisionError(f"invalid camera intrinsics fx={self.fx} fy={self.fy} size={self.width}x{self.height}")

    @classmethod
    def from_k(cls, k: Sequence[float], width: int, height: int, d: Sequence[float] = ()) -> CameraModel:
        """From a row-major 3x3 K (as in sensor_msgs/CameraInfo)."""
        if len(k) != 9:
            raise VisionError(f"K must have 9 elements, got {len(k)}")
        return cls(
            float(k[0]), float(k[4]), float(k[2]), float(k[5]), int(width), int(height), tuple(float(x) for x in d)
        )

    @classmethod
    def from_fovy(cls, fovy_deg: float, width: int, height: int) -> CameraModel:
        """An ideal camera with square pixels and vertical field of view `fovy_deg` (MuJoCo's convention).

        The principal point is (w - 1) / 2: OpenCV puts pixel centres at integers, OpenGL at half-integers.
        """
        f = (height / 2) / math.tan(math.radians(fovy_deg) / 2)
        return cls(f, f, (width - 1) / 2, (height - 1) / 2, width, height)

    @property
    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=np.float64)

    @property
    def dist(self) -> np.ndarray:
        return np.array(self.distortion or (0.0, 0.0, 0.0, 0.0, 0.0), dtype=np.float64)


@dataclass(frozen=True)
class MarkerObservation:
    marker_id: int
    corners_px: np.ndarray  # 4x2, ArUco order: top-left, top-right, bottom-right, bottom-left
    position_m: np.ndarray  # marker centre in the camera optical frame
    rotation: np.ndarray  # 3x3, marker frame -> camera optical frame
    reprojection_error_px: float

    @property
    def quaternion_xyzw(self) -> tuple[float, float, float, float]:
        return rotation_to_quaternion(self.rotation)


def rotation_to_quaternion(r: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation matrix (Shepperd's method, stable near 180 degrees)."""
    return quaternion_of(np.asarray(r, dtype=np.float64))


def _square(side_m: float) -> np.ndarray:
    """The marker's corners in its own frame (x right, y up on its face), in ArUco's corner order."""
    h = side_m / 2
    return np.array([[-h, h], [h, h], [h, -h], [-h, -h]], dtype=np.float64)


_DICTIONARIES = {name: getattr(cv2.aruco, name) for name in dir(cv2.aruco) if name.startswith("DICT_")}


class MarkerDetector:
    """Finds ArUco markers of one dictionary and side length, and solves their poses."""

    def __init__(self, camera: CameraModel, marker_length_m: float, dictionary: str = "DICT_4X4_50") -> None:
        if not marker_length_m > 0:
            raise VisionError(f"marker_length_m must be > 0, got {marker_length_m}")
        if dictionary not in _DICTIONARIES:
            raise VisionError(f"unknown ArUco dictionary {dictionary!r} (e.g. DICT_4X4_50)")
        self.camera = camera
        self.marker_length_m = marker_length_m
        params = cv2.aruco.DetectorParameters()
        params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
        params.cornerRefinementWinSize = 5
        params.cornerRefinementMaxIterations = 50
        params.cornerRefinementMinAccuracy = 0.01
        if hasattr(params, "relativeCornerRefinmentWinSize"):  # OpenCV >= 4.8 (sic)
            # The window is also capped at this many cell widths. OpenCV's 0.3 leaves a 3x3 window on a marker
            # 25 px across (the cell camera's): corners sit 0.2 px inside and poses 1.5 cm long. 0.6 halves that.
            params.relativeCornerRefinmentWinSize = 0.6
        self._detector = cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(_DICTIONARIES[dictionary]), params)
        # IPPE_SQUARE's required corner order; the marker frame has z out of the marker's face.
        self._object = np.c_[_square(marker_length_m), np.zeros(4)]

    def detect(self, image: np.ndarray) -> list[MarkerObservation]:
        """Markers in an 8-bit grey, RGB or BGR image, sorted by id."""
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY if image.shape[2] == 3 else cv2.COLOR_RGBA2GRAY)
        if image.dtype != np.uint8 or image.ndim != 2:
            raise VisionError(f"expected an 8-bit image, got {image.dtype} with shape {image.shape}")
        corners, ids, _rejected = self._detector.detectMarkers(image)
        if ids is None:
            return []
        out = []
        for c, marker_id in zip(corners, ids.ravel(), strict=True):
            pts = c.reshape(4, 2).astype(np.float64)
            ok, rvec, tvec = cv2.solvePnP(
                self._object, pts, self.camera.matrix, self.camera.dist, flags=cv2.SOLVEPNP_IPPE_SQUARE
            )
            if not ok:
                continue
            projected, _ = cv2.projectPoints(self._object, rvec, tvec, self.camera.matrix, self.camera.dist)
            err = float(np.sqrt(np.mean(np.sum((projected.reshape(4, 2) - pts) ** 2, axis=1))))
            out.append(MarkerObservation(int(marker_id), pts, tvec.ravel(), cv2.Rodrigues(rvec)[0], err))
        return sorted(out, key=lambda o: o.marker_id)


@dataclass(frozen=True, eq=False)
class CameraExtrinsics:
    """The camera's optical frame in world: p_world = rotation @ p_optical + position."""

    rotation: np.ndarray  # 3x3, optical frame -> world
    position: np.ndarray  # optical centre in world, m

    @classmethod
    def overhead(cls, pose: Pose) -> CameraExtrinsics:
        """A workcell camera device at `pose` ([x, y, z, yaw]), placed exactly as autolab.sim.world places it.

        The simulation puts a MuJoCo camera at the pose, turned by yaw about world z. A MuJoCo camera looks
        along its own -z, image x along its +x and image up along its +y; so at yaw 0 it looks straight down,
        image x along world +x and image rows (downwards) along world -y. The optical frame (x right, y down,
        z forward) is that frame turned half a turn about its x axis.
        """
        c, s = math.cos(pose.yaw), math.sin(pose.yaw)
        turn = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        return cls(turn @ np.diag([1.0, -1.0, -1.0]), np.array([pose.x, pose.y, pose.z], dtype=np.float64))

    def to_world(self, position_m: np.ndarray, rotation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A pose in the optical frame (position, 3x3 rotation) as a pose in world."""
        return self.rotation @ np.asarray(position_m) + self.position, self.rotation @ np.asarray(rotation)

    def rays(self, camera: CameraModel, pixels: np.ndarray) -> np.ndarray:
        """World directions (not normalised) of the rays through Nx2 pixels, lens distortion removed."""
        pts = np.asarray(pixels, dtype=np.float64).reshape(-1, 1, 2)
        normalised = cv2.undistortPoints(pts, camera.matrix, camera.dist).reshape(-1, 2)
        return np.c_[normalised, np.ones(len(normalised))] @ self.rotation.T

    def project(self, camera: CameraModel, points_world: np.ndarray) -> np.ndarray:
        """Pixels (Nx2) of world points, as the camera images them."""
        r = self.rotation.T  # world -> optical
        rvec, _ = cv2.Rodrigues(r)
        tvec = -r @ self.position
        pts = np.asarray(points_world, dtype=np.float64).reshape(-1, 1, 3)
        return cv2.projectPoints(pts, rvec, tvec, camera.matrix, camera.dist)[0].reshape(-1, 2)


@dataclass(frozen=True, eq=False)
class LevelMarker:
    """A marker whose face is taken to be level and face up, as labware sits in the cell, seen from a known pose.

    Why: at the cell camera's 1.25 m a 60 mm marker spans about 20 pixels, and a free 6-DoF solve tilts it
    by a few degrees and misplaces it by 1-3 cm along the line of sight. Level, it has four unknowns. A
    corner's ray meets the level plane at height z in t_xy + (t_z - z) * u, where u is the ray's horizontal
    run per metre of drop below the camera at t, so the four u are the marker's square up to a similarity:
    its rotation is the marker's yaw and its scale, 1 / (t_z - z), the face's height. Given the height
    instead (a location's, say), the rays place the marker on that plane with no depth error at all.
    """

    marker_id: int
    side_m: float
    camera_position: np.ndarray  # optical centre in world
    runs: np.ndarray  # 4x2: each corner ray's horizontal run per metre of drop (ArUco corner order)

    @classmethod
    def from_corners(
        cls, marker_id: int, corners_px: np.ndarray, camera: CameraModel, extrinsics: CameraExtrinsics, side_m: float
    ) -> LevelMarker:
        d = extrinsics.rays(camera, corners_px)
        if d.shape != (4, 3) or np.any(d[:, 2] > -1e-6):
            raise VisionError(f"marker {marker_id}: its corners are not all below the camera, so it cannot lie level")
        return cls(int(marker_id), float(side_m), extrinsics.position, d[:, :2] / -d[:, 2:3])

    def _fit(self) -> tuple[float, float]:
        """(yaw, scale) of the similarity taking the marker's square to the corner runs (least squares)."""
        square = _square(self.side_m)
        centred = self.runs - self.runs.mean(axis=0)
        cross = float(np.sum(square[:, 0] * centred[:, 1] - square[:, 1] * centred[:, 0]))
        dot = float(np.sum(square * centred))
        return math.atan2(cross, dot), math.hypot(cross, dot) / float(np.sum(square**2))

    @property
    def yaw(self) -> float:
        """The marker's x axis (the labware's +x) from world +x, radians."""
        return self._fit()[0]

    @property
    def height_m(self) -> float:
        """The face's height in world as the marker's apparent size gives it (the least certain coordinate)."""
        return float(self.camera_position[2]) - 1.0 / self._fit()[1]

    def on_plane(self, z: float) -> Pose:
        """The marker's centre and yaw if its face lies at height `z`."""
        drop = float(self.camera_position[2]) - z
        x, y = self.camera_position[:2] + drop * self.runs.mean(axis=0)
        return Pose(float(x), float(y), z, self.yaw)

    def pose(self) -> Pose:
        """The marker's centre and yaw, its height from its apparent size."""
        return self.on_plane(self.height_m)
