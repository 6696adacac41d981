"""Tables of the run store (SQLAlchemy Core), shared by SQLite and PostgreSQL.

Every row id is a ULID (26 characters), except `documents.seq`, an integer
that orders documents across runs so that a reader can tail the table. Times
are Unix seconds (wall clock, float) so they compare across hosts and
databases without time-zone conversions. Structured fields are JSON.

The alembic migrations in `autolab.data.migrations` create exactly these
tables; a change here needs a new migration (see docs/data.md).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

ID = String(26)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

#: One row per run: what ran, with which software and workcell, and how it ended.
runs = Table(
    "runs",
    metadata,
    Column("id", ID, primary_key=True),
    Column("protocol_name", String(200), nullable=False),
    Column("protocol_hash", String(64), nullable=False),
    Column("protocol_text", Text, nullable=False),
    Column("parameters", JSON, nullable=False),
    Column("operator", String(200), nullable=False),
    Column("software_version", String(50), nullable=False),
    Column("git_sha", String(64), nullable=False),
    Column("workcell_hash", String(64), nullable=False),
    Column("host", String(200), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("outcome", String(20), nullable=False),
    Column("error", Text, nullable=False),
    Column("metadata", JSON, nullable=False),
    Index(None, "started_at"),
    Index(None, "protocol_name"),
    Index(None, "outcome"),
)

#: Steps of a run, possibly nested (parallel branches, for-each iterations).
steps = Table(
    "steps",
    metadata,
    Column("id", ID, primary_key=True),
    Column("run_id", ID, ForeignKey("runs.id"), nullable=False),
    Column("parent_id", ID),
    Column("step_key", String(200), nullable=False),
    Column("name", String(200), nullable=False),
    Column("kind", String(50), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("outcome", String(20), nullable=False),
    Column("error", Text, nullable=False),
    Index(None, "run_id"),
)

#: Every device command and its result (typed error code as in the action result).
commands = Table(
    "commands",
    metadata,
    Column("id", ID, primary_key=True),
    Column("run_id", ID, ForeignKey("runs.id"), nullable=False),
    Column("step_id", ID),
    Column("device", String(100), nullable=False),
    Column("command", String(100), nullable=False),
    Column("params", JSON, nullable=False),
    Column("result", JSON, nullable=False),
    Column("error_code", Integer, nullable=False),
    Column("error_msg", Text, nullable=False),
    Column("labware", String(100)),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float, nullable=False),
    Index(None, "run_id"),
    Index(None, "labware"),
)

#: Data a device produced, with units, written before the device result returns.
measurements = Table(
    "measurements",
    metadata,
    Column("id", ID, primary_key=True),
    Column("run_id", ID, ForeignKey("runs.id"), nullable=False),
    Column("step_id", ID),
    Column("device", String(100), nullable=False),
    Column("kind", String(100), nullable=False),
    Column("data", JSON, nullable=False),
    Column("units", String(50), nullable=False),
    Column("labware", String(100)),
    Column("metadata", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Index(None, "run_id"),
    Index(None, "labware"),
)

#: Sample lineage: which well received what, how much, when, and from where.
lineage = Table(
    "lineage",
    metadata,
    Column("id", ID, primary_key=True),
    Column("run_id", ID, ForeignKey("runs.id"), nullable=False),
    Column("step_id", ID),
    Column("command_id", ID),
    Column("dest_labware", String(100), nullable=False),
    Column("dest_well", String(10)),
    Column("source_labware", String(100)),
    Column("source_well", String(10)),
    Column("material", String(200), nullable=False),
    Column("volume_ul", Float, nullable=False),
    Column("at", Float, nullable=False),
    Index(None, "dest_labware", "dest_well"),
    Index(None, "source_labware", "source_well"),
    Index(None, "run_id"),
)

#: What a person did: acknowledgements, pauses, aborts, manual moves.
operator_actions = Table(
    "operator_actions",
    metadata,
    Column("id", ID, primary_key=True),
    Column("run_id", ID, ForeignKey("runs.id")),
    Column("operator", String(200), nullable=False),
    Column("action", String(100), nullable=False),
    Column("detail", JSON, nullable=False),
    Column("at", Float, nullable=False),
    Index(None, "run_id"),
)

#: The executive's latest checkpoint of each run (one row per run, overwritten).
checkpoints = Table(
    "checkpoints",
    metadata,
    Column("run_id", ID, ForeignKey("runs.id"), primary_key=True),
    Column("state", JSON, nullable=False),
    Column("version", Integer, nullable=False),
    Column("saved_at", Float, nullable=False),
)

#: Event documents (start, descriptor, event, stop) in the order they were stored.
documents = Table(
    "documents",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("uid", String(64), nullable=False, unique=True),
    Column("run_id", ID, ForeignKey("runs.id"), nullable=False),
    Column("doc_type", String(20), nullable=False),
    Column("at", Float, nullable=False),
    Column("body", JSON, nullable=False),
    Index(None, "run_id", "seq"),
)

#: Files that belong to a run (MCAP recordings, images, export bundles).
artifacts = Table(
    "artifacts",
    metadata,
    Column("id", ID, primary_key=True),
    Column("run_id", ID, ForeignKey("runs.id"), nullable=False),
    Column("kind", String(50), nullable=False),
    Column("path", Text, nullable=False),
    Column("media_type", String(100), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("size_bytes", Integer),
    Index(None, "run_id"),
)
