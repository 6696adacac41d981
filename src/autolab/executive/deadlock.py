"""Plate deadlocks between runs: finding them, and breaking one by parking a plate.

Step reservations alone cannot deadlock (all-or-nothing), but plates do: two runs
that route their plates through the same nests in opposite orders each wait for
the other's plate to leave. Under the policy "park" one run of such a cycle
(lowest priority, then the most recently submitted) moves its plate to a free
hotel slot or deck position through its own blocked transfer (see `DeviceStep`),
and the others go through. Under "report", or when no place is free or the park
fails, every run of the cycle explains the deadlock and what an operator can do.

Kept apart from the scheduler, which ticks runs; this only reads their waits,
the tracker and the reservations, and asks the scheduler to tick a run again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from py_trees.common import Status

from autolab.executive.behaviours import DeviceStep
from autolab.executive.context import PARKING_KINDS, LabwareTracker, ParkRequest, Place, Wait
from autolab.executive.devices import Clock
from autolab.executive.estimates import leaves
from autolab.executive.reservations import Reservations

if TYPE_CHECKING:
    from autolab.executive.scheduler import Run

#: What the executive does about a plate deadlock: park a plate and go on, or report it to an operator.
DEADLOCK_POLICIES = ("park", "report")


class DeadlockBreaker:
    """Finds the deadlocks among `runs` once a tick and parks a plate (or explains) for each.

    `parking` lists the places a plate may be parked in (`parking_places` of the workcell; none:
    deadlocks are only reported) and `labware_types` maps labware ids to their types, so a plate
    only goes where the location accepts it. `tick_run` ticks one run again, at once.
    """

    def __init__(self, runs: Mapping[str, Run], tracker: LabwareTracker, reservations: Reservations, clock: Clock,
                 tick_run: Callable[[Run], None], policy: str = "park", parking: Iterable[Place] = (),
                 labware_types: Mapping[str, str] | None = None) -> None:
        if policy not in DEADLOCK_POLICIES:
            raise ValueError(f"deadlock_policy {policy!r}: expected one of {', '.join(DEADLOCK_POLICIES)}")
        self.runs, self.tracker, self.reservations, self.clock = runs, tracker, reservations, clock
        self._tick_run = tick_run
        self.policy = policy
        self.parking = list(parking)
        self.labware_types = dict(labware_types or {})
        #: deadlock (its runs) -> (why its park failed, the plate, where it still is)
        self._no_park: dict[frozenset, tuple[str, str, str]] = {}

    def cycles(self) -> list[list[str]]:
        """Cycles of runs each waiting for what the next one holds or occupies (run ids, in order).

        Step reservations alone cannot deadlock (all-or-nothing), but plates do: two runs that route
        their plates through the same nests in opposite orders, with no free place to go, each wait
        for the other's plate to leave. Only waits that still hold count: a run ticked earlier in
        this tick may wait for a nest that a later one has emptied since.
        """
        edges = {r.run_id: {w.held_by for w in r.ctx.waits.values()
                            if w.held_by and w.held_by != r.run_id and self._still_blocks(w)}
                 for r in self.runs.values() if not r.done}
        cycles: list[list[str]] = []
        seen: set[str] = set()
        for start in edges:
            path, node = [], start
            while node in edges and node not in path and node not in seen:
                path.append(node)
                node = next(iter(sorted(edges[node])), None)
            if node in path:
                cycle = path[path.index(node):]
                if not any(set(cycle) == set(c) for c in cycles):
                    cycles.append(cycle)
            seen |= set(path)
        return cycles

    def _still_blocks(self, wait: Wait) -> bool:
        """Whether what `wait` waits for is still held by, or occupied by a plate of, `wait.held_by`."""
        resource = wait.waiting_for
        if resource.startswith("location:"):
            plate = self.tracker.occupant(resource[len("location:"):])
            if plate is not None and self.tracker.owner(plate) == wait.held_by:
                return True
        held = self.reservations.held()
        holder = held.get(resource) or (held.get("claim:" + resource[len("labware:"):])
                                        if not wait.step and resource.startswith("labware:") else None)
        return holder is not None and holder.run_id == wait.held_by

    def resolve(self) -> None:
        """Once per tick: go on with the parks under way, start one per new deadlock, explain the rest."""
        parking: list[ParkRequest] = []
        for run in [r for r in self.runs.values() if not r.done and r.ctx.park is not None]:
            req = run.ctx.park
            if req.state == "requested":
                parking.append(req)
                continue
            run.ctx.park = None
            if req.state == "failed":  # not again while the plate stays where the failed park left it
                self._no_park[frozenset(req.cycle)] = (req.reason, req.labware, req.source)
            # The cycle's other runs were ticked before the park ended: tick them again, so that they
            # go on at once (parked) or their waits are current (failed).
            for other in sorted((self.runs[rid] for rid in req.cycle if rid != run.run_id),
                                key=lambda r: (-r.priority, r.seq)):
                if not other.done:
                    self._tick_run(other)
        self._no_park = {k: v for k, v in self._no_park.items()
                         if all(rid in self.runs and not self.runs[rid].done for rid in k)
                         and self.tracker.location(v[1]) == v[2]}
        cycles = self.cycles()
        involved = {rid for req in parking for rid in req.cycle}
        for cycle in cycles:
            if involved & set(cycle):
                continue  # a park under way is breaking it (its runs may wait for the arm meanwhile)
            reason = self._no_park.get(frozenset(cycle), ("",))[0]
            if not reason and self.policy == "park":
                victim, req, reason = self._plan_park(cycle)
                if victim is not None and req is not None:
                    victim.ctx.park = req
                    victim.history.append({"t": self.clock.now(), "kind": "park_requested", "step": req.path,
                                           "labware": req.labware, "source": req.source,
                                           "destination": req.destination, "cycle": list(cycle)})
                    self._tick_run(victim)  # starts the park now; the tick does not wait for it
                    if victim.ctx.park is req:
                        parking.append(req)
                        involved |= set(cycle)
                        continue
                    reason = ""  # the place was taken meanwhile: planned again next tick
            self._explain_deadlock(cycle, reason)
        for req in parking:
            self._explain_park(req)

    def _explain_deadlock(self, cycle: list[str], reason: str) -> None:
        msg = (f"deadlock: runs {' -> '.join(cycle + cycle[:1])} each wait for the next one's plate to leave "
               "a nest; move one plate to a free location (or abort a run)")
        if reason:
            msg += f"; the executive could not park a plate: {reason}"
        for run_id in cycle:
            self.runs[run_id].ctx.waits["(deadlock)"] = Wait("", "deadlock", "", msg)

    def _explain_park(self, req: ParkRequest) -> None:
        for run_id in req.cycle:
            run = self.runs.get(run_id)
            if run is None or run.done:
                continue
            others = ", ".join(r for r in req.cycle if r != run_id)
            run.ctx.waits["(deadlock)"] = Wait(
                "", "deadlock", "", f"deadlock with run {others}: parking {req.labware} in {req.destination} "
                f"to let run {req.waiter} through")

    def _blocked_transfers(self, run: Run) -> list[DeviceStep]:
        """The run's transfer leaves that wait for their reservations (each knows its call)."""
        if run.root is None:
            return []
        return [b for b in run.root.iterate() if isinstance(b, DeviceStep) and b.status == Status.RUNNING
                and b.blocked_call is not None and b.blocked_call.kind == "transfer"]

    def _plan_park(self, cycle: list[str]) -> tuple[Run | None, ParkRequest | None, str]:
        """Which run parks which plate, and where; or why none can (for the explanation)."""
        members = set(cycle)
        waited_for: dict[str, str] = {}  # location -> a run of the cycle waiting for it
        for rid in cycle:
            for w in self.runs[rid].ctx.waits.values():
                if (w.waiting_for.startswith("location:") and w.held_by in members and w.held_by != rid
                        and self._still_blocks(w)):
                    waited_for.setdefault(w.waiting_for[len("location:"):], rid)
        candidates = []
        for rid in cycle:
            run = self.runs[rid]
            for leaf in self._blocked_transfers(run):
                plate = leaf.blocked_call.labware
                at = self.tracker.location(plate)
                waiter = waited_for.get(at or "")
                if waiter and waiter != rid and self.tracker.owner(plate) == rid:
                    candidates.append((run.priority, -run.seq, leaf.path, rid, plate, at, waiter))
        if not candidates:
            return None, None, "no run in the cycle is waiting to move the plate another one waits for"
        _prio, _seq, step, rid, plate, at, waiter = min(candidates)
        if not self.parking:
            return None, None, ("no parking locations are known (the executive was given no hotel slots or "
                                "deck positions)")
        place = self._parking_place(plate)
        if place is None:
            return None, None, (f"no free location to park {plate} in (every hotel slot and deck position "
                                "that takes it is occupied or reserved)")
        return self.runs[rid], ParkRequest(step, plate, at, place, list(cycle), waiter), ""

    def _parking_place(self, plate: str) -> str | None:
        """A free place for the plate: one no unfinished transfer is headed for first, hotel slots before
        deck positions, then in the workcell's order. Free: no labware there, not reserved, takes the plate."""
        held = self.reservations.held()
        ptype = self.labware_types.get(plate, "")
        headed = {str(s.fields.get("destination")) for r in self.runs.values() if not r.done
                  for s in leaves(r.steps) if s.kind == "transfer" and s.path not in r.ctx.completed}
        free = [(p.id in headed, PARKING_KINDS.index(p.kind) if p.kind in PARKING_KINDS else len(PARKING_KINDS),
                 i, p.id) for i, p in enumerate(self.parking)
                if self.tracker.occupant(p.id) is None and f"location:{p.id}" not in held
                and (not ptype or not p.accepts or ptype in p.accepts)]
        return min(free)[-1] if free else None

