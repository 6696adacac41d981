"""A ROS 2 user's path: `colcon build` of the autolab package, then its installed executable runs.

autolab_interfaces comes from the venv (built by the set-up with colcon); this
builds the ament_python package from a clean clone into a temporary workspace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autolab.nodes.qos import LATCHED
from autolab.nodes.sync_client import SyncClient
from autolab_interfaces.msg import SafetyState
from support.ros import REPO, ros_env

pytestmark = [pytest.mark.ros, pytest.mark.timeout(150)]

VENV = Path(sys.prefix)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    colcon = VENV / "bin" / "colcon"
    if not colcon.exists():
        pytest.skip(f"colcon is not installed in {VENV}")
    ws = tmp_path_factory.mktemp("ws")
    subprocess.run(["git", "clone", "-q", str(REPO), str(ws / "src" / "autolab")], check=True, timeout=60)
    # Include uncommitted work of this checkout, so the test checks what is being submitted.
    for name in ("setup.py", "setup.cfg", "package.xml"):
        shutil.copy(REPO / name, ws / "src" / "autolab" / name)
    env = dict(os.environ, PATH=f"{VENV / 'bin'}:{os.environ['PATH']}", AMENT_PREFIX_PATH=str(VENV))
    proc = subprocess.run([str(colcon), "build", "--paths", "src/autolab"], cwd=ws, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return ws


def test_colcon_installs_executables_and_share_data(workspace):
    prefix = workspace / "install" / "autolab"
    for exe in ("safety_node", "sim_node", "arm_node", "conveyor_node", "instrument_node",
                "vision_node", "executive_node", "recorder_node"):
        assert (prefix / "lib" / "autolab" / exe).is_file(), f"lib/autolab/{exe} missing"
    share = prefix / "share" / "autolab"
    assert (share / "package.xml").is_file()
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "autolab").is_file()
    for folder in ("launch", "config"):
        assert any((share / folder).iterdir()), f"share/autolab/{folder} is empty"


def test_installed_safety_node_runs_like_ros2_run(workspace, domain_id, client_node):
    # colcon-bash is not in the venv, so use the POSIX-sh setup colcon-core always writes.
    script = (f". {workspace}/install/local_setup.sh && "
              f"exec {workspace}/install/autolab/lib/autolab/safety_node")
    env = ros_env(domain_id, AMENT_PREFIX_PATH=f"{workspace}/install/autolab:{VENV}")
    proc = subprocess.Popen(["sh", "-c", script], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        client = SyncClient(client_node, client_node.executor_for_test)
        msg = client.wait_message(SafetyState, "safety/state", LATCHED, timeout=30)
        assert msg.motion_allowed
    finally:
        os.killpg(proc.pid, 2)
        out = proc.communicate(timeout=15)[0].decode(errors="replace")
    assert proc.returncode in (0, -2, 130), out
