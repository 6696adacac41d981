"""Driver side of ALP, autolab's instrument line protocol (docs/serial-protocols.md).

`AlpClient` does request/response with sequence numbers, checksums, timeouts
and retries; a retried request keeps its sequence number so the device can
answer it again without running it twice. `AlpInstrument` is a complete
`InstrumentBackend` over ALP; a model module subclasses it to name the model it
accepts and to decode its results.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from autolab.devices.errors import (
    CommandRefused,
    CommunicationError,
    DeviceDisconnected,
    DeviceFault,
    DeviceTimeout,
    FramingError,
    InvalidOperation,
    InvalidParameters,
    LiquidHandlingError,
    NotReady,
)
from autolab.devices.framing import decode, encode
from autolab.devices.instruments import InstrumentBackend, InstrumentStatus, OperationResult, Progress
from autolab.devices.io import SerialLink

log = logging.getLogger(__name__)

#: Refusal codes of ALP and the named error each becomes.
REFUSALS: dict[str, type[Exception]] = {
    "E_BUSY": NotReady,
    "E_DOOR": NotReady,
    "E_NEST": NotReady,
    "E_STATE": NotReady,
    "E_OP": InvalidOperation,
    "E_PARAM": InvalidParameters,
    "E_LIQUID": LiquidHandlingError,
    "E_FAULT": DeviceFault,
}


class AlpClient:
    def __init__(self, link: SerialLink, timeout_s: float = 1.0, retries: int = 2) -> None:
        self.link = link
        self.timeout_s = timeout_s
        self.retries = retries
        self._seq = 0
        self.stats = {"requests": 0, "retries": 0, "stale": 0}

    def command(
        self,
        verb: str,
        args: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> dict[str, str]:
        """Send one request and return the response's arguments.

        Raises CommandRefused (or the named error of its code) when the device says no; DeviceTimeout,
        FramingError/ChecksumError or DeviceDisconnected when every attempt failed on the line.
        """
        with self.link.lock:
            self._seq = (self._seq + 1) % 256
            frame = encode(">", self._seq, verb, dict(args or {}))
            self.stats["requests"] += 1
            last: CommunicationError | None = None
            for attempt in range(self.retries + 1):
                if attempt:
                    self.stats["retries"] += 1
                    log.debug("retry %d of %s after %s", attempt, verb, last)
                try:
                    if attempt:
                        self.link.discard_input()
                    self.link.write(frame)
                    response = self._await(self._seq, timeout_s or self.timeout_s)
                except (DeviceTimeout, FramingError, DeviceDisconnected) as exc:
                    last = exc
                    continue
                if response.ok:
                    return response.args
                code = response.words[0] if response.words else "E_UNKNOWN"
                message = " ".join(response.words[1:]) or code
                error = REFUSALS.get(code)
                if error is None:
                    raise CommandRefused(code, message)
                raise error(message)
            assert last is not None
            raise type(last)(f"{verb}: {last} (after {self.retries + 1} attempts)")

    def _await(self, seq: int, timeout_s: float):
        while True:
            response = decode(self.link.read_line(timeout_s))
            if response.direction != "<":
                raise FramingError(f"expected a response, got a request frame ({response.verb})")
            if response.seq == seq:
                return response
            self.stats["stale"] += 1  # a late answer to an earlier, timed-out request


def flatten_result(result: OperationResult) -> dict[str, Any]:
    """A result as ALP arguments: `kind`, `units`, `d_<key>` data, `w_<well>` tables, `o_<name>` outputs."""
    args: dict[str, Any] = {"kind": result.kind or "none", "units": result.units or "none"}
    for key, value in result.data.items():
        if key == "wells" and isinstance(value, Mapping):
            args.update({f"w_{well}": v for well, v in value.items()})
        elif value not in ("", None, [], ()):
            args[f"d_{key}"] = value
    for name, value, unit in result.outputs:
        args[f"o_{name}"] = value
        if unit:
            args[f"u_{name}"] = unit
    return args


def _number(text: str) -> Any:
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


class AlpDevice:
    """A device on an ALP line: the link, the client, and the identity check at connect.
    Subclasses name the `models` they accept."""

    models: ClassVar[tuple[str, ...]] = ()

    def __init__(self, port: str, baudrate: int = 115200, timeout_s: float = 1.0, retries: int = 2, **_: Any) -> None:
        self.link = SerialLink(port, baudrate)
        self.client = AlpClient(self.link, timeout_s, retries)
        self.identity: dict[str, str] = {}
        self.model = ""

    def connect(self) -> None:
        self.link.open()
        self.identity = self.client.command("IDN")
        model = self.identity.get("model", "")
        if self.models and model not in self.models:
            raise CommandRefused(
                "E_MODEL", f"device on {self.link.port} is {model!r}, expected one of {', '.join(self.models)}"
            )
        self.model = model

    def close(self) -> None:
        self.link.close()


class AlpInstrument(AlpDevice, InstrumentBackend):
    """An instrument that speaks ALP. Subclasses set `device_type`, `models` and `list_keys`."""

    #: data keys that are lists even when they hold one item
    list_keys: ClassVar[frozenset[str]] = frozenset()

    def status(self) -> InstrumentStatus:
        try:
            a = self.client.command("STATUS")
        except CommunicationError as exc:
            return InstrumentStatus(state="offline", error=str(exc))
        values = {k[2:]: _number(v) for k, v in a.items() if k.startswith("v_")}
        plate = a.get("plate", "-")
        return InstrumentStatus(
            state=a.get("state", "idle"),
            door_open=a.get("door") == "1",
            occupant="" if plate == "-" else plate,
            operation="" if a.get("op", "-") == "-" else a["op"],
            values=values,
            error="" if a.get("error", "-") == "-" else a["error"].replace("_", " "),
        )

    def start(self, operation: str, params: Mapping[str, Any], labware_id: str) -> None:
        args = {"op": operation, **({"labware": labware_id} if labware_id else {}), **params}
        self.client.command("START", args)

    def progress(self) -> Progress:
        a = self.client.command("PROGRESS")
        readings = {k[2:]: float(v) for k, v in a.items() if k.startswith("r_")}
        return Progress(
            a.get("phase", "").replace("_", " "),
            float(a.get("progress", 0)),
            float(a.get("eta", 0)),
            done=a.get("done") == "1",
            readings=readings,
        )

    def result(self) -> OperationResult:
        return self.unflatten(self.client.command("RESULT"))

    def abort(self) -> None:
        self.client.command("ABORT")

    def unflatten(self, a: Mapping[str, str]) -> OperationResult:
        data: dict[str, Any] = {}
        wells = {k[2:]: float(v) for k, v in a.items() if k.startswith("w_")}
        for key, value in a.items():
            if key.startswith("d_"):
                name = key[2:]
                data[name] = (
                    [_number(v) for v in value.split(",")]
                    if ("," in value or name in self.list_keys)
                    else _number(value)
                )
        if wells:
            data["wells"] = wells
        outputs = [(k[2:], _number(v), a.get(f"u_{k[2:]}", "")) for k, v in a.items() if k.startswith("o_")]
        kind = a.get("kind", "none")
        units = a.get("units", "none")
        return OperationResult(
            kind="" if kind == "none" else kind, data=data, units="" if units == "none" else units, outputs=outputs
        )
