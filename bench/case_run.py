"""One benchmark measurement, run under mpirun by bench/run_benchmarks.py.

Runs a case end to end, as `constrict run` does (plating, mechanics, output and all), for
a given simulated time, then, in the same process and on the same mesh, one plain DOLFINx
linear-elasticity solve (P1, CG + GAMG with the rigid-body near-nullspace): the cost floor
a Newton iteration is compared with. Prints one JSON line on rank 0.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from mpi4py import MPI

import numpy as np
import ufl
from dolfinx import fem, la
from dolfinx.fem.petsc import LinearProblem
from petsc4py import PETSc

from solver.config import load_case
from solver.simulation import build_case_mesh, run_case


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


def per_iteration(timings: dict, newton: int) -> dict[str, float]:
    """Wall time (s) per Newton iteration of the transport, split as the run measured it."""
    newton = max(newton, 1)
    return {"total": (timings["transport_solve_s"] + timings["mechanics_s"]) / newton,
            "residual_assembly": timings["transport_residual_s"] / newton,
            "jacobian_assembly": timings["transport_jacobian_s"] / newton,
            "linear_solve_and_snes": timings["transport_linear_and_other_s"] / newton,
            "mechanics": timings["mechanics_s"] / newton}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("case")
    parser.add_argument("--set", dest="assignments", action="append", default=[])
    parser.add_argument("--duration", default="10 s", help="simulated time of the charge")
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    assignments = [*args.assignments, f"protocol.steps[0].duration={args.duration}"]
    case = load_case(args.case, assignments)
    folder = Path(comm.bcast(tempfile.mkdtemp(prefix="constrict-bench-") if comm.rank == 0
                             else None, root=0))
    start = time.perf_counter()
    metrics = run_case(case, folder, comm)
    wall = comm.allreduce(time.perf_counter() - start, op=MPI.MAX)
    floor = elasticity_floor(build_case_mesh(case, comm).mesh)
    peak_kb = comm.gather(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, root=0)
    if comm.rank == 0:
        timings = metrics["solver_timings"]
        newton, steps = metrics["n_newton_total"], max(metrics["n_steps"], 1)
        split = per_iteration(timings, timings["transport_newton_iterations"])
        print(json.dumps({
            "ranks": comm.size, "cells": metrics["n_cells"], "dofs": metrics["ndofs"],
            "mechanics_dofs": metrics.get("mechanics_dofs", 0),
            "simulated_s": metrics["time_final_s"], "status": metrics["status"],
            "wall_s": wall, "stepping_s": timings["stepping_s"],
            "simulated_s_per_wall_s": metrics["time_final_s"] / timings["stepping_s"],
            "accepted_steps": metrics["n_steps"], "rejected_steps": metrics["n_cutbacks"],
            "newton_iterations": newton,
            "newton_iterations_all_attempts": timings["transport_newton_iterations"],
            "krylov_iterations_per_newton": timings["transport_krylov_iterations"]
            / max(timings["transport_newton_iterations"], 1),
            "residuals_per_newton": timings["transport_residual_evaluations"]
            / max(timings["transport_newton_iterations"], 1),
            "mechanics_newton_iterations": metrics.get("mechanics_newton_total", 0),
            "wall_s_per_newton_iteration": split,
            "wall_s_per_accepted_step": timings["stepping_s"] / steps,
            "other_s_per_accepted_step": timings["other_s"] / steps,
            "peak_memory_MB_per_rank": [kb / 1024 for kb in peak_kb],
            **floor, "newton_iteration_over_floor": split["total"] / floor["floor_solve_s"],
        }))


if __name__ == "__main__":
    main()
