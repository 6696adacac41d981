"""Executive node: runs protocols as behaviour trees against the cell's device actions.

A thin adapter over `autolab.executive.scheduler.Executive`: device calls go
out as action goals (arm/transfer, <instrument>/run), a timer ticks the trees,
`executive/run_protocol` follows a run to its end with feedback, and the
queue and tree snapshots are latched for the UIs. On start, interrupted runs
found in the run store are resumed from their checkpoints or failed with the
reason.

Records and event documents go straight into the run store (`store_url`); the
recorder node, on the same store, republishes the documents on
/recorder/documents. Stored times are wall clock even under use_sim_time.
"""

from __future__ import annotations

import json
from typing import Any

from action_msgs.msg import GoalStatus
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.task import Future

from autolab.devices.errors import InvalidParameters
from autolab.executive.context import LabwareTracker, parking_places
from autolab.executive.deadlock import DEADLOCK_POLICIES
from autolab.executive.devices import DeviceCall, DeviceResult, MonotonicClock
from autolab.executive.errors import BTXMLError, ExecutiveError
from autolab.executive.preflight import CellFacts, PreflightFailed, preflight
from autolab.executive.scheduler import Executive, Run
from autolab.model.protocol import ParameterError, Protocol, ProtocolError, load_protocol, parse_protocol
from autolab.nodes.action_client import ActionClient
from autolab.nodes.params import param_msg, params_from_msg
from autolab.nodes.qos import LATCHED
from autolab.nodes.runtime import StartupError, run_node
from autolab_interfaces.action import InstrumentRun, RunProtocol, Transfer
from autolab_interfaces.msg import (
    DeviceState,
    LabwarePoseArray,
    LabwareRef,
    LocationRef,
    QueueItem,
    QueueState,
    TreeSnapshot,
    WaitExplanation,
)
from autolab_interfaces.srv import RunCommand, SubmitRun

STATUS = {"queued": QueueItem.STATUS_QUEUED, "running": QueueItem.STATUS_RUNNING,
          "paused": QueueItem.STATUS_PAUSED, "waiting_operator": QueueItem.STATUS_WAITING_OPERATOR,
          "succeeded": QueueItem.STATUS_SUCCEEDED, "failed": QueueItem.STATUS_FAILED,
          "aborted": QueueItem.STATUS_ABORTED, "canceled": QueueItem.STATUS_ABORTED}


def _codes(result_type: Any) -> dict[int, str]:
    """An action result's error enum as {value: NAME}."""
    return {getattr(result_type, n): n for n in dir(result_type)
            if n.isupper() and isinstance(getattr(result_type, n), int)}


_TRANSFER_CODES = _codes(Transfer.Result)
_INSTRUMENT_CODES = _codes(InstrumentRun.Result)


class RosHandle:
    """One device goal: sent once the server is up (bounded), cancelled on request."""

    def __init__(self, backend: RosDevices, client: ActionClient, goal: Any, call: DeviceCall) -> None:
        self._b, self._client, self._goal, self.call = backend, client, goal, call
        self._deadline = backend.now() + backend.server_wait_s
        self._send: Future | None = None
        self._gh = None
        self._result: Future | None = None
        self._final: DeviceResult | None = None
        self._cancel_wanted = False

    def _fail(self, name: str, msg: str) -> None:
        self._set(DeviceResult(False, 0, name, msg))

    def _set(self, result: DeviceResult) -> None:
        if self._final is None:  # the first outcome stands
            self._b.finished(self.call.device)
            self._final = result

    def done(self) -> bool:
        if self._final is not None:
            return True
        if self._send is None:
            if self._cancel_wanted:
                self._fail("CANCELED", "canceled before it was sent")
            elif self._client.server_is_ready():
                self._send = self._client.send_goal_async(self._goal)
                self._send.add_done_callback(lambda _f: self._b.poke())  # ask for the result at once
            elif self._b.now() > self._deadline:
                self._fail("UNAVAILABLE", f"no action server {self._client._action_name} "
                                          f"within {self._b.server_wait_s:g} s")
            return self._final is not None
        if self._gh is None:
            if not self._send.done():
                return False
            self._gh = self._send.result()
            if not self._gh.accepted:
                self._fail("REJECTED", f"{self._client._action_name} rejected the goal")
                return True
            self._result = self._gh.get_result_async()
            self._result.add_done_callback(lambda _f: self._b.poke())
            if self._cancel_wanted:
                self._gh.cancel_goal_async()
        if self._result is None or not self._result.done():
            return False
        response = self._result.result()
        self._set(self._b.convert(self.call, response.result, response.status))
        return True

    def result(self) -> DeviceResult:
        assert self._final is not None
        return self._final

    def cancel(self) -> None:
        self._cancel_wanted = True
        if self._gh is not None and self._final is None:
            self._gh.cancel_goal_async()
        self._fail("CANCELED", "canceled by the executive")


class RosDevices:
    """`DeviceBackend` over the cell's action servers; device state from latched <id>/state."""

    def __init__(self, node: Node, group, server_wait_s: float = 10.0) -> None:
        self.node, self.group, self.server_wait_s = node, group, server_wait_s
        self._clients: dict[str, ActionClient] = {}
        self._states: dict[str, DeviceState] = {}
        self._subs: dict[str, Any] = {}
        self._ours: dict[str, int] = {}
        self._unsent: list[RosHandle] = []
        self.on_result = None

    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds / 1e9

    def _client(self, kind: str, device: str) -> ActionClient:
        name = "arm/transfer" if kind == "transfer" else f"{device}/run"
        if name not in self._clients:
            action = Transfer if kind == "transfer" else InstrumentRun
            self._clients[name] = ActionClient(self.node, action, name, callback_group=self.group)
        if device not in self._subs:
            self._subs[device] = self.node.create_subscription(
                DeviceState, f"{device}/state", lambda m, d=device: self._states.__setitem__(d, m), LATCHED)
        return self._clients[name]

    def busy(self, device: str) -> str | None:
        """Busy with a goal this executive did not send (e.g. one sent before a restart)."""
        st = self._states.get(device)
        if st is not None and st.state == DeviceState.STATE_BUSY and not self._ours.get(device):
            return f"{device} is busy with {st.active_operation or 'a goal'} that this executive is not following"
        return None

    def poke(self) -> None:
        """A result came in: tick now rather than at the next timer period (lower step latency)."""
        if self.on_result is not None:
            self.on_result()

    def finished(self, device: str) -> None:
        self._ours[device] = max(0, self._ours.get(device, 0) - 1)

    def start(self, call: DeviceCall) -> RosHandle:
        client = self._client(call.kind, call.device)
        if call.kind == "transfer":
            goal = Transfer.Goal(labware=LabwareRef(id=call.labware), source=LocationRef(id=call.source),
                                 destination=LocationRef(id=call.destination))
        else:
            goal = InstrumentRun.Goal(operation=call.operation, labware=LabwareRef(id=call.labware),
                                      run_id=call.run_id, step_id=call.step_id,
                                      parameters=[param_msg(k, v) for k, v in call.parameters.items()])
        self._ours[call.device] = self._ours.get(call.device, 0) + 1
        handle = RosHandle(self, client, goal, call)
        self._unsent.append(handle)
        return handle

    def flush(self) -> None:
        """Send the goals created in this tick, now that the tick's checkpoint is written."""
        unsent, self._unsent = self._unsent, []
        for handle in unsent:
            handle.done()

    def convert(self, call: DeviceCall, res: Any, status: int = GoalStatus.STATUS_SUCCEEDED) -> DeviceResult:
        codes = _TRANSFER_CODES if call.kind == "transfer" else _INSTRUMENT_CODES
        if res.error_code == 0 and status != GoalStatus.STATUS_SUCCEEDED:
            # A server that crashed in its execute callback aborts with an empty result: never a success.
            name = "CANCELED" if status == GoalStatus.STATUS_CANCELED else "BACKEND_FAILURE"
            return DeviceResult(False, 0, name, res.error_msg or f"{call.device} ended the goal with status "
                                f"{status} and no error code (see the {call.device} node's log)")
        if res.error_code == 0:
            if call.kind == "transfer":
                return DeviceResult(True, placed_at=res.placed.location.id or call.destination)
            try:
                outputs = params_from_msg(list(res.outputs))
            except InvalidParameters as exc:  # an untyped output: keep the result, say what was dropped
                outputs = {"output_error": str(exc)}
            units = {p.name: p.unit for p in res.outputs if p.unit}  # for the run's event documents
            return DeviceResult(True, outputs=outputs, units=units, data_uri=res.data.uri)
        return DeviceResult(False, res.error_code, codes.get(res.error_code, f"ERROR_{res.error_code}"),
                            res.error_msg)


class ExecutiveNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("executive", **kwargs)
        self.declare_parameter("store_url", "")
        self.declare_parameter("workcell", "")
        self.declare_parameter("tick_hz", 10.0)
        self.declare_parameter("max_active_runs", 8)
        self.declare_parameter("resume_interrupted", True)
        self.declare_parameter("server_wait_s", 10.0)
        self.declare_parameter("deadlock_policy", "park")
        tick_hz = float(self.get_parameter("tick_hz").value)
        if not 0.5 <= tick_hz <= 200:
            raise StartupError(self.get_name(), f"parameter tick_hz={tick_hz} must be within 0.5..200")
        max_active = int(self.get_parameter("max_active_runs").value)
        if max_active < 1:
            raise StartupError(self.get_name(), f"parameter max_active_runs={max_active} must be at least 1")
        deadlock_policy = str(self.get_parameter("deadlock_policy").value)
        if deadlock_policy not in DEADLOCK_POLICIES:
            raise StartupError(self.get_name(), f"parameter deadlock_policy={deadlock_policy!r} must be one of "
                                                f"{', '.join(DEADLOCK_POLICIES)}")
        try:
            from autolab.model.workcell import load_workcell

            workcell = load_workcell(self.get_parameter("workcell").value or None)
            self.cell = CellFacts.from_workcell(workcell)
        except Exception as exc:
            raise StartupError(self.get_name(), f"parameter workcell: cannot load the workcell: {exc}") from exc
        from autolab.data.store import RunStore

        url = self.get_parameter("store_url").value or None
        try:
            self.store = RunStore.open(url)
        except Exception as exc:
            raise StartupError(self.get_name(), f"parameter store_url: cannot open the run store: {exc}") from exc
        self.store_url = self.store.url if hasattr(self.store, "url") else (url or "")
        self._tick_group = MutuallyExclusiveCallbackGroup()
        self._group = ReentrantCallbackGroup()
        self.devices = RosDevices(self, self._tick_group, float(self.get_parameter("server_wait_s").value))
        # A device result ticks at once, but in the tick group: done-callbacks of rclpy futures run as
        # executor tasks outside any group, and a tick there raced the action clients' own callbacks (a
        # goal sent while its client took the previous response lost the reply: ros2/rclpy#1123).
        poke = self.create_guard_condition(self._tick, callback_group=self._tick_group)
        self.devices.on_result = poke.trigger
        tracker = LabwareTracker({k: loc for k, (_t, loc) in self.cell.inventory.items()})
        self.core = Executive(self.devices, MonotonicClock(self.devices.now), self.store, tracker,
                              self.cell.device_types, max_active=max_active, workcell_hash=self.cell.workcell_hash,
                              deadlock_policy=deadlock_policy, parking=parking_places(workcell),
                              labware_types={k: t for k, (t, _loc) in self.cell.inventory.items()})
        self._waiters: dict[str, list[tuple[Any, Future]]] = {}
        self._last_tree: dict[str, str] = {}
        self._last_queue: tuple[str, float] = ("", 0.0)
        self._queue_pub = self.create_publisher(QueueState, "~/queue", LATCHED)
        self._tree_pub = self.create_publisher(TreeSnapshot, "~/tree", LATCHED)
        self.create_subscription(LabwarePoseArray, "inventory", self._on_inventory, LATCHED,
                                 callback_group=self._tick_group)
        for name, handler in (("pause", self._on_pause), ("resume", self._on_resume), ("abort", self._on_abort),
                              ("acknowledge", self._on_ack)):
            self.create_service(RunCommand, f"~/{name}", handler, callback_group=self._tick_group)
        self.create_service(SubmitRun, "~/submit", self._on_submit, callback_group=self._tick_group)
        self._server = ActionServer(self, RunProtocol, "~/run_protocol", execute_callback=self._execute,
                                    goal_callback=lambda _g: GoalResponse.ACCEPT,
                                    cancel_callback=lambda _g: CancelResponse.ACCEPT, callback_group=self._group)
        if self.get_parameter("resume_interrupted").value:
            for run_id, verdict, reason in self.core.recover():
                log = self.get_logger().info if verdict == "resumed" else self.get_logger().warning
                log(f"interrupted run {run_id}: {verdict} ({reason})")
        self.create_timer(1.0 / tick_hz, self._tick, callback_group=self._tick_group)
        self._publish_queue()

    # ---------------------------------------------------------------- inputs
    def _on_inventory(self, msg: LabwarePoseArray) -> None:
        at = self.core.tracker.snapshot()
        for item in msg.items:
            if item.labware.id:
                at[item.labware.id] = item.location.id
        self.core.tracker.replace(at)

    def _load(self, path: str, text: str, tree: str = "") -> Protocol:
        if tree:
            from autolab.executive.btxml import import_xml

            return import_xml(tree, "<goal tree>")
        if path:
            return load_protocol(path)
        if text:
            return parse_protocol(text, "<goal protocol_yaml>")
        raise ProtocolError("give protocol_path, protocol_yaml or tree", "<goal>", 0, 0)

    def _submit(self, path: str, text: str, params: list, priority: int, operator: str, tree: str = "") -> Run:
        protocol = self._load(path, text, tree)
        values = {kv.key: kv.value for kv in params}
        bound = protocol.bind(values)
        report = preflight(protocol, bound, self.cell, check_locations=False)
        if not report.ok:
            raise PreflightFailed(report)
        with self.core.lock:
            return self.core.submit(protocol, values, priority, operator)

    @staticmethod
    def _error_name(exc: Exception) -> str:
        if isinstance(exc, ProtocolError | BTXMLError):
            return "INVALID_PROTOCOL"
        if isinstance(exc, ParameterError):
            return "INVALID_PARAMETERS"
        if isinstance(exc, PreflightFailed):
            return "PREFLIGHT_FAILED"
        return "INTERNAL_ERROR"

    def _on_submit(self, req: SubmitRun.Request, res: SubmitRun.Response) -> SubmitRun.Response:
        try:
            run = self._submit(req.protocol_path, req.protocol_yaml, req.parameters, req.priority, req.operator_name)
            res.success, res.run_id, res.message = True, run.run_id, f"queued as {run.run_id}"
        except (ProtocolError, BTXMLError, ParameterError, PreflightFailed, OSError) as exc:
            res.success, res.message = False, f"{self._error_name(exc)}: {exc}"
        self._publish_queue()
        return res

    def _command(self, res: Any, action) -> Any:
        try:
            with self.core.lock:
                run = action()
            res.success, res.message = True, f"run {run.run_id}: {run.status}"
        except ExecutiveError as exc:
            res.success, res.message = False, str(exc)
        self._publish_queue()
        return res

    def _on_pause(self, req, res):
        return self._command(res, lambda: self.core.pause(req.run_id))

    def _on_resume(self, req, res):
        return self._command(res, lambda: self.core.resume(req.run_id))

    def _on_abort(self, req, res):
        reason = f"aborted by {req.operator_name or 'an operator'}" + (f": {req.note}" if req.note else "")
        return self._command(res, lambda: self.core.abort(req.run_id, reason))

    def _on_ack(self, req, res):
        return self._command(res, lambda: self.core.acknowledge(req.run_id, req.checkpoint, req.note,
                                                                req.operator_name))

    # ---------------------------------------------------------------- the action
    async def _execute(self, goal_handle) -> RunProtocol.Result:
        g = goal_handle.request
        result = RunProtocol.Result()
        try:
            if g.run_id:
                run = self.core.find(g.run_id)
            else:
                run = self._submit(g.protocol_path, g.protocol_yaml, g.parameters, g.priority, g.operator_name,
                                   g.tree)
        except (ProtocolError, BTXMLError, ParameterError, PreflightFailed, OSError, ExecutiveError) as exc:
            goal_handle.abort()
            name = "RESUME_FAILED" if g.run_id else self._error_name(exc)
            result.error_code = getattr(RunProtocol.Result, name)
            result.error_msg, result.outcome, result.run_id = str(exc), "failed", g.run_id
            return result
        done: Future = Future()
        with self.core.lock:
            self._waiters.setdefault(run.run_id, []).append((goal_handle, done))
        await done
        run = self.core.runs[run.run_id]
        result.run_id, result.outcome = run.run_id, run.status
        result.error_code = getattr(RunProtocol.Result, run.error_code, RunProtocol.Result.INTERNAL_ERROR)
        result.error_msg = run.error_msg
        result.data_uri = f"{self.store_url}#run={run.run_id}"
        if run.status == "succeeded":
            goal_handle.succeed()
        elif run.status == "canceled":
            goal_handle.canceled()
        else:
            goal_handle.abort()
        return result

    # ---------------------------------------------------------------- ticking
    def _tick(self) -> None:
        with self.core.lock:
            for run_id, waiters in list(self._waiters.items()):
                run = self.core.runs[run_id]
                if not run.done and any(gh.is_cancel_requested for gh, _f in waiters):
                    self.core.abort(run_id, "the RunProtocol goal was canceled", canceled=True)
            self.core.tick()  # writes the checkpoints of what changed, then:
            self.devices.flush()
            for run_id, waiters in list(self._waiters.items()):
                run = self.core.runs[run_id]
                fb = RunProtocol.Feedback(run_id=run_id, state=run.status if not run.done else "running",
                                          active_step=run.active_step(), progress=float(run.progress()),
                                          eta_s=float(self.core.eta(run)),
                                          message="; ".join(w.message for w in run.ctx.waits.values()))
                for gh, fut in waiters:
                    if run.done:
                        fut.set_result(True)
                    elif gh.is_active:
                        gh.publish_feedback(fb)
                if run.done:
                    del self._waiters[run_id]
            self._publish_trees()
        self._publish_queue(force=False)

    def _publish_trees(self) -> None:
        for run in self.core.runs.values():
            if run.status == "queued" or run.run_id in self._last_tree and run.done and \
                    self._last_tree[run.run_id] == "done":
                continue
            tree, path = self.core.snapshot(run)
            text = json.dumps(tree, separators=(",", ":"))
            key = "done" if run.done else text
            if self._last_tree.get(run.run_id) == key:
                continue
            self._last_tree[run.run_id] = key
            msg = TreeSnapshot(run_id=run.run_id, tree_json=text, active_path=path)
            msg.header.stamp = self.get_clock().now().to_msg()
            self._tree_pub.publish(msg)

    def _publish_queue(self, force: bool = True) -> None:
        items = self.core.queue()[:100]
        key = json.dumps([{k: v for k, v in q.items() if k != "eta_s"} for q in items], default=str)
        now = self.devices.now()
        if not force and key == self._last_queue[0] and now - self._last_queue[1] < 1.0:
            return
        self._last_queue = (key, now)
        msg = QueueState()
        msg.header.stamp = self.get_clock().now().to_msg()
        for q in items:
            item = QueueItem(run_id=q["run_id"], protocol_name=q["protocol"], priority=q["priority"],
                             status=STATUS[q["status"]], active_step=q["active_step"],
                             progress=float(q["progress"]), eta_s=float(q["eta_s"]))
            item.waiting = [WaitExplanation(run_id=q["run_id"], step=w["step"], waiting_for=w["waiting_for"],
                                            held_by=w["held_by"], message=w["message"]) for w in q["waiting"]]
            msg.items.append(item)
        self._queue_pub.publish(msg)

    def close(self) -> None:
        """On shutdown, running runs stay 'running' in the store with their checkpoint, to be resumed."""
        self.store.close()


NODE_CLASS = ExecutiveNode


def main(args: list[str] | None = None) -> int:
    return run_node(ExecutiveNode, args=args)


if __name__ == "__main__":
    raise SystemExit(main())
