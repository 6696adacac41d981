"""The tracked inventory: which labware item is where, as the cell believes it.

This is the world model the executive plans against and the arm updates
after every transfer. Moves are checked before anything moves (the source
holds the item, the destination is free and accepts its type), and refusals
are named errors carrying the Transfer error they map to. Items carried by
the arm are `in_gripper`; items lost (a drop) have no location until found.
Items on a conveyor follow the belt's odometry: they keep a belt coordinate
and take a station's location id when they stop within tolerance of it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from autolab.model.errors import (
    DestinationOccupied,
    InventoryError,
    NotAccepted,
    SourceEmpty,
    UnknownLabware,
    UnknownLocation,
    WrongLabware,
)

IN_GRIPPER = "in_gripper"


@dataclass(frozen=True)
class TrackedItem:
    id: str
    type: str
    location: str  # a location id, IN_GRIPPER, or "" when lost
    barcode: str = ""
    belt_position: float | None = None  # belt coordinate (m) while on a conveyor


class Inventory:
    """Thread-safe: action threads and subscription callbacks of one node share it."""

    def __init__(self, locations: Mapping[str, Iterable[str]], items: Iterable[TrackedItem] = ()) -> None:
        """`locations`: location id -> labware type ids it accepts."""
        self._accepts = {lid: frozenset(types) for lid, types in locations.items()}
        self._items: dict[str, TrackedItem] = {}
        self._lock = threading.Lock()
        self.version = 0
        for item in items:
            self.add(item)

    @classmethod
    def from_workcell(cls, workcell) -> Inventory:
        return cls({lid: loc.accepts for lid, loc in workcell.locations.items()},
                   [TrackedItem(i.id, i.type, i.location, i.barcode) for i in workcell.inventory])

    # --- queries ----------------------------------------------------------------------------------
    def items(self) -> list[TrackedItem]:
        with self._lock:
            return sorted(self._items.values(), key=lambda i: i.id)

    def get(self, item_id: str) -> TrackedItem:
        with self._lock:
            if item_id not in self._items:
                raise UnknownLabware(f"no labware {item_id!r} in the inventory")
            return self._items[item_id]

    def at(self, location_id: str) -> TrackedItem | None:
        with self._lock:
            return self._at(location_id)

    def _at(self, location_id: str) -> TrackedItem | None:
        return next((i for i in self._items.values() if i.location == location_id), None)

    def held(self) -> TrackedItem | None:
        return self.at(IN_GRIPPER)

    # --- changes ----------------------------------------------------------------------------------
    def add(self, item: TrackedItem) -> None:
        with self._lock:
            if item.id in self._items:
                raise InventoryError(f"labware {item.id!r} is already in the inventory")
            if item.location not in ("", IN_GRIPPER):
                self._check_location(item.location)
                if (other := self._at(item.location)) is not None:
                    raise DestinationOccupied(f"{item.location} already holds {other.id}")
            self._items[item.id] = item
            self.version += 1

    def check_pick(self, source: str, item_id: str = "") -> TrackedItem:
        """The item a pick at `source` would take; raises when there is none or it is another item."""
        with self._lock:
            self._check_location(source)
            found = self._at(source)
            if found is None:
                raise SourceEmpty(f"{source} is empty according to the inventory")
            if item_id and found.id != item_id:
                raise WrongLabware(f"{source} holds {found.id}, not {item_id}")
            return found

    def check_place(self, destination: str, item: TrackedItem) -> None:
        with self._lock:
            self._check_location(destination)
            other = self._at(destination)
            if other is not None and other.id != item.id:
                raise DestinationOccupied(f"{destination} already holds {other.id}")
            if item.type not in self._accepts[destination]:
                raise NotAccepted(f"{destination} does not accept {item.type} "
                                  f"(accepts: {', '.join(sorted(self._accepts[destination]))})")

    def check_transfer(self, source: str, destination: str, item_id: str = "") -> TrackedItem:
        """Check a whole transfer before anything moves; returns the item to move."""
        item = self.check_pick(source, item_id)
        if destination == source:
            raise InventoryError(f"source and destination are both {source}")
        self.check_place(destination, item)
        return item

    def picked(self, item_id: str) -> None:
        self._set(item_id, location=IN_GRIPPER, belt_position=None)

    def placed(self, item_id: str, destination: str, belt_position: float | None = None) -> None:
        self._set(item_id, location=destination, belt_position=belt_position)

    def lost(self, item_id: str) -> None:
        """The item is not where the cell thought (dropped, missing): it has no location until found."""
        self._set(item_id, location="", belt_position=None)

    def _set(self, item_id: str, **changes) -> None:
        with self._lock:
            if item_id not in self._items:
                raise UnknownLabware(f"no labware {item_id!r} in the inventory")
            self._items[item_id] = replace(self._items[item_id], **changes)
            self.version += 1

    def _check_location(self, location_id: str) -> None:
        if location_id not in self._accepts:
            raise UnknownLocation(f"unknown location {location_id!r}")

    # --- conveyors --------------------------------------------------------------------------------
    def advance_belt(self, stations: Mapping[str, float], delta: float, tolerance: float = 0.01) -> list[str]:
        """The belt of a conveyor moved by `delta` m: carry its items along; returns the ids that moved.

        `stations` maps the conveyor's station ids to their belt coordinates.
        An item takes the location id of a station within `tolerance` of its
        new coordinate; otherwise it is on the belt between stations (location
        is the conveyor's id prefix + '.belt').
        """
        if abs(delta) < 1e-9 or not stations:
            return []
        belt_loc = next(iter(stations)).split(".")[0] + ".belt"
        moved = []
        with self._lock:
            for item in list(self._items.values()):
                if item.location in stations:
                    # Carried since it was set down at this station: keep integrating from where it is.
                    pos = item.belt_position if item.belt_position is not None else stations[item.location]
                elif item.location == belt_loc and item.belt_position is not None:
                    pos = item.belt_position
                else:
                    continue
                new = pos + delta
                near = min(stations, key=lambda s: abs(stations[s] - new))
                loc = near if abs(stations[near] - new) <= tolerance else belt_loc
                self._items[item.id] = replace(item, location=loc, belt_position=new)
                moved.append(item.id)
            if moved:
                self.version += 1
        return moved
