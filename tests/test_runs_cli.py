"""`autolab runs list|show|export|lineage` against a real store file.

One test runs the installed command in its own process (entry point, exit
code, output); the others call the same `autolab` main in-process, which is
the whole command minus the interpreter start-up.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time

import pytest

from autolab.data.store import RunStore
from test_export import record_plate_prep


@pytest.fixture(scope="module")
def cell(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs_cli")
    url = f"sqlite:///{root / 'runs.db'}"
    store = RunStore.open(url)
    prep = record_plate_prep(store, root)
    old = store.create_run("elisa", "steps: []", {}, "bob", "wc-1", started_at=time.time() - 5 * 86400)
    store.record_command(
        old, "reader1", "read", {}, {}, 7, time.time(), time.time(), error_msg="lamp failure", labware="P7"
    )
    store.finish_run(old, "failed", "reader1: lamp failure")
    store.close()
    return {"url": url, "prep": prep, "old": old, "root": root}


def autolab(cell, *argv: str) -> subprocess.CompletedProcess:
    """`autolab runs ARGV` in-process, returning what a process would have (code, stdout, stderr)."""
    from autolab.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["runs", "--store", cell["url"], *argv])
        except SystemExit as exc:  # argparse errors
            code = exc.code
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def test_the_installed_command_lists_runs_from_the_store_in_the_environment(cell):
    env = dict(os.environ, AUTOLAB_STORE_URL=cell["url"])
    out = subprocess.run(
        [sys.executable, "-m", "autolab.cli.main", "runs", "list", "--outcome", "failed"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert cell["old"] in out.stdout and cell["prep"] not in out.stdout


def test_list_shows_runs_newest_first_and_filters(cell):
    out = autolab(cell, "list")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:4] == ["RUN", "STARTED", "DURATION", "OUTCOME"]
    assert cell["prep"] in lines[2] and cell["old"] in lines[3]
    assert "reader1: lamp failure" in lines[3]
    recent = autolab(cell, "list", "--since", "2d", "--json")
    assert [r["id"] for r in json.loads(recent.stdout)] == [cell["prep"]]
    assert [r["id"] for r in json.loads(autolab(cell, "list", "--outcome", "failed", "--json").stdout)] == [cell["old"]]
    assert [r["id"] for r in json.loads(autolab(cell, "list", "--sample", "P1:A5", "--json").stdout)] == [cell["prep"]]
    assert [r["id"] for r in json.loads(autolab(cell, "list", "--protocol", "eli*", "--json").stdout)] == [cell["old"]]
    assert "no runs match" in autolab(cell, "list", "--sample", "P404").stdout


def test_bad_date_is_explained(cell):
    out = autolab(cell, "list", "--since", "last tuesday")
    assert out.returncode == 2 and "is not a time" in out.stderr


def test_show_gives_provenance_and_failed_commands_and_accepts_a_prefix(cell):
    out = autolab(cell, "show", cell["old"][:22])
    assert out.returncode == 0, out.stderr
    assert "outcome  failed: reader1: lamp failure" in out.stdout
    assert "reader1.read: error 7 lamp failure" in out.stdout
    assert "workcell  wc-1" in out.stdout
    shown = json.loads(autolab(cell, "show", cell["prep"], "--json").stdout)
    assert shown["counts"]["lineage"] == 14 and shown["artifacts"][0]["kind"] == "mcap"
    missing = autolab(cell, "show", "01HZZZZZZZZZZZZZZZZZZZZZZZ")
    assert missing.returncode == 1 and "no run with id" in missing.stderr


def test_lineage_shows_a_wells_history_back_to_the_stock(cell):
    out = autolab(cell, "lineage", "P1:A3")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "outside (untracked) -> RES1" in text  # the stock
    assert "RES1 -> P1:A1" in text and "P1:A1 -> P1:A2" in text and "P1:A2 -> P1:A3" in text
    assert "RES2 -> P1" in text  # buffer into every well
    assert "P1:A3 -> P1:A4" in text  # where it went next
    assert "sealer1.seal on P1" in text and "A3=0.5 AU" in text
    as_json = json.loads(autolab(cell, "lineage", "P1:A3", "--json").stdout)
    assert as_json["runs"] == [cell["prep"]] and as_json["well"] == "A3"
    none = autolab(cell, "lineage", "P404:A1")
    assert none.returncode == 1 and "no history recorded" in none.stdout


def test_export_writes_a_bundle_and_refuses_to_overwrite(cell):
    dest = cell["root"] / "bundle"
    out = autolab(cell, "export", cell["prep"], str(dest))
    assert out.returncode == 0, out.stderr
    assert (dest / "ro-crate-metadata.json").is_file() and "ro-crate-metadata.json" in out.stdout
    again = autolab(cell, "export", cell["prep"], str(dest))
    assert again.returncode == 1 and "already exists" in again.stderr
