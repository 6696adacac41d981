"""The sim node's overhead camera over DDS: image size, intrinsics, and markers a detector can read."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.timeout(240)]


def test_camera_publishes_overhead_images_in_which_the_plate_markers_are_detectable(
    gl_backend, start_node, client_node
):
    import cv2
    from sensor_msgs.msg import CameraInfo, Image

    from autolab.model.workcell import load_workcell
    from autolab.nodes.qos import SENSOR
    from autolab.nodes.sync_client import SyncClient
    from autolab.sim import markers

    sim = start_node("autolab.nodes.sim", ros_args=["-p", "camera_rate_hz:=2.0"], env={"MUJOCO_GL": gl_backend})
    client = SyncClient(client_node, client_node.executor_for_test)
    try:
        img = client.wait_message(Image, "/camera/image_raw", SENSOR, timeout=120.0)
        info = client.wait_message(CameraInfo, "/camera/camera_info", SENSOR, timeout=30.0)
    except Exception:
        print(sim.output()[-4000:])
        raise
    assert (img.width, img.height, img.encoding) == (640, 480, "rgb8")
    assert len(img.data) == 640 * 480 * 3 and img.step == 640 * 3
    assert (info.width, info.height) == (640, 480)
    assert info.k[0] == pytest.approx(240 / math.tan(math.radians(58) / 2), rel=1e-3)

    rgb = np.frombuffer(bytes(img.data), dtype=np.uint8).reshape(480, 640, 3)
    detector = cv2.aruco.ArucoDetector(markers.dictionary(), cv2.aruco.DetectorParameters())
    _corners, ids, _ = detector.detectMarkers(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    seen = set() if ids is None else set(ids.ravel().tolist())
    expected = {item.aruco_id for item in load_workcell().inventory}
    assert expected <= seen, f"markers seen {sorted(seen)}, expected at least {sorted(expected)}"
