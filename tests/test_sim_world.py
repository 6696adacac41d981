"""The MuJoCo world generated from the description, and its physics, driven directly (no ROS)."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import mujoco
import numpy as np
import pytest

from autolab.model.workcell import load_workcell
from autolab.sim.engine import CellSim, grasp_orientation, solve_tcp_ik
from autolab.sim.errors import MotionRefused, SpawnError, TrajectoryError
from autolab.sim.trajectory import TrajectoryPlayer, TrajectoryPoint
from autolab.sim.world import ARM, SimOptions, build_world

P96 = "corning_96_wellplate_360ul_flat"


@pytest.fixture(scope="module")
def wc():
    return load_workcell()


@pytest.fixture(scope="module")
def world(wc):
    return build_world(wc)


@pytest.fixture
def sim(wc, world):
    return CellSim(wc, world=world)


def _tcp_frame_offset(sim: CellSim, item: str) -> np.ndarray:
    """The labware origin in the TCP frame: constant while it is held without slip."""
    g = sim.gripper_status()
    s = sim.labware_status([item])[0]
    rot = np.zeros(9)
    mujoco.mju_quat2Mat(rot, np.array(g.tcp_quat_wxyz))
    return rot.reshape(3, 3).T @ (np.array(s.position) - np.array(g.tcp_position))


def _move(sim: CellSim, q, duration: float, settle: float = 0.2) -> None:
    sim.follow_trajectory(list(sim.arm_joints), [TrajectoryPoint(duration, list(q), [0.0] * 6)])
    sim.advance(duration + settle)


def _straight_line(sim, start, end, quat, seed, n=6):
    """Joint waypoints along a straight TCP line (approach and retreat must not dip)."""
    qs, q = [], seed
    for k in range(1, n + 1):
        p = np.asarray(start) + (np.asarray(end) - np.asarray(start)) * k / n
        q = solve_tcp_ik(sim, p, quat, seed=q)
        qs.append(q)
    return qs


def _follow_line(sim, qs, duration):
    pts = [TrajectoryPoint(duration * (k + 1) / len(qs), list(q)) for k, q in enumerate(qs)]
    sim.follow_trajectory(list(sim.arm_joints), pts)
    sim.advance(duration + 0.2)


# --- the generated model ------------------------------------------------------------------------------


def test_generated_model_uses_elliptic_cones_and_never_welds_labware(world, wc):
    root = ET.fromstring(world.xml)
    opt = root.find("option")
    assert opt.get("cone") == "elliptic" and float(opt.get("impratio")) == pytest.approx(10)
    assert root.find("equality").findall("weld") == []
    for item in wc.inventory:
        body = root.find(f".//body[@name='labware/{item.id}']")
        assert body is not None and body.find("freejoint") is not None
        assert body.get("mocap") is None
    assert root.find("visual/quality").get("shadowsize") == "0"
    assert root.find(".//camera[@name='camera1']") is not None


def test_every_seating_location_has_locating_guides_and_the_belt_has_driven_rollers(world, wc):
    m = world.model
    names = [m.geom(i).name for i in range(m.ngeom)]
    for loc in wc.locations.values():
        guides = [n for n in names if n.startswith(f"nest/{loc.id}/")]
        assert len(guides) == (0 if loc.kind == "conveyor_station" else 8), loc.id
    assert len(world.rollers) >= 20
    for r in world.rollers:
        assert m.actuator(r).trntype == mujoco.mjtTrn.mjTRN_JOINT


def test_arm_links_do_not_collide_with_each_other_but_fingers_touch_labware(world, wc):
    m = world.model
    arm_bodies = {m.body(link).id for link in world.robot.links}
    arm_geoms = [g for g in range(m.ngeom) if m.geom_bodyid[g] in arm_bodies]
    assert arm_geoms
    for g in arm_geoms:
        assert m.geom_contype[g] == ARM and not m.geom_conaffinity[g] & ARM
    finger = m.geom("finger_left/0").id
    plate = m.geom("labware/plate1").id
    assert m.geom_contype[finger] & m.geom_conaffinity[plate] or m.geom_contype[plate] & m.geom_conaffinity[finger]
    assert m.body_mass[m.body("labware/plate1").id] == pytest.approx(0.080)


def test_arm_joints_in_the_model_match_the_urdf_limits(world, wc):
    m = world.model
    for name in wc.arm.arm_joints:
        lo, hi = wc.arm.joint_limits[name]
        assert tuple(m.jnt_range[m.joint(name).id]) == pytest.approx((lo, hi))


# --- physics -------------------------------------------------------------------------------------------


def test_initial_inventory_sits_at_its_locations(sim, wc):
    sim.advance(1.0)
    at = {s.id: s.location for s in sim.labware_status()}
    assert at == {i.id: i.location for i in wc.inventory}


def test_a_plate_set_on_any_seating_location_stays_within_a_millimetre(wc):
    sim = CellSim(wc, SimOptions(spares_per_type=11))
    occupied = {i.location for i in wc.inventory}
    placed = {}
    for loc in wc.locations.values():
        if loc.id not in occupied and P96 in loc.accepts:
            placed[sim.spawn(f"p_{loc.id}", P96, loc.id).id] = loc
    sim.advance(1.5)
    for s in sim.labware_status(list(placed)):
        loc = placed[s.id]
        drift = math.dist(s.position, (loc.pose.x, loc.pose.y, loc.pose.z))
        assert drift < 0.001, f"{s.id} drifted {drift * 1e3:.2f} mm at {loc.id}"
        assert s.location == loc.id


def test_closed_gripper_lifts_and_carries_a_plate_fast_without_slip(sim, wc):
    slot, dest = wc.location("hotel1.slot1"), wc.location("deck.1")
    grasp_z = wc.labware_types[P96].grasp_height_mm / 1000
    q_slot = grasp_orientation(slot.pose.yaw)
    above = [slot.pose.x, slot.pose.y, slot.pose.z + grasp_z + 0.12]
    at = [slot.pose.x, slot.pose.y, slot.pose.z + grasp_z]
    q_above = solve_tcp_ik(sim, above, q_slot, seed=wc.arm.named_poses["home"])
    _move(sim, q_above, 1.5)
    _follow_line(sim, _straight_line(sim, above, at, q_slot, q_above), 0.8)
    sim.set_gripper(0.0)
    sim.advance(0.6)
    g = sim.gripper_status()
    assert g.holding and g.held_labware == "plate1" and g.closed
    assert g.opening_m == pytest.approx(wc.labware_types[P96].width_mm / 1000, abs=0.001)

    high = [slot.pose.x, slot.pose.y, 0.35]
    _follow_line(sim, _straight_line(sim, at, high, q_slot, solve_tcp_ik(sim, at, q_slot, seed=q_above)), 0.6)
    assert sim.labware_status(["plate1"])[0].position[2] > 0.3
    # Fast carry: 0.6 m sweep with a quarter turn of the wrist in 0.8 s.
    q_dest_high = solve_tcp_ik(
        sim, [dest.pose.x, dest.pose.y, 0.35], grasp_orientation(dest.pose.yaw), seed=sim.joint_state().positions[:6]
    )
    before = _tcp_frame_offset(sim, "plate1")
    sim.follow_trajectory(list(sim.arm_joints), [TrajectoryPoint(0.8, list(q_dest_high), [0.0] * 6)])
    worst = 0.0
    for _ in range(50):
        sim.advance(0.02)
        worst = max(worst, float(np.linalg.norm(_tcp_frame_offset(sim, "plate1") - before)))
    after = _tcp_frame_offset(sim, "plate1")
    assert sim.gripper_status().holding
    assert np.linalg.norm(after - before) < 0.001, f"plate slipped {np.linalg.norm(after - before) * 1e3:.2f} mm"
    assert worst < 0.004, f"plate swung {worst * 1e3:.2f} mm in the grasp"

    # Put it down at the destination: it seats there.
    d_high, d_at = [dest.pose.x, dest.pose.y, 0.35], [dest.pose.x, dest.pose.y, dest.pose.z + grasp_z + 0.001]
    q_dest = grasp_orientation(dest.pose.yaw)
    _follow_line(sim, _straight_line(sim, d_high, d_at, q_dest, q_dest_high, n=8), 1.0)
    sim.set_gripper(wc.arm.max_opening_m)
    sim.advance(0.6)
    assert not sim.gripper_status().holding
    assert sim.labware_status(["plate1"])[0].location == "deck.1"


def test_belt_carries_a_plate_from_conveyor_in_to_conveyor_out_and_stops_at_the_target(sim, wc):
    sim.spawn("belt_plate", P96, "conveyor.in", barcode="BELT-1")
    sim.advance(0.3)
    st = sim.conveyor_status()
    assert st.presence == (True, False) and not st.moving
    distance = wc.location("conveyor.in").pose.distance(wc.location("conveyor.out").pose)
    sim.conveyor_command(distance, 0.2)
    sim.advance(0.5)
    assert sim.conveyor_status().moving
    for _ in range(60):
        sim.advance(0.1)
        if not sim.conveyor_status().moving:
            break
    st = sim.conveyor_status()
    assert not st.moving and st.position_m == pytest.approx(distance, abs=0.001)
    assert st.presence == (False, True)
    out = wc.location("conveyor.out").pose
    pos = sim.labware_status(["belt_plate"])[0].position
    assert math.hypot(pos[0] - out.x, pos[1] - out.y) < 0.01, "the plate rides the rollers (slip under 1 cm)"


def test_safety_stop_freezes_the_arm_and_the_belt_within_a_control_cycle(sim, wc):
    q0 = np.array(sim.joint_state().positions[:6])
    target = q0 + np.array([0.6, 0.0, 0.0, 0.0, 0.0, 0.0])
    sim.follow_trajectory(list(sim.arm_joints), [TrajectoryPoint(1.0, list(target), [0.0] * 6)])
    sim.spawn("stop_plate", P96, "conveyor.in")
    sim.conveyor_command(0.6, 0.2)
    sim.advance(0.4)
    assert abs(sim.joint_state().velocities[0]) > 0.3
    sim.set_motion_allowed(False)
    frozen_at = np.array(sim.joint_state().positions[:6])
    sim.step(1)
    assert not sim.trajectory_active
    sim.advance(0.5)
    drift = np.abs(np.array(sim.joint_state().positions[:6]) - frozen_at).max()
    assert drift < 0.05, f"arm moved {drift:.3f} rad after the stop"
    assert abs(sim.joint_state().velocities[0]) < 0.01
    belt = sim.conveyor_status().position_m
    sim.advance(0.5)
    assert sim.conveyor_status().position_m == pytest.approx(belt, abs=0.001)
    with pytest.raises(MotionRefused):
        sim.follow_trajectory(list(sim.arm_joints), [TrajectoryPoint(1.0, list(target))])
    with pytest.raises(MotionRefused):
        sim.conveyor_command(0.6, 0.2)
    sim.set_motion_allowed(True)
    sim.follow_trajectory(list(sim.arm_joints), [TrajectoryPoint(0.5, list(target), [0.0] * 6)])
    sim.advance(0.8)
    assert np.abs(np.array(sim.joint_state().positions[:6]) - target).max() < 0.01


def test_empty_trajectory_stops_the_arm_and_holds_it(sim):
    q0 = np.array(sim.joint_state().positions[:6])
    sim.follow_trajectory(list(sim.arm_joints), [TrajectoryPoint(2.0, list(q0 + 0.5))])
    sim.advance(0.5)
    sim.follow_trajectory(list(sim.arm_joints), [])
    held = np.array(sim.joint_state().positions[:6])
    sim.advance(0.5)
    assert np.abs(np.array(sim.joint_state().positions[:6]) - held).max() < 0.02


def test_trajectory_tracks_its_reference_closely(sim):
    q0 = np.array(sim.joint_state().positions[:6])
    target = q0 + np.array([0.4, -0.2, 0.3, 0.2, -0.3, 0.5])
    sim.follow_trajectory(list(sim.arm_joints), [TrajectoryPoint(1.0, list(target), [0.0] * 6)])
    player = TrajectoryPlayer(
        sim.arm_joints, [TrajectoryPoint(1.0, list(target), [0.0] * 6)], sim.time, q0, np.zeros(6)
    )
    worst = 0.0
    for _ in range(12):
        sim.advance(0.1)
        ref, _ = player.sample(sim.time)
        worst = max(worst, float(np.abs(np.array(sim.joint_state().positions[:6]) - ref).max()))
    assert worst < 0.02, f"tracking error {worst:.4f} rad"


def test_spawn_refuses_occupied_unknown_and_unaccepting_locations(sim):
    with pytest.raises(SpawnError, match="occupied by plate1"):
        sim.spawn("x1", P96, "hotel1.slot1")
    with pytest.raises(SpawnError, match="unknown location"):
        sim.spawn("x1", P96, "hotel7.slot1")
    with pytest.raises(SpawnError, match="unknown labware type"):
        sim.spawn("x1", "petri_dish", "deck.1")
    with pytest.raises(SpawnError, match="does not accept"):
        sim.spawn("x1", "nest_12_reservoir_15ml", "reader1.nest")
    with pytest.raises(SpawnError, match="already in the simulation"):
        sim.spawn("plate1", P96, "deck.1")


def test_spares_run_out_with_a_clear_message_and_reset_brings_back_the_initial_world(sim, wc):
    sim.spawn("s1", P96, "deck.1")
    sim.spawn("s2", P96, "deck.2")
    with pytest.raises(SpawnError, match="no spare"):
        sim.spawn("s3", P96, "hotel1.slot3")
    t = sim.time
    sim.set_gripper(0.02)
    sim.advance(0.2)
    sim.reset()
    assert sim.time >= t, "the clock never runs backwards"
    assert {s.id for s in sim.labware_status()} == {i.id for i in wc.inventory}
    assert sim.joint_state().positions[:6] == pytest.approx(wc.arm.named_poses["home"], abs=1e-9)
    assert sim.gripper_status().commanded_opening_m == pytest.approx(wc.arm.max_opening_m)
    sim.spawn("s3", P96, "hotel1.slot3")


def test_named_poses_keep_the_tcp_above_the_safe_height(wc, sim):
    for name in ("home", "travel"):
        d = mujoco.MjData(sim.model)
        d.qpos[sim._arm_qadr] = wc.arm.named_poses[name]
        mujoco.mj_kinematics(sim.model, d)
        assert d.site("tcp").xpos[2] >= wc.arm.safe_height_m, name


def test_every_location_is_reachable_from_above_with_the_gripper_pointing_down(sim, wc):
    grasp = min(t.grasp_height_mm for t in wc.labware_types.values()) / 1000
    for loc in wc.locations.values():
        quat = grasp_orientation(loc.pose.yaw)
        for dz in (grasp, grasp + loc.approach[2]):
            solve_tcp_ik(sim, [loc.pose.x, loc.pose.y, loc.pose.z + dz], quat, seed=wc.arm.named_poses["travel"])


# --- trajectory interpolation ---------------------------------------------------------------------------


def test_trajectory_interpolation_passes_through_its_points_in_every_mode():
    pts_linear = [TrajectoryPoint(1.0, [1.0]), TrajectoryPoint(2.0, [3.0])]
    lin = TrajectoryPlayer(["j"], pts_linear, start_time=10.0, start_positions=[0.0])
    assert lin.mode == "linear"
    assert lin.sample(10.5)[0][0] == pytest.approx(0.5)
    assert lin.sample(11.5)[0][0] == pytest.approx(2.0) and lin.sample(11.5)[1][0] == pytest.approx(2.0)
    cub = TrajectoryPlayer(["j"], [TrajectoryPoint(1.0, [1.0], [0.0])], 0.0, [0.0], [0.0])
    assert cub.mode == "cubic"
    assert cub.sample(0.5)[0][0] == pytest.approx(0.5) and cub.sample(1.0)[1][0] == pytest.approx(0.0)
    assert cub.sample(0.5)[1][0] == pytest.approx(1.5)  # peak velocity of a rest-to-rest cubic
    qui = TrajectoryPlayer(["j"], [TrajectoryPoint(1.0, [1.0], [0.0], [0.0])], 0.0, [0.0], [0.0])
    assert qui.mode == "quintic"
    assert qui.sample(0.5)[0][0] == pytest.approx(0.5) and qui.sample(0.5)[1][0] == pytest.approx(1.875)
    assert qui.sample(5.0)[0][0] == pytest.approx(1.0) and qui.finished(5.0)


def test_bad_trajectories_are_refused_with_the_reason(sim):
    with pytest.raises(TrajectoryError, match="increase strictly"):
        TrajectoryPlayer(["j"], [TrajectoryPoint(1.0, [1.0]), TrajectoryPoint(1.0, [2.0])], 0.0, [0.0])
    with pytest.raises(TrajectoryError, match="1 positions for 2 joints"):
        TrajectoryPlayer(["a", "b"], [TrajectoryPoint(1.0, [1.0])], 0.0, [0.0, 0.0])
    with pytest.raises(TrajectoryError, match="unknown arm joints"):
        sim.follow_trajectory(["elbow"], [TrajectoryPoint(1.0, [1.0])])
    with pytest.raises(TrajectoryError, match="outside its limits"):
        sim.follow_trajectory(["elbow_joint"], [TrajectoryPoint(1.0, [4.0])])


def test_generated_model_can_be_written_out_and_loaded_from_files(tmp_path):
    from autolab.sim.world import main

    assert main([str(tmp_path)]) == 0
    model = mujoco.MjModel.from_xml_path(str(tmp_path / "workcell.xml"))
    assert model.body("labware/plate1").id > 0 and model.ntex >= 3
