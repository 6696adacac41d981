"""Transfers with the physics in the loop: the arm frontend and planner driving MuJoCo in-process.

The same frontend, plans and sensing as the arm node, without ROS: the engine
backend steps the simulation while the frontend waits, so these tests check
the motion stack against physics (friction grasps, a belt that carries plates)
quickly and deterministically. The ROS end-to-end versions are in test_arm_ros.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from autolab.devices.arm import ArmController, EngineArmBackend
from autolab.devices.conveyor import ConveyorController, ConveyorPlanner, EngineConveyorBackend
from autolab.devices.planner import ArmModel
from autolab.model.inventory import IN_GRIPPER, Inventory
from autolab.model.workcell import load_workcell

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def workcell():
    return load_workcell()


@pytest.fixture(scope="module")
def model(workcell) -> ArmModel:
    return ArmModel(workcell)


class Cell:
    def __init__(self, workcell, model) -> None:
        from autolab.sim.engine import CellSim

        self.wc = workcell
        self.sim = CellSim(workcell)
        self.arm = EngineArmBackend(self.sim, tuple(model.chain.joint_names))
        self.inventory = Inventory.from_workcell(workcell)
        self.ctl = ArmController(model, self.arm, self.inventory, workcell, self.arm.locate,
                                 sleep=lambda: self.arm.step(0.01))
        dev = workcell.devices["conveyor"]
        self.stations = {s.id: dev.pose.inverse().compose(s.pose).x for s in workcell.stations("conveyor")}
        self.belt = EngineConveyorBackend(self.sim)
        self.conveyor = ConveyorController(self.belt, ConveyorPlanner(self.stations, 0.25),
                                           sleep=lambda: self.belt.step(0.01))
        self.phases: list[str] = []

    def feedback(self, phase: str, _progress: float) -> None:
        if not self.phases or self.phases[-1] != phase:
            self.phases.append(phase)

    def transfer(self, src: str, dst: str, item: str = "", cancel=lambda: False):
        return self.ctl.transfer(src, dst, item, cancel, self.feedback)

    def pose_of(self, item: str):
        st = self.sim.labware_status([item])[0]
        w, x, y, z = st.quat_wxyz
        return st.position, math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)), st.location


@pytest.fixture
def cell(workcell, model) -> Cell:
    return Cell(workcell, model)


def pose_error(cell: Cell, item: str, location: str) -> tuple[float, float]:
    (x, y, z), yaw, _ = cell.pose_of(item)
    p = cell.wc.locations[location].pose
    err_mm = 1000 * math.dist((x, y, z), (p.x, p.y, p.z))
    err_deg = abs(math.degrees(math.remainder(yaw - p.yaw, math.pi)))
    return err_mm, err_deg


def test_plate_goes_from_the_hotel_along_the_conveyor_into_the_reader_nest_within_2mm_and_2deg(cell):
    out = cell.transfer("hotel1.slot1", "conveyor.in", "plate1")
    assert out.ok, out.message
    assert cell.phases == ["approach", "grasp", "lift", "carry", "place", "retreat"]
    assert cell.pose_of("plate1")[2] == "conveyor.in"

    move = cell.conveyor.planner.to_station("conveyor.out", cell.belt.state().presence)
    assert move.distance == pytest.approx(0.6) and move.carrier_from == "conveyor.in"
    start = cell.belt.state().position
    code, msg, end = cell.conveyor.run(move, lambda: False, lambda *_: None)
    assert code == "NONE", msg
    cell.inventory.advance_belt(cell.stations, end - start)
    assert cell.inventory.at("conveyor.out").id == "plate1"
    assert cell.belt.state().presence == {"conveyor.in": False, "conveyor.out": True}

    out = cell.transfer("conveyor.out", "reader1.nest", "plate1")
    assert out.ok, out.message
    err_mm, err_deg = pose_error(cell, "plate1", "reader1.nest")
    assert err_mm <= 2.0 and err_deg <= 2.0, (err_mm, err_deg)
    assert cell.inventory.at("reader1.nest").id == "plate1"
    assert out.placed is not None and out.placed.location == "reader1.nest"


def test_grasp_of_a_plate_that_is_not_there_is_a_grasp_failure_and_the_inventory_is_kept(cell):
    # Someone moved plate2 by hand: the tracked inventory still has it in hotel1.slot2.
    lw = next(lw for lw in cell.sim._labware if lw.item_id == "plate2")
    deck = cell.wc.locations["deck.2"].pose
    cell.sim.data.qpos[lw.qpos_adr: lw.qpos_adr + 3] = (deck.x, deck.y, deck.z + 0.001)
    cell.sim.advance(0.2)
    out = cell.transfer("hotel1.slot2", "sealer1.nest", "plate2")
    assert out.code == "GRASP_FAILED", out.message
    assert "nothing between the fingers" in out.message
    assert cell.inventory.at("hotel1.slot2").id == "plate2"  # unchanged: the world model is not rewritten
    assert not cell.arm.gripper().holding
    # It rose back out of the slot with the fingers open.
    tcp = cell.ctl.model.chain.fk(cell.arm.joint_state()[0])
    assert tcp[2, 3] >= cell.ctl.model.safe_height - 0.01
    assert cell.arm.gripper().opening > 0.1


def test_occupied_destination_is_refused_before_anything_moves(cell):
    q0 = cell.arm.joint_state()[0]
    out = cell.transfer("hotel1.slot1", "hotel1.slot2")
    assert out.code == "DESTINATION_OCCUPIED" and "plate2" in out.message
    assert np.allclose(cell.arm.joint_state()[0], q0, atol=1e-3)


def test_cancel_during_carry_decelerates_smoothly_and_keeps_the_plate(cell, model):
    carrying = {"t": None}

    def cancel() -> bool:
        if cell.phases and cell.phases[-1] == "carry":
            carrying["t"] = carrying["t"] or cell.sim.time
            return cell.sim.time - carrying["t"] > 0.4
        return False

    out = cell.transfer("hotel1.slot1", "reader1.nest", "plate1", cancel=cancel)
    assert out.code == "CANCELED"
    q, v = cell.arm.joint_state()
    assert np.max(np.abs(v)) < 0.02  # at rest
    assert cell.arm.gripper().holding and cell.inventory.get("plate1").location == IN_GRIPPER


def test_emergency_stop_mid_carry_stops_the_arm_and_ends_the_goal_with_estop(cell):
    fired = {"t": None}

    def feedback(phase: str, _p: float) -> None:
        if phase == "carry" and fired["t"] is None and cell.sim.time > 0:
            fired["t"] = cell.sim.time
        if fired["t"] is not None and cell.sim.time - fired["t"] > 0.3 and not cell.ctl._estop.is_set():
            cell.ctl.emergency_stop("e-stop latched by test: pressed")

    out = cell.ctl.transfer("hotel1.slot1", "reader1.nest", "plate1", lambda: False, feedback)
    assert out.code == "ESTOP" and "pressed" in out.message
    cell.sim.advance(0.3)
    assert np.max(np.abs(cell.arm.joint_state()[1])) < 0.05


def _during_carry(cell: Cell, after_s: float, action) -> None:
    """Run `action` once, `after_s` sim seconds into the carry phase (through the frontend's own polling)."""
    state = {"t": None, "done": False}
    real = cell.arm.gripper

    def gripper():
        if cell.phases and cell.phases[-1] == "carry" and not state["done"]:
            state["t"] = state["t"] if state["t"] is not None else cell.sim.time
            if cell.sim.time - state["t"] >= after_s:
                state["done"] = True
                action()
        return real()

    cell.arm.gripper = gripper


def test_a_plate_that_slips_out_during_carry_is_reported_dropped_and_the_inventory_loses_it(cell):
    def slip_out() -> None:  # push the plate down and out between the fingers, as a failed hold would
        lw = next(lw for lw in cell.sim._labware if lw.item_id == "plate1")
        cell.sim.data.qpos[lw.qpos_adr + 2] -= 0.05
        cell.sim.data.qvel[lw.dof_adr: lw.dof_adr + 6] = 0.0

    _during_carry(cell, 0.3, slip_out)
    out = cell.transfer("hotel1.slot1", "reader1.nest", "plate1")
    assert out.code == "DROPPED", out.message
    assert "plate1 was lost from the gripper during carry" in out.message
    assert cell.inventory.get("plate1").location == ""  # lost: not in the gripper, not at a location
    assert not cell.arm.gripper().holding


def test_a_plate_let_go_during_carry_is_reported_dropped(cell):
    _during_carry(cell, 0.3, lambda: cell.sim.set_gripper(cell.wc.arm.max_opening_m))
    out = cell.transfer("hotel1.slot1", "reader1.nest", "plate1")
    assert out.code == "DROPPED", out.message
    assert cell.inventory.get("plate1").location == ""


def test_contact_flicker_with_the_fingers_still_on_the_plate_is_not_a_drop(cell):
    """Fingers squeezing a plate chatter: half a second without contact while they stay at its width."""
    real = cell.arm.gripper
    window = {"t": None}

    def flickering():
        g = real()
        if cell.phases and cell.phases[-1] == "carry":
            window["t"] = window["t"] if window["t"] is not None else cell.sim.time
            if cell.sim.time - window["t"] < 0.5:
                return type(g)(g.closed, False, "", g.opening)
        return g

    cell.arm.gripper = flickering
    out = cell.transfer("hotel1.slot1", "reader1.nest", "plate1")
    assert out.ok, out.message
    assert cell.inventory.get("plate1").location == "reader1.nest"


def test_a_plate_picked_off_the_belt_stays_gripped_without_chatter_or_creep_through_lift_and_carry(cell):
    """The fingers hold steady: contact every sample, and the plate does not creep down between them.

    A plate a few mm off its station on the belt, as a belt leaves it. With the
    finger mimic constraint at the stiffness limit of the time step, fingers and
    plate rang at ~24 Hz, contact dropped for a step at a time and the plate
    crept 4 mm down the fingers during the lift.
    """
    assert cell.transfer("hotel1.slot1", "conveyor.in", "plate1").ok
    move = cell.conveyor.planner.to_station("conveyor.out", cell.belt.state().presence)
    start = cell.belt.state().position
    code, msg, end = cell.conveyor.run(move, lambda: False, lambda *_: None)
    assert code == "NONE", msg
    cell.inventory.advance_belt(cell.stations, end - start)
    lw = next(lw for lw in cell.sim._labware if lw.item_id == "plate1")
    cell.sim.data.qpos[lw.qpos_adr] -= 0.0049
    cell.sim.advance(0.3)

    samples: list[tuple[bool, float]] = []  # (holding, plate z below the tcp) every 10 ms of lift and carry
    real_step = cell.arm.step

    def step(seconds: float = 0.01) -> None:
        real_step(seconds)
        if cell.phases and cell.phases[-1] in ("lift", "carry"):
            g = cell.sim.gripper_status()
            plate_z = cell.sim.labware_status(["plate1"])[0].position[2]
            samples.append((g.holding, g.tcp_position[2] - plate_z))

    cell.ctl._sleep = lambda: step(0.01)
    out = cell.transfer("conveyor.out", "reader1.nest", "plate1")
    assert out.ok, out.message
    assert len(samples) > 300
    lost = sum(1 for holding, _ in samples if not holding)
    assert lost <= len(samples) // 100, f"contact lost in {lost} of {len(samples)} samples"
    depth = [d for _, d in samples]
    creep_mm = 1000 * (max(depth) - min(depth))
    assert creep_mm < 2.0, f"the plate moved {creep_mm:.1f} mm along the fingers"


def test_a_goal_waits_for_its_command_channel_to_connect_and_names_it_when_it_never_does(cell):
    """A command sent before the receiver matched the publisher is lost: goals wait (bounded) instead."""
    from dataclasses import replace

    calls = {"n": 0}

    def late() -> str:  # the simulation discovers the arm's publishers only after a while
        calls["n"] += 1
        return "nothing subscribes sim/arm/joint_trajectory yet" if calls["n"] < 20 else ""

    cell.arm.unconnected = late
    out = cell.transfer("hotel1.slot1", "deck.1", "plate1")
    assert out.ok, out.message
    assert calls["n"] >= 20

    cell.arm.unconnected = lambda: "nothing subscribes sim/arm/joint_trajectory yet"
    cell.ctl.tol = replace(cell.ctl.tol, connect_s=0.3)
    q0 = cell.arm.joint_state()[0]
    out = cell.transfer("deck.1", "hotel1.slot1", "plate1")
    assert out.code == "BACKEND_FAILURE"
    assert "nothing subscribes sim/arm/joint_trajectory yet" in out.message
    assert np.allclose(cell.arm.joint_state()[0], q0, atol=1e-3)  # nothing moved
    assert cell.inventory.get("plate1").location == "deck.1"
