"""Duration estimates: per step from the capability table, per protocol by critical path.

Sequences add, parallel branches take the longest, an `if` takes its longer
branch, fallbacks and retries count their first try (what a plan expects, not
the worst case), and operator checkpoints count zero (reported apart).
"""

from __future__ import annotations

from collections.abc import Callable

from autolab.executive import capabilities as caps
from autolab.model.protocol import Concrete


def call_of(step: Concrete) -> tuple[str, str, dict]:
    """(device, operation, parameters) of a device leaf as the device will see them.

    Well ranges are expanded to explicit comma-separated lists, which every
    instrument accepts.
    """
    f = step.fields
    if step.kind == "transfer":
        return "arm", "transfer", {}
    if step.kind == "dispense":
        params: dict = {"dest_wells": _wells_text(f["wells"]), "volume_ul": f["volume_ul"]}
        device = f.get("device", "liquid_handler1")
        if f.get("source_labware"):
            params["source_labware"] = f["source_labware"]
            params["source_wells"] = _wells_text(f.get("source_wells", f["wells"]))
            return device, "transfer", params
        params["reagent"] = f.get("reagent", "water")
        return device, "dispense", params
    params = dict(f.get("parameters") or {})
    if isinstance(params.get("wells"), str | list):
        params["wells"] = _wells_text(params["wells"])
    return f["device"], f["operation"], params


def _wells_text(wells: str | list) -> str:
    expanded = caps.wells_of(wells)
    return ",".join(expanded) if expanded else (",".join(wells) if isinstance(wells, list) else str(wells))


def leaf_seconds(step: Concrete, device_types: dict[str, str], transfer_s: float = caps.TRANSFER_S,
                 device_params: dict[str, dict] | None = None) -> float:
    if step.kind == "wait":
        return float(step.fields["seconds"])
    if step.kind == "checkpoint":
        return 0.0
    if step.kind == "transfer":
        return transfer_s
    device, operation, params = call_of(step)
    op = caps.operation(device_types.get(device, ""), operation)
    if op is None:
        return 0.0
    return caps.duration(op, params, (device_params or {}).get(device))


def critical_path(steps: list[Concrete], seconds: Callable[[Concrete], float],
                  done: set[str] | None = None) -> float:
    """Expected seconds to run `steps` in sequence; leaves in `done` count zero."""
    return sum(_node(s, seconds, done or set()) for s in steps)


def _node(s: Concrete, seconds: Callable[[Concrete], float], done: set[str]) -> float:
    if not s.children:
        return 0.0 if s.path in done or s.kind in ("sequence",) else seconds(s)
    branch_totals = [critical_path(b, seconds, done) for b in s.children]
    if s.kind in ("parallel", "if"):
        return max(branch_totals, default=0.0)
    if s.kind == "fallback":
        return branch_totals[0] if branch_totals else 0.0
    if s.kind == "timeout":
        return min(branch_totals[0], float(s.fields["seconds"]))
    return sum(branch_totals)


def leaves(steps: list[Concrete]) -> list[Concrete]:
    return [n for s in steps for n in s.walk() if not n.children and n.kind != "sequence"]
