"""MCAP files of a run's ROS topics, readable by `ros2 bag` (rosbag2_storage_mcap) and Foxglove.

No rclpy here: the recorder node hands in serialized CDR bytes as received
(`raw=True` subscriptions), so messages are stored exactly as they travelled.
Each channel's schema is the ROS 2 message definition in the `ros2msg`
encoding that rosbag2 writes: the type's .msg text followed by every nested
type's text under a `MSG: pkg/Type` separator, read from the ament share
directories (`<prefix>/share/<pkg>/msg/<Type>.msg`) of $AMENT_PREFIX_PATH.

Chunks are small (256 KiB by default) so that a kill -9 loses at most one
chunk of topic data; the run's records and documents are in the run store.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

from autolab.data.errors import RecordingError

PRIMITIVES = {
    "bool",
    "byte",
    "char",
    "float32",
    "float64",
    "int8",
    "uint8",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "string",
    "wstring",
}
SEPARATOR = "=" * 80
MEDIA_TYPE = "application/x-mcap"


def share_dirs() -> list[Path]:
    """Share directories of every ament prefix (where .msg files are installed)."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    return [Path(p) / "share" for p in prefixes]


def _split_type(type_name: str) -> tuple[str, str]:
    """'sensor_msgs/msg/Image' or 'sensor_msgs/Image' -> ('sensor_msgs', 'Image')."""
    parts = type_name.split("/")
    if len(parts) == 3 and parts[1] == "msg":
        return parts[0], parts[2]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise RecordingError(f"'{type_name}' is not a message type name (expected pkg/msg/Type)")


def _msg_text(pkg: str, name: str, dirs: list[Path]) -> str:
    for d in dirs:
        path = d / pkg / "msg" / f"{name}.msg"
        if path.is_file():
            return path.read_text()
    raise RecordingError(
        f"no definition of {pkg}/msg/{name} in {', '.join(map(str, dirs)) or '(no prefixes)'}"
        " (is its package installed and AMENT_PREFIX_PATH set?)"
    )


_FIELD = re.compile(r"^\s*([A-Za-z_][\w/]*)(?:<=\d+)?(?:\[[^\]]*\])?\s+[A-Za-z_]\w*")


def _field_types(text: str) -> list[str]:
    """The type names of a .msg's fields (not its constants)."""
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].rstrip()
        m = _FIELD.match(line)
        if not m:
            continue
        after = line[m.end() :].lstrip()
        if after.startswith("="):  # a constant: `uint8 FOO=1`
            continue
        out.append(m.group(1))
    return out


def message_definition(type_name: str, dirs: list[Path] | None = None) -> str:
    """The full `ros2msg` schema text of a message type, nested types included (as rosbag2 writes it)."""
    dirs = share_dirs() if dirs is None else dirs
    pkg, name = _split_type(type_name)
    top = _msg_text(pkg, name, dirs)
    parts = [top.rstrip("\n")]
    seen: set[str] = set()
    stack = [(pkg, top)]
    order: list[tuple[str, str]] = []
    while stack:
        owner, text = stack.pop(0)
        for ftype in _field_types(text):
            if ftype in PRIMITIVES:
                continue
            if ftype == "Header":
                dep = ("std_msgs", "Header")
            elif "/" in ftype:
                dep = _split_type(ftype)
            else:
                dep = (owner, ftype)
            key = f"{dep[0]}/{dep[1]}"
            if key in seen:
                continue
            seen.add(key)
            dep_text = _msg_text(dep[0], dep[1], dirs)
            order.append((key, dep_text))
            stack.append((dep[0], dep_text))
    for key, dep_text in order:
        parts.append(f"{SEPARATOR}\nMSG: {key}\n{dep_text.rstrip(chr(10))}")
    return "\n".join(parts) + "\n"


class RateLimiter:
    """Accept at most `hz` messages per second (hz <= 0: accept all)."""

    def __init__(self, hz: float) -> None:
        self.period_ns = int(1e9 / hz) if hz > 0 else 0
        self._last: int | None = None

    def accept(self, t_ns: int) -> bool:
        if self.period_ns and self._last is not None and t_ns - self._last < self.period_ns:
            return False
        self._last = t_ns
        return True


class McapRunRecorder:
    """One run's MCAP file: channels registered on first use, thread-safe writes."""

    def __init__(
        self, path: str | Path, run_id: str = "", chunk_size: int = 256 * 1024, metadata: dict[str, str] | None = None
    ) -> None:
        from mcap.writer import CompressionType, Writer

        self.path = Path(path)
        self.run_id = run_id
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise RecordingError(f"cannot create MCAP file {self.path}: {exc.strerror}") from None
        self._writer = Writer(self._file, chunk_size=chunk_size, compression=CompressionType.ZSTD)
        self._writer.start(profile="ros2", library="autolab recorder (mcap python)")
        if metadata or run_id:
            self._writer.add_metadata("autolab", {"run_id": run_id, **(metadata or {})})
        self._lock = threading.Lock()
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, int] = {}
        self._seq: dict[str, int] = {}
        self.message_count = 0
        self.closed = False

    def add_channel(
        self, topic: str, type_name: str, definition: str | None = None, offered_qos_profiles: str = ""
    ) -> None:
        """Register a topic (idempotent); `definition` defaults to `message_definition(type_name)`."""
        with self._lock:
            if topic in self._channels:
                return
            pkg, name = _split_type(type_name)
            full = f"{pkg}/msg/{name}"
            if full not in self._schemas:
                text = definition if definition is not None else message_definition(full)
                self._schemas[full] = self._writer.register_schema(full, "ros2msg", text.encode())
            meta = {"offered_qos_profiles": offered_qos_profiles} if offered_qos_profiles else {}
            self._channels[topic] = self._writer.register_channel(topic, "cdr", self._schemas[full], meta)
            self._seq[topic] = 0

    def has_channel(self, topic: str) -> bool:
        return topic in self._channels

    def write(
        self, topic: str, data: bytes, log_time_ns: int | None = None, publish_time_ns: int | None = None
    ) -> None:
        """Append one serialized (CDR) message of a registered topic."""
        t = time.time_ns() if log_time_ns is None else log_time_ns
        with self._lock:
            if self.closed:
                return
            channel = self._channels.get(topic)
            if channel is None:
                raise RecordingError(f"topic {topic} was not registered with add_channel")
            self._seq[topic] += 1
            self._writer.add_message(channel, t, bytes(data), publish_time_ns or t, self._seq[topic])
            self.message_count += 1

    def close(self) -> None:
        """Write the summary and footer (the file is then indexed for fast seeking)."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            try:
                self._writer.finish()
            finally:
                self._file.close()
