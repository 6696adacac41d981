"""KEYENCE SR barcode reader driver against its emulator on a pseudo-terminal."""

from __future__ import annotations

import time

import pytest

from autolab.devices.drivers.keyence_sr import KeyenceSR
from autolab.devices.emulators.keyence_sr import KeyenceSrEmulator
from autolab.devices.errors import DeviceFault, DeviceTimeout, FramingError, InvalidOperation
from autolab.devices.instruments import Instrument
from support.ros import wait_for

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def scanner(tmp_path):
    emu = KeyenceSrEmulator({"plate1": "AL-P-000001"}, read_time_s=0.05, link=str(tmp_path / "sr")).start()
    driver = KeyenceSR(emu.device, read_time_s=0.5)
    driver.connect()
    yield emu, Instrument("barcode_scanner", driver)
    driver.close()
    emu.stop()


def scan(instr: Instrument):
    instr.start("scan", {})
    deadline = time.monotonic() + 5
    while not instr.backend.progress().done:
        assert time.monotonic() < deadline
        time.sleep(0.005)  # not a busy loop: the emulator's thread needs the GIL to answer
    return instr.backend.result()


def test_scan_returns_the_plates_barcode_with_lon_command(scanner):
    emu, instr = scanner
    emu.place_plate("plate1")
    assert scan(instr).data["barcode"] == "AL-P-000001"
    assert emu.received[-1] == b"LON"


def test_no_code_is_a_no_read_fault(scanner):
    emu, instr = scanner
    emu.place_plate("")
    with pytest.raises(DeviceFault, match="NO READ"):
        scan(instr)


def test_silent_reader_times_out_and_sends_loff(scanner):
    emu, instr = scanner
    emu.place_plate("plate1")
    emu.faults["silence"] = 1
    with pytest.raises(DeviceTimeout, match="silent after LON"):
        scan(instr)
    wait_for(lambda: emu.received[-1:] == [b"LOFF"], 5.0, "LOFF at the emulator")


def test_garbage_is_a_framing_error(scanner):
    emu, instr = scanner
    emu.place_plate("plate1")
    emu.faults["garbage"] = 1
    with pytest.raises(FramingError, match="garbage"):
        scan(instr)
    assert scan(instr).data["barcode"] == "AL-P-000001"  # and the next scan is fine


def test_reader_recovers_after_unplug(scanner):
    emu, instr = scanner
    emu.place_plate("plate1")
    emu.unplug()
    wait_state(instr, "offline")  # the kernel hangs the pty up asynchronously, within milliseconds
    emu.replug()
    wait_state(instr, "idle")
    assert scan(instr).data["barcode"] == "AL-P-000001"


def wait_state(instr: Instrument, state: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while instr.backend.status().state != state:
        assert time.monotonic() < deadline, f"scanner never became {state}"
        time.sleep(0.05)


def test_only_scan_is_an_operation(scanner):
    _, instr = scanner
    with pytest.raises(InvalidOperation):
        instr.start("seal", {})
