"""The sim node in its own process over DDS: clock, joint states, trajectories, services, e-stop.

The camera has its own module (test_sim_camera.py): rendering is slow in software GL.
"""

from __future__ import annotations

import time
from collections import deque

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.timeout(170)]


@pytest.fixture(scope="module")
def cell(start_node, client_node):
    """A safety node and a sim node running as fast as it can."""
    from sensor_msgs.msg import JointState

    from autolab.nodes.qos import STREAM
    from autolab.nodes.sync_client import SyncClient

    safety = start_node("autolab.nodes.safety")
    sim = start_node("autolab.nodes.sim", ros_args=["-p", "real_time_factor:=0.0"])
    client = SyncClient(client_node, client_node.executor_for_test)
    try:
        client.wait_message(JointState, "/joint_states", STREAM, timeout=40.0)
    except Exception:
        print(sim.output()[-4000:], safety.output()[-2000:])
        raise
    return client, sim


@pytest.fixture
def fresh(cell):
    """Every test starts from the initial world, with the e-stop reset."""
    from std_srvs.srv import Trigger

    from autolab_interfaces.srv import EStop

    client, sim = cell
    client.call(EStop, "/safety/reset", EStop.Request(source="test"), timeout=10.0)
    assert client.call(Trigger, "/sim/reset", timeout=10.0).success
    return client


def _joint_positions(client, timeout: float = 10.0) -> dict[str, float]:
    from sensor_msgs.msg import JointState

    from autolab.nodes.qos import STREAM

    msg = client.wait_message(JointState, "/joint_states", STREAM, timeout=timeout)
    return dict(zip(msg.name, msg.position, strict=True))


def _trajectory(joints: dict[str, float], seconds: float):
    from builtin_interfaces.msg import Duration
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    msg = JointTrajectory()
    msg.joint_names = list(joints)
    pt = JointTrajectoryPoint()
    pt.positions = list(joints.values())
    pt.velocities = [0.0] * len(joints)
    pt.time_from_start = Duration(sec=int(seconds), nanosec=int((seconds % 1) * 1e9))
    msg.points = [pt]
    return msg


def test_clock_runs_faster_than_real_time_when_unthrottled(cell, client_node):
    from rosgraph_msgs.msg import Clock

    from autolab.nodes.qos import STREAM

    client, _ = cell
    samples: list[tuple[float, float]] = []
    sub = client_node.create_subscription(
        Clock, "/clock", lambda m: samples.append((time.monotonic(), m.clock.sec + m.clock.nanosec * 1e-9)), STREAM
    )
    try:
        client.spin_for(3.0)
    finally:
        client_node.destroy_subscription(sub)
    assert len(samples) > 10
    (w0, s0), (w1, s1) = samples[0], samples[-1]
    assert s1 - s0 > (w1 - w0), f"sim advanced {s1 - s0:.2f} s in {w1 - w0:.2f} s of wall time"
    assert all(b[1] >= a[1] for a, b in zip(samples, samples[1:], strict=False)), "the clock never goes back"


def test_joint_states_carry_every_arm_and_finger_joint_at_50_hz_of_sim_time(cell, client_node):
    from sensor_msgs.msg import JointState

    from autolab.model.workcell import load_workcell
    from autolab.nodes.qos import STREAM

    client, _ = cell
    arm = load_workcell().arm
    msgs: list = []
    sub = client_node.create_subscription(JointState, "/joint_states", msgs.append, STREAM)
    try:
        client.spin_until(lambda: len(msgs) >= 30, 20.0, "30 joint states")
    finally:
        client_node.destroy_subscription(sub)
    assert list(msgs[-1].name) == [*arm.arm_joints, *arm.finger_joints]
    assert len(msgs[-1].velocity) == len(msgs[-1].effort) == len(msgs[-1].name)
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in msgs]
    gaps = sorted(b - a for a, b in zip(stamps, stamps[1:], strict=False))
    # The median, not the maximum: a loaded test client may miss samples (KEEP_LAST), the sim does not skip them.
    assert gaps[len(gaps) // 2] <= 0.02 + 1e-6, f"median gap {gaps[len(gaps) // 2]:.4f} s of sim time"
    assert gaps[0] > 0, "stamps increase"


def test_sim_follows_a_joint_trajectory(fresh, client_node):
    from trajectory_msgs.msg import JointTrajectory

    from autolab.nodes.qos import COMMAND

    client = fresh
    start = _joint_positions(client)
    target = {"shoulder_pan_joint": start["shoulder_pan_joint"] + 0.4, "elbow_joint": start["elbow_joint"] - 0.2}
    pub = client_node.create_publisher(JointTrajectory, "/sim/arm/joint_trajectory", COMMAND)
    try:
        client.spin_until(lambda: pub.get_subscription_count() > 0, 10.0, "the sim's trajectory subscription")
        pub.publish(_trajectory(target, 1.0))

        def arrived() -> bool:
            q = _joint_positions(client)
            return all(abs(q[j] - v) < 0.005 for j, v in target.items())

        client.spin_until(arrived, 30.0, "the arm to reach the trajectory's end")
        q = _joint_positions(client)
        assert q["wrist_1_joint"] == pytest.approx(start["wrist_1_joint"], abs=0.005), "unnamed joints hold"
    finally:
        client_node.destroy_publisher(pub)


def test_estop_on_the_real_safety_node_freezes_the_arm_mid_motion(fresh, client_node):
    from sensor_msgs.msg import JointState
    from trajectory_msgs.msg import JointTrajectory

    from autolab.nodes.qos import COMMAND, STREAM
    from autolab_interfaces.srv import EStop

    client = fresh
    start = _joint_positions(client)
    # A slow move (60 s of sim time, a few seconds of wall time unthrottled): the stop lands mid-way
    # however loaded the machine, and the e-stop service is discovered before the move starts.
    goal = start["shoulder_pan_joint"] - 1.5
    client.service(EStop, "/safety/estop", timeout=10.0)
    latest: deque = deque(maxlen=1)
    sub = client_node.create_subscription(JointState, "/joint_states", lambda m: latest.append(m), STREAM)
    pub = client_node.create_publisher(JointTrajectory, "/sim/arm/joint_trajectory", COMMAND)

    def pan() -> float:
        return dict(zip(latest[-1].name, latest[-1].position, strict=True))["shoulder_pan_joint"]

    def at_rest() -> bool:
        return bool(latest) and max(abs(v) for v in latest[-1].velocity) < 1e-3

    try:
        client.spin_until(lambda: pub.get_subscription_count() > 0, 10.0, "the sim's trajectory subscription")
        client.spin_until(lambda: bool(latest), 10.0, "joint states")
        pub.publish(_trajectory({"shoulder_pan_joint": goal}, 60.0))
        client.spin_until(lambda: pan() < start["shoulder_pan_joint"] - 0.1, 30.0, "the arm to start moving")
        assert client.call(EStop, "/safety/estop", EStop.Request(source="test", reason="drill"), timeout=10.0).success
        client.spin_until(at_rest, 10.0, "the arm to stop")
        frozen = pan()
        client.spin_for(2.0)
        later = pan()
        assert later == pytest.approx(frozen, abs=0.002), "the arm holds still while the e-stop is latched"
        assert later > goal + 0.3, "the arm stopped well short of the trajectory's end"
        # A trajectory sent while latched is refused; reset does not resume the old one.
        pub.publish(_trajectory({"shoulder_pan_joint": goal}, 1.0))
        client.spin_for(1.0)
        assert pan() == pytest.approx(frozen, abs=0.002)
    finally:
        client_node.destroy_publisher(pub)
        client_node.destroy_subscription(sub)


def test_gripper_state_and_labware_poses_report_the_initial_world(fresh):
    from autolab.nodes.qos import LATCHED
    from autolab_interfaces.msg import ArmState, LabwarePoseArray

    client = fresh
    arm = client.wait_message(ArmState, "/sim/gripper/state", LATCHED, timeout=10.0)
    assert not arm.holding and not arm.gripper_closed and arm.named_pose == "home"
    assert arm.tool_pose.header.frame_id == "world" and arm.tool_pose.pose.position.z > 0.3
    poses = client.wait_message(LabwarePoseArray, "/sim/labware_poses", LATCHED, timeout=10.0)
    at = {p.labware.id: p.location.id for p in poses.items}
    assert at == {"plate1": "hotel1.slot1", "plate2": "hotel1.slot2", "source1": "liquid_handler1.source"}
    plate1 = next(p for p in poses.items if p.labware.id == "plate1")
    assert plate1.labware.barcode == "AL-P-000001" and plate1.confidence == 1.0


def test_spawn_labware_service_adds_a_plate_and_refuses_an_occupied_location(fresh):
    from autolab_interfaces.msg import LabwareRef, LocationRef
    from autolab_interfaces.srv import GetLabwarePoses, SpawnLabware

    client = fresh
    req = SpawnLabware.Request(
        labware=LabwareRef(id="plate9", labware_type="corning_96_wellplate_360ul_flat", barcode="AL-P-000009"),
        location=LocationRef(id="deck.2"),
    )
    res = client.call(SpawnLabware, "/sim/spawn_labware", req, timeout=10.0)
    assert res.success, res.message
    req.labware.id = "plate10"
    req.location.id = "hotel1.slot1"
    res = client.call(SpawnLabware, "/sim/spawn_labware", req, timeout=10.0)
    assert not res.success and "occupied by plate1" in res.message
    got = client.call(GetLabwarePoses, "/sim/get_labware_poses", GetLabwarePoses.Request(ids=["plate9"]), timeout=10.0)
    assert got.success and [i.location.id for i in got.items] == ["deck.2"]
    assert got.items[0].labware.barcode == "AL-P-000009"
    missing = client.call(GetLabwarePoses, "/sim/get_labware_poses", GetLabwarePoses.Request(ids=["nope"]))
    assert not missing.success and "nope" in missing.message


def test_conveyor_command_moves_the_belt_to_its_target_and_reports_presence(fresh, client_node):
    from std_msgs.msg import Float64MultiArray

    from autolab.nodes.qos import COMMAND, LATCHED
    from autolab_interfaces.msg import ConveyorState, LabwareRef, LocationRef
    from autolab_interfaces.srv import SpawnLabware

    client = fresh
    req = SpawnLabware.Request(
        labware=LabwareRef(id="belt1", labware_type="corning_96_wellplate_360ul_flat"),
        location=LocationRef(id="conveyor.in"),
    )
    assert client.call(SpawnLabware, "/sim/spawn_labware", req, timeout=10.0).success
    before = client.wait_message(ConveyorState, "/sim/conveyor/state", LATCHED, 10.0, lambda m: m.presence[0])
    pub = client_node.create_publisher(Float64MultiArray, "/sim/conveyor/command", COMMAND)
    try:
        client.spin_until(lambda: pub.get_subscription_count() > 0, 10.0, "the sim's conveyor subscription")
        pub.publish(Float64MultiArray(data=[before.position_m + 0.6, 0.25]))
        done = client.wait_message(
            ConveyorState, "/sim/conveyor/state", LATCHED, 40.0, lambda m: not m.moving and m.presence[1]
        )
    finally:
        client_node.destroy_publisher(pub)
    assert list(done.stations) == ["conveyor.in", "conveyor.out"]
    assert done.position_m == pytest.approx(before.position_m + 0.6, abs=0.001)
    assert not done.presence[0]


@pytest.mark.parametrize(
    ("ros_args", "named"),
    [
        (["-p", "real_time_factor:=-1.0"], "real_time_factor"),
        (["-p", "use_sim_time:=true"], "use_sim_time"),
        (["-p", "workcell:=/nonexistent/workcell.yaml"], "workcell"),
    ],
)
def test_bad_parameters_stop_the_node_at_start_with_a_sentence_naming_them(start_node, ros_args, named):
    from support.ros import wait_for

    proc = start_node("autolab.nodes.sim", name=f"sim_bad_{named}", ros_args=["-r", "__node:=sim_bad", *ros_args])
    wait_for(lambda: not proc.alive(), 60.0, "the misconfigured sim node to exit")
    assert proc.proc.returncode == 1
    out = proc.output()
    assert "cannot start" in out and named in out, out[-2000:]


def test_reset_empties_the_wells_the_liquid_services_filled(fresh):
    from std_srvs.srv import Trigger

    from autolab_interfaces.srv import GetWellContents, LiquidTransfer

    client = fresh
    req = LiquidTransfer.Request(dest_labware="plate1", dest_wells=["A1", "B2"], volumes_ul=[50.0, 20.0],
                                 reagent="tartrazine_stock")
    res = client.call(LiquidTransfer, "/sim/liquids/transfer", req, timeout=10.0)
    assert res.error_code == LiquidTransfer.Response.OK, res.message
    got = client.call(GetWellContents, "/sim/liquids/get_contents", GetWellContents.Request(labware_id="plate1"),
                      timeout=10.0)
    assert got.success and {w.well: w.volume_ul for w in got.wells} == {"A1": 50.0, "B2": 20.0}

    reset = client.call(Trigger, "/sim/reset", timeout=10.0)
    assert reset.success and "wells empty" in reset.message
    got = client.call(GetWellContents, "/sim/liquids/get_contents", GetWellContents.Request(labware_id="plate1"),
                      timeout=10.0)
    assert got.success and list(got.wells) == []
