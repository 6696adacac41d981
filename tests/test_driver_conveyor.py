"""ALP-CV1 conveyor controller driver against its emulator on a pseudo-terminal."""

from __future__ import annotations

import time

import pytest

from autolab.devices.drivers.alp_conveyor import AlpConveyor
from autolab.devices.emulators.alp_conveyor import AlpConveyorEmulator, BeltAxis
from autolab.devices.errors import DeviceDisconnected, InvalidParameters, NotReady

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def conveyor(tmp_path):
    emu = AlpConveyorEmulator(BeltAxis(accel_mm_s2=2000.0), link=str(tmp_path / "cv")).start()
    drv = AlpConveyor(emu.device, timeout_s=0.3)
    drv.connect()
    yield emu, drv
    drv.close()
    emu.stop()


def settle(drv: AlpConveyor, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while (s := drv.status()).moving:
        assert time.monotonic() < deadline, "belt never stopped"
        time.sleep(0.02)
    return s


def test_move_reaches_the_target_and_sensors_see_the_carrier(conveyor):
    emu, drv = conveyor
    assert drv.travel_m == (-0.45, 0.45)
    emu.place_carrier(0.0)  # a carrier at the belt's zero
    drv.move_to(0.3, speed_m_s=0.2)
    moving = drv.status()
    assert moving.moving and moving.velocity_m_s > 0
    s = settle(drv)
    assert s.position_m == pytest.approx(0.3, abs=1e-4) and s.fault == ""
    assert s.presence == (False, True)  # the carrier is now over the 'out' sensor at +300 mm


def test_out_of_travel_and_overspeed_moves_are_refused(conveyor):
    _, drv = conveyor
    with pytest.raises(InvalidParameters, match="outside travel"):
        drv.move_to(0.6)
    with pytest.raises(InvalidParameters, match="speed_mm_s"):
        drv.move_to(0.1, speed_m_s=2.0)


def test_blocked_belt_faults_and_refuses_moves_until_cleared(conveyor):
    emu, drv = conveyor
    emu.block_at(100.0)
    drv.move_to(0.3)
    s = settle(drv)
    assert s.fault == "blocked" and s.position_m == pytest.approx(0.1, abs=1e-3)
    with pytest.raises(NotReady, match="CLEAR"):
        drv.move_to(0.0)
    emu.block_at(None)
    drv.clear_fault()
    drv.move_to(0.0)
    assert settle(drv).position_m == pytest.approx(0.0, abs=1e-4)


def test_stop_brakes_short_of_the_target(conveyor):
    _, drv = conveyor
    drv.move_to(0.4, speed_m_s=0.25)
    time.sleep(0.15)
    drv.stop()
    s = settle(drv)
    assert 0.0 < s.position_m < 0.4


def test_unplugged_controller_is_a_named_disconnection_then_recovers(conveyor):
    emu, drv = conveyor
    emu.unplug()
    with pytest.raises(DeviceDisconnected):
        drv.status()
    emu.replug()
    deadline = time.monotonic() + 5
    while True:
        try:
            drv.status()
            break
        except DeviceDisconnected:
            assert time.monotonic() < deadline
