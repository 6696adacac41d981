"""Wells, volumes and compositions of labware, with overflow and underflow checks.

A well holds a volume of liquid and amounts of solutes (nmol). Tracking amounts
rather than concentrations makes mixing exact: amounts add, volumes add, and a
concentration is always amount / volume. Every change is checked first and
applied after, so a refused transfer leaves every well as it was (the executive's
pre-flight and the simulated liquid handler rely on that).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from autolab.model.errors import LabwareError, VolumeError, WellNameError, WellOverflow, WellUnderflow

#: Volumes below this are treated as zero (floating-point dust from repeated mixing).
VOLUME_EPS_UL = 1e-9

_WELL_RE = re.compile(r"^([A-Za-z]{1,2})(\d{1,2})$")


__all__ = [
    "DEFAULT_PLATE",
    "LabwareError",
    "Liquid",
    "Plate",
    "PlateGeometry",
    "Reagent",
    "VolumeError",
    "Well",
    "WellNameError",
    "WellOverflow",
    "WellUnderflow",
    "check_fits",
    "dispense",
    "transfer",
]


@dataclass(frozen=True)
class PlateGeometry:
    """What liquid tracking and Beer-Lambert need to know of a plate type."""

    labware_type: str
    rows: int
    cols: int
    well_volume_ul: float
    #: Area of the well's cross-section (flat bottom); path length = volume / area.
    well_area_mm2: float

    def __post_init__(self) -> None:
        if not (1 <= self.rows <= 32 and 1 <= self.cols <= 48):
            raise LabwareError(f"{self.labware_type}: rows/cols {self.rows}x{self.cols} out of range")
        if not (self.well_volume_ul > 0 and self.well_area_mm2 > 0):
            raise LabwareError(f"{self.labware_type}: well volume and area must be positive")

    @property
    def well_names(self) -> list[str]:
        return [f"{row_label(r)}{c + 1}" for r in range(self.rows) for c in range(self.cols)]

    def index(self, well: str) -> tuple[int, int]:
        """(row, col) of a well name, 0-based; raises WellNameError naming the well and the plate."""
        m = _WELL_RE.match(well.strip()) if isinstance(well, str) else None
        if m is None:
            raise WellNameError(f"{well!r} is not a well name (expected e.g. 'A1')")
        letters, number = m.group(1).upper(), int(m.group(2))
        row = 0
        for ch in letters:
            row = row * 26 + (ord(ch) - ord("A") + 1)
        row -= 1
        col = number - 1
        if not (0 <= row < self.rows and 0 <= col < self.cols):
            raise WellNameError(
                f"well {well!r} does not exist on {self.labware_type} ({self.rows} rows x {self.cols} columns, "
                f"A1..{row_label(self.rows - 1)}{self.cols})"
            )
        return row, col

    def canonical(self, well: str) -> str:
        row, col = self.index(well)
        return f"{row_label(row)}{col + 1}"

    def path_length_cm(self, volume_ul: float) -> float:
        """Vertical light path through the liquid of a flat-bottom well (1 uL = 1 mm^3)."""
        return max(volume_ul, 0.0) / self.well_area_mm2 / 10.0

    @classmethod
    def from_labware_type(cls, labware_type: object) -> PlateGeometry:
        """From the workcell's LabwareType (duck-typed: rows, cols, well volume, well diameter/area)."""
        lt_id = str(getattr(labware_type, "id", "") or getattr(labware_type, "labware_type", "plate"))
        rows = int(getattr(labware_type, "rows", 8))
        cols = int(getattr(labware_type, "cols", 12))
        volume = _first_attr(labware_type, ("well_volume_ul", "well_volume", "max_volume_ul"), 360.0)
        area = _first_attr(labware_type, ("well_area_mm2",), 0.0)
        if not area:
            diameter = _first_attr(labware_type, ("well_diameter_mm", "well_diameter"), 0.0)
            area = math.pi * (diameter / 2) ** 2 if diameter else DEFAULT_PLATE.well_area_mm2
        return cls(lt_id, rows, cols, float(volume), float(area))


def _first_attr(obj: object, names: Sequence[str], default: float) -> float:
    for name in names:
        value = getattr(obj, name, None)
        if value:
            return float(value)
    return default


def row_label(row: int) -> str:
    """0 -> 'A', 25 -> 'Z', 26 -> 'AA' (1536-well plates have 32 rows)."""
    label = ""
    row += 1
    while row:
        row, rem = divmod(row - 1, 26)
        label = chr(ord("A") + rem) + label
    return label


#: Corning 3590-style flat-bottom 96-well plate: 360 uL wells of 6.86 mm diameter.
DEFAULT_PLATE = PlateGeometry("corning_96_wellplate_360ul_flat", 8, 12, 360.0, math.pi * (6.86 / 2) ** 2)


@dataclass
class Liquid:
    """A portion of liquid: a volume and the solute amounts (nmol) it carries."""

    volume_ul: float = 0.0
    amounts_nmol: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, volume_ul: float, concentrations_um: Mapping[str, float] | None = None) -> Liquid:
        """`volume_ul` of a solution with the given solute concentrations (umol/L)."""
        _check_volume(volume_ul, "volume_ul")
        amounts = {}
        for name, conc in (concentrations_um or {}).items():
            if not (math.isfinite(conc) and conc >= 0):
                raise VolumeError(f"concentration of {name!r} must be a finite number >= 0 umol/L, got {conc}")
            # umol/L * uL = pmol; /1000 -> nmol
            amounts[name] = conc * volume_ul / 1000.0
        return cls(volume_ul, amounts)

    def concentration_um(self, solute: str) -> float:
        if self.volume_ul <= VOLUME_EPS_UL:
            return 0.0
        return self.amounts_nmol.get(solute, 0.0) / self.volume_ul * 1000.0

    def concentrations_um(self) -> dict[str, float]:
        return {name: self.concentration_um(name) for name in self.amounts_nmol}


@dataclass(frozen=True)
class Reagent:
    """A named solution dispensed from an unlimited reservoir."""

    name: str
    concentrations_um: Mapping[str, float] = field(default_factory=dict)

    def portion(self, volume_ul: float) -> Liquid:
        return Liquid.of(volume_ul, self.concentrations_um)


@dataclass
class Well:
    name: str
    capacity_ul: float
    content: Liquid = field(default_factory=Liquid)

    @property
    def volume_ul(self) -> float:
        return self.content.volume_ul

    def add(self, liquid: Liquid) -> None:
        if self.volume_ul + liquid.volume_ul > self.capacity_ul + VOLUME_EPS_UL:
            raise WellOverflow(
                f"well {self.name} would overflow: {self.volume_ul:.2f} uL + {liquid.volume_ul:.2f} uL "
                f"> capacity {self.capacity_ul:.2f} uL"
            )
        self.content.volume_ul += liquid.volume_ul
        for name, amount in liquid.amounts_nmol.items():
            self.content.amounts_nmol[name] = self.content.amounts_nmol.get(name, 0.0) + amount

    def remove(self, volume_ul: float) -> Liquid:
        """Take `volume_ul` of the (well-mixed) content."""
        if volume_ul > self.volume_ul + VOLUME_EPS_UL:
            raise WellUnderflow(f"well {self.name} holds {self.volume_ul:.2f} uL, cannot take {volume_ul:.2f} uL")
        fraction = min(1.0, volume_ul / self.volume_ul) if self.volume_ul > 0 else 0.0
        taken = Liquid(volume_ul, {k: v * fraction for k, v in self.content.amounts_nmol.items()})
        self.content.volume_ul = max(0.0, self.volume_ul - volume_ul)
        for name in list(self.content.amounts_nmol):
            self.content.amounts_nmol[name] -= taken.amounts_nmol[name]
        if self.content.volume_ul <= VOLUME_EPS_UL:
            self.content = Liquid()
        return taken


class Plate:
    """A plate's wells. Wells are created on first use, so an empty 1536-well plate is cheap."""

    def __init__(self, labware_id: str, geometry: PlateGeometry = DEFAULT_PLATE) -> None:
        self.id = labware_id
        self.geometry = geometry
        self._wells: dict[str, Well] = {}

    def well(self, name: str) -> Well:
        key = self.geometry.canonical(name)
        well = self._wells.get(key)
        if well is None:
            well = self._wells[key] = Well(key, self.geometry.well_volume_ul)
        return well

    def filled_wells(self) -> list[Well]:
        order = {n: i for i, n in enumerate(self.geometry.well_names)}
        return sorted((w for w in self._wells.values() if w.volume_ul > VOLUME_EPS_UL), key=lambda w: order[w.name])

    def snapshot(self) -> dict[str, Liquid]:
        return {w.name: Liquid(w.volume_ul, dict(w.content.amounts_nmol)) for w in self._wells.values()}

    def restore(self, snap: Mapping[str, Liquid]) -> None:
        self._wells = {}
        for name, liquid in snap.items():
            self.well(name).content = Liquid(liquid.volume_ul, dict(liquid.amounts_nmol))


def well_list(wells: Sequence[str], limit: int = 24) -> str:
    """Wells for a message: the first `limit` by name, then how many more."""
    shown = ", ".join(wells[:limit])
    return shown + (f" and {len(wells) - limit} more" if len(wells) > limit else "")


def broadcast(values: Sequence, n: int, what: str) -> list:
    """One value per item, or one value for all; anything else is an error naming `what`."""
    values = list(values)
    if len(values) == n:
        return values
    if len(values) == 1:
        return values * n
    raise LabwareError(f"{what}: expected 1 or {n} values, got {len(values)}")


def _check_volume(volume_ul: float, what: str) -> None:
    if not isinstance(volume_ul, int | float) or not math.isfinite(volume_ul) or volume_ul < 0:
        raise VolumeError(f"{what} must be a finite number >= 0 uL, got {volume_ul!r}")


def dispense(plate: Plate, wells: Sequence[str], reagent: Reagent, volumes_ul: Sequence[float]) -> None:
    """Dispense `reagent` into `wells`; all or nothing."""
    wells = list(wells)
    if not wells:
        raise LabwareError("dispense: no destination wells given")
    vols = broadcast(volumes_ul, len(wells), "volumes_ul")
    for v in vols:
        _check_volume(v, "volume_ul")
    snap = plate.snapshot()
    try:
        for name, vol in zip(wells, vols, strict=True):
            plate.well(name).add(reagent.portion(vol))
    except LabwareError:
        plate.restore(snap)
        raise


def transfer(
    source: Plate, source_wells: Sequence[str], dest: Plate, dest_wells: Sequence[str], volumes_ul: Sequence[float]
) -> None:
    """Well-to-well transfers, in order; all or nothing (both plates restored on error)."""
    dest_wells = list(dest_wells)
    if not dest_wells:
        raise LabwareError("transfer: no destination wells given")
    sources = broadcast(source_wells, len(dest_wells), "source_wells")
    vols = broadcast(volumes_ul, len(dest_wells), "volumes_ul")
    for v in vols:
        _check_volume(v, "volume_ul")
    snaps = [(source, source.snapshot()), (dest, dest.snapshot())]
    try:
        for src, dst, vol in zip(sources, dest_wells, vols, strict=True):
            dest.well(dst).add(source.well(src).remove(vol))
    except LabwareError:
        for plate, snap in snaps:
            plate.restore(snap)
        raise


def check_fits(geometry: PlateGeometry, fills: Iterable[tuple[str, float]]) -> None:
    """Pre-flight: do these (well, volume added) pairs fit, starting from empty wells?"""
    totals: dict[str, float] = {}
    for well, vol in fills:
        _check_volume(vol, "volume_ul")
        key = geometry.canonical(well)
        totals[key] = totals.get(key, 0.0) + vol
    for key, total in totals.items():
        if total > geometry.well_volume_ul + VOLUME_EPS_UL:
            raise WellOverflow(
                f"well {key} would receive {total:.2f} uL > capacity {geometry.well_volume_ul:.2f} uL "
                f"of {geometry.labware_type}"
            )
