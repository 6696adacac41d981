"""rclpy's ActionClient without the lost-reply race of ros2/rclpy#1123, for the Jazzy wheels we pin.

Sending a goal, cancel or result request and registering its future are two steps.
An executor thread that takes the reply in between finds no request, logs "Ignoring
unexpected goal response. There may be more than one action server…" and the future
never completes: the caller waits forever for a goal that the server has accepted.
Upstream fixed it with a lock (rclpy#1308, backported late 2025); rclpy 7.1.6 lacks it.
Here requests are sent and registered under a lock, and taking a reply waits for it.
"""

from __future__ import annotations

import threading
from typing import Any

from rclpy.action import ActionClient as _RclpyActionClient


class ActionClient(_RclpyActionClient):
    """Drop-in for `rclpy.action.ActionClient`; safe to use from several executor threads."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._request_lock = threading.RLock()
        super().__init__(*args, **kwargs)

    def send_goal_async(self, *args: Any, **kwargs: Any):
        with self._request_lock:
            return super().send_goal_async(*args, **kwargs)

    def _cancel_goal_async(self, goal_handle):
        with self._request_lock:
            return super()._cancel_goal_async(goal_handle)

    def _get_result_async(self, goal_handle):
        with self._request_lock:
            return super()._get_result_async(goal_handle)

    def take_data(self):
        # A reply taken while its request is between "sent" and "registered" waits for the latter.
        with self._request_lock:
            return super().take_data()
