"""The executive node over DDS, against real instrument nodes (sim backend) in their own processes.

Protocols here use door operations, operator checkpoints, waits and parallel
branches, which need no plate; the end-to-end tests with the arm and the
simulated cell are in test_executive_e2e.py.
"""

from __future__ import annotations

import json
import time

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]

DOORS = """\
autolab_protocol: 1
name: doors
steps:
  - instrument: {id: open_reader, device: reader1, operation: open_door}
  - checkpoint: {id: look, message: "Look into the reader, then acknowledge."}
  - parallel:
      id: both
      branches:
        - - instrument: {id: close_reader, device: reader1, operation: close_door}
        - - instrument: {id: open_sealer, device: sealer1, operation: open_door}
          - instrument: {id: close_sealer, device: sealer1, operation: close_door}
"""

LONG_WAIT = """\
autolab_protocol: 1
name: long_wait
steps:
  - instrument: {id: open_reader, device: reader1, operation: open_door}
  - wait: {id: idle, seconds: 600}
"""


@pytest.fixture(scope="module")
def cell(start_node, tmp_path_factory):
    from support.ros import wait_for

    data = tmp_path_factory.mktemp("executive_node")
    url = f"sqlite:///{data}/runs.db"
    env = {"AUTOLAB_DATA_DIR": str(data)}
    for dev in ("reader1", "sealer1"):
        start_node("autolab.nodes.instrument", name=dev, env=env,
                   ros_args=["-r", f"__node:={dev}", "-p", "time_scale:=20.0", "-p", f"store_url:={url}"])
    state = {"url": url, "env": env, "start": None}

    def start_executive():
        proc = start_node("autolab.nodes.executive", name="executive", env=env,
                          ros_args=["-p", f"store_url:={url}", "-p", "server_wait_s:=30.0"])
        state["proc"] = proc
        return proc

    state["start"] = start_executive
    proc = start_executive()
    wait_for(proc.alive, 5, "the executive process")
    return state


@pytest.fixture(scope="module")
def client(client_node):
    from autolab.nodes.sync_client import SyncClient

    return SyncClient(client_node, client_node.executor_for_test)


def goal_for(text: str, **kw):
    from diagnostic_msgs.msg import KeyValue

    from autolab_interfaces.action import RunProtocol

    params = kw.pop("params", {})
    return RunProtocol.Goal(protocol_yaml=text, parameters=[KeyValue(key=k, value=v) for k, v in params.items()],
                            **kw)


def ack(client, run_id: str = "", checkpoint: str = ""):
    from autolab_interfaces.srv import RunCommand

    return client.call(RunCommand, "executive/acknowledge",
                       RunCommand.Request(run_id=run_id, checkpoint=checkpoint, operator_name="tester"), 10.0)


def wait_queue(client, predicate, timeout: float = 30.0):
    from autolab.nodes.qos import LATCHED
    from autolab_interfaces.msg import QueueState

    return client.wait_message(QueueState, "executive/queue", LATCHED, timeout, predicate)


@pytest.mark.timeout(120)
def test_protocol_runs_with_feedback_waits_for_the_operator_and_is_recorded(cell, client):
    from autolab.data.store import RunStore
    from autolab.nodes.qos import LATCHED
    from autolab_interfaces.action import RunProtocol
    from autolab_interfaces.msg import QueueItem, TreeSnapshot

    feedback = []
    handle = client.send_goal(RunProtocol, "executive/run_protocol", goal_for(DOORS, operator_name="tester"),
                              timeout=30.0, feedback=feedback.append)
    q = wait_queue(client, lambda m: any(i.status == QueueItem.STATUS_WAITING_OPERATOR for i in m.items))
    item = next(i for i in q.items if i.status == QueueItem.STATUS_WAITING_OPERATOR)
    assert item.waiting[0].waiting_for == "operator:ack look"
    assert "Look into the reader" in item.waiting[0].message
    snap = client.wait_message(TreeSnapshot, "executive/tree", LATCHED, 10.0, lambda m: m.run_id == item.run_id)
    tree = json.loads(snap.tree_json)
    assert tree["name"] == "doors" and [c["name"] for c in tree["children"]] == ["open_reader", "look", "both"]
    res = ack(client, checkpoint="look")
    assert res.success, res.message
    _status, result = client.result(handle, 60.0)
    assert (result.outcome, result.error_code) == ("succeeded", RunProtocol.Result.NONE), result.error_msg
    assert result.run_id == item.run_id and result.run_id in result.data_uri
    assert any(f.state == "waiting_operator" for f in feedback)
    assert feedback[-1].progress > 0
    with RunStore.open(cell["url"]) as store:
        rec = store.get_run(result.run_id)
        assert rec.outcome == "succeeded" and rec.protocol_name == "doors"
        assert {s.name for s in store.steps(result.run_id)} >= {"open_reader", "close_reader", "close_sealer"}
        assert store.operator_actions(result.run_id)[0].action == "acknowledge"


@pytest.mark.timeout(60)
def test_invalid_protocol_is_refused_with_line_and_column(cell, client):
    from autolab_interfaces.action import RunProtocol

    bad = DOORS.replace("operation: open_door}", "operaton: open_door}", 1)
    _status, result = client.run_action(RunProtocol, "executive/run_protocol", goal_for(bad), 30.0)
    assert result.error_code == RunProtocol.Result.INVALID_PROTOCOL
    assert "<goal protocol_yaml>:4:" in result.error_msg and "operaton" in result.error_msg


@pytest.mark.timeout(60)
def test_operation_an_instrument_lacks_fails_preflight(cell, client):
    from autolab_interfaces.action import RunProtocol

    bad = DOORS.replace("device: reader1, operation: open_door", "device: reader1, operation: seal")
    _status, result = client.run_action(RunProtocol, "executive/run_protocol", goal_for(bad), 30.0)
    assert result.error_code == RunProtocol.Result.PREFLIGHT_FAILED
    assert "cannot 'seal'" in result.error_msg


@pytest.mark.timeout(60)
def test_parameter_out_of_range_is_refused(cell, client):
    from autolab_interfaces.action import RunProtocol

    text = DOORS.replace("name: doors\n", "name: doors\nparameters:\n  n: {type: integer, default: 1, maximum: 3}\n")
    _status, result = client.run_action(RunProtocol, "executive/run_protocol",
                                        goal_for(text, params={"n": "9"}), 30.0)
    assert result.error_code == RunProtocol.Result.INVALID_PARAMETERS and "above the maximum" in result.error_msg


@pytest.mark.timeout(90)
def test_canceling_the_goal_cancels_the_run(cell, client):
    from autolab_interfaces.action import RunProtocol
    from autolab_interfaces.msg import QueueItem

    handle = client.send_goal(RunProtocol, "executive/run_protocol", goal_for(LONG_WAIT), timeout=30.0)
    wait_queue(client, lambda m: any(i.active_step == "idle" and i.status == QueueItem.STATUS_RUNNING
                                     for i in m.items))
    client.cancel(handle)
    _status, result = client.result(handle, 30.0)
    assert result.outcome == "canceled" and result.error_code == RunProtocol.Result.CANCELED


@pytest.mark.timeout(150)
def test_killed_executive_resumes_the_interrupted_run_after_restart(cell, client):
    from autolab.data.store import RunStore
    from autolab_interfaces.action import RunProtocol
    from autolab_interfaces.msg import QueueItem

    client.send_goal(RunProtocol, "executive/run_protocol", goal_for(DOORS), timeout=30.0)
    q = wait_queue(client, lambda m: any(i.status == QueueItem.STATUS_WAITING_OPERATOR for i in m.items))
    run_id = next(i.run_id for i in q.items if i.status == QueueItem.STATUS_WAITING_OPERATOR)
    cell["proc"].kill()  # kill -9: no clean-up at all
    time.sleep(1.0)
    cell["start"]()
    q = wait_queue(client, lambda m: any(i.run_id == run_id and i.status == QueueItem.STATUS_WAITING_OPERATOR
                                         for i in m.items), timeout=60.0)
    res = ack(client, run_id=run_id)
    assert res.success, res.message
    # follow the resumed run through the action, by run id
    _status, result = client.run_action(RunProtocol, "executive/run_protocol", goal_for("", run_id=run_id), 60.0)
    assert result.outcome == "succeeded", result.error_msg
    with RunStore.open(cell["url"]) as store:
        names = [s.name for s in store.steps(run_id)]
        assert names.count("open_reader") == 1  # done before the crash, not repeated
        assert store.get_run(run_id).outcome == "succeeded"


@pytest.mark.timeout(150)
def test_cli_run_follows_the_run_queue_explains_the_wait_and_ack_releases_it(cell, client, tmp_path, domain_id):
    import os
    import subprocess
    import sys

    from autolab_interfaces.msg import QueueItem

    proto = tmp_path / "doors.yaml"
    proto.write_text(DOORS)
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")

    def autolab(*args: str, **kw) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "autolab.cli.main", *args], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)

    run = autolab("run", str(proto), "--operator", "tester")
    try:
        q = wait_queue(client, lambda m: any(i.status == QueueItem.STATUS_WAITING_OPERATOR and
                                             i.protocol_name == "doors" for i in m.items), timeout=60.0)
        run_id = next(i.run_id for i in q.items if i.status == QueueItem.STATUS_WAITING_OPERATOR)
        out, err = autolab("queue").communicate(timeout=60)
        assert run_id in out and "waiting_operator" in out and "waits: Look into the reader" in out, err
        out, err = autolab("ack", run_id[:10], "--checkpoint", "look", "--note", "seen").communicate(timeout=60)
        assert "run " + run_id in out, err
        stdout, stderr = run.communicate(timeout=90)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, stderr
    assert "doors: succeeded" in stdout and f"run id: {run_id}" in stdout and "data:" in stdout


@pytest.mark.timeout(120)
def test_submitted_run_can_be_paused_resumed_and_aborted_through_the_services(cell, client):
    from autolab_interfaces.msg import QueueItem
    from autolab_interfaces.srv import RunCommand, SubmitRun

    res = client.call(SubmitRun, "executive/submit", SubmitRun.Request(protocol_yaml=LONG_WAIT, priority=3), 20.0)
    assert res.success, res.message
    run_id = res.run_id

    def status_is(status):
        return lambda m: any(i.run_id == run_id and i.status == status for i in m.items)

    item = next(i for i in wait_queue(client, lambda m: any(
        i.run_id == run_id and i.active_step == "idle" for i in m.items)).items if i.run_id == run_id)
    assert item.priority == 3 and 0 < item.eta_s <= 600
    for service, status in (("pause", QueueItem.STATUS_PAUSED), ("resume", QueueItem.STATUS_RUNNING),
                            ("abort", QueueItem.STATUS_ABORTED)):
        reply = client.call(RunCommand, f"executive/{service}", RunCommand.Request(run_id=run_id, note="test"), 10.0)
        assert reply.success, reply.message
        wait_queue(client, status_is(status))
    again = client.call(RunCommand, "executive/resume", RunCommand.Request(run_id=run_id), 10.0)
    assert not again.success and "not paused" in again.message
    refused = client.call(SubmitRun, "executive/submit", SubmitRun.Request(protocol_yaml="name: x\n"), 10.0)
    assert not refused.success and refused.message.startswith("INVALID_PROTOCOL")
