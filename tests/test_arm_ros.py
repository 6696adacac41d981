"""The arm and conveyor nodes end to end: real safety, sim, arm and conveyor processes over DDS.

The done-when scenario of the motion issue: a plate goes from a hotel slot to
the conveyor, along it, and into the plate reader's nest through ROS 2
actions, and ends within 2 mm and 2 degrees of the nest pose in the
simulation's ground truth, with /inventory agreeing. Also: goals that would
collide or make no sense are refused with typed errors, cancel stops a move,
and a grasp of labware that is not there is an error result.
"""

from __future__ import annotations

import math

import pytest
from std_msgs.msg import String
from std_srvs.srv import Trigger

from autolab.model.workcell import load_workcell
from autolab.nodes.qos import LATCHED
from autolab.nodes.sync_client import SyncClient
from autolab_interfaces.action import ConveyorMove, MoveArm, Transfer
from autolab_interfaces.msg import DeviceState, LabwarePoseArray
from autolab_interfaces.srv import GetLabwarePoses, SpawnLabware

pytestmark = [pytest.mark.ros, pytest.mark.slow, pytest.mark.timeout(420)]

RTF = "4.0"  # the sim runs faster than real time; every node follows its clock


PROCS: dict = {}


def logs() -> str:
    """The last lines each node printed, to explain a failure."""
    return "".join(f"\n--- {name}:\n{proc.output()[-2500:]}" for name, proc in PROCS.items())


def start_cell(start_node, client_node) -> SyncClient:
    """safety, sim, arm and conveyor in four processes; returns a client once the arm is on line."""
    PROCS["safety"] = start_node("autolab.nodes.safety")
    PROCS["sim"] = start_node("autolab.nodes.sim", ros_args=["-p", f"real_time_factor:={RTF}"])
    PROCS["arm"] = start_node("autolab.nodes.arm", ros_args=["-p", "use_sim_time:=true", "--log-level", "arm:=debug"])
    PROCS["conveyor"] = start_node("autolab.nodes.conveyor", ros_args=["-p", "use_sim_time:=true"])
    sc = SyncClient(client_node, client_node.executor_for_test)
    sc.wait_message(DeviceState, "/arm/state", LATCHED, 150,
                    lambda m: m.state == DeviceState.STATE_IDLE)
    sc.wait_message(DeviceState, "/conveyor/state", LATCHED, 60,
                    lambda m: m.state == DeviceState.STATE_IDLE)
    return sc


@pytest.fixture(scope="module")
def cell(start_node, client_node) -> SyncClient:
    return start_cell(start_node, client_node)


def transfer(sc: SyncClient, src: str, dst: str, item: str = "", phases: list | None = None):
    goal = Transfer.Goal()
    goal.source.id, goal.destination.id, goal.labware.id = src, dst, item

    def fb(f) -> None:
        if phases is not None and (not phases or phases[-1] != f.phase):
            phases.append(f.phase)

    return sc.run_action(Transfer, "/arm/transfer", goal, timeout=180, feedback=fb)[1]


def move(sc: SyncClient, **fields):
    goal = MoveArm.Goal(**fields)
    return sc.run_action(MoveArm, "/arm/move", goal, timeout=120)[1]


def inventory(sc: SyncClient, predicate=lambda _m: True) -> dict[str, str]:
    """The tracked inventory (/inventory, latched) once it satisfies `predicate`: item id -> location id."""
    try:
        msg = sc.wait_message(LabwarePoseArray, "/inventory", LATCHED, 20, predicate)
    except TimeoutError as exc:
        last = sc.wait_message(LabwarePoseArray, "/inventory", LATCHED, 5)
        raise AssertionError(f"{exc}; last inventory: {[(i.labware.id, i.location.id) for i in last.items]}"
                             + logs()) from None
    return {i.labware.id: i.location.id for i in msg.items}


def test_arm_publishes_its_urdf_and_the_initial_inventory(cell):
    urdf = cell.wait_message(String, "/robot_description", LATCHED, 10)
    assert urdf.data == load_workcell().urdf_text and "shoulder_pan_joint" in urdf.data
    assert inventory(cell) == {"plate1": "hotel1.slot1", "plate2": "hotel1.slot2",
                               "source1": "liquid_handler1.source"}


def test_goals_that_collide_or_make_no_sense_are_refused_with_typed_errors(cell):
    r = move(cell, target_type=MoveArm.Goal.TARGET_JOINTS, joint_positions=[0.0, 0.3, 1.2, -1.5, -1.57, 0.0])
    assert r.error_code == MoveArm.Result.COLLISION and "fixture:table" in r.error_msg
    r = move(cell, target_type=MoveArm.Goal.TARGET_NAMED, named_pose="nowhere")
    assert r.error_code == MoveArm.Result.UNKNOWN_POSE and "home" in r.error_msg
    r = move(cell, target_type=MoveArm.Goal.TARGET_JOINTS, joint_positions=[0.0, -1.5, 4.0, -1.5, -1.5, 0.0])
    assert r.error_code == MoveArm.Result.OUT_OF_LIMITS and "elbow_joint" in r.error_msg
    r = transfer(cell, "hotel1.slot3", "reader1.nest")
    assert r.error_code == Transfer.Result.SOURCE_EMPTY
    r = transfer(cell, "hotel1.slot1", "the.moon")
    assert r.error_code == Transfer.Result.UNKNOWN_LOCATION and "the.moon" in r.error_msg
    g = ConveyorMove.Goal(mode=ConveyorMove.Goal.MODE_TO_STATION, station="conveyor.nowhere")
    _, c = cell.run_action(ConveyorMove, "/conveyor/move", g, timeout=30)
    assert c.error_code == ConveyorMove.Result.UNKNOWN_STATION


def test_plate_goes_from_the_hotel_along_the_conveyor_into_the_reader_nest_within_2mm_and_2deg(cell):
    phases: list[str] = []
    r = transfer(cell, "hotel1.slot1", "conveyor.in", "plate1", phases)
    assert r.error_code == Transfer.Result.NONE, r.error_msg + logs()
    assert phases == ["approach", "grasp", "lift", "carry", "place", "retreat"]

    feedback = []
    g = ConveyorMove.Goal(mode=ConveyorMove.Goal.MODE_TO_STATION, station="conveyor.out")
    status, c = cell.run_action(ConveyorMove, "/conveyor/move", g, timeout=60, feedback=feedback.append)
    assert c.error_code == ConveyorMove.Result.NONE, c.error_msg + logs()
    assert c.station == "conveyor.out" and feedback and feedback[-1].progress > 0.9
    assert inventory(cell, lambda m: any(i.location.id == "conveyor.out" for i in m.items))["plate1"] == "conveyor.out"

    r = transfer(cell, "conveyor.out", "reader1.nest", "plate1")
    assert r.error_code == Transfer.Result.NONE, r.error_msg + logs()

    truth = cell.call(GetLabwarePoses, "/sim/get_labware_poses", GetLabwarePoses.Request(ids=["plate1"]))
    assert truth.success and len(truth.items) == 1
    p = truth.items[0].pose.pose
    nest = load_workcell().locations["reader1.nest"].pose
    err_mm = 1000 * math.dist((p.position.x, p.position.y, p.position.z), (nest.x, nest.y, nest.z))
    o = p.orientation
    yaw = math.atan2(2 * (o.w * o.z + o.x * o.y), 1 - 2 * (o.y * o.y + o.z * o.z))
    err_deg = abs(math.degrees(math.remainder(yaw - nest.yaw, math.pi)))
    assert err_mm <= 2.0 and err_deg <= 2.0, (err_mm, err_deg)
    assert truth.items[0].location.id == "reader1.nest"
    assert inventory(cell)["plate1"] == "reader1.nest"


def test_cancel_stops_a_move_partway_and_the_arm_comes_to_rest(cell):
    goal = MoveArm.Goal(target_type=MoveArm.Goal.TARGET_NAMED, named_pose="home", velocity_scale=0.3)
    # From wherever the last test left the arm, go to travel first so that home is a long, slow move away.
    move(cell, target_type=MoveArm.Goal.TARGET_NAMED, named_pose="travel")
    progress: list[float] = []
    handle = cell.send_goal(MoveArm, "/arm/move", goal, feedback=lambda f: progress.append(f.progress))
    cell.spin_until(lambda: bool(progress) and progress[-1] > 0.2, 60, "the move to get under way")
    cell.cancel(handle)
    status, r = cell.result(handle, 60)
    assert r.error_code == MoveArm.Result.CANCELED
    assert progress[-1] < 1.0
    state = cell.wait_message(DeviceState, "/arm/state", LATCHED, 10, lambda m: m.state != DeviceState.STATE_BUSY)
    assert state.state == DeviceState.STATE_ERROR and "cancel" in state.error_msg


def test_grasp_of_labware_that_is_not_there_is_an_error_result(cell):
    ref = SpawnLabware.Request()
    ref.labware.id, ref.labware.labware_type, ref.location.id = "ghost1", "corning_96_wellplate_360ul_flat", "deck.2"
    assert cell.call(SpawnLabware, "/sim/spawn_labware", ref).success
    assert inventory(cell, lambda m: any(i.labware.id == "ghost1" for i in m.items))["ghost1"] == "deck.2"
    # The simulation forgets it; the tracked inventory (the cell's belief) still has it on deck.2.
    assert cell.call(Trigger, "/sim/reset", Trigger.Request()).success
    r = transfer(cell, "deck.2", "deck.1", "ghost1")
    assert r.error_code == Transfer.Result.GRASP_FAILED, r.error_msg
    assert "ghost1" in r.error_msg
