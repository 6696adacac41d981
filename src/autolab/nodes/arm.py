"""Arm node (`arm`): MoveArm and Transfer actions over a sim or ros2_control backend.

- `~/move` (MoveArm): named pose, joint goal or Cartesian tool pose (IK);
- `~/transfer` (Transfer): approach, grasp, lift, carry, place, retreat, with
  the grasp verified from gripper sensing and the placement from ground truth;
- `~/state` (DeviceState, latched), `~/arm_state` (ArmState, latched);
- `inventory` (LabwarePoseArray, latched): the tracked location of every item,
  updated after each transfer and as conveyor belts carry items;
- `robot_description` (std_msgs/String, latched): the arm's URDF.

Parameters: `backend` (`sim` | `ros2_control`), `workcell` (path; default the
package's config/workcell.yaml), `velocity_scale`, `acceleration_scale`
(0 < s <= 1, applied to every goal), `acceleration_limit` (rad/s^2),
`controller` / `gripper_controller` (ros2_control), `require_safety`.
Everything is planned before anything moves (domain logic in
`autolab.devices.arm` / `planner`; this module is the ROS adapter).
"""

from __future__ import annotations

import math
import threading

import numpy as np
from builtin_interfaces.msg import Duration
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from autolab.devices.arm import ArmBackend, ArmController, GripperSensing, Outcome, SensedPose, Tolerances
from autolab.devices.errors import DeviceError
from autolab.devices.kinematics import matrix_of_quaternion, quaternion_of, transform
from autolab.devices.planner import ArmModel
from autolab.devices.trajectory import Trajectory
from autolab.model.errors import DescriptionError
from autolab.model.inventory import IN_GRIPPER, Inventory, TrackedItem
from autolab.model.workcell import load_workcell
from autolab.nodes.feedback import FeedbackGate
from autolab.nodes.qos import COMMAND, LATCHED
from autolab.nodes.runtime import StartupError, run_node
from autolab.nodes.safety_watch import SafetyWatch
from autolab_interfaces.action import MoveArm, Transfer
from autolab_interfaces.msg import (
    ArmState,
    ConveyorState,
    DeviceState,
    LabwarePose,
    LabwarePoseArray,
    LabwareRef,
)

#: Samples (joint states, gripper sensing, ground truth): accept reliable or best-effort publishers.
SAMPLES = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT)


def trajectory_msg(traj: Trajectory) -> JointTrajectory:
    """A JointTrajectory starting on receipt (zero stamp), as controllers and the sim expect."""
    msg = JointTrajectory()
    msg.joint_names = list(traj.joint_names)
    for t, q, v, a in zip(traj.times, traj.positions, traj.velocities, traj.accelerations, strict=True):
        sec = int(math.floor(t))
        msg.points.append(JointTrajectoryPoint(
            positions=[float(x) for x in q], velocities=[float(x) for x in v],
            accelerations=[float(x) for x in a],
            time_from_start=Duration(sec=sec, nanosec=int(round((t - sec) * 1e9)) % 1_000_000_000)))
    return msg


class JointStateCache:
    """Latest arm and finger joint states from /joint_states, and the time they carry."""

    def __init__(self, node: Node, arm_joints: tuple[str, ...], finger_joints: tuple[str, ...]) -> None:
        self._arm = arm_joints
        self._fingers = finger_joints
        self._lock = threading.Lock()
        self.q: np.ndarray | None = None
        self.v: np.ndarray | None = None
        self.fingers: list[float] = []
        self.stamp = 0.0
        node.create_subscription(JointState, "joint_states", self._on_msg, SAMPLES)

    def _on_msg(self, msg: JointState) -> None:
        idx = {n: i for i, n in enumerate(msg.name)}
        if not all(n in idx for n in self._arm):
            return
        q = np.array([msg.position[idx[n]] for n in self._arm])
        v = np.array([msg.velocity[idx[n]] if len(msg.velocity) == len(msg.name) else 0.0 for n in self._arm])
        fingers = [msg.position[idx[n]] for n in self._fingers if n in idx]
        with self._lock:
            self.q, self.v, self.fingers = q, v, fingers
            self.stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9

    def state(self) -> tuple[np.ndarray, np.ndarray] | None:
        with self._lock:
            return None if self.q is None else (self.q.copy(), self.v.copy())

    def opening(self) -> float | None:
        """Finger opening in m: the sum of the finger joints (each is a pad's distance from the centre)."""
        with self._lock:
            if not self.fingers:
                return None
            return float(sum(self.fingers)) if len(self.fingers) > 1 else 2.0 * self.fingers[0]


class SimArmBackend(ArmBackend):
    """The simulation: whole trajectories on sim/arm/joint_trajectory, sensing from the sim's topics.

    Its clock is the stamp of the sim's own joint-state samples, so timing
    holds whatever the real-time factor and whether or not use_sim_time is set.
    """

    name = "sim"

    def __init__(self, node: Node, model: ArmModel) -> None:
        self._node = node
        self._names = tuple(model.chain.joint_names)
        self.joints = JointStateCache(node, self._names, model.finger_joints)
        self._traj_pub = node.create_publisher(JointTrajectory, "sim/arm/joint_trajectory", COMMAND)
        self._grip_pub = node.create_publisher(Float64, "sim/gripper/command", COMMAND)
        self._lock = threading.Lock()
        self._gripper: ArmState | None = None
        self._poses: dict[str, LabwarePose] = {}
        self._poses_seq = 0
        self._poses_stamp = 0.0
        self._poses_cv = threading.Condition()
        self._end_time: float | None = None
        node.create_subscription(ArmState, "sim/gripper/state", self._on_gripper, SAMPLES)
        node.create_subscription(LabwarePoseArray, "sim/labware_poses", self._on_poses, SAMPLES)

    def _on_gripper(self, msg: ArmState) -> None:
        with self._lock:
            self._gripper = msg

    def _on_poses(self, msg: LabwarePoseArray) -> None:
        with self._poses_cv:
            self._poses = {p.labware.id: p for p in msg.items}
            self._poses_seq += 1
            self._poses_stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            self._poses_cv.notify_all()

    def execute(self, trajectory: Trajectory) -> None:
        with self._lock:
            self._end_time = self.now() + trajectory.duration
        self._traj_pub.publish(trajectory_msg(trajectory))

    def unconnected(self) -> str:
        for pub in (self._traj_pub, self._grip_pub):
            if pub.get_subscription_count() == 0:
                return f"nothing subscribes {pub.topic_name} yet"
        return ""

    def stop(self) -> None:
        msg = JointTrajectory()
        msg.joint_names = list(self._names)
        self._traj_pub.publish(msg)  # empty = stop now and hold (JointTrajectoryController convention)
        with self._lock:
            self._end_time = None

    def motion_finished(self) -> tuple[bool, str]:
        with self._lock:
            end = self._end_time
        return (end is None or self.now() >= end), ""

    def command_gripper(self, opening: float) -> None:
        self._grip_pub.publish(Float64(data=float(opening)))

    def joint_state(self):
        return self.joints.state()

    def gripper(self) -> GripperSensing | None:
        with self._lock:
            g = self._gripper
        if g is None:
            return None
        return GripperSensing(g.gripper_closed, g.holding, g.held_labware.id, self.joints.opening())

    def now(self) -> float:
        return self.joints.stamp

    def ground_truth(self) -> dict[str, LabwarePose]:
        with self._poses_cv:
            return dict(self._poses)

    def locate(self, item_id: str) -> SensedPose | None:
        """The item's ground-truth pose from a sample the sim took after this call; None if none comes.

        Freshness is judged by the sample's own (sim) stamp against the latest
        joint state's, not by arrival: with the sim several times faster than
        real time a loaded machine delivers samples late, and a stale pose
        would shift the release the wrong way. Waits up to 5 s of wall time.
        """
        t_call = self.now()
        with self._poses_cv:
            seq = self._poses_seq
            fresh = self._poses_cv.wait_for(
                lambda: self._poses_seq >= seq + 1 and self._poses_stamp >= t_call, timeout=5.0)
            p = self._poses.get(item_id) if fresh else None
        if p is None:
            return None
        o = p.pose.pose.orientation
        R = matrix_of_quaternion(o.x, o.y, o.z, o.w)
        pos = p.pose.pose.position
        return SensedPose(pos.x, pos.y, pos.z, math.atan2(R[1, 0], R[0, 0]), p.location.id)


class Ros2ControlBackend(ArmBackend):
    """ros2_control: control_msgs/FollowJointTrajectory and GripperCommand actions.

    Only usable where control_msgs is installed; the node refuses to start
    otherwise, naming the package. There is no placement sensor on this
    backend, so placements are reported as not sensed.
    """

    name = "ros2_control"

    def __init__(self, node: Node, model: ArmModel, controller: str, gripper_controller: str) -> None:
        try:
            from control_msgs.action import FollowJointTrajectory, GripperCommand
        except ImportError as exc:
            raise StartupError(node.get_name(), "backend 'ros2_control' needs the control_msgs package "
                                                "(ros-jazzy-control-msgs), which is not installed here; "
                                                "use backend:=sim or install it") from exc
        from autolab.nodes.action_client import ActionClient

        self._node = node
        self._names = tuple(model.chain.joint_names)
        self.joints = JointStateCache(node, self._names, model.finger_joints)
        self._fjt_type, self._grip_type = FollowJointTrajectory, GripperCommand
        self._fjt = ActionClient(node, FollowJointTrajectory, f"{controller}/follow_joint_trajectory")
        self._grip = ActionClient(node, GripperCommand, f"{gripper_controller}/gripper_cmd")
        self._lock = threading.Lock()
        self._goal = None
        self._result = None
        self._error = ""
        self._grip_result = None

    def goal_for(self, trajectory: Trajectory):
        goal = self._fjt_type.Goal()
        goal.trajectory = trajectory_msg(trajectory)
        return goal

    def execute(self, trajectory: Trajectory) -> None:
        if not self._fjt.server_is_ready():
            raise DeviceError("the FollowJointTrajectory server is not available")
        with self._lock:
            self._result, self._error = None, ""
        future = self._fjt.send_goal_async(self.goal_for(trajectory))
        future.add_done_callback(self._on_accepted)

    def _on_accepted(self, future) -> None:
        handle = future.result()
        if not handle.accepted:
            with self._lock:
                self._error = "the controller rejected the trajectory"
            return
        with self._lock:
            self._goal = handle
        handle.get_result_async().add_done_callback(self._on_result)

    def _on_result(self, future) -> None:
        res = future.result().result
        with self._lock:
            self._result = res
            if res.error_code != 0:
                self._error = f"controller error {res.error_code}: {res.error_string}"

    def stop(self) -> None:
        with self._lock:
            handle = self._goal
        if handle is not None:
            handle.cancel_goal_async()  # the controller holds position on cancel

    def motion_finished(self) -> tuple[bool, str]:
        with self._lock:
            return self._result is not None, self._error

    def command_gripper(self, opening: float) -> None:
        goal = self._grip_type.Goal()
        goal.command.position = float(opening)
        goal.command.max_effort = 40.0
        self._grip.send_goal_async(goal)

    def joint_state(self):
        return self.joints.state()

    def gripper(self) -> GripperSensing | None:
        opening = self.joints.opening()
        if opening is None:
            return None
        # A closed gripper stalled on something wider than its closed width is holding it.
        return GripperSensing(opening < 0.09, opening > 0.005, "", opening)

    def now(self) -> float:
        return self._node.get_clock().now().nanoseconds * 1e-9


def _labware_pose(item: TrackedItem, workcell) -> LabwarePose:
    lp = LabwarePose()
    lp.labware = LabwareRef(id=item.id, labware_type=item.type, barcode=item.barcode)
    lp.confidence = 1.0
    loc = workcell.locations.get(item.location)
    lp.pose.header.frame_id = "world"
    if loc is not None:
        lp.location.id = loc.id
        fill_pose(lp.pose.pose, transform((loc.pose.x, loc.pose.y, loc.pose.z), (0, 0, loc.pose.yaw)))
    elif item.location == IN_GRIPPER:
        lp.location.id = IN_GRIPPER
    return lp


def fill_pose(pose, T: np.ndarray) -> None:
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in T[:3, 3])
    x, y, z, w = quaternion_of(T[:3, :3])
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = x, y, z, w


class ArmNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("arm", **kwargs)
        p = self._declare_parameters()
        try:
            self.workcell = load_workcell(p["workcell"] or None)
            self.model = ArmModel(self.workcell, acceleration=p["acceleration_limit"],
                                  velocity_scale=p["velocity_scale"], acceleration_scale=p["acceleration_scale"])
        except (DescriptionError, DeviceError) as exc:
            raise StartupError(self.get_name(), f"cannot load the workcell: {exc}") from exc
        if p["backend"] == "sim":
            self.backend: ArmBackend = SimArmBackend(self, self.model)
            sensor = self.backend.locate
        elif p["backend"] == "ros2_control":
            self.backend = Ros2ControlBackend(self, self.model, p["controller"], p["gripper_controller"])
            sensor = None
        else:
            raise StartupError(self.get_name(), f"parameter 'backend' must be 'sim' or 'ros2_control', "
                                                f"got {p['backend']!r}")
        self.inventory = Inventory.from_workcell(self.workcell)
        self.controller = ArmController(self.model, self.backend, self.inventory, self.workcell, sensor,
                                        Tolerances(place_mm=p["place_tolerance_mm"],
                                                   place_deg=p["place_tolerance_deg"]),
                                        log=self.get_logger().debug)
        self._busy = threading.Lock()
        self._active = ""
        self._goal_id = ""
        self._last_error = (0, "")
        self._published_inventory = -1
        self._status_lock = threading.Lock()
        self._belt: dict[str, tuple[dict[str, float], float | None]] = self._conveyor_stations()

        self._state_pub = self.create_publisher(DeviceState, "~/state", LATCHED)
        self._arm_state_pub = self.create_publisher(ArmState, "~/arm_state", LATCHED)
        self._inventory_pub = self.create_publisher(LabwarePoseArray, "inventory", LATCHED)
        # The URDF the arm plans with, latched by ROS convention (RViz, the recorder, tools read it).
        self._description_pub = self.create_publisher(String, "robot_description", LATCHED)
        self._description_pub.publish(String(data=self.workcell.urdf_text))
        self.safety = SafetyWatch(self, on_stop=self._on_safety_stop, require_safety=p["require_safety"])
        group = ReentrantCallbackGroup()
        self._move_server = ActionServer(self, MoveArm, "~/move",
                                         execute_callback=lambda h: self._guarded(h, self._execute_move, MoveArm),
                                         goal_callback=lambda _g: GoalResponse.ACCEPT,
                                         cancel_callback=lambda _g: CancelResponse.ACCEPT, callback_group=group)
        self._transfer_server = ActionServer(self, Transfer, "~/transfer",
                                             execute_callback=lambda h: self._guarded(h, self._execute_transfer,
                                                                                      Transfer),
                                             goal_callback=lambda _g: GoalResponse.ACCEPT,
                                             cancel_callback=lambda _g: CancelResponse.ACCEPT, callback_group=group)
        for conveyor in self._belt:
            self.create_subscription(ConveyorState, f"{conveyor}/conveyor_state",
                                     lambda msg, c=conveyor: self._on_conveyor(c, msg), LATCHED)
        if isinstance(self.backend, SimArmBackend):
            self.create_timer(0.5, self._adopt_spawned)
        self.create_timer(0.2, self._publish_status)
        self._publish_status()
        self.get_logger().info(f"arm ready: backend {p['backend']}, {self.model.chain.dof} joints, "
                               f"{len(self.inventory.items())} tracked labware items")

    # --- parameters ---------------------------------------------------------------------------------
    def _declare_parameters(self) -> dict:
        specs = {
            "backend": ("sim", "sim | ros2_control"),
            "workcell": ("", "workcell description path (empty: the package's config/workcell.yaml)"),
            "velocity_scale": (1.0, "global scale (0, 1] of the URDF velocity limits"),
            "acceleration_scale": (1.0, "global scale (0, 1] of the acceleration limits"),
            "acceleration_limit": (2.5, "joint acceleration limit, rad/s^2 (URDF has none)"),
            "place_tolerance_mm": (5.0, "placement error above which a transfer is PLACE_FAILED"),
            "place_tolerance_deg": (3.0, "yaw error above which a transfer is PLACE_FAILED"),
            "controller": ("joint_trajectory_controller", "ros2_control trajectory controller name"),
            "gripper_controller": ("gripper_controller", "ros2_control gripper controller name"),
            "require_safety": (True, "refuse motion until /safety/state has been received"),
        }
        out = {}
        for name, (default, doc) in specs.items():
            out[name] = self.declare_parameter(name, default, ParameterDescriptor(description=doc)).value
        for name in ("velocity_scale", "acceleration_scale"):
            if not (0.0 < float(out[name]) <= 1.0):
                raise StartupError(self.get_name(), f"parameter '{name}' must be in (0, 1], got {out[name]}")
        for name in ("acceleration_limit", "place_tolerance_mm", "place_tolerance_deg"):
            if not float(out[name]) > 0.0:
                raise StartupError(self.get_name(), f"parameter '{name}' must be > 0, got {out[name]}")
        return out

    # --- safety ---------------------------------------------------------------------------------------
    def _on_safety_stop(self, reason: str) -> None:
        """Called in the safety subscription: stop within this callback, i.e. within one control cycle."""
        self.controller.emergency_stop(reason)
        self.get_logger().warning(f"motion stopped: {reason}")
        self._publish_status()

    def _refusal(self) -> str:
        if not self.safety.motion_allowed:
            return f"motion refused: {self.safety.reason()}"
        return ""

    # --- goals ----------------------------------------------------------------------------------------
    def _start_goal(self, handle, operation: str) -> str:
        """'' when the goal may run; otherwise why not (then the goal is aborted with that sentence)."""
        self.safety.await_state()
        refusal = self._refusal()
        if refusal:
            return refusal
        if not self._busy.acquire(blocking=False):
            return f"the arm is busy with {self._active}"
        self.controller.clear_estop()
        self._active = operation
        self._goal_id = bytes(handle.goal_id.uuid).hex()
        self._publish_status()
        return ""

    def _refused(self, handle, operation: str, result) -> bool:
        """Start the goal, or abort it at once with ESTOP (safety) or INVALID_GOAL (busy) and the reason."""
        refusal = self._start_goal(handle, operation)
        if not refusal:
            return False
        result.error_code = result.ESTOP if not self.safety.motion_allowed else result.INVALID_GOAL
        result.error_msg = refusal
        handle.abort()
        return True

    def _end_goal(self, handle, outcome: Outcome, code: int) -> None:
        self._last_error = (code, outcome.message if not outcome.ok else "")
        self._active = ""
        self._goal_id = ""
        self._busy.release()
        if outcome.code == "CANCELED" and handle.is_cancel_requested:
            handle.canceled()
        elif outcome.ok:
            handle.succeed()
        else:
            handle.abort()
        self._publish_status()

    def _guarded(self, handle, execute, action):
        """Run an execute callback; a bug ends the goal with BACKEND_FAILURE and frees the arm for the next."""
        goal_id = bytes(handle.goal_id.uuid).hex()
        try:
            return execute(handle)
        except Exception as exc:
            self.get_logger().error(f"goal {goal_id} failed unexpectedly: {exc!r}")
            if self._goal_id == goal_id:
                self._active = self._goal_id = ""
                self._busy.release()
            if handle.is_active:
                handle.abort()
            return action.Result(error_code=action.Result.BACKEND_FAILURE, error_msg=f"internal error: {exc!r}")

    def _execute_move(self, handle) -> MoveArm.Result:
        goal: MoveArm.Goal = handle.request
        result = MoveArm.Result()
        if self._refused(handle, "move", result):
            return result
        kind = {MoveArm.Goal.TARGET_NAMED: "named", MoveArm.Goal.TARGET_JOINTS: "joints",
                MoveArm.Goal.TARGET_POSE: "pose"}.get(goal.target_type, f"type {goal.target_type}")
        pose = None
        if kind == "pose":
            frame = goal.pose.header.frame_id
            if frame not in ("", "world"):
                outcome = Outcome("INVALID_GOAL", f"pose goals must be in frame 'world', got {frame!r}")
                return self._finish_move(handle, result, outcome)
            o, pp = goal.pose.pose.orientation, goal.pose.pose.position
            try:
                pose = np.eye(4)
                pose[:3, :3] = matrix_of_quaternion(o.x, o.y, o.z, o.w)
                pose[:3, 3] = (pp.x, pp.y, pp.z)
            except ValueError as exc:
                return self._finish_move(handle, result, Outcome("INVALID_GOAL", f"bad orientation: {exc}"))

        gate = FeedbackGate()

        def feedback(phase: str, progress: float, q: np.ndarray) -> None:
            if gate.due(phase):
                handle.publish_feedback(MoveArm.Feedback(progress=float(progress), phase=phase,
                                                         joint_positions=[float(v) for v in q]))

        try:
            outcome = self.controller.move(kind, lambda: handle.is_cancel_requested, feedback,
                                           named=goal.named_pose, joints=list(goal.joint_positions),
                                           joint_names=list(goal.joint_names), pose=pose,
                                           velocity_scale=goal.velocity_scale,
                                           acceleration_scale=goal.acceleration_scale)
        except Exception as exc:  # a bug must not leave the goal hanging
            self.get_logger().error(f"move failed unexpectedly: {exc!r}")
            outcome = Outcome("BACKEND_FAILURE", f"internal error: {exc!r}")
        return self._finish_move(handle, result, outcome)

    def _finish_move(self, handle, result: MoveArm.Result, outcome: Outcome) -> MoveArm.Result:
        result.error_code = getattr(MoveArm.Result, outcome.code, MoveArm.Result.BACKEND_FAILURE)
        result.error_msg = outcome.message
        result.final_joint_positions = outcome.final_positions
        self._end_goal(handle, outcome, result.error_code)
        return result

    def _execute_transfer(self, handle) -> Transfer.Result:
        goal: Transfer.Goal = handle.request
        result = Transfer.Result()
        if self._refused(handle, f"transfer {goal.source.id} -> {goal.destination.id}", result):
            return result

        gate = FeedbackGate()

        def feedback(phase: str, progress: float) -> None:
            if gate.due(phase):
                handle.publish_feedback(Transfer.Feedback(phase=phase, progress=float(progress)))

        try:
            if not goal.source.id or not goal.destination.id:
                outcome = Outcome("INVALID_GOAL", "a transfer needs a source and a destination location")
            else:
                outcome = self.controller.transfer(goal.source.id, goal.destination.id, goal.labware.id,
                                                   lambda: handle.is_cancel_requested, feedback,
                                                   velocity_scale=goal.velocity_scale)
        except Exception as exc:
            self.get_logger().error(f"transfer failed unexpectedly: {exc!r}")
            outcome = Outcome("BACKEND_FAILURE", f"internal error: {exc!r}")
        result.error_code = getattr(Transfer.Result, outcome.code, Transfer.Result.BACKEND_FAILURE)
        result.error_msg = outcome.message
        if outcome.placed is not None:
            s = outcome.placed
            result.placed.labware.id = outcome.item
            result.placed.location.id = s.location
            result.placed.pose.header.frame_id = "world"
            fill_pose(result.placed.pose.pose, transform((s.x, s.y, s.z), (0, 0, s.yaw)))
            result.placed.confidence = 1.0
        line = f"transfer {goal.source.id} -> {goal.destination.id}: {outcome.code}: {outcome.message}"
        if outcome.ok:  # one call site per severity: rclpy refuses to change a call site's severity
            self.get_logger().info(line)
        else:
            self.get_logger().warning(line)
        self._end_goal(handle, outcome, result.error_code)
        return result

    # --- the world model ------------------------------------------------------------------------------
    def _conveyor_stations(self) -> dict[str, tuple[dict[str, float], float | None]]:
        """Per conveyor: station id -> belt coordinate (x in the conveyor's frame), last belt position."""
        out = {}
        for dev in self.workcell.devices.values():
            if dev.type == "conveyor":
                inv = dev.pose.inverse()
                out[dev.id] = ({s.id: inv.compose(s.pose).x for s in self.workcell.stations(dev.id)}, None)
        return out

    def _on_conveyor(self, conveyor: str, msg: ConveyorState) -> None:
        stations, last = self._belt[conveyor]
        self._belt[conveyor] = (stations, msg.position_m)
        if last is not None:
            moved = self.inventory.advance_belt(stations, msg.position_m - last)
            if moved:
                where = {i.id: (i.location, i.belt_position) for i in self.inventory.items() if i.id in moved}
                self.get_logger().debug(f"{conveyor} moved {msg.position_m - last:+.4f} m to {msg.position_m:.4f}: "
                                        f"{where}")

    def _adopt_spawned(self) -> None:
        """Labware spawned in the simulation (sim/spawn_labware) joins the tracked inventory."""
        assert isinstance(self.backend, SimArmBackend)
        known = {i.id for i in self.inventory.items()}
        for lid, p in self.backend.ground_truth().items():
            if lid and lid not in known and p.location.id in self.workcell.locations:
                try:
                    self.inventory.add(TrackedItem(lid, p.labware.labware_type, p.location.id, p.labware.barcode))
                    self.get_logger().info(f"tracking spawned labware {lid} at {p.location.id}")
                except Exception as exc:
                    self.get_logger().warning(f"cannot track spawned labware {lid}: {exc}")

    # --- status ---------------------------------------------------------------------------------------
    def _publish_status(self) -> None:
        # One publisher at a time (timer, goal threads, safety): each reads the state and publishes it
        # before the next reads, so a sample taken before a goal ended is never latched after its end.
        with self._status_lock:
            self._publish_status_locked()

    def _publish_status_locked(self) -> None:
        now = self.get_clock().now().to_msg()
        st = DeviceState()
        st.header.stamp = now
        st.device_id, st.device_type, st.backend = self.get_name(), "arm", self.backend.name
        if not self.safety.motion_allowed:
            st.state = DeviceState.STATE_ESTOPPED
        elif self.backend.joint_state() is None:
            st.state = DeviceState.STATE_OFFLINE
        elif self._active:
            st.state = DeviceState.STATE_BUSY
        elif self._last_error[0]:
            st.state = DeviceState.STATE_ERROR
        else:
            st.state = DeviceState.STATE_IDLE
        st.active_operation = self._active
        st.active_goal_id = self._goal_id
        st.error_code, st.error_msg = int(self._last_error[0]), self._last_error[1]
        held = self.inventory.held()
        if held is not None:
            st.labware = [LabwareRef(id=held.id, labware_type=held.type, barcode=held.barcode)]
            st.occupied = True
        self._state_pub.publish(st)

        arm = ArmState()
        arm.header.stamp = now
        js = self.backend.joint_state()
        g = self.backend.gripper()
        if js is not None:
            q = js[0]
            arm.named_pose = next((n for n, nq in self.model.named_poses.items()
                                   if float(np.max(np.abs(nq - q))) < 0.01), "")
            arm.tool_pose.header.frame_id = "world"
            fill_pose(arm.tool_pose.pose, self.model.chain.fk(q))
        if g is not None:
            arm.gripper_closed, arm.holding = g.closed, g.holding
            arm.held_labware.id = g.held_id
        self._arm_state_pub.publish(arm)

        if self.inventory.version != self._published_inventory:
            self._published_inventory = self.inventory.version
            inv = LabwarePoseArray()
            inv.header.stamp = now
            inv.header.frame_id = "world"
            inv.items = [_labware_pose(i, self.workcell) for i in self.inventory.items()]
            self._inventory_pub.publish(inv)


NODE_CLASS = ArmNode


def main(args: list[str] | None = None) -> int:
    return run_node(ArmNode, args=args)


if __name__ == "__main__":
    raise SystemExit(main())
