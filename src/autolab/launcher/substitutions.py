"""`$(...)` substitutions of the ROS 2 launch frontend: parsing and evaluation.

The grammar follows launch's own (launch/frontend/grammar.lark, Jazzy):
`$(name arg arg ...)`, arguments separated by single spaces, each either
unquoted (may embed nested substitutions) or a quoted template. Evaluation is
eager: launch files are interpreted top to bottom, so a `$(var x)` sees the
value `x` has at that point, as it does under `ros2 launch` for the subset we
support.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from autolab.launcher.errors import SubstitutionError, UnsupportedConstruct


@dataclass(frozen=True)
class Subst:
    """One `$(name args...)`; each argument is itself a list of text/Subst fragments."""

    name: str
    args: tuple[tuple[Fragment, ...], ...]


Fragment = str | Subst

#: Substitutions launch offers that we refuse: each would need machinery we do not have.
UNSUPPORTED = {
    "command": "it runs a shell command at launch time",
    "eval": "it evaluates arbitrary Python",
    "file-content": "not used by autolab's launch files",
    "find-exec": "not used by autolab's launch files",
    "exec-in-pkg": "not used by autolab's launch files",
    "find-pkg-prefix": "not used by autolab's launch files",
    "param": "it reads a parameter of a running node",
    "log_dir": "not used by autolab's launch files",
    "launch_log_dir": "not used by autolab's launch files",
    "if": "not used by autolab's launch files",
}


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, message: str) -> SubstitutionError:
        return SubstitutionError(f"{message} in {self.text!r} (at character {self.pos})")

    def template(self) -> list[Fragment]:
        out: list[Fragment] = []
        buf: list[str] = []
        while self.pos < len(self.text):
            if not self._nested(out, buf):
                buf.append(self.text[self.pos])
                self.pos += 1
        if buf:
            out.append("".join(buf))
        return out

    def _nested(self, out: list[Fragment], buf: list[str]) -> bool:
        """At a `$(`: move pending text from `buf` to `out`, parse the substitution into `out`."""
        if not self.text.startswith("$(", self.pos):
            return False
        if buf:
            out.append("".join(buf))
            buf.clear()
        out.append(self.substitution())
        return True

    def substitution(self) -> Subst:
        self.pos += 2  # "$("
        start = self.pos
        while self.pos < len(self.text) and (self.text[self.pos].isalnum() or self.text[self.pos] in "_-"):
            self.pos += 1
        name = self.text[start:self.pos]
        if not name or not name[0].isalpha():
            raise self.error("expected a substitution name after '$('")
        args: list[tuple[Fragment, ...]] = []
        while True:
            if self.pos >= len(self.text):
                raise self.error(f"unterminated substitution $({name} ...")
            ch = self.text[self.pos]
            if ch == ")":
                self.pos += 1
                return Subst(name, tuple(args))
            if ch != " ":
                raise self.error(f"expected ' ' or ')' in $({name} ...)")
            self.pos += 1
            args.append(tuple(self.value()))

    def value(self) -> list[Fragment]:
        if self.pos < len(self.text) and self.text[self.pos] in "'\"":
            return self.quoted(self.text[self.pos])
        out: list[Fragment] = []
        buf: list[str] = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if self._nested(out, buf):
                continue
            if ch in " )":
                break
            if ch == "(":
                raise self.error("unescaped '(' in a substitution argument")
            if ch == "\\" and self.pos + 1 < len(self.text) and self.text[self.pos + 1] in "()'\"$":
                self.pos += 1
                ch = self.text[self.pos]
            buf.append(ch)
            self.pos += 1
        if buf:
            out.append("".join(buf))
        if not out:
            raise self.error("empty substitution argument")
        return out

    def quoted(self, quote: str) -> list[Fragment]:
        self.pos += 1
        out: list[Fragment] = []
        buf: list[str] = []
        while True:
            if self.pos >= len(self.text):
                raise self.error(f"unterminated {quote}-quoted argument")
            ch = self.text[self.pos]
            if ch == quote:
                self.pos += 1
                break
            if self._nested(out, buf):
                continue
            if ch == "\\" and self.pos + 1 < len(self.text) and self.text[self.pos + 1] == quote:
                self.pos += 1
                ch = quote
            buf.append(ch)
            self.pos += 1
        if buf:
            out.append("".join(buf))
        return out or [""]


def parse(text: str) -> list[Fragment]:
    """Split `text` into literal text and `Subst` fragments."""
    return _Parser(text).template()


def has_substitutions(text: str) -> bool:
    return any(isinstance(f, Subst) for f in parse(text))


def find_package_share(package: str) -> Path:
    """`$(find-pkg-share pkg)`: the ament index on AMENT_PREFIX_PATH, and autolab's own share dir."""
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        marker = Path(prefix, "share", "ament_index", "resource_index", "packages", package)
        if marker.is_file():
            return Path(prefix, "share", package)
    if package == "autolab":
        from autolab.paths import share_dir

        return share_dir()
    raise SubstitutionError(f"package '{package}' not found in the ament index (AMENT_PREFIX_PATH)")


def to_bool(value: str, what: str) -> bool:
    """Launch's condition semantics: 'true'/'1' and 'false'/'0' (any case), nothing else."""
    low = value.strip().lower()
    if low in ("true", "1"):
        return True
    if low in ("false", "0"):
        return False
    raise SubstitutionError(f"{what} must be true/false/1/0, got {value!r}")


def _comparable(value: str) -> object:
    low = value.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return float(value)
    except ValueError:
        return value


class Evaluator:
    """Evaluates fragments against the current launch configurations and file."""

    def __init__(self, configs: Mapping[str, str], current_file: Path | None,
                 env: Mapping[str, str] | None = None) -> None:
        self.configs = configs
        self.current_file = current_file
        self.env = os.environ if env is None else env
        self._handlers: dict[str, Callable[[list[str]], str]] = {
            "var": self._var,
            "env": self._env,
            "optenv": self._optenv,
            "find-pkg-share": lambda a: str(find_package_share(self._one(a, "find-pkg-share"))),
            "dirname": lambda a: str(self._file("dirname", a).parent),
            "filename": lambda a: str(self._file("filename", a)),
            "anon": lambda a: f"{self._one(a, 'anon')}_{secrets.token_hex(4)}",
            "not": lambda a: _b(not to_bool(self._one(a, "not"), "$(not ...) argument")),
            "and": lambda a: _b(all(to_bool(x, "$(and ...) argument") for x in self._n(a, 2, "and"))),
            "or": lambda a: _b(any(to_bool(x, "$(or ...) argument") for x in self._n(a, 2, "or"))),
            "all": lambda a: _b(all(to_bool(x, "$(all ...) argument") for x in a)),
            "any": lambda a: _b(any(to_bool(x, "$(any ...) argument") for x in a)),
            "equals": lambda a: _b(_eq(*self._n(a, 2, "equals"))),
            "not-equals": lambda a: _b(not _eq(*self._n(a, 2, "not-equals"))),
        }

    def evaluate(self, text: str) -> str:
        return self.render(parse(text))

    def render(self, fragments: list[Fragment] | tuple[Fragment, ...]) -> str:
        return "".join(f if isinstance(f, str) else self._apply(f) for f in fragments)

    def _apply(self, sub: Subst) -> str:
        if sub.name in UNSUPPORTED:
            raise UnsupportedConstruct(f"substitution $({sub.name} ...) is not supported by autolab launch "
                                       f"({UNSUPPORTED[sub.name]}); use ros2 launch for this file")
        handler = self._handlers.get(sub.name)
        if handler is None:
            raise SubstitutionError(f"unknown substitution $({sub.name} ...)")
        return handler([self.render(arg) for arg in sub.args])

    @staticmethod
    def _one(args: list[str], name: str) -> str:
        if len(args) != 1:
            raise SubstitutionError(f"$({name} ...) takes one argument, got {len(args)}")
        return args[0]

    @staticmethod
    def _n(args: list[str], n: int, name: str) -> list[str]:
        if len(args) != n:
            raise SubstitutionError(f"$({name} ...) takes {n} arguments, got {len(args)}")
        return args

    def _var(self, args: list[str]) -> str:
        name = self._one(args, "var")
        if name not in self.configs:
            raise SubstitutionError(f"launch configuration '{name}' is not set "
                                    f"(declare it with `arg` or `let` before using $(var {name}))")
        return self.configs[name]

    def _env(self, args: list[str]) -> str:
        if len(args) not in (1, 2):
            raise SubstitutionError(f"$(env NAME [default]) takes one or two arguments, got {len(args)}")
        if args[0] in self.env:
            return self.env[args[0]]
        if len(args) == 2:
            return args[1]
        raise SubstitutionError(f"environment variable '{args[0]}' is not set and $(env {args[0]}) "
                                "gives no default")

    def _optenv(self, args: list[str]) -> str:
        if len(args) not in (1, 2):
            raise SubstitutionError(f"$(optenv NAME [default]) takes one or two arguments, got {len(args)}")
        return self.env.get(args[0], args[1] if len(args) == 2 else "")

    def _file(self, name: str, args: list[str]) -> Path:
        if args:
            raise SubstitutionError(f"$({name}) takes no arguments")
        if self.current_file is None:
            raise SubstitutionError(f"$({name}) used outside a launch file")
        return self.current_file


def _b(value: bool) -> str:
    return "true" if value else "false"


def _eq(a: str, b: str) -> bool:
    return _comparable(a) == _comparable(b)
