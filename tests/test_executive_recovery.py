"""Recovery policies, operator checkpoints, pause/abort, and resuming after a crash.

The real executive core records into a real SQLite run store; devices are the
simulated-time cell model. A "crash" is a new Executive on the same store and
the same physical cell state, as after `kill -9` and a restart.
"""

from __future__ import annotations

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
    ex.abort(run.run_id)
    assert run.status == "aborted" and cell.cancelled
    assert store.get_run(run.run_id).outcome == "aborted"
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


def _run_partly(store, ticks: int):
    clock = SimClock()
    ex, cell = make(store, clock=clock)
    run = ex.submit(plate_prep())
    for _ in range(ticks):
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
    clock = SimClock()
    ex, cell = make(store, clock=clock)
    run = ex.submit(plate_prep())
    while "fill" not in run.ctx.in_flight:
        ex.tick()
        clock.advance_to(clock.next_event())
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
