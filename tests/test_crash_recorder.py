"""Nothing lost: the recorder node is killed with SIGKILL while documents stream through it.

A document the recorder echoed on /recorder/documents was stored before the
echo (the node publishes only what it read back from the store), so every
echoed document must be in the store after the kill; the store must pass its
integrity check and a restarted recorder must carry on.
"""

from __future__ import annotations

import json
import time

import pytest

pytest.importorskip("autolab_interfaces.msg")

from autolab.data.documents import RunDocuments, data_key
from autolab.data.store import RunStore
from autolab.nodes.qos import EVENTS
from autolab_interfaces.msg import RunEvent
from support.ros import wait_for

pytestmark = pytest.mark.ros


@pytest.mark.timeout(150)
def test_every_document_echoed_before_a_kill_9_is_in_the_store(tmp_path, start_node, client_node):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    store = RunStore.open(url)
    run_id = store.create_run("plate_prep", "steps: []", {}, "crash-test", "wc")
    ingest = client_node.create_publisher(RunEvent, "/recorder/ingest", EVENTS)
    echoed: list[RunEvent] = []
    client_node.create_subscription(RunEvent, "/recorder/documents", echoed.append, EVENTS)
    ex = client_node.executor_for_test

    def spin(dt: float) -> None:
        ex.spin_once(timeout_sec=dt)

    args = ["-p", f"store_url:={url}", "-p", f"data_dir:={tmp_path}", "-p", "topics:=['/none']"]
    recorder = start_node("autolab.nodes.recorder", ros_args=args, name="recorder-1")
    wait_for(lambda: ingest.get_subscription_count() > 0, 30, "the recorder to subscribe to ingest", spin=spin)

    def send(kind: str, doc: dict) -> None:
        ingest.publish(RunEvent(run_id=run_id, doc_type=kind, uid=doc["uid"], json=json.dumps(doc)))

    docs = RunDocuments(run_id, subscribers=[send])
    docs.start(protocol="plate_prep")
    docs.descriptor("incubator1", {"temperature": data_key("number", "incubator1", "degC")})
    sent = 0
    deadline = time.monotonic() + 60
    while len(echoed) < 60:  # stream until a good number is acknowledged, then kill mid-stream
        assert time.monotonic() < deadline, f"only {len(echoed)} documents echoed:\n{recorder.output()[-2000:]}"
        docs.event("incubator1", {"temperature": 37.0 + sent / 1000})
        sent += 1
        spin(0.005)
    recorder.kill()
    spin(0.3)  # echoes already on the wire are acknowledgements too
    acknowledged = {e.uid for e in echoed if e.run_id == run_id}
    assert sent > 0 and acknowledged

    stored = {d["uid"] for d in store.documents(run_id)}
    missing = acknowledged - stored
    assert not missing, f"{len(missing)} acknowledged documents lost"
    assert store.integrity_check() == "ok"

    # A new recorder opens the same store and streams new documents at once.
    echoed.clear()
    start_node("autolab.nodes.recorder", ros_args=args, name="recorder-2")
    last = docs.stop("fail", "recorder crash test")
    deadline = time.monotonic() + 30
    while not any(e.uid == last["uid"] for e in echoed):  # resending is safe: storing is idempotent by uid
        assert time.monotonic() < deadline, "the restarted recorder never stored the stop document"
        send("stop", last)
        spin(0.5)
    assert last["uid"] in {d["uid"] for d in store.documents(run_id)}
    store.close()
