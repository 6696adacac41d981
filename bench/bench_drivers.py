"""Driver benchmark: command round trip through a driver and its emulator on a pseudo-terminal (p50/p99).

Side by side with a bare line echo over the same kind of pty, so the figure
shows what framing, checksums, sequence matching and the emulated device add
to the transport itself.

    python bench/bench_drivers.py [--n 2000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from autolab.devices.drivers import driver_class
from autolab.devices.drivers.keyence_sr import KeyenceSR
from autolab.devices.emulators.alp import emulate
from autolab.devices.emulators.base import PtyEmulator
from autolab.devices.emulators.keyence_sr import KeyenceSrEmulator
from autolab.devices.io import SerialLink
from autolab.sim.instruments import LocalLiquids


class EchoEmulator(PtyEmulator):
    def handle(self, line: bytes) -> bytes:
        return line + self.terminator


def _timed(fn, n: int) -> np.ndarray:
    for _ in range(min(50, n)):  # warm up
        fn()
    out = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t0
    return out * 1e3


def _row(name: str, ms: np.ndarray, base: float | None) -> str:
    p50, p99 = np.percentile(ms, 50), np.percentile(ms, 99)
    ratio = f"{p50 / base:6.2f}x" if base else "  1.00x"
    return f"  {name:<48} p50 {p50:7.3f} ms   p99 {p99:7.3f} ms   {ratio}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="round trips per case")
    ns = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="autolab-bench-"))
    rows = []
    with EchoEmulator(tmp / "echo") as echo:
        link = SerialLink(echo.device, 115200)
        line = b">01 STATUS*50\r\n"

        def bare() -> None:
            link.write(line)
            link.read_line(1.0)

        base = _timed(bare, ns.n)
        link.close()
    rows.append(_row("bare line echo (pty + pyserial)", base, None))
    b50 = float(np.percentile(base, 50))

    liquids = LocalLiquids()
    with emulate("plate_reader", str(tmp / "reader"), liquids=liquids, time_scale=1e6) as emu:
        emu.place_plate("plate1")
        reader = driver_class("plate_reader")(emu.device)
        reader.connect()
        rows.append(_row("ALP STATUS (driver + emulator)", _timed(reader.status, ns.n), b50))
        reader.start("read_absorbance", {"wavelength_nm": 600.0}, "plate1")
        while not reader.progress().done:
            pass
        rows.append(_row("ALP RESULT, 96-well table (~1.3 kB frame)", _timed(reader.result, max(ns.n // 4, 50)), b50))

        def read_plate() -> None:
            reader.start("read_absorbance", {"wavelength_nm": 600.0, "wells": "A1,A2,A3,A4"}, "plate1")
            while not reader.progress().done:
                pass
            reader.result()

        rows.append(
            _row("ALP full read: START+PROGRESS+RESULT (4 wells)", _timed(read_plate, max(ns.n // 10, 20)), b50)
        )
        reader.close()

    with KeyenceSrEmulator({"plate1": "AL-P-000001"}, read_time_s=0.0, link=str(tmp / "sr")) as sr:
        sr.place_plate("plate1")
        scanner = KeyenceSR(sr.device)
        scanner.connect()

        def scan() -> None:
            scanner.start("scan", {}, "")
            while not scanner.progress().done:
                pass
            scanner.result()

        rows.append(_row("KEYENCE SR LON -> barcode (emulator)", _timed(scan, max(ns.n // 4, 50)), b50))
        scanner.close()

    print(f"driver round trips over pseudo-terminals, {ns.n} samples per case (ratio: p50 vs bare echo)")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
