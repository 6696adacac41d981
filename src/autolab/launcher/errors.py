"""Errors of the launch-file interpreter and the process supervisor.

Every error raised while reading a launch file names the file and line, so the
person editing it can go straight to the problem.
"""

from __future__ import annotations


class LaunchError(Exception):
    """Base class: anything that stops a launch before or while it runs."""


class LaunchFileError(LaunchError):
    """A launch file is malformed or asks for something invalid; names file:line."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.path = path
        self.line = line
        where = f"{path}:{line}: " if path and line else (f"{path}: " if path else "")
        super().__init__(f"{where}{message}")


class UnsupportedConstruct(LaunchFileError):
    """A construct of the ROS 2 launch frontend that `autolab launch` does not implement."""


class SubstitutionError(LaunchFileError):
    """A `$(...)` substitution is malformed, unknown or cannot be resolved."""


class LaunchArgumentError(LaunchFileError):
    """A launch argument is missing, unknown, or not one of its choices."""


class ExecutableNotFound(LaunchError):
    """A node's `pkg`/`exec` does not resolve to anything runnable here."""
