"""The pores of a scaffold as the home of plated Li (MODEL §5, §7; docs/plating.md).

`PoreSpace` builds what the transport problem needs to plate Li into the pores:

- the pore submesh and the plated-Li problem on it (ψ, p_Li, creep (7.1)–(7.3),
  `solver.physics.plating`), with the local pore width from the microstructure;
- the electron access of the solid-electrolyte|pore facets Γ_EP (§5): a facet has
  electrons if it lies within `plating.contact_band` of a host or conductor surface
  (the triple-junction band) or once its pore holds Li metal. The band is a physical
  width, so the set of facets with access converges as the mesh is refined;
- the nucleation overpotential of those facets: that of the material that gives the
  access (the nearest host or conductor surface).

ψ and p_Li join θ_k and φ_e in the transport problem's block Newton (MODEL §8): the
plated flux is the source of (7.1), the coverage m(ψ) that gates stripping and the
pressure p_Li in U_Li are implicit, and creep carries away what the interface deposits.
The reaction terms are lumped (vertex quadrature) like the storage, so Li plated at a
vertex depends on the state at that vertex only. Every row integrates the same currents
over the same facets, so every mole that leaves the electrolyte or a host arrives in ψ
(V1, to the Newton tolerance).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mpi4py import MPI

import dolfinx
import numpy as np
import ufl
from dolfinx import fem

from meshes import TaggedMesh
from solver.config import CaseConfig
from solver.materials import MaterialCard
from solver.physics import transport
from solver.physics.creep import UpwindCreep
from solver.physics.plating import PlatedLiProblem, PlatingSettings, pore_width, wall_distance

log = logging.getLogger("constrict.pores")

TDIM = 3
LUMPED = {"quadrature_rule": "vertex", "quadrature_degree": 1}
# A step whose ψ falls below −NEGATIVE_PSI_TOLERANCE·ψ_perc is rejected and Δt cut; the
# smaller undershoots of the creep term are clipped (`PoreSpace._clip_undershoot`).
NEGATIVE_PSI_TOLERANCE = 1.0


@dataclass(frozen=True)
class AccessSource:
    """A material whose surface gives electrons to nearby Γ_EP facets."""

    name: str  # the region name: "host:Si", "conductor:Cu"
    wall_tag: int  # its facet group towards the pores (HP:Si, CP:Cu)
    nucleation_overpotential: float  # V
    conductor: bool


class PoreSpace:
    """Plated Li in the pore cells of a scaffold and the access of Γ_EP to electrons."""

    def __init__(self, tagged: TaggedMesh, regions: np.ndarray, case: CaseConfig,
                 materials: dict[str, MaterialCard]) -> None:
        self.tagged = tagged
        self.comm = tagged.mesh.comm
        self.cell_tag = tagged.regions["pore"]
        self.settings = case.plating
        self.scaffold_top = case.geometry.scaffold.height
        cells = np.flatnonzero(regions == self.cell_tag).astype(np.int32)
        self.submesh, self.entity_map, _, _ = dolfinx.mesh.create_submesh(tagged.mesh, TDIM, cells)
        card = materials[case.plating.metal]
        self.molar_volume = float(card.metal.molar_volume.m_as("m^3/mol"))
        width = pore_width(self.submesh, self._wall_facets(case))
        self.plating = PlatedLiProblem(
            self.submesh, width, card, case.temperature,
            PlatingSettings(psi_c=case.plating.filling_fraction))
        self.plating.set_state(0.0)
        self.psi, self.p_li = self.plating.psi, self.plating.p_li
        self.psi.name, self.p_li.name = "psi", "p_Li"
        self.width = width
        sources = self._access_sources(materials)
        self.access, self.eta_nucleation, self.near_conductor = self._electron_access(sources)
        self._band_access = self.access.x.array.copy()
        self._band_nucleation = self.eta_nucleation.x.array.copy()
        lumped = fem.assemble_vector(fem.form(
            ufl.TestFunction(self.plating.V) * self.plating.dx_lumped))
        lumped.scatter_reverse(dolfinx.la.InsertMode.add)
        self._lumped_volume = lumped.array.copy()  # µm³ per vertex (owned entries exact)
        self.clipped_volume = 0.0  # µm³ moved by `_clip_undershoot` over the run
        log.info("pores: %d cells, %.4g um^3; electron access on Γ_EP from %s within %g um",
                 self.submesh.topology.index_map(TDIM).size_global, self.plating.volume,
                 ", ".join(s.name for s in sources) or "nothing", self.settings.contact_band)

    # -- construction -------------------------------------------------------------------

    def _wall_facets(self, case: CaseConfig) -> np.ndarray:
        """Exterior facets of the pore mesh that are walls: all but the lateral faces of
        the box, through which a pore continues (periodic image)."""
        mesh = self.submesh
        mesh.topology.create_connectivity(TDIM - 1, TDIM)
        exterior = dolfinx.mesh.exterior_facet_indices(mesh.topology)
        scaffold = case.geometry.scaffold
        size = (scaffold.size_x, scaffold.size_y)
        midpoints = dolfinx.mesh.compute_midpoints(mesh, TDIM - 1, exterior)
        eps = 1e-6 * max(size)
        lateral = np.zeros(len(exterior), dtype=bool)
        for axis, length in enumerate(size):
            lateral |= np.isclose(midpoints[:, axis], 0.0, atol=eps)
            lateral |= np.isclose(midpoints[:, axis], length, atol=eps)
        return exterior[~lateral]

    def _access_sources(self, materials: dict[str, MaterialCard]) -> list[AccessSource]:
        sources = []
        for name, tag in sorted(self.tagged.interfaces.items()):
            letter, _, material = name.partition(":")
            if letter not in ("HP", "CP"):
                continue
            card = materials[material]
            if letter == "HP":
                eta = card.host.nucleation_overpotential
            else:
                eta = card.conductor.nucleation_overpotential
            sources.append(AccessSource(("host:" if letter == "HP" else "conductor:") + material,
                                        tag, float(eta.m_as("V")), letter == "CP"))
        return sources

    def _electron_access(self, sources: list[AccessSource]
                         ) -> tuple[fem.Function, fem.Function, fem.Function]:
        """DG0 fields on the pore cells: access (1 within the contact band of a host or
        conductor surface), η_nuc of the nearest such surface (V), and 1 where that surface
        is an inert conductor.

        The distance is measured from the cell midpoint projected onto the scaffold top
        (the plane of Γ_EP), so it is the distance along the interface that a facet of
        that cell has from the surface."""
        space = fem.functionspace(self.submesh, ("DG", 0))
        access, eta, conductor = (fem.Function(space, name=n)
                                  for n in ("electron_access", "eta_nucleation", "conductor_band"))
        imap = self.submesh.topology.index_map(TDIM)
        cells = np.arange(imap.size_local + imap.num_ghosts, dtype=np.int32)
        points = dolfinx.mesh.compute_midpoints(self.submesh, TDIM, cells)
        points[:, 2] = self.scaffold_top
        nearest = np.full(len(cells), np.inf)
        dofs = space.dofmap.list[cells, 0]
        for source in sources:
            walls = self.tagged.facet_tags.find(source.wall_tag)
            distance = wall_distance(self.tagged.mesh, points, walls)
            closer = distance < nearest
            nearest[closer] = distance[closer]
            eta.x.array[dofs[closer]] = source.nucleation_overpotential
            conductor.x.array[dofs[closer]] = float(source.conductor)
        access.x.array[dofs] = (nearest <= self.settings.contact_band).astype(float)
        return access, eta, conductor

    # -- what the transport sees ---------------------------------------------------------

    def presence(self, side: str):
        """Li-metal coverage m(ψ) on the pore side of a facet (`transport.metal_presence`),
        with ψ of this step: stripping stops with the metal."""
        return transport.metal_presence(self.psi(side), self.settings.percolation_fraction)

    def plating_potential(self, side: str):
        """U_Li(p_Li) on the pore side of a facet (§5)."""
        return transport.plating_potential(self.p_li(side), self.molar_volume)

    def electron_access(self, side: str):
        """1 where a Γ_EP facet has electrons: in the contact band or next to Li metal
        (`update_metal_contacts`), else the metal coverage m at the vertex (§5)."""
        access = self.access(side)
        return access + (1 - access) * self.presence(side)

    def residuals(self, dt, dx_lumped: ufl.Measure) -> list[ufl.Form]:
        """[R_ψ, R_p] of (7.1)–(7.2) per unit time, without the plating sources (the caller
        subtracts Ω_Li q on the plating facets from R_ψ) and without the creep flux (added
        by `creep`, `solver.physics.creep.CreepTerm`); a measure of the parent mesh."""
        V = self.plating.V
        return list(self.plating.balance(ufl.TestFunction(V), ufl.TestFunction(V), dx_lumped,
                                         dt))

    @property
    def creep(self) -> UpwindCreep:
        """The creep flux of (7.1), per unit time, for the ψ row."""
        return self.plating.creep

    @property
    def volume_per_mol_flux(self) -> float:
        """Ω_Li q: a molar flux of 1 mol/(m² s) as a volume flux in µm/s."""
        return self.plating.volume_per_mol_flux

    # -- a step ----------------------------------------------------------------------------

    def after_solve(self) -> bool:
        """Check and tidy a converged step: clip the creep undershoot, and refuse a step
        that leaves ψ clearly negative (Δt is cut)."""
        floor = -NEGATIVE_PSI_TOLERANCE * self.settings.percolation_fraction
        if self.plating.min_psi() < floor:
            log.info("ψ fell to %.3g in a step: more Li left a pore than it held",
                     self.plating.min_psi())
            return False
        self.clipped_volume += self._clip_undershoot()
        self.plating.update_pressure()
        return True

    def _clip_undershoot(self) -> float:
        """Set the slightly negative ψ that creep leaves next to filled pores to zero and
        take the same volume from the other vertices in proportion to their ψ; returns the
        volume moved (µm³).

        P1 diffusion on tetrahedra with obtuse dihedral angles is not monotone: where a
        filled vertex pushes Li into an empty neighbour, a third vertex can go negative.
        The clipping conserves ∫ψ dx exactly; the run reports the total it moved."""
        owned = self.plating.V.dofmap.index_map.size_local
        psi, volume = self.psi.x.array[:owned], self._lumped_volume[:owned]
        negative = psi < 0
        deficit = self.comm.allreduce(-float(psi[negative] @ volume[negative]), op=MPI.SUM)
        if deficit == 0.0:
            return 0.0
        psi[negative] = 0.0
        held = self.comm.allreduce(float(psi @ volume), op=MPI.SUM)
        psi *= 1.0 - deficit / held
        self.psi.x.scatter_forward()
        return deficit

    def accept(self) -> None:
        self.plating.accept()

    def update_metal_contacts(self) -> None:
        """Li metal is a conductor: a pore cell with metal at one of its vertices (ψ ≥
        ψ_perc) gives its Γ_EP facets electrons and no nucleation barrier (growth on
        metal), so plating spreads along the interface from the contact band as the metal
        front advances. Called before each solve, from the accepted ψ (explicit), so the
        currents of a solved state can be evaluated again after it is accepted."""
        vertices = self.plating.V.dofmap.list
        metal = (self.psi.x.array[vertices].max(axis=1)
                 >= self.settings.percolation_fraction).astype(float)
        cells = self.access.function_space.dofmap.list[:, 0]
        self.access.x.array[cells] = np.maximum(self._band_access[cells], metal)
        self.eta_nucleation.x.array[cells] = self._band_nucleation[cells] * (1.0 - metal)

    def reject(self) -> None:
        self.plating.reject()

    # -- observables ---------------------------------------------------------------------

    def li_mol(self) -> float:
        """Plated Li (mol): ∫ψ dx / Ω_Li."""
        return self.plating.total_li_mol()

    def nodal_table(self) -> dict[str, np.ndarray]:
        """Owned pore vertices: coordinates (µm), lumped volume (µm³), ψ, p_Li (MPa)."""
        V = self.plating.V
        owned = V.dofmap.index_map.size_local
        x = V.tabulate_dof_coordinates()[:owned]
        return {"x_um": x[:, 0], "y_um": x[:, 1], "z_um": x[:, 2],
                "volume_um3": self._lumped_volume[:owned],
                "psi": self.psi.x.array[:owned], "p_li_MPa": self.p_li.x.array[:owned]}
