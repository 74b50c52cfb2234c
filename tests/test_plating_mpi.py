"""Serial = parallel for the plated-Li creep problem (MODEL §7). Run under mpirun -n 2."""

from __future__ import annotations

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from dolfinx import mesh as dmesh
from test_plating import LEFT, PSI_C, Q_1MA, bar, constant_width, integral

from solver.materials import load_library
from solver.physics.plating import PlatedLiProblem, pore_width

pytestmark = pytest.mark.mpi


def observables(comm: MPI.Comm) -> np.ndarray:
    """Plate 10 mA/cm² into a bar that starts with an overfilled end, then creep."""
    card = load_library()["Li"]
    msh, ds = bar(comm)
    problem = PlatedLiProblem(msh, constant_width(msh, 0.5), card, 298.15)
    problem.set_state(lambda x: np.where(x[0] >= 3.0 - 1e-9, PSI_C + 1e-4, 0.0))
    problem.set_source(10 * Q_1MA, ds(LEFT))
    iterations = []
    for dt in (1e-3, 1e-2, 0.1, 1.0, 10.0, 30.0):
        converged, its = problem.solve(dt)
        assert converged
        problem.accept()
        iterations.append(its)
    x = ufl.SpatialCoordinate(msh)
    slit = dmesh.create_box(comm, [np.zeros(3), np.array([2.0, 2.0, 1.0])], [4, 4, 6],
                            dmesh.CellType.tetrahedron)
    slit.topology.create_connectivity(2, 3)
    walls = dmesh.locate_entities_boundary(slit, 2, lambda y: np.isclose(y[2], 0)
                                           | np.isclose(y[2], 1))
    w = pore_width(slit, walls)
    return np.array([problem.total_li_mol(), problem.max_pressure(), problem.min_psi(),
                     integral(comm, problem.psi * x[0], problem.dx),
                     integral(comm, problem.p_li, problem.dx),
                     integral(comm, w, ufl.dx(domain=slit)), *iterations])


def test_plating_serial_equals_parallel() -> None:
    world = MPI.COMM_WORLD
    if world.size < 2:
        pytest.skip("needs mpirun -n 2")
    parallel = observables(world)
    serial = observables(MPI.COMM_SELF)
    assert np.allclose(parallel[:6], serial[:6], rtol=1e-8, atol=1e-12), (parallel, serial)
    assert np.abs(parallel[6:] - serial[6:]).max() <= 1, (parallel[6:], serial[6:])
