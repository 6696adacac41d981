"""`autolab demo`: the README's main command, run as a user runs it (a subprocess on its own domain)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from autolab.cli.demo import default_protocol
from autolab.launcher.executables import module_available
from support.ros import ros_env

pytestmark = [pytest.mark.ros]

REPO = Path(__file__).resolve().parents[1]


def demo(domain_id: int, *args: str, timeout: float, env: dict[str, str] | None = None):
    cmd = [sys.executable, "-m", "autolab.cli.main", "demo", "--domain-id", str(domain_id), *args]
    env = {"AUTOLAB_DATA_DIR": os.path.join(tempfile.gettempdir(), f"autolab-test-demo-{domain_id}"), **(env or {})}
    return subprocess.run(cmd, env=ros_env(domain_id, **env), capture_output=True, text=True,
                          cwd=str(REPO), timeout=timeout)


@pytest.mark.timeout(90)
def test_graph_only_demo_reports_a_healthy_cell_and_exits_zero(domain_id, tmp_path):
    res = demo(domain_id, "--graph-only", "--log-dir", str(tmp_path), timeout=80)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    for check in ("nodes:", "safety state: latched /safety/state received", "e-stop: latched", "reset:"):
        assert f"[ok  ] {check}" in out, out
    assert "cell healthy" in out
    assert "cell stopped" in out
    assert (tmp_path / "safety.log").is_file()


@pytest.mark.timeout(90)
def test_graph_only_demo_with_the_cell_in_one_process_checks_the_same_nodes(domain_id, tmp_path):
    res = demo(domain_id, "--graph-only", "--one-process", "--log-dir", str(tmp_path), timeout=85)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "[ok  ] nodes:" in out and "/safety" in out
    assert (tmp_path / "cell.log").is_file()


@pytest.mark.timeout(90)
def test_demo_fails_naming_the_cause_when_a_required_process_dies(domain_id, tmp_path):
    launch = tmp_path / "broken.launch.yaml"
    launch.write_text(
        "launch:\n"
        "- node: {pkg: autolab, exec: safety_node, name: safety}\n"
        # It dies a second after start: after the health checks can pass (the demo must still notice).
        "- executable: {cmd: \"python3 -c 'import time; time.sleep(1.0); raise SystemExit(3)'\", name: doomed, "
        "on_exit: shutdown}\n")
    res = demo(domain_id, "--graph-only", "--launch-file", str(launch), "--log-dir", str(tmp_path / "logs"),
               "--startup-timeout", "20", timeout=80)
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert "required process doomed died with exit code 3" in out


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.skipif(os.environ.get("AUTOLAB_DEMO_E2E") != "1",
                    reason="the full demo takes minutes on a 2-core machine; set AUTOLAB_DEMO_E2E=1 to run it "
                           "(tests/test_launch_sim.py runs the same protocol against the launched cell)")
def test_demo_runs_plate_preparation_end_to_end_with_a_summary(domain_id, tmp_path):
    if not module_available("autolab.nodes.executive"):
        pytest.skip("the executive node (autolab.nodes.executive) is not in this build")
    if not default_protocol().is_file():
        pytest.skip(f"{default_protocol()} is not in this build")
    res = demo(domain_id, "--log-dir", str(tmp_path / "logs"), "--run-timeout", "500", timeout=580,
               env={"AUTOLAB_DATA_DIR": str(tmp_path / "data")})
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-5000:]
    assert "outcome:  succeeded" in out
    assert "run id:" in out and "(none)" not in out
    assert "console:  not available" in out
