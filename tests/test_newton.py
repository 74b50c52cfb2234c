"""The block Newton of the transport (solver/newton.py): the residual it assembles without
lifting is DOLFINx's, it stops a stagnating Newton early, and command-line options with a
solver's prefix reach that solver."""

from __future__ import annotations

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from conftest import case_with, layered_box
from dolfinx import fem, mesh
from dolfinx.fem.petsc import assemble_residual
from petsc4py import PETSc

from solver.config import case_materials
from solver.newton import STAGNATION_WINDOW, BlockNewtonProblem
from solver.problem import TransportProblem
from solver.transient import Drive

CHARGE = [{"type": "galvanostatic", "current_density": "1 mA/cm^2", "duration": "10 s"}]


@pytest.fixture(scope="module")
def transport() -> TransportProblem:
    case = case_with(CHARGE)
    options = {"constrict_current_snes_max_it": "7", "ksp_error_if_not_converged": None}
    problem = TransportProblem(layered_box(MPI.COMM_WORLD, 4), case, case_materials(case),
                               options)
    problem.apply_drive(Drive("current", 10.0))
    return problem


def test_residual_without_lifting_is_dolfinx_residual(transport: TransportProblem) -> None:
    solver = transport._solver_for(transport.drive)
    x = solver.x.duplicate()
    rng = np.random.default_rng(1)
    with x.localForm() as local:
        local.array[:] = 0.3 + 0.1 * rng.random(local.array.size)
    ours, theirs = solver.b.duplicate(), solver.b.duplicate()
    solver._residual(solver.solver, x, ours)
    assemble_residual(solver.solver, x, theirs, solver.u, solver.F, solver.J, [],
                      _blocks=solver.b.getAttr("_blocks"))
    assert theirs.norm() > 0
    theirs.axpy(-1.0, ours)
    assert theirs.norm() <= 1e-14 * ours.norm()


def test_prefixed_command_line_option_reaches_its_solver(transport: TransportProblem) -> None:
    """`-constrict_current_snes_max_it 7` sets the galvanostatic solver's limit (it was
    prefixed a second time and ignored); an option without a prefix goes to every solver."""
    solver = transport._solver_for(transport.drive)
    assert solver.solver.getTolerances()[3] == 7
    assert transport.petsc_options["ksp_error_if_not_converged"] is None


def test_stagnating_newton_stops_early() -> None:
    """u² + ε = 0 has no root: Newton halves u until u² ~ ε and then stalls. It stops with
    DIVERGED_LOCAL_MIN a few iterations after that, far below max_it."""
    domain = mesh.create_unit_interval(MPI.COMM_SELF, 1)
    space = fem.functionspace(domain, ("DG", 0))
    u, v = fem.Function(space), ufl.TestFunction(space)
    u.x.array[:] = 1.0
    residual = (u * u + 1e-8) * v * ufl.dx
    problem = BlockNewtonProblem(residual, u, petsc_options_prefix="test_stagnation_",
                                 petsc_options={"snes_type": "newtonls",
                                                "snes_linesearch_type": "basic",
                                                "snes_max_it": 200, "snes_rtol": 1e-12,
                                                "snes_atol": 1e-20, "snes_stol": 0.0,
                                                "ksp_type": "preonly", "pc_type": "lu"})
    problem.solve()
    snes = problem.solver
    assert snes.getConvergedReason() == PETSc.SNES.ConvergedReason.DIVERGED_LOCAL_MIN
    iterations = snes.getIterationNumber()
    halvings = int(np.log2(1.0 / 1e-4)) + 1  # until u ~ sqrt(ε)
    assert iterations <= halvings + 3 * STAGNATION_WINDOW
    assert problem.timings.newton_iterations == iterations
    assert problem.timings.residual_evaluations >= iterations + 1
