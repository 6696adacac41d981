"""`autolab launch <file> [name:=value ...]`: run a YAML launch file without the ROS 2 launch packages.

The same files `ros2 launch autolab <file>` runs. Unsupported constructs stop
the launch before anything starts, with file:line. Ctrl-C stops every process
(SIGINT, then SIGTERM, then SIGKILL after each process's timeouts); a second
Ctrl-C escalates at once. The exit code is 0 after a requested stop, 1 when a
required process (`on_exit: shutdown`) failed, 2 when the file is invalid.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import time
from pathlib import Path

from autolab.launcher.errors import LaunchError
from autolab.launcher.loader import LaunchPlan, load_launch_file, parse_launch_arguments
from autolab.launcher.substitutions import find_package_share
from autolab.launcher.supervisor import build_supervisor, command_line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", nargs=argparse.REMAINDER, metavar="FILE [name:=value ...]",
                        help="a launch file (path, or `autolab sim.launch.yaml` / `sim.launch.yaml` for the "
                             "package's own), then launch arguments name:=value; the options below may also "
                             "come after the file")
    add_options(parser)


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-s", "--show-args", action="store_true",
                        help="list the file's launch arguments and exit")
    parser.add_argument("-p", "--print", dest="print_only", action="store_true",
                        help="print the processes and their command lines, start nothing")
    parser.add_argument("--strict", action="store_true",
                        help="fail if a node's executable is not in this build (default: leave it out, warn)")
    parser.add_argument("--log-dir", type=Path, default=None,
                        help="where each process's log goes (default: $ROS_LOG_DIR or ~/.ros/log, "
                             "in a folder per launch)")


def split_options(args: argparse.Namespace) -> list[str]:
    """Options given after the file (as `ros2 launch` allows) land in `target`: parse them out."""
    options = argparse.ArgumentParser(add_help=False)
    add_options(options)
    late, words = options.parse_known_args(args.target)
    for key, value in vars(late).items():
        if value not in (None, False):
            setattr(args, key, value)
    if not words:
        raise LaunchError("name a launch file, e.g. `autolab launch sim.launch.yaml`")
    unknown = [w for w in words if w.startswith("-")]
    if unknown:
        raise LaunchError(f"unknown option(s) {' '.join(unknown)}")
    return words


def resolve_launch_file(words: list[str]) -> tuple[Path, list[str]]:
    """`[file, args...]` or `[package, file, args...]` (as ros2 launch) -> (path, launch args)."""
    first = words[0]
    if len(words) > 1 and ":=" not in words[1] and not Path(first).is_file():
        return find_package_share(first) / "launch" / words[1], words[2:]
    path = Path(first)
    if not path.exists() and not path.is_absolute() and len(path.parts) == 1:
        candidate = find_package_share("autolab") / "launch" / first
        if candidate.is_file():
            path = candidate
    return path, words[1:]


def default_log_dir(plan: LaunchPlan) -> Path:
    home = Path(os.environ.get("ROS_HOME", "~/.ros")).expanduser()
    base = Path(os.environ.get("ROS_LOG_DIR") or home / "log")
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S")
    return base / f"autolab-launch-{stamp}-{os.getpid()}"


def run(args: argparse.Namespace) -> int:
    try:
        path, rest = resolve_launch_file(split_options(args))
        plan = load_launch_file(path, parse_launch_arguments(rest), require_arguments=not args.show_args)
    except LaunchError as exc:
        print(f"autolab launch: {exc}", file=sys.stderr)
        return 2
    for warning in plan.warnings:
        print(f"autolab launch: warning: {warning}", file=sys.stderr)
    if args.show_args:
        return _show_args(plan)
    log_dir = args.log_dir or default_log_dir(plan)
    try:
        sup, skipped = build_supervisor(plan.processes, log_dir, skip_missing=not args.strict)
    except LaunchError as exc:
        print(f"autolab launch: {exc}", file=sys.stderr)
        return 2
    for line in skipped:
        print(f"autolab launch: warning: left out, not in this build: {line}", file=sys.stderr)
    if args.print_only:
        for mp in sup.processes:
            print(f"{mp.label}: {shlex.join(mp.cmd)}")
        return 0
    if not sup.processes:
        print("autolab launch: nothing to start", file=sys.stderr)
        return 1
    print(f"[autolab launch] {path} ({len(sup.processes)} processes, logs in {log_dir})", flush=True)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, lambda *_: sup.escalate())
    signal.signal(signal.SIGTERM, lambda *_: sup.shutdown("terminated (SIGTERM)"))
    try:
        sup.start()
        code = None
        while code is None:
            code = sup.wait(0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(f"[autolab launch] all processes stopped ({sup.exit_reason or 'all exited'})", flush=True)
    return code


def _show_args(plan: LaunchPlan) -> int:
    print(f"Arguments of {plan.path} (pass arguments as '<name>:=<value>'):")
    for info in plan.arguments.values():
        print(f"\n    '{info.name}':")
        print(f"        {info.description or 'no description given'}")
        if info.choices:
            print(f"        Valid choices are: {info.choices}")
        print(f"        (default: '{info.default}')" if info.default is not None else "        (required)")
    return 0


__all__ = ["add_arguments", "command_line", "resolve_launch_file", "run"]
