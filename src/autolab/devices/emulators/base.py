"""A serial device emulator on a pseudo-terminal, with fault injection and unplug/replug.

The emulator owns the pty's master side and serves it from a thread; the driver
opens the slave side (`port`, or the stable symlink `link`) exactly as it would
open /dev/ttyUSB0, so tests exercise the driver byte for byte. `unplug()`
closes the master (the driver sees the port vanish) and `replug()` creates a
new pty and re-points the symlink, as udev does for a USB adapter.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path

from autolab.devices.errors import FramingError
from autolab.devices.framing import LineSplitter


class PtyEmulator:
    """Subclasses implement `handle(line) -> bytes | None` (the reply, or None for no reply)."""

    terminator = b"\r\n"

    def __init__(self, link: str | os.PathLike[str] | None = None) -> None:
        self.link = Path(link) if link else None
        self._master: int | None = None
        self._slave: int | None = None
        self.port = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # Fault injection: the next N replies are dropped / garbled / given a bad checksum.
        self.faults = {"silence": 0, "garbage": 0, "bad_checksum": 0}
        self.delay_s = 0.0
        self.received: list[bytes] = []  # every line received (capture for replay)
        self.errors: list[str] = []  # framing errors seen on input

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> PtyEmulator:
        self._open_pty()
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        self._close_pty()
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()

    def __enter__(self) -> PtyEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def device(self) -> str:
        """The path a driver should open: the symlink when there is one (it survives a replug)."""
        return str(self.link) if self.link is not None else self.port

    def unplug(self) -> None:
        """The cable is pulled: the port goes away until `replug()`."""
        with self._lock:
            self._close_pty()

    def replug(self) -> None:
        with self._lock:
            self._close_pty()
            self._open_pty()

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        self._master, self._slave = master, slave
        self.port = os.ttyname(slave)
        if self.link is not None:
            tmp = self.link.with_name(self.link.name + ".tmp")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(self.port)
            tmp.replace(self.link)

    def _close_pty(self) -> None:
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None

    # --- serving -----------------------------------------------------------------------
    def _serve(self) -> None:
        splitter = LineSplitter(self.terminator)
        while not self._stop.is_set():
            master = self._master
            if master is None:
                time.sleep(0.02)
                splitter.clear()
                continue
            try:
                ready, _, _ = select.select([master], [], [], 0.05)
                if not ready:
                    self.tick()
                    continue
                data = os.read(master, 4096)
            except (OSError, ValueError):  # unplugged while waiting
                time.sleep(0.02)
                continue
            try:
                lines = splitter.feed(data)
            except FramingError as exc:
                self.errors.append(str(exc))
                continue
            for line in lines:
                self.received.append(line)
                reply = self.handle(line)
                if reply is not None:
                    self._send(reply)
            self.tick()

    def tick(self) -> None:
        """Called between reads; emulators with unsolicited output send it here."""

    def _send(self, reply: bytes) -> None:
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.faults["silence"]:
            self.faults["silence"] -= 1
            return
        if self.faults["garbage"]:
            self.faults["garbage"] -= 1
            reply = bytes((b * 7 + 13) % 256 for b in reply[:-2]) + self.terminator
        elif self.faults["bad_checksum"]:
            self.faults["bad_checksum"] -= 1
            reply = reply[:-4] + (b"00" if reply[-4:-2] != b"00" else b"11") + self.terminator
        self.write_raw(reply)

    def write_raw(self, data: bytes) -> None:
        with self._lock:
            if self._master is not None:
                with contextlib.suppress(OSError):
                    os.write(self._master, data)

    def handle(self, line: bytes) -> bytes | None:
        raise NotImplementedError


def serve_forever(
    make: Callable[[argparse.Namespace], PtyEmulator], description: str, args: list[str] | None = None
) -> int:
    """`python -m autolab.devices.emulators.<x> --link /tmp/x`: serve until Ctrl-C."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--link", default=None, help="create this symlink to the pty (stable across replugs)")
    parser.add_argument("--time-scale", type=float, default=1.0, help="simulated seconds per wall second")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated noise")
    parser.add_argument("--plate", default="", help="labware id of a plate already in the nest")
    ns = parser.parse_args(args)
    emulator = make(ns).start()
    print(f"{type(emulator).__name__} serving on {emulator.device} (Ctrl-C to stop)", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0
