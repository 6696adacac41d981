"""Run store throughput and latency: event documents written per second, and the latency from a
device result to its durable record (p50/p99), on SQLite (WAL, synchronous FULL as shipped, and
NORMAL for comparison) and on PostgreSQL when its server binaries are installed.

    .venv/bin/python bench/bench_store.py [--events 500] [--results 200] [--postgres URL|auto|off]

Figures are printed side by side with the ratio to the shipped SQLite configuration.
Nothing here asserts a speed; the test suite checks behaviour, this prints numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import event

from autolab.data.documents import RunDocuments, data_key
from autolab.data.store import RunStore

PLATE = {"values": [[0.05 + 0.01 * (r * 12 + c) for c in range(12)] for r in range(8)]}


def _store(url: str, synchronous: str | None = None) -> RunStore:
    store = RunStore.open(url)
    if synchronous:  # comparison only: the shipped store always uses FULL
        store.engine.dispose()
        event.listen(store.engine, "connect", lambda conn, _rec: conn.execute(f"PRAGMA synchronous={synchronous}"))
    return store


def events_per_second(store: RunStore, n: int, threads: int = 1) -> float:
    run_id = store.create_run("bench", "", {}, "bench", "")
    docs = RunDocuments(run_id, store)
    docs.start()
    docs.descriptor(
        "primary",
        {"temperature": data_key("number", "incubator1", "degC"), "od": data_key("array", "reader1", "AU", [8, 12])},
    )
    per = n // threads

    def work() -> None:
        for i in range(per):
            docs.event("primary", {"temperature": 37.0 + i * 1e-3, "od": PLATE["values"]})

    t0 = time.perf_counter()
    pool = [threading.Thread(target=work) for _ in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    elapsed = time.perf_counter() - t0
    docs.stop()
    return per * threads / elapsed


def result_latency(store: RunStore, n: int, background: bool) -> tuple[float, float]:
    """Device result in hand -> add_measurement returned (durable), in milliseconds."""
    run_id = store.create_run("bench", "", {}, "bench", "")
    stop = threading.Event()

    def noise() -> None:  # another device logging commands meanwhile
        while not stop.is_set():
            store.record_command(run_id, "arm", "move", {"to": "home"}, {}, 0, time.time(), time.time())

    th = threading.Thread(target=noise, daemon=True)
    if background:
        th.start()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        store.add_measurement(
            run_id, "reader1", "absorbance", PLATE, "AU", labware="P1", metadata={"wavelength_nm": 600}
        )
        samples.append((time.perf_counter() - t0) * 1000)
    stop.set()
    if background:
        th.join()
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(0.99 * len(samples)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=500)
    ap.add_argument("--results", type=int, default=200)
    ap.add_argument("--postgres", default="auto", help="a PostgreSQL URL, 'auto' (throwaway server) or 'off'")
    args = ap.parse_args()

    rows: list[tuple[str, float, float, float, float, float]] = []
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="autolab-bench-")))
        targets = [
            ("sqlite WAL FULL (shipped)", f"sqlite:///{tmp / 'full.db'}", None),
            ("sqlite WAL NORMAL", f"sqlite:///{tmp / 'normal.db'}", "NORMAL"),
        ]
        if args.postgres == "auto":
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            try:
                from test_postgres_store import Unavailable, create_database, throwaway_postgres

                base = stack.enter_context(throwaway_postgres())
                targets.append(("postgresql (local)", create_database(base, "bench"), None))
            except (ImportError, Unavailable) as exc:
                print(f"postgresql: skipped ({exc})")
        elif args.postgres != "off":
            targets.append(("postgresql", args.postgres, None))
        for name, url, sync in targets:
            store = _store(url, sync)
            eps1 = events_per_second(store, args.events)
            eps4 = events_per_second(store, args.events, threads=4)
            p50, p99 = result_latency(store, args.results, background=False)
            p50b, p99b = result_latency(store, args.results, background=True)
            store.close()
            rows.append((name, eps1, eps4, p50, p99, p99b))
            print(
                f"  measured {name}: {eps1:.0f} ev/s, result p50 {p50:.2f} ms (p50 under load {p50b:.2f})", flush=True
            )

    base = rows[0]
    print(
        f"\nevents: {args.events} event documents (a number and a 96-well array each); "
        f"results: {args.results} plate reads\n"
    )
    head = (
        f"{'store':<26} {'events/s':>9} {'x':>5} {'ev/s 4thr':>9} {'x':>5} {'p50 ms':>7} {'x':>5} "
        f"{'p99 ms':>7} {'x':>5} {'p99 busy':>8}"
    )
    print(head)
    print("-" * len(head))
    for name, eps1, eps4, p50, p99, p99b in rows:
        print(
            f"{name:<26} {eps1:>9.0f} {eps1 / base[1]:>5.2f} {eps4:>9.0f} {eps4 / base[2]:>5.2f} "
            f"{p50:>7.2f} {p50 / base[3]:>5.2f} {p99:>7.2f} {p99 / base[4]:>5.2f} {p99b:>8.2f}"
        )
    print("\nx = ratio to the shipped SQLite configuration; 'p99 busy' = p99 while another thread logs commands")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
