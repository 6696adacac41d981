"""The workcell description: the shipped cell loads, and every kind of mistake is named precisely."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import yaml

from autolab.model.errors import DescriptionError, UrdfError
from autolab.model.workcell import load_workcell, parse_workcell
from autolab.paths import data_path

CONFIG = data_path("config", "workcell.yaml")


@pytest.fixture(scope="module")
def wc():
    return load_workcell()


@pytest.fixture
def cell_copy(tmp_path: Path) -> Path:
    """A writable copy of the shipped description with its URDF, to break on purpose."""
    (tmp_path / "config").mkdir()
    (tmp_path / "urdf").mkdir()
    shutil.copy(CONFIG, tmp_path / "config" / "workcell.yaml")
    shutil.copy(data_path("urdf", "arm.urdf"), tmp_path / "urdf" / "arm.urdf")
    return tmp_path / "config" / "workcell.yaml"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"test set-up: {old!r} not in the description"
    path.write_text(text.replace(old, new, 1))


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_shipped_description_has_the_devices_locations_and_inventory_the_cell_needs(wc):
    assert {
        "arm",
        "conveyor",
        "hotel1",
        "reader1",
        "sealer1",
        "incubator1",
        "liquid_handler1",
        "barcode1",
        "camera1",
    } <= set(wc.devices)
    assert wc.devices["reader1"].type == "plate_reader"
    assert sum(loc.kind == "hotel_slot" for loc in wc.locations.values()) >= 4
    for loc_id in (
        "conveyor.in",
        "conveyor.out",
        "reader1.nest",
        "sealer1.nest",
        "incubator1.nest",
        "liquid_handler1.nest",
    ):
        assert loc_id in wc.locations
    assert {loc.kind for loc in wc.locations.values()} == {"hotel_slot", "conveyor_station", "instrument_nest", "deck"}
    items = {i.id: i for i in wc.inventory}
    assert items["plate1"].location == "hotel1.slot1" and items["plate2"].location == "hotel1.slot2"
    assert "source1" in items
    assert len({i.aruco_id for i in wc.inventory}) == len(wc.inventory)
    assert all(i.barcode for i in wc.inventory)
    assert {"home", "travel"} <= set(wc.arm.named_poses)


def test_conveyor_stations_are_about_sixty_centimetres_apart_along_the_belt(wc):
    stations = wc.stations("conveyor")
    assert [s.id for s in stations] == ["conveyor.in", "conveyor.out"]
    assert stations[0].pose.distance(stations[1].pose) == pytest.approx(0.6, abs=0.05)


def test_labware_types_follow_the_slas_footprint_and_well_grids(wc):
    kinds = {t.kind for t in wc.labware_types.values()}
    assert {"plate", "tube_rack"} <= kinds
    by_wells = {t.wells: t for t in wc.labware_types.values() if t.kind == "plate"}
    assert {96, 384} <= set(by_wells)
    for t in wc.labware_types.values():
        assert (t.length_mm, t.width_mm) == (127.76, 85.48)
    p96 = by_wells[96]
    assert p96.mass_g == pytest.approx(80.0)
    # A1 and H12 are symmetric about the footprint centre on a 96-well plate.
    a1, h12 = p96.well_position_m("A1"), p96.well_position_m("H12")
    assert a1[0] == pytest.approx(-h12[0], abs=1e-4) and a1[1] == pytest.approx(-h12[1], abs=1e-4)
    assert a1[0] < 0 < a1[1]  # A1 is at -x (first column), +y (row A)
    assert p96.well_names()[:2] == ["A1", "A2"] and p96.well_names()[-1] == "H12"
    with pytest.raises(ValueError, match="does not exist"):
        p96.well_position_m("I1")
    assert by_wells[384].well_names()[-1] == "P24"


def test_location_poses_given_in_a_device_frame_move_with_the_device(wc, cell_copy):
    _edit(cell_copy, "pose: [0.5, 0.3, 0.0, 0.0]", "pose: [0.5, 0.3, 0.0, 1.5707963]")  # turn reader1
    moved = load_workcell(cell_copy)
    nest = moved.location("reader1.nest").pose
    assert (nest.x, nest.y) == pytest.approx((0.5, 0.3))
    assert nest.yaw == pytest.approx(math.pi / 2, abs=1e-6)
    slot = wc.location("hotel1.slot4").pose
    assert (slot.x, slot.y, slot.z) == pytest.approx((0.21, 0.47, 0.03))


def test_hash_ignores_formatting_but_not_values(wc, cell_copy):
    text = cell_copy.read_text()
    cell_copy.write_text("# a new comment\n" + text.replace("{size: [1.8, 1.7, 0.04]", "{size: [1.80, 1.70, 0.040]"))
    assert load_workcell(cell_copy).hash() == wc.hash()
    _edit(cell_copy, 'barcode: "AL-P-000001"', 'barcode: "AL-P-000009"')
    assert load_workcell(cell_copy).hash() != wc.hash()


def test_hash_covers_the_arm_urdf(wc, cell_copy):
    urdf = cell_copy.parent.parent / "urdf" / "arm.urdf"
    urdf.write_text(urdf.read_text().replace('effort="150"', 'effort="151"', 1))
    assert load_workcell(cell_copy).hash() != wc.hash()


@pytest.mark.parametrize(
    ("old", "new", "key", "problem", "line_needle"),
    [
        (
            "location: hotel1.slot2,",
            "location: hotel9.slot2,",
            "inventory[1].location",
            "unknown location 'hotel9.slot2'",
            "id: plate2",
        ),
        (
            "type: corning_96_wellplate_360ul_flat, location: hotel1.slot2",
            "type: corning_96_wellplate_360ul_flatt, location: hotel1.slot2",
            "inventory[1].type",
            "unknown labware type",
            "id: plate2",
        ),
        ("aruco_id: 2}", "aruco_id: 1}", "inventory[1].aruco_id", "already used by inventory[0]", "id: plate2"),
        (
            "    length_mm: 127.76\n    width_mm: 85.48\n    height_mm: 14.22\n    rows: 8",
            "    length_mm: -127.76\n    width_mm: 85.48\n    height_mm: 14.22\n    rows: 8",
            "labware_types.corning_96_wellplate_360ul_flat.length_mm",
            "must be > 0",
            "length_mm: -127.76",
        ),
        (
            "    rows: 8\n",
            "    rows: eight\n",
            "labware_types.corning_96_wellplate_360ul_flat.rows",
            "expected an integer",
            "rows: eight",
        ),
        (
            "device: reader1, frame: reader1,",
            "device: reader2, frame: reader1,",
            "['reader1.nest'].device",
            "unknown device 'reader2'",
            "reader1.nest:",
        ),
        (
            "pose: [0.0, 0.0, 0.06, 0.0], accepts: *sbs_plates}\n  sealer1",
            "pose: [0.0, 0.0, 0.06], accepts: *sbs_plates}\n  sealer1",
            "['reader1.nest'].pose",
            "expected a list of 4 numbers",
            "reader1.nest:",
        ),
        (
            "kind: instrument_nest, device: sealer1",
            "kind: nest, device: sealer1",
            "['sealer1.nest'].kind",
            "'nest' is not one of",
            "sealer1.nest:",
        ),
        (
            "    type: plate_reader\n",
            "    type: plate_reader\n    colour: blue\n",
            "devices.reader1.colour",
            "unknown key 'colour'",
            "colour: blue",
        ),
        (
            "urdf: urdf/arm.urdf",
            "urdf: urdf/missing.urdf",
            "devices.arm.params.urdf",
            "cannot read",
            "urdf: urdf/missing.urdf",
        ),
        (
            "home: [2.7508, -1.9, 1.5,",
            "home: [2.7508, -1.9, 7.5,",
            "devices.arm.params.named_poses.home[2]",
            "outside elbow_joint's limits",
            "home: [2.7508",
        ),
        (
            "well_pitch_mm: 9.0\n    a1_offset_mm: [14.38, 11.24]",
            "well_pitch_mm: 19.0\n    a1_offset_mm: [14.38, 11.24]",
            "labware_types.corning_96_wellplate_360ul_flat.well_pitch_mm",
            "outside the 127.76 x 85.48 mm footprint",
            "well_pitch_mm: 19.0",
        ),
        (
            "schema_version: 1",
            "schema_version: 2",
            "schema_version",
            "unsupported schema_version 2",
            "schema_version: 2",
        ),
    ],
)
def test_a_broken_description_names_file_key_line_and_problem(cell_copy, old, new, key, problem, line_needle):
    _edit(cell_copy, old, new)
    with pytest.raises(DescriptionError) as err:
        load_workcell(cell_copy)
    e = err.value
    assert e.file == str(cell_copy)
    assert key in e.key
    assert problem in e.problem
    assert e.line == _line_of(cell_copy, line_needle)
    assert str(cell_copy) in str(e) and problem in str(e)


def test_a_broken_arm_urdf_fails_the_load_naming_the_urdf_file_and_element(cell_copy):
    urdf = cell_copy.parent.parent / "urdf" / "arm.urdf"
    _edit(urdf, '<mimic joint="finger_left_joint"', '<mimic joint="finger_middle_joint"')
    with pytest.raises(UrdfError) as err:
        load_workcell(cell_copy)
    assert err.value.file == str(urdf) and err.value.element == "joint 'finger_right_joint'"
    assert "mimics unknown joint 'finger_middle_joint'" in str(err.value)


def test_labware_at_a_location_that_does_not_accept_it_is_refused(cell_copy):
    _edit(
        cell_copy,
        "type: nest_12_reservoir_15ml, location: liquid_handler1.source",
        "type: nest_12_reservoir_15ml, location: reader1.nest",
    )
    with pytest.raises(DescriptionError, match="reader1.nest does not accept nest_12_reservoir_15ml"):
        load_workcell(cell_copy)


def test_missing_section_and_bad_yaml_are_reported_with_a_line(tmp_path):
    data = yaml.safe_load(CONFIG.read_text())
    del data["inventory"]
    with pytest.raises(DescriptionError, match="missing required key 'inventory'"):
        parse_workcell(yaml.safe_dump(data), tmp_path / "w.yaml")
    with pytest.raises(DescriptionError) as err:
        parse_workcell("name: x\ndevices: [unclosed\n", tmp_path / "w.yaml")
    assert "not valid YAML" in err.value.problem and err.value.line is not None


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(DescriptionError, match="cannot read the file"):
        load_workcell(tmp_path / "nope.yaml")
