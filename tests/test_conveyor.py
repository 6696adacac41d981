"""Conveyor: goals to belt moves with checks, the belt in physics, and the node on a serial controller.

The serial tests run the real ALP-CV1 driver against its emulator on a
pseudo-terminal; the ROS test runs the conveyor node in its own process on
that pty, with the real safety node, so feedback, presence and the e-stop
go through the same code as on hardware.
"""

from __future__ import annotations

import time

import pytest

from autolab.devices.conveyor import (
    ConveyorController,
    ConveyorPlanner,
    EngineConveyorBackend,
    SerialConveyorBackend,
)
from autolab.devices.errors import ConveyorBlocked, InvalidGoal, UnknownStation
from autolab_interfaces.action import ConveyorMove
from autolab_interfaces.msg import ConveyorState, DeviceState
from autolab_interfaces.srv import EStop

pytestmark = pytest.mark.timeout(90)

STATIONS = {"conveyor.in": -0.3, "conveyor.out": 0.3}


@pytest.fixture
def planner() -> ConveyorPlanner:
    return ConveyorPlanner(STATIONS, max_speed=0.25)


def test_to_station_moves_the_carrier_upstream_by_the_station_distance(planner):
    move = planner.to_station("conveyor.out", {"conveyor.in": True, "conveyor.out": False})
    assert move.distance == pytest.approx(0.6) and move.carrier_from == "conveyor.in"
    assert move.speed == pytest.approx(0.2)  # 80 % of the maximum by default
    assert planner.to_station("conveyor.in", {"conveyor.in": True, "conveyor.out": False}).distance == 0.0
    back = planner.to_station("conveyor.in", {"conveyor.in": False, "conveyor.out": True})
    assert back.distance == pytest.approx(-0.6)


def test_goals_that_cannot_be_met_are_refused_with_named_errors(planner):
    with pytest.raises(UnknownStation, match="conveyor.nowhere"):
        planner.to_station("conveyor.nowhere", {})
    with pytest.raises(InvalidGoal, match="every presence sensor is clear"):
        planner.to_station("conveyor.out", {"conveyor.in": False, "conveyor.out": False})
    with pytest.raises(InvalidGoal, match="speed"):
        planner.distance(0.1, {}, speed=1.0)
    with pytest.raises(InvalidGoal, match="index_steps"):
        planner.index(0, {})


def test_a_move_that_would_push_a_carrier_off_the_belt_is_blocked(planner):
    both = {"conveyor.in": True, "conveyor.out": True}
    assert planner.to_station("conveyor.out", both).distance == 0.0  # already a carrier there: nothing to do
    with pytest.raises(ConveyorBlocked, match="carrier at conveyor.out past the end"):
        planner.distance(0.6, both)
    with pytest.raises(ConveyorBlocked, match="conveyor.out"):
        planner.index(1, {"conveyor.in": False, "conveyor.out": True})
    assert planner.index(-1, {"conveyor.in": False, "conveyor.out": True}).distance == pytest.approx(-0.6)


def test_the_simulated_belt_carries_a_plate_from_in_to_out():
    from autolab.model.workcell import load_workcell
    from autolab.sim.engine import CellSim

    wc = load_workcell()
    sim = CellSim(wc)
    sim.spawn("plate9", "corning_96_wellplate_360ul_flat", "conveyor.in")
    sim.advance(0.2)
    backend = EngineConveyorBackend(sim)
    ctl = ConveyorController(backend, ConveyorPlanner(STATIONS, 0.25), sleep=lambda: backend.step(0.01))
    feedback = []
    move = ctl.planner.to_station("conveyor.out", backend.state().presence)
    code, msg, position = ctl.run(move, lambda: False, lambda *f: feedback.append(f))
    assert code == "NONE", msg
    assert backend.state().presence == {"conveyor.in": False, "conveyor.out": True}
    x = sim.labware_status(["plate9"])[0].position[0]
    assert x == pytest.approx(wc.locations["conveyor.out"].pose.x, abs=0.02)  # carried by friction
    progress = [f[1] for f in feedback]
    assert progress == sorted(progress) and progress[-1] > 0.95
    assert feedback[-1][2] == "conveyor.out"


@pytest.fixture
def emulator(tmp_path):
    from autolab.devices.emulators.alp_conveyor import AlpConveyorEmulator, BeltAxis

    axis = BeltAxis(accel_mm_s2=1500.0)
    axis.pos = axis.target = -300.0  # the axis starts where a carrier at belt offset 0 sits at conveyor.in
    emu = AlpConveyorEmulator(axis, link=str(tmp_path / "cv")).start()
    yield emu
    emu.stop()


def serial_backend(emulator) -> SerialConveyorBackend:
    from autolab.devices.drivers.alp_conveyor import AlpConveyor

    drv = AlpConveyor(emulator.device, timeout_s=0.5)
    drv.connect()
    return SerialConveyorBackend(drv, list(STATIONS))


def test_serial_controller_refuses_a_move_beyond_its_travel(emulator):
    backend = serial_backend(emulator)
    try:
        ctl = ConveyorController(backend, ConveyorPlanner(STATIONS, 0.25))
        code, msg, _ = ctl.run(ctl.planner.distance(0.9, {}), lambda: False, lambda *_: None)
        assert code == "INVALID_GOAL" and "outside travel" in msg
    finally:
        backend.close()


def test_serial_controller_moves_a_carrier_to_the_out_station(emulator):
    emulator.place_carrier(0.0)
    backend = serial_backend(emulator)
    try:
        ctl = ConveyorController(backend, ConveyorPlanner(STATIONS, 0.25))
        assert backend.state().presence == {"conveyor.in": True, "conveyor.out": False}
        move = ctl.planner.to_station("conveyor.out", backend.state().presence)
        code, msg, position = ctl.run(move, lambda: False, lambda *_: None)
        assert code == "NONE", msg
        assert position == pytest.approx(0.3, abs=0.005)
        assert backend.state().presence == {"conveyor.in": False, "conveyor.out": True}
    finally:
        backend.close()


def test_serial_belt_blocked_on_its_way_is_reported_blocked(emulator):
    emulator.place_carrier(0.0)
    emulator.block_at(100.0)
    backend = serial_backend(emulator)
    try:
        ctl = ConveyorController(backend, ConveyorPlanner(STATIONS, 0.25))
        code, msg, position = ctl.run(ctl.planner.distance(0.6, backend.state().presence), lambda: False,
                                      lambda *_: None)
        assert code == "BLOCKED" and "short of its target" in msg
        assert position == pytest.approx(0.1, abs=0.01)
    finally:
        backend.close()


@pytest.mark.ros
def test_conveyor_node_on_the_serial_controller_gives_feedback_and_stops_on_estop(
        emulator, start_node, client_node):
    from autolab.nodes.qos import LATCHED
    from autolab.nodes.sync_client import SyncClient

    emulator.place_carrier(0.0)
    start_node("autolab.nodes.safety")
    node = start_node("autolab.nodes.conveyor", ros_args=["-p", "backend:=serial", "-p", f"port:={emulator.device}"])
    sc = SyncClient(client_node, client_node.executor_for_test)
    sc.wait_message(DeviceState, "/conveyor/state", LATCHED, 60, lambda m: m.state == DeviceState.STATE_IDLE)
    belt = sc.wait_message(ConveyorState, "/conveyor/conveyor_state", LATCHED, 10)
    assert list(belt.stations) == ["conveyor.in", "conveyor.out"] and list(belt.presence) == [True, False]

    feedback = []
    goal = ConveyorMove.Goal(mode=ConveyorMove.Goal.MODE_TO_STATION, station="conveyor.out")
    _, r = sc.run_action(ConveyorMove, "/conveyor/move", goal, timeout=30, feedback=feedback.append)
    assert r.error_code == ConveyorMove.Result.NONE, r.error_msg + node.output()[-2000:]
    assert r.station == "conveyor.out" and r.position_m == pytest.approx(0.3, abs=0.005)
    assert feedback and feedback[-1].nearest_station == "conveyor.out"
    sc.wait_message(ConveyorState, "/conveyor/conveyor_state", LATCHED, 10, lambda m: list(m.presence) == [False, True])

    # Back towards the in station, and latch the e-stop on the way: the belt stops short and refuses moves.
    goal = ConveyorMove.Goal(mode=ConveyorMove.Goal.MODE_TO_STATION, station="conveyor.in", speed_m_s=0.1)
    fb = []
    handle = sc.send_goal(ConveyorMove, "/conveyor/move", goal, feedback=fb.append)
    sc.spin_until(lambda: bool(fb) and fb[-1].progress > 0.2, 20, "the belt to get going")
    sc.call(EStop, "/safety/estop", EStop.Request(source="test", reason="belt"))
    _, r = sc.result(handle, 20)
    assert r.error_code == ConveyorMove.Result.ESTOP
    time.sleep(1.0)
    stopped = emulator.axis.pos
    assert -290.0 < stopped < 290.0 and abs(emulator.axis.vel) < 1e-6  # stopped between the stations
    _, r = sc.run_action(ConveyorMove, "/conveyor/move", goal, timeout=20)
    assert r.error_code == ConveyorMove.Result.ESTOP and "e-stop" in r.error_msg
    assert sc.call(EStop, "/safety/reset", EStop.Request(source="test")).success
