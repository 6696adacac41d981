"""Safety node: publishes the latched /safety/state and serves e-stop and reset.

Names are private (`~/state`), so the node named `safety` at the root gives
/safety/state, and under a namespace /cell1 gives /cell1/safety/state.
"""

from __future__ import annotations

from rclpy.node import Node

from autolab.devices.safety import ResetRefused, SafetyLatch, SafetySnapshot
from autolab.nodes.qos import LATCHED
from autolab.nodes.runtime import run_node
from autolab_interfaces.msg import SafetyState
from autolab_interfaces.srv import EStop


def to_msg(snap: SafetySnapshot, stamp) -> SafetyState:
    msg = SafetyState()
    msg.header.stamp = stamp
    msg.state = int(snap.status)
    msg.estop_latched = snap.estop_latched
    msg.motion_allowed = snap.motion_allowed
    msg.active_interlocks = list(snap.active_interlocks) + [f"fault:{f}" for f in snap.faults]
    msg.source = snap.source
    msg.reason = snap.reason
    msg.sequence = snap.sequence
    return msg


class SafetyNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("safety", **kwargs)
        self._latch = SafetyLatch()
        self._pub = self.create_publisher(SafetyState, "~/state", LATCHED)
        self.create_service(EStop, "~/estop", self._on_estop)
        self.create_service(EStop, "~/reset", self._on_reset)
        self._last_sequence = -1
        # Republish periodically as a heartbeat; consumers may use its absence as a watchdog.
        self.create_timer(1.0, self._publish)
        self._publish(force=True)

    def _publish(self, force: bool = True) -> None:
        snap = self._latch.snapshot()
        if force or snap.sequence != self._last_sequence:
            self._pub.publish(to_msg(snap, self.get_clock().now().to_msg()))
            self._last_sequence = snap.sequence

    def _on_estop(self, request: EStop.Request, response: EStop.Response) -> EStop.Response:
        snap = self._latch.estop(request.source, request.reason)
        self.get_logger().warning(f"E-STOP latched by {snap.source}: {snap.reason}")
        self._publish()
        response.success = True
        response.message = "e-stop latched"
        response.state = to_msg(snap, self.get_clock().now().to_msg())
        return response

    def _on_reset(self, request: EStop.Request, response: EStop.Response) -> EStop.Response:
        try:
            snap = self._latch.reset(request.source)
            response.success = True
            response.message = "e-stop reset; motion allowed" if snap.motion_allowed else "reset"
            self.get_logger().info(f"e-stop reset by {request.source or 'unknown'}")
        except ResetRefused as exc:
            snap = self._latch.snapshot()
            response.success = False
            response.message = str(exc)
        self._publish()
        response.state = to_msg(snap, self.get_clock().now().to_msg())
        return response


NODE_CLASS = SafetyNode


def main(args: list[str] | None = None) -> int:
    return run_node(SafetyNode, args=args)


if __name__ == "__main__":
    raise SystemExit(main())
