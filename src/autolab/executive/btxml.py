"""BehaviorTree.CPP v4 XML import and export, with a TreeNodesModel for Groot2.

Our steps map onto BT.CPP's built-in `Sequence`, `Parallel` and `Fallback`,
and onto custom nodes declared in the `TreeNodesModel` with their ports
(`Transfer`, `InstrumentOperation`, `Dispense`, `Wait`, `OperatorCheckpoint`,
`ForEach`, `IfMeasured`, `RetryWithBackoff`, `TimeoutSeconds`), so Groot2
opens, shows and edits a protocol. Protocol-level data (version, parameters,
recovery) rides in a first `ProtocolInfo` action, which Groot2 keeps like any
node. Ports are strings: strings go as they are, numbers and structures as
JSON, so export followed by import gives back the same protocol.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any
from xml.parsers import expat

from autolab.executive.errors import BTXMLError
from autolab.model.protocol import FORMAT_VERSION, Protocol, ProtocolError, from_data

# node ID -> (step kind, category, ports {name: (type, description)})
_S, _N, _J = "std::string", "double", "json"
NODES: dict[str, tuple[str, str, dict[str, tuple[str, str]]]] = {
    "Transfer": ("transfer", "Action", {
        "labware": (_S, "inventory id of the labware"), "source": (_S, "location id (default: where it is)"),
        "destination": (_S, "location id"), "velocity_scale": (_N, "0..1")}),
    "InstrumentOperation": ("instrument", "Action", {
        "device": (_S, "instrument id"), "operation": (_S, "e.g. read_absorbance, seal, incubate"),
        "labware": (_S, "inventory id"), "parameters": (_J, "operation parameters as JSON"),
        "timeout_s": (_N, "give up after")}),
    "Dispense": ("dispense", "Action", {
        "device": (_S, "liquid handler id"), "labware": (_S, "destination labware"),
        "reagent": (_S, "reagent name (default water)"),
        "wells": (_J, "well range or JSON list"), "volume_ul": (_N, "µL per well"),
        "source_labware": (_S, "source labware (liquid transfer)"), "source_wells": (_J, "source wells"),
        "timeout_s": (_N, "give up after")}),
    "Wait": ("wait", "Action", {"seconds": (_N, "how long")}),
    "OperatorCheckpoint": ("checkpoint", "Action", {
        "message": (_S, "what the operator should do"), "timeout_s": (_N, "give up after")}),
    "ForEach": ("for_each", "Decorator", {
        "var": (_S, "loop variable"), "items": (_J, "JSON list, 'a,b,c' or a well range")}),
    "IfMeasured": ("if", "Control", {
        "condition": (_J, '{"step","output","op","value"}: children are then and else')}),
    "RetryWithBackoff": ("retry", "Decorator", {
        "attempts": ("int", "attempts in all"), "backoff_s": (_N, "first delay"),
        "backoff_factor": (_N, "delay multiplier")}),
    "TimeoutSeconds": ("timeout", "Decorator", {"seconds": (_N, "bound")}),
    "ProtocolInfo": ("", "Action", {
        "autolab_protocol": ("int", "format version"), "version": (_S, "protocol version"),
        "description": (_S, "what the protocol does"), "parameters": (_J, "parameter block as JSON"),
        "recovery": (_J, "recovery block as JSON")}),
}
_BY_KIND = {kind: nid for nid, (kind, _c, _p) in NODES.items() if kind}


# ------------------------------------------------------------------------ export
def export_xml(protocol: Protocol) -> str:
    root = ET.Element("root", {"BTCPP_format": "4", "main_tree_to_execute": protocol.name})
    tree = ET.SubElement(root, "BehaviorTree", {"ID": protocol.name})
    if protocol.description:
        tree.set("_description", protocol.description)
    seq = ET.SubElement(tree, "Sequence", {"name": protocol.name})
    info = {"name": "protocol_info", "autolab_protocol": str(FORMAT_VERSION), "version": protocol.version}
    if protocol.description:
        info["description"] = protocol.description
    if protocol.parameters:
        info["parameters"] = json.dumps({k: p.to_dict() for k, p in protocol.parameters.items()})
    if protocol.recovery:
        info["recovery"] = json.dumps(protocol.recovery)
    ET.SubElement(seq, "ProtocolInfo", info)
    for step in protocol.steps:
        _export_step(seq, step.to_dict())
    model = ET.SubElement(root, "TreeNodesModel")
    for nid, (_kind, category, ports) in NODES.items():
        el = ET.SubElement(model, category, {"ID": nid})
        for port, (ptype, desc) in ports.items():
            ET.SubElement(el, "input_port", {"name": port, "type": "std::string" if ptype == _J else ptype}).text = desc
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _encode(port_type: str, value: Any) -> str:
    if isinstance(value, str) and (port_type == _S or not _looks_json(value)):
        return value
    return json.dumps(value)


def _looks_json(text: str) -> bool:
    try:
        json.loads(text)
        return True
    except ValueError:
        return False


def _export_step(parent: ET.Element, d: dict[str, Any]) -> None:
    (kind, body), = d.items()
    attrs = {"name": body["id"]}
    if kind == "parallel":
        el = ET.SubElement(parent, "Parallel", {**attrs, "success_count": "-1", "failure_count": "1"})
    elif kind == "fallback":
        el = ET.SubElement(parent, "Fallback", attrs)
    else:
        nid = _BY_KIND[kind]
        ports = NODES[nid][2]
        for key, value in body.items():
            if key in ports:
                attrs[key] = _encode(ports[key][0], value)
        el = ET.SubElement(parent, nid, attrs)
    if kind in ("parallel", "fallback"):
        for i, branch in enumerate(body["branches"]):
            _branch(el, f"branch{i}", branch)
    elif kind == "if":
        _branch(el, "then", body["then"])
        _branch(el, "else", body.get("else", []))
    elif "steps" in body:
        _branch(el, "body", body["steps"])


def _branch(parent: ET.Element, name: str, steps: list[dict]) -> None:
    seq = ET.SubElement(parent, "Sequence", {"name": name})
    for s in steps:
        _export_step(seq, s)


# ------------------------------------------------------------------------ import
def import_xml(text: str, source: str = "<xml>") -> Protocol:
    """A Protocol from BT.CPP v4 XML; errors name source:line:column."""
    positions: dict[int, tuple[int, int]] = {}
    stack: list[ET.Element] = []
    found: list[ET.Element] = []
    parser = expat.ParserCreate()

    def start(tag: str, attrs: dict[str, str]) -> None:
        el = ET.Element(tag, attrs)
        positions[id(el)] = (parser.CurrentLineNumber, parser.CurrentColumnNumber + 1)
        (stack[-1].append(el) if stack else found.append(el))
        stack.append(el)

    parser.StartElementHandler = start
    parser.EndElementHandler = lambda _tag: stack.pop()
    try:
        parser.Parse(text, True)
    except expat.ExpatError as exc:
        raise BTXMLError(f"XML syntax: {expat.ErrorString(exc.code)}", exc.lineno, exc.offset + 1,
                         source) from None
    root = found[0]

    def pos(el: ET.Element) -> tuple[int, int]:
        return positions.get(id(el), (0, 0))

    def fail(el: ET.Element, reason: str) -> BTXMLError:
        return BTXMLError(reason, *pos(el), source)

    if root.tag != "root" or root.get("BTCPP_format") != "4":
        raise fail(root, "not a BehaviorTree.CPP v4 document (expected <root BTCPP_format=\"4\">)")
    trees = root.findall("BehaviorTree")
    if not trees:
        raise fail(root, "no <BehaviorTree> in the document")
    main = root.get("main_tree_to_execute") or trees[0].get("ID")
    tree = next((t for t in trees if t.get("ID") == main), None)
    if tree is None:
        raise fail(root, f"main_tree_to_execute names '{main}', which is not a BehaviorTree here")
    if len(tree) != 1:
        raise fail(tree, "a BehaviorTree must have exactly one root node")
    top = tree[0]
    if top.tag != "Sequence":
        raise fail(top, f"the root node must be a Sequence, not {top.tag}")
    marks: dict[tuple, tuple[int, int]] = {(): pos(tree)}
    data: dict[str, Any] = {"autolab_protocol": FORMAT_VERSION, "name": tree.get("ID", "")}
    children = list(top)
    if children and children[0].tag == "ProtocolInfo":
        info = children.pop(0)
        ports = NODES["ProtocolInfo"][2]
        for key in ("autolab_protocol", "version", "description", "parameters", "recovery"):
            if info.get(key) is not None:
                data[key] = _decode(info, key, ports[key][0], fail)
                marks[(key,)] = pos(info)
    elif tree.get("_description"):
        data["description"] = tree.get("_description")
    data["steps"] = [_import_step(el, ("steps", i), marks, pos, fail) for i, el in enumerate(children)]
    try:
        return from_data(data, marks, source, text)
    except ProtocolError as exc:
        raise BTXMLError(exc.reason, exc.line, exc.column, source) from None


def _decode(el: ET.Element, key: str, port_type: str, fail) -> Any:
    raw = el.get(key, "")
    if port_type == _S:
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        if port_type == _J or raw.startswith("${"):
            return raw  # a well range, a 'a,b,c' list or a ${reference}
        raise fail(el, f"{el.tag} '{el.get('name', '')}': port {key}={raw!r} is not a {port_type}") from None


def _import_step(el: ET.Element, path: tuple, marks: dict, pos, fail) -> dict[str, Any]:
    marks[path] = pos(el)
    sid = el.get("name") or ""
    if el.tag in ("Parallel", "Fallback"):
        kind = el.tag.lower()
        body: dict[str, Any] = {"id": sid}
        marks[path + (kind,)] = pos(el)
        body["branches"] = [_import_branch(b, path + (kind, "branches", i), marks, pos, fail)
                            for i, b in enumerate(el)]
        return {kind: body}
    if el.tag not in NODES or el.tag == "ProtocolInfo":
        known = ", ".join(["Sequence", "Parallel", "Fallback", *[n for n in NODES if n != "ProtocolInfo"]])
        raise fail(el, f"unknown node <{el.tag}> (this executive runs: {known})")
    kind, _category, ports = NODES[el.tag]
    body = {"id": sid}
    marks[path + (kind,)] = pos(el)
    for key, _raw in el.items():
        if key == "name":
            continue
        if key not in ports:
            raise fail(el, f"<{el.tag}> has no port '{key}' (ports: {', '.join(ports)})")
        body[key] = _decode(el, key, ports[key][0], fail)
        marks[path + (kind, key)] = pos(el)
    kids = list(el)
    if kind == "if":
        if len(kids) not in (1, 2):
            raise fail(el, "IfMeasured needs a then child and optionally an else child")
        body["then"] = _import_branch(kids[0], path + (kind, "then"), marks, pos, fail)
        if len(kids) == 2 and len(kids[1]):
            body["else"] = _import_branch(kids[1], path + (kind, "else"), marks, pos, fail)
    elif kind in ("for_each", "retry", "timeout"):
        if len(kids) != 1:
            raise fail(el, f"<{el.tag}> is a decorator: it needs exactly one child")
        body["steps"] = _import_branch(kids[0], path + (kind, "steps"), marks, pos, fail)
    elif kids:
        raise fail(el, f"<{el.tag}> is an action and takes no children")
    return {kind: body}


def _import_branch(el: ET.Element, path: tuple, marks: dict, pos, fail) -> list[dict[str, Any]]:
    """A branch is a Sequence of steps, or a single step."""
    marks[path] = pos(el)
    if el.tag == "Sequence":
        return [_import_step(c, path + (i,), marks, pos, fail) for i, c in enumerate(el)]
    return [_import_step(el, path + (0,), marks, pos, fail)]
