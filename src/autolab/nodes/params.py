"""Typed values <-> autolab_interfaces/Parameter, for every node that sends or serves operations.

The instrument node parses goals with it and the executive builds them with it,
so both sides agree on types and on the errors for malformed parameters.
"""

from __future__ import annotations

from typing import Any

from autolab.devices.errors import InvalidParameters
from autolab_interfaces.msg import Parameter


def params_from_msg(parameters: list[Parameter]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in parameters:
        if not p.name:
            raise InvalidParameters("a parameter has no name")
        if p.name in out:
            raise InvalidParameters(f"parameter '{p.name}' is given twice")
        if p.type == Parameter.TYPE_BOOL:
            out[p.name] = p.bool_value
        elif p.type == Parameter.TYPE_INTEGER:
            out[p.name] = p.integer_value
        elif p.type == Parameter.TYPE_DOUBLE:
            out[p.name] = p.double_value
        elif p.type == Parameter.TYPE_STRING:
            out[p.name] = p.string_value
        elif p.type == Parameter.TYPE_DOUBLE_ARRAY:
            out[p.name] = list(p.double_array_value)
        else:
            raise InvalidParameters(f"parameter '{p.name}' has no type set (type={p.type})")
    return out


def param_msg(name: str, value: Any, unit: str = "") -> Parameter:
    p = Parameter(name=name, unit=unit)
    if isinstance(value, bool):
        p.type, p.bool_value = Parameter.TYPE_BOOL, value
    elif isinstance(value, int):
        p.type, p.integer_value = Parameter.TYPE_INTEGER, value
    elif isinstance(value, float):
        p.type, p.double_value = Parameter.TYPE_DOUBLE, value
    elif isinstance(value, list | tuple):
        p.type, p.double_array_value = Parameter.TYPE_DOUBLE_ARRAY, [float(v) for v in value]
    else:
        p.type, p.string_value = Parameter.TYPE_STRING, str(value)
    return p
