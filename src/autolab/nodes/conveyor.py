"""Conveyor node (`conveyor`): ConveyorMove over a sim or serial backend, with presence per station.

- `~/move` (ConveyorMove): to a station, by a number of stations, or by a distance, with feedback;
- `~/state` (DeviceState, latched) and `~/conveyor_state` (ConveyorState, latched: belt position,
  stations, presence per station, moving).

Parameters: `backend` (`sim` | `serial`), `workcell`, `device_id` (default: the node name),
`speed_m_s` (default speed; 0 = 80 % of the description's max_speed_m_s), `port`, `baudrate`
(serial), `require_safety`. The node stops the belt in its safety callback when the e-stop latches
and refuses moves until it is reset.
"""

from __future__ import annotations

import threading

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float64MultiArray

from autolab.devices.conveyor import (
    BeltMove,
    BeltState,
    ConveyorBackend,
    ConveyorController,
    ConveyorPlanner,
    SerialConveyorBackend,
)
from autolab.devices.errors import DeviceError, MotionError
from autolab.model.errors import DescriptionError
from autolab.model.workcell import load_workcell
from autolab.nodes.qos import COMMAND, LATCHED
from autolab.nodes.runtime import StartupError, run_node
from autolab.nodes.safety_watch import SafetyWatch
from autolab_interfaces.action import ConveyorMove
from autolab_interfaces.msg import ConveyorState, DeviceState

R = ConveyorMove.Result
#: The sim's belt samples: accept reliable or best-effort publishers.
SAMPLES = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT)


class SimConveyorBackend(ConveyorBackend):
    """The simulated belt: sim/conveyor/command [target, speed]; the sim stops at the target itself."""

    name = "sim"

    def __init__(self, node: Node, stations: list[str]) -> None:
        self._stations = stations
        self._pub = node.create_publisher(Float64MultiArray, "sim/conveyor/command", COMMAND)
        self._lock = threading.Lock()
        self._state: BeltState | None = None
        self.on_state = None
        node.create_subscription(ConveyorState, "sim/conveyor/state", self._on_state, SAMPLES)

    def _on_state(self, msg: ConveyorState) -> None:
        presence = {s: bool(p) for s, p in zip(msg.stations, msg.presence, strict=False)}
        st = BeltState(msg.position_m, msg.moving, presence, msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)
        with self._lock:
            self._state = st
        if self.on_state is not None:
            self.on_state(st)

    def unconnected(self) -> str:
        return "" if self._pub.get_subscription_count() else f"nothing subscribes {self._pub.topic_name} yet"

    def move_to(self, target: float, speed: float) -> None:
        self._pub.publish(Float64MultiArray(data=[float(target), float(speed)]))

    def stop(self) -> None:
        st = self.state()
        self._pub.publish(Float64MultiArray(data=[float(st.position if st else 0.0), 0.0]))

    def state(self) -> BeltState | None:
        with self._lock:
            return self._state

    def now(self) -> float:
        with self._lock:
            return self._state.stamp if self._state is not None else 0.0


def serial_backend(node: Node, port: str, baudrate: int, stations: list[str]) -> ConveyorBackend:
    """The serial conveyor controller (ALP-CV1 driver) on `port`; StartupError naming the problem."""
    if not port:
        raise StartupError(node.get_name(), "backend 'serial' needs parameter 'port' (e.g. /dev/ttyUSB4)")
    from autolab.devices.drivers.alp_conveyor import AlpConveyor

    driver = AlpConveyor(port, baudrate=baudrate)
    try:
        driver.connect()
    except DeviceError as exc:
        raise StartupError(node.get_name(), f"cannot reach the conveyor controller on {port}: {exc}") from exc
    return SerialConveyorBackend(driver, stations)


class ConveyorNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("conveyor", **kwargs)
        p = {name: self.declare_parameter(name, default, ParameterDescriptor(description=doc)).value
             for name, (default, doc) in {
                 "backend": ("sim", "sim | serial"),
                 "workcell": ("", "workcell description path (empty: the package's config/workcell.yaml)"),
                 "device_id": ("", "conveyor device id in the description (empty: the node name)"),
                 "speed_m_s": (0.0, "default belt speed (0: 80 % of the description's max_speed_m_s)"),
                 "port": ("", "serial port (backend serial)"),
                 "baudrate": (115200, "serial baud rate (backend serial)"),
                 "require_safety": (True, "refuse motion until /safety/state has been received"),
             }.items()}
        self.device_id = p["device_id"] or self.get_name()
        try:
            wc = load_workcell(p["workcell"] or None)
        except DescriptionError as exc:
            raise StartupError(self.get_name(), f"cannot load the workcell: {exc}") from exc
        dev = wc.devices.get(self.device_id)
        if dev is None or dev.type != "conveyor":
            raise StartupError(self.get_name(), f"parameter 'device_id': {self.device_id!r} is not a conveyor of "
                                                f"the workcell")
        inv = dev.pose.inverse()
        stations = {s.id: inv.compose(s.pose).x for s in wc.stations(self.device_id)}
        max_speed = float(dev.params.get("max_speed_m_s", 0.25))
        if p["speed_m_s"] < 0 or p["speed_m_s"] > max_speed:
            raise StartupError(self.get_name(), f"parameter 'speed_m_s' must be in [0, {max_speed}] m/s, "
                                                f"got {p['speed_m_s']}")
        try:
            self.planner = ConveyorPlanner(stations, max_speed, p["speed_m_s"] or None)
        except MotionError as exc:
            raise StartupError(self.get_name(), str(exc)) from exc
        if p["backend"] == "sim":
            self.backend: ConveyorBackend = SimConveyorBackend(self, list(self.planner.stations))
            self.backend.on_state = self._on_belt  # type: ignore[attr-defined]
        elif p["backend"] == "serial":
            self.backend = serial_backend(self, p["port"], int(p["baudrate"]), list(self.planner.stations))
        else:
            raise StartupError(self.get_name(), f"parameter 'backend' must be 'sim' or 'serial', got {p['backend']!r}")
        self.controller = ConveyorController(self.backend, self.planner)
        self._busy = threading.Lock()
        self._active = ""
        self._last_error = (0, "")
        self._last_belt: tuple = ()
        # Timer, goal threads and belt samples all publish: one at a time, each reading then publishing,
        # so an older sample is never latched after a newer one.
        self._pub_lock = threading.RLock()
        self._state_pub = self.create_publisher(DeviceState, "~/state", LATCHED)
        self._belt_pub = self.create_publisher(ConveyorState, "~/conveyor_state", LATCHED)
        self.safety = SafetyWatch(self, on_stop=self._on_safety_stop, require_safety=p["require_safety"])
        self._server = ActionServer(self, ConveyorMove, "~/move", execute_callback=self._execute,
                                    goal_callback=lambda _g: GoalResponse.ACCEPT,
                                    cancel_callback=lambda _g: CancelResponse.ACCEPT,
                                    callback_group=ReentrantCallbackGroup())
        self.create_timer(0.5, self._publish)
        self._publish()

    def _on_safety_stop(self, reason: str) -> None:
        self.controller.emergency_stop(reason)
        self.get_logger().warning(f"belt stopped: {reason}")
        self._publish()

    def _on_belt(self, st: BeltState) -> None:
        """Republish the belt when something a consumer cares about changed (not every sample)."""
        key = (round(st.position, 3), st.moving, tuple(sorted(st.presence.items())))
        with self._pub_lock:
            if key != self._last_belt:
                self._last_belt = key
                self._publish_belt()

    def _plan(self, goal: ConveyorMove.Goal, presence) -> BeltMove:
        if goal.mode == ConveyorMove.Goal.MODE_TO_STATION:
            return self.planner.to_station(goal.station, presence, goal.speed_m_s)
        if goal.mode == ConveyorMove.Goal.MODE_INDEX:
            return self.planner.index(goal.index_steps, presence, goal.speed_m_s)
        if goal.mode == ConveyorMove.Goal.MODE_DISTANCE:
            return self.planner.distance(goal.distance_m, presence, goal.speed_m_s)
        raise MotionError(f"unknown mode {goal.mode}")

    def _execute(self, handle) -> ConveyorMove.Result:
        goal: ConveyorMove.Goal = handle.request
        result = R()
        code, msg = "NONE", ""
        self.safety.await_state()
        if not self.safety.motion_allowed:
            code, msg = "ESTOP", f"motion refused: {self.safety.reason()}"
        elif not self._busy.acquire(blocking=False):
            code, msg = "INVALID_GOAL", f"the conveyor is busy with {self._active}"
        if code != "NONE":
            result.error_code, result.error_msg = getattr(R, code), msg
            handle.abort()
            return result
        try:
            self.controller.clear_estop()
            self._active = f"move ({goal.station or goal.index_steps or goal.distance_m})"
            self._publish()
            st = self.backend.state()
            position = st.position if st else 0.0
            try:
                if st is None:
                    raise DeviceError(f"no state from the {self.backend.name} conveyor backend yet")
                move = self._plan(goal, st.presence)
            except MotionError as exc:
                code, msg = ("INVALID_GOAL" if exc.code == "BACKEND_FAILURE" else exc.code), str(exc)
            except DeviceError as exc:
                code, msg = "BACKEND_FAILURE", str(exc)
            else:
                def feedback(pos: float, progress: float, nearest: str) -> None:
                    handle.publish_feedback(ConveyorMove.Feedback(position_m=float(pos), progress=float(progress),
                                                                  nearest_station=nearest))

                code, msg, position = self.controller.run(move, lambda: handle.is_cancel_requested, feedback)
                result.station = move.station if code == "NONE" else ""
            result.error_code, result.error_msg, result.position_m = getattr(R, code), msg, float(position)
        finally:
            self._last_error = (int(getattr(R, code)), msg if code != "NONE" else "")
            self._active = ""
            self._busy.release()
        if code == "CANCELED" and handle.is_cancel_requested:
            handle.canceled()
        elif code == "NONE":
            handle.succeed()
        else:
            handle.abort()
        self._publish()
        return result

    def _publish_belt(self) -> None:
        with self._pub_lock:
            self._publish_belt_locked()

    def _publish_belt_locked(self) -> None:
        st = self.backend.state()
        msg = ConveyorState()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.stations = list(self.planner.stations)
        if st is not None:
            msg.position_m, msg.moving = float(st.position), bool(st.moving)
            msg.presence = [bool(st.presence.get(s, False)) for s in msg.stations]
        else:
            msg.presence = [False] * len(msg.stations)
        self._belt_pub.publish(msg)

    def _publish(self) -> None:
        with self._pub_lock:
            self._publish_locked()

    def _publish_locked(self) -> None:
        st = DeviceState()
        st.header.stamp = self.get_clock().now().to_msg()
        st.device_id, st.device_type, st.backend = self.device_id, "conveyor", self.backend.name
        belt = self.backend.state()
        if not self.safety.motion_allowed:
            st.state = DeviceState.STATE_ESTOPPED
        elif belt is None:
            st.state = DeviceState.STATE_OFFLINE
        elif self._active:
            st.state = DeviceState.STATE_BUSY
        else:
            st.state = DeviceState.STATE_ERROR if self._last_error[0] else DeviceState.STATE_IDLE
        st.active_operation = self._active
        st.error_code, st.error_msg = self._last_error
        st.occupied = bool(belt and any(belt.presence.values()))
        self._state_pub.publish(st)
        self._publish_belt()


    def close(self) -> None:
        close = getattr(self.backend, "close", None)
        if callable(close):
            close()


NODE_CLASS = ConveyorNode


def main(args: list[str] | None = None) -> int:
    return run_node(ConveyorNode, args=args)


if __name__ == "__main__":
    raise SystemExit(main())
