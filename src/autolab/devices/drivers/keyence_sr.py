"""Driver of a KEYENCE SR-series (SR-1000/SR-700) barcode reader in command mode over RS-232C.

Follows the reader's documented serial command protocol (KEYENCE SR-1000 Series
User's Manual, "Serial Command" chapter): `LON<CR>` triggers a reading, the
reader answers with the decoded data and the delimiter `<CR>`, or with the
no-read string `ERROR` when nothing decodes before the read time ends; `LOFF<CR>`
ends a reading. There is no checksum in this protocol, so the driver checks
that an answer is printable ASCII and refuses anything else as garbage.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from autolab.devices.errors import (
    CommunicationError,
    DeviceFault,
    DeviceTimeout,
    FramingError,
    InvalidOperation,
    NotReady,
)
from autolab.devices.instruments import InstrumentBackend, InstrumentStatus, OperationResult, Progress
from autolab.devices.io import SerialLink

TERMINATOR = b"\r"
NO_READ = "ERROR"


class KeyenceSR(InstrumentBackend):
    device_type = "barcode_scanner"
    model = "KEYENCE-SR"

    def __init__(self, port: str, baudrate: int = 9600, read_time_s: float = 1.0, **_: Any) -> None:
        self.link = SerialLink(port, baudrate, terminator=TERMINATOR)
        self.read_time_s = read_time_s
        self._deadline: float | None = None
        self._answer: str | None = None
        self._error = ""

    def connect(self) -> None:
        self.link.open()

    def close(self) -> None:
        self.link.close()

    def status(self) -> InstrumentStatus:
        try:
            self.link.poll()
        except CommunicationError as exc:
            return InstrumentStatus(state="offline", error=str(exc))
        # The reader cannot sense a plate: "?" means "not known here", the node decides from the world.
        return InstrumentStatus(
            state="busy" if self._deadline else "idle", occupant="?", operation="scan" if self._deadline else ""
        )

    def start(self, operation: str, params: Mapping[str, Any], labware_id: str) -> None:
        if operation != "scan":
            raise InvalidOperation(f"a barcode reader can only scan, not {operation}")
        if self._deadline is not None:
            raise NotReady("a reading is already running")
        self._answer, self._error = None, ""
        self.link.discard_input()
        self.link.write(b"LON" + TERMINATOR)
        self._deadline = time.monotonic() + self.read_time_s + 0.5

    def progress(self) -> Progress:
        if self._deadline is None:
            return Progress("done", 1.0, 0.0, done=True)
        try:
            line = self.link.read_line(0.05)
        except DeviceTimeout:
            if time.monotonic() < self._deadline:
                return Progress("scanning", 0.5, self._deadline - time.monotonic())
            self._deadline = None
            self._error = f"barcode reader on {self.link.port} stayed silent after LON"
            self.link.write(b"LOFF" + TERMINATOR)
            return Progress("done", 1.0, 0.0, done=True)
        self._deadline = None
        try:
            text = line.decode("ascii")
        except UnicodeDecodeError:
            text = None
        if text is None or not text.isprintable() or not text:
            self._error = f"garbage from barcode reader: {line[:40]!r}"
        else:
            self._answer = text
        return Progress("done", 1.0, 0.0, done=True)

    def result(self) -> OperationResult:
        if self._error:
            error, self._error = self._error, ""
            raise (FramingError if "garbage" in error else DeviceTimeout)(error)
        if self._answer is None:
            raise NotReady("no reading has finished")
        if self._answer == NO_READ:
            raise DeviceFault("barcode reader: NO READ (no code decoded within the read time)")
        return OperationResult(kind="barcode", data={"barcode": self._answer}, outputs=[("barcode", self._answer, "")])

    def abort(self) -> None:
        if self._deadline is not None:
            self._deadline = None
            self.link.write(b"LOFF" + TERMINATOR)
