"""Byte transport to a device over pyserial, with reconnect after an unplug.

The io layer only moves bytes and lines; it knows no protocol. A port that
vanishes (USB adapter pulled, emulator restarted) raises DeviceDisconnected
once; the next call reopens the port by name, so a driver recovers as soon as
the device is back. `port` may be any pyserial URL (`/dev/ttyUSB0`, a pty
path or a symlink to one, `loop://`, `socket://host:port`).
"""

from __future__ import annotations

import contextlib
import termios
import threading
import time

import serial

from autolab.devices.errors import DeviceDisconnected, DeviceTimeout
from autolab.devices.framing import TERMINATOR, LineSplitter

#: What a vanished port raises, depending on where in pyserial it is noticed.
_IO_ERRORS = (serial.SerialException, OSError, termios.error)


class SerialLink:
    """A reopenable serial line with bounded line reads. Thread-safe for one request at a time."""

    def __init__(
        self, port: str, baudrate: int = 9600, terminator: bytes = TERMINATOR, reconnect_interval_s: float = 0.5
    ) -> None:
        if not port:
            raise DeviceDisconnected("no serial port configured (parameter 'port' is empty)")
        self.port = port
        self.baudrate = baudrate
        self.terminator = terminator
        self.reconnect_interval_s = reconnect_interval_s
        self._serial: serial.SerialBase | None = None
        self._splitter = LineSplitter(terminator)
        self._pending: list[bytes] = []
        self._last_attempt = 0.0
        self.lock = threading.RLock()
        self.reconnects = 0

    @property
    def is_open(self) -> bool:
        return self._serial is not None and self._serial.is_open

    def open(self) -> None:
        with self.lock:
            if self.is_open:
                return
            self._last_attempt = time.monotonic()
            try:
                self._serial = serial.serial_for_url(
                    self.port, baudrate=self.baudrate, timeout=0.05, write_timeout=1.0, exclusive=True
                )
            except (*_IO_ERRORS, ValueError) as exc:
                self._serial = None
                raise DeviceDisconnected(f"cannot open {self.port}: {exc}") from exc
            self._splitter.clear()
            self._pending.clear()

    def close(self) -> None:
        with self.lock:
            if self._serial is not None:
                with contextlib.suppress(*_IO_ERRORS):
                    self._serial.close()
            self._serial = None

    def ensure_open(self) -> None:
        """Reopen a lost port, at most once per reconnect interval (do not hammer a missing device)."""
        if self.is_open:
            return
        wait = self.reconnect_interval_s - (time.monotonic() - self._last_attempt)
        if wait > 0:
            time.sleep(wait)
        self.open()
        self.reconnects += 1

    def _lost(self, exc: Exception) -> DeviceDisconnected:
        self.close()
        return DeviceDisconnected(f"lost {self.port}: {exc}")

    def write(self, data: bytes) -> None:
        with self.lock:
            self.ensure_open()
            assert self._serial is not None
            try:
                self._serial.write(data)
                self._serial.flush()
            except _IO_ERRORS as exc:
                raise self._lost(exc) from exc

    def discard_input(self) -> None:
        """Drop stale bytes (a late answer of a timed-out command) before a new request."""
        with self.lock:
            self._pending.clear()
            self._splitter.clear()
            if self._serial is not None:
                try:
                    self._serial.reset_input_buffer()
                except _IO_ERRORS as exc:
                    raise self._lost(exc) from exc

    def poll(self) -> None:
        """Take in whatever has arrived, without waiting; notices a vanished port (a hung-up pty, a pulled
        USB adapter) for protocols that have no status command to ask."""
        with self.lock:
            self.ensure_open()
            assert self._serial is not None
            try:
                self._serial.timeout = 0
                chunk = self._serial.read(max(1, self._serial.in_waiting))
            except _IO_ERRORS as exc:
                raise self._lost(exc) from exc
            finally:
                if self._serial is not None:
                    self._serial.timeout = 0.05
            if chunk:
                self._pending.extend(self._splitter.feed(chunk))

    def read_line(self, timeout_s: float) -> bytes:
        """The next line (terminator stripped) within `timeout_s`, or DeviceTimeout."""
        deadline = time.monotonic() + timeout_s
        with self.lock:
            self.ensure_open()
            assert self._serial is not None
            while not self._pending:
                if time.monotonic() >= deadline:
                    raise DeviceTimeout(f"no answer from {self.port} within {timeout_s:.2f} s")
                try:
                    waiting = self._serial.in_waiting
                    chunk = self._serial.read(max(1, waiting))
                except _IO_ERRORS as exc:
                    raise self._lost(exc) from exc
                if chunk:
                    self._pending.extend(self._splitter.feed(chunk))
            return self._pending.pop(0)
