"""`autolab doctor` reports a healthy set-up, and names the fix when something is wrong."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(90)


def _doctor(domain_id: int, **env: str) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ, ROS_DOMAIN_ID=str(domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", **env)
    return subprocess.run([sys.executable, "-m", "autolab.cli.main", "doctor", "--timeout", "20"],
                          capture_output=True, text=True, env=full, timeout=80)


def test_doctor_passes_on_this_setup(domain_id):
    proc = _doctor(domain_id)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("python", "venv", "rclpy", "rmw", "autolab_interfaces", "dds"):
        assert f"] {name}:" in proc.stdout
    assert "two processes talk over DDS" in proc.stdout


def test_doctor_names_a_broken_rmw_and_its_fix(domain_id):
    proc = _doctor(domain_id, RMW_IMPLEMENTATION="rmw_does_not_exist_cpp")
    assert proc.returncode == 1
    assert "FAIL" in proc.stdout and "rmw_does_not_exist_cpp" in proc.stdout
    assert "fix:" in proc.stdout
