"""Event documents: Bluesky-style order and schema, persisted before subscribers see them."""

from __future__ import annotations

import pytest

from autolab.data.documents import RunDocuments, data_key
from autolab.data.errors import DocumentError
from autolab.data.store import RunStore


@pytest.fixture
def store(tmp_path):
    s = RunStore.open(f"sqlite:///{tmp_path / 'runs.db'}")
    yield s
    s.close()


@pytest.fixture
def run_id(store):
    return store.create_run("plate_prep", "steps: []", {}, "alice", "wc")


def _read_stream(docs: RunDocuments) -> dict:
    return docs.descriptor(
        "reader1",
        {
            "absorbance": data_key("array", "reader1", "AU", [2, 3]),
            "temperature": data_key("number", "reader1", "degC"),
        },
        configuration={"reader1": {"wavelength_nm": 600}},
    )


def test_a_run_emits_start_descriptor_events_stop_in_order_and_all_are_stored(store, run_id):
    seen: list[tuple[str, dict]] = []
    docs = RunDocuments(run_id, store)
    docs.subscribe(lambda kind, doc: seen.append((kind, doc)))
    start = docs.start(protocol="plate_prep", operator="alice")
    desc = _read_stream(docs)
    docs.event(desc, {"absorbance": [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], "temperature": 25.1})
    docs.event("reader1", {"absorbance": [[0.2] * 3] * 2, "temperature": None})
    stop = docs.stop("success")

    assert [k for k, _ in seen] == ["start", "descriptor", "event", "event", "stop"]
    assert start["run_id"] == run_id and start["protocol"] == "plate_prep"
    assert desc["run_start"] == start["uid"]
    assert desc["data_keys"]["absorbance"] == {"dtype": "array", "shape": [2, 3], "source": "reader1", "units": "AU"}
    assert desc["configuration"]["reader1"]["data"] == {"wavelength_nm": 600}
    assert desc["object_keys"] == {"reader1": ["absorbance", "temperature"]}
    assert [d["seq_num"] for k, d in seen if k == "event"] == [1, 2]
    assert stop["num_events"] == {"reader1": 2} and stop["run_start"] == start["uid"]
    assert store.documents(run_id) == [d for _, d in seen]


def test_subscriber_sees_only_documents_already_in_the_store(store, run_id):
    counts = []
    docs = RunDocuments(run_id, store)
    docs.subscribe(lambda kind, doc: counts.append(store.run_counts(run_id)["documents"]))
    docs.start()
    docs.stop()
    assert counts == [1, 2]


def test_event_that_does_not_match_its_descriptor_is_refused(store, run_id):
    docs = RunDocuments(run_id, store)
    docs.start()
    desc = _read_stream(docs)
    with pytest.raises(DocumentError, match=r"missing: \['temperature'\]"):
        docs.event(desc, {"absorbance": [[0.0] * 3] * 2})
    with pytest.raises(DocumentError, match="'temperature' is str, but its descriptor says number"):
        docs.event(desc, {"absorbance": [[0.0] * 3] * 2, "temperature": "warm"})
    with pytest.raises(DocumentError, match="has not declared"):
        docs.event("camera", {"x": 1})
    assert store.run_counts(run_id)["documents"] == 2  # refused events left no trace


def test_documents_out_of_order_are_refused(store, run_id):
    docs = RunDocuments(run_id, store)
    with pytest.raises(DocumentError, match="before its start"):
        docs.descriptor("s", {"x": data_key("number", "dev")})
    docs.start()
    with pytest.raises(DocumentError, match="already has a start"):
        docs.start()
    with pytest.raises(DocumentError, match="dtype"):
        docs.descriptor("s", {"x": {"dtype": "float", "shape": [], "source": "dev"}})
    docs.stop("abort", "operator aborted")
    with pytest.raises(DocumentError, match="after its stop"):
        docs.descriptor("s", {"x": data_key("number", "dev")})
    fresh = RunDocuments(run_id)
    fresh.start()
    with pytest.raises(DocumentError, match="exit_status"):
        fresh.stop("maybe")


def test_a_restarted_producer_resumes_the_stream_where_the_store_left_it(store, run_id):
    docs = RunDocuments(run_id, store)
    docs.start()
    _read_stream(docs)
    for i in range(3):
        docs.event("reader1", {"absorbance": [[float(i)] * 3] * 2, "temperature": 25.0})
    resumed = RunDocuments.resume(run_id, store)
    nxt = resumed.event("reader1", {"absorbance": [[9.0] * 3] * 2, "temperature": 25.0})
    assert nxt["seq_num"] == 4
    assert resumed.stop("fail", "executive restarted")["num_events"] == {"reader1": 4}


def test_documents_without_a_store_still_reach_subscribers(run_id):
    seen = []
    docs = RunDocuments(run_id, subscribers=[lambda kind, doc: seen.append(kind)])
    docs.start()
    docs.stop()
    assert seen == ["start", "stop"]


def test_reading_declares_its_stream_on_first_use_with_types_shapes_and_units(store, run_id):
    docs = RunDocuments(run_id, store)
    docs.start()
    first = docs.reading("reader1", {"absorbance": [[0.1] * 12] * 8, "ok": True}, units={"absorbance": "AU"})
    docs.reading("reader1", {"absorbance": [[0.2] * 12] * 8, "ok": False})
    desc = store.documents(run_id)[1]
    assert desc["data_keys"]["absorbance"] == {"dtype": "array", "shape": [8, 12], "source": "reader1", "units": "AU"}
    assert desc["data_keys"]["ok"]["dtype"] == "boolean" and first["descriptor"] == desc["uid"]
    assert docs.stop()["num_events"] == {"reader1": 2}
