"""Newton on a block system of DOLFINx forms plus terms that UFL cannot express (MODEL §8).

`BlockNewtonProblem` is DOLFINx's `NonlinearProblem` (PETSc SNES on the block forms) with
four changes, each measured on the default scaffold (docs/performance.md):

- The residual skips the lifting of Dirichlet conditions when there are none. DOLFINx's
  callback lifts with every Jacobian block at every residual, which packs the coefficients
  of all blocks each time: 12 % of a Newton iteration's cost for nothing in a galvanostatic
  run.
- Physics that is not a UFL form adds itself to the residual and the Jacobian through an
  `AddedTerm` (the upwind creep flux of plated Li, `solver.physics.creep`).
- A Newton that stagnates (a residual that falls by less than `STAGNATION_FACTOR` over
  `STAGNATION_WINDOW` iterations) stops with DIVERGED_LOCAL_MIN instead of spending the
  rest of its iterations at a kink of the residual; the caller decides whether the norm
  it stopped at is round-off (converged) or a failure (Δt is cut).
- It keeps the wall time of residuals, Jacobians and the rest of each solve (the linear
  solve, mostly) and the Newton and Krylov iteration counts: `timings`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import dolfinx
from dolfinx import fem
from dolfinx.fem.petsc import (
    NonlinearProblem,
    assemble_jacobian,
    assemble_residual,
    assemble_vector,
    assign,
)
from petsc4py import PETSc

# A Newton that has cut its residual below STAGNATION_ONSET times the first and then gains
# less than 10 % in four iterations (its residual above STAGNATION_FACTOR times that of
# STAGNATION_WINDOW iterations before) is stuck at a kink of the residual: measured at the
# plating onset of the default scaffold, 7.87e-6 after 9.9e-3 for 20 more iterations. A
# Newton still far from the solution may creep for a while and then converge (the creep
# flux from above, a damped first 2C step), so it goes on.
STAGNATION_ONSET = 1e-2
STAGNATION_WINDOW = 4
STAGNATION_FACTOR = 0.9

Reason = PETSc.SNES.ConvergedReason


class AddedTerm(Protocol):
    """A residual contribution assembled outside UFL, with its exact Jacobian."""

    def add_residual(self, b: PETSc.Vec) -> None:
        """Add the term to the assembled residual (local form, owned rows)."""

    def add_jacobian(self, A: PETSc.Mat) -> None:
        """Add the term's derivatives into the assembled (not yet final) Jacobian."""


@dataclass
class NewtonTimings:
    """Where the Newton solves of one problem spent their time (s) and iterations."""

    solves: int = 0
    newton_iterations: int = 0
    krylov_iterations: int = 0
    residual_evaluations: int = 0
    jacobian_evaluations: int = 0
    residual_s: float = 0.0
    jacobian_s: float = 0.0
    solve_s: float = 0.0

    @property
    def linear_and_other_s(self) -> float:
        """The solve's time outside residuals and Jacobians: the linear solve, mostly."""
        return self.solve_s - self.residual_s - self.jacobian_s

    def as_dict(self) -> dict[str, float]:
        return asdict(self) | {"linear_and_other_s": self.linear_and_other_s}

    def __add__(self, other: NewtonTimings) -> NewtonTimings:
        return NewtonTimings(**{key: value + getattr(other, key)
                                for key, value in asdict(self).items()})


class BlockNewtonProblem(NonlinearProblem):
    """`NonlinearProblem` with added terms, lifting only with Dirichlet conditions, early
    stop on stagnation and timings (module docstring)."""

    def __init__(self, F: Sequence[fem.Form] | fem.Form, u: Sequence[fem.Function] | fem.Function,
                 *, terms: Sequence[AddedTerm] = (), bcs: Sequence[fem.DirichletBC] | None = None,
                 **kwargs) -> None:
        super().__init__(F, u, bcs=bcs, **kwargs)
        self._terms = list(terms)
        self._bcs = list(bcs or [])
        self.timings = NewtonTimings()
        self.history: list[float] = []
        self.solver.setFunction(self._residual, self.b)
        self.solver.setJacobian(self._jacobian, self.A, self.P_mat)
        self.solver.setConvergenceTest(self._converged)

    def solve(self):
        start = time.perf_counter()
        self.history = []
        try:
            return super().solve()
        finally:
            timings = self.timings
            timings.solves += 1
            timings.newton_iterations += self.solver.getIterationNumber()
            timings.krylov_iterations += self.solver.getLinearSolveIterations()  # this solve's
            timings.solve_s += time.perf_counter() - start

    @property
    def first_residual_norm(self) -> float:
        return self.history[0] if self.history else math.inf

    def _residual(self, snes: PETSc.SNES, x: PETSc.Vec, b: PETSc.Vec) -> None:
        start = time.perf_counter()
        if self._bcs:
            assemble_residual(snes, x, b, self.u, self.F, self.J, self._bcs,
                              _blocks=self.b.getAttr("_blocks"))
        else:
            self._residual_without_lifting(x, b)
        for term in self._terms:
            term.add_residual(b)
        if self._terms:
            dolfinx.la.petsc._ghost_update(b, PETSc.InsertMode.INSERT, PETSc.ScatterMode.FORWARD)
        self.timings.residual_evaluations += 1
        self.timings.residual_s += time.perf_counter() - start

    def _residual_without_lifting(self, x: PETSc.Vec, b: PETSc.Vec) -> None:
        """assemble_residual of DOLFINx for a problem without Dirichlet conditions."""
        dolfinx.la.petsc._ghost_update(x, PETSc.InsertMode.INSERT, PETSc.ScatterMode.FORWARD)
        assign(x, self.u)
        blocks = self.b.getAttr("_blocks")
        if blocks is not None:
            b.setAttr("_blocks", blocks)
        dolfinx.la.petsc._zero_vector(b)
        assemble_vector(b, self.F)
        dolfinx.la.petsc._ghost_update(b, PETSc.InsertMode.ADD, PETSc.ScatterMode.REVERSE)
        dolfinx.la.petsc._ghost_update(b, PETSc.InsertMode.INSERT, PETSc.ScatterMode.FORWARD)

    def _jacobian(self, snes: PETSc.SNES, x: PETSc.Vec, A: PETSc.Mat,
                  P: PETSc.Mat | None) -> None:
        start = time.perf_counter()
        assemble_jacobian(snes, x, A, P, self.u, self.J, None, self._bcs)
        if self._terms:
            for term in self._terms:
                term.add_jacobian(A)
            A.assemble()
        self.timings.jacobian_evaluations += 1
        self.timings.jacobian_s += time.perf_counter() - start

    def _converged(self, snes: PETSc.SNES, iteration: int, norms: tuple[float, float, float]
                   ) -> int:
        """SNES's default test (PETSc's SNESConvergedDefault: atol, rtol, stol, divtol,
        max_it), plus the stagnation stop."""
        xnorm, step_norm, fnorm = norms
        self.history.append(fnorm)
        rtol, atol, stol, max_it = snes.getTolerances()[:4]
        if not math.isfinite(fnorm):
            return Reason.DIVERGED_FUNCTION_NANORINF
        if fnorm <= atol:
            return Reason.CONVERGED_FNORM_ABS
        if iteration > 0 and fnorm <= rtol * self.history[0]:
            return Reason.CONVERGED_FNORM_RELATIVE
        if iteration > 0 and step_norm < stol * xnorm:
            return Reason.CONVERGED_SNORM_RELATIVE
        divergence = snes.getDivergenceTolerance()
        if divergence > 0 and fnorm > divergence * self.history[0]:
            return Reason.DIVERGED_DTOL
        if iteration >= max_it:
            return Reason.DIVERGED_MAX_IT
        if self._stagnating(iteration):
            return Reason.DIVERGED_LOCAL_MIN
        return Reason.CONVERGED_ITERATING

    def _stagnating(self, iteration: int) -> bool:
        history = self.history
        return (iteration >= STAGNATION_WINDOW
                and history[iteration] < STAGNATION_ONSET * history[0]
                and history[iteration] > STAGNATION_FACTOR * history[iteration - STAGNATION_WINDOW])
