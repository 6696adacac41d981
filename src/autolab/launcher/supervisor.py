"""Run the processes of a launch plan: output, respawn, required nodes, clean stop.

The semantics follow launch's ExecuteProcess: `respawn` restarts an exited
process after `respawn_delay` (up to `respawn_max_retries`), `on_exit: shutdown`
stops everything when that process exits, and shutting down sends SIGINT, then
SIGTERM after `sigterm_timeout`, then SIGKILL after `sigkill_timeout`. Each
process gets its own process group, so a Ctrl-C in the terminal reaches only
the supervisor, which forwards it once, and a process that forks is stopped
whole. Every process also writes a log file, whatever its `output`.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from autolab.launcher.errors import ExecutableNotFound
from autolab.launcher.executables import command_for
from autolab.launcher.loader import NodeSpec, ProcessSpec

_POLL = 0.05
_PYTHON_NAMES = ("python3", "python")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGTERM the child if the supervisor dies (kill -9 included).

    The signal is tied to the thread that forked, so spawn only from long-lived
    threads (the caller's and the monitor's, which outlive their children).
    """
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def command_line(spec: ProcessSpec) -> list[str]:
    """The full argv of a process spec (nodes get their `--ros-args`)."""
    if isinstance(spec, NodeSpec):
        return [*command_for(spec.package, spec.executable), *spec.args, *spec.ros_arguments()]
    cmd = list(spec.cmd)
    if cmd and cmd[0] in _PYTHON_NAMES:
        # `python3 -m autolab...` must see autolab's packages: use the interpreter running us (the
        # venv's); under ros2 launch it is the system python3 with colcon's PYTHONPATH.
        cmd[0] = sys.executable
    return cmd


@dataclass
class ManagedProcess:
    spec: ProcessSpec
    cmd: list[str]
    log_path: Path
    proc: subprocess.Popen | None = None
    starts: int = 0
    returncode: int | None = None
    restart_at: float | None = None
    tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=40))
    _reader: threading.Thread | None = None

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Supervisor:
    """Starts the processes, watches them from a thread, stops them on request or on a required exit."""

    def __init__(self, specs: Sequence[ProcessSpec], log_dir: Path, env: dict[str, str] | None = None,
                 echo: Callable[[str], None] | None = None) -> None:
        self.log_dir = Path(log_dir)
        self.env = dict(os.environ if env is None else env)
        self._echo = echo or _print
        self._lock = threading.RLock()
        self.processes: list[ManagedProcess] = []
        self._labels: collections.Counter[str] = collections.Counter()
        for spec in specs:
            self.processes.append(ManagedProcess(spec, command_line(spec), self._log_file(spec.label)))
        self.exit_code = 0
        self.exit_reason: str | None = None
        self._stopping = False
        self._stop_started = 0.0
        self._escalation = 0
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def _log_file(self, label: str) -> Path:
        self._labels[label] += 1
        suffix = f"-{self._labels[label]}" if self._labels[label] > 1 else ""
        return self.log_dir / f"{label}{suffix}.log"

    # --- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for mp in self.processes:
            self._spawn(mp)
        self._thread = threading.Thread(target=self._monitor, name="autolab-launch-supervisor", daemon=True)
        self._thread.start()

    def shutdown(self, reason: str = "shutdown requested", code: int | None = None) -> None:
        """Begin stopping everything (idempotent); `wait()` returns once all have exited."""
        with self._lock:
            if code is not None and self.exit_code == 0:
                self.exit_code = code
            if self._stopping:
                return
            self._stopping = True
            self.exit_reason = reason
            self._stop_started = time.monotonic()
            self._echo(f"[autolab launch] shutting down: {reason}")
            for mp in self.processes:
                mp.restart_at = None
                self._signal(mp, signal.SIGINT)

    def escalate(self) -> None:
        """A second Ctrl-C: SIGTERM now; a third: SIGKILL now."""
        with self._lock:
            if not self._stopping:
                self.shutdown("interrupted")
                return
            self._escalation += 1
            sig = signal.SIGTERM if self._escalation == 1 else signal.SIGKILL
            self._echo(f"[autolab launch] sending {sig.name} to all processes")
            for mp in self.processes:
                self._signal(mp, sig)

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code once everything has exited, or None if `timeout` passed first."""
        if not self._done.wait(timeout):
            return None
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        return self.exit_code

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def stop(self, timeout: float = 30.0) -> int | None:
        self.shutdown()
        return self.wait(timeout)

    def find(self, label: str) -> ManagedProcess:
        for mp in self.processes:
            if mp.label == label:
                return mp
        raise KeyError(label)

    # --- internals -----------------------------------------------------------------
    def _spawn(self, mp: ManagedProcess) -> None:
        env = dict(self.env)
        env.update(mp.spec.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        log = mp.log_path.open("ab")
        mp.starts += 1
        mp.returncode = None
        mp.restart_at = None
        try:
            mp.proc = subprocess.Popen(mp.cmd, env=env, cwd=mp.spec.cwd, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True, preexec_fn=_die_with_parent)
        except OSError as exc:
            log.close()
            mp.returncode = 127
            self._echo(f"[{mp.label}] cannot start {mp.cmd[0]}: {exc.strerror}")
            return
        self._echo(f"[autolab launch] started {mp.label} [pid {mp.proc.pid}]"
                   + (f" (restart {mp.starts - 1})" if mp.starts > 1 else ""))
        mp._reader = threading.Thread(target=self._pump, args=(mp, mp.proc.stdout, log), daemon=True,
                                      name=f"autolab-launch-{mp.label}")
        mp._reader.start()

    def _pump(self, mp: ManagedProcess, stream: IO[bytes], log: IO[bytes]) -> None:
        screen = mp.spec.output in ("screen", "both")
        with log:
            for raw in iter(stream.readline, b""):
                log.write(raw)
                log.flush()
                line = raw.decode(errors="replace").rstrip("\n")
                mp.tail.append(line)
                if screen:
                    self._echo(f"[{mp.label}] {line}")
        stream.close()

    def _signal(self, mp: ManagedProcess, sig: signal.Signals) -> None:
        if mp.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(mp.proc.pid, sig)

    def _monitor(self) -> None:
        try:
            while True:
                with self._lock:
                    self._step(time.monotonic())
                    # Reaped by _step (returncode set), not merely dead: a process that exits between
                    # _step's look and this one would otherwise end the loop with no exit recorded.
                    finished = all(mp.proc is None or mp.returncode is not None for mp in self.processes) and (
                        self._stopping or not any(mp.restart_at for mp in self.processes))
                if finished:
                    break
                time.sleep(_POLL)
        finally:
            for mp in self.processes:
                if mp._reader is not None:
                    mp._reader.join(timeout=2.0)
            self._done.set()

    def _step(self, now: float) -> None:
        for mp in self.processes:
            if mp.proc is not None and mp.returncode is None and mp.proc.poll() is not None:
                self._on_exit(mp, now)
            elif mp.restart_at is not None and now >= mp.restart_at and not self._stopping:
                self._spawn(mp)
        if self._stopping:
            self._escalate_overdue(now)

    def _on_exit(self, mp: ManagedProcess, now: float) -> None:
        mp.returncode = mp.proc.returncode
        if mp._reader is not None:
            mp._reader.join(timeout=1.0)
        code = mp.returncode
        how = "exited cleanly" if code == 0 else (f"was killed by {signal.Signals(-code).name}" if code < 0
                                                  else f"died with exit code {code}")
        self._echo(f"[autolab launch] {mp.label} [pid {mp.proc.pid}] {how}")
        if self._stopping:
            return
        if code != 0 and mp.spec.output == "log" and mp.tail:
            self._echo(f"[autolab launch] last output of {mp.label} (full log: {mp.log_path}):")
            for line in list(mp.tail)[-15:]:
                self._echo(f"    {line}")
        retries_left = mp.spec.respawn_max_retries < 0 or mp.starts - 1 < mp.spec.respawn_max_retries
        if mp.spec.respawn and retries_left:
            mp.restart_at = now + max(0.0, mp.spec.respawn_delay)
            self._echo(f"[autolab launch] respawning {mp.label} in {mp.spec.respawn_delay:.1f} s")
        elif mp.spec.required:
            self.shutdown(f"required process {mp.label} {how}", code=0 if code == 0 else 1)

    def _escalate_overdue(self, now: float) -> None:
        elapsed = now - self._stop_started
        for mp in self.processes:
            if not mp.alive():
                continue
            if elapsed > mp.spec.sigterm_timeout + mp.spec.sigkill_timeout:
                self._signal(mp, signal.SIGKILL)
            elif elapsed > mp.spec.sigterm_timeout and self._escalation < 1:
                self._signal(mp, signal.SIGTERM)


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def build_supervisor(specs: Sequence[ProcessSpec], log_dir: Path, env: dict[str, str] | None = None,
                     echo: Callable[[str], None] | None = None,
                     skip_missing: bool = False) -> tuple[Supervisor, list[str]]:
    """A supervisor for `specs`; with `skip_missing`, nodes whose module is not in this build are left
    out (returned as messages) instead of failing the whole launch."""
    kept: list[ProcessSpec] = []
    skipped: list[str] = []
    for spec in specs:
        try:
            command_line(spec)
        except ExecutableNotFound as exc:
            if not skip_missing:
                raise ExecutableNotFound(f"{spec.source}: {exc}") from exc
            skipped.append(f"{spec.label}: {exc}")
            continue
        kept.append(spec)
    return Supervisor(kept, log_dir, env=env, echo=echo), skipped
