"""Collision checking of arm configurations and paths against the cell, with primitive geometry.

Every arm link's URDF collision primitive, the held labware and every fixed
body of the cell are oriented boxes (a cylinder or sphere is bounded by its
box, which errs on the safe side). Overlap is the exact separating-axis test,
batched over all link/obstacle pairs with numpy, so a path can be checked at
fine resolution (every `resolution` rad of the largest joint step) in
milliseconds. Links that do not move with any joint (the arm's base on its
pedestal) are not checked: their contact with the mount is by design.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from autolab.devices.kinematics import KinematicChain


@dataclass(frozen=True)
class Box:
    """An oriented box: `pose` (4x4, world or parent frame) at its centre, half extents in metres."""

    name: str
    pose: np.ndarray
    half: np.ndarray


@dataclass(frozen=True)
class Contact:
    """The first collision found: which moving part hit which obstacle, where on the path."""

    moving: str
    obstacle: str
    sample: int = 0
    fraction: float = 0.0

    def sentence(self) -> str:
        return f"{self.moving} would hit {self.obstacle}"


def obb_overlap(ca: np.ndarray, Ra: np.ndarray, ha: np.ndarray,
                cb: np.ndarray, Rb: np.ndarray, hb: np.ndarray) -> np.ndarray:
    """Separating-axis test for P pairs of oriented boxes; returns a (P,) bool array (True = overlap).

    c: (P, 3) centres, R: (P, 3, 3) rotations (columns are box axes), h: (P, 3) half extents.
    """
    R = np.einsum("pji,pjk->pik", Ra, Rb)  # Ra^T Rb
    t = np.einsum("pji,pj->pi", Ra, cb - ca)  # centre offset in A's frame
    absR = np.abs(R) + 1e-9
    sep = np.zeros(len(ca), dtype=bool)
    # A's face axes
    ra = ha
    rb = np.einsum("pik,pk->pi", absR, hb)
    sep |= np.any(np.abs(t) > ra + rb, axis=1)
    # B's face axes
    ra = np.einsum("pik,pi->pk", absR, ha)
    tb = np.abs(np.einsum("pik,pi->pk", R, t))
    sep |= np.any(tb > ra + hb, axis=1)
    # Edge-edge axes A_i x B_j
    for i in range(3):
        i1, i2 = (i + 1) % 3, (i + 2) % 3
        for j in range(3):
            j1, j2 = (j + 1) % 3, (j + 2) % 3
            ra = ha[:, i1] * absR[:, i2, j] + ha[:, i2] * absR[:, i1, j]
            rb = hb[:, j1] * absR[:, i, j2] + hb[:, j2] * absR[:, i, j1]
            d = np.abs(t[:, i2] * R[:, i1, j] - t[:, i1] * R[:, i2, j])
            sep |= d > ra + rb
    return ~sep


class CollisionChecker:
    """Checks the arm (and what it holds) against a fixed set of obstacle boxes in the world."""

    def __init__(self, chain: KinematicChain, obstacles: Sequence[Box], margin: float = 0.005,
                 skip_links: Iterable[str] = ()) -> None:
        self.chain = chain
        self.margin = margin
        self.obstacles = list(obstacles)
        self._static = self._static_links() | set(skip_links)
        self._set_obstacles(self.obstacles)

    def _static_links(self) -> set[str]:
        """Links whose pose does not depend on any joint: the base and what is bolted to it."""
        static = {self.chain.base_link}
        for j in self.chain.joints:
            if j.driven:
                break
            static.add(j.child)
        return static

    def _set_obstacles(self, obstacles: Sequence[Box]) -> None:
        self._ob_names = [o.name for o in obstacles]
        self._ob_c = np.array([o.pose[:3, 3] for o in obstacles]).reshape(-1, 3)
        self._ob_R = np.array([o.pose[:3, :3] for o in obstacles]).reshape(-1, 3, 3)
        self._ob_h = np.array([o.half for o in obstacles]).reshape(-1, 3)

    def moving_boxes(self, q: np.ndarray, held: Box | None = None,
                     joint_extra: dict[str, float] | None = None) -> list[Box]:
        """World boxes of every moving link shape, plus the held labware (its pose relative to the tip)."""
        frames = self.chain.link_frames(q, joint_extra)
        out = []
        for link, T in frames.items():
            if link in self._static:
                continue
            for k, shape in enumerate(self.chain.model.shapes.get(link, [])):
                out.append(Box(f"{link}" if k == 0 else f"{link}[{k}]", T @ shape.origin, shape.half_extents()))
        if held is not None:
            out.append(Box(held.name, frames[self.chain.tip_link] @ held.pose, held.half))
        return out

    def check(self, q: np.ndarray, held: Box | None = None, ignore: Iterable[str] = (),
              joint_extra: dict[str, float] | None = None, extra_obstacles: Sequence[Box] = ()) -> Contact | None:
        """The first contact of configuration q with the obstacles, or None when clear."""
        return self.check_many([q], held, ignore, joint_extra, extra_obstacles)

    def check_many(self, qs: Sequence[np.ndarray], held: Box | None = None, ignore: Iterable[str] = (),
                   joint_extra: dict[str, float] | None = None,
                   extra_obstacles: Sequence[Box] = (), chunk: int = 64) -> Contact | None:
        """The first contact along the configurations `qs`, or None; pairs are tested in batches."""
        ignore = set(ignore)
        obs = [o for o in [*self.obstacles, *extra_obstacles] if o.name not in ignore]
        if not obs or not len(qs):
            return None
        oc = np.array([o.pose[:3, 3] for o in obs])
        oR = np.array([o.pose[:3, :3] for o in obs])
        oh = np.array([o.half for o in obs]) + self.margin
        no = len(obs)
        parts = self._moving_parts(held, ignore)
        for start in range(0, len(qs), chunk):
            block = np.asarray(qs[start:start + chunk], dtype=float)
            frames = self.chain.link_frames_batch(block, joint_extra)
            # Moving boxes of the block: (P parts, N samples) poses -> flattened (P*N)
            poses = np.concatenate([frames[link] @ local for _, link, local, _ in parts])  # (P*N, 4, 4)
            halves = np.repeat(np.array([h for *_, h in parts]), len(block), 0)
            nm = len(poses)
            hit = obb_overlap(np.repeat(poses[:, :3, 3], no, 0), np.repeat(poses[:, :3, :3], no, 0),
                              np.repeat(halves, no, 0), np.tile(oc, (nm, 1)), np.tile(oR, (nm, 1, 1)),
                              np.tile(oh, (nm, 1)))
            if np.any(hit):
                pair = np.flatnonzero(hit)
                # The earliest sample on the path with a contact.
                first = min(pair, key=lambda i: (i // no) % len(block))
                part = (first // no) // len(block)
                k = start + (first // no) % len(block)
                return Contact(parts[part][0], obs[first % no].name, k, k / max(len(qs) - 1, 1))
        return None

    def _moving_parts(self, held: Box | None, ignore: set[str]) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
        """(name, link, pose in the link frame, half extents) of every moving shape, and the held labware."""
        out = []
        for link, shapes in self.chain.model.shapes.items():
            if link in self._static:
                continue
            for k, shape in enumerate(shapes):
                name = link if k == 0 else f"{link}[{k}]"
                if name not in ignore:
                    out.append((name, link, shape.origin, shape.half_extents()))
        if held is not None and held.name not in ignore:
            out.append((held.name, self.chain.tip_link, held.pose, held.half))
        return out

    def check_path(self, path: Sequence[np.ndarray], held: Box | None = None, ignore: Iterable[str] = (),
                   joint_extra: dict[str, float] | None = None, resolution: float = 0.01,
                   extra_obstacles: Sequence[Box] = ()) -> Contact | None:
        """Check a joint-space polyline densely: no joint moves more than `resolution` rad between samples."""
        samples = densify(path, resolution)
        return self.check_many(samples, held, ignore, joint_extra, extra_obstacles)


def densify(path: Sequence[np.ndarray], resolution: float) -> list[np.ndarray]:
    pts = [np.asarray(p, dtype=float) for p in path]
    out = [pts[0]]
    for a, b in zip(pts, pts[1:], strict=False):
        n = max(1, int(math.ceil(float(np.max(np.abs(b - a))) / resolution)))
        out.extend(a + (b - a) * (k / n) for k in range(1, n + 1))
    return out
