"""Run bundles, on a realistic plate-preparation run recorded through the store's own API."""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path

import pytest

from autolab.data.documents import RunDocuments, data_key
from autolab.data.errors import ExportError
from autolab.data.export import export_run
from autolab.data.mcap_recorder import McapRunRecorder
from autolab.data.store import RunStore

ROWS = "ABCDEFGH"


def record_plate_prep(store: RunStore, tmp: Path, plate: str = "P1") -> str:
    """A plate preparation as the executive and instruments record it: a 1:2 dilution series
    of a dye across row A, buffer to every well, a seal, an absorbance read, and an MCAP file."""
    run_id = store.create_run("plate_prep", "version: 1\nname: plate_prep\n", {"dye_ul": 100}, "alice", "wc-1")
    docs = RunDocuments(run_id, store)
    docs.start(protocol="plate_prep", operator="alice", sample=plate)
    stream = docs.descriptor(
        "reader1",
        {"absorbance": data_key("array", "reader1", "AU", [8, 12])},
        configuration={"reader1": {"wavelength_nm": 600}},
    )
    t = time.time()
    step = store.add_step(run_id, "move plate to liquid handler", "transfer")
    store.record_command(
        run_id,
        "arm",
        "transfer",
        {"from": "hotel1.s1", "to": "liquid_handler1.nest"},
        {"duration_s": 5.1},
        0,
        t,
        t + 5.1,
        step_id=step,
        labware=plate,
    )
    store.finish_step(step, "succeeded")
    step = store.add_step(run_id, "dilution series", "dispense")
    store.record_lineage(run_id, "RES1", None, None, None, "dye 1 mM", 5000, step_id=step, at=t + 6)
    store.record_lineage(run_id, plate, "A1", "RES1", None, "dye 1 mM", 200, step_id=step, at=t + 7)
    for col in range(2, 13):
        store.record_lineage(
            run_id, plate, f"A{col}", plate, f"A{col - 1}", f"dye 1:{2 ** (col - 1)}", 100, step_id=step, at=t + 7 + col
        )
    store.record_lineage(run_id, plate, None, "RES2", None, "buffer", 100, step_id=step, at=t + 20)
    store.finish_step(step, "succeeded")
    store.record_command(run_id, "sealer1", "seal", {"temperature_c": 170}, {}, 0, t + 30, t + 35, labware=plate)
    grid = [[round(2.0 / 2**c, 4) if r == 0 else 0.04 for c in range(12)] for r in range(8)]
    rec = store.add_measurement(
        run_id, "reader1", "absorbance", {"values": grid}, "AU", labware=plate, metadata={"wavelength_nm": 600}
    )
    docs.event(stream, {"absorbance": grid})
    store.add_measurement(run_id, "incubator1", "temperature", 37.02, "degC")
    store.record_operator_action(run_id, "alice", "acknowledge", {"checkpoint": "seal looks good"})

    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import JointState

    mcap = McapRunRecorder(tmp / "runs" / run_id / f"{run_id}.mcap", run_id)
    mcap.add_channel("/joint_states", "sensor_msgs/msg/JointState")
    for i in range(10):
        mcap.write("/joint_states", serialize_message(JointState(name=["j1"], position=[i * 0.1])))
    mcap.close()
    store.add_artifact(run_id, "mcap", mcap.path, "application/x-mcap")
    docs.stop("success")
    store.finish_run(run_id, "succeeded")
    assert rec
    return run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = RunStore.open(f"sqlite:///{tmp_path_factory.mktemp('export') / 'runs.db'}")
    yield s
    s.close()


@pytest.fixture(scope="module")
def prep_run(store, tmp_path_factory):
    return record_plate_prep(store, tmp_path_factory.mktemp("prep"))


def test_bundle_describes_every_file_in_ro_crate_json_ld(store, prep_run, tmp_path):
    run_id = prep_run
    bundle = export_run(store, run_id, tmp_path / "bundle")
    crate = json.loads((bundle.path / "ro-crate-metadata.json").read_text())
    assert crate["@context"] == "https://w3id.org/ro/crate/1.1/context"
    graph = {e["@id"]: e for e in crate["@graph"]}
    assert graph["ro-crate-metadata.json"]["conformsTo"]["@id"] == "https://w3id.org/ro/crate/1.1"
    on_disk = sorted(p.relative_to(bundle.path).as_posix() for p in bundle.path.rglob("*") if p.is_file())
    assert sorted(bundle.files) == on_disk
    parts = {p["@id"] for p in graph["./"]["hasPart"]}
    assert parts == set(on_disk) - {"ro-crate-metadata.json"}
    for name in parts:
        assert graph[name]["@type"] == "File" and graph[name]["encodingFormat"] and graph[name]["description"]
    action = graph[f"#run-{run_id}"]
    assert action["@type"] == "CreateAction" and action["agent"]["@id"] == "#operator-alice"
    assert action["actionStatus"]["@id"].endswith("CompletedActionStatus")
    assert {"recordings/" + f"{run_id}.mcap", "documents.jsonl", "tables/plate_wells.parquet"} <= parts


def test_bundle_holds_documents_tables_plot_and_recording(store, prep_run, tmp_path):
    import pyarrow.parquet as pq
    from mcap.reader import make_reader

    run_id = prep_run
    root = export_run(store, run_id, tmp_path / "bundle").path
    docs = [json.loads(line) for line in (root / "documents.jsonl").read_text().splitlines()]
    assert [d.get("exit_status") for d in docs][-1] == "success" and len(docs) == 4

    wells = list(csv.DictReader((root / "tables" / "plate_wells.csv").read_text().splitlines()))
    assert len(wells) == 96
    a3 = next(w for w in wells if w["well"] == "A3")
    assert math.isclose(float(a3["value"]), 0.5) and a3["units"] == "AU" and a3["labware"] == "P1"
    table = pq.read_table(root / "tables" / "plate_wells.parquet")
    assert table.num_rows == 96 and table.column("value").to_pylist()[2] == 0.5
    lineage = pq.read_table(root / "tables" / "lineage.parquet").to_pylist()
    assert len(lineage) == 14 and {r["material"] for r in lineage} >= {"dye 1 mM", "buffer"}
    assert len(list(csv.DictReader((root / "tables" / "commands.csv").read_text().splitlines()))) == 2

    plots = list((root / "plots").glob("*.png"))
    assert len(plots) == 1 and plots[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(root / "recordings" / f"{run_id}.mcap", "rb") as f:
        assert sum(1 for _ in make_reader(f).iter_messages()) == 10
    run = json.loads((root / "run.json").read_text())
    assert run["outcome"] == "succeeded" and run["workcell_hash"] == "wc-1" and run["counts"]["lineage"] == 14


def test_export_never_overwrites_or_leaves_half_a_bundle(store, tmp_path):
    run_id = record_plate_prep(store, tmp_path)
    dest = tmp_path / "bundle"
    dest.mkdir()
    with pytest.raises(ExportError, match="already exists"):
        export_run(store, run_id, dest)
    for art in store.artifacts(run_id):
        Path(art.path).unlink()  # the recording went missing
    with pytest.raises(ExportError, match="recording .* is missing"):
        export_run(store, run_id, dest, overwrite=True)
    assert list(dest.iterdir()) == []  # the old folder is untouched
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".bundle")] == []
