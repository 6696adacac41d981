"""The simulated cell in motion: steps MuJoCo and plays the arm, gripper and conveyor commands.

`CellSim` is plain Python (no rclpy), so physics behaviour is tested directly;
the `sim` node is a thin adapter that feeds it ROS messages and publishes what
it reports. Every public method takes the one lock, so ROS callbacks on other
threads can command it while a stepping thread advances it.

Control runs at the physics rate, inside `step`: a stop (safety, empty
trajectory, conveyor target reached) takes effect on the very next physics step,
independent of how fast ROS callbacks are served.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import mujoco
import numpy as np

from autolab.model.geometry import Pose, quat_wxyz_to_yaw, tilt_of_quat_wxyz, wrap_angle, yaw_to_quat_wxyz
from autolab.model.workcell import Workcell
from autolab.sim.errors import MotionRefused, SpawnError, TrajectoryError
from autolab.sim.trajectory import TrajectoryPlayer, TrajectoryPoint
from autolab.sim.world import ARM, CELL, LABWARE, LabwareBody, SimOptions, World, build_world

#: A labware body counts as "at" a location within these tolerances.
AT_LOCATION_XY_M = 0.005
AT_LOCATION_Z_M = 0.0015
AT_LOCATION_ANGLE_RAD = math.radians(3.0)
CONVEYOR_DECEL_M_S2 = 0.5
CONVEYOR_STOP_TOLERANCE_M = 0.0005
PRESENCE_HALF_LENGTH_M = 0.03  # a station's photo-eye sees labware whose centre is this close along the belt


@dataclass(frozen=True)
class JointStateSample:
    names: tuple[str, ...]
    positions: tuple[float, ...]
    velocities: tuple[float, ...]
    efforts: tuple[float, ...]


@dataclass(frozen=True)
class GripperStatus:
    opening_m: float
    commanded_opening_m: float
    closed: bool  # fully shut, or pressing on something (commanded narrower than it is)
    holding: bool  # both fingers touch the same labware body
    held_labware: str  # inventory id of the held labware, empty when none
    tcp_position: tuple[float, float, float]
    tcp_quat_wxyz: tuple[float, float, float, float]


@dataclass(frozen=True)
class LabwareStatus:
    id: str
    type: str
    barcode: str
    aruco_id: int
    position: tuple[float, float, float]  # labware origin (centre of the footprint's bottom) in world
    quat_wxyz: tuple[float, float, float, float]
    location: str  # the location it is seated at, empty when in transit or misplaced


@dataclass(frozen=True)
class ConveyorStatus:
    position_m: float
    stations: tuple[str, ...]
    presence: tuple[bool, ...]
    moving: bool
    target_m: float | None


class _Labware:
    """Mutable bookkeeping for one free body."""

    def __init__(self, spec: LabwareBody, model: mujoco.MjModel) -> None:
        self.spec = spec
        self.body_id = model.body(spec.body).id
        self.geom_id = model.geom(spec.body).id
        self.qpos_adr = model.jnt_qposadr[model.joint(spec.body).id]
        self.dof_adr = model.jnt_dofadr[model.joint(spec.body).id]
        self.item_id = spec.item_id
        self.barcode = spec.barcode

    @property
    def active(self) -> bool:
        return bool(self.item_id)


class CellSim:
    """The whole simulated cell; all times are simulation seconds (`time`)."""

    def __init__(self, workcell: Workcell, options: SimOptions | None = None, world: World | None = None) -> None:
        self.workcell = workcell
        self.world = world or build_world(workcell, options)
        self.model = self.world.model
        self.data = mujoco.MjData(self.model)
        self.lock = threading.RLock()
        m = self.model
        arm = workcell.arm
        self.arm_joints = tuple(arm.arm_joints)
        self.finger_joints = tuple(arm.finger_joints)
        self.joint_names = self.arm_joints + self.finger_joints
        self._arm_qadr = np.array([m.jnt_qposadr[m.joint(j).id] for j in self.arm_joints])
        self._arm_dadr = np.array([m.jnt_dofadr[m.joint(j).id] for j in self.arm_joints])
        self._all_qadr = np.array([m.jnt_qposadr[m.joint(j).id] for j in self.joint_names])
        self._all_dadr = np.array([m.jnt_dofadr[m.joint(j).id] for j in self.joint_names])
        self._arm_act = np.array([m.actuator(j).id for j in self.arm_joints])
        # position servo: force = kp (ctrl - q) - kv qdot, biasprm = (0, -kp, -kv); feeding ctrl = q_ref + kv/kp v_ref
        # turns it into PD tracking of (q_ref, v_ref) without the lag of pure damping.
        self._ff_gain = np.array([m.actuator_biasprm[a, 2] / m.actuator_biasprm[a, 1] for a in self._arm_act])
        self._finger_act = [m.actuator(j).id for j in self.finger_joints if _has_actuator(m, j)]
        self._finger_geoms = [
            {g for g in range(m.ngeom) if m.geom_bodyid[g] == m.joint(j).bodyid} for j in self.finger_joints
        ]
        self._tcp_site = m.site("tcp").id
        self._rollers_qadr = np.array([m.jnt_qposadr[m.joint(r).id] for r in self.world.rollers], dtype=int)
        self._rollers_dadr = np.array([m.jnt_dofadr[m.joint(r).id] for r in self.world.rollers], dtype=int)
        self._rollers_act = np.array([m.actuator(r).id for r in self.world.rollers], dtype=int)
        conveyor = next((d for d in workcell.devices.values() if d.type == "conveyor"), None)
        self._roller_r = float(conveyor.params["roller_radius_m"]) if conveyor else 1.0
        self._max_belt_speed = float(conveyor.params.get("max_speed_m_s", 0.25)) if conveyor else 0.0
        self._conveyor = conveyor
        self._stations = workcell.stations(conveyor.id) if conveyor else []
        self._labware = [_Labware(spec, m) for spec in self.world.labware]
        self._initial_item = {lw.spec.body: (lw.item_id, lw.barcode) for lw in self._labware}
        self.motion_allowed = True
        self._reset_state()

    # --- lifecycle -------------------------------------------------------------------------------------

    def _reset_state(self) -> None:
        m, d = self.model, self.data
        keep_time = d.time
        mujoco.mj_resetData(m, d)
        d.time = keep_time  # the clock never runs backwards, even across a reset
        home = np.array(self.workcell.arm.named_poses["home"])
        d.qpos[self._arm_qadr] = home
        self._q_ref = home.copy()
        self._v_ref = np.zeros(len(self.arm_joints))
        self._traj: TrajectoryPlayer | None = None
        self._grip_cmd = self.workcell.arm.max_opening_m
        qf = self._grip_cmd / 2
        for j in self.finger_joints:
            d.qpos[m.jnt_qposadr[m.joint(j).id]] = qf
        self._belt_target: float | None = None
        self._belt_speed = 0.0
        self._belt_speed_limit = 0.0
        for lw in self._labware:
            lw.item_id, lw.barcode = self._initial_item[lw.spec.body]
            self._set_contacts(lw, lw.active)
        self._apply_controls()
        mujoco.mj_forward(m, d)

    def reset(self) -> None:
        """Back to the initial inventory, the arm at home with the gripper open, the belt stopped."""
        with self.lock:
            self._reset_state()

    @property
    def time(self) -> float:
        return float(self.data.time)

    @property
    def timestep(self) -> float:
        return float(self.model.opt.timestep)

    def step(self, n: int = 1) -> None:
        """Advance `n` physics steps, running the controllers before each."""
        with self.lock:
            if self._traj is None and self._belt_target is None:
                mujoco.mj_step(self.model, self.data, nstep=n)  # nothing to control: setpoints are constant
                return
            for _ in range(n):
                self._control()
                mujoco.mj_step(self.model, self.data)

    def advance(self, seconds: float) -> None:
        self.step(max(1, round(seconds / self.timestep)))

    # --- control --------------------------------------------------------------------------------------

    def _control(self) -> None:
        now = self.data.time
        if self._traj is not None:
            q, v = self._traj.sample(now)
            idx = self._traj_index
            self._q_ref[idx] = q
            self._v_ref[idx] = v
            if self._traj.finished(now):
                self._v_ref[idx] = 0.0
                self._traj = None
        if self._belt_target is not None:
            remaining = self._belt_target - self.belt_position()
            if abs(remaining) <= CONVEYOR_STOP_TOLERANCE_M:
                self._belt_target = None
                self._belt_speed = 0.0
            else:
                v = min(self._belt_speed_limit, math.sqrt(2 * CONVEYOR_DECEL_M_S2 * abs(remaining)))
                self._belt_speed = math.copysign(max(v, 0.005), remaining)
        self._apply_controls()

    def _apply_controls(self) -> None:
        d = self.data
        d.ctrl[self._arm_act] = self._q_ref + self._ff_gain * self._v_ref
        for a in self._finger_act:
            d.ctrl[a] = self._grip_cmd / 2
        if len(self._rollers_act):
            d.ctrl[self._rollers_act] = self._belt_speed / self._roller_r

    def follow_trajectory(
        self, joint_names: Sequence[str], points: Sequence[TrajectoryPoint], start_time: float | None = None
    ) -> None:
        """Replace the current trajectory. No points: stop now and hold (ros2_control's convention)."""
        with self.lock:
            if not points:
                self.hold()
                return
            if not self.motion_allowed:
                raise MotionRefused("the arm is frozen: safety does not allow motion")
            unknown = [j for j in joint_names if j not in self.arm_joints]
            if unknown:
                raise TrajectoryError(f"unknown arm joints {unknown}; the arm's joints are {list(self.arm_joints)}")
            idx = np.array([self.arm_joints.index(j) for j in joint_names])
            limits = self.workcell.arm.joint_limits
            for k, p in enumerate(points):
                for j, q in zip(joint_names, p.positions, strict=False):
                    lo, hi = limits[j]
                    if not lo - 1e-6 <= q <= hi + 1e-6:
                        raise TrajectoryError(f"point {k}: {j} = {q:.4f} is outside its limits [{lo}, {hi}]")
            start = self.data.time if start_time is None else float(start_time)
            self._traj = TrajectoryPlayer(joint_names, points, start, self._q_ref[idx], self._v_ref[idx])
            self._traj_index = idx

    def hold(self) -> None:
        """Stop the arm now and hold where it is."""
        with self.lock:
            self._traj = None
            self._q_ref = self.data.qpos[self._arm_qadr].copy()
            self._v_ref[:] = 0.0
            self._apply_controls()

    @property
    def trajectory_active(self) -> bool:
        return self._traj is not None

    def set_gripper(self, opening_m: float) -> None:
        """Command the finger opening in metres; 0 closes on whatever is there, force-limited."""
        with self.lock:
            if not math.isfinite(opening_m):
                raise ValueError(f"gripper opening {opening_m} is not a number")
            self._grip_cmd = min(max(opening_m, 0.0), self.workcell.arm.max_opening_m)
            self._apply_controls()

    def conveyor_command(self, target_m: float, speed_m_s: float) -> None:
        """Run the belt to `target_m` of odometry at `speed_m_s`; speed 0 stops now."""
        with self.lock:
            if self._conveyor is None:
                raise MotionRefused("this workcell has no conveyor")
            if not (math.isfinite(target_m) and math.isfinite(speed_m_s)):
                raise ValueError("conveyor target and speed must be finite numbers")
            if speed_m_s == 0:
                self._belt_target = None
                self._belt_speed = 0.0
                self._apply_controls()
                return
            if not self.motion_allowed:
                raise MotionRefused("the conveyor is stopped: safety does not allow motion")
            self._belt_speed_limit = min(abs(speed_m_s), self._max_belt_speed)
            self._belt_target = float(target_m)

    def set_motion_allowed(self, allowed: bool) -> None:
        """Safety: on False freeze the arm where it is and stop the belt from the next physics step."""
        with self.lock:
            if self.motion_allowed and not allowed:
                self.hold()
                self._belt_target = None
                self._belt_speed = 0.0
                self._apply_controls()
            self.motion_allowed = allowed

    # --- state -----------------------------------------------------------------------------------------

    def belt_position(self) -> float:
        if not len(self._rollers_qadr):
            return 0.0
        return float(np.mean(self.data.qpos[self._rollers_qadr])) * self._roller_r

    def joint_state(self) -> JointStateSample:
        with self.lock:
            d = self.data
            eff = d.qfrc_actuator[self._all_dadr] + d.qfrc_gravcomp[self._all_dadr]
            return JointStateSample(
                self.joint_names,
                tuple(d.qpos[self._all_qadr].tolist()),
                tuple(d.qvel[self._all_dadr].tolist()),
                tuple(eff.tolist()),
            )

    def tcp_pose(self) -> tuple[np.ndarray, np.ndarray]:
        d = self.data
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, d.site_xmat[self._tcp_site])
        return d.site_xpos[self._tcp_site].copy(), quat

    def gripper_status(self) -> GripperStatus:
        with self.lock:
            d, m = self.data, self.model
            opening = float(sum(d.qpos[m.jnt_qposadr[m.joint(j).id]] for j in self.finger_joints))
            touching: list[set[int]] = [set() for _ in self.finger_joints]
            by_geom = {lw.geom_id: lw for lw in self._labware if lw.active}
            for c in d.contact[: d.ncon]:
                for f, geoms in enumerate(self._finger_geoms):
                    if c.geom1 in geoms and c.geom2 in by_geom:
                        touching[f].add(c.geom2)
                    elif c.geom2 in geoms and c.geom1 in by_geom:
                        touching[f].add(c.geom1)
            common = set.intersection(*touching) if touching else set()
            held = by_geom[next(iter(common))].item_id if common else ""
            pos, quat = self.tcp_pose()
            return GripperStatus(
                opening_m=opening,
                commanded_opening_m=self._grip_cmd,
                closed=opening < 0.001 or self._grip_cmd < opening - 0.001,
                holding=bool(common),
                held_labware=held,
                tcp_position=tuple(pos.tolist()),
                tcp_quat_wxyz=tuple(quat.tolist()),
            )

    def labware_status(self, ids: Sequence[str] = ()) -> list[LabwareStatus]:
        with self.lock:
            out = []
            for lw in self._labware:
                if not lw.active or (ids and lw.item_id not in ids):
                    continue
                q = self.data.qpos[lw.qpos_adr : lw.qpos_adr + 7]
                pos, quat = tuple(q[:3].tolist()), tuple(q[3:].tolist())
                out.append(
                    LabwareStatus(
                        lw.item_id, lw.spec.type, lw.barcode, lw.spec.aruco_id, pos, quat, self._location_at(pos, quat)
                    )
                )
            return out

    def _location_at(self, pos, quat) -> str:
        if tilt_of_quat_wxyz(*quat) > AT_LOCATION_ANGLE_RAD:
            return ""
        yaw = quat_wxyz_to_yaw(*quat)
        for loc in self.workcell.locations.values():
            p = loc.pose
            if (
                math.hypot(pos[0] - p.x, pos[1] - p.y) <= AT_LOCATION_XY_M
                and abs(pos[2] - p.z) <= AT_LOCATION_Z_M
                and abs(wrap_angle(2 * (yaw - p.yaw))) / 2 <= AT_LOCATION_ANGLE_RAD
            ):  # SBS footprints: mod pi
                return loc.id
        return ""

    def conveyor_status(self) -> ConveyorStatus:
        with self.lock:
            if self._conveyor is None:
                return ConveyorStatus(0.0, (), (), False, None)
            inv = self._conveyor.pose.inverse()
            presence = []
            active = [lw for lw in self._labware if lw.active]
            for st in self._stations:
                local_st = inv.compose(st.pose)
                seen = False
                for lw in active:
                    x, y, z = self.data.xpos[lw.body_id]
                    local = inv.compose(Pose(float(x), float(y), float(z), 0.0))
                    if (
                        abs(local.x - local_st.x) <= PRESENCE_HALF_LENGTH_M
                        and abs(local.y - local_st.y) <= 0.05
                        and -0.01 <= local.z - local_st.z <= 0.03
                    ):
                        seen = True
                        break
                presence.append(seen)
            roller_speed = float(np.abs(self.data.qvel[self._rollers_dadr]).mean()) if len(self._rollers_dadr) else 0.0
            moving = self._belt_target is not None or roller_speed * self._roller_r > 0.002
            return ConveyorStatus(
                self.belt_position(),
                tuple(s.id for s in self._stations),
                tuple(presence),
                bool(moving),
                self._belt_target,
            )

    # --- spawning ----------------------------------------------------------------------------------------

    def spawn(self, item_id: str, type_id: str, location_id: str, barcode: str = "") -> LabwareStatus:
        """Put a parked spare body of `type_id` at a location, as item `item_id`."""
        with self.lock:
            wc = self.workcell
            if not item_id:
                raise SpawnError("the labware needs an id")
            if any(lw.item_id == item_id for lw in self._labware):
                raise SpawnError(f"labware {item_id!r} is already in the simulation")
            if type_id not in wc.labware_types:
                raise SpawnError(f"unknown labware type {type_id!r}; known: {', '.join(wc.labware_types)}")
            if location_id not in wc.locations:
                raise SpawnError(f"unknown location {location_id!r}")
            loc = wc.locations[location_id]
            if type_id not in loc.accepts:
                raise SpawnError(f"{location_id} does not accept {type_id} (it accepts {', '.join(loc.accepts)})")
            occupant = self._occupant(loc.pose)
            if occupant:
                raise SpawnError(f"{location_id} is occupied by {occupant}")
            spare = next((lw for lw in self._labware if not lw.active and lw.spec.type == type_id), None)
            if spare is None:
                raise SpawnError(
                    f"no spare {type_id} body left (the model has {self.world.options.spares_per_type} "
                    "per type; reset the simulation or raise spares_per_type)"
                )
            d = self.data
            d.qpos[spare.qpos_adr : spare.qpos_adr + 3] = (loc.pose.x, loc.pose.y, loc.pose.z + 0.0005)
            d.qpos[spare.qpos_adr + 3 : spare.qpos_adr + 7] = yaw_to_quat_wxyz(loc.pose.yaw)
            d.qvel[spare.dof_adr : spare.dof_adr + 6] = 0.0
            spare.item_id, spare.barcode = item_id, barcode
            self._set_contacts(spare, True)
            mujoco.mj_forward(self.model, d)
            return self.labware_status([item_id])[0]

    def _occupant(self, pose: Pose) -> str:
        for lw in self._labware:
            if not lw.active:
                continue
            x, y, z = self.data.xpos[lw.body_id]
            if math.hypot(x - pose.x, y - pose.y) < 0.09 and -0.02 < z - pose.z < 0.1:
                return lw.item_id
        return ""

    def _set_contacts(self, lw: _Labware, enabled: bool) -> None:
        """A parked spare floats without contacts (out of the world); an active one is a normal free body."""
        m = self.model
        contype, conaffinity = (LABWARE, CELL | ARM | LABWARE) if enabled else (0, 0)
        m.geom_contype[lw.geom_id] = contype
        m.geom_conaffinity[lw.geom_id] = conaffinity
        if hasattr(m, "body_contype"):  # MuJoCo filters bodies by the union of their geoms' bits too
            m.body_contype[lw.body_id] = contype
            m.body_conaffinity[lw.body_id] = conaffinity
        m.body_gravcomp[lw.body_id] = 0.0 if enabled else 1.0


def _has_actuator(model: mujoco.MjModel, name: str) -> bool:
    try:
        model.actuator(name)
    except KeyError:
        return False
    return True


def grasp_orientation(yaw: float) -> np.ndarray:
    """Tool quaternion (w, x, y, z) pointing down, fingers closing across labware seated with this yaw."""
    c, s = math.cos(yaw), math.sin(yaw)
    rot = np.array([[-c, -s, 0.0], [-s, c, 0.0], [0.0, 0.0, -1.0]])  # columns: tool x, y, z in world
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, rot.flatten())
    return quat


def solve_tcp_ik(
    sim: CellSim,
    position: Sequence[float],
    quat_wxyz: Sequence[float],
    seed: Sequence[float] | None = None,
    iterations: int = 200,
    tol: float = 1e-5,
) -> np.ndarray:
    """Arm joint angles putting the TCP at a pose, by damped least squares on the sim's own model.

    Ground truth for tests and benchmarks of the simulation itself; the motion
    stack has its own kinematics and is checked against this world, not this IK.
    Raises ValueError when the pose is not reached.
    """
    start = np.array(sim.joint_state().positions[: len(sim.arm_joints)]) if seed is None else np.asarray(seed, float)
    seeds = [start] + [start + np.eye(len(start))[0] * shift for shift in (0.5, -0.5, 1.0, -1.0, 2.0, -2.0, 3.0)]
    best = math.inf
    for s0 in seeds:
        q, residual = _dls_ik(sim, position, quat_wxyz, s0, iterations, tol)
        if residual < tol:
            return q
        best = min(best, residual)
    raise ValueError(f"no IK solution for TCP at {np.round(position, 4).tolist()} (residual {best:.2e})")


def _dls_ik(
    sim: CellSim, position, quat_wxyz, seed: np.ndarray, iterations: int, tol: float
) -> tuple[np.ndarray, float]:
    m = sim.model
    d = mujoco.MjData(m)
    lo, hi = sim.model.jnt_range[[sim.model.joint(j).id for j in sim.arm_joints]].T
    d.qpos[sim._arm_qadr] = np.clip(seed, lo, hi)
    target_p = np.asarray(position, dtype=float)
    target_q = np.asarray(quat_wxyz, dtype=float)
    jacp, jacr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
    cur_q, err_r = np.zeros(4), np.zeros(3)
    for _ in range(iterations):
        mujoco.mj_kinematics(m, d)
        mujoco.mj_comPos(m, d)
        err_p = target_p - d.site_xpos[sim._tcp_site]
        mujoco.mju_mat2Quat(cur_q, d.site_xmat[sim._tcp_site])
        mujoco.mju_subQuat(err_r, target_q, cur_q)
        err = np.concatenate([err_p, d.site_xmat[sim._tcp_site].reshape(3, 3) @ err_r])  # local -> world
        if np.linalg.norm(err) < tol:
            return d.qpos[sim._arm_qadr].copy(), float(np.linalg.norm(err))
        mujoco.mj_jacSite(m, d, jacp, jacr, sim._tcp_site)
        jac = np.vstack([jacp, jacr])[:, sim._arm_dadr]
        dq = jac.T @ np.linalg.solve(jac @ jac.T + 1e-4 * np.eye(6), err)
        d.qpos[sim._arm_qadr] = np.clip(d.qpos[sim._arm_qadr] + np.clip(dq, -0.2, 0.2), lo, hi)
    return d.qpos[sim._arm_qadr].copy(), float(np.linalg.norm(err))
