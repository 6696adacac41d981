"""The installed ROS 2 stack carries autolab_interfaces types between processes over DDS.

Two real processes (the safety node, and a ConveyorMove action server) talk to
this test process on the module's own ROS_DOMAIN_ID over loopback.
"""

from __future__ import annotations

import time

import pytest
from action_msgs.msg import GoalStatus

from autolab.nodes.qos import LATCHED
from autolab.nodes.sync_client import GoalRejected, SyncClient
from autolab_interfaces.action import ConveyorMove
from autolab_interfaces.msg import ConveyorState, SafetyState
from autolab_interfaces.srv import EStop

pytestmark = [pytest.mark.ros, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def graph(start_node, client_node):
    safety = start_node("autolab.nodes.safety")
    peer = start_node("tests.support.peer_conveyor")
    client = SyncClient(client_node, client_node.executor_for_test)
    yield client
    assert safety.alive(), safety.output()
    assert peer.alive(), peer.output()


def test_latched_safety_state_reaches_a_late_subscriber(graph):
    msg = graph.wait_message(SafetyState, "safety/state", LATCHED, timeout=30)
    assert msg.state == SafetyState.STATE_OK
    assert msg.motion_allowed and not msg.estop_latched


def test_estop_service_latches_until_reset(graph):
    res = graph.call(EStop, "safety/estop", EStop.Request(source="test", reason="foundation check"), timeout=20)
    assert res.success and res.state.estop_latched and not res.state.motion_allowed
    latched = graph.wait_message(SafetyState, "safety/state", LATCHED, timeout=10,
                                 predicate=lambda m: m.estop_latched)
    assert latched.source == "test" and latched.reason == "foundation check"
    # A second e-stop does not overwrite who latched it.
    again = graph.call(EStop, "safety/estop", EStop.Request(source="other", reason="x"), timeout=10)
    assert again.state.source == "test"
    reset = graph.call(EStop, "safety/reset", EStop.Request(source="test"), timeout=10)
    assert reset.success and reset.state.motion_allowed
    graph.wait_message(SafetyState, "safety/state", LATCHED, timeout=10, predicate=lambda m: m.motion_allowed)


def test_action_streams_feedback_and_returns_typed_result(graph):
    feedback: list[ConveyorMove.Feedback] = []
    goal = ConveyorMove.Goal(mode=ConveyorMove.Goal.MODE_TO_STATION, station="out", speed_m_s=1.0)
    status, result = graph.run_action(ConveyorMove, "peer_conveyor/move", goal, timeout=30,
                                      feedback=feedback.append)
    assert status == GoalStatus.STATUS_SUCCEEDED
    assert result.error_code == ConveyorMove.Result.NONE and result.station == "out"
    assert result.position_m == pytest.approx(0.6)
    assert len(feedback) >= 3
    progress = [f.progress for f in feedback]
    assert progress == sorted(progress) and progress[-1] == pytest.approx(1.0)
    state = graph.wait_message(ConveyorState, "peer_conveyor/conveyor_state", LATCHED, timeout=10,
                               predicate=lambda m: not m.moving)
    assert list(state.presence) == [False, True]


def test_cancel_stops_the_goal_partway(graph):
    goal = ConveyorMove.Goal(mode=ConveyorMove.Goal.MODE_TO_STATION, station="in", speed_m_s=0.1)
    feedback: list[ConveyorMove.Feedback] = []
    handle = graph.send_goal(ConveyorMove, "peer_conveyor/move", goal, feedback=feedback.append)
    graph.spin_until(lambda: len(feedback) >= 2, timeout=10, what="feedback before cancel")
    t0 = time.monotonic()
    graph.cancel(handle)
    status, result = graph.result(handle, timeout=10)
    assert status == GoalStatus.STATUS_CANCELED
    assert result.error_code == ConveyorMove.Result.CANCELED
    assert 0.0 < result.position_m < 0.6, "the belt stopped between the stations"
    assert time.monotonic() - t0 < 5.0


def test_goal_for_unknown_station_is_rejected(graph):
    goal = ConveyorMove.Goal(mode=ConveyorMove.Goal.MODE_TO_STATION, station="nowhere")
    with pytest.raises(GoalRejected):
        graph.send_goal(ConveyorMove, "peer_conveyor/move", goal)
