"""The instrument node on its serial backend, talking to an emulator process over a pseudo-terminal.

Same node, same action, a different backend chosen by parameter: the node does
not know it is talking to a serial device. The emulator runs as a user would
start it (`python -m autolab.devices.emulators.alp --type plate_reader --link ...`).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[1]


class EmulatorProcess:
    def __init__(self, link: Path, *args: str) -> None:
        self.link = link
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "autolab.devices.emulators.alp",
                "--type",
                "plate_reader",
                "--link",
                str(link),
                "--time-scale",
                "20",
                *args,
            ],
            cwd=str(REPO),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 20
        while not link.exists():
            assert self.proc.poll() is None, self.proc.stdout.read()
            assert time.monotonic() < deadline, "emulator did not create its pty link"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def setup(start_node, client_node, tmp_path_factory):
    from autolab.nodes.sync_client import SyncClient

    tmp = tmp_path_factory.mktemp("serial")
    link = tmp / "reader1.tty"
    emulator = EmulatorProcess(link, "--plate", "plate1")
    store_url = f"sqlite:///{tmp / 'autolab.db'}"
    node = start_node(
        "autolab.nodes.instrument",
        name="reader1",
        ros_args=[
            "-r",
            "__node:=reader1",
            "-p",
            "type:=plate_reader",
            "-p",
            "backend:=serial",
            "-p",
            f"port:={link}",
            "-p",
            "timeout_s:=0.3",
            "-p",
            f"store_url:={store_url}",
        ],
    )
    client = SyncClient(client_node, client_node.executor_for_test)
    holder = {"emulator": emulator}
    yield client, node, link, store_url, holder
    holder["emulator"].stop()


def state(client, predicate, timeout=15.0):
    from autolab.nodes.qos import LATCHED
    from autolab_interfaces.msg import DeviceState

    return client.wait_message(DeviceState, "/reader1/state", LATCHED, timeout=timeout, predicate=predicate)


def read(client, wells: str = "A1,B2"):
    from autolab.nodes.params import param_msg
    from autolab_interfaces.action import InstrumentRun

    goal = InstrumentRun.Goal(
        operation="read_absorbance", parameters=[param_msg("wavelength_nm", 600.0, "nm"), param_msg("wells", wells)]
    )
    return client.run_action(InstrumentRun, "/reader1/run", goal, timeout=30.0)[1]


def test_serial_reader_node_reads_and_stores_through_the_driver(setup):
    from autolab.data.store import RunStore

    client, node, _link, store_url, _ = setup
    s = state(client, lambda m: m.occupied)
    assert s.backend == "serial" and s.labware[0].id == "plate1"
    res = read(client)
    assert res.error_code == 0, res.error_msg + node.output()[-2000:]
    record = RunStore.open(store_url).get_measurement(res.data.record_id)
    assert set(record.data["wells"]) == {"A1", "B2"}
    assert record.data["wells"]["A1"] == pytest.approx(0.04, abs=0.02)  # empty wells read the blank
    assert res.data.run_id  # no run id in the goal: stored under the device's ad-hoc run


def test_unplugged_device_is_offline_and_a_goal_gets_communication_error(setup):
    from autolab_interfaces.action import InstrumentRun
    from autolab_interfaces.msg import DeviceState

    client, node, link, _url, holder = setup
    holder["emulator"].stop()
    state(client, lambda m: m.state == DeviceState.STATE_OFFLINE)
    res = read(client)
    assert res.error_code in (InstrumentRun.Result.NOT_READY, InstrumentRun.Result.COMMUNICATION_ERROR)
    assert "offline" in res.error_msg or "cannot open" in res.error_msg
    # Plug it back in: the node reconnects by itself and reads again.
    holder["emulator"] = EmulatorProcess(link, "--plate", "plate1")
    state(client, lambda m: m.state == DeviceState.STATE_IDLE)
    assert read(client, "A1").error_code == 0
    assert node.alive()


def test_bad_type_parameter_stops_the_node_with_a_sentence(start_node):
    proc = start_node(
        "autolab.nodes.instrument", name="toaster", ros_args=["-r", "__node:=toaster1", "-p", "type:=toaster"]
    )
    proc.proc.wait(timeout=30)
    assert proc.proc.returncode == 1
    assert "parameter 'type' = 'toaster' is not one of" in proc.output()
