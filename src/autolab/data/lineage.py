"""Sample lineage: where a sample (a well, or a whole labware) came from and where it went.

A sample is named `labware` or `labware:well` (e.g. `P1:A1`). Its history is
the chain of transfers into it, followed back through their sources (a
recursive query, so a dilution series of any depth is one round trip), the
transfers out of it followed forward, and the commands and measurements that
touched the labware involved, merged into one timeline.

A lineage row with no well means the whole labware (a reagent added to every
well); it belongs to the history of every well of that labware.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, literal, or_, select, union_all

from autolab.data import schema as t

#: Longest chain followed; also what stops a cycle (A -> B -> A) from recursing forever.
MAX_DEPTH = 32


@dataclass(frozen=True)
class LineageEntry:
    direction: str  # "ancestor" (flowed into the sample) or "descendant" (flowed out of it)
    depth: int  # 0 = directly into/out of the sample
    record: Any  # store.LineageRecord


@dataclass
class LineageReport:
    sample: str
    labware: str
    well: str | None
    entries: list[LineageEntry] = field(default_factory=list)
    commands: list[Any] = field(default_factory=list)  # store.CommandRecord
    measurements: list[Any] = field(default_factory=list)  # store.MeasurementRecord

    @property
    def empty(self) -> bool:
        return not (self.entries or self.commands or self.measurements)

    @property
    def run_ids(self) -> list[str]:
        ids = {e.record.run_id for e in self.entries}
        ids |= {c.run_id for c in self.commands} | {m.run_id for m in self.measurements}
        return sorted(ids)

    def timeline(self) -> list[tuple[float, str, str]]:
        """(time, kind, one-line description) of everything in the history, oldest first."""
        rows: list[tuple[float, str, str]] = []
        for e in self.entries:
            r = e.record
            src = _name(r.source_labware, r.source_well) if r.source_labware else "outside (untracked)"
            rows.append(
                (
                    r.at,
                    "transfer" if e.direction == "ancestor" else "transfer-out",
                    f"{r.volume_ul:g} uL {r.material} {src} -> {_name(r.dest_labware, r.dest_well)}  [run {r.run_id}]",
                )
            )
        for c in self.commands:
            status = "ok" if c.error_code == 0 else f"error {c.error_code}: {c.error_msg}"
            rows.append(
                (c.started_at, "command", f"{c.device}.{c.command} on {c.labware} ({status})  [run {c.run_id}]")
            )
        for m in self.measurements:
            value = well_value(m.data, self.well) if self.well and m.labware == self.labware else None
            shown = f" {self.well}={value:g} {m.units}" if isinstance(value, int | float) else ""
            rows.append(
                (
                    m.created_at,
                    "measurement",
                    f"{m.device} {m.kind} of {m.labware}{shown} (record {m.id})  [run {m.run_id}]",
                )
            )
        rows.sort(key=lambda r: r[0])
        return rows

    def as_dict(self) -> dict:
        from dataclasses import asdict

        return {
            "sample": self.sample,
            "labware": self.labware,
            "well": self.well,
            "runs": self.run_ids,
            "transfers": [{"direction": e.direction, "depth": e.depth, **asdict(e.record)} for e in self.entries],
            "commands": [asdict(c) for c in self.commands],
            "measurements": [asdict(m) for m in self.measurements],
        }


def _name(labware: str | None, well: str | None) -> str:
    return f"{labware}:{well}" if well else f"{labware}"


def _well_match(col_well, well):
    """A lineage row's well matches `well` if equal, or if either means the whole labware."""
    return or_(col_well.is_(None), well.is_(None), col_well == well)


def query_lineage(conn: Connection, sample: str) -> LineageReport:
    from autolab.data.store import CommandRecord, LineageRecord, MeasurementRecord, _from_row, parse_sample

    labware, well = parse_sample(sample)
    lin = t.lineage

    # Ancestors: transfers into the sample, then into their sources, earlier in time.
    base = select(lin.c.id, lin.c.source_labware, lin.c.source_well, lin.c.at, literal(0).label("depth"))
    base = base.where(lin.c.dest_labware == labware)
    if well:
        base = base.where(or_(lin.c.dest_well.is_(None), lin.c.dest_well == well))
    anc = base.cte("ancestors", recursive=True)
    step = (
        select(lin.c.id, lin.c.source_labware, lin.c.source_well, lin.c.at, (anc.c.depth + 1).label("depth"))
        .join(
            anc,
            and_(
                lin.c.dest_labware == anc.c.source_labware,
                _well_match(lin.c.dest_well, anc.c.source_well),
                lin.c.at <= anc.c.at,
            ),
        )
        .where(anc.c.depth < MAX_DEPTH)
    )
    anc = anc.union(step)

    # Descendants: transfers out of the sample, then out of their destinations, later in time.
    base = select(lin.c.id, lin.c.dest_labware, lin.c.dest_well, lin.c.at, literal(0).label("depth"))
    base = base.where(lin.c.source_labware == labware)
    if well:
        base = base.where(or_(lin.c.source_well.is_(None), lin.c.source_well == well))
    des = base.cte("descendants", recursive=True)
    step = (
        select(lin.c.id, lin.c.dest_labware, lin.c.dest_well, lin.c.at, (des.c.depth + 1).label("depth"))
        .join(
            des,
            and_(
                lin.c.source_labware == des.c.dest_labware,
                _well_match(lin.c.source_well, des.c.dest_well),
                lin.c.at >= des.c.at,
            ),
        )
        .where(des.c.depth < MAX_DEPTH)
    )
    des = des.union(step)

    related = union_all(
        select(anc.c.id, anc.c.depth, literal("ancestor").label("direction")),
        select(des.c.id, des.c.depth, literal("descendant").label("direction")),
    ).subquery()
    rows = conn.execute(
        select(lin, related.c.depth, related.c.direction)
        .join(related, related.c.id == lin.c.id)
        .order_by(lin.c.at, related.c.depth)
    ).all()
    seen: dict[tuple[str, str], LineageEntry] = {}
    for row in rows:
        key = (row.direction, row.id)
        if key not in seen or row.depth < seen[key].depth:
            seen[key] = LineageEntry(row.direction, row.depth, _from_row(LineageRecord, row))
    entries = sorted(seen.values(), key=lambda e: (e.record.at, e.depth))

    # The labware this sample's material passed through: its own, and its ancestors' sources.
    involved = {labware} | {
        e.record.source_labware for e in entries if e.direction == "ancestor" and e.record.source_labware
    }
    commands = [
        _from_row(CommandRecord, r)
        for r in conn.execute(
            select(t.commands).where(t.commands.c.labware.in_(involved)).order_by(t.commands.c.started_at)
        )
    ]
    measurements = [
        _from_row(MeasurementRecord, r)
        for r in conn.execute(
            select(t.measurements).where(t.measurements.c.labware.in_(involved)).order_by(t.measurements.c.created_at)
        )
    ]
    return LineageReport(sample, labware, well, entries, commands, measurements)


def well_value(data: Any, well: str | None) -> Any:
    """A well's value in a plate measurement ({"wells": {...}} or {"values": [[...], ...]})."""
    if not well or not isinstance(data, dict):
        return None
    wells = data.get("wells")
    if isinstance(wells, dict):
        return wells.get(well)
    grid = data.get("values")
    row, col = well_index(well)
    if isinstance(grid, list) and row is not None and 0 <= row < len(grid):
        cells = grid[row]
        if isinstance(cells, list) and 0 <= col < len(cells):
            return cells[col]
    return None


def well_index(well: str) -> tuple[int | None, int]:
    """'B3' -> (1, 2); (None, 0) when the name is not a well name."""
    letters = "".join(ch for ch in well if ch.isalpha()).upper()
    digits = "".join(ch for ch in well if ch.isdigit())
    if not letters or not digits:
        return None, 0
    row = 0
    for ch in letters:
        row = row * 26 + (ord(ch) - ord("A") + 1)
    return row - 1, int(digits) - 1


def format_report(report: LineageReport) -> str:
    """The history as text for `autolab runs lineage`."""
    if report.empty:
        return f"no history recorded for sample {report.sample}"
    lines = [
        f"sample {report.sample}: {len(report.entries)} transfer(s), {len(report.commands)} command(s), "
        f"{len(report.measurements)} measurement(s) in {len(report.run_ids)} run(s)"
    ]
    for at, kind, text in report.timeline():
        stamp = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        lines.append(f"  {stamp}Z  {kind:<12} {text}")
    return "\n".join(lines)


def reagents_held(store, labware: str, max_depth: int = 32) -> Callable[[str | None], list[str]]:
    """well -> the reagents in it, in the order they arrived, from the store's lineage of `labware`.

    Reagents are what entered from outside the tracked labware (dispenses); liquid moved between
    wells carries the reagents of its source well at that time. One lineage query per plate.
    """
    rows = [e.record for e in store.lineage(labware).entries if e.direction == "ancestor"]

    def held(lw: str, well: str | None, before: float, depth: int) -> list[str]:
        names: list[str] = []
        for r in rows:
            if r.dest_labware != lw or r.at > before or (well and r.dest_well and r.dest_well != well):
                continue
            if r.source_labware is None:
                found = [r.material]
            elif depth < max_depth:  # also what stops a cycle of transfers at one instant
                found = held(r.source_labware, r.source_well, r.at, depth + 1)
            else:
                found = []
            names += [n for n in found if n not in names]
        return names

    return lambda well: held(labware, well.upper() if well else None, float("inf"), 0)
