"""Real ROS 2 processes for tests: start nodes in separate processes over DDS on loopback.

Every wait is bounded; every process started is stopped (SIGINT, then SIGKILL)
and its output is kept so a failing test shows what the node said.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def ros_env(domain_id: int, **extra: str) -> dict[str, str]:
    """The environment for a node process of a test module: its own domain, loopback only."""
    env = dict(os.environ)
    env.update(
        ROS_DOMAIN_ID=str(domain_id),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        RMW_IMPLEMENTATION=env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp"),
        PYTHONUNBUFFERED="1",
        RCUTILS_COLORIZED_OUTPUT="0",
    )
    env.pop("ROS_LOCALHOST_ONLY", None)
    env.update(extra)
    return env


class NodeProcess:
    """One node in its own process: `python -m <module> --ros-args ...`."""

    def __init__(self, module: str, domain_id: int, ros_args: list[str] | None = None,
                 args: list[str] | None = None, env: dict[str, str] | None = None, name: str | None = None):
        self.module = module
        self.name = name or module.rsplit(".", 1)[-1]
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the process
            prefix=f"autolab-{self.name}-", suffix=".log", delete=False)
        cmd = [sys.executable, "-m", module, *(args or [])]
        if ros_args:
            cmd += ["--ros-args", *ros_args]
        self.cmd = cmd
        self.proc = subprocess.Popen(
            cmd, env=ros_env(domain_id, **(env or {})), stdout=self._log, stderr=subprocess.STDOUT,
            cwd=str(REPO), start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        self._log.flush()
        return Path(self._log.name).read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGINT, then SIGKILL after `timeout`; returns the exit code."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
            except ProcessLookupError:
                pass
        return self.proc.returncode

    def kill(self) -> None:
        """kill -9, as a crash would."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, poll: float = 0.05,
             spin: Callable[[float], None] | None = None) -> None:
    """Wait until `predicate()` holds, at most `timeout` seconds; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if spin is not None:
            spin(poll)
        else:
            time.sleep(poll)
    raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what}")
