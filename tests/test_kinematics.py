"""Arm kinematics from the URDF: FK against MuJoCo's model of the same URDF, Jacobian, IK."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autolab.devices.errors import NoIKSolution, RobotModelError
from autolab.devices.ik import IKSolver
from autolab.devices.kinematics import KinematicChain, RobotModel, rotation_vector, transform
from autolab.devices.planner import ArmModel, tool_down
from autolab.model.errors import UrdfError
from autolab.model.urdf import parse_urdf
from autolab.model.workcell import load_workcell

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def workcell():
    return load_workcell()


@pytest.fixture(scope="module")
def arm(workcell) -> ArmModel:
    return ArmModel(workcell)


def robot_model(text: str) -> RobotModel:
    return RobotModel.from_urdf(parse_urdf(text))


def random_configs(chain: KinematicChain, n: int, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    lo = np.maximum(chain.lower, -math.pi)
    hi = np.minimum(chain.upper, math.pi)
    return [rng.uniform(lo, hi) for _ in range(n)]


def test_fk_agrees_with_the_simulators_model_of_the_same_urdf(workcell, arm):
    import mujoco

    from autolab.sim.engine import CellSim

    sim = CellSim(workcell)
    for q in random_configs(arm.chain, 20):
        sim.data.qpos[sim._arm_qadr] = q
        mujoco.mj_forward(sim.model, sim.data)
        pos, quat = sim.tcp_pose()
        T = arm.chain.fk(q)
        assert np.allclose(T[:3, 3], pos, atol=1e-6)
        R = np.zeros(9)
        mujoco.mju_quat2Mat(R, quat)
        assert np.allclose(T[:3, :3], R.reshape(3, 3), atol=1e-6)


def test_kinematic_and_mujoco_models_agree_on_limits_axes_mimic_and_every_link_pose(workcell, arm):
    """Both are built from the one parsed URDF; this guards the two builders against drifting apart."""
    import mujoco

    from autolab.sim.world import build_world

    m = build_world(workcell).model
    d = mujoco.MjData(m)
    chain, robot = arm.chain, arm.robot
    for j in chain.active:
        jid = m.joint(j.name).id
        assert tuple(m.jnt_range[jid]) == pytest.approx((j.lower, j.upper)), j.name
        assert np.allclose(m.jnt_axis[jid], j.axis), j.name
    for name in arm.finger_joints:
        j, jid = robot.joints[name], m.joint(name).id
        assert tuple(m.jnt_range[jid]) == pytest.approx((j.lower, j.upper)), name
        assert np.allclose(m.jnt_axis[jid], j.axis), name
    mimics = [j for j in robot.joints.values() if j.mimic is not None]
    assert mimics, "the arm's gripper has a mimic finger"
    for j in mimics:
        eq = m.equality(f"mimic/{j.name}")
        assert (m.joint(eq.obj1id[0]).name, m.joint(eq.obj2id[0]).name) == (j.name, j.mimic.joint)
        assert tuple(eq.data[:2]) == pytest.approx((j.mimic.offset, j.mimic.multiplier))
    for q, opening in zip(random_configs(chain, 4, seed=7), (0.0, 0.03, 0.07, 0.11), strict=True):
        extra = {arm.finger_joints[0]: opening / 2}  # the other finger follows through its mimic
        for k, name in enumerate(chain.joint_names):
            d.qpos[m.jnt_qposadr[m.joint(name).id]] = q[k]
        for name in arm.finger_joints:
            d.qpos[m.jnt_qposadr[m.joint(name).id]] = robot.joints[name].value(extra)
        mujoco.mj_kinematics(m, d)
        tcp = chain.fk(q)
        assert np.allclose(tcp[:3, 3], d.site("tcp").xpos, atol=1e-6)
        assert np.allclose(tcp[:3, :3], d.site("tcp").xmat.reshape(3, 3), atol=1e-6)
        for link, T in chain.link_frames(q, extra).items():
            assert np.allclose(T[:3, 3], d.body(link).xpos, atol=1e-6), link
            assert np.allclose(T[:3, :3], d.body(link).xmat.reshape(3, 3), atol=1e-6), link


def test_named_poses_point_the_tool_straight_down(arm):
    for name in ("home", "travel"):
        T = arm.chain.fk(arm.named_poses[name])
        assert T[2, 2] == pytest.approx(-1.0, abs=1e-3), name


def test_jacobian_matches_finite_differences(arm):
    eps = 1e-6
    for q in random_configs(arm.chain, 5, seed=2):
        T, J = arm.chain.jacobian(q)
        for k in range(arm.chain.dof):
            dq = np.zeros(arm.chain.dof)
            dq[k] = eps
            T2 = arm.chain.fk(q + dq)
            lin = (T2[:3, 3] - T[:3, 3]) / eps
            ang = rotation_vector(T2[:3, :3] @ T[:3, :3].T) / eps
            assert np.allclose(J[:3, k], lin, atol=1e-4)
            assert np.allclose(J[3:, k], ang, atol=1e-4)


def test_ik_reaches_every_location_of_the_cell_within_limits(workcell, arm):
    ik = IKSolver(arm.chain)
    home = arm.named_poses["home"]
    for loc in workcell.locations.values():
        p = loc.pose
        target = tool_down(p.x, p.y, p.z + 0.009, p.yaw)
        q = ik.solve(target, home)
        assert arm.chain.within_limits(q)
        T = arm.chain.fk(q)
        assert np.linalg.norm(T[:3, 3] - target[:3, 3]) < 2e-4, loc.id
        assert np.linalg.norm(rotation_vector(target[:3, :3] @ T[:3, :3].T)) < 2e-3, loc.id


def test_ik_round_trips_random_reachable_poses(arm):
    ik = IKSolver(arm.chain)
    seed = arm.named_poses["travel"]
    for q in random_configs(arm.chain, 10, seed=3):
        target = arm.chain.fk(q)
        sol = ik.solve(target, seed)
        assert np.allclose(arm.chain.fk(sol)[:3, 3], target[:3, 3], atol=2e-4)


def test_ik_prefers_the_solution_nearest_the_current_configuration(arm):
    ik = IKSolver(arm.chain)
    q = arm.named_poses["travel"]
    target = arm.chain.fk(q)
    target[0, 3] += 0.02  # a small step must not swing the arm into another configuration
    sol = ik.solve(target, q)
    assert np.max(np.abs(sol - q)) < 0.2


def test_out_of_reach_pose_raises_no_ik_solution_naming_the_position(arm):
    ik = IKSolver(arm.chain, random_seeds=4)
    with pytest.raises(NoIKSolution, match=r"\(2\.000, 0\.000, 0\.300\)"):
        ik.solve(tool_down(2.0, 0.0, 0.3, 0.0), arm.named_poses["home"])


def test_straight_tool_path_is_solved_without_configuration_flips(workcell, arm):
    ik = IKSolver(arm.chain)
    loc = workcell.locations["reader1.nest"].pose
    top = ik.solve(tool_down(loc.x, loc.y, 0.35, loc.yaw), arm.named_poses["home"])
    poses = [tool_down(loc.x, loc.y, z, loc.yaw) for z in np.linspace(0.35, loc.z + 0.009, 60)]
    path = ik.solve_path(poses, top)
    steps = np.max(np.abs(np.diff(np.array([top, *path]), axis=0)), axis=1)
    assert np.max(steps) < 0.05
    for q, T in zip(path, poses, strict=True):
        assert np.linalg.norm(arm.chain.fk(q)[:3, 3] - T[:3, 3]) < 2e-4


def test_urdf_without_joint_limits_is_refused_naming_the_joint():
    bad = """<robot name="r"><link name="a"/><link name="b"/>
      <joint name="j1" type="revolute"><parent link="a"/><child link="b"/><axis xyz="0 0 1"/></joint></robot>"""
    with pytest.raises(UrdfError, match="joint 'j1'.*limit"):
        robot_model(bad)


def test_chain_between_links_on_different_branches_is_refused():
    urdf = """<robot name="r"><link name="a"/><link name="b"/><link name="c"/>
      <joint name="j1" type="fixed"><parent link="a"/><child link="b"/></joint>
      <joint name="j2" type="fixed"><parent link="a"/><child link="c"/></joint></robot>"""
    with pytest.raises(RobotModelError, match="no kinematic chain from 'b' to 'c'"):
        KinematicChain(robot_model(urdf), "b", "c")


def test_prismatic_and_base_pose_are_applied():
    urdf = """<robot name="r"><link name="a"/><link name="b"/>
      <joint name="slide" type="prismatic"><parent link="a"/><child link="b"/><origin xyz="0 0 0.5"/>
      <axis xyz="1 0 0"/><limit lower="-1" upper="1" velocity="1" effort="1"/></joint></robot>"""
    chain = KinematicChain(robot_model(urdf), "a", "b", transform((1.0, 2.0, 0.0), (0, 0, math.pi / 2)))
    T = chain.fk(np.array([0.3]))
    assert np.allclose(T[:3, 3], [1.0, 2.3, 0.5])
