"""Forward kinematics of a serial arm, built from its parsed URDF.

`autolab.model.urdf` reads the file (once, for the whole stack); here its
joints and per-link collision primitives become numpy transforms, so the
planner, the collision checker and the MuJoCo world share one description of
the robot. Poses are 4x4 homogeneous numpy arrays in metres; `fk` and
`jacobian` are vectorised enough for a planner checking hundreds of
configurations per goal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Self

import numpy as np

from autolab.devices.errors import RobotModelError
from autolab.model import urdf

# --- small rigid-transform helpers ---------------------------------------------


def rpy_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """URDF convention: R = Rz(yaw) @ Ry(pitch) @ Rx(roll)."""
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
    )


def transform(xyz=(0.0, 0.0, 0.0), rpy=(0.0, 0.0, 0.0)) -> np.ndarray:
    t = np.eye(4)
    t[:3, :3] = rpy_matrix(*rpy)
    t[:3, 3] = xyz
    return t


def axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation matrix about a unit axis (Rodrigues)."""
    x, y, z = axis
    c, s = math.cos(angle), math.sin(angle)
    C = 1.0 - c
    return np.array(
        [
            [c + x * x * C, x * y * C - z * s, x * z * C + y * s],
            [y * x * C + z * s, c + y * y * C, y * z * C - x * s],
            [z * x * C - y * s, z * y * C + x * s, c + z * z * C],
        ]
    )


def rotation_vector(R: np.ndarray) -> np.ndarray:
    """Log map of a rotation matrix: axis * angle (robust near 0 and pi)."""
    cos = max(-1.0, min(1.0, (np.trace(R) - 1.0) / 2.0))
    angle = math.acos(cos)
    if angle < 1e-9:
        return np.zeros(3)
    if math.pi - angle < 1e-6:
        # Near pi: axis from the largest diagonal element of (R + I) / 2.
        M = (R + np.eye(3)) / 2.0
        i = int(np.argmax(np.diag(M)))
        axis = M[:, i] / math.sqrt(max(M[i, i], 1e-12))
        return axis / np.linalg.norm(axis) * angle
    w = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    return w * (angle / (2.0 * math.sin(angle)))


def pose_xyz_yaw(x: float, y: float, z: float, yaw: float) -> np.ndarray:
    return transform((x, y, z), (0.0, 0.0, yaw))


def yaw_of(T: np.ndarray) -> float:
    return math.atan2(T[1, 0], T[0, 0])


def quaternion_of(R: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation matrix."""
    tr = np.trace(R)
    if tr > 0:
        s = math.sqrt(tr + 1.0) * 2
        w, x, y, z = 0.25 * s, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = math.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2]) * 2
        w, x, y, z = (R[2, 1] - R[1, 2]) / s, 0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s
    elif R[1, 1] > R[2, 2]:
        s = math.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2]) * 2
        w, x, y, z = (R[0, 2] - R[2, 0]) / s, (R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s
    else:
        s = math.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1]) * 2
        w, x, y, z = (R[1, 0] - R[0, 1]) / s, (R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s
    return (x, y, z, w)


def matrix_of_quaternion(x: float, y: float, z: float, w: float) -> np.ndarray:
    n = math.sqrt(x * x + y * y + z * z + w * w)
    if n < 1e-12:
        raise ValueError("zero-length quaternion")
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


# --- the robot model -------------------------------------------------------------


@dataclass(frozen=True)
class _Placed:
    """Mixed into a URDF element: `origin`, the 4x4 transform of its xyz and rpy, computed once."""

    origin: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "origin", transform(self.xyz, self.rpy))  # type: ignore[attr-defined]

    @classmethod
    def of(cls, element: urdf.Shape | urdf.Joint) -> Self:
        """The element of a parsed URDF (`autolab.model.urdf`) with its transform."""
        return cls(**{f.name: getattr(element, f.name) for f in fields(element) if f.init})


@dataclass(frozen=True)
class Shape(urdf.Shape, _Placed):
    """A URDF collision primitive, placed in its link frame by `origin`."""

    def half_extents(self) -> np.ndarray:
        """Half extents of the shape's bounding box in its own frame (cylinder axis along z)."""
        if self.kind == "box":
            return np.asarray(self.size) / 2.0
        if self.kind == "cylinder":
            r, length = self.size
            return np.array([r, r, length / 2.0])
        r = self.size[0]
        return np.array([r, r, r])


@dataclass(frozen=True)
class Joint(urdf.Joint, _Placed):
    """A URDF joint, placed in its parent link's frame by `origin`; the chain's DOF are the `driven` joints."""

    def motion(self, q: float) -> np.ndarray:
        t = np.eye(4)
        if self.type in ("revolute", "continuous"):
            t[:3, :3] = axis_angle(self.axis, q)
        elif self.type == "prismatic":
            t[:3, 3] = np.multiply(self.axis, q)
        return t

    def value(self, extra: dict[str, float]) -> float:
        """This side-branch joint's value: its own entry in `extra`, or the one it mimics, scaled."""
        if self.name in extra or self.mimic is None:
            return extra.get(self.name, 0.0)
        return self.mimic.multiplier * extra.get(self.mimic.joint, 0.0) + self.mimic.offset


@dataclass
class RobotModel:
    name: str
    joints: dict[str, Joint]
    shapes: dict[str, list[Shape]] = field(default_factory=dict)  # link -> collision shapes

    @classmethod
    def from_urdf(cls, robot: urdf.Robot) -> RobotModel:
        """The numpy model of a parsed URDF (`autolab.model.urdf`): the one reading of the file."""
        return cls(
            robot.name,
            {name: Joint.of(j) for name, j in robot.joints.items()},
            {name: [Shape.of(s) for s in link.collisions] for name, link in robot.links.items()},
        )

    def parent_joint(self, link: str) -> Joint | None:
        for j in self.joints.values():
            if j.child == link:
                return j
        return None

    @property
    def links(self) -> set[str]:
        out = set(self.shapes)
        for j in self.joints.values():
            out.update((j.parent, j.child))
        return out

    def root(self) -> str:
        children = {j.child for j in self.joints.values()}
        roots = sorted(self.links - children)
        if len(roots) != 1:
            raise RobotModelError(f"robot {self.name!r} must have exactly one root link, found {roots}")
        return roots[0]


class KinematicChain:
    """The serial chain from `base_link` to `tip_link` of a RobotModel.

    `base_pose` places the base link in the world, so all poses are in `world`.
    """

    def __init__(self, model: RobotModel, base_link: str, tip_link: str,
                 base_pose: np.ndarray | None = None) -> None:
        path: list[Joint] = []
        link = tip_link
        while link != base_link:
            j = model.parent_joint(link)
            if j is None:
                raise RobotModelError(f"no kinematic chain from {base_link!r} to {tip_link!r} in {model.name!r}")
            path.append(j)
            link = j.parent
        self.model = model
        self.base_link = base_link
        self.tip_link = tip_link
        self.base_pose = np.eye(4) if base_pose is None else np.asarray(base_pose, dtype=float)
        self.joints: list[Joint] = list(reversed(path))
        self.active: list[Joint] = [j for j in self.joints if j.driven]
        self.joint_names: list[str] = [j.name for j in self.active]
        self.lower = np.array([j.lower for j in self.active])
        self.upper = np.array([j.upper for j in self.active])
        self.max_velocity = np.array([j.velocity for j in self.active])
        # Links rigidly attached to the chain (below the tip or on side branches like fingers)
        # are carried along in link_frames().
        self._branches = self._side_links(model)

    @property
    def dof(self) -> int:
        return len(self.active)

    def _side_links(self, model: RobotModel) -> list[tuple[str, Joint]]:
        """Links hanging off chain links (gripper fingers, tool bodies): (attached-to, joint), in order."""
        on_chain = {self.base_link} | {j.child for j in self.joints}
        out: list[tuple[str, Joint]] = []
        frontier = list(on_chain)
        seen = set(on_chain)
        while frontier:
            link = frontier.pop(0)
            for j in model.joints.values():
                if j.parent == link and j.child not in seen:
                    out.append((link, j))
                    seen.add(j.child)
                    frontier.append(j.child)
        return out

    def link_frames(self, q: np.ndarray, extra: dict[str, float] | None = None) -> dict[str, np.ndarray]:
        """World pose of every link of the chain and its side branches; `extra` gives branch joint values."""
        q = np.asarray(q, dtype=float)
        frames = {self.base_link: self.base_pose}
        T = self.base_pose
        i = 0
        for j in self.joints:
            T = T @ j.origin
            if j.driven:
                T = T @ j.motion(q[i])
                i += 1
            frames[j.child] = T
        extra = extra or {}
        for parent, j in self._branches:
            frames[j.child] = frames[parent] @ j.origin @ j.motion(j.value(extra))
        return frames

    def link_frames_batch(self, qs: np.ndarray, extra: dict[str, float] | None = None) -> dict[str, np.ndarray]:
        """`link_frames` for N configurations at once: link -> (N, 4, 4) world poses."""
        qs = np.atleast_2d(np.asarray(qs, dtype=float))
        n = len(qs)
        T = np.broadcast_to(self.base_pose, (n, 4, 4)).copy()
        frames = {self.base_link: T}
        i = 0
        for j in self.joints:
            T = T @ j.origin
            if j.driven:
                T = T @ _motions(j, qs[:, i])
                i += 1
            frames[j.child] = T
        extra = extra or {}
        for parent, j in self._branches:
            frames[j.child] = frames[parent] @ (j.origin @ j.motion(j.value(extra)))
        return frames

    def fk(self, q: np.ndarray) -> np.ndarray:
        """World pose of the tip link."""
        return self.jacobian(q, with_jacobian=False)[0]

    def jacobian(self, q: np.ndarray, with_jacobian: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """(tip pose, 6xN geometric Jacobian in the world frame: rows vx vy vz wx wy wz)."""
        q = np.asarray(q, dtype=float)
        T = self.base_pose
        axes, origins, kinds = [], [], []
        i = 0
        for j in self.joints:
            T = T @ j.origin
            if j.driven:
                if with_jacobian:
                    axes.append(T[:3, :3] @ j.axis)
                    origins.append(T[:3, 3].copy())
                    kinds.append(j.type)
                T = T @ j.motion(q[i])
                i += 1
        if not with_jacobian:
            return T, None
        p = T[:3, 3]
        J = np.zeros((6, len(axes)))
        for k, (a, o, kind) in enumerate(zip(axes, origins, kinds, strict=True)):
            if kind == "prismatic":
                J[:3, k] = a
            else:
                r = p - o
                J[0, k] = a[1] * r[2] - a[2] * r[1]
                J[1, k] = a[2] * r[0] - a[0] * r[2]
                J[2, k] = a[0] * r[1] - a[1] * r[0]
                J[3:, k] = a
        return T, J

    def within_limits(self, q: np.ndarray, tol: float = 1e-9) -> bool:
        q = np.asarray(q)
        return bool(np.all(q >= self.lower - tol) and np.all(q <= self.upper + tol))

    def limit_violations(self, q: np.ndarray, tol: float = 1e-9) -> list[str]:
        """Sentences naming each joint outside its limits."""
        out = []
        for name, v, lo, hi in zip(self.joint_names, q, self.lower, self.upper, strict=True):
            if v < lo - tol or v > hi + tol:
                out.append(f"{name}={v:.4f} outside [{lo:.4f}, {hi:.4f}]")
        return out


def _motions(joint: Joint, values: np.ndarray) -> np.ndarray:
    """(N, 4, 4) joint motions for N joint values."""
    n = len(values)
    out = np.broadcast_to(np.eye(4), (n, 4, 4)).copy()
    if joint.type == "prismatic":
        out[:, :3, 3] = values[:, None] * joint.axis
        return out
    x, y, z = joint.axis
    c, s = np.cos(values), np.sin(values)
    C = 1.0 - c
    out[:, 0, 0] = c + x * x * C
    out[:, 0, 1] = x * y * C - z * s
    out[:, 0, 2] = x * z * C + y * s
    out[:, 1, 0] = y * x * C + z * s
    out[:, 1, 1] = c + y * y * C
    out[:, 1, 2] = y * z * C - x * s
    out[:, 2, 0] = z * x * C - y * s
    out[:, 2, 1] = z * y * C + x * s
    out[:, 2, 2] = c + z * z * C
    return out
