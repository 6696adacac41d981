"""Simulated instruments with real behaviour: durations, first-order thermal dynamics, liquids, readings.

Each class is an `InstrumentBackend`, so the instrument node runs it directly
(backend `sim`), and the serial emulators serve the very same objects over
their line protocol (backend `serial` in tests): both paths share one physics.

Time comes from an injected clock (seconds, monotonic or ROS time), scaled by
`time_scale` so that an hour-long incubation can be simulated in seconds. State
is advanced lazily whenever it is observed (status, progress, result, abort), so
no thread is needed: effects due part-way through a job, such as a pipetting
column, happen at the first observation after their time, in order.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from autolab.devices.errors import DeviceError, DeviceFault, InvalidParameters, LiquidHandlingError, NotReady
from autolab.devices.instruments import InstrumentBackend, InstrumentStatus, OperationResult, Progress
from autolab.model.errors import LabwareError, UnknownReagent, VolumeError, WellNameError
from autolab.model.labware import (
    DEFAULT_PLATE,
    VOLUME_EPS_UL,
    Liquid,
    Plate,
    PlateGeometry,
    Reagent,
    broadcast,
    well_list,
)
from autolab.model.labware import dispense as model_dispense
from autolab.model.labware import transfer as model_transfer
from autolab.sim.liquids import LiquidWorld, ReaderOptics, absorbance

Clock = Callable[[], float]

DOOR_TIME_S = 2.0


class LiquidAccess(Protocol):
    """The liquid world as seen by an instrument: in-process (`LiquidWorld`) or over ROS services."""

    def dispense(
        self,
        dest: str,
        wells: Sequence[str],
        reagent_name: str,
        composition_um: Mapping[str, float] | None,
        volumes_ul: Sequence[float],
    ) -> None: ...

    def transfer(
        self,
        source: str,
        source_wells: Sequence[str],
        dest: str,
        dest_wells: Sequence[str],
        volumes_ul: Sequence[float],
    ) -> None: ...

    def contents(self, labware_id: str) -> tuple[PlateGeometry, dict[str, Liquid]]: ...


class LocalLiquids:
    """`LiquidAccess` on an in-process `LiquidWorld` (emulators, tests, single-process sims)."""

    def __init__(self, world: LiquidWorld | None = None) -> None:
        self.world = world or LiquidWorld()

    def dispense(self, dest, wells, reagent_name, composition_um, volumes_ul) -> None:
        self.world.dispense(dest, wells, self.world.reagent(reagent_name, composition_um), volumes_ul)

    def transfer(self, source, source_wells, dest, dest_wells, volumes_ul) -> None:
        self.world.transfer(source, source_wells, dest, dest_wells, volumes_ul)

    def contents(self, labware_id):
        return self.world.geometry(labware_id), self.world.contents(labware_id)


@dataclass
class FirstOrderThermal:
    """dT/dt = (setpoint - T) / tau: a heated block or chamber with a thermostat."""

    temperature_c: float = 22.0
    setpoint_c: float = 22.0
    tau_s: float = 120.0

    def advance(self, dt: float) -> None:
        if dt > 0:
            self.temperature_c = self.setpoint_c + (self.temperature_c - self.setpoint_c) * math.exp(-dt / self.tau_s)

    def time_to_within(self, band_c: float) -> float:
        """Seconds until |T - setpoint| <= band (0 when already there)."""
        error = abs(self.temperature_c - self.setpoint_c)
        return 0.0 if error <= band_c else self.tau_s * math.log(error / band_c)


@dataclass
class _Job:
    operation: str
    params: dict[str, Any]
    labware_id: str
    started: float  # simulated seconds
    duration: float
    phases: tuple[tuple[float, str], ...]  # (fraction at which the phase starts, name)


class SimInstrument(InstrumentBackend):
    """Door, nest, one job at a time, durations. Subclasses add their physics."""

    device_type = ""
    model = "autolab-sim"

    def __init__(
        self,
        device_id: str = "",
        clock: Clock = time.monotonic,
        time_scale: float = 1.0,
        liquids: LiquidAccess | None = None,
        seed: int = 0,
        ambient_c: float = 22.0,
    ) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale}")
        self.device_id = device_id or self.device_type
        self._clock = clock
        self._t0_wall = clock()
        self.time_scale = time_scale
        self.liquids = liquids
        self.rng = np.random.default_rng(seed)
        self.ambient_c = ambient_c
        self.door_open = False
        self.occupant = ""
        self.error = ""
        self._failure: DeviceError | None = None
        self._job: _Job | None = None
        self._result: OperationResult | None = None
        self._last_t = 0.0
        self._lock = threading.RLock()

    # --- time ---------------------------------------------------------------------
    def now(self) -> float:
        """Simulated seconds since creation."""
        return (self._clock() - self._t0_wall) * self.time_scale

    def _advance(self) -> None:
        t = self.now()
        dt, self._last_t = t - self._last_t, t
        self.physics(max(dt, 0.0))
        job = self._job
        if job is None:
            return
        try:
            # Effects due part-way (a pipetting cycle) happen now, in order, whoever observes first.
            self.step(job, t - job.started)
            if t - job.started >= job.duration:
                self._job = None
                self._result = self.finish(job)
        except (DeviceError, LabwareError) as exc:
            # Kept for result(): whoever observed the failure first (a status poll, the action loop),
            # it reaches the caller of result() with its own type.
            self._job = None
            self.error = str(exc)
            self._failure = exc if isinstance(exc, DeviceError) else DeviceFault(str(exc))
            self._result = None

    def physics(self, dt: float) -> None:
        """Advance continuous state (temperatures) by dt simulated seconds."""

    # --- InstrumentBackend -----------------------------------------------------------
    def status(self) -> InstrumentStatus:
        with self._lock:
            self._advance()
            job = self._job
            return InstrumentStatus(
                state="error" if self.error else ("busy" if job else "idle"),
                door_open=self.door_open,
                occupant=self.occupant,
                operation=job.operation if job else "",
                values=self.values(),
                error=self.error,
            )

    def values(self) -> dict[str, float | str]:
        return {}

    def set_occupant(self, labware_id: str) -> None:
        with self._lock:
            self.occupant = labware_id

    def start(self, operation: str, params: Mapping[str, Any], labware_id: str) -> None:
        with self._lock:
            self._advance()
            if self._job is not None:
                raise NotReady(f"busy with {self._job.operation}")
            self.error = ""
            self._failure = None
            self._result = None
            params = dict(params)
            labware_id = labware_id or (self.occupant if self.occupant != "?" else "")
            if operation in ("open_door", "close_door"):
                duration, phases = DOOR_TIME_S, ((0.0, "moving door"),)
            else:
                duration, phases = self.begin(operation, params, labware_id)
            self._job = _Job(operation, params, labware_id, self.now(), duration, phases)

    def progress(self) -> Progress:
        with self._lock:
            self._advance()
            job = self._job
            if job is None:
                return Progress("done", 1.0, 0.0, done=True, readings=self.readings())
            elapsed = self.now() - job.started
            frac = min(1.0, max(0.0, elapsed / job.duration)) if job.duration > 0 else 1.0
            # Before the first phase's start (or when the clock stepped back) report the first phase.
            started = [name for at, name in job.phases if frac >= at]
            phase = (started[-1] if started else job.phases[0][1]) if job.phases else job.operation
            return Progress(phase, frac, max(0.0, (job.duration - elapsed) / self.time_scale), readings=self.readings())

    def readings(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.values().items() if isinstance(v, int | float)}

    def result(self) -> OperationResult:
        with self._lock:
            self._advance()
            if self.error:
                raise self._failure or DeviceFault(self.error)
            if self._job is not None:
                raise NotReady(f"{self._job.operation} is still running")
            return self._result or OperationResult()

    def abort(self) -> None:
        """Stop the running job; `result()` then returns what it did before the stop (often nothing).

        Work due before the stop is done first. A job that had already ended keeps its result.
        """
        with self._lock:
            self._advance()
            job, self._job = self._job, None
            if job is not None:
                self._result = self.aborted(job)

    # --- per-type hooks -------------------------------------------------------------------
    def begin(
        self,
        operation: str,
        params: dict[str, Any],
        labware_id: str,
    ) -> tuple[float, tuple[tuple[float, str], ...]]:
        """Check and start an operation: its simulated duration (s) and phases."""
        raise NotReady(f"{operation} is not simulated by {type(self).__name__}")

    def finish(self, job: _Job) -> OperationResult:
        """Complete the effect of a job and build its result."""
        if job.operation == "open_door":
            self.door_open = True
        elif job.operation == "close_door":
            self.door_open = False
        return OperationResult()

    def step(self, job: _Job, elapsed: float) -> None:
        """Apply the effects of a running job that are due `elapsed` simulated seconds after its start."""

    def aborted(self, job: _Job) -> OperationResult | None:
        """Settle the physical effect of an interrupted job; what it did, if that is worth reporting."""
        return None


class SimPlateReader(SimInstrument):
    device_type = "plate_reader"

    def __init__(self, *args: Any, optics: ReaderOptics | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.optics = optics or ReaderOptics()
        self._plate: tuple[PlateGeometry, dict[str, Liquid]] = (DEFAULT_PLATE, {})

    def begin(self, operation, params, labware_id):
        if not labware_id:
            raise NotReady("read_absorbance: no plate identity (nest empty and no labware given)")
        if self.liquids is None:
            raise NotReady("read_absorbance: this simulated reader has no liquid world attached")
        # The plate stays in the reader while it reads: its contents are taken now, so the end of the
        # read needs no service call (it may be observed from any thread, e.g. a state poll).
        self._plate = self.liquids.contents(labware_id)
        geometry = self._plate[0]
        try:  # wells that do not exist on this plate are a bad request, refused before anything moves
            params["wells"] = [geometry.canonical(w) for w in params.get("wells") or ()]
        except WellNameError as exc:
            raise InvalidParameters(f"parameter 'wells': {exc}") from exc
        # Filter-wheel move, then ~0.1 s per well (a photometer reading row by row).
        n = len(params["wells"]) or geometry.rows * geometry.cols
        return 1.5 + 0.1 * n, ((0.0, "selecting wavelength"), (1.5 / (1.5 + 0.1 * n), "reading"))

    def finish(self, job):
        if job.operation != "read_absorbance":
            return super().finish(job)
        geometry, contents = self._plate
        wells = job.params.get("wells") or geometry.well_names
        wl = float(job.params["wavelength_nm"])
        table: dict[str, float] = {}
        for well in wells:
            key = geometry.canonical(well)
            true_od = absorbance(contents.get(key, Liquid()), geometry, wl, blank=self.optics.blank_od)
            table[key] = round(self.optics.read(true_od, self.rng), 4)
        values = list(table.values())
        return OperationResult(
            kind="absorbance_plate",
            units="OD",
            data={
                "labware_id": job.labware_id,
                "labware_type": geometry.labware_type,
                "wavelength_nm": wl,
                "units": "OD",
                "rows": geometry.rows,
                "cols": geometry.cols,
                "wells": table,
            },
            outputs=[
                ("mean_absorbance", float(np.mean(values)), "OD"),
                ("max_absorbance", max(values), "OD"),
                ("wells_read", len(values), ""),
            ],
        )


class SimSealer(SimInstrument):
    device_type = "sealer"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.heater = FirstOrderThermal(self.ambient_c, self.ambient_c, tau_s=30.0)
        self.sealed: set[str] = set()

    def physics(self, dt):
        self.heater.advance(dt)

    def values(self):
        return {"temperature_c": round(self.heater.temperature_c, 2), "setpoint_c": self.heater.setpoint_c}

    def begin(self, operation, params, labware_id):
        plate = labware_id or "?"
        if operation == "seal":
            if plate in self.sealed:
                raise NotReady(f"plate {plate} is already sealed")
            self.heater.setpoint_c = float(params["temperature_c"])
            heat = self.heater.time_to_within(2.0)
            total = heat + float(params["time_s"]) + 4.0
            return total, ((0.0, "heating"), (heat / total, "sealing"), ((total - 4.0) / total, "releasing"))
        if operation == "peel":
            if plate not in self.sealed:
                raise NotReady(f"plate {plate} has no seal to peel")
            return 6.0, ((0.0, "peeling"),)
        return super().begin(operation, params, labware_id)

    def finish(self, job):
        plate = job.labware_id or "?"
        if job.operation == "seal":
            self.sealed.add(plate)
            return OperationResult(outputs=[("seal_temperature_c", round(self.heater.temperature_c, 1), "Cel")])
        if job.operation == "peel":
            self.sealed.discard(plate)
            return OperationResult()
        return super().finish(job)


class SimIncubator(SimInstrument):
    device_type = "incubator"

    def __init__(self, *args: Any, slots: int = 22, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.chamber = FirstOrderThermal(self.ambient_c, self.ambient_c, tau_s=300.0)
        self.shake_rpm = 0.0
        self.slots: dict[int, str] = {}
        self.n_slots = slots

    def physics(self, dt):
        # An open door pulls the chamber towards ambient with its own, faster time constant.
        if self.door_open:
            open_chamber = FirstOrderThermal(self.chamber.temperature_c, self.ambient_c, tau_s=60.0)
            open_chamber.advance(dt)
            self.chamber.temperature_c = open_chamber.temperature_c
        else:
            self.chamber.advance(dt)

    def values(self):
        return {
            "temperature_c": round(self.chamber.temperature_c, 2),
            "setpoint_c": self.chamber.setpoint_c,
            "shake_rpm": self.shake_rpm,
            "plates_stored": float(len(self.slots)),
        }

    def _check_slot(self, slot: int) -> None:
        if not 1 <= slot <= self.n_slots:
            raise NotReady(f"slot {slot} does not exist (1..{self.n_slots})")

    def begin(self, operation, params, labware_id):
        if operation == "set_temperature":
            self.chamber.setpoint_c = float(params["temperature_c"])
            return 0.0, ((0.0, "setting"),)
        if operation == "incubate":
            self.chamber.setpoint_c = float(params["temperature_c"])
            self.shake_rpm = float(params["shake_rpm"])
            warm = self.chamber.time_to_within(0.5)
            total = warm + float(params["time_s"])
            return total, ((0.0, "equilibrating"), (warm / total if total else 0.0, "incubating"))
        if operation == "store":
            slot = int(params["slot"])
            self._check_slot(slot)
            if slot in self.slots:
                raise NotReady(f"slot {slot} already holds {self.slots[slot]}")
            return 8.0, ((0.0, "storing"),)
        if operation == "retrieve":
            slot = int(params["slot"])
            self._check_slot(slot)
            if slot not in self.slots:
                raise NotReady(f"slot {slot} is empty")
            return 8.0, ((0.0, "retrieving"),)
        return super().begin(operation, params, labware_id)

    def finish(self, job):
        if job.operation == "incubate":
            self.shake_rpm = 0.0
            return OperationResult(outputs=[("final_temperature_c", round(self.chamber.temperature_c, 2), "Cel")])
        if job.operation == "store":
            self.slots[int(job.params["slot"])] = job.labware_id or "?"
            self.occupant = ""
            return OperationResult()
        if job.operation == "retrieve":
            self.occupant = self.slots.pop(int(job.params["slot"]))
            return OperationResult(outputs=[("labware_id", self.occupant, "")])
        if job.operation == "set_temperature":
            return OperationResult()
        return super().finish(job)

    def aborted(self, job):
        if job.operation == "incubate":
            self.shake_rpm = 0.0
        return super().aborted(job)


#: The liquid handler's head: 8 channels, so one aspirate/dispense cycle does a column of up to 8 wells.
HEAD_CHANNELS = 8
PIPETTING_SETUP_S = 3.0
PIPETTING_CYCLE_S = 6.0
PIPETTING = ("dispense", "transfer", "aspirate")


@dataclass
class _Pipetting:
    """A checked liquid-handling operation, one well per step, cut into head cycles of `HEAD_CHANNELS` steps.

    Every operation is a list of steps `source well -> dest well, volume`; a dispense draws from a
    reservoir (`source` empty), an aspirate sends the plate's liquid to the handler's waste.
    """

    operation: str
    source: str
    source_wells: list[str]
    dest: str
    dest_wells: list[str]
    volumes: list[float]
    reagent: str = ""
    composition: dict[str, float] | None = None
    done: int = 0  # cycles whose liquid has moved

    @property
    def cycles(self) -> int:
        return math.ceil(len(self.volumes) / HEAD_CHANNELS)

    @property
    def steps_done(self) -> int:
        return min(len(self.volumes), self.done * HEAD_CHANNELS)

    @property
    def nest_wells(self) -> list[str]:
        """The wells of the plate in the nest, one per step (an aspirate empties them, others fill them)."""
        return self.source_wells if self.operation == "aspirate" else self.dest_wells

    def cycle(self, k: int) -> slice:
        return slice(k * HEAD_CHANNELS, (k + 1) * HEAD_CHANNELS)

    def done_text(self) -> str:
        if not self.done:
            return "nothing was pipetted"
        wells = self.nest_wells[: self.steps_done]
        columns = "column 1" if self.done == 1 else f"columns 1-{self.done}"
        return f"{columns} of {self.cycles} done ({len(wells)} well(s): {well_list(wells)}), the rest not pipetted"


def _per_step(values: Sequence[Any], n: int, name: str) -> list[Any]:
    """One value per well, or one for all (as the capability table documents)."""
    try:
        return broadcast(values, n, f"parameter '{name}'")
    except LabwareError as exc:
        raise InvalidParameters(str(exc)) from None


class SimLiquidHandler(SimInstrument):
    """An 8-channel head: 3 s of set-up, then one ~6 s cycle per column of up to 8 wells.

    The whole operation is checked when it starts (wells, lists, reagent, and every well's volume
    along the way, from the plates' contents now) and nothing moves then. Each cycle's liquid moves
    when that cycle ends in simulated time, so an abort leaves exactly the cycles done so far, and
    the result (complete or aborted) lists the wells and volumes done.
    """

    device_type = "liquid_handler"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pipetting: _Pipetting | None = None

    @property
    def waste_id(self) -> str:
        return f"{self.device_id}.waste"

    def begin(self, operation, params, labware_id):
        if operation not in PIPETTING:
            return super().begin(operation, params, labware_id)
        if not labware_id:
            raise NotReady(f"{operation}: no plate identity (nest empty and no labware given)")
        if self.liquids is None:
            raise NotReady(f"{operation}: this simulated liquid handler has no liquid world attached")
        plan = self._plan(operation, params, labware_id)
        self._pipetting = plan
        n = plan.cycles
        total = PIPETTING_SETUP_S + PIPETTING_CYCLE_S * n
        phases = ((0.0, "setting up"),) + tuple(
            ((PIPETTING_SETUP_S + PIPETTING_CYCLE_S * k) / total, f"pipetting column {k + 1} of {n}")
            for k in range(n)
        )
        return total, phases

    def _plan(self, operation: str, params: dict[str, Any], labware_id: str) -> _Pipetting:
        """The operation as steps, checked on copies of the plates as they are now: raises, moves nothing."""
        assert self.liquids is not None
        liquids = self.liquids
        plates: dict[str, Plate] = {}

        def plate(plate_id: str) -> Plate:
            if plate_id not in plates:
                geometry, contents = liquids.contents(plate_id)
                plates[plate_id] = copy = Plate(plate_id, geometry)
                copy.restore(contents)
            return plates[plate_id]

        def wells(on: Plate, name: str) -> list[str]:
            try:
                params[name] = [on.geometry.canonical(w) for w in params[name]]
            except WellNameError as exc:
                raise InvalidParameters(f"parameter '{name}': {exc} ({on.id})") from exc
            return params[name]

        nest = plate(labware_id)
        try:
            if operation == "dispense":
                dest_wells = wells(nest, "dest_wells")
                volumes = _per_step(params["volume_ul"], len(dest_wells), "volume_ul")
                composition = self._composition(params)
                reagent = self._reagent(params["reagent"], composition)
                model_dispense(nest, dest_wells, reagent, volumes)
                return _Pipetting(
                    operation, "", [], labware_id, dest_wells, volumes, params["reagent"], composition
                )
            if operation == "transfer":
                dest_wells = wells(nest, "dest_wells")
                source = plate(params["source_labware"])
                source_wells = _per_step(wells(source, "source_wells"), len(dest_wells), "source_wells")
                volumes = _per_step(params["volume_ul"], len(dest_wells), "volume_ul")
                model_transfer(source, source_wells, nest, dest_wells, volumes)
                return _Pipetting(operation, source.id, source_wells, labware_id, dest_wells, volumes)
            source_wells = wells(nest, "source_wells")
            volumes = _per_step(params["volume_ul"], len(source_wells), "volume_ul")
            waste = plate(self.waste_id)
            waste_wells = self._waste_wells(waste, volumes)
            model_transfer(nest, source_wells, waste, waste_wells, volumes)
            return _Pipetting(operation, labware_id, source_wells, waste.id, waste_wells, volumes)
        except (UnknownReagent, VolumeError) as exc:
            raise InvalidParameters(str(exc)) from exc
        except LabwareError as exc:  # overflow, underflow somewhere along the way
            raise LiquidHandlingError(f"{operation} refused, nothing moved: {exc}") from exc

    @staticmethod
    def _composition(params: Mapping[str, Any]) -> dict[str, float] | None:
        comps, concs = params.get("components") or [], params.get("concentrations_um") or []
        if len(comps) != len(concs):
            raise InvalidParameters(
                f"parameters 'components' ({len(comps)}) and 'concentrations_um' ({len(concs)}) "
                "must have the same length"
            )
        return dict(zip(comps, concs, strict=True)) or None

    def _reagent(self, name: str, composition: Mapping[str, float] | None) -> Reagent:
        """The reagent a dispense would get: from the local world, or the default table the liquid services use."""
        world = self.liquids.world if isinstance(self.liquids, LocalLiquids) else LiquidWorld()
        return world.reagent(name, composition)

    def _waste_wells(self, waste: Plate, volumes: Sequence[float]) -> list[str]:
        """First fit: each step's liquid goes to the first waste well with room for it."""
        capacity = waste.geometry.well_volume_ul
        held = {name: liquid.volume_ul for name, liquid in waste.snapshot().items()}
        out = []
        for vol in volumes:
            well = next(
                (w for w in waste.geometry.well_names if held.get(w, 0.0) + vol <= capacity + VOLUME_EPS_UL), None
            )
            if well is None:
                raise LiquidHandlingError(
                    f"aspirate refused, nothing moved: the waste of {self.device_id} has no room for {vol:.2f} uL"
                )
            held[well] = held.get(well, 0.0) + vol
            out.append(well)
        return out

    # --- cycles -------------------------------------------------------------------------------------
    def step(self, job, elapsed):
        plan = self._pipetting
        if plan is None or job.operation not in PIPETTING:
            return
        due = plan.cycles if elapsed >= job.duration else int((elapsed - PIPETTING_SETUP_S) // PIPETTING_CYCLE_S)
        self._run_cycles(job, plan, min(plan.cycles, max(0, due)))

    def _run_cycles(self, job: _Job, plan: _Pipetting, until: int) -> None:
        """Move the liquid of every cycle before `until` not moved yet, in order."""
        assert self.liquids is not None
        while plan.done < until:
            k = plan.cycle(plan.done)
            try:
                if plan.operation == "dispense":
                    self.liquids.dispense(
                        plan.dest, plan.dest_wells[k], plan.reagent, plan.composition, plan.volumes[k]
                    )
                else:
                    self.liquids.transfer(
                        plan.source, plan.source_wells[k], plan.dest, plan.dest_wells[k], plan.volumes[k]
                    )
            except (LabwareError, DeviceError) as exc:
                raise self._stopped(job, plan, exc) from exc
            plan.done += 1

    def _stopped(self, job: _Job, plan: _Pipetting, exc: Exception) -> DeviceError:
        """The error of a cycle that could not move its liquid: the cycles before it stay done."""
        self._pipetting = None
        where = f"{plan.operation} stopped at column {plan.done + 1} of {plan.cycles}: {exc}; {plan.done_text()}"
        if isinstance(exc, LabwareError | LiquidHandlingError):  # the wells changed since the checks at start
            err: DeviceError = LiquidHandlingError(where)
        else:  # e.g. the liquid services did not answer: that column may or may not have moved
            err = DeviceFault(f"{where}; column {plan.done + 1} may or may not have been pipetted")
        err.partial = self._report(job, plan, "failed")
        return err

    def finish(self, job):
        if job.operation not in PIPETTING:
            return super().finish(job)
        plan = self._pipetting
        if plan is None:  # pragma: no cover - begin always leaves a plan
            raise DeviceFault(f"{job.operation}: no pipetting plan")
        self._run_cycles(job, plan, plan.cycles)
        self._pipetting = None
        return self._report(job, plan, "complete")

    def aborted(self, job):
        plan, self._pipetting = self._pipetting, None
        if job.operation not in PIPETTING or plan is None:
            return super().aborted(job)
        return self._report(job, plan, "aborted")

    @staticmethod
    def _report(job: _Job, plan: _Pipetting, status: str) -> OperationResult:
        """What the head really did: the wells of the nest plate done, with their volumes.

        `kind` is empty when nothing moved (nothing to record in the run store)."""
        n = plan.steps_done
        wells, volumes = plan.nest_wells[:n], plan.volumes[:n]
        data = {
            "operation": job.operation,
            "labware_id": job.labware_id,
            **job.params,
            "status": status,
            "columns": plan.cycles,
            "columns_done": plan.done,
            "wells_done": wells,
            "volumes_done_ul": volumes,
        }
        if job.operation == "transfer":
            data["source_wells_done"] = plan.source_wells[:n]
        return OperationResult(
            kind="liquid_transfer" if n else "",
            units="uL",
            data=data,
            outputs=[("total_volume_ul", float(sum(volumes)), "uL"), ("wells", len(wells), "")],
        )


class SimBarcodeScanner(SimInstrument):
    device_type = "barcode_scanner"

    def __init__(self, *args: Any, barcodes: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.barcodes = dict(barcodes or {})

    def begin(self, operation, params, labware_id):
        if operation == "scan":
            return 0.3, ((0.0, "scanning"),)
        return super().begin(operation, params, labware_id)

    def finish(self, job):
        if job.operation == "scan":
            code = self.barcodes.get(job.labware_id, "")
            if not code:
                raise DeviceFault(f"no barcode read on {job.labware_id or 'the plate'} (NO READ)")
            return OperationResult(
                kind="barcode", data={"labware_id": job.labware_id, "barcode": code}, outputs=[("barcode", code, "")]
            )
        return super().finish(job)


SIM_CLASSES: dict[str, type[SimInstrument]] = {
    cls.device_type: cls for cls in (SimPlateReader, SimSealer, SimIncubator, SimLiquidHandler, SimBarcodeScanner)
}
