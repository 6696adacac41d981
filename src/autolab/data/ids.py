"""Identifiers of runs and records: ULIDs, sortable by creation time.

ULIDs sort lexicographically in creation order (millisecond resolution), so
"newest runs first" is an index scan, and an id alone tells when it was made.
Within one millisecond of one process they are made monotonic, so records
written in a burst keep their order.
"""

from __future__ import annotations

import threading
import time

from ulid import ULID

_lock = threading.Lock()
_last = 0


def new_id() -> str:
    """A new ULID as its 26-character Crockford base32 string, monotonic in this process."""
    global _last
    with _lock:
        value = int(ULID())
        if value <= _last:
            # Same millisecond (or a clock step back): keep order by incrementing the random part.
            value = _last + 1
        _last = value
        return str(ULID.from_int(value))


def is_id(text: str) -> bool:
    """True when `text` is a well-formed ULID string."""
    try:
        ULID.from_str(text)
    except (ValueError, TypeError):
        return False
    return True


def id_time(text: str) -> float:
    """The creation time (Unix seconds) encoded in a ULID."""
    return ULID.from_str(text).timestamp


def now() -> float:
    """Wall-clock time in Unix seconds: the time base of every record in the store."""
    return time.time()
