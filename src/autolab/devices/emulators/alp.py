"""Device side of ALP (docs/serial-protocols.md): serves any `InstrumentBackend` over a pty.

The emulated instrument is the simulated physics itself (`autolab.sim.instruments`),
so a driver talking to this emulator and the `sim` backend behave identically.
Like a real device it validates every command on its side too, answers a
repeated sequence number from its cache instead of running the command twice,
and ignores lines it cannot parse (the driver times out and retries).
"""

from __future__ import annotations

from typing import Any

from autolab.devices.drivers.alp import flatten_result
from autolab.devices.emulators.base import PtyEmulator
from autolab.devices.errors import (
    DeviceError,
    DeviceFault,
    FramingError,
    InvalidOperation,
    InvalidParameters,
    LiquidHandlingError,
    NotReady,
)
from autolab.devices.framing import Frame, decode, encode
from autolab.devices.instruments import Instrument, InstrumentBackend, InstrumentStatus

_CODES: tuple[tuple[type[Exception], str], ...] = (
    (InvalidOperation, "E_OP"),
    (InvalidParameters, "E_PARAM"),
    (LiquidHandlingError, "E_LIQUID"),
    (DeviceFault, "E_FAULT"),
    (NotReady, "E_STATE"),
)


class AlpServer(PtyEmulator):
    """The device side of ALP framing: parse, answer repeats from the cache, map errors to refusal codes.
    Subclasses implement `execute(frame) -> response arguments`."""

    def __init__(self, model: str, serial_number: str = "EMU0001", link: str | None = None) -> None:
        super().__init__(link)
        self.model = model
        self.serial_number = serial_number
        self._last: tuple[int, bytes, bytes] | None = None  # (seq, request, reply)
        self.executed: list[str] = []  # verbs actually executed (not replayed)

    def handle(self, line: bytes) -> bytes | None:
        try:
            frame = decode(line)
        except FramingError as exc:
            self.errors.append(str(exc))
            return None
        if frame.direction != ">":
            self.errors.append(f"ignored a response frame from the host: {line[:40]!r}")
            return None
        if self._last is not None and self._last[0] == frame.seq and self._last[1] == line:
            return self._last[2]  # the host retried: answer again, do not run it twice
        self.executed.append(frame.verb)
        try:
            reply = encode("<", frame.seq, "OK", self.execute(frame))
        except DeviceError as exc:
            code = next((c for t, c in _CODES if isinstance(exc, t)), "E_DEVICE")
            reply = encode("<", frame.seq, "ER", words=[code, *str(exc).replace("*", "x").split()])
        except (KeyError, ValueError) as exc:
            reply = encode("<", frame.seq, "ER", words=["E_PARAM", *str(exc).replace("*", "x").split()])
        self._last = (frame.seq, line, reply)
        return reply

    def execute(self, frame: Frame) -> dict[str, Any]:
        raise NotImplementedError


class AlpEmulator(AlpServer):
    """An ALP instrument: serves an `InstrumentBackend` (the simulated physics) with the common verbs."""

    def __init__(
        self, backend: InstrumentBackend, model: str, serial_number: str = "EMU0001", link: str | None = None
    ) -> None:
        super().__init__(model, serial_number, link)
        self.backend = backend
        self.instrument = Instrument(backend.device_type, backend)

    def place_plate(self, labware_id: str) -> None:
        """A plate put in the nest (the emulated plate sensor sees it)."""
        self.backend.set_occupant(labware_id)

    def execute(self, frame: Frame) -> dict[str, Any]:
        verb, args = frame.verb, frame.args
        if verb == "IDN":
            return {"model": self.model, "serial": self.serial_number, "fw": "1.0", "type": self.backend.device_type}
        if verb == "STATUS":
            return _status_args(self.backend.status())
        if verb == "START":
            params = dict(args)
            operation = params.pop("op", "")
            labware = params.pop("labware", "")
            status = self.backend.status()
            if status.state == "busy":
                raise NotReady(f"busy with {status.operation}")
            clean = self.instrument.validate(operation, params, status)
            self.backend.start(operation, clean, labware)
            return {"state": "busy"}
        if verb == "PROGRESS":
            p = self.backend.progress()
            return {
                "phase": p.phase.replace(" ", "_") or "-",
                "progress": round(p.progress, 4),
                "eta": round(p.eta_s, 3),
                "done": p.done,
                **{f"r_{k}": v for k, v in p.readings.items()},
            }
        if verb == "RESULT":
            return flatten_result(self.backend.result())
        if verb == "ABORT":
            self.backend.abort()
            return {"state": "idle"}
        raise InvalidOperation(f"unknown command {verb}")


def _status_args(s: InstrumentStatus) -> dict[str, Any]:
    out: dict[str, Any] = {
        "state": s.state,
        "door": s.door_open,
        "plate": s.occupant or "-",
        "op": s.operation or "-",
        "error": s.error.replace(" ", "_").replace("=", ":").replace("*", "x") or "-",
    }
    out.update({f"v_{k}": v for k, v in s.values.items()})
    return out


#: The ALP models emulated, by device type (the model names the drivers accept).
MODELS: dict[str, str] = {
    "plate_reader": "ALP-AR96",
    "sealer": "ALP-HS1",
    "incubator": "ALP-IC22",
    "liquid_handler": "ALP-LH8",
}


def emulate(device_type: str, link: str | None = None, **sim_kwargs: Any) -> AlpEmulator:
    """An (unstarted) emulator of the ALP model of `device_type`, running the simulated physics.

    The simulated instruments live in a higher layer (autolab.sim); the import is local so
    the drivers themselves never depend on the simulation.
    """
    from autolab.sim.instruments import SIM_CLASSES

    if device_type not in MODELS:
        raise InvalidOperation(f"no ALP emulator for {device_type!r}; known: {', '.join(MODELS)}")
    return AlpEmulator(SIM_CLASSES[device_type](**sim_kwargs), MODELS[device_type], link=link)


def main(args: list[str] | None = None) -> int:
    import argparse

    from autolab.devices.emulators.base import serve_forever
    from autolab.sim.instruments import LocalLiquids

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--type", required=True, choices=sorted(MODELS))
    known, rest = pre.parse_known_args(args)

    def make(ns):
        emulator = emulate(known.type, ns.link, time_scale=ns.time_scale, seed=ns.seed, liquids=LocalLiquids())
        if ns.plate:
            emulator.place_plate(ns.plate)
        return emulator

    return serve_forever(make, f"ALP {known.type} emulator ({MODELS[known.type]}) on a pseudo-terminal", rest)


if __name__ == "__main__":
    raise SystemExit(main())
