"""The simulated liquid world: plates' well contents, reagents, and Beer-Lambert absorbance.

One `LiquidWorld` holds every plate of a simulated cell, so the liquid handler
that fills a plate and the reader that reads it later see the same wells. The
absorbance of a well is A = blank + sum_i eps_i(lambda) * c_i * l, with l the
height of liquid in a flat-bottom well (the light path of a top-reading
photometer), plus Gaussian noise from a seeded generator so that closed-loop
campaigns are reproducible.

Dye spectra are single Gaussian bands fitted to the published maxima and molar
absorptivities of common food dyes (tartrazine ~427 nm, Allura red ~504 nm,
Brilliant blue FCF ~630 nm); good enough to make mixtures distinguishable by
wavelength, not a spectroscopy reference.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from autolab.model.errors import LabwareError, UnknownReagent
from autolab.model.labware import (
    DEFAULT_PLATE,
    Liquid,
    Plate,
    PlateGeometry,
    Reagent,
    dispense,
    transfer,
)

#: Photometers saturate: above this optical density a reading carries no information.
MAX_OD = 4.0


@dataclass(frozen=True)
class Dye:
    """A single-band absorption spectrum: eps(l) = eps_max * exp(-(l - peak)^2 / (2 sigma^2))."""

    name: str
    peak_nm: float
    eps_max: float  # molar absorptivity at the peak, L mol^-1 cm^-1
    sigma_nm: float

    def epsilon(self, wavelength_nm: float) -> float:
        return self.eps_max * math.exp(-((wavelength_nm - self.peak_nm) ** 2) / (2 * self.sigma_nm**2))


DYES: dict[str, Dye] = {
    d.name: d
    for d in (
        Dye("tartrazine", 427.0, 27_000.0, 38.0),
        Dye("allura_red", 504.0, 25_900.0, 40.0),
        Dye("brilliant_blue", 630.0, 130_000.0, 35.0),
    )
}

#: Reagents known by name (stock concentrations in umol/L).
REAGENTS: dict[str, Reagent] = {
    r.name: r
    for r in (
        Reagent("water", {}),
        Reagent("tartrazine_stock", {"tartrazine": 100.0}),
        Reagent("allura_red_stock", {"allura_red": 100.0}),
        Reagent("brilliant_blue_stock", {"brilliant_blue": 20.0}),
    )
}


def absorbance(
    liquid: Liquid, geometry: PlateGeometry, wavelength_nm: float, blank: float = 0.0, dyes: Mapping[str, Dye] = DYES
) -> float:
    """Noise-free Beer-Lambert absorbance of one well (before the reader's saturation)."""
    path_cm = geometry.path_length_cm(liquid.volume_ul)
    total = blank
    for solute in liquid.amounts_nmol:
        dye = dyes.get(solute)
        if dye is None:
            continue  # colourless solute (salts, buffers)
        total += dye.epsilon(wavelength_nm) * liquid.concentration_um(solute) * 1e-6 * path_cm
    return total


@dataclass
class ReaderOptics:
    """Blank of an empty polystyrene well, noise model and saturation of a photometer."""

    blank_od: float = 0.040
    noise_sd_od: float = 0.002
    noise_rel: float = 0.005
    max_od: float = MAX_OD

    def read(self, true_od: float, rng: np.random.Generator) -> float:
        sd = self.noise_sd_od + self.noise_rel * abs(true_od)
        return float(min(self.max_od, max(0.0, true_od + rng.normal(0.0, sd))))


class LiquidWorld:
    """Thread-safe store of plates' well contents; plates appear on first use."""

    def __init__(self, reagents: Mapping[str, Reagent] | None = None) -> None:
        self._plates: dict[str, Plate] = {}
        self._reagents = dict(REAGENTS if reagents is None else reagents)
        self._lock = threading.RLock()

    def plate(self, labware_id: str, geometry: PlateGeometry | None = None) -> Plate:
        if not labware_id:
            raise LabwareError("labware id is empty")
        with self._lock:
            plate = self._plates.get(labware_id)
            if plate is None:
                plate = self._plates[labware_id] = Plate(labware_id, geometry or DEFAULT_PLATE)
            return plate

    def clear(self) -> None:
        """Empty every well of every plate: the world's liquids as at start (a sim reset)."""
        with self._lock:
            self._plates.clear()

    def reagent(self, name: str, concentrations_um: Mapping[str, float] | None = None) -> Reagent:
        if concentrations_um:
            return Reagent(name or "custom", dict(concentrations_um))
        try:
            return self._reagents[name]
        except KeyError:
            known = ", ".join(sorted(self._reagents))
            raise UnknownReagent(f"unknown reagent {name!r} (known: {known}); give its composition") from None

    def dispense(
        self,
        dest: str,
        wells: Sequence[str],
        reagent: Reagent,
        volumes_ul: Sequence[float],
        geometry: PlateGeometry | None = None,
    ) -> None:
        with self._lock:
            dispense(self.plate(dest, geometry), wells, reagent, volumes_ul)

    def transfer(
        self,
        source: str,
        source_wells: Sequence[str],
        dest: str,
        dest_wells: Sequence[str],
        volumes_ul: Sequence[float],
        geometry: PlateGeometry | None = None,
    ) -> None:
        with self._lock:
            transfer(self.plate(source, geometry), source_wells, self.plate(dest, geometry), dest_wells, volumes_ul)

    def contents(self, labware_id: str, wells: Sequence[str] = ()) -> dict[str, Liquid]:
        """Copies of the contents of `wells` (all filled wells when empty)."""
        with self._lock:
            plate = self.plate(labware_id)
            if wells:
                return {plate.geometry.canonical(w): _copy(plate.well(w).content) for w in wells}
            return {w.name: _copy(w.content) for w in plate.filled_wells()}

    def geometry(self, labware_id: str) -> PlateGeometry:
        with self._lock:
            return self.plate(labware_id).geometry


def _copy(liquid: Liquid) -> Liquid:
    return Liquid(liquid.volume_ul, dict(liquid.amounts_nmol))
