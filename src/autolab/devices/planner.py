"""Motion planning for the arm: joint, named and Cartesian goals, and whole transfers.

Every path the arm will follow is planned, collision-checked at fine
resolution and timed before anything moves, so a goal that would collide or
cannot be reached is refused up front with a sentence naming the cause.

Routing: a joint move goes straight in joint space when that path is clear;
otherwise it rises vertically to the cell's safe height, crosses over at that
height and descends, and if that also collides, it passes through the
description's `travel` pose. A transfer always goes through the safe height
above its source and destination (approach, grasp, lift, carry, place,
retreat); the straight tool paths are IK-solved every few millimetres.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from autolab.devices.collision import Box, CollisionChecker, Contact, densify
from autolab.devices.errors import CollisionError, InvalidGoal, NoIKSolution, OutOfLimits, UnknownPose
from autolab.devices.ik import IKSolver
from autolab.devices.kinematics import KinematicChain, RobotModel, transform
from autolab.devices.limits import JointLimits
from autolab.devices.trajectory import Trajectory, time_path

_T = TypeVar("_T")

#: Shrink of a held labware's box at its bottom face: it may touch the surface it is set on.
SEAT_ALLOWANCE = 0.003
#: Height above a seated grasp within which straight moves go at the slow limits.
LINEAR_SLOW_ZONE = 0.03
#: Clearance between each open finger and the labware's side when approaching it.
FINGER_CLEARANCE = 0.012


def tool_down(x: float, y: float, z: float, yaw: float) -> np.ndarray:
    """A TCP pose pointing straight down, fingers closing across the labware's y axis."""
    return transform((x, y, z), (math.pi, 0.0, yaw))


@dataclass(frozen=True)
class Segment:
    """One phase of a plan: a timed trajectory, and the gripper command to give after it (if any)."""

    phase: str
    trajectory: Trajectory
    gripper_after: float | None = None  # finger opening (m) to command when the segment ends


@dataclass
class TransferPlan:
    item: str
    source: str
    destination: str
    segments: list[Segment] = field(default_factory=list)
    open_width: float = 0.0  # finger opening before the grasp and after the place
    grasp_opening: float = 0.0  # the opening expected when closed on the labware (its width)
    limits: JointLimits | None = None  # full limits of this goal
    slow: JointLimits | None = None  # limits of the straight moves near the locations

    @property
    def duration(self) -> float:
        return sum(s.trajectory.duration for s in self.segments)


@dataclass(frozen=True)
class LabwareShape:
    """Size (m) and grasp height of a labware type."""

    length: float
    width: float
    height: float
    grasp_height: float

    @classmethod
    def of(cls, labware_type) -> LabwareShape:
        length, width, height = labware_type.size_m
        return cls(length, width, height, labware_type.grasp_height_mm / 1000.0)


class ArmModel:
    """The arm's kinematics, limits and collision geometry, built from the workcell description."""

    def __init__(self, workcell, acceleration: float | list[float] = 2.5, velocity_scale: float = 1.0,
                 acceleration_scale: float = 1.0, margin: float = 0.002) -> None:
        arm = workcell.arm
        dev = next(d for d in workcell.devices.values() if d.type == "arm")
        self.device_id = dev.id
        self.robot = RobotModel.from_urdf(arm.robot)
        base = transform((dev.pose.x, dev.pose.y, dev.pose.z), (0.0, 0.0, dev.pose.yaw))
        self.chain = KinematicChain(self.robot, arm.base_link, arm.tcp_link, base)
        if tuple(self.chain.joint_names) != tuple(arm.arm_joints):
            raise InvalidGoal(f"the URDF chain {arm.base_link}->{arm.tcp_link} has joints {self.chain.joint_names}, "
                              f"but the description lists arm_joints {list(arm.arm_joints)}")
        self.limits = JointLimits.from_chain(self.chain, acceleration, velocity_scale, acceleration_scale)
        self.ik = IKSolver(self.chain)
        self.named_poses = {k: np.array(v, dtype=float) for k, v in arm.named_poses.items()}
        self.finger_joints = tuple(arm.finger_joints)
        self.max_opening = arm.max_opening_m
        self.safe_height = arm.safe_height_m
        self.checker = CollisionChecker(self.chain, cell_obstacles(workcell), margin=margin)

    def finger_extra(self, opening: float) -> dict[str, float]:
        """Finger joint values for an opening: each finger moves half of it (the URDF convention)."""
        return {j: opening / 2.0 for j in self.finger_joints}


def cell_obstacles(workcell) -> list[Box]:
    """The fixed bodies of the cell in `world`: fixtures, device bodies and conveyor belts."""
    out: list[Box] = []
    for b in workcell.fixtures:
        out.append(Box(f"fixture:{b.name}", transform((b.pose.x, b.pose.y, b.pose.z), (0, 0, b.pose.yaw)),
                       np.asarray(b.size) / 2.0))
    for dev in workcell.devices.values():
        if dev.type == "arm":
            continue
        for b in dev.bodies:
            p = dev.pose.compose(b.pose)
            out.append(Box(f"{dev.id}:{b.name}", transform((p.x, p.y, p.z), (0, 0, p.yaw)), np.asarray(b.size) / 2.0))
        if dev.type == "conveyor" and {"length_m", "width_m", "surface_height_m"} <= set(dev.params):
            h = float(dev.params["surface_height_m"])
            p = dev.pose
            out.append(Box(f"{dev.id}:belt", transform((p.x, p.y, p.z + h / 2.0), (0, 0, p.yaw)),
                           np.array([float(dev.params["length_m"]) / 2, float(dev.params["width_m"]) / 2, h / 2])))
    return out


def labware_box(name: str, shape: LabwareShape, x: float, y: float, z: float, yaw: float) -> Box:
    """The box of a labware item seated with its origin (bottom centre) at (x, y, z, yaw)."""
    return Box(name, transform((x, y, z + shape.height / 2.0), (0, 0, yaw)),
               np.array([shape.length / 2, shape.width / 2, shape.height / 2]))


def held_box(name: str, shape: LabwareShape) -> Box:
    """The held labware's box in the TCP frame (tool z points down, so 'up' is -z)."""
    centre_up = shape.height / 2.0 - shape.grasp_height + SEAT_ALLOWANCE / 2.0
    return Box(name, transform((0.0, 0.0, -centre_up)),
               np.array([shape.length / 2, shape.width / 2, (shape.height - SEAT_ALLOWANCE) / 2]))


class MotionPlanner:
    def __init__(self, arm: ArmModel, step_m: float = 0.005, resolution_rad: float = 0.01) -> None:
        self.arm = arm
        self.step_m = step_m
        self.resolution = resolution_rad

    # --- goals ----------------------------------------------------------------------------------
    def named(self, name: str) -> np.ndarray:
        try:
            return self.arm.named_poses[name].copy()
        except KeyError:
            raise UnknownPose(f"unknown named pose {name!r}; known: {', '.join(sorted(self.arm.named_poses))}") \
                from None

    def joint_goal(self, positions: Sequence[float], names: Sequence[str] = ()) -> np.ndarray:
        """A joint goal in the arm's order; checks names, count, finiteness and limits."""
        arm_names = list(self.arm.chain.joint_names)
        if names:
            if sorted(names) != sorted(arm_names) or len(names) != len(positions):
                raise InvalidGoal(f"joint_names must name each arm joint once ({', '.join(arm_names)}); "
                                  f"got {list(names)} with {len(positions)} positions")
            by_name = dict(zip(names, positions, strict=True))
            q = np.array([by_name[n] for n in arm_names], dtype=float)
        else:
            if len(positions) != len(arm_names):
                raise InvalidGoal(f"expected {len(arm_names)} joint positions ({', '.join(arm_names)}), "
                                  f"got {len(positions)}")
            q = np.array(positions, dtype=float)
        if not np.all(np.isfinite(q)):
            raise InvalidGoal("joint positions must be finite numbers")
        bad = self.arm.limits.check_position(q)
        if bad:
            raise OutOfLimits("joint goal outside the limits: " + "; ".join(bad))
        return q

    def pose_goal(self, target: np.ndarray, current: np.ndarray, held: Box | None = None,
                  opening: float = 0.0, ignore: Sequence[str] = ()) -> np.ndarray:
        """IK for a tool pose: the collision-free solution nearest the current configuration."""
        return self.pose_goals(target, current, held, opening, ignore)[0]

    def pose_goals(self, target: np.ndarray, current: np.ndarray, held: Box | None = None,
                   opening: float = 0.0, ignore: Sequence[str] = (), max_solutions: int = 8) -> list[np.ndarray]:
        """Collision-free IK solutions for a tool pose, nearest the current configuration first."""
        extra = self.arm.finger_extra(opening)

        def clear(q: np.ndarray) -> bool:
            return self.arm.checker.check(q, held, ignore, extra, self._obstacles) is None

        return self.arm.ik.solutions(target, current, self.arm.named_poses.values(), accept=clear,
                                     max_solutions=max_solutions)

    @staticmethod
    def _first_clear(candidates: Sequence[np.ndarray], attempt: Callable[[np.ndarray], _T]) -> _T:
        """`attempt` on each candidate in turn; the first that plans, else the nearest one's error.

        The nearest IK solution above a nest may be a branch whose straight
        descent hits the table; another branch's descent is often clear.
        """
        first_error: Exception | None = None
        for q in candidates:
            try:
                return attempt(q)
            except (CollisionError, NoIKSolution) as exc:
                first_error = first_error or exc
        assert first_error is not None
        raise first_error

    # --- paths ------------------------------------------------------------------------------------
    _obstacles: Sequence[Box] = ()

    def set_labware_obstacles(self, boxes: Sequence[Box]) -> None:
        """Labware standing in the cell (from the tracked inventory), checked like fixed bodies."""
        self._obstacles = list(boxes)

    def _check(self, path: Sequence[np.ndarray], held: Box | None, opening: float,
               ignore: Sequence[str] = ()) -> Contact | None:
        return self.arm.checker.check_path(path, held, ignore, self.arm.finger_extra(opening), self.resolution,
                                           self._obstacles)

    def _require_clear(self, path: Sequence[np.ndarray], held: Box | None, opening: float, what: str,
                       ignore: Sequence[str] = ()) -> None:
        c = self._check(path, held, opening, ignore)
        if c is not None:
            where = "at the goal" if c.fraction >= 1.0 - 1e-9 else f"{c.fraction:.0%} of the way"
            raise CollisionError(f"{what}: {c.sentence()} ({where})", (c.moving, c.obstacle))

    def straight(self, q0: np.ndarray, target: np.ndarray) -> list[np.ndarray]:
        """Joint waypoints of a straight tool path from FK(q0) to `target` (same orientation interpolated)."""
        T0 = self.arm.chain.fk(q0)
        dist = float(np.linalg.norm(target[:3, 3] - T0[:3, 3]))
        n = max(2, int(math.ceil(dist / self.step_m)) + 1)
        poses = []
        for k in range(1, n):
            s = k / (n - 1)
            T = target.copy()
            T[:3, 3] = T0[:3, 3] + s * (target[:3, 3] - T0[:3, 3])
            poses.append(T)
        return [np.asarray(q0, dtype=float), *self.arm.ik.solve_path(poses, q0)]

    def lifted(self, q: np.ndarray, height: float) -> np.ndarray:
        """The tool pose of q raised (or lowered) to `height` in world z."""
        T = self.arm.chain.fk(q)
        T[2, 3] = height
        return T

    def joint_path(self, q0: np.ndarray, q1: np.ndarray, held: Box | None = None, opening: float = 0.0,
                   what: str = "move", ignore: Sequence[str] = ()) -> list[list[np.ndarray]]:
        """Collision-free joint-space route from q0 to q1, as polylines meeting at rest."""
        goal_contact = self.arm.checker.check(q1, held, ignore, self.arm.finger_extra(opening), self._obstacles)
        if goal_contact is not None:
            raise CollisionError(f"{what}: the goal configuration collides: {goal_contact.sentence()}",
                                 (goal_contact.moving, goal_contact.obstacle))
        direct = [np.asarray(q0, dtype=float), np.asarray(q1, dtype=float)]
        c = self._check(direct, held, opening, ignore)
        if c is None:
            return [direct]
        for via in self._via_routes(q0, q1):
            if all(self._check(p, held, opening, ignore) is None for p in via):
                return via
        raise CollisionError(f"{what}: the direct path collides ({c.sentence()}) and no route through the safe "
                             f"height or the travel pose is clear", (c.moving, c.obstacle))

    def _via_routes(self, q0: np.ndarray, q1: np.ndarray):
        """Candidate routes: over the safe height, then through the travel pose."""
        h = self.arm.safe_height
        try:
            up = self.straight(q0, self.lifted(q0, max(h, self.arm.chain.fk(q0)[2, 3])))
            down_rev = self.straight(q1, self.lifted(q1, max(h, self.arm.chain.fk(q1)[2, 3])))
        except NoIKSolution:
            return
        top0, top1 = up[-1], down_rev[-1]
        down = list(reversed(down_rev))
        yield [up, [top0, top1], down]
        if "travel" in self.arm.named_poses:
            t = self.arm.named_poses["travel"]
            yield [up, [top0, t], [t, top1], down]

    def timed(self, polylines: list[list[np.ndarray]], limits: JointLimits) -> Trajectory:
        traj: Trajectory | None = None
        for poly in polylines:
            seg = time_path(poly, limits)
            traj = seg if traj is None else traj.then(seg)
        assert traj is not None
        return traj

    def plan_joints(self, q0: np.ndarray, q1: np.ndarray, limits: JointLimits, held: Box | None = None,
                    opening: float = 0.0, what: str = "move") -> Trajectory:
        ignore = [held.name.replace("held:", "labware:")] if held is not None else []
        return self.timed(self.joint_path(q0, q1, held, opening, what, ignore), limits)

    # --- transfers --------------------------------------------------------------------------------
    def grasp_poses(self, location, shape: LabwareShape, q_ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(grasp, above) TCP poses at a location; of the two symmetric yaws, the one nearer the wrist's."""
        p = location.pose
        z = p.z + shape.grasp_height
        cur_yaw = math.atan2(self.arm.chain.fk(q_ref)[1, 0], self.arm.chain.fk(q_ref)[0, 0])
        yaws = [p.yaw, p.yaw + math.pi]
        yaw = min(yaws, key=lambda a: abs(math.remainder(a - cur_yaw, 2 * math.pi)))
        grasp = tool_down(p.x, p.y, z, yaw)
        ax, ay, az = location.approach
        c, s = math.cos(p.yaw), math.sin(p.yaw)
        pre = tool_down(p.x + c * ax - s * ay, p.y + s * ax + c * ay, z + az, yaw)
        above = pre.copy()
        above[2, 3] = max(self.arm.safe_height, pre[2, 3])
        return grasp, above

    def open_width(self, shape: LabwareShape) -> float:
        opening = shape.width + 2 * FINGER_CLEARANCE
        if shape.width >= self.arm.max_opening:
            raise InvalidGoal(f"labware {shape.width * 1000:.1f} mm wide does not fit the gripper "
                              f"(max opening {self.arm.max_opening * 1000:.0f} mm)")
        return min(opening, self.arm.max_opening)

    def _near_slow(self, path: list[np.ndarray], z_slow: float, fast: JointLimits, slow: JointLimits) -> Trajectory:
        """Time a vertical tool path at full speed above `z_slow` and at the slow limits below it.

        The last centimetres onto (or off) a seat are where contact happens, so
        only they go slowly; the rest of the descent from the safe height does not.
        """
        low = [self.arm.chain.fk(q)[2, 3] <= z_slow + 1e-9 for q in path]
        if all(low) or not any(low):
            return self.timed([path], slow if all(low) else fast)
        if low[-1]:  # going down: fast, then slow
            k = low.index(True)
            return self.timed([path[: k + 1]], fast).then(self.timed([path[k:]], slow))
        k = low.index(False)  # going up: slow, then fast
        return self.timed([path[:k]], slow).then(self.timed([path[k - 1:]], fast))

    def plan_transfer(self, q0: np.ndarray, source, destination, shape: LabwareShape, item_name: str,
                      limits: JointLimits, slow_scale: float = 0.25, carry_scale: float = 0.5) -> TransferPlan:
        """Plan every motion of a transfer; raises before anything moves if any part is impossible.

        `slow_scale` scales the limits of the straight moves at the locations;
        `carry_scale` those of the carry, since a labware item held by friction
        slides in the fingers under the arm's fastest swings.
        """
        opening = self.open_width(shape)
        held = held_box(f"held:{item_name}", shape)
        slow = limits.scaled(slow_scale, slow_scale)
        plan = TransferPlan(item_name, source.id, destination.id, open_width=opening, grasp_opening=shape.width)
        moved = [f"labware:{item_name}"]  # once picked, the item is no longer an obstacle at its source

        g_src, a_src = self.grasp_poses(source, shape, q0)
        try:
            above_src = self.pose_goals(a_src, q0, None, opening)
        except NoIKSolution as exc:
            raise NoIKSolution(f"cannot reach {source.id}: {exc}") from None

        def pick_from(q_above: np.ndarray):
            try:
                down = self.straight(q_above, g_src)
            except NoIKSolution as exc:
                raise NoIKSolution(f"cannot reach {source.id}: {exc}") from None
            self._require_clear(down, None, opening, f"grasp at {source.id}")
            up = list(reversed(down))
            self._require_clear(up, held, shape.width, f"lift from {source.id}", moved)
            return down, up, self.joint_path(q0, q_above, None, opening, f"approach to {source.id}")

        down_src, up_src, approach = self._first_clear(above_src, pick_from)
        q_grasp = down_src[-1]

        g_dst, a_dst = self.grasp_poses(destination, shape, q_grasp)
        try:
            above_dst = self.pose_goals(a_dst, up_src[-1], held, shape.width, moved)
        except NoIKSolution as exc:
            raise NoIKSolution(f"cannot reach {destination.id}: {exc}") from None
        plan.limits, plan.slow = limits, slow

        def place_from(q_above: np.ndarray):
            placing = self.place_segments(plan, [q_above], destination, shape, g_dst)
            carry = self.joint_path(up_src[-1], q_above, held, shape.width,
                                    f"carry from {source.id} to {destination.id}", moved)
            return carry, placing

        carry, placing = self._first_clear(above_dst, place_from)
        plan.segments = [
            Segment("approach", self.timed(approach, limits), gripper_after=None),
            Segment("grasp", self._near_slow(down_src, g_src[2, 3] + LINEAR_SLOW_ZONE, limits, slow),
                    gripper_after=0.0),
            Segment("lift", self._near_slow(up_src, g_src[2, 3] + LINEAR_SLOW_ZONE, limits, slow)),
            Segment("carry", self.timed(carry, limits.scaled(carry_scale, carry_scale))),
            *placing,
        ]
        return plan

    def place_segments(self, plan: TransferPlan, lead_in: list[np.ndarray], destination, shape: LabwareShape,
                       grasp: np.ndarray) -> list[Segment]:
        """Place (from the end of `lead_in` straight down to `grasp`) and retreat, both collision-checked.

        `grasp` is the TCP pose at release; a corrected place passes a shifted
        one with a lead-in that moves over it first.
        """
        moved = [f"labware:{plan.item}"]
        held = held_box(f"held:{plan.item}", shape)
        above = grasp.copy()
        above[2, 3] = self.arm.chain.fk(lead_in[-1])[2, 3]
        try:
            over = self.straight(lead_in[-1], above) if len(lead_in) == 1 and not np.allclose(
                self.arm.chain.fk(lead_in[-1])[:3, 3], above[:3, 3], atol=1e-4) else [lead_in[-1]]
            down = self.straight(over[-1], grasp)
        except NoIKSolution as exc:
            raise NoIKSolution(f"cannot reach {destination.id}: {exc}") from None
        place = [*over, *down[1:]]
        self._require_clear(place, held, shape.width, f"place at {destination.id}", moved)
        up = list(reversed(down))
        # Retreating, the item stands at the destination: the open fingers must clear it.
        gz = grasp[2, 3] - shape.grasp_height
        placed = labware_box(f"placed:{plan.item}", shape, grasp[0, 3], grasp[1, 3], gz, destination.pose.yaw)
        c = self.arm.checker.check_path(up, None, moved, self.arm.finger_extra(plan.open_width), self.resolution,
                                        [*self._obstacles, placed])
        if c is not None:
            raise CollisionError(f"retreat from {destination.id}: {c.sentence()}", (c.moving, c.obstacle))
        z_slow = grasp[2, 3] + LINEAR_SLOW_ZONE
        descent = self._near_slow(down, z_slow, plan.limits, plan.slow)
        if len(over) > 1:  # the shift over the corrected release point, then the descent (meeting at rest)
            descent = self.timed([over], plan.slow).then(descent)
        return [Segment("place", descent, gripper_after=plan.open_width),
                Segment("retreat", self._near_slow(up, z_slow, plan.limits, plan.slow))]

    def corrected_place(self, plan: TransferPlan, q_now: np.ndarray, destination, shape: LabwareShape,
                        shift_x: float, shift_y: float) -> list[Segment]:
        """Place and retreat shifted by (shift_x, shift_y) m, from where the arm is now.

        The item sits a little off-centre in the fingers after a friction
        grasp and a carry; shifting the release by the offset sensed in the
        hand puts the item on its location, not the gripper.
        """
        g_dst, _ = self.grasp_poses(destination, shape, q_now)
        g_dst[0, 3] += shift_x
        g_dst[1, 3] += shift_y
        return self.place_segments(plan, [np.asarray(q_now, dtype=float)], destination, shape, g_dst)


__all__ = ["ArmModel", "LabwareShape", "MotionPlanner", "Segment", "TransferPlan", "cell_obstacles",
           "densify", "held_box", "labware_box", "tool_down"]
