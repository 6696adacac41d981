"""Sim node: the MuJoCo workcell on ROS 2. Publishes /clock; the arm, gripper and belt obey topics.

A thin adapter over `autolab.sim.engine.CellSim`. Physics runs in its own
thread in chunks of `chunk_s` simulated seconds, each under the engine's lock
for a few milliseconds at most, so services and subscriptions are served
between chunks. Commands take effect at the next physics step.

Topics (node `sim` at the cell root):
- `/clock` (rosgraph_msgs/Clock), `joint_states` (sensor_msgs/JointState, STREAM);
- `~/gripper/state` (ArmState), `~/labware_poses` (LabwarePoseArray), `~/conveyor/state` (ConveyorState),
  all LATCHED (transient local also serves volatile and best-effort subscribers);
- `camera/image_raw` (Image rgb8) and `camera/camera_info` (SENSOR), when `camera_rate_hz` > 0;
- subscribes `~/arm/joint_trajectory`, `~/gripper/command` (Float64, opening in m),
  `~/conveyor/command` (Float64MultiArray [target_m, speed_m_s]), and `safety/state`.
Services: `~/reset` (Trigger: the initial inventory, arm home, belt stopped, every well empty),
`~/spawn_labware` (SpawnLabware), `~/get_labware_poses` (GetLabwarePoses), and the liquid world's
`sim/liquids/transfer` and `sim/liquids/get_contents` (autolab.nodes.sim_liquid_services).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64, Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from autolab.model.errors import DescriptionError
from autolab.nodes.qos import COMMAND, LATCHED, SENSOR, STREAM
from autolab.nodes.runtime import StartupError, run_node
from autolab_interfaces.msg import ArmState, ConveyorState, LabwarePose, LabwarePoseArray, SafetyState
from autolab_interfaces.srv import GetLabwarePoses, SpawnLabware

WORLD_FRAME = "world"
MAX_STAMP_SKEW_S = 10.0  # a trajectory stamp further than this from sim time is taken as "on receipt"
_EPS = 1e-9  # simulated times are sums of float steps: compare with a tolerance


def _stamp(t: float):
    from builtin_interfaces.msg import Time

    sec, nanosec = divmod(round(t * 1e9), 1_000_000_000)
    return Time(sec=int(sec), nanosec=int(nanosec))


class SimNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("sim", **kwargs)
        p = self._read_parameters()
        self._camera_period = 1.0 / p["camera_rate_hz"] if p["camera_rate_hz"] > 0 else 0.0
        if self._camera_period:
            self._select_gl()  # before MuJoCo is imported, which reads MUJOCO_GL once
        from autolab.model.workcell import load_workcell
        from autolab.sim.engine import CellSim
        from autolab.sim.errors import ModelBuildError
        from autolab.sim.world import SimOptions

        try:
            self.workcell = load_workcell(p["workcell"] or None)
            self.sim = CellSim(
                self.workcell, SimOptions(timestep=p["physics_dt"], spares_per_type=p["spares_per_type"])
            )
        except (DescriptionError, ModelBuildError) as exc:
            raise StartupError(self.get_name(), str(exc)) from None
        self._rtf = p["real_time_factor"]
        self._chunk_steps = max(1, round(p["chunk_s"] / self.sim.timestep))
        self._publish_period = 1.0 / p["publish_rate_hz"]
        self._labware_period = 1.0 / p["labware_rate_hz"]

        self._clock_pub = self.create_publisher(Clock, "/clock", STREAM)
        self._js_pub = self.create_publisher(JointState, "joint_states", STREAM)
        self._grip_pub = self.create_publisher(ArmState, "~/gripper/state", LATCHED)
        self._lw_pub = self.create_publisher(LabwarePoseArray, "~/labware_poses", LATCHED)
        self._conv_pub = self.create_publisher(ConveyorState, "~/conveyor/state", LATCHED)
        self.create_subscription(JointTrajectory, "~/arm/joint_trajectory", self._on_trajectory, COMMAND)
        self.create_subscription(Float64, "~/gripper/command", self._on_gripper, COMMAND)
        self.create_subscription(Float64MultiArray, "~/conveyor/command", self._on_conveyor, COMMAND)
        self.create_subscription(SafetyState, "safety/state", self._on_safety, LATCHED)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.create_service(SpawnLabware, "~/spawn_labware", self._on_spawn)
        self.create_service(GetLabwarePoses, "~/get_labware_poses", self._on_get_poses)
        self._img_pub = self._info_pub = None
        if self._camera_period:
            self._img_pub = self.create_publisher(Image, "camera/image_raw", SENSOR)
            self._info_pub = self.create_publisher(CameraInfo, "camera/camera_info", SENSOR)
        self._liquids = None
        self._attach_liquids()

        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim-physics", daemon=True)
        self._thread.start()
        self.get_logger().info(
            f"simulating {self.workcell.name} ({self.workcell.path}), dt {self.sim.timestep * 1e3:g} ms, "
            f"real-time factor {'max' if self._rtf == 0 else self._rtf}"
        )

    # --- parameters ------------------------------------------------------------------------------------

    def _read_parameters(self) -> dict:
        specs = {
            "workcell": ("", "workcell description path (empty: the package's config/workcell.yaml)"),
            "real_time_factor": (1.0, "simulated seconds per wall second; 0 runs as fast as possible"),
            "physics_dt": (0.002, "physics time step, s"),
            "chunk_s": (0.01, "simulated seconds stepped per chunk; /clock is published after each"),
            "publish_rate_hz": (50.0, "joint_states, gripper and conveyor state rate, in simulated time"),
            "labware_rate_hz": (10.0, "labware_poses rate, in simulated time"),
            "camera_rate_hz": (0.0, "overhead camera rate in simulated time; 0 = off"),
            "spares_per_type": (2, "parked bodies per labware type available to spawn_labware"),
        }
        from rcl_interfaces.msg import ParameterDescriptor

        values = {}
        for name, (default, doc) in specs.items():
            values[name] = self.declare_parameter(name, default, ParameterDescriptor(description=doc)).value
        if self.get_parameter("use_sim_time").value:
            raise StartupError(self.get_name(), "use_sim_time must be false for the sim node: it is the clock")
        checks = [
            ("real_time_factor", values["real_time_factor"] >= 0, "must be >= 0 (0 = as fast as possible)"),
            ("physics_dt", 0 < values["physics_dt"] <= 0.01, "must be in (0, 0.01] s"),
            (
                "chunk_s",
                values["chunk_s"] >= values["physics_dt"] and values["chunk_s"] <= 0.05,
                "must be between physics_dt and 0.05 s",
            ),
            ("publish_rate_hz", values["publish_rate_hz"] > 0, "must be > 0"),
            ("labware_rate_hz", values["labware_rate_hz"] > 0, "must be > 0"),
            ("camera_rate_hz", values["camera_rate_hz"] >= 0, "must be >= 0 (0 = off)"),
            ("spares_per_type", values["spares_per_type"] >= 0, "must be >= 0"),
        ]
        for name, ok, why in checks:
            if not ok:
                raise StartupError(self.get_name(), f"parameter {name} = {values[name]!r} {why}")
        if values["workcell"] and not Path(values["workcell"]).is_file():
            raise StartupError(self.get_name(), f"parameter workcell: no such file {values['workcell']!r}")
        return values

    def _select_gl(self) -> None:
        from autolab.sim.camera import select_gl_backend
        from autolab.sim.errors import RenderingUnavailable

        try:
            backend = select_gl_backend()
        except RenderingUnavailable as exc:
            raise StartupError(self.get_name(), f"camera_rate_hz > 0 but {exc}") from None
        self.get_logger().info(f"overhead camera rendering with MUJOCO_GL={backend}")

    def _attach_liquids(self) -> None:
        try:
            from autolab.nodes.sim_liquid_services import attach_liquid_services
        except ImportError as exc:
            self.get_logger().info(f"liquid services not available ({exc}); sim serves no liquids")
            return
        self._liquids = attach_liquid_services(self)

    # --- physics thread --------------------------------------------------------------------------------

    def _run(self) -> None:
        renderer = None
        try:
            if self._camera_period:
                from autolab.sim.camera import CameraRenderer

                cam = self.workcell.devices[self.sim.world.camera]
                renderer = CameraRenderer(
                    self.sim.model, cam.id, int(cam.params.get("width", 640)), int(cam.params.get("height", 480))
                )
            self._loop(renderer)
        except Exception as exc:  # the physics thread must never die silently
            if self.context.ok() and not self._stop.is_set():
                self.get_logger().fatal(f"physics thread stopped: {type(exc).__name__}: {exc}")
                raise
        finally:
            if renderer is not None:
                renderer.close()

    def _loop(self, renderer) -> None:
        next_pub = next_lw = next_cam = self.sim.time
        wall0, sim0 = time.monotonic(), self.sim.time
        while not self._stop.is_set() and self.context.ok():
            self.sim.step(self._chunk_steps)
            now = self.sim.time
            self._clock_pub.publish(Clock(clock=_stamp(now)))
            if now >= next_pub - _EPS:
                next_pub = _next_due(next_pub, self._publish_period, now)
                self._publish_states(now)
            if now >= next_lw - _EPS:
                next_lw = _next_due(next_lw, self._labware_period, now)
                self._publish_labware(now)
            if renderer is not None and now >= next_cam - _EPS:
                next_cam = _next_due(next_cam, self._camera_period, now)
                with self.sim.lock:
                    img = renderer.render(self.sim.data)
                self._publish_image(img, renderer.intrinsics, now)
            if self._rtf > 0:
                ahead = (now - sim0) / self._rtf - (time.monotonic() - wall0)
                if ahead > 0:
                    self._stop.wait(ahead)
                elif ahead < -0.5:  # fell behind (slow machine): do not race to catch up
                    wall0, sim0 = time.monotonic(), now

    def _publish_states(self, now: float) -> None:
        # Read and publish under the world's lock: a reset or spawn publishes its own state before it
        # answers, and a sample read before it must not be published after it (the topics are latched).
        with self.sim.lock:
            self._publish_states_locked(now)

    def _publish_labware(self, now: float) -> None:
        with self.sim.lock:
            self._lw_pub.publish(self._labware_msg(now, ()))

    def _publish_states_locked(self, now: float) -> None:
        stamp = _stamp(now)
        js = self.sim.joint_state()
        msg = JointState()
        msg.header.stamp = stamp
        msg.name = list(js.names)
        msg.position, msg.velocity, msg.effort = list(js.positions), list(js.velocities), list(js.efforts)
        self._js_pub.publish(msg)

        g = self.sim.gripper_status()
        arm = ArmState()
        arm.header.stamp = stamp
        arm.header.frame_id = WORLD_FRAME
        arm.named_pose = self._named_pose(js.positions[: len(self.sim.arm_joints)])
        arm.gripper_closed = g.closed
        arm.holding = g.holding
        if g.held_labware:
            arm.held_labware = self._labware_ref(g.held_labware)
        arm.tool_pose.header = arm.header
        _fill_pose(arm.tool_pose.pose, g.tcp_position, g.tcp_quat_wxyz)
        self._grip_pub.publish(arm)

        c = self.sim.conveyor_status()
        conv = ConveyorState()
        conv.header.stamp = stamp
        conv.position_m = c.position_m
        conv.stations = list(c.stations)
        conv.presence = list(c.presence)
        conv.moving = c.moving
        self._conv_pub.publish(conv)

    def _named_pose(self, q) -> str:
        for name, target in self.workcell.arm.named_poses.items():
            if all(abs(a - b) < 0.01 for a, b in zip(q, target, strict=True)):
                return name
        return ""

    def _labware_ref(self, item_id: str):
        from autolab_interfaces.msg import LabwareRef

        st = self.sim.labware_status([item_id])
        return LabwareRef(id=item_id, labware_type=st[0].type, barcode=st[0].barcode) if st else LabwareRef(id=item_id)

    def _labware_msg(self, now: float, ids) -> LabwarePoseArray:
        from autolab_interfaces.msg import LabwareRef, LocationRef

        out = LabwarePoseArray()
        out.header.stamp = _stamp(now)
        out.header.frame_id = WORLD_FRAME
        for s in self.sim.labware_status(ids):
            item = LabwarePose()
            item.labware = LabwareRef(id=s.id, labware_type=s.type, barcode=s.barcode)
            item.location = LocationRef(id=s.location)
            item.pose.header = out.header
            _fill_pose(item.pose.pose, s.position, s.quat_wxyz)
            item.confidence = 1.0
            out.items.append(item)
        return out

    def _publish_image(self, img, intr, now: float) -> None:
        header_stamp = _stamp(now)
        frame = f"{self.sim.world.camera}_optical_frame"
        msg = Image()
        msg.header.stamp = header_stamp
        msg.header.frame_id = frame
        msg.height, msg.width = int(img.shape[0]), int(img.shape[1])
        msg.encoding = "rgb8"
        msg.step = msg.width * 3
        msg.data = img.tobytes()
        self._img_pub.publish(msg)
        info = CameraInfo()
        info.header = msg.header
        info.width, info.height = intr.width, intr.height
        info.distortion_model = "plumb_bob"
        info.d = [0.0] * 5
        info.k = intr.k()
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.p = [intr.fx, 0.0, intr.cx, 0.0, 0.0, intr.fy, intr.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
        self._info_pub.publish(info)

    # --- commands --------------------------------------------------------------------------------------

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        from autolab.sim.errors import MotionRefused, TrajectoryError
        from autolab.sim.trajectory import TrajectoryPoint

        points = [
            TrajectoryPoint(
                p.time_from_start.sec + p.time_from_start.nanosec * 1e-9,
                list(p.positions),
                list(p.velocities),
                list(p.accelerations),
            )
            for p in msg.points
        ]
        start = None
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        if stamp > 0:
            if abs(stamp - self.sim.time) <= MAX_STAMP_SKEW_S:
                start = stamp
            else:
                self.get_logger().warning(
                    f"trajectory stamp {stamp:.3f} s is {stamp - self.sim.time:+.1f} s from sim time (is the "
                    "sender on use_sim_time?); starting it on receipt",
                    throttle_duration_sec=10.0,
                )
        try:
            self.sim.follow_trajectory(list(msg.joint_names), points, start)
        except (TrajectoryError, MotionRefused) as exc:
            self.get_logger().error(f"trajectory rejected: {exc}")

    def _on_gripper(self, msg: Float64) -> None:
        try:
            self.sim.set_gripper(msg.data)
        except ValueError as exc:
            self.get_logger().error(f"gripper command rejected: {exc}")

    def _on_conveyor(self, msg: Float64MultiArray) -> None:
        from autolab.sim.errors import MotionRefused

        if len(msg.data) != 2:
            self.get_logger().error(f"conveyor command needs data=[target_m, speed_m_s], got {list(msg.data)}")
            return
        try:
            self.sim.conveyor_command(float(msg.data[0]), float(msg.data[1]))
        except (ValueError, MotionRefused) as exc:
            self.get_logger().error(f"conveyor command rejected: {exc}")

    def _on_safety(self, msg: SafetyState) -> None:
        was = self.sim.motion_allowed
        self.sim.set_motion_allowed(bool(msg.motion_allowed))
        if was and not msg.motion_allowed:
            self.get_logger().warning(f"safety stop ({msg.reason or 'no reason given'}): arm frozen, belt stopped")

    def _on_reset(self, _req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        with self.sim.lock:
            self.sim.reset()
            # The latched topics show the reset world before the caller hears "done".
            self._publish_states(self.sim.time)
            self._publish_labware(self.sim.time)
        if self._liquids is not None:
            self._liquids.world.clear()
        res.success = True
        res.message = "world reset to the initial inventory; arm at home, gripper open, belt stopped, wells empty"
        self.get_logger().info(res.message)
        return res

    def _on_spawn(self, req: SpawnLabware.Request, res: SpawnLabware.Response) -> SpawnLabware.Response:
        from autolab.sim.errors import SpawnError

        try:
            st = self.sim.spawn(req.labware.id, req.labware.labware_type, req.location.id, req.labware.barcode)
        except SpawnError as exc:
            res.success, res.message = False, str(exc)
            return res
        self._publish_labware(self.sim.time)
        res.success = True
        res.message = f"spawned {st.id} ({st.type}, ArUco id {st.aruco_id}) at {req.location.id}"
        self.get_logger().info(res.message)
        return res

    def _on_get_poses(self, req: GetLabwarePoses.Request, res: GetLabwarePoses.Response) -> GetLabwarePoses.Response:
        msg = self._labware_msg(self.sim.time, tuple(req.ids))
        missing = sorted(set(req.ids) - {i.labware.id for i in msg.items})
        res.items = msg.items
        res.success = not missing
        res.message = f"unknown labware: {', '.join(missing)}" if missing else f"{len(msg.items)} items"
        return res

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)


def _next_due(due: float, period: float, now: float) -> float:
    """The next multiple of `period` after `now`, on the original grid (no drift, no burst after a stall)."""
    due += period
    return due if due > now + _EPS else now + period


def _fill_pose(pose, position, quat_wxyz) -> None:
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in position)
    w, x, y, z = (float(v) for v in quat_wxyz)
    pose.orientation.w, pose.orientation.x, pose.orientation.y, pose.orientation.z = w, x, y, z


NODE_CLASS = SimNode


def main(args: list[str] | None = None) -> int:
    return run_node(SimNode, args=args)


if __name__ == "__main__":
    raise SystemExit(main())
