"""Case files: validation before anything is built (VALIDATION V8) and the CLI basics."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from solver.config import (
    PLATING_NEWTON_COUNTS,
    CaseError,
    load_case,
    set_dotted,
    validate_case,
)

ROOT = Path(__file__).resolve().parents[1]
# Case files (sweeps and material tables also live under cases/, without a geometry).
SHIPPED_CASES = sorted(path for path in (ROOT / "cases").glob("**/*.yaml")
                       if "geometry" in (yaml.safe_load(path.read_text()) or {}))


def scaffold_case() -> dict:
    return yaml.safe_load((ROOT / "cases" / "si_scaffold.yaml").read_text())


@pytest.mark.parametrize("path", SHIPPED_CASES, ids=lambda p: p.name)
def test_shipped_cases_are_valid(path: Path) -> None:
    case = load_case(path)
    assert case.temperature > 200.0


def test_units_are_converted_to_internal_units() -> None:
    case = validate_case(scaffold_case())
    assert case.temperature == pytest.approx(298.15)
    assert case.stack_pressure == pytest.approx(50.0)  # MPa
    step = case.protocol.steps[0]
    assert step.current_density == pytest.approx(2.0)  # 0.2 mA/cm^2 = 2 A/m^2
    assert step.duration == pytest.approx(7200.0)
    assert case.geometry.scaffold.height == pytest.approx(3.5)  # um


# Each bad input: (assignment to the scaffold case, the field the error must name,
# a fragment of the explanation it must give).
BAD_INPUTS = [
    ("geometry.scaffold.hieght='3 um'", "geometry.scaffold.hieght", "unknown key"),
    ("geometry.scaffold.height='3 s'", "geometry.scaffold.height", "um"),
    ("geometry.scaffold.height=3", "geometry.scaffold.height", "unit"),
    ("geometry.scaffold.particles[0].radius='-0.5 um'",
     "geometry.scaffold.particles[0].radius", "allowed range"),
    ("geometry.scaffold.solid_fraction=1.2", "geometry.scaffold.solid_fraction", "0.6"),
    ("geometry.scaffold.particles[1].material=unobtainium",
     "geometry.scaffold.particles[1].material", "unknown material"),
    ("geometry.electrolyte[1].material=Si", "geometry.electrolyte[1].material", "electrolyte"),
    ("temperature='25 MPa'", "temperature", "K"),
    ("protocol.steps[0].current_density='0.2 mA'", "protocol.steps[0]", "A/m^2"),
    ("materials.overrides={Si: {D0: '-1 m^2/s'}}", "materials.overrides.Si", "D0"),
    ("solver.newton_easy_iterations=12", "solver",
     "newton_easy_iterations < newton_hard_iterations <= newton_max_it"),
]


@pytest.mark.parametrize("assignment,field,explanation", BAD_INPUTS,
                         ids=[bad[1] for bad in BAD_INPUTS])
def test_v8_bad_input_names_the_field(assignment: str, field: str, explanation: str) -> None:
    data = scaffold_case()
    set_dotted(data, assignment)
    with pytest.raises(CaseError) as error:
        validate_case(data)
    message = str(error.value)
    assert field in message
    assert explanation in message


def test_plating_cases_let_newton_take_more_iterations_per_step() -> None:
    """A case with plating gets PLATING_NEWTON_COUNTS unless it sets its own counts."""
    data = scaffold_case()
    set_dotted(data, "plating={enabled: true}")
    data.setdefault("solver", {}).pop("newton_max_it", None)
    solver = validate_case(data).solver
    assert solver.newton_easy_iterations == PLATING_NEWTON_COUNTS["newton_easy_iterations"]
    assert solver.newton_max_it == PLATING_NEWTON_COUNTS["newton_max_it"]
    set_dotted(data, "solver.newton_max_it=25")
    solver = validate_case(data).solver
    assert (solver.newton_easy_iterations, solver.newton_max_it) == (5, 25)
    set_dotted(data, "plating={enabled: false}")
    assert validate_case(data).solver.newton_hard_iterations == 10


def test_v8_missing_section_is_named() -> None:
    data = scaffold_case()
    del data["protocol"]
    with pytest.raises(CaseError, match="protocol: Field required"):
        validate_case(data)


def test_v8_cli_rejects_bad_case_without_writing_anything(tmp_path: Path) -> None:
    data = scaffold_case()
    set_dotted(data, "geometry.scaffold.particles[0].radius='-1 um'")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    output = tmp_path / "out"
    cache = tmp_path / "cache"
    env = dict(os.environ, CONSTRICT_CACHE_DIR=str(cache))
    result = subprocess.run([sys.executable, "-m", "solver", "run", str(bad), "-o", str(output)],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert "geometry.scaffold.particles[0].radius" in result.stderr
    assert not output.exists()
    assert not cache.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def test_cli_check_accepts_good_case_and_set_overrides(tmp_path: Path) -> None:
    case = ROOT / "cases" / "si_scaffold.yaml"
    result = subprocess.run([sys.executable, "-m", "solver", "check", str(case),
                             "--set", "temperature=55 degC"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "is valid" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_set_dotted_rejects_missing_list_entry() -> None:
    with pytest.raises(CaseError, match="does not exist"):
        set_dotted(scaffold_case(), "geometry.electrolyte[7].material=LGPS")


# -- coated particles (issue 6) ------------------------------------------------------------

def coated_case() -> dict:
    return yaml.safe_load((ROOT / "cases" / "coated_scaffold.yaml").read_text())


# (assignment to the coated case, the field the error must name, a fragment of the message)
BAD_COATINGS = [
    ("geometry.scaffold.particles[0].coating.material=SiO2",
     "geometry.scaffold.particles[0].coating.material", "core material"),
    ("geometry.scaffold.particles[0].coating.material=Cu",
     "geometry.scaffold.particles[0].coating.material", "expected one of host"),
    ("geometry.scaffold.particles[0].coating.material=unobtainium",
     "geometry.scaffold.particles[0].coating.material", "unknown material"),
    ("geometry.scaffold.particles[0].coating.thickness='200 nm'",
     "geometry.scaffold.particles[0].coating.thickness", "[0.005 um, 0.125 um]"),
    ("geometry.scaffold.particles[0].coating.thickness='2 nm'",
     "geometry.scaffold.particles[0].coating.thickness", "allowed range"),
    ("geometry.scaffold.particles[0].coating.thickness='-2 nm'",
     "geometry.scaffold.particles[0].coating.thickness", "allowed range"),
    ("geometry.scaffold.particles[0].coating.thickness='2 s'",
     "geometry.scaffold.particles[0].coating.thickness", "um"),
    ("geometry.scaffold.particles[0].coating.thikness='2 nm'",
     "geometry.scaffold.particles[0].coating.thikness", "unknown key"),
]


@pytest.mark.parametrize("assignment,field,explanation", BAD_COATINGS,
                         ids=[bad[0].split("coating.")[1] for bad in BAD_COATINGS])
def test_bad_coating_names_the_field(assignment: str, field: str, explanation: str) -> None:
    data = coated_case()
    set_dotted(data, assignment)
    with pytest.raises(CaseError) as error:
        validate_case(data)
    message = str(error.value)
    assert field in message
    assert explanation in message


def test_coating_thickness_bound_uses_the_smallest_radius() -> None:
    data = coated_case()
    set_dotted(data, "geometry.scaffold.particles[0].coating.thickness='200 nm'")
    set_dotted(data, "geometry.scaffold.particles[0].radius_std='0 um'")
    case = validate_case(data)  # 0.2 um <= 0.5 x 0.5 um without a size spread
    assert case.geometry.scaffold.particles[0].coating.thickness == pytest.approx(0.2)


def test_mass_fractions_of_coated_particles_use_both_densities() -> None:
    from solver.config import case_materials
    from solver.geometry import particle_families

    data = coated_case()
    scaffold = data["geometry"]["scaffold"]
    scaffold["particles"] = [
        {"material": "SiO2", "radius": "0.5 um", "fraction": 0.5,
         "coating": {"material": "Ag", "thickness": "50 nm"}},
        {"material": "Si", "radius": "0.5 um", "fraction": 0.5},
    ]
    case = validate_case(data)
    materials = case_materials(case)
    coated, plain = particle_families(case.geometry.scaffold, materials)
    rho = {name: materials[name].density.m_as("kg/m^3") for name in ("SiO2", "Ag", "Si")}
    core = (1 - 0.05 / 0.5) ** 3
    rho_coated = core * rho["SiO2"] + (1 - core) * rho["Ag"]
    share = (0.5 / rho_coated) / (0.5 / rho_coated + 0.5 / rho["Si"])
    assert coated.volume_share == pytest.approx(share)
    assert plain.volume_share == pytest.approx(1 - share)
    assert (coated.material, coated.role) == ("SiO2", "insulator")
    assert (coated.coating.material, coated.coating.role, coated.coating.thickness) == (
        "Ag", "host", pytest.approx(0.05))
    assert plain.coating is None
    scaffold["fraction_basis"] = "volume"
    coated, _ = particle_families(validate_case(data).geometry.scaffold, materials)
    assert coated.volume_share == pytest.approx(0.5)
