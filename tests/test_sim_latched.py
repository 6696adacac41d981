"""The sim's latched state answers for a reset or a spawn as soon as the service does.

A client that resets the world and then reads a latched topic must see the reset
world, not the last periodic sample from before it. The sim here publishes its
labware poses only every 100 s of simulated time (at real time), so anything
seen sooner was published by the service itself.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.timeout(120)]

_SOON_S = 10.0  # far below the 100 s period: only the service's own publish can arrive this soon


@pytest.fixture(scope="module")
def client(start_node, client_node):
    from rosgraph_msgs.msg import Clock

    from autolab.nodes.qos import STREAM
    from autolab.nodes.sync_client import SyncClient

    sim = start_node("autolab.nodes.sim", ros_args=["-p", "real_time_factor:=1.0", "-p", "labware_rate_hz:=0.01"])
    c = SyncClient(client_node, client_node.executor_for_test)
    try:
        c.wait_message(Clock, "/clock", STREAM, timeout=40.0)
    except Exception:
        print(sim.output()[-4000:])
        raise
    return c


def _where(client, predicate) -> dict[str, str]:
    from autolab.nodes.qos import LATCHED
    from autolab_interfaces.msg import LabwarePoseArray

    msg = client.wait_message(
        LabwarePoseArray, "/sim/labware_poses", LATCHED, _SOON_S, lambda m: predicate({p.labware.id for p in m.items})
    )
    return {p.labware.id: p.location.id for p in msg.items}


def test_spawn_and_reset_publish_the_new_world_on_the_latched_topic_before_they_answer(client):
    from std_srvs.srv import Trigger

    from autolab_interfaces.msg import LabwareRef, LocationRef
    from autolab_interfaces.srv import SpawnLabware

    req = SpawnLabware.Request(
        labware=LabwareRef(id="plate9", labware_type="corning_96_wellplate_360ul_flat"),
        location=LocationRef(id="deck.2"),
    )
    assert client.call(SpawnLabware, "/sim/spawn_labware", req, timeout=10.0).success
    assert _where(client, lambda ids: "plate9" in ids)["plate9"] == "deck.2"

    assert client.call(Trigger, "/sim/reset", timeout=10.0).success
    after = _where(client, lambda ids: "plate9" not in ids)
    assert after == {"plate1": "hotel1.slot1", "plate2": "hotel1.slot2", "source1": "liquid_handler1.source"}
