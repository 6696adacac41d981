"""The action client keeps every reply, even when one arrives while its request is being registered.

rclpy 7.1.6 (the Jazzy wheel) sends a request and then registers its future; an
executor thread that takes the reply in between drops it (ros2/rclpy#1123). The
test makes that window certain: after sending, the client's handle returns only once
the reader's latched state shows the goal done, while a multi-threaded executor
spins the client node in the background.
The server is a real instrument node in its own process.
"""

from __future__ import annotations

import threading
import time

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.timeout(90)]


class _SlowRegistration:
    """Proxy of a client's rcl handle: after sending a goal request, return only once `answered` is set."""

    def __init__(self, handle, answered: threading.Event) -> None:
        self._handle, self._answered = handle, answered

    def send_goal_request(self, request):
        seq = self._handle.send_goal_request(request)
        # The server has accepted (and even finished) the goal before this returns: its reply is in,
        # and the executor's thread has taken it.
        self._answered.wait(20.0)
        time.sleep(0.2)
        return seq

    def __getattr__(self, name):
        return getattr(self._handle, name)


@pytest.fixture(scope="module")
def reader(start_node):
    return start_node(
        "autolab.nodes.instrument",
        name="reader1",
        ros_args=["-r", "__node:=reader1", "-p", "type:=plate_reader", "-p", "backend:=sim",
                  "-p", "require_safety:=false"],
    )


def _accepted_within(client_cls, rclpy_context, operation: str, door_open: bool, timeout: float) -> bool:
    from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.node import Node

    from autolab.nodes.qos import LATCHED
    from autolab_interfaces.action import InstrumentRun
    from autolab_interfaces.msg import DeviceState

    node = Node(f"client_{operation}", context=rclpy_context)
    seen, answered = threading.Event(), threading.Event()

    def on_state(m: DeviceState) -> None:
        seen.set()
        if m.door_open == door_open and not m.active_goal_id:
            answered.set()

    # Its own group: the action client's callbacks (default group) may wait on its request lock.
    node.create_subscription(DeviceState, "/reader1/state", on_state, LATCHED,
                             callback_group=MutuallyExclusiveCallbackGroup())
    executor = MultiThreadedExecutor(num_threads=2, context=rclpy_context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    client = client_cls(node, InstrumentRun, "/reader1/run")
    try:
        assert client.wait_for_server(timeout_sec=30.0), "the reader's action server"
        assert seen.wait(30.0), "the reader's state"
        answered.clear()  # the door starts the other way; only the goal's own end counts
        client._client_handle = _SlowRegistration(client._client_handle, answered)
        future = client.send_goal_async(InstrumentRun.Goal(operation=operation))
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.05)
        return future.done() and future.result().accepted
    finally:
        client.destroy()
        executor.shutdown(timeout_sec=5.0)
        node.destroy_node()


def test_the_reply_that_arrives_before_registration_is_kept(reader, rclpy_context):
    from autolab.nodes.action_client import ActionClient

    assert _accepted_within(ActionClient, rclpy_context, "open_door", True, 10.0), reader.output()[-2000:]


def test_rclpy_7_1_6_loses_that_reply_which_is_why_ours_exists(reader, rclpy_context):
    """The control: with the same window, rclpy's own client never hears the acceptance.

    When the pinned rclpy gains the upstream fix this fails, and autolab's subclass can go.
    """
    from rclpy.action import ActionClient

    assert not _accepted_within(ActionClient, rclpy_context, "close_door", False, 5.0)
