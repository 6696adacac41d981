"""Interpret a ROS 2 YAML launch file into a plan: the processes to start and how.

The file is read with line numbers (PyYAML's composer), every entity is checked
the way launch_yaml checks it (attribute types, no unknown keys), and the
actions we support are applied in order to a scope holding the launch
configurations, the ROS namespace, global parameters and remaps, exactly the
state launch_ros keeps in its launch context. The result is a `LaunchPlan` of
`NodeSpec`/`ProcessSpec`, which the supervisor runs as processes and
`autolab up` runs as nodes in one executor.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, SequenceNode

from autolab.launcher.errors import (
    LaunchArgumentError,
    LaunchError,
    LaunchFileError,
    SubstitutionError,
    UnsupportedConstruct,
)
from autolab.launcher.substitutions import Evaluator, to_bool

#: Actions of launch / launch_ros (Jazzy) that autolab launch refuses, with why.
UNSUPPORTED_ACTIONS = {
    "node_container": "composable nodes need rclcpp_components",
    "load_composable_node": "composable nodes need rclcpp_components",
    "composable_node": "composable nodes need rclcpp_components",
    "ros_timer": "timers are not used by autolab's launch files",
    "timer": "timers are not used by autolab's launch files",
    "set_parameters_from_file": "not used by autolab's launch files; use a node's `param: - from:`",
    "set_ros_log_dir": "not used by autolab's launch files",
    "set_use_sim_time": "use `set_parameter: {name: use_sim_time, ...}`",
    "log": "not used by autolab's launch files",
    "shutdown": "not used by autolab's launch files; use `on_exit: shutdown` on a node",
    "reset": "not used by autolab's launch files",
    "append_env": "not used by autolab's launch files",
    "reset_env": "not used by autolab's launch files",
}

_OUTPUTS = ("log", "screen", "both")


# --- the plan ------------------------------------------------------------------

@dataclass
class ProcessSpec:
    """A process to supervise: `executable` entities, and the base of nodes."""

    label: str
    cmd: list[str] = field(default_factory=list)
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    output: str = "log"
    respawn: bool = False
    respawn_delay: float = 0.0
    respawn_max_retries: int = -1  # -1: no limit, as in launch
    required: bool = False  # on_exit: shutdown
    sigterm_timeout: float = 5.0
    sigkill_timeout: float = 5.0
    source: str = ""  # file:line of the entity, for messages


@dataclass
class NodeSpec(ProcessSpec):
    """A ROS node: `node` entities. Its command line is built at start from these fields."""

    package: str = ""
    executable: str = ""
    name: str | None = None
    namespace: str | None = None  # absolute, or None for the root
    parameters: list[dict[str, Any] | Path] = field(default_factory=list)
    remaps: list[tuple[str, str]] = field(default_factory=list)
    ros_args: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)

    @property
    def fully_qualified_name(self) -> str | None:
        if self.name is None:
            return None
        ns = self.namespace or ""
        return f"{ns.rstrip('/')}/{self.name}"

    def ros_arguments(self) -> list[str]:
        """`--ros-args ...` as launch_ros builds it: name, namespace, parameters, remaps, extra."""
        out = ["--ros-args"]
        if self.name is not None:
            out += ["-r", f"__node:={self.name}"]
        if self.namespace is not None:
            out += ["-r", f"__ns:={self.namespace}"]
        for entry in self.parameters:
            if isinstance(entry, Path):
                out += ["--params-file", str(entry)]
            else:
                for key, value in entry.items():
                    out += ["-p", f"{key}:={_param_text(value)}"]
        for src, dst in self.remaps:
            out += ["-r", f"{src}:={dst}"]
        out += self.ros_args
        return out


@dataclass
class ArgumentInfo:
    name: str
    default: str | None
    description: str
    choices: list[str]
    source: str


@dataclass
class LaunchPlan:
    """What a launch file asks for, with every substitution resolved."""

    path: Path
    processes: list[ProcessSpec]
    arguments: dict[str, ArgumentInfo]
    configurations: dict[str, str]
    warnings: list[str] = field(default_factory=list)

    @property
    def nodes(self) -> list[NodeSpec]:
        return [p for p in self.processes if isinstance(p, NodeSpec)]


def _param_text(value: Any) -> str:
    """A parameter value as rcl's `-p name:=value` YAML parser reads it."""
    if isinstance(value, str):
        return value if value else "''"
    return yaml.safe_dump(value, default_flow_style=True, width=1 << 20).strip().removesuffix("...").strip()


# --- reading entities with line numbers -------------------------------------------

_constructor = SafeConstructor()


def _to_python(node: Node) -> Any:
    return _constructor.construct_object(node, deep=True)


class Entity:
    """One launch entity (`node:`, `group:`...) with its attributes and source line."""

    def __init__(self, type_name: str, node: Node, path: Path) -> None:
        self.type_name = type_name
        self.node = node
        self.path = path
        self.line = node.start_mark.line + 1
        self._attrs: dict[str, Node] = {}
        self._read: set[str] = set()
        if isinstance(node, MappingNode):
            for key, value in node.value:
                self._attrs[str(_to_python(key))] = value
        elif not isinstance(node, SequenceNode):
            raise self.error(f"`{type_name}` must be a mapping of attributes, got {_to_python(node)!r}")

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def error(self, message: str, cls: type[LaunchFileError] = LaunchFileError) -> LaunchFileError:
        return cls(message, str(self.path), self.line)

    def has(self, name: str) -> bool:
        return name in self._attrs

    def attr(self, name: str, kind: str = "str", optional: bool = False) -> Any:
        """An attribute, type-checked like launch_yaml: str attributes must be YAML strings."""
        if name not in self._attrs:
            if optional:
                return None
            raise self.error(f"`{self.type_name}` needs the attribute `{name}`")
        self._read.add(name)
        node = self._attrs[name]
        if kind == "entities":
            if not isinstance(node, SequenceNode) or not all(isinstance(n, MappingNode) for n in node.value):
                raise LaunchFileError(f"`{self.type_name}.{name}` must be a list of mappings",
                                      str(self.path), node.start_mark.line + 1)
            return [Entity(name, n, self.path) for n in node.value]
        value = _to_python(node)
        allowed: tuple[type, ...] = {
            "str": (str,), "float": (str, float), "int": (str, int), "bool": (str, bool),
        }.get(kind, (str, int, float, bool, list))
        if not isinstance(value, allowed) or (isinstance(value, list) and kind != "any"):
            quote = kind == "str" and isinstance(value, (bool, int, float))
            hint = " (quote it, e.g. \"true\")" if quote else ""
            raise LaunchFileError(
                f"`{self.type_name}.{name}` must be {'a string' if kind == 'str' else kind}, "
                f"got {type(value).__name__} {value!r}{hint}", str(self.path), node.start_mark.line + 1)
        return value

    def children(self) -> list[tuple[str, Node]]:
        """Sub-entities: a list, or a mapping with a `children` list (as launch_yaml)."""
        if isinstance(self.node, SequenceNode):
            seq = self.node
        else:
            if "children" not in self._attrs:
                raise self.error(f"`{self.type_name}` needs a `children` list")
            self._read.add("children")
            seq = self._attrs["children"]
            if not isinstance(seq, SequenceNode):
                raise self.error(f"`{self.type_name}.children` must be a list")
        return [_single_key(item, self.path) for item in seq.value]

    def check_complete(self) -> None:
        """Refuse attributes nobody read: a typo must not be silently ignored."""
        unknown = sorted(set(self._attrs) - self._read)
        if unknown:
            cls = UnsupportedConstruct if self.type_name in ("node", "executable") else LaunchFileError
            raise self.error(f"`{self.type_name}` does not take the attribute(s) {', '.join(unknown)}", cls)


def _single_key(item: Node, path: Path) -> tuple[str, Node]:
    if not isinstance(item, MappingNode) or len(item.value) != 1:
        raise LaunchFileError("each launch entity must be a mapping with exactly one key, the entity type",
                              str(path), item.start_mark.line + 1)
    key, value = item.value[0]
    return str(_to_python(key)), value


# --- interpretation ---------------------------------------------------------------

@dataclass
class _Scope:
    configs: dict[str, str]
    namespace: str | None = None
    global_params: list[tuple[str, Any]] = field(default_factory=list)
    remaps: list[tuple[str, str]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def copy(self) -> _Scope:
        return _Scope(dict(self.configs), self.namespace, list(self.global_params), list(self.remaps),
                      dict(self.env))


def _prefix_namespace(base: str | None, ns: str) -> str:
    ns = ns.strip()
    if ns.startswith("/") or not base:
        out = ns
    else:
        out = f"{base.rstrip('/')}/{ns}"
    out = "/" + out.strip("/")
    return out


class _Interpreter:
    def __init__(self, given: Mapping[str, str], env: Mapping[str, str] | None,
                 depth_limit: int = 20, require_arguments: bool = True) -> None:
        self.given = dict(given)
        self.require_arguments = require_arguments
        self.env = env
        self.processes: list[ProcessSpec] = []
        self.arguments: dict[str, ArgumentInfo] = {}
        self.warnings: list[str] = []
        self.depth_limit = depth_limit
        self._stack: list[Path] = []
        self._include_args: list[set[str]] = []

    # entry points
    def run_file(self, path: Path, scope: _Scope) -> None:
        path = path.resolve()
        if path in self._stack:
            raise LaunchFileError(f"include cycle: {' -> '.join(map(str, [*self._stack, path]))}", str(path))
        if len(self._stack) >= self.depth_limit:
            raise LaunchFileError(f"includes nested deeper than {self.depth_limit}", str(path))
        if path.suffix not in (".yaml", ".yml"):
            raise UnsupportedConstruct(
                f"only YAML launch files are supported by autolab launch, not '{path.suffix}' files",
                str(path))
        try:
            text = path.read_text()
        except OSError as exc:
            raise LaunchFileError(f"cannot read launch file: {exc.strerror}", str(path)) from exc
        try:
            root = yaml.compose(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise LaunchFileError(f"not valid YAML: {getattr(exc, 'problem', exc)}", str(path),
                                  mark.line + 1 if mark else None) from exc
        top = root.value if isinstance(root, MappingNode) else []
        if len(top) != 1 or _to_python(top[0][0]) != "launch":
            raise LaunchFileError("a launch file must have one top-level key, `launch:`", str(path),
                                  root.start_mark.line + 1 if root is not None else None)
        body = root.value[0][1]
        if not isinstance(body, SequenceNode):
            raise LaunchFileError("`launch:` must be a list of entities", str(path), body.start_mark.line + 1)
        self._stack.append(path)
        try:
            for item in body.value:
                self.action(*_single_key(item, path), path, scope)
        finally:
            self._stack.pop()

    def action(self, type_name: str, node: Node, path: Path, scope: _Scope) -> None:
        if type_name in UNSUPPORTED_ACTIONS:
            raise UnsupportedConstruct(f"`{type_name}` is not supported by autolab launch "
                                       f"({UNSUPPORTED_ACTIONS[type_name]}); use ros2 launch for this file",
                                       str(path), node.start_mark.line + 1)
        handler = self._actions().get(type_name.replace("-", "_"))
        if handler is None:
            raise UnsupportedConstruct(f"unknown or unsupported launch entity `{type_name}`",
                                       str(path), node.start_mark.line + 1)
        entity = Entity(type_name, node, path)
        ev = Evaluator(scope.configs, path, self.env)
        try:
            if not self._condition(entity, ev):
                return
            handler(entity, ev, scope)
        except LaunchFileError as exc:
            if exc.path is None:  # a substitution error: attach where it happened
                raise type(exc)(exc.message, str(path), entity.line) from exc
            raise
        entity.check_complete()

    def _actions(self) -> dict[str, Any]:
        """The entities we interpret; the frontend spells some with '-' or '_' alike."""
        return {
            "arg": self._arg, "let": self._let, "include": self._include, "group": self._group,
            "push_ros_namespace": self._push_ros_namespace, "set_parameter": self._set_parameter,
            "set_remap": self._set_remap, "set_env": self._set_env, "node": self._node,
            "executable": self._executable,
        }

    # conditions and helpers
    def _condition(self, entity: Entity, ev: Evaluator) -> bool:
        if_c = entity.attr("if", optional=True)
        unless_c = entity.attr("unless", optional=True)
        if if_c is not None and unless_c is not None:
            raise entity.error("`if` and `unless` cannot be used together")
        if if_c is not None:
            return to_bool(ev.evaluate(if_c), f"`{entity.type_name}.if`")
        if unless_c is not None:
            return not to_bool(ev.evaluate(unless_c), f"`{entity.type_name}.unless`")
        return True

    @staticmethod
    def _typed(entity: Entity, ev: Evaluator, name: str, kind: str, default: Any) -> Any:
        value = entity.attr(name, kind, optional=True)
        if value is None:
            return default
        if not isinstance(value, str):
            return value
        text = ev.evaluate(value)
        try:
            if kind == "bool":
                return to_bool(text, f"`{entity.type_name}.{name}`")
            if kind == "float":
                return float(text)
            if kind == "int":
                return int(text)
        except ValueError as exc:
            raise entity.error(f"`{entity.type_name}.{name}` must be {kind}, got {text!r}") from exc
        return text

    # actions
    def _arg(self, e: Entity, ev: Evaluator, scope: _Scope) -> None:
        name = e.attr("name")
        default = e.attr("default", optional=True)
        description = e.attr("description", optional=True) or ""
        choices = [c.attr("value") for c in e.attr("choice", "entities", optional=True) or []]
        self.arguments.setdefault(name, ArgumentInfo(name, default, description, choices, e.where))
        included = len(self._stack) > 1
        if name in self.given and not included:
            scope.configs[name] = self.given[name]
        elif default is None and included and name not in self._include_args[-1] and self.require_arguments:
            # as launch does: an include must pass its file's required arguments explicitly
            raise e.error(f"included launch file needs argument '{name}', which the `include` does not pass",
                          LaunchArgumentError)
        elif name not in scope.configs:
            if default is None and not self.require_arguments:
                default = f"<{name}>"  # listing arguments: carry on with a visible placeholder
            if default is None:
                raise e.error(f"launch argument '{name}' is required (pass {name}:=<value>)"
                              + (f": {description}" if description else ""), LaunchArgumentError)
            scope.configs[name] = ev.evaluate(default)
        if choices and scope.configs[name] not in choices and self.require_arguments:
            raise e.error(f"launch argument '{name}' is {scope.configs[name]!r}, not one of "
                          f"{', '.join(choices)}", LaunchArgumentError)

    def _let(self, e: Entity, ev: Evaluator, scope: _Scope) -> None:
        scope.configs[ev.evaluate(e.attr("name"))] = ev.evaluate(e.attr("value"))

    def _include(self, e: Entity, ev: Evaluator, scope: _Scope) -> None:
        target = Path(ev.evaluate(e.attr("file")))
        if not target.is_absolute():
            target = e.path.parent / target
        passed: set[str] = set()
        for a in e.attr("arg", "entities", optional=True) or []:
            name = ev.evaluate(a.attr("name"))
            scope.configs[name] = ev.evaluate(a.attr("value"))
            passed.add(name)
            a.check_complete()
        if not target.is_file():
            raise e.error(f"included launch file not found: {target}")
        self._include_args.append(passed)
        try:
            self.run_file(target, scope)  # not scoped, as in Jazzy: wrap it in a `group` to scope it
        finally:
            self._include_args.pop()

    def _group(self, e: Entity, ev: Evaluator, scope: _Scope) -> None:
        scoped = self._typed(e, ev, "scoped", "bool", True)
        forwarding = self._typed(e, ev, "forwarding", "bool", True)
        keep = e.attr("keep", "entities", optional=True) or []
        inner = scope.copy() if scoped else scope
        if not forwarding:
            inner.configs.clear()
            for k in keep:
                inner.configs[ev.evaluate(k.attr("name"))] = ev.evaluate(k.attr("value"))
                k.check_complete()
        for type_name, node in e.children():
            self.action(type_name, node, e.path, inner)

    def _push_ros_namespace(self, e: Entity, ev: Evaluator, scope: _Scope) -> None:
        scope.namespace = _prefix_namespace(scope.namespace, ev.evaluate(e.attr("namespace")))

    def _set_parameter(self, e: Entity, ev: Evaluator, scope: _Scope) -> None:
        scope.global_params.append((ev.evaluate(e.attr("name")), ev.evaluate(e.attr("value"))))

    def _set_remap(self, e: Entity, ev: Evaluator, scope: _Scope) -> None:
        scope.remaps.append((ev.evaluate(e.attr("from")), ev.evaluate(e.attr("to"))))

    def _set_env(self, e: Entity, ev: Evaluator, scope: _Scope) -> None:
        scope.env[ev.evaluate(e.attr("name"))] = ev.evaluate(e.attr("value"))

    def _process_common(self, e: Entity, ev: Evaluator, scope: _Scope, spec: ProcessSpec) -> None:
        if e.has("launch-prefix") or e.has("launch_prefix"):
            raise e.error(f"`{e.type_name}.launch-prefix` is not supported by autolab launch",
                          UnsupportedConstruct)
        output = self._typed(e, ev, "output", "str", "log")
        if output not in _OUTPUTS:
            raise e.error(f"`{e.type_name}.output` must be one of {', '.join(_OUTPUTS)}, got {output!r}")
        on_exit = e.attr("on_exit", optional=True)
        if on_exit is not None and on_exit != "shutdown":
            raise e.error(f"`{e.type_name}.on_exit` must be `shutdown`, got {on_exit!r}")
        spec.output = output
        spec.required = on_exit == "shutdown"
        respawn = e.attr("respawn", optional=True)  # a string in launch (a substitution), never a YAML bool
        spec.respawn = respawn is not None and to_bool(ev.evaluate(respawn), f"`{e.type_name}.respawn`")
        spec.respawn_delay = self._typed(e, ev, "respawn_delay", "float", 0.0)
        spec.respawn_max_retries = self._typed(e, ev, "respawn_max_retries", "int", -1)
        spec.sigterm_timeout = self._typed(e, ev, "sigterm_timeout", "float", 5.0)
        spec.sigkill_timeout = self._typed(e, ev, "sigkill_timeout", "float", 5.0)
        cwd = e.attr("cwd", optional=True)
        spec.cwd = ev.evaluate(cwd) if cwd is not None else None
        spec.env = dict(scope.env)
        for item in e.attr("env", "entities", optional=True) or []:
            spec.env[ev.evaluate(item.attr("name"))] = ev.evaluate(item.attr("value"))
            item.check_complete()
        spec.source = e.where
        if spec.respawn and spec.required:
            self.warnings.append(f"{e.where}: `{spec.label}` has both respawn and on_exit: shutdown; "
                                 "its exit shuts the launch down only once it stops respawning")

    def _executable(self, e: Entity, ev: Evaluator, scope: _Scope) -> None:
        cmd = _split(ev.evaluate(e.attr("cmd")))
        if not cmd:
            raise e.error("`executable.cmd` is empty")
        name = e.attr("name", optional=True)
        spec = ProcessSpec(label=ev.evaluate(name) if name else Path(cmd[0]).name, cmd=cmd)
        self._process_common(e, ev, scope, spec)
        self.processes.append(spec)

    def _node(self, e: Entity, ev: Evaluator, scope: _Scope) -> None:
        pkg = e.attr("pkg", optional=True)
        if pkg is None:
            raise e.error("`node` without `pkg` is not supported by autolab launch", UnsupportedConstruct)
        executable = ev.evaluate(e.attr("exec"))
        name = e.attr("name", optional=True)
        name = ev.evaluate(name) if name is not None else None
        ns_attr = e.attr("namespace", optional=True)
        namespace = scope.namespace
        if ns_attr is not None:
            namespace = _prefix_namespace(scope.namespace, ev.evaluate(ns_attr))
        spec = NodeSpec(label=name or executable, package=ev.evaluate(pkg), executable=executable,
                        name=name, namespace=namespace)
        self._process_common(e, ev, scope, spec)
        if scope.global_params:
            spec.parameters.append(dict(scope.global_params))
        for p in e.attr("param", "entities", optional=True) or []:
            spec.parameters.append(self._param(p, ev))
        spec.remaps = list(scope.remaps)
        for r in e.attr("remap", "entities", optional=True) or []:
            spec.remaps.append((ev.evaluate(r.attr("from")), ev.evaluate(r.attr("to"))))
            r.check_complete()
        for attr, target in (("ros_args", spec.ros_args), ("args", spec.args)):
            text = e.attr(attr, optional=True)
            if text is not None:
                target += _split(ev.evaluate(text))
        self.processes.append(spec)

    def _param(self, p: Entity, ev: Evaluator) -> dict[str, Any] | Path:
        src = p.attr("from", optional=True)
        if src is not None:
            if p.has("name"):
                raise p.error("`param` takes `name` or `from`, not both")
            if p.has("allow_substs"):
                raise p.error("`param.allow_substs` is not supported by autolab launch", UnsupportedConstruct)
            path = Path(ev.evaluate(src))
            if not path.is_file():
                raise p.error(f"parameter file not found: {path}")
            p.check_complete()
            return path
        out: dict[str, Any] = {}
        self._param_into(p, ev, "", out)
        return out

    def _param_into(self, p: Entity, ev: Evaluator, prefix: str, out: dict[str, Any]) -> None:
        name = prefix + ev.evaluate(p.attr("name"))
        if p.has("type"):
            raise p.error("`param.type` is not supported by autolab launch", UnsupportedConstruct)
        nested = p.attr("param", "entities", optional=True)
        value = p.attr("value", "any", optional=True)
        if nested and value is not None:
            raise p.error("`param` takes `value` or nested `param`, not both")
        if nested:
            for child in nested:
                self._param_into(child, ev, name + ".", out)
        elif value is None:
            raise p.error(f"parameter '{name}' needs a `value` (or nested `param` entries)")
        elif isinstance(value, str):
            out[name] = ev.evaluate(value)
        elif isinstance(value, list):
            out[name] = [ev.evaluate(v) if isinstance(v, str) else v for v in value]
        else:
            out[name] = value
        p.check_complete()


def _split(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise SubstitutionError(f"cannot split command line {text!r}: {exc}") from exc


def load_launch_file(path: str | Path, arguments: Mapping[str, str] | None = None,
                     env: Mapping[str, str] | None = None, require_arguments: bool = True) -> LaunchPlan:
    """Interpret `path` with `arguments` (name -> value, as `name:=value` on the command line).

    `require_arguments=False` (for listing a file's arguments) fills required
    arguments with a `<name>` placeholder instead of failing.
    """
    path = Path(path)
    given = dict(arguments or {})
    interp = _Interpreter(given, env, require_arguments=require_arguments)
    scope = _Scope(configs={})
    try:
        interp.run_file(path, scope)
    except RecursionError as exc:
        raise LaunchError(f"{path}: launch description nested too deeply") from exc
    unknown = sorted(set(given) - set(interp.arguments))
    if unknown:
        interp.warnings.append(
            f"argument(s) {', '.join(unknown)} not declared by {path.name} or its includes; "
            "they are set but nothing declared uses them")
    return LaunchPlan(path.resolve(), interp.processes, interp.arguments, scope.configs, interp.warnings)


def with_overrides(spec: NodeSpec, **changes: Any) -> NodeSpec:
    """A copy of `spec` with fields changed (tests and `autolab up`)."""
    return replace(spec, **changes)


def parse_launch_arguments(items: list[str]) -> dict[str, str]:
    """`['a:=1', 'b:=x']` -> {'a': '1', 'b': 'x'}; anything else is an error naming it."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep or not name:
            raise LaunchArgumentError(f"launch arguments are name:=value, got {item!r}")
        out[name] = value
    return out
