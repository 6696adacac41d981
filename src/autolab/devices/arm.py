"""The arm frontend: runs moves and transfers on any backend, checking each step against sensing.

The frontend knows nothing of the machine (PyLabRobot's frontend/backend
split): a backend executes a whole timed trajectory, commands the gripper and
reports joint states, gripper sensing and its clock. Backends are the
simulation (`sim/arm/joint_trajectory` topics) and ros2_control's
FollowJointTrajectory; both live with the node, which owns the ROS wiring.

Everything is planned before anything moves. While moving, the frontend
watches for cancel (it then sends a stopping trajectory that decelerates
within the acceleration limits), e-stop (the node calls `emergency_stop`
from its safety callback, which stops the backend at once) and tracking
errors. A grasp is verified from the gripper's sensing and a placement from
the placement sensor (ground truth in the simulation); failures are errors,
never success.
"""

from __future__ import annotations

import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from autolab.devices.errors import MotionError
from autolab.devices.planner import ArmModel, LabwareShape, MotionPlanner, held_box, labware_box
from autolab.devices.trajectory import Trajectory, stopping_trajectory
from autolab.model.errors import InventoryError
from autolab.model.inventory import IN_GRIPPER, Inventory

# --- what a backend provides ---------------------------------------------------------------


@dataclass(frozen=True)
class GripperSensing:
    closed: bool
    holding: bool
    held_id: str
    opening: float | None  # measured finger opening (m), when known


@dataclass(frozen=True)
class SensedPose:
    """Where the placement sensor sees an item: world x, y, z (m), yaw (rad) and its location id."""

    x: float
    y: float
    z: float
    yaw: float
    location: str


class ArmBackend(ABC):
    """One arm: executes timed trajectories, commands the gripper, reports state and time."""

    name = "abstract"

    @abstractmethod
    def execute(self, trajectory: Trajectory) -> None:
        """Start a trajectory now, replacing any running one (returns at once)."""

    @abstractmethod
    def stop(self) -> None:
        """Stop now and hold position (the e-stop path: no deceleration profile)."""

    @abstractmethod
    def motion_finished(self) -> tuple[bool, str]:
        """(finished, error sentence or ''): whether the last trajectory completed, and how."""

    @abstractmethod
    def command_gripper(self, opening: float) -> None:
        """Finger opening in m; 0 closes, force-limited, on whatever is between the fingers."""

    @abstractmethod
    def joint_state(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(positions, velocities) of the arm joints in the arm's order, or None before the first sample."""

    @abstractmethod
    def gripper(self) -> GripperSensing | None: ...

    @abstractmethod
    def now(self) -> float:
        """The backend's clock in seconds (sim time in simulation)."""

    def unconnected(self) -> str:
        """What the backend's commands cannot reach yet ('' when they can), e.g. a topic no one subscribes.

        A command published before the receiver has matched its publisher is lost without a trace, so
        goals wait for this (bounded) as for the first joint state."""
        return ""


#: Where is this item? (ground truth in the simulation; a vision system on hardware)
Locator = Callable[[str], SensedPose | None]


# --- outcomes --------------------------------------------------------------------------------


@dataclass
class Outcome:
    """Maps onto an action result: `code` is the name of the action's error constant."""

    code: str = "NONE"
    message: str = ""
    final_positions: list[float] = field(default_factory=list)
    placed: SensedPose | None = None
    item: str = ""

    @property
    def ok(self) -> bool:
        return self.code == "NONE"


class _Abort(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Tolerances:
    position_rad: float = 0.01  # final joint error accepted at the end of a trajectory (contact may hold it off)
    stopped_rad_s: float = 0.01  # and every joint slower than this: the arm is at rest
    settle_s: float = 1.5  # sim seconds after a trajectory's end to reach the goal
    gripper_s: float = 4.0  # sim seconds for the gripper to open or close
    # Commands start on receipt, but waits are timed from sending: on a loaded machine with the sim
    # several times faster than real time, delivery alone can take a few sim seconds. Latency is wall
    # time, so a wait also never times out before `delivery_wall_s` of wall time (however fast the sim).
    delivery_s: float = 6.0
    delivery_wall_s: float = 3.0
    place_mm: float = 5.0
    place_deg: float = 3.0
    drop_s: float = 0.25  # contact lost this long (backend seconds) while carrying: dropped
    stall_mm: float = 3.0  # fingers this far off the width they stalled at on the item: it left them
    locate_mm: float = 15.0  # a sensed item further than this from its location is not picked there
    locate_deg: float = 5.0
    connect_s: float = 20.0  # wall seconds a goal waits for the first joint state and connected commands
    wall_factor: float = 4.0  # a wall-clock bound on every wait: sim seconds * factor + 10 s


class ArmController:
    """Runs goals one at a time (the node guarantees that) in the caller's thread."""

    def __init__(self, model: ArmModel, backend: ArmBackend, inventory: Inventory, workcell,
                 locator: Locator | None = None, tolerances: Tolerances | None = None,
                 poll_s: float = 0.005, sleep: Callable[[], None] | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        """`sleep` is one polling pause; an in-process engine backend passes a physics step instead."""
        self.model = model
        self.planner = MotionPlanner(model)
        self.backend = backend
        self.inventory = inventory
        self.workcell = workcell
        self.locate = locator
        self.tol = tolerances or Tolerances()
        self.poll_s = poll_s
        self._sleep = sleep or (lambda: time.sleep(poll_s))
        self.log = log or (lambda _msg: None)
        self._estop = threading.Event()
        self._estop_reason = ""
        self.phase = ""

    # --- safety -----------------------------------------------------------------------------------
    def emergency_stop(self, reason: str) -> None:
        """Called from the safety callback: stop the backend now; the running goal ends with ESTOP."""
        self._estop_reason = reason
        self._estop.set()
        self.backend.stop()

    def clear_estop(self) -> None:
        self._estop.clear()

    # --- helpers ----------------------------------------------------------------------------------
    def await_backend(self, cancel: Callable[[], bool], timeout_s: float | None = None) -> None:
        """Wait (bounded, wall clock) for the backend's first joint state and for its command channels.

        A goal can arrive just after the node starts, before the first
        /joint_states sample from the simulation or the controller, or before
        the receiver of our commands has discovered us (a command sent then is
        lost): start-up races to wait out, not failures to report.
        """
        timeout_s = self.tol.connect_s if timeout_s is None else timeout_s
        end = time.monotonic() + timeout_s
        while self.backend.joint_state() is None or self.backend.unconnected():
            self._check_interrupts(cancel)
            if time.monotonic() > end:
                if self.backend.joint_state() is None:
                    raise _Abort("BACKEND_FAILURE", f"no joint states from the {self.backend.name} backend within "
                                                    f"{timeout_s:.0f} s (is the {self.backend.name} running?)")
                raise _Abort("BACKEND_FAILURE", f"{self.backend.unconnected()} after {timeout_s:.0f} s (is the "
                                                f"{self.backend.name} running?)")
            time.sleep(self.poll_s)

    def current(self) -> np.ndarray:
        st = self.backend.joint_state()
        if st is None:
            raise _Abort("BACKEND_FAILURE", f"no joint states from the {self.backend.name} backend yet")
        return st[0]

    def labware_obstacles(self, exclude: str = "") -> list:
        out = []
        for item in self.inventory.items():
            if item.id == exclude or item.location not in self.workcell.locations:
                continue
            loc = self.workcell.locations[item.location]
            shape = LabwareShape.of(self.workcell.labware_types[item.type])
            out.append(labware_box(f"labware:{item.id}", shape, loc.pose.x, loc.pose.y, loc.pose.z, loc.pose.yaw))
        return out

    def _check_interrupts(self, cancel: Callable[[], bool]) -> None:
        if self._estop.is_set():
            raise _Abort("ESTOP", f"stopped: {self._estop_reason}")
        if cancel():
            raise _Abort("CANCELED", "canceled")

    def _wait(self, done: Callable[[], bool], sim_timeout: float, cancel: Callable[[], bool], what: str,
              on_tick: Callable[[], None] | None = None) -> None:
        """Wait for `done` within `sim_timeout` backend seconds (and a wall-clock bound)."""
        t0, wall0 = self.backend.now(), time.monotonic()
        wall_end = wall0 + sim_timeout * self.tol.wall_factor + 10.0
        while not done():
            self._check_interrupts(cancel)
            if on_tick is not None:
                on_tick()
            if self.backend.now() - t0 > sim_timeout and time.monotonic() - wall0 > self.tol.delivery_wall_s:
                raise _Abort("TIMEOUT", f"timed out waiting for {what} ({sim_timeout:.1f} s)")
            if time.monotonic() > wall_end:
                raise _Abort("TIMEOUT", f"timed out waiting for {what}: the backend clock is not advancing")
            self._sleep()

    def _run(self, traj: Trajectory, cancel: Callable[[], bool],
             feedback: Callable[[float], None] | None = None, watch: Callable[[], None] | None = None) -> None:
        """Execute a trajectory and wait until the arm is at its end (or stop on cancel / e-stop)."""
        self._check_interrupts(lambda: False)
        if traj.duration <= 0.0:
            return
        self.backend.execute(traj)
        t0 = self.backend.now()
        self.log(f"{self.phase}: {traj.duration:.2f} s trajectory of {len(traj.times)} points sent at t={t0:.3f}")

        def tick() -> None:
            if feedback is not None:
                feedback(min(1.0, max(0.0, (self.backend.now() - t0) / traj.duration)))
            if watch is not None:
                watch()

        def arrived() -> bool:
            finished, error = self.backend.motion_finished()
            if error:
                raise _Abort("TRACKING_ERROR", error)
            st = self.backend.joint_state()
            return (finished and st is not None and float(np.max(np.abs(st[0] - traj.end))) < self.tol.position_rad
                    and float(np.max(np.abs(st[1]))) < self.tol.stopped_rad_s)

        try:
            self._wait(arrived, traj.duration + self.tol.settle_s + self.tol.delivery_s, cancel,
                       "the arm to reach its goal", tick)
            self.log(f"{self.phase}: arrived at t={self.backend.now():.3f}")
        except _Abort as exc:
            self.log(f"{self.phase}: {exc.code} at t={self.backend.now():.3f}: {exc}")
            if exc.code == "CANCELED":
                self._stop_smoothly()
            elif exc.code in ("TIMEOUT", "TRACKING_ERROR"):
                self.backend.stop()
                if exc.code == "TIMEOUT":
                    raise _Abort("TRACKING_ERROR", f"the arm did not follow its trajectory: {exc}") from None
            raise

    def _stop_smoothly(self) -> None:
        """Cancel: replace the running trajectory with a deceleration within the limits, and wait for rest."""
        st = self.backend.joint_state()
        if st is None:
            self.backend.stop()
            return
        stop = stopping_trajectory(st[0], st[1], self.model.limits)
        self.backend.execute(stop)
        t0 = self.backend.now()
        wall_end = time.monotonic() + (stop.duration + 1.0) * self.tol.wall_factor + 5.0
        while self.backend.now() - t0 < stop.duration + 0.5 and time.monotonic() < wall_end:
            if self._estop.is_set():
                return
            finished, _ = self.backend.motion_finished()
            if finished:
                return
            self._sleep()

    def _gripper(self, opening: float, cancel: Callable[[], bool]) -> GripperSensing:
        self.backend.command_gripper(opening)
        t_cmd = self.backend.now()
        self.log(f"{self.phase}: gripper to {opening * 1000:.1f} mm at t={t_cmd:.3f}")
        last: list[tuple[float, float]] = []  # (time, opening)

        def settled() -> bool:
            g = self.backend.gripper()
            now = self.backend.now()
            if g is None or g.opening is None:
                return now - t_cmd > 0.5 * self.tol.gripper_s  # no finger sensing: give it time
            last.append((now, g.opening))
            if opening > 0:
                return abs(g.opening - opening) < 0.003
            if g.opening < 0.001:
                return True  # shut on nothing
            # The command may still be on its way (the sim runs faster than real time): fingers that
            # have not started to close are not "stopped on labware". Wait until they have moved.
            if last[0][1] - g.opening < 0.002:
                return False
            # Closing on labware: settled when the fingers have stopped. Force-limited fingers squeezing
            # labware chatter a little, so compare the mean opening of the last two 0.1 s windows.
            if now - t_cmd < 0.3 or last[0][0] > now - 0.2:
                return False
            a = [o for t, o in last if t >= now - 0.1]
            b = [o for t, o in last if now - 0.2 <= t < now - 0.1]
            return bool(a and b) and abs(sum(a) / len(a) - sum(b) / len(b)) < 3e-4

        try:
            self._wait(settled, self.tol.gripper_s + self.tol.delivery_s, cancel, "the gripper")
        except _Abort as exc:
            # Closing that never settles is judged by the grasp check that follows; opening must finish.
            if exc.code != "TIMEOUT" or opening > 0:
                raise
        g = self.backend.gripper()
        if g is None:
            raise _Abort("BACKEND_FAILURE", "no gripper state from the backend")
        return g

    # --- goals ------------------------------------------------------------------------------------
    def move(self, kind: str, cancel: Callable[[], bool], feedback: Callable[[str, float, np.ndarray], None],
             named: str = "", joints: list[float] | None = None, joint_names: list[str] | None = None,
             pose: np.ndarray | None = None, velocity_scale: float = 0.0, acceleration_scale: float = 0.0
             ) -> Outcome:
        """A MoveArm goal: kind is 'named', 'joints' or 'pose'."""
        try:
            limits = self.model.limits.scaled(velocity_scale, acceleration_scale)
            self.await_backend(cancel)
            q0 = self.current()
            held_item = self.inventory.held()
            g = self.backend.gripper()
            held = None
            opening = 0.0
            if held_item is not None and g is not None and g.holding:
                shape = LabwareShape.of(self.workcell.labware_types[held_item.type])
                held, opening = held_box(f"held:{held_item.id}", shape), shape.width
            elif g is not None and g.opening is not None:
                opening = g.opening
            self.planner.set_labware_obstacles(self.labware_obstacles())
            self.phase = "plan"
            if kind == "named":
                q1 = self.planner.named(named)
            elif kind == "joints":
                q1 = self.planner.joint_goal(joints or [], joint_names or [])
            elif kind == "pose":
                if pose is None:
                    raise _Abort("INVALID_GOAL", "a pose goal needs a pose")
                q1 = self.planner.pose_goal(pose, q0, held, opening)
            else:
                raise _Abort("INVALID_GOAL", f"unknown target type {kind!r}")
            traj = self.planner.plan_joints(q0, q1, limits, held, opening, what=f"move to {named or kind}")
            self.phase = "move"
            self._run(traj, cancel, lambda p: feedback("move", p, self.current()))
            return Outcome("NONE", f"reached {named or kind} in {traj.duration:.2f} s",
                           list(map(float, self.current())))
        except MotionError as exc:
            return Outcome(exc.code, str(exc), self._final())
        except _Abort as exc:
            return Outcome(exc.code, str(exc), self._final())

    def _final(self) -> list[float]:
        st = self.backend.joint_state()
        return [float(v) for v in st[0]] if st is not None else []

    def transfer(self, source: str, destination: str, item_id: str, cancel: Callable[[], bool],
                 feedback: Callable[[str, float], None], velocity_scale: float = 0.0) -> Outcome:
        """A Transfer goal: pick `item_id` (or whatever is there) at source and place it at destination."""
        held_now = False
        grip_opening: float | None = None
        item_name = item_id
        try:
            for lid, role in ((source, "source"), (destination, "destination")):
                if lid not in self.workcell.locations:
                    raise _Abort("UNKNOWN_LOCATION", f"unknown {role} location {lid!r}")
            try:
                item = self.inventory.check_transfer(source, destination, item_id)
            except InventoryError as exc:
                raise _Abort(exc.code, str(exc)) from None
            item_name = item.id
            shape = LabwareShape.of(self.workcell.labware_types[item.type])
            limits = self.model.limits.scaled(velocity_scale, velocity_scale)
            self.await_backend(cancel)
            q0 = self.current()
            self.phase = "plan"
            self.planner.set_labware_obstacles(self.labware_obstacles())
            src = self._localise(item.id, self.workcell.locations[source])
            dst = self.workcell.locations[destination]
            plan = self.planner.plan_transfer(q0, src, dst, shape, item.id, limits)
            total = plan.duration
            done_before = 0.0

            segments = list(plan.segments)
            k = 0
            while k < len(segments):
                seg = segments[k]
                k += 1
                self.phase = seg.phase
                if seg.phase == "place":
                    segments[k - 1:] = self._correct_place(plan, dst, shape, item.id, segments[k - 1:])
                    seg = segments[k - 1]
                if seg.phase == "approach":
                    self._gripper(plan.open_width, cancel)

                def fb(p: float, seg=seg, done_before=done_before) -> None:
                    feedback(seg.phase, (done_before + p * seg.trajectory.duration) / max(total, 1e-6))

                watch = self._drop_watch(item.id, grip_opening) if held_now else None
                self._run(seg.trajectory, cancel, fb, watch)
                done_before += seg.trajectory.duration
                if seg.phase == "grasp":
                    g = self._gripper(0.0, cancel)
                    g = self._confirm_hold(g, cancel)
                    if not g.holding or (g.held_id and g.held_id != item.id):
                        self._recover_missed_grasp(plan, cancel)
                        what = f"holding {g.held_id!r}" if g.holding else "nothing between the fingers"
                        raise _Abort("GRASP_FAILED", f"grasp of {item.id} at {source} failed: the gripper "
                                                     f"closed on {what}")
                    self.inventory.picked(item.id)
                    held_now = True
                    grip_opening = g.opening
                    width = "?" if g.opening is None else f"{1000 * g.opening:.1f} mm"
                    self.log(f"grasp: holding {g.held_id or item.id} with the fingers at {width} at "
                             f"t={self.backend.now():.3f}")
                elif seg.phase == "place":
                    self._gripper(plan.open_width, cancel)
                    held_now = False
                    self.inventory.placed(item.id, destination)
            return self._verify_placement(item.id, dst, shape)
        except MotionError as exc:
            return Outcome(exc.code if exc.code != "NO_IK_SOLUTION" else "UNREACHABLE", str(exc), self._final(),
                           item=item_name)
        except _Abort as exc:
            if held_now and exc.code in ("ESTOP", "CANCELED", "TRACKING_ERROR", "TIMEOUT"):
                pass  # still in the gripper: the inventory says so
            code = {"TIMEOUT": "BACKEND_FAILURE", "TRACKING_ERROR": "BACKEND_FAILURE"}.get(exc.code, exc.code)
            return Outcome(code, str(exc), self._final(), item=item_name)

    def _localise(self, item_id: str, loc):
        """The source location with the item's sensed pose, when a locator sees it close to it.

        Items drift (a belt carries them with some slip, fingers let them
        slide), so a pick aims at where the item is. Beyond the locate
        tolerance the item is not at this location: the plan keeps the nominal
        pose and the grasp check reports the failure.
        """
        if self.locate is None:
            return loc
        seen = self.locate(item_id)
        if seen is None:
            return loc
        p = loc.pose
        d_mm = 1000.0 * math.hypot(seen.x - p.x, seen.y - p.y)
        d_yaw = math.remainder(seen.yaw - p.yaw, math.pi)
        if d_mm > self.tol.locate_mm or abs(seen.z - p.z) > 0.005 or abs(math.degrees(d_yaw)) > self.tol.locate_deg:
            return loc
        return replace(loc, pose=type(p)(seen.x, seen.y, p.z, p.yaw + d_yaw))

    def _drop_watch(self, item_id: str, grip_opening: float | None) -> Callable[[], None]:
        """A check run while carrying: raises DROPPED once the item has left the fingers.

        Contact sensing alone is not trusted: fingers squeezing a plate through
        a fast carry lose contact for a tenth of a second or so while the
        plate stays between them. An item has left only when contact is gone
        for `drop_s` and the fingers, where their opening is measured, have
        moved off the width they stalled at on the item (closed past it: it slid
        out; opened: it was let go). A stall-sensing gripper on hardware reports
        the same.
        """
        since: list[float | None] = [None]  # when the fingers last stopped sensing the item
        stall = self.tol.stall_mm / 1000.0

        def still_held(g: GripperSensing) -> bool:
            if g.holding:
                return True
            return grip_opening is not None and g.opening is not None and abs(g.opening - grip_opening) <= stall

        def watch() -> None:
            g = self.backend.gripper()
            now = self.backend.now()
            if g is None or still_held(g):
                since[0] = None
                return
            since[0] = now if since[0] is None else since[0]
            if now - since[0] >= self.tol.drop_s:
                self.backend.stop()
                self.inventory.lost(item_id)
                opening = "" if g.opening is None else f" (fingers at {1000 * g.opening:.1f} mm)"
                raise _Abort("DROPPED", f"{item_id} was lost from the gripper during {self.phase}{opening}")

        return watch

    def _correct_place(self, plan, dst, shape: LabwareShape, item_id: str, rest: list) -> list:
        """The place and retreat, shifted by the item's offset in the fingers when the locator sees one."""
        if self.locate is None:
            return rest
        seen = self.locate(item_id)
        if seen is None:
            self.log(f"place: no fresh pose of {item_id} in the fingers; releasing at the nominal place")
            return rest
        tcp = self.model.chain.fk(self.current())
        dx, dy = tcp[0, 3] - seen.x, tcp[1, 3] - seen.y
        off_mm = 1000.0 * math.hypot(dx, dy)
        if off_mm < 0.3:
            return rest
        if off_mm > self.tol.locate_mm:
            self.log(f"place: {item_id} seen {off_mm:.1f} mm from the fingers (more than "
                     f"{self.tol.locate_mm:.0f} mm: not trusted); releasing at the nominal place")
            return rest
        try:
            fixed = self.planner.corrected_place(plan, self.current(), dst, shape, dx, dy)
        except MotionError as exc:
            self.log(f"place: keeping the nominal place ({exc})")
            return rest
        self.log(f"place: {item_id} sits {off_mm:.1f} mm off-centre in the fingers; release shifted to match")
        return fixed

    def _confirm_hold(self, g: GripperSensing, cancel: Callable[[], bool]) -> GripperSensing:
        """Contact sensing flickers while fingers settle on labware: look for it for a moment."""
        if g.holding:
            return g
        t0 = self.backend.now()
        while self.backend.now() - t0 < self.tol.drop_s:
            self._check_interrupts(cancel)
            self._sleep()
            g2 = self.backend.gripper()
            if g2 is not None and g2.holding:
                return g2
        return g

    def _recover_missed_grasp(self, plan, cancel: Callable[[], bool]) -> None:
        """Open again and rise back out of the location, so the cell is left clear for a retry."""
        try:
            self._gripper(plan.open_width, cancel)
            lift = next(s for s in plan.segments if s.phase == "lift")
            self._run(lift.trajectory, cancel)
        except _Abort:
            pass  # report the grasp failure, not the recovery's own trouble

    def _verify_placement(self, item_id: str, dst, shape: LabwareShape) -> Outcome:
        final = self._final()
        if self.locate is None:
            return Outcome("NONE", f"placed {item_id} at {dst.id} (placement not sensed: this backend has no "
                                   f"placement sensor)", final, item=item_id)
        sensed = None
        deadline = time.monotonic() + 2.0
        while sensed is None and time.monotonic() < deadline:
            sensed = self.locate(item_id)
            if sensed is None:
                self._sleep()
        if sensed is None:
            self.inventory.lost(item_id)
            return Outcome("PLACE_FAILED", f"{item_id} is not seen anywhere after placing it at {dst.id}", final,
                           item=item_id)
        err_mm = 1000.0 * math.dist((sensed.x, sensed.y, sensed.z), (dst.pose.x, dst.pose.y, dst.pose.z))
        # Labware is symmetric under a half turn: compare yaw modulo pi.
        err_deg = abs(math.degrees(math.remainder(sensed.yaw - dst.pose.yaw, math.pi)))
        if err_mm > self.tol.place_mm or err_deg > self.tol.place_deg:
            if sensed.location and sensed.location != dst.id:
                self.inventory.lost(item_id)
            return Outcome("PLACE_FAILED", f"{item_id} is {err_mm:.1f} mm and {err_deg:.1f} deg from {dst.id} "
                                           f"after release (tolerance {self.tol.place_mm} mm, "
                                           f"{self.tol.place_deg} deg)", final, sensed, item_id)
        return Outcome("NONE", f"placed {item_id} at {dst.id}: {err_mm:.1f} mm, {err_deg:.2f} deg from the "
                               f"location", final, sensed, item_id)


# --- an in-process physics engine as a backend ----------------------------------------------


@dataclass(frozen=True)
class _Point:
    time_from_start: float
    positions: list[float]
    velocities: list[float]
    accelerations: list[float]


class EngineArmBackend(ArmBackend):
    """Drives an in-process physics engine object (autolab.sim.engine.CellSim's interface).

    For benchmarks and physics-in-the-loop tests without ROS: the same
    frontend, the same plans, the same sensing, stepped synchronously. The
    engine is duck-typed, so this layer does not import the sim layer above it.
    """

    name = "engine"

    def __init__(self, engine, arm_joints: tuple[str, ...]) -> None:
        self.engine = engine
        self._arm = tuple(arm_joints)
        self._end: float | None = None

    def step(self, seconds: float = 0.01) -> None:
        self.engine.advance(seconds)

    def execute(self, trajectory: Trajectory) -> None:
        pts = [_Point(float(t), q.tolist(), v.tolist(), a.tolist()) for t, q, v, a in
               zip(trajectory.times, trajectory.positions, trajectory.velocities, trajectory.accelerations,
                   strict=True)]
        self.engine.follow_trajectory(list(trajectory.joint_names), pts)
        self._end = self.engine.time + trajectory.duration

    def stop(self) -> None:
        self.engine.hold()
        self._end = None

    def motion_finished(self) -> tuple[bool, str]:
        return self._end is None or self.engine.time >= self._end, ""

    def command_gripper(self, opening: float) -> None:
        self.engine.set_gripper(opening)

    def joint_state(self) -> tuple[np.ndarray, np.ndarray]:
        js = self.engine.joint_state()
        idx = [js.names.index(n) for n in self._arm]
        return np.array([js.positions[i] for i in idx]), np.array([js.velocities[i] for i in idx])

    def gripper(self) -> GripperSensing:
        g = self.engine.gripper_status()
        return GripperSensing(g.closed, g.holding, g.held_labware, g.opening_m)

    def now(self) -> float:
        return self.engine.time

    def locate(self, item_id: str) -> SensedPose | None:
        for st in self.engine.labware_status([item_id]):
            w, x, y, z = st.quat_wxyz
            yaw = math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
            return SensedPose(*st.position, yaw, st.location)
        return None


__all__ = ["IN_GRIPPER", "ArmBackend", "ArmController", "EngineArmBackend", "GripperSensing", "Outcome", "SensedPose",
           "Tolerances"]
