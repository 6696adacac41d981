"""The recorder node, as a real process over DDS: documents in and out, a run's topics into MCAP."""

from __future__ import annotations

import json
import time

import pytest

pytest.importorskip("autolab_interfaces.msg")

from sensor_msgs.msg import Image, JointState

from autolab.data.documents import RunDocuments, data_key
from autolab.data.store import RunStore
from autolab.nodes.qos import EVENTS, LATCHED, SENSOR, STREAM
from autolab_interfaces.msg import DeviceState, RunEvent
from support.ros import wait_for

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def cell(tmp_path_factory, start_node, client_node):
    root = tmp_path_factory.mktemp("recorder")
    url = f"sqlite:///{root / 'runs.db'}"
    store = RunStore.open(url)
    # Latched before the recorder starts: it must still appear at the start of the recording.
    arm_state = client_node.create_publisher(DeviceState, "/arm/state", LATCHED)
    arm_state.publish(DeviceState(device_id="arm", status_text="idle"))
    pubs = {
        "joints": client_node.create_publisher(JointState, "/joint_states", STREAM),
        "image": client_node.create_publisher(Image, "/camera/image_raw", SENSOR),
        "ingest": client_node.create_publisher(RunEvent, "/recorder/ingest", EVENTS),
        "arm": arm_state,
    }
    seen: list[RunEvent] = []
    seen_sub = client_node.create_subscription(RunEvent, "/recorder/documents", seen.append, EVENTS)
    proc = start_node(
        "autolab.nodes.recorder",
        ros_args=[
            "-p",
            f"store_url:={url}",
            "-p",
            f"data_dir:={root}",
            "-p",
            "discovery_period_s:=0.2",
            "-p",
            "rate_limits:=['/camera/image_raw:2.0']",
        ],
    )
    ex = client_node.executor_for_test

    def spin(dt: float) -> None:
        ex.spin_once(timeout_sec=dt)

    wait_for(
        lambda: (
            client_node.count_subscribers("/joint_states") > 0
            and client_node.count_subscribers("/camera/image_raw") > 0
            and client_node.count_subscribers("/arm/state") > 0
            # Documents go over volatile topics: the endpoints must have matched, not just be in the graph.
            and pubs["ingest"].get_subscription_count() > 0
            and seen_sub.get_publisher_count() > 0
        ),
        30,
        "the recorder to subscribe to the cell's topics",
        spin=spin,
    )
    yield {"store": store, "pubs": pubs, "seen": seen, "spin": spin, "proc": proc, "root": root}
    store.close()


def _publisher_docs(cell, run_id):
    """A document stream without store access: it publishes to /recorder/ingest."""

    def publish(kind, doc):
        msg = RunEvent(run_id=run_id, doc_type=kind, uid=doc["uid"], json=json.dumps(doc))
        cell["pubs"]["ingest"].publish(msg)

    return RunDocuments(run_id, subscribers=[publish])


@pytest.mark.timeout(90)
def test_a_run_is_recorded_to_mcap_with_rate_limited_images_and_latched_state(cell):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    store, pubs, spin = cell["store"], cell["pubs"], cell["spin"]
    run_id = store.create_run("plate_prep", "steps: []", {}, "alice", "wc")
    docs = _publisher_docs(cell, run_id)
    sent: list[str] = []
    docs.subscribe(lambda _kind, doc: sent.append(doc["uid"]))
    docs.start(protocol="plate_prep")
    desc = docs.descriptor("primary", {"temperature": data_key("number", "incubator1", "degC")})
    wait_for(
        lambda: any(e.doc_type == "start" and e.run_id == run_id for e in cell["seen"]),
        20,
        "the start document to come back on /recorder/documents",
        spin=spin,
    )
    # The start document comes back just before the recording opens: wait for its file.
    mcap_path = cell["root"] / "runs" / run_id / f"{run_id}.mcap"
    wait_for(mcap_path.is_file, 10, "the run's MCAP file to open", spin=spin)
    t0 = time.monotonic()
    n_joints = n_images = 0
    # At least 2 s, and until far more images went out than 2 Hz lets through (however slow this machine).
    while (elapsed := time.monotonic() - t0) < 2.0 or n_images <= 2.0 * elapsed + 10:
        assert elapsed < 60, "could not publish images fast enough to test the rate limit"
        pubs["joints"].publish(JointState(name=["j1"], position=[0.1 * n_joints]))
        pubs["image"].publish(Image(height=2, width=2, encoding="mono8", step=2, data=[1, 2, 3, 4]))
        n_joints += 1
        n_images += 1
        spin(0.02)
    docs.event(desc, {"temperature": 37.0})
    docs.stop("success")
    wait_for(
        lambda: any(a.kind == "mcap" for a in store.artifacts(run_id)),
        20,
        "the MCAP file to be closed and registered",
        spin=spin,
    )

    path = next(a.path for a in store.artifacts(run_id) if a.kind == "mcap")
    counts: dict[str, int] = {}
    image_times: list[int] = []
    joint_seq: list[int] = []  # which of the published joint states were recorded, in order
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        assert reader.get_header().profile == "ros2"
        for schema, channel, msg, decoded in reader.iter_decoded_messages():
            assert schema.encoding == "ros2msg" and channel.message_encoding == "cdr"
            counts[channel.topic] = counts.get(channel.topic, 0) + 1
            if channel.topic == "/camera/image_raw":
                image_times.append(msg.log_time)
            if channel.topic == "/joint_states":
                joint_seq.append(round(decoded.position[0] * 10))
            if channel.topic == "/arm/state":
                assert decoded.device_id == "arm"
    assert counts.get("/arm/state", 0) >= 1
    # In publishing order, none twice; a KEEP_LAST 10 queue may drop some under load.
    assert joint_seq == sorted(set(joint_seq)) and len(joint_seq) >= n_joints // 4, (n_joints, joint_seq)
    # At most 2 Hz by the recorder's own clock (its log times), however late images reached it.
    gaps = sorted(b - a for a, b in zip(image_times, image_times[1:], strict=False))
    assert 1 <= len(image_times) < n_images and (not gaps or gaps[0] >= 500_000_000), (len(image_times), gaps[:3])
    assert [d["uid"] for d in store.documents(run_id)] == sent and len(sent) == 4


@pytest.mark.timeout(60)
def test_documents_written_straight_to_the_store_are_streamed_on_ros(cell):
    store, spin = cell["store"], cell["spin"]
    run_id = store.create_run("elisa", "steps: []", {}, "bob", "wc")
    docs = RunDocuments(run_id, store)
    docs.start(protocol="elisa")
    docs.stop("abort", "operator aborted")
    wait_for(
        lambda: [e.doc_type for e in cell["seen"] if e.run_id == run_id] == ["start", "stop"],
        20,
        "both documents on /recorder/documents",
        spin=spin,
    )
    stop = next(e for e in cell["seen"] if e.run_id == run_id and e.doc_type == "stop")
    assert json.loads(stop.json)["reason"] == "operator aborted" and stop.uid == docs.stop_doc["uid"]


@pytest.mark.timeout(60)
def test_a_start_document_for_an_unknown_run_creates_the_run_and_bad_json_is_refused(cell):
    from autolab.data.ids import new_id

    store, spin, pubs = cell["store"], cell["spin"], cell["pubs"]
    pubs["ingest"].publish(RunEvent(run_id=new_id(), doc_type="event", uid="bad", json="{not json"))
    run_id = new_id()
    docs = _publisher_docs(cell, run_id)
    docs.start(protocol="remote_protocol", operator="carol")
    wait_for(lambda: any(e.run_id == run_id for e in cell["seen"]), 20, "the start document", spin=spin)
    run = store.get_run(run_id)
    assert (run.protocol_name, run.operator) == ("remote_protocol", "carol")
    assert "bad JSON" in cell["proc"].output()
    assert cell["proc"].alive()


@pytest.mark.timeout(90)
def test_documents_flow_on_sim_time_even_before_any_clock_is_published(cell, start_node, client_node):
    store, spin = cell["store"], cell["spin"]
    seen: list[RunEvent] = []
    sub = client_node.create_subscription(RunEvent, "/recorder_sim/documents", seen.append, EVENTS)
    start_node(
        "autolab.nodes.recorder",
        name="recorder_sim",
        ros_args=[
            "-r",
            "__node:=recorder_sim",
            "-p",
            "use_sim_time:=true",
            "-p",
            f"store_url:={store.url}",
            "-p",
            f"data_dir:={cell['root']}",
            "-p",
            "topics:=['/none']",
        ],
    )
    wait_for(
        lambda: client_node.count_publishers("/recorder_sim/documents") > 0, 30, "the sim-time recorder", spin=spin
    )
    # Seeing the publisher is not enough: the documents topic is volatile, so wait until the
    # recorder's side has matched this subscription too (discovery is slow on a loaded machine).
    wait_for(lambda: sub.get_publisher_count() > 0, 30, "the recorder to match this subscription", spin=spin)
    run_id = store.create_run("paused_sim", "steps: []", {}, "dave", "wc")
    docs = RunDocuments(run_id, store)
    docs.start()
    try:
        wait_for(lambda: any(e.run_id == run_id for e in seen), 10, "the start document", spin=spin)
    except TimeoutError:
        # The topic is volatile: the start document can go out before the recorder's writer has
        # matched this reader (discovery is not symmetric in time). The stop, emitted now, must flow too.
        docs.stop("success")
        wait_for(lambda: any(e.run_id == run_id for e in seen), 45,
                 f"a document of {run_id} with no /clock (received: "
                 f"{sorted({(e.run_id, e.doc_type) for e in seen})[:6]})", spin=spin)


@pytest.mark.timeout(90)
def test_on_a_shared_store_a_cell_recorder_follows_only_its_own_runs(cell, start_node, client_node, tmp_path):
    from autolab_interfaces.msg import QueueItem, QueueState

    store, spin = cell["store"], cell["spin"]
    seen: list[RunEvent] = []
    sub = client_node.create_subscription(RunEvent, "/recorder_cell/documents", seen.append, EVENTS)
    queue = client_node.create_publisher(QueueState, "/executive/queue", LATCHED)
    proc = start_node(
        "autolab.nodes.recorder",
        name="recorder_cell",
        ros_args=[
            "-r",
            "__node:=recorder_cell",
            "-p",
            "runs:=cell",
            "-p",
            f"store_url:={store.url}",
            "-p",
            f"data_dir:={tmp_path}",
            "-p",
            "topics:=['/joint_states']",
        ],
    )
    wait_for(
        lambda: client_node.count_publishers("/recorder_cell/documents") > 0 and queue.get_subscription_count() >= 2,
        30,
        "the cell recorder",
        spin=spin,
    )
    # The documents topic is volatile: the recorder's writer must have matched this reader too.
    wait_for(lambda: sub.get_publisher_count() > 0, 30, "the cell recorder to match this subscription", spin=spin)
    other_cell = store.create_run("elsewhere", "steps: []", {}, "erin", "wc-other")
    ours = store.create_run("here", "steps: []", {}, "erin", "wc")
    queue.publish(QueueState(items=[QueueItem(run_id=ours, status=QueueItem.STATUS_RUNNING)]))
    RunDocuments(other_cell, store).start()
    RunDocuments(ours, store).start()
    try:
        wait_for(lambda: any(e.run_id == ours for e in seen), 30, "our run's start document", spin=spin)
    except TimeoutError:
        print(proc.output()[-4000:])
        raise
    wait_for(lambda: (tmp_path / "runs" / ours / f"{ours}.mcap").is_file(), 10, "our run's MCAP file", spin=spin)
    spin(1.0)
    assert all(e.run_id != other_cell for e in seen)
    assert not (tmp_path / "runs" / other_cell).exists()


@pytest.mark.timeout(90)
def test_documents_ingested_while_the_store_is_locked_are_stored_once_it_frees(cell, start_node, client_node):
    import sqlite3

    store, spin = cell["store"], cell["spin"]
    seen: list[RunEvent] = []
    client_node.create_subscription(RunEvent, "/recorder_outage/documents", seen.append, EVENTS)
    ingest = client_node.create_publisher(RunEvent, "/recorder_outage/ingest", EVENTS)
    proc = start_node(
        "autolab.nodes.recorder",
        name="recorder_outage",
        ros_args=[
            "-r",
            "__node:=recorder_outage",
            "-p",
            f"store_url:={store.url}?timeout=0.2",
            "-p",
            f"data_dir:={cell['root']}",
            "-p",
            "topics:=['/none']",
        ],
    )
    wait_for(lambda: ingest.get_subscription_count() > 0, 30, "the recorder's ingest subscription", spin=spin)
    run_id = store.create_run("outage", "steps: []", {}, "frank", "wc")
    sent: list[str] = []

    def publish(kind: str, doc: dict) -> None:
        sent.append(doc["uid"])
        ingest.publish(RunEvent(run_id=run_id, doc_type=kind, uid=doc["uid"], json=json.dumps(doc)))

    blocker = sqlite3.connect(str(cell["root"] / "runs.db"), isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the database: every write times out
    try:
        docs = RunDocuments(run_id, subscribers=[publish])
        docs.start()
        docs.descriptor("incubator1", {"temperature": data_key("number", "incubator1", "degC")})
        for i in range(5):
            docs.event("incubator1", {"temperature": 37.0 + i / 10})
        docs.stop()
        wait_for(lambda: "store unreachable" in proc.output(), 20, "the recorder to notice the outage", spin=spin)
        assert not [e for e in seen if e.run_id == run_id]
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    wait_for(
        lambda: [e.uid for e in seen if e.run_id == run_id] == sent,
        30,
        "every document, in order, once the store is free",
        spin=spin,
    )
    assert [d["uid"] for d in store.documents(run_id)] == sent


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("param", "named"), [("queue_depth:=0", "queue_depth"), ("poll_period_s:=0.0", "poll_period_s")]
)
def test_bad_parameters_stop_the_recorder_at_start_with_a_sentence_naming_them(start_node, tmp_path, param, named):
    proc = start_node(
        "autolab.nodes.recorder",
        name=f"recorder_bad_{named}",
        ros_args=["-r", "__node:=recorder_bad", "-p", f"store_url:=sqlite:///{tmp_path / 'runs.db'}", "-p", param],
    )
    wait_for(lambda: not proc.alive(), 60.0, "the misconfigured recorder to exit")
    assert proc.proc.returncode == 1
    out = proc.output()
    assert "cannot start" in out and named in out, out[-2000:]
