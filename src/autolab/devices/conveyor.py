"""The conveyor frontend: turn station / index / distance goals into belt moves, and run them.

The belt carries every carrier on it, so a goal is a belt displacement:
moving the plate at `conveyor.in` to `conveyor.out` is a move of the distance
between the two stations. Before anything moves, the displacement is checked
against the presence sensors: a carrier that would be pushed off either end of
the belt makes the goal BLOCKED. Backends (the simulation's belt, a serial
conveyor controller) take an absolute odometry target and a speed; the
frontend waits for the belt to stop there, reporting feedback, and stops it
on cancel or e-stop.
"""

from __future__ import annotations

import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from autolab.devices.errors import ConveyorBlocked, DeviceError, InvalidGoal, InvalidParameters, UnknownStation


@dataclass(frozen=True)
class BeltState:
    position: float  # belt odometry, m
    moving: bool
    presence: Mapping[str, bool]  # station id -> a carrier sensed there
    stamp: float  # backend clock, s


class ConveyorBackend(ABC):
    name = "abstract"

    @abstractmethod
    def move_to(self, target: float, speed: float) -> None:
        """Run the belt until its odometry reads `target` (the backend stops there itself)."""

    @abstractmethod
    def stop(self) -> None:
        """Stop the belt now."""

    @abstractmethod
    def state(self) -> BeltState | None: ...

    @abstractmethod
    def now(self) -> float: ...

    def unconnected(self) -> str:
        """What the backend's commands cannot reach yet ('' when they can): a command sent before the
        receiver has matched its publisher is lost, so moves wait for this (bounded)."""
        return ""


@dataclass(frozen=True)
class BeltMove:
    distance: float
    speed: float
    station: str  # the station the moved carrier ends at ('' for index/distance moves off-station)
    carrier_from: str  # the station the carrier started at ('' when not a station move)


class ConveyorPlanner:
    """Stations as belt coordinates (m along the belt axis), in belt order."""

    def __init__(self, stations: Mapping[str, float], max_speed: float, default_speed: float | None = None,
                 tolerance: float = 0.005) -> None:
        if len(stations) < 1:
            raise InvalidGoal("a conveyor needs at least one station")
        self.stations = dict(sorted(stations.items(), key=lambda kv: kv[1]))
        self.max_speed = max_speed
        self.default_speed = default_speed or 0.8 * max_speed
        self.tolerance = tolerance
        coords = list(self.stations.values())
        self.lo, self.hi = coords[0], coords[-1]
        self.pitch = (self.hi - self.lo) / (len(coords) - 1) if len(coords) > 1 else 0.0

    def speed(self, requested: float) -> float:
        if requested == 0.0:
            return self.default_speed
        if not math.isfinite(requested) or requested < 0 or requested > self.max_speed:
            raise InvalidGoal(f"speed {requested} m/s is outside (0, {self.max_speed}] m/s")
        return requested

    def nearest_station(self, coord: float) -> str:
        return min(self.stations, key=lambda s: abs(self.stations[s] - coord))

    def to_station(self, station: str, presence: Mapping[str, bool], speed: float = 0.0) -> BeltMove:
        """Bring the carrier nearest upstream (or, failing that, downstream) of `station` to it."""
        if station not in self.stations:
            raise UnknownStation(f"unknown station {station!r}; stations: {', '.join(self.stations)}")
        if presence.get(station):
            return BeltMove(0.0, self.speed(speed), station, station)
        target = self.stations[station]
        occupied = [s for s, here in presence.items() if here and s in self.stations]
        if not occupied:
            raise InvalidGoal(f"no carrier to bring to {station}: every presence sensor is clear")
        upstream = [s for s in occupied if self.stations[s] < target]
        carrier = (max(upstream, key=lambda s: self.stations[s]) if upstream
                   else min(occupied, key=lambda s: self.stations[s]))
        move = BeltMove(target - self.stations[carrier], self.speed(speed), station, carrier)
        self._check_clear(move.distance, presence, exclude=carrier)
        return move

    def index(self, steps: int, presence: Mapping[str, bool], speed: float = 0.0) -> BeltMove:
        if self.pitch == 0.0:
            raise InvalidGoal("indexing needs at least two stations")
        if steps == 0:
            raise InvalidGoal("index_steps must not be 0")
        d = steps * self.pitch
        self._check_clear(d, presence)
        return BeltMove(d, self.speed(speed), "", "")

    def distance(self, d: float, presence: Mapping[str, bool], speed: float = 0.0) -> BeltMove:
        if not math.isfinite(d) or d == 0.0:
            raise InvalidGoal(f"distance_m must be a non-zero finite number, got {d}")
        self._check_clear(d, presence)
        return BeltMove(d, self.speed(speed), "", "")

    def _check_clear(self, d: float, presence: Mapping[str, bool], exclude: str = "") -> None:
        """Refuse a move that would carry a sensed carrier past either end station (off the belt)."""
        for s, here in presence.items():
            if not here or s not in self.stations:
                continue
            end = self.stations[s] + d
            if end > self.hi + self.tolerance or end < self.lo - self.tolerance:
                who = "the carrier" if s == exclude else "another carrier"
                raise ConveyorBlocked(f"moving the belt {d:+.3f} m would carry {who} at {s} past the end of the "
                                      f"belt ({self.nearest_station(end)} is the last station that way)")


class ConveyorController:
    """Runs one belt move at a time in the caller's thread; e-stop arrives from another thread."""

    def __init__(self, backend: ConveyorBackend, planner: ConveyorPlanner, poll_s: float = 0.005,
                 wall_factor: float = 4.0, sleep: Callable[[], None] | None = None, stall_s: float = 1.0,
                 connect_s: float = 20.0) -> None:
        """`sleep` is one polling pause; an in-process engine backend passes a physics step instead."""
        self.backend = backend
        self.planner = planner
        self.poll_s = poll_s
        self.connect_s = connect_s  # wall seconds a move waits for its command channel to connect
        self.wall_factor = wall_factor
        self.stall_s = stall_s  # no belt progress for this long (backend seconds): it has stalled
        self._sleep = sleep or (lambda: time.sleep(poll_s))
        self._estop = threading.Event()
        self._reason = ""

    def emergency_stop(self, reason: str) -> None:
        self._reason = reason
        self._estop.set()
        self.backend.stop()

    def clear_estop(self) -> None:
        self._estop.clear()

    def run(self, move: BeltMove, cancel: Callable[[], bool],
            feedback: Callable[[float, float, str], None]) -> tuple[str, str, float]:
        """Execute a planned move: returns (error code name, message, final belt position)."""
        st = self.backend.state()
        if st is None:
            return "BACKEND_FAILURE", f"no state from the {self.backend.name} conveyor backend", 0.0
        start = st.position
        target = start + move.distance
        if abs(move.distance) < 1e-9:
            return "NONE", f"already at {move.station}", start
        connect_end = time.monotonic() + self.connect_s
        while self.backend.unconnected():
            if self._estop.is_set():
                return "ESTOP", f"stopped: {self._reason}", start
            if cancel():
                return "CANCELED", "canceled", start
            if time.monotonic() > connect_end:
                return "BACKEND_FAILURE", f"{self.backend.unconnected()} after {self.connect_s:.0f} s", start
            time.sleep(self.poll_s)
        try:
            self.backend.move_to(target, move.speed)
        except InvalidParameters as exc:  # e.g. beyond a serial controller's travel
            return "INVALID_GOAL", f"the conveyor controller refused the move: {exc}", start
        except DeviceError as exc:
            return "BACKEND_FAILURE", f"the conveyor controller failed: {exc}", start
        t_cmd = self.backend.now()
        last_pos, last_progress = start, t_cmd
        budget = abs(move.distance) / move.speed * 2.0 + 5.0  # belts ramp and slow down to stop
        wall_end = time.monotonic() + budget * self.wall_factor + 10.0
        while True:
            if self._estop.is_set():
                return "ESTOP", f"stopped: {self._reason}", self._position(start)
            if cancel():
                self.backend.stop()
                return "CANCELED", "canceled", self._position(start)
            st = self.backend.state()
            if st is not None and st.stamp > t_cmd:
                done = abs(st.position - start) / abs(move.distance)
                near = self.planner.nearest_station(
                    self.planner.stations.get(move.carrier_from, 0.0) + (st.position - start)) \
                    if move.carrier_from else ""
                feedback(st.position, min(1.0, done), near)
                if abs(st.position - last_pos) > 2e-4:
                    last_pos, last_progress = st.position, st.stamp
                stalled = st.stamp - last_progress > self.stall_s
                arrived = abs(st.position - target) <= self.planner.tolerance
                if arrived and (not st.moving or stalled):
                    if st.moving:
                        self.backend.stop()  # crept to a stop within tolerance: end the move explicitly
                    return "NONE", f"moved {move.distance:+.3f} m" + (f" to {move.station}" if move.station else ""), \
                        st.position
                if (not st.moving and self.backend.now() - t_cmd > 0.5) or stalled:
                    self.backend.stop()
                    return "BLOCKED", (f"the belt stopped at {st.position:.3f} m, {target - st.position:+.3f} m "
                                       f"short of its target"), st.position
            if self.backend.now() - t_cmd > budget:
                self.backend.stop()
                return "TIMEOUT", f"the belt did not reach {target:.3f} m within {budget:.1f} s", \
                    self._position(start)
            if time.monotonic() > wall_end:
                self.backend.stop()
                return "TIMEOUT", "the conveyor backend's clock is not advancing", self._position(start)
            self._sleep()

    def _position(self, default: float) -> float:
        st = self.backend.state()
        return st.position if st is not None else default


class EngineConveyorBackend(ConveyorBackend):
    """Drives an in-process physics engine object (autolab.sim.engine.CellSim's interface), for
    benchmarks and physics-in-the-loop tests without ROS; duck-typed, so no import of the sim layer."""

    name = "engine"

    def __init__(self, engine) -> None:
        self.engine = engine

    def step(self, seconds: float = 0.01) -> None:
        self.engine.advance(seconds)

    def move_to(self, target: float, speed: float) -> None:
        self.engine.conveyor_command(target, speed)

    def stop(self) -> None:
        self.engine.conveyor_command(self.engine.belt_position(), 0.0)

    def state(self) -> BeltState:
        st = self.engine.conveyor_status()
        return BeltState(st.position_m, st.moving, dict(zip(st.stations, st.presence, strict=True)), self.engine.time)

    def now(self) -> float:
        return self.engine.time


class SerialConveyorBackend(ConveyorBackend):
    """A serial conveyor controller (a driver with move_to / stop / status, e.g. the ALP-CV1).

    A poller thread reads the controller's status at `poll_hz`, so the
    frontend's fast polling never floods the serial line; commands and polls
    share one lock because a serial link carries one exchange at a time.
    Presence sensors are in the controller's order, which is the belt order
    of the stations.
    """

    name = "serial"

    def __init__(self, driver, stations: list[str], poll_hz: float = 20.0) -> None:
        self.driver = driver
        self.stations = list(stations)
        self.error = ""
        self._lock = threading.Lock()
        self._state: BeltState | None = None
        self._period = 1.0 / poll_hz
        self._stop = threading.Event()
        self._poll()
        self._thread = threading.Thread(target=self._run, name="conveyor-serial-poll", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        try:
            with self._lock:
                s = self.driver.status()
        except DeviceError as exc:
            self.error = str(exc)
            return
        self.error = s.fault
        presence = dict(zip(self.stations, s.presence, strict=False))
        self._state = BeltState(s.position_m, bool(s.moving), presence, time.monotonic())

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            self._poll()

    def move_to(self, target: float, speed: float) -> None:
        with self._lock:
            self.driver.move_to(target, speed)
        self._state = None if self._state is None else replace(self._state, moving=True)

    def stop(self) -> None:
        try:
            with self._lock:
                self.driver.stop()
        except DeviceError as exc:  # stopping must not raise into a safety callback
            self.error = str(exc)

    def state(self) -> BeltState | None:
        return self._state

    def now(self) -> float:
        return time.monotonic()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)
        self.driver.close()
