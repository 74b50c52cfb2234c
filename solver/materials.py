"""Material cards and material functions (MODEL §3-§6, §10, §11).

A material is data plus pure functions. The data are cards in ``data/materials.yaml``
(every dimensional value a string with units, every card with its sources). The loader
turns them into frozen dataclasses holding pint Quantities. The functions below take
floats, numpy arrays or UFL expressions in internal units (see ``solver.units``) and
return the same kind of object in internal units. Each formula is written once and
picks numpy or UFL functions by the type of its arguments. No material constant is
hard-coded here: every number comes from a card.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import ufl
import yaml

from solver.units import CONDUCTIVITY_SCALED, Q_, F, Quantity, R, k_B, magnitude, parse_quantity

Scalar = float | np.ndarray | ufl.core.expr.Expr
"""What the material functions take and return: a float, a numpy array or a UFL expression."""

DEFAULT_LIBRARY = Path(__file__).parent / "data" / "materials.yaml"
KINDS = ("host", "electrolyte", "conductor", "insulator", "metal")


class _Ops(NamedTuple):
    exp: Callable[[Any], Any]
    log: Callable[[Any], Any]
    tanh: Callable[[Any], Any]
    pos: Callable[[Any], Any]  # <x>_+ = max(x, 0)


_NUMPY = _Ops(np.exp, np.log, np.tanh, lambda x: np.maximum(x, 0.0))
_UFL = _Ops(ufl.exp, ufl.ln, ufl.tanh, lambda x: ufl.max_value(x, 0.0))


def _ops(*args: Any) -> _Ops:
    """UFL functions if any argument is a UFL expression, numpy functions otherwise."""
    return _UFL if any(isinstance(a, ufl.core.expr.Expr) for a in args) else _NUMPY


# --- open-circuit potentials (closed forms, in V, of the Li fraction θ) --------------------


def _horner(coefficients: tuple[float, ...], x: Scalar) -> Scalar:
    result: Any = coefficients[0]
    for c in coefficients[1:]:
        result = result * x + c
    return result


@dataclass(frozen=True)
class PolynomialOCV:
    """U(θ) = Σ_k a_k θ^k; ``coefficients`` in V, highest power first."""

    coefficients: tuple[float, ...]

    def __call__(self, theta: Scalar) -> Scalar:
        return _horner(self.coefficients, theta)

    def derivative(self, theta: Scalar) -> Scalar:
        n = len(self.coefficients) - 1
        return _horner(tuple(c * (n - k) for k, c in enumerate(self.coefficients[:-1])), theta)


@dataclass(frozen=True)
class IdealSolutionOCV:
    """U(θ) = U0 + (R T / F) ln((1 − θ)/θ): an ideal lattice gas (U0 in V, T in K).

    With this OCV the flux (3.3) is Fick's law J = −D c_max ∇θ (at the same T).
    """

    U0: float
    temperature: float

    @property
    def thermal_voltage(self) -> float:
        return magnitude(R * Q_(self.temperature, "K") / F, "V")

    def __call__(self, theta: Scalar) -> Scalar:
        return self.U0 + self.thermal_voltage * _ops(theta).log((1 - theta) / theta)

    def derivative(self, theta: Scalar) -> Scalar:
        return -self.thermal_voltage / (theta * (1 - theta))


@dataclass(frozen=True)
class ExpTanhOCV:
    """U(θ) = U_c + Σ a_i exp(b_i θ) + Σ c_j tanh(d_j (θ − e_j)); U_c, a_i, c_j in V."""

    constant: float
    exp_terms: tuple[tuple[float, float], ...]  # (a_i, b_i)
    tanh_terms: tuple[tuple[float, float, float], ...]  # (c_j, d_j, e_j)

    def __call__(self, theta: Scalar) -> Scalar:
        m = _ops(theta)
        u: Any = self.constant
        for a, b in self.exp_terms:
            u = u + a * m.exp(b * theta)
        for c, d, e in self.tanh_terms:
            u = u + c * m.tanh(d * (theta - e))
        return u

    def derivative(self, theta: Scalar) -> Scalar:
        m = _ops(theta)
        du: Any = 0.0
        for a, b in self.exp_terms:
            du = du + a * b * m.exp(b * theta)
        for c, d, e in self.tanh_terms:
            du = du + c * d * (1 - m.tanh(d * (theta - e)) ** 2)
        return du


OCV = PolynomialOCV | IdealSolutionOCV | ExpTanhOCV


# --- cards -------------------------------------------------------------------------------

_CHECKS: dict[str, tuple[Callable[[float], bool], str]] = {
    "positive": (lambda v: v > 0, "must be > 0"),
    "nonnegative": (lambda v: v >= 0, "must be >= 0"),
    "fraction": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "open_unit": (lambda v: 0 < v < 1, "must be in (0, 1)"),
    "poisson": (lambda v: 0 < v < 0.5, "must be in (0, 0.5)"),
}


def _value(unit: str | None, check: str = "positive", group: str | None = None) -> Any:
    """A card field: its unit ("" for a plain number, None for the OCV block), its range
    check, and, for optional fields, the group that must be given all together or not at all."""
    meta = {"unit": unit, "check": check, "group": group}
    return field(default=None, metadata=meta) if group else field(metadata=meta)


@dataclass(frozen=True, kw_only=True)
class HostProperties:
    """A particle material that stores Li (MODEL §3, §5, §6)."""

    c_max: Quantity = _value("mol/m^3")  # Li per reference volume at θ = 1
    molar_volume_li: Quantity = _value("m^3/mol", "nonnegative")  # Ω, (3.1)
    ocv: OCV = _value(None)  # U_ocv(θ), (3.2)
    D0: Quantity = _value("m^2/s")  # pristine, (3.4)
    D1: Quantity = _value("m^2/s")  # fully lithiated, (3.4)
    E_D: Quantity = _value("eV", "nonnegative")  # Arrhenius activation energy, (3.4)
    T_ref: Quantity = _value("K")
    i0_alloy: Quantity = _value("A/m^2")  # alloying on Γ_EH, (5.1)
    alpha: float = _value("", "open_unit")  # transfer coefficient, (5.1)
    i0_forced_plating: Quantity = _value("A/m^2")  # Li(host) -> Li(metal) on Γ_HP, §5
    nucleation_overpotential: Quantity = _value("V", "nonnegative")  # η_nuc on Γ_HP, §5
    theta_initial: float = _value("", "fraction")
    youngs_modulus_lithiated: Quantity = _value("Pa")  # E at θ = 1, §6
    A_b: Quantity | None = _value("eV", "nonnegative", group="barrier")  # (3.5)
    s0: float | None = _value("", "nonnegative", group="barrier")  # (3.5)
    yield_stress_pristine: Quantity | None = _value("Pa", group="plasticity")  # (6.2)
    yield_stress_lithiated: Quantity | None = _value("Pa", group="plasticity")  # (6.2)
    viscoplastic_rate: Quantity | None = _value("1/s", group="plasticity")  # ε̇_0, (6.2)
    viscoplastic_exponent: float | None = _value("", group="plasticity")  # m, (6.2)
    elastic_threshold: float | None = _value("", "fraction", group="plasticity")  # θ, §6


@dataclass(frozen=True, kw_only=True)
class ElectrolyteProperties:
    """A solid electrolyte (MODEL §4, §5)."""

    conductivity: Quantity = _value("S/m")  # κ at T_ref, (4.1)
    activation_energy: Quantity = _value("eV", "nonnegative")  # (4.1)
    T_ref: Quantity = _value("K")
    i0_plating: Quantity = _value("A/m^2")  # Li plating on Γ_EP, (5.1)
    alpha_plating: float = _value("", "open_unit")


@dataclass(frozen=True, kw_only=True)
class MetalProperties:
    """Plated Li metal (MODEL §7): ε̇ = A (σ/σ_ref)^n exp(−(Q/R)(1/T − 1/T_ref))."""

    molar_volume: Quantity = _value("m^3/mol")  # Ω_Li, §5 and (7.1)
    bulk_modulus: Quantity = _value("Pa")  # K_Li, (7.2)
    creep_exponent: float = _value("")  # n, (7.3)
    creep_prefactor: Quantity = _value("1/s")  # A_cr at σ = σ_ref and T_ref, (7.3)
    creep_reference_stress: Quantity = _value("Pa")  # σ_ref
    creep_activation_energy: Quantity = _value("eV", "nonnegative")  # Q
    T_ref: Quantity = _value("K")


@dataclass(frozen=True, kw_only=True)
class ConductorProperties:
    """An inert electronic conductor (Cu, Ti): takes no Li, only offers electrons (§5)."""

    nucleation_overpotential: Quantity = _value("V", "nonnegative")  # η_nuc of Li on it, §5


_PROPERTIES: dict[str, type] = {  # the block each kind carries, under the kind's name
    "host": HostProperties,
    "electrolyte": ElectrolyteProperties,
    "conductor": ConductorProperties,
    "metal": MetalProperties,
}
_BOOKKEEPING = ("kind", "sources", "calibrated", "assumed", "notes")


@dataclass(frozen=True, kw_only=True)
class MaterialCard:
    """One material: mechanical data for every kind, plus the block of its kind.

    ``calibrated`` lists fields tuned to reproduce the paper, ``assumed`` fields that are
    modelling assumptions or estimates without a primary measurement; ``overridden`` the
    fields changed by ``apply_overrides``; ``spec`` the card as written (for provenance).
    """

    name: str
    kind: str
    density: Quantity = _value("kg/m^3")
    youngs_modulus: Quantity = _value("Pa")  # E (of the pristine material for hosts)
    poisson_ratio: float = _value("", "poisson")
    sources: tuple[str, ...]
    calibrated: tuple[str, ...] = ()
    assumed: tuple[str, ...] = ()
    notes: str = ""
    host: HostProperties | None = None
    electrolyte: ElectrolyteProperties | None = None
    conductor: ConductorProperties | None = None
    metal: MetalProperties | None = None
    overridden: tuple[str, ...] = ()
    spec: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


def _data_fields(cls: type) -> list[Any]:
    return [f for f in fields(cls) if "unit" in f.metadata]


def _field_names(kind: str) -> list[str]:
    names = [f.name for f in _data_fields(MaterialCard)]
    if kind in _PROPERTIES:
        names += [f.name for f in _data_fields(_PROPERTIES[kind])]
    return names


def _unknown_field_error(where: str, key: object, allowed: list[str]) -> ValueError:
    close = difflib.get_close_matches(str(key), allowed, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ValueError(f"{where}: unknown field '{key}'{hint}; allowed: {', '.join(allowed)}")


def _check_keys(spec: Mapping[str, Any], allowed: list[str], where: str) -> None:
    for key in spec:
        if key not in allowed:
            raise _unknown_field_error(where, key, allowed)


_OCV_KEYS = {
    "polynomial": ["coefficients"],
    "ideal": ["U0", "temperature"],
    "exp_tanh": ["constant", "exp", "tanh"],
}


def _build_ocv(spec: Any, where: str, T_ref: float) -> OCV:
    """The OCV of a card's ``ocv`` block; it must decrease strictly on (0, 1)."""
    kind = spec.get("type") if isinstance(spec, Mapping) else None
    if kind not in _OCV_KEYS:
        raise ValueError(f"{where}: expected a mapping with type: {' | '.join(_OCV_KEYS)}")
    _check_keys(spec, ["type", *_OCV_KEYS[kind]], where)

    def value(text: Any, path: str, unit: str = "V") -> float:
        return magnitude(parse_quantity(text, unit, f"{where}.{path}"), unit)

    ocv: OCV
    try:
        if kind == "polynomial":
            coefficients = enumerate(spec["coefficients"])
            ocv = PolynomialOCV(tuple(value(c, f"coefficients[{i}]") for i, c in coefficients))
        elif kind == "ideal":
            T = spec.get("temperature")
            T_ocv = T_ref if T is None else value(T, "temperature", "K")
            ocv = IdealSolutionOCV(value(spec["U0"], "U0"), T_ocv)
        else:
            exp_terms = tuple(
                (
                    value(t["amplitude"], f"exp[{i}].amplitude"),
                    value(t["rate"], f"exp[{i}].rate", ""),
                )
                for i, t in enumerate(spec.get("exp", []))
            )
            tanh_terms = tuple(
                (
                    value(t["amplitude"], f"tanh[{i}].amplitude"),
                    value(t["slope"], f"tanh[{i}].slope", ""),
                    value(t["center"], f"tanh[{i}].center", ""),
                )
                for i, t in enumerate(spec.get("tanh", []))
            )
            ocv = ExpTanhOCV(value(spec["constant"], "constant"), exp_terms, tanh_terms)
    except (KeyError, TypeError) as err:
        raise ValueError(f"{where}: malformed {kind} OCV (missing or misplaced {err})") from None
    # (3.3) is a diffusion equation only where dU/dθ < 0: require a strictly decreasing OCV.
    theta = np.linspace(1e-3, 1 - 1e-3, 999)
    rising = np.diff(ocv(theta)) >= 0
    if rising.any():
        raise ValueError(
            f"{where}: U_ocv must decrease strictly with θ on (0, 1) (MODEL (3.3)); "
            f"it does not near θ = {theta[np.argmax(rising)]:.3f}"
        )
    return ocv


def _parse_fields(cls: type, spec: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The constructor arguments of ``cls`` from a card: parsed, unit- and range-checked."""
    values: dict[str, Any] = {}
    groups: dict[str, list[str]] = {}
    for f in _data_fields(cls):
        unit, check, group = f.metadata["unit"], f.metadata["check"], f.metadata["group"]
        if group:
            groups.setdefault(group, []).append(f.name)
        if f.name not in spec:
            if group is None:
                raise ValueError(f"{where}: required field '{f.name}' is missing")
            continue
        if unit is None:  # the OCV block, built below once T_ref is known
            continue
        label = f"{where}, field '{f.name}'"
        q = parse_quantity(spec[f.name], unit, label)
        ok, rule = _CHECKS[check]
        if not ok(magnitude(q, unit)):
            raise ValueError(f"{label}: {rule}, got '{spec[f.name]}'")
        values[f.name] = magnitude(q, "") if unit == "" else q
    for group, members in groups.items():
        missing = [m for m in members if m not in spec]
        if missing and len(missing) < len(members):
            raise ValueError(
                f"{where}: the {group} fields {', '.join(members)} go together; "
                f"missing {', '.join(missing)}"
            )
    if cls is HostProperties:
        T_ref = magnitude(values["T_ref"], "K")
        values["ocv"] = _build_ocv(spec["ocv"], f"{where}, field 'ocv'", T_ref)
    return values


def _names_list(
    spec: Mapping[str, Any], key: str, allowed: list[str], where: str
) -> tuple[str, ...]:
    items = spec.get(key, [])
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        raise ValueError(f"{where}, field '{key}': expected a list of field names")
    for item in items:
        if item not in allowed:
            raise _unknown_field_error(f"{where}, field '{key}'", item, allowed)
    return tuple(items)


def _build_card(name: str, spec: Any, overridden: tuple[str, ...] = ()) -> MaterialCard:
    where = f"material '{name}'"
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where}: a card must be a mapping of field: value")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise ValueError(f"{where}, field 'kind': must be one of {', '.join(KINDS)}, got '{kind}'")
    allowed = _field_names(kind)
    _check_keys(spec, [*_BOOKKEEPING, *allowed], where)
    sources = spec.get("sources")
    if not (
        isinstance(sources, list)
        and sources
        and all(isinstance(s, str) and s.strip() for s in sources)
    ):
        raise ValueError(f"{where}, field 'sources': a non-empty list of citations is required")
    notes = spec.get("notes", "")
    if not isinstance(notes, str):
        raise ValueError(f"{where}, field 'notes': expected text")
    properties = {}
    if kind in _PROPERTIES:
        cls = _PROPERTIES[kind]
        properties[kind] = cls(**_parse_fields(cls, spec, where))
    return MaterialCard(
        name=name,
        kind=kind,
        sources=tuple(sources),
        calibrated=_names_list(spec, "calibrated", allowed, where),
        assumed=_names_list(spec, "assumed", allowed, where),
        notes=notes,
        overridden=overridden,
        spec=dict(spec),
        **_parse_fields(MaterialCard, spec, where),
        **properties,
    )


def load_library(path: Path | None = None, extra: Iterable[Path] = ()) -> dict[str, MaterialCard]:
    """Read the material cards from ``path`` (default: the packaged library), then merge
    the cards of each file in ``extra`` on top, field by field (a new name adds a card)."""
    merged: dict[str, dict[str, Any]] = {}
    for file in [path or DEFAULT_LIBRARY, *extra]:
        with open(file, encoding="utf-8") as stream:
            cards = yaml.safe_load(stream) or {}
        if not isinstance(cards, Mapping):
            raise ValueError(f"{file}: expected a mapping of material name: card")
        for name, card in cards.items():
            if not isinstance(card, Mapping):
                raise ValueError(f"{file}: material '{name}': a card must be a mapping")
            merged[str(name)] = {**merged.get(str(name), {}), **card}
    return {name: _build_card(name, spec) for name, spec in merged.items()}


def apply_overrides(card: MaterialCard, overrides: Mapping[str, Any]) -> MaterialCard:
    """A copy of ``card`` with some fields replaced, e.g. {"i0_alloy": "2 mA/cm^2"};
    validated like a card from the library."""
    allowed = _field_names(card.kind)
    for key in overrides:
        if key not in allowed:
            raise _unknown_field_error(f"material '{card.name}', override", key, allowed)
    overridden = tuple(dict.fromkeys([*card.overridden, *overrides]))
    return _build_card(card.name, {**card.spec, **overrides}, overridden)


# --- material functions ------------------------------------------------------------------


def _host(card: MaterialCard) -> HostProperties:
    if card.host is None:
        raise ValueError(f"material '{card.name}' is a {card.kind}, not a host")
    return card.host


def _electrolyte(card: MaterialCard) -> ElectrolyteProperties:
    if card.electrolyte is None:
        raise ValueError(f"material '{card.name}' is a {card.kind}, not an electrolyte")
    return card.electrolyte


def equilibrium_potential(host: MaterialCard, theta: Scalar, sigma_h_MPa: Scalar) -> Scalar:
    """Stress-corrected equilibrium potential (V) for hydrostatic stress σ_h (MPa, tension > 0)."""
    h = _host(host)
    volts_per_MPa = magnitude(h.molar_volume_li * Q_(1.0, "MPa") / F, "V")
    return h.ocv(theta) + volts_per_MPa * sigma_h_MPa  # (3.2)


def barrier_increase_eV(eps_lat: Scalar, A_b: float, s0: float) -> Scalar:
    """Increase of the Li migration barrier (eV) under lattice strain ε_lat (A_b in eV)."""
    return A_b * _ops(eps_lat).pos(-eps_lat - s0) ** 2  # (3.5), zero in tension


def diffusivity(host: MaterialCard, theta: Scalar, eps_lat: Scalar, T: Scalar) -> Scalar:
    """Li diffusivity (µm²/s) at Li fraction θ, lattice strain ε_lat and temperature T (K)."""
    h = _host(host)
    kB = magnitude(k_B, "eV/K")
    barrier = 0.0 if h.A_b is None else barrier_increase_eV(eps_lat, magnitude(h.A_b, "eV"), h.s0)
    # (3.4): D0^(1-θ) D1^θ exp(-ΔE_a/k_B T) exp(-(E_D/R)(1/T - 1/T_ref)), in one exponential
    return _ops(theta, eps_lat, T).exp(
        (1 - theta) * np.log(magnitude(h.D0, "um^2/s"))
        + theta * np.log(magnitude(h.D1, "um^2/s"))
        - barrier / (kB * T)
        - magnitude(h.E_D, "eV") / kB * (1 / T - 1 / magnitude(h.T_ref, "K"))
    )


def conductivity(el: MaterialCard, T: Scalar) -> Scalar:
    """Ionic conductivity (S/m) at temperature T (K), Arrhenius from the value at T_ref."""
    e = _electrolyte(el)
    kB = magnitude(k_B, "eV/K")
    return magnitude(e.conductivity, "S/m") * _ops(T).exp(  # (4.1)
        -magnitude(e.activation_energy, "eV") / kB * (1 / T - 1 / magnitude(e.T_ref, "K"))
    )


def conductivity_scaled(el: MaterialCard, T: Scalar) -> Scalar:
    """κ(T) in A/m² per V/µm: the coefficient of (4.1) in µm coordinates with A/m² currents."""
    return magnitude(Q_(1.0, "S/m"), CONDUCTIVITY_SCALED) * conductivity(el, T)


def youngs_modulus(host: MaterialCard, theta: Scalar) -> Scalar:
    """Young's modulus (MPa), linear in θ from the pristine to the lithiated value (§6)."""
    E1 = magnitude(_host(host).youngs_modulus_lithiated, "MPa")
    E0 = magnitude(host.youngs_modulus, "MPa")
    return E0 + (E1 - E0) * theta  # §6


def yield_stress(host: MaterialCard, theta: Scalar) -> Scalar:
    """Yield stress σ_Y (MPa) of (6.2), linear in θ from the pristine to the lithiated value."""
    h = _host(host)
    if h.yield_stress_pristine is None or h.yield_stress_lithiated is None:
        raise ValueError(f"material '{host.name}' has no plasticity fields (it is elastic)")
    Y0 = magnitude(h.yield_stress_pristine, "MPa")
    return Y0 + (magnitude(h.yield_stress_lithiated, "MPa") - Y0) * theta  # (6.2)


def creep_coefficient(metal: MaterialCard, T: Scalar) -> Scalar:
    """A_cr(T) in s⁻¹ MPa⁻ⁿ of the creep law ε̇ = A_cr σⁿ (σ in MPa) used in (7.3)."""
    if metal.metal is None:
        raise ValueError(f"material '{metal.name}' is a {metal.kind}, not a metal")
    m = metal.metal
    kB = magnitude(k_B, "eV/K")
    A_ref = magnitude(m.creep_prefactor, "1/s")
    sigma_ref = magnitude(m.creep_reference_stress, "MPa")
    Q = magnitude(m.creep_activation_energy, "eV")
    return A_ref * sigma_ref ** -m.creep_exponent * _ops(T).exp(  # (7.3), Arrhenius in T
        -Q / kB * (1 / T - 1 / magnitude(m.T_ref, "K"))
    )


def swelling_ratio(host: MaterialCard, theta: Scalar) -> Scalar:
    """Volume ratio J_c = det F_c = 1 + Ω c_max θ of the chemical stretch (§6)."""
    h = _host(host)
    return 1 + magnitude(h.molar_volume_li * h.c_max, "") * theta  # §6


def theta_at_potential(card: MaterialCard, potential: float) -> float:
    """Li fraction θ at which the unstressed OCV equals `potential` (V): U_ocv(θ) = potential.

    Bisection on the (strictly decreasing) OCV; θ = 1 if U_ocv(1) is still above the
    potential, θ = 0 if U_ocv(0) is already below it.
    """
    ocv = _host(card).ocv
    with np.errstate(divide="ignore"):
        if ocv(np.float64(1.0)) >= potential:
            return 1.0
        if ocv(np.float64(0.0)) <= potential:
            return 0.0
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if ocv(np.float64(mid)) > potential else (lo, mid)
    return 0.5 * (lo + hi)


def equilibrium_capacity_under_pressure(
    card: MaterialCard, p: Quantity | str
) -> tuple[float, Quantity]:
    """Li fraction θ and capacity (mAh/g) of a host held at 0 V under confinement p (MODEL §10).

    Solves U_ocv(θ) = Ω p / F, i.e. (3.2) at zero potential with σ_h = −p.
    """
    h = _host(card)
    pressure = parse_quantity(p, "Pa", f"material '{card.name}': pressure")
    theta = theta_at_potential(card, magnitude(h.molar_volume_li * pressure / F, "V"))
    capacity = (h.c_max * F * theta / card.density).to("mA*h/g")
    return theta, capacity
