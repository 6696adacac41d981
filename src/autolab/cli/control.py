"""`autolab pause|resume|abort|ack [RUN_ID]`: operator commands to the executive.

Also holds the small ROS session helper the executive's other commands share.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator

SERVICES = {"pause": "pause", "resume": "resume", "abort": "abort", "ack": "acknowledge"}


@contextlib.contextmanager
def ros_session(name: str) -> Iterator:
    """An rclpy context and a SyncClient for one CLI command; always shut down."""
    import rclpy
    from rclpy.context import Context
    from rclpy.node import Node

    from autolab.nodes.sync_client import SyncClient

    ctx = Context()
    rclpy.init(context=ctx)
    node = Node(f"autolab_cli_{name}_{os.getpid()}", context=ctx)
    try:
        yield SyncClient(node)
    finally:
        node.destroy_node()
        ctx.try_shutdown()


def add_arguments_for(name: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", nargs="?", default="",
                        help="the run (a unique prefix is enough); default: the only active run")
    if name == "ack":
        parser.add_argument("--checkpoint", default="",
                            help="the checkpoint or failed step to acknowledge (default: the only one waiting)")
    parser.add_argument("--note", default="", help="a note kept with the run's record")
    parser.add_argument("--operator", default=os.environ.get("USER", ""), help="who gives the command")
    parser.add_argument("--executive", default="executive", help="the executive node's name")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the executive")


def run(args: argparse.Namespace) -> int:
    from autolab.nodes.sync_client import ClientTimeout
    from autolab_interfaces.srv import RunCommand

    req = RunCommand.Request(run_id=args.run_id, checkpoint=getattr(args, "checkpoint", ""),
                             operator_name=args.operator, note=args.note)
    with ros_session(args.command) as client:
        try:
            res = client.call(RunCommand, f"{args.executive}/{SERVICES[args.command]}", req, args.timeout)
        except ClientTimeout as exc:
            print(f"autolab {args.command}: {exc} (is the executive running? `autolab queue` to check)",
                  file=sys.stderr)
            return 2
    print(res.message, file=sys.stdout if res.success else sys.stderr)
    return 0 if res.success else 1
