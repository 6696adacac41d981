"""Lets a motion node follow /safety/state: refuse motion while stopped, react on a stop edge.

Motion is refused until a safety state has been received at all: a cell with
no safety node is not a safe cell. `require_safety=False` (a parameter of the
motion node) lifts that, for bench set-ups only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from rclpy.node import Node

from autolab.nodes.qos import LATCHED
from autolab_interfaces.msg import SafetyState


class SafetyWatch:
    def __init__(
        self,
        node: Node,
        on_stop: Callable[[str], None] | None = None,
        topic: str = "safety/state",
        require_safety: bool = True,
    ) -> None:
        self._lock = threading.Lock()
        self._state: SafetyState | None = None
        self._first = threading.Event()
        self._on_stop = on_stop
        self._require = require_safety
        self._sub = node.create_subscription(SafetyState, topic, self._on_state, LATCHED)

    def _on_state(self, msg: SafetyState) -> None:
        with self._lock:
            was_allowed = self._state is None or self._state.motion_allowed
            self._state = msg
        self._first.set()
        if was_allowed and not msg.motion_allowed and self._on_stop is not None:
            self._on_stop(self.reason())

    def await_state(self, timeout: float = 10.0) -> bool:
        """Wait (bounded) for the first safety state; True once one has arrived.

        Call it where blocking is allowed (an action's execute thread), before
        judging a goal: a goal sent right after start-up can come before the
        latched state has been delivered, and refusing it then would be a race.
        """
        return not self._require or self._first.wait(timeout)

    @property
    def motion_allowed(self) -> bool:
        with self._lock:
            if self._state is None:
                return not self._require
            return bool(self._state.motion_allowed)

    @property
    def estop_latched(self) -> bool:
        with self._lock:
            return bool(self._state and self._state.estop_latched)

    def reason(self) -> str:
        """Why motion is refused, as a sentence; empty when allowed."""
        with self._lock:
            s = self._state
        if s is None:
            if not self._require:
                return ""
            return "no safety state received on /safety/state (is the safety node running?)"
        if s.motion_allowed:
            return ""
        if s.estop_latched:
            return f"e-stop latched by {s.source or 'unknown'}: {s.reason} (reset it with the safety/reset service)"
        if s.active_interlocks:
            return f"interlock active: {', '.join(s.active_interlocks)}"
        return f"safety state {s.state}: {s.reason}"
