"""`autolab check protocol.yaml`: pre-flight a protocol against the workcell; nothing moves.

Exit status: 0 fits, 1 does not fit (problems listed with their lines), 2 the
protocol or a parameter is invalid (file:line:column: reason).
Also: `--schema` prints the published JSON Schema; `--export-bt FILE` writes
BehaviorTree.CPP v4 XML for Groot2; a `.xml` argument is imported from BT XML.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("protocol", nargs="?", help="protocol file (.yaml, or BehaviorTree.CPP .xml)")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                        help="a parameter value (repeatable)")
    parser.add_argument("--workcell", default=None, help="workcell description (default config/workcell.yaml)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--schema", action="store_true", help="print the protocol JSON Schema and exit")
    parser.add_argument("--export-bt", metavar="FILE", help="also write the protocol as BT.CPP v4 XML")


def parse_params(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"-p {item!r}: expected KEY=VALUE")
        out[key.strip()] = value
    return out


def load_any(path: str):
    """A Protocol from YAML or BT XML; raises ProtocolError / BTXMLError with file:line:column."""
    from autolab.model.protocol import load_protocol

    if path.endswith(".xml"):
        from autolab.executive.btxml import import_xml

        return import_xml(Path(path).read_text(), path)
    return load_protocol(path)


def run(args: argparse.Namespace) -> int:
    from autolab.executive.errors import BTXMLError
    from autolab.model.protocol import ParameterError, ProtocolError, schema

    if args.schema:
        print(json.dumps(schema(), indent=2))
        return 0
    if not args.protocol:
        print("autolab check: give a protocol file (or --schema)", file=sys.stderr)
        return 2
    try:
        protocol = load_any(args.protocol)
        values = protocol.bind(parse_params(args.param))
    except (ProtocolError, BTXMLError) as exc:
        print(f"{exc}", file=sys.stderr)
        return 2
    except (ParameterError, ValueError, OSError) as exc:
        print(f"{args.protocol}: {exc}", file=sys.stderr)
        return 2
    from autolab.executive.preflight import CellFacts, preflight
    from autolab.model.errors import DescriptionError

    try:
        cell = CellFacts.load(args.workcell)
    except (DescriptionError, OSError) as exc:
        print(f"autolab check: cannot load the workcell: {exc}", file=sys.stderr)
        return 2
    report = preflight(protocol, values, cell)
    if args.export_bt:
        from autolab.executive.btxml import export_xml

        Path(args.export_bt).write_text(export_xml(protocol))
    if args.json:
        print(json.dumps({"protocol": report.protocol, "ok": report.ok, "estimate_s": report.estimate_s,
                          "critical_path_s": report.critical_path_s, "steps": report.steps,
                          "operator_checkpoints": report.operator_checkpoints,
                          "problems": [p.__dict__ for p in report.problems],
                          "final_locations": report.final_locations}, indent=2))
        return 0 if report.ok else 1
    for p in report.problems:
        print(f"{args.protocol}:{p.line}:{p.column}: step '{p.step}': {p.message}", file=sys.stderr)
    if not report.ok:
        print(f"{protocol.name}: does NOT fit the workcell ({len(report.problems)} problem(s))", file=sys.stderr)
        return 1
    extra = f", plus {report.operator_checkpoints} operator checkpoint(s)" if report.operator_checkpoints else ""
    print(f"{protocol.name}: fits the workcell; {report.steps} steps, estimated {report.estimate_s / 60:.1f} min "
          f"(critical path {report.critical_path_s / 60:.1f} min{extra})")
    return 0
