"""Event documents of a run, in the style of Bluesky's event model.

A run emits, in this order:

- one **start** document (uid, time, run_id, protocol, parameters, operator, ...);
- **descriptor** documents, one per data stream (e.g. "primary", "reader1"),
  giving each data key's dtype, shape, units and source, and the devices'
  configuration;
- **event** documents, each a row of one stream (data and per-key timestamps,
  a seq_num counting from 1 per stream);
- one **stop** document (exit_status success|fail|abort, reason, event counts).

`RunDocuments` checks this order and the event rows against their
descriptor, persists each document in the run store *before* handing it to
subscribers (so whatever a subscriber saw is durable), and can resume a run's
stream after a restart from what the store holds. The recorder node streams
stored documents over ROS on `/recorder/documents` (autolab_interfaces/RunEvent).

    docs = RunDocuments(run_id, store)
    docs.subscribe(lambda doc_type, doc: ...)
    docs.start(protocol="plate_prep")
    d = docs.descriptor("reader1", {"absorbance": data_key("array", "reader1", "AU", [8, 12])},
                        configuration={"reader1": {"wavelength_nm": 600}})
    docs.event(d, {"absorbance": grid})
    docs.stop("success")
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from autolab.data.errors import DocumentError
from autolab.data.ids import new_id, now

DOC_TYPES = ("start", "descriptor", "event", "stop")
DTYPES = ("string", "number", "integer", "boolean", "array")
EXIT_STATUSES = ("success", "fail", "abort")

Subscriber = Callable[[str, dict], None]


def data_key(dtype: str, source: str, units: str | None = None, shape: list[int] | tuple = (), **extra: Any) -> dict:
    """A descriptor's data key: what one column of a stream holds."""
    key = {"dtype": dtype, "shape": list(shape), "source": source, **extra}
    if units is not None:
        key["units"] = units
    return _check_data_key("data_key", key)


def _check_data_key(name: str, key: Any) -> dict:
    if not isinstance(key, Mapping):
        raise DocumentError(f"data key '{name}' must be a mapping with dtype, shape and source")
    if key.get("dtype") not in DTYPES:
        raise DocumentError(f"data key '{name}' has dtype {key.get('dtype')!r}; use one of {', '.join(DTYPES)}")
    shape = key.get("shape")
    if not isinstance(shape, list | tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise DocumentError(f"data key '{name}' needs a shape: a list of dimension sizes ([] for a scalar)")
    if not isinstance(key.get("source"), str) or not key["source"]:
        raise DocumentError(f"data key '{name}' needs a source (the device or signal that produced it)")
    if "units" in key and not isinstance(key["units"], str):
        raise DocumentError(f"data key '{name}' has units {key['units']!r}; units are a string")
    return dict(key)


def _check_value(stream: str, name: str, key: Mapping, value: Any) -> None:
    if value is None:  # a missing reading is recorded as null, never dropped
        return
    dtype = key["dtype"]
    ok = {
        "string": isinstance(value, str),
        "boolean": isinstance(value, bool),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "array": isinstance(value, list | tuple) or hasattr(value, "tolist"),
    }[dtype]
    if not ok:
        raise DocumentError(
            f"event of stream '{stream}': '{name}' is {type(value).__name__}, but its descriptor says {dtype}"
        )


class RunDocuments:
    """The document stream of one run: validates order, persists, then notifies subscribers.

    Thread-safe: device callbacks may emit events of different streams concurrently.
    With `store=None` documents are only handed to subscribers (e.g. a publisher to the
    recorder, which persists them).
    """

    def __init__(self, run_id: str, store=None, subscribers: list[Subscriber] | None = None) -> None:
        self.run_id = run_id
        self._store = store
        self._subscribers: list[Subscriber] = list(subscribers or [])
        self._lock = threading.RLock()
        self.start_doc: dict | None = None
        self.stop_doc: dict | None = None
        self._descriptors: dict[str, dict] = {}  # uid -> descriptor
        self._by_name: dict[str, str] = {}  # stream name -> descriptor uid
        self._seq: dict[str, int] = {}  # descriptor uid -> last seq_num

    # -- subscribers ---------------------------------------------------------------------------
    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback(doc_type, doc)` for every document from now on; returns an unsubscribe."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def _emit(self, doc_type: str, doc: dict) -> dict:
        if self._store is not None:
            self._store.add_document(self.run_id, doc_type, doc)
        for cb in list(self._subscribers):
            cb(doc_type, doc)
        return doc

    # -- documents ------------------------------------------------------------------------------
    def start(self, **metadata: Any) -> dict:
        """Open the stream; `metadata` (protocol, parameters, operator, sample, ...) goes in the doc."""
        with self._lock:
            if self.start_doc is not None:
                raise DocumentError(f"run {self.run_id} already has a start document")
            doc = {**metadata, "uid": new_id(), "time": now(), "run_id": self.run_id}
            self.start_doc = doc
            return self._emit("start", doc)

    def descriptor(
        self,
        name: str,
        data_keys: Mapping[str, Mapping],
        configuration: Mapping | None = None,
        object_keys: Mapping[str, list[str]] | None = None,
    ) -> dict:
        """Declare a stream `name` and its data keys; returns the descriptor (its uid keys events).

        `configuration` maps a device to its settings for this stream, e.g.
        {"reader1": {"data": {"wavelength_nm": 600}}} or simply {"reader1": {"wavelength_nm": 600}}.
        """
        with self._lock:
            self._require_open("descriptor")
            if not name:
                raise DocumentError("a descriptor needs a stream name")
            if name in self._by_name:
                raise DocumentError(f"stream '{name}' of run {self.run_id} is already described")
            if not data_keys:
                raise DocumentError(f"stream '{name}' declares no data keys")
            keys = {k: _check_data_key(k, v) for k, v in data_keys.items()}
            config = {}
            for device, settings in (configuration or {}).items():
                settings = dict(settings)
                config[device] = settings if "data" in settings else {"data": settings, "timestamps": {}}
            if object_keys is None:
                grouped: dict[str, list[str]] = {}
                for k, v in keys.items():
                    grouped.setdefault(v["source"], []).append(k)
                object_keys = grouped
            doc = {
                **self._linked(),
                "name": name,
                "data_keys": keys,
                "configuration": config,
                "object_keys": dict(object_keys),
            }
            self._descriptors[doc["uid"]] = doc
            self._by_name[name] = doc["uid"]
            self._seq[doc["uid"]] = 0
            return self._emit("descriptor", doc)

    def event(
        self, descriptor: Mapping | str, data: Mapping[str, Any], timestamps: Mapping[str, float] | None = None
    ) -> dict:
        """One row of a stream; `descriptor` is the descriptor doc, its uid, or the stream name.

        The row must carry exactly the descriptor's data keys (a missing reading is None).
        """
        with self._lock:
            self._require_open("event")
            uid = descriptor["uid"] if isinstance(descriptor, Mapping) else descriptor
            uid = self._by_name.get(uid, uid)
            desc = self._descriptors.get(uid)
            if desc is None:
                raise DocumentError(f"event names descriptor {uid!r}, which this run has not declared")
            keys = desc["data_keys"]
            if set(data) != set(keys):
                missing = sorted(set(keys) - set(data))
                extra = sorted(set(data) - set(keys))
                raise DocumentError(
                    f"event of stream '{desc['name']}' does not match its descriptor"
                    f" (missing: {missing or 'none'}; undeclared: {extra or 'none'})"
                )
            for k, v in data.items():
                _check_value(desc["name"], k, keys[k], v)
            t = now()
            stamps = {k: t for k in data}
            stamps.update(timestamps or {})
            self._seq[uid] += 1
            doc = {
                "uid": new_id(),
                "time": t,
                "descriptor": uid,
                "run_id": self.run_id,
                "seq_num": self._seq[uid],
                "data": dict(data),
                "timestamps": stamps,
                "filled": {},
            }
            return self._emit("event", doc)

    def stop(self, exit_status: str = "success", reason: str = "") -> dict:
        """Close the stream with the run's exit status (success, fail or abort)."""
        with self._lock:
            self._require_open("stop")
            if exit_status not in EXIT_STATUSES:
                raise DocumentError(f"exit_status must be one of {', '.join(EXIT_STATUSES)}, not {exit_status!r}")
            doc = {
                **self._linked(),
                "exit_status": exit_status,
                "reason": reason,
                "num_events": {d["name"]: self._seq[u] for u, d in self._descriptors.items()},
            }
            self.stop_doc = doc
            return self._emit("stop", doc)

    def reading(
        self,
        stream: str,
        data: Mapping[str, Any],
        units: Mapping[str, str] | None = None,
        source: str | None = None,
        configuration: Mapping | None = None,
    ) -> dict:
        """An event of `stream`, declaring the stream on first use from the values' types.

        For producers that learn their data keys as results arrive (the executive relaying
        device results): `docs.reading("reader1", {"absorbance": grid}, units={"absorbance": "AU"})`.
        """
        with self._lock:
            if stream not in self._by_name:
                keys = {
                    k: data_key(_dtype_of(v), source or stream, (units or {}).get(k), _shape_of(v))
                    for k, v in data.items()
                }
                self.descriptor(stream, keys, configuration)
            return self.event(stream, data)

    def _linked(self) -> dict:
        """The fields of a document that belongs to this run's start document."""
        return {"uid": new_id(), "time": now(), "run_start": self.start_doc["uid"], "run_id": self.run_id}

    def stream_uid(self, name: str) -> str | None:
        return self._by_name.get(name)

    def _require_open(self, what: str) -> None:
        if self.start_doc is None:
            raise DocumentError(f"a {what} document of run {self.run_id} comes before its start document")
        if self.stop_doc is not None:
            raise DocumentError(f"a {what} document of run {self.run_id} comes after its stop document")

    # -- resuming after a restart -----------------------------------------------------------------
    @classmethod
    def resume(cls, run_id: str, store, subscribers: list[Subscriber] | None = None) -> RunDocuments:
        """Rebuild a run's stream from the store (after the executive restarted) to continue it."""
        docs = cls(run_id, store, subscribers)
        for doc in store.documents(run_id):
            docs.ingest(_doc_type(doc), doc)
        return docs

    def ingest(self, doc_type: str, doc: Mapping) -> None:
        """Take a document produced elsewhere into this stream's state (no persist, no notify)."""
        with self._lock:
            if doc_type == "start":
                self.start_doc = dict(doc)
            elif doc_type == "descriptor":
                self._descriptors[doc["uid"]] = dict(doc)
                self._by_name[doc["name"]] = doc["uid"]
                self._seq.setdefault(doc["uid"], 0)
            elif doc_type == "event":
                self._seq[doc["descriptor"]] = max(self._seq.get(doc["descriptor"], 0), int(doc["seq_num"]))
            elif doc_type == "stop":
                self.stop_doc = dict(doc)
            else:
                raise DocumentError(f"unknown document type {doc_type!r}; expected one of {', '.join(DOC_TYPES)}")


def _dtype_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple) or hasattr(value, "tolist"):
        return "array"
    raise DocumentError(f"cannot describe a value of type {type(value).__name__}; declare the stream explicitly")


def _shape_of(value: Any) -> list[int]:
    shape: list[int] = []
    while isinstance(value, list | tuple) or hasattr(value, "tolist"):
        value = value.tolist() if hasattr(value, "tolist") else value
        if not isinstance(value, list | tuple):
            break
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _doc_type(doc: Mapping) -> str:
    """Infer a stored document's type from its fields (as event-model does)."""
    if "exit_status" in doc:
        return "stop"
    if "data_keys" in doc:
        return "descriptor"
    if "descriptor" in doc and "seq_num" in doc:
        return "event"
    return "start"
