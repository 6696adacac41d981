"""`autolab run protocol.yaml -p key=value`: submit a protocol, follow it, summarise.

The protocol is checked here first (file:line:column errors never need the
cell), then sent as text in a RunProtocol goal, so the executive need not
share this machine's files. Progress goes to stderr as a bar; Ctrl-C cancels
the run on the executive (which cancels the device goal in flight).
Exit status: 0 succeeded, 1 failed/aborted/canceled, 2 not submitted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from autolab.cli.check import load_any, parse_params
from autolab.cli.control import ros_session


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("protocol", help="protocol file (.yaml, or BehaviorTree.CPP .xml)")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                        help="a parameter value (repeatable)")
    parser.add_argument("--priority", type=int, default=0, help="higher runs first")
    parser.add_argument("--operator", default=os.environ.get("USER", ""), help="who runs it")
    parser.add_argument("--resume", metavar="RUN_ID", default="", help="follow (resume) an interrupted run")
    parser.add_argument("--executive", default="executive", help="the executive node's name")
    parser.add_argument("--timeout", type=float, default=24 * 3600.0, help="give up following after this long")
    parser.add_argument("--connect-timeout", type=float, default=15.0, help="seconds to find the executive")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def progress_line(fb, width: int = 30) -> str:
    filled = int(round(max(0.0, min(1.0, fb.progress)) * width))
    eta = f" ETA {int(fb.eta_s) // 60}m{int(fb.eta_s) % 60:02d}s" if fb.eta_s > 0 else ""
    what = fb.message if fb.state in ("waiting_operator", "paused") or not fb.active_step else fb.active_step
    return f"[{'#' * filled}{'.' * (width - filled)}] {fb.progress * 100:5.1f}% {fb.state:<8}{eta}  {what}"[:160]


def run(args: argparse.Namespace) -> int:
    from autolab.executive.errors import BTXMLError
    from autolab.model.protocol import ParameterError, ProtocolError

    try:
        protocol = load_any(args.protocol)
        values = parse_params(args.param)
        protocol.bind(values)
    except (ProtocolError, BTXMLError) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except (ParameterError, ValueError, OSError) as exc:
        print(f"{args.protocol}: {exc}", file=sys.stderr)
        return 2
    from diagnostic_msgs.msg import KeyValue

    from autolab.nodes.sync_client import ClientTimeout, GoalRejected
    from autolab_interfaces.action import RunProtocol

    goal = RunProtocol.Goal(priority=args.priority, operator_name=args.operator, run_id=args.resume,
                            parameters=[KeyValue(key=k, value=v) for k, v in values.items()])
    if args.protocol.endswith(".xml"):
        from autolab.executive.btxml import export_xml

        goal.tree = export_xml(protocol)
    else:
        goal.protocol_yaml = protocol.text
    tty = sys.stderr.isatty() and not args.quiet
    last = [0.0, ""]

    def on_feedback(fb) -> None:
        if args.quiet:
            return
        line = progress_line(fb)
        if tty:
            sys.stderr.write("\r" + line.ljust(120))
            sys.stderr.flush()
        elif line != last[1] and time.monotonic() - last[0] > 2.0:  # logs: a line every few seconds
            print(line, file=sys.stderr)
            last[:] = [time.monotonic(), line]

    action = f"{args.executive}/run_protocol"
    with ros_session("run") as client:
        try:
            handle = client.send_goal(RunProtocol, action, goal, timeout=args.connect_timeout, feedback=on_feedback)
        except (ClientTimeout, GoalRejected) as exc:
            print(f"autolab run: {exc} (is the executive running? try `autolab queue`)", file=sys.stderr)
            return 2
        try:
            _status, result = client.result(handle, args.timeout, f"the end of {protocol.name}")
        except KeyboardInterrupt:
            print("\nautolab run: canceling the run on the executive...", file=sys.stderr)
            client.cancel(handle)
            _status, result = client.result(handle, 30.0, "the canceled run's result")
        except ClientTimeout as exc:
            print(f"\nautolab run: {exc}; the run goes on (follow it with `autolab queue`)", file=sys.stderr)
            return 1
    if tty:
        sys.stderr.write("\n")
    print(summary(protocol.name, result))
    return 0 if result.outcome == "succeeded" else 1


def summary(name: str, result) -> str:
    lines = [f"{name}: {result.outcome or 'failed'}", f"  run id: {result.run_id or '(none)'}"]
    if result.error_msg:
        lines.append(f"  error:  {result.error_msg}")
    if result.data_uri:
        lines.append(f"  data:   {result.data_uri}  (see `autolab runs show {result.run_id}`)")
    return "\n".join(lines)
