"""One benchmark measurement, run under mpirun by bench/run_benchmarks.py.

Runs the transport of a case for a fixed number of steps and, on the same mesh, one plain
DOLFINx linear-elasticity solve (P1, CG + GAMG with the rigid-body near-nullspace): the
cost floor a coupled step is compared with. Prints one JSON line on rank 0.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

from mpi4py import MPI

import numpy as np
import ufl
from dolfinx import fem, la
from dolfinx.fem.petsc import LinearProblem
from petsc4py import PETSc

from solver.config import case_materials, load_case
from solver.problem import TransportProblem
from solver.simulation import build_case_mesh
from solver.stepper import Drive

EVENTS = ("SNESSolve", "SNESFunctionEval", "SNESJacobianEval", "KSPSolve", "PCSetUp")


def event_times() -> dict[str, float]:
    return {name: PETSc.Log.Event(name).getPerfInfo()["time"] for name in EVENTS}


def rigid_body_modes(space: fem.FunctionSpace) -> PETSc.NullSpace:
    """Three translations and three rotations, orthonormalised (as in the DOLFINx demo)."""
    x = space.tabulate_dof_coordinates()
    owned = space.dofmap.index_map.size_local
    basis = [la.vector(space.dofmap.index_map, bs=3) for _ in range(6)]
    for i in range(3):
        basis[i].array.reshape(-1, 3)[:owned, i] = 1.0
    for k, (a, b) in enumerate(((0, 1), (1, 2), (2, 0))):
        modes = basis[3 + k].array.reshape(-1, 3)
        modes[:owned, a] = -x[:owned, b]
        modes[:owned, b] = x[:owned, a]
    la.orthonormalize(basis)
    return PETSc.NullSpace().create(vectors=[b.petsc_vec for b in basis])


def elasticity_floor(mesh) -> dict[str, float]:
    """Assemble and solve linear elasticity once on `mesh`; seconds and iterations."""
    space = fem.functionspace(mesh, ("Lagrange", 1, (3,)))
    u, v = ufl.TrialFunction(space), ufl.TestFunction(space)
    mu, lmbda = 1.0, 1.5

    def sigma(w):
        strain = ufl.sym(ufl.grad(w))
        return 2 * mu * strain + lmbda * ufl.tr(strain) * ufl.Identity(3)

    fixed = fem.locate_dofs_geometrical(space, lambda x: np.isclose(x[2], 0.0))
    bc = fem.dirichletbc(np.zeros(3), fixed, space)
    problem = LinearProblem(
        ufl.inner(sigma(u), ufl.grad(v)) * ufl.dx,
        ufl.inner(ufl.as_vector((0, 0, -1.0)), v) * ufl.dx,
        bcs=[bc], petsc_options_prefix="floor_",
        petsc_options={"ksp_type": "cg", "pc_type": "gamg", "ksp_rtol": 1e-8})
    problem.A.setNearNullSpace(rigid_body_modes(space))
    start = time.perf_counter()
    problem.solve()
    seconds = mesh.comm.allreduce(time.perf_counter() - start, op=MPI.MAX)
    return {"floor_solve_s": seconds, "floor_ksp_iterations": problem.solver.getIterationNumber(),
            "floor_dofs": space.dofmap.index_map.size_global * 3}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("case")
    parser.add_argument("--set", dest="assignments", action="append", default=[])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--dt", type=float, default=5.0)
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    case = load_case(args.case, args.assignments)
    tagged = build_case_mesh(case, comm)
    problem = TransportProblem(tagged, case, case_materials(case))
    problem.apply_drive(Drive("current", case.protocol.steps[0].current_density))
    problem.solve(args.dt)  # compile the forms and set up the solver outside the timing
    problem.accept(args.dt)
    PETSc.Log.begin()
    before = event_times()
    newton = 0
    start = time.perf_counter()
    for step in range(args.steps):
        result = problem.solve(args.dt)
        assert result.converged, f"step {step} did not converge"
        newton += result.newton_iterations
        problem.accept((step + 2) * args.dt)
    wall = comm.allreduce(time.perf_counter() - start, op=MPI.MAX)
    spent = {name: comm.allreduce(t - before[name], op=MPI.MAX)
             for name, t in event_times().items()}
    ndofs = sum(u.function_space.dofmap.index_map.size_global for u in problem.unknowns)
    floor = elasticity_floor(tagged.mesh)
    peak_kb = comm.gather(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, root=0)
    if comm.rank == 0:
        per_step = wall / args.steps
        linear = spent["KSPSolve"] + spent["PCSetUp"]
        assembly = spent["SNESFunctionEval"] + spent["SNESJacobianEval"]
        print(json.dumps({
            "ranks": comm.size, "cells": tagged.mesh.topology.index_map(3).size_global,
            "transport_dofs": ndofs, "steps": args.steps, "newton_iterations": newton,
            "ksp_iterations_per_newton": 1, "time_per_step_s": per_step,
            "assembly_s_per_step": assembly / args.steps,
            "linear_solve_s_per_step": linear / args.steps,
            "nonlinear_overhead_s_per_step": (spent["SNESSolve"] - assembly - linear) / args.steps,
            "other_s_per_step": (wall - spent["SNESSolve"]) / args.steps,
            "peak_memory_MB_per_rank": [kb / 1024 for kb in peak_kb],
            "memory_kB_per_dof": max(peak_kb) * comm.size / ndofs,
            **floor, "step_over_floor": per_step / floor["floor_solve_s"],
        }))


if __name__ == "__main__":
    main()
