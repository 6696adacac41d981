"""Vision node: labware identity and pose from the ArUco markers on plates.

Subscribes `camera/image_raw` and `camera/camera_info`; publishes
`vision/detections` (DetectionArray): for each marker, its id, the labware the
workcell inventory gives that id (id, type, barcode), its pose in the camera's
optical frame (header frame of the image) and the reprojection error, so the
executive can check a placement and a plate's identity.

Parameters: `marker_length_m` and `dictionary` (default: autolab.sim.markers,
the same values the simulation textures with), `camera` (topic prefix).
Detection runs in the image callback: a 640x480 frame takes a few ms (see
bench/bench_vision.py), and the sensor QoS drops frames rather than queueing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from autolab.devices.vision import CameraModel, MarkerDetector, VisionError
from autolab.nodes.qos import SENSOR, STREAM
from autolab.nodes.runtime import StartupError, run_node
from autolab_interfaces.msg import Detection, DetectionArray, LabwareRef

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


def _marker_defaults() -> tuple[float, str]:
    try:
        from autolab.sim import markers

        return markers.MARKER_SIDE_M, markers.DICTIONARY_NAME
    except ImportError:
        return 0.06, "DICT_4X4_50"


def _inventory_by_marker() -> dict[int, LabwareRef]:
    try:
        from autolab.model.workcell import load_workcell

        wc = load_workcell()
    except Exception:  # no description: detections carry marker ids only
        return {}
    return {
        int(i.aruco_id): LabwareRef(id=i.id, labware_type=i.type, barcode=i.barcode)
        for i in wc.inventory
        if getattr(i, "aruco_id", None) is not None
    }


class VisionNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("vision", **kwargs)
        length, dictionary = _marker_defaults()
        self.marker_length_m = float(
            self.declare_parameter(
                "marker_length_m", length, ParameterDescriptor(description="marker side, black border included")
            ).value
        )
        self.dictionary = str(self.declare_parameter("dictionary", dictionary).value)
        camera = str(self.declare_parameter("camera", "camera").value)
        if not self.marker_length_m > 0:
            raise StartupError(self.get_name(), f"parameter 'marker_length_m' must be > 0, got {self.marker_length_m}")
        try:  # check the dictionary name now, not at the first frame
            MarkerDetector(CameraModel(1, 1, 0, 0, 1, 1), self.marker_length_m, self.dictionary)
        except VisionError as exc:
            raise StartupError(self.get_name(), f"parameter 'dictionary': {exc}") from exc
        self.labware = _inventory_by_marker()
        self._detector: MarkerDetector | None = None
        self._camera: CameraModel | None = None
        self._pub = self.create_publisher(DetectionArray, "vision/detections", STREAM)
        self.create_subscription(CameraInfo, f"{camera}/camera_info", self._on_info, SENSOR)
        self.create_subscription(Image, f"{camera}/image_raw", self._on_image, SENSOR)
        self.frames = 0

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
        out.header = msg.header
        for obs in observations:
            det = Detection(marker_id=obs.marker_id, reprojection_error_px=obs.reprojection_error_px)
            det.labware = self.labware.get(obs.marker_id, LabwareRef())
            det.pose.header = msg.header
            p, q = det.pose.pose.position, det.pose.pose.orientation
            p.x, p.y, p.z = (float(v) for v in obs.position_m)
            q.x, q.y, q.z, q.w = obs.quaternion_xyzw
            out.detections.append(det)
        self.frames += 1
        self._pub.publish(out)


NODE_CLASS = VisionNode


def main(args: list[str] | None = None) -> int:
    return run_node(VisionNode, args=args)


if __name__ == "__main__":
    raise SystemExit(main())
