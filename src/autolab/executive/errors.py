"""Named exceptions of the executive layer; the node and the CLI turn them into error codes."""

from __future__ import annotations


class ExecutiveError(RuntimeError):
    """Base of the executive's errors."""


class CompileError(ExecutiveError):
    """A protocol cannot be compiled into a tree (unknown step kind, bad value)."""


class UnknownRun(ExecutiveError):
    """No run with that id (or no active run when none was named)."""


class CommandRefused(ExecutiveError):
    """pause/resume/abort/acknowledge does not apply to the run in its current state."""


class ResumeError(ExecutiveError):
    """An interrupted run cannot be resumed safely; the message says why."""


class BTXMLError(ExecutiveError):
    """A BehaviorTree.CPP XML document is malformed or uses nodes we do not know."""

    def __init__(self, reason: str, line: int = 0, column: int = 0, source: str = "<xml>") -> None:
        self.reason, self.line, self.column, self.source = reason, line, column, source
        super().__init__(f"{source}:{line}:{column}: {reason}")


class CheckpointError(ExecutiveError):
    """A checkpoint could not be written or read."""
