"""The Gazebo world, bridge and launch files, checked structurally (Gazebo itself is not installed here)."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest
import yaml

from autolab.model.workcell import load_workcell
from autolab.paths import data_path
from autolab.sim.gazebo import generated_path, main, world_sdf


@pytest.fixture(scope="module")
def wc():
    return load_workcell()


@pytest.fixture(scope="module")
def world(wc) -> ET.Element:
    root = ET.fromstring(world_sdf(wc))
    assert root.tag == "sdf"
    return root.find("world")


def _pose(el: ET.Element) -> list[float]:
    return [float(v) for v in el.find("pose").text.split()]


def test_world_is_sdf_1_9_or_later_with_physics_and_the_systems_it_needs(wc):
    root = ET.fromstring(world_sdf(wc))
    major, minor = (int(v) for v in root.get("version").split("."))
    assert (major, minor) >= (1, 9)
    world = root.find("world")
    assert float(world.find("physics/max_step_size").text) == pytest.approx(0.002)
    systems = {p.get("name") for p in world.findall("plugin")}
    assert {"gz::sim::systems::Physics", "gz::sim::systems::SceneBroadcaster", "gz::sim::systems::Sensors"} <= systems
    assert world.find("scene/shadows").text == "false"


def test_every_inventory_item_is_a_dynamic_model_with_its_mass_at_its_location(world, wc):
    for item in wc.inventory:
        model = world.find(f"model[@name='{item.id}']")
        assert model is not None, item.id
        assert model.find("static") is None or model.find("static").text == "false"
        loc = wc.locations[item.location].pose
        x, y, z, _r, _p, yaw = _pose(model)
        assert (x, y, yaw) == pytest.approx((loc.x, loc.y, loc.yaw), abs=1e-4)
        assert z == pytest.approx(loc.z, abs=0.001)
        mass = float(model.find("link/inertial/mass").text)
        assert mass == pytest.approx(wc.labware_types[item.type].mass_g / 1000)
        size = [float(v) for v in model.find("link/collision/geometry/box/size").text.split()]
        assert size == pytest.approx(list(wc.labware_types[item.type].size_m), abs=1e-6)


def test_fixed_bodies_and_nests_come_from_the_description(world, wc):
    cell = world.find("model[@name='cell']")
    assert cell.find("static").text == "true"
    names = {c.get("name") for c in cell.findall("link/collision")}
    for dev in wc.devices.values():
        for box in dev.bodies:
            assert f"{dev.id}_{box.name}_collision" in names
    housing = cell.find("link/collision[@name='reader1_housing_collision']")
    expect = wc.devices["reader1"].pose.compose(wc.devices["reader1"].bodies[0].pose)
    assert _pose(housing)[:3] == pytest.approx([expect.x, expect.y, expect.z])
    guides = [n for n in names if n.startswith("nest_reader1_nest_")]
    assert len(guides) == 8


def test_arm_is_included_from_the_urdf_with_trajectory_and_joint_state_systems(world, wc):
    inc = world.find("include")
    assert inc.find("uri").text.endswith("urdf/arm.urdf") and inc.find("name").text == "arm"
    plugins = {p.get("name"): p for p in inc.findall("plugin")}
    jtc = plugins["gz::sim::systems::JointTrajectoryController"]
    assert [j.text for j in jtc.findall("joint_name")] == list(wc.arm.arm_joints)
    assert "gz::sim::systems::JointStatePublisher" in plugins


def test_conveyor_belt_is_driven_by_a_track_controller_and_the_camera_matches_the_description(world, wc):
    conveyor = world.find("model[@name='conveyor']")
    assert conveyor.find("plugin").get("name") == "gz::sim::systems::TrackController"
    assert conveyor.find("plugin/link").text == "belt"
    cam = world.find("model[@name='camera1']/link/sensor")
    assert cam.get("type") == "camera" and cam.find("topic").text == "camera/image_raw"
    assert (int(cam.find("camera/image/width").text), int(cam.find("camera/image/height").text)) == (640, 480)
    hfov = float(cam.find("camera/horizontal_fov").text)
    assert math.tan(hfov / 2) == pytest.approx(math.tan(math.radians(58) / 2) * 640 / 480, rel=1e-4)


def test_checked_in_world_matches_the_description(wc):
    assert generated_path().read_text() == world_sdf(wc), "regenerate with: python -m autolab.sim.gazebo"
    assert main(["--check"]) == 0


def test_check_flags_a_stale_world(tmp_path):
    stale = tmp_path / "w.sdf"
    stale.write_text("<sdf/>")
    assert main(["--check", "--output", str(stale)]) == 1


def test_bridge_maps_clock_joint_states_camera_and_trajectory_with_valid_directions():
    entries = yaml.safe_load(data_path("config", "gazebo", "bridge.yaml").read_text())
    by_ros = {e["ros_topic_name"]: e for e in entries}
    assert by_ros["/clock"]["direction"] == "GZ_TO_ROS"
    assert by_ros["/joint_states"]["ros_type_name"] == "sensor_msgs/msg/JointState"
    assert by_ros["/camera/image_raw"]["gz_type_name"] == "gz.msgs.Image"
    assert by_ros["/sim/arm/joint_trajectory"]["direction"] == "ROS_TO_GZ"
    for e in entries:
        assert set(e) == {"ros_topic_name", "gz_topic_name", "ros_type_name", "gz_type_name", "direction"}
        assert e["direction"] in {"GZ_TO_ROS", "ROS_TO_GZ", "BIDIRECTIONAL"}
        assert e["gz_type_name"].startswith("gz.msgs.")


def test_gazebo_launch_uses_the_generated_world_and_the_bridge_config():
    doc = yaml.safe_load(data_path("launch", "gazebo.launch.yaml").read_text())
    actions = doc["launch"]
    args = {a["arg"]["name"]: a["arg"] for a in actions if "arg" in a}
    assert args["world"]["default"].endswith("/sim/gazebo/workcell.sdf")
    assert args["bridge_config"]["default"].endswith("/config/gazebo/bridge.yaml")
    nodes = [a["node"] for a in actions if "node" in a]
    assert any(n["pkg"] == "ros_gz_bridge" and n["exec"] == "parameter_bridge" for n in nodes)
    includes = [a["include"]["file"] for a in actions if "include" in a]
    assert includes and all(f.endswith("ros_gz_sim)/launch/gz_sim.launch.py") for f in includes)


@pytest.mark.parametrize("yaw_deg", [0.0, 30.0, -90.0])
def test_gazebo_camera_images_the_cell_the_way_the_mujoco_camera_does(wc, yaw_deg):
    """Image axes in world from the SDF pose and Gazebo's camera convention equal the vision node's extrinsics."""
    from dataclasses import replace

    import numpy as np

    from autolab.devices.vision import CameraExtrinsics

    cam = wc.devices["camera1"]
    pose = replace(cam.pose, yaw=math.radians(yaw_deg))
    turned = replace(wc, devices={**wc.devices, "camera1": replace(cam, pose=pose)})
    world = ET.fromstring(world_sdf(turned)).find("world")
    x, y, z, roll, pitch, yaw = map(float, world.find("model[@name='camera1']/pose").text.split())

    def rot(axis: int, a: float) -> np.ndarray:
        c, s = math.cos(a), math.sin(a)
        i, j = [k for k in range(3) if k != axis]
        m = np.eye(3)
        m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
        return m if axis != 1 else m.T  # about y the sines swap places

    link = rot(2, yaw) @ rot(1, pitch) @ rot(0, roll)  # SDF: fixed-axis roll, pitch, yaw
    # Gazebo camera link: looks along +x, image right along -y, image down along -z.
    optical = link @ np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    expected = CameraExtrinsics.overhead(pose)
    assert np.allclose(optical, expected.rotation, atol=1e-5)  # the SDF prints 6 significant digits
    assert np.allclose((x, y, z), expected.position)
