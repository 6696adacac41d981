"""Nothing lost: the executive node is killed with SIGKILL in the middle of a run.

Whatever the executive announced before the kill (on its latched queue: the
run is past two steps and waiting) must be in the store afterwards: the run
(still open, so it is found as interrupted), its finished steps with their
outcomes, the device commands and its checkpoint; and the store must pass its
integrity check. Resuming the run is the executive's own test
(test_executive_node.py); this one checks the record.
"""

from __future__ import annotations

import importlib.util

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]

for _mod in ("autolab.nodes.executive", "autolab.nodes.instrument"):
    if importlib.util.find_spec(_mod) is None:
        pytest.skip(f"{_mod} does not exist in this build", allow_module_level=True)

PROTOCOL = """\
autolab_protocol: 1
name: long_run
steps:
  - instrument: {id: open_reader, device: reader1, operation: open_door}
  - instrument: {id: close_reader, device: reader1, operation: close_door}
  - wait: {id: idle, seconds: 600}
"""


@pytest.mark.timeout(150)
def test_a_run_acknowledged_before_an_executive_kill_9_is_all_in_the_store(start_node, client_node, tmp_path):
    from autolab.data.store import RunStore
    from autolab.nodes.qos import LATCHED
    from autolab.nodes.sync_client import SyncClient
    from autolab_interfaces.action import RunProtocol
    from autolab_interfaces.msg import QueueItem, QueueState

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    env = {"AUTOLAB_DATA_DIR": str(tmp_path)}
    start_node(
        "autolab.nodes.instrument",
        name="reader1",
        env=env,
        ros_args=["-r", "__node:=reader1", "-p", "time_scale:=20.0", "-p", f"store_url:={url}"],
    )
    executive = start_node(
        "autolab.nodes.executive", env=env, ros_args=["-p", f"store_url:={url}", "-p", "server_wait_s:=30.0"]
    )
    client = SyncClient(client_node, client_node.executor_for_test)
    client.send_goal(RunProtocol, "executive/run_protocol", RunProtocol.Goal(protocol_yaml=PROTOCOL), timeout=60.0)
    q = client.wait_message(
        QueueState,
        "executive/queue",
        LATCHED,
        60.0,
        lambda m: any(i.active_step.endswith("idle") and i.status == QueueItem.STATUS_RUNNING for i in m.items),
    )
    run_id = next(i.run_id for i in q.items if i.active_step.endswith("idle"))
    executive.kill()

    with RunStore.open(url) as store:
        assert store.integrity_check() == "ok"
        assert run_id in [r.id for r in store.interrupted_runs()]
        steps = {s.name: s.outcome for s in store.steps(run_id)}
        assert steps.get("open_reader") == "succeeded" and steps.get("close_reader") == "succeeded"
        assert [c.device for c in store.commands(run_id)].count("reader1") >= 2
        assert store.load_checkpoint(run_id) is not None
