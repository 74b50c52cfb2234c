"""Serial = parallel for the mechanics (VALIDATION V6). Run under mpirun -n 2."""

from __future__ import annotations

from pathlib import Path

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from dolfinx import fem
from test_mechanics import CARDS, SYMMETRY, column_with_pore, two_blocks

from meshes import SingleParticleSpec, build_mesh
from solver.materials import apply_overrides
from solver.physics.mechanics import (
    FixedBottom,
    MechanicsProblem,
    MechanicsSettings,
    Pressure,
    Roller,
    SolidDomain,
    Spring,
    ViscoplasticMechanicsProblem,
)

pytestmark = pytest.mark.mpi
SPEC = SingleParticleSpec("Si", 1.0, octant=True, size_surface=0.15, size_center=0.3)


def observables(problem: MechanicsProblem) -> np.ndarray:
    u = problem.u
    return np.array([problem.integral(problem.sigma_h), problem.integral(problem.von_mises),
                     problem.integral(problem.eps_lat), problem.integral(ufl.dot(u, u)),
                     problem.integral(ufl.det(ufl.Identity(3) + ufl.grad(u)))])


def shell(comm: MPI.Comm, cache: Path, linear_solver: str) -> np.ndarray:
    """Finite strain: Si octant with a lithiated shell, in a spring."""
    domain = SolidDomain.from_tagged(build_mesh(SPEC, comm, cache, progress=False), CARDS)
    theta = fem.Function(fem.functionspace(domain.mesh, ("Lagrange", 1)))
    theta.interpolate(lambda x: 0.5 * (1 + np.tanh((np.linalg.norm(x, axis=0) - 0.8) / 0.05)))
    settings = MechanicsSettings(linear_solver=linear_solver, linear_rtol=1e-12,
                                 newton_rtol=1e-11)
    problem = MechanicsProblem(domain, theta, [*SYMMETRY, Spring("surface", 1.0e4, 1.0)],
                               settings)
    assert problem.solve().converged
    return observables(problem)


def column(comm: MPI.Comm) -> np.ndarray:
    """Small strain on the solid submesh of a box with pores, loaded on the pore wall; and
    finite strain on two blocks, one of them floating (weak foundation)."""
    domain = SolidDomain.from_tagged(column_with_pore(comm), CARDS)
    theta = fem.Function(fem.functionspace(domain.mesh, ("DG", 0)))
    bcs = [FixedBottom(), Roller("lateral"), Pressure("CP:Cu", 1000.0)]
    problem = MechanicsProblem(domain, theta, bcs, MechanicsSettings(kinematics="small"))
    assert problem.solve().converged
    blocks = SolidDomain.from_tagged(two_blocks(comm), CARDS)
    assert len(blocks.pieces()[1]) == 2
    theta = fem.Function(fem.functionspace(blocks.mesh, ("Lagrange", 1)))
    theta.interpolate(lambda x: 0.2 + 0.5 * x[0] * x[2])
    # two equal blocks: the anchored "main" one must not depend on the partition
    floating = MechanicsProblem(blocks, theta, [FixedBottom(), Roller("lateral")])
    assert floating.solve().converged
    return np.concatenate([observables(problem), observables(floating)])


@pytest.mark.parametrize("linear_solver", ["mumps", "gamg"])
def test_v6_mechanics_serial_equals_parallel(linear_solver, tmp_path_factory) -> None:
    world = MPI.COMM_WORLD
    if world.size < 2:
        pytest.skip("needs mpirun -n 2")
    cache = Path(world.bcast(str(tmp_path_factory.mktemp("meshes")) if world.rank == 0 else None))
    parallel = shell(world, cache, linear_solver)  # rank 0 writes the mesh for both
    serial = shell(MPI.COMM_SELF, cache, linear_solver)
    assert np.allclose(parallel, serial, rtol=1e-8, atol=0.0), (parallel, serial)


def test_v6_solid_submesh_serial_equals_parallel() -> None:
    world = MPI.COMM_WORLD
    if world.size < 2:
        pytest.skip("needs mpirun -n 2")
    parallel, serial = column(world), column(MPI.COMM_SELF)
    assert np.allclose(parallel, serial, rtol=1e-8, atol=1e-14), (parallel, serial)


def viscoplastic_shell(comm: MPI.Comm, cache: Path) -> np.ndarray:
    """Two steps of a lithiating Si shell with viscoplastic flow (a strongly rate-dependent
    Si, as in test_mechanics.py: the calibrated card needs smaller steps for this jump)."""
    si = apply_overrides(CARDS["Si"], {"elastic_threshold": 0.05,
                                       "viscoplastic_rate": "1e-9 1/s"})
    domain = SolidDomain.from_tagged(build_mesh(SPEC, comm, cache, progress=False),
                                     {**CARDS, "Si": si})
    theta = fem.Function(fem.functionspace(domain.mesh, ("Lagrange", 1)))
    settings = MechanicsSettings(newton_rtol=1e-11)
    problem = ViscoplasticMechanicsProblem(domain, theta,
                                           [*SYMMETRY, Spring("surface", 1.0e4, 1.0)], settings)
    for front in (1.0, 0.95):
        theta.interpolate(lambda x, f=front: 0.5 * (1 + np.tanh(
            (np.linalg.norm(x, axis=0) - f) / 0.05)))
        assert problem.solve(60.0).converged
        problem.accept()
    return np.append(observables(problem), problem.integral(problem.plastic_strain))


def test_v6_viscoplastic_serial_equals_parallel(tmp_path_factory) -> None:
    world = MPI.COMM_WORLD
    if world.size < 2:
        pytest.skip("needs mpirun -n 2")
    cache = Path(world.bcast(str(tmp_path_factory.mktemp("meshes")) if world.rank == 0 else None))
    parallel = viscoplastic_shell(world, cache)
    serial = viscoplastic_shell(MPI.COMM_SELF, cache)
    assert parallel[-1] > 0.0
    assert np.allclose(parallel, serial, rtol=1e-8, atol=0.0), (parallel, serial)
