"""Time-parameterised joint trajectories that respect velocity and acceleration limits.

A path is a polyline in joint space (two points for a joint move, a dense
IK-solved line for a straight tool move). It is timed with one trapezoidal
profile of the path parameter s in [0, 1], so every joint starts and stops
together and the joint nearest its limit sets the pace: each joint's velocity
is dq/ds * ds/dt and its acceleration dq/ds * d2s/dt2, both bounded. Segments
of a multi-part path meet at rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from autolab.devices.errors import InvalidGoal
from autolab.devices.limits import JointLimits


@dataclass(frozen=True)
class Trajectory:
    joint_names: tuple[str, ...]
    times: np.ndarray  # (N,) seconds from start, increasing, times[0] == 0
    positions: np.ndarray  # (N, dof)
    velocities: np.ndarray  # (N, dof)
    accelerations: np.ndarray  # (N, dof)

    @property
    def duration(self) -> float:
        return float(self.times[-1]) if len(self.times) else 0.0

    @property
    def start(self) -> np.ndarray:
        return self.positions[0]

    @property
    def end(self) -> np.ndarray:
        return self.positions[-1]

    def sample(self, t: float) -> np.ndarray:
        """Joint positions at time t (linear between samples; clamped to the ends)."""
        t = min(max(t, 0.0), self.duration)
        return np.array([np.interp(t, self.times, self.positions[:, j]) for j in range(self.positions.shape[1])])

    def then(self, other: Trajectory) -> Trajectory:
        """This trajectory followed by `other` (which must start where this one ends)."""
        if self.joint_names != other.joint_names:
            raise InvalidGoal("cannot join trajectories over different joints")
        if len(self.times) == 0:
            return other
        if np.max(np.abs(other.start - self.end)) > 1e-6:
            raise InvalidGoal("cannot join trajectories that do not meet")
        return Trajectory(
            self.joint_names,
            np.concatenate([self.times, other.times[1:] + self.duration]),
            np.vstack([self.positions, other.positions[1:]]),
            np.vstack([self.velocities, other.velocities[1:]]),
            np.vstack([self.accelerations, other.accelerations[1:]]),
        )


def _trapezoid(sv: float, sa: float) -> tuple[float, float, float]:
    """(accel time, total time, peak speed) of a rest-to-rest move of length 1."""
    if sv * sv / sa <= 1.0:
        ta = sv / sa
        return ta, 1.0 / sv + ta, sv
    ta = math.sqrt(1.0 / sa)
    return ta, 2.0 * ta, sa * ta


def time_path(path: np.ndarray | list[np.ndarray], limits: JointLimits, dt: float = 0.02,
              margin: float = 0.95) -> Trajectory:
    """Time a joint-space polyline rest-to-rest within `limits` (scaled by `margin` for headroom)."""
    pts = np.asarray(path, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != len(limits.names) or len(pts) < 1:
        raise InvalidGoal(f"path must be N x {len(limits.names)} joint positions")
    if not np.all(np.isfinite(pts)):
        raise InvalidGoal("path contains NaN or infinite joint positions")
    dof = pts.shape[1]
    # Drop repeated points; a single point is a zero-length trajectory.
    keep = [0] + [k for k in range(1, len(pts)) if np.max(np.abs(pts[k] - pts[k - 1])) > 1e-12]
    pts = pts[keep]
    if len(pts) == 1:
        z = np.zeros((1, dof))
        return Trajectory(limits.names, np.zeros(1), pts.copy(), z, z.copy())
    n_seg = len(pts) - 1
    dqds = np.diff(pts, axis=0) * n_seg  # (n_seg, dof): s advances 1/n_seg per segment
    # Tangents at the vertices (averaged across each inner vertex) make the velocity continuous in s;
    # their change over a segment is the path's curvature term d2q/ds2.
    tangents = np.vstack([dqds[:1], (dqds[:-1] + dqds[1:]) / 2.0, dqds[-1:]])  # (n_seg + 1, dof)
    curv = np.diff(tangents, axis=0) * n_seg  # (n_seg, dof)
    amax = limits.acceleration * margin
    with np.errstate(divide="ignore"):
        sv = float(np.min(limits.velocity * margin / np.max(np.abs(tangents), axis=0)))
        # Centripetal part q'' * sdot^2 gets at most half of each joint's acceleration budget.
        sv = min(sv, float(np.min(np.sqrt(0.5 * amax / np.max(np.abs(curv), axis=0)))))
        budget = amax - np.max(np.abs(curv), axis=0) * sv * sv
        sa = float(np.min(budget / np.max(np.abs(tangents), axis=0)))
    ta, total, peak = _trapezoid(sv, sa)
    n = max(2, int(math.ceil(total / dt)) + 1)
    t = np.linspace(0.0, total, n)
    s = np.where(t < ta, 0.5 * sa * t**2,
                 np.where(t <= total - ta, 0.5 * sa * ta**2 + peak * (t - ta),
                          1.0 - 0.5 * sa * (total - t) ** 2))
    sd = np.where(t < ta, sa * t, np.where(t <= total - ta, peak, sa * (total - t)))
    sdd = np.where(t < ta, sa, np.where(t <= total - ta, 0.0, -sa))
    s = np.clip(s, 0.0, 1.0)
    s[-1] = 1.0
    seg = np.minimum((s * n_seg).astype(int), n_seg - 1)
    frac = s * n_seg - seg
    pos = pts[seg] + (pts[seg + 1] - pts[seg]) * frac[:, None]
    tangent = tangents[seg] + (tangents[seg + 1] - tangents[seg]) * frac[:, None]
    vel = tangent * sd[:, None]
    acc = tangent * sdd[:, None] + curv[seg] * (sd * sd)[:, None]
    vel[0] = vel[-1] = 0.0
    return Trajectory(limits.names, t, pos, vel, acc)


def stopping_trajectory(q: np.ndarray, v: np.ndarray, limits: JointLimits, dt: float = 0.02) -> Trajectory:
    """Decelerate from velocity v to rest as fast as the acceleration limits allow, all joints together.

    This is how a cancel stops smoothly: it is sent to the backend in place
    of the rest of the running trajectory.
    """
    q = np.asarray(q, dtype=float)
    v = np.asarray(v, dtype=float)
    T = float(np.max(np.abs(v) / limits.acceleration)) if len(v) else 0.0
    if T < 1e-3:
        z = np.zeros((1, len(q)))
        return Trajectory(limits.names, np.zeros(1), q[None, :].copy(), z, z.copy())
    a = -v / T
    n = max(2, int(math.ceil(T / dt)) + 1)
    t = np.linspace(0.0, T, n)
    pos = q + np.outer(t, v) + 0.5 * np.outer(t**2, a)
    pos = np.clip(pos, limits.lower, limits.upper)
    vel = v + np.outer(t, a)
    vel[-1] = 0.0
    acc = np.tile(a, (n, 1))
    return Trajectory(limits.names, t, pos, vel, acc)
