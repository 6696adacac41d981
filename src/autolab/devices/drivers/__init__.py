"""Serial drivers, one module per instrument model, and the registry the instrument node uses.

Adding a model: write its driver module (an `InstrumentBackend`) and add one
line here. The node looks drivers up by (type, model) and never changes.
"""

from __future__ import annotations

import importlib

from autolab.devices.errors import InvalidOperation
from autolab.devices.instruments import InstrumentBackend

#: (device type, model) -> "module:Class". The first model of a type is its default.
DRIVERS: dict[tuple[str, str], str] = {
    ("plate_reader", "ALP-AR96"): "autolab.devices.drivers.alp_reader:AlpPlateReader",
    ("sealer", "ALP-HS1"): "autolab.devices.drivers.alp_sealer:AlpSealer",
    ("incubator", "ALP-IC22"): "autolab.devices.drivers.alp_incubator:AlpIncubator",
    ("liquid_handler", "ALP-LH8"): "autolab.devices.drivers.alp_liquid_handler:AlpLiquidHandler",
    ("barcode_scanner", "KEYENCE-SR"): "autolab.devices.drivers.keyence_sr:KeyenceSR",
}


def driver_class(device_type: str, model: str = "") -> type[InstrumentBackend]:
    """The driver class for a type (and model; the type's default model when empty)."""
    matches = [
        (key, target) for key, target in DRIVERS.items() if key[0] == device_type and (not model or key[1] == model)
    ]
    if not matches:
        known = ", ".join(f"{t}/{m}" for t, m in DRIVERS)
        raise InvalidOperation(f"no serial driver for type {device_type!r} model {model!r}; known: {known}")
    module_name, _, cls_name = matches[0][1].partition(":")
    return getattr(importlib.import_module(module_name), cls_name)
