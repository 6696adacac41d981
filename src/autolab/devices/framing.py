"""Framing of autolab's instrument line protocol (ALP), and a line splitter for any line protocol.

A frame is one ASCII line, NMEA-0183 style::

    >1F START op=seal temperature_c=165 time_s=3*66\r\n     (request)
    <1F OK state=busy*24\r\n                                (response)
    <1F ER E_DOOR door is open*54\r\n                      (refusal: code, message)

`>`/`<` marks direction, two hex digits give a sequence number (responses echo
it, so a late answer to a retried command is recognised and dropped), and `*hh`
is the XOR of every byte between the marker and the `*`. Arguments are
`key=value` words; values are printable ASCII without spaces, `*` or `=` (lists
are comma-separated). See docs/serial-protocols.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from autolab.devices.errors import ChecksumError, FramingError

TERMINATOR = b"\r\n"
#: Longest accepted line; a 96-well absorbance table is about 1.2 kB.
MAX_LINE = 8192

_VALUE_RE = re.compile(r"^[!-~]+$")
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def checksum(body: bytes) -> int:
    """XOR of all bytes, as in NMEA 0183."""
    value = 0
    for b in body:
        value ^= b
    return value


@dataclass(frozen=True)
class Frame:
    direction: str  # ">" request, "<" response
    seq: int
    verb: str  # request verb, or "OK"/"ER" for responses
    args: dict[str, str] = field(default_factory=dict)
    words: tuple[str, ...] = ()  # positional words (error code and message of ER)

    @property
    def ok(self) -> bool:
        return self.direction == "<" and self.verb == "OK"


def format_value(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, list | tuple):
        text = ",".join(format_value(v) for v in value)
    else:
        text = str(value)
    if not text or not _VALUE_RE.match(text) or "*" in text or "=" in text:
        raise FramingError(f"value {text!r} cannot be sent: printable ASCII without spaces, '*' or '=' only")
    return text


def encode(
    direction: str, seq: int, verb: str, args: dict[str, object] | None = None, words: list[str] | tuple[str, ...] = ()
) -> bytes:
    if direction not in "<>" or not (0 <= seq <= 0xFF):
        raise FramingError(f"bad frame header {direction!r} {seq}")
    parts = [f"{seq:02X}", verb]
    for key, value in (args or {}).items():
        if not _KEY_RE.match(key):
            raise FramingError(f"argument name {key!r} is not an identifier")
        parts.append(f"{key}={format_value(value)}")
    parts.extend(w.replace("*", "x") for w in words)
    body = " ".join(parts).encode("ascii", errors="replace")
    return direction.encode() + body + f"*{checksum(body):02X}".encode() + TERMINATOR


def decode(line: bytes) -> Frame:
    """Parse one line (terminator stripped or not); raises FramingError or ChecksumError naming the fault."""
    line = line.rstrip(b"\r\n")
    if not line:
        raise FramingError("empty line")
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        raise FramingError(f"non-ASCII bytes in frame: {line[:40]!r}") from None
    if text[0] not in "<>":
        raise FramingError(f"frame does not start with '>' or '<': {text[:40]!r}")
    star = text.rfind("*")
    if star < 0 or len(text) - star != 3:
        raise FramingError(f"frame has no '*hh' checksum: {text[:40]!r}")
    body = text[1:star]
    try:
        expected = int(text[star + 1 :], 16)
    except ValueError:
        raise FramingError(f"checksum {text[star + 1 :]!r} is not hex") from None
    actual = checksum(body.encode("ascii"))
    if actual != expected:
        raise ChecksumError(f"checksum mismatch: frame says {expected:02X}, body gives {actual:02X}")
    parts = body.split(" ")
    if len(parts) < 2:
        raise FramingError(f"frame has no verb: {text[:40]!r}")
    try:
        seq = int(parts[0], 16)
    except ValueError:
        raise FramingError(f"sequence {parts[0]!r} is not hex") from None
    args: dict[str, str] = {}
    words: list[str] = []
    for part in parts[2:]:
        key, eq, value = part.partition("=")
        if eq and _KEY_RE.match(key) and not words:
            args[key] = value
        else:
            words.append(part)
    return Frame(text[0], seq, parts[1], args, tuple(words))


class LineSplitter:
    """Accumulates bytes and yields complete lines; an over-long run without a terminator is garbage."""

    def __init__(self, terminator: bytes = TERMINATOR, max_line: int = MAX_LINE) -> None:
        self._buf = bytearray()
        self._term = terminator
        self._max = max_line

    def feed(self, data: bytes) -> list[bytes]:
        self._buf.extend(data)
        lines: list[bytes] = []
        while (i := self._buf.find(self._term)) >= 0:
            lines.append(bytes(self._buf[:i]))
            del self._buf[: i + len(self._term)]
        if len(self._buf) > self._max:
            dropped = len(self._buf)
            self._buf.clear()
            raise FramingError(f"{dropped} bytes without a line terminator (garbage on the line?)")
        return lines

    def clear(self) -> None:
        self._buf.clear()
