"""The transport–mechanics coupling: θ to the solid and σ_h back (MODEL §3, §6, §8)."""

from __future__ import annotations

from pathlib import Path

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from dolfinx import fem
from test_single_particle import ROOT, solve_problem

from meshes import build_mesh
from solver.config import case_materials, load_case
from solver.coupling import ChemoMechanicalProblem
from solver.geometry import mesh_spec
from solver.materials import equilibrium_capacity_under_pressure
from solver.problem import TransportProblem
from solver.units import Q_, F


def coupled_particle(tmp_path: Path, *assignments: str) -> ChemoMechanicalProblem:
    case = load_case(ROOT / "cases" / "single_particle.yaml", [
        "geometry.mesh.size_surface=0.15 um", "geometry.mesh.size_bulk=0.15 um",
        "mechanics.enabled=true", "mechanics.degree=1", "mechanics.viscoplastic=false",
        *assignments])
    materials = case_materials(case)
    tagged = build_mesh(mesh_spec(case, materials), MPI.COMM_WORLD, tmp_path, progress=False)
    return ChemoMechanicalProblem(TransportProblem(tagged, case, materials), case, materials)


def integral(function: fem.Function) -> float:
    mesh = function.function_space.mesh
    return mesh.comm.allreduce(fem.assemble_scalar(fem.form(function * ufl.dx(domain=mesh))))


@pytest.mark.parametrize("kinematics", ["small", "finite"])
def test_uniform_lithiation_under_pressure_gives_sigma_h_minus_p(tmp_path: Path,
                                                                 kinematics: str) -> None:
    """A uniformly lithiated particle under pressure p is in the state σ = −p I, so the
    hosts receive σ_h = −p: the confinement of MODEL §10 that lowers U_k by Ω p / F (3.2)."""
    pressure = 2000.0  # MPa
    coupled = coupled_particle(tmp_path, f"mechanics.kinematics={kinematics}",
                               "mechanics.confinement.type=pressure",
                               f"mechanics.confinement.value={pressure} MPa")
    host = coupled.transport.hosts[0]
    host.theta.x.array[:] = 0.3
    coupled._send_theta()
    assert integral(coupled.theta) == pytest.approx(integral(host.theta), rel=1e-12)
    assert coupled.mechanics.solve().converged
    coupled._receive_stresses()
    assert np.allclose(host.sigma_h.x.array, -pressure, rtol=5e-3)
    assert coupled.extremes()["sigma_h_GPa_min"] == pytest.approx(-pressure / 1e3, rel=5e-3)


def test_free_particle_with_a_gradient_has_tensile_core_and_compressed_shell(
        tmp_path: Path) -> None:
    """Lithiating from the surface: the swollen shell is squeezed by the core (σ_h < 0 at
    the surface), the core pulled (σ_h > 0), and the hydrostatic stress averages to zero
    over a traction-free body (small strain)."""
    coupled = coupled_particle(tmp_path, "mechanics.kinematics=small")
    host = coupled.transport.hosts[0]
    host.theta.interpolate(lambda x: 0.05 * np.sum(x**2, axis=0) / 0.25)
    coupled._send_theta()
    assert coupled.mechanics.solve().converged
    coupled._receive_stresses()
    r = np.linalg.norm(host.theta.function_space.tabulate_dof_coordinates(), axis=1)
    sigma_h = host.sigma_h.x.array
    assert np.all(sigma_h[r < 0.1] > 0) and np.all(sigma_h[r > 0.48] < 0)
    scale = np.max(np.abs(sigma_h))
    volume = coupled.transport.integral(f"volume:{host.name}")
    assert abs(integral(host.sigma_h)) < 0.02 * scale * volume


def confined_hold(tmp_path: Path, pressure_gpa: float, *assignments: str):
    """A Si particle held at 0 V under a confining pressure until the current has died out:
    fast diffusion (D0 = D1) so that it equilibrates within seconds; it starts at θ = 0.5."""
    case = load_case(ROOT / "cases" / "single_particle.yaml", [
        "geometry.mesh.size_surface=0.15 um", "geometry.mesh.size_bulk=0.15 um",
        "mechanics.enabled=true", "mechanics.degree=1", "mechanics.confinement.type=pressure",
        f"mechanics.confinement.value={pressure_gpa} GPa",
        "materials.overrides.Si.D0=1e-14 m^2/s", "materials.overrides.Si.D1=1e-14 m^2/s",
        "materials.overrides.Si.theta_initial=0.5",
        "protocol.steps[0]={type: potentiostatic, voltage: 0 V, duration: 2000 s, "
        "cutoff_current: 0.01 A/m^2}", "solver.dt_initial=0.5 s", *assignments])
    return solve_problem(case, tmp_path, coupled=True)


@pytest.mark.parametrize("pressure_gpa", [1.0, 3.0, 5.5])
def test_v4_equilibrium_capacity_under_confinement(tmp_path: Path, pressure_gpa: float) -> None:
    """V4: the coupled particle (finite strain, viscoplastic Si) settles at the capacity of
    MODEL §10, U_ocv(θ) = Ω p / F (σ_h = −p from the mechanics), to < 2 %."""
    coupled, stepper = confined_hold(tmp_path, pressure_gpa)
    host = coupled.transport.hosts[0]
    theta_expected, _ = equilibrium_capacity_under_pressure(host.card, f"{pressure_gpa} GPa")
    theta = coupled.transport.integral(f"theta_volume:{host.name}") \
        / coupled.transport.integral(f"volume:{host.name}")
    assert stepper.summary.stopped_by_cutoff, "the hold did not reach equilibrium"
    assert theta == pytest.approx(theta_expected, rel=0.02)
    assert coupled.extremes()["sigma_h_GPa_min"] == pytest.approx(-pressure_gpa, rel=0.01)
    assert coupled.coupling_iterations_total >= stepper.summary.n_steps


def test_coupled_galvanostatic_conserves_li(tmp_path: Path) -> None:
    """V1 with the mechanics on: the Li in the particle grows by exactly I·A·t/F."""
    case = load_case(ROOT / "cases" / "single_particle.yaml", [
        "geometry.mesh.size_surface=0.15 um", "geometry.mesh.size_bulk=0.15 um",
        "mechanics.enabled=true", "mechanics.degree=1", "mechanics.confinement.type=spring",
        "mechanics.confinement.value=10 GPa", "materials.overrides.Si.D1=1e-15 m^2/s",
        "protocol.steps[0]={type: galvanostatic, current_density: 2 mA/cm^2, duration: 20 s}"])
    coupled, stepper = solve_problem(case, tmp_path, coupled=True)
    transport = coupled.transport
    host = transport.hosts[0]
    initial = host.card.host.theta_initial * transport.integral(f"volume:{host.name}") \
        * host.mol_per_theta_volume
    charge = Q_(20.0, "A/m^2") * Q_(stepper.time, "s") \
        * Q_(transport.integral("top_area"), "um^2") / F
    gained = transport.li_in_hosts_mol()[host.name] - initial
    assert gained == pytest.approx(charge.m_as("mol"), rel=1e-9)
    assert coupled.extremes()["sigma_h_GPa_min"] < -0.1


def test_solid_is_stress_free_as_made(tmp_path: Path) -> None:
    """The mesh is the particle as made, here at θ = 0.3 in a stiff spring: it starts with
    σ_h = 0 (the swelling is measured from θ_ref = 0.3, not from pristine Si), and only the
    Li added after that squeezes it."""
    coupled = coupled_particle(tmp_path, "mechanics.confinement.type=spring",
                               "mechanics.confinement.value=10 GPa",
                               "materials.overrides.Si.theta_initial=0.3")
    host = coupled.transport.hosts[0]
    assert np.allclose(coupled.mechanics.theta_reference.x.array, 0.3)
    assert np.max(np.abs(host.sigma_h.x.array)) < 1e-6
    host.theta.x.array[:] += 0.05
    coupled._send_theta()
    assert coupled.mechanics.solve().converged
    coupled._receive_stresses()
    assert np.all(host.sigma_h.x.array < -100.0)
