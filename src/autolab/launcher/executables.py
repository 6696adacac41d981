"""Resolve a node's `pkg`/`exec` to a command line, as `ros2 run` would.

For autolab's own nodes the console-script entry points (setup.py) name the
module; we run that entry point with this interpreter so the venv need not be
on PATH. Other packages are looked up as `<prefix>/lib/<pkg>/<exec>` on
AMENT_PREFIX_PATH, which is where colcon installs executables.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from functools import cache
from importlib import metadata
from pathlib import Path

from autolab.launcher.errors import ExecutableNotFound

PACKAGE = "autolab"


@cache
def _autolab_entry_points() -> dict[str, str]:
    out: dict[str, str] = {}
    for ep in metadata.entry_points(group="console_scripts"):
        dist = getattr(ep, "dist", None)
        if dist is not None and dist.metadata["Name"] == PACKAGE:
            out[ep.name] = ep.value
    return out


def entry_point(package: str, executable: str) -> str | None:
    """`module:function` of an autolab executable, or None for other packages.

    Without installed metadata (a bare checkout on PYTHONPATH), the setup.py
    convention `<x>_node -> autolab.nodes.<x>:main` applies.
    """
    if package != PACKAGE:
        return None
    found = _autolab_entry_points().get(executable)
    if found:
        return found
    if executable.endswith("_node"):
        return f"autolab.nodes.{executable.removesuffix('_node')}:main"
    return None


def module_available(module: str) -> bool:
    """True when `module` exists in this build (it may still fail to import)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def command_for(package: str, executable: str) -> list[str]:
    """The argv prefix that runs `executable` of `package`; raises ExecutableNotFound."""
    target = entry_point(package, executable)
    if target is not None:
        module, _, func = target.partition(":")
        if not module_available(module):
            raise ExecutableNotFound(f"executable '{executable}' of package '{package}': module {module} "
                                     "is not in this build")
        code = (f"import sys; sys.argv[0] = {executable!r}; from {module} import {func or 'main'} as main; "
                "sys.exit(main())")
        return [sys.executable, "-c", code]
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        candidate = Path(prefix, "lib", package, executable)
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return [str(candidate)]
    raise ExecutableNotFound(f"executable '{executable}' of package '{package}' not found "
                             "(not an autolab entry point, nor in <prefix>/lib/<pkg>/ on AMENT_PREFIX_PATH)")
