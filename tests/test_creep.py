"""The upwind creep flux of plated Li (solver/physics/creep.py, MODEL (7.1), (7.3)): the
Galerkin form for uniform ψ, an exact Jacobian, exact conservation, and no Li drained from
an empty vertex on a mesh with obtuse angles."""

from __future__ import annotations

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from dolfinx import fem
from dolfinx import mesh as dmesh

from solver.materials import load_library
from solver.physics.creep import UpwindCreep
from solver.physics.plating import PlatedLiProblem

N_EXP, G0, A_CR, WIDTH = 6.56, 1e-3, 7.7e-3, 0.4


def distorted_box(seed: int = 1) -> dmesh.Mesh:
    """A 1 × 0.5 × 0.5 µm box of tetrahedra with its interior vertices moved at random
    by up to 30 % of the spacing: plenty of obtuse dihedral angles (T_ab < 0)."""
    msh = dmesh.create_box(MPI.COMM_SELF, [np.zeros(3), np.array([1.0, 0.5, 0.5])], [8, 4, 4],
                           dmesh.CellType.tetrahedron)
    x = msh.geometry.x
    interior = np.all((x > 1e-9) & (x < np.array([1.0, 0.5, 0.5]) - 1e-9), axis=1)
    x[interior] += np.random.default_rng(seed).uniform(-0.3, 0.3, (interior.sum(), 3)) * 0.125
    return msh


def creep_on(msh: dmesh.Mesh) -> tuple[fem.FunctionSpace, UpwindCreep]:
    V = fem.functionspace(msh, ("Lagrange", 1))
    width = fem.Function(fem.functionspace(msh, ("DG", 0)))
    width.x.array[:] = WIDTH
    return V, UpwindCreep(V, width, N_EXP, G0, fem.Constant(msh, A_CR))


def galerkin_outflow(V: fem.FunctionSpace, psi: np.ndarray, p: np.ndarray) -> np.ndarray:
    """∫ ψ N(G) ∇p·∇v dx of (7.1), (7.3) as a UFL form."""
    psi_h, p_h = fem.Function(V), fem.Function(V)
    psi_h.x.array[:], p_h.x.array[:] = psi, p
    G = ufl.sqrt(ufl.inner(ufl.grad(p_h), ufl.grad(p_h)) + G0**2)
    mobility = psi_h * A_CR * WIDTH ** (N_EXP + 1) * G ** (N_EXP - 1) / 2**N_EXP
    form = mobility * ufl.inner(ufl.grad(p_h), ufl.grad(ufl.TestFunction(V))) * ufl.dx
    return fem.assemble_vector(fem.form(form)).array


def test_uniform_psi_gives_the_galerkin_flux() -> None:
    V, creep = creep_on(distorted_box())
    p = np.random.default_rng(2).uniform(0.0, 5.0, V.dofmap.index_map.size_local)
    psi = np.full_like(p, 0.8)
    outflow, _, _ = creep.evaluate(psi, p)
    reference = galerkin_outflow(V, psi, p)
    assert np.abs(outflow - reference).max() < 1e-10 * np.abs(reference).max()
    assert abs(outflow.sum()) < 1e-12 * np.abs(outflow).sum()  # what leaves a arrives at b


def test_jacobian_matches_finite_differences() -> None:
    V, creep = creep_on(distorted_box())
    rng = np.random.default_rng(3)
    size = V.dofmap.index_map.size_local
    psi, p = rng.uniform(0.2, 0.9, size), rng.uniform(0.0, 5.0, size)
    _, d_psi, d_p = creep.evaluate(psi, p, jacobian=True)
    dense = {"psi": np.zeros((size, size)), "p": np.zeros((size, size))}
    for block, name in ((d_psi, "psi"), (d_p, "p")):
        for cell, dofs in enumerate(creep.dofs):
            dense[name][np.ix_(dofs, dofs)] += block[cell]
    h = 1e-7
    for column in rng.choice(size, 12, replace=False):
        for name, state in (("psi", psi), ("p", p)):
            up, down = state.copy(), state.copy()
            up[column] += h
            down[column] -= h
            args_up = (up, p) if name == "psi" else (psi, up)
            args_down = (down, p) if name == "psi" else (psi, down)
            fd = (creep.evaluate(*args_up)[0] - creep.evaluate(*args_down)[0]) / (2 * h)
            scale = np.abs(dense[name]).max()
            assert np.abs(fd - dense[name][:, column]).max() < 1e-5 * scale, (name, column)


def test_empty_vertices_keep_psi_non_negative() -> None:
    """An overfilled pore (p_Li ≈ 44 MPa) at x < 0.3 µm on the distorted mesh creeps into
    the empty rest: Li is conserved and no vertex goes below zero (the Galerkin flux
    drains empty vertices behind obtuse angles)."""
    msh = distorted_box()
    width = fem.Function(fem.functionspace(msh, ("DG", 0)))
    width.x.array[:] = WIDTH
    problem = PlatedLiProblem(msh, width, load_library()["Li"], 298.15)
    problem.set_state(lambda x: np.where(x[0] < 0.3, 0.95 + 2e-4, 0.0))
    li0 = problem.total_li_mol()
    dt, lowest = 1e-4, 0.0
    for _ in range(10):
        converged, _ = problem.solve(dt)
        assert converged
        problem.accept()
        lowest = min(lowest, problem.min_psi())
        dt *= 2
    assert problem.total_li_mol() == pytest.approx(li0, rel=1e-12)
    assert lowest > -1e-12
    x = problem.V.tabulate_dof_coordinates()[:, 0]
    assert problem.psi.x.array[x > 0.35].max() > 1e-4  # Li has crept into the empty part
