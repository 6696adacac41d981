"""Protocol → py_trees tree: a pure function of the concrete steps and the run's context."""

from __future__ import annotations

from collections.abc import Callable

import py_trees

from autolab.executive.behaviours import (
    Deadline,
    DeviceStep,
    IfMeasured,
    OperatorCheckpoint,
    RetryBackoff,
    WaitStep,
)
from autolab.executive.context import RunContext
from autolab.executive.devices import DeviceCall
from autolab.executive.errors import CompileError
from autolab.executive.estimates import call_of
from autolab.model.protocol import Concrete


def build_tree(name: str, steps: list[Concrete], ctx: RunContext,
               seconds: Callable[[Concrete], float]) -> py_trees.behaviour.Behaviour:
    """The root of a run's tree; `seconds` gives each leaf's estimate (for timeouts and the ETA)."""
    root = py_trees.composites.Sequence(name=name, memory=True, children=[_build(s, ctx, seconds) for s in steps])
    root.path, root.kind = "", "protocol"
    return root


def _sequence(name: str, path: str, children: list) -> py_trees.composites.Sequence:
    seq = py_trees.composites.Sequence(name=name, memory=True, children=children)
    seq.path, seq.kind = path, "sequence"
    return seq


def _build(s: Concrete, ctx: RunContext, seconds) -> py_trees.behaviour.Behaviour:
    def branch(i: int, label: str) -> py_trees.composites.Sequence:
        return _sequence(label, f"{s.path}/{label}", [_build(c, ctx, seconds) for c in s.children[i]])

    if s.kind in ("transfer", "instrument", "dispense"):
        return DeviceStep(ctx, s, call_factory(s), seconds(s))
    if s.kind == "wait":
        return WaitStep(ctx, s)
    if s.kind == "checkpoint":
        return OperatorCheckpoint(ctx, s)
    if s.kind == "parallel":
        node = py_trees.composites.Parallel(
            name=s.id, policy=py_trees.common.ParallelPolicy.SuccessOnAll(synchronise=True),
            children=[branch(i, f"branch{i}") for i in range(len(s.children))])
    elif s.kind == "fallback":
        node = py_trees.composites.Selector(
            name=s.id, memory=True, children=[branch(i, f"option{i}") for i in range(len(s.children))])
    elif s.kind in ("for_each", "sequence"):
        node = _sequence(s.id if s.kind == "for_each" else s.path.rsplit("/", 1)[-1], s.path,
                         [_build(c, ctx, seconds) for c in s.children[0]])
    elif s.kind == "if":
        return IfMeasured(ctx, s, branch(0, "then"), branch(1, "else"))
    elif s.kind == "retry":
        return RetryBackoff(ctx, s, branch(0, "body"))
    elif s.kind == "timeout":
        return Deadline(ctx, s, branch(0, "body"))
    else:
        raise CompileError(f"step '{s.path}': unknown step kind '{s.kind}'")
    node.path, node.kind = s.path, s.kind
    return node


def call_factory(s: Concrete) -> Callable[[RunContext], DeviceCall]:
    """How a leaf makes its device call when it is about to start (source resolved then)."""
    device, operation, params = call_of(s)
    labware = str(s.fields.get("labware", "") or "")

    def make(ctx: RunContext) -> DeviceCall:
        if s.kind == "transfer":
            source = s.fields.get("source") or ctx.tracker.location(labware)
            if not source:
                raise LookupError(f"do not know where '{labware}' is; give the transfer a source")
            return DeviceCall("transfer", "arm", "transfer", labware, str(source), str(s.fields["destination"]),
                              {}, ctx.run_id, s.path)
        return DeviceCall("instrument", device, operation, labware, parameters=dict(params),
                          run_id=ctx.run_id, step_id=s.path)

    return make
