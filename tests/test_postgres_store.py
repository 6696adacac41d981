"""The run store's specification (test_store.py) against a real, throwaway PostgreSQL server.

The server comes from Debian's `postgresql` package (initdb + pg_ctl under
/usr/lib/postgresql/*/bin), runs from a temporary folder on a loopback port,
as the `postgres` user when the tests run as root, and is stopped afterwards.
Without those binaries the module is skipped, saying why.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from autolab.data.documents import RunDocuments, data_key
from autolab.data.store import RunStore
from test_store import (  # noqa: F401 - the shared specification, re-run here against PostgreSQL
    test_a_plate_dispense_is_recorded_in_one_transaction_or_not_at_all,
    test_checkpoints_replace_each_other_and_interrupted_runs_are_found,
    test_commands_steps_and_operator_actions_are_recorded,
    test_concurrent_writer_threads_lose_nothing,
    test_documents_are_idempotent_on_uid_and_can_be_tailed,
    test_finished_run_keeps_its_first_outcome,
    test_lineage_follows_a_dilution_series_back_to_its_stock_and_forward,
    test_lineage_refuses_bad_volume_and_empty_sample,
    test_list_runs_filters_by_time_protocol_outcome_and_sample,
    test_measurement_round_trips_with_units_step_and_labware,
    test_measurement_with_nan_is_refused_and_says_where,
    test_names_longer_than_their_column_are_refused_on_every_database,
    test_new_run_records_protocol_software_and_workcell_provenance,
    test_numpy_data_is_stored_as_plain_json,
    test_run_ids_sort_in_creation_order,
    test_store_reopens_without_migrating_again_and_matches_the_models,
    test_unknown_outcome_and_unknown_run_are_refused_by_name,
)


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Unavailable(Exception):
    """PostgreSQL cannot be started on this machine (the message says why)."""


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A PostgreSQL server in a temporary folder on a loopback port; yields its base URL.

    Also used by bench/bench_store.py. Raises Unavailable when it cannot run here.
    """
    bindir = _pg_bin()
    if bindir is None:
        raise Unavailable(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (install Debian's postgresql package)"
        )
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="autolab-pg-"))
    if os.geteuid() == 0:  # initdb refuses to run as root
        if not shutil.which("runuser"):
            raise Unavailable("running as root and runuser is missing: cannot start PostgreSQL as another user")
        try:
            shutil.chown(root, "postgres", "postgres")
        except (LookupError, OSError) as exc:
            raise Unavailable(f"running as root and the postgres user is unusable: {exc}") from None
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", _free_port()
    try:
        subprocess.run(
            [
                *as_user,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "autolab",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=60"
        start = subprocess.run(
            [
                *as_user,
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                opts,
                "-l",
                str(root / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
            ],
            capture_output=True,
            text=True,
            timeout=90,
        )
        if start.returncode != 0:
            log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {start.stderr}\n{log}")
        yield f"postgresql+psycopg2://autolab@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


def create_database(base_url: str, name: str) -> str:
    """CREATE DATABASE `name` on the server at `base_url`; returns its URL."""
    import psycopg2

    port = int(base_url.rsplit(":", 1)[1])
    conn = psycopg2.connect(host="127.0.0.1", port=port, user="autolab", dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    conn.close()
    return f"{base_url}/{name}"


@pytest.fixture(scope="module")
def pg_server():
    pytest.importorskip("psycopg2", reason="psycopg2 is needed to reach PostgreSQL")
    try:
        with throwaway_postgres() as url:
            yield url
    except Unavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def pg_store_url(pg_server):
    """One database for the module, created and migrated through RunStore.open."""
    url = create_database(pg_server, "autolab_test")
    RunStore.open(url).close()
    return url


@pytest.fixture
def store(pg_store_url):
    """The module's database, emptied before each test (faster than a new database each time)."""
    from sqlalchemy import text

    from autolab.data.schema import metadata

    s = RunStore.open(pg_store_url)
    with s.engine.begin() as conn:
        conn.execute(text("TRUNCATE " + ", ".join(t.name for t in metadata.sorted_tables) + " CASCADE"))
    yield s
    s.close()


def test_store_on_postgresql_reports_its_dialect(store):
    assert store.dialect == "postgresql" and store.integrity_check() == "ok"


def test_two_workcells_share_one_postgresql_store(store):
    """Two processes' worth of stores (separate engines) write runs the other one sees."""
    cell_b = RunStore.open(store.url.replace("***", ""))
    try:
        a = store.create_run("plate_prep", "", {}, "alice", "cell-a")
        b = cell_b.create_run("plate_prep", "", {}, "bob", "cell-b")
        docs = RunDocuments(b, cell_b)
        docs.start()
        docs.descriptor("p", {"x": data_key("number", "reader1", "AU")})
        docs.event("p", {"x": 1.5})
        assert {r.workcell_hash for r in store.list_runs()} == {"cell-a", "cell-b"}
        assert [d.get("data") for d in store.documents(b)][-1] == {"x": 1.5}
        assert cell_b.get_run(a).operator == "alice"
    finally:
        cell_b.close()
