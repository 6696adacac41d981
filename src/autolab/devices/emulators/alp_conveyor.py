"""Emulator of the ALP-CV1 conveyor controller (drivers/alp_conveyor.py) on a pseudo-terminal.

The belt is a trapezoidal-velocity axis: it accelerates at `accel_mm_s2` up to
the commanded speed and brakes to stop on target. Presence sensors sit at
fixed positions and see carriers placed on the belt with `place_carrier`. A
carrier stuck at a position (`block_at`) stops the belt with fault "blocked".
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from autolab.devices.emulators.alp import AlpServer
from autolab.devices.emulators.base import serve_forever
from autolab.devices.errors import InvalidOperation, InvalidParameters, NotReady
from autolab.devices.framing import Frame

MODEL = "ALP-CV1"


class BeltAxis:
    """Kinematics of the belt, advanced lazily from an injected clock."""

    def __init__(
        self,
        travel_mm: tuple[float, float] = (-450.0, 450.0),
        max_speed_mm_s: float = 250.0,
        accel_mm_s2: float = 500.0,
        sensors_mm: Sequence[float] = (-300.0, 300.0),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.travel_mm = travel_mm
        self.max_speed = max_speed_mm_s
        self.accel = accel_mm_s2
        self.sensors_mm = tuple(sensors_mm)
        self.clock = clock
        self.pos = 0.0
        self.vel = 0.0
        self.target = 0.0
        self.speed = max_speed_mm_s
        self.fault = ""
        self.carriers: list[float] = []  # carrier offsets relative to the belt's zero
        self.block_mm: float | None = None
        self._t = clock()
        self._lock = threading.RLock()

    def advance(self) -> None:
        with self._lock:
            now = self.clock()
            dt, self._t = now - self._t, now
            steps = max(1, int(dt / 0.002))
            for _ in range(steps):
                self._step(dt / steps)

    def _step(self, dt: float) -> None:
        if self.fault:
            self.vel = 0.0
            return
        error = self.target - self.pos
        if abs(error) < 1e-3 and abs(self.vel) < 1e-3:
            self.pos, self.vel = self.target, 0.0
            return
        direction = math.copysign(1.0, error)
        braking = self.vel**2 / (2 * self.accel)
        want = direction * self.speed if abs(error) > braking else 0.0
        dv = max(-self.accel * dt, min(self.accel * dt, want - self.vel))
        self.vel += dv
        new = self.pos + self.vel * dt
        if (self.target - new) * direction < 0:  # would overshoot: land on target
            new, self.vel = self.target, 0.0
        if self.block_mm is not None and min(self.pos, new) <= self.block_mm <= max(self.pos, new):
            new, self.vel, self.fault = self.block_mm, 0.0, "blocked"
        self.pos = new

    def presence(self) -> list[bool]:
        half_plate = 64.0
        return [any(abs(self.pos + c - s) <= half_plate / 2 for c in self.carriers) for s in self.sensors_mm]


class AlpConveyorEmulator(AlpServer):
    """ALP framing, sequence caching and fault injection from `AlpServer`; conveyor verbs here."""

    def __init__(self, axis: BeltAxis | None = None, link: str | None = None) -> None:
        super().__init__(MODEL, link=link)
        self.axis = axis or BeltAxis()

    def place_carrier(self, belt_offset_mm: float) -> None:
        self.axis.carriers.append(belt_offset_mm)

    def block_at(self, position_mm: float | None) -> None:
        self.axis.block_mm = position_mm

    def execute(self, frame: Frame) -> dict[str, Any]:
        ax = self.axis
        ax.advance()
        if frame.verb == "IDN":
            return {
                "model": MODEL,
                "serial": self.serial_number,
                "fw": "1.0",
                "type": "conveyor",
                "min_mm": ax.travel_mm[0],
                "max_mm": ax.travel_mm[1],
                "max_speed_mm_s": ax.max_speed,
            }
        if frame.verb == "STATUS":
            moving = abs(ax.vel) > 1e-6 or abs(ax.target - ax.pos) > 1e-3
            return {
                "pos_mm": round(ax.pos, 3),
                "vel_mm_s": round(ax.vel, 3),
                "target_mm": round(ax.target, 3),
                "moving": moving and not ax.fault,
                "sensors": [int(p) for p in ax.presence()] or "-",
                "fault": ax.fault or "-",
            }
        if frame.verb == "MOVE":
            if ax.fault:
                raise NotReady(f"fault {ax.fault} is active; send CLEAR first")
            try:
                target = float(frame.args["pos_mm"])
                speed = float(frame.args.get("speed_mm_s", ax.max_speed))
            except (KeyError, ValueError):
                raise InvalidParameters("MOVE needs pos_mm= (and optionally speed_mm_s=) as numbers") from None
            if not ax.travel_mm[0] <= target <= ax.travel_mm[1]:
                raise InvalidParameters(f"pos_mm {target:g} outside travel [{ax.travel_mm[0]:g}, {ax.travel_mm[1]:g}]")
            if not 0 < speed <= ax.max_speed:
                raise InvalidParameters(f"speed_mm_s {speed:g} outside (0, {ax.max_speed:g}]")
            ax.target, ax.speed = target, speed
            return {"target_mm": target}
        if frame.verb == "STOP":
            # Controlled stop: the new target is where braking from here ends.
            brake = math.copysign(ax.vel**2 / (2 * ax.accel), ax.vel)
            ax.target = ax.pos + brake
            return {"target_mm": round(ax.target, 3)}
        if frame.verb == "CLEAR":
            ax.fault, ax.target = "", ax.pos
            return {}
        raise InvalidOperation(f"unknown command {frame.verb}")


def main(args: list[str] | None = None) -> int:
    return serve_forever(lambda ns: AlpConveyorEmulator(link=ns.link), "ALP-CV1 conveyor controller emulator", args)


if __name__ == "__main__":
    raise SystemExit(main())
