"""Protocols as data: the YAML format, its JSON Schema, the AST and its expansion.

A protocol file is parsed with `yaml.compose`, so every value keeps the line
and column it came from; schema and semantic errors then name
`file:line:column: reason`, which is what a person needs to fix a typo.

The AST (`Protocol`, `Step`) stays close to the file so it can be written back
(BT XML export, round trips). `expand()` binds parameter values and unrolls
for-each loops into concrete steps, which is what pre-flight, the compiler and
the estimates work on: plans are data that can be inspected before they run.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from autolab.model.errors import ParameterError, ProtocolError

FORMAT_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("schemas") / "protocol.schema.json"

#: Step kinds whose bodies are lists of steps (or lists of branches).
CONTAINER_KINDS = ("parallel", "for_each", "if", "retry", "timeout", "fallback")
LEAF_KINDS = ("transfer", "instrument", "dispense", "wait", "checkpoint")
STEP_KINDS = LEAF_KINDS + CONTAINER_KINDS

#: Device error names (across the device actions) a recovery policy can name.
RECOVERY_POLICIES = ("retry", "skip", "fail", "operator")

_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z_][A-Za-z0-9_]*)*)\}")
_WELL = re.compile(r"^([A-Z]{1,2})(\d{1,3})$")


# --------------------------------------------------------------------------- AST
@dataclass
class ParameterSpec:
    name: str
    type: str  # number | integer | string | boolean
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    choices: list[Any] | None = None
    unit: str = ""
    description: str = ""

    def coerce(self, value: Any) -> Any:
        """The typed, range-checked value; strings (from `-p key=value`) are parsed."""
        try:
            if self.type == "boolean":
                if isinstance(value, str):
                    if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                        raise ValueError
                    value = value.lower() in ("true", "1", "yes")
                value = bool(value)
            elif self.type == "integer":
                if isinstance(value, float) and not value.is_integer() or isinstance(value, bool):
                    raise ValueError
                value = int(value)
            elif self.type == "number":
                if isinstance(value, bool):
                    raise ValueError
                value = float(value)
            else:
                value = str(value)
        except (TypeError, ValueError):
            raise ParameterError(f"parameter '{self.name}': {value!r} is not a valid {self.type}") from None
        unit = f" {self.unit}" if self.unit else ""
        if self.minimum is not None and value < self.minimum:
            raise ParameterError(f"parameter '{self.name}': {value}{unit} is below the minimum {self.minimum}{unit}")
        if self.maximum is not None and value > self.maximum:
            raise ParameterError(f"parameter '{self.name}': {value}{unit} is above the maximum {self.maximum}{unit}")
        if self.choices is not None and value not in self.choices:
            raise ParameterError(f"parameter '{self.name}': {value!r} is not one of {self.choices}")
        return value

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for key in ("default", "minimum", "maximum", "choices"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.unit:
            out["unit"] = self.unit
        if self.description:
            out["description"] = self.description
        return out


@dataclass
class Step:
    """One step. `fields` holds the kind's own settings (values may be `${param}`)."""

    kind: str
    id: str
    fields: dict[str, Any] = field(default_factory=dict)
    #: Child steps: for parallel/fallback a list of branches (each a list of steps);
    #: for if, [then, else]; for the others a single list.
    branches: list[list[Step]] = field(default_factory=list)
    line: int = 0
    column: int = 0

    def walk(self):
        yield self
        for branch in self.branches:
            for child in branch:
                yield from child.walk()

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, **copy.deepcopy(self.fields)}
        if self.kind in ("parallel", "fallback"):
            body["branches"] = [[s.to_dict() for s in b] for b in self.branches]
        elif self.kind == "if":
            body["then"] = [s.to_dict() for s in self.branches[0]]
            if self.branches[1]:
                body["else"] = [s.to_dict() for s in self.branches[1]]
        elif self.kind in CONTAINER_KINDS:
            body["steps"] = [s.to_dict() for s in self.branches[0]]
        return {self.kind: body}


@dataclass
class Protocol:
    name: str
    steps: list[Step]
    version: str = "1.0.0"
    description: str = ""
    parameters: dict[str, ParameterSpec] = field(default_factory=dict)
    recovery: dict[str, Any] = field(default_factory=dict)
    source: str = "<protocol>"
    text: str = ""

    def walk(self):
        for step in self.steps:
            yield from step.walk()

    def step(self, step_id: str) -> Step:
        for s in self.walk():
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"autolab_protocol": FORMAT_VERSION, "name": self.name, "version": self.version}
        if self.description:
            out["description"] = self.description
        if self.parameters:
            out["parameters"] = {k: p.to_dict() for k, p in self.parameters.items()}
        if self.recovery:
            out["recovery"] = copy.deepcopy(self.recovery)
        out["steps"] = [s.to_dict() for s in self.steps]
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def bind(self, values: dict[str, Any] | None = None) -> dict[str, Any]:
        """Parameter values: defaults overlaid with `values`, typed and range-checked."""
        values = dict(values or {})
        unknown = sorted(set(values) - set(self.parameters))
        if unknown:
            known = ", ".join(self.parameters) or "none"
            raise ParameterError(f"unknown parameter(s) {', '.join(unknown)} (this protocol takes: {known})")
        out = {}
        for name, spec in self.parameters.items():
            if name in values:
                out[name] = spec.coerce(values[name])
            elif spec.default is not None:
                out[name] = spec.coerce(spec.default)
            else:
                raise ParameterError(f"parameter '{name}' has no default and was not given (-p {name}=...)")
        return out


# ------------------------------------------------------------ concrete (expanded) steps
@dataclass
class Concrete:
    """A step with parameters substituted and loops unrolled; `path` is unique in the run."""

    kind: str
    path: str
    id: str
    fields: dict[str, Any]
    children: list[list[Concrete]] = field(default_factory=list)

    def walk(self):
        yield self
        for branch in self.children:
            for child in branch:
                yield from child.walk()


def expand(protocol: Protocol, values: dict[str, Any]) -> list[Concrete]:
    """Concrete steps for these (already bound) parameter values."""
    return [c for s in protocol.steps for c in _expand_step(s, values, "")]


def _expand_step(step: Step, env: dict[str, Any], prefix: str) -> list[Concrete]:
    path = f"{prefix}{step.id}"
    if step.kind == "for_each":
        items = substitute(step.fields["items"], env)
        if isinstance(items, str):
            items = expand_items(items)
        out = []
        for i, item in enumerate(items):
            inner = {**env, step.fields["var"]: item}
            body = [c for s in step.branches[0] for c in _expand_step(s, inner, f"{path}[{i}]/")]
            out.append(Concrete("sequence", f"{path}[{i}]", step.id, {"item": item}, [body]))
        return [Concrete("for_each", path, step.id, {"var": step.fields["var"], "items": list(items)},
                         [out])]
    fields = substitute(step.fields, env)
    children = [[c for s in branch for c in _expand_step(s, env, f"{path}/")] for branch in step.branches]
    return [Concrete(step.kind, path, step.id, fields, children)]


def substitute(value: Any, env: dict[str, Any]) -> Any:
    """Replace `${name}`: a whole-string reference keeps the value's type."""
    if isinstance(value, str):
        m = _REF.fullmatch(value)
        if m:
            return _lookup(env, m)
        return _REF.sub(lambda mm: str(_lookup(env, mm)), value)
    if isinstance(value, dict):
        return {k: substitute(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, env) for v in value]
    return value


def _lookup(env: dict[str, Any], m: re.Match) -> Any:
    value = env[m.group(1)]
    for key in filter(None, m.group(2).split(".")):
        if not isinstance(value, dict) or key not in value:
            raise ParameterError(f"'{m.group(0)}': {m.group(1)} has no field '{key}'")
        value = value[key]
    return value


def expand_items(spec: str) -> list[str]:
    """`A1:A4` (a column-major well range) or `a,b,c` → a list of items."""
    if ":" in spec:
        wells = expand_wells(spec)
        if wells:
            return wells
    return [s.strip() for s in spec.split(",") if s.strip()]


def expand_wells(spec: str) -> list[str]:
    """Wells of a range like `A1:H12` (column by column, as liquid handlers go), or []."""
    out: list[str] = []
    for part in spec.split(","):
        part = part.strip()
        if ":" not in part:
            if not _WELL.match(part):
                return []
            out.append(part)
            continue
        a, b = (_WELL.match(x.strip()) for x in part.split(":", 1))
        if not a or not b:
            return []
        r0, r1 = sorted((_row_index(a.group(1)), _row_index(b.group(1))))
        c0, c1 = sorted((int(a.group(2)), int(b.group(2))))
        out += [f"{_row_name(r)}{c}" for c in range(c0, c1 + 1) for r in range(r0, r1 + 1)]
    return out


def _row_index(name: str) -> int:
    n = 0
    for ch in name:
        n = n * 26 + (ord(ch) - 64)
    return n - 1


def _row_name(i: int) -> str:
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(65 + r) + s
    return s


# ------------------------------------------------------------------------ loading
@cache
def schema() -> dict[str, Any]:
    """The published JSON Schema of the protocol format."""
    return json.loads(SCHEMA_PATH.read_text())


def load_protocol(path: str | Path) -> Protocol:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ProtocolError(f"cannot read the protocol: {exc.strerror}", str(p), 0, 0) from None
    return parse_protocol(text, str(p))


def parse_protocol(text: str, source: str = "<protocol>") -> Protocol:
    """Parse and validate protocol text; raises ProtocolError with file:line:column."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ProtocolError(f"YAML syntax: {exc.problem or exc.context}", source,
                            mark.line + 1 if mark else 0, mark.column + 1 if mark else 0) from None
    if node is None:
        raise ProtocolError("the protocol is empty", source, 1, 1)
    marks: dict[tuple, tuple[int, int]] = {}
    data = _to_python(node, (), marks, source)
    return from_data(data, marks, source, text)


def from_data(data: Any, marks: dict[tuple, tuple[int, int]], source: str, text: str = "") -> Protocol:
    """Validate plain data (schema, then semantics) into a Protocol.

    `marks` maps key paths to (line, column) in `source`, so any front end
    (YAML here, BT XML in the executive) reports errors where the user typed them.
    """
    def where(path: tuple) -> tuple[int, int]:
        while path not in marks and path:
            path = path[:-1]
        return marks.get(path, (1, 1))

    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    # The deepest error first; at equal depth an unknown key (usually a typo) explains more
    # than the missing key it was meant to be.
    errors = sorted(validator.iter_errors(data),
                    key=lambda e: (-len(e.absolute_path), e.validator != "additionalProperties", e.message))
    if errors:
        err = _most_specific(errors)
        path = tuple(err.absolute_path)
        line, col = where(path)
        at = "/".join(str(p) for p in path) or "(top level)"
        raise ProtocolError(f"{at}: {_humanise(err)}", source, line, col)
    return _build(data, marks, source, text)


def _to_python(node: yaml.Node, path: tuple, marks: dict, source: str) -> Any:
    marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            # Keys are names: take their text, so YAML 1.1's `on:`/`yes:` stay strings.
            if not isinstance(key_node, yaml.ScalarNode):
                raise ProtocolError("keys must be plain names", source,
                                    key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            key = str(key_node.value)
            if key in out:
                raise ProtocolError(f"duplicate key '{key}'", source,
                                    key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            marks[path + (key, "<key>")] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = _to_python(value_node, path + (key,), marks, source)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(n, path + (i,), marks, source) for i, n in enumerate(node.value)]
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    except yaml.MarkedYAMLError as exc:
        raise ProtocolError(str(exc.problem), source, node.start_mark.line + 1,
                            node.start_mark.column + 1) from None
    finally:
        loader.dispose()


def _most_specific(errors: list) -> Any:
    """The deepest error, descending into oneOf/anyOf contexts for the useful one."""
    best = errors[0]
    while best.context:
        best = sorted(best.context, key=lambda e: (-len(e.absolute_path), e.message))[0]
    return best


def _humanise(err: Any) -> str:
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed))
        return f"unknown key(s) {', '.join(extra)} (expected one of: {', '.join(allowed)})"
    if err.validator == "required":
        return err.message.replace("is a required property", "is required")
    return err.message


def _build(data: dict[str, Any], marks: dict, source: str, text: str) -> Protocol:
    def fail(path: tuple, reason: str) -> ProtocolError:
        while path not in marks and path:
            path = path[:-1]
        line, col = marks.get(path, (1, 1))
        return ProtocolError(reason, source, line, col)

    if data["autolab_protocol"] != FORMAT_VERSION:
        raise fail(("autolab_protocol",), f"unsupported format version {data['autolab_protocol']} "
                   f"(this autolab reads version {FORMAT_VERSION})")
    params: dict[str, ParameterSpec] = {}
    for name, spec in (data.get("parameters") or {}).items():
        p = ParameterSpec(name=name, type=spec["type"], default=spec.get("default"),
                          minimum=spec.get("minimum"), maximum=spec.get("maximum"),
                          choices=spec.get("choices"), unit=spec.get("unit", ""),
                          description=spec.get("description", ""))
        if p.minimum is not None and p.maximum is not None and p.minimum > p.maximum:
            raise fail(("parameters", name), f"parameter '{name}': minimum {p.minimum} > maximum {p.maximum}")
        if p.default is not None:
            try:
                p.default = p.coerce(p.default)
            except ParameterError as exc:
                raise fail(("parameters", name, "default"), f"default: {exc}") from None
        params[name] = p

    seen: dict[str, tuple] = {}

    def build_steps(items: list, path: tuple, scope: set[str]) -> list[Step]:
        return [build_step(item, path + (i,), scope) for i, item in enumerate(items)]

    def build_step(item: dict, path: tuple, scope: set[str]) -> Step:
        (kind, body), = item.items()
        bpath = path + (kind,)
        sid = body["id"]
        if sid in seen:
            line, col = marks[seen[sid] + ("id",)]
            raise fail(bpath + ("id",), f"duplicate step id '{sid}' (first used at line {line}, column {col})")
        seen[sid] = bpath
        fields = {k: v for k, v in body.items() if k not in ("id", "steps", "branches", "then", "else")}
        inner = set(scope)
        if kind == "for_each":
            inner.add(body["var"])
        _check_refs(fields, bpath, scope, fail)
        step = Step(kind, sid, fields, [], *marks.get(path, (0, 0)))
        if kind in ("parallel", "fallback"):
            step.branches = [build_steps(b, bpath + ("branches", i), inner)
                             for i, b in enumerate(body["branches"])]
        elif kind == "if":
            step.branches = [build_steps(body["then"], bpath + ("then",), inner),
                             build_steps(body.get("else", []), bpath + ("else",), inner)]
        elif kind in CONTAINER_KINDS:
            step.branches = [build_steps(body["steps"], bpath + ("steps",), inner)]
        return step

    steps = build_steps(data["steps"], ("steps",), set(params))
    # `if` conditions must refer to a step that exists and runs before them.
    order = [s.id for st in steps for s in st.walk()]
    for st in steps:
        for s in st.walk():
            if s.kind == "if":
                ref = s.fields["condition"]["step"]
                if ref not in order or order.index(ref) >= order.index(s.id):
                    raise fail(seen[s.id] + ("condition", "step"),
                               f"condition refers to step '{ref}', which does not run before '{s.id}'")
    recovery = data.get("recovery") or {}
    return Protocol(name=data["name"], steps=steps, version=str(data.get("version", "1.0.0")),
                    description=data.get("description", ""), parameters=params, recovery=recovery,
                    source=source, text=text)


def _check_refs(value: Any, path: tuple, scope: set[str], fail) -> None:
    if isinstance(value, str):
        for name, _fields in _REF.findall(value):
            if name not in scope:
                raise fail(path, f"'${{{name}}}' is not a parameter or loop variable here "
                                 f"(known: {', '.join(sorted(scope)) or 'none'})")
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_refs(v, path + (k,), scope, fail)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_refs(v, path + (i,), scope, fail)
