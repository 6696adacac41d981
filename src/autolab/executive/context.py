"""The state of one run that its tree's leaves share, and the cell-wide labware tracker.

Everything a checkpoint needs lives here as plain data (completed step paths,
outputs, where each plate is, which plates the executive parked), so a
restarted executive can rebuild the tree and carry on from the same place.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from autolab.executive.devices import Clock, DeviceBackend
from autolab.executive.recovery import RecoveryPolicy
from autolab.executive.reservations import Holder, Reservations


class LabwareTracker:
    """Where each item of labware is, and which run last moved it (cell-wide)."""

    def __init__(self, labware_at: dict[str, str] | None = None) -> None:
        self._lock = threading.Lock()
        self._at: dict[str, str] = dict(labware_at or {})
        self._moved_by: dict[str, str] = {}

    def location(self, labware: str) -> str | None:
        with self._lock:
            return self._at.get(labware)

    def occupant(self, location: str) -> str | None:
        with self._lock:
            return next((lw for lw, loc in self._at.items() if loc == location), None)

    def moved(self, labware: str, location: str, run_id: str = "") -> None:
        with self._lock:
            self._at[labware] = location
            if run_id:
                self._moved_by[labware] = run_id

    def replace(self, labware_at: dict[str, str]) -> None:
        """Adopt a fresh inventory (e.g. from /inventory); keeps who moved what."""
        with self._lock:
            self._at = dict(labware_at)

    def owner(self, labware: str) -> str:
        with self._lock:
            return self._moved_by.get(labware, "")

    def snapshot(self) -> dict[str, str]:
        with self._lock:
            return dict(self._at)


#: Location kinds a plate may be parked in to break a deadlock, in order of preference.
PARKING_KINDS = ("hotel_slot", "deck")
#: Suffix of a park's step path (the blocked transfer's path + this), in the run store and checkpoints.
PARK_SUFFIX = ".park"


@dataclass(frozen=True)
class Place:
    """A location the executive may park a plate in; `accepts` lists labware types (empty: any)."""

    id: str
    kind: str
    accepts: tuple[str, ...] = ()


def parking_places(workcell: Any) -> list[Place]:
    """The workcell's hotel slots and deck positions (an `autolab.model.workcell.Workcell`), in its order."""
    return [Place(loc.id, loc.kind, tuple(loc.accepts)) for loc in workcell.locations.values()
            if loc.kind in PARKING_KINDS]


@dataclass
class ParkRequest:
    """The scheduler asks a run to move its plate out of a deadlock; the blocked transfer `step` does it.

    `state` is "requested" until the leaf has parked the plate ("done") or given up ("failed", with
    `reason`); the scheduler then removes it. A request that no longer applies (the plate or the
    place was taken meanwhile) is removed by the leaf, and planned again.
    """

    step: str  # path of the victim's blocked transfer leaf
    labware: str
    source: str
    destination: str
    cycle: list[str]  # run ids of the deadlock, in order
    waiter: str  # the run waiting for `source`
    state: str = "requested"
    reason: str = ""

    @property
    def path(self) -> str:
        return self.step + PARK_SUFFIX


@dataclass
class Wait:
    """Why a step is not moving (becomes a WaitExplanation on /executive/queue)."""

    step: str
    waiting_for: str
    held_by: str
    message: str


@dataclass(eq=False)  # identity: one context per run
class RunContext:
    run_id: str
    protocol_name: str
    clock: Clock
    backend: DeviceBackend
    reservations: Reservations
    tracker: LabwareTracker
    recovery: RecoveryPolicy
    priority: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    completed: set[str] = field(default_factory=set)
    in_flight: dict[str, dict[str, Any]] = field(default_factory=dict)  # path -> call summary
    waits: dict[str, Wait] = field(default_factory=dict)
    acks_pending: dict[str, str] = field(default_factory=dict)  # checkpoint id -> message
    acks_given: dict[str, str] = field(default_factory=dict)  # checkpoint id -> note
    estimates: dict[str, float] = field(default_factory=dict)  # leaf path -> expected seconds
    active: set[str] = field(default_factory=set)
    paused: bool = False
    failure: tuple[str, str] | None = None  # (error name, message) of the step that failed the run
    park: ParkRequest | None = None  # set by the scheduler to break a plate deadlock
    parked: dict[str, str] = field(default_factory=dict)  # transfer leaf path -> where it parked its plate
    events: list[dict[str, Any]] = field(default_factory=list)
    on_change: Any = None  # called after a leaf completes or dispatches (checkpointing)

    def holder(self, step: str) -> Holder:
        return Holder(self.run_id, step)

    def log(self, kind: str, step: str, **data: Any) -> None:
        """Queue an event for the executive, which drains it into the run store each tick.

        `t` is the run's clock (simulated time under a simulation); `wall` is Unix time, the
        time base of every record in the run store.
        """
        self.events.append({"t": self.clock.now(), "wall": time.time(), "kind": kind, "step": step, **data})

    def changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)

    def request_ack(self, checkpoint: str, message: str) -> bool:
        """True once an operator has acknowledged `checkpoint`; registers the request."""
        if checkpoint in self.acks_given:
            return True
        self.acks_pending.setdefault(checkpoint, message)
        return False

    def clear_ack(self, checkpoint: str) -> None:
        self.acks_pending.pop(checkpoint, None)
        self.acks_given.pop(checkpoint, None)

    def state(self) -> dict[str, Any]:
        """What a checkpoint stores (plain JSON)."""
        return {"completed": sorted(self.completed), "outputs": self.outputs,
                "in_flight": self.in_flight, "labware": self.tracker.snapshot(),
                "acks_given": self.acks_given, "parked": self.parked}
