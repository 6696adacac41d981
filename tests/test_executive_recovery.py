"""Recovery policies, operator checkpoints, pause/abort, resuming after a crash, and the run's record.

The real executive core records into a real SQLite run store; devices are the
simulated-time cell model, whose clock starts at 0 as /clock does under a
simulation (so a stored time near 1970 would be simulated time leaking in). A
"crash" is a new Executive on the same store and the same physical cell state,
as after `kill -9` and a restart.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from autolab.data.store import RunStore
from autolab.executive.context import LabwareTracker
from autolab.executive.devices import SimClock, SimulatedCell
from autolab.executive.errors import CommandRefused
from autolab.executive.scheduler import Executive
from autolab.model.protocol import load_protocol, parse_protocol

PROTOCOLS = Path(__file__).resolve().parents[1] / "protocols"
INVENTORY = {"plate1": "hotel1.slot1", "plate2": "hotel1.slot2"}


@pytest.fixture
def store(tmp_path):
    s = RunStore.open(f"sqlite:///{tmp_path}/runs.db")
    yield s
    s.close()


def make(store=None, labware=None, clock=None):
    clock = clock or SimClock()
    cell = SimulatedCell(clock, labware or INVENTORY)
    return Executive(cell, clock, store, LabwareTracker(labware or INVENTORY)), cell


def plate_prep(**recovery_overrides):
    proto = load_protocol(PROTOCOLS / "plate_preparation.yaml")
    proto.recovery.update(recovery_overrides)
    return proto


def test_communication_errors_are_retried_with_backoff_and_recorded(store):
    ex, cell = make(store)
    cell.inject_fault("sealer1", "seal", "COMMUNICATION_ERROR", times=2)
    run = ex.submit(plate_prep())
    ex.run_until_done()
    assert run.status == "succeeded"
    seals = [(s, c) for s, _e, c in cell.log if c.operation == "seal"]
    assert len(seals) == 1  # the two failures were refused before the device accepted work
    failed = [c for c in store.commands(run.run_id) if c.error_code != 0]
    assert len(failed) == 2 and all("COMMUNICATION_ERROR" in c.error_msg for c in failed)
    assert all(c.labware == "plate1" for c in failed)
    # each attempt is a step record; the ones retried are closed as failed, not left running
    assert [s.outcome for s in store.steps(run.run_id) if s.name == "seal"] == ["failed", "failed", "succeeded"]
    # backoff 2 s then 4 s, plus half the operation each time the device failed
    assert run.ended_at == pytest.approx(174.8 + 2 + 4 + 2 * 4.5)


def test_retries_exhausted_fail_the_run_with_the_device_error_and_leave_the_plate_tracked(store):
    ex, cell = make(store)
    cell.inject_fault("sealer1", "seal", "COMMUNICATION_ERROR", times=5)
    run = ex.submit(plate_prep())
    ex.run_until_done()
    assert run.status == "failed" and run.error_code == "DEVICE_FAILED"
    assert "step 'seal'" in run.error_msg and "COMMUNICATION_ERROR" in run.error_msg
    assert store.get_run(run.run_id).outcome == "failed"
    stop = store.documents(run.run_id)[-1]
    assert stop["exit_status"] == "fail" and stop["reason"] == run.error_msg
    assert ex.tracker.location("plate1") == cell.labware_at["plate1"] == "sealer1.nest"


def test_skip_policy_carries_on(store):
    ex, cell = make(store)
    cell.inject_fault("incubator1", "incubate", "DEVICE_ERROR")
    run = ex.submit(plate_prep(on_error={"DEVICE_ERROR": "skip"}))
    ex.run_until_done()
    assert run.status == "succeeded"
    assert any(s.outcome == "skipped" for s in store.steps(run.run_id))


def test_operator_policy_waits_for_an_acknowledgement_then_tries_again(store):
    ex, cell = make(store)
    cell.inject_fault("arm", "transfer", "GRASP_FAILED")
    run = ex.submit(plate_prep())
    ex.run_until_done()
    assert run.status == "waiting_operator"
    (wait,) = ex.queue()[0]["waiting"]
    assert wait["waiting_for"].startswith("operator:ack to_liquid_handler#1")
    assert "GRASP_FAILED" in wait["message"]
    with pytest.raises(CommandRefused):
        ex.acknowledge(run.run_id, "no-such-checkpoint")
    ex.acknowledge(run.run_id, note="re-seated the plate")
    ex.run_until_done()
    assert run.status == "succeeded"
    assert store.operator_actions(run.run_id)[0].action == "acknowledge"


def test_estop_is_never_retried(store):
    ex, cell = make(store)
    cell.inject_fault("arm", "transfer", "ESTOP")
    run = ex.submit(plate_prep(default="retry"))
    ex.run_until_done()
    assert run.status == "failed" and run.error_code == "ESTOP"


def test_operator_checkpoint_on_measured_data(store):
    ex, _cell = make(store)
    proto = load_protocol(PROTOCOLS / "serial_dilution.yaml")
    run = ex.submit(proto, {"too_dark": 0.0})
    ex.run_until_done()
    assert run.status == "waiting_operator"
    assert "inspect the plate" in ex.queue()[0]["waiting"][0]["message"]
    ex.acknowledge(run.run_id, "inspect")
    ex.run_until_done()
    assert run.status == "succeeded"
    run2 = ex.submit(proto, {"too_dark": 4.0, "plate": "plate2", "home": "hotel1.slot2"})
    ex.run_until_done()
    assert run2.status == "succeeded"  # the else branch (nothing) was taken without asking anyone


def test_abort_cancels_the_goal_on_the_device(store):
    ex, cell = make(store)
    run = ex.submit(plate_prep())
    for _ in range(6):
        ex.tick()
        ex.clock.advance_to(ex.clock.next_event())
    assert run.ctx.active
    ex.abort(run.run_id, "changed my mind")
    assert run.status == "aborted" and cell.cancelled
    assert store.get_run(run.run_id).outcome == "aborted"
    stop = store.documents(run.run_id)[-1]
    assert (stop["exit_status"], stop["reason"]) == ("abort", "changed my mind")
    (canceled,) = [c for c in store.commands(run.run_id) if c.error_code]  # the goal in flight, on its plate
    assert canceled.error_msg.startswith("CANCELED") and canceled.labware == "plate1"
    assert not ex.reservations.held()


def test_pause_holds_the_next_step_until_resume(store):
    ex, cell = make(store)
    run = ex.submit(plate_prep())
    ex.tick()  # the first transfer starts
    ex.pause(run.run_id)
    ex.run_until_done()
    assert run.status == "paused"
    assert len(cell.log) == 1  # the running transfer finished; nothing new started
    ex.resume(run.run_id)
    ex.run_until_done()
    assert run.status == "succeeded"


def test_timeout_cancels_a_slow_step():
    text = """
autolab_protocol: 1
name: bounded
steps:
  - transfer: {id: load, labware: plate1, destination: incubator1.nest}
  - timeout:
      id: bound
      seconds: 30
      steps:
        - instrument: {id: long, device: incubator1, operation: incubate, labware: plate1,
                       parameters: {temperature_c: 37, time_s: 600}}
"""
    ex, cell = make()
    run = ex.submit(parse_protocol(text))
    ex.run_until_done()
    assert run.status == "failed" and run.error_code == "TIMEOUT"
    assert cell.cancelled and cell.cancelled[0].operation == "incubate"


def _run_partly(store, ticks: int = 10_000, until=lambda run: False):
    """Tick a plate preparation `ticks` times, or until `until(run)`: where the process then dies."""
    clock = SimClock()
    ex, cell = make(store, clock=clock)
    run = ex.submit(plate_prep())
    for _ in range(ticks):
        if until(run):
            break
        ex.tick()
        clock.advance_to(clock.next_event())
    return ex, cell, clock, run


def test_restarted_executive_resumes_the_run_from_its_checkpoint(store):
    _old, cell, clock, run = _run_partly(store, 7)
    done_before = set(_old.runs[run.run_id].ctx.completed)
    assert 2 <= len(done_before) < 9
    # the process dies; the cell (plates, wells) stays as it is
    ex = Executive(cell, clock, store, LabwareTracker(cell.labware_at))
    report = ex.recover()
    assert report == [(run.run_id, "resumed", f"{len(ex.runs[run.run_id].ctx.completed)} step(s) already done")]
    n_before = len(cell.log)
    ex.run_until_done()
    again = ex.runs[run.run_id]
    assert again.status == "succeeded", again.error_msg
    redone = {c.step_id for _s, _e, c in cell.log[n_before:]}
    assert not redone & done_before
    assert cell.labware_at["plate1"] == "hotel1.slot1"
    assert store.get_run(run.run_id).outcome == "succeeded"


def test_interrupted_dispense_is_not_repeated_and_the_run_is_failed_with_the_reason(store):
    _old, cell, clock, run = _run_partly(store, until=lambda run: "fill" in run.ctx.in_flight)
    ex2 = Executive(cell, clock, store, LabwareTracker(cell.labware_at))
    ((rid, verdict, reason),) = ex2.recover()
    assert (rid, verdict) == (run.run_id, "failed")
    assert "dispense" in reason and "not repeated" in reason
    rec = store.get_run(run.run_id)
    assert rec.outcome == "failed" and rec.error.startswith("RESUME_FAILED")


def test_a_plate_moved_by_hand_while_down_fails_the_resume(store):
    _old, cell, clock, run = _run_partly(store, 7)
    cell.labware_at["plate1"] = "deck.1"
    ex = Executive(cell, clock, store, LabwareTracker(cell.labware_at))
    ((_rid, verdict, reason),) = ex.recover()
    assert verdict == "failed" and "plate1" in reason


# ---------------------------------------------------------------- the run's record and documents
def kinds(docs: list[dict]) -> list[str]:
    from autolab.data.documents import _doc_type

    return [_doc_type(d) for d in docs]


def test_a_run_emits_start_descriptors_events_and_stop_with_units(store):
    ex, _cell = make(store)
    ex.workcell_hash = "wc123"
    run = ex.submit(plate_prep(), {"volume_ul": 80}, operator="alice")
    ex.run_until_done()
    assert run.status == "succeeded"
    docs = store.documents(run.run_id)
    assert kinds(docs)[0] == "start" and kinds(docs)[-1] == "stop"
    start, stop = docs[0], docs[-1]
    rec = store.get_run(run.run_id)
    assert (start["protocol"], start["operator"], start["workcell_hash"]) == ("plate_preparation", "alice", "wc123")
    assert start["protocol_hash"] == rec.protocol_hash and start["parameters"]["volume_ul"] == 80
    assert stop["exit_status"] == "success" and stop["run_start"] == start["uid"]
    descriptors = {d["name"]: d for d in docs if "data_keys" in d}
    read = descriptors["reader1.read_absorbance"]
    assert read["data_keys"]["mean_absorbance"]["units"] == "OD"
    assert read["data_keys"]["mean_absorbance"]["source"] == "reader1"
    assert read["configuration"]["reader1"]["data"]["wavelength_nm"] == 450
    events = [d for d in docs if kinds([d]) == ["event"]]
    assert [e["descriptor"] for e in events] == [read["uid"]] and events[0]["seq_num"] == 1
    assert stop["num_events"] == {"reader1.read_absorbance": 1}


def test_commands_name_their_labware_and_carry_wall_clock_times(store):
    clock = SimClock(start=0.0)
    ex, _cell = make(store, clock=clock)
    before = time.time()
    run = ex.submit(plate_prep())
    ex.run_until_done()
    after = time.time()
    assert clock.now() > 100  # simulated seconds passed; the stored times must not follow them
    commands = store.commands(run.run_id)
    assert commands and all(c.labware == "plate1" for c in commands)
    assert all(before <= c.started_at <= c.ended_at <= after for c in commands)
    assert all(before <= s.started_at <= (s.ended_at or 0) <= after for s in store.steps(run.run_id))
    moves = [c for c in commands if c.device == "arm"]
    assert [c.command for c in moves] == ["transfer"] * 5
    assert moves[0].params == {"source": "hotel1.slot1", "destination": "liquid_handler1.nest"}
    history = store.lineage("plate1")
    assert {(c.device, c.command) for c in history.commands} >= {
        ("arm", "transfer"), ("liquid_handler1", "dispense"), ("sealer1", "seal"), ("reader1", "read_absorbance")}


def test_a_resumed_run_continues_its_document_stream(store):
    # a read is safe to repeat after a restart
    _old, cell, clock, run = _run_partly(store, until=lambda run: "read" in run.ctx.in_flight)
    ex2 = Executive(cell, clock, store, LabwareTracker(cell.labware_at))  # the process died
    assert [v for _r, v, _m in ex2.recover()] == ["resumed"]
    ex2.run_until_done()
    assert ex2.runs[run.run_id].status == "succeeded"
    docs = store.documents(run.run_id)
    assert kinds(docs).count("start") == 1 and kinds(docs)[-1] == "stop" and kinds(docs).count("stop") == 1
    assert docs[-1]["exit_status"] == "success" and docs[-1]["num_events"] == {"reader1.read_absorbance": 1}


def test_a_resume_that_fails_closes_the_stream_with_the_reason(store):
    _old, cell, clock, run = _run_partly(store, until=lambda run: "fill" in run.ctx.in_flight)
    ((_rid, verdict, _reason),) = Executive(cell, clock, store, LabwareTracker(cell.labware_at)).recover()
    assert verdict == "failed"
    stop = store.documents(run.run_id)[-1]
    assert stop["exit_status"] == "fail" and stop["reason"].startswith("RESUME_FAILED")
