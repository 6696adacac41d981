"""Instrument frontends: what each instrument type can do, validated before anything moves.

Frontend / backend / io, as in PyLabRobot:
- the frontend (`Instrument`) knows the operations of an instrument *type*
  (plate reader, sealer, incubator, liquid handler, barcode scanner), their
  parameters with types, units and ranges, and the preconditions (door closed,
  plate in the nest);
- a backend (`InstrumentBackend`) runs operations on one *model*: a serial
  driver (`autolab.devices.drivers`) or the simulated physics (`autolab.sim.instruments`);
- the io layer (`autolab.devices.io`) moves bytes.

The instrument node holds one `Instrument` and never knows which backend runs
underneath, so adding a model is a new backend and a registry entry.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from autolab.devices.errors import InvalidOperation, InvalidParameters, NotReady

# --- parameters ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of an operation. `kind`: float, int, str, str_list, float_list, wells (ranges expand)."""

    name: str
    kind: str
    unit: str = ""
    required: bool = True
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    doc: str = ""

    def describe_range(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        lo = "-inf" if self.minimum is None else f"{self.minimum:g}"
        hi = "inf" if self.maximum is None else f"{self.maximum:g}"
        return f"[{lo}, {hi}] {self.unit}".rstrip()

    def coerce(self, value: Any) -> Any:
        """The value converted to this parameter's kind; InvalidParameters names the parameter and range."""
        try:
            if self.kind == "float":
                out = _as_float(value)
                self._check_range(out)
            elif self.kind == "int":
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise TypeError
                out = int(value)
                if isinstance(value, str) and str(out) != value.strip():
                    raise TypeError
                self._check_range(out)
            elif self.kind == "str":
                if not isinstance(value, str) or not value.strip():
                    raise TypeError
                out = value.strip()
                if self.choices and out not in self.choices:
                    raise InvalidParameters(f"parameter '{self.name}' = {out!r} is not {self.describe_range()}")
            elif self.kind == "str_list":
                items = value.split(",") if isinstance(value, str) else list(value)
                out = [str(v).strip() for v in items if str(v).strip()]
                if not out:
                    raise TypeError
            elif self.kind == "wells":
                out = _wells(value)
            elif self.kind == "float_list":
                items = (
                    value.split(",")
                    if isinstance(value, str)
                    else (list(value) if isinstance(value, list | tuple) else [value])
                )
                out = [_as_float(v) for v in items]
                if not out:
                    raise TypeError
                for v in out:
                    self._check_range(v)
            else:  # pragma: no cover - a programming error in a capability table
                raise AssertionError(f"unknown parameter kind {self.kind}")
        except (TypeError, ValueError):
            raise InvalidParameters(
                f"parameter '{self.name}' = {value!r} is not a valid {self.kind.replace('_', ' ')}"
                + (f" (expected {self.describe_range()})" if self.kind in ("float", "int", "float_list") else "")
                + (" (expected well names or ranges, e.g. A1,B2 or A1:H1)" if self.kind == "wells" else "")
            ) from None
        return out

    def _check_range(self, value: float) -> None:
        if (self.minimum is not None and value < self.minimum) or (self.maximum is not None and value > self.maximum):
            raise InvalidParameters(
                f"parameter '{self.name}' = {value:g} {self.unit} is out of range {self.describe_range()}".replace(
                    "  ", " "
                )
            )


def _wells(value: Any) -> list[str]:
    """Well names, with ranges like "A1:H1" expanded (column by column, as protocols write them)."""
    from autolab.model.protocol import expand_wells

    items = value.split(",") if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in (str(v).strip().upper() for v in items):
        wells = expand_wells(item) if item else []
        if not wells:
            raise ValueError
        out += wells
    if not out:
        raise ValueError
    return out


def _as_float(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError
    out = float(value)
    if not math.isfinite(out):
        raise ValueError
    return out


@dataclass(frozen=True)
class Capability:
    """An operation an instrument type offers, with its parameters and preconditions."""

    operation: str
    params: tuple[ParamSpec, ...] = ()
    needs_plate: bool = False  # a plate must be in the nest
    needs_empty_nest: bool = False
    needs_door_closed: bool = True
    doc: str = ""

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        known = {p.name for p in self.params}
        unknown = sorted(set(params) - known)
        if unknown:
            raise InvalidParameters(
                f"{self.operation}: unknown parameter(s) {', '.join(unknown)}; accepted: "
                + (", ".join(sorted(known)) or "none")
            )
        out: dict[str, Any] = {}
        for spec in self.params:
            if spec.name in params:
                out[spec.name] = spec.coerce(params[spec.name])
            elif spec.required:
                raise InvalidParameters(
                    f"{self.operation}: missing parameter '{spec.name}' ({spec.kind}, {spec.describe_range()})"
                )
            elif spec.default is not None:
                out[spec.name] = spec.default
        return out


_DOOR = (
    Capability("open_door", needs_door_closed=False, doc="open the door or lid"),
    Capability("close_door", needs_door_closed=False, doc="close the door or lid"),
)

CAPABILITIES: dict[str, tuple[Capability, ...]] = {
    "plate_reader": _DOOR
    + (
        Capability(
            "read_absorbance",
            (
                ParamSpec("wavelength_nm", "float", "nm", minimum=230, maximum=1000),
                ParamSpec("wells", "wells", required=False, doc="wells to read; all when absent"),
            ),
            needs_plate=True,
            doc="absorbance of each well at one wavelength (optical density, 10 mm-free: as measured)",
        ),
    ),
    "sealer": _DOOR
    + (
        Capability(
            "seal",
            (
                ParamSpec("temperature_c", "float", "Cel", required=False, default=165.0, minimum=80, maximum=200),
                ParamSpec("time_s", "float", "s", required=False, default=3.0, minimum=0.5, maximum=12.0),
            ),
            needs_plate=True,
        ),
        Capability("peel", needs_plate=True),
    ),
    "incubator": _DOOR
    + (
        Capability(
            "incubate",
            (
                ParamSpec("temperature_c", "float", "Cel", minimum=4, maximum=70),
                ParamSpec("time_s", "float", "s", minimum=0, maximum=7 * 86400),
                ParamSpec("shake_rpm", "float", "rpm", required=False, default=0.0, minimum=0, maximum=1500),
            ),
            needs_plate=True,
        ),
        Capability(
            "set_temperature",
            (ParamSpec("temperature_c", "float", "Cel", minimum=4, maximum=70),),
            needs_door_closed=False,
        ),
        Capability("store", (ParamSpec("slot", "int", minimum=1, maximum=99),), needs_plate=True),
        Capability("retrieve", (ParamSpec("slot", "int", minimum=1, maximum=99),), needs_empty_nest=True),
    ),
    "liquid_handler": _DOOR
    + (
        Capability(
            "dispense",
            (
                ParamSpec("reagent", "str"),
                ParamSpec("dest_wells", "wells"),
                ParamSpec("volume_ul", "float_list", "uL", minimum=0.5, maximum=1000),
                ParamSpec("components", "str_list", required=False, doc="explicit reagent composition"),
                ParamSpec("concentrations_um", "float_list", "umol/L", required=False, minimum=0),
            ),
            needs_plate=True,
            doc="dispense a reagent from a reservoir into wells of the plate in the nest",
        ),
        Capability(
            "transfer",
            (
                ParamSpec("source_labware", "str"),
                ParamSpec("source_wells", "wells"),
                ParamSpec("dest_wells", "wells"),
                ParamSpec("volume_ul", "float_list", "uL", minimum=0.5, maximum=1000),
            ),
            needs_plate=True,
            doc="well-to-well transfers from a source plate on the deck into the plate in the nest",
        ),
        Capability(
            "aspirate",
            (
                ParamSpec("source_wells", "wells"),
                ParamSpec("volume_ul", "float_list", "uL", minimum=0.5, maximum=1000),
            ),
            needs_plate=True,
            doc="remove liquid from wells of the plate in the nest (to waste)",
        ),
    ),
    "barcode_scanner": (Capability("scan", needs_plate=True, needs_door_closed=False),),
}


#: Workcell device types that name one of the types above.
TYPE_ALIASES: dict[str, str] = {"barcode_reader": "barcode_scanner"}


def capabilities_of(device_type: str) -> dict[str, Capability]:
    try:
        return {c.operation: c for c in CAPABILITIES[TYPE_ALIASES.get(device_type, device_type)]}
    except KeyError:
        raise InvalidOperation(
            f"unknown instrument type {device_type!r}; known: {', '.join(sorted(CAPABILITIES))}"
        ) from None


# --- backend interface -----------------------------------------------------------------------


@dataclass
class InstrumentStatus:
    """What an instrument reports about itself (published as DeviceState)."""

    state: str = "idle"  # idle | busy | error | offline
    door_open: bool = False
    occupant: str = ""  # labware id in the nest ("" = empty); "?" = present but unknown
    operation: str = ""
    values: dict[str, float | str] = field(default_factory=dict)
    error: str = ""

    @property
    def occupied(self) -> bool:
        return bool(self.occupant)


@dataclass
class Progress:
    """One poll of a running operation."""

    phase: str
    progress: float  # 0..1
    eta_s: float
    done: bool = False
    readings: dict[str, float] = field(default_factory=dict)


@dataclass
class OperationResult:
    """The outcome of an operation. `data` (if any) is stored in the run store by the node."""

    kind: str = ""  # e.g. "absorbance_plate"; empty when there is no data to store
    data: dict[str, Any] = field(default_factory=dict)
    units: str = ""
    outputs: list[tuple[str, Any, str]] = field(default_factory=list)  # (name, value, unit) summary


class InstrumentBackend(ABC):
    """One instrument model. Calls are blocking but short (bounded by timeouts); `start` returns at once
    and the caller polls `progress` until done, so cancel and feedback work the same for every model."""

    device_type: str = ""
    model: str = ""

    def connect(self) -> None:  # noqa: B027 - optional hook: simulated backends have nothing to open
        """Open the connection."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the connection."""

    @abstractmethod
    def status(self) -> InstrumentStatus: ...

    @abstractmethod
    def start(self, operation: str, params: Mapping[str, Any], labware_id: str) -> None:
        """Begin a validated operation; raises NotReady/CommandRefused/LiquidHandlingError if refused."""

    @abstractmethod
    def progress(self) -> Progress: ...

    @abstractmethod
    def result(self) -> OperationResult:
        """The result of the operation that just finished (raises DeviceFault if it failed)."""

    @abstractmethod
    def abort(self) -> None:
        """Stop the running operation as soon as the device allows."""

    def set_occupant(self, labware_id: str) -> None:  # noqa: B027 - optional hook
        """Tell a simulated backend which labware the world says is in its nest (no-op for hardware)."""


BackendFactory = Callable[..., InstrumentBackend]


class Instrument:
    """Frontend: validates an operation against the type's capabilities and the instrument's state."""

    def __init__(self, device_type: str, backend: InstrumentBackend) -> None:
        self.device_type = device_type
        self.capabilities = capabilities_of(device_type)
        self.backend = backend

    def validate(
        self,
        operation: str,
        params: Mapping[str, Any],
        status: InstrumentStatus | None = None,
    ) -> dict[str, Any]:
        """Checked, typed, defaulted parameters; raises InvalidOperation, InvalidParameters or NotReady."""
        cap = self.capabilities.get(operation)
        if cap is None:
            raise InvalidOperation(
                f"{operation!r} is not an operation of a {self.device_type}; "
                f"it offers: {', '.join(sorted(self.capabilities))}"
            )
        clean = cap.validate(params)
        status = status if status is not None else self.backend.status()
        if status.state == "busy":
            raise NotReady(f"{self.device_type} is busy with {status.operation or 'an operation'}")
        if status.state == "offline":
            raise NotReady(f"{self.device_type} is offline: {status.error}")
        if cap.needs_door_closed and status.door_open:
            raise NotReady(f"cannot {operation}: the door is open")
        if cap.needs_plate and not status.occupied:
            raise NotReady(f"cannot {operation}: no plate in the nest")
        if cap.needs_empty_nest and status.occupied:
            raise NotReady(f"cannot {operation}: the nest is occupied by {status.occupant}")
        return clean

    def start(self, operation: str, params: Mapping[str, Any], labware_id: str = "") -> dict[str, Any]:
        clean = self.validate(operation, params)
        self.backend.start(operation, clean, labware_id)
        return clean
