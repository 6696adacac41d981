"""Test-wide fixtures: a ROS_DOMAIN_ID per test module, node processes, a client node.

Domain ids are allocated per module in collection order from a base that CI
can move (AUTOLAB_TEST_DOMAIN_BASE), so modules never hear each other.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support.ros import NodeProcess, ros_env

# Domain ids 1..232 are valid with the default port mapping. A session takes a band of
# _BAND ids, chosen from its pid unless AUTOLAB_TEST_DOMAIN_BASE says, so that two test
# sessions running at once on one machine (developers, not CI) rarely share a domain.
# Within a session, modules run one after another, so reusing an id after wrapping is safe.
_BAND = 50
_DOMAIN_BASE = int(os.environ.get("AUTOLAB_TEST_DOMAIN_BASE", str(10 + (os.getpid() % 4) * _BAND)))
_domains: dict[str, int] = {}


def _domain_for(module_name: str) -> int:
    if module_name not in _domains:
        _domains[module_name] = _DOMAIN_BASE + (len(_domains) % _BAND)
    return _domains[module_name]


@pytest.fixture(scope="module")
def domain_id(request: pytest.FixtureRequest) -> Iterator[int]:
    """This module's own ROS_DOMAIN_ID, also set in os.environ for in-process clients."""
    did = _domain_for(request.module.__name__)
    saved = {k: os.environ.get(k) for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")}
    os.environ.update({k: v for k, v in ros_env(did).items() if k in saved})
    yield did
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def rclpy_context(domain_id: int):
    """An rclpy context on this module's domain, shut down after the module."""
    import rclpy
    from rclpy.context import Context

    ctx = Context()
    rclpy.init(context=ctx, domain_id=domain_id)
    yield ctx
    ctx.try_shutdown()


@pytest.fixture(scope="module")
def client_node(rclpy_context):
    """An in-process node (with its own executor) for the test to talk to the graph."""
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

    node = Node("test_client", context=rclpy_context)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    node.executor_for_test = executor  # type: ignore[attr-defined]
    yield node
    executor.remove_node(node)
    node.destroy_node()
    executor.shutdown()


@pytest.fixture(scope="module")
def start_node(domain_id: int) -> Iterator:
    """Factory: start_node('autolab.nodes.safety', ros_args=[...]) -> NodeProcess, stopped after the module."""
    started: list[NodeProcess] = []

    def _start(module: str, **kwargs) -> NodeProcess:
        proc = NodeProcess(module, domain_id, **kwargs)
        started.append(proc)
        return proc

    yield _start
    for proc in reversed(started):
        proc.stop()
        if proc.proc.returncode not in (0, None, -2, 130):
            sys.stderr.write(f"\n--- {proc.name} exited {proc.proc.returncode}; output:\n{proc.output()[-4000:]}\n")


@pytest.fixture(scope="module")
def gl_backend() -> str:
    """A MUJOCO_GL value that renders on this machine (for a sim node with its camera on), else skip."""
    from autolab.sim.camera import select_gl_backend
    from autolab.sim.errors import RenderingUnavailable

    try:
        return select_gl_backend()
    except RenderingUnavailable as exc:
        pytest.skip(f"no headless GL backend on this machine: {exc}")
