"""Case files: schema, units and validation.

A case is a YAML file. Every dimensional value carries its unit (``"50 MPa"``,
``"0.2 mA/cm^2"``); the schema converts it once, here, to the internal unit system of
`solver.units` and stores a plain float. Validation happens before anything is built:
unknown keys, missing or wrong units, out-of-range values and unknown materials all
raise `CaseError`, whose message names each offending field and its allowed range.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from solver.materials import MaterialCard, apply_overrides, load_library
from solver.units import parse_quantity


class CaseError(ValueError):
    """A case file that cannot be run; the message lists every problem found."""


def _quantity(unit: str, *, gt: str | None = None, ge: str | None = None,
              lt: str | None = None, le: str | None = None) -> Any:
    """A float field given with units in the case file, stored in `unit`.

    The bounds are quantities too, so the error message states the allowed range in
    units a user recognises rather than in internal numbers.
    """

    def convert(value: Any) -> float:
        magnitude = _magnitude(value, unit)
        for bound, test, word in ((gt, float.__gt__, ">"), (ge, float.__ge__, ">="),
                                  (lt, float.__lt__, "<"), (le, float.__le__, "<=")):
            if bound is not None and not test(magnitude, _magnitude(bound, unit)):
                raise ValueError(f"must be {word} {bound} (allowed range {_range(gt, ge, lt, le)}),"
                                 f" got '{value}'")
        return magnitude

    return Annotated[float, BeforeValidator(convert)]


def _magnitude(value: Any, unit: str) -> float:
    try:
        return float(parse_quantity(value, unit, "value").m_as(unit))
    except ValueError as error:  # pydantic prefixes the field's location itself
        raise ValueError(str(error).removeprefix("value: ")) from None


def _range(gt: str | None, ge: str | None, lt: str | None, le: str | None) -> str:
    low = f"({gt}" if gt is not None else f"[{ge}" if ge is not None else "(-inf"
    high = f"{lt})" if lt is not None else f"{le}]" if le is not None else "inf)"
    return f"{low}, {high}"


# Internal units: see solver/units.py.
Length = _quantity("um", gt="0 um", le="10 mm")
Time = _quantity("s", gt="0 s")
Voltage = _quantity("V", ge="-5 V", le="5 V")
CurrentDensity = _quantity("A/m^2", ge="-1000 A/m^2", le="1000 A/m^2")
Temperature = _quantity("K", ge="200 K", le="500 K")
Pressure = _quantity("MPa", ge="0 MPa", le="2 GPa")
Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Bounds of a coating's thickness, x the family's smallest radius (= meshes.spec.COATING_*;
# not imported, so that reading a case does not load the mesh stack).
COATING_MIN, COATING_MAX = 0.02, 0.5


class CoatingConfig(_Strict):
    """A host shell on every particle of a family (e.g. 50 nm Ag on SiO2, the paper's
    Extended Data Fig. 9); the family's `material` is then the core."""

    material: str
    thickness: Length


class ParticleFamilyConfig(_Strict):
    """One kind of particle in the scaffold (e.g. 1 µm Si), optionally coated.

    `radius` (and `fraction`) describe whole particles, coating included. A coating's
    thickness must lie in [0.02, 0.5] x the family's smallest radius (the radius, or
    0.5 x radius when radius_std > 0: radii are truncated to [0.5, 2] x mean), so that
    every core keeps at least half its particle's radius and the coated surfaces need no
    absurdly fine mesh (they are meshed with elements <= 2 x thickness).
    """

    material: str
    radius: Length
    radius_std: _quantity("um", ge="0 um") = 0.0  # type: ignore[valid-type]
    fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    coating: CoatingConfig | None = None

    @model_validator(mode="after")
    def _coating_fits_the_core(self) -> ParticleFamilyConfig:
        if self.coating is None:
            return self
        smallest = self.radius * (0.5 if self.radius_std > 0 else 1.0)
        low, high = COATING_MIN * smallest, COATING_MAX * smallest
        if not low <= self.coating.thickness <= high:
            message = (f"must be in [{COATING_MIN}, {COATING_MAX}] x the smallest particle "
                       f"radius ({smallest:g} um; 0.5 x radius when radius_std > 0), i.e. in "
                       f"[{low:g} um, {high:g} um] (allowed range), got "
                       f"{self.coating.thickness:g} um")
            raise _field_error(("coating", "thickness"), message, self.coating.thickness)
        if self.coating.material == self.material:
            raise _field_error(("coating", "material"), "must differ from the core material "
                               f"'{self.material}'", self.coating.material)
        return self


def _field_error(loc: tuple[str, ...], message: str, value: Any) -> ValidationError:
    """An error located at a sub-field (a model validator's own errors name only the model)."""
    error = PydanticCustomError("value_error", message.replace("{", "(").replace("}", ")"))
    return ValidationError.from_exception_data(
        "ParticleFamilyConfig", [InitErrorDetails(type=error, loc=loc, input=value)])


class ScaffoldConfig(_Strict):
    """The particle layer 0 < z < height (MODEL §1)."""

    size_x: Length
    size_y: Length
    height: Length
    solid_fraction: Annotated[float, Field(gt=0.0, le=0.6)]
    fraction_basis: Literal["mass", "volume"] = "mass"
    particles: Annotated[list[ParticleFamilyConfig], Field(min_length=1)]
    contact_overlap: Annotated[float, Field(ge=0.01, le=0.3)] = 0.05
    seed: Annotated[int, Field(ge=0)] = 0

    @model_validator(mode="after")
    def _box_holds_the_largest_particle(self) -> ScaffoldConfig:
        # The packing is laterally periodic: a particle must not touch its own image, and
        # none may span the scaffold height. Radii are drawn up to 2 x the mean (meshes.spec).
        largest = max(f.radius * (2.0 if f.radius_std > 0 else 1.0) for f in self.particles)
        for name in ("size_x", "size_y", "height"):
            if getattr(self, name) <= 2.2 * largest:
                raise ValueError(f"{name}: must exceed 2.2 x the largest particle radius "
                                 f"({largest:g} um; 2 x mean when radius_std > 0), i.e. "
                                 f"> {2.2 * largest:g} um")
        return self

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> ScaffoldConfig:
        total = sum(family.fraction for family in self.particles)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"particles: the fractions must sum to 1 (by {self.fraction_basis}),"
                             f" got {total:g}")
        return self


class ElectrolyteLayerConfig(_Strict):
    material: str
    thickness: Length


class SingleParticleConfig(_Strict):
    """One host sphere, its surface in contact with an electrolyte (MODEL §1).

    With plating on, Li metal plates on the particle's surface into its share of the
    scaffold's voids (docs/plating.md, "A single particle"): `void_ratio` is that void's
    volume per unit particle volume, and `electrolyte` the solid electrolyte whose Li
    plating kinetics (i0_plating) apply at the surface.
    """

    material: str
    radius: Length
    octant: bool = True
    void_ratio: Annotated[float, Field(gt=0.0, le=100.0)] | None = None
    electrolyte: str | None = None


class MeshConfig(_Strict):
    size_surface: Length
    size_bulk: Length

    @model_validator(mode="after")
    def _surface_finer_than_bulk(self) -> MeshConfig:
        if self.size_surface > self.size_bulk:
            raise ValueError("size_surface: must be <= size_bulk")
        return self


class GeometryConfig(_Strict):
    kind: Literal["scaffold", "single_particle"]
    scaffold: ScaffoldConfig | None = None
    single_particle: SingleParticleConfig | None = None
    electrolyte: list[ElectrolyteLayerConfig] = []
    mesh: MeshConfig

    @model_validator(mode="after")
    def _block_for_kind(self) -> GeometryConfig:
        if getattr(self, self.kind) is None:
            raise ValueError(f"kind is '{self.kind}', so the block '{self.kind}' is required")
        if self.kind == "scaffold" and not self.electrolyte:
            raise ValueError("electrolyte: a scaffold needs at least one electrolyte layer")
        return self


class MaterialsConfig(_Strict):
    """Cards come from the built-in library plus optional user files; values may be overridden."""

    files: list[Path] = []
    overrides: dict[str, dict[str, str | float | int]] = {}


class GalvanostaticStep(_Strict):
    """Constant current; positive current density charges (lithiates/plates) the anode."""

    type: Literal["galvanostatic"]
    current_density: CurrentDensity
    duration: Time
    cutoff_voltage: Voltage | None = None


class PotentiostaticStep(_Strict):
    """Anode potential held at `voltage` vs Li, until `duration` or until |i| < cutoff_current."""

    type: Literal["potentiostatic"]
    voltage: Voltage
    duration: Time
    cutoff_current: _quantity("A/m^2", gt="0 A/m^2") | None = None  # type: ignore[valid-type]


class RestStep(_Strict):
    type: Literal["rest"]
    duration: Time


ProtocolStep = Annotated[GalvanostaticStep | PotentiostaticStep | RestStep,
                         Field(discriminator="type")]


class ProtocolConfig(_Strict):
    steps: Annotated[list[ProtocolStep], Field(min_length=1)]
    cycles: Annotated[int, Field(ge=1, le=10000)] = 1


class SolverConfig(_Strict):
    """Time stepping and Newton settings (MODEL §8); PETSc options pass through."""

    dt_initial: Time = 1.0
    dt_min: Time = 1e-6
    dt_max: Time = 3600.0
    dt_growth: Annotated[float, Field(gt=1.0, le=4.0)] = 1.5
    max_theta_change: Annotated[float, Field(gt=0.0, le=0.5)] = 0.05
    newton_rtol: Annotated[float, Field(gt=0.0, lt=1.0)] = 1e-9
    newton_atol: Annotated[float, Field(gt=0.0, lt=1.0)] = 1e-12
    newton_max_it: Annotated[int, Field(ge=1, le=200)] = 20
    # Δt grows after a step that took at most `newton_easy_iterations` Newton iterations and
    # shrinks after one that took at least `newton_hard_iterations` (docs/plating.md: with
    # plating, a step's iterations come from pores that start to fill, not from its length)
    newton_easy_iterations: Annotated[int, Field(ge=1, le=200)] = 5
    newton_hard_iterations: Annotated[int, Field(ge=2, le=200)] = 10
    linear_solver: Literal["mumps", "gmres-gamg"] = "mumps"
    petsc_options: dict[str, str | int | float | bool | None] = {}

    @model_validator(mode="after")
    def _dt_order(self) -> SolverConfig:
        if not self.dt_min <= self.dt_initial <= self.dt_max:
            raise ValueError("dt_initial: must lie in [dt_min, dt_max]")
        return self

    @model_validator(mode="after")
    def _newton_counts_order(self) -> SolverConfig:
        if not self.newton_easy_iterations < self.newton_hard_iterations <= self.newton_max_it:
            raise ValueError("newton_easy_iterations < newton_hard_iterations <= newton_max_it "
                             f"must hold, got {self.newton_easy_iterations}, "
                             f"{self.newton_hard_iterations}, {self.newton_max_it}")
        return self


class ConfinementConfig(_Strict):
    """How a single particle is held (MODEL §6, §10): free, a pressure p, a spring K_eff,
    or a `matrix`: the spring of a spherical cavity in an infinite elastic solid,
    K_eff = 4 G of the `material` card (Lamé), e.g. the solid electrolyte around it."""

    type: Literal["free", "pressure", "spring", "matrix"] = "free"
    value: _quantity("MPa", ge="0 MPa", le="100 GPa") = 0.0  # type: ignore[valid-type]
    material: str | None = None

    @model_validator(mode="after")
    def _matrix_names_its_material(self) -> ConfinementConfig:
        if (self.type == "matrix") != (self.material is not None):
            raise ValueError("confinement.material names the matrix card; give it with "
                             "type: matrix (and only then)")
        return self


class MechanicsConfig(_Strict):
    """Chemo-mechanics (MODEL §6) and its coupling to the transport (§3, §8).

    Off by default until the coupled model is calibrated; `kinematics: finite` is the model,
    `small` the fast linearised option. The transport and the mechanics are iterated in
    each time step until the hydrostatic stress changes by less than `coupling_tolerance`
    (relative to its largest magnitude).
    """

    enabled: bool = False
    kinematics: Literal["finite", "small"] = "finite"
    viscoplastic: bool = True
    confinement: ConfinementConfig = ConfinementConfig()
    degree: Literal[1, 2] = 2
    linear_solver: Literal["mumps", "gamg"] = "gamg"  # mumps: a case option for small runs
    coupling_tolerance: Annotated[float, Field(gt=0.0, le=0.1)] = 1e-3
    coupling_max_iterations: Annotated[int, Field(ge=1, le=100)] = 30
    anderson_depth: Annotated[int, Field(ge=0, le=20)] = 5

    @model_validator(mode="after")
    def _viscoplastic_needs_finite_strain(self) -> MechanicsConfig:
        if self.viscoplastic and self.kinematics == "small":
            raise ValueError("mechanics.viscoplastic (6.2) is implemented for kinematics: "
                             "finite only; set viscoplastic: false for small strain")
        return self


class PlatingConfig(_Strict):
    """Plated Li metal in the pores (MODEL §5, §7; docs/plating.md).

    `percolation_fraction` ψ_perc: a pore holds Li metal (electron access, stripping, no
    nucleation barrier) once ψ exceeds it. `filling_fraction` ψ_c of (7.2). `contact_band`:
    a solid-electrolyte|pore facet within this distance of a host or conductor surface has
    electron access (the triple-junction band of §5).
    """

    enabled: bool = False
    metal: str = "Li"
    percolation_fraction: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.05
    filling_fraction: Annotated[float, Field(gt=0.5, lt=1.0)] = 0.95
    contact_band: _quantity("um", gt="0 um", le="10 um") = 0.1  # type: ignore[valid-type]


class OutputConfig(_Strict):
    """Field snapshots every `fields_every` steps, checkpoints every `checkpoint_every`
    steps (0: never); both also at the end of each protocol step."""

    fields_every: Annotated[int, Field(ge=0)] = 10
    checkpoint_every: Annotated[int, Field(ge=0)] = 10
    format: Literal["vtx", "xdmf"] = "xdmf"


# With plating, the Newton iterations of a step come from the pore vertices that reach
# the filling fraction during it (the power-law creep must build their pressure), about
# 10 per step whatever its length: Δt may grow through more iterations. Measured on
# small_scaffold at 2C for 30 s: 155 steps / 1208 iterations / 114 s with the transport's
# 5–10–20, 23 steps / 337 iterations / 34 s with 14–24–40, same Li plated to 0.3 %
# (docs/plating.md). Used where the case sets none of them.
PLATING_NEWTON_COUNTS = {"newton_easy_iterations": 12, "newton_hard_iterations": 20,
                         "newton_max_it": 30}


class CaseConfig(_Strict):
    """A complete, validated case; all values in internal units (solver.units)."""

    name: str
    description: str = ""
    geometry: GeometryConfig
    materials: MaterialsConfig = MaterialsConfig()
    protocol: ProtocolConfig
    temperature: Temperature
    stack_pressure: Pressure = 0.0
    mechanics: MechanicsConfig = MechanicsConfig()
    plating: PlatingConfig = PlatingConfig()
    solver: SolverConfig = SolverConfig()
    output: OutputConfig = OutputConfig()

    @model_validator(mode="before")
    @classmethod
    def _plating_newton_counts(cls, data: Any) -> Any:
        """`PLATING_NEWTON_COUNTS` for a scaffold case with plating that sets no Newton
        counts."""
        if not isinstance(data, dict) or not isinstance(data.get("plating"), dict):
            return data
        solver = data.get("solver") or {}
        if data["plating"].get("enabled") is not True or not isinstance(solver, dict):
            return data
        geometry = data.get("geometry")
        if isinstance(geometry, dict) and geometry.get("kind") != "scaffold":
            return data  # a particle's void has no creep front: the transport's counts
        if any(key in solver for key in PLATING_NEWTON_COUNTS):
            return data
        return {**data, "solver": {**PLATING_NEWTON_COUNTS, **solver}}

    @model_validator(mode="after")
    def _plating_has_a_void(self) -> CaseConfig:
        """A single particle plates into its void: its size and electrolyte must be given."""
        particle = self.geometry.single_particle
        if not self.plating.enabled or self.geometry.kind != "single_particle":
            return self
        for name in ("void_ratio", "electrolyte"):
            if getattr(particle, name) is None:
                raise _field_error(
                    ("geometry", "single_particle", name),
                    "is required with plating.enabled on a single particle (void_ratio: "
                    "void volume per particle volume in (0, 100]; electrolyte: a solid "
                    "electrolyte card)", None)
        return self


def set_dotted(data: dict[str, Any], assignment: str) -> None:
    """Apply one ``--set key.sub[0].leaf=value`` override to the raw case dictionary.

    Missing mappings on the way are created (``--set materials.overrides.Si.D1=...`` works
    in a case without a materials section); list indices must exist.
    """
    if "=" not in assignment:
        raise CaseError(f"--set {assignment}: expected key=value")
    key, raw = assignment.split("=", 1)
    value = yaml.safe_load(raw)
    parts = [part for token in key.split(".") for part in _split_index(token)]
    node: Any = data
    for part in parts[:-1]:
        if isinstance(node, dict) and isinstance(part, str):
            node = node.setdefault(part, {})  # the schema rejects misspelt keys later
            continue
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            raise CaseError(f"--set {key}: '{part}' does not exist in the case") from None
    last = parts[-1]
    if isinstance(node, dict) or (isinstance(node, list) and isinstance(last, int)
                                  and last < len(node)):
        node[parts[-1]] = value
    else:
        raise CaseError(f"--set {key}: cannot assign here")


def _split_index(token: str) -> list[str | int]:
    """'particles[1]' -> ['particles', 1]."""
    name, *indices = token.replace("]", "").split("[")
    return [name, *(int(index) for index in indices)]


def format_validation_error(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        field = ".".join(_format_loc(part) for part in item["loc"]).replace(".[", "[")
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; see README 'Case files')"
        lines.append(f"  {field or '(top level)'}: {message}")
    return "\n".join(lines)


def _format_loc(part: str | int) -> str:
    return f"[{part}]" if isinstance(part, int) else str(part)


def validate_case(data: dict[str, Any], source: str = "case") -> CaseConfig:
    """Validate a raw case dictionary: schema, units, ranges, then materials."""
    try:
        case = CaseConfig.model_validate(data)
    except ValidationError as error:
        raise CaseError(f"{source} is not valid:\n{format_validation_error(error)}") from None
    problems = _material_problems(case)
    if problems:
        raise CaseError(f"{source} is not valid:\n" + "\n".join(f"  {p}" for p in problems))
    return case


def read_yaml_mapping(path: Path, what: str,
                      error: type[Exception] = CaseError) -> dict[str, Any]:
    """The top-level mapping of a YAML file; `error` names the file's problem."""
    if not path.is_file():
        raise error(f"{what} {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as problem:
        raise error(f"{path} is not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping at the top level")
    return data


def load_case(path: Path, assignments: list[str] | None = None) -> CaseConfig:
    """Read, override (``--set``) and validate a case file. Builds nothing."""
    path = Path(path)
    data = copy.deepcopy(read_yaml_mapping(path, "case file"))
    for assignment in assignments or []:
        set_dotted(data, assignment)
    return validate_case(data, str(path))


def case_materials(case: CaseConfig) -> dict[str, MaterialCard]:
    """The material library with the case's user files and overrides applied."""
    library = load_library(extra=case.materials.files)
    for name, overrides in case.materials.overrides.items():
        library[name] = apply_overrides(library[name], overrides)
    return library


_ROLE_KINDS = {"particle": ("host", "conductor", "insulator"), "electrolyte": ("electrolyte",),
               "single_particle": ("host",), "coating": ("host",),
               "matrix": ("electrolyte", "host", "conductor", "insulator"),
               "metal": ("metal",)}


def _material_problems(case: CaseConfig) -> list[str]:
    """Every material named in the case must exist in the library and suit its role."""
    try:
        library = load_library(extra=case.materials.files)
    except (OSError, ValueError) as error:
        return [f"materials.files: {error}"]
    uses: list[tuple[str, str, str]] = []
    geometry = case.geometry
    if geometry.scaffold is not None:
        uses += [(f"geometry.scaffold.particles[{i}].material", family.material, "particle")
                 for i, family in enumerate(geometry.scaffold.particles)]
        uses += [(f"geometry.scaffold.particles[{i}].coating.material", family.coating.material,
                  "coating")
                 for i, family in enumerate(geometry.scaffold.particles) if family.coating]
    if geometry.single_particle is not None:
        uses.append(("geometry.single_particle.material", geometry.single_particle.material,
                     "single_particle"))
        if geometry.single_particle.electrolyte is not None:
            uses.append(("geometry.single_particle.electrolyte",
                         geometry.single_particle.electrolyte, "electrolyte"))
    uses += [(f"geometry.electrolyte[{i}].material", layer.material, "electrolyte")
             for i, layer in enumerate(geometry.electrolyte)]
    if case.mechanics.confinement.material is not None:
        uses.append(("mechanics.confinement.material", case.mechanics.confinement.material,
                     "matrix"))
    if case.plating.enabled:
        uses.append(("plating.metal", case.plating.metal, "metal"))
    problems = []
    for field, name, role in uses:
        if name not in library:
            known = ", ".join(sorted(library))
            problems.append(f"{field}: unknown material '{name}' (known: {known})")
        elif library[name].kind not in _ROLE_KINDS[role]:
            problems.append(f"{field}: '{name}' is a {library[name].kind}, expected one of "
                            f"{', '.join(_ROLE_KINDS[role])}")
    for name, overrides in case.materials.overrides.items():
        if name not in library:
            problems.append(f"materials.overrides.{name}: unknown material '{name}'")
            continue
        try:
            apply_overrides(library[name], overrides)
        except ValueError as error:
            problems.append(f"materials.overrides.{name}: {error}")
    return problems
