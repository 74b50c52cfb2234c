"""Single host particle: diffusion against the series solution (V2), potentiostatic equilibrium."""

from __future__ import annotations

from pathlib import Path

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from dolfinx import fem

from meshes import build_mesh
from solver.config import CaseConfig, case_materials, load_case
from solver.coupling import ChemoMechanicalProblem
from solver.geometry import mesh_spec
from solver.materials import theta_at_potential
from solver.problem import TransportProblem
from solver.reference_solutions import sphere_constant_flux
from solver.stepper import TimeStepper, protocol_segments
from solver.units import Q_, F

ROOT = Path(__file__).resolve().parents[1]
V2_CASE = ROOT / "cases" / "validation" / "v2_sphere.yaml"


def solve_problem(case: CaseConfig, cache: Path, coupled: bool = False):
    """Build and run a single-particle case; the transport (or coupled) problem and stepper."""
    materials = case_materials(case)
    tagged = build_mesh(mesh_spec(case, materials), MPI.COMM_WORLD, cache, progress=False)
    problem = TransportProblem(tagged, case, materials)
    if coupled:
        problem = ChemoMechanicalProblem(problem, case, materials)
    stepper = TimeStepper(problem, case.solver, lambda record: None)
    stepper.run(protocol_segments(case.protocol))
    return problem, stepper


def v2_errors(size: float, cache: Path) -> tuple[float, float]:
    """(relative L2 error, max nodal error / max θ) against Carslaw & Jaeger §9.3."""
    case = load_case(V2_CASE, [f"geometry.mesh.size_surface={size} um",
                               f"geometry.mesh.size_bulk={size} um"])
    problem, stepper = solve_problem(case, cache)
    host = problem.hosts[0]
    card = host.card.host
    influx = (Q_(case.protocol.steps[0].current_density, "A/m^2") / (F * card.c_max)).m_as("um/s")
    radius = case.geometry.single_particle.radius

    def exact(x: np.ndarray) -> np.ndarray:
        return sphere_constant_flux(np.linalg.norm(x, axis=0), stepper.time, radius,
                                    card.D0.m_as("um^2/s"), influx, card.theta_initial)

    reference = fem.Function(fem.functionspace(host.submesh, ("Lagrange", 3)))
    reference.interpolate(exact)
    dx = ufl.dx(domain=host.submesh)
    comm = MPI.COMM_WORLD
    error = comm.allreduce(fem.assemble_scalar(fem.form((host.theta - reference) ** 2 * dx)))
    norm = comm.allreduce(fem.assemble_scalar(fem.form(reference**2 * dx)))
    nodal = exact(host.theta.function_space.tabulate_dof_coordinates().T)
    max_error = comm.allreduce(np.max(np.abs(host.theta.x.array - nodal)), op=MPI.MAX)
    return float(np.sqrt(error / norm)), max_error / comm.allreduce(nodal.max(), op=MPI.MAX)


def test_v2_sphere_constant_flux(tmp_path_factory) -> None:
    cache = tmp_path_factory.mktemp("meshes")
    sizes = [0.1, 0.05, 0.025]
    errors = [v2_errors(size, cache) for size in sizes]
    l2 = [error for error, _ in errors]
    assert l2[-1] < 0.01 and errors[-1][1] < 0.01, errors
    rates = np.log(np.array(l2[:-1]) / np.array(l2[1:])) / np.log(2.0)
    assert np.all(rates > 1.8), f"L2 convergence rates {rates} (P1 rate is 2)"


def test_potentiostatic_hold_reaches_the_ocv_equilibrium(tmp_path) -> None:
    """Held at 0.3 V long enough, a Si particle fills to U_ocv(θ) = 0.3 V (3.2) throughout."""
    case = load_case(ROOT / "cases" / "single_particle.yaml", [
        "protocol.steps[0]={type: potentiostatic, voltage: 0.3 V, duration: 2 h}",
        "materials.overrides.Si={D0: '1e-15 m^2/s', D1: '1e-15 m^2/s'}",
        "geometry.mesh.size_surface=0.1 um", "geometry.mesh.size_bulk=0.1 um",
        "solver.dt_max=600 s"])
    problem, _ = solve_problem(case, tmp_path)
    low, high = problem.theta_range()["Si"]
    expected = theta_at_potential(problem.hosts[0].card, 0.3)
    assert low == pytest.approx(expected, abs=1e-4)
    assert high == pytest.approx(expected, abs=1e-4)
    assert abs(problem.current_density()) < 1e-6
