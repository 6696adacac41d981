"""A protocol run through the real executive and instrument nodes leaves a complete record:
a store entry, event documents (stored, and republished by the recorder), an MCAP
recording of the cell's topics, an export bundle, and the plate's lineage.

The executive, the recorder, three instruments and the liquid world each run in
their own process over DDS. The arm is a stand-in in the test process: it moves
the plate in the world's poses (`sim/labware_poses`, `inventory`) without motion
and answers once the destination instrument senses the plate; the arm itself is
tested in test_arm_ros.py and test_executive_e2e.py. The module skips, naming
the module, if a node it needs does not exist in this build.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NEEDED = ("autolab.nodes.executive", "autolab.nodes.instrument", "autolab.nodes.recorder",
          "autolab.nodes.sim_liquid_services")
for _mod in NEEDED:
    if importlib.util.find_spec(_mod) is None:
        pytest.skip(f"{_mod} does not exist in this build", allow_module_level=True)

INSTRUMENTS = ("reader1", "sealer1", "liquid_handler1")
PROTOCOL = """\
autolab_protocol: 1
name: plate_cycle
steps:
  - instrument: {id: open_reader, device: reader1, operation: open_door}
  - wait: {id: settle, seconds: 1.5}
  - instrument: {id: close_reader, device: reader1, operation: close_door}
  - instrument: {id: open_sealer, device: sealer1, operation: open_door}
  - instrument: {id: close_sealer, device: sealer1, operation: close_door}
  - transfer: {id: to_liquid_handler, labware: plate1, source: hotel1.slot1, destination: liquid_handler1.nest}
  - dispense: {id: fill, device: liquid_handler1, labware: plate1, wells: "A1:H2", volume_ul: 100,
               reagent: tartrazine_stock}
  - dispense: {id: carry, device: liquid_handler1, labware: plate1, source_labware: plate1,
               source_wells: "A1:H1", wells: "A3:H3", volume_ul: 50}
  - transfer: {id: to_reader, labware: plate1, destination: reader1.nest}
  - instrument: {id: read, device: reader1, operation: read_absorbance, labware: plate1,
                 parameters: {wavelength_nm: 427, wells: "A1:H3"}}
  - transfer: {id: home, labware: plate1, destination: hotel1.slot1}
"""


class StandInArm:
    """`arm/transfer` without motion: moves the plate in the world's poses, then answers once the
    destination instrument reports the plate in its nest (bounded), as the real cell's sensing would."""

    def __init__(self, node, labware_at: dict[str, str], instruments, wait_s: float = 10.0) -> None:
        from rclpy.action import ActionServer

        from autolab.nodes.qos import LATCHED
        from autolab_interfaces.action import Transfer
        from autolab_interfaces.msg import DeviceState, LabwarePoseArray

        self.node, self.at, self.wait_s = node, dict(labware_at), wait_s
        self.moves: list[tuple[str, str, str]] = []
        self._occupant: dict[str, str] = {}
        self._waiting: list[tuple[str, str, object]] = []
        self._pubs = [node.create_publisher(LabwarePoseArray, topic, LATCHED)
                      for topic in ("sim/labware_poses", "inventory")]
        for dev in instruments:
            node.create_subscription(DeviceState, f"/{dev}/state", lambda m, d=dev: self._on_state(d, m), LATCHED)
        self._server = ActionServer(node, Transfer, "arm/transfer", execute_callback=self._execute)
        self._publish()

    def hears(self, devices) -> bool:
        """True once every device's state has come in (so a move into its nest can be confirmed)."""
        return all(dev in self._occupant for dev in devices)

    def _publish(self) -> None:
        from autolab_interfaces.msg import LabwarePose, LabwarePoseArray

        msg = LabwarePoseArray()
        for labware, location in self.at.items():
            item = LabwarePose(confidence=1.0)
            item.labware.id, item.location.id = labware, location
            msg.items.append(item)
        for pub in self._pubs:
            pub.publish(msg)

    def _on_state(self, device: str, msg) -> None:
        self._occupant[device] = msg.labware[0].id if msg.labware else ""
        for entry in [w for w in self._waiting if w[0] == device and w[1] == self._occupant[device]]:
            self._waiting.remove(entry)
            if not entry[2].done():
                entry[2].set_result(True)

    async def _execute(self, goal_handle):
        from rclpy.task import Future

        from autolab_interfaces.action import Transfer

        goal = goal_handle.request
        labware, destination = goal.labware.id, goal.destination.id
        self.moves.append((labware, goal.source.id, destination))
        self.at[labware] = destination
        self._publish()
        device = destination.removesuffix(".nest")
        if device in self._occupant and self._occupant[device] != labware:
            sensed = Future()
            self._waiting.append((device, labware, sensed))
            timer = self.node.create_timer(self.wait_s, lambda: sensed.done() or sensed.set_result(False))
            await sensed
            timer.cancel()
            self.node.destroy_timer(timer)
        goal_handle.succeed()
        result = Transfer.Result()
        result.placed.labware.id, result.placed.location.id = labware, destination
        return result


@pytest.fixture(scope="module")
def finished_run(start_node, client_node, tmp_path_factory):
    from autolab.data.store import RunStore
    from autolab.nodes.qos import EVENTS
    from autolab.nodes.sync_client import SyncClient
    from autolab_interfaces.action import RunProtocol
    from autolab_interfaces.msg import RunEvent
    from support.ros import wait_for

    data = tmp_path_factory.mktemp("recorder_e2e")
    url = f"sqlite:///{data}/runs.db"
    env = {"AUTOLAB_DATA_DIR": str(data)}
    recorder = start_node(
        "autolab.nodes.recorder", env=env, ros_args=["-p", f"store_url:={url}", "-p", "discovery_period_s:=0.3"]
    )
    start_node("autolab.nodes.sim_liquid_services", env=env)
    for dev in INSTRUMENTS:
        start_node(
            "autolab.nodes.instrument",
            name=dev,
            env=env,
            ros_args=["-r", f"__node:={dev}", "-p", "time_scale:=20.0", "-p", f"store_url:={url}"],
        )
    start_node("autolab.nodes.executive", env=env, ros_args=["-p", f"store_url:={url}", "-p", "server_wait_s:=5.0"])
    arm = StandInArm(client_node, {"plate1": "hotel1.slot1"}, INSTRUMENTS)
    published: list = []
    client_node.create_subscription(RunEvent, "/recorder/documents", published.append, EVENTS)
    client = SyncClient(client_node, client_node.executor_for_test)
    # The recorder must be listening to the cell, and we to the recorder, before the run starts.
    wait_for(
        lambda: (
            client_node.count_publishers("/reader1/state") > 0
            and client_node.count_publishers("/executive/queue") > 0
            and client_node.count_publishers("/recorder/documents") > 0
            and client_node.count_subscribers("/reader1/state") > 1
            and client_node.count_subscribers("/executive/queue") > 0
            and arm.hears(INSTRUMENTS)
        ),
        60,
        "the cell's state topics and the recorder's subscriptions",
        spin=lambda dt: client_node.executor_for_test.spin_once(timeout_sec=dt),
    )
    _status, result = client.run_action(
        RunProtocol, "executive/run_protocol", RunProtocol.Goal(protocol_yaml=PROTOCOL, operator_name="tester"), 120.0
    )
    assert result.outcome == "succeeded", result.error_msg
    store = RunStore.open(url)
    wait_for(
        lambda: any(a.kind == "mcap" for a in store.artifacts(result.run_id))
        and any(m.run_id == result.run_id and m.doc_type == "stop" for m in published),
        30,
        f"the recorder to close run {result.run_id}'s MCAP file and publish its stop document:\n"
        f"{recorder.output()[-3000:]}",
        spin=lambda dt: client_node.executor_for_test.spin_once(timeout_sec=dt),
    )
    yield {"store": store, "run_id": result.run_id, "data": data, "url": url, "published": published, "arm": arm}
    store.close()


@pytest.mark.timeout(240)
def test_the_run_is_in_the_store_with_its_steps_and_commands(finished_run):
    store, run_id = finished_run["store"], finished_run["run_id"]
    run = store.get_run(run_id)
    assert (run.outcome, run.protocol_name, run.operator) == ("succeeded", "plate_cycle", "tester")
    assert {s.name for s in store.steps(run_id)} >= {"open_reader", "close_reader", "fill", "carry", "read", "home"}
    commands = store.commands(run_id)
    assert {c.device for c in commands} >= {"reader1", "sealer1", "liquid_handler1", "arm"}
    assert finished_run["arm"].moves == [("plate1", "hotel1.slot1", "liquid_handler1.nest"),
                                         ("plate1", "liquid_handler1.nest", "reader1.nest"),
                                         ("plate1", "reader1.nest", "hotel1.slot1")]


@pytest.mark.timeout(240)
def test_stored_times_are_wall_clock(finished_run):
    store, run_id = finished_run["store"], finished_run["run_id"]
    run = store.get_run(run_id)
    commands = store.commands(run_id)
    assert all(run.started_at <= c.started_at <= c.ended_at <= run.ended_at for c in commands)
    assert all(run.started_at <= s.started_at for s in store.steps(run_id))
    read = next(c for c in commands if c.command == "read_absorbance")
    assert read.ended_at - read.started_at > 0  # the call's own duration, not a single instant


@pytest.mark.timeout(240)
def test_the_recording_holds_the_cells_topics_during_the_run(finished_run):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    store, run_id = finished_run["store"], finished_run["run_id"]
    path = next(a.path for a in store.artifacts(run_id) if a.kind == "mcap")
    assert path.startswith(str(finished_run["data"] / "runs" / run_id))
    topics: dict[str, int] = {}
    door_states = set()
    with open(path, "rb") as f:
        for _schema, channel, _msg, decoded in make_reader(
            f, decoder_factories=[DecoderFactory()]
        ).iter_decoded_messages():
            topics[channel.topic] = topics.get(channel.topic, 0) + 1
            if channel.topic == "/reader1/state":
                door_states.add(bool(decoded.door_open))
    assert {"/executive/queue", "/reader1/state", "/sealer1/state", "/liquid_handler1/state"} <= set(topics)
    assert door_states == {True, False}  # the door opening and closing is in the recording


@pytest.mark.timeout(240)
def test_the_run_exports_to_a_bundle_with_its_recording(finished_run, tmp_path):
    from autolab.data.export import export_run

    store, run_id = finished_run["store"], finished_run["run_id"]
    bundle = export_run(store, run_id, tmp_path / "bundle")
    crate = json.loads((bundle.path / "ro-crate-metadata.json").read_text())
    ids = {e["@id"] for e in crate["@graph"]}
    assert f"recordings/{run_id}.mcap" in ids and "run.json" in ids and "tables/steps.csv" in ids
    assert "documents.jsonl" in ids


@pytest.mark.timeout(240)
def test_the_executive_emits_the_runs_event_documents(finished_run):
    from autolab.data.documents import _doc_type

    store, run_id = finished_run["store"], finished_run["run_id"]
    docs = store.documents(run_id)
    types = [_doc_type(d) for d in docs]
    assert types[0] == "start" and types[-1] == "stop" and types.count("start") == types.count("stop") == 1
    start, stop = docs[0], docs[-1]
    assert (start["protocol"], start["operator"]) == ("plate_cycle", "tester")
    assert start["protocol_hash"] == store.get_run(run_id).protocol_hash
    assert stop["exit_status"] == "success"
    descriptors = {d["name"]: d for d in docs if _doc_type(d) == "descriptor"}
    assert set(descriptors) == {"liquid_handler1.dispense", "liquid_handler1.transfer", "reader1.read_absorbance"}
    read = descriptors["reader1.read_absorbance"]["data_keys"]
    assert read["mean_absorbance"]["units"] == "OD" and read["mean_absorbance"]["source"] == "reader1"
    assert descriptors["liquid_handler1.dispense"]["data_keys"]["total_volume_ul"]["units"] == "uL"
    assert stop["num_events"] == {name: 1 for name in descriptors}
    event = next(d for d in docs if _doc_type(d) == "event" and d["descriptor"] == descriptors[
        "reader1.read_absorbance"]["uid"])
    record = store.get_measurement(event["data"]["data_uri"].rsplit("/", 1)[-1])  # the full plate read
    assert record.kind == "absorbance_plate" and record.labware == "plate1" and len(record.data["wells"]) == 24
    # The recorder republished every stored document, in order: seeing one there means it is durable.
    published = [m for m in finished_run["published"] if m.run_id == run_id]
    assert [m.uid for m in published] == [d["uid"] for d in docs]


@pytest.mark.timeout(240)
def test_the_plates_lineage_shows_its_fills_moves_and_reads(finished_run):
    def lineage(*args: str) -> str:
        env = dict(os.environ, AUTOLAB_STORE_URL=finished_run["url"])
        out = subprocess.run([sys.executable, "-m", "autolab.cli.main", "runs", "lineage", *args],
                             capture_output=True, text=True, timeout=120, env=env)
        assert out.returncode == 0, out.stderr
        return out.stdout

    text = lineage("plate1")
    assert "100 uL tartrazine_stock outside (untracked) -> plate1:A1" in text
    assert "50 uL tartrazine_stock plate1:A1 -> plate1:A3" in text  # the reagent, not "plate1:A1"
    assert "reader1 absorbance_plate of plate1" in text
    commands = [line.split(" command ", 1)[1].split("[run")[0].strip() for line in text.splitlines()
                if " command " in line]
    assert commands == ["arm.transfer on plate1 (ok)", "liquid_handler1.dispense on plate1 (ok)",
                        "liquid_handler1.transfer on plate1 (ok)", "arm.transfer on plate1 (ok)",
                        "reader1.read_absorbance on plate1 (ok)", "arm.transfer on plate1 (ok)"]
    report = json.loads(lineage("plate1", "--json"))
    into = [t for t in report["transfers"] if t["direction"] == "ancestor"]
    assert {(t["dest_well"], t["material"], t["volume_ul"]) for t in into if t["source_labware"] is None} == {
        (f"{row}{col}", "tartrazine_stock", 100.0) for row in "ABCDEFGH" for col in (1, 2)}
    assert {(t["source_well"], t["dest_well"], t["material"]) for t in into if t["source_labware"] == "plate1"} == {
        (f"{row}1", f"{row}3", "tartrazine_stock") for row in "ABCDEFGH"}
    assert [c["params"].get("destination") for c in report["commands"] if c["device"] == "arm"] == [
        "liquid_handler1.nest", "reader1.nest", "hotel1.slot1"]
    assert sorted(m["kind"] for m in report["measurements"]) == ["absorbance_plate", "liquid_transfer",
                                                                 "liquid_transfer"]
    well = json.loads(lineage("plate1:A3", "--json"))
    assert sorted((t["depth"], t["source_well"], t["material"]) for t in well["transfers"]
                  if t["direction"] == "ancestor") == [(0, "A1", "tartrazine_stock"), (1, None, "tartrazine_stock")]
