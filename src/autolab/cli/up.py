"""`autolab up`: the whole simulated cell in one process, all nodes in one executor.

The nodes, names, namespaces, parameters and remaps come from the same launch
file that `autolab launch` and `ros2 launch` run (launch/sim.launch.yaml by
default), so the one-process cell is the multi-process cell without the
process boundaries: each node gets exactly the `--ros-args` it would get on
its command line, as its own `cli_args`. One process starts in a fraction of
the time and memory of a dozen; the price is no respawn and no isolation (a
crashing node takes the cell down), so use `autolab launch` for operation.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autolab.cli.launch import resolve_launch_file
from autolab.launcher.errors import LaunchError
from autolab.launcher.executables import entry_point, module_available
from autolab.launcher.loader import LaunchPlan, NodeSpec, load_launch_file, parse_launch_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", nargs="*", metavar="[FILE] [name:=value ...]",
                        help="launch file (default: sim.launch.yaml of the autolab package), then launch "
                             "arguments name:=value")
    parser.add_argument("--threads", type=int, default=8, help="executor threads (default: 8)")
    parser.add_argument("--print", dest="print_only", action="store_true",
                        help="print each node and its arguments, start nothing")


@dataclass
class InProcessNode:
    spec: NodeSpec
    node_class: type

    def create(self) -> Any:
        return self.node_class(cli_args=self.spec.ros_arguments())


class UpError(LaunchError):
    """The launch file asks for something one process cannot do."""


def plan_nodes(plan: LaunchPlan) -> tuple[list[InProcessNode], list[str]]:
    """The autolab nodes of `plan` with their NODE_CLASS; and what is left out, and why."""
    nodes: list[InProcessNode] = []
    left_out: list[str] = []
    for spec in plan.processes:
        if not isinstance(spec, NodeSpec):
            left_out.append(f"{spec.label}: a plain process ({spec.source}); run it under `autolab launch`")
            continue
        target = entry_point(spec.package, spec.executable)
        if target is None:
            left_out.append(f"{spec.label}: package '{spec.package}' is not autolab; only autolab nodes run "
                            "in one process")
            continue
        module_name = target.partition(":")[0]
        if not module_available(module_name):
            left_out.append(f"{spec.label}: module {module_name} is not in this build")
            continue
        if spec.args:
            raise UpError(f"{spec.source}: node {spec.label} has non-ROS arguments {spec.args}, which "
                          "cannot be given to a node in a shared process")
        module = importlib.import_module(module_name)
        node_class = getattr(module, "NODE_CLASS", None)
        if node_class is None:
            raise UpError(f"{spec.source}: module {module_name} has no NODE_CLASS, so it cannot run in one "
                          "process (every node module must expose NODE_CLASS)")
        if spec.env:
            left_out.append(f"{spec.label}: its `env` entries are ignored in one process")
        nodes.append(InProcessNode(spec, node_class))
    return nodes, left_out


def run(args: argparse.Namespace) -> int:
    from autolab.launcher.substitutions import find_package_share

    words = list(args.target)
    if not words or ":=" in words[0]:
        words.insert(0, str(find_package_share("autolab") / "launch" / "sim.launch.yaml"))
    try:
        path, rest = resolve_launch_file(words)
        plan = load_launch_file(path, parse_launch_arguments(rest))
        nodes, left_out = plan_nodes(plan)
    except LaunchError as exc:
        print(f"autolab up: {exc}", file=sys.stderr)
        return 2
    for warning in plan.warnings:
        print(f"autolab up: warning: {warning}", file=sys.stderr)
    for line in left_out:
        print(f"autolab up: left out: {line}", file=sys.stderr)
    if args.print_only:
        for n in nodes:
            print(f"{n.spec.fully_qualified_name}: {n.node_class.__module__}.{n.node_class.__name__} "
                  f"{' '.join(n.spec.ros_arguments())}")
        return 0
    if not nodes:
        print("autolab up: no autolab node in this launch file is available in this build", file=sys.stderr)
        return 1
    names = ", ".join(n.spec.fully_qualified_name or n.spec.label for n in nodes)
    print(f"autolab up: {len(nodes)} nodes in one process from {Path(path).name}: {names}", flush=True)
    from autolab.nodes.runtime import run_nodes

    factories: list[Callable[[], Any]] = [n.create for n in nodes]
    return run_nodes(factories, args=["autolab-up"], threads=args.threads)
