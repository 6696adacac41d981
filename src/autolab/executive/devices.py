"""The executive's view of devices: start a call, poll it, cancel it. No ROS here.

Leaves of the tree talk to a `DeviceBackend`. Over ROS it is a set of action
clients (autolab.nodes.executive); offline it is `SimulatedCell`, a
simulated-time model of the cell: real state (where each plate is, what each
well holds), real refusals (source empty, nest occupied, parameter out of
range) and durations from the same table the estimates use. Tests and
benchmarks run the real tree, scheduler and reservations against it,
deterministically and faster than real time.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, Protocol

from autolab.executive import capabilities as caps


@dataclass
class DeviceCall:
    kind: str  # "transfer" | "instrument"
    device: str  # "arm" for transfers
    operation: str = ""
    labware: str = ""
    source: str = ""
    destination: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    run_id: str = ""
    step_id: str = ""


@dataclass
class DeviceResult:
    ok: bool
    error_code: int = 0
    error_name: str = "NONE"
    error_msg: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)
    #: output name -> unit (UCUM, as the device reports it); outputs without a unit are absent
    units: dict[str, str] = field(default_factory=dict)
    data_uri: str = ""
    #: where the labware ended up (transfers), when the device says so
    placed_at: str = ""


class DeviceHandle(Protocol):
    def done(self) -> bool: ...

    def result(self) -> DeviceResult: ...

    def cancel(self) -> None: ...


class DeviceBackend(Protocol):
    def start(self, call: DeviceCall) -> DeviceHandle: ...

    def busy(self, device: str) -> str | None:
        """Why the device cannot take a goal now (e.g. still running one it got before a restart)."""


class Clock(Protocol):
    def now(self) -> float: ...

    def wake_at(self, t: float) -> None:
        """Tell a discrete-event driver that something happens at t (no-op in real time)."""


class MonotonicClock:
    def __init__(self, source=None) -> None:
        import time

        self._source = source or time.monotonic

    def now(self) -> float:
        return float(self._source())

    def wake_at(self, t: float) -> None:
        pass


class SimClock:
    """Simulated time that a driver advances from event to event."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._events: list[float] = []

    def now(self) -> float:
        return self._now

    def wake_at(self, t: float) -> None:
        if t > self._now:
            heapq.heappush(self._events, t)

    def next_event(self) -> float | None:
        while self._events and self._events[0] <= self._now:
            heapq.heappop(self._events)
        return self._events[0] if self._events else None

    def advance_to(self, t: float) -> None:
        self._now = max(self._now, t)


# ---------------------------------------------------------------- simulated cell
@dataclass
class _Fault:
    device: str
    operation: str
    error_name: str
    remaining: int


_ERROR_CODES = {  # the action files' enums, for results that look like the real ones
    "transfer": {"INVALID_GOAL": 1, "UNKNOWN_LOCATION": 2, "SOURCE_EMPTY": 3, "WRONG_LABWARE": 4,
                 "DESTINATION_OCCUPIED": 5, "UNREACHABLE": 6, "COLLISION": 7, "GRASP_FAILED": 8,
                 "DROPPED": 9, "PLACE_FAILED": 10, "ESTOP": 11, "CANCELED": 12, "BACKEND_FAILURE": 13},
    "instrument": {"INVALID_OPERATION": 1, "INVALID_PARAMETERS": 2, "NOT_READY": 3, "DEVICE_ERROR": 4,
                   "COMMUNICATION_ERROR": 5, "CANCELED": 6, "TIMEOUT": 7, "ESTOP": 8, "LIQUID_ERROR": 9},
}


class SimHandle:
    def __init__(self, cell: SimulatedCell, call: DeviceCall, finish_at: float, outcome: DeviceResult,
                 apply=None) -> None:
        self._cell, self.call, self.finish_at, self._outcome, self._apply = cell, call, finish_at, outcome, apply
        self._done = False
        cell.clock.wake_at(finish_at)
        cell._pending.append(self)

    def done(self) -> bool:
        if not self._done and self._cell.clock.now() >= self.finish_at:
            self._done = True
            if self._outcome.ok and self._apply:
                self._apply()
            if self._cell._busy.get(self.call.device) is self:
                del self._cell._busy[self.call.device]
        return self._done

    def result(self) -> DeviceResult:
        if not self.done():
            raise RuntimeError("result() before done()")
        return self._outcome

    def cancel(self) -> None:
        if not self.done():
            self._done = True
            self._outcome = DeviceResult(False, _ERROR_CODES[self.call.kind]["CANCELED"], "CANCELED", "canceled")
            if self._cell._busy.get(self.call.device) is self:
                del self._cell._busy[self.call.device]
            self._cell.cancelled.append(self.call)


class SimulatedCell:
    """Simulated-time model of the workcell's devices for the executive's offline runs."""

    def __init__(self, clock: SimClock, labware_at: dict[str, str], device_types: dict[str, str] | None = None,
                 nests: dict[str, str] | None = None, transfer_s: float = caps.TRANSFER_S,
                 well_volume_ul: float = 360.0) -> None:
        self.clock = clock
        self.labware_at = dict(labware_at)  # labware id -> location id
        self.device_types = dict(device_types or caps.DEFAULT_DEVICE_TYPES)
        #: device id -> its nest location (default "<device>.nest")
        self.nests = dict(nests or {d: f"{d}.nest" for d in self.device_types})
        self.transfer_s = transfer_s
        self.well_volume_ul = well_volume_ul
        self.volumes: dict[str, dict[str, float]] = {}  # labware -> well -> µL
        self.log: list[tuple[float, float, DeviceCall]] = []  # (start, end, call) of accepted calls
        self.cancelled: list[DeviceCall] = []
        self._faults: list[_Fault] = []
        self._busy: dict[str, SimHandle] = {}
        self._pending: list[SimHandle] = []

    def inject_fault(self, device: str, operation: str, error_name: str, times: int = 1) -> None:
        """The next `times` calls of device/operation fail with `error_name` (a flaky device)."""
        self._faults.append(_Fault(device, operation, error_name, times))

    def _fault_for(self, call: DeviceCall) -> str | None:
        for f in self._faults:
            if f.device == call.device and f.operation in ("*", call.operation) and f.remaining > 0:
                f.remaining -= 1
                return f.error_name
        return None

    def _fail(self, call: DeviceCall, name: str, msg: str, after: float = 0.0) -> SimHandle:
        code = _ERROR_CODES[call.kind].get(name, 4)
        return SimHandle(self, call, self.clock.now() + after, DeviceResult(False, code, name, msg))

    def settle(self) -> None:
        """Finish goals whose time has come even if no one polls them (a crashed client's goals)."""
        for h in list(self._pending):
            if h.done():
                self._pending.remove(h)

    def busy(self, device: str) -> str | None:
        """Why `device` cannot take a goal now (another goal runs), or None."""
        self.settle()
        h = self._busy.get(device)
        return None if h is None else f"{device} is busy with {h.call.operation or h.call.kind} of run {h.call.run_id}"

    def start(self, call: DeviceCall) -> SimHandle:
        self.settle()
        if call.device in self._busy:
            return self._fail(call, "NOT_READY" if call.kind == "instrument" else "INVALID_GOAL",
                              f"{call.device} is busy with another goal")
        fault = self._fault_for(call)
        if call.kind == "transfer":
            return self._transfer(call, fault)
        return self._instrument(call, fault)

    def _accept(self, call: DeviceCall, seconds: float, outcome: DeviceResult, apply=None) -> SimHandle:
        start = self.clock.now()
        self.log.append((start, start + seconds, call))
        handle = SimHandle(self, call, start + seconds, outcome, apply)
        self._busy[call.device] = handle
        return handle

    def _transfer(self, call: DeviceCall, fault: str | None) -> SimHandle:
        where = self.labware_at.get(call.labware)
        if where is None:
            return self._fail(call, "WRONG_LABWARE", f"no labware '{call.labware}' in the cell")
        if call.source and where != call.source:
            return self._fail(call, "SOURCE_EMPTY", f"'{call.labware}' is at {where}, not at {call.source}")
        occupant = next((lw for lw, loc in self.labware_at.items() if loc == call.destination), None)
        if occupant is not None and occupant != call.labware:
            return self._fail(call, "DESTINATION_OCCUPIED", f"{call.destination} holds '{occupant}'")
        if fault:
            return self._fail(call, fault, f"simulated {fault.lower()} during transfer", after=self.transfer_s / 2)

        def apply() -> None:
            self.labware_at[call.labware] = call.destination

        return self._accept(call, self.transfer_s, DeviceResult(True, placed_at=call.destination), apply)

    def _instrument(self, call: DeviceCall, fault: str | None) -> SimHandle:
        dtype = self.device_types.get(call.device)
        op = caps.operation(dtype or "", call.operation)
        if op is None:
            return self._fail(call, "INVALID_OPERATION", f"{call.device} ({dtype}) cannot {call.operation}")
        problems = caps.check_parameters(op, call.parameters)
        if problems:
            return self._fail(call, "INVALID_PARAMETERS", "; ".join(problems))
        nest = self.nests.get(call.device)
        if op.needs_labware and call.labware and self.labware_at.get(call.labware) != nest:
            return self._fail(call, "NOT_READY", f"'{call.labware}' is not in {nest}")
        seconds = caps.duration(op, call.parameters)
        if fault:
            return self._fail(call, fault, f"simulated {fault.lower()} in {call.operation}", after=seconds / 2)
        outputs: dict[str, Any] = {}
        apply = None
        if call.operation in ("dispense", "transfer"):
            wells = caps.wells_of(call.parameters["dest_wells"])
            vol = float(call.parameters["volume_ul"])
            plate = self.volumes.setdefault(call.labware, {})
            over = [w for w in wells if plate.get(w, 0.0) + vol > self.well_volume_ul]
            if over:
                return self._fail(call, "LIQUID_ERROR", f"{len(over)} well(s) would overflow, first {over[0]}")

            def apply() -> None:
                for w in wells:
                    plate[w] = plate.get(w, 0.0) + vol
        elif call.operation == "read_absorbance":
            wells = caps.wells_of(call.parameters.get("wells", "A1:H12"))
            plate = self.volumes.get(call.labware, {})
            # A deterministic stand-in for Beer-Lambert: absorbance grows with the liquid in the well.
            values = [0.04 + 0.004 * plate.get(w, 0.0) for w in wells]
            outputs = {"mean_absorbance": round(sum(values) / len(values), 4), "wells": len(values)}
        units = {"mean_absorbance": "OD"} if outputs else {}
        return self._accept(call, seconds, DeviceResult(True, outputs=outputs, units=units), apply)
