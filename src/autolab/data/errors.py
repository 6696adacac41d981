"""Named exceptions of the data layer; the edges (nodes, CLI) turn them into messages."""

from __future__ import annotations


class DataError(Exception):
    """Base class of every error raised by autolab.data."""


class StoreError(DataError):
    """The run store cannot be opened, migrated or written (names the URL and the cause)."""


class UnknownRun(DataError, KeyError):
    """A run id that is not in the store."""

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.run_id = run_id

    def __str__(self) -> str:
        return f"no run with id '{self.run_id}' in the run store"


class RunFinished(DataError):
    """A write to a run that has already finished (its record is closed)."""


class InvalidRecord(DataError, ValueError):
    """A record with a missing or malformed field; the message names the field."""


class DocumentError(DataError, ValueError):
    """An event document that breaks the document model (order, schema, keys)."""


class ExportError(DataError):
    """A run bundle cannot be written (destination exists, missing file, ...)."""


class RecordingError(DataError):
    """An MCAP recording cannot be started or written."""
