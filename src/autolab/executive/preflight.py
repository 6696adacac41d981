"""Pre-flight: prove a protocol fits the workcell, and estimate its duration, moving nothing.

It walks the concrete steps in order with a model of where each item of
labware is and what each well holds, and checks that labware and locations
exist, that destinations accept the labware and are free, that instruments
support the operation with parameters in range, that the plate is in the
instrument's nest when it runs, and that volumes fit the wells. Parallel
branches are walked one after the other (each must fit on its own); both
branches of an `if` are checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from autolab.executive import capabilities as caps
from autolab.executive.errors import ExecutiveError
from autolab.executive.estimates import call_of, critical_path, leaf_seconds
from autolab.model.protocol import Concrete, Protocol, expand


@dataclass(frozen=True)
class LabwareFacts:
    type: str
    rows: int
    cols: int
    well_volume_ul: float


@dataclass
class CellFacts:
    """What pre-flight needs to know of a workcell (built from `Workcell`)."""

    device_types: dict[str, str]
    locations: dict[str, tuple[str | None, tuple[str, ...]]]  # id -> (device, accepted labware types)
    labware_types: dict[str, LabwareFacts]
    inventory: dict[str, tuple[str, str]]  # item -> (type, location)
    device_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    workcell_hash: str = ""

    @classmethod
    def from_workcell(cls, wc: Any) -> CellFacts:
        return cls(
            device_types={d.id: d.type for d in wc.devices.values()},
            locations={loc.id: (loc.device, tuple(loc.accepts)) for loc in wc.locations.values()},
            labware_types={t.id: LabwareFacts(t.id, t.rows, t.cols, t.well_volume_ul)
                           for t in wc.labware_types.values()},
            inventory={i.id: (i.type, i.location) for i in wc.inventory},
            device_params={d.id: dict(d.params) for d in wc.devices.values()},
            workcell_hash=wc.hash(),
        )

    @classmethod
    def load(cls, path: str | None = None) -> CellFacts:
        from autolab.model.workcell import load_workcell

        return cls.from_workcell(load_workcell(path))

    def nest_of(self, device: str) -> list[str]:
        return [loc for loc, (dev, _acc) in self.locations.items() if dev == device]


@dataclass
class Problem:
    step: str
    message: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}step '{self.step}': {self.message}" if self.step else f"{where}{self.message}"


@dataclass
class PreflightReport:
    protocol: str
    ok: bool
    problems: list[Problem]
    estimate_s: float  # simulated with the real scheduler, so shared devices are counted
    critical_path_s: float  # the same without contention: a lower bound
    operator_checkpoints: int
    steps: int
    final_locations: dict[str, str]


class PreflightFailed(ExecutiveError):
    def __init__(self, report: PreflightReport) -> None:
        self.report = report
        super().__init__("; ".join(str(p) for p in report.problems[:5])
                         + (f" (and {len(report.problems) - 5} more)" if len(report.problems) > 5 else ""))


def preflight(protocol: Protocol, values: dict[str, Any], cell: CellFacts,
              labware_at: dict[str, str] | None = None, check_locations: bool = True) -> PreflightReport:
    """Check `protocol` with bound parameter `values` against `cell` (ParameterError propagates).

    `check_locations=False` skips where-is-the-plate checks, for a run queued
    behind others that will move the labware first.
    """
    steps = expand(protocol, values)
    lines = {s.id: (s.line, s.column) for s in protocol.walk()}
    sim = _Walk(cell, dict(labware_at or {k: loc for k, (_t, loc) in cell.inventory.items()}), lines)
    sim.check_locations = check_locations
    sim.steps(steps)
    est = critical_path(steps, lambda s: leaf_seconds(s, cell.device_types, device_params=cell.device_params))
    n_leaves = sum(1 for top in steps for s in top.walk() if not s.children and s.kind != "sequence")
    checkpoints = sum(1 for top in steps for s in top.walk() if s.kind == "checkpoint")
    simulated = simulate(protocol, values, cell, labware_at) if not sim.problems else est
    return PreflightReport(protocol.name, not sim.problems, sim.problems, simulated, est, checkpoints, n_leaves,
                           sim.at)


def simulate(protocols: Protocol | list[tuple[Protocol, dict[str, Any]]], values: dict[str, Any] | None,
             cell: CellFacts, labware_at: dict[str, str] | None = None) -> float:
    """Seconds the executive would take in simulated time (operator checkpoints acknowledged at once).

    Runs the real tree, scheduler and reservations against `SimulatedCell`.
    """
    from autolab.executive.context import LabwareTracker
    from autolab.executive.devices import SimClock, SimulatedCell
    from autolab.executive.scheduler import Executive

    at = dict(labware_at or {k: loc for k, (_t, loc) in cell.inventory.items()})
    clock = SimClock()
    nests = {}
    for loc, (dev, _acc) in cell.locations.items():
        if dev and loc.endswith(".nest"):
            nests[dev] = loc
    backend = SimulatedCell(clock, at, cell.device_types, nests)
    ex = Executive(backend, clock, None, LabwareTracker(at), cell.device_types)
    jobs = protocols if isinstance(protocols, list) else [(protocols, values or {})]
    for proto, vals in jobs:
        ex.submit(proto, vals)
    for _ in range(1000):
        ex.run_until_done()
        waiting = [r for r in ex.runs.values() if r.ctx.acks_pending and not r.done]
        if not waiting:
            break
        for r in waiting:
            for key in list(r.ctx.acks_pending):
                ex.acknowledge(r.run_id, key)
    return clock.now()


class _Walk:
    def __init__(self, cell: CellFacts, at: dict[str, str], lines: dict[str, tuple[int, int]]) -> None:
        self.cell, self.at, self.lines = cell, at, lines
        self.volumes: dict[str, dict[str, float]] = {}
        self.problems: list[Problem] = []
        self.check_locations = True

    def problem(self, step: Concrete, message: str, dynamic: bool = False) -> None:
        if dynamic and not self.check_locations:
            return
        self.problems.append(Problem(step.path, message, *self.lines.get(step.id, (0, 0))))

    def steps(self, steps: list[Concrete]) -> None:
        for s in steps:
            self.step(s)

    def step(self, s: Concrete) -> None:
        if s.kind == "transfer":
            self.transfer(s)
        elif s.kind in ("instrument", "dispense"):
            self.instrument(s)
        elif s.kind == "if":
            saved = (dict(self.at), {k: dict(v) for k, v in self.volumes.items()})
            self.steps(s.children[0])
            then_state = (self.at, self.volumes)
            self.at, self.volumes = saved
            self.steps(s.children[1])
            if then_state[0] != self.at:
                self.problem(s, "the two branches leave labware in different places; "
                                "later steps cannot rely on either")
        else:
            for branch in s.children:
                self.steps(branch)

    def transfer(self, s: Concrete) -> None:
        f = s.fields
        lw, dst = str(f["labware"]), str(f["destination"])
        if lw not in self.cell.inventory:
            self.problem(s, f"labware '{lw}' is not in the workcell inventory "
                            f"(known: {', '.join(sorted(self.cell.inventory)) or 'none'})")
            return
        for loc in filter(None, (f.get("source"), dst)):
            if loc not in self.cell.locations:
                self.problem(s, f"location '{loc}' does not exist in the workcell")
                return
        where = self.at.get(lw)
        if f.get("source") and where != f["source"]:
            self.problem(s, f"'{lw}' will be at {where}, not at the source {f['source']}", dynamic=True)
        lw_type = self.cell.inventory[lw][0]
        accepts = self.cell.locations[dst][1]
        if accepts and lw_type not in accepts:
            self.problem(s, f"{dst} does not accept {lw_type} (it takes: {', '.join(accepts)})")
        occupant = next((k for k, v in self.at.items() if v == dst and k != lw), None)
        if occupant:
            self.problem(s, f"{dst} will be occupied by '{occupant}'", dynamic=True)
        self.at[lw] = dst

    def instrument(self, s: Concrete) -> None:
        device, operation, params = call_of(s)
        dtype = self.cell.device_types.get(device)
        if dtype is None:
            self.problem(s, f"device '{device}' is not in the workcell")
            return
        op = caps.operation(dtype, operation)
        if op is None:
            ops = ", ".join(caps.operations_of(dtype)) or "none"
            self.problem(s, f"{device} ({dtype}) cannot '{operation}' (it can: {ops})")
            return
        for msg in caps.check_parameters(op, params):
            self.problem(s, msg)
        lw = str(s.fields.get("labware") or "")
        if op.needs_labware and lw:
            if lw not in self.cell.inventory:
                self.problem(s, f"labware '{lw}' is not in the workcell inventory")
                return
            nests = self.cell.nest_of(device)
            if self.at.get(lw) not in nests:
                self.problem(s, f"'{lw}' will be at {self.at.get(lw)}, not in {device} "
                                f"({' or '.join(nests) or 'it has no nest'})", dynamic=True)
        if operation in ("dispense", "transfer") and lw in self.cell.inventory:
            self.liquid(s, lw, params)

    def liquid(self, s: Concrete, lw: str, params: dict[str, Any]) -> None:
        facts = self.cell.labware_types.get(self.cell.inventory[lw][0])
        if facts is None:
            return
        wells = caps.wells_of(params.get("dest_wells", ""))
        bad = [w for w in wells if not _well_in(w, facts)]
        if bad:
            self.problem(s, f"{lw} ({facts.type}, {facts.rows}x{facts.cols}) has no well {bad[0]}")
            return
        vol = float(params.get("volume_ul", 0) or 0)
        plate = self.volumes.setdefault(lw, {})
        if params.get("source_labware"):
            src = self.volumes.setdefault(str(params["source_labware"]), {})
            for w in caps.wells_of(params.get("source_wells", "")):
                src[w] = max(0.0, src.get(w, 0.0) - vol)
        over = [w for w in wells if plate.get(w, 0.0) + vol > facts.well_volume_ul + 1e-9]
        if over:
            self.problem(s, f"{vol:g} µL overflows well {over[0]} of {lw} "
                            f"(holds {facts.well_volume_ul:g} µL, {plate.get(over[0], 0.0):g} µL already there)")
        for w in wells:
            plate[w] = plate.get(w, 0.0) + vol


def _well_in(well: str, facts: LabwareFacts) -> bool:
    from autolab.model.protocol import _WELL, _row_index

    m = _WELL.match(well)
    return bool(m) and _row_index(m.group(1)) < facts.rows and 1 <= int(m.group(2)) <= facts.cols
