"""`autolab doctor`: check the set-up, print each problem with its fix, exit non-zero on any.

Checks run in order and later ones are skipped when an earlier one they need
failed, so the first line that fails is the one to fix.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

FIX_SETUP = "run ./scripts/setup.sh from the autolab checkout"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for DDS discovery")
    parser.add_argument("--probe-peer", metavar="TOPIC", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    if args.probe_peer:
        return _peer(args.probe_peer, args.timeout)
    results: list[Check] = []
    steps: list[Callable[[], Check]] = [
        _python, _venv, _rclpy, _rmw, _interfaces, lambda: _dds(args.timeout),
    ]
    for step in steps:
        check = step()
        results.append(check)
        tty = sys.stdout.isatty()
        mark = ("\033[32mok\033[0m  " if tty else "ok  ") if check.ok else ("\033[31mFAIL\033[0m" if tty else "FAIL")
        print(f"[{mark}] {check.name}: {check.detail}")
        if not check.ok:
            print(f"       fix: {check.fix}")
            if check.name in ("python", "rclpy", "rmw"):
                break  # everything after needs a working rclpy
    failed = [c for c in results if not c.ok]
    if failed:
        print(f"\n{len(failed)} problem(s) found.")
        return 1
    print("\nall checks passed.")
    return 0


def _python() -> Check:
    v = sys.version_info
    ok = (v.major, v.minor) == (3, 11)
    return Check("python", ok, f"{sys.executable} is {v.major}.{v.minor}.{v.micro}",
                 "the ROS 2 Jazzy wheels are built for CPython 3.11: install python3.11 and " + FIX_SETUP)


def _venv() -> Check:
    in_venv = sys.prefix != sys.base_prefix
    return Check("venv", in_venv, sys.prefix if in_venv else "not running in a virtual environment",
                 f"{FIX_SETUP}, then use .venv/bin/autolab (or source .venv/bin/activate)")


_PROBE = (
    "import json, os, rclpy\n"
    "from rclpy.utilities import get_rmw_implementation_identifier as ident\n"
    "rclpy.init(args=[])\n"
    "print(json.dumps({'path': os.path.dirname(rclpy.__file__), 'rmw': ident()}))\n"
    "rclpy.shutdown()\n"
)


def _probe_rclpy() -> tuple[int, str, str]:
    """Import and init rclpy in a child: a wrong RMW makes rcl exit() the whole process."""
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return -1, "", "rclpy did not initialise within 60 s"
    return proc.returncode, proc.stdout, proc.stderr


_probe: tuple[int, str, str] | None = None


def _rclpy() -> Check:
    global _probe
    _probe = _probe_rclpy()
    code, out, err = _probe
    if code == 0 or "RMW implementation" in err:
        return Check("rclpy", True, "imports")
    last = (err.strip().splitlines() or ["no output"])[-1]
    return Check("rclpy", False, f"cannot import rclpy: {last}",
                 f"{FIX_SETUP}; with a system ROS 2, source /opt/ros/jazzy/setup.bash first")


def _rmw() -> Check:
    import json

    code, out, err = _probe if _probe is not None else _probe_rclpy()
    wanted = os.environ.get("RMW_IMPLEMENTATION", "")
    if code != 0:
        last = (err.strip().splitlines() or [f"exit code {code}"])[-1]
        return Check("rmw", False, f"RMW '{wanted or '(default)'}' does not load: {last}",
                     "unset RMW_IMPLEMENTATION (the default is rmw_fastrtps_cpp) or install the one named "
                     "(e.g. pip install ros-jazzy-rmw-fastrtps-cpp)")
    info = json.loads(out.strip().splitlines()[-1])
    domain = os.environ.get("ROS_DOMAIN_ID", "0")
    return Check("rmw", True, f"{info['rmw']}, ROS_DOMAIN_ID={domain}, rclpy from {info['path']}")


def _interfaces() -> Check:
    try:
        from autolab_interfaces.action import RunProtocol  # noqa: F401
        from autolab_interfaces.msg import SafetyState  # noqa: F401
    except Exception as exc:
        return Check("autolab_interfaces", False, f"cannot import: {exc}",
                     f"{FIX_SETUP} (it builds autolab_interfaces with colcon); "
                     "with a system ROS 2: colcon build, then source install/setup.bash")
    return Check("autolab_interfaces", True, "messages, services and actions import")


def _dds(timeout: float) -> Check:
    """Start a peer process that publishes; receive its message over DDS."""
    import rclpy
    from rclpy.node import Node
    from std_msgs.msg import String

    topic = f"autolab_doctor_{uuid.uuid4().hex[:8]}"
    peer = subprocess.Popen([sys.executable, "-m", "autolab.cli.main", "doctor", "--probe-peer", topic,
                             "--timeout", str(timeout)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    rclpy.init(args=[])
    got: list[float] = []
    start = time.monotonic()
    try:
        node = Node("autolab_doctor")
        node.create_subscription(String, topic, lambda _m: got.append(time.monotonic()), 10)
        while not got and time.monotonic() - start < timeout and peer.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.1)
        node.destroy_node()
    finally:
        rclpy.shutdown()
        peer.terminate()
        try:
            out = peer.communicate(timeout=5)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            peer.kill()
            out = ""
    if got:
        return Check("dds", True, f"two processes talk over DDS (first message after {got[0] - start:.2f} s)")
    detail = f"no message from a peer process within {timeout:.0f} s"
    if out.strip():
        detail += f"; peer said: {out.strip().splitlines()[-1]}"
    return Check("dds", False, detail,
                 "check that loopback multicast is allowed, that ROS_AUTOMATIC_DISCOVERY_RANGE is not OFF, "
                 "and that both processes use the same ROS_DOMAIN_ID")


def _peer(topic: str, timeout: float) -> int:
    import rclpy
    from std_msgs.msg import String

    rclpy.init(args=[])
    node = rclpy.create_node("autolab_doctor_peer")
    pub = node.create_publisher(String, topic, 10)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            pub.publish(String(data="ping"))
            rclpy.spin_once(node, timeout_sec=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
