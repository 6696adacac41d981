"""py_trees behaviours of a protocol tree. Nothing here blocks a tick or touches ROS.

A device step reserves what it needs (all-or-nothing), starts its call on the
`DeviceBackend` and returns RUNNING until the call is done; a stopped
(preempted, aborted, timed-out) step cancels its call on the device. Waits
(timers, backoff, operators) are checked against the run's clock, and every
one of them has a bound.
"""

from __future__ import annotations

import operator as op_
from collections.abc import Callable, Iterator
from typing import Any

import py_trees
from py_trees.common import Status

from autolab.executive.context import PARK_SUFFIX, ParkRequest, RunContext, Wait
from autolab.executive.devices import DeviceCall, DeviceHandle, DeviceResult
from autolab.executive.recovery import NEVER_RECOVER, Decision
from autolab.model.protocol import Concrete


#: Bound on a device call with no `timeout_s`: generous against its estimate.
def default_timeout(estimate_s: float) -> float:
    return max(120.0, 3.0 * estimate_s)


class StepBehaviour(py_trees.behaviour.Behaviour):
    """A leaf for one concrete step; `path` is its unique id within the run."""

    def __init__(self, ctx: RunContext, step: Concrete) -> None:
        super().__init__(name=step.id)
        self.ctx, self.step, self.path, self.kind = ctx, step, step.path, step.kind

    def _succeed(self, **data: Any) -> Status:
        self.ctx.completed.add(self.path)
        self.ctx.waits.pop(self.path, None)
        self.ctx.log("step_succeeded", self.path, **data)
        self.ctx.changed()
        return Status.SUCCESS

    def _fail(self, error_name: str, message: str) -> Status:
        self.ctx.failure = (error_name, f"step '{self.path}': {message}")
        self.ctx.waits.pop(self.path, None)
        self.ctx.log("step_failed", self.path, error=error_name, message=message)
        return Status.FAILURE


class DeviceStep(StepBehaviour):
    """transfer / instrument / dispense: one device call with reservations and recovery.

    A transfer blocked in a plate deadlock may be asked (`ctx.park`, set by the scheduler) to park
    its plate first: it moves the plate to the parking place as a transfer of its own (path
    `<step>.park`, same reservations, records and recovery as any transfer), then waits for its
    destination again and later starts from the parking place.
    """

    def __init__(self, ctx: RunContext, step: Concrete, make_call: Callable[[RunContext], DeviceCall],
                 estimate_s: float) -> None:
        super().__init__(ctx, step)
        self._make_call = make_call
        self.estimate_s = estimate_s
        self.timeout_s = float(step.fields.get("timeout_s") or default_timeout(estimate_s))
        self._reset()

    def _reset(self) -> None:
        self._phase = "reserve"
        self._handle: DeviceHandle | None = None
        self._call: DeviceCall | None = None
        self._deadline = 0.0
        self._until = 0.0
        self._busy_until = 0.0
        self._failures = 0
        self._ack_id = ""
        self._parking: ParkRequest | None = None  # the park whose call is `_call` (or that is retried)
        self._park_failures = 0
        #: the call this leaf waits to start, while its reservations are refused (the scheduler looks)
        self.blocked_call: DeviceCall | None = None

    def initialise(self) -> None:
        self._reset()

    def update(self) -> Status:
        ctx = self.ctx
        if self.path in ctx.completed:
            return Status.SUCCESS
        now = ctx.clock.now()
        if self._phase == "backoff":
            if now < self._until:
                return Status.RUNNING
            self._phase = "reserve"
        if self._phase == "operator":
            if not ctx.request_ack(self._ack_id, ctx.waits[self.path].message):
                if now > self._until:
                    ctx.clear_ack(self._ack_id)
                    return self._fail("TIMEOUT", "no operator acknowledged the failure in time")
                return Status.RUNNING
            ctx.clear_ack(self._ack_id)
            self._phase = "reserve"
        if self._phase == "reserve":
            park = ctx.park
            if park is not None and park.step == self.path and park.state == "requested":
                return self._park(park, now)
            return self._reserve_and_start(now)
        return self._follow(now)

    def _reserve_and_start(self, now: float) -> Status:
        ctx = self.ctx
        self._phase, self._parking = "reserve", None
        if self._held_by_pause():
            return Status.RUNNING
        try:
            call = self._make_call(ctx)
        except LookupError as exc:
            return self._fail("INVALID_GOAL", str(exc))
        parked = ctx.parked.get(self.path)
        if parked and call.kind == "transfer" and ctx.tracker.location(call.labware) == parked:
            call.source = parked  # the executive moved the plate since the protocol named its source
        resources, occupied = step_resources(ctx, call)
        blockers = ctx.reservations.try_acquire(ctx.holder(self.path), resources, occupied)
        if blockers:
            b = blockers[0]
            self.blocked_call = call
            ctx.waits[self.path] = Wait(self.path, b.resource, b.holder.run_id, b.sentence())
            return Status.RUNNING
        return self._start(call, now)

    def _held_by_pause(self) -> bool:
        """Whether an operator's pause keeps this step from reserving anything (the wait says so)."""
        if self.ctx.paused:
            self.ctx.waits[self.path] = Wait(self.path, "operator:resume", "", "paused by an operator; resume to go on")
        return self.ctx.paused

    def _park(self, park: ParkRequest, now: float) -> Status:
        """Move the plate to the parking place: a transfer like any other, started without blocking."""
        ctx = self.ctx
        self._phase, self._parking = "reserve", park
        if self._held_by_pause():
            return Status.RUNNING
        if ctx.tracker.location(park.labware) != park.source:  # moved meanwhile: the scheduler looks again
            ctx.park = None
            return self._reserve_and_start(now)
        call = DeviceCall("transfer", "arm", "transfer", park.labware, park.source, park.destination, {},
                          ctx.run_id, park.path)
        resources, occupied = step_resources(ctx, call)
        blockers = ctx.reservations.try_acquire(ctx.holder(park.path), resources, occupied)
        if any(b.resource == f"location:{park.destination}" for b in blockers):
            ctx.park = None  # another run took the parking place first: the scheduler picks another
            return self._reserve_and_start(now)
        if blockers:
            b = blockers[0]
            ctx.waits[self.path] = Wait(self.path, b.resource, b.holder.run_id,
                                        f"to park '{park.labware}' in {park.destination}: {b.sentence()}")
            return Status.RUNNING
        return self._start(call, now)

    def _start(self, call: DeviceCall, now: float) -> Status:
        """Start a call whose reservations are held (under `call.step_id`), unless the device is busy."""
        ctx, key = self.ctx, call.step_id
        self.blocked_call = None
        busy = ctx.backend.busy(call.device)
        if busy:  # e.g. a goal sent before a restart is still running: wait it out, bounded
            ctx.reservations.release(ctx.holder(key))
            if self._busy_until == 0.0:
                self._busy_until = now + self.timeout_s
                ctx.clock.wake_at(self._busy_until)
            if now > self._busy_until:
                if self._parking is not None:
                    return self._give_up_park(f"{busy} for longer than {self.timeout_s:g} s", now)
                return self._fail("TIMEOUT", f"{busy} for longer than {self.timeout_s:g} s")
            ctx.waits[self.path] = Wait(self.path, f"device:{call.device}", "", f"waiting: {busy}")
            ctx.clock.wake_at(now + 1.0)
            return Status.RUNNING
        ctx.waits.pop(self.path, None)
        self._busy_until = 0.0
        self._call = call
        self._handle = ctx.backend.start(call)
        self._deadline = now + self.timeout_s
        ctx.clock.wake_at(self._deadline)
        self._phase = "running"
        ctx.active.add(key)
        ctx.in_flight[key] = {"kind": call.kind, "device": call.device, "operation": call.operation,
                              "labware": call.labware, "source": call.source, "destination": call.destination}
        ctx.log("step_started", key, **call_record(call))
        ctx.changed()
        return Status.RUNNING

    def _follow(self, now: float) -> Status:
        ctx, handle, call = self.ctx, self._handle, self._call
        assert handle is not None and call is not None
        if not handle.done():
            if now <= self._deadline:
                return Status.RUNNING
            handle.cancel()
            result = DeviceResult(False, 0, "TIMEOUT", f"no result within {self.timeout_s:g} s; goal canceled")
        else:
            result = handle.result()
        ctx.reservations.release(ctx.holder(call.step_id))
        ctx.active.discard(call.step_id)
        ctx.in_flight.pop(call.step_id, None)
        if self._parking is not None:
            return self._park_done(self._parking, call, result, now)
        if result.ok:
            if call.kind == "transfer":
                ctx.tracker.moved(call.labware, result.placed_at or call.destination, ctx.run_id)
                ctx.parked.pop(self.path, None)
            ctx.outputs[self.step.id] = dict(result.outputs)
            ctx.outputs[self.path] = dict(result.outputs)
            return self._succeed(**call_record(call), outputs=result.outputs, units=result.units,
                                 data_uri=result.data_uri)
        self._failures += 1
        decision = ctx.recovery.decide(result.error_name, self._failures)
        ctx.log("device_error", self.path, **call_record(call), error=result.error_name, message=result.error_msg,
                decision=decision.action)
        if decision.action in ("retry", "operator"):
            return self._recover(decision, call, result, now, self.path, self._failures)
        if decision.action == "skip":
            return self._succeed(skipped=True, error=result.error_name)
        return self._fail(result.error_name, f"{call.device}: {result.error_msg}")

    def _recover(self, decision: Decision, call: DeviceCall, result: DeviceResult, now: float, key: str,
                 failures: int) -> Status:
        """Wait (backoff or an operator's acknowledgement), then try the call again."""
        ctx = self.ctx
        if decision.action == "retry":
            self._phase, self._until = "backoff", now + decision.delay_s
            ctx.clock.wake_at(self._until)
            ctx.waits[self.path] = Wait(self.path, "backoff", "", decision.reason)
            return Status.RUNNING
        self._phase = "operator"
        self._ack_id = f"{key}#{failures}"
        self._until = now + ctx.recovery.operator_timeout_s
        ctx.clock.wake_at(self._until)
        msg = (f"{call.device} failed in step '{key}' ({result.error_name}: {result.error_msg}); "
               f"fix it and acknowledge '{self._ack_id}' to try again")
        ctx.waits[self.path] = Wait(self.path, f"operator:ack {self._ack_id}", "", msg)
        ctx.request_ack(self._ack_id, msg)
        ctx.changed()
        return Status.RUNNING

    def _park_done(self, park: ParkRequest, call: DeviceCall, result: DeviceResult, now: float) -> Status:
        ctx = self.ctx
        if result.ok:
            placed = result.placed_at or call.destination
            ctx.tracker.moved(call.labware, placed, ctx.run_id)
            ctx.parked[self.path] = placed
            park.state = "done"  # the scheduler lets the waiting run through at once
            ctx.log("step_succeeded", park.path, **call_record(call), outputs={})
            ctx.changed()
            return self._reserve_and_start(now)  # back to waiting for the destination
        self._park_failures += 1
        decision = ctx.recovery.decide(result.error_name, self._park_failures)
        ctx.log("device_error", park.path, **call_record(call), error=result.error_name,
                message=result.error_msg, decision=decision.action)
        if decision.action in ("retry", "operator"):
            return self._recover(decision, call, result, now, park.path, self._park_failures)
        reason = f"{call.device}: {result.error_name}: {result.error_msg}"
        if result.error_name in NEVER_RECOVER:  # as for any step: no run goes on through a stopped cell
            self._give_up_park(reason, now, wait=False)
            return self._fail(result.error_name, f"{call.device}: {result.error_msg} (while parking "
                                                 f"'{park.labware}' in {park.destination})")
        return self._give_up_park(reason, now)

    def _give_up_park(self, reason: str, now: float, wait: bool = True) -> Status:
        """Leave the plate where it is; the scheduler reports the deadlock with this reason."""
        park = self._parking
        assert park is not None
        self._parking = None
        park.state = "failed"
        park.reason = f"parking '{park.labware}' in {park.destination} failed ({reason})"
        self.ctx.log("step_failed", park.path, error="PARK_FAILED", message=park.reason)
        self.ctx.changed()
        return self._reserve_and_start(now) if wait else Status.RUNNING

    def terminate(self, new_status: Status) -> None:
        running = self._phase == "running" and self._handle is not None and not self._handle.done()
        if new_status == Status.INVALID and running:
            self._handle.cancel()
            self.ctx.log("step_canceled", self._call.step_id, **call_record(self._call),
                         message="stopped while in flight")
        if self._ack_id:
            self.ctx.clear_ack(self._ack_id)
        for key in (self.path, self.path + PARK_SUFFIX):
            self.ctx.reservations.release(self.ctx.holder(key))
            self.ctx.active.discard(key)
            self.ctx.in_flight.pop(key, None)
        if new_status == Status.INVALID:
            self.ctx.waits.pop(self.path, None)
            if self.ctx.park is not None and self.ctx.park.step == self.path:
                self.ctx.park = None
        self._phase = "reserve"
        self.blocked_call = None


def call_record(call: DeviceCall) -> dict[str, Any]:
    """A call as the run store records it: device, operation, the labware acted on, parameters."""
    params = ({"source": call.source, "destination": call.destination} if call.kind == "transfer"
              else dict(call.parameters))
    return {"device": call.device, "operation": call.operation or call.kind, "labware": call.labware,
            "params": params}


def step_resources(ctx: RunContext, call: DeviceCall) -> tuple[set[str], dict]:
    """What a call reserves, and which of those are physically occupied by other labware."""
    from autolab.executive.reservations import Holder

    res = {f"device:{call.device}"}
    if call.labware:
        res.add(f"labware:{call.labware}")
    occupied: dict[str, Holder] = {}
    if call.kind == "transfer":
        res |= {f"location:{call.source}", f"location:{call.destination}"}
        other = ctx.tracker.occupant(call.destination)
        if other is not None and other != call.labware:
            occupied[f"location:{call.destination}"] = Holder(ctx.tracker.owner(other), f"'{other}' sitting there")
    return res, occupied


class WaitStep(StepBehaviour):
    def initialise(self) -> None:
        self._until = self.ctx.clock.now() + float(self.step.fields["seconds"])
        self.ctx.clock.wake_at(self._until)

    def update(self) -> Status:
        if self.path in self.ctx.completed:
            return Status.SUCCESS
        if self.ctx.clock.now() < self._until:
            return Status.RUNNING
        return self._succeed()


class OperatorCheckpoint(StepBehaviour):
    """Waits for a person to acknowledge (bounded by `timeout_s`, default one hour)."""

    def initialise(self) -> None:
        self._until = self.ctx.clock.now() + float(self.step.fields.get("timeout_s") or 3600.0)
        self.ctx.clock.wake_at(self._until)

    def update(self) -> Status:
        ctx = self.ctx
        if self.path in ctx.completed:
            return Status.SUCCESS
        message = str(self.step.fields["message"])
        if ctx.request_ack(self.path, message):
            ctx.acks_pending.pop(self.path, None)
            return self._succeed(acknowledged=ctx.acks_given.get(self.path, ""))
        if ctx.clock.now() > self._until:
            ctx.clear_ack(self.path)
            return self._fail("TIMEOUT", "no operator acknowledged the checkpoint in time")
        ctx.waits[self.path] = Wait(self.path, f"operator:ack {self.path}", "", message)
        return Status.RUNNING

    def terminate(self, new_status: Status) -> None:
        if new_status == Status.INVALID:
            self.ctx.acks_pending.pop(self.path, None)
            self.ctx.waits.pop(self.path, None)


def _clear_completed(ctx: RunContext, prefix: str) -> None:
    for p in [p for p in ctx.completed if p.startswith(prefix)]:
        ctx.completed.discard(p)


class RetryBackoff(py_trees.decorators.Decorator):
    """Run the child again when it fails, up to `attempts` in all, waiting longer each time."""

    def __init__(self, ctx: RunContext, step: Concrete, child: py_trees.behaviour.Behaviour) -> None:
        super().__init__(name=step.id, child=child)
        self.ctx, self.step, self.path, self.kind = ctx, step, step.path, "retry"
        self.attempts = int(step.fields["attempts"])
        self.backoff_s = float(step.fields.get("backoff_s", 0.0))
        self.factor = float(step.fields.get("backoff_factor", 2.0))
        self._attempt, self._until = 0, None

    def initialise(self) -> None:
        self._attempt, self._until = 0, None

    def tick(self) -> Iterator[py_trees.behaviour.Behaviour]:
        if self.status != Status.RUNNING:
            self.initialise()
        if self._until is not None:
            if self.ctx.clock.now() < self._until:
                self.status = Status.RUNNING
                yield self
                return
            self._until = None
        yield from self.decorated.tick()
        status = self.decorated.status
        if status == Status.FAILURE and self._attempt + 1 < self.attempts:
            self._attempt += 1
            delay = self.backoff_s * self.factor ** (self._attempt - 1)
            self._until = self.ctx.clock.now() + delay
            self.ctx.clock.wake_at(self._until)
            self.ctx.log("retry", self.path, attempt=self._attempt + 1, delay_s=delay)
            _clear_completed(self.ctx, self.path + "/")
            self.ctx.failure = None
            self.decorated.stop(Status.INVALID)
            self.status = Status.RUNNING
        elif status != Status.RUNNING:
            self.stop(status)
        else:
            self.status = status
        yield self

    def update(self) -> Status:
        return self.decorated.status


class Deadline(py_trees.decorators.Decorator):
    """Fail (and cancel whatever runs inside) when the child takes longer than `seconds`."""

    def __init__(self, ctx: RunContext, step: Concrete, child: py_trees.behaviour.Behaviour) -> None:
        super().__init__(name=step.id, child=child)
        self.ctx, self.step, self.path, self.kind = ctx, step, step.path, "timeout"
        self.seconds = float(step.fields["seconds"])
        self._until = 0.0

    def initialise(self) -> None:
        self._until = self.ctx.clock.now() + self.seconds
        self.ctx.clock.wake_at(self._until)

    def update(self) -> Status:
        status = self.decorated.status
        if status == Status.RUNNING and self.ctx.clock.now() > self._until:
            self.decorated.stop(Status.INVALID)  # cancels running device goals
            self.ctx.failure = ("TIMEOUT", f"step '{self.path}': took longer than {self.seconds:g} s")
            return Status.FAILURE
        return status


_OPS: dict[str, Callable[[Any, Any], bool]] = {"<": op_.lt, "<=": op_.le, ">": op_.gt, ">=": op_.ge,
                                                "==": op_.eq, "!=": op_.ne}


class IfMeasured(py_trees.composites.Composite):
    """Run `then` or `else` on an output measured by an earlier step (decided once per entry)."""

    def __init__(self, ctx: RunContext, step: Concrete, then: py_trees.behaviour.Behaviour,
                 otherwise: py_trees.behaviour.Behaviour) -> None:
        super().__init__(name=step.id, children=[then, otherwise])
        self.ctx, self.step, self.path, self.kind = ctx, step, step.path, "if"
        self._chosen: int | None = None

    def evaluate(self) -> bool | None:
        cond = self.step.fields["condition"]
        value = self.ctx.outputs.get(cond["step"], {}).get(cond["output"])
        if value is None:
            return None
        try:
            return bool(_OPS[cond["op"]](value, cond["value"]))
        except TypeError:
            return None

    def tick(self) -> Iterator[py_trees.behaviour.Behaviour]:
        if self.status != Status.RUNNING:
            for child in self.children:
                if child.status != Status.INVALID:
                    child.stop(Status.INVALID)
            self.initialise()
            verdict = self.evaluate()
            if verdict is None:
                cond = self.step.fields["condition"]
                self.ctx.failure = ("INVALID_GOAL", f"step '{self.path}': step '{cond['step']}' gave no "
                                    f"usable output '{cond['output']}' to compare")
                self.stop(Status.FAILURE)
                yield self
                return
            self._chosen = 0 if verdict else 1
            self.ctx.log("branch", self.path, taken="then" if verdict else "else")
        child = self.children[self._chosen or 0]
        self.current_child = child
        yield from child.tick()
        if child.status != Status.RUNNING:
            self.stop(child.status)
        else:
            self.status = Status.RUNNING
        yield self
