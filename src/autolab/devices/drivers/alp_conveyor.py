"""Driver of the ALP-CV1 conveyor controller: a belt axis with presence sensors, over ALP.

Positions cross the wire in millimetres (integers of a real encoder scale are
the controller's business); the driver speaks metres. Verbs beyond the common
IDN/STATUS: `MOVE pos_mm= speed_mm_s=` (absolute, re-targets a moving belt),
`STOP` (controlled stop) and `CLEAR` (clear a fault). See docs/serial-protocols.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autolab.devices.drivers.alp import AlpDevice

MODEL = "ALP-CV1"


@dataclass(frozen=True)
class ConveyorStatus:
    position_m: float
    velocity_m_s: float
    target_m: float
    moving: bool
    presence: tuple[bool, ...]  # one per sensor, in the controller's order
    fault: str  # "" when none, e.g. "blocked"


class AlpConveyor(AlpDevice):
    """Blocking, short calls (bounded by the response timeout); the caller polls `status` while moving."""

    models = (MODEL,)

    def __init__(self, port: str, baudrate: int = 115200, timeout_s: float = 0.5, retries: int = 2, **_: Any) -> None:
        super().__init__(port, baudrate, timeout_s, retries)

    @property
    def travel_m(self) -> tuple[float, float]:
        return (float(self.identity.get("min_mm", 0)) / 1e3, float(self.identity.get("max_mm", 0)) / 1e3)

    def status(self) -> ConveyorStatus:
        a = self.client.command("STATUS")
        sensors = a.get("sensors", "")
        return ConveyorStatus(
            position_m=float(a["pos_mm"]) / 1e3,
            velocity_m_s=float(a["vel_mm_s"]) / 1e3,
            target_m=float(a["target_mm"]) / 1e3,
            moving=a.get("moving") == "1",
            presence=tuple(c == "1" for c in sensors.split(",")) if sensors else (),
            fault="" if a.get("fault", "-") == "-" else a["fault"],
        )

    def move_to(self, position_m: float, speed_m_s: float = 0.0) -> None:
        args: dict[str, Any] = {"pos_mm": round(position_m * 1e3, 3)}
        if speed_m_s > 0:
            args["speed_mm_s"] = round(speed_m_s * 1e3, 3)
        self.client.command("MOVE", args)

    def stop(self) -> None:
        self.client.command("STOP")

    def clear_fault(self) -> None:
        self.client.command("CLEAR")
