"""Constriction susceptibility screening (MODEL §10; the paper's Figs. 3e-3f). No mesh.

For a host that takes up n Li per formula unit at 0 V vs Li, with average lithiation
voltage U, reference molar volume V of the formula unit and reaction volume strain ε
(numbering of docs/screening.md; MODEL §10 states these without numbers):

    G = −n F U                  (10.1)  reaction energy at 0 V (Nernst; paper, Methods)
    K_crit = −G / (V ε)         (10.2)  confinement modulus that cancels the reaction energy
    s = n / K_crit              (10.3)  constriction susceptibility, the x axis of Fig. 3f
    U n / K_crit = ε V / F      (10.4)  the reciprocal relation of Fig. 3f
    U_ocv(θ) = Ω p / F          (10.5)  Li fraction held at 0 V under confinement p = K_eff:
                                        (3.2) with σ_h = −p (solver.materials)

Three sources of hosts, each turned into a `HostInput`:
- material cards (`host_from_card`): U, n, ε and V are derived from the card (see that
  function); only the molar mass of the formula unit is not on a card and comes from
  `CARD_FORMULAS` / the formula and `ATOMIC_WEIGHTS`;
- a user table (CSV, YAML or JSON; `load_user_materials`);
- a set of computed entries (formula, total energy, volume): U and n follow from the
  phase equilibrium with Li metal at 0 V (`lithiation_at_zero_volts`), as in the paper's
  pymatgen step, here solved as a small linear program; pymatgen entries are accepted
  when pymatgen is installed.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy.integrate import quad
from scipy.optimize import linprog

from solver.materials import (
    MaterialCard,
    equilibrium_capacity_under_pressure,
    load_library,
    swelling_ratio,
    theta_at_potential,
)
from solver.units import Q_, F, Quantity, magnitude, parse_quantity

log = logging.getLogger("constrict.screening")

N_A = Q_(1.0, "avogadro_constant").to("1/mol")

# Standard atomic weights (g/mol), abridged to five significant figures: IUPAC/CIAAW,
# Prohaska et al., Pure Appl. Chem. 94, 573 (2022), Table 2 (abridged values). Only the
# elements of common anode, scaffold and electrolyte materials; a user file may give
# `molar_mass` for anything else.
ATOMIC_WEIGHTS: dict[str, float] = {
    "H": 1.0080, "Li": 6.94, "B": 10.81, "C": 12.011, "N": 14.007, "O": 15.999,
    "F": 18.998, "Na": 22.990, "Mg": 24.305, "Al": 26.982, "Si": 28.085, "P": 30.974,
    "S": 32.06, "Cl": 35.45, "K": 39.098, "Ca": 40.078, "Ti": 47.867, "V": 50.942,
    "Cr": 51.996, "Mn": 54.938, "Fe": 55.845, "Co": 58.933, "Ni": 58.693, "Cu": 63.546,
    "Zn": 65.38, "Ga": 69.723, "Ge": 72.630, "As": 74.922, "Se": 78.971, "Sr": 87.62,
    "Zr": 91.224, "Nb": 92.906, "Mo": 95.95, "Ag": 107.87, "Cd": 112.41, "In": 114.82,
    "Sn": 118.71, "Sb": 121.76, "Te": 127.60, "I": 126.90, "Ba": 137.33, "La": 138.91,
    "W": 183.84, "Pt": 195.08, "Au": 196.97, "Pb": 207.2, "Bi": 208.98,
}
# Formula unit of a card whose name is not a chemical formula. Graphite is "C", the
# reduced formula a phase-diagram code (the paper's pymatgen step) would use.
CARD_FORMULAS: dict[str, str] = {"graphite": "C"}
SCREENED_KINDS = ("host", "conductor", "insulator")  # electrolytes and Li metal are not hosts


class ScreeningInputError(ValueError):
    """A material file or entry set that cannot be screened; the message names each problem."""


# --- formulas ----------------------------------------------------------------------------

_FORMULA = re.compile(r"(?:[A-Z][a-z]?(?:\d+(?:\.\d*)?|\.\d+)?)+")
_ELEMENT = re.compile(r"([A-Z][a-z]?)(\d+(?:\.\d*)?|\.\d+)?")


def parse_formula(formula: str) -> dict[str, float]:
    """{'Mg': 2.0, 'Si': 1.0} from 'Mg2Si' (no parentheses; fractional counts allowed)."""
    text = formula.replace(" ", "")
    if not _FORMULA.fullmatch(text):
        raise ValueError(f"'{formula}' is not a chemical formula such as 'Mg2Si' or 'Li3.75Si' "
                         "(parentheses are not supported: expand them)")
    composition: dict[str, float] = {}
    for symbol, count in _ELEMENT.findall(text):
        composition[symbol] = composition.get(symbol, 0.0) + (float(count) if count else 1.0)
    return composition


def molar_mass(formula: str) -> Quantity:
    """Molar mass of a formula unit from `ATOMIC_WEIGHTS`."""
    composition = parse_formula(formula)
    unknown = [el for el in composition if el not in ATOMIC_WEIGHTS]
    if unknown:
        raise ValueError(f"formula '{formula}': no atomic weight for {', '.join(unknown)} "
                         "(give molar_mass instead)")
    return Q_(sum(ATOMIC_WEIGHTS[el] * n for el, n in composition.items()), "g/mol")


def _atoms(formula: str | None) -> float:
    return sum(parse_formula(formula).values()) if formula else math.nan


# --- inputs ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class HostInput:
    """What (10.1)-(10.4) need for one material. ``li_density`` = n / V (Li per reference
    volume) is always known for a lithiating host; n and V separately need the formula unit
    (a card without a formula still has K_crit, which depends only on their ratio)."""

    name: str
    source: str
    formula: str | None = None
    voltage: Quantity | None = None  # U, average lithiation voltage at 0 V vs Li
    composition: float | None = None  # n, Li per formula unit; 0: takes no Li
    li_density: Quantity | None = None  # n / V
    molar_volume: Quantity | None = None  # V, per formula unit
    volume_strain: float | None = None  # ε, ΔV / V of the reaction
    molar_mass: Quantity | None = None
    card: MaterialCard | None = None  # gives the OCV for (10.5)
    note: str = ""

    @property
    def alloying(self) -> bool:
        return self.li_density is not None and magnitude(self.li_density, "mol/m^3") > 0


def non_alloying(name: str, source: str, formula: str | None, note: str,
                 molar_volume: Quantity | None = None) -> HostInput:
    """A material that takes no Li (Cu, Ti): n = 0, K_crit undefined."""
    return HostInput(name=name, source=source, formula=formula, composition=0.0, note=note,
                     molar_volume=molar_volume)


def _molar_mass_or_none(formula: str) -> Quantity | None:
    try:
        return molar_mass(formula)
    except ValueError:
        return None


def _card_formula(card: MaterialCard) -> tuple[str | None, Quantity | None]:
    """The card's formula unit and its molar mass, or (None, None) if it has no formula."""
    formula = CARD_FORMULAS.get(card.name, card.name)
    mass = _molar_mass_or_none(formula)
    return (formula, mass) if mass is not None else (None, None)


def average_ocv(card: MaterialCard, theta_end: float) -> Quantity:
    """Capacity-weighted mean of U_ocv over [0, θ_end] (the capacity is linear in θ)."""
    ocv = card.host.ocv  # type: ignore[union-attr]
    with np.errstate(divide="ignore"):  # an ideal OCV is log-singular at the ends; quad
        value, _ = quad(lambda t: float(ocv(t)), 0.0, theta_end, limit=200)  # skips them
    return Q_(value / theta_end, "V")


def host_from_card(card: MaterialCard) -> HostInput:
    """The screening data of a card, derived from its fields (none is added to the card):

    θ_0 = Li fraction reached at 0 V without confinement ((10.5) at p = 0; 1 for every
    shipped card); U = mean of U_ocv over [0, θ_0]; n / V = c_max θ_0; ε = Ω c_max θ_0
    (the chemical swelling of §6); V = M / ρ with M from the formula, n = c_max θ_0 V.
    """
    source = "card"
    formula, mass = _card_formula(card)
    volume = None if mass is None else (mass / card.density).to("cm^3/mol")
    if card.host is None:
        return non_alloying(card.name, source, formula, f"{card.kind}: takes no Li", volume)
    theta_end = theta_at_potential(card, 0.0)
    if theta_end == 0.0:
        return non_alloying(card.name, source, formula, "U_ocv(0) <= 0: no lithiation at 0 V",
                            volume)
    h = card.host
    li_density = h.c_max * theta_end
    return HostInput(
        name=card.name, source=source, formula=formula, card=card, molar_mass=mass,
        voltage=average_ocv(card, theta_end), li_density=li_density, molar_volume=volume,
        composition=None if volume is None else magnitude(li_density * volume, ""),
        volume_strain=float(swelling_ratio(card, theta_end)) - 1.0,
        note="" if volume is not None else "no formula data: n, V, G, n/K_crit undefined")


# --- results -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ScreeningRow:
    """One line of screening.csv; NaN where a value is undefined (see docs/screening.md)."""

    name: str
    source: str
    formula: str
    alloying: bool
    U_V: float
    n_Li_per_fu: float
    n_Li_per_atom: float
    epsilon: float
    V_cm3_per_mol: float
    G_eV_per_fu: float
    K_crit_GPa: float
    n_over_K_crit_per_GPa: float
    U_n_over_K_crit_eV_per_GPa: float
    K_1pct_GPa: float
    K_zero_GPa: float
    capacity_mAh_per_g: float
    note: str


def reaction_energy(n: float, voltage: Quantity) -> Quantity:
    """G = −n F U (10.1), per mole of formula units (J/mol)."""
    return (-n * F * voltage).to("J/mol")


def critical_modulus(energy_per_volume: Quantity, volume_strain: float) -> Quantity:
    """K_crit = −G / (V ε) (10.2), from G / V (what a card gives without a formula unit)."""
    if volume_strain <= 0:
        return Q_(math.inf, "GPa")  # no swelling: confinement cannot stop the reaction
    return (-energy_per_volume / volume_strain).to("GPa")


def confinement_for_capacity_fraction(card: MaterialCard, fraction: float) -> Quantity:
    """Confinement p at which the equilibrium Li fraction is `fraction` θ_0: the inverse of
    (10.5), p = F U_ocv(fraction θ_0) / Ω. ``fraction = 0`` gives full suppression."""
    h = card.host
    assert h is not None
    with np.errstate(divide="ignore"):
        potential = Q_(float(h.ocv(np.float64(fraction * theta_at_potential(card, 0.0)))), "V")
    if magnitude(h.molar_volume_li, "m^3/mol") == 0:
        return Q_(math.inf, "GPa")
    return (F * potential / h.molar_volume_li).to("GPa")


def screen(host: HostInput) -> ScreeningRow:
    """(10.1)-(10.4) for one host, plus the confinements of (10.5) for a card."""
    nan = math.nan
    n = host.composition if host.composition is not None else nan
    volume = magnitude(host.molar_volume, "cm^3/mol") if host.molar_volume is not None else nan
    common = dict(name=host.name, source=host.source, formula=host.formula or "",
                  n_Li_per_atom=n / _atoms(host.formula), V_cm3_per_mol=volume, note=host.note)
    if not host.alloying:
        return ScreeningRow(alloying=False, U_V=nan, n_Li_per_fu=0.0, epsilon=nan,
                            G_eV_per_fu=nan, K_crit_GPa=nan, n_over_K_crit_per_GPa=nan,
                            U_n_over_K_crit_eV_per_GPa=nan, K_1pct_GPa=nan, K_zero_GPa=nan,
                            capacity_mAh_per_g=0.0, **common)
    assert host.voltage is not None and host.li_density is not None
    assert host.volume_strain is not None
    U = magnitude(host.voltage, "V")
    energy_per_volume = reaction_energy(1.0, host.voltage) * host.li_density  # G / V
    K = magnitude(critical_modulus(energy_per_volume, host.volume_strain), "GPa")
    G = (nan if host.molar_volume is None
         else magnitude(energy_per_volume * host.molar_volume / N_A, "eV"))
    if host.card is not None:
        K_1pct = magnitude(confinement_for_capacity_fraction(host.card, 0.01), "GPa")
        K_zero = magnitude(confinement_for_capacity_fraction(host.card, 0.0), "GPa")
        capacity = magnitude(equilibrium_capacity_under_pressure(host.card, "0 Pa")[1], "mA*h/g")
    else:
        K_1pct = K_zero = nan
        capacity = magnitude(n * F / host.molar_mass, "mA*h/g") if host.molar_mass else nan
    return ScreeningRow(alloying=True, U_V=U, n_Li_per_fu=n, epsilon=host.volume_strain,
                        G_eV_per_fu=G, K_crit_GPa=K, n_over_K_crit_per_GPa=n / K,
                        U_n_over_K_crit_eV_per_GPa=U * n / K, K_1pct_GPa=K_1pct,
                        K_zero_GPa=K_zero, capacity_mAh_per_g=capacity, **common)


def capacity_vs_confinement(card: MaterialCard, K_GPa: np.ndarray) -> tuple[np.ndarray, ...]:
    """θ and capacity (mAh/g) held at 0 V under confinement K_eff (10.5), on a grid in GPa."""
    points = [equilibrium_capacity_under_pressure(card, Q_(k, "GPa")) for k in K_GPa]
    return (np.array([t for t, _ in points]),
            np.array([magnitude(c, "mA*h/g") for _, c in points]))


# --- user tables -------------------------------------------------------------------------

_TABLE_UNITS: dict[str, str | None] = {  # None: text
    "name": None, "formula": None, "notes": None, "voltage": "V", "composition": "",
    "capacity": "mA*h/g", "molar_volume": "m^3/mol", "density": "kg/m^3",
    "volume_change": "", "molar_volume_li": "m^3/mol", "molar_mass": "g/mol",
}
_POSITIVE = ("voltage", "molar_volume", "density", "volume_change", "molar_volume_li",
             "molar_mass")


def _one_of(values: Mapping[str, Any], names: tuple[str, str], what: str,
            errors: list[str], where: str) -> str | None:
    given = [n for n in names if n in values]
    if len(given) == 1:
        return given[0]
    errors.append(f"{where}: give {what}: exactly one of {' or '.join(names)}"
                  + (" (got both)" if given else ""))
    return None


def host_from_row(row: Mapping[str, Any], where: str, source: str) -> HostInput:
    """One material of a user table (fields: docs/screening.md); every problem is reported."""
    unknown = [k for k in row if k not in _TABLE_UNITS]
    if unknown:
        raise ScreeningInputError(f"{where}: unknown field(s) {', '.join(map(str, unknown))}; "
                                  f"allowed: {', '.join(_TABLE_UNITS)}")
    errors: list[str] = []
    text = {k: str(v).strip() for k, v in row.items() if _TABLE_UNITS[k] is None and v}
    values: dict[str, Quantity] = {}
    for key, unit in _TABLE_UNITS.items():
        raw = row.get(key)
        if unit is None or raw is None or (isinstance(raw, str) and not raw.strip()):
            continue
        try:
            q = parse_quantity(raw, unit, f"{where}, field '{key}'")
        except ValueError as err:
            errors.append(str(err))
            continue
        if magnitude(q, unit) < 0 or (key in _POSITIVE and magnitude(q, unit) == 0):
            rule = "> 0" if key in _POSITIVE else ">= 0"
            errors.append(f"{where}, field '{key}': must be {rule}, got '{raw}'")
        values[key] = q
    name, formula = text.get("name"), text.get("formula")
    if not name:
        errors.append(f"{where}: field 'name' is required")
    if formula:
        try:
            parse_formula(formula)
        except ValueError as err:
            errors.append(f"{where}, field 'formula': {err}")
    mass, mass_error = values.get("molar_mass"), "give molar_mass, or a formula of known elements"
    if mass is None and formula:
        try:
            mass = molar_mass(formula)
        except ValueError as err:
            mass_error = str(err)

    def with_mass(key: str) -> Quantity | None:
        if mass is None:
            errors.append(f"{where}, field '{key}' needs the molar mass: {mass_error}")
        return mass

    n: float | None = None
    uptake = _one_of(values, ("composition", "capacity"), "the Li uptake", errors, where)
    if uptake == "composition":
        n = magnitude(values["composition"], "")
    elif uptake == "capacity" and with_mass("capacity") is not None:
        n = magnitude(values["capacity"] * mass / F, "")
    if n == 0 and not errors:
        return non_alloying(name or "", source, formula, text.get("notes", "") or "takes no Li")
    volume: Quantity | None = None
    reference = _one_of(values, ("molar_volume", "density"), "V", errors, where)
    if reference == "molar_volume":
        volume = values["molar_volume"]
    elif reference == "density" and with_mass("density") is not None:
        volume = mass / values["density"]
    strain: float | None = None
    swelling = _one_of(values, ("volume_change", "molar_volume_li"), "ε", errors, where)
    if swelling == "volume_change":
        strain = magnitude(values["volume_change"], "")
    elif swelling == "molar_volume_li" and volume is not None and n is not None:
        strain = magnitude(n * values["molar_volume_li"] / volume, "")
    if "voltage" not in values:
        errors.append(f"{where}: field 'voltage' (average lithiation voltage, > 0 V) is "
                      "required for a material that takes up Li")
    if errors:
        raise ScreeningInputError("\n  ".join(errors))
    assert name and n is not None and volume is not None and strain is not None
    return HostInput(name=name, source=source, formula=formula, voltage=values["voltage"],
                     composition=n, li_density=(n / volume).to("mol/m^3"),
                     molar_volume=volume.to("cm^3/mol"), volume_strain=strain, molar_mass=mass,
                     note=text.get("notes", ""))


# --- computed entries: the phase equilibrium with Li metal at 0 V -------------------------


@dataclass(frozen=True)
class Entry:
    """A computed phase: total energy (eV) and volume (Å³, optional) of `formula` as written."""

    formula: str
    energy_eV: float
    volume_A3: float | None = None

    @property
    def composition(self) -> dict[str, float]:
        return parse_formula(self.formula)


def lithiation_at_zero_volts(
    host: Entry, entries: Sequence[Entry]
) -> tuple[float, float, list[tuple[Entry, float]]]:
    """n, G (eV per formula unit of `host`) and the products [(entry, amount)] of the
    reaction host + n Li → products in equilibrium with Li metal (μ_Li = that of the
    lowest-energy Li entry, i.e. 0 V vs Li).

    The products minimise the grand potential Σ a_j (E_j − N_Li,j μ_Li) over phases built
    of the host's elements and Li, at fixed amounts of the non-Li elements: a linear
    program whose optimum is a facet of the Li-open convex hull, the same equilibrium as a
    pymatgen phase diagram evaluated at 0 V. Then G = Σ a_j E_j − n μ_Li − E_host (10.1).
    """
    lithium = [e.energy_eV / e.composition["Li"] for e in entries if set(e.composition) == {"Li"}]
    if not lithium:
        raise ScreeningInputError("the entry set needs a Li metal entry (formula 'Li')")
    mu_li = min(lithium)
    elements = sorted(set(host.composition) - {"Li"})
    phases = [e for e in entries
              if set(e.composition) - {"Li"} and set(e.composition) <= {*elements, "Li"}]
    cost = [e.energy_eV - e.composition.get("Li", 0.0) * mu_li for e in phases]
    matrix = [[e.composition.get(el, 0.0) for e in phases] for el in elements]
    target = [host.composition[el] for el in elements]
    solution = linprog(cost, A_eq=matrix, b_eq=target, bounds=(0, None), method="highs")
    if not solution.success:
        raise ScreeningInputError(
            f"entry '{host.formula}': no phase equilibrium ({solution.message})")
    products = [(p, float(a)) for p, a in zip(phases, solution.x, strict=True) if a > 1e-9]
    n = sum(a * p.composition.get("Li", 0.0) for p, a in products)
    n -= host.composition.get("Li", 0.0)
    energy = sum(a * p.energy_eV for p, a in products)
    return n, energy - n * mu_li - host.energy_eV, products


def hosts_from_entries(entries: Sequence[Entry], hosts: Sequence[str] | None,
                       source: str) -> list[HostInput]:
    """Screening data of each host formula (default: every Li-free composition, its
    lowest-energy entry per atom) from the phase equilibrium at 0 V."""
    lowest: dict[str, Entry] = {}  # formula -> lowest-energy entry of that formula
    for e in entries:
        if e.formula not in lowest or e.energy_eV < lowest[e.formula].energy_eV:
            lowest[e.formula] = e
    if hosts is None:
        best: dict[tuple, Entry] = {}
        for e in lowest.values():
            c = e.composition
            if "Li" in c:
                continue
            atoms = sum(c.values())
            key = tuple(sorted((el, round(x / atoms, 6)) for el, x in c.items()))
            if key not in best or e.energy_eV / atoms < (
                    best[key].energy_eV / sum(best[key].composition.values())):
                best[key] = e
        hosts = [e.formula for e in best.values()]
    missing = [h for h in hosts if h not in lowest]
    if missing:
        raise ScreeningInputError(f"hosts not among the entries: {', '.join(missing)}")
    result = []
    for formula in hosts:
        host = lowest[formula]
        n, G, products = lithiation_at_zero_volts(host, entries)
        if n <= 1e-9:
            result.append(non_alloying(formula, source, formula, "no Li uptake at 0 V"))
            continue
        if host.volume_A3 is None or any(p.volume_A3 is None for p, _ in products):
            raise ScreeningInputError(
                f"entry '{formula}': the volumes of {formula} and of its lithiation products "
                f"{', '.join(p.formula for p, _ in products)} are needed for ε and V")
        v_host = Q_(host.volume_A3, "angstrom^3") * N_A
        v_products = sum(a * p.volume_A3 for p, a in products)  # type: ignore[operator]
        note = "0 V products: " + " + ".join(f"{a:.4g} {p.formula}" for p, a in products)
        result.append(HostInput(
            name=formula, source=source, formula=formula, voltage=Q_(-G / n, "V"), composition=n,
            li_density=(n / v_host).to("mol/m^3"), molar_volume=v_host.to("cm^3/mol"),
            molar_mass=_molar_mass_or_none(formula),
            volume_strain=v_products / host.volume_A3 - 1.0, note=note))
    return result


def entries_from_pymatgen(entries: Iterable[Any]) -> list[Entry]:
    """`Entry`s from pymatgen ComputedEntry / ComputedStructureEntry objects (duck-typed:
    .composition, .energy, and .structure.volume or .data['volume'])."""
    result = []
    for e in entries:
        formula = "".join(f"{el}{'' if x == 1 else f'{x:g}'}" for el, x in e.composition.items())
        structure = getattr(e, "structure", None)
        volume = structure.volume if structure is not None else e.data.get("volume")
        result.append(Entry(formula, float(e.energy), None if volume is None else float(volume)))
    return result


def _entries_from_spec(spec: Any, where: str) -> list[Entry]:
    if not isinstance(spec, list) or not spec:
        raise ScreeningInputError(f"{where}: 'entries' must be a non-empty list")
    entries = []
    for i, item in enumerate(spec):
        at = f"{where}, entries[{i}]"
        if not isinstance(item, Mapping) or not {"formula", "energy"} <= set(item) or not set(
                item) <= {"formula", "energy", "volume"}:
            raise ScreeningInputError(f"{at}: expected {{formula, energy, volume}} "
                                      "(energy: total energy of the formula, e.g. '-10.8 eV')")
        try:
            parse_formula(str(item["formula"]))
            energy = magnitude(parse_quantity(item["energy"], "eV", f"{at}.energy"), "eV")
            volume = item.get("volume")
            if volume is not None:
                volume = magnitude(parse_quantity(volume, "angstrom^3", f"{at}.volume"),
                                   "angstrom^3")
        except ValueError as err:
            raise ScreeningInputError(f"{at}: {err}") from None
        entries.append(Entry(str(item["formula"]), energy, volume))
    return entries


def load_user_materials(path: Path) -> list[HostInput]:
    """Hosts from a user file: a table (.csv; or .yaml/.json: a list of rows or a mapping
    name -> row), an entry set (.yaml/.json with `entries:` and optional `hosts:`), or a
    JSON list of pymatgen entries (needs pymatgen)."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise ScreeningInputError(f"{where}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            with path.open(newline="", encoding="utf-8") as handle:
                data: Any = list(csv.DictReader(handle))
        elif suffix in (".yaml", ".yml"):
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        elif suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            raise ScreeningInputError(f"{where}: expected a .csv, .yaml, .yml or .json file")
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ScreeningInputError(f"{where}: cannot be read ({err})") from None
    if isinstance(data, list) and data and isinstance(data[0], Mapping) and "@module" in data[0]:
        try:
            from monty.serialization import loadfn
        except ImportError:
            raise ScreeningInputError(
                f"{where}: holds pymatgen entries; reading them needs pymatgen "
                "(pip install pymatgen), or write them as entries: [{formula, energy, volume}]"
            ) from None
        return hosts_from_entries(entries_from_pymatgen(loadfn(path)), None,
                                  f"entries:{path.name}")
    if isinstance(data, Mapping) and "entries" in data:
        if not set(data) <= {"entries", "hosts"}:
            raise ScreeningInputError(f"{where}: an entry set has only 'entries' and 'hosts'")
        hosts = data.get("hosts")
        if hosts is not None and not (isinstance(hosts, list)
                                      and all(isinstance(h, str) for h in hosts)):
            raise ScreeningInputError(f"{where}: 'hosts' must be a list of formulas")
        return hosts_from_entries(_entries_from_spec(data["entries"], where), hosts,
                                  f"entries:{path.name}")
    if isinstance(data, Mapping):
        data = [{"name": str(k), **v} if isinstance(v, Mapping) else v for k, v in data.items()]
    if not isinstance(data, list) or not data:
        raise ScreeningInputError(f"{where}: expected a non-empty table of materials")
    hosts_out, errors = [], []
    for i, row in enumerate(data):
        label = f"{where}, row {i + 1}" + (f" ('{row.get('name')}')"
                                          if isinstance(row, Mapping) and row.get("name") else "")
        if not isinstance(row, Mapping):
            errors.append(f"{label}: expected a mapping of field: value")
            continue
        try:
            hosts_out.append(host_from_row(row, label, f"table:{path.name}"))
        except ScreeningInputError as err:
            errors.append(str(err))
    names = [h.name for h in hosts_out]
    errors += [f"{where}: material name '{n}' appears twice" for n in sorted(set(names))
               if names.count(n) > 1]
    if errors:
        raise ScreeningInputError("\n  ".join(errors))
    return hosts_out


# --- the whole screening -----------------------------------------------------------------


@dataclass(frozen=True)
class Screening:
    rows: list[ScreeningRow]
    curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]  # name: K (GPa), θ, mAh/g


def run_screening(materials: Path | None = None, cards: Sequence[Path] = (),
                  k_max: Quantity | str = "10 GPa", n_points: int = 201) -> Screening:
    """Screen every host, conductor and insulator card (plus the cards of `cards`, merged
    as `load_library(extra=...)` does) and the materials of a user file; capacity curves
    (10.5) for the host cards on K_eff = 0 ... k_max."""
    try:
        library = load_library(extra=[Path(c) for c in cards])
    except (OSError, ValueError) as err:
        raise ScreeningInputError(str(err)) from None
    inputs = [host_from_card(c) for c in library.values() if c.kind in SCREENED_KINDS]
    if materials is not None:
        inputs += load_user_materials(materials)
    k_top = magnitude(parse_quantity(k_max, "Pa", "k_max"), "GPa")
    if not k_top > 0:
        raise ScreeningInputError(f"k_max: must be > 0, got '{k_max}'")
    grid = np.linspace(0.0, k_top, n_points)
    curves = {h.name: (grid, *capacity_vs_confinement(h.card, grid))
              for h in inputs if h.card is not None and h.alloying}
    return Screening([screen(h) for h in inputs], curves)


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def write_screening(result: Screening, folder: Path) -> None:
    """screening.csv/.png and capacity_vs_confinement.csv/.png in an existing folder
    (call on one rank only)."""
    from postprocess.screening_plot import plot_capacity_vs_confinement, plot_screening_map

    columns = [f.name for f in fields(ScreeningRow)]
    with (folder / "screening.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows([_fmt(v) for v in asdict(row).values()] for row in result.rows)
    with (folder / "capacity_vs_confinement.csv").open("w", newline="", encoding="utf-8") as h:
        writer = csv.writer(h)
        writer.writerow(["material", "K_eff_GPa", "theta", "capacity_mAh_per_g",
                         "capacity_fraction"])
        for name, (K, theta, capacity) in result.curves.items():
            for k, t, c in zip(K, theta, capacity, strict=True):
                writer.writerow([name, _fmt(float(k)), _fmt(float(t)), _fmt(float(c)),
                                 _fmt(float(c / capacity[0]) if capacity[0] > 0 else math.nan)])
    plot_screening_map(folder / "screening.csv", folder / "screening.png")
    plot_capacity_vs_confinement(folder / "capacity_vs_confinement.csv",
                                 folder / "capacity_vs_confinement.png",
                                 folder / "screening.csv")


def log_table(result: Screening) -> None:
    """The main columns, one line per material."""
    log.info("%-12s %-10s %6s %6s %6s %7s %7s %7s %7s %7s %7s", "material", "source", "U/V", "n",
             "eps", "V", "G/eV", "K/GPa", "n/K", "Un/K", "K1%")
    for r in result.rows:
        log.info("%-12s %-10s %6s %6s %6s %7s %7s %7s %7s %7s %7s", r.name[:12], r.source[:8],
                 *(_fmt(round(v, 4)) if isinstance(v, float) and math.isfinite(v) else _fmt(v)
                   for v in (r.U_V, r.n_Li_per_fu, r.epsilon, r.V_cm3_per_mol, r.G_eV_per_fu,
                             r.K_crit_GPa, r.n_over_K_crit_per_GPa,
                             r.U_n_over_K_crit_eV_per_GPa, r.K_1pct_GPa)))
