"""What each kind of instrument can do (from the devices layer) and how long it takes.

The operations, their parameters and ranges are the instruments' own table
(`autolab.devices.instruments.CAPABILITIES`), so pre-flight refuses exactly
what the devices would refuse. This module adds what the executive needs on
top: expected durations (for estimates and the simulated-time cell model) and
whether repeating an interrupted operation is safe (for resuming after a crash).
Workcell device `params` may override durations per device (`duration_s.<operation>`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autolab.devices.errors import InvalidParameters
from autolab.devices.instruments import CAPABILITIES, TYPE_ALIASES, Capability
from autolab.model.protocol import expand_wells


@dataclass(frozen=True)
class Timing:
    base_s: float = 5.0
    #: seconds added per unit of a parameter (e.g. incubate's time_s counts 1:1)
    per_param: tuple[tuple[str, float], ...] = ()
    per_well_s: float = 0.0
    #: may an interrupted run simply send it again?
    idempotent: bool = True


TIMINGS: dict[str, Timing] = {
    "open_door": Timing(3.0), "close_door": Timing(3.0),
    "read_absorbance": Timing(8.0, per_well_s=0.05),
    "seal": Timing(6.0, (("time_s", 1.0),), idempotent=False), "peel": Timing(8.0, idempotent=False),
    "incubate": Timing(5.0, (("time_s", 1.0),)), "set_temperature": Timing(5.0),
    "store": Timing(10.0), "retrieve": Timing(10.0),
    "dispense": Timing(4.0, per_well_s=0.25, idempotent=False),
    "transfer": Timing(6.0, per_well_s=0.5, idempotent=False),
    "aspirate": Timing(4.0, per_well_s=0.25, idempotent=False),
    "scan": Timing(2.0),
}

#: Seconds for one arm transfer (pick, carry, place) when the workcell gives none.
TRANSFER_S = 12.0

#: Device id -> type for the reference cell when no workcell description is at hand.
DEFAULT_DEVICE_TYPES = {
    "arm": "arm", "conveyor": "conveyor", "hotel1": "hotel", "reader1": "plate_reader",
    "sealer1": "sealer", "incubator1": "incubator", "liquid_handler1": "liquid_handler",
    "barcode1": "barcode_reader", "camera1": "camera",
}


@dataclass(frozen=True)
class Operation:
    name: str
    capability: Capability
    timing: Timing

    @property
    def needs_labware(self) -> bool:
        return self.capability.needs_plate

    @property
    def idempotent(self) -> bool:
        return self.timing.idempotent


def operations_of(device_type: str) -> list[str]:
    return [c.operation for c in CAPABILITIES.get(TYPE_ALIASES.get(device_type, device_type), ())]


def operation(device_type: str, name: str) -> Operation | None:
    for cap in CAPABILITIES.get(TYPE_ALIASES.get(device_type, device_type), ()):
        if cap.operation == name:
            return Operation(name, cap, TIMINGS.get(name, Timing()))
    return None


def check_parameters(op: Operation, params: dict[str, Any]) -> list[str]:
    """Problems with these parameters, as the device would word them (empty when they fit)."""
    try:
        op.capability.validate(params)
    except InvalidParameters as exc:
        return [str(exc)]
    return []


def wells_of(value: str | list[str]) -> list[str]:
    if isinstance(value, list):
        return [w for v in value for w in wells_of(v)]
    return expand_wells(value)


def duration(op: Operation, params: dict[str, Any], overrides: dict[str, Any] | None = None) -> float:
    """Expected seconds of one operation (device params may override `duration_s.<op>`)."""
    t = op.timing
    base = float(overrides[f"duration_s.{op.name}"]) if overrides and f"duration_s.{op.name}" in overrides \
        else t.base_s
    try:
        full = op.capability.validate(params)  # defaults filled in, as the device will run it
    except InvalidParameters:
        full = dict(params)
    extra = sum(float(full.get(p, 0) or 0) * k for p, k in t.per_param)
    wells = full.get("dest_wells") or full.get("wells")
    n = len(wells_of(wells)) if wells else (96 if t.per_well_s and op.name == "read_absorbance" else 0)
    return base + extra + n * t.per_well_s
