"""`autolab demo`: bring up the simulated cell, run the plate-preparation protocol, summarise.

The cell is started from launch/sim.launch.yaml as separate processes by the
same launcher as `autolab launch`, so the demo exercises what an operator runs.
Nodes whose modules are not in this build are left out and named. Every wait
is bounded; the demo exits non-zero if the cell is not healthy or the run fails.

`--graph-only` stops after the health check: nodes seen, latched /safety/state
received, services answering, and an e-stop/reset round trip.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autolab.launcher.errors import LaunchError
from autolab.launcher.executables import module_available
from autolab.launcher.loader import LaunchPlan, ProcessSpec, load_launch_file
from autolab.launcher.supervisor import Supervisor, build_supervisor
from autolab.paths import data_path

#: The plate-preparation protocol, under the names it has had.
DEFAULT_PROTOCOLS = ("plate_preparation.yaml",)
#: Seconds a healthy cell must stay up after its checks (a required process dying at start fails them).
SETTLE_S = 2.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--graph-only", action="store_true",
                        help="bring up the cell, check its health (nodes, safety state, e-stop round "
                             "trip), and exit")
    parser.add_argument("--protocol", type=Path, default=None,
                        help=f"protocol to run (default: protocols/{DEFAULT_PROTOCOLS[0]})")
    parser.add_argument("--launch-file", type=Path, default=None,
                        help="launch file of the cell (default: launch/sim.launch.yaml)")
    parser.add_argument("--startup-timeout", type=float, default=60.0,
                        help="seconds to wait for the cell to come up (default: 60)")
    parser.add_argument("--run-timeout", type=float, default=240.0,
                        help="seconds to wait for the protocol to finish (default: 240)")
    parser.add_argument("--real-time-factor", type=float, default=4.0,
                        help="simulated seconds per wall-clock second (default: 4). 0 runs the simulation as "
                             "fast as the machine allows, which outruns the arm's closed-loop sensing on a "
                             "small machine: placements then miss their tolerance")
    parser.add_argument("--instrument-time-scale", type=float, default=20.0,
                        help="simulated instrument seconds per wall-clock second (default: 20, so the "
                             "protocol's 60 s incubation takes 3 s)")
    parser.add_argument("--domain-id", type=int, default=None,
                        help="ROS_DOMAIN_ID for the cell and the demo (default: $ROS_DOMAIN_ID or 0)")
    parser.add_argument("--log-dir", type=Path, default=None,
                        help="where the nodes' logs go (default: a new folder under the temp dir)")
    parser.add_argument("--one-process", action="store_true",
                        help="run the cell's nodes in one process (`autolab up`) instead of one process each")
    parser.add_argument("--verbose", action="store_true", help="show every node's output")


@dataclass
class Health:
    """What the graph check found: one line per check, and whether all passed."""

    lines: list[tuple[bool, str, str]] = field(default_factory=list)

    def add(self, ok: bool, name: str, detail: str) -> bool:
        self.lines.append((ok, name, detail))
        mark = "ok  " if ok else "FAIL"
        print(f"  [{mark}] {name}: {detail}", flush=True)
        return ok

    @property
    def ok(self) -> bool:
        return all(ok for ok, _n, _d in self.lines)


def run(args: argparse.Namespace) -> int:
    env = _demo_environment(args.domain_id)
    os.environ.update(env)
    launch_file = args.launch_file or data_path("launch", "sim.launch.yaml")
    sim_available = module_available("autolab.nodes.sim")
    launch_args = {"headless": "true", "use_sim_time": "true" if sim_available else "false",
                   "real_time_factor": repr(float(args.real_time_factor)),
                   "instrument_time_scale": repr(float(args.instrument_time_scale)),
                   # a demo starts afresh: runs an earlier, interrupted demo left stay in the store, unresumed
                   "resume_interrupted": "false"}
    try:
        plan = load_launch_file(launch_file, launch_args)
    except LaunchError as exc:
        print(f"autolab demo: {exc}", file=sys.stderr)
        return 2
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="autolab-demo-"))
    print(f"autolab demo: bringing up the simulated cell from {launch_file} "
          f"(ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}, logs in {log_dir})", flush=True)
    if not sim_available:
        print("  note: the simulator node is not in this build; nodes run on wall-clock time", flush=True)
    echo = print if args.verbose else _quiet_echo
    if args.one_process:
        sup, expected, skipped = _one_process_cell(launch_file, launch_args, plan, log_dir, echo)
    else:
        sup, skipped = build_supervisor(plan.processes, log_dir, env=dict(os.environ), echo=echo,
                                        skip_missing=True)
        expected = {p.spec.fully_qualified_name for p in sup.processes if getattr(p.spec, "name", None)}
    for line in skipped:
        print(f"  not in this build, left out: {line}", flush=True)
    if not sup.processes:
        print("autolab demo: no node of the cell is available in this build", file=sys.stderr)
        return 1
    started = time.monotonic()
    sup.start()
    try:
        return _with_ros(args, sup, expected, started)
    except KeyboardInterrupt:
        print("\nautolab demo: interrupted", file=sys.stderr)
        return 130
    finally:
        code = sup.stop(timeout=30.0)
        if code is None:
            print("autolab demo: some node processes did not stop in time", file=sys.stderr)
        print(f"autolab demo: cell stopped; node logs in {log_dir}", flush=True)


def _one_process_cell(launch_file: Path, launch_args: dict[str, str], plan: LaunchPlan, log_dir: Path,
                      echo: Any) -> tuple[Supervisor, set[str], list[str]]:
    """The cell as one supervised `autolab up` process; its nodes are the plan's available ones."""
    from autolab.cli.up import plan_nodes

    nodes, left_out = plan_nodes(plan)
    cmd = [sys.executable, "-m", "autolab.cli.main", "up", str(launch_file),
           *(f"{k}:={v}" for k, v in launch_args.items())]
    spec = ProcessSpec(label="cell", cmd=cmd, required=True, sigterm_timeout=10.0)
    sup = Supervisor([spec], log_dir, env=dict(os.environ), echo=echo)
    return sup, {n.spec.fully_qualified_name for n in nodes}, left_out


def _with_ros(args: argparse.Namespace, sup: Supervisor, expected: set[str], started: float) -> int:
    import rclpy
    from rclpy.node import Node

    from autolab.nodes.sync_client import ClientTimeout, SyncClient

    rclpy.init(args=[])
    node = Node("autolab_demo")
    client = SyncClient(node)
    try:
        health = check_graph(client, sup, expected, args.startup_timeout)
        if health.ok:
            # Healthy means it stays up: a required process that dies just after start (however slowly a
            # loaded machine starts it) fails the check instead of slipping past it.
            with contextlib.suppress(ClientTimeout):
                client.spin_until(lambda: sup.done, SETTLE_S, "the cell to stay up")
            if sup.done:
                health.add(False, "launch", f"the launch stopped: {sup.exit_reason}")
        print(f"autolab demo: cell {'healthy' if health.ok else 'NOT healthy'} "
              f"after {time.monotonic() - started:.1f} s", flush=True)
        if not health.ok:
            _show_failures(sup)
            return 1
        if args.graph_only:
            return 0
        return run_protocol(client, sup, expected, args)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def check_graph(client: Any, sup: Supervisor, expected: set[str], timeout: float) -> Health:
    """Wait (bounded) for every started node, then check safety's latched state and services."""
    from autolab.nodes.qos import LATCHED
    from autolab.nodes.sync_client import ClientTimeout
    from autolab_interfaces.msg import SafetyState
    from autolab_interfaces.srv import EStop

    health = Health()
    node = client.node
    deadline = time.monotonic() + timeout

    def seen() -> set[str]:
        return {f"{ns.rstrip('/')}/{n}" for n, ns in node.get_node_names_and_namespaces()}

    with contextlib.suppress(ClientTimeout):
        client.spin_until(lambda: expected <= seen() or sup.done, max(0.1, deadline - time.monotonic()),
                          "the cell's nodes")
    missing = sorted(expected - seen())
    health.add(not missing, "nodes", f"{len(expected) - len(missing)}/{len(expected)} up"
               + (f", missing: {', '.join(missing)}" if missing else f" ({', '.join(sorted(expected))})"))
    if sup.done:
        health.add(False, "launch", f"the launch stopped: {sup.exit_reason}")
        return health
    if "/safety" not in expected:
        health.add(False, "safety", "the safety node is not part of this launch")
        return health
    left = lambda: max(1.0, deadline - time.monotonic())  # noqa: E731
    try:
        state = client.wait_message(SafetyState, "safety/state", LATCHED, left())
        health.add(True, "safety state",
                   f"latched /safety/state received (motion_allowed={state.motion_allowed})")
        req = EStop.Request(source="autolab demo", reason="health check")
        stop = client.call(EStop, "safety/estop", req, timeout=left())
        client.wait_message(SafetyState, "safety/state", LATCHED, left(), lambda m: m.estop_latched)
        health.add(stop.success and stop.state.estop_latched, "e-stop",
                   "latched, and /safety/state shows it" if stop.success else stop.message)
        reset = client.call(EStop, "safety/reset", EStop.Request(source="autolab demo"), timeout=left())
        after = client.wait_message(SafetyState, "safety/state", LATCHED, left(),
                                    lambda m: not m.estop_latched)
        health.add(reset.success and not after.estop_latched, "reset",
                   f"{reset.message} (motion_allowed={after.motion_allowed})")
    except ClientTimeout as exc:
        health.add(False, "safety", str(exc))
    return health


def run_protocol(client: Any, sup: Supervisor, expected: set[str], args: argparse.Namespace) -> int:
    """Submit the protocol to the executive, show progress, print the summary."""
    protocol = args.protocol or default_protocol()
    if not Path(protocol).is_file():
        print(f"autolab demo: protocol not found: {protocol}", file=sys.stderr)
        return 1
    if not any(name.endswith("/executive") for name in expected):
        print("autolab demo: cannot run the protocol: the executive node is not in this build",
              file=sys.stderr)
        return 1
    from autolab.nodes.sync_client import ClientTimeout, GoalRejected
    from autolab_interfaces.action import RunProtocol

    goal = RunProtocol.Goal(protocol_path=str(Path(protocol).resolve()), operator_name="autolab demo")
    progress = _Progress()
    print(f"autolab demo: running {protocol}", flush=True)
    started = time.monotonic()
    try:
        handle = client.send_goal(RunProtocol, "executive/run_protocol", goal, timeout=30.0,
                                  feedback=progress.update)
        status, result = client.result(handle, args.run_timeout, "the protocol run")
    except GoalRejected as exc:
        print(f"\nautolab demo: {exc}", file=sys.stderr)
        return 1
    except ClientTimeout as exc:
        progress.finish()
        print(f"autolab demo: {exc}", file=sys.stderr)
        _show_failures(sup)
        return 1
    progress.finish()
    ok = result.error_code == RunProtocol.Result.NONE and result.outcome == "succeeded"
    print("\n=== autolab demo summary ===")
    print(f"  outcome:  {result.outcome or 'unknown'}"
          + ("" if ok else f" (error {result.error_code}: {result.error_msg})"))
    print(f"  run id:   {result.run_id or progress.run_id or '(none)'}")
    print(f"  data:     {result.data_uri or '(not reported by the executive)'}")
    print("  console:  not available in this build (no web console is served)")
    print(f"  duration: {time.monotonic() - started:.1f} s wall clock")
    return 0 if ok else 1


def default_protocol() -> Path:
    for name in DEFAULT_PROTOCOLS:
        if (path := data_path("protocols", name)).is_file():
            return path
    return data_path("protocols", DEFAULT_PROTOCOLS[0])


class _Progress:
    """One line of progress, redrawn in place on a terminal, printed per step otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.last = ""
        self.run_id = ""

    def update(self, fb: Any) -> None:
        self.run_id = fb.run_id or self.run_id
        bar_len = 24
        filled = int(round(max(0.0, min(1.0, fb.progress)) * bar_len))
        text = (f"[{'#' * filled}{'.' * (bar_len - filled)}] {fb.progress * 100:5.1f}% "
                f"{fb.state:<9} {fb.active_step}" + (f" - {fb.message}" if fb.message else ""))
        if self.tty:
            sys.stdout.write("\r" + text[:120].ljust(120))
            sys.stdout.flush()
        elif (fb.state, fb.active_step) != self.last:
            print(f"  {text}", flush=True)
        self.last = (fb.state, fb.active_step)

    def finish(self) -> None:
        if self.tty and self.last:
            sys.stdout.write("\n")


def _demo_environment(domain_id: int | None) -> dict[str, str]:
    """The demo talks to its own cell only: loopback discovery, and the chosen domain."""
    env = {"ROS_AUTOMATIC_DISCOVERY_RANGE": os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST"),
           "ROS_DOMAIN_ID": str(domain_id if domain_id is not None else os.environ.get("ROS_DOMAIN_ID", "0"))}
    return env


_NEWS = ("died with", "was killed", "respawning", "last output", "shutting down: required")


def _quiet_echo(line: str) -> None:
    """Without --verbose, show only processes dying or restarting, and their last words."""
    if line.startswith("    ") or (line.startswith("[autolab launch]") and any(w in line for w in _NEWS)):
        print(line, flush=True)


def _show_failures(sup: Supervisor) -> None:
    for mp in sup.processes:
        if not mp.alive():
            print(f"  {mp.label}: not running (exit code {mp.returncode}); log: {mp.log_path}",
                  file=sys.stderr)
            for line in list(mp.tail)[-10:]:
                print(f"    {line}", file=sys.stderr)
