"""Instrument node: one executable for every instrument type, configured by parameters.

Node name = device id (run as `instrument_node --ros-args -r __node:=reader1 -p type:=plate_reader`):
- `~/run` (InstrumentRun action): validated against the type's capabilities
  before anything moves, with feedback, cancel, and a typed error code;
- `~/state` (DeviceState, latched): door, occupancy, live values.

Parameters: `type` (plate_reader, sealer, incubator, liquid_handler,
barcode_scanner; default from the workcell description), `backend` (`sim` or
`serial`), `model`, `port`, `baudrate`, `timeout_s` (serial), `time_scale`,
`seed` (sim), `store_url` (run store; default $AUTOLAB_DATA_DIR's SQLite),
`require_safety`. Results with data are written to the run store first and
referenced by a DataRef in the result; a goal without a run id stores under the
device's ad-hoc run.

The node never knows the model: backends come from the driver registry
(`autolab.devices.drivers`) or the simulated instruments (`autolab.sim.instruments`).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from diagnostic_msgs.msg import KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node

from autolab.devices.errors import (
    CommunicationError,
    DeviceError,
    DeviceFault,
    InvalidOperation,
    InvalidParameters,
    LiquidHandlingError,
    NotReady,
)
from autolab.devices.instruments import (
    CAPABILITIES,
    TYPE_ALIASES,
    Instrument,
    InstrumentBackend,
    InstrumentStatus,
    OperationResult,
)
from autolab.model.labware import well_list
from autolab.nodes.params import param_msg, params_from_msg
from autolab.nodes.qos import LATCHED
from autolab.nodes.runtime import StartupError, run_node
from autolab.nodes.safety_watch import SafetyWatch
from autolab_interfaces.action import InstrumentRun
from autolab_interfaces.msg import DataRef, DeviceState, LabwarePoseArray, LabwareRef

R = InstrumentRun.Result
_STATE = {
    "idle": DeviceState.STATE_IDLE,
    "busy": DeviceState.STATE_BUSY,
    "error": DeviceState.STATE_ERROR,
    "offline": DeviceState.STATE_OFFLINE,
}


class GoalFailed(Exception):
    """A goal ended early; `partial` is what the operation had done before it stopped, when the backend says."""

    def __init__(self, code: int, message: str, partial: OperationResult | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.partial = partial


def done_summary(partial: OperationResult | None) -> str:
    """What an interrupted liquid-handling operation had done, for the result's message ("" if not told)."""
    data = partial.data if partial is not None else {}
    if "wells_done" not in data and "columns_done" not in data:
        return ""
    wells = [str(w) for w in data.get("wells_done") or []]  # a serial link drops an empty list
    if not wells:
        return "; nothing was pipetted"
    return (
        f"; done before the stop: {data.get('columns_done', '?')} of {data.get('columns', '?')} column(s), "
        f"{len(wells)} well(s) ({well_list(wells)}); the rest not pipetted"
    )


def error_code_of(exc: Exception) -> int:
    """The InstrumentRun error code of a devices-layer error."""
    for cls, code in (
        (InvalidOperation, R.INVALID_OPERATION),
        (InvalidParameters, R.INVALID_PARAMETERS),
        (NotReady, R.NOT_READY),
        (LiquidHandlingError, R.LIQUID_ERROR),
        (CommunicationError, R.COMMUNICATION_ERROR),
        (DeviceFault, R.DEVICE_ERROR),
    ):
        if isinstance(exc, cls):
            return code
    return R.DEVICE_ERROR


class InstrumentNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("instrument", **kwargs)
        self.device_id = self.get_name()
        p = self._declare_parameters()
        self.device_type = p["type"]
        self.backend_name = p["backend"]
        self.poll_s = p["poll_period_s"]
        self._store_url = p["store_url"]
        self._store = None
        self._store_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._busy = threading.Lock()
        self._active = ("", "")  # (operation, goal id)
        self._last_error = (0, "")
        self._world_occupant = ""
        self._stop_requested = threading.Event()
        self.backend = self._make_backend(p)
        self.instrument = Instrument(self.device_type, self.backend)
        try:
            self.backend.connect()
        except CommunicationError as exc:  # keep running: state says offline, the link reconnects
            self.get_logger().error(f"{self.device_id}: {exc}")
        except DeviceError as exc:
            raise StartupError(self.device_id, str(exc)) from exc

        self._state_pub = self.create_publisher(DeviceState, "~/state", LATCHED)
        self.safety = SafetyWatch(self, on_stop=self._on_safety_stop, require_safety=p["require_safety"])
        if self.backend_name == "sim":
            self.create_subscription(LabwarePoseArray, "sim/labware_poses", self._on_poses, LATCHED)
        self._action = ActionServer(
            self,
            InstrumentRun,
            "~/run",
            execute_callback=self._execute,
            goal_callback=self._on_goal,
            cancel_callback=self._on_cancel,
            callback_group=ReentrantCallbackGroup(),
        )
        self.create_timer(p["state_period_s"], self.publish_state, callback_group=MutuallyExclusiveCallbackGroup())
        self.publish_state()
        self.get_logger().info(
            f"{self.device_id}: {self.device_type} on backend {self.backend_name} ({self.backend.model or 'sim'})"
        )

    # --- set-up --------------------------------------------------------------------------
    def _declare_parameters(self) -> dict[str, Any]:
        def declare(name: str, default: Any, doc: str) -> Any:
            return self.declare_parameter(name, default, ParameterDescriptor(description=doc)).value

        device = _workcell_device(self.device_id)
        p = {
            "type": declare(
                "type",
                getattr(device, "type", ""),
                "plate_reader | sealer | incubator | liquid_handler | barcode_scanner",
            ),
            "backend": declare("backend", getattr(device, "backend", "") or "sim", "sim | serial"),
            "model": declare("model", "", "serial driver model (empty: the type's default)"),
            "port": declare("port", "", "serial port or pyserial URL (backend serial)"),
            "baudrate": declare("baudrate", 115200, "serial baud rate"),
            "timeout_s": declare("timeout_s", 1.0, "serial response timeout"),
            "time_scale": declare("time_scale", 1.0, "simulated seconds per second (backend sim)"),
            "seed": declare("seed", 0, "seed of the simulated measurement noise"),
            "store_url": declare("store_url", "", "run store URL (empty: the default SQLite store)"),
            "require_safety": declare("require_safety", False, "refuse operations until /safety/state is seen"),
            "poll_period_s": declare("poll_period_s", 0.1, "how often a running operation is polled"),
            "state_period_s": declare("state_period_s", 1.0, "how often ~/state is republished"),
        }
        p["type"] = TYPE_ALIASES.get(p["type"], p["type"])
        if p["type"] not in CAPABILITIES:
            raise StartupError(
                self.device_id, f"parameter 'type' = {p['type']!r} is not one of {', '.join(sorted(CAPABILITIES))}"
            )
        if p["backend"] not in ("sim", "serial"):
            raise StartupError(self.device_id, f"parameter 'backend' = {p['backend']!r} is not 'sim' or 'serial'")
        if p["backend"] == "serial" and not p["port"]:
            raise StartupError(self.device_id, "parameter 'port' is required with backend 'serial'")
        for name in ("time_scale", "timeout_s", "poll_period_s", "state_period_s"):
            if not float(p[name]) > 0:
                raise StartupError(self.device_id, f"parameter '{name}' must be > 0, got {p[name]}")
        return p

    def _make_backend(self, p: dict[str, Any]) -> InstrumentBackend:
        if p["backend"] == "serial":
            from autolab.devices.drivers import driver_class

            try:
                cls = driver_class(self.device_type, p["model"])
            except InvalidOperation as exc:
                raise StartupError(self.device_id, str(exc)) from exc
            return cls(port=p["port"], baudrate=p["baudrate"], timeout_s=p["timeout_s"])
        from autolab.nodes.sim_liquid_services import RosLiquids
        from autolab.sim.instruments import SIM_CLASSES

        kwargs: dict[str, Any] = {
            "device_id": self.device_id,
            "time_scale": float(p["time_scale"]),
            "seed": int(p["seed"]),
            "clock": self._now_s,
        }
        if self.device_type in ("plate_reader", "liquid_handler"):
            kwargs["liquids"] = RosLiquids(self)
        if self.device_type == "barcode_scanner":
            kwargs["barcodes"] = _workcell_barcodes()
        return SIM_CLASSES[self.device_type](**kwargs)

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # --- state ---------------------------------------------------------------------------------
    def _on_poses(self, msg: LabwarePoseArray) -> None:
        nest = f"{self.device_id}.nest"
        occupant = next((i.labware.id for i in msg.items if i.location.id == nest), "")
        if occupant != self._world_occupant:
            self._world_occupant = occupant
            self.backend.set_occupant(occupant)
            self.publish_state()

    def _status(self) -> InstrumentStatus:
        status = self.backend.status()
        if status.occupant == "?" and self._world_occupant:
            status.occupant = self._world_occupant  # the device senses a plate; the world knows which
        return status

    def publish_state(self) -> None:
        # Timer, goal and pose callbacks all publish: one at a time, each reading then publishing, so a
        # status read before a goal ended is never latched after the state its end published.
        with self._state_lock:
            self._publish_state_locked(self._status())

    def _publish_state_locked(self, status: InstrumentStatus) -> None:
        msg = DeviceState()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.device_id, msg.device_type, msg.backend = self.device_id, self.device_type, self.backend_name
        msg.state = (
            DeviceState.STATE_ESTOPPED
            if self.safety.estop_latched
            else _STATE.get(status.state, DeviceState.STATE_UNKNOWN)
        )
        msg.active_operation, msg.active_goal_id = self._active
        msg.door_open, msg.occupied = status.door_open, status.occupied
        if status.occupant and status.occupant != "?":
            msg.labware = [LabwareRef(id=status.occupant)]
        msg.error_code, msg.error_msg = self._last_error
        if status.error:
            msg.error_msg = status.error
        msg.values = [KeyValue(key=k, value=str(v)) for k, v in status.values.items()]
        self._state_pub.publish(msg)

    def _on_safety_stop(self, reason: str) -> None:
        self._stop_requested.set()

    # --- action ----------------------------------------------------------------------------------
    def _on_goal(self, goal: InstrumentRun.Goal) -> GoalResponse:
        return GoalResponse.ACCEPT  # refusals come back as typed results, with a reason

    def _on_cancel(self, goal_handle) -> CancelResponse:
        return CancelResponse.ACCEPT

    def _execute(self, goal_handle) -> InstrumentRun.Result:
        goal: InstrumentRun.Goal = goal_handle.request
        result = InstrumentRun.Result()
        if not self._busy.acquire(blocking=False):
            return self._finish(goal_handle, result, R.NOT_READY, f"{self.device_id} is busy with {self._active[0]}")
        gid = bytes(goal_handle.goal_id.uuid).hex()
        self._active = (goal.operation, gid)
        self._stop_requested.clear()
        try:
            op_result = self._run(goal_handle, goal)
            self._store_result(goal, op_result, result)
            self._last_error = (0, "")
            result.outputs = [param_msg(n, v, u) for n, v, u in op_result.outputs]
            goal_handle.succeed()
            self.get_logger().info(f"{goal.operation} done")
            return result
        except GoalFailed as exc:
            message = str(exc) + self._keep_partial(goal, exc.partial, result)
            return self._finish(goal_handle, result, exc.code, message, canceled=exc.code == R.CANCELED)
        except DeviceError as exc:
            message = str(exc) + self._keep_partial(goal, exc.partial, result)
            return self._finish(goal_handle, result, error_code_of(exc), message)
        finally:
            self._active = ("", "")
            self._busy.release()
            self.publish_state()

    def _finish(self, goal_handle, result, code: int, message: str, canceled: bool = False) -> InstrumentRun.Result:
        result.error_code, result.error_msg = code, message
        self._last_error = (code, message)
        self.get_logger().warning(f"{self.device_id}: {message}")
        if canceled:
            goal_handle.canceled()
        else:
            goal_handle.abort()
        return result

    def _run(self, goal_handle, goal: InstrumentRun.Goal) -> OperationResult:
        self.safety.await_state()
        if not self.safety.motion_allowed:
            raise GoalFailed(R.ESTOP, f"refused: {self.safety.reason()}")
        params = params_from_msg(goal.parameters)
        status = self._status()
        clean = self.instrument.validate(goal.operation, params, status)  # before anything moves
        labware_id = goal.labware.id or (status.occupant if status.occupant != "?" else "")
        self.backend.start(goal.operation, clean, labware_id)
        self.publish_state()
        deadline: float | None = None
        while True:
            if goal_handle.is_cancel_requested:
                raise self._stop(R.CANCELED, f"{goal.operation} canceled")
            if self._stop_requested.is_set() or not self.safety.motion_allowed:
                raise self._stop(R.ESTOP, f"{goal.operation} stopped: {self.safety.reason() or 'safety stop'}")
            progress = self.backend.progress()
            if progress.done:
                return self.backend.result()
            # A generous bound on the device's own estimate: a device that never finishes is a fault.
            limit = time.monotonic() + 2.0 * progress.eta_s + 30.0
            deadline = limit if deadline is None else min(deadline, limit)
            if time.monotonic() > deadline:
                raise self._stop(R.TIMEOUT, f"{goal.operation} did not finish within its estimated time")
            fb = InstrumentRun.Feedback(
                phase=progress.phase, progress=float(progress.progress), eta_s=float(progress.eta_s)
            )
            fb.readings = [param_msg(k, float(v)) for k, v in progress.readings.items()]
            goal_handle.publish_feedback(fb)
            time.sleep(self.poll_s)

    def _stop(self, code: int, message: str) -> GoalFailed:
        """Abort the operation, then ask what it had done: the liquid already moved stays in the records."""
        self.backend.abort()
        try:
            partial = self.backend.result()
        except DeviceError as exc:  # the device cannot tell (nothing to add), or the operation failed as it stopped
            if exc.partial is None:
                return GoalFailed(code, message)
            return GoalFailed(code, f"{message}; {exc}", exc.partial)
        return GoalFailed(code, message + done_summary(partial), partial)

    # --- data ---------------------------------------------------------------------------------------
    def _keep_partial(self, goal: InstrumentRun.Goal, op: OperationResult | None, result: InstrumentRun.Result) -> str:
        """Store what a stopped or failed operation really did, like a result; a note when that failed."""
        if op is None:
            return ""
        result.outputs = [param_msg(n, v, u) for n, v, u in op.outputs]
        try:
            self._store_result(goal, op, result)
        except DeviceFault as exc:
            return f"; {exc}"
        return ""

    def _open_store(self):
        with self._store_lock:
            if self._store is None:
                from autolab.data.store import RunStore

                self._store = RunStore.open(self._store_url or None)
            return self._store

    def _store_result(self, goal: InstrumentRun.Goal, op: OperationResult, result: InstrumentRun.Result) -> None:
        """Write the data to the run store, then reference it: a result never returns unstored data."""
        if not op.kind:
            return
        from autolab.data.errors import DataError
        from autolab.data.store import measurement_uri

        try:
            store = self._open_store()
            run_id = goal.run_id or store.ensure_adhoc_run(self.device_id)
            labware = op.data.get("labware_id") or goal.labware.id or None
            metadata = {k: v for k, v in op.data.items() if k not in ("wells", "values")}
            if goal.step_id:
                metadata["step_id"] = goal.step_id  # the executive's step; the store's steps are its own
            record = store.add_measurement(
                run_id, self.device_id, op.kind, op.data, op.units, step_id=None, labware=labware, metadata=metadata
            )
            if op.kind == "liquid_transfer":
                self._record_lineage(store, run_id, op.data)
        except DataError as exc:
            raise DeviceFault(f"{goal.operation}: its data could not be stored: {exc}") from exc
        result.data = DataRef(
            run_id=run_id,
            record_id=record,
            kind=op.kind,
            uri=measurement_uri(run_id, record),
            media_type="application/json",
        )

    def _record_lineage(self, store, run_id: str, data: dict[str, Any]) -> None:
        """Every well a dispense or transfer filled, in one transaction per plate (all wells or none).

        The material is the reagent: named in a dispense; for a transfer, the reagents the
        source well holds according to the store (so a dilution series names its stock).
        A backend that reports the wells it really did (`wells_done`, also after an abort) is
        taken at its word; otherwise every requested well counts.
        """
        operation = data.get("operation")
        if operation not in ("dispense", "transfer"):
            return
        reported = "wells_done" in data or "columns_done" in data
        wells = list((data.get("wells_done") if reported else data.get("dest_wells")) or [])
        vols = list((data.get("volumes_done_ul") if reported else data.get("volume_ul")) or [])
        vols = vols if len(vols) == len(wells) else vols[:1] * len(wells)
        if operation == "dispense":
            source, sources = None, [None] * len(wells)
            reagent = str(data.get("reagent") or "reagent")
            materials = [reagent] * len(wells)
        else:
            source = data.get("source_labware")
            sources = list((data.get("source_wells_done") if reported else data.get("source_wells")) or [])
            sources = sources if len(sources) == len(wells) else sources[:1] * len(wells)
            from autolab.data.lineage import reagents_held

            held = reagents_held(store, source) if source else lambda _well: []
            materials = [" + ".join(held(src) or ["unknown"]) for src in sources]
        store.record_lineage_many(run_id, [
            {"dest_labware": data.get("labware_id", ""), "dest_well": well, "source_labware": source,
             "source_well": src, "material": material, "volume_ul": vol}
            for well, src, material, vol in zip(wells, sources, materials, vols, strict=False)
        ])

    def close(self) -> None:
        self.backend.close()
        if self._store is not None:
            self._store.close()


def _workcell_device(device_id: str):
    try:
        from autolab.model.workcell import load_workcell

        return load_workcell().devices.get(device_id)
    except Exception:  # no description: parameters must say everything
        return None


def _workcell_barcodes() -> dict[str, str]:
    try:
        from autolab.model.workcell import load_workcell

        return {item.id: item.barcode for item in load_workcell().inventory if item.barcode}
    except Exception:
        return {}


NODE_CLASS = InstrumentNode


def main(args: list[str] | None = None) -> int:
    return run_node(InstrumentNode, args=args)


if __name__ == "__main__":
    raise SystemExit(main())
