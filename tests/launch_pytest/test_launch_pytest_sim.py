"""The simulated cell under the real ROS 2 launch (launch_ros + launch_pytest).

These run where the ROS 2 launch packages are installed (a system ROS 2 Jazzy,
or a workspace with launch, launch_ros and launch_pytest); elsewhere the module
is skipped with the reason, and the same scenarios run through `autolab launch`
in tests/test_launch_sim.py. launch_pytest of Jazzy needs pytest < 8.4.

Each module runs on its own ROS_DOMAIN_ID (the `domain_id` fixture sets it in
the environment the launch inherits).
"""

from __future__ import annotations

from pathlib import Path

import pytest

try:
    import launch_pytest

    # Without the real package, `import launch_pytest` finds this folder as a namespace package.
    if not hasattr(launch_pytest, "fixture"):
        raise ImportError("No module named 'launch_pytest'")
    from launch import LaunchDescription
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import AnyLaunchDescriptionSource
except ImportError as exc:
    pytest.skip(f"the ROS 2 launch packages are not installed ({exc}); the same scenarios run "
                "through `autolab launch` in tests/test_launch_sim.py", allow_module_level=True)

pytestmark = [pytest.mark.ros, pytest.mark.timeout(120)]

LAUNCH_DIR = Path(__file__).resolve().parents[2] / "launch"


def _cell_launch() -> tuple[Path, dict[str, str]]:
    """sim.launch.yaml; until the simulator node lands (it is required there, so its absence shuts the
    launch down), device.launch.yaml with the safety node and one instrument."""
    from autolab.launcher.executables import module_available

    if module_available("autolab.nodes.sim"):
        return LAUNCH_DIR / "sim.launch.yaml", {"use_sim_time": "false"}
    return LAUNCH_DIR / "device.launch.yaml", {"device": "reader1", "type": "plate_reader"}


@launch_pytest.fixture(scope="module")
def sim_cell(domain_id):  # the domain_id fixture puts ROS_DOMAIN_ID in the launch's environment
    path, arguments = _cell_launch()
    return LaunchDescription([
        IncludeLaunchDescription(AnyLaunchDescriptionSource(str(path)), launch_arguments=arguments.items()),
        launch_pytest.actions.ReadyToTest(),
    ])


@pytest.mark.launch(fixture=sim_cell)
def test_safety_node_serves_latched_state_under_ros2_launch(client_node):
    from autolab.nodes.qos import LATCHED
    from autolab.nodes.sync_client import SyncClient
    from autolab_interfaces.msg import SafetyState

    sync = SyncClient(client_node, client_node.executor_for_test)
    state = sync.wait_message(SafetyState, "safety/state", LATCHED, timeout=60)
    assert state.motion_allowed


@pytest.mark.launch(fixture=sim_cell)
def test_estop_round_trip_under_ros2_launch(client_node):
    from autolab.nodes.qos import LATCHED
    from autolab.nodes.sync_client import SyncClient
    from autolab_interfaces.msg import SafetyState
    from autolab_interfaces.srv import EStop

    sync = SyncClient(client_node, client_node.executor_for_test)
    stop = sync.call(EStop, "safety/estop", EStop.Request(source="launch_pytest", reason="test"), timeout=30)
    assert stop.success and stop.state.estop_latched
    reset = sync.call(EStop, "safety/reset", EStop.Request(source="launch_pytest"), timeout=30)
    assert reset.success
    after = sync.wait_message(SafetyState, "safety/state", LATCHED, 30, lambda m: not m.estop_latched)
    assert after.motion_allowed


@pytest.mark.launch(fixture=sim_cell)
def test_instrument_nodes_come_up_under_ros2_launch(client_node):
    from autolab.launcher.executables import module_available
    from autolab.nodes.sync_client import SyncClient

    if not module_available("autolab.nodes.instrument"):
        pytest.skip("autolab.nodes.instrument is not in this build")
    path, _arguments = _cell_launch()
    wanted = {"/reader1"}
    if path.name == "sim.launch.yaml":
        wanted |= {"/sealer1", "/incubator1", "/liquid_handler1", "/barcode1"}
    sync = SyncClient(client_node, client_node.executor_for_test)

    def seen() -> set[str]:
        return {f"{ns.rstrip('/')}/{n}" for n, ns in client_node.get_node_names_and_namespaces()}

    sync.spin_until(lambda: wanted <= seen(), 60, "the instrument nodes")
