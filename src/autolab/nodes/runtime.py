"""Process lifecycle shared by every node's `main`: init, spin, clean shutdown.

A multi-threaded executor lets a long action goal run in a reentrant callback
group without starving the node's other callbacks. SIGTERM is treated like
Ctrl-C so that launchers and tests can stop nodes cleanly.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node


def run_nodes(factories: Sequence[Callable[[], Node]], args: list[str] | None = None, threads: int = 4) -> int:
    """Create the nodes, spin them in one executor until shutdown, then clean up.

    Returns the process exit code: 0 on a clean stop, 1 when a node failed to start.
    """
    rclpy.init(args=args)
    signal.signal(signal.SIGTERM, lambda *_: _request_shutdown())
    nodes: list[Node] = []
    executor = MultiThreadedExecutor(num_threads=threads)
    code = 0
    try:
        for factory in factories:
            node = factory()
            nodes.append(node)
            executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except StartupError as exc:
        print(f"[{exc.node}] cannot start: {exc}", file=sys.stderr)
        code = 1
    finally:
        for node in reversed(nodes):
            close = getattr(node, "close", None)
            if callable(close):
                try:
                    close()
                except Exception as exc:  # shutting down: report, keep going
                    print(f"[{node.get_name()}] error while closing: {exc}", file=sys.stderr)
            executor.remove_node(node)
            node.destroy_node()
        executor.shutdown(timeout_sec=2.0)
        if rclpy.ok():
            rclpy.try_shutdown()
    return code


def run_node(factory: Callable[[], Node], args: list[str] | None = None, threads: int = 4) -> int:
    """`run_nodes` for the common one-node process."""
    return run_nodes([factory], args=args, threads=threads)


class StartupError(RuntimeError):
    """A node cannot start (bad parameter, missing file, missing optional package)."""

    def __init__(self, node: str, message: str) -> None:
        super().__init__(message)
        self.node = node


def _request_shutdown() -> None:
    if rclpy.ok():
        rclpy.try_shutdown()
