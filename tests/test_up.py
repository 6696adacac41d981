"""`autolab up`: every node of launch/sim.launch.yaml in one process, with the launch file's names
and parameters, checked from outside over DDS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from autolab.cli.up import plan_nodes
from autolab.launcher.loader import load_launch_file
from support.ros import ros_env

pytestmark = [pytest.mark.ros, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[1]
SIM_LAUNCH = REPO / "launch" / "sim.launch.yaml"


@pytest.fixture(scope="module")
def up(domain_id: int, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("up") / "up.out"
    env = ros_env(domain_id, AUTOLAB_DATA_DIR=str(out.parent / "data"))
    with out.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "autolab.cli.main", "up", "use_sim_time:=false"],
                                env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=str(REPO),
                                start_new_session=True)
    proc.out = out  # type: ignore[attr-defined]
    yield proc
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def expected_nodes() -> dict[str, object]:
    nodes, _left_out = plan_nodes(load_launch_file(SIM_LAUNCH, {"use_sim_time": "false"}))
    return {n.spec.fully_qualified_name: n.spec for n in nodes}


def test_every_available_node_of_the_launch_file_comes_up_in_one_process(up, client_node):
    from autolab.nodes.sync_client import SyncClient

    expected = set(expected_nodes())
    assert "/safety" in expected
    sync = SyncClient(client_node, client_node.executor_for_test)

    def seen() -> set[str]:
        return {f"{ns.rstrip('/')}/{n}" for n, ns in client_node.get_node_names_and_namespaces()}

    try:
        sync.spin_until(lambda: expected <= seen(), 60, "the nodes of autolab up")
    except TimeoutError:
        pytest.fail(f"missing {sorted(expected - seen())}; output:\n{up.out.read_text()[-3000:]}")
    children = Path(f"/proc/{up.pid}/task/{up.pid}/children").read_text().split()
    assert children == [], "autolab up must not start other processes"


def test_nodes_get_the_launch_files_parameters(up, client_node):
    from rcl_interfaces.srv import GetParameters

    from autolab.nodes.sync_client import SyncClient

    sync = SyncClient(client_node, client_node.executor_for_test)
    specs = expected_nodes()
    for fqn, spec in specs.items():
        inline = {k: v for entry in spec.parameters if isinstance(entry, dict) for k, v in entry.items()}
        names = [k for k in inline if k in ("use_sim_time", "type")]
        request = GetParameters.Request(names=names)
        reply = sync.call(GetParameters, f"{fqn}/get_parameters", request, timeout=30)
        got = dict(zip(names, reply.values, strict=True))
        assert got["use_sim_time"].bool_value is False, fqn
        if "type" in got:
            assert got["type"].string_value == inline["type"], fqn


def test_ctrl_c_stops_the_one_process_cell_cleanly(up):
    os.killpg(up.pid, signal.SIGINT)
    assert up.wait(timeout=30) == 0, up.out.read_text()[-3000:]
