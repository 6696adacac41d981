#!/usr/bin/env python3
"""Executive benchmarks: scheduler makespan, and per-step overhead of the executive.

1. Makespan of N concurrent plate-preparation workflows (N = 1, 2, 4, 8), run
   by the real scheduler, trees and reservations on the simulated-time cell,
   against two references:
   - the bottleneck lower bound: the busiest device's total work (no schedule
     can beat it) and the single workflow's own length;
   - running the workflows one after another.
2. Executive overhead per step, excluding device time:
   - core: wall-clock CPU time the scheduler spends per step (ticks,
     reservations, run-store writes to a real SQLite file);
   - over ROS (`--ros`): an executive node in its own process runs a protocol
     of N instrument steps against an action server in this process that
     answers at once (device time zero by construction); the time between one
     goal's result and the next goal's arrival is the executive's round trip.

Prints figures and ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from autolab.executive.context import LabwareTracker  # noqa: E402
from autolab.executive.devices import SimClock, SimulatedCell  # noqa: E402
from autolab.executive.scheduler import Executive  # noqa: E402
from autolab.model.protocol import load_protocol, parse_protocol  # noqa: E402

PREP = ROOT / "protocols" / "plate_preparation.yaml"


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def makespan(n: int) -> tuple[float, float, float, dict[str, float]]:
    """(makespan, sequential, bottleneck lower bound, busy seconds per device) for n workflows."""
    inventory = {f"plate{i}": f"hotel1.slot{i}" for i in range(1, n + 1)}
    proto = load_protocol(PREP)
    clock = SimClock()
    cell = SimulatedCell(clock, inventory)
    ex = Executive(cell, clock, None, LabwareTracker(inventory))
    for i in range(1, n + 1):
        ex.submit(proto, {"plate": f"plate{i}", "home": f"hotel1.slot{i}"})
    ex.run_until_done()
    assert all(r.status == "succeeded" for r in ex.runs.values()), [r.error_msg for r in ex.runs.values()]
    busy: dict[str, float] = defaultdict(float)
    for start, end, call in cell.log:
        busy[call.device] += end - start
    single = next(iter(ex.runs.values()))
    one = single.ended_at - single.started_at if n == 1 else makespan(1)[0]
    lower = max(max(busy.values()), one)
    return clock.now(), n * one, lower, dict(busy)


def core_overhead(steps: int, with_store: bool = True) -> list[float]:
    """Wall seconds of scheduler work per step (ticks + reservations + store), device time excluded."""
    import contextlib

    from autolab.data.store import RunStore

    body = "\n".join(f"  - instrument: {{id: s{i}, device: reader1, operation: open_door}}" for i in range(steps))
    proto = parse_protocol(f"autolab_protocol: 1\nname: overhead\nsteps:\n{body}\n")
    with tempfile.TemporaryDirectory() as tmp, (
            RunStore.open(f"sqlite:///{tmp}/b.db") if with_store else contextlib.nullcontext()) as store:
        clock = SimClock()
        ex = Executive(SimulatedCell(clock, {}), clock, store, LabwareTracker({}))
        run = ex.submit(proto)
        per_step: list[float] = []
        done = 0
        t0 = time.perf_counter()
        while not run.done:
            ex.tick()
            if len(run.ctx.completed) > done:
                now = time.perf_counter()
                per_step.append((now - t0) / (len(run.ctx.completed) - done))
                done, t0 = len(run.ctx.completed), now
            nxt = clock.next_event()
            if nxt is not None:
                clock.advance_to(nxt)
        return per_step


def ros_overhead(steps: int, tick_hz: float) -> list[float]:
    """Seconds from one goal's result to the next goal's arrival, through a real executive node."""
    import os
    import subprocess

    import rclpy
    from rclpy.action import ActionServer
    from rclpy.context import Context
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.node import Node

    from autolab.nodes.sync_client import SyncClient
    from autolab_interfaces.action import InstrumentRun, RunProtocol

    domain = 190 + os.getpid() % 30
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    tmp = tempfile.mkdtemp()
    env["AUTOLAB_DATA_DIR"] = tmp
    proc = subprocess.Popen([sys.executable, "-m", "autolab.nodes.executive", "--ros-args", "-p",
                             f"tick_hz:={tick_hz}", "-p", f"store_url:=sqlite:///{tmp}/b.db"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ctx = Context()
    rclpy.init(context=ctx, domain_id=domain)
    node = Node("bench_device", context=ctx)
    arrivals: list[float] = []
    answered: list[float] = []

    def execute(goal_handle):
        arrivals.append(time.perf_counter())
        goal_handle.succeed()
        answered.append(time.perf_counter())
        return InstrumentRun.Result()

    ActionServer(node, InstrumentRun, "reader1/run", execute_callback=execute)
    executor = MultiThreadedExecutor(num_threads=2, context=ctx)
    executor.add_node(node)
    client_node = Node("bench_client", context=ctx)
    client = SyncClient(client_node)
    import threading

    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        body = "\n".join(f"  - instrument: {{id: s{i}, device: reader1, operation: open_door}}"
                         for i in range(steps))
        goal = RunProtocol.Goal(protocol_yaml=f"autolab_protocol: 1\nname: overhead\nsteps:\n{body}\n")
        ready = client.action_client(RunProtocol, "executive/run_protocol").server_is_ready
        client.spin_until(ready, 120.0, "the executive node to start")
        _status, result = client.run_action(RunProtocol, "executive/run_protocol", goal, timeout=300.0)
        if result.outcome != "succeeded":
            raise RuntimeError(f"overhead run failed: {result.error_msg}")
    finally:
        executor.shutdown()
        client_node.destroy_node()
        node.destroy_node()
        ctx.try_shutdown()
        proc.send_signal(__import__("signal").SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return [arrivals[i + 1] - answered[i] for i in range(len(arrivals) - 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200, help="steps for the overhead figures")
    parser.add_argument("--ros", action="store_true", help="also measure over ROS with a real executive node")
    parser.add_argument("--tick-hz", type=float, default=10.0, help="executive tick rate for --ros")
    args = parser.parse_args(argv)

    print("Scheduler makespan, plate_preparation x N (simulated seconds)")
    print(f"{'N':>3} {'makespan':>10} {'sequential':>11} {'lower bound':>12} {'vs bound':>9} {'vs seq':>7}"
          f"  bottleneck")
    for n in (1, 2, 4, 8):
        span, seq, lower, busy = makespan(n)
        dev = max(busy, key=busy.get)
        print(f"{n:>3} {span:>10.1f} {seq:>11.1f} {lower:>12.1f} {span / lower:>9.2f} {span / seq:>7.2f}"
              f"  {dev} {busy[dev]:.0f} s busy")
    print(f"\nExecutive core overhead per step ({args.steps} steps, device time excluded):")
    for label, with_store in (("with the SQLite run store", True), ("without a run store", False)):
        per = core_overhead(args.steps, with_store)
        print(f"  {label:<26} p50 {percentile(per, 50) * 1e3:7.2f} ms   p99 {percentile(per, 99) * 1e3:7.2f} ms"
              f"   mean {statistics.mean(per) * 1e3:7.2f} ms")
    if args.ros:
        gaps = ros_overhead(args.steps, args.tick_hz)
        print(f"\nExecutive round trip per step over ROS ({len(gaps)} steps, tick {args.tick_hz:g} Hz, "
              "device answers at once):")
        print(f"  p50 {percentile(gaps, 50) * 1e3:.1f} ms   p99 {percentile(gaps, 99) * 1e3:.1f} ms   "
              f"mean {statistics.mean(gaps) * 1e3:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
