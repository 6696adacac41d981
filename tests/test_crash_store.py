"""Nothing lost: a process writing a run through the store is killed with SIGKILL mid-stream.

The writer acknowledges each event on stdout only after the store call
returned. Every acknowledged event must be in the store afterwards, the
database must pass SQLite's integrity check, and the run must show up as
interrupted (so the executive can resume or fail it), not vanish.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from autolab.data.store import RunStore

WRITER = r"""
import sys, threading
from autolab.data.documents import RunDocuments, data_key
from autolab.data.store import RunStore

store = RunStore.open(sys.argv[1])
run_id = store.create_run("plate_prep", "steps: []", {}, "crash-test", "wc")
docs = RunDocuments(run_id, store)
docs.start(protocol="plate_prep")
docs.descriptor("reader1", {"od": data_key("number", "reader1", "AU")})
print("run", run_id, flush=True)
lock = threading.Lock()

def writer(n):
    i = 0
    while True:
        i += 1
        ev = docs.event("reader1", {"od": n + i / 1000})
        rec = store.add_measurement(run_id, "reader1", "od", n + i / 1000, "AU")
        store.save_checkpoint(run_id, {"writer": n, "i": i})
        with lock:
            print("ack", ev["uid"], rec, flush=True)

for n in range(3):
    threading.Thread(target=writer, args=(n,), daemon=True).start()
threading.Event().wait()
"""


def _start_writer(url: str) -> tuple[subprocess.Popen, list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []

    def pump() -> None:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return proc, lines


@pytest.mark.timeout(120)
@pytest.mark.parametrize("acks_before_kill", [1, 40, 150])
def test_every_acknowledged_write_survives_kill_9(tmp_path, acks_before_kill):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    RunStore.open(url).close()  # migrated up front, so the kill lands in the write loop
    proc, lines = _start_writer(url)
    deadline = time.monotonic() + 60
    while sum(1 for x in lines if x.startswith("ack")) < acks_before_kill:
        assert proc.poll() is None, f"writer died: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "the writer did not acknowledge writes in time"
        time.sleep(0.002)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    time.sleep(0.2)  # let the reader thread drain the pipe
    run_id = next(x.split()[1] for x in lines if x.startswith("run"))
    acked = [x.split()[1:] for x in lines if x.startswith("ack")]
    assert len(acked) >= acks_before_kill

    store = RunStore.open(url)
    try:
        assert store.integrity_check() == "ok"
        stored_docs = {d["uid"] for d in store.documents(run_id)}
        stored_recs = {m.id for m in store.measurements(run_id)}
        lost_docs = [uid for uid, _ in acked if uid not in stored_docs]
        lost_recs = [rec for _, rec in acked if rec not in stored_recs]
        assert not lost_docs and not lost_recs, f"lost {len(lost_docs)} documents, {len(lost_recs)} records"
        assert [r.id for r in store.interrupted_runs()] == [run_id]
        assert store.load_checkpoint(run_id) is not None
        # The store takes writes again at once: the killed writer left no lock behind.
        store.finish_run(run_id, "failed", "writer killed")
    finally:
        store.close()
