"""Inverse kinematics: damped least squares with joint limits and multiple seeds.

A 6-DOF arm has up to eight solutions for a tool pose; which one the solver
converges to depends on the seed. Seeding from the current configuration
first (then the named poses, then random configurations) and keeping the
feasible solution nearest to the current configuration avoids wrist flips and
elbow swaps between neighbouring goals. `accept` lets the caller veto a
solution (a collision check), so the next seed is tried instead.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable

import numpy as np

from autolab.devices.errors import NoIKSolution
from autolab.devices.kinematics import KinematicChain, rotation_vector


class IKSolver:
    def __init__(self, chain: KinematicChain, position_tol: float = 1e-4, angle_tol: float = 1e-3,
                 max_iterations: int = 150, damping: float = 0.05, random_seeds: int = 16,
                 rng_seed: int = 7) -> None:
        self.chain = chain
        self.position_tol = position_tol
        self.angle_tol = angle_tol
        self.max_iterations = max_iterations
        self.damping = damping
        self.random_seeds = random_seeds
        self._rng = np.random.default_rng(rng_seed)
        lo, hi = chain.lower.copy(), chain.upper.copy()
        # Continuous joints: sample one turn either side.
        lo[~np.isfinite(lo)] = -np.pi
        hi[~np.isfinite(hi)] = np.pi
        self._lo, self._hi = lo, hi
        # An upper bound of the reach from the first joint: the sum of the link lengths after it.
        first = next((k for k, j in enumerate(chain.joints) if j.driven), 0)
        self._shoulder = (chain.base_pose @ _compose(chain.joints[: first + 1]))[:3, 3]
        self._reach = sum(float(np.linalg.norm(j.origin[:3, 3])) for j in chain.joints[first + 1:])
        self._reach += sum(abs(j.upper) for j in chain.active if j.type == "prismatic" and np.isfinite(j.upper))

    def error(self, q: np.ndarray, target: np.ndarray) -> np.ndarray:
        T = self.chain.fk(q)
        return np.concatenate([target[:3, 3] - T[:3, 3], rotation_vector(target[:3, :3] @ T[:3, :3].T)])

    def solve_from(self, target: np.ndarray, seed: np.ndarray) -> np.ndarray | None:
        """One DLS descent from `seed`; the solution within limits, or None."""
        q = np.clip(np.asarray(seed, dtype=float), self.chain.lower, self.chain.upper)
        lam2 = self.damping**2
        for _ in range(self.max_iterations):
            T, J = self.chain.jacobian(q)
            e = np.concatenate([target[:3, 3] - T[:3, 3], rotation_vector(target[:3, :3] @ T[:3, :3].T)])
            if np.linalg.norm(e[:3]) < self.position_tol and np.linalg.norm(e[3:]) < self.angle_tol:
                return q
            # Damped least squares step; damping grows near singularities through the residual.
            JJt = J @ J.T
            dq = J.T @ np.linalg.solve(JJt + lam2 * np.eye(6), e)
            step = np.max(np.abs(dq))
            if step > 0.5:  # keep steps small so limits are met by clamping, not by jumping over
                dq *= 0.5 / step
            q = np.clip(q + dq, self.chain.lower, self.chain.upper)
        return None

    def near_seeds(self, target: np.ndarray, current: np.ndarray,
                   extra: Iterable[np.ndarray] = ()) -> list[np.ndarray]:
        """Seeds near the current configuration: itself, and itself turned to face the target.

        For an arm whose first joint turns about the vertical, rotating that
        joint (and the last, to keep the tool's yaw) by the target's change of
        azimuth gives a seed a few iterations from the answer.
        """
        current = np.asarray(current, dtype=float)
        out = [current]
        first = self.chain.active[0] if self.chain.active else None
        base_z = self.chain.base_pose[:3, :3] @ first.axis if first is not None and first.type != "prismatic" else None
        vertical = base_z is not None and abs(abs(base_z[2]) - 1.0) < 1e-6

        def facing(q: np.ndarray) -> np.ndarray:
            tip = self.chain.fk(q)[:3, 3]
            turn = math.atan2(target[1, 3], target[0, 3]) - math.atan2(tip[1], tip[0])
            turn = math.atan2(math.sin(turn), math.cos(turn)) * float(np.sign(base_z[2]))
            seed = q.copy()
            seed[0] += turn
            seed[-1] += turn
            return seed

        if vertical:
            out.append(facing(current))
        for s in extra:
            s = np.asarray(s, dtype=float)
            out.append(s)
            # A named pose (e.g. an elbow-up "travel") turned to face the target seeds the
            # same arm configuration there; seeding only from where the arm is can land on
            # an over-the-shoulder branch whose descent onto a nest hits the table.
            if vertical:
                out.append(facing(s))
        return out

    def unwrap_near(self, q: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """Shift joints by whole turns towards `ref` where the limits allow: the same pose, less motion."""
        q = q.copy()
        for i in range(len(q)):
            if self.chain.active[i].type == "prismatic":
                continue
            base = q[i]
            k = round((ref[i] - base) / (2 * math.pi))
            for shift in (k, k - 1, k + 1):
                cand = base + shift * 2 * math.pi
                if self.chain.lower[i] <= cand <= self.chain.upper[i] and abs(cand - ref[i]) < abs(q[i] - ref[i]):
                    q[i] = cand
        return q

    def solve(self, target: np.ndarray, current: np.ndarray, extra_seeds: Iterable[np.ndarray] = (),
              accept: Callable[[np.ndarray], bool] | None = None, max_solutions: int = 4) -> np.ndarray:
        """The accepted solution nearest to `current`; raises NoIKSolution with a sentence."""
        return self.solutions(target, current, extra_seeds, accept, max_solutions)[0]

    def solutions(self, target: np.ndarray, current: np.ndarray, extra_seeds: Iterable[np.ndarray] = (),
                  accept: Callable[[np.ndarray], bool] | None = None, max_solutions: int = 4) -> list[np.ndarray]:
        """Distinct accepted solutions, nearest to `current` first; raises NoIKSolution with a sentence.

        Callers that must also clear a path from the solution (a descent onto a
        nest) try them in order instead of trusting the nearest one.
        """
        current = np.asarray(current, dtype=float)
        p = target[:3, 3]
        if np.linalg.norm(p - self._shoulder) > self._reach + 1e-6:
            raise NoIKSolution(f"no IK solution for tool pose at ({p[0]:.3f}, {p[1]:.3f}, {p[2]:.3f}) m: it is "
                               f"{np.linalg.norm(p - self._shoulder):.3f} m from the shoulder, beyond the arm's "
                               f"{self._reach:.3f} m reach")
        found: list[np.ndarray] = []
        rejected = 0
        near = self.near_seeds(target, current, extra_seeds)
        randoms = (self._rng.uniform(self._lo, self._hi) for _ in range(self.random_seeds))
        for k, seed in enumerate(itertools.chain(near, randoms)):
            if k >= len(near) and found:
                break  # random seeds only when no seed near the current configuration worked
            q = self.solve_from(target, seed)
            if q is None:
                continue
            q = self.unwrap_near(q, current)
            if any(np.allclose(q, f, atol=1e-3) for f in found):
                continue
            if accept is not None and not accept(q):
                rejected += 1
                continue
            found.append(q)
            if len(found) >= max_solutions:
                break
        if not found:
            p = target[:3, 3]
            why = (f"all {rejected} solutions found collide with the cell" if rejected
                   else "the pose is out of reach or needs joints beyond their limits")
            raise NoIKSolution(f"no IK solution for tool pose at ({p[0]:.3f}, {p[1]:.3f}, {p[2]:.3f}) m: {why}")
        return sorted(found, key=lambda q: float(np.sum((q - current) ** 2)))

    def solve_path(self, targets: list[np.ndarray], start: np.ndarray,
                   max_joint_step: float = 0.2) -> list[np.ndarray]:
        """IK along a dense list of tool poses, each seeded from the previous one.

        Raises NoIKSolution if a pose is unreachable or the solution jumps (a
        configuration flip), which a straight tool path must never do.
        """
        out: list[np.ndarray] = []
        q = np.asarray(start, dtype=float)
        for k, T in enumerate(targets):
            nxt = self.solve_from(T, q)
            if nxt is None or (out and np.max(np.abs(nxt - q)) > max_joint_step):
                p = T[:3, 3]
                raise NoIKSolution(
                    f"straight tool path breaks at sample {k}/{len(targets)} near "
                    f"({p[0]:.3f}, {p[1]:.3f}, {p[2]:.3f}) m: unreachable or a configuration flip")
            out.append(nxt)
            q = nxt
        return out


def _compose(joints) -> np.ndarray:
    T = np.eye(4)
    for j in joints:
        T = T @ j.origin
    return T
