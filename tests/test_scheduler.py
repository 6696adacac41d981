"""Many runs at once: priorities, reservations, interleaving without collision, wait explanations.

The real scheduler, trees and reservations run against the simulated-time cell
model, so these are deterministic and fast.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from autolab.data.store import RunStore
from autolab.executive.context import LabwareTracker, Place, parking_places
from autolab.executive.devices import SimClock, SimulatedCell
from autolab.executive.scheduler import Executive
from autolab.model.protocol import load_protocol, parse_protocol
from autolab.model.workcell import load_workcell

PROTOCOLS = Path(__file__).resolve().parents[1] / "protocols"
INVENTORY = {f"plate{i}": f"hotel1.slot{i}" for i in range(1, 5)}
WORKCELL = load_workcell()


def make(max_active: int = 8, inventory: dict[str, str] | None = None, store=None,
         **options) -> tuple[Executive, SimulatedCell, SimClock]:
    inventory = inventory or INVENTORY
    clock = SimClock()
    cell = SimulatedCell(clock, inventory)
    options.setdefault("parking", parking_places(WORKCELL))
    ex = Executive(cell, clock, store, LabwareTracker(inventory), max_active=max_active, **options)
    return ex, cell, clock


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


def route(plate: str, home: str, first: str, second: str, explicit_source: bool = False, recovery: str = ""):
    """In to `first`, dwell, across to `second` (source from the tracker unless explicit), home."""
    source = f", source: {first}" if explicit_source else ""
    return parse_protocol(f"""
autolab_protocol: 1
name: route_{plate}
{recovery}
steps:
  - transfer: {{id: in, labware: {plate}, source: {home}, destination: {first}}}
  - wait: {{id: dwell, seconds: 30}}
  - transfer: {{id: across, labware: {plate}{source}, destination: {second}}}
  - transfer: {{id: home, labware: {plate}, destination: {home}}}
""")


def crossing(ex: Executive, homes: tuple[str, str] = ("hotel1.slot1", "hotel1.slot2"), **kw) -> tuple:
    """plate1 goes reader -> sealer while plate2 goes sealer -> reader: they meet head on."""
    a = ex.submit(route("plate1", homes[0], "reader1.nest", "sealer1.nest", **kw))
    b = ex.submit(route("plate2", homes[1], "sealer1.nest", "reader1.nest", **kw))
    return a, b


def drive(ex: Executive, limit_s: float = 1e7) -> list[str]:
    """run_until_done, collecting every deadlock explanation seen on the queue."""
    seen: list[str] = []
    for _ in range(10_000):
        ex.tick()
        for item in ex.queue():
            seen += [w["message"] for w in item["waiting"] if w["waiting_for"] == "deadlock"
                     and w["message"] not in seen]
        if all(r.done for r in ex.runs.values()):
            break
        nxt = ex.clock.next_event()
        if nxt is None or nxt > limit_s:
            break
        ex.clock.advance_to(nxt)
    return seen


def parks(cell: SimulatedCell) -> list:
    return [(call.run_id, call.labware, call.source, call.destination)
            for _s, _e, call in cell.log if call.step_id.endswith(".park")]


@pytest.mark.parametrize("explicit_source", [False, True], ids=["source_from_tracker", "explicit_source"])
def test_plates_crossing_in_opposite_orders_park_one_plate_and_both_finish(tmp_path, explicit_source):
    store = RunStore.open(f"sqlite:///{tmp_path}/runs.db")
    try:
        ex, cell, _clock = make(store=store)
        a, b = crossing(ex, explicit_source=explicit_source)
        seen = drive(ex)
        assert a.status == b.status == "succeeded", (a.error_msg, b.error_msg)
        # the victim is the later run (same priority); hotel slots 1-2 are free but the plates' way home,
        # 3-4 hold plates, so the plate goes to the first deck position
        assert parks(cell) == [(b.run_id, "plate2", "sealer1.nest", "deck.1")]
        assert f"deadlock with run {a.run_id}: parking plate2 in deck.1 to let run {a.run_id} through" in seen
        assert f"deadlock with run {b.run_id}: parking plate2 in deck.1 to let run {a.run_id} through" in seen
        assert not any("move one plate" in m for m in seen)
        # b's blocked transfer went on from the parking place, whatever the protocol said its source was
        (across,) = [c for _s, _e, c in cell.log if c.run_id == b.run_id and c.step_id == "across"]
        assert (across.source, across.destination) == ("deck.1", "reader1.nest")
        kinds = [ev["kind"] for ev in b.history if ev.get("step") == "across.park"]
        assert kinds == ["park_requested", "step_started", "step_succeeded"]
        steps = {s.step_key: s for s in store.steps(b.run_id)}
        assert steps["across.park"].outcome == "succeeded" and steps["across.park"].kind == "transfer"
        (cmd,) = [c for c in store.commands(b.run_id) if c.step_id == steps["across.park"].id]
        assert (cmd.device, cmd.labware, cmd.error_code) == ("arm", "plate2", 0)
        assert cmd.params == {"source": "sealer1.nest", "destination": "deck.1"}
        arm = [(s, e) for s, e, c in cell.log if c.device == "arm"]
        assert not overlaps(arm), "two goals ran on the arm at once"
        for plate, home in (("plate1", "hotel1.slot1"), ("plate2", "hotel1.slot2")):
            assert ex.tracker.location(plate) == cell.labware_at[plate] == home
        assert cell.labware_at["plate3"] == "hotel1.slot3" and not ex.deadlock.cycles()
        assert not ex.reservations.held()
    finally:
        store.close()


def test_deadlock_policy_report_leaves_the_deadlock_to_an_operator():
    ex, cell, _clock = make(deadlock_policy="report")
    a, b = crossing(ex)
    ex.run_until_done(limit_s=600)
    assert not a.done and not b.done and not parks(cell)
    assert sorted(map(sorted, ex.deadlock.cycles())) == [sorted([a.run_id, b.run_id])]
    for item in ex.queue():
        (msg,) = [w["message"] for w in item["waiting"] if w["waiting_for"] == "deadlock"]
        assert "move one plate" in msg and "could not park" not in msg
    ex.abort(b.run_id)  # an operator takes plate2 out of the way (the abort frees its reservations)
    ex.tracker.moved("plate2", "deck.1")
    cell.labware_at["plate2"] = "deck.1"
    ex.run_until_done()
    assert a.status == "succeeded" and not ex.deadlock.cycles()


def test_unknown_deadlock_policy_is_refused():
    with pytest.raises(ValueError, match="deadlock_policy"):
        make(deadlock_policy="wait")


def test_no_free_parking_place_falls_back_to_reporting_the_deadlock_and_says_why():
    # the plates come from the conveyor; every hotel slot and deck position holds a plate
    full = {"plate1": "conveyor.in", "plate2": "conveyor.out",
            **{f"plate{i + 2}": f"hotel1.slot{i}" for i in range(1, 5)}, "plate7": "deck.1", "plate8": "deck.2"}
    ex, cell, _clock = make(inventory=full)
    a, b = crossing(ex, homes=("conveyor.in", "conveyor.out"))
    seen = drive(ex, limit_s=600)
    assert not a.done and not b.done and not parks(cell)
    for item in ex.queue():
        (msg,) = [w["message"] for w in item["waiting"] if w["waiting_for"] == "deadlock"]
        assert "move one plate" in msg and "could not park a plate: no free location to park plate2" in msg
    assert seen and all("parking plate" not in m for m in seen)
    # an operator takes plate8 off the deck: the executive parks into the freed place on its next tick
    ex.tracker.moved("plate8", "offline")
    cell.labware_at["plate8"] = "offline"
    drive(ex)
    assert a.status == b.status == "succeeded"
    assert parks(cell) == [(b.run_id, "plate2", "sealer1.nest", "deck.2")]
    assert cell.labware_at["plate1"] == "conveyor.in" and cell.labware_at["plate2"] == "conveyor.out"


def test_a_failed_park_keeps_the_record_consistent_and_reports_the_deadlock(tmp_path):
    store = RunStore.open(f"sqlite:///{tmp_path}/runs.db")
    try:
        ex, cell, _clock = make(store=store)
        a, b = crossing(ex)
        ex.run_until_done(limit_s=30)  # both plates are in their first nest, dwelling
        cell.inject_fault("arm", "transfer", "GRASP_FAILED")  # the next arm move is the park
        seen = drive(ex, limit_s=600)
        assert not a.done and not b.done and parks(cell) == []  # the arm refused: nothing moved
        assert any(m.startswith(f"deadlock with run {a.run_id}: parking plate2 in deck.1") for m in seen)
        assert ex.tracker.location("plate2") == cell.labware_at["plate2"] == "sealer1.nest"
        for item in ex.queue():
            (msg,) = [w["message"] for w in item["waiting"] if w["waiting_for"] == "deadlock"]
            assert "move one plate" in msg
            assert "could not park a plate: parking 'plate2' in deck.1 failed (arm: GRASP_FAILED" in msg
        # the park is a failed step with its failed command; nothing is left in flight or reserved
        (park,) = [s for s in store.steps(b.run_id) if s.step_key == "across.park"]
        assert park.outcome == "failed" and "GRASP_FAILED" in park.error
        (cmd,) = [c for c in store.commands(b.run_id) if c.step_id == park.id]
        assert cmd.labware == "plate2" and cmd.error_code != 0 and "GRASP_FAILED" in cmd.error_msg
        assert store.load_checkpoint(b.run_id)["in_flight"] == {}
        assert store.load_checkpoint(b.run_id)["labware"]["plate2"] == "sealer1.nest"
        assert not [r for r, h in ex.reservations.held().items() if h.step.endswith(".park")]
        assert store.get_run(b.run_id).outcome == "running"
        # no second attempt while the same deadlock stands; an operator clears it as before
        drive(ex, limit_s=1200)
        assert len([c for c in store.commands(b.run_id) if c.error_code]) == 1
        ex.abort(b.run_id)
        ex.tracker.moved("plate2", "deck.2")
        cell.labware_at["plate2"] = "deck.2"
        drive(ex)
        assert a.status == "succeeded" and store.get_run(b.run_id).outcome == "aborted"
    finally:
        store.close()


def test_a_failed_park_follows_the_protocols_recovery_policy():
    ex, cell, _clock = make()
    a, b = crossing(ex, recovery="recovery: {on_error: {GRASP_FAILED: retry}, backoff_s: 2}")
    ex.run_until_done(limit_s=30)
    cell.inject_fault("arm", "transfer", "GRASP_FAILED")
    drive(ex)
    assert a.status == b.status == "succeeded", (a.error_msg, b.error_msg)
    errors = [ev for ev in b.history if ev["kind"] == "device_error"]
    assert [(ev["step"], ev["decision"]) for ev in errors] == [("across.park", "retry")]
    assert parks(cell) == [(b.run_id, "plate2", "sealer1.nest", "deck.1")]


def test_the_lower_priority_run_is_the_one_that_parks():
    ex, cell, _clock = make()
    a = ex.submit(route("plate1", "hotel1.slot1", "reader1.nest", "sealer1.nest"), priority=0)
    b = ex.submit(route("plate2", "hotel1.slot2", "sealer1.nest", "reader1.nest"), priority=5)
    drive(ex)
    assert a.status == b.status == "succeeded"
    assert parks(cell) == [(a.run_id, "plate1", "reader1.nest", "deck.1")]


def test_a_restart_during_a_park_finds_the_plate_parked_and_goes_on_from_there(tmp_path):
    store = RunStore.open(f"sqlite:///{tmp_path}/runs.db")
    try:
        ex, cell, clock = make(store=store)
        a, b = crossing(ex, explicit_source=True)
        while "across.park" not in b.ctx.in_flight:
            ex.tick()
            clock.advance_to(clock.next_event())
        clock.advance_to(clock.now() + 60)  # the executive dies; the arm finishes the move meanwhile
        cell.settle()
        assert cell.labware_at["plate2"] == "deck.1"
        ex2 = Executive(cell, clock, store, LabwareTracker(cell.labware_at), parking=parking_places(WORKCELL))
        assert sorted(v for _r, v, _m in ex2.recover()) == ["resumed", "resumed"]
        assert ex2.runs[b.run_id].ctx.parked == {"across": "deck.1"}
        ex2.run_until_done()
        assert [ex2.runs[r.run_id].status for r in (a, b)] == ["succeeded", "succeeded"]
        (across,) = [c for _s, _e, c in cell.log if c.run_id == b.run_id and c.step_id == "across"]
        assert across.source == "deck.1"
        assert cell.labware_at["plate1"] == "hotel1.slot1" and cell.labware_at["plate2"] == "hotel1.slot2"
    finally:
        store.close()


def test_a_deadlock_that_forms_after_a_restart_is_still_broken(tmp_path):
    store = RunStore.open(f"sqlite:///{tmp_path}/runs.db")
    try:
        ex, cell, clock = make(store=store)
        a, b = crossing(ex)
        ex.run_until_done(limit_s=30)  # both plates are in their first nest; the executive dies
        ex2 = Executive(cell, clock, store, LabwareTracker(cell.labware_at), parking=parking_places(WORKCELL))
        assert sorted(v for _r, v, _m in ex2.recover()) == ["resumed", "resumed"]
        ex2.run_until_done()
        assert [ex2.runs[r.run_id].status for r in (a, b)] == ["succeeded", "succeeded"]
        assert parks(cell) == [(b.run_id, "plate2", "sealer1.nest", "deck.1")]
    finally:
        store.close()


def test_an_estop_during_the_park_fails_the_run_as_for_any_transfer():
    ex, cell, _clock = make()
    a, b = crossing(ex)
    ex.run_until_done(limit_s=30)
    cell.inject_fault("arm", "transfer", "ESTOP")
    ex.run_until_done(limit_s=600)
    assert b.status == "failed" and b.error_code == "ESTOP" and "while parking 'plate2' in deck.1" in b.error_msg
    assert ex.tracker.location("plate2") == cell.labware_at["plate2"] == "sealer1.nest"
    assert not a.done and not ex.deadlock.cycles()  # a waits for the nest plate2 still sits in


def test_the_parking_place_is_a_hotel_slot_before_a_deck_position_and_takes_the_plate():
    plate96 = "corning_96_wellplate_360ul_flat"
    parking = [Place("deck.1", "deck"), Place("hotel2.slot1", "hotel_slot", ("nest_12_reservoir_15ml",)),
               Place("hotel2.slot2", "hotel_slot", (plate96,))]
    ex, cell, _clock = make(labware_types={"plate2": plate96}, parking=parking)
    a, b = crossing(ex)
    drive(ex)
    assert a.status == b.status == "succeeded"
    assert parks(cell) == [(b.run_id, "plate2", "sealer1.nest", "hotel2.slot2")]
