"""`autolab launch launch/sim.launch.yaml`: the cell as separate processes, checked over DDS.

One launch for the module, on the module's own ROS_DOMAIN_ID. Nodes whose
modules have not landed in this build are left out by the launcher (it says
so); the tests check every node that was started. The last test kills the
required safety node and checks that the whole launch goes down.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from autolab.cli.demo import default_protocol
from autolab.launcher.executables import entry_point, module_available
from autolab.launcher.loader import load_launch_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from support.ros import ros_env, wait_for

pytestmark = [pytest.mark.ros, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[1]
SIM_LAUNCH = REPO / "launch" / "sim.launch.yaml"


def _available(spec) -> bool:
    target = entry_point(spec.package, spec.executable)
    return target is not None and module_available(target.partition(":")[0])


class Launched:
    """The `autolab launch` process and what it has printed."""

    def __init__(self, proc: subprocess.Popen, out: Path, expected: set[str]) -> None:
        self.proc = proc
        self.out = out
        self.expected = expected

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def pids(self, label: str) -> list[int]:
        return [int(p) for p in re.findall(rf"started {re.escape(label)} \[pid (\d+)\]", self.output())]


@pytest.fixture(scope="module")
def cell(domain_id: int, tmp_path_factory: pytest.TempPathFactory):
    logs = tmp_path_factory.mktemp("sim-launch")
    sim_time = "true" if module_available("autolab.nodes.sim") else "false"
    plan = load_launch_file(SIM_LAUNCH, {"use_sim_time": sim_time})
    expected = {n.fully_qualified_name for n in plan.nodes if _available(n)}
    out = logs / "launch.out"
    # Simulation at 4x real time (as fast as possible outruns the arm's closed-loop sensing on 2 cores),
    # instruments 20x.
    launch_args = [f"use_sim_time:={sim_time}", "real_time_factor:=4.0", "instrument_time_scale:=20.0",
                   "resume_interrupted:=false"]
    env = ros_env(domain_id, AUTOLAB_DATA_DIR=str(logs / "data"))
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "autolab.cli.main", "launch", str(SIM_LAUNCH), *launch_args,
             "--log-dir", str(logs)],
            env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=str(REPO), start_new_session=True)
    launched = Launched(proc, out, expected)
    yield launched
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
            sys.stderr.write(f"autolab launch did not stop on SIGINT; output:\n{launched.output()[-3000:]}\n")


def _node_names(client_node) -> set[str]:
    return {f"{ns.rstrip('/')}/{n}" for n, ns in client_node.get_node_names_and_namespaces()}


def test_sim_launch_brings_up_each_available_node_in_its_own_process(cell, client_node):
    from autolab.nodes.sync_client import SyncClient

    sync = SyncClient(client_node, client_node.executor_for_test)
    assert "/safety" in cell.expected
    try:
        sync.spin_until(lambda: cell.expected <= _node_names(client_node), 60, "the cell's nodes")
    except TimeoutError:
        pytest.fail(f"missing nodes {sorted(cell.expected - _node_names(client_node))}; "
                    f"launch output:\n{cell.output()[-3000:]}")
    pids = [cell.pids(name.lstrip("/"))[0] for name in cell.expected]
    assert len(set(pids)) == len(pids), "each node runs in its own process"
    assert cell.proc.poll() is None


def test_latched_safety_state_reaches_a_late_subscriber(cell, client_node):
    from autolab.nodes.qos import LATCHED
    from autolab.nodes.sync_client import SyncClient
    from autolab_interfaces.msg import SafetyState

    sync = SyncClient(client_node, client_node.executor_for_test)
    state = sync.wait_message(SafetyState, "safety/state", LATCHED, timeout=30)
    assert state.motion_allowed and not state.estop_latched


def test_killed_device_node_is_respawned_and_serves_again(cell, client_node):
    if "/reader1" not in cell.expected:
        pytest.skip("the instrument node (autolab.nodes.instrument) is not in this build")
    from autolab.nodes.qos import LATCHED
    from autolab.nodes.sync_client import SyncClient
    from autolab_interfaces.msg import DeviceState

    sync = SyncClient(client_node, client_node.executor_for_test)
    wait_for(lambda: cell.pids("reader1"), 30, "reader1 to start")
    first = cell.pids("reader1")[0]
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: len(cell.pids("reader1")) >= 2, 15, "reader1 to be respawned")
    second = cell.pids("reader1")[1]
    assert second != first
    assert "reader1" in cell.output() and "was killed by SIGKILL" in cell.output()
    state = sync.wait_message(DeviceState, "reader1/state", LATCHED, timeout=40)
    assert state is not None
    assert cell.proc.poll() is None, "a respawning node's death must not stop the launch"


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_plate_preparation_protocol_runs_against_the_launched_cell(cell, client_node):
    if "/executive" not in cell.expected:
        pytest.skip("the executive node (autolab.nodes.executive) is not in this build")
    protocol = default_protocol()
    if not protocol.is_file():
        pytest.skip(f"{protocol} is not in this build")
    from autolab.nodes.sync_client import SyncClient
    from autolab_interfaces.action import RunProtocol

    sync = SyncClient(client_node, client_node.executor_for_test)
    feedback: list = []
    goal = RunProtocol.Goal(protocol_path=str(protocol), operator_name="test_launch_sim")
    handle = sync.send_goal(RunProtocol, "executive/run_protocol", goal, timeout=60, feedback=feedback.append)
    _status, result = sync.result(handle, 360, "the plate-preparation run")
    assert result.error_code == RunProtocol.Result.NONE, result.error_msg
    assert result.outcome == "succeeded" and result.run_id
    assert feedback and max(f.progress for f in feedback) > 0


def test_death_of_the_required_safety_node_shuts_the_whole_launch_down(cell):
    wait_for(lambda: cell.pids("safety"), 30, "safety to start")
    os.kill(cell.pids("safety")[0], signal.SIGKILL)
    try:
        code = cell.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"launch still running after safety died; output:\n{cell.output()[-3000:]}")
    out = cell.output()
    assert code == 1, out[-3000:]
    assert "shutting down: required process safety was killed by SIGKILL" in out
    for label in (n.lstrip("/") for n in cell.expected):
        for pid in cell.pids(label):
            assert not Path(f"/proc/{pid}").exists() or _zombie(pid), f"{label} [pid {pid}] still running"


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True
