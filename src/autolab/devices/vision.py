"""Labware identity and pose from ArUco markers: detection, sub-pixel corners, solvePnP. Pure (no ROS).

Each plate carries one ArUco marker (dictionary DICT_4X4_50 by default) of a
known side length. The detector finds the marker's four corners, refines them
to sub-pixel accuracy (cv2.CORNER_REFINE_SUBPIX), and solves the square's pose
with IPPE (cv2.SOLVEPNP_IPPE_SQUARE), which is exact for four coplanar points.
Poses are in the camera's optical frame (x right, y down, z forward), metres.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from autolab.devices.errors import VisionError
from autolab.devices.kinematics import quaternion_of


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
        self._detector = cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(_DICTIONARIES[dictionary]), params)
        h = marker_length_m / 2
        # IPPE_SQUARE's required corner order; the marker frame has z out of the marker's face.
        self._object = np.array([[-h, h, 0], [h, h, 0], [h, -h, 0], [-h, -h, 0]], dtype=np.float64)

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
