"""Plated Li in the pores: pore filling and power-law creep (MODEL §7, docs/plating.md).

Unknowns on a pore mesh (a dolfinx mesh, or the submesh of the pore cells), both P1:

    ψ     volume fraction of plated Li metal (conserved)
    p_Li  its pressure in MPa

Equations, in the internal units of `solver.units` (µm, s, MPa):

    ∂ψ/∂t = ∇·(M ∇p_Li) in P,   −M ∇p_Li·n = Ω_Li q on the plating facets        (7.1)
    p_Li = K_Li ⟨ψ − ψ_c⟩₊ / (1 − ψ_c)                                           (7.2)
    M = ψ A_cr(T) w^(n+1) G^(n−1) / 2^n,   G = (|∇p_Li|² + G_0²)^(1/2)         (7.3)

with q the molar Li flux plated on the given facets (mol/(m² s)). Discretisation:

- Backward Euler; the storage term is lumped (vertex quadrature), which integrates P1
  ψ exactly, so the Li content is exactly ∫ψ dx and conservation holds to round-off.
- p_Li is a second P1 unknown tied to ψ at the vertices by (7.2) (a lumped, nodal
  equation): the flux then sees the gradient of the nodal pressures, constant in each
  cell, instead of the steep function p(ψ) sampled at quadrature points.
- ⟨x⟩₊ is smoothed in pressure units: p = ½ (p̂ + (p̂² + δ_p²)^(1/2)), p̂ = K(ψ − ψ_c)/(1 − ψ_c),
  δ_p = `pressure_smoothing` (MPa). It adds at most δ_p/2 to p_Li (at ψ = ψ_c) and
  δ_p²/(4|p̂|) below ψ_c (≈ 10⁻¹⁰ MPa for an empty pore).
- G_0 = `gradient_floor` (MPa/µm) keeps the Jacobian of the degenerate power-law flux
  (flux ∝ G^n, n = 6.56) from vanishing where p_Li is flat.
- The creep flux is assembled on the edges of each cell with the mobility ψ of the vertex
  the flux leaves (`solver.physics.creep`): Li conserved exactly, ψ ≥ 0 kept on meshes
  with obtuse angles, where the Galerkin flux drains empty vertices next to full ones.
  ψ in M is taken as max(ψ, 0).
- Residual rows are divided by a reference nodal volume (the mean volume per vertex),
  and the p rows multiplied by the compliance (1 − ψ_c)/K_Li, so both blocks measure ψ
  at a vertex and one Newton tolerance serves both (1e-12 in ψ is 2e-7 MPa in p_Li).
- Jacobian by `ufl.derivative` (the creep flux: by hand, exact); SNES Newton with a
  backtracking line search and MUMPS. A start far above the steady gradient converges
  linearly at first (Newton on G^n from above cuts the residual ≈ e-fold per step), then
  quadratically.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mpi4py import MPI

import dolfinx
import numpy as np
import ufl
from dolfinx import fem
from scipy.spatial import cKDTree

from solver.materials import MaterialCard, creep_coefficient
from solver.newton import BlockNewtonProblem
from solver.physics.creep import CreepTerm, UpwindCreep
from solver.units import Q_, magnitude

LUMPED = {"quadrature_rule": "vertex", "quadrature_degree": 1}


@dataclass(frozen=True)
class PlatingSettings:
    """Numerical parameters of the plated-Li problem (docs/plating.md).

    psi_c: filling fraction above which plated Li is pressurised, (7.2) (MODEL: ≈ 0.95;
    not a card field, the Li card has no pore-filling parameter).
    pressure_smoothing: δ_p in MPa, the width of the smoothed ⟨·⟩₊ in (7.2).
    gradient_floor: G_0 in MPa/µm, (7.3).
    """

    psi_c: float = 0.95
    pressure_smoothing: float = 1e-2  # MPa
    gradient_floor: float = 1e-3  # MPa/µm
    newton_rtol: float = 0.0  # off: the first residual can be huge (docs/plating.md)
    newton_atol: float = 1e-12  # in ψ per vertex (both blocks)
    newton_max_it: int = 50
    newton_stol: float = 1e-12  # Newton update relative to the state: round-off
    newton_stall_atol: float = 1e-9  # a stall at round-off below this counts as converged
    petsc_options_prefix: str = "constrict_plating_"
    petsc_options: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 < self.psi_c < 1:
            raise ValueError(f"PlatingSettings.psi_c must be in (0, 1), got {self.psi_c}")
        if self.pressure_smoothing <= 0 or self.gradient_floor <= 0:
            raise ValueError("PlatingSettings.pressure_smoothing and gradient_floor must be > 0")


def _metal(card: MaterialCard):
    if card.metal is None:
        raise ValueError(f"material '{card.name}' is a {card.kind}, not a metal")
    return card.metal


def smooth_positive(x, delta):
    """½ (x + (x² + δ²)^(1/2)): ⟨x⟩₊ smoothed over a width δ (UFL or numpy)."""
    if isinstance(x, ufl.core.expr.Expr):
        return 0.5 * (x + ufl.sqrt(x * x + delta * delta))
    return 0.5 * (x + np.sqrt(np.asarray(x) ** 2 + delta**2))


def li_pressure(psi, bulk_modulus: float, psi_c: float, smoothing: float):
    """p_Li(ψ) in MPa (7.2), ⟨·⟩₊ smoothed over δ_p = `smoothing` MPa (UFL or numpy)."""
    return smooth_positive(bulk_modulus * (psi - psi_c) / (1 - psi_c), smoothing)


def creep_mobility(psi, width, A_cr, n: float, G):
    """M = ψ A_cr w^(n+1) G^(n−1) / 2^n  (7.3), in µm²/(s MPa) for w in µm, G in MPa/µm.

    M·G is the mean creep velocity (µm/s) of Li metal in a pore of width w driven by a
    pressure gradient G. Works on UFL expressions and numpy arrays.
    """
    return psi * A_cr * width ** (n + 1) * G ** (n - 1) / 2**n


def steady_gradient(volume_flux: float, psi: float, width: float, A_cr: float, n: float,
                    G0: float = 0.0) -> float:
    """|∇p_Li| (MPa/µm) that carries the volume flux Ω q (µm/s) through a filled pore of
    constant width: M(G)·|∇p| = Ω q by (7.3), solved for |∇p| (closed form for G_0 = 0,
    Newton on the scalar equation otherwise)."""
    g = (volume_flux * 2**n / (psi * A_cr * width ** (n + 1))) ** (1 / n)
    for _ in range(100 if G0 > 0 else 0):
        G = np.hypot(g, G0)
        f = creep_mobility(psi, width, A_cr, n, G) * g - volume_flux
        df = creep_mobility(psi, width, A_cr, n, G) * (1 + (n - 1) * g**2 / G**2)
        g -= f / df
    return float(g)


class PlatedLiProblem:
    """Pore filling and creep of plated Li, (7.1)–(7.3), on a pore mesh.

    mesh: the pore mesh (µm). width: the local pore width w (µm) as a fem.Function (DG0
    or P1) on it, see `pore_width`. card: the Li metal card. temperature: in K.

    Attributes: `psi` and `p_li` (P1 Functions, the current iterate/solution),
    `psi_old`, `p_old` (the last accepted state), `dt` (a Constant, s).
    Use: `set_state(ψ0)`; `set_source(q, ds)`; then per step `solve(dt)` → (converged,
    iterations) followed by `accept()` or `reject()`.
    """

    def __init__(self, mesh: dolfinx.mesh.Mesh, width: fem.Function, card: MaterialCard,
                 temperature: float, settings: PlatingSettings | None = None) -> None:
        self.mesh = mesh
        self.comm = mesh.comm
        self.card = card
        self.settings = s = settings or PlatingSettings()
        metal = _metal(card)
        self.n = float(metal.creep_exponent)
        self.molar_volume = magnitude(metal.molar_volume, "m^3/mol")
        self.bulk_modulus = magnitude(metal.bulk_modulus, "MPa")
        # Ω q [mol/(m² s)] -> volume flux [µm/s]
        self.volume_per_mol_flux = magnitude(metal.molar_volume * Q_(1.0, "mol/m^2/s"), "um/s")
        self.width = width

        self.V = fem.functionspace(mesh, ("Lagrange", 1))
        self.psi = fem.Function(self.V, name="psi")
        self.p_li = fem.Function(self.V, name="p_Li")
        self.psi_old = fem.Function(self.V, name="psi_old")
        self.p_old = fem.Function(self.V, name="p_Li_old")
        self.dt = fem.Constant(mesh, 1.0)
        self._A_cr = fem.Constant(mesh, 0.0)
        self.set_temperature(temperature)

        n_vertices = mesh.topology.index_map(0).size_global
        volume = self.comm.allreduce(
            fem.assemble_scalar(fem.form(fem.Constant(mesh, 1.0) * ufl.dx(domain=mesh))),
            op=MPI.SUM)
        self.volume = volume  # µm³
        self._scale = fem.Constant(mesh, n_vertices / volume)  # 1 / (volume per vertex)
        self.dx = ufl.Measure("dx", domain=mesh)
        self.dx_lumped = ufl.Measure("dx", domain=mesh, metadata=LUMPED)
        self._sources: list[tuple[Any, ufl.Measure]] = []
        self._problem: BlockNewtonProblem | None = None
        self.creep = UpwindCreep(self.V, width, self.n, s.gradient_floor, self._A_cr)
        self._no_coupling = fem.Constant(mesh, 0.0)  # gives R_ψ its (ψ, p_Li) sparsity
        self._pressure_expression = fem.Expression(
            self.pressure_of(self.psi), self.V.element.interpolation_points)

    # -- material law ---------------------------------------------------------------------

    def pressure_of(self, psi):
        """p_Li(ψ) (7.2), smoothed as stated in the settings."""
        s = self.settings
        return li_pressure(psi, self.bulk_modulus, s.psi_c, s.pressure_smoothing)

    @property
    def creep_coefficient(self) -> float:
        """A_cr(T) in s⁻¹ MPa⁻ⁿ at the current temperature."""
        return float(self._A_cr.value)

    def set_temperature(self, temperature: float) -> None:
        self.temperature = float(temperature)
        self._A_cr.value = creep_coefficient(self.card, self.temperature)

    # -- state and sources ----------------------------------------------------------------

    def set_state(self, psi: Callable | np.ndarray | fem.Function | float) -> None:
        """Set ψ (a callable of x, an array of the local dofs, a Function or a number),
        p_Li = p(ψ) at the vertices, and make this the accepted state."""
        if isinstance(psi, fem.Function) or callable(psi):
            self.psi.interpolate(psi)
        elif np.isscalar(psi):
            self.psi.x.array[:] = float(psi)
        else:
            self.psi.x.array[:] = np.asarray(psi)
        self.psi.x.scatter_forward()
        self.update_pressure()
        self.accept()

    def update_pressure(self) -> None:
        """p_Li = p(ψ) at the vertices (7.2), without a solve."""
        self.p_li.interpolate(self._pressure_expression)
        self.p_li.x.scatter_forward()

    def set_source(self, flux=None, measure: ufl.Measure | None = None) -> None:
        """Replace the plating sources by one: molar flux `flux` (mol/(m² s), a number, a
        Constant, a Function or a UFL expression) on the facets of `measure` (a ds or dS
        measure on the pore mesh; restrict `flux` yourself on dS). No arguments: none."""
        self._sources = []
        if flux is not None:
            self.add_source(flux, measure)
        self._problem = None

    def add_source(self, flux, measure: ufl.Measure) -> None:
        """Add a plated molar flux (mol/(m² s)) on the facets of `measure`; (7.1)."""
        if measure is None:
            raise ValueError("add_source needs the facet measure of the plating facets")
        if isinstance(flux, int | float):
            flux = fem.Constant(self.mesh, float(flux))
        self._sources.append((flux, measure))
        self._problem = None

    # -- forms and solver -----------------------------------------------------------------

    def balance(self, v, r, dx_lumped: ufl.Measure, dt=None) -> tuple[ufl.Form, ufl.Form]:
        """The storage of (7.1), and (7.2) at the vertices times the compliance
        (1 − ψ_c)/K_Li, with vertex quadrature `dx_lumped`, of the pore mesh or of a parent
        mesh of which it is a submesh (the coupled problem). Without `dt`: both times Δt
        (units ψ·volume); with `dt` (the caller's step Constant): both per unit time. The
        creep flux of (7.1) is not a UFL form: `creep` adds it (`CreepTerm`)."""
        psi, p = self.psi, self.p_li
        compliance = (1 - self.settings.psi_c) / self.bulk_modulus  # ψ per MPa above ψ_c
        per_time = 1.0 if dt is None else 1.0 / dt
        R_psi = ((psi - self.psi_old) * per_time + self._no_coupling * p) * v * dx_lumped
        R_p = compliance * (p - self.pressure_of(psi)) * per_time * r * dx_lumped  # (7.2)
        return R_psi, R_p

    def residuals(self) -> list[ufl.Form]:
        """[R_ψ, R_p]: (7.1) times Δt without the creep flux, and (7.2) at the vertices, per
        reference volume."""
        v, r = ufl.TestFunction(self.V), ufl.TestFunction(self.V)
        R_psi, R_p = self.balance(v, r, self.dx_lumped)
        for q, measure in self._sources:
            R_psi -= self.dt * self.volume_per_mol_flux * q * v * measure  # −M∇p·n = Ω q
        return [self._scale * R_psi, self._scale * R_p]

    def _petsc_options(self) -> dict[str, object]:
        s = self.settings
        options: dict[str, object] = {
            "snes_type": "newtonls", "snes_linesearch_type": "bt",
            "snes_rtol": s.newton_rtol, "snes_atol": s.newton_atol, "snes_stol": s.newton_stol,
            "snes_max_it": s.newton_max_it,
            "ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps",
        }
        return options | dict(s.petsc_options)

    def _build(self) -> BlockNewtonProblem:
        residuals = self.residuals()
        unknowns = [self.psi, self.p_li]
        jacobian = [[ufl.derivative(R, u, ufl.TrialFunction(self.V)) for u in unknowns]
                    for R in residuals]
        creep = CreepTerm(unknowns, self.creep, self.psi, self.p_li,
                          lambda: float(self._scale.value * self.dt.value))
        return BlockNewtonProblem(residuals, unknowns, terms=[creep], J=jacobian, kind="mpi",
                                  petsc_options_prefix=self.settings.petsc_options_prefix,
                                  petsc_options=self._petsc_options())

    def solve(self, dt: float) -> tuple[bool, int]:
        """One backward-Euler step of length dt (s) from the accepted state; the solution
        is left in `psi`, `p_li` (accept() or reject() it). Returns (converged, Newton
        iterations)."""
        if self._problem is None:
            self._problem = self._build()
        self.dt.value = dt
        self._problem.solve()
        snes = self._problem.solver
        for u in (self.psi, self.p_li):
            u.x.scatter_forward()
        reason = snes.getConvergedReason()
        # The round-off floor of the residual grows with dt·(creep flux). A Newton update at
        # round-off (SNORM_RELATIVE, 4), a line search that cannot lower the residual (-6)
        # or a stagnating Newton (-8) counts as converged only if the residual is below
        # `newton_stall_atol`.
        small = snes.getFunctionNorm() < self.settings.newton_stall_atol
        converged = ((reason > 0 and reason != 4) or (reason in (4, -6, -8) and small)) and bool(
            self.comm.allreduce(np.all(np.isfinite(self.psi.x.array)), op=MPI.LAND))
        return converged, snes.getIterationNumber()

    def accept(self) -> None:
        self.psi_old.x.array[:] = self.psi.x.array
        self.p_old.x.array[:] = self.p_li.x.array

    def reject(self) -> None:
        self.psi.x.array[:] = self.psi_old.x.array
        self.p_li.x.array[:] = self.p_old.x.array

    # -- reports --------------------------------------------------------------------------

    def _integral(self, expr, measure=None) -> float:
        measure = self.dx_lumped if measure is None else measure
        return self.comm.allreduce(fem.assemble_scalar(fem.form(expr * measure)), op=MPI.SUM)

    def total_li_volume(self) -> float:
        """∫ψ dx in µm³ (exact for P1 ψ)."""
        return self._integral(self.psi)

    def total_li_mol(self) -> float:
        """Plated Li in mol: ∫ψ dx / Ω_Li."""
        return self.total_li_volume() * 1e-18 / self.molar_volume

    def source_rate_mol(self) -> float:
        """Plating rate Σ ∫ q ds in mol/s over the current sources."""
        total = 0.0
        for q, measure in self._sources:
            total += self.comm.allreduce(fem.assemble_scalar(fem.form(q * measure)), op=MPI.SUM)
        return total * 1e-12

    def max_pressure(self) -> float:
        """Largest nodal p_Li in MPa."""
        local = self.p_li.x.array.max(initial=-np.inf)
        return self.comm.allreduce(local, op=MPI.MAX)

    def min_psi(self) -> float:
        local = self.psi.x.array.min(initial=np.inf)
        return self.comm.allreduce(local, op=MPI.MIN)


# --- the local pore width -------------------------------------------------------------------


def _point_segment_distance(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.einsum("ij,ij->i", x - a, ab) / np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-300)
    closest = a + np.clip(t, 0.0, 1.0)[:, None] * ab
    return np.linalg.norm(x - closest, axis=1)


def _point_triangle_distance(x: np.ndarray, a: np.ndarray, b: np.ndarray,
                             c: np.ndarray) -> np.ndarray:
    """Exact distances between points x[i] and triangles (a[i], b[i], c[i]) in 3D."""
    e0, e1, d = b - a, c - a, x - a
    n = np.cross(e0, e1)
    nn = np.maximum(np.einsum("ij,ij->i", n, n), 1e-300)
    height = np.einsum("ij,ij->i", d, n) / nn
    proj = x - height[:, None] * n
    # barycentric coordinates of the projection
    f = proj - a
    d00, d01, d11 = (np.einsum("ij,ij->i", e0, e0), np.einsum("ij,ij->i", e0, e1),
                     np.einsum("ij,ij->i", e1, e1))
    d20, d21 = np.einsum("ij,ij->i", f, e0), np.einsum("ij,ij->i", f, e1)
    den = np.maximum(d00 * d11 - d01 * d01, 1e-300)
    s = (d11 * d20 - d01 * d21) / den
    t = (d00 * d21 - d01 * d20) / den
    inside = (s >= 0) & (t >= 0) & (s + t <= 1)
    edges = np.minimum(np.minimum(_point_segment_distance(x, a, b),
                                  _point_segment_distance(x, b, c)),
                       _point_segment_distance(x, c, a))
    return np.where(inside, np.abs(height) * np.sqrt(nn), edges)


def wall_distance(mesh: dolfinx.mesh.Mesh, points: np.ndarray,
                  wall_facets: np.ndarray) -> np.ndarray:
    """Exact distance (µm) of each point (k×3) to the nearest of the facets `wall_facets`
    (local indices, dimension tdim − 1) over all ranks. Lines in 2D, triangles in 3D."""
    tdim = mesh.topology.dim
    if tdim not in (2, 3):
        raise ValueError("wall_distance works on 2D and 3D simplex meshes")
    mesh.topology.create_connectivity(tdim - 1, 0)
    nodes = dolfinx.mesh.entities_to_geometry(mesh, tdim - 1, np.asarray(wall_facets,
                                                                         dtype=np.int32))
    simplices = mesh.geometry.x[nodes][:, :tdim, :]  # affine facets: their vertices
    simplices = np.concatenate(mesh.comm.allgather(simplices.reshape(-1, tdim * 3)))
    simplices = simplices.reshape(-1, tdim, 3)
    if len(simplices) == 0:
        return np.full(len(points), np.inf)
    centroids = simplices.mean(axis=1)
    reach = np.max(np.linalg.norm(simplices - centroids[:, None, :], axis=2))
    tree = cKDTree(centroids)
    nearest, _ = tree.query(points)
    candidates = tree.query_ball_point(points, nearest + reach + 1e-12)
    counts = np.array([len(c) for c in candidates])
    point_index = np.repeat(np.arange(len(points)), counts)
    facet_index = np.concatenate(candidates).astype(np.int64) if len(points) else np.array(
        [], dtype=np.int64)
    x = points[point_index]
    verts = simplices[facet_index]
    if tdim == 2:
        d = _point_segment_distance(x, verts[:, 0], verts[:, 1])
    else:
        d = _point_triangle_distance(x, verts[:, 0], verts[:, 1], verts[:, 2])
    result = np.full(len(points), np.inf)
    np.minimum.at(result, point_index, d)
    return result


def pore_width(mesh: dolfinx.mesh.Mesh, wall_facets: np.ndarray | None = None,
               cap: float | None = None, local_thickness: bool = True) -> fem.Function:
    """The local pore width w (µm) as a DG0 Function on the pore mesh, for (7.3).

    d = distance of each cell midpoint to the nearest wall facet (`wall_facets`, local
    facet indices of the pore mesh; default: all its exterior facets). With
    `local_thickness` (default) w is the local thickness: the diameter 2d_j of the
    largest ball B(c_j, d_j), centred at a cell midpoint, that contains the cell's
    midpoint, so a cell next to a wall gets the width of its pore, not 2× its own small
    distance. Otherwise w = 2d. Capped at `cap` (µm) if given (e.g. for pores open to a
    face that is not a wall). Needs ≥ 2–3 cells across a pore to resolve it.
    """
    tdim = mesh.topology.dim
    if wall_facets is None:
        mesh.topology.create_connectivity(tdim - 1, tdim)
        wall_facets = dolfinx.mesh.exterior_facet_indices(mesh.topology)
    imap = mesh.topology.index_map(tdim)
    cells = np.arange(imap.size_local + imap.num_ghosts, dtype=np.int32)
    midpoints = dolfinx.mesh.compute_midpoints(mesh, tdim, cells)
    d = wall_distance(mesh, midpoints, wall_facets)
    if cap is not None:
        d = np.minimum(d, cap / 2)
    w = 2 * d
    if local_thickness:
        owned = slice(0, imap.size_local)
        centres = np.concatenate(mesh.comm.allgather(midpoints[owned]))
        radii = np.concatenate(mesh.comm.allgather(d[owned]))
        tree = cKDTree(midpoints)
        for j, inside in enumerate(tree.query_ball_point(centres, radii * (1 + 1e-12))):
            if inside:
                idx = np.asarray(inside)
                w[idx] = np.maximum(w[idx], 2 * radii[j])
    space = fem.functionspace(mesh, ("DG", 0))
    width = fem.Function(space, name="pore_width")
    dofs = space.dofmap.list[cells, 0]
    width.x.array[dofs] = w
    width.x.scatter_forward()
    return width
