"""Pre-flight against the real workcell description: fit, problems with lines, duration estimates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from autolab.executive.preflight import CellFacts, preflight, simulate
from autolab.model.protocol import load_protocol, parse_protocol

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = sorted((ROOT / "protocols").glob("*.yaml"))


@pytest.fixture(scope="module")
def cell() -> CellFacts:
    return CellFacts.load()


def check(text: str, cell: CellFacts, **values):
    proto = parse_protocol(text, "p.yaml")
    return preflight(proto, proto.bind(values), cell)


HEAD = "autolab_protocol: 1\nname: t\nsteps:\n"


@pytest.mark.parametrize("path", PROTOCOLS, ids=lambda p: p.stem)
def test_every_example_protocol_fits_the_workcell_and_returns_its_plates(path, cell):
    proto = load_protocol(path)
    report = preflight(proto, proto.bind({}), cell)
    assert report.ok, [str(p) for p in report.problems]
    assert report.final_locations["plate1"] == "hotel1.slot1"
    assert report.estimate_s >= report.critical_path_s > 0


def test_unknown_labware_and_location_are_named(cell):
    r = check(HEAD + "  - transfer: {id: a, labware: plate9, destination: reader1.nest}\n"
                     "  - transfer: {id: b, labware: plate1, destination: reader9.nest}\n", cell)
    msgs = [str(p) for p in r.problems]
    assert "line 4: step 'a': labware 'plate9' is not in the workcell inventory" in msgs[0]
    assert "line 5" in msgs[1] and "location 'reader9.nest' does not exist" in msgs[1]


def test_operation_the_instrument_lacks_and_parameter_out_of_range(cell):
    r = check(HEAD + "  - transfer: {id: a, labware: plate1, destination: sealer1.nest}\n"
                     "  - instrument: {id: b, device: sealer1, operation: read_absorbance, labware: plate1}\n"
                     "  - instrument: {id: c, device: sealer1, operation: seal, labware: plate1,\n"
                     "                 parameters: {temperature_c: 250}}\n", cell)
    assert not r.ok
    assert "sealer1 (sealer) cannot 'read_absorbance'" in r.problems[0].message
    assert "temperature_c" in r.problems[1].message and "250" in r.problems[1].message


def test_plate_not_in_the_instrument_is_caught_before_anything_moves(cell):
    r = check(HEAD + "  - instrument: {id: read, device: reader1, operation: read_absorbance, labware: plate1,\n"
                     "                 parameters: {wavelength_nm: 450}}\n", cell)
    assert "'plate1' will be at hotel1.slot1, not in reader1" in r.problems[0].message


def test_volumes_that_overflow_a_well_are_refused(cell):
    r = check(HEAD + "  - transfer: {id: a, labware: plate1, destination: liquid_handler1.nest}\n"
                     "  - dispense: {id: b, labware: plate1, wells: 'A1:A2', volume_ul: 200}\n"
                     "  - dispense: {id: c, labware: plate1, wells: 'A2:A3', volume_ul: 200}\n"
                     "  - dispense: {id: d, labware: plate1, wells: 'A13', volume_ul: 10}\n", cell)
    assert [p.step for p in r.problems] == ["c", "d"]
    assert "overflows well A2" in r.problems[0].message and "360" in r.problems[0].message
    assert "no well A13" in r.problems[1].message


def test_occupied_destination_is_refused(cell):
    r = check(HEAD + "  - transfer: {id: a, labware: plate1, destination: hotel1.slot2}\n", cell)
    assert "hotel1.slot2 will be occupied by 'plate2'" in r.problems[0].message


def test_concurrent_estimate_counts_shared_devices(cell):
    prep = load_protocol(ROOT / "protocols" / "plate_preparation.yaml")
    one = simulate(prep, {}, cell)
    two = simulate([(prep, {}), (prep, {"plate": "plate2", "home": "hotel1.slot2"})], None, cell)
    assert one < two < 2 * one


def test_check_command_reports_problems_with_file_line_column(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(HEAD + "  - transfer: {id: a, labware: plate9, destination: reader1.nest}\n")
    out = subprocess.run([sys.executable, "-m", "autolab.cli.main", "check", str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and f"{bad}:4:5: step 'a': labware 'plate9'" in out.stderr
    typo = tmp_path / "typo.yaml"
    typo.write_text(HEAD + "  - transfr: {id: a, labware: plate1, destination: reader1.nest}\n")
    out = subprocess.run([sys.executable, "-m", "autolab.cli.main", "check", str(typo)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr.startswith(f"{typo}:4:5: ") and "transfr" in out.stderr
    good = subprocess.run([sys.executable, "-m", "autolab.cli.main", "check",
                           str(ROOT / "protocols" / "plate_preparation.yaml"), "-p", "volume_ul=120",
                           "--export-bt", str(tmp_path / "t.xml")], capture_output=True, text=True, timeout=60)
    assert good.returncode == 0 and "fits the workcell" in good.stdout and "estimated" in good.stdout
    back = subprocess.run([sys.executable, "-m", "autolab.cli.main", "check", str(tmp_path / "t.xml")],
                          capture_output=True, text=True, timeout=60)
    assert back.returncode == 0, back.stderr
    schema = subprocess.run([sys.executable, "-m", "autolab.cli.main", "check", "--schema"],
                            capture_output=True, text=True, timeout=60)
    assert '"$schema"' in schema.stdout
