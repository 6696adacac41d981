"""The executive's core: a priority queue of runs, each a py_trees tree, ticked together.

Runs interleave on the cell through per-step reservations (see reservations.py);
higher-priority runs are ticked first, so they win a resource freed in the same
tick. Every run is recorded in the run store from submission: steps, device
commands (on the labware they acted on, so they appear in its lineage) and a
checkpoint after each step, so a restarted executive finds interrupted runs and
resumes them (`recover`) or finishes them as failed with the reason.

Every run also emits event documents (autolab.data.documents): a start document
at submission, one event per device result that carries outputs or data (in a
stream per device and operation, declared on first use with the outputs' units),
and a stop document when it ends. They are stored as they are emitted; the
recorder node tails the store and republishes them on /recorder/documents.

Plates can deadlock where steps cannot; after each tick the executive finds
such cycles and, under the default `deadlock_policy` "park", breaks them itself
as cell schedulers do (see deadlock.py).

Times in the store are wall clock (Unix seconds); the run's clock, simulated
under a simulation, drives the trees, bounds and estimates only.
No rclpy here: the node wires a ROS backend and a ROS clock in.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import py_trees
from py_trees.common import Status

from autolab.data.documents import RunDocuments
from autolab.data.errors import DocumentError
from autolab.executive import capabilities as caps
from autolab.executive.compiler import build_tree
from autolab.executive.context import PARK_SUFFIX, LabwareTracker, Place, RunContext, Wait
from autolab.executive.deadlock import DeadlockBreaker
from autolab.executive.devices import Clock, DeviceBackend
from autolab.executive.errors import CommandRefused, ResumeError, UnknownRun
from autolab.executive.estimates import call_of, critical_path, leaf_seconds, leaves
from autolab.executive.recovery import RecoveryPolicy
from autolab.executive.reservations import Reservations
from autolab.model.protocol import Concrete, Protocol, expand, parse_protocol

#: RunProtocol result error names by outcome cause (the action's enum names).
FAILURE_CODES = {"ESTOP": "ESTOP", "TIMEOUT": "TIMEOUT", "CANCELED": "CANCELED"}
ACTIVE = ("running", "paused", "waiting_operator")
FINAL = ("succeeded", "failed", "aborted", "canceled")
#: Stop document exit status by run outcome.
EXIT_STATUS = {"succeeded": "success", "failed": "fail"}


@dataclass
class Run:
    run_id: str
    protocol: Protocol
    params: dict[str, Any]
    priority: int
    operator: str
    seq: int
    ctx: RunContext
    steps: list[Concrete]
    root: py_trees.behaviour.Behaviour | None = None
    status: str = "queued"
    error_code: str = "NONE"
    error_msg: str = ""
    started_at: float | None = None
    ended_at: float | None = None
    store_steps: dict[str, str] = field(default_factory=dict)
    step_started: dict[str, float] = field(default_factory=dict)  # leaf path -> wall time of its call
    docs: RunDocuments | None = None
    history: deque = field(default_factory=lambda: deque(maxlen=200))
    resumed: bool = False
    protocol_yaml: str = ""

    @property
    def done(self) -> bool:
        return self.status in FINAL

    def leaf_count(self) -> int:
        return len(leaves(self.steps))

    def progress(self) -> float:
        total = self.leaf_count()
        return 1.0 if self.status == "succeeded" else (len(self.ctx.completed) / total if total else 0.0)

    def active_step(self) -> str:
        """The running leaves' paths (several in parallel branches), comma-separated."""
        running = [b.path for b in (self.root.iterate() if self.root is not None and not self.done else ())
                   if not b.children and b.status == Status.RUNNING and hasattr(b, "path")]
        return ", ".join(running)


class Executive:
    """The queue of runs and their trees.

    `parking` lists the places a plate may be parked in to break a deadlock (`parking_places`
    of the workcell; none: deadlocks are only reported) and `labware_types` maps labware ids to
    their types, so a plate only goes where the location accepts it.
    """

    def __init__(self, backend: DeviceBackend, clock: Clock, store: Any = None,
                 tracker: LabwareTracker | None = None, device_types: dict[str, str] | None = None,
                 max_active: int = 8, transfer_s: float = caps.TRANSFER_S, workcell_hash: str = "",
                 preflight=None, deadlock_policy: str = "park", parking: Iterable[Place] = (),
                 labware_types: dict[str, str] | None = None) -> None:
        self.backend, self.clock, self.store = backend, clock, store
        self.tracker = tracker or LabwareTracker()
        self.device_types = dict(device_types or caps.DEFAULT_DEVICE_TYPES)
        self.reservations = Reservations()
        self.max_active = max_active
        self.transfer_s = transfer_s
        self.workcell_hash = workcell_hash
        self.preflight = preflight  # callable(protocol, values) -> list[str] problems, or None
        self.runs: dict[str, Run] = {}
        self.deadlock = DeadlockBreaker(self.runs, self.tracker, self.reservations, clock, self._tick_run,
                                        deadlock_policy, parking, labware_types)
        self._dirty: set = set()  # contexts to checkpoint at the end of this tick
        self.lock = threading.RLock()
        self._seq = itertools.count()

    # ------------------------------------------------------------------ submission
    def seconds(self, step: Concrete) -> float:
        return leaf_seconds(step, self.device_types, self.transfer_s)

    def submit(self, protocol: Protocol, values: dict[str, Any] | None = None, priority: int = 0,
               operator: str = "", run_id: str | None = None) -> Run:
        """Queue a run. Raises ParameterError, or PreflightFailed (from the pre-flight hook)."""
        params = protocol.bind(values)
        if self.preflight is not None:
            self.preflight(protocol, params)
        with self.lock:
            if self.store is not None:
                run_id = self.store.create_run(protocol.name, protocol.text or protocol.to_yaml(), params,
                                               operator=operator, workcell_hash=self.workcell_hash,
                                               metadata={"priority": priority, "source": protocol.source},
                                               run_id=run_id)
            elif run_id is None:
                from autolab.data.ids import new_id

                run_id = new_id()
            run = self._make_run(run_id, protocol, params, priority, operator)
            self.runs[run_id] = run
            self._checkpoint(run.ctx)
            self._open_documents(run)
            return run

    def _make_run(self, run_id: str, protocol: Protocol, params: dict, priority: int, operator: str) -> Run:
        ctx = RunContext(run_id=run_id, protocol_name=protocol.name, clock=self.clock, backend=self.backend,
                         reservations=self.reservations, tracker=self.tracker,
                         recovery=RecoveryPolicy.from_protocol(protocol.recovery), priority=priority,
                         params=params, on_change=self._dirty.add)
        steps = expand(protocol, params)
        run = Run(run_id, protocol, params, priority, operator, next(self._seq), ctx, steps)
        run.root = build_tree(protocol.name, steps, ctx, self.seconds)
        return run

    # ------------------------------------------------------------------ ticking
    def tick(self) -> None:
        """Start queued runs that fit, tick every active run (highest priority first)."""
        with self.lock:
            ordered = sorted((r for r in self.runs.values() if not r.done), key=lambda r: (-r.priority, r.seq))
            active = sum(1 for r in ordered if r.status != "queued")
            for run in ordered:
                if run.status == "queued":
                    if active >= self.max_active:
                        run.ctx.waits[""] = Wait("", "run slot", "", f"waiting for a run slot "
                                                 f"({active} of {self.max_active} runs active)")
                        continue
                    claims = {f"claim:{lw}" for lw in _labware_of(run.steps)}
                    blockers = self.reservations.try_acquire(run.ctx.holder("(run)"), claims)
                    if blockers:
                        b = blockers[0]
                        run.ctx.waits[""] = Wait("", b.resource.replace("claim:", "labware:"), b.holder.run_id,
                                                 f"waiting for labware '{b.resource[6:]}', in use by run "
                                                 f"{b.holder.run_id}")
                        continue
                    run.ctx.waits.pop("", None)
                    run.status, run.started_at = "running", self.clock.now()
                    active += 1
                    run.history.append({"t": self.clock.now(), "kind": "run_started"})
                self._tick_run(run)
            self.deadlock.resolve()

    def _tick_run(self, run: Run) -> None:
        assert run.root is not None
        run.root.tick_once()
        self._drain(run)
        if run.ctx in self._dirty:
            # Once per tick, and before any goal created in it is sent (the ROS backend sends
            # on the next poll), so a restart always knows what may be in flight.
            self._dirty.discard(run.ctx)
            self._checkpoint(run.ctx)
        if run.root.status == Status.SUCCESS:
            self._finish(run, "succeeded", "NONE", "")
        elif run.root.status == Status.FAILURE:
            name, msg = run.ctx.failure or ("DEVICE_FAILED", "a step failed")
            self._finish(run, "failed", FAILURE_CODES.get(name, "DEVICE_FAILED"), f"{name}: {msg}")
        else:
            run.status = ("paused" if run.ctx.paused and not run.ctx.active else
                          "waiting_operator" if run.ctx.acks_pending else "running")
        run.ctx.waits.pop("(deadlock)", None)

    def run_until_done(self, limit_s: float = 1e7, max_ticks: int = 1_000_000) -> None:
        """Drive a simulated clock from event to event until no run can progress."""
        from autolab.executive.devices import SimClock

        assert isinstance(self.clock, SimClock), "run_until_done needs a SimClock"
        for _ in range(max_ticks):
            self.tick()
            if all(r.done for r in self.runs.values()):
                return
            nxt = self.clock.next_event()
            if nxt is None or nxt > limit_s:
                return  # waiting on people (acknowledge/resume) or stuck: the caller decides
            self.clock.advance_to(nxt)

    def _drain(self, run: Run) -> None:
        """Move the run's new events to the store (steps, commands, event documents) and its history."""
        events, run.ctx.events = run.ctx.events, []
        for ev in events:
            run.history.append(ev)
            if self.store is None:
                continue
            kind, path, wall = ev["kind"], ev["step"], ev["wall"]
            if kind == "step_started":
                earlier = run.store_steps.pop(path, None)
                if earlier is not None:  # a failed attempt that recovery tries again (its command has the error)
                    self.store.finish_step(earlier, "failed", "the device failed; tried again", ended_at=wall)
                run.store_steps[path] = self.store.add_step(
                    run.run_id, path.rsplit("/", 1)[-1], ev.get("operation", ""), step_key=path, started_at=wall)
                run.step_started[path] = wall
            elif kind in ("step_succeeded", "step_failed", "step_canceled"):
                sid = run.store_steps.pop(path, None)
                outcome = {"step_succeeded": "skipped" if ev.get("skipped") else "succeeded",
                           "step_failed": "failed", "step_canceled": "aborted"}[kind]
                if sid is not None:
                    self.store.finish_step(sid, outcome, ev.get("message", ""), ended_at=wall)
                if "device" in ev and kind == "step_succeeded":
                    self._record_command(run, ev, sid, {"outputs": ev.get("outputs", {}),
                                                        "data_uri": ev.get("data_uri", "")})
                    self._emit_reading(run, ev)
                elif "device" in ev:  # a goal canceled in flight (abort, timeout of an enclosing step)
                    self._record_command(run, ev, sid, {}, error_code=1, error_msg=f"CANCELED: {ev['message']}")
                run.step_started.pop(path, None)
            elif kind == "device_error":
                self._record_command(run, ev, run.store_steps.get(path), {"decision": ev["decision"]}, error_code=1,
                                     error_msg=f"{ev['error']}: {ev['message']}")

    def _record_command(self, run: Run, ev: dict, step_id: str | None, result: dict, error_code: int = 0,
                        error_msg: str = "") -> None:
        """A device call as a command record: wall-clock start and end, on the labware it acted on."""
        self.store.record_command(run.run_id, ev["device"], ev.get("operation") or ev["step"], ev.get("params", {}),
                                  result, error_code, run.step_started.get(ev["step"], ev["wall"]), ev["wall"],
                                  step_id=step_id, error_msg=error_msg, labware=ev.get("labware") or None)

    # ------------------------------------------------------------------ event documents
    def _open_documents(self, run: Run) -> None:
        """Start the run's document stream, or continue it after a restart; stored as emitted."""
        if self.store is None:
            return
        docs = RunDocuments.resume(run.run_id, self.store) if run.resumed else RunDocuments(run.run_id, self.store)
        if docs.start_doc is None:  # new, or interrupted between its creation and its start document
            rec = self.store.get_run(run.run_id)
            docs.start(protocol=rec.protocol_name, protocol_version=run.protocol.version,
                       protocol_hash=rec.protocol_hash, parameters=rec.parameters, operator=rec.operator,
                       workcell_hash=rec.workcell_hash, software_version=rec.software_version,
                       git_sha=rec.git_sha, host=rec.host, priority=run.priority, source=run.protocol.source)
        run.docs = docs

    def _emit_reading(self, run: Run, ev: dict) -> None:
        """One event per device result carrying outputs or stored data, in a stream per device and operation
        (an operation always yields the same outputs; a device's operations do not)."""
        data = dict(ev.get("outputs") or {})
        if ev.get("data_uri"):
            data["data_uri"] = ev["data_uri"]
        if run.docs is None or run.docs.stop_doc is not None or not data:
            return
        device = ev["device"]
        try:
            run.docs.reading(f"{device}.{ev.get('operation', '')}", data, units=ev.get("units"), source=device,
                             configuration={device: ev.get("params") or {}})
        except DocumentError as exc:  # the measurement itself is stored by the device; say what is missing
            run.history.append({"t": ev["t"], "wall": ev["wall"], "kind": "document_error", "step": ev["step"],
                                "message": str(exc)})

    def _close_documents(self, docs: RunDocuments | None, outcome: str, reason: str) -> None:
        if docs is not None and docs.start_doc is not None and docs.stop_doc is None:
            docs.stop(EXIT_STATUS.get(outcome, "abort"), reason)

    def _finish(self, run: Run, outcome: str, code: str, msg: str) -> None:
        run.status, run.error_code, run.error_msg, run.ended_at = outcome, code, msg, self.clock.now()
        self.reservations.release_run(run.run_id)
        run.ctx.waits.clear()
        run.ctx.acks_pending.clear()
        run.history.append({"t": self.clock.now(), "kind": "run_finished", "outcome": outcome, "error": msg})
        if self.store is not None:
            self._checkpoint(run.ctx)
            # Stop document before the run's outcome: a crash between the two resumes the run, which then
            # finds its stream closed; the other order could leave a finished run without a stop document.
            self._close_documents(run.docs, outcome, msg)
            self.store.finish_run(run.run_id, "aborted" if outcome == "canceled" else outcome, msg)

    def _checkpoint(self, ctx: RunContext) -> None:
        if self.store is None:
            return
        run = self.runs.get(ctx.run_id)
        state = ctx.state()
        if run is not None:
            if not run.protocol_yaml:  # normalised once: a checkpoint is written twice per step
                run.protocol_yaml = run.protocol.to_yaml()
            state.update(protocol_text=run.protocol_yaml, source=run.protocol.source,
                         params=run.params, priority=run.priority, operator=run.operator)
        self.store.save_checkpoint(ctx.run_id, json.loads(json.dumps(state, default=str)))

    # ------------------------------------------------------------------ commands
    def find(self, run_id: str = "") -> Run:
        with self.lock:
            if run_id:
                if run_id in self.runs:
                    return self.runs[run_id]
                matches = [r for k, r in self.runs.items() if k.startswith(run_id.upper())]
                if len(matches) == 1:
                    return matches[0]
                raise UnknownRun(f"no run '{run_id}'" if not matches else f"'{run_id}' matches several runs")
            live = [r for r in self.runs.values() if not r.done]
            if len(live) != 1:
                raise UnknownRun("no active run" if not live else
                                 f"{len(live)} runs are active; name one ({', '.join(r.run_id for r in live)})")
            return live[0]

    def pause(self, run_id: str = "") -> Run:
        run = self.find(run_id)
        if run.done:
            raise CommandRefused(f"run {run.run_id} has already {run.status}")
        run.ctx.paused = True
        run.history.append({"t": self.clock.now(), "kind": "paused"})
        return run

    def resume(self, run_id: str = "") -> Run:
        run = self.find(run_id)
        if not run.ctx.paused:
            raise CommandRefused(f"run {run.run_id} is not paused")
        run.ctx.paused = False
        run.history.append({"t": self.clock.now(), "kind": "resumed"})
        return run

    def abort(self, run_id: str = "", reason: str = "aborted by an operator", canceled: bool = False) -> Run:
        with self.lock:
            run = self.find(run_id)
            if run.done:
                raise CommandRefused(f"run {run.run_id} has already {run.status}")
            if run.root is not None and run.status != "queued":
                run.root.stop(Status.INVALID)  # cancels device goals in flight
            self._drain(run)
            self._finish(run, "canceled" if canceled else "aborted", "CANCELED" if canceled else "ABORTED", reason)
            return run

    def acknowledge(self, run_id: str = "", checkpoint: str = "", note: str = "", operator: str = "") -> Run:
        with self.lock:
            if run_id:
                run = self.find(run_id)
            else:
                waiting = [r for r in self.runs.values() if r.ctx.acks_pending and not r.done]
                if len(waiting) != 1:
                    raise UnknownRun("no run waits for an operator" if not waiting else
                                     "several runs wait for an operator; name the run")
                run = waiting[0]
            pending = run.ctx.acks_pending
            if not pending:
                raise CommandRefused(f"run {run.run_id} is not waiting for an acknowledgement")
            if checkpoint and checkpoint not in pending:  # a step id alone is enough when unique
                named = [k for k in pending if k.rsplit("/", 1)[-1].split("#")[0] == checkpoint]
                checkpoint = named[0] if len(named) == 1 else checkpoint
            if checkpoint and checkpoint not in pending:
                raise CommandRefused(f"run {run.run_id} does not wait for '{checkpoint}' "
                                     f"(it waits for: {', '.join(pending)})")
            key = checkpoint or next(iter(pending))
            run.ctx.acks_given[key] = note or "acknowledged"
            pending.pop(key, None)
            run.history.append({"t": self.clock.now(), "kind": "acknowledged", "checkpoint": key})
            if self.store is not None:
                self.store.record_operator_action(run.run_id, operator, "acknowledge",
                                                 {"checkpoint": key, "note": note})
            return run

    # ------------------------------------------------------------------ introspection
    def eta(self, run: Run) -> float:
        if run.done:
            return 0.0
        return critical_path(run.steps, self.seconds, run.ctx.completed)

    def queue(self) -> list[dict[str, Any]]:
        with self.lock:
            out = []
            for r in sorted(self.runs.values(), key=lambda r: (r.done, -r.priority, r.seq)):
                out.append({
                    "run_id": r.run_id, "protocol": r.protocol.name, "priority": r.priority, "status": r.status,
                    "active_step": r.active_step(), "progress": r.progress(), "eta_s": self.eta(r),
                    "error": r.error_msg,
                    "waiting": [dict(w.__dict__) for w in r.ctx.waits.values()] + [
                        {"step": k, "waiting_for": f"operator:ack {k}", "held_by": "", "message": m}
                        for k, m in r.ctx.acks_pending.items()
                        if f"operator:ack {k}" not in {w.waiting_for for w in r.ctx.waits.values()}],
                })
            return out

    def snapshot(self, run: Run) -> tuple[dict[str, Any], list[str]]:
        """The tree as JSON-able data, and the names from the root to a running leaf."""
        def node(b: py_trees.behaviour.Behaviour) -> dict[str, Any]:
            return {"name": b.name, "type": getattr(b, "kind", type(b).__name__), "status": b.status.value,
                    "id": getattr(b, "path", b.name), "children": [node(c) for c in b.children]}

        assert run.root is not None
        path, b = [], run.root
        while b is not None:
            path.append(b.name)
            b = next((c for c in b.children if c.status == Status.RUNNING), None)
        return node(run.root), path if len(path) > 1 else []

    # ------------------------------------------------------------------ restart
    def recover(self) -> list[tuple[str, str, str]]:
        """Resume or fail every interrupted run in the store: [(run_id, 'resumed'|'failed', reason)]."""
        if self.store is None:
            return []
        report = []
        for rec in self.store.interrupted_runs():
            if rec.id in self.runs:
                continue
            try:
                run = self._resume(rec.id, self.store.load_checkpoint(rec.id))
                report.append((rec.id, "resumed", f"{len(run.ctx.completed)} step(s) already done"))
            except ResumeError as exc:
                self._close_documents(RunDocuments.resume(rec.id, self.store), "failed", f"RESUME_FAILED: {exc}")
                self.store.finish_run(rec.id, "failed", f"RESUME_FAILED: {exc}")
                report.append((rec.id, "failed", str(exc)))
        return report

    def _resume(self, run_id: str, state: dict | None) -> Run:
        if not state:
            raise ResumeError("the executive stopped before the run saved its first checkpoint")
        try:
            protocol = parse_protocol(state["protocol_text"], state.get("source", "<checkpoint>"))
            params = protocol.bind(state.get("params", {}))
        except Exception as exc:
            raise ResumeError(f"the checkpoint's protocol no longer loads: {exc}") from None
        run = self._make_run(run_id, protocol, params, int(state.get("priority", 0)), state.get("operator", ""))
        run.status = "running"
        self.reservations.try_acquire(run.ctx.holder("(run)"), {f"claim:{lw}" for lw in _labware_of(run.steps)})
        ctx = run.ctx
        ctx.completed = set(state.get("completed", []))
        ctx.outputs = dict(state.get("outputs", {}))
        ctx.acks_given = dict(state.get("acks_given", {}))
        ctx.parked = dict(state.get("parked", {}))
        by_path = {s.path: s for s in leaves(run.steps)}
        for path, call in (state.get("in_flight") or {}).items():
            if path.endswith(PARK_SUFFIX) and path.removesuffix(PARK_SUFFIX) in by_path:
                self._reconcile_park(path.removesuffix(PARK_SUFFIX), call, ctx)
            else:
                self._reconcile(path, call, by_path.get(path), ctx)
        saved = state.get("labware", {})
        for lw in _labware_of(run.steps):
            if lw in saved and self.tracker.location(lw) not in (None, saved[lw]) and not any(
                    c.get("labware") == lw and c.get("kind") == "transfer"
                    for c in (state.get("in_flight") or {}).values()):
                raise ResumeError(f"'{lw}' was at {saved[lw]} at the last checkpoint but is now at "
                                  f"{self.tracker.location(lw)}; someone moved it")
        # Which run last moved a plate lives in memory only: take it back for the plates this run moved
        # (it claims them, so no other run has since), or a deadlock with it could not be recognised.
        moved = {str(s.fields["labware"]) for s in by_path.values()
                 if s.kind == "transfer" and (s.path in ctx.completed or s.path in ctx.parked)}
        for lw in moved:
            if self.tracker.location(lw) is not None:
                self.tracker.moved(lw, self.tracker.location(lw), run_id)
        run.resumed = True
        run.history.append({"t": self.clock.now(), "kind": "run_resumed", "completed": len(ctx.completed)})
        with self.lock:
            self.runs[run_id] = run
        self._checkpoint(ctx)
        self._open_documents(run)
        return run

    def _reconcile_park(self, step_path: str, call: dict, ctx: RunContext) -> None:
        """A park was in flight: the plate is parked, still where it was (planned again if need be), or lost."""
        now_at = self.tracker.location(call["labware"])
        if now_at == call["destination"]:
            ctx.parked[step_path] = now_at
        elif now_at != call["source"]:
            raise ResumeError(f"'{call['labware']}' was being parked from {call['source']} in "
                              f"{call['destination']} and is now at {now_at or 'an unknown place'}; "
                              "check the gripper and the cell")

    def _reconcile(self, path: str, call: dict, step: Concrete | None, ctx: RunContext) -> None:
        """Decide what an interrupted in-flight call means now: done, redo, or cannot resume."""
        if step is None:
            raise ResumeError(f"step '{path}' was running but is not in the protocol")
        if call["kind"] == "transfer":
            now_at = self.tracker.location(call["labware"])
            if now_at == call["destination"]:
                ctx.completed.add(path)  # the move finished before the executive died
            elif now_at != call["source"]:
                raise ResumeError(f"'{call['labware']}' was being moved from {call['source']} to "
                                  f"{call['destination']} and is now at {now_at or 'an unknown place'}; "
                                  "check the gripper and the cell")
            return
        device, operation, _ = call_of(step)
        op = caps.operation(self.device_types.get(device, ""), operation)
        if op is not None and not op.idempotent:
            raise ResumeError(f"step '{path}' ({operation} on {device}) was interrupted; what it did to "
                              f"'{call.get('labware')}' is unknown, so it is not repeated")


def _labware_of(steps: list[Concrete]) -> set[str]:
    return {str(s.fields["labware"]) for s in leaves(steps) if s.fields.get("labware")}
