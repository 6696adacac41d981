"""`autolab` command line: one entry point, one module per subcommand.

Subcommand modules live in autolab.cli and provide `add_arguments(parser)` and
`run(args) -> int`. They are imported only when used, so `autolab doctor`
works even when, say, MuJoCo is broken.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "doctor": ("autolab.cli.doctor", "check this machine's ROS 2 set-up and print how to fix problems"),
    "demo": ("autolab.cli.demo", "bring up the simulated cell and run the plate-preparation protocol"),
    "up": ("autolab.cli.up", "run the whole simulated cell in one process"),
    "launch": ("autolab.cli.launch", "run a launch/*.launch.yaml file without the ROS 2 launch packages"),
    "run": ("autolab.cli.run", "submit a protocol to the executive and follow it"),
    "check": ("autolab.cli.check", "pre-flight a protocol against the workcell without moving anything"),
    "queue": ("autolab.cli.queue", "show the executive's queue and what each item waits for"),
    "pause": ("autolab.cli.control", "pause a run at its next checkpoint"),
    "resume": ("autolab.cli.control", "resume a paused run"),
    "abort": ("autolab.cli.control", "abort a run"),
    "ack": ("autolab.cli.control", "acknowledge an operator checkpoint"),
    "runs": ("autolab.cli.runs", "list, show, export runs and sample lineage from the run store"),
    "campaign": ("autolab.cli.campaign", "run a closed-loop optimisation campaign"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autolab", description="Laboratory workcell control on ROS 2.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    if argv[0] == "--version":
        from autolab import __version__

        print(f"autolab {__version__}")
        return 0
    name = argv[0]
    if name not in COMMANDS:
        parser.print_usage(sys.stderr)
        print(f"autolab: unknown command '{name}' (choose from {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    module_name, help_text = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("autolab.cli"):
            print(f"autolab {name}: this command is not available in this build", file=sys.stderr)
            return 2
        print(f"autolab {name}: cannot start: missing Python package '{exc.name}' "
              "(run scripts/setup.sh, or `autolab doctor` to see what is wrong)", file=sys.stderr)
        return 2
    sub = argparse.ArgumentParser(prog=f"autolab {name}", description=help_text)
    module.add_arguments(sub) if not hasattr(module, "add_arguments_for") else module.add_arguments_for(name, sub)
    args = sub.parse_args(argv[1:])
    args.command = name
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print(f"\nautolab {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
