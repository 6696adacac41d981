"""`autolab queue`: the executive's runs, their progress, and what each one waits for."""

from __future__ import annotations

import argparse
import sys

from autolab.cli.control import ros_session

STATUS_NAMES = ["queued", "running", "paused", "waiting_operator", "succeeded", "failed", "aborted"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--executive", default="executive", help="the executive node's name")
    parser.add_argument("--all", action="store_true", help="also list finished runs")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the queue")


def format_queue(msg, show_all: bool = False) -> str:
    lines = []
    for item in msg.items:
        status = STATUS_NAMES[item.status] if item.status < len(STATUS_NAMES) else str(item.status)
        if not show_all and status in ("succeeded", "failed", "aborted"):
            continue
        eta = f"ETA {_duration(item.eta_s)}" if status not in ("succeeded", "failed", "aborted") else ""
        lines.append(f"{item.run_id}  {item.protocol_name:<22} prio {item.priority:<3} {status:<16} "
                     f"{item.progress * 100:5.1f}%  {eta}  {item.active_step}".rstrip())
        for w in item.waiting:
            lines.append(f"    waits: {w.message}")
    return "\n".join(lines) if lines else "the queue is empty"


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def run(args: argparse.Namespace) -> int:
    from autolab.nodes.qos import LATCHED
    from autolab.nodes.sync_client import ClientTimeout
    from autolab_interfaces.msg import QueueState

    with ros_session("queue") as client:
        try:
            msg = client.wait_message(QueueState, f"{args.executive}/queue", LATCHED, args.timeout)
        except ClientTimeout as exc:
            print(f"autolab queue: {exc} (is the executive running?)", file=sys.stderr)
            return 2
    print(format_queue(msg, args.all))
    return 0
