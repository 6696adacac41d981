"""The safety latch: e-stop, interlocks and watchdogs as a plain state machine.

The e-stop latches until an explicit reset, and a reset is refused while the
cause is still present (an interlock open, a watchdog expired). Every change
bumps `sequence`, so a consumer that missed a message still sees that the state
moved.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import IntEnum


class SafetyStatus(IntEnum):
    """Mirrors autolab_interfaces/SafetyState STATE_* constants."""

    OK = 0
    ESTOP = 1
    INTERLOCK = 2
    FAULT = 3


@dataclass(frozen=True)
class SafetySnapshot:
    status: SafetyStatus
    estop_latched: bool
    motion_allowed: bool
    active_interlocks: tuple[str, ...]
    faults: tuple[str, ...]
    source: str
    reason: str
    sequence: int


class ResetRefused(RuntimeError):
    """A reset was asked while a cause of the stop is still active."""


@dataclass
class SafetyLatch:
    """Thread-safe: services and timers of a multi-threaded node call it concurrently."""

    _estop: bool = False
    _source: str = ""
    _reason: str = ""
    _interlocks: set[str] = field(default_factory=set)
    _faults: set[str] = field(default_factory=set)
    _sequence: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def estop(self, source: str, reason: str) -> SafetySnapshot:
        with self._lock:
            if not self._estop:
                self._estop = True
                self._source = source or "unknown"
                self._reason = reason or "e-stop pressed"
                self._sequence += 1
            return self._snapshot()

    def reset(self, source: str) -> SafetySnapshot:
        """Clear the e-stop latch. Raises ResetRefused while an interlock or fault is active."""
        with self._lock:
            if self._interlocks or self._faults:
                causes = sorted(self._interlocks | self._faults)
                raise ResetRefused(f"cannot reset while active: {', '.join(causes)}")
            if self._estop:
                self._estop = False
                self._source = source or "unknown"
                self._reason = "reset"
                self._sequence += 1
            return self._snapshot()

    def set_interlock(self, name: str, active: bool) -> SafetySnapshot:
        """An interlock (e.g. a door) pauses motion while active; it does not latch."""
        with self._lock:
            changed = (name in self._interlocks) != active
            if active:
                self._interlocks.add(name)
            else:
                self._interlocks.discard(name)
            if changed:
                self._sequence += 1
            return self._snapshot()

    def set_fault(self, name: str, active: bool, latch: bool = True) -> SafetySnapshot:
        """A fault (watchdog, device failure) stops motion; with `latch`, it also latches the e-stop."""
        with self._lock:
            changed = (name in self._faults) != active
            if active:
                self._faults.add(name)
                if latch and not self._estop:
                    self._estop = True
                    self._source = name
                    self._reason = f"fault: {name}"
            else:
                self._faults.discard(name)
            if changed:
                self._sequence += 1
            return self._snapshot()

    def snapshot(self) -> SafetySnapshot:
        with self._lock:
            return self._snapshot()

    def _snapshot(self) -> SafetySnapshot:
        if self._estop:
            status = SafetyStatus.ESTOP
        elif self._faults:
            status = SafetyStatus.FAULT
        elif self._interlocks:
            status = SafetyStatus.INTERLOCK
        else:
            status = SafetyStatus.OK
        return SafetySnapshot(
            status=status,
            estop_latched=self._estop,
            motion_allowed=status == SafetyStatus.OK,
            active_interlocks=tuple(sorted(self._interlocks)),
            faults=tuple(sorted(self._faults)),
            source=self._source,
            reason=self._reason,
            sequence=self._sequence,
        )
