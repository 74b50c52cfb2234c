"""Li pressure p_Li on the pore walls in the mechanics (MODEL §6, §7): the transfer puts
p_Li on every wall facet, and the pore pressure takes its share of the stack load off the
solid (an exact identity of the weak equilibrium). Measured: 1.1e-10 relative."""

from __future__ import annotations

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from dolfinx import fem
from test_plating_coupled import small_case

from solver.config import case_materials
from solver.coupling import ChemoMechanicalProblem
from solver.problem import TransportProblem
from solver.simulation import build_case_mesh

PSI_C, BULK_MODULUS = 0.95, 11100.0  # plating.filling_fraction, K_Li (MPa) of the Li card


@pytest.fixture(scope="module")
def coupled() -> ChemoMechanicalProblem:
    case = small_case(["{type: rest, duration: 1 s}"], "mechanics.enabled=true",
                      "mechanics.kinematics=small", "mechanics.viscoplastic=false",
                      "mechanics.degree=1", "mechanics.linear_solver=mumps")
    materials = case_materials(case)
    transport = TransportProblem(build_case_mesh(case, MPI.COMM_WORLD), case, materials)
    return ChemoMechanicalProblem(transport, case, materials)


def stress_with_pore_pressure(coupled: ChemoMechanicalProblem, pressure: float) -> np.ndarray:
    """σ_h (nodal, solid mesh) with every pore filled to p_Li = `pressure` (MPa), or empty
    for 0."""
    pores = coupled.transport.pores
    pores.psi.x.array[:] = PSI_C + pressure * (1 - PSI_C) / BULK_MODULUS if pressure else 0.0
    pores.plating.update_pressure()
    coupled._send_wall_pressure()
    coupled._send_theta()
    assert coupled.mechanics.solve().converged
    return coupled.mechanics.sigma_h.x.array.copy()


def test_wall_pressure_covers_every_pore_wall(coupled) -> None:
    stress_with_pore_pressure(coupled, 20.0)
    walls = coupled.wall_pressure
    assert {"EP"} <= set(walls.walls) and any(name.startswith("HP:") for name in walls.walls)
    domain = coupled.mechanics.domain
    ds = ufl.Measure("ds", domain=domain.mesh, subdomain_data=domain.facet_tags)
    comm = domain.mesh.comm
    p_li = coupled.transport.pores.p_li.x.array[0]  # uniform
    for name in walls.walls:
        tag = domain.facet_tag(name)
        area = comm.allreduce(fem.assemble_scalar(fem.form(
            fem.Constant(domain.mesh, 1.0) * ds(tag))), op=MPI.SUM)
        load = comm.allreduce(fem.assemble_scalar(fem.form(walls.pressure * ds(tag))),
                              op=MPI.SUM)
        assert area > 0 and load == pytest.approx(p_li * area, rel=1e-10), name


def vertical_stress_integral(coupled: ChemoMechanicalProblem) -> float:
    """∫ σ_zz dV over the solid (MPa µm³)."""
    mechanics = coupled.mechanics
    dx = ufl.Measure("dx", domain=mechanics.mesh, subdomain_data=mechanics.domain.cell_tags,
                     metadata={"quadrature_degree": 2})
    total = 0.0
    for sigma, tags in mechanics._stress_expressions:
        for tag in tags:
            total += fem.assemble_scalar(fem.form(sigma[2, 2] * dx(tag)))
    return coupled.comm.allreduce(total, op=MPI.SUM)


def test_pore_pressure_carries_its_share_of_the_stack_load(coupled) -> None:
    """With v = z e_z (a P1 virtual displacement that the fixed bottom and the lateral
    rollers admit), the weak equilibrium gives ∫_solid σ_zz dV = −p_stack V_box + P V_pore:
    Li at pressure P in the pores takes P V_pore of the stack load off the solid
    (Terzaghi). Small strain, elastic: the change with P is exact to the solver tolerance,
    and σ_h(2P) − σ_h(0) = 2 (σ_h(P) − σ_h(0))."""
    pressure = 20.0
    base = stress_with_pore_pressure(coupled, 0.0)
    load_base = vertical_stress_integral(coupled)
    once = stress_with_pore_pressure(coupled, pressure) - base
    p_li = coupled.transport.pores.p_li.x.array[0]
    load_once = vertical_stress_integral(coupled)
    twice = stress_with_pore_pressure(coupled, 2 * pressure) - base
    assert np.abs(twice - 2 * once).max() < 1e-6 * np.abs(once).max()
    pore_volume = coupled.transport.pores.plating.volume
    assert load_once - load_base == pytest.approx(p_li * pore_volume, rel=1e-6)
