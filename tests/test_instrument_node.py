"""Instrument nodes in separate processes over DDS: liquid handler fills, plate reader reads.

Real parts only: the liquid world served by `autolab.nodes.sim_liquid_services`,
two `autolab.nodes.instrument` processes (sim backends), a real SQLite run store.
"""

from __future__ import annotations

import math

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.timeout(150)]

TIME_SCALE = "20.0"


@pytest.fixture(scope="module")
def store_url(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'autolab.db'}"


@pytest.fixture(scope="module")
def cell(start_node, store_url, client_node):
    from autolab.nodes.qos import LATCHED
    from autolab.nodes.sync_client import SyncClient
    from autolab_interfaces.msg import DeviceState

    liquids = start_node("autolab.nodes.sim_liquid_services")
    common = ["-p", f"time_scale:={TIME_SCALE}", "-p", f"store_url:={store_url}", "-p", "backend:=sim"]
    lh = start_node(
        "autolab.nodes.instrument",
        name="liquid_handler1",
        ros_args=["-r", "__node:=liquid_handler1", "-p", "type:=liquid_handler", *common],
    )
    reader = start_node(
        "autolab.nodes.instrument",
        name="reader1",
        ros_args=["-r", "__node:=reader1", "-p", "type:=plate_reader", "-p", "seed:=7", *common],
    )
    client = SyncClient(client_node, client_node.executor_for_test)
    for dev in ("liquid_handler1", "reader1"):
        try:
            client.wait_message(DeviceState, f"/{dev}/state", LATCHED, timeout=30.0)
        except Exception:
            for proc in (liquids, lh, reader):
                print(proc.output()[-3000:])
            raise
    pub = client_node.create_publisher(_poses_type(), "sim/labware_poses", LATCHED)
    return client, pub


def _poses_type():
    from autolab_interfaces.msg import LabwarePoseArray

    return LabwarePoseArray


def place(client, pub, device: str, labware_id: str) -> None:
    """Publish the world's labware poses with `labware_id` in `device`'s nest; wait for the device to see it."""
    from autolab.nodes.qos import LATCHED
    from autolab_interfaces.msg import DeviceState, LabwarePose, LabwarePoseArray

    msg = LabwarePoseArray()
    if labware_id:
        item = LabwarePose()
        item.labware.id = labware_id
        item.location.id = f"{device}.nest"
        item.confidence = 1.0
        msg.items = [item]
    pub.publish(msg)
    # The nest's occupant by id: the device may still report the plate of an earlier test.
    expected = [labware_id] if labware_id else []
    client.wait_message(
        DeviceState,
        f"/{device}/state",
        LATCHED,
        timeout=10.0,
        predicate=lambda s: s.occupied == bool(labware_id) and [i.id for i in s.labware] == expected,
    )


def param(name: str, value, unit: str = ""):
    from autolab.nodes.params import param_msg

    return param_msg(name, value, unit)


def run(
    client, device: str, operation: str, params=(), run_id: str = "", labware: str = "", timeout=60.0, feedback=None
):
    from autolab_interfaces.action import InstrumentRun

    goal = InstrumentRun.Goal(operation=operation, parameters=list(params), run_id=run_id)
    goal.labware.id = labware
    _status, result = client.run_action(InstrumentRun, f"/{device}/run", goal, timeout=timeout, feedback=feedback)
    return result


def expected_od(volumes: dict[str, float], wavelength: float) -> float:
    """Beer-Lambert for a well filled with `volumes` (uL) of named stocks, plus the plate blank."""
    from autolab.model.labware import DEFAULT_PLATE, Liquid
    from autolab.sim.liquids import REAGENTS, ReaderOptics, absorbance

    total = Liquid()
    for name, vol in volumes.items():
        portion = REAGENTS[name].portion(vol)
        total.volume_ul += portion.volume_ul
        for k, v in portion.amounts_nmol.items():
            total.amounts_nmol[k] = total.amounts_nmol.get(k, 0.0) + v
    return absorbance(total, DEFAULT_PLATE, wavelength, blank=ReaderOptics().blank_od)


DESIGN = {  # well -> uL of each stock
    "A1": {"brilliant_blue_stock": 100.0, "water": 100.0},
    "A2": {"brilliant_blue_stock": 50.0, "water": 150.0},
    "A3": {"tartrazine_stock": 150.0, "water": 50.0},
    "A4": {"brilliant_blue_stock": 40.0, "tartrazine_stock": 120.0, "water": 40.0},
    "B1": {"water": 200.0},
}


def test_reader_reads_plate_filled_by_liquid_handler_as_beer_lambert_predicts(cell, store_url):
    from autolab.data.store import RunStore

    client, pub = cell
    store = RunStore.open(store_url)
    run_id = store.create_run("test_dye_mix")
    place(client, pub, "liquid_handler1", "plate1")
    for stock in ("brilliant_blue_stock", "tartrazine_stock", "water"):
        wells = [w for w, mix in DESIGN.items() if stock in mix]
        res = run(
            client,
            "liquid_handler1",
            "dispense",
            [
                param("reagent", stock),
                param("dest_wells", ",".join(wells)),
                param("volume_ul", [DESIGN[w][stock] for w in wells], "uL"),
            ],
            run_id=run_id,
        )
        assert res.error_code == 0, res.error_msg
    lineage = store.lineage_records(run_id)
    assert {(r.dest_well, r.material) for r in lineage} >= {("A4", "tartrazine_stock"), ("B1", "water")}

    place(client, pub, "reader1", "plate1")
    feedback = []
    for wl in (630.0, 427.0):
        res = run(
            client,
            "reader1",
            "read_absorbance",
            [param("wavelength_nm", wl, "nm")],
            run_id=run_id,
            feedback=feedback.append,
        )
        assert res.error_code == 0, res.error_msg
        assert res.data.run_id == run_id and res.data.kind == "absorbance_plate"
        record = store.get_measurement(res.data.record_id)
        table = record.data["wells"]
        assert len(table) == 96 and record.units == "OD" and record.data["wavelength_nm"] == wl
        for well, mix in DESIGN.items():
            expected = expected_od(mix, wl)
            sd = 0.002 + 0.005 * expected
            assert math.isclose(table[well], expected, abs_tol=5 * sd), (well, wl, table[well], expected)
        assert table["H12"] == pytest.approx(0.040, abs=0.02)  # an empty well reads the blank
    # By hand: A1 is 10 uM brilliant blue in 200 uL; l = 200 mm^3 / 36.96 mm^2 = 0.541 cm;
    # A = 130000 L/(mol cm) * 10e-6 mol/L * 0.541 cm + 0.040 blank = 0.744.
    assert reads_of(store, run_id, 630.0)["A1"] == pytest.approx(0.744, abs=0.02)
    assert any(f.phase == "reading" for f in feedback)
    # The dye mixture is distinguishable: blue dominates at 630 nm, yellow at 427 nm.
    assert reads_of(store, run_id, 630.0)["A1"] > 0.5 > reads_of(store, run_id, 630.0)["A3"]
    assert reads_of(store, run_id, 427.0)["A3"] > reads_of(store, run_id, 427.0)["A1"]


def reads_of(store, run_id: str, wavelength: float) -> dict[str, float]:
    return next(
        m.data["wells"]
        for m in store.measurements(run_id)
        if m.kind == "absorbance_plate" and m.metadata["wavelength_nm"] == wavelength
    )


def test_overflowing_dispense_is_a_liquid_error_and_changes_nothing(cell):
    from autolab_interfaces.action import InstrumentRun
    from autolab_interfaces.srv import GetWellContents

    client, pub = cell
    place(client, pub, "liquid_handler1", "plate2")
    ok = run(
        client,
        "liquid_handler1",
        "dispense",
        [param("reagent", "water"), param("dest_wells", "C1"), param("volume_ul", 300.0, "uL")],
    )
    assert ok.error_code == 0, ok.error_msg
    res = run(
        client,
        "liquid_handler1",
        "dispense",
        [param("reagent", "water"), param("dest_wells", "C2,C1"), param("volume_ul", 100.0, "uL")],
    )
    assert res.error_code == InstrumentRun.Result.LIQUID_ERROR
    assert "overflow" in res.error_msg and "C1" in res.error_msg
    contents = client.call(GetWellContents, "/sim/liquids/get_contents", GetWellContents.Request(labware_id="plate2"))
    assert {w.well: w.volume_ul for w in contents.wells} == {"C1": pytest.approx(300.0)}  # C2 untouched


def test_bad_requests_get_named_errors_before_anything_moves(cell):
    from autolab_interfaces.action import InstrumentRun

    client, pub = cell
    R = InstrumentRun.Result
    place(client, pub, "reader1", "plate1")
    res = run(client, "reader1", "seal")
    assert res.error_code == R.INVALID_OPERATION and "read_absorbance" in res.error_msg
    res = run(client, "reader1", "read_absorbance", [param("wavelength_nm", 1500.0, "nm")])
    assert res.error_code == R.INVALID_PARAMETERS and "wavelength_nm" in res.error_msg and "1000" in res.error_msg
    res = run(client, "reader1", "read_absorbance", [])
    assert res.error_code == R.INVALID_PARAMETERS and "missing parameter 'wavelength_nm'" in res.error_msg
    res = run(client, "reader1", "read_absorbance", [param("wavelength_nm", "blue")])
    assert res.error_code == R.INVALID_PARAMETERS
    place(client, pub, "reader1", "")
    res = run(client, "reader1", "read_absorbance", [param("wavelength_nm", 600.0)])
    assert res.error_code == R.NOT_READY and "no plate" in res.error_msg


def test_open_door_blocks_a_read_until_closed(cell):
    from autolab.nodes.qos import LATCHED
    from autolab_interfaces.action import InstrumentRun
    from autolab_interfaces.msg import DeviceState

    client, pub = cell
    place(client, pub, "reader1", "plate1")
    assert run(client, "reader1", "open_door").error_code == 0
    state = client.wait_message(DeviceState, "/reader1/state", LATCHED, timeout=5.0, predicate=lambda s: s.door_open)
    assert state.occupied and state.labware[0].id == "plate1"
    res = run(client, "reader1", "read_absorbance", [param("wavelength_nm", 600.0)])
    assert res.error_code == InstrumentRun.Result.NOT_READY and "door is open" in res.error_msg
    assert run(client, "reader1", "close_door").error_code == 0
    assert (
        run(
            client,
            "reader1",
            "read_absorbance",
            [param("wavelength_nm", 600.0), param("wells", "A1")],
        ).error_code
        == 0
    )


def test_cancel_stops_a_running_read(cell, start_node, store_url):
    from action_msgs.msg import GoalStatus

    from autolab.nodes.qos import LATCHED
    from autolab_interfaces.action import InstrumentRun
    from autolab_interfaces.msg import DeviceState

    client, pub = cell
    # A reader of its own at real time: a whole-plate read takes 11 s, so the cancel lands mid-read
    # however loaded the machine (at the module's time scale it would be over in half a second).
    start_node(
        "autolab.nodes.instrument",
        name="reader_rt",
        ros_args=[
            "-r",
            "__node:=reader_rt",
            "-p",
            "type:=plate_reader",
            "-p",
            "backend:=sim",
            "-p",
            "time_scale:=1.0",
            "-p",
            f"store_url:={store_url}",
        ],
    )
    client.wait_message(DeviceState, "/reader_rt/state", LATCHED, timeout=30.0)
    place(client, pub, "reader_rt", "plate1")
    goal = InstrumentRun.Goal(operation="read_absorbance", parameters=[param("wavelength_nm", 450.0)])
    feedback: list = []
    handle = client.send_goal(InstrumentRun, "/reader_rt/run", goal, feedback=feedback.append)
    client.spin_until(lambda: any(f.phase == "reading" for f in feedback), 10.0, "the read to start")
    client.cancel(handle)
    status, result = client.result(handle, timeout=10.0)
    assert status == GoalStatus.STATUS_CANCELED and result.error_code == InstrumentRun.Result.CANCELED
    # ... and the instrument is free again.
    assert (
        run(
            client,
            "reader_rt",
            "read_absorbance",
            [param("wavelength_nm", 450.0), param("wells", "A1")],
        ).error_code
        == 0
    )


COLUMN_MAJOR = [f"{row}{col}" for col in range(1, 13) for row in "ABCDEFGH"]  # as "A1:H12" expands


def stop_after_columns(client, device: str, plate: str, columns: int, stop) -> tuple[object, list[str]]:
    """Dispense into every well, call `stop(handle)` once `columns` columns are done; (result, wells filled)."""
    from autolab_interfaces.action import InstrumentRun
    from autolab_interfaces.srv import GetWellContents

    goal = InstrumentRun.Goal(
        operation="dispense",
        parameters=[param("reagent", "water"), param("dest_wells", "A1:H12"), param("volume_ul", 10.0)],
    )
    feedback = []
    handle = client.send_goal(InstrumentRun, f"/{device}/run", goal, feedback=feedback.append)
    running = f"pipetting column {columns + 1} of 12"
    client.spin_until(lambda: any(f.phase == running for f in feedback), timeout=20.0, what=running)
    stop(handle)
    _status, result = client.result(handle, timeout=10.0)
    contents = client.call(GetWellContents, "/sim/liquids/get_contents", GetWellContents.Request(labware_id=plate))
    return result, [w.well for w in contents.wells]


def test_cancelled_dispense_keeps_the_columns_done_and_the_records_say_which(cell, store_url):
    from autolab.data.store import RunStore
    from autolab_interfaces.action import InstrumentRun

    client, pub = cell
    place(client, pub, "liquid_handler1", "plate4")
    result, filled = stop_after_columns(client, "liquid_handler1", "plate4", 2, client.cancel)
    assert result.error_code == InstrumentRun.Result.CANCELED, result.error_msg
    # Whole columns, in order: the ones done before the cancel; the rest never happen.
    n = len(filled)
    assert 16 <= n < 96 and n % 8 == 0 and set(filled) == set(COLUMN_MAJOR[:n])
    assert f"done before the stop: {n // 8} of 12 column(s), {n} well(s) (A1, B1," in result.error_msg
    store = RunStore.open(store_url)
    record = store.get_measurement(result.data.record_id)
    assert record.kind == "liquid_transfer" and record.data["status"] == "aborted"
    assert set(record.data["wells_done"]) == set(filled)
    lineage = [r for r in store.lineage_records(result.data.run_id) if r.dest_labware == "plate4"]
    assert {r.dest_well for r in lineage} == set(filled)


def test_estop_aborts_a_running_operation_and_refuses_new_ones_until_reset(cell, start_node):
    from autolab.nodes.qos import LATCHED
    from autolab_interfaces.action import InstrumentRun
    from autolab_interfaces.msg import DeviceState, SafetyState
    from autolab_interfaces.srv import EStop

    client, pub = cell
    start_node("autolab.nodes.safety")
    client.wait_message(SafetyState, "/safety/state", LATCHED, timeout=20.0)
    place(client, pub, "liquid_handler1", "plate3")
    # 96 wells take 12 columns x 6 s of pipetting: ~4 s of wall time at time_scale 20, long enough to stop.
    estop = EStop.Request(source="test", reason="hand in the liquid handler")
    result, filled = stop_after_columns(
        client, "liquid_handler1", "plate3", 1, lambda _handle: client.call(EStop, "/safety/estop", estop)
    )
    assert result.error_code == InstrumentRun.Result.ESTOP and "hand in the liquid handler" in result.error_msg
    assert 8 <= len(filled) < 96 and f"{len(filled)} well(s)" in result.error_msg  # the columns done stay done
    refused = run(client, "liquid_handler1", "open_door")
    assert refused.error_code == InstrumentRun.Result.ESTOP
    client.call(EStop, "/safety/reset", EStop.Request(source="test"))
    client.wait_message(SafetyState, "/safety/state", LATCHED, timeout=10.0, predicate=lambda s: s.motion_allowed)
    # The liquid handler has heard the reset too (its own state leaves ESTOPPED), not just the safety node.
    client.wait_message(
        DeviceState,
        "/liquid_handler1/state",
        LATCHED,
        timeout=10.0,
        predicate=lambda s: s.state != DeviceState.STATE_ESTOPPED,
    )
    ok = run(client, "liquid_handler1", "open_door")
    assert ok.error_code == 0, ok.error_msg
