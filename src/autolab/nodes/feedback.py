"""Action feedback at a rate clients keep up with, without ever skipping a phase.

A controller that polls at 200 Hz would otherwise publish feedback at 200 Hz; a
client's feedback queue keeps only the newest few messages, so one that stalls
for a moment on a loaded machine lost whole short phases (grasp, place).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class FeedbackGate:
    """Says when feedback is due: on every phase change, else at most once per `period_s`."""

    def __init__(self, period_s: float = 0.05, clock: Callable[[], float] = time.monotonic) -> None:
        self.period_s = period_s
        self._clock = clock
        self._phase: str | None = None
        self._last = float("-inf")

    def due(self, phase: str) -> bool:
        now = self._clock()
        if phase == self._phase and now - self._last < self.period_s:
            return False
        self._phase, self._last = phase, now
        return True
