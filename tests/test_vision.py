"""Vision: ArUco identity and pose of plates rendered by MuJoCo, and the vision node over DDS."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from autolab.devices.vision import CameraModel, MarkerDetector, VisionError, rotation_to_quaternion

pytestmark = pytest.mark.timeout(120)

_BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_vision.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_vision", _BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    module = _bench()
    try:
        scene = module.MarkerScene(marker_id=1)
    except Exception as exc:  # no EGL/OSMesa: say so rather than pass silently
        pytest.skip(f"MuJoCo offscreen rendering unavailable (MUJOCO_GL egl/osmesa): {exc}")
    scene.close()
    return module


def test_pose_error_over_a_sweep_of_plate_poses_is_within_5_mm(bench):
    rows, missed = bench.measure(n=40, seed=3)
    assert missed == 0, f"{missed} of 40 rendered markers were not detected"
    position_mm = [r[0] for r in rows]
    rotation_deg = [r[1] for r in rows]
    assert max(position_mm) < 5.0, f"pose errors (mm): {sorted(position_mm)[-5:]}"
    assert max(rotation_deg) < 5.0, f"rotation errors (deg): {sorted(rotation_deg)[-5:]}"


def test_marker_identity_is_read_from_the_rendered_label(bench):
    scene = bench.MarkerScene(marker_id=7)
    try:
        scene.set_pose(0.05, -0.03, 2.0, 0.1)
        found = MarkerDetector(scene.camera, bench.MARKER_M).detect(scene.render())
    finally:
        scene.close()
    assert [o.marker_id for o in found] == [7]
    assert found[0].reprojection_error_px < 1.0


def test_blank_image_has_no_detections():
    detector = MarkerDetector(CameraModel.from_fovy(45, 640, 480), 0.06)
    assert detector.detect(np.full((480, 640), 128, np.uint8)) == []


def test_bad_inputs_are_named_vision_errors():
    cam = CameraModel.from_fovy(45, 640, 480)
    with pytest.raises(VisionError, match="8-bit"):
        MarkerDetector(cam, 0.06).detect(np.zeros((480, 640), np.float32))
    with pytest.raises(VisionError, match="marker_length_m"):
        MarkerDetector(cam, 0.0)
    with pytest.raises(VisionError, match="dictionary"):
        MarkerDetector(cam, 0.06, "DICT_NOPE")
    with pytest.raises(VisionError, match="K must have 9"):
        CameraModel.from_k([1, 2, 3], 640, 480)


def test_quaternion_of_a_half_turn_is_exact():
    r = np.diag([1.0, -1.0, -1.0])  # 180 degrees about x
    assert np.allclose(rotation_to_quaternion(r), (1.0, 0.0, 0.0, 0.0))
    c, s = math.cos(0.3), math.sin(0.3)
    assert np.allclose(
        rotation_to_quaternion(np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])), (0, 0, math.sin(0.15), math.cos(0.15))
    )


@pytest.mark.ros
def test_vision_node_reports_identity_and_pose_of_a_plate(bench, start_node, client_node):
    from sensor_msgs.msg import CameraInfo, Image

    from autolab.nodes.qos import SENSOR, STREAM
    from autolab.nodes.sync_client import SyncClient
    from autolab_interfaces.msg import DetectionArray

    scene = bench.MarkerScene(marker_id=1)  # plate1 carries ArUco id 1 in config/workcell.yaml
    try:
        truth = scene.set_pose(-0.04, 0.02, 0.7, 0.05)
        frame = scene.render()
    finally:
        scene.close()
    node = start_node("autolab.nodes.vision")
    client = SyncClient(client_node, client_node.executor_for_test)
    info = CameraInfo(width=640, height=480)
    info.header.frame_id = "camera_optical_frame"
    cam = scene.camera
    info.k = [cam.fx, 0.0, cam.cx, 0.0, cam.fy, cam.cy, 0.0, 0.0, 1.0]
    image = Image(height=480, width=640, encoding="rgb8", step=640 * 3, data=frame.tobytes())
    image.header.frame_id = "camera_optical_frame"
    pub_info = client_node.create_publisher(CameraInfo, "camera/camera_info", SENSOR)
    pub_image = client_node.create_publisher(Image, "camera/image_raw", SENSOR)
    got: list[DetectionArray] = []
    sub = client_node.create_subscription(
        DetectionArray, "vision/detections", lambda m: got.append(m) if m.detections else None, STREAM
    )
    try:

        def publish_until_detected() -> bool:
            pub_info.publish(info)
            pub_image.publish(image)
            client.spin_for(0.2)
            return bool(got)

        client.spin_until(publish_until_detected, timeout=30.0, what="a detection on vision/detections")
    except Exception:
        print(node.output()[-3000:])
        raise
    finally:
        client_node.destroy_subscription(sub)
    det = got[0].detections[0]
    assert det.marker_id == 1 and det.labware.id == "plate1" and det.labware.barcode
    assert got[0].header.frame_id == "camera_optical_frame"
    p = det.pose.pose.position
    error_mm = np.linalg.norm(np.array([p.x, p.y, p.z]) - truth.position_m) * 1e3
    assert error_mm < 5.0
