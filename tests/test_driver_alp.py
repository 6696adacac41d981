"""ALP serial drivers against their emulators on pseudo-terminals: the real driver code path, byte for byte."""

from __future__ import annotations

import time

import pytest

from autolab.devices.drivers import driver_class
from autolab.devices.drivers.alp import AlpClient
from autolab.devices.emulators.alp import emulate
from autolab.devices.errors import (
    ChecksumError,
    CommandRefused,
    DeviceDisconnected,
    DeviceTimeout,
    FramingError,
    InvalidOperation,
    InvalidParameters,
    LiquidHandlingError,
    NotReady,
)
from autolab.devices.framing import decode, encode
from autolab.devices.instruments import Instrument
from autolab.devices.io import SerialLink
from autolab.sim.instruments import LocalLiquids
from autolab.sim.liquids import LiquidWorld

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def world() -> LiquidWorld:
    return LiquidWorld()


@pytest.fixture
def device(tmp_path, world):
    """Factory: an emulator of `device_type` on a pty (symlinked), and a connected frontend over its driver."""
    started = []

    def make(device_type: str, plate: str = "plate1", timeout_s: float = 0.3, **sim):
        sim.setdefault("time_scale", 100.0)
        emu = emulate(device_type, str(tmp_path / device_type), liquids=LocalLiquids(world), **sim).start()
        started.append(emu)
        if plate:
            emu.place_plate(plate)
        backend = driver_class(device_type)(emu.device, timeout_s=timeout_s)
        backend.connect()
        started.append(backend)
        return emu, Instrument(device_type, backend)

    yield make
    for thing in reversed(started):
        (thing.close if hasattr(thing, "close") else thing.stop)()


def run(instr: Instrument, op: str, params: dict | None = None, labware: str = "", timeout: float = 10.0):
    instr.start(op, params or {}, labware)
    deadline = time.monotonic() + timeout
    while not instr.backend.progress().done:
        assert time.monotonic() < deadline, f"{op} did not finish"
        time.sleep(0.01)
    return instr.backend.result()


# --- framing --------------------------------------------------------------------------------


def test_frame_round_trips_and_checksum_is_nmea_xor():
    line = encode(">", 0x1F, "START", {"op": "seal", "temperature_c": 165.0, "wells": ["A1", "B2"]})
    assert line.startswith(b">1F START op=seal temperature_c=165 wells=A1,B2*") and line.endswith(b"\r\n")
    frame = decode(line)
    assert (frame.seq, frame.verb, frame.args["wells"]) == (0x1F, "START", "A1,B2")
    body = line[1 : line.index(b"*")]
    x = 0
    for b in body:
        x ^= b
    assert line[line.index(b"*") + 1 : -2] == f"{x:02X}".encode()


@pytest.mark.parametrize(
    "garbage, error",
    [
        (b"\x00\xff\x13garbage", FramingError),
        (b"hello*00", FramingError),
        (b">01 STATUS", FramingError),  # no checksum
        (b">01 STATUS*ZZ", FramingError),
        (b">01*00", FramingError),
    ],
)
def test_malformed_frames_raise_framing_errors_naming_the_fault(garbage, error):
    with pytest.raises(error):
        decode(garbage)


def test_corrupted_frame_raises_checksum_error():
    line = bytearray(encode("<", 3, "OK", {"state": "idle"}))
    line[6] ^= 0x01
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        decode(bytes(line))


def test_values_that_would_break_the_frame_are_refused():
    with pytest.raises(FramingError):
        encode(">", 1, "START", {"reagent": "two words"})


# --- every driver through its emulator -----------------------------------------------------------


def test_plate_reader_driver_reads_a_dispensed_plate(device, world):
    _, lh = device("liquid_handler")
    _, reader = device("plate_reader")
    assert reader.backend.identity["model"] == "ALP-AR96"
    res = run(lh, "dispense", {"reagent": "brilliant_blue_stock", "dest_wells": "A1,A2", "volume_ul": "100,200"})
    assert res.kind == "liquid_transfer" and res.data["dest_wells"] == ["A1", "A2"]
    res = run(reader, "read_absorbance", {"wavelength_nm": 630, "wells": "A1,A2,H12"})
    assert res.kind == "absorbance_plate" and res.units == "OD"
    wells = res.data["wells"]
    # Same concentration (20 uM) at twice the height: twice the absorbance above the blank.
    assert (wells["A2"] - 0.04) == pytest.approx(2 * (wells["A1"] - 0.04), rel=0.05)
    assert wells["H12"] == pytest.approx(0.04, abs=0.02)
    assert world.contents("plate1")["A2"].volume_ul == pytest.approx(200.0)


def test_sealer_driver_heats_seals_and_refuses_a_second_seal(device):
    _, sealer = device("sealer")
    res = run(sealer, "seal", {"temperature_c": 170, "time_s": 2})
    assert dict((n, v) for n, v, _ in res.outputs)["seal_temperature_c"] == pytest.approx(170, abs=2.5)
    with pytest.raises(NotReady, match="already sealed"):
        sealer.start("seal", {}, "plate1")
    run(sealer, "peel")


def test_incubator_driver_reaches_setpoint_with_first_order_dynamics_and_stores_plates(device):
    emu, inc = device("incubator", time_scale=2000.0)
    status = inc.backend.status()
    assert status.values["temperature_c"] == pytest.approx(22.0, abs=0.5)
    res = run(inc, "incubate", {"temperature_c": 37, "time_s": 60, "shake_rpm": 300}, timeout=30)
    assert dict((n, v) for n, v, _ in res.outputs)["final_temperature_c"] == pytest.approx(37, abs=0.5)
    run(inc, "store", {"slot": 3})
    assert not inc.backend.status().occupied
    with pytest.raises(NotReady, match="slot 4 is empty"):
        run(inc, "retrieve", {"slot": 4})
    run(inc, "retrieve", {"slot": 3})
    assert inc.backend.status().occupant == "plate1"


def test_liquid_handler_driver_reports_overflow_and_underflow_without_changing_wells(device, world):
    _, lh = device("liquid_handler")
    run(lh, "dispense", {"reagent": "water", "dest_wells": "A1", "volume_ul": 350})
    with pytest.raises(LiquidHandlingError, match="overflow"):
        run(lh, "dispense", {"reagent": "water", "dest_wells": "B1,A1", "volume_ul": 20})
    with pytest.raises(LiquidHandlingError, match="holds 0.00 uL"):
        run(lh, "aspirate", {"source_wells": "C1", "volume_ul": 10})
    assert {w: liq.volume_ul for w, liq in world.contents("plate1").items()} == {"A1": pytest.approx(350.0)}


def test_device_refuses_what_the_frontend_would_refuse(device):
    """The emulator validates on its side too: a driver bypassing the frontend still gets named errors."""
    _, reader = device("plate_reader")
    with pytest.raises(InvalidParameters, match="wavelength_nm"):
        reader.backend.start("read_absorbance", {"wavelength_nm": 5000}, "plate1")
    with pytest.raises(InvalidOperation, match="seal"):
        reader.backend.start("seal", {}, "plate1")


def test_busy_and_open_door_and_empty_nest_are_not_ready(device):
    emu, reader = device("plate_reader", plate="")
    with pytest.raises(NotReady, match="no plate"):
        reader.start("read_absorbance", {"wavelength_nm": 600})
    emu.place_plate("plate1")
    run(reader, "open_door")
    assert reader.backend.status().door_open
    with pytest.raises(NotReady, match="door is open"):
        reader.start("read_absorbance", {"wavelength_nm": 600})
    run(reader, "close_door")
    reader.start("read_absorbance", {"wavelength_nm": 600})
    with pytest.raises(NotReady, match="busy"):
        reader.start("read_absorbance", {"wavelength_nm": 600})
    reader.backend.abort()
    assert reader.backend.status().state == "idle"


# --- bad lines: garbage, checksum, silence, unplug ---------------------------------------------------


def test_one_garbled_reply_is_retried_and_the_command_runs_once(device):
    emu, lh = device("liquid_handler")
    emu.faults["garbage"] = 1
    emu.faults["bad_checksum"] = 1
    lh.start("dispense", {"reagent": "water", "dest_wells": "A1", "volume_ul": 10}, "")
    assert emu.executed.count("START") == 1  # the retries were answered from the cache
    assert lh.backend.client.stats["retries"] == 2


def test_a_silent_device_is_a_named_timeout_after_retries(device):
    emu, reader = device("plate_reader", timeout_s=0.1)
    emu.faults["silence"] = 10
    t0 = time.monotonic()
    with pytest.raises(DeviceTimeout, match=r"STATUS: .*within 0.10 s \(after 3 attempts\)"):
        reader.backend.client.command("STATUS")
    assert time.monotonic() - t0 < 2.0
    assert reader.backend.status().state == "offline"  # status degrades, it does not raise
    emu.faults["silence"] = 0
    assert reader.backend.status().state == "idle"


def test_continuous_garbage_is_a_framing_error(device):
    emu, reader = device("plate_reader", timeout_s=0.1)
    emu.faults["garbage"] = 10
    with pytest.raises(FramingError):
        reader.backend.client.command("IDN")


def test_late_answer_to_a_timed_out_request_is_dropped(device):
    emu, reader = device("plate_reader", timeout_s=0.15)
    reader.backend.client.retries = 0
    emu.delay_s = 0.25  # the answer arrives after the request timed out...
    with pytest.raises(DeviceTimeout):
        reader.backend.client.command("IDN")
    emu.delay_s = 0.0
    # ...so the next request must not take that stale answer for its own. A long timeout here: the
    # stale answer still comes first, whenever a loaded machine lets the emulator send it.
    assert reader.backend.client.command("STATUS", timeout_s=5.0)["state"] == "idle"
    assert reader.backend.client.stats["stale"] == 1


def test_driver_reconnects_after_unplug_and_replug(device):
    emu, reader = device("plate_reader", timeout_s=0.2)
    assert reader.backend.status().state == "idle"
    emu.unplug()
    with pytest.raises(DeviceDisconnected):
        reader.backend.client.command("STATUS")
    assert reader.backend.status().state == "offline"
    emu.replug()  # a new pty; the symlink now points at it
    deadline = time.monotonic() + 5
    while reader.backend.status().state != "idle":
        assert time.monotonic() < deadline, "driver did not reconnect"
        time.sleep(0.1)
    assert reader.backend.link.reconnects >= 1
    assert reader.backend.client.command("IDN")["model"] == "ALP-AR96"


def test_driver_refuses_a_device_of_another_model(tmp_path):
    with emulate("sealer", str(tmp_path / "sealer")) as emu:
        reader = driver_class("plate_reader")(emu.device, timeout_s=0.2)
        with pytest.raises(CommandRefused, match="is 'ALP-HS1', expected one of ALP-AR96"):
            reader.connect()
        reader.close()


def test_missing_port_is_a_named_disconnection(tmp_path):
    link = SerialLink(str(tmp_path / "nothing-here"))
    with pytest.raises(DeviceDisconnected, match="cannot open"):
        link.open()


def test_client_rejects_a_request_frame_coming_back(tmp_path):
    """A loopback cable (TX wired to RX) echoes our own request: that is not an answer."""
    link = SerialLink("loop://", 115200)
    client = AlpClient(link, timeout_s=0.1, retries=0)
    with pytest.raises(FramingError, match="request frame"):
        client.command("STATUS")


def test_result_asked_before_the_end_is_refused(device):
    _, lh = device("liquid_handler")
    lh.start("dispense", {"reagent": "water", "dest_wells": "A1", "volume_ul": 10}, "")
    with pytest.raises(NotReady, match="still running"):
        lh.backend.result()
