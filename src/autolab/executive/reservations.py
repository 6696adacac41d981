"""Reservations of devices, locations and labware, taken all-or-nothing per step.

A step asks for every resource it needs at once and gets all or none, so no
step ever holds one resource while waiting for another (no hold-and-wait, so
no deadlock among steps). Physical occupancy is the other half: a nest holding
another run's plate cannot be reserved as a destination until the plate
leaves; `Reservations.blockers` reports both kinds so every wait can be
explained to a person.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Holder:
    run_id: str
    step: str


@dataclass(frozen=True)
class Blocker:
    resource: str  # "device:reader1", "location:reader1.nest", "labware:plate2"
    holder: Holder
    why: str  # "held" | "occupied"

    def sentence(self) -> str:
        if not self.holder.run_id:
            return f"waiting for {self.resource}, {self.why} by {self.holder.step}"
        return f"waiting for {self.resource}, {self.why} by run {self.holder.run_id} step '{self.holder.step}'"


class Reservations:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, Holder] = {}

    def try_acquire(self, holder: Holder, resources: set[str],
                    occupied: dict[str, Holder] | None = None) -> list[Blocker]:
        """Take all of `resources` for holder, or none; returns what blocks (empty on success).

        `occupied` maps resources that are physically taken by something other
        than this step's labware (another plate in the destination nest) to the
        run whose plate it is; they block until the plate leaves.
        """
        with self._lock:
            blockers = []
            for r in sorted(resources):  # a stable order keeps explanations stable
                h = self._held.get(r)
                if h is not None and h != holder:
                    blockers.append(Blocker(r, h, "held"))
                    continue
                if r in (occupied or {}):
                    blockers.append(Blocker(r, occupied[r], "occupied"))
            if blockers:
                return blockers
            for r in resources:
                self._held[r] = holder
            return []

    def release(self, holder: Holder) -> None:
        with self._lock:
            for r in [r for r, h in self._held.items() if h == holder]:
                del self._held[r]

    def release_run(self, run_id: str) -> None:
        with self._lock:
            for r in [r for r, h in self._held.items() if h.run_id == run_id]:
                del self._held[r]

    def held(self) -> dict[str, Holder]:
        with self._lock:
            return dict(self._held)
