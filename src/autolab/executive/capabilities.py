"""What each kind of instrument can do, with parameter ranges and duration estimates.

One table serves pre-flight (does the protocol fit?), the estimates (how long?)
and the simulated-time device models (so benchmarks and the offline tests use
the same durations the estimates promise). Workcell device `params` may override
durations per device (`duration_s.<operation>` keys).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from autolab.model.protocol import expand_wells


@dataclass(frozen=True)
class ParamRange:
    type: str  # number | integer | string | wells
    minimum: float | None = None
    maximum: float | None = None
    required: bool = False
    unit: str = ""


@dataclass(frozen=True)
class Operation:
    name: str
    params: dict[str, ParamRange] = field(default_factory=dict)
    needs_labware: bool = True
    base_s: float = 5.0
    #: seconds added per unit of this parameter (e.g. incubate's time_s counts 1:1)
    per_param: tuple[tuple[str, float], ...] = ()
    per_well_s: float = 0.0
    idempotent: bool = True


_DOORS = {"open_door": Operation("open_door", needs_labware=False, base_s=3.0),
          "close_door": Operation("close_door", needs_labware=False, base_s=3.0)}

OPERATIONS: dict[str, dict[str, Operation]] = {
    "plate_reader": {
        "read_absorbance": Operation("read_absorbance", {
            "wavelength_nm": ParamRange("integer", 200, 1000, True, "nm"),
            "wells": ParamRange("wells")}, base_s=8.0, per_well_s=0.05),
        **_DOORS},
    "sealer": {
        "seal": Operation("seal", {
            "temperature_c": ParamRange("number", 100, 200, True, "Cel"),
            "time_s": ParamRange("number", 0.5, 10, True, "s")},
            base_s=6.0, per_param=(("time_s", 1.0),), idempotent=False),
        **_DOORS},
    "incubator": {
        "incubate": Operation("incubate", {
            "temperature_c": ParamRange("number", 4, 50, True, "Cel"),
            "time_s": ParamRange("number", 0, 86400, True, "s"),
            "shake_rpm": ParamRange("number", 0, 1500, False, "rpm")},
            base_s=5.0, per_param=(("time_s", 1.0),)),
        **_DOORS},
    "liquid_handler": {
        "dispense": Operation("dispense", {
            "dest_wells": ParamRange("wells", required=True),
            "volume_ul": ParamRange("number", 0.5, 1000, True, "uL")},
            base_s=4.0, per_well_s=0.25, idempotent=False),
        "transfer": Operation("transfer", {
            "source_labware": ParamRange("string", required=True),
            "source_wells": ParamRange("wells", required=True),
            "dest_wells": ParamRange("wells", required=True),
            "volume_ul": ParamRange("number", 0.5, 1000, True, "uL")},
            base_s=6.0, per_well_s=0.5, idempotent=False),
        **_DOORS},
    "barcode_reader": {"scan": Operation("scan", base_s=2.0)},
}

#: Seconds for one arm transfer (pick, carry, place) when the workcell gives none.
TRANSFER_S = 12.0

#: Device id -> type for the reference cell when no workcell description is at hand.
DEFAULT_DEVICE_TYPES = {
    "arm": "arm", "conveyor": "conveyor", "hotel1": "hotel", "reader1": "plate_reader",
    "sealer1": "sealer", "incubator1": "incubator", "liquid_handler1": "liquid_handler",
    "barcode1": "barcode_reader", "camera1": "camera",
}


def operation(device_type: str, name: str) -> Operation | None:
    return OPERATIONS.get(device_type, {}).get(name)


def check_parameters(op: Operation, params: dict[str, Any]) -> list[str]:
    """Problems with these parameters, as sentences (empty when they fit)."""
    problems = []
    for name, rng in op.params.items():
        if name not in params:
            if rng.required:
                problems.append(f"{op.name} needs parameter '{name}'")
            continue
        value = params[name]
        if rng.type in ("number", "integer"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                problems.append(f"{op.name}: '{name}' must be a number, got {value!r}")
                continue
            unit = f" {rng.unit}" if rng.unit else ""
            if rng.minimum is not None and value < rng.minimum or rng.maximum is not None and value > rng.maximum:
                problems.append(f"{op.name}: {name}={value}{unit} is outside {rng.minimum}..{rng.maximum}{unit}")
        elif rng.type == "wells":
            if not isinstance(value, str | list) or not wells_of(value):
                problems.append(f"{op.name}: '{name}' is not a well list or range: {value!r}")
    for name in params:
        if name not in op.params:
            problems.append(f"{op.name} has no parameter '{name}' (it takes: {', '.join(op.params) or 'none'})")
    return problems


def wells_of(value: str | list[str]) -> list[str]:
    if isinstance(value, list):
        return [w for v in value for w in wells_of(v)]
    return expand_wells(value)


def duration(op: Operation, params: dict[str, Any], overrides: dict[str, Any] | None = None) -> float:
    """Expected seconds of one operation (device params may override `duration_s.<op>`)."""
    if overrides and f"duration_s.{op.name}" in overrides:
        base = float(overrides[f"duration_s.{op.name}"])
    else:
        base = op.base_s
    extra = sum(float(params.get(p, 0) or 0) * k for p, k in op.per_param)
    wells = params.get("dest_wells") or params.get("wells")
    n = len(wells_of(wells)) if wells else (96 if op.per_well_s and op.name == "read_absorbance" else 0)
    return base + extra + n * op.per_well_s
