"""Emulator of a KEYENCE SR-series barcode reader in command mode (see drivers/keyence_sr.py).

`LON<CR>` answers after the read time with the barcode of the plate under the
reader, or `ERROR<CR>` when there is none; `LOFF<CR>` ends a pending reading
without output. Unknown commands get `ER,<cmd>,00<CR>` as on the real reader.
"""

from __future__ import annotations

import time

from autolab.devices.emulators.base import PtyEmulator, serve_forever


class KeyenceSrEmulator(PtyEmulator):
    terminator = b"\r"

    def __init__(
        self, barcodes: dict[str, str] | None = None, read_time_s: float = 0.2, link: str | None = None
    ) -> None:
        super().__init__(link)
        self.barcodes = dict(barcodes or {})
        self.read_time_s = read_time_s
        self.plate = ""
        self._due: float | None = None

    def place_plate(self, labware_id: str) -> None:
        self.plate = labware_id

    def handle(self, line: bytes) -> bytes | None:
        command = line.strip().upper()
        if command == b"LON":
            self._due = time.monotonic() + self.read_time_s
            return None
        if command == b"LOFF":
            self._due = None
            return None
        return b"ER," + command[:8] + b",00" + self.terminator

    def tick(self) -> None:
        if self._due is not None and time.monotonic() >= self._due:
            self._due = None
            code = self.barcodes.get(self.plate, "") if self.plate else ""
            self._send((code or "ERROR").encode("ascii") + self.terminator)


def main(args: list[str] | None = None) -> int:
    def make(ns):
        emulator = KeyenceSrEmulator({ns.plate: f"BC-{ns.plate}"} if ns.plate else {}, link=ns.link)
        emulator.place_plate(ns.plate)
        return emulator

    return serve_forever(make, "KEYENCE SR barcode reader emulator on a pseudo-terminal", args)


if __name__ == "__main__":
    raise SystemExit(main())
