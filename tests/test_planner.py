"""Trajectories within limits, collision checking and routing, and whole transfer plans (no ROS)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from autolab.devices.collision import Box, densify, obb_overlap
from autolab.devices.errors import CollisionError, InvalidGoal, NoIKSolution, OutOfLimits, UnknownPose
from autolab.devices.kinematics import transform
from autolab.devices.limits import JointLimits
from autolab.devices.planner import ArmModel, LabwareShape, MotionPlanner, held_box
from autolab.devices.trajectory import stopping_trajectory, time_path
from autolab.model.geometry import Pose
from autolab.model.workcell import load_workcell

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def workcell():
    return load_workcell()


@pytest.fixture(scope="module")
def arm(workcell) -> ArmModel:
    return ArmModel(workcell)


@pytest.fixture
def planner(arm) -> MotionPlanner:
    return MotionPlanner(arm)


@pytest.fixture(scope="module")
def plate(workcell) -> LabwareShape:
    return LabwareShape.of(workcell.labware_types["corning_96_wellplate_360ul_flat"])


def limits3() -> JointLimits:
    return JointLimits(("a", "b", "c"), np.full(3, -10.0), np.full(3, 10.0), np.array([1.0, 2.0, 0.5]),
                       np.array([2.0, 1.0, 4.0]))


def assert_within_limits(traj, limits: JointLimits, slack: float = 1.05) -> None:
    """Velocities from differentiating the positions; accelerations from differentiating the velocities."""
    t, q = traj.times, traj.positions
    v = np.diff(q, axis=0) / np.diff(t)[:, None]
    assert np.all(np.abs(v) <= limits.velocity * slack)
    assert np.all(np.abs(traj.velocities) <= limits.velocity * slack)
    # The velocities sent are consistent with the positions sent (mid-interval finite differences).
    assert np.allclose(v, (traj.velocities[1:] + traj.velocities[:-1]) / 2, atol=0.05 * limits.velocity.max())
    a = np.diff(traj.velocities, axis=0) / np.diff(t)[:, None]
    assert np.all(np.abs(a) <= limits.acceleration * slack + 1e-6)


def test_joint_move_respects_velocity_and_acceleration_limits_and_joints_stop_together():
    lim = limits3()
    traj = time_path([np.zeros(3), np.array([2.0, -1.0, 0.7])], lim, dt=0.005)
    assert_within_limits(traj, lim)
    assert np.allclose(traj.end, [2.0, -1.0, 0.7]) and np.allclose(traj.velocities[[0, -1]], 0.0)
    # Synchronised: every joint is still moving at the midpoint, and all arrive at the same last sample.
    mid = len(traj.times) // 2
    assert np.all(np.abs(traj.velocities[mid]) > 0)
    # The slowest joint sets the pace: joint c (0.7 rad at 0.5 rad/s) needs at least 1.4 s.
    assert traj.duration >= 1.4


def test_scaled_limits_slow_the_move_and_bad_scales_are_refused():
    lim = limits3()
    fast = time_path([np.zeros(3), np.ones(3)], lim)
    slow = time_path([np.zeros(3), np.ones(3)], lim.scaled(0.5, 0.5))
    assert slow.duration > 1.5 * fast.duration
    with pytest.raises(InvalidGoal, match="velocity_scale"):
        lim.scaled(1.5)


def test_polyline_path_is_timed_within_limits():
    lim = limits3()
    path = [np.array([np.sin(s), s, 0.3 * s]) for s in np.linspace(0, 1.5, 40)]
    traj = time_path(path, lim, dt=0.005)
    assert_within_limits(traj, lim)
    assert np.allclose(traj.end, path[-1])


def test_stopping_trajectory_decelerates_to_rest_within_the_acceleration_limits():
    lim = limits3()
    v = np.array([0.8, -0.9, 0.4])
    stop = stopping_trajectory(np.zeros(3), v, lim, dt=0.005)
    assert np.allclose(stop.velocities[-1], 0.0)
    assert np.all(np.abs(np.diff(stop.velocities, axis=0) / np.diff(stop.times)[:, None]) <= lim.acceleration + 1e-9)
    # As short as the most constrained joint allows: b needs 0.9 s at 1 rad/s^2.
    assert stop.duration == pytest.approx(0.9, abs=1e-6)


def test_obb_overlap_agrees_with_point_sampling():
    rng = np.random.default_rng(5)
    disagreements = 0
    for _ in range(300):
        ha, hb = rng.uniform(0.05, 0.3, 3), rng.uniform(0.05, 0.3, 3)
        Ta = transform(rng.uniform(-0.2, 0.2, 3), rng.uniform(-3, 3, 3))
        Tb = transform(rng.uniform(-0.5, 0.5, 3), rng.uniform(-3, 3, 3))
        hit = obb_overlap(Ta[None, :3, 3], Ta[None, :3, :3], ha[None], Tb[None, :3, 3], Tb[None, :3, :3], hb[None])[0]
        # Sample points of B; any inside A proves overlap (sampling can miss thin overlaps, never invent one).
        pts = rng.uniform(-1, 1, (4000, 3)) * hb
        world = pts @ Tb[:3, :3].T + Tb[:3, 3]
        local = (world - Ta[:3, 3]) @ Ta[:3, :3]
        sampled = bool(np.any(np.all(np.abs(local) <= ha, axis=1)))
        assert not (sampled and not hit), "SAT missed an overlap that sampling found"
        disagreements += hit != sampled
    assert disagreements < 15  # only thin slivers escape 4000 samples


def test_named_and_joint_goals_are_validated(planner, arm):
    with pytest.raises(UnknownPose, match="known: home, travel"):
        planner.named("nowhere")
    with pytest.raises(InvalidGoal, match="expected 6 joint positions"):
        planner.joint_goal([0.0, 1.0])
    with pytest.raises(OutOfLimits, match="elbow_joint=4.0000"):
        planner.joint_goal([0.0, -1.5, 4.0, -1.5, -1.5, 0.0])
    by_name = planner.joint_goal(list(reversed(arm.named_poses["home"])), list(reversed(arm.chain.joint_names)))
    assert np.allclose(by_name, arm.named_poses["home"])


def test_joint_goal_into_the_table_is_refused_naming_the_table(planner, arm):
    # Shoulder lowered and elbow folded down: the wrist ends below the deck.
    q = np.array([0.0, 0.3, 1.2, -1.5, -1.57, 0.0])
    with pytest.raises(CollisionError, match="fixture:table"):
        planner.plan_joints(arm.named_poses["home"], q, arm.limits)


def test_cartesian_goal_inside_an_instrument_has_no_collision_free_solution(planner, arm, workcell):
    reader = workcell.devices["reader1"]
    housing = next(b for b in reader.bodies if b.name == "housing")
    c = reader.pose.compose(housing.pose)
    with pytest.raises(NoIKSolution, match="collide with the cell"):
        planner.pose_goal(transform((c.x, c.y, 0.15), (np.pi, 0, 0)), arm.named_poses["home"])


def test_blocked_direct_path_is_routed_over_the_safe_height(planner, arm, workcell):
    q0 = planner.pose_goal(transform((0.45, -0.25, 0.2), (np.pi, 0, 0)), arm.named_poses["home"])
    q1 = planner.pose_goal(transform((0.45, 0.25, 0.2), (np.pi, 0, 0)), q0)
    direct = planner.joint_path(q0, q1)
    assert len(direct) == 1  # clear: straight in joint space
    wall = Box("labware:wall", transform((0.45, 0.0, 0.12)), np.array([0.2, 0.02, 0.12]))
    planner.set_labware_obstacles([wall])
    route = planner.joint_path(q0, q1)
    assert len(route) >= 3
    top = max(arm.chain.fk(q)[2, 3] for poly in route for q in poly)
    assert top >= arm.safe_height - 1e-3
    for poly in route:
        assert arm.checker.check_path(poly, resolution=0.005, extra_obstacles=[wall]) is None


def test_path_with_no_clear_route_is_refused_with_the_contact(planner, arm):
    q0 = planner.pose_goal(transform((0.45, -0.25, 0.2), (np.pi, 0, 0)), arm.named_poses["home"])
    q1 = planner.pose_goal(transform((0.45, 0.25, 0.2), (np.pi, 0, 0)), q0)
    ceiling = Box("labware:tower", transform((0.45, 0.0, 0.4)), np.array([0.2, 0.02, 0.4]))
    planner.set_labware_obstacles([ceiling])
    with pytest.raises(CollisionError, match="labware:tower"):
        planner.joint_path(q0, q1)


def test_transfer_plan_is_collision_free_at_fine_resolution_with_and_without_the_plate(
        planner, arm, workcell, plate):
    src, dst = workcell.locations["hotel1.slot1"], workcell.locations["reader1.nest"]
    plan = planner.plan_transfer(arm.named_poses["home"], src, dst, plate, "plate1", arm.limits)
    assert [s.phase for s in plan.segments] == ["approach", "grasp", "lift", "carry", "place", "retreat"]
    held = held_box("held:plate1", plate)
    for seg in plan.segments:
        assert_within_limits(seg.trajectory, arm.limits)
        with_plate = seg.phase in ("lift", "carry", "place")
        opening = plate.width if with_plate else plan.open_width
        c = arm.checker.check_path(list(seg.trajectory.positions), held if with_plate else None, (),
                                   arm.finger_extra(opening), resolution=0.004)
        assert c is None, f"{seg.phase}: {c}"
    # The grasp ends with the TCP at the grasp height above the source, pointing down.
    T = arm.chain.fk(plan.segments[1].trajectory.end)
    assert np.allclose(T[:3, 3], [src.pose.x, src.pose.y, src.pose.z + plate.grasp_height], atol=5e-4)
    assert T[2, 2] == pytest.approx(-1.0, abs=1e-3)
    # The carry passes the safe height.
    assert max(arm.chain.fk(q)[2, 3] for q in plan.segments[3].trajectory.positions) >= arm.safe_height - 1e-3


def test_transfer_to_an_unreachable_location_is_refused_before_moving(planner, arm, workcell, plate):
    far = dataclasses.replace(workcell.locations["deck.1"], id="far.away", pose=Pose(1.6, 0.0, 0.0, 0.0))
    with pytest.raises(NoIKSolution, match="cannot reach far.away"):
        planner.plan_transfer(arm.named_poses["home"], workcell.locations["hotel1.slot1"], far, plate, "plate1",
                              arm.limits)


def test_labware_wider_than_the_gripper_is_refused(planner):
    with pytest.raises(InvalidGoal, match="does not fit the gripper"):
        planner.open_width(LabwareShape(0.13, 0.12, 0.02, 0.01))


def test_densify_bounds_the_joint_step():
    pts = densify([np.zeros(2), np.array([0.1, -0.05])], 0.01)
    assert len(pts) == 11 and np.max(np.abs(np.diff(np.array(pts), axis=0))) <= 0.01 + 1e-12


@pytest.mark.parametrize("src,dst", [
    ("sealer1.nest", "incubator1.nest"),      # the plate-preparation protocol's leg
    ("incubator1.nest", "reader1.nest"),
    ("liquid_handler1.nest", "hotel1.slot1"),
    ("barcode1.nest", "hotel1.slot1"),
])
def test_transfer_takes_an_ik_branch_whose_descent_onto_the_nest_is_clear(planner, arm, workcell, plate, src, dst):
    # The IK solution nearest the arm above these nests is an over-the-shoulder branch whose
    # straight descent hits the table; the planner must find the branch that clears it.
    plan = planner.plan_transfer(arm.named_poses["home"], workcell.locations[src], workcell.locations[dst],
                                 plate, "plate1", arm.limits)
    held = held_box("held:plate1", plate)
    for seg in plan.segments:
        with_plate = seg.phase in ("lift", "carry", "place")
        opening = plate.width if with_plate else plan.open_width
        c = arm.checker.check_path(list(seg.trajectory.positions), held if with_plate else None, (),
                                   arm.finger_extra(opening), resolution=0.004)
        assert c is None, f"{seg.phase}: {c}"
