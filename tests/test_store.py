"""The run store's contract, against a real SQLite file (and PostgreSQL: test_postgres_store.py).

The tests take a `store` fixture; test_postgres_store.py imports them and
provides a store on a throwaway PostgreSQL server, so both back ends meet the
same specification.
"""

from __future__ import annotations

import threading
import time

import pytest

from autolab.data.errors import InvalidRecord, RunFinished, StoreError, UnknownRun
from autolab.data.ids import is_id
from autolab.data.store import RunStore, default_url, git_sha, text_hash


@pytest.fixture
def store(tmp_path):
    s = RunStore.open(f"sqlite:///{tmp_path / 'runs.db'}")
    yield s
    s.close()


PROTOCOL = "version: 1\nname: plate_prep\nsteps:\n  - transfer: {labware: P1, to: reader1}\n"


def _run(store, name: str = "plate_prep", **kw) -> str:
    return store.create_run(name, PROTOCOL, {"volume_ul": 50}, "alice", "wc-hash-1", **kw)


def test_new_run_records_protocol_software_and_workcell_provenance(store):
    run_id = _run(store)
    run = store.get_run(run_id)
    assert is_id(run_id)
    assert run.protocol_name == "plate_prep"
    assert run.protocol_text == PROTOCOL and run.protocol_hash == text_hash(PROTOCOL)
    assert run.parameters == {"volume_ul": 50}
    assert run.operator == "alice" and run.workcell_hash == "wc-hash-1"
    assert run.software_version and run.git_sha == git_sha()
    assert run.outcome == "running" and run.ended_at is None and not run.finished


def test_run_ids_sort_in_creation_order(store):
    ids = [_run(store) for _ in range(5)]
    assert ids == sorted(ids)
    assert [r.id for r in store.list_runs()] == ids[::-1]


def test_finished_run_keeps_its_first_outcome(store):
    run_id = _run(store)
    store.finish_run(run_id, "failed", "gripper lost plate P1")
    with pytest.raises(RunFinished, match="already finished"):
        store.finish_run(run_id, "succeeded")
    run = store.get_run(run_id)
    assert (run.outcome, run.error) == ("failed", "gripper lost plate P1")
    assert run.duration_s is not None and run.duration_s >= 0


def test_unknown_outcome_and_unknown_run_are_refused_by_name(store):
    run_id = _run(store)
    with pytest.raises(InvalidRecord, match="outcome must be one of"):
        store.finish_run(run_id, "done")
    with pytest.raises(UnknownRun, match="01HZZZZZZZZZZZZZZZZZZZZZZZ"):
        store.add_measurement("01HZZZZZZZZZZZZZZZZZZZZZZZ", "reader1", "absorbance", [1.0], "AU")
    with pytest.raises(UnknownRun):
        store.get_run("01HZZZZZZZZZZZZZZZZZZZZZZZ")


def test_measurement_round_trips_with_units_step_and_labware(store):
    run_id = _run(store)
    step = store.add_step(run_id, "read plate", "instrument")
    grid = [[0.1 * c + r for c in range(12)] for r in range(8)]
    rec = store.add_measurement(
        run_id,
        "reader1",
        "absorbance",
        {"values": grid},
        "AU",
        step_id=step,
        labware="P1",
        metadata={"wavelength_nm": 600},
    )
    m = store.get_measurement(rec)
    assert m.data == {"values": grid} and m.units == "AU" and m.step_id == step
    assert m.labware == "P1" and m.metadata == {"wavelength_nm": 600}
    assert [x.id for x in store.measurements(run_id)] == [rec]


def test_measurement_with_nan_is_refused_and_says_where(store):
    run_id = _run(store)
    with pytest.raises(InvalidRecord, match=r"data\.wells\.A1 contains nan"):
        store.add_measurement(run_id, "reader1", "absorbance", {"wells": {"A1": float("nan")}}, "AU")
    with pytest.raises(InvalidRecord, match="units must be a string"):
        store.add_measurement(run_id, "reader1", "absorbance", 1.0, None)


def test_numpy_data_is_stored_as_plain_json(store):
    np = pytest.importorskip("numpy")
    run_id = _run(store)
    rec = store.add_measurement(run_id, "reader1", "absorbance", {"values": np.ones((2, 3))}, "AU")
    assert store.get_measurement(rec).data == {"values": [[1.0] * 3] * 2}


def test_commands_steps_and_operator_actions_are_recorded(store):
    run_id = _run(store)
    step = store.add_step(run_id, "move P1 to reader", "transfer", step_key="steps[0]")
    t0 = time.time()
    cmd = store.record_command(
        run_id,
        "arm",
        "transfer",
        {"from": "hotel1.s1", "to": "reader1.nest"},
        {"duration_s": 4.2},
        0,
        t0,
        t0 + 4.2,
        step_id=step,
        labware="P1",
    )
    store.record_command(run_id, "reader1", "read", {}, {}, 3, t0 + 5, t0 + 6, error_msg="door jammed")
    store.finish_step(step, "succeeded")
    act = store.record_operator_action(run_id, "bob", "acknowledge", {"checkpoint": "check seal"})
    cmds = store.commands(run_id)
    assert [c.id for c in cmds][0] == cmd and cmds[0].params["to"] == "reader1.nest"
    assert cmds[1].error_code == 3 and cmds[1].error_msg == "door jammed"
    steps = store.steps(run_id)
    assert steps[0].outcome == "succeeded" and steps[0].step_key == "steps[0]" and steps[0].ended_at
    assert store.operator_actions(run_id)[0].id == act
    assert store.run_counts(run_id)["commands"] == 2


def test_lineage_follows_a_dilution_series_back_to_its_stock_and_forward(store):
    run_a = _run(store)
    run_b = _run(store)
    t = time.time()
    store.record_lineage(run_a, "RES1", None, None, None, "dye stock 1 mM", 10000, at=t)
    store.record_lineage(run_a, "P1", "A1", "RES1", None, "dye stock 1 mM", 100, at=t + 1)
    store.record_lineage(run_a, "P1", None, None, None, "buffer", 50, at=t + 2)  # every well of P1
    store.record_lineage(run_b, "P2", "A1", "P1", "A1", "dye 1:2", 20, at=t + 3)
    store.record_lineage(run_b, "P3", "B4", "P2", "A1", "dye 1:4", 5, at=t + 4)
    store.record_lineage(run_b, "P2", "A2", "P1", "A2", "other sample", 20, at=t + 5)
    store.add_measurement(run_b, "reader1", "absorbance", {"wells": {"A1": 0.42}}, "AU", labware="P2")

    report = store.lineage("P2:a1")
    anc = [(e.depth, e.record.source_labware, e.record.material) for e in report.entries if e.direction == "ancestor"]
    assert anc == [
        (2, None, "dye stock 1 mM"),
        (1, "RES1", "dye stock 1 mM"),
        (1, None, "buffer"),
        (0, "P1", "dye 1:2"),
    ]
    des = [(e.depth, e.record.dest_labware, e.record.dest_well) for e in report.entries if e.direction == "descendant"]
    assert des == [(0, "P3", "B4")]
    assert set(report.run_ids) == {run_a, run_b}
    assert [m.labware for m in report.measurements] == ["P2"]
    assert "A1=0.42 AU" in "\n".join(text for _, _, text in report.timeline())
    # P2:A2 came from another well: none of the dye chain is in its history.
    assert all(e.record.material != "dye stock 1 mM" for e in store.lineage("P2:A2").entries)


def test_lineage_refuses_bad_volume_and_empty_sample(store):
    run_id = _run(store)
    with pytest.raises(InvalidRecord, match="volume_ul"):
        store.record_lineage(run_id, "P1", "A1", None, None, "water", -5)
    with pytest.raises(InvalidRecord, match="sample"):
        store.lineage(" ")


def test_checkpoints_replace_each_other_and_interrupted_runs_are_found(store):
    done = _run(store)
    store.finish_run(done, "succeeded")
    live = _run(store)
    adhoc = store.ensure_adhoc_run("reader1")
    assert store.ensure_adhoc_run("reader1") == adhoc
    assert store.load_checkpoint(live) is None
    assert store.save_checkpoint(live, {"next_step": 3, "labware": {"P1": "reader1.nest"}}) == 1
    assert store.save_checkpoint(live, {"next_step": 4, "labware": {"P1": "hotel1.s1"}}) == 2
    assert store.load_checkpoint(live) == {"next_step": 4, "labware": {"P1": "hotel1.s1"}}
    assert [r.id for r in store.interrupted_runs()] == [live]


def test_list_runs_filters_by_time_protocol_outcome_and_sample(store):
    t = time.time()
    old = _run(store, "plate_prep", started_at=t - 86400)
    new = _run(store, "elisa", started_at=t)
    store.finish_run(old, "succeeded")
    store.record_command(new, "arm", "transfer", {}, {}, 0, t, t, labware="P9")
    assert [r.id for r in store.list_runs(since=t - 3600)] == [new]
    assert [r.id for r in store.list_runs(until=t - 3600)] == [old]
    assert [r.id for r in store.list_runs(protocol="plate*")] == [old]
    assert [r.id for r in store.list_runs(outcome="running")] == [new]
    assert [r.id for r in store.list_runs(sample="P9")] == [new]
    assert store.list_runs(sample="P8") == []


def test_documents_are_idempotent_on_uid_and_can_be_tailed(store):
    run_id = _run(store)
    first = store.add_document(run_id, "start", {"uid": "s-1", "time": 1.0, "run_id": run_id})
    again = store.add_document(run_id, "start", {"uid": "s-1", "time": 1.0, "run_id": run_id})
    second = store.add_document(run_id, "stop", {"uid": "x-1", "time": 2.0, "exit_status": "success"})
    assert first is not None and again is None and second > first
    assert [d.uid for d in store.documents_after(0)] == ["s-1", "x-1"]
    assert [d.uid for d in store.documents_after(first)] == ["x-1"]
    assert store.last_document_seq() == second


def test_concurrent_writer_threads_lose_nothing(store):
    run_id = _run(store)
    errors: list[Exception] = []

    def writer(n: int) -> None:
        try:
            for i in range(25):
                store.add_measurement(run_id, f"dev{n}", "temperature", 20.0 + i, "degC")
                store.save_checkpoint(run_id, {"writer": n, "i": i})
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not errors
    assert store.run_counts(run_id)["measurements"] == 150
    assert store.integrity_check() == "ok"


def test_store_reopens_without_migrating_again_and_matches_the_models(store):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from autolab.data.schema import metadata

    run_id = _run(store)
    again = RunStore.open(store.url)
    assert again.get_run(run_id).id == run_id
    with again.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    again.close()


def test_default_store_lives_in_the_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTOLAB_DATA_DIR", str(tmp_path / "data"))
    assert default_url() == f"sqlite:///{tmp_path / 'data' / 'autolab.db'}"
    with RunStore.open() as s:
        assert s.integrity_check() == "ok"
    assert (tmp_path / "data" / "autolab.db").is_file()


def test_unusable_urls_give_errors_that_name_them(tmp_path):
    with pytest.raises(StoreError, match="in-memory"):
        RunStore.open("sqlite://")
    with pytest.raises(StoreError, match="not a database URL"):
        RunStore.open("not a url")
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="folder"):
        RunStore.open(f"sqlite:///{tmp_path / 'file' / 'sub' / 'x.db'}")


def test_a_plate_dispense_is_recorded_in_one_transaction_or_not_at_all(store):
    run_id = _run(store)
    wells = [f"{r}{c}" for r in "ABCDEFGH" for c in range(1, 13)]
    ids = store.record_lineage_many(
        run_id,
        [
            {
                "dest_labware": "P1",
                "dest_well": w,
                "source_labware": "RES1",
                "source_well": None,
                "material": "buffer",
                "volume_ul": 100,
            }
            for w in wells
        ],
    )
    assert len(ids) == 96 == len(store.lineage_records(run_id))
    bad = [
        {
            "dest_labware": "P2",
            "dest_well": "A1",
            "source_labware": None,
            "source_well": None,
            "material": "buffer",
            "volume_ul": 50,
        },
        {
            "dest_labware": "P2",
            "dest_well": "A2",
            "source_labware": None,
            "source_well": None,
            "material": "buffer",
            "volume_ul": float("inf"),
        },
    ]
    with pytest.raises(InvalidRecord, match="transfer 1: volume_ul"):
        store.record_lineage_many(run_id, bad)
    assert store.lineage("P2").empty


def test_processes_creating_the_same_new_store_at_once_all_succeed(tmp_path):
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    code = (
        "import sys; from autolab.data.store import RunStore; s = RunStore.open(sys.argv[1]); "
        "print(s.create_run('p', '', {}, '', ''))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=90) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    with RunStore.open(url) as s:
        assert {r.id for r in s.list_runs()} == {out.strip() for out, _ in outs}


def test_names_longer_than_their_column_are_refused_on_every_database(store):
    run_id = _run(store)
    with pytest.raises(InvalidRecord, match="commands.device is 150 characters long; at most 100 fit"):
        store.record_command(run_id, "d" * 150, "move", {}, {}, 0, 0.0, 1.0)
