"""Recovery policies: what a protocol wants done when a device step fails.

The protocol's `recovery` block maps typed device error names (the action
results' enums, e.g. COMMUNICATION_ERROR, GRASP_FAILED) to a policy:
`retry` (with exponential backoff, up to `retries` times), `skip` (carry on),
`fail` (the run fails with the device's error) or `operator` (wait for a
person to acknowledge, then try again). E-stops and cancels always fail: no
policy may retry through a stopped cell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NEVER_RECOVER = frozenset({"ESTOP", "CANCELED"})


@dataclass(frozen=True)
class Decision:
    action: str  # retry | skip | fail | operator
    delay_s: float = 0.0
    reason: str = ""


@dataclass
class RecoveryPolicy:
    default: str = "fail"
    on: dict[str, str] = field(default_factory=dict)
    retries: int = 2
    backoff_s: float = 1.0
    backoff_factor: float = 2.0
    operator_timeout_s: float = 3600.0

    @classmethod
    def from_protocol(cls, block: dict[str, Any] | None) -> RecoveryPolicy:
        block = block or {}
        return cls(default=block.get("default", "fail"), on=dict(block.get("on_error", {})),
                   retries=int(block.get("retries", 2)), backoff_s=float(block.get("backoff_s", 1.0)),
                   operator_timeout_s=float(block.get("operator_timeout_s", 3600.0)))

    def decide(self, error_name: str, failures_so_far: int) -> Decision:
        """`failures_so_far` counts this failure too (1 on the first)."""
        if error_name in NEVER_RECOVER:
            return Decision("fail", reason=f"{error_name} is never retried")
        action = self.on.get(error_name, self.default)
        if action == "retry":
            if failures_so_far > self.retries:
                return Decision("fail", reason=f"{error_name}: gave up after {self.retries} retries")
            delay = self.backoff_s * self.backoff_factor ** (failures_so_far - 1)
            return Decision("retry", delay, f"{error_name}: retry {failures_so_far}/{self.retries} in {delay:g} s")
        return Decision(action, reason=f"{error_name}: policy {action}")
