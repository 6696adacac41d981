"""Joint position, velocity and acceleration limits, and the scaling of a goal.

The URDF gives position and velocity limits; acceleration limits are not part
of URDF, so they come from the description (device params) or a conservative
default. Goals scale limits down (0 < scale <= 1), never up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from autolab.devices.errors import InvalidGoal


@dataclass(frozen=True)
class JointLimits:
    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray
    acceleration: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.names)
        for field_name in ("lower", "upper", "velocity", "acceleration"):
            arr = getattr(self, field_name)
            if np.shape(arr) != (n,):
                raise InvalidGoal(f"joint limits: {field_name} has {np.size(arr)} values for {n} joints")
        if np.any(~np.isfinite(self.velocity)) or np.any(self.velocity <= 0):
            raise InvalidGoal("joint limits: every joint needs a finite positive velocity limit")
        if np.any(~np.isfinite(self.acceleration)) or np.any(self.acceleration <= 0):
            raise InvalidGoal("joint limits: every joint needs a finite positive acceleration limit")

    @classmethod
    def from_chain(cls, chain, acceleration: float | list[float] = 2.5,
                   velocity_scale: float = 1.0, acceleration_scale: float = 1.0) -> JointLimits:
        """Limits of a KinematicChain, with the cell's global scaling applied."""
        acc = np.broadcast_to(np.asarray(acceleration, dtype=float), (chain.dof,)).copy()
        return cls(tuple(chain.joint_names), chain.lower.copy(), chain.upper.copy(),
                   chain.max_velocity * check_scale(velocity_scale, "velocity_scale"),
                   acc * check_scale(acceleration_scale, "acceleration_scale"))

    def scaled(self, velocity_scale: float = 1.0, acceleration_scale: float = 1.0) -> JointLimits:
        """Limits for one goal: 0 means 'full allowed', otherwise 0 < scale <= 1."""
        vs = check_scale(velocity_scale or 1.0, "velocity_scale")
        acs = check_scale(acceleration_scale or 1.0, "acceleration_scale")
        return JointLimits(self.names, self.lower, self.upper, self.velocity * vs, self.acceleration * acs)

    def check_position(self, q: np.ndarray) -> list[str]:
        """Sentences naming each joint outside its position limits (empty when all fit)."""
        out = []
        for name, v, lo, hi in zip(self.names, q, self.lower, self.upper, strict=True):
            if not (lo - 1e-9 <= v <= hi + 1e-9):
                out.append(f"{name}={v:.4f} rad outside [{lo:.4f}, {hi:.4f}]")
        return out


def check_scale(value: float, name: str) -> float:
    if not (isinstance(value, int | float) and math.isfinite(value) and 0.0 < value <= 1.0):
        raise InvalidGoal(f"{name} must be in (0, 1], got {value!r}")
    return float(value)
