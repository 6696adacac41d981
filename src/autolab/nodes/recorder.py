"""Recorder node: event documents into the run store and out on ROS; a run's topics into MCAP.

Documents. Producers either write documents to the run store themselves
(`autolab.data.documents.RunDocuments(run_id, store)`, as the executive does)
or publish them as `autolab_interfaces/RunEvent` on `/recorder/ingest`, which
this node stores (idempotently, by uid). The node tails the store and
publishes every stored document on `/recorder/documents`, so a document seen
there is already durable: that topic is the acknowledgement.

MCAP trigger. A run's recording starts at its start document or when
`/executive/queue` shows it RUNNING, whichever comes first, and ends at its stop
document or when the queue shows it finished. Its file is
`<data dir>/runs/<run_id>/<run_id>.mcap`, registered in the store as an
artifact of kind `mcap`. Topics come from the `topics` parameter (names with `*`
wildcards, relative ones resolved in the node's namespace, matched against the
graph every second);
`rate_limits` entries `pattern:hz` thin out bulky streams such as images. The
latest message of each topic is kept, so a recording begins with the current
state of every latched topic.

Shared stores. With `runs:=cell` (for a PostgreSQL store shared by many
workcells) the node streams and records only the runs its own executive queue
shows or whose documents came in on its own ingest topic; the default `all`
suits a store that belongs to one cell.

Parameters: store_url (default: the default store), data_dir, topics,
rate_limits, runs, poll_period_s, discovery_period_s, queue_depth.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import threading
import time
from collections import deque
from pathlib import Path

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from autolab.data.errors import DataError, StoreError
from autolab.data.mcap_recorder import MEDIA_TYPE, McapRunRecorder, RateLimiter, message_definition
from autolab.data.store import RunStore, data_dir
from autolab.nodes.qos import EVENTS, LATCHED
from autolab.nodes.runtime import StartupError, run_node
from autolab_interfaces.msg import QueueItem, QueueState, RunEvent

# Relative patterns resolve against the node's namespace, so a namespaced cell records its own topics.
DEFAULT_TOPICS = [
    "joint_states",
    "*/state",
    "*/arm_state",
    "*/conveyor_state",
    "inventory",
    "executive/queue",
    "executive/tree",
    "vision/detections",
    "camera/image_raw",
    "camera/camera_info",
    "sim/*",
    "robot_description",
    "/tf",
    "/tf_static",
]
DEFAULT_RATES = ["camera/image_raw:2.0", "camera/camera_info:2.0"]
HOLD_S = 30.0  # how long a document of a run not (yet) known to this cell waits, with runs:=cell
FINISHED = {QueueItem.STATUS_SUCCEEDED, QueueItem.STATUS_FAILED, QueueItem.STATUS_ABORTED}


def parse_rate_limits(entries: list[str]) -> list[tuple[str, float]]:
    """['/camera/*:2.0'] -> [('/camera/*', 2.0)]; raises ValueError naming a bad entry."""
    out = []
    for entry in entries:
        pattern, sep, hz = entry.rpartition(":")
        try:
            rate = float(hz)
        except ValueError:
            rate = -1.0
        if not sep or not pattern or rate <= 0:
            raise ValueError(f"rate_limits entry '{entry}' must be 'topic_pattern:hz' with hz > 0")
        out.append((pattern, rate))
    return out


def subscription_qos(publishers, depth: int = 10) -> QoSProfile:
    """A QoS compatible with every publisher: latched only if all are, best-effort if any is."""
    reliable = all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in publishers)
    latched = bool(publishers) and all(p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in publishers)
    return QoSProfile(
        depth=depth,
        history=HistoryPolicy.KEEP_LAST,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


def _qos_yaml(qos: QoSProfile) -> str:
    """The offered_qos_profiles text rosbag2 stores with a channel (so `ros2 bag play` can match it)."""
    return (
        f"- history: keep_last\n  depth: {qos.depth}\n  reliability: {qos.reliability.name.lower()}\n"
        f"  durability: {qos.durability.name.lower()}\n"
    )


class RecorderNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("recorder", **kwargs)
        self.declare_parameter("store_url", "")
        self.declare_parameter("data_dir", "")
        self.declare_parameter("topics", DEFAULT_TOPICS)
        self.declare_parameter("rate_limits", DEFAULT_RATES)
        self.declare_parameter("poll_period_s", 0.05)
        self.declare_parameter("discovery_period_s", 1.0)
        self.declare_parameter("queue_depth", 200)
        self.declare_parameter("runs", "all")
        try:
            self._rates = [
                (self._resolve(p), hz) for p, hz in parse_rate_limits(list(self.get_parameter("rate_limits").value))
            ]
        except ValueError as exc:
            raise StartupError("recorder", str(exc)) from None
        self._patterns = [self._resolve(p) for p in self.get_parameter("topics").value if p]
        self._own_prefix = self.get_fully_qualified_name() + "/"
        poll = float(self.get_parameter("poll_period_s").value)
        discovery = float(self.get_parameter("discovery_period_s").value)
        if poll <= 0 or discovery <= 0:
            raise StartupError("recorder", "poll_period_s and discovery_period_s must be > 0")
        self._queue_depth = int(self.get_parameter("queue_depth").value)
        if self._queue_depth < 1:
            raise StartupError("recorder", f"parameter queue_depth must be >= 1, got {self._queue_depth}")
        try:
            self.store = RunStore.open(self.get_parameter("store_url").value or None)
        except DataError as exc:
            raise StartupError("recorder", f"parameter store_url: {exc}") from None
        self._data_dir = Path(self.get_parameter("data_dir").value or data_dir())

        runs = self.get_parameter("runs").value
        if runs not in ("all", "cell"):
            raise StartupError("recorder", f"parameter runs must be 'all' or 'cell', not '{runs}'")
        # "cell": on a store shared by many workcells, only runs this cell's executive queue shows
        # (or documents ingested here) are streamed and recorded; others' are held, then dropped.
        self._cell_only = runs == "cell"
        self._mine: set[str] = set()
        self._held: dict[str, tuple[float, list]] = {}
        self._lock = threading.RLock()
        self._retry: deque[tuple[str, str, dict]] = deque()
        self._retry_lock = threading.Lock()
        self._recordings: dict[str, McapRunRecorder] = {}
        self._ended: set[str] = set()
        self._subs: dict[str, tuple[str, str, object]] = {}  # topic -> (type, qos yaml, subscription)
        self._last_msg: dict[str, tuple[int, bytes]] = {}
        self._limiters: dict[str, RateLimiter] = {}
        self._last_seq = self.store.last_document_seq()

        store_group = MutuallyExclusiveCallbackGroup()  # store writes queue here, not on other callbacks
        self._pub = self.create_publisher(RunEvent, "~/documents", EVENTS)
        self.create_subscription(RunEvent, "~/ingest", self._on_ingest, EVENTS, callback_group=store_group)
        self.create_subscription(QueueState, "executive/queue", self._on_queue, LATCHED)
        # Wall-clock timers: documents must flow even while a simulation is paused or faster than life.
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(poll, self._tail_store, callback_group=MutuallyExclusiveCallbackGroup(), clock=steady)
        self.create_timer(discovery, self._discover, callback_group=MutuallyExclusiveCallbackGroup(), clock=steady)
        self.get_logger().info(f"recording runs to {self._data_dir / 'runs'}; store {self.store.url}")

    def _resolve(self, pattern: str) -> str:
        """'joint_states' -> '/joint_states' at the root, '/cell1/joint_states' under /cell1."""
        if pattern.startswith("/"):
            return pattern
        return f"{self.get_namespace().rstrip('/')}/{pattern}"

    # -- documents ------------------------------------------------------------------------------
    def _on_ingest(self, msg: RunEvent) -> None:
        with self._lock:
            self._mine.add(msg.run_id)
        try:
            doc = json.loads(msg.json)
            if not isinstance(doc, dict):
                raise ValueError("the json field is not an object")
        except ValueError as exc:
            self.get_logger().error(f"ingest: document {msg.uid or '?'} of run {msg.run_id}: bad JSON ({exc})")
            return
        with self._retry_lock:
            self._retry.append((msg.run_id, msg.doc_type, doc))
            self._store_pending()

    def _store_pending(self) -> None:
        """Store ingested documents in arrival order; while the store is unreachable they wait here
        (and are retried by the tail timer), so an outage of the database loses none of them."""
        while self._retry:
            run_id, doc_type, doc = self._retry[0]
            try:
                if doc_type == "start":
                    self._ensure_run(run_id, doc)
                self.store.add_document(run_id, doc_type, doc)
            except StoreError as exc:
                self.get_logger().warning(
                    f"store unreachable, {len(self._retry)} document(s) wait for it: {exc}",
                    throttle_duration_sec=10.0,
                )
                return
            except DataError as exc:  # the document itself is wrong: retrying cannot help
                self.get_logger().error(f"ingest: document {doc.get('uid', '?')} of run {run_id} refused: {exc}")
            self._retry.popleft()

    def _ensure_run(self, run_id: str, start: dict) -> None:
        """A start document for a run the store lacks (producer without store access): create it."""
        try:
            self.store.get_run(run_id)
        except DataError:
            self.store.create_run(
                str(start.get("protocol") or start.get("protocol_name") or "unknown"),
                str(start.get("protocol_text", "")),
                start.get("parameters") or {},
                str(start.get("operator", "")),
                str(start.get("workcell_hash", "")),
                run_id=run_id,
                metadata={"created_by": "recorder from start document"},
            )

    def _tail_store(self) -> None:
        with self._retry_lock:
            self._store_pending()
        try:
            docs = self.store.documents_after(self._last_seq)
        except DataError as exc:
            self.get_logger().error(f"cannot read documents from the store: {exc}", throttle_duration_sec=10.0)
            return
        ready = []
        with self._lock:
            for d in docs:
                self._last_seq = d.seq
                if self._cell_only and d.run_id not in self._mine:
                    self._held.setdefault(d.run_id, (time.monotonic(), []))[1].append(d)
                else:
                    ready.append(d)
            for run_id in [r for r in self._held if r in self._mine]:
                ready = self._held.pop(run_id)[1] + ready  # held ones are older
            for run_id in [r for r, (t0, _) in self._held.items() if time.monotonic() - t0 > HOLD_S]:
                del self._held[run_id]  # another cell's run on a shared store
        for d in sorted(ready, key=lambda d: d.seq):
            self._publish_document(d)

    def _publish_document(self, d) -> None:
        msg = RunEvent(run_id=d.run_id, doc_type=d.doc_type, uid=d.uid, json=json.dumps(d.body, separators=(",", ":")))
        self._pub.publish(msg)
        if d.doc_type == "start":
            self._begin(d.run_id)
        elif d.doc_type == "stop":
            self._end(d.run_id)

    def _on_queue(self, msg: QueueState) -> None:
        with self._lock:
            self._mine.update(item.run_id for item in msg.items if item.run_id)
        for item in msg.items:
            if not item.run_id:
                continue
            if item.status in FINISHED:
                self._end(item.run_id)
            elif item.status != QueueItem.STATUS_QUEUED:
                self._begin(item.run_id)

    # -- MCAP ------------------------------------------------------------------------------------
    def _begin(self, run_id: str) -> None:
        with self._lock:
            if run_id in self._recordings or run_id in self._ended:
                return
            folder = self._data_dir / "runs" / run_id
            path, n = folder / f"{run_id}.mcap", 1
            while path.exists():  # a restarted recorder never overwrites an earlier part
                n += 1
                path = folder / f"{run_id}.part{n}.mcap"
            try:
                rec = McapRunRecorder(path, run_id)
            except DataError as exc:
                self.get_logger().error(f"run {run_id}: cannot record topics: {exc}")
                self._ended.add(run_id)
                return
            self._recordings[run_id] = rec
            for topic, (type_name, qos_yaml, _sub) in self._subs.items():
                self._add_channel(rec, topic, type_name, qos_yaml)
                if topic in self._last_msg:  # the current state, so the file starts complete
                    t, data = self._last_msg[topic]
                    rec.write(topic, data, log_time_ns=t)
        self.get_logger().info(f"run {run_id}: recording topics to {path}")

    def _end(self, run_id: str) -> None:
        with self._lock:
            rec = self._recordings.pop(run_id, None)
            self._ended.add(run_id)
        if rec is None:
            return
        rec.close()
        try:
            self.store.add_artifact(run_id, "mcap", rec.path, MEDIA_TYPE)
        except DataError as exc:
            self.get_logger().error(f"run {run_id}: MCAP written to {rec.path} but not registered: {exc}")
        self.get_logger().info(f"run {run_id}: {rec.message_count} messages recorded to {rec.path}")

    def _add_channel(self, rec: McapRunRecorder, topic: str, type_name: str, qos_yaml: str) -> None:
        try:
            rec.add_channel(topic, type_name, offered_qos_profiles=qos_yaml)
        except DataError as exc:
            self.get_logger().warning(f"not recording {topic}: {exc}", throttle_duration_sec=30.0)

    def _discover(self) -> None:
        for topic, types in self.get_topic_names_and_types():
            if topic in self._subs or not types or topic.startswith(self._own_prefix):
                continue
            if not any(fnmatch.fnmatchcase(topic, p) for p in self._patterns):
                continue
            type_name = types[0]
            try:
                pkg, _, name = type_name.split("/")
                msg_class = getattr(importlib.import_module(f"{pkg}.msg"), name)
                message_definition(type_name)  # fail early, once, if the .msg text is missing
            except (ImportError, AttributeError, ValueError, DataError) as exc:
                self.get_logger().warning(f"not recording {topic} ({type_name}): {exc}")
                self._subs[topic] = (type_name, "", None)
                continue
            hz = next((rate for pattern, rate in self._rates if fnmatch.fnmatchcase(topic, pattern)), 0.0)
            # A deep queue rides out a busy moment (a stalled second loses nothing at 50 Hz); a rate-limited
            # topic (the camera) keeps a short one: most of its messages are dropped anyway, and they are big.
            depth = 10 if hz > 0 else self._queue_depth
            qos = subscription_qos(self.get_publishers_info_by_topic(topic), depth)
            self._limiters[topic] = RateLimiter(hz)
            sub = self.create_subscription(
                msg_class, topic, lambda data, t=topic: self._on_message(t, data), qos, raw=True
            )
            qos_yaml = _qos_yaml(qos)
            with self._lock:
                self._subs[topic] = (type_name, qos_yaml, sub)
                for rec in self._recordings.values():
                    self._add_channel(rec, topic, type_name, qos_yaml)

    def _on_message(self, topic: str, data: bytes) -> None:
        t = self.get_clock().now().nanoseconds or time.time_ns()
        with self._lock:
            self._last_msg[topic] = (t, data)
            if not self._recordings or not self._limiters[topic].accept(t):
                return
            for run_id, rec in list(self._recordings.items()):
                if not rec.has_channel(topic):
                    continue
                try:
                    rec.write(topic, data, log_time_ns=t)
                except (DataError, OSError) as exc:
                    self.get_logger().error(f"run {run_id}: cannot write {topic}: {exc}", throttle_duration_sec=10.0)

    def close(self) -> None:
        """Finish every open recording so the files are complete and indexed."""
        for run_id in list(self._recordings):
            self._end(run_id)
        self.store.close()


NODE_CLASS = RecorderNode


def main(args: list[str] | None = None) -> int:
    return run_node(RecorderNode, args=args)


if __name__ == "__main__":
    raise SystemExit(main())
