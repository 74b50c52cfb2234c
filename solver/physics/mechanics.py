"""Mechanics of the solid phase (MODEL §6): swelling hosts in an elastic solid.

The displacement u lives on a "solid" mesh: the whole mesh of a single particle, or a
submesh of all solid cells of a scaffold (hosts, SE layers, conductors, insulators; not the
pores), see `SolidDomain`. The caller fills the Li fraction θ (a `fem.Function` on that
mesh, P1 or DG0, zero outside hosts), calls `MechanicsProblem.solve()` and reads the outputs
σ_h, ε_lat, von Mises (P1 functions on the solid mesh) and u.

Kinematics (`MechanicsSettings.kinematics`):

- "finite" (default): F = I + ∇u = F_e F_c (F_p = I), F_c = J_c^(1/3) I with
  J_c = swelling_ratio(card, θ) / swelling_ratio(card, θ_ref) in hosts and 1 elsewhere;
  compressible neo-Hookean
  W(F_e) = μ/2 (tr F_eᵀF_e − 3) − μ ln J_e + λ/2 (ln J_e)² per unit intermediate volume,
  reference-volume energy J_c W(F_e), so P = J_c ∂W/∂F_e F_c⁻ᵀ (6.1).
- "small": ε = sym ∇u, additive eigenstrain ε_c = e*(θ) I, σ = λ tr(ε − ε_c) I + 2μ(ε − ε_c).
  e* = J_c^(1/3) − 1 ("stretch", default: free uniform swelling is then the same in both
  kinematics) or (J_c − 1)/3 = Ω c_max θ/3 ("linear", the chemical strain of the classic
  diffusion-induced-stress theory of Zhang–Shyy–Sastry, used by the V3 check).

The reference configuration is the mesh, and the mesh is the solid as it was made, at the
Li fraction θ_ref (`MechanicsProblem.theta_reference`; the coupled problem sets it to the
initial θ): F_c is measured from there, so the solid is stress-free as made and only the
lithiation after that, and the loads, stress it. MODEL §6 writes F_c from pristine
material (θ = 0); with θ_ref = 0 (the default) that is what is solved.

E(θ) = youngs_modulus(card, θ) (linear in θ) and ν from the card; λ, μ the Lamé constants.
Units: µm, MPa; residual entries in MPa·µm².

Viscoplastic hosts (6.2): `ViscoplasticMechanicsProblem` (finite strain, experimental),
a subclass with internal variables at the quadrature points; docs/mechanics.md.

Boundary conditions are small dataclasses (`Roller`/`Symmetry`, `FixedBottom`, `Clamp`,
`Pressure`, `Spring`, `TractionFree`) naming a facet group of the solid domain. In finite
strain, pressures and springs are follower loads (they act on the deformed surface, so the
Cauchy traction is −p n); in small strain they act on the reference surface.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from mpi4py import MPI

import basix
import basix.ufl
import dolfinx
import numpy as np
import scipy.sparse
import scipy.sparse.csgraph
import ufl
from dolfinx import fem, la
from dolfinx.fem.petsc import NonlinearProblem
from petsc4py import PETSc

from solver.materials import MaterialCard, swelling_ratio, yield_stress, youngs_modulus

if TYPE_CHECKING:
    from meshes import TaggedMesh

log = logging.getLogger("constrict.mechanics")

TDIM, FDIM = 3, 2
KINEMATICS = ("small", "finite")
EIGENSTRAINS = ("stretch", "linear")
LINEAR_SOLVERS = ("mumps", "gamg")


# --- boundary conditions -----------------------------------------------------------------


@dataclass(frozen=True)
class Roller:
    """u·n = 0 on a facet group of planes normal to the coordinate axes (symmetry planes,
    lateral rollers). The normal of each facet is found from its vertices, so one group
    may hold several planes (e.g. the four lateral faces of a box)."""

    where: str | int


Symmetry = Roller
"""A symmetry plane is a roller: u·n = 0 on "symmetry_x/y/z"."""


@dataclass(frozen=True)
class FixedBottom:
    """The rigid current collector at z = 0: u_z = 0 on `where`; with `clamped` also
    u_x = u_y = 0 (bonded). Unclamped, the lateral rigid-body modes must be removed by
    other conditions (lateral rollers), or the Jacobian is singular."""

    where: str | int = "bottom"
    clamped: bool = False


@dataclass(frozen=True)
class Clamp:
    """u = 0 on `where`."""

    where: str | int


@dataclass(frozen=True)
class Pressure:
    """Traction −p n on `where` (p in MPa, compression positive): the confining pressure of
    a particle, the stack pressure on the top face (MODEL §6), or p_Li on pore walls. `value`
    may be a float or a UFL coefficient (a `fem.Constant` or `fem.Function` on the solid
    mesh) that the caller updates between solves. A follower load in finite strain."""

    where: str | int
    value: float | fem.Constant | fem.Function


@dataclass(frozen=True)
class Spring:
    """Confining spring t = −K_eff (u·n / R) n on `where` (K_eff in MPa, R in µm, MODEL §6):
    a pressure K_eff u_n/R, following the surface in finite strain."""

    where: str | int
    stiffness: float
    radius: float


@dataclass(frozen=True)
class TractionFree:
    """t = 0 on `where` (the natural condition; listed for the case file's sake)."""

    where: str | int


BoundaryCondition = Roller | FixedBottom | Clamp | Pressure | Spring | TractionFree


# --- settings and the solid domain -------------------------------------------------------


@dataclass(frozen=True)
class MechanicsSettings:
    """Discretisation and solver settings of the mechanics.

    degree: of the Lagrange displacement (2: see docs/mechanics.md for the V3 accuracy).
    quadrature_degree: None for 2·degree − 1 (small strain: exact for P2 with E linear
    in P1 θ) and 2·degree (finite strain). Always explicit: UFL's own estimate for the
    neo-Hookean terms is far too high and makes the Jacobian assembly slow.
    linear_solver: "mumps" (direct) or "gamg" (CG, GMRES with follower loads, + GAMG with
    the rigid-body near-nullspace).
    max_substeps: finite strain: when Newton fails the change of θ since the last solve
    is applied in up to this many increments (continuation), before giving up.
    predictor: finite strain: a solve that starts from u = 0 (the first one) starts Newton
    from the small-strain solution ("stretch" eigenstrain) instead. From u = 0 a large
    swelling mismatch gives a hugely compressed, indefinite first tangent (GAMG fails, MUMPS
    needs twice the iterations); the linear predictor is within a few % of the answer.
    foundation: pieces of the solid not connected (through facets) to its largest piece
    (caps of particles cut by the lateral faces, whose other half periodicity would join)
    have free rigid-body modes; they rest on an elastic foundation k u (k = foundation ×
    E_max / L², L the size of the domain). 0 turns this off.
    """

    kinematics: str = "finite"
    degree: int = 2
    quadrature_degree: int | None = None
    eigenstrain: str = "stretch"
    linear_solver: str = "mumps"
    newton_rtol: float = 1e-9
    # MPa·µm² = µN. The round-off floor of the residual grows with the mesh: 4-6e-9 on a
    # 30,000-dof scaffold, where 1e-9 was never reached; nodal forces are 1-1000 µN.
    newton_atol: float = 1e-7
    newton_max_it: int = 25
    linear_rtol: float = 1e-10  # gamg only
    max_substeps: int = 32
    predictor: bool = True
    foundation: float = 1e-6
    petsc_options_prefix: str = "constrict_mechanics_"
    petsc_options: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, allowed in [("kinematics", KINEMATICS), ("eigenstrain", EIGENSTRAINS),
                              ("linear_solver", LINEAR_SOLVERS)]:
            if getattr(self, name) not in allowed:
                raise ValueError(f"MechanicsSettings.{name} must be one of {allowed}, "
                                 f"got {getattr(self, name)!r}")
        if self.degree not in (1, 2, 3):
            raise ValueError("MechanicsSettings.degree must be 1, 2 or 3")

    @property
    def quadrature(self) -> int:
        if self.quadrature_degree is not None:
            return self.quadrature_degree
        return 2 * self.degree - 1 if self.kinematics == "small" else 2 * self.degree


@dataclass
class SolidDomain:
    """The mesh the mechanics lives on, with its cell and facet tags.

    materials: cell tag → card of every solid cell; facet_names: name → facet tag (the
    `TaggedMesh.interfaces` names); entity_map: from the solid mesh's cells to the parent
    mesh's cells (None when the solid is the whole mesh).
    """

    mesh: dolfinx.mesh.Mesh
    cell_tags: dolfinx.mesh.MeshTags
    facet_tags: dolfinx.mesh.MeshTags
    materials: dict[int, MaterialCard]
    facet_names: dict[str, int] = field(default_factory=dict)
    entity_map: dolfinx.mesh.EntityMap | None = None
    _pieces: tuple[np.ndarray, dict[int, int]] | None = field(default=None, repr=False)
    warned: bool = field(default=False, repr=False)

    @classmethod
    def from_tagged(cls, tagged: TaggedMesh, cards: Mapping[str, MaterialCard]) -> SolidDomain:
        """The solid cells of a tagged mesh: every region but "pore". Region names end
        with their material ("host:Si", "electrolyte:0:LPSCl"), looked up in `cards`.
        The whole mesh when it has no pores (single particle); otherwise a submesh with
        the cell and facet tags transferred (pore-wall facets become boundary facets)."""
        materials = {tag: cards[name.rsplit(":", 1)[-1]]
                     for name, tag in tagged.regions.items() if name != "pore"}
        if "pore" not in tagged.regions:
            return cls(tagged.mesh, tagged.cell_tags, tagged.facet_tags, materials,
                       dict(tagged.interfaces))
        mesh = tagged.mesh
        cells = tagged.cell_tags.indices[np.isin(tagged.cell_tags.values, list(materials))]
        submesh, cell_map, vertex_map, _ = dolfinx.mesh.create_submesh(mesh, TDIM, cells)
        cell_tags = dolfinx.mesh.transfer_meshtags_to_submesh(tagged.cell_tags, submesh,
                                                              vertex_map, cell_map)
        facet_tags = dolfinx.mesh.transfer_meshtags_to_submesh(tagged.facet_tags, submesh,
                                                               vertex_map, cell_map)
        return cls(submesh, cell_tags, facet_tags, materials, dict(tagged.interfaces), cell_map)

    def pieces(self) -> tuple[np.ndarray, dict[int, int]]:
        """(label of every local cell, {label: global cell count}) of the facet-connected
        pieces of the solid (`connected_pieces`); computed once."""
        if self._pieces is None:
            labels = connected_pieces(self.mesh)
            owned = labels[: self.mesh.topology.index_map(TDIM).size_local]
            pieces, counts = np.unique(owned, return_counts=True)
            sizes: dict[int, int] = {}
            for rank_sizes in self.mesh.comm.allgather(
                    dict(zip(pieces.tolist(), counts.tolist(), strict=True))):
                for piece, count in rank_sizes.items():
                    sizes[piece] = sizes.get(piece, 0) + count
            self._pieces = (labels, sizes)
        return self._pieces

    def main_piece(self) -> int:
        """The label of the largest piece; among equal ones the lowest (smallest z of a cell
        midpoint), so that the choice does not depend on the partition."""
        labels, sizes = self.pieces()
        local = self.mesh.topology.index_map(TDIM).size_local
        z = dolfinx.mesh.compute_midpoints(self.mesh, TDIM,
                                           np.arange(local, dtype=np.int32))[:, 2]
        lowest = {}
        for piece in sizes:
            mine = z[labels[:local] == piece]
            lowest[piece] = self.mesh.comm.allreduce(mine.min(initial=np.inf), op=MPI.MIN)
        return max(sizes, key=lambda piece: (sizes[piece], -lowest[piece]))

    def facet_tag(self, where: str | int) -> int:
        if isinstance(where, str):
            if where not in self.facet_names:
                raise ValueError(f"no facet group named {where!r} on the solid mesh "
                                 f"(known: {', '.join(sorted(self.facet_names))})")
            return self.facet_names[where]
        return int(where)


@dataclass
class MechanicsResult:
    """What one `MechanicsProblem.solve()` did."""

    converged: bool
    newton_iterations: int  # over all substeps
    linear_iterations: int
    substeps: int
    residuals: list[float]  # SNES residual norms of the last (sub)step, iteration 0 first
    seconds: float


# --- constitutive laws -------------------------------------------------------------------


def lame(E, nu: float):
    """Lamé constants (λ, μ) from Young's modulus and Poisson's ratio."""
    return E * nu / ((1 + nu) * (1 - 2 * nu)), E / (2 * (1 + nu))


@dataclass(frozen=True)
class _Material:
    """E(θ), ν and J_c(θ) of one card as UFL expressions of θ (MODEL §6)."""

    card: MaterialCard

    @property
    def nu(self) -> float:
        return float(self.card.poisson_ratio)

    def E(self, theta):
        if self.card.host is not None:
            return youngs_modulus(self.card, theta)  # §6, linear in θ
        return float(self.card.youngs_modulus.m_as("MPa"))

    def swelling(self, theta, theta_reference):
        """J_c = det F_c from the reference configuration at θ_ref: (1 + Ω c_max θ) /
        (1 + Ω c_max θ_ref) in hosts, 1 elsewhere (§6, module docstring)."""
        if self.card.host is None:
            return None
        return swelling_ratio(self.card, theta) / swelling_ratio(self.card, theta_reference)


class _Kinematics:
    """Stress measures of one material: the weak-form stress, the Cauchy stress and the
    elastic lattice strain, as UFL expressions of u and θ."""

    def __init__(self, settings: MechanicsSettings) -> None:
        self.finite = settings.kinematics == "finite"
        self.linear_eigenstrain = settings.eigenstrain == "linear"

    def eigenstrain(self, Jc):
        """e* of the small-strain eigenstrain ε_c = e* I."""
        if Jc is None:
            return 0.0
        return (Jc - 1) / 3 if self.linear_eigenstrain else Jc ** (1 / 3) - 1

    def parts(self, u, material: _Material, theta, theta_reference):
        """(weak-form stress, Cauchy stress σ, ε_lat)."""
        E, nu = material.E(theta), material.nu
        lmbda, mu = lame(E, nu)
        Jc = material.swelling(theta, theta_reference)
        identity = ufl.Identity(TDIM)
        if not self.finite:
            strain = ufl.sym(ufl.grad(u)) - self.eigenstrain(Jc) * identity
            sigma = lmbda * ufl.tr(strain) * identity + 2 * mu * strain
            return sigma, sigma, ufl.tr(strain) / 3
        F = identity + ufl.grad(u)
        stretch = 1.0 if Jc is None else Jc ** (1 / 3)  # F_c = J_c^(1/3) I
        Fe = F / stretch
        Je = ufl.det(Fe)
        Fe_invT = ufl.inv(Fe).T
        dW = mu * (Fe - Fe_invT) + lmbda * ufl.ln(Je) * Fe_invT  # ∂W/∂F_e
        # (6.1): P = ∂(J_c W(F_e))/∂F = J_c ∂W/∂F_e F_c⁻ᵀ = J_c^(2/3) ∂W/∂F_e
        P = dW if Jc is None else Jc ** (2 / 3) * dW
        sigma = (mu * (Fe * Fe.T - identity) + lmbda * ufl.ln(Je) * identity) / Je  # τ_e/J_e
        return P, sigma, Je ** (1 / 3) - 1


def inclusion_stress_stiffness(card: MaterialCard, theta: float) -> float:
    """β = −dσ_h/dθ (MPa) of a small spherical region of a host swelling inside itself.

    Eshelby's inclusion with a dilatational eigenstrain e* = Ω c_max θ / 3 in a matrix of
    the same moduli carries σ_h = −2E e*/(3(1 − ν)), so β = 2 E Ω c_max / (9 (1 − ν)), with
    E = E(θ). Used by the fixed-stress split of the transport–mechanics iteration
    (`transport.split_hydrostatic_stress`): it is the local, short-wavelength stiffness,
    an upper bound of the response to smooth changes of θ.
    """
    material = _Material(card)
    expansion = swelling_ratio(card, 1.0) - 1.0  # Ω c_max
    return float(2 * material.E(theta) * expansion / (9 * (1 - material.nu)))


def von_mises(sigma):
    s = ufl.dev(sigma)
    return ufl.sqrt(1.5 * ufl.inner(s, s))


# --- the problem -------------------------------------------------------------------------


class MechanicsProblem:
    """Quasi-static balance ∇·P = 0 (6.1) of the solid domain for a given θ.

    Public fields: `u` (displacement, µm), `theta` (the caller's Li fraction), `sigma_h`
    (Cauchy hydrostatic stress tr σ/3 in MPa, tension positive), `eps_lat` (J_e^(1/3) − 1,
    small strain tr(ε − ε_c)/3), `von_mises` (MPa); the last three P1 on the solid mesh and
    updated by `solve()`.
    """

    def __init__(self, domain: SolidDomain, theta: fem.Function,
                 boundary_conditions: Sequence[BoundaryCondition],
                 settings: MechanicsSettings | None = None, temperature: float = 298.15,
                 theta_reference: fem.Function | None = None) -> None:
        self.domain = domain
        self.mesh = domain.mesh
        self.comm = self.mesh.comm
        self.settings = settings or MechanicsSettings()
        self.temperature = temperature  # K; no elastic property depends on it yet
        self.theta = theta
        self._check_tags()
        self.mesh.topology.create_connectivity(FDIM, TDIM)
        s = self.settings
        self.V = fem.functionspace(self.mesh, ("Lagrange", s.degree, (TDIM,)))
        self.u = fem.Function(self.V, name="u")
        # θ as seen by the forms: a copy of the caller's θ, so that a failed finite-strain
        # step can be redone in increments of θ (continuation)
        self._theta_load = fem.Function(theta.function_space)
        self._theta_solved = fem.Function(theta.function_space)
        self.theta_reference = (theta_reference if theta_reference is not None
                                else fem.Function(theta.function_space, name="theta_reference"))
        self._accepted_u = self.u.x.array.copy()
        self._accepted_theta = self._theta_solved.x.array.copy()
        metadata = {"quadrature_degree": s.quadrature}
        self.dx = ufl.Measure("dx", domain=self.mesh, subdomain_data=domain.cell_tags,
                              metadata=metadata)
        self.ds = ufl.Measure("ds", domain=self.mesh, subdomain_data=domain.facet_tags,
                              metadata=metadata)
        self._kinematics = _Kinematics(s)
        # cells grouped by card: one integral per card, with that card's own functions
        groups: dict[str, list[int]] = {}
        for tag, card in sorted(domain.materials.items()):
            groups.setdefault(card.name, []).append(tag)
        self._groups = [(_Material(domain.materials[tags[0]]), tuple(tags))
                        for tags in groups.values()]
        self.bcs, self._follower = self._dirichlet(boundary_conditions)
        self.residual = self._residual(boundary_conditions)
        self._problem = NonlinearProblem(
            self.residual, self.u, bcs=self.bcs, petsc_options_prefix=s.petsc_options_prefix,
            petsc_options=self._petsc_options())
        self.snes = self._problem.solver
        if s.linear_solver == "gamg":
            self._problem.A.setNearNullSpace(rigid_body_modes(self.V))
        self._residual_norms: list[float] = []
        self.snes.setMonitor(lambda _snes, _it, norm: self._residual_norms.append(norm))
        self._outputs()
        self._conditions = tuple(boundary_conditions)
        self._predictor: MechanicsProblem | None = None
        self.last_result: MechanicsResult | None = None

    # -- construction -------------------------------------------------------------------

    def _check_tags(self) -> None:
        tags = self.domain.cell_tags
        cells = self.mesh.topology.index_map(TDIM).size_local
        covered = np.zeros(cells, dtype=bool)
        owned = tags.indices < cells
        known = np.isin(tags.values[owned], list(self.domain.materials))
        covered[tags.indices[owned][known]] = True
        missing = self.comm.allreduce(int(np.count_nonzero(~covered)), op=MPI.SUM)
        if missing:
            raise ValueError(f"{missing} cells of the solid mesh have no material "
                             f"(cell tags without a card: {sorted(set(tags.values))})")
        if self.theta.function_space.mesh is not self.mesh:
            raise ValueError("θ must be a Function on the solid mesh of the mechanics")

    def _facets(self, where: str | int) -> np.ndarray:
        return self.domain.facet_tags.find(self.domain.facet_tag(where))

    def _dirichlet(self, conditions: Sequence[BoundaryCondition]):
        bcs, follower = [], False
        for bc in conditions:
            if isinstance(bc, Roller):
                facets = self._facets(bc.where)
                for axis, selected in enumerate(self._split_by_normal(facets, bc.where)):
                    bcs.append(self._component_bc(axis, selected))
            elif isinstance(bc, FixedBottom):
                facets = self._facets(bc.where)
                for axis in range(TDIM) if bc.clamped else [2]:
                    bcs.append(self._component_bc(axis, facets))
            elif isinstance(bc, Clamp):
                facets = self._facets(bc.where)
                bcs.extend(self._component_bc(axis, facets) for axis in range(TDIM))
            elif isinstance(bc, Pressure | Spring):
                follower = follower or self.settings.kinematics == "finite"
            elif not isinstance(bc, TractionFree):
                raise TypeError(f"unknown boundary condition {bc!r}")
        return bcs, follower

    def _component_bc(self, axis: int, facets: np.ndarray) -> fem.DirichletBC:
        sub = self.V.sub(axis)
        dofs = fem.locate_dofs_topological(sub, FDIM, facets)
        return fem.dirichletbc(PETSc.ScalarType(0.0), dofs, sub)

    def _split_by_normal(self, facets: np.ndarray, where) -> list[np.ndarray]:
        """The facets of `facets` lying in planes x = const, y = const, z = const."""
        nodes = dolfinx.mesh.entities_to_geometry(self.mesh, FDIM, facets)
        x = self.mesh.geometry.x[nodes]  # (facets, vertices, 3)
        spread = x.max(axis=1) - x.min(axis=1)
        axis = np.argmin(spread, axis=1)
        size = spread.max(axis=1)
        bad = self.comm.allreduce(int(np.count_nonzero(
            spread[np.arange(len(facets)), axis] > 1e-8 * np.maximum(size, 1e-300))), op=MPI.SUM)
        if bad:
            raise ValueError(f"roller/symmetry facets {where!r}: {bad} facets are not normal to "
                             "a coordinate axis")
        return [facets[axis == a] for a in range(TDIM)]

    def _traction_load(self, bc, v) -> ufl.Form:
        """Virtual work of a pressure p: −p n·v on the current surface (finite strain:
        −p J F⁻ᵀN·v per reference area, Nanson), −p N·v in small strain."""
        N = ufl.FacetNormal(self.mesh)
        if isinstance(bc, Spring):
            p = bc.stiffness * ufl.dot(self.u, N) / bc.radius
        else:
            p = bc.value
            if isinstance(p, int | float):
                p = fem.Constant(self.mesh, PETSc.ScalarType(p))
        ds = self.ds(self.domain.facet_tag(bc.where))
        if self.settings.kinematics == "finite":
            F = ufl.Identity(TDIM) + ufl.grad(self.u)
            normal = ufl.det(F) * ufl.inv(F).T * N
        else:
            normal = N
        return p * ufl.dot(normal, v) * ds

    def _residual(self, conditions: Sequence[BoundaryCondition]) -> ufl.Form:
        v = ufl.TestFunction(self.V)
        residual = 0
        for material, tags in self._groups:
            stress, _, _ = self._constitutive(material, tags)
            residual += ufl.inner(stress, ufl.grad(v)) * self.dx(tags)
        for bc in conditions:
            if isinstance(bc, Pressure | Spring):
                residual += self._traction_load(bc, v)
        floating = self._floating_cells()
        if floating is not None:
            residual += floating * ufl.dot(self.u, v) * self.dx
        return residual

    def _floating_cells(self) -> fem.Function | None:
        """k on the cells outside the largest facet-connected piece of the solid (DG0), or
        None when the solid is one piece (or the foundation is off)."""
        if self.settings.foundation == 0:
            return None
        labels, sizes = self.domain.pieces()
        if len(sizes) <= 1:
            return None
        main = self.domain.main_piece()
        x = self.mesh.geometry.x
        low, high = np.empty(3), np.empty(3)
        self.comm.Allreduce(x.min(axis=0, initial=np.inf), low, op=MPI.MIN)
        self.comm.Allreduce(x.max(axis=0, initial=-np.inf), high, op=MPI.MAX)
        stiffest = max(material.card.youngs_modulus.m_as("MPa") for material, _ in self._groups)
        for material, _ in self._groups:
            if material.card.host is not None:
                stiffest = max(stiffest, material.card.host.youngs_modulus_lithiated.m_as("MPa"))
        k = self.settings.foundation * stiffest / float(np.sum((high - low) ** 2))
        space = fem.functionspace(self.mesh, ("DG", 0))
        field_ = fem.Function(space, name="foundation")
        cells = np.arange(len(labels), dtype=np.int32)
        field_.x.array[space.dofmap.list[cells, 0]] = np.where(labels == main, 0.0, k)
        if self.comm.rank == 0 and not self.domain.warned:
            floating = sum(count for piece, count in sizes.items() if piece != main)
            log.warning("mechanics: %d pieces of the solid (%d of %d cells) are not connected "
                        "to the main body; they rest on an elastic foundation k = %.3g MPa/µm²",
                        len(sizes) - 1, floating, sum(sizes.values()), k)
        self.domain.warned = True
        return field_

    def _constitutive(self, material: _Material, tags: tuple[int, ...]):
        """(weak-form stress, Cauchy stress, ε_lat) of the cells with `tags`."""
        return self._kinematics.parts(self.u, material, self._theta_load, self.theta_reference)

    def _symmetric_tangent(self) -> bool:
        return not self._follower  # follower loads make the tangent non-symmetric

    def _petsc_options(self) -> dict[str, object]:
        s = self.settings
        options: dict[str, object] = {
            "snes_type": "newtonls", "snes_linesearch_type": "bt",
            "snes_rtol": s.newton_rtol, "snes_atol": s.newton_atol, "snes_stol": 0.0,
            "snes_max_it": s.newton_max_it,
        }
        if s.kinematics == "small":  # linear: one Newton step with an exact solve
            options["snes_linesearch_type"] = "basic"
        if s.linear_solver == "mumps":
            options |= {"ksp_type": "preonly", "pc_type": "lu",
                        "pc_factor_mat_solver_type": "mumps"}
        else:
            options |= {
                "ksp_type": "cg" if self._symmetric_tangent() else "gmres",
                "ksp_rtol": s.linear_rtol, "ksp_max_it": 2000,
                # threshold 0.05 and point-block Jacobi: 137 instead of 341 CG iterations
                # on a P2 scaffold (docs/mechanics.md)
                "pc_type": "gamg", "pc_gamg_type": "agg", "pc_gamg_agg_nsmooths": 1,
                "pc_gamg_coarse_eq_limit": 1000, "pc_gamg_threshold": 0.05,
                "mg_levels_ksp_type": "chebyshev", "mg_levels_pc_type": "pbjacobi",
                "mg_levels_ksp_chebyshev_esteig_steps": 20,
            }
        return options | dict(s.petsc_options)

    def _outputs(self) -> None:
        """P1 outputs and the forms of their projections (MODEL §9)."""
        space = fem.functionspace(self.mesh, ("Lagrange", 1))
        self.sigma_h = fem.Function(space, name="sigma_h")
        self.eps_lat = fem.Function(space, name="eps_lat")
        self.von_mises = fem.Function(space, name="von_mises")
        q, w = ufl.TestFunction(space), ufl.TrialFunction(space)
        dx = ufl.Measure("dx", domain=self.mesh, subdomain_data=self.domain.cell_tags,
                         metadata={"quadrature_degree": self.settings.quadrature})
        rhs = {"sigma_h": 0, "eps_lat": 0, "von_mises": 0}
        self._stress_expressions = []
        for material, tags in self._groups:
            _, sigma, eps_lat = self._constitutive(material, tags)
            rhs["sigma_h"] += ufl.tr(sigma) / 3 * q * dx(tags)
            rhs["eps_lat"] += eps_lat * q * dx(tags)
            rhs["von_mises"] += von_mises(sigma) * q * dx(tags)
            self._stress_expressions.append((sigma, tags))
        self._projection_rhs = {name: fem.form(form) for name, form in rhs.items()}
        mass = fem.petsc.assemble_matrix(
            fem.form(w * q * ufl.dx(domain=self.mesh, metadata={"quadrature_degree": 2})))
        mass.assemble()
        self._mass = mass
        self._projector = PETSc.KSP().create(self.comm)
        self._projector.setOptionsPrefix(f"{self.settings.petsc_options_prefix}projection_")
        self._projector.setOperators(mass)
        self._projector.setType("cg")
        self._projector.getPC().setType("jacobi")
        self._projector.setTolerances(rtol=1e-12, atol=1e-30, max_it=1000)
        self._rhs_vector = fem.petsc.create_vector(space)

    # -- solving ------------------------------------------------------------------------

    def _newton(self) -> tuple[bool, int, int]:
        self._residual_norms = []
        self._problem.solve()
        self.u.x.scatter_forward()
        reason = self.snes.getConvergedReason()
        return reason > 0, self.snes.getIterationNumber(), self.snes.getLinearSolveIterations()

    def solve(self, dt: float | None = None) -> MechanicsResult:
        """Displacement and stress for the current θ; updates σ_h, ε_lat, von Mises.

        `dt` is not used: the elastic response does not depend on rate (the viscoplastic
        subclass needs it). Newton starts from the last solution. If it fails (finite
        strain), θ goes from its last solved value to the new one in increments (halved on
        failure, doubled on success, at most `max_substeps` of them); u is restored when it
        still fails.
        """
        start = time.perf_counter()
        target = self.theta.x.array.copy()
        solved = self._theta_solved.x.array.copy()
        u_solved = self.u.x.array.copy()
        done, step, substeps = 0.0, 1.0, 0
        newton, linear = 0, 0
        if self._use_predictor():
            prediction = self._predict()
            newton, linear = prediction.newton_iterations, prediction.linear_iterations
        converged = False
        while substeps < self.settings.max_substeps:
            fraction = min(1.0, done + step)
            self._theta_load.x.array[:] = solved + fraction * (target - solved)
            substeps += 1
            converged, its, lits = self._newton()
            newton, linear = newton + its, linear + lits
            if converged:
                done, u_solved = fraction, self.u.x.array.copy()
                if done >= 1.0:
                    break
                step *= 2
            else:
                self.u.x.array[:] = u_solved
                if self.settings.kinematics == "small":
                    break
                step /= 2
                log.info("mechanics: Newton failed, θ increment cut to %.3g", step)
        if converged:
            self._theta_solved.x.array[:] = target
            self.update_outputs()
        else:
            self._theta_load.x.array[:] = solved
        result = MechanicsResult(converged, newton, linear, substeps, list(self._residual_norms),
                                 time.perf_counter() - start)
        self.last_result = result
        log.debug("mechanics solve: %s", result)
        return result

    def accept(self) -> None:
        """Make the last solution the state that `reject` returns to."""
        self._accepted_u = self.u.x.array.copy()
        self._accepted_theta = self._theta_solved.x.array.copy()

    def reject(self) -> None:
        """Return u (and the θ it was solved for) to the last accepted state."""
        self.u.x.array[:] = self._accepted_u
        self._theta_solved.x.array[:] = self._accepted_theta
        self._theta_load.x.array[:] = self._accepted_theta

    def _use_predictor(self) -> bool:
        if self.settings.kinematics != "finite" or not self.settings.predictor:
            return False
        return self.comm.allreduce(not np.any(self.u.x.array), op=MPI.LAND)

    def _predict(self) -> MechanicsResult:
        """u from the small-strain problem with the same θ, loads and conditions."""
        if self._predictor is None:
            settings = replace(self.settings, kinematics="small", eigenstrain="stretch",
                               predictor=False,
                               petsc_options_prefix=f"{self.settings.petsc_options_prefix}pre_")
            self._predictor = MechanicsProblem(self.domain, self.theta, self._conditions,
                                               settings, self.temperature,
                                               theta_reference=self.theta_reference)
        result = self._predictor.solve()
        if result.converged:
            self.u.x.array[:] = self._predictor.u.x.array
        return result

    def update_outputs(self) -> None:
        """Project σ_h, ε_lat and von Mises of the current u onto P1."""
        for name, form in self._projection_rhs.items():
            target = getattr(self, name)
            b = self._rhs_vector
            with b.localForm() as local:
                local.set(0.0)
            fem.petsc.assemble_vector(b, form)
            b.ghostUpdate(PETSc.InsertMode.ADD, PETSc.ScatterMode.REVERSE)
            self._projector.solve(b, target.x.petsc_vec)
            target.x.scatter_forward()

    # -- observables --------------------------------------------------------------------

    def stress_at_cell_midpoints(self) -> tuple[np.ndarray, np.ndarray]:
        """(midpoints (n, 3), Cauchy stress (n, 3, 3) in MPa) of the owned cells (the
        viscoplastic problem: the cell mean over the quadrature points)."""
        owned = self.mesh.topology.index_map(TDIM).size_local
        points, stresses = [], []
        reference, weights = self._stress_points()
        for sigma, tags in self._stress_expressions:
            cells = np.unique(np.concatenate([self.domain.cell_tags.find(t) for t in tags]))
            cells = cells[cells < owned].astype(np.int32)
            values = fem.Expression(sigma, reference).eval(self.mesh, cells)
            values = values.reshape(len(cells), len(weights), TDIM, TDIM)
            stresses.append(np.einsum("cpij,p->cij", values, weights / weights.sum()))
            points.append(dolfinx.mesh.compute_midpoints(self.mesh, TDIM, cells))
        return np.concatenate(points), np.concatenate(stresses)

    def _stress_points(self) -> tuple[np.ndarray, np.ndarray]:
        """Reference points and weights at which `stress_at_cell_midpoints` samples σ."""
        return np.full((1, TDIM), 0.25), np.ones(1)

    def integral(self, expression) -> float:
        """∫ expression dx over the solid (reference configuration), all ranks."""
        form = fem.form(expression * ufl.dx(domain=self.mesh,
                                             metadata={"quadrature_degree": 4}))
        return self.comm.allreduce(fem.assemble_scalar(form), op=MPI.SUM)


def connected_pieces(mesh: dolfinx.mesh.Mesh) -> np.ndarray:
    """A label for every local cell (ghosts included): the smallest global index of the cells
    of its facet-connected piece of the mesh, the same on all ranks."""
    imap = mesh.topology.index_map(TDIM)
    n = imap.size_local + imap.num_ghosts
    mesh.topology.create_connectivity(FDIM, TDIM)
    f2c = mesh.topology.connectivity(FDIM, TDIM)
    offsets = f2c.offsets
    interior = np.flatnonzero(np.diff(offsets) == 2)
    first, second = f2c.array[offsets[interior]], f2c.array[offsets[interior] + 1]
    graph = scipy.sparse.coo_matrix((np.ones(len(first)), (first, second)), shape=(n, n))
    _, local_piece = scipy.sparse.csgraph.connected_components(graph, directed=False)
    space = fem.functionspace(mesh, ("DG", 0))
    dof = space.dofmap.list[np.arange(n, dtype=np.int32), 0]
    label = fem.Function(space)
    label.x.array[dof] = imap.local_to_global(np.arange(n, dtype=np.int32)).astype(float)
    while True:  # local pieces take their smallest label, ghosts bring the neighbours' ones
        values = label.x.array[dof]
        smallest = np.full(local_piece.max(initial=-1) + 1, np.inf)
        np.minimum.at(smallest, local_piece, values)
        new = smallest[local_piece]
        changed = mesh.comm.allreduce(bool(np.any(new != values)), op=MPI.LOR)
        if not changed:
            return values.astype(np.int64)
        label.x.array[dof] = new
        label.x.scatter_forward()


def rigid_body_modes(V: fem.FunctionSpace) -> PETSc.NullSpace:
    """The six rigid-body modes of a 3D vector space, orthonormalised, as a PETSc
    near-nullspace for GAMG (after the DOLFINx elasticity demo)."""
    index_map, bs = V.dofmap.index_map, V.dofmap.index_map_bs
    basis = [la.vector(index_map, bs=bs, dtype=PETSc.ScalarType) for _ in range(6)]
    b = [vector.array for vector in basis]
    dofs = [V.sub(i).dofmap.list.flatten() for i in range(TDIM)]
    for i in range(TDIM):
        b[i][dofs[i]] = 1.0
    x = V.tabulate_dof_coordinates()
    nodes = V.dofmap.list.flatten()
    x0, x1, x2 = x[nodes, 0], x[nodes, 1], x[nodes, 2]
    b[3][dofs[0]], b[3][dofs[1]] = -x1, x0
    b[4][dofs[0]], b[4][dofs[2]] = x2, -x0
    b[5][dofs[2]], b[5][dofs[1]] = x1, -x2
    la.orthonormalize(basis)
    owned = bs * index_map.size_local
    vectors = [PETSc.Vec().createWithArray(a[:owned], bsize=bs, comm=V.mesh.comm) for a in b]
    return PETSc.NullSpace().create(vectors=vectors)


def transfer(source: fem.Function, source_map: dolfinx.mesh.EntityMap | None,
             target: fem.Function, target_map: dolfinx.mesh.EntityMap | None) -> None:
    """Interpolate `source` into `target`, two functions on meshes that are both the parent
    mesh or submeshes of it (`*_map`: the submesh's cell map to the parent, None for the
    parent itself). Only the target cells whose parent cell is in the source mesh are set:
    θ from a host submesh into the solid mesh sets the host cells; σ_h or ε_lat from the
    solid mesh into a host submesh sets all of them. P1 → P1 on shared vertices is exact.
    """
    mesh = target.function_space.mesh
    cells = np.arange(mesh.topology.index_map(TDIM).size_local, dtype=np.int32)
    parent = cells if target_map is None else target_map.sub_topology_to_topology(cells, False)
    source_cells = parent if source_map is None else source_map.sub_topology_to_topology(
        parent, True)
    inside = source_cells >= 0
    target.interpolate(source, cells0=source_cells[inside].astype(np.int32),
                       cells1=cells[inside])
    target.x.scatter_forward()


# --- viscoplasticity (6.2) ---------------------------------------------------------------


def viscoplastic_increment(q_trial: np.ndarray, mu_bar: np.ndarray, sigma_y: np.ndarray,
                           rate_dt: float, exponent: float,
                           tol: float = 1e-13) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward-Euler increment Δε_p of ε̇_p = ε̇_0 ⟨σ_e/σ_Y − 1⟩^m (6.2) after radial return.

    Solves h(Δ) = Δ − A ⟨(q^tr − 3μ̄Δ)/σ_Y − 1⟩^m = 0 (A = ε̇_0 Δt) at every point; h is
    concave and increasing on [0, (q^tr − σ_Y)/3μ̄], so Newton from Δ = 0 rises
    monotonically to the root. Returns (Δ, ∂Δ/∂q^tr, ∂Δ/∂μ̄), zero where q^tr ≤ σ_Y.
    """
    overstress = q_trial / sigma_y - 1.0
    active = overstress > 0
    delta = np.zeros_like(q_trial)
    dq, dmu = np.zeros_like(q_trial), np.zeros_like(q_trial)
    if not np.any(active):
        return delta, dq, dmu
    q, mu, sy = q_trial[active], mu_bar[active], sigma_y[active]
    upper = (q - sy) / (3 * mu)
    x = np.zeros_like(q)
    for _ in range(200):
        z = np.maximum((q - 3 * mu * x) / sy - 1.0, 0.0)
        h = x - rate_dt * z**exponent
        slope = 1.0 + rate_dt * exponent * z ** (exponent - 1) * 3 * mu / sy
        step = -h / slope
        x = np.clip(x + step, 0.0, upper)
        if np.all(np.abs(step) <= tol * upper):
            break
    else:
        raise RuntimeError("viscoplastic return mapping did not converge")
    z = np.maximum((q - 3 * mu * x) / sy - 1.0, 0.0)
    c = rate_dt * exponent * z ** (exponent - 1) / sy  # −∂h/∂q^tr
    g = 1.0 + 3 * mu * c  # ∂h/∂Δ
    delta[active], dq[active], dmu[active] = x, c / g, -3 * x * c / g
    return delta, dq, dmu


class _PlasticState:
    """Quadrature-point data of one viscoplastic card: committed C_p⁻¹ and ε̄_p, and the
    return-mapping result at the current Newton iterate (Δ*, ∂Δ/∂q, ∂Δ/∂μ̄, q*, μ̄*)."""

    def __init__(self, scalar: fem.FunctionSpace, tensor: fem.FunctionSpace,
                 cells: np.ndarray) -> None:
        self.cells = cells
        self.dofs = np.unique(scalar.dofmap.list[cells].ravel())
        names = ["delta", "k_q", "k_mu", "q", "mu_bar", "theta", "plastic_strain"]
        for name in names:
            setattr(self, name, fem.Function(scalar, name=name))
        self.Cp_inv = fem.Function(tensor, name="Cp_inv")  # committed C_p⁻¹ = F_p⁻¹F_p⁻ᵀ
        self.Cp_inv_new = fem.Function(tensor)
        self.Cp_inv.x.array.reshape(-1, TDIM * TDIM)[:, [0, 4, 8]] = 1.0
        self.expressions: dict[str, fem.Expression] = {}


class ViscoplasticMechanicsProblem(MechanicsProblem):
    """Finite strain with viscoplastic hosts (6.2): F = F_e F_c F_p. EXPERIMENTAL.

    Hosts whose card has the plasticity fields flow; every other cell is neo-Hookean as in
    `MechanicsProblem`. Algorithm (Simo & Hughes, Computational Inelasticity, Box 9.1, with
    the rate law (6.2) instead of the yield condition): the internal variable is
    C_p⁻¹ = F_p⁻¹F_p⁻ᵀ at the quadrature points; with F̂ = F/J_c^(1/3) the trial elastic
    left Cauchy–Green tensor is b_e^tr = F̂ C_p,n⁻¹ F̂ᵀ, the trial Mandel (= Kirchhoff, for
    isotropic elasticity) deviator s^tr = μ dev b_e^tr with q^tr = √(3/2)|s^tr|, and the
    return s = s^tr (1 − 3μ̄Δ/q^tr) with μ̄ = μ tr b_e^tr/3 and Δ = Δε_p solving
    Δ = ε̇_0 Δt ⟨(q^tr − 3μ̄Δ)/σ_Y(θ) − 1⟩^m (backward Euler). Then b_e = s/μ + tr b_e^tr/3 I,
    τ_e = μ(b_e − I) + λ ln J_e I with J_e = det F̂ (F_p isochoric), P = J_c τ_e F⁻ᵀ.
    Cells with θ below the card's elastic_threshold do not flow (pristine c-Si).

    Consistent tangent: the local solution enters the forms as its first-order expansion
    Δ* + ∂Δ/∂q (q^tr(u) − q*) + ∂Δ/∂μ̄ (μ̄(u) − μ̄*) about the current iterate, refreshed
    before every residual and Jacobian assembly; the residual is then exact and UFL's
    derivative of it is the algorithmic tangent (quadratic Newton).

    Time stepping: `solve(dt)` from the committed state; `accept()` commits C_p⁻¹ and ε̄_p,
    `reject()` returns u to the last accepted state. Simo's flow rule is that of the
    Mandel stress up to terms of the order of the elastic strain (σ_Y/μ, a few %).
    """

    def __init__(self, domain: SolidDomain, theta: fem.Function,
                 boundary_conditions: Sequence[BoundaryCondition],
                 settings: MechanicsSettings | None = None, temperature: float = 298.15) -> None:
        settings = settings or MechanicsSettings()
        if settings.kinematics != "finite":
            raise ValueError("viscoplasticity is implemented for finite strain only")
        self._states: dict[str, _PlasticState] = {}
        self.dt = 0.0
        super().__init__(domain, theta, boundary_conditions, settings, temperature)
        self._hook_state_updates()
        self.plastic_strain = fem.Function(self.sigma_h.function_space, name="plastic_strain")

    # -- constitutive law ----------------------------------------------------------------

    def _quadrature_spaces(self):
        if not hasattr(self, "_Q"):
            cell = self.mesh.basix_cell()
            degree = self.settings.quadrature
            self._Q = fem.functionspace(self.mesh, basix.ufl.quadrature_element(
                cell, value_shape=(), degree=degree))
            self._QT = fem.functionspace(self.mesh, basix.ufl.quadrature_element(
                cell, value_shape=(TDIM, TDIM), degree=degree))
        return self._Q, self._QT

    def _constitutive(self, material: _Material, tags: tuple[int, ...]):
        host = material.card.host
        if host is None or host.yield_stress_pristine is None:
            return super()._constitutive(material, tags)
        name = material.card.name
        if name not in self._states:
            cells = np.unique(np.concatenate([self.domain.cell_tags.find(t) for t in tags]))
            self._states[name] = _PlasticState(*self._quadrature_spaces(),
                                               cells.astype(np.int32))
        state = self._states[name]
        theta = self._theta_load
        lmbda, mu = lame(material.E(theta), material.nu)
        Jc = material.swelling(theta, self.theta_reference)
        identity = ufl.Identity(TDIM)
        F = identity + ufl.grad(self.u)
        F_hat = F / Jc ** (1 / 3)
        b_trial = F_hat * state.Cp_inv * F_hat.T
        s_trial = mu * ufl.dev(b_trial)
        q_trial = ufl.sqrt(1.5 * ufl.inner(s_trial, s_trial) + 1e-12)  # MPa
        mu_bar = mu * ufl.tr(b_trial) / 3
        delta = state.delta + state.k_q * (q_trial - state.q) + state.k_mu * (mu_bar - state.mu_bar)
        s = s_trial * (1 - 3 * mu_bar * delta / q_trial)
        b_e = s / mu + ufl.tr(b_trial) / 3 * identity
        Je = ufl.det(F_hat)
        tau = mu * (b_e - identity) + lmbda * ufl.ln(Je) * identity
        P = Jc * tau * ufl.inv(F).T
        if not state.expressions:
            Fi = ufl.inv(F_hat)
            Cp_inv_new = Fi * b_e * Fi.T
            Cp_inv_new = Cp_inv_new / ufl.det(Cp_inv_new) ** (1 / 3)  # F_p isochoric
            points = self._Q.element.interpolation_points
            state.expressions = {
                "q": fem.Expression(q_trial, points), "mu_bar": fem.Expression(mu_bar, points),
                "theta": fem.Expression(theta, points),
                "Cp_inv_new": fem.Expression(Cp_inv_new, points)}
            state.material = material
        return P, tau / Je, Je ** (1 / 3) - 1

    # -- state updates -------------------------------------------------------------------

    def _symmetric_tangent(self) -> bool:
        return False

    def _stress_points(self) -> tuple[np.ndarray, np.ndarray]:
        """The quadrature points (the state lives there): `stress_at_cell_midpoints` gives
        the cell mean of σ, at the midpoint."""
        points, weights = basix.make_quadrature(self.mesh.basix_cell(), self.settings.quadrature)
        return points, weights

    def _update_states(self) -> None:
        """The return mapping at the current u, for every viscoplastic card."""
        for state in self._states.values():
            host = state.material.card.host
            for name in ("q", "mu_bar", "theta"):
                getattr(state, name).interpolate(state.expressions[name], cells0=state.cells)
            dofs = state.dofs
            theta = state.theta.x.array[dofs]
            sigma_y = np.asarray(yield_stress(state.material.card, theta), dtype=float)
            delta, k_q, k_mu = viscoplastic_increment(
                state.q.x.array[dofs], state.mu_bar.x.array[dofs], sigma_y,
                float(host.viscoplastic_rate.m_as("1/s")) * self.dt,
                float(host.viscoplastic_exponent))
            elastic = theta < host.elastic_threshold  # pristine: no flow (§6)
            for field_, values in (("delta", delta), ("k_q", k_q), ("k_mu", k_mu)):
                values[elastic] = 0.0
                getattr(state, field_).x.array[dofs] = values

    def _hook_state_updates(self) -> None:
        """Run the return mapping before each residual and Jacobian assembly."""
        problem = self._problem
        residual_ctx = {"u": self.u, "residual": problem.F, "jacobian": problem.J,
                        "bcs": self.bcs}
        jacobian_ctx = {"u": self.u, "jacobian": problem.J, "preconditioner": None,
                        "bcs": self.bcs}

        def at(x):
            x.ghostUpdate(PETSc.InsertMode.INSERT, PETSc.ScatterMode.FORWARD)
            fem.petsc.assign(x, self.u)
            self._update_states()

        def residual(snes, x, b):
            at(x)
            fem.petsc.assemble_residual(snes, x, b, **residual_ctx)

        def jacobian(snes, x, J, P):
            at(x)
            fem.petsc.assemble_jacobian(snes, x, J, P, **jacobian_ctx)

        self.snes.setFunction(residual, problem.b)
        self.snes.setJacobian(jacobian, problem.A, problem.P_mat)

    # -- time stepping -------------------------------------------------------------------

    def solve(self, dt: float | None = None) -> MechanicsResult:  # type: ignore[override]
        """One backward-Euler step of length dt (s) from the committed state."""
        if dt is None or dt <= 0:
            raise ValueError("ViscoplasticMechanicsProblem.solve needs a time step dt > 0")
        start = time.perf_counter()
        self.dt = float(dt)
        self._theta_load.x.array[:] = self.theta.x.array
        newton, linear = 0, 0
        if self._use_predictor() and not any(np.any(s.plastic_strain.x.array)
                                             for s in self._states.values()):
            prediction = self._predict()
            newton, linear = prediction.newton_iterations, prediction.linear_iterations
        converged, its, lits = self._newton()
        if converged:
            self._update_states()
            self.update_outputs()
        else:
            self.u.x.array[:] = self._accepted_u
        result = MechanicsResult(converged, newton + its, linear + lits, 1,
                                 list(self._residual_norms), time.perf_counter() - start)
        self.last_result = result
        return result

    def accept(self) -> None:
        """Commit the step: C_p⁻¹, ε̄_p and u become the state the next step starts from."""
        for state in self._states.values():
            state.Cp_inv_new.interpolate(state.expressions["Cp_inv_new"], cells0=state.cells)
            state.Cp_inv.x.array[:] = state.Cp_inv_new.x.array
            state.plastic_strain.x.array[:] += state.delta.x.array
            state.delta.x.array[:] = 0.0
            state.k_q.x.array[:] = 0.0
            state.k_mu.x.array[:] = 0.0
        self._theta_solved.x.array[:] = self._theta_load.x.array
        super().accept()
        self._project_plastic_strain()

    def internal_variables(self) -> dict[str, fem.Function]:
        """The committed quadrature-point state, by card: C_p⁻¹ and ε̄_p (for checkpoints;
        with θ they determine u and the stresses)."""
        return {f"{name}/{field_.name}": field_ for name, state in self._states.items()
                for field_ in (state.Cp_inv, state.plastic_strain)}

    def _project_plastic_strain(self) -> None:
        if not self._states:
            return
        q = ufl.TestFunction(self.plastic_strain.function_space)
        if not hasattr(self, "_plastic_rhs"):
            dx = self.dx
            rhs = 0
            for name, state in self._states.items():
                tags = next(t for m, t in self._groups if m.card.name == name)
                rhs += state.plastic_strain * q * dx(tags)
            self._plastic_rhs = fem.form(rhs)
        b = self._rhs_vector
        with b.localForm() as local:
            local.set(0.0)
        fem.petsc.assemble_vector(b, self._plastic_rhs)
        b.ghostUpdate(PETSc.InsertMode.ADD, PETSc.ScatterMode.REVERSE)
        self._projector.solve(b, self.plastic_strain.x.petsc_vec)
        self.plastic_strain.x.scatter_forward()
