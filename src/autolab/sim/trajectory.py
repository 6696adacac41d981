"""Joint trajectory execution with the ros2_control JointTrajectoryController's interpolation rules.

Points with positions only are joined linearly, with positions and velocities
by cubic Hermite splines, with accelerations too by quintic splines. The first
segment starts from the joint reference the servo holds when the trajectory
arrives, so a new trajectory replaces the old one without a jump. After the
last point the trajectory holds it.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from autolab.sim.errors import TrajectoryError


@dataclass(frozen=True)
class TrajectoryPoint:
    time_from_start: float
    positions: Sequence[float]
    velocities: Sequence[float] = ()
    accelerations: Sequence[float] = ()


class TrajectoryPlayer:
    """Samples a trajectory for a subset of joints at any time (seconds, same clock as `start_time`)."""

    def __init__(
        self,
        joint_names: Sequence[str],
        points: Sequence[TrajectoryPoint],
        start_time: float,
        start_positions: Sequence[float],
        start_velocities: Sequence[float] | None = None,
    ) -> None:
        n = len(joint_names)
        if n == 0:
            raise TrajectoryError("the trajectory names no joints")
        if len(set(joint_names)) != n:
            raise TrajectoryError(f"the trajectory names a joint twice: {list(joint_names)}")
        if not points:
            raise TrajectoryError("the trajectory has no points (an empty trajectory means stop; handle it first)")
        self.joint_names = tuple(joint_names)
        self.start_time = float(start_time)
        times, pos, vel, acc = [], [], [], []
        has_vel = all(len(p.velocities) for p in points)
        has_acc = has_vel and all(len(p.accelerations) for p in points)
        last = -1.0
        for i, p in enumerate(points):
            t = float(p.time_from_start)
            if not np.isfinite(t) or t < 0 or t <= last:
                raise TrajectoryError(f"point {i}: time_from_start {t} s must be >= 0 and increase strictly")
            last = t
            for name, arr, need in (
                ("positions", p.positions, True),
                ("velocities", p.velocities, has_vel),
                ("accelerations", p.accelerations, has_acc),
            ):
                if need and len(arr) != n:
                    raise TrajectoryError(f"point {i}: {len(arr)} {name} for {n} joints")
                if need and not np.all(np.isfinite(arr)):
                    raise TrajectoryError(f"point {i}: {name} are not all finite")
            times.append(t)
            pos.append(np.asarray(p.positions, dtype=float))
            vel.append(np.asarray(p.velocities, dtype=float) if has_vel else np.zeros(n))
            acc.append(np.asarray(p.accelerations, dtype=float) if has_acc else np.zeros(n))
        q0 = np.asarray(start_positions, dtype=float)
        v0 = np.zeros(n) if start_velocities is None or not has_vel else np.asarray(start_velocities, dtype=float)
        if times[0] > 0:  # a first segment from where the servo is now
            times.insert(0, 0.0)
            pos.insert(0, q0)
            vel.insert(0, v0)
            acc.insert(0, np.zeros(n))
        self.mode = "quintic" if has_acc else "cubic" if has_vel else "linear"
        self._t = np.array(times)
        self._times = list(times)  # bisect on a list beats numpy for a handful of points
        self._p = np.array(pos)
        self._v = np.array(vel)
        self._a = np.array(acc)
        self._coef = self._coefficients()
        self._exponents = np.arange(6, dtype=float)

    @property
    def duration(self) -> float:
        return float(self._t[-1])

    @property
    def end_time(self) -> float:
        return self.start_time + self.duration

    @property
    def final_positions(self) -> np.ndarray:
        return self._p[-1].copy()

    def finished(self, now: float) -> bool:
        return now - self.start_time >= self.duration

    def sample(self, now: float) -> tuple[np.ndarray, np.ndarray]:
        """Reference positions and velocities at `now` (Horner on per-segment coefficients)."""
        t = now - self.start_time
        if t <= 0:
            return self._p[0].copy(), (self._v[0].copy() if self.mode != "linear" else np.zeros(len(self.joint_names)))
        if t >= self._times[-1]:
            return self._p[-1].copy(), np.zeros(len(self.joint_names))
        k = bisect.bisect_right(self._times, t) - 1
        s = t - self._times[k]
        c = self._coef[k]  # row i multiplies s**i
        powers = s ** self._exponents[: len(c)]  # 1, s, s**2, ...
        return powers @ c, (self._exponents[1 : len(c)] * powers[: len(c) - 1]) @ c[1:]

    def _coefficients(self) -> list[np.ndarray]:
        """Polynomial coefficients per segment, computed once: (degree + 1) x joints."""
        out = []
        for k in range(len(self._times) - 1):
            h = self._times[k + 1] - self._times[k]
            p0, p1 = self._p[k], self._p[k + 1]
            if self.mode == "linear":
                out.append(np.array([p0, (p1 - p0) / h]))
                continue
            v0, v1 = self._v[k], self._v[k + 1]
            if self.mode == "cubic":
                a2 = (3 * (p1 - p0) - (2 * v0 + v1) * h) / h**2
                a3 = (2 * (p0 - p1) + (v0 + v1) * h) / h**3
                out.append(np.array([p0, v0, a2, a3]))
                continue
            c0, c1 = self._a[k], self._a[k + 1]
            a3 = (20 * (p1 - p0) - (8 * v1 + 12 * v0) * h - (3 * c0 - c1) * h**2) / (2 * h**3)
            a4 = (30 * (p0 - p1) + (14 * v1 + 16 * v0) * h + (3 * c0 - 2 * c1) * h**2) / (2 * h**4)
            a5 = (12 * (p1 - p0) - (6 * v1 + 6 * v0) * h - (c0 - c1) * h**2) / (2 * h**5)
            out.append(np.array([p0, v0, c0 / 2, a3, a4, a5]))
        return out
