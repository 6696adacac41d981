"""Liquid tracking (wells, volumes, compositions), Beer-Lambert readings and instrument physics, without ROS."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autolab.devices.errors import DeviceFault, InvalidOperation, InvalidParameters, NotReady
from autolab.devices.instruments import Instrument
from autolab.model.errors import UnknownReagent
from autolab.model.labware import (
    DEFAULT_PLATE,
    Liquid,
    Plate,
    PlateGeometry,
    Reagent,
    VolumeError,
    WellNameError,
    WellOverflow,
    WellUnderflow,
    check_fits,
    dispense,
    transfer,
)
from autolab.sim.instruments import (
    FirstOrderThermal,
    LocalLiquids,
    SimBarcodeScanner,
    SimIncubator,
    SimLiquidHandler,
    SimPlateReader,
)
from autolab.sim.liquids import DYES, LiquidWorld, ReaderOptics, absorbance

BLUE = Reagent("blue", {"brilliant_blue": 20.0})


class FakeClock:
    """Simulated time under test control (the physics reads time through an injected clock)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


# --- wells and volumes ------------------------------------------------------------------------


def test_well_names_are_checked_against_the_plate():
    assert DEFAULT_PLATE.canonical("h12") == "H12"
    assert DEFAULT_PLATE.index("B3") == (1, 2)
    with pytest.raises(WellNameError, match="I1.*8 rows x 12 columns"):
        DEFAULT_PLATE.index("I1")
    with pytest.raises(WellNameError, match="not a well name"):
        DEFAULT_PLATE.index("1A")
    big = PlateGeometry("p1536", 32, 48, 10.0, 1.0)
    assert big.well_names[-1] == "AF48" and big.canonical("af48") == "AF48"


def test_mixing_conserves_amounts_and_concentrations_follow():
    plate = Plate("p")
    dispense(plate, ["A1"], BLUE, [100.0])
    dispense(plate, ["A1"], Reagent("water"), [300.0 - 100.0 - 40.0])
    well = plate.well("A1")
    assert well.volume_ul == pytest.approx(260.0)
    assert well.content.amounts_nmol["brilliant_blue"] == pytest.approx(2.0)  # 20 uM x 100 uL
    assert well.content.concentration_um("brilliant_blue") == pytest.approx(2.0 / 260 * 1000)


def test_transfer_moves_a_proportional_share_of_solutes():
    src, dst = Plate("src"), Plate("dst")
    dispense(src, ["A1"], Reagent("mix", {"tartrazine": 50.0, "allura_red": 10.0}), [200.0])
    transfer(src, ["A1"], dst, ["B1", "B2"], [50.0, 25.0])
    assert src.well("A1").volume_ul == pytest.approx(125.0)
    b1 = dst.well("B1").content
    assert b1.concentration_um("tartrazine") == pytest.approx(50.0)
    assert b1.amounts_nmol["allura_red"] == pytest.approx(0.5)


def test_overflow_is_refused_and_nothing_changes():
    plate = Plate("p")
    dispense(plate, ["A1"], BLUE, [300.0])
    with pytest.raises(WellOverflow, match="A1 would overflow.*capacity 360"):
        dispense(plate, ["A2", "A1"], BLUE, [10.0, 100.0])
    assert plate.well("A2").volume_ul == 0.0 and plate.well("A1").volume_ul == pytest.approx(300.0)


def test_underflow_is_refused_and_both_plates_are_restored():
    src, dst = Plate("src"), Plate("dst")
    dispense(src, ["A1", "A2"], BLUE, [50.0])
    with pytest.raises(WellUnderflow, match="A2 holds 50.00 uL, cannot take 60.00"):
        transfer(src, ["A1", "A2"], dst, ["A1", "A2"], [40.0, 60.0])
    assert src.well("A1").volume_ul == pytest.approx(50.0)
    assert dst.filled_wells() == []


@pytest.mark.parametrize("volume", [-1.0, float("nan"), float("inf")])
def test_impossible_volumes_are_named_errors(volume):
    with pytest.raises(VolumeError, match="volume_ul must be a finite number >= 0"):
        dispense(Plate("p"), ["A1"], BLUE, [volume])


def test_preflight_sums_fills_per_well():
    check_fits(DEFAULT_PLATE, [("A1", 200.0), ("A2", 360.0)])
    with pytest.raises(WellOverflow, match="A1 would receive 400.00 uL"):
        check_fits(DEFAULT_PLATE, [("A1", 200.0), ("a1", 200.0)])


# --- Beer-Lambert -----------------------------------------------------------------------------------


def test_absorbance_is_linear_in_concentration_and_path_length():
    one = Liquid.of(100.0, {"brilliant_blue": 10.0})
    two = Liquid.of(100.0, {"brilliant_blue": 20.0})
    tall = Liquid.of(200.0, {"brilliant_blue": 10.0})
    a1 = absorbance(one, DEFAULT_PLATE, 630.0)
    assert absorbance(two, DEFAULT_PLATE, 630.0) == pytest.approx(2 * a1)
    assert absorbance(tall, DEFAULT_PLATE, 630.0) == pytest.approx(2 * a1)
    # By hand: 130000 L/(mol cm) x 10 uM x (100 mm^3 / 36.96 mm^2 = 0.2706 cm) = 0.352
    assert a1 == pytest.approx(0.352, abs=0.002)


def test_mixture_absorbance_is_the_sum_of_its_dyes():
    mix = Liquid.of(200.0, {"brilliant_blue": 5.0, "tartrazine": 30.0})
    parts = [Liquid.of(200.0, {"brilliant_blue": 5.0}), Liquid.of(200.0, {"tartrazine": 30.0})]
    for wl in (427.0, 504.0, 630.0):
        assert absorbance(mix, DEFAULT_PLATE, wl) == pytest.approx(sum(absorbance(p, DEFAULT_PLATE, wl) for p in parts))
    assert DYES["tartrazine"].epsilon(427.0) > 10 * DYES["tartrazine"].epsilon(630.0)


def test_reader_noise_is_seeded_and_saturates():
    optics = ReaderOptics()
    a = [optics.read(1.0, np.random.default_rng(5)) for _ in range(3)]
    b = [optics.read(1.0, np.random.default_rng(5)) for _ in range(3)]
    assert a == b
    samples = [optics.read(1.0, np.random.default_rng(i)) for i in range(400)]
    assert np.std(samples) == pytest.approx(0.002 + 0.005, rel=0.2)
    assert optics.read(9.0, np.random.default_rng(0)) == optics.max_od


def test_unknown_reagent_names_the_known_ones():
    with pytest.raises(UnknownReagent, match="known: .*water"):
        LiquidWorld().reagent("unobtainium")


# --- simulated instruments ------------------------------------------------------------------------------


def test_first_order_thermal_follows_the_exponential():
    th = FirstOrderThermal(22.0, 37.0, tau_s=300.0)
    th.advance(300.0)
    assert th.temperature_c == pytest.approx(37 - 15 * math.exp(-1))
    assert th.time_to_within(0.5) == pytest.approx(300 * math.log((37 - th.temperature_c) / 0.5))


def test_incubator_takes_the_time_to_warm_up_plus_the_incubation():
    clock = FakeClock()
    inc = Instrument("incubator", SimIncubator(clock=clock))
    inc.backend.set_occupant("plate1")
    inc.start("incubate", {"temperature_c": 37, "time_s": 600})
    warm = 300 * math.log(15 / 0.5)
    clock.t += warm + 590
    assert not inc.backend.progress().done
    assert inc.backend.status().values["temperature_c"] == pytest.approx(37, abs=0.5)
    clock.t += 20
    assert inc.backend.progress().done
    # An open door pulls the chamber back towards ambient.
    inc.start("open_door", {})
    clock.t += 2.5
    inc.backend.progress()
    clock.t += 120
    assert inc.backend.status().values["temperature_c"] < 26


def test_reader_reads_the_shared_liquid_world():
    world = LiquidWorld()
    clock = FakeClock()
    lh = Instrument("liquid_handler", SimLiquidHandler(clock=clock, liquids=LocalLiquids(world)))
    reader = Instrument("plate_reader", SimPlateReader(clock=clock, liquids=LocalLiquids(world), seed=1))
    for i in (lh, reader):
        i.backend.set_occupant("plate9")
    lh.start("dispense", {"reagent": "brilliant_blue_stock", "dest_wells": "A1", "volume_ul": 200})
    clock.t += 9  # 3 s set-up + one 6 s column: the liquid is in the plate when the column is done
    assert lh.backend.progress().done
    reader.start("read_absorbance", {"wavelength_nm": 630, "wells": ["A1", "A2"]})
    clock.t += 60
    res = reader.backend.result()
    expected = absorbance(Liquid.of(200.0, {"brilliant_blue": 20.0}), DEFAULT_PLATE, 630.0) + 0.04
    assert res.data["wells"]["A1"] == pytest.approx(expected, abs=5 * (0.002 + 0.005 * expected))
    assert res.data["wells"]["A2"] == pytest.approx(0.04, abs=0.015)


def test_well_ranges_expand_and_wells_off_the_plate_are_refused_before_reading():
    world = LiquidWorld()
    clock = FakeClock()
    reader = Instrument("plate_reader", SimPlateReader(clock=clock, liquids=LocalLiquids(world)))
    reader.backend.set_occupant("plate1")
    assert reader.validate("read_absorbance", {"wavelength_nm": 600, "wells": "A1:C1,H12"})["wells"] == [
        "A1",
        "B1",
        "C1",
        "H12",
    ]
    with pytest.raises(InvalidParameters, match="'wells'.*expected well names or ranges"):
        reader.validate("read_absorbance", {"wavelength_nm": 600, "wells": "A1:top"})
    with pytest.raises(InvalidParameters, match="'wells': well 'Z9' does not exist"):
        reader.start("read_absorbance", {"wavelength_nm": 600, "wells": "A1,Z9"})
    assert reader.backend.status().state == "idle"


def test_frontend_validates_before_the_backend_is_touched():
    reader = Instrument("plate_reader", SimPlateReader(clock=FakeClock()))
    with pytest.raises(InvalidOperation, match="offers: close_door, open_door, read_absorbance"):
        reader.validate("incubate", {})
    with pytest.raises(InvalidParameters, match="unknown parameter.*colour"):
        reader.validate("read_absorbance", {"wavelength_nm": 600, "colour": "red"})
    with pytest.raises(InvalidParameters, match=r"'wavelength_nm' = 100 nm is out of range \[230, 1000\] nm"):
        reader.validate("read_absorbance", {"wavelength_nm": 100})
    with pytest.raises(InvalidParameters, match="not a valid float"):
        reader.validate("read_absorbance", {"wavelength_nm": "NaN"})
    with pytest.raises(NotReady, match="no plate in the nest"):
        reader.validate("read_absorbance", {"wavelength_nm": 600})
    inc = Instrument("incubator", SimIncubator(clock=FakeClock()))
    with pytest.raises(InvalidParameters, match="'slot' = 2.5 is not a valid int"):
        inc.validate("retrieve", {"slot": 2.5})


def test_barcode_scanner_without_a_code_reports_no_read():
    clock = FakeClock()
    scanner = Instrument("barcode_scanner", SimBarcodeScanner(clock=clock, barcodes={"plate1": "AL-P-1"}))
    scanner.backend.set_occupant("plate1")
    scanner.start("scan", {})
    clock.t += 1
    assert scanner.backend.result().data["barcode"] == "AL-P-1"
    scanner.backend.set_occupant("plate2")
    scanner.start("scan", {})
    clock.t += 1
    assert scanner.backend.status().state == "error"  # a state poll sees the end first...
    with pytest.raises(DeviceFault, match="NO READ"):  # ...and the failure still reaches result()
        scanner.backend.result()
