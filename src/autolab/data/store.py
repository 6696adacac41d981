"""The run store: every run's complete record, in SQLite by default or any SQLAlchemy URL.

API summary (all ids are ULID strings, all times Unix seconds, every write is
committed and durable when the call returns, every method is thread-safe):

    store = RunStore.open(url=None)        # default sqlite:///<data dir>/autolab.db; migrates
    run_id = store.create_run(protocol_name, protocol_text, parameters, operator, workcell_hash)
    step_id = store.add_step(run_id, name, kind, step_key="", parent_id=None)
    store.finish_step(step_id, outcome, error="")
    store.record_command(run_id, device, command, params, result, error_code, started, ended,
                         step_id=None, error_msg="", labware=None) -> command id
    store.add_measurement(run_id, device, kind, data, units, step_id=None, labware=None,
                          metadata=None) -> record id     (then DataRef uri = measurement_uri(...))
    store.record_lineage(run_id, dest_labware, dest_well, source_labware, source_well,
                         material, volume_ul, step_id=None, command_id=None, at=None) -> id
    store.record_operator_action(run_id, operator, action, detail=None) -> id
    store.save_checkpoint(run_id, state) / load_checkpoint(run_id) -> dict | None
    store.interrupted_runs() -> [RunRecord]                # started, never finished
    store.finish_run(run_id, outcome, error="")           # succeeded | failed | aborted
    store.add_document(run_id, doc) -> seq | None         # event documents, idempotent on uid
    store.get_run(run_id), list_runs(since=, until=, protocol=, outcome=, sample=)
    store.lineage("plate1:A1") -> LineageReport            # a sample's full history, one query
    store.ensure_adhoc_run(device) -> run_id               # data produced outside any protocol

Durability: SQLite runs in WAL mode with synchronous=FULL, so a commit has
reached the disk (not only the OS cache) before the call returns; a kill -9 or
a power cut at any moment loses no acknowledged write. NORMAL would survive a
process crash but not a power cut, and the measured cost of FULL in WAL mode
is one fsync of the log per commit (see bench/bench_store.py). Write
transactions start with BEGIN IMMEDIATE so concurrent writers (threads or
processes) queue on the database lock instead of failing mid-transaction.

PostgreSQL (one store for many workcells) is selected by URL, e.g.
postgresql+psycopg2://user@host/autolab; its commits are durable by default.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    create_engine,
    event,
    func,
    or_,
    select,
    text,
    true,
    union,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError

from autolab.data import schema as t
from autolab.data.errors import InvalidRecord, RunFinished, StoreError, UnknownRun
from autolab.data.ids import new_id, now

RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
ABORTED = "aborted"
#: Outcomes a finished run may have.
FINAL_OUTCOMES = (SUCCEEDED, FAILED, ABORTED)
#: Protocol-name prefix of runs that collect data produced outside any protocol.
ADHOC_PREFIX = "adhoc:"

_MIGRATION_LOCK_ID = 0x6175746F6C6162  # "autolab": PostgreSQL advisory lock of the migration


# --- where the data lives ------------------------------------------------------------


def data_dir() -> Path:
    """The data directory: $AUTOLAB_DATA_DIR, else ~/.local/share/autolab."""
    env = os.environ.get("AUTOLAB_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".local" / "share" / "autolab"


def default_url() -> str:
    """sqlite:///<data dir>/autolab.db."""
    return f"sqlite:///{data_dir() / 'autolab.db'}"


def run_dir(run_id: str) -> Path:
    """Where a run's files (MCAP, images) go: <data dir>/runs/<run_id>/."""
    return data_dir() / "runs" / run_id


def measurement_uri(run_id: str, record_id: str) -> str:
    """The `DataRef.uri` of a measurement."""
    return f"autolab-run://{run_id}/measurements/{record_id}"


# --- provenance ----------------------------------------------------------------------


def software_version() -> str:
    from autolab import __version__

    return __version__


def git_sha(start: Path | None = None) -> str:
    """The commit of the autolab checkout in use ('unknown' when not a git checkout).

    Read from the .git files directly: no subprocess, so it is cheap and cannot hang.
    $AUTOLAB_GIT_SHA overrides it (set by packaging, where no .git exists).
    """
    if os.environ.get("AUTOLAB_GIT_SHA"):
        return os.environ["AUTOLAB_GIT_SHA"]
    here = (start or Path(__file__)).resolve()
    for folder in [here, *here.parents]:
        git = folder / ".git"
        if git.is_file():  # worktree: "gitdir: <path>"
            content = git.read_text().strip()
            if content.startswith("gitdir:"):
                git = (folder / content.split(":", 1)[1].strip()).resolve()
        if not git.is_dir():
            continue
        try:
            head = (git / "HEAD").read_text().strip()
            if not head.startswith("ref:"):
                return head
            ref = head.split(":", 1)[1].strip()
            common = git / "commondir"
            roots = [git] + ([(git / common.read_text().strip()).resolve()] if common.is_file() else [])
            for root in roots:
                if (root / ref).is_file():
                    return (root / ref).read_text().strip()
                packed = root / "packed-refs"
                if packed.is_file():
                    for line in packed.read_text().splitlines():
                        if line.endswith(" " + ref):
                            return line.split(" ", 1)[0]
            return "unborn"  # a branch with no commits yet
        except OSError:
            return "unknown"
    return "unknown"


def text_hash(text_: str) -> str:
    return hashlib.sha256(text_.encode()).hexdigest()


# --- records returned to callers --------------------------------------------------------


@dataclass(frozen=True)
class RunRecord:
    id: str
    protocol_name: str
    protocol_hash: str
    protocol_text: str
    parameters: dict
    operator: str
    software_version: str
    git_sha: str
    workcell_hash: str
    host: str
    started_at: float
    ended_at: float | None
    outcome: str
    error: str
    metadata: dict

    @property
    def finished(self) -> bool:
        return self.outcome != RUNNING

    @property
    def duration_s(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started_at


@dataclass(frozen=True)
class StepRecord:
    id: str
    run_id: str
    parent_id: str | None
    step_key: str
    name: str
    kind: str
    started_at: float
    ended_at: float | None
    outcome: str
    error: str


@dataclass(frozen=True)
class CommandRecord:
    id: str
    run_id: str
    step_id: str | None
    device: str
    command: str
    params: dict
    result: dict
    error_code: int
    error_msg: str
    labware: str | None
    started_at: float
    ended_at: float


@dataclass(frozen=True)
class MeasurementRecord:
    id: str
    run_id: str
    step_id: str | None
    device: str
    kind: str
    data: Any
    units: str
    labware: str | None
    metadata: dict
    created_at: float


@dataclass(frozen=True)
class LineageRecord:
    id: str
    run_id: str
    step_id: str | None
    command_id: str | None
    dest_labware: str
    dest_well: str | None
    source_labware: str | None
    source_well: str | None
    material: str
    volume_ul: float
    at: float


@dataclass(frozen=True)
class OperatorActionRecord:
    id: str
    run_id: str | None
    operator: str
    action: str
    detail: dict
    at: float


@dataclass(frozen=True)
class DocumentRecord:
    seq: int
    uid: str
    run_id: str
    doc_type: str
    at: float
    body: dict


@dataclass(frozen=True)
class ArtifactRecord:
    id: str
    run_id: str
    kind: str
    path: str
    media_type: str
    created_at: float
    size_bytes: int | None


def _from_row(cls, row) -> Any:
    m = row._mapping
    return cls(**{f.name: m[f.name] for f in fields(cls)})


# --- JSON that every database accepts -----------------------------------------------------


def _plain(value: Any, where: str) -> Any:
    """Convert numpy scalars/arrays and tuples to JSON types; refuse NaN/Infinity by name."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidRecord(f"{where} contains {value!r}; record a missing value as null")
        return value
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return _plain(value.tolist(), where)
    if isinstance(value, datetime):
        return value.isoformat()
    raise InvalidRecord(f"{where} has a value of type {type(value).__name__}, which is not JSON data")


def _json_dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def _ts(value: float | datetime | None, where: str) -> float:
    if value is None:
        return now()
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InvalidRecord(f"{where} must be Unix seconds or a datetime, not {value!r}") from None
    if not math.isfinite(out):
        raise InvalidRecord(f"{where} must be a finite time, not {value!r}")
    return out


def _required(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRecord(f"{where} is required (a non-empty string), got {value!r}")
    return value


def _check_lengths(table, values: Mapping[str, Any]) -> None:
    """Refuse strings longer than their column on every database (SQLite would store them)."""
    for name, value in values.items():
        length = getattr(table.c[name].type, "length", None)
        if length and isinstance(value, str) and len(value) > length:
            raise InvalidRecord(f"{table.name}.{name} is {len(value)} characters long; at most {length} fit")


def parse_sample(sample: str) -> tuple[str, str | None]:
    """'plate1:A1' -> ('plate1', 'A1'); 'plate1' -> ('plate1', None)."""
    if not sample or not sample.strip():
        raise InvalidRecord("a sample is named 'labware' or 'labware:well', got an empty name")
    labware, _, well = sample.strip().partition(":")
    return labware, (well.upper() or None)


# --- the store --------------------------------------------------------------------------


class RunStore:
    """The run store. Open with `RunStore.open(url)`; close with `close()` or a `with` block."""

    def __init__(self, engine: Engine, url: str) -> None:
        self._engine = engine
        self.url = url
        self.dialect = engine.dialect.name
        self._adhoc_lock = threading.Lock()
        # SQLite has one writer at a time; its busy handler waits by sleeping in growing steps (up to
        # 100 ms), so threads of one process queue on this lock instead. Processes still use the handler.
        self._write_lock = threading.Lock() if self.dialect == "sqlite" else nullcontext()

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, url: str | None = None, migrate: bool = True) -> RunStore:
        """Open (creating and migrating if needed) the store at `url` (default: `default_url()`).

        Raises StoreError naming the URL when the database cannot be reached or migrated.
        """
        url = url or default_url()
        try:
            parsed = make_url(url)
        except Exception as exc:
            raise StoreError(f"'{url}' is not a database URL: {exc}") from None
        if parsed.get_backend_name() == "sqlite":
            engine = _sqlite_engine(url, parsed.database, parsed.query)
        else:
            try:
                engine = create_engine(url, pool_pre_ping=True, json_serializer=_json_dumps)
            except Exception as exc:  # missing driver, bad options
                raise StoreError(f"cannot use run store {parsed.render_as_string(hide_password=True)}: {exc}") from None
        store = cls(engine, parsed.render_as_string(hide_password=True))
        try:
            if migrate:
                store.migrate()
            else:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
        except StoreError:
            engine.dispose()
            raise
        except SQLAlchemyError as exc:
            engine.dispose()
            raise StoreError(f"cannot open run store {store.url}: {exc.__class__.__name__}: {exc}") from None
        return store

    def migrate(self) -> str:
        """Bring the schema to the newest revision; returns it. Safe with concurrent openers."""
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
        head = ScriptDirectory.from_config(cfg).get_current_head()
        with self._engine.connect() as conn:
            if MigrationContext.configure(conn).get_current_revision() == head:
                return head
        with self._write() as conn:  # BEGIN IMMEDIATE on SQLite: one migrator at a time
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_ID})
            if MigrationContext.configure(conn).get_current_revision() != head:
                cfg.attributes["connection"] = conn
                try:
                    command.upgrade(cfg, "head")
                except Exception as exc:
                    raise StoreError(f"cannot migrate run store {self.url} to {head}: {exc}") from exc
        return head

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def engine(self) -> Engine:
        return self._engine

    @contextmanager
    def _write(self, run_id: str | None = None) -> Iterator[Connection]:
        """A write transaction, committed (durably) on exit, rolled back on error.

        `run_id` names the run in the UnknownRun raised when the run does not exist.
        """
        with self._write_lock, self._engine.connect() as conn:
            conn.execution_options(autolab_write=True)
            try:
                with conn.begin():
                    yield conn
            except IntegrityError as exc:
                raise _integrity_error(exc, run_id) from None
            except DataError as exc:  # e.g. a name longer than its column (PostgreSQL checks lengths)
                raise InvalidRecord(f"record refused by the database: {exc.orig}") from None
            except DBAPIError as exc:
                raise StoreError(f"run store {self.url}: {exc.orig}") from None

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            try:
                yield conn
            except DBAPIError as exc:
                raise StoreError(f"run store {self.url}: {exc.orig}") from None

    def _dialect_insert(self, table):
        """INSERT with ON CONFLICT support (SQLite and PostgreSQL spell it the same way)."""
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            raise StoreError(f"run store {self.url}: {self.dialect} is not supported (use SQLite or PostgreSQL)")
        return insert(table)

    def _insert(self, table, **values) -> str:
        values.setdefault("id", new_id())
        _check_lengths(table, values)
        with self._write(values.get("run_id")) as conn:
            conn.execute(table.insert().values(**values))
        return values["id"]

    # -- runs ------------------------------------------------------------------------------
    def create_run(
        self,
        protocol_name: str,
        protocol_text: str = "",
        parameters: Mapping[str, Any] | None = None,
        operator: str = "",
        workcell_hash: str = "",
        metadata: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        started_at: float | datetime | None = None,
    ) -> str:
        """Start a run record and return its ULID.

        Records the protocol text and its sha256, the parameters as given, the
        operator, autolab's version and git commit, the workcell description
        hash (`Workcell.hash()`) and the host. `run_id` may be passed when the
        caller already announced an id (e.g. in a goal); it must be a new ULID.
        """
        _required(protocol_name, "protocol_name")
        return self._insert(
            t.runs,
            id=run_id or new_id(),
            protocol_name=protocol_name,
            protocol_hash=text_hash(protocol_text or ""),
            protocol_text=protocol_text or "",
            parameters=_plain(dict(parameters or {}), "parameters"),
            operator=operator or "",
            software_version=software_version(),
            git_sha=git_sha(),
            workcell_hash=workcell_hash or "",
            host=platform.node(),
            started_at=_ts(started_at, "started_at"),
            ended_at=None,
            outcome=RUNNING,
            error="",
            metadata=_plain(dict(metadata or {}), "metadata"),
        )

    def finish_run(self, run_id: str, outcome: str, error: str = "", ended_at: float | datetime | None = None) -> None:
        """Close a run with its outcome (succeeded, failed or aborted) and, if it failed, why.

        Raises RunFinished if the run was already finished (an outcome is never overwritten).
        """
        if outcome not in FINAL_OUTCOMES:
            raise InvalidRecord(f"outcome must be one of {', '.join(FINAL_OUTCOMES)}, not {outcome!r}")
        with self._write() as conn:
            done = conn.execute(
                update(t.runs)
                .where(t.runs.c.id == run_id, t.runs.c.outcome == RUNNING)
                .values(outcome=outcome, error=error or "", ended_at=_ts(ended_at, "ended_at"))
            ).rowcount
            if not done:
                row = conn.execute(select(t.runs.c.outcome).where(t.runs.c.id == run_id)).first()
                if row is None:
                    raise UnknownRun(run_id)
                raise RunFinished(f"run {run_id} already finished ({row.outcome}); its outcome is kept")

    def get_run(self, run_id: str) -> RunRecord:
        """The run's record; raises UnknownRun. A unique prefix of the id is accepted."""
        with self._read() as conn:
            row = conn.execute(select(t.runs).where(t.runs.c.id == run_id)).first()
            if row is None and 0 < len(run_id) < 26:
                rows = conn.execute(select(t.runs).where(t.runs.c.id.like(run_id.upper() + "%")).limit(2)).all()
                row = rows[0] if len(rows) == 1 else None
        if row is None:
            raise UnknownRun(run_id)
        return _from_row(RunRecord, row)

    def list_runs(
        self,
        since: float | datetime | None = None,
        until: float | datetime | None = None,
        protocol: str | None = None,
        outcome: str | None = None,
        sample: str | None = None,
        limit: int | None = 100,
    ) -> list[RunRecord]:
        """Runs, newest first, filtered by start time, protocol name (`*` wildcards), outcome
        and sample (runs that moved, filled or measured that labware or well)."""
        q = select(t.runs).order_by(t.runs.c.started_at.desc(), t.runs.c.id.desc())
        if since is not None:
            q = q.where(t.runs.c.started_at >= _ts(since, "since"))
        if until is not None:
            q = q.where(t.runs.c.started_at < _ts(until, "until"))
        if protocol:
            q = q.where(t.runs.c.protocol_name.like(protocol.replace("*", "%")))
        if outcome:
            q = q.where(t.runs.c.outcome == outcome)
        if sample:
            labware, well = parse_sample(sample)
            lin = t.lineage.c
            in_lineage = or_(
                and_(lin.dest_labware == labware, (lin.dest_well == well) if well else true()),
                and_(lin.source_labware == labware, (lin.source_well == well) if well else true()),
            )
            ids = union(
                select(t.lineage.c.run_id).where(in_lineage),
                select(t.measurements.c.run_id).where(t.measurements.c.labware == labware),
                select(t.commands.c.run_id).where(t.commands.c.labware == labware),
            )
            q = q.where(t.runs.c.id.in_(ids))
        if limit:
            q = q.limit(limit)
        with self._read() as conn:
            return [_from_row(RunRecord, r) for r in conn.execute(q)]

    def interrupted_runs(self) -> list[RunRecord]:
        """Runs started and never finished (oldest first), e.g. after the executive was killed.

        The executive resumes each from `load_checkpoint` or finishes it as failed with the
        reason. Ad-hoc runs (data produced outside a protocol) are not included.
        """
        q = (
            select(t.runs)
            .where(t.runs.c.outcome == RUNNING, ~t.runs.c.protocol_name.like(ADHOC_PREFIX + "%"))
            .order_by(t.runs.c.started_at, t.runs.c.id)
        )
        with self._read() as conn:
            return [_from_row(RunRecord, r) for r in conn.execute(q)]

    def ensure_adhoc_run(self, device: str, operator: str = "") -> str:
        """The open ad-hoc run collecting `device`'s data produced outside any protocol.

        Instruments call this when a goal carries no run id, so data is never dropped.
        """
        _required(device, "device")
        name = ADHOC_PREFIX + device
        with self._adhoc_lock:
            q = select(t.runs.c.id).where(t.runs.c.protocol_name == name, t.runs.c.outcome == RUNNING)
            with self._read() as conn:
                row = conn.execute(q.order_by(t.runs.c.id.desc()).limit(1)).first()
            if row is not None:
                return row.id
            return self.create_run(name, operator=operator, metadata={"adhoc": True, "device": device})

    def run_counts(self, run_id: str) -> dict[str, int]:
        """How many steps, commands, measurements, lineage records, documents... a run has."""
        out = {}
        with self._read() as conn:
            for name, table in (
                ("steps", t.steps),
                ("commands", t.commands),
                ("measurements", t.measurements),
                ("lineage", t.lineage),
                ("operator_actions", t.operator_actions),
                ("documents", t.documents),
                ("artifacts", t.artifacts),
            ):
                out[name] = conn.execute(
                    select(func.count()).select_from(table).where(table.c.run_id == run_id)
                ).scalar_one()
        return out

    # -- steps and commands ------------------------------------------------------------------
    def add_step(
        self,
        run_id: str,
        name: str,
        kind: str = "",
        step_key: str = "",
        parent_id: str | None = None,
        started_at: float | datetime | None = None,
    ) -> str:
        """Record that a step started; returns its id (pass it to records made within it)."""
        _required(name, "step name")
        return self._insert(
            t.steps,
            run_id=run_id,
            parent_id=parent_id,
            step_key=step_key or name,
            name=name,
            kind=kind or "",
            started_at=_ts(started_at, "started_at"),
            ended_at=None,
            outcome=RUNNING,
            error="",
        )

    def finish_step(
        self, step_id: str, outcome: str, error: str = "", ended_at: float | datetime | None = None
    ) -> None:
        """Record how a step ended (succeeded, failed, aborted or skipped)."""
        with self._write() as conn:
            n = conn.execute(
                update(t.steps)
                .where(t.steps.c.id == step_id)
                .values(outcome=outcome, error=error or "", ended_at=_ts(ended_at, "ended_at"))
            ).rowcount
        if not n:
            raise InvalidRecord(f"no step with id '{step_id}'")

    def steps(self, run_id: str) -> list[StepRecord]:
        return self._rows(StepRecord, t.steps, run_id, t.steps.c.started_at)

    def record_command(
        self,
        run_id: str,
        device: str,
        command: str,
        params: Mapping[str, Any] | None,
        result: Mapping[str, Any] | None,
        error_code: int,
        started: float | datetime,
        ended: float | datetime | None = None,
        step_id: str | None = None,
        error_msg: str = "",
        labware: str | None = None,
    ) -> str:
        """Record one device command and its result (error_code 0 = success, as in the actions).

        `labware` names the labware the command acted on, so it appears in that sample's history.
        """
        _required(device, "device")
        _required(command, "command")
        return self._insert(
            t.commands,
            run_id=run_id,
            step_id=step_id,
            device=device,
            command=command,
            params=_plain(dict(params or {}), "params"),
            result=_plain(dict(result or {}), "result"),
            error_code=int(error_code),
            error_msg=error_msg or "",
            labware=labware or None,
            started_at=_ts(started, "started"),
            ended_at=_ts(ended, "ended"),
        )

    def commands(self, run_id: str) -> list[CommandRecord]:
        return self._rows(CommandRecord, t.commands, run_id, t.commands.c.started_at)

    # -- measurements and lineage ----------------------------------------------------------------
    def add_measurement(
        self,
        run_id: str,
        device: str,
        kind: str,
        data: Any,
        units: str,
        step_id: str | None = None,
        labware: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> str:
        """Store data a device produced, durably, and return its record id for the DataRef.

        `data` is JSON data (numpy arrays are converted; NaN/Infinity are refused: use null).
        Plate reads use {"wells": {"A1": 0.12, ...}} or {"values": [[row A], [row B], ...]};
        `metadata` holds acquisition settings (wavelength_nm, temperature_c, ...).
        """
        _required(device, "device")
        _required(kind, "kind")
        if not isinstance(units, str):
            raise InvalidRecord(f"units must be a string (use '' for dimensionless), got {units!r}")
        return self._insert(
            t.measurements,
            run_id=run_id,
            step_id=step_id,
            device=device,
            kind=kind,
            data=_plain(data, "data"),
            units=units,
            labware=labware or None,
            metadata=_plain(dict(metadata or {}), "metadata"),
            created_at=now(),
        )

    def get_measurement(self, record_id: str) -> MeasurementRecord:
        with self._read() as conn:
            row = conn.execute(select(t.measurements).where(t.measurements.c.id == record_id)).first()
        if row is None:
            raise InvalidRecord(f"no measurement with id '{record_id}'")
        return _from_row(MeasurementRecord, row)

    def measurements(self, run_id: str) -> list[MeasurementRecord]:
        return self._rows(MeasurementRecord, t.measurements, run_id, t.measurements.c.id)

    def record_lineage(
        self,
        run_id: str,
        dest_labware: str,
        dest_well: str | None,
        source_labware: str | None,
        source_well: str | None,
        material: str,
        volume_ul: float,
        step_id: str | None = None,
        command_id: str | None = None,
        at: float | datetime | None = None,
    ) -> str:
        """Record that `dest_labware:dest_well` received `volume_ul` of `material` from the source.

        A None well means the whole labware (e.g. a plate sealed or a reagent added to every
        well); a None source means it came from outside the tracked labware (a reservoir refill).
        """
        row = self._lineage_row(
            run_id, dest_labware, dest_well, source_labware, source_well, material, volume_ul, step_id, command_id, at
        )
        return self._insert(t.lineage, **row)

    @staticmethod
    def _lineage_row(
        run_id: str,
        dest_labware: str,
        dest_well: str | None,
        source_labware: str | None,
        source_well: str | None,
        material: str,
        volume_ul: float,
        step_id: str | None = None,
        command_id: str | None = None,
        at: float | datetime | None = None,
    ) -> dict:
        _required(dest_labware, "dest_labware")
        _required(material, "material")
        try:
            volume = float(volume_ul)
        except (TypeError, ValueError):
            raise InvalidRecord(f"volume_ul must be a number, got {volume_ul!r}") from None
        if not math.isfinite(volume) or volume < 0:
            raise InvalidRecord(f"volume_ul must be a finite volume >= 0, got {volume_ul!r}")
        return {
            "id": new_id(),
            "run_id": run_id,
            "step_id": step_id,
            "command_id": command_id,
            "dest_labware": dest_labware,
            "dest_well": dest_well.upper() if dest_well else None,
            "source_labware": source_labware or None,
            "source_well": source_well.upper() if source_well else None,
            "material": material,
            "volume_ul": volume,
            "at": _ts(at, "at"),
        }

    def record_lineage_many(
        self,
        run_id: str,
        transfers: Iterable[Mapping[str, Any]],
        step_id: str | None = None,
        command_id: str | None = None,
    ) -> list[str]:
        """Record many transfers (e.g. one per well of a plate dispense) in one transaction.

        Each item has the keyword arguments of `record_lineage` (dest_labware, dest_well,
        source_labware, source_well, material, volume_ul, optional at). All or none are stored.
        """
        rows = []
        for i, item in enumerate(transfers):
            try:
                rows.append(self._lineage_row(run_id, step_id=step_id, command_id=command_id, **item))
            except TypeError as exc:
                raise InvalidRecord(f"transfer {i}: {exc}") from None
            except InvalidRecord as exc:
                raise InvalidRecord(f"transfer {i}: {exc}") from None
        for row in rows:
            _check_lengths(t.lineage, row)
        if rows:
            with self._write(run_id) as conn:
                conn.execute(t.lineage.insert(), rows)
        return [r["id"] for r in rows]

    def lineage_records(self, run_id: str) -> list[LineageRecord]:
        return self._rows(LineageRecord, t.lineage, run_id, t.lineage.c.at)

    def lineage(self, sample: str):
        """A sample's full history ('labware' or 'labware:well'): see autolab.data.lineage."""
        from autolab.data.lineage import query_lineage

        with self._read() as conn:
            return query_lineage(conn, sample)

    # -- operator actions, checkpoints, artifacts ------------------------------------------------
    def record_operator_action(
        self, run_id: str | None, operator: str, action: str, detail: Mapping[str, Any] | None = None
    ) -> str:
        """Record what a person did (acknowledge, pause, resume, abort, reset, manual move)."""
        _required(action, "action")
        return self._insert(
            t.operator_actions,
            run_id=run_id or None,
            operator=operator or "",
            action=action,
            detail=_plain(dict(detail or {}), "detail"),
            at=now(),
        )

    def operator_actions(self, run_id: str) -> list[OperatorActionRecord]:
        return self._rows(OperatorActionRecord, t.operator_actions, run_id, t.operator_actions.c.at)

    def save_checkpoint(self, run_id: str, state: Mapping[str, Any]) -> int:
        """Replace the run's checkpoint with `state` (JSON data); returns its version (1, 2, ...)."""
        state = _plain(dict(state), "checkpoint state")
        ins = self._dialect_insert(t.checkpoints).values(run_id=run_id, state=state, version=1, saved_at=now())
        stmt = ins.on_conflict_do_update(
            index_elements=["run_id"],
            set_={
                "state": ins.excluded.state,
                "saved_at": ins.excluded.saved_at,
                "version": t.checkpoints.c.version + 1,
            },
        ).returning(t.checkpoints.c.version)
        with self._write(run_id) as conn:  # one statement: concurrent savers cannot collide
            return conn.execute(stmt).scalar_one()

    def load_checkpoint(self, run_id: str) -> dict | None:
        """The run's latest checkpoint state, or None if it never saved one."""
        with self._read() as conn:
            return conn.execute(select(t.checkpoints.c.state).where(t.checkpoints.c.run_id == run_id)).scalar()

    def add_artifact(self, run_id: str, kind: str, path: str | Path, media_type: str) -> str:
        """Register a file of the run (e.g. kind 'mcap', media type 'application/x-mcap')."""
        p = Path(path)
        size = p.stat().st_size if p.is_file() else None
        return self._insert(
            t.artifacts, run_id=run_id, kind=kind, path=str(p), media_type=media_type, created_at=now(), size_bytes=size
        )

    def artifacts(self, run_id: str) -> list[ArtifactRecord]:
        return self._rows(ArtifactRecord, t.artifacts, run_id, t.artifacts.c.created_at)

    # -- event documents -------------------------------------------------------------------------
    def add_document(self, run_id: str, doc_type: str, doc: Mapping[str, Any]) -> int | None:
        """Persist one event document; returns its store sequence number, or None when a
        document with the same uid is already stored (so producers may resend safely)."""
        uid = _required(doc.get("uid"), "document uid")
        body = _plain(dict(doc), f"{doc_type} document")
        at = _ts(doc.get("time"), "document time")
        stmt = (
            self._dialect_insert(t.documents)
            .values(uid=uid, run_id=run_id, doc_type=doc_type, at=at, body=body)
            .on_conflict_do_nothing(index_elements=["uid"])
            .returning(t.documents.c.seq)
        )
        with self._write(run_id) as conn:
            return conn.execute(stmt).scalar()

    def documents(self, run_id: str) -> list[dict]:
        """The run's documents in the order they were stored."""
        q = select(t.documents.c.body).where(t.documents.c.run_id == run_id).order_by(t.documents.c.seq)
        with self._read() as conn:
            return [r.body for r in conn.execute(q)]

    def documents_after(self, seq: int, limit: int = 500, run_id: str | None = None) -> list[DocumentRecord]:
        """Documents stored after sequence number `seq`, oldest first: for tailing the store."""
        q = select(t.documents).where(t.documents.c.seq > seq).order_by(t.documents.c.seq).limit(limit)
        if run_id:
            q = q.where(t.documents.c.run_id == run_id)
        with self._read() as conn:
            return [_from_row(DocumentRecord, r) for r in conn.execute(q)]

    def last_document_seq(self) -> int:
        with self._read() as conn:
            return conn.execute(select(func.max(t.documents.c.seq))).scalar() or 0

    # -- maintenance -------------------------------------------------------------------------------
    def integrity_check(self) -> str:
        """'ok' when the database is sound (SQLite PRAGMA integrity_check; PostgreSQL: reachable)."""
        with self._read() as conn:
            if self.dialect == "sqlite":
                rows = conn.exec_driver_sql("PRAGMA integrity_check").all()
                return "; ".join(r[0] for r in rows)
            conn.execute(text("SELECT 1"))
            return "ok"

    def _rows(self, cls, table, run_id: str, order) -> list:
        q = select(table).where(table.c.run_id == run_id).order_by(order, table.c[fields(cls)[0].name])
        with self._read() as conn:
            return [_from_row(cls, r) for r in conn.execute(q)]


# --- engine details ---------------------------------------------------------------------------


def _sqlite_engine(url: str, database: str | None, query: Mapping[str, Any] | None = None) -> Engine:
    """SQLite in WAL mode; `?timeout=<s>` in the URL sets how long a writer waits for the lock (30 s)."""
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        raise StoreError(
            "an in-memory SQLite run store would lose every record at exit; "
            "give a file, e.g. sqlite:////var/lib/autolab/autolab.db"
        )
    path = Path(database).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the run store's folder {path.parent}: {exc.strerror}") from None
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, **({} if "timeout" in (query or {}) else {"timeout": 30.0})},
        json_serializer=_json_dumps,
        pool_size=8,
        max_overflow=8,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("autolab_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _integrity_error(exc: IntegrityError, run_id: str | None) -> Exception:
    if "foreign key" in str(exc.orig).lower():
        return UnknownRun(run_id or "?")
    return InvalidRecord(f"record refused by the database: {exc.orig}")
