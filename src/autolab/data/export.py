"""Run bundles: a self-describing folder per run, for people, analysis and archives.

Layout (every file is described in ro-crate-metadata.json, RO-Crate 1.1 JSON-LD):

    ro-crate-metadata.json      what each file is, the run as a CreateAction, who and what ran it
    run.json                    the run record (provenance: protocol hash, software, git, workcell)
    protocol.yaml               the protocol text as it ran
    documents.jsonl             the event documents (start, descriptors, events, stop), one per line
    tables/<name>.csv|.parquet  measurements, plate_wells (one row per well read), commands,
                                lineage, steps, operator_actions
    recordings/*.mcap           the run's ROS topics
    plots/<record>.png          a heatmap per plate read

The bundle is built in a temporary sibling folder and renamed into place, so a
reader never sees half a bundle.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import tempfile
import textwrap
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autolab.data.errors import ExportError
from autolab.data.lineage import well_index
from autolab.data.store import (
    CommandRecord,
    LineageRecord,
    MeasurementRecord,
    OperatorActionRecord,
    RunStore,
    StepRecord,
)

RO_CRATE_CONTEXT = "https://w3id.org/ro/crate/1.1/context"
RO_CRATE_SPEC = "https://w3id.org/ro/crate/1.1"

_FORMATS = {
    ".json": "application/json",
    ".jsonl": "application/x-ndjson",
    ".csv": "text/csv",
    ".parquet": "application/vnd.apache.parquet",
    ".mcap": "application/x-mcap",
    ".png": "image/png",
    ".yaml": "application/yaml",
}


@dataclass(frozen=True)
class Bundle:
    path: Path
    files: list[str]  # relative paths, as listed in the RO-Crate


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _json_columns(columns: list[str], rows: list[dict]) -> set[str]:
    """Columns holding structured values (or a mix of types): written as JSON text."""
    out = set()
    for c in columns:
        kinds = {type(r.get(c)) for r in rows if r.get(c) is not None}
        if (
            any(issubclass(k, dict | list) for k in kinds)
            or len(kinds - {int, float}) > 1
            or (kinds & {int, float} and kinds - {int, float})
        ):
            out.add(c)
    return out


def _write_table(folder: Path, name: str, columns: list[str], rows: list[dict]) -> list[Path]:
    """The same table as CSV (for people and spreadsheets) and Parquet (for analysis)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    as_json = _json_columns(columns, rows)
    flat = [
        {
            c: json.dumps(r.get(c), separators=(",", ":")) if c in as_json and r.get(c) is not None else r.get(c)
            for c in columns
        }
        for r in rows
    ]
    csv_path = folder / f"{name}.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(flat)
    table = pa.table({c: pa.array([r[c] for r in flat]) for c in columns})
    pq_path = folder / f"{name}.parquet"
    pq.write_table(table, pq_path)
    return [csv_path, pq_path]


def plate_grid(data: Any) -> list[list[float | None]] | None:
    """A plate read as rows of values, or None when the data is not a plate read."""
    if not isinstance(data, dict):
        return None
    values = data.get("values")
    if isinstance(values, list) and values and all(isinstance(r, list) for r in values):
        return values
    wells = data.get("wells")
    if isinstance(wells, dict) and wells:
        index = {w: well_index(w) for w in wells}
        if any(r is None for r, _ in index.values()):
            return None
        n_rows = max(r for r, _ in index.values()) + 1
        n_cols = max(c for _, c in index.values()) + 1
        grid: list[list[float | None]] = [[None] * n_cols for _ in range(n_rows)]
        for w, (r, c) in index.items():
            grid[r][c] = wells[w]
        return grid
    return None


def _row_name(r: int) -> str:
    name = ""
    r += 1
    while r:
        r, rem = divmod(r - 1, 26)
        name = chr(ord("A") + rem) + name
    return name


def plate_rows(m: MeasurementRecord) -> list[dict]:
    """One row per well of a plate read (long format, easy to join and plot)."""
    grid = plate_grid(m.data)
    if grid is None:
        return []
    out = []
    for r, cells in enumerate(grid):
        for c, value in enumerate(cells):
            out.append(
                {
                    "measurement_id": m.id,
                    "device": m.device,
                    "kind": m.kind,
                    "labware": m.labware,
                    "well": f"{_row_name(r)}{c + 1}",
                    "row": r,
                    "column": c + 1,
                    "value": value,
                    "units": m.units,
                }
            )
    return out


def plot_plate(m: MeasurementRecord, path: Path) -> Path | None:
    """A heatmap of a plate read, wells labelled, colour bar in the read's units."""
    grid = plate_grid(m.data)
    if grid is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    arr = np.array([[np.nan if v is None else float(v) for v in row] for row in grid], dtype=float)
    n_rows, n_cols = arr.shape
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n_cols, 1.2 + 0.5 * n_rows), dpi=110)
    im = ax.imshow(arr, cmap="viridis", aspect="equal")
    ax.set_xticks(range(n_cols), [str(c + 1) for c in range(n_cols)])
    ax.set_yticks(range(n_rows), [_row_name(r) for r in range(n_rows)])
    ax.xaxis.tick_top()
    if n_rows * n_cols <= 96:
        for r in range(n_rows):
            for c in range(n_cols):
                if np.isfinite(arr[r, c]):
                    ax.text(
                        c,
                        r,
                        f"{arr[r, c]:.3f}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if im.norm(arr[r, c]) < 0.6 else "black",
                    )
    settings = ", ".join(f"{k}={v}" for k, v in sorted(m.metadata.items()) if isinstance(v, int | float | str))
    # Settings can be long (labware type, units, wavelength...): wrap them so the title is never clipped.
    wrapped = "\n".join(textwrap.wrap(settings, 90)) if settings else ""
    ax.set_title(f"{m.device} {m.kind} of {m.labware or '?'}" + (f"\n{wrapped}" if wrapped else ""), fontsize=9)
    fig.colorbar(im, ax=ax, label=m.units or "value", shrink=0.8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_DESCRIPTIONS = {
    "run.json": "The run record: protocol hash, parameters, operator, software version, git commit, "
    "workcell description hash, start, end and outcome.",
    "protocol.yaml": "The protocol text as it ran.",
    "documents.jsonl": "Event documents (Bluesky event model: start, descriptors, events, stop), one per line.",
    "measurements": "Every measurement with units and acquisition settings; data as JSON.",
    "plate_wells": "Plate reads in long format: one row per well.",
    "commands": "Every device command with parameters, result, error code and times.",
    "lineage": "Sample lineage: which well received what, how much, when and from where.",
    "steps": "Protocol steps with start, end and outcome.",
    "operator_actions": "What people did during the run.",
}


def export_run(store: RunStore, run_id: str, dest: str | Path, overwrite: bool = False) -> Bundle:
    """Write run `run_id`'s bundle to folder `dest` (which must not exist unless `overwrite`)."""
    run = store.get_run(run_id)
    dest = Path(dest)
    if dest.exists() and not overwrite:
        raise ExportError(f"{dest} already exists; choose a new folder or pass overwrite")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        files = _build(store, run, tmp)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Bundle(dest, files)


def _build(store: RunStore, run, root: Path) -> list[str]:
    written: list[Path] = []

    def put_json(name: str, value: Any) -> None:
        (root / name).write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
        written.append(root / name)

    put_json(
        "run.json",
        {
            **asdict(run),
            "started": _iso(run.started_at),
            "ended": _iso(run.ended_at),
            "counts": store.run_counts(run.id),
        },
    )
    (root / "protocol.yaml").write_text(run.protocol_text)
    written.append(root / "protocol.yaml")
    with open(root / "documents.jsonl", "w") as f:
        for doc in store.documents(run.id):
            f.write(json.dumps(doc, separators=(",", ":")) + "\n")
    written.append(root / "documents.jsonl")

    measurements = store.measurements(run.id)
    tables = root / "tables"
    for name, cls, rows in (
        ("measurements", MeasurementRecord, measurements),
        ("commands", CommandRecord, store.commands(run.id)),
        ("lineage", LineageRecord, store.lineage_records(run.id)),
        ("steps", StepRecord, store.steps(run.id)),
        ("operator_actions", OperatorActionRecord, store.operator_actions(run.id)),
    ):
        written += _write_table(tables, name, [f.name for f in fields(cls)], [asdict(r) for r in rows])
    wells = [row for m in measurements for row in plate_rows(m)]
    well_cols = ["measurement_id", "device", "kind", "labware", "well", "row", "column", "value", "units"]
    written += _write_table(tables, "plate_wells", well_cols, wells)

    for m in measurements:
        png = plot_plate(m, root / "plots" / f"{m.id}.png")
        if png is not None:
            written.append(png)

    for art in store.artifacts(run.id):
        src = Path(art.path)
        if art.kind == "mcap":
            if not src.is_file():
                raise ExportError(f"run {run.id}: its recording {src} is missing")
            (root / "recordings").mkdir(exist_ok=True)
            shutil.copy2(src, root / "recordings" / src.name)
            written.append(root / "recordings" / src.name)

    rel = [p.relative_to(root).as_posix() for p in written]
    _write_crate(root, run, rel, measurements)
    return ["ro-crate-metadata.json", *rel]


def _write_crate(root: Path, run, files: list[str], measurements: list[MeasurementRecord]) -> None:
    run_node = f"#run-{run.id}"
    entities: list[dict] = []
    for name in files:
        path = root / name
        stem = Path(name).stem
        desc = _DESCRIPTIONS.get(name) or _DESCRIPTIONS.get(stem, "")
        if name.startswith("plots/"):
            m = next((x for x in measurements if x.id == stem), None)
            desc = f"Heatmap of {m.device} {m.kind} of {m.labware} ({m.units})." if m else "Plot."
        elif name.startswith("recordings/"):
            desc = "The run's ROS 2 topics (MCAP, ros2msg schemas, CDR): open with Foxglove or `ros2 bag`."
        entities.append(
            {
                "@id": name,
                "@type": "File",
                "name": Path(name).name,
                "description": desc,
                "encodingFormat": _FORMATS.get(path.suffix, "application/octet-stream"),
                "contentSize": str(path.stat().st_size),
                "sha256": _sha256(path),
            }
        )
    status = {"succeeded": "CompletedActionStatus", "running": "ActiveActionStatus"}.get(
        run.outcome, "FailedActionStatus"
    )
    action: dict[str, Any] = {
        "@id": run_node,
        "@type": "CreateAction",
        "name": f"autolab run {run.id} of {run.protocol_name}",
        "identifier": run.id,
        "startTime": _iso(run.started_at),
        "actionStatus": {"@id": f"http://schema.org/{status}"},
        "instrument": [{"@id": "protocol.yaml"}, {"@id": "#autolab"}],
        "result": [{"@id": n} for n in files if n not in ("protocol.yaml", "run.json")],
        "object": {"@id": "#workcell"},
    }
    if run.ended_at is not None:
        action["endTime"] = _iso(run.ended_at)
    if run.error:
        action["error"] = run.error
    context_entities: list[dict] = [
        {
            "@id": "#autolab",
            "@type": "SoftwareApplication",
            "name": "autolab",
            "version": run.software_version,
            "identifier": run.git_sha,
        },
        {"@id": "#workcell", "@type": "Thing", "name": "workcell description", "identifier": run.workcell_hash},
    ]
    if run.operator:
        action["agent"] = {"@id": f"#operator-{run.operator}"}
        context_entities.append({"@id": f"#operator-{run.operator}", "@type": "Person", "name": run.operator})
    crate = {
        "@context": RO_CRATE_CONTEXT,
        "@graph": [
            {
                "@id": "ro-crate-metadata.json",
                "@type": "CreativeWork",
                "conformsTo": {"@id": RO_CRATE_SPEC},
                "about": {"@id": "./"},
            },
            {
                "@id": "./",
                "@type": "Dataset",
                "name": f"Run {run.id}: {run.protocol_name}",
                "description": f"Complete record of autolab run {run.id} ({run.protocol_name}, {run.outcome}).",
                "datePublished": _iso(datetime.now(UTC).timestamp()),
                "identifier": run.id,
                "hasPart": [{"@id": n} for n in files],
                "mentions": [{"@id": run_node}],
            },
            action,
            *context_entities,
            *entities,
        ],
    }
    (root / "ro-crate-metadata.json").write_text(json.dumps(crate, indent=2) + "\n")
