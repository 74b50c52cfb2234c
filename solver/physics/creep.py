"""The creep flux of plated Li, (7.1) and (7.3), on P1 edges with an upwind mobility.

The flux of (7.1) is −M ∇p_Li with M = ψ N, N = A_cr w^(n+1) G^(n−1) / 2^n (7.3). On a P1
cell c the Galerkin form ∫ M ∇p·∇v couples each pair of vertices (a, b) of the cell by

    F_ab = ψ N_c T_ab (p_a − p_b),   T_ab = −∫_c ∇φ_a·∇φ_b dx,

the volume of Li metal that creeps from a to b (µm³/s): the row of a gets +F_ab, the row
of b −F_ab, so the scheme conserves Li exactly. A tetrahedral mesh has obtuse dihedral
angles, where T_ab < 0 and the Galerkin flux runs uphill. With ψ averaged over the cell
(plain Galerkin), an empty vertex next to a pressurised one then loses Li: ψ goes negative
at the edge of every filled pore (measured: 9 % of the plating rate at 2C on
`small_scaffold`, docs/plating.md).

Here ψ in F_ab is that of the vertex the flux leaves (ψ_up = ψ_a if the flux runs from a
to b, else ψ_b): a vertex without Li has no outflow, so ψ ≥ 0 is kept by the implicit
step, while Li still creeps into empty pores (their inflow uses the full neighbour's ψ).
This is the upstream mobility of porous-media flow on control-volume finite elements.
For uniform ψ it is the Galerkin form, so the steady power law (7.3) is reproduced.

UFL has no notion of an edge within a cell, so `UpwindCreep` evaluates the flux and its
exact derivatives with numpy over the owned cells, and `CreepTerm` adds them to the
residual and Jacobian that DOLFINx assembles from the UFL forms of the other terms
(`solver.newton.BlockNewtonProblem`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import combinations
from math import factorial

import dolfinx
import numpy as np
from dolfinx import fem
from petsc4py import PETSc


class UpwindCreep:
    """The creep flux of (7.1) with upstream ψ on the P1 space `V` (any simplex mesh).

    width: the pore width w (DG0, µm); n: creep exponent; gradient_floor: G_0 (MPa/µm);
    A_cr: the creep coefficient (a Constant, so that a temperature change reaches it).
    """

    def __init__(self, V: fem.FunctionSpace, width: fem.Function, n: float,
                 gradient_floor: float, A_cr: fem.Constant) -> None:
        mesh = V.mesh
        tdim = mesh.topology.dim
        owned = mesh.topology.index_map(tdim).size_local
        self.V = V
        self.n, self.G0, self.A_cr = n, gradient_floor, A_cr
        self.dofs = V.dofmap.list[:owned]
        self.gradients, volumes = self._basis_gradients(V.tabulate_dof_coordinates()[self.dofs])
        width_dofs = width.function_space.dofmap.list[:owned, 0]
        self.width_factor = width.x.array[width_dofs] ** (n + 1) / 2**n
        stiffness = volumes[:, None, None] * np.einsum("cai,cbi->cab", self.gradients,
                                                       self.gradients)
        self.edges = list(combinations(range(tdim + 1), 2))
        self.transmissibility = np.stack([-stiffness[:, a, b] for a, b in self.edges], axis=1)

    @staticmethod
    def _basis_gradients(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """∇φ_a of each cell's P1 basis (cells × vertices × 3) and the cell volumes, from the
        vertex coordinates (cells × vertices × 3)."""
        tdim = points.shape[1] - 1
        jacobian = np.transpose(points[:, 1:, :tdim] - points[:, :1, :tdim], (0, 2, 1))
        reference = np.vstack([-np.ones(tdim), np.eye(tdim)])  # ∇̂φ_a, rows a
        inverse_t = np.linalg.inv(jacobian).transpose(0, 2, 1)
        gradients = np.einsum("cij,aj->cai", inverse_t, reference)
        volumes = np.abs(np.linalg.det(jacobian)) / factorial(tdim)
        return gradients, volumes

    def _cell_mobility(self, p: np.ndarray, gradients: np.ndarray,
                       width_factor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """N_c of (7.3) without ψ, and ∂N_c/∂p_k (cells × vertices), for the given cells'
        nodal p, basis gradients and w^(n+1)/2^n."""
        grad_p = np.einsum("ca,cai->ci", p, gradients)
        G2 = np.einsum("ci,ci->c", grad_p, grad_p) + self.G0**2
        N = float(self.A_cr.value) * width_factor * G2 ** ((self.n - 1) / 2)
        dN = (N * (self.n - 1) / G2)[:, None] * np.einsum("ci,cai->ca", grad_p, gradients)
        return N, dN

    def _on_all_cells(self, active: np.ndarray, blocks: np.ndarray) -> np.ndarray:
        """Per-cell blocks of the active cells spread onto all owned cells (zero elsewhere)."""
        full = np.zeros((len(self.dofs),) + blocks.shape[1:])
        full[active] = blocks
        return full

    def evaluate(self, psi: np.ndarray, p: np.ndarray, jacobian: bool = False):
        """Net creep outflow per vertex (µm³/s, local array with ghosts, before the reverse
        scatter) and, with `jacobian`, its derivatives per cell: ∂/∂ψ and ∂/∂p_Li
        (cells × vertices × vertices, rows and columns the cell's vertices).

        Only cells with Li metal at a vertex carry a flux (ψ_up > 0), so the work is done
        on those alone; the other cells' derivatives are zero."""
        psi_all = np.maximum(psi[self.dofs], 0.0)
        active = np.flatnonzero(psi_all.max(axis=1) > 0.0)
        psi_c, p_c = psi_all[active], p[self.dofs[active]]
        gradients, transmissibility = self.gradients[active], self.transmissibility[active]
        cells = np.arange(len(active))
        N, dN = self._cell_mobility(p_c, gradients, self.width_factor[active])
        cell_outflow = np.zeros(psi_c.shape)
        vertices = self.dofs.shape[1]
        d_psi = np.zeros(psi_c.shape + (vertices,)) if jacobian else None
        d_p = np.zeros_like(d_psi) if jacobian else None
        for e, (a, b) in enumerate(self.edges):
            drop = transmissibility[:, e] * (p_c[:, a] - p_c[:, b])
            rate = N * drop  # µm³/s per unit ψ, from a to b
            up = np.where(rate > 0, a, b)
            psi_up = psi_c[cells, up]
            flux = psi_up * rate
            cell_outflow[:, a] += flux
            cell_outflow[:, b] -= flux
            if not jacobian:
                continue
            d_flux_d_psi = rate * (psi_up > 0)
            d_flux_d_p = psi_up[:, None] * drop[:, None] * dN
            d_flux_d_p[:, a] += psi_up * N * transmissibility[:, e]
            d_flux_d_p[:, b] -= psi_up * N * transmissibility[:, e]
            for row, sign in ((a, 1.0), (b, -1.0)):
                d_psi[cells, row, up] += sign * d_flux_d_psi
                d_p[:, row, :] += sign * d_flux_d_p
        outflow = np.bincount(self.dofs[active].ravel(), weights=cell_outflow.ravel(),
                              minlength=len(psi))
        if jacobian:
            d_psi, d_p = self._on_all_cells(active, d_psi), self._on_all_cells(active, d_p)
        return outflow, d_psi, d_p


class CreepTerm:
    """The upwind creep outflow of `creep`, times `factor()`, in the ψ row of a block
    Newton (`solver.newton.AddedTerm`; ψ and p_Li are two of the unknowns `u`).

    The UFL forms must give the ψ row a (ψ, p_Li) block over all cells of the pore mesh
    (a zero-valued term will do): the creep Jacobian is added into that sparsity.
    """

    def __init__(self, u: Sequence[fem.Function], creep: UpwindCreep, psi: fem.Function,
                 p: fem.Function, factor: Callable[[], float]) -> None:
        self._creep, self._psi, self._p, self._factor = creep, psi, p, factor
        spaces = [unknown.function_space for unknown in u]
        self._index_sets = dolfinx.cpp.la.petsc.create_index_sets(
            [(V.dofmap.index_map, V.dofmap.index_map_bs) for V in spaces])
        self._rows, self._cols = u.index(psi), u.index(p)
        self._offset = sum(V.dofmap.index_map.size_local * V.dofmap.index_map_bs
                           for V in spaces[:self._rows])
        self._scatter = dolfinx.la.vector(psi.function_space.dofmap.index_map)
        self._dofs = creep.dofs.astype(PETSc.IntType)

    def add_residual(self, b: PETSc.Vec) -> None:
        outflow, _, _ = self._creep.evaluate(self._psi.x.array, self._p.x.array)
        self._scatter.array[:] = outflow
        self._scatter.scatter_reverse(dolfinx.la.InsertMode.add)
        owned = self._psi.function_space.dofmap.index_map.size_local
        with b.localForm() as local:
            local.array[self._offset:self._offset + owned] += \
                self._factor() * self._scatter.array[:owned]

    def add_jacobian(self, A: PETSc.Mat) -> None:
        _, d_psi, d_p = self._creep.evaluate(self._psi.x.array, self._p.x.array, jacobian=True)
        factor, dofs = self._factor(), self._dofs
        rows = self._index_sets[self._rows]
        for column, block in ((self._rows, d_psi), (self._cols, d_p)):
            columns = self._index_sets[column]
            sub = A.getLocalSubMatrix(rows, columns)
            sub.setValuesLocalRCV(dofs, dofs, factor * block.reshape(len(dofs), -1),
                                  addv=PETSc.InsertMode.ADD)
            A.restoreLocalSubMatrix(rows, columns, sub)
