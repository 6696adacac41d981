"""Named exceptions of the sim layer (no rclpy)."""

from __future__ import annotations


class SimError(Exception):
    """Base of every sim-layer error."""


class ModelBuildError(SimError):
    """The MuJoCo model cannot be generated from the description (names the part and the reason)."""


class SpawnError(SimError):
    """Labware cannot be added: occupied location, unknown type or location, no spare body left."""


class RenderingUnavailable(SimError):
    """No headless OpenGL backend (EGL or OSMesa) works on this machine."""


class TrajectoryError(SimError):
    """A joint trajectory cannot be executed (unknown joints, non-increasing times, wrong sizes)."""


class MotionRefused(SimError):
    """Motion was commanded while the safety state does not allow it."""
