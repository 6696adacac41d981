"""The simulated liquid handler pipettes column by column in simulated time, without ROS.

An 8-channel head: 3 s of set-up, then one 6 s cycle per column of up to 8 wells. The
whole operation is checked when it starts and nothing moves then; each column's liquid
moves when its cycle ends, so an abort leaves exactly the columns done, and says which.
"""

from __future__ import annotations

import pytest

from autolab.devices.drivers.alp_liquid_handler import AlpLiquidHandler
from autolab.devices.emulators.alp import AlpEmulator
from autolab.devices.errors import InvalidParameters, LiquidHandlingError
from autolab.devices.framing import decode, encode
from autolab.devices.instruments import Instrument
from autolab.model.labware import DEFAULT_PLATE, Reagent
from autolab.sim.instruments import LocalLiquids, SimLiquidHandler
from autolab.sim.liquids import LiquidWorld

SETUP_S, CYCLE_S = 3.0, 6.0
ALL_96 = DEFAULT_PLATE.well_names
COLUMN_MAJOR = [f"{row}{col}" for col in range(1, 13) for row in "ABCDEFGH"]  # as "A1:H12" expands


class FakeClock:
    """Simulated time under test control."""

    def __init__(self) -> None:
        self.t = 500.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def cell():
    """A liquid handler with plate1 in its nest, on a shared in-process liquid world and a test clock."""
    clock, world = FakeClock(), LiquidWorld()
    lh = Instrument("liquid_handler", SimLiquidHandler("lh1", clock=clock, liquids=LocalLiquids(world)))
    lh.backend.set_occupant("plate1")
    return lh, world, clock


def volumes(world: LiquidWorld, plate: str = "plate1") -> dict[str, float]:
    return {w: round(liq.volume_ul, 6) for w, liq in world.contents(plate).items()}


def columns(n: int) -> list[str]:
    """The wells of the first n columns, in pipetting order."""
    return COLUMN_MAJOR[: 8 * n]


def test_full_dispense_fills_column_by_column_and_ends_with_every_well_filled(cell):
    lh, world, clock = cell
    lh.start("dispense", {"reagent": "brilliant_blue_stock", "dest_wells": "A1:H12", "volume_ul": 25})
    clock.t += 2.0
    assert lh.backend.progress().phase == "setting up" and volumes(world) == {}
    clock.t += SETUP_S - 2.0 + 3 * CYCLE_S + 1.0  # three columns done, the fourth running
    progress = lh.backend.progress()
    assert progress.phase == "pipetting column 4 of 12" and not progress.done
    assert set(volumes(world)) == set(columns(3))
    clock.t += 9 * CYCLE_S
    res = lh.backend.result()
    assert volumes(world) == dict.fromkeys(ALL_96, 25.0)
    assert world.contents("plate1")["H12"].concentration_um("brilliant_blue") == pytest.approx(20.0)
    assert res.kind == "liquid_transfer" and res.data["status"] == "complete"
    assert res.data["wells_done"] == COLUMN_MAJOR and res.data["volumes_done_ul"] == [25.0] * 96
    assert (res.data["columns"], res.data["columns_done"]) == (12, 12)
    assert dict((n, v) for n, v, _ in res.outputs) == {"total_volume_ul": 2400.0, "wells": 96}


def test_abort_after_five_columns_leaves_exactly_those_wells_filled_and_says_so(cell):
    lh, world, clock = cell
    lh.start("dispense", {"reagent": "water", "dest_wells": "A1:H12", "volume_ul": [10.0] * 96})
    clock.t += SETUP_S + 5 * CYCLE_S + 2.0
    lh.backend.abort()
    assert volumes(world) == dict.fromkeys(columns(5), 10.0)  # the rest stay empty
    res = lh.backend.result()
    assert res.kind == "liquid_transfer" and res.data["status"] == "aborted"
    assert res.data["wells_done"] == columns(5) and res.data["volumes_done_ul"] == [10.0] * 40
    assert (res.data["columns"], res.data["columns_done"]) == (12, 5)
    assert dict((n, v) for n, v, _ in res.outputs) == {"total_volume_ul": 400.0, "wells": 40}
    clock.t += 600.0  # the columns never done never happen
    assert lh.backend.status().state == "idle" and len(volumes(world)) == 40


def test_abort_during_set_up_moves_nothing_and_records_nothing(cell):
    lh, world, clock = cell
    lh.start("dispense", {"reagent": "water", "dest_wells": "A1:H12", "volume_ul": 5})
    clock.t += SETUP_S - 0.5
    lh.backend.abort()
    res = lh.backend.result()
    assert res.kind == "" and res.data["wells_done"] == [] and res.data["columns_done"] == 0
    assert volumes(world) == {}


def test_transfer_and_aspirate_move_each_column_when_it_is_done(cell):
    lh, world, clock = cell
    world.dispense("source1", ["A1"], Reagent("dye", {"tartrazine": 100.0}), [360.0])
    lh.start(
        "transfer", {"source_labware": "source1", "source_wells": "A1", "dest_wells": "A1:H2", "volume_ul": 20}
    )
    clock.t += SETUP_S + CYCLE_S
    lh.backend.progress()  # time acts when the instrument is observed (the node polls it all along)
    assert volumes(world, "source1") == {"A1": 200.0}  # the first column took 8 x 20 uL
    assert volumes(world) == dict.fromkeys(columns(1), 20.0)
    clock.t += CYCLE_S
    res = lh.backend.result()
    assert res.data["source_wells_done"] == ["A1"] * 16 and res.data["wells_done"] == columns(2)
    assert volumes(world, "source1") == {"A1": 40.0}
    assert world.contents("plate1")["H2"].concentration_um("tartrazine") == pytest.approx(100.0)

    lh.start("aspirate", {"source_wells": "A1:H2", "volume_ul": 15})
    clock.t += SETUP_S + CYCLE_S
    lh.backend.abort()
    assert volumes(world) == {**dict.fromkeys(columns(1), 5.0), **dict.fromkeys(COLUMN_MAJOR[8:16], 20.0)}
    assert lh.backend.result().data["wells_done"] == columns(1)
    assert sum(volumes(world, "lh1.waste").values()) == pytest.approx(8 * 15.0)


def test_an_operation_that_would_overflow_any_well_is_refused_before_any_well_changes(cell):
    lh, world, clock = cell
    world.dispense("plate1", ["H12"], Reagent("water"), [300.0])
    with pytest.raises(LiquidHandlingError, match="nothing moved: well H12 would overflow"):
        lh.start("dispense", {"reagent": "water", "dest_wells": "A1:H12", "volume_ul": 100})
    # Overflow along the way counts too: C1 fills twice in one operation.
    with pytest.raises(LiquidHandlingError, match="well C1 would overflow"):
        lh.start("dispense", {"reagent": "water", "dest_wells": "C1,D1,C1", "volume_ul": 200})
    # Underflow along the way: A1 holds enough for two of its three transfers.
    world.dispense("source1", ["A1"], Reagent("water"), [50.0])
    with pytest.raises(LiquidHandlingError, match="well A1 holds 10.00 uL, cannot take 20.00"):
        lh.start("transfer", {"source_labware": "source1", "source_wells": "A1", "dest_wells": "B1:B3",
                              "volume_ul": 20})
    with pytest.raises(LiquidHandlingError, match="holds 0.00 uL"):
        lh.start("aspirate", {"source_wells": "A1", "volume_ul": 10})
    clock.t += 600.0
    assert volumes(world) == {"H12": 300.0} and volumes(world, "source1") == {"A1": 50.0}
    assert lh.backend.status().state == "idle"


@pytest.mark.parametrize(
    "operation, params, message",
    [
        ("dispense", {"reagent": "water", "dest_wells": ["A1", "Z9"], "volume_ul": [10.0]},
         "'dest_wells': well 'Z9' does not exist"),
        ("dispense", {"reagent": "water", "dest_wells": ["A1", "A2", "A3"], "volume_ul": [10.0, 20.0]},
         "'volume_ul': expected 1 or 3 values"),
        ("dispense", {"reagent": "unobtainium", "dest_wells": ["A1"], "volume_ul": [10.0]},
         "unknown reagent 'unobtainium'.*water"),
        ("dispense", {"reagent": "mix", "dest_wells": ["A1"], "volume_ul": [10.0], "components": ["tartrazine"],
                      "concentrations_um": [1.0, 2.0]}, "'components' .1. and 'concentrations_um' .2."),
        ("transfer", {"source_labware": "source1", "source_wells": ["A1", "A2"], "dest_wells": ["B1", "B2", "B3"],
                      "volume_ul": [10.0]}, "'source_wells': expected 1 or 3 values"),
    ],
)
def test_bad_requests_are_invalid_parameters_before_anything_moves(cell, operation, params, message):
    lh, world, _clock = cell
    world.dispense("source1", ["A1", "A2"], Reagent("water"), [100.0, 100.0])
    with pytest.raises(InvalidParameters, match=message):
        lh.backend.start(operation, params, "plate1")
    assert volumes(world) == {} and lh.backend.status().state == "idle"


def test_wells_changed_mid_run_fail_the_job_naming_the_error_and_keep_the_columns_done(cell):
    lh, world, clock = cell
    lh.start("dispense", {"reagent": "water", "dest_wells": "A1:H12", "volume_ul": 200})
    clock.t += SETUP_S + 2 * CYCLE_S + 1.0
    assert lh.backend.progress().phase == "pipetting column 3 of 12"
    world.dispense("plate1", ["C3"], Reagent("water"), [300.0])  # someone else, behind the handler's back
    clock.t += CYCLE_S
    assert lh.backend.status().state == "error"
    with pytest.raises(LiquidHandlingError) as failure:
        lh.backend.result()
    message = str(failure.value)
    assert "dispense stopped at column 3 of 12: well C3 would overflow" in message
    assert "columns 1-2 of 12 done (16 well(s): A1, B1," in message and "the rest not pipetted" in message
    partial = failure.value.partial
    assert partial.data["status"] == "failed" and partial.data["wells_done"] == columns(2)
    clock.t += 600.0
    assert volumes(world) == {**dict.fromkeys(columns(2), 200.0), "C3": 300.0}


def test_an_aborted_dispense_reports_its_columns_over_the_serial_protocol():
    """The ALP emulator serves the same object: ABORT then RESULT carries the wells done to the driver."""
    clock, world = FakeClock(), LiquidWorld()
    emulator = AlpEmulator(SimLiquidHandler("lh1", clock=clock, liquids=LocalLiquids(world)), "ALP-LH8")
    emulator.place_plate("plate1")

    def command(seq: int, verb: str, args: dict | None = None) -> dict[str, str]:
        reply = decode(emulator.handle(encode(">", seq, verb, args or {})))
        assert reply.verb == "OK", reply.args
        return reply.args

    command(1, "START", {"op": "dispense", "reagent": "water", "dest_wells": "A1:H3", "volume_ul": 30})
    clock.t += SETUP_S + CYCLE_S + 0.5
    assert command(2, "PROGRESS")["phase"] == "pipetting_column_2_of_3"
    command(3, "ABORT")
    res = AlpLiquidHandler(port="loop://").unflatten(command(4, "RESULT"))
    assert res.kind == "liquid_transfer" and res.data["status"] == "aborted"
    assert res.data["wells_done"] == columns(1) and res.data["volumes_done_ul"] == [30.0] * 8
    assert volumes(world) == dict.fromkeys(columns(1), 30.0)
