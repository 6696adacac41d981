"""`autolab runs list|show|export|lineage`: read the run store (no ROS needed).

    autolab runs list --since 2d --protocol 'plate*' --outcome failed
    autolab runs show 01J9...            (a unique prefix of the id is enough)
    autolab runs export 01J9... ./bundle
    autolab runs lineage P1:A1

`--store URL` (or $AUTOLAB_STORE_URL) selects the store; default is the local SQLite store.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str) -> float:
    """'2026-05-01', '2026-05-01T12:00', '3h', '2d', 'today', 'yesterday' -> Unix seconds."""
    t = text.strip().lower()
    today = datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
    if t == "today":
        return today.timestamp()
    if t == "yesterday":
        return (today - timedelta(days=1)).timestamp()
    m = _RELATIVE.match(t)
    if m:
        return (datetime.now(UTC) - timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})).timestamp()
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a time: use an ISO date (2026-05-01, 2026-05-01T12:00), "
            "an age (30m, 3h, 2d, 1w), 'today' or 'yesterday'"
        ) from None
    if when.tzinfo is None:
        when = when.astimezone()  # local time, as a person typing a date means
    return when.timestamp()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        default=os.environ.get("AUTOLAB_STORE_URL"),
        help="run store URL (default: $AUTOLAB_STORE_URL or the local SQLite store)",
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("list", help="list runs, newest first")
    p.add_argument("--since", type=parse_when, help="started at or after (ISO date/time, or an age: 3h, 2d)")
    p.add_argument("--until", type=parse_when, help="started before")
    p.add_argument("--protocol", help="protocol name (* wildcards)")
    p.add_argument("--outcome", choices=["running", "succeeded", "failed", "aborted"])
    p.add_argument("--sample", help="runs that touched this labware or well (P1 or P1:A1)")
    p.add_argument("--limit", type=int, default=50, help="at most this many runs (0: all; default 50)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p = sub.add_parser("show", help="show one run's record and what it holds")
    p.add_argument("run_id", help="run id (a unique prefix is enough)")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("export", help="write a run bundle (RO-Crate, documents, CSV/Parquet, MCAP, plots)")
    p.add_argument("run_id")
    p.add_argument("dest", help="folder to create")
    p.add_argument("--force", action="store_true", help="replace the folder if it exists")
    p = sub.add_parser("lineage", help="a sample's full history: where it came from, what happened to it")
    p.add_argument("sample", help="labware or labware:well, e.g. P1:A1")
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from autolab.data.errors import DataError
    from autolab.data.store import RunStore

    try:
        store = RunStore.open(args.store)
    except DataError as exc:
        print(f"autolab runs: {exc}", file=sys.stderr)
        return 1
    try:
        return {"list": _list, "show": _show, "export": _export, "lineage": _lineage}[args.action](store, args)
    except DataError as exc:
        print(f"autolab runs {args.action}: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()


def _fmt_time(t: float | None) -> str:
    return "-" if t is None else datetime.fromtimestamp(t).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _fmt_duration(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def _list(store, args) -> int:
    runs = store.list_runs(
        since=args.since,
        until=args.until,
        protocol=args.protocol,
        outcome=args.outcome,
        sample=args.sample,
        limit=args.limit or None,
    )
    if args.json:
        print(json.dumps([{k: v for k, v in asdict(r).items() if k != "protocol_text"} for r in runs], indent=2))
        return 0
    if not runs:
        print("no runs match")
        return 0
    rows = [
        [
            r.id,
            _fmt_time(r.started_at),
            _fmt_duration(r.duration_s),
            r.outcome,
            r.protocol_name,
            r.operator or "-",
            (r.error[:50] + "...") if len(r.error) > 53 else r.error,
        ]
        for r in runs
    ]
    print(_table(["RUN", "STARTED", "DURATION", "OUTCOME", "PROTOCOL", "OPERATOR", "ERROR"], rows))
    return 0


def _show(store, args) -> int:
    run = store.get_run(args.run_id)
    counts = store.run_counts(run.id)
    artifacts = store.artifacts(run.id)
    if args.json:
        print(json.dumps({**asdict(run), "counts": counts, "artifacts": [asdict(a) for a in artifacts]}, indent=2))
        return 0
    fields = [
        ("run", run.id),
        ("protocol", f"{run.protocol_name} (sha256 {run.protocol_hash[:12]})"),
        ("outcome", run.outcome + (f": {run.error}" if run.error else "")),
        ("started", _fmt_time(run.started_at)),
        ("ended", _fmt_time(run.ended_at)),
        ("duration", _fmt_duration(run.duration_s)),
        ("operator", run.operator or "-"),
        ("parameters", json.dumps(run.parameters)),
        ("software", f"autolab {run.software_version} @ {run.git_sha}"),
        ("workcell", run.workcell_hash or "-"),
        ("host", run.host),
        ("records", ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items())),
    ]
    fields += [(f"file ({a.kind})", a.path) for a in artifacts]
    width = max(len(k) for k, _ in fields)
    print("\n".join(f"{k.rjust(width)}  {v}" for k, v in fields))
    failed = [c for c in store.commands(run.id) if c.error_code != 0]
    if failed:
        print("\nfailed commands:")
        for c in failed:
            print(f"  {_fmt_time(c.started_at)}  {c.device}.{c.command}: error {c.error_code} {c.error_msg}")
    return 0


def _export(store, args) -> int:
    from autolab.data.export import export_run

    bundle = export_run(store, store.get_run(args.run_id).id, args.dest, overwrite=args.force)
    print(f"wrote {len(bundle.files)} files to {bundle.path}")
    for name in bundle.files:
        print(f"  {name}")
    return 0


def _lineage(store, args) -> int:
    from autolab.data.lineage import format_report

    report = store.lineage(args.sample)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(format_report(report))
    return 0 if not report.empty else 1
