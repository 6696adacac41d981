"""Many runs at once: priorities, reservations, interleaving without collision, wait explanations.

The real scheduler, trees and reservations run against the simulated-time cell
model, so these are deterministic and fast.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from autolab.executive.context import LabwareTracker
from autolab.executive.devices import SimClock, SimulatedCell
from autolab.executive.scheduler import Executive
from autolab.model.protocol import load_protocol

PROTOCOLS = Path(__file__).resolve().parents[1] / "protocols"
INVENTORY = {f"plate{i}": f"hotel1.slot{i}" for i in range(1, 5)}


def make(max_active: int = 8) -> tuple[Executive, SimulatedCell, SimClock]:
    clock = SimClock()
    cell = SimulatedCell(clock, INVENTORY)
    return Executive(cell, clock, None, LabwareTracker(INVENTORY), max_active=max_active), cell, clock


def plate_prep(i: int) -> tuple:
    return load_protocol(PROTOCOLS / "plate_preparation.yaml"), {"plate": f"plate{i}", "home": f"hotel1.slot{i}"}


def overlaps(intervals: list[tuple[float, float]]) -> bool:
    intervals = sorted(intervals)
    return any(b[0] < a[1] - 1e-9 for a, b in zip(intervals, intervals[1:], strict=False))


def test_concurrent_runs_interleave_without_sharing_a_device_at_once():
    ex, cell, clock = make()
    for i in (1, 2, 3, 4):
        proto, values = plate_prep(i)
        ex.submit(proto, values)
    ex.run_until_done()
    assert [r.status for r in ex.runs.values()] == ["succeeded"] * 4
    by_device: dict[str, list] = {}
    for start, end, call in cell.log:
        by_device.setdefault(call.device, []).append((start, end))
    assert all(not overlaps(iv) for iv in by_device.values()), "two goals ran on one device at once"
    single = ex.runs[next(iter(ex.runs))].ended_at
    assert clock.now() < 4 * single  # interleaved: faster than one after another
    assert cell.labware_at == INVENTORY  # every plate back where the protocol says


def test_same_plate_twice_waits_for_the_first_run_and_says_why():
    ex, _cell, clock = make()
    proto, values = plate_prep(1)
    first = ex.submit(proto, values)
    second = ex.submit(proto, values)
    ex.tick()
    item = next(q for q in ex.queue() if q["run_id"] == second.run_id)
    assert item["status"] == "queued"
    assert item["waiting"][0]["waiting_for"] == "labware:plate1"
    assert item["waiting"][0]["held_by"] == first.run_id
    assert first.run_id in item["waiting"][0]["message"]
    ex.run_until_done()
    assert second.started_at == pytest.approx(first.ended_at)
    assert second.status == "succeeded"


def test_waiting_step_names_the_resource_and_the_run_holding_it():
    ex, _cell, clock = make()
    a = ex.submit(*plate_prep(1))
    b = ex.submit(*plate_prep(2))
    ex.tick()
    item = next(q for q in ex.queue() if q["run_id"] == b.run_id)
    wait = item["waiting"][0]
    assert wait["waiting_for"] == "device:arm" and wait["held_by"] == a.run_id
    assert wait["message"] == f"waiting for device:arm, held by run {a.run_id} step 'to_liquid_handler'"


def test_higher_priority_run_goes_first_when_slots_are_short():
    ex, _cell, _clock = make(max_active=1)
    low = ex.submit(*plate_prep(1), priority=0)
    high = ex.submit(*plate_prep(2), priority=5)
    ex.tick()
    assert high.status == "running" and low.status == "queued"
    assert "run slot" in ex.queue()[1]["waiting"][0]["message"]
    ex.run_until_done()
    assert high.ended_at <= low.started_at


def test_a_plate_waits_for_an_occupied_nest_instead_of_colliding():
    ex, cell, _clock = make()
    runs = [ex.submit(*plate_prep(i)) for i in (1, 2)]
    seen_occupied_wait = False
    for _ in range(400):
        ex.tick()
        for q in ex.queue():
            seen_occupied_wait |= any("occupied by run" in w["message"] for w in q["waiting"])
        if all(r.done for r in runs):
            break
        ex.clock.advance_to(ex.clock.next_event())
    assert all(r.status == "succeeded" for r in runs)
    assert seen_occupied_wait
    assert not [c for c in cell.cancelled]


def test_parallel_branches_of_one_protocol_share_the_cell_safely():
    ex, cell, clock = make()
    run = ex.submit(load_protocol(PROTOCOLS / "two_plates.yaml"))
    ex.run_until_done()
    assert run.status == "succeeded", run.error_msg
    assert cell.labware_at["plate1"] == "hotel1.slot1" and cell.labware_at["plate2"] == "hotel1.slot2"
    arm = [(s, e) for s, e, c in cell.log if c.device == "arm"]
    assert not overlaps(arm)


def test_plates_crossing_in_opposite_orders_are_reported_as_a_deadlock():
    from autolab.model.protocol import parse_protocol

    def route(plate: str, home: str, first: str, second: str):
        return parse_protocol(f"""
autolab_protocol: 1
name: route_{plate}
steps:
  - transfer: {{id: in, labware: {plate}, source: {home}, destination: {first}}}
  - wait: {{id: dwell, seconds: 30}}
  - transfer: {{id: across, labware: {plate}, destination: {second}}}
  - transfer: {{id: home, labware: {plate}, destination: {home}}}
""")

    ex, _cell, clock = make()
    a = ex.submit(route("plate1", "hotel1.slot1", "reader1.nest", "sealer1.nest"))
    b = ex.submit(route("plate2", "hotel1.slot2", "sealer1.nest", "reader1.nest"))
    ex.run_until_done(limit_s=600)
    assert not a.done and not b.done
    assert sorted(map(sorted, ex.deadlocks())) == [sorted([a.run_id, b.run_id])]
    for item in ex.queue():
        assert any(w["waiting_for"] == "deadlock" and "move one plate" in w["message"] for w in item["waiting"])
    ex.abort(b.run_id)  # an operator takes plate2 out of the way (the abort frees its reservations)
    ex.tracker.moved("plate2", "deck.1")
    _cell.labware_at["plate2"] = "deck.1"
    ex.run_until_done()
    assert a.status == "succeeded" and not ex.deadlocks()
