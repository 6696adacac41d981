"""Blocking helpers for tools and tests that talk to the graph from outside a callback.

The CLI, the gateway's worker threads and the tests need "call this service,
give up after N seconds" and "send this goal, show feedback, wait for the
result". These spin the node's own executor while waiting, so they must never
be used from inside a callback of the node they spin.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rclpy.executors import Executor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.task import Future

from autolab.nodes.action_client import ActionClient


class ClientTimeout(TimeoutError):
    """A bounded wait ran out; the message names what was waited for."""


class SyncClient:
    def __init__(self, node: Node, executor: Executor | None = None) -> None:
        self.node = node
        if executor is None:
            executor = SingleThreadedExecutor(context=node.context)
            executor.add_node(node)
        self.executor = executor
        self._clients: dict[tuple[str, str], Any] = {}

    def spin_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.executor.spin_once(timeout_sec=min(left, 0.05))

    def spin_until(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                raise ClientTimeout(f"timed out after {timeout:.1f} s waiting for {what}")
            self.executor.spin_once(timeout_sec=min(left, 0.05))

    def wait_future(self, future: Future, timeout: float, what: str) -> Any:
        self.spin_until(future.done, timeout, what)
        return future.result()

    # --- services -----------------------------------------------------------
    def service(self, srv_type: Any, name: str, timeout: float = 10.0) -> Any:
        """The (cached) client of service `name`, once the service is ready.

        Call it ahead of a time-critical `call` so that discovery does not happen inside it.
        """
        key = ("srv", name)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = self.node.create_client(srv_type, name)
        self.spin_until(client.service_is_ready, timeout, f"service {name}")
        return client

    def call(self, srv_type: Any, name: str, request: Any = None, timeout: float = 10.0) -> Any:
        client = self.service(srv_type, name, timeout)
        future = client.call_async(request if request is not None else srv_type.Request())
        return self.wait_future(future, timeout, f"response of {name}")

    # --- actions ------------------------------------------------------------
    def action_client(self, action_type: Any, name: str) -> ActionClient:
        key = ("action", name)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = ActionClient(self.node, action_type, name)
        return client

    def send_goal(self, action_type: Any, name: str, goal: Any, timeout: float = 10.0,
                  feedback: Callable[[Any], None] | None = None):
        """Send a goal and return its accepted handle (raises if rejected)."""
        client = self.action_client(action_type, name)
        self.spin_until(client.server_is_ready, timeout, f"action server {name}")
        cb = (lambda fb: feedback(fb.feedback)) if feedback else None
        handle = self.wait_future(client.send_goal_async(goal, feedback_callback=cb), timeout,
                                  f"goal acceptance by {name}")
        if not handle.accepted:
            raise GoalRejected(f"goal rejected by {name}")
        return handle

    def result(self, handle, timeout: float, what: str = "action result"):
        """Wait for a goal's result; returns (status, result)."""
        res = self.wait_future(handle.get_result_async(), timeout, what)
        return res.status, res.result

    def run_action(self, action_type: Any, name: str, goal: Any, timeout: float,
                   feedback: Callable[[Any], None] | None = None):
        """Send a goal and wait for its result: returns (status, result)."""
        handle = self.send_goal(action_type, name, goal, timeout=min(timeout, 10.0), feedback=feedback)
        return self.result(handle, timeout, f"result of {name}")

    def cancel(self, handle, timeout: float = 5.0) -> Any:
        return self.wait_future(handle.cancel_goal_async(), timeout, "cancel response")

    # --- topics -------------------------------------------------------------
    def wait_message(self, msg_type: Any, topic: str, qos: QoSProfile | int, timeout: float,
                     predicate: Callable[[Any], bool] = lambda _m: True) -> Any:
        """The first message on `topic` satisfying `predicate`, within `timeout`."""
        got: list[Any] = []

        def on_msg(msg: Any) -> None:
            if not got and predicate(msg):
                got.append(msg)

        sub = self.node.create_subscription(msg_type, topic, on_msg, qos)
        try:
            self.spin_until(lambda: bool(got), timeout, f"a matching message on {topic}")
        finally:
            self.node.destroy_subscription(sub)
        return got[0]


class GoalRejected(RuntimeError):
    """The action server rejected the goal."""
