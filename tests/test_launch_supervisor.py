"""The process supervisor: respawn, required processes, stop escalation, Ctrl-C of `autolab launch`.

Real processes (small Python programs), no ROS: what is specified here is how
processes are started, restarted and stopped.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from autolab.launcher.loader import ProcessSpec
from autolab.launcher.supervisor import Supervisor

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[1]


def py(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


SLEEPER = py("""
    import signal, sys, time
    def stop(sig, _f):
        print(f"got {signal.Signals(sig).name}", flush=True)
        sys.exit(0)
    signal.signal(signal.SIGINT, stop)
    print("ready", flush=True)
    time.sleep(60)
""")


def collect() -> tuple[list[str], callable]:
    lines: list[str] = []
    return lines, lines.append


def test_respawning_process_is_restarted_up_to_its_retry_limit(tmp_path):
    spec = ProcessSpec(label="flaky", cmd=py("print('run', flush=True); raise SystemExit(3)"),
                       respawn=True, respawn_delay=0.2, respawn_max_retries=2)
    lines, echo = collect()
    sup = Supervisor([spec], tmp_path, echo=echo)
    started = time.monotonic()
    sup.start()
    assert sup.wait(20) == 0
    mp = sup.find("flaky")
    assert mp.starts == 3
    assert mp.returncode == 3
    assert mp.log_path.read_text().count("run") == 3
    assert time.monotonic() - started >= 0.4  # two respawn delays
    assert sum("respawning flaky" in line for line in lines) == 2


def test_exit_of_a_required_process_stops_all_others(tmp_path):
    # The leader dies only once the follower can take SIGINT (however slowly Python starts under load).
    ready = tmp_path / "follower-ready"
    required = ProcessSpec(label="leader", cmd=py(f"""
        import os, time
        deadline = time.monotonic() + 30
        while not os.path.exists({str(ready)!r}) and time.monotonic() < deadline:
            time.sleep(0.05)
        raise SystemExit(4)
    """), required=True)
    follower_cmd = py(textwrap.dedent(SLEEPER[-1]).replace(
        'print("ready", flush=True)', f'print("ready", flush=True); open({str(ready)!r}, "w").close()'))
    other = ProcessSpec(label="follower", cmd=follower_cmd)
    lines, echo = collect()
    sup = Supervisor([required, other], tmp_path, echo=echo)
    sup.start()
    assert sup.wait(20) == 1
    assert "required process leader died with exit code 4" in sup.exit_reason
    follower = sup.find("follower")
    assert follower.returncode == 0
    assert "got SIGINT" in follower.log_path.read_text()


def test_clean_exit_of_a_required_process_stops_the_launch_with_success(tmp_path):
    sup = Supervisor([ProcessSpec(label="job", cmd=py("pass"), required=True),
                      ProcessSpec(label="service", cmd=SLEEPER)], tmp_path, echo=lambda _l: None)
    sup.start()
    assert sup.wait(20) == 0
    assert "required process job exited cleanly" in sup.exit_reason


def test_stop_escalates_to_sigterm_then_sigkill_after_the_timeouts(tmp_path):
    ignores_int = py("""
        import signal, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(60)
    """)
    ignores_both = py("""
        import signal, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(60)
    """)
    specs = [ProcessSpec(label="stubborn", cmd=ignores_int, sigterm_timeout=0.5, sigkill_timeout=0.5),
             ProcessSpec(label="deaf", cmd=ignores_both, sigterm_timeout=0.5, sigkill_timeout=0.5)]
    sup = Supervisor(specs, tmp_path, echo=lambda _l: None)
    sup.start()
    deadline = time.monotonic() + 10
    while not all("ready" in mp.log_path.read_text() for mp in sup.processes if mp.log_path.exists()):
        assert time.monotonic() < deadline, "processes did not start"
        time.sleep(0.05)
    started = time.monotonic()
    assert sup.stop(timeout=15) == 0
    elapsed = time.monotonic() - started
    assert sup.find("stubborn").returncode == -signal.SIGTERM
    assert sup.find("deaf").returncode == -signal.SIGKILL
    assert elapsed < 5, f"stop took {elapsed:.1f} s"


def test_process_that_cannot_start_is_reported_not_fatal(tmp_path):
    lines, echo = collect()
    sup = Supervisor([ProcessSpec(label="ghost", cmd=["/nonexistent/binary"])], tmp_path, echo=echo)
    sup.start()
    assert sup.wait(10) == 0
    assert any("cannot start /nonexistent/binary" in line for line in lines)


def test_processes_die_with_a_killed_supervisor(tmp_path):
    launch = tmp_path / "t.launch.yaml"
    launch.write_text(f"launch:\n- executable: {{cmd: '{sys.executable} -c \"import time; time.sleep(60)\"', "
                      "name: child}\n")
    proc = subprocess.Popen([sys.executable, "-m", "autolab.cli.main", "launch", str(launch),
                             "--log-dir", str(tmp_path / "logs")], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=REPO)
    child = _started_pid(proc, "child")
    proc.kill()
    proc.wait(5)
    _wait_gone(child, 5)


def test_ctrl_c_stops_every_process_and_exits_cleanly(tmp_path):
    launch = tmp_path / "t.launch.yaml"
    launch.write_text(textwrap.dedent(f"""
        launch:
        - executable: {{cmd: "{sys.executable} -c 'import time; time.sleep(60)'", name: one, output: screen}}
        - executable: {{cmd: "{sys.executable} -c 'import time; time.sleep(60)'", name: two}}
    """))
    proc = subprocess.Popen([sys.executable, "-m", "autolab.cli.main", "launch", str(launch),
                             "--log-dir", str(tmp_path / "logs")], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=REPO)
    one = _started_pid(proc, "one")
    two = _started_pid(proc, "two")
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert "shutting down: interrupted" in out
    _wait_gone(one, 5)
    _wait_gone(two, 5)


def _started_pid(proc: subprocess.Popen, label: str, timeout: float = 20.0) -> int:
    """Read the launcher's output until it reports `label` started; returns its pid."""
    deadline = time.monotonic() + timeout
    pattern = re.compile(rf"started {re.escape(label)} \[pid (\d+)\]")
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if m := pattern.search(line):
            return int(m.group(1))
    raise AssertionError(f"the launcher never reported {label} started")


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        # a zombie not yet reaped by its parent counts as gone
        stat = Path(f"/proc/{pid}/stat")
        if stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z":
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} still alive after {timeout} s")
