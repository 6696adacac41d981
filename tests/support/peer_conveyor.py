"""A second process for the foundation's transport test: a ConveyorMove action server.

It models a belt moving at constant speed to a target position and publishes
feedback each control period, so the test can check feedback, the result's
typed fields and cancel across two processes with autolab_interfaces types.
It is deliberately independent of the product's conveyor node: this test is
about the ROS 2 stack the set-up installs, not about conveyor behaviour.
"""

from __future__ import annotations

import sys
import time

import rclpy
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node

from autolab.nodes.qos import LATCHED
from autolab_interfaces.action import ConveyorMove
from autolab_interfaces.msg import ConveyorState

STATIONS = {"in": 0.0, "out": 0.6}
PERIOD_S = 0.05


class PeerConveyor(Node):
    def __init__(self) -> None:
        super().__init__("peer_conveyor")
        self.position = 0.0
        self._state_pub = self.create_publisher(ConveyorState, "~/conveyor_state", LATCHED)
        self._server = ActionServer(
            self, ConveyorMove, "~/move", execute_callback=self._execute,
            goal_callback=self._on_goal, cancel_callback=lambda _g: CancelResponse.ACCEPT,
            callback_group=ReentrantCallbackGroup(),
        )
        self._publish_state(False)

    def _publish_state(self, moving: bool) -> None:
        msg = ConveyorState(position_m=self.position, stations=list(STATIONS), moving=moving)
        msg.presence = [abs(self.position - p) < 1e-3 for p in STATIONS.values()]
        self._state_pub.publish(msg)

    def _on_goal(self, goal: ConveyorMove.Goal) -> GoalResponse:
        if goal.mode == ConveyorMove.Goal.MODE_TO_STATION and goal.station not in STATIONS:
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _execute(self, handle) -> ConveyorMove.Result:
        goal = handle.request
        target = STATIONS[goal.station]
        speed = goal.speed_m_s or 0.2
        start = self.position
        result = ConveyorMove.Result()
        while abs(target - self.position) > 1e-9:
            if handle.is_cancel_requested:
                handle.canceled()
                result.error_code = ConveyorMove.Result.CANCELED
                result.error_msg = "canceled by client"
                result.position_m = self.position
                self._publish_state(False)
                return result
            step = min(speed * PERIOD_S, abs(target - self.position))
            self.position += step if target > self.position else -step
            fb = ConveyorMove.Feedback(position_m=self.position, nearest_station=goal.station)
            fb.progress = float(abs(self.position - start) / max(abs(target - start), 1e-9))
            handle.publish_feedback(fb)
            self._publish_state(True)
            time.sleep(PERIOD_S)
        handle.succeed()
        self._publish_state(False)
        result.error_code = ConveyorMove.Result.NONE
        result.position_m = self.position
        result.station = goal.station
        return result


def main() -> int:
    rclpy.init(args=sys.argv)
    node = PeerConveyor()
    executor = MultiThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
