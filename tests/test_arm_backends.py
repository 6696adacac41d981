"""Arm backends: the trajectory message both backends send, and ros2_control where control_msgs exists."""

from __future__ import annotations

import numpy as np
import pytest

from autolab.devices.limits import JointLimits
from autolab.devices.trajectory import time_path
from autolab.nodes.arm import trajectory_msg

pytestmark = pytest.mark.timeout(60)


def sample_trajectory():
    lim = JointLimits(("j1", "j2"), np.full(2, -3.0), np.full(2, 3.0), np.array([1.0, 1.0]), np.array([2.0, 2.0]))
    return time_path([np.zeros(2), np.array([1.0, -0.5])], lim, dt=0.05)


def test_trajectory_message_starts_on_receipt_and_carries_positions_velocities_accelerations():
    traj = sample_trajectory()
    msg = trajectory_msg(traj)
    assert msg.header.stamp.sec == 0 and msg.header.stamp.nanosec == 0  # zero stamp: start on receipt
    assert list(msg.joint_names) == ["j1", "j2"] and len(msg.points) == len(traj.times)
    times = [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in msg.points]
    assert np.allclose(times, traj.times, atol=1e-9) and all(b > a for a, b in zip(times, times[1:], strict=False))
    last = msg.points[-1]
    assert np.allclose(last.positions, [1.0, -0.5]) and np.allclose(last.velocities, 0.0)
    assert all(len(p.accelerations) == 2 for p in msg.points)


def test_ros2_control_goal_wraps_the_same_trajectory():
    pytest.importorskip("control_msgs", reason="control_msgs is not installed here (ROS 2 wheels lack it)")
    from control_msgs.action import FollowJointTrajectory

    goal = FollowJointTrajectory.Goal()
    goal.trajectory = trajectory_msg(sample_trajectory())
    assert list(goal.trajectory.joint_names) == ["j1", "j2"]


@pytest.mark.ros
def test_ros2_control_backend_without_control_msgs_refuses_to_start_naming_the_package(start_node):
    try:
        import control_msgs  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("control_msgs is installed: the backend would start")
    node = start_node("autolab.nodes.arm", ros_args=["-p", "backend:=ros2_control"])
    node.proc.wait(timeout=60)
    assert node.proc.returncode == 1
    assert "control_msgs" in node.output() and "backend:=sim" in node.output()


@pytest.mark.ros
def test_bad_parameters_refuse_to_start_with_a_sentence(start_node):
    node = start_node("autolab.nodes.arm", ros_args=["-p", "velocity_scale:=1.5"])
    node.proc.wait(timeout=60)
    assert node.proc.returncode == 1 and "parameter 'velocity_scale' must be in (0, 1]" in node.output()
    node = start_node("autolab.nodes.conveyor", ros_args=["-p", "backend:=serial"])
    node.proc.wait(timeout=60)
    assert node.proc.returncode == 1 and "needs parameter 'port'" in node.output()
