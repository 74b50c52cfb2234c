"""The coupled transport problem on submeshes (MODEL §2–§5, §8).

One P1 field θ_k on the submesh of each host material k, one P1 field φ_e on the
submesh of all electrolyte layers, coupled by Butler–Volmer kinetics on the
interior facets Γ_EH of the parent mesh. All forms integrate over the parent mesh
(`dx(tag)`, `ds(tag)`, `dS(tag)`) and reach the submesh fields through entity maps;
on Γ_EH the host cell is always the "+" side and the electrolyte cell the "−" side.

The single particle uses the same machinery: its parent mesh is the particle, and the
reaction site is its outer surface, facing an electrolyte at uniform potential. With
plating on, Li also plates on that surface into the particle's void (`solver.void`); the
anode potential V is then an unknown of the block Newton (a Real space) fixed by the
applied current, which alloying and plating share.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mpi4py import MPI

import basix.ufl
import dolfinx
import numpy as np
import ufl
from dolfinx import fem
from petsc4py import PETSc

from solver.config import CaseConfig
from solver.materials import (
    MaterialCard,
    conductivity,
    equilibrium_potential,
    theta_at_potential,
)
from solver.newton import BlockNewtonProblem, NewtonTimings
from solver.physics import transport
from solver.physics.creep import CreepTerm
from solver.pores import PoreSpace
from solver.transient import Drive, StepResult
from solver.units import Q_, F
from solver.void import ParticleVoid

if TYPE_CHECKING:
    from meshes import TaggedMesh

log = logging.getLogger("constrict.problem")

TDIM, FDIM = 3, 2
# P1 fields with smooth nonlinear coefficients: degree 3 integrates them well. Left to
# itself UFL estimates degrees above 10 for the exp/log terms and the Jacobian assembly
# becomes 40x slower than the residual.
QUADRATURE = {"quadrature_degree": 3}
# Vertex quadrature of the P1 mass matrix: mass lumping.
LUMPED = {"quadrature_rule": "vertex", "quadrature_degree": 1}
# Newton may stop at a residual this far below the first when its line search stalls.
STALL_RTOL = 1e-7
# The PETSc option prefixes of the transport solvers, by drive (README: Command line).
TRANSPORT_PREFIXES = ("constrict_current_", "constrict_voltage_", "constrict_flux_")


def _to_float(quantity, unit: str) -> float:
    return float(quantity.m_as(unit))


@dataclass
class HostField:
    """Li fraction θ in one host material, on that material's submesh (MODEL §2)."""

    card: MaterialCard
    cell_tag: int
    submesh: dolfinx.mesh.Mesh
    entity_map: dolfinx.mesh.EntityMap
    theta: fem.Function
    theta_old: fem.Function
    sigma_h: fem.Function  # hydrostatic stress (MPa), filled by the mechanics
    eps_lat: fem.Function  # elastic lattice strain, filled by the mechanics
    theta_stressed: fem.Function  # the θ that σ_h was computed for (staggered coupling)
    stress_stiffness: fem.Constant  # β = −dσ_h/dθ of the fixed-stress split (MPa), 0 alone
    flux_per_current: float  # i [A/m²] -> i/(F c_max) [µm/s]
    mol_per_theta_volume: float  # θ·µm³ -> mol of Li

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def transport_sigma_h(self) -> ufl.core.expr.Expr:
        """σ_h in the flux and the kinetics: with the fixed-stress correction (transport)."""
        return transport.split_hydrostatic_stress(self.sigma_h, self.theta, self.theta_stressed,
                                                  self.stress_stiffness)


@dataclass
class ReactionSite:
    """Alloying on Γ_EH of one host: the measure and the two sides' restrictions."""

    host: HostField
    measure: ufl.Measure
    host_side: str | None  # "+" on interior facets, None on the particle surface
    electrolyte_side: str | None


@dataclass
class HostContact:
    """Facets where a host touches a pore (Γ_HP, forced plating) or another host material
    (Γ_HH', exchange): the host is the "+" side, the pore or the other host "−"."""

    host: HostField
    measure: ufl.Measure
    other: HostField | None = None  # None on Γ_HP


def cell_regions(tagged: TaggedMesh) -> np.ndarray:
    """Region tag of every local cell, ghosts included (a DG0 scatter fills the ghosts)."""
    mesh = tagged.mesh
    space = fem.functionspace(mesh, ("DG", 0))
    marker = fem.Function(space)
    marker.x.array[:] = -1.0
    dofs = space.dofmap.list[tagged.cell_tags.indices, 0]
    marker.x.array[dofs] = tagged.cell_tags.values
    marker.x.scatter_forward()
    num_cells = mesh.topology.index_map(TDIM).size_local + mesh.topology.index_map(TDIM).num_ghosts
    return np.rint(marker.x.array[space.dofmap.list[np.arange(num_cells), 0]]).astype(np.int32)


def interface_entities(tagged: TaggedMesh, regions: np.ndarray, facet_tag: int,
                       first_side_tags: set[int]) -> np.ndarray:
    """Integration data (cell, local facet, cell, local facet) of the interior facets with
    `facet_tag`, ordered so that the first cell has a tag in `first_side_tags`."""
    facets = tagged.facet_tags.find(facet_tag)
    data = fem.compute_integration_domains(fem.IntegralType.interior_facet,
                                           tagged.mesh.topology, facets).reshape(-1, 4)
    flip = ~np.isin(regions[data[:, 0]], list(first_side_tags))
    data[flip] = data[flip][:, [2, 3, 0, 1]]
    if not np.all(np.isin(regions[data[:, 0]], list(first_side_tags))):
        raise RuntimeError(f"facet tag {facet_tag} is not an interface of the expected regions")
    return data.ravel()


class TransportProblem:
    """Backward-Euler step of the coupled θ_k / φ_e system, solved with block Newton."""

    def __init__(self, tagged: TaggedMesh, case: CaseConfig, materials: dict[str, MaterialCard],
                 petsc_options: dict[str, str | None] | None = None) -> None:
        self.tagged = tagged
        self.mesh = tagged.mesh
        self.comm = self.mesh.comm
        self.case = case
        self.temperature = case.temperature
        self.f = transport.thermal_voltage_inverse(self.temperature)
        self.regions = cell_regions(tagged)
        self._constant = lambda value: fem.Constant(self.mesh, PETSc.ScalarType(value))
        self.dt = self._constant(1.0)
        self.applied_current = self._constant(0.0)  # A/m²
        self.applied_voltage = self._constant(0.0)  # V
        self.top_potential = self._constant(0.0)  # φ_e on the top face when potentiostatic
        self.drive = Drive("current", 0.0)
        self.dx = ufl.Measure("dx", domain=self.mesh, subdomain_data=tagged.cell_tags,
                              metadata=QUADRATURE)
        self.ds = ufl.Measure("ds", domain=self.mesh, subdomain_data=tagged.facet_tags,
                              metadata=QUADRATURE)

        self.hosts = [self._host_field(name[len("host:"):], tag, materials)
                      for name, tag in sorted(tagged.regions.items()) if name.startswith("host:")]
        self.c_ref = max(host.card.host.c_max.m_as("mol/m^3") for host in self.hosts)
        # i [A/m²] -> i/(F c_ref) [µm/s]: a current in the θ·µm³/s units of every row
        self.flux_per_current_ref = _to_float(Q_(1.0, "A/m^2") / (F * Q_(self.c_ref, "mol/m^3")),
                                              "um/s")
        self.single_particle = case.geometry.kind == "single_particle"
        self.electrolyte_layers = {tag: materials[name.split(":", 2)[2]]
                                   for name, tag in tagged.regions.items()
                                   if name.startswith("electrolyte:")}
        self.phi = self._electrolyte_field() if not self.single_particle else None
        self.pores = (PoreSpace(tagged, self.regions, case, materials)
                      if case.plating.enabled and not self.single_particle else None)
        self.void = (ParticleVoid(self.mesh, case, materials)
                     if case.plating.enabled and self.single_particle else None)
        self.potential = self._potential_unknown() if self.void is not None else None
        self.surface_electrolyte = (materials[case.geometry.single_particle.electrolyte]
                                    if self.void is not None else None)
        self.start_at_rest()
        self._interface_data: list[tuple[int, np.ndarray]] = []
        self._interface_sides: dict[int, tuple[frozenset[int], frozenset[int]]] = {}
        self.sites = self._reaction_sites()
        self.plating_sites = self._plating_facets() if self.pores is not None else None
        self.host_contacts = self._host_contacts() if self.pores is not None else []
        self.entity_maps = [host.entity_map for host in self.hosts]
        if self.phi is not None:
            self.entity_maps.append(self.phi_entity_map)
        if self.pores is not None:
            self.entity_maps.append(self.pores.entity_map)
        self.petsc_options = self._solver_options(petsc_options or {})
        self._solver_specific_options = self._options_of_one_solver(petsc_options or {})
        self._solvers: dict[str, BlockNewtonProblem] = {}
        self._diagnostics = self._diagnostic_forms()
        self.last_theta_change = 0.0

    # -- construction -------------------------------------------------------------------

    def _host_field(self, material: str, tag: int,
                    materials: dict[str, MaterialCard]) -> HostField:
        card = materials[material]
        submesh, entity_map, _, _ = dolfinx.mesh.create_submesh(
            self.mesh, TDIM, np.flatnonzero(self.regions == tag).astype(np.int32))
        space = fem.functionspace(submesh, ("Lagrange", 1))
        scalar = fem.functionspace(submesh, ("Lagrange", 1))
        theta = fem.Function(space, name=f"theta_{material}")
        theta_old = fem.Function(space)
        c_max = card.host.c_max
        return HostField(
            card=card, cell_tag=tag, submesh=submesh, entity_map=entity_map, theta=theta,
            theta_old=theta_old, sigma_h=fem.Function(scalar, name=f"sigma_h_{material}"),
            eps_lat=fem.Function(scalar, name=f"eps_lat_{material}"),
            theta_stressed=fem.Function(space), stress_stiffness=self._constant(0.0),
            flux_per_current=_to_float(Q_(1.0, "A/m^2") / (F * c_max), "um/s"),
            mol_per_theta_volume=_to_float(c_max * Q_(1.0, "um^3"), "mol"))

    def _potential_unknown(self) -> fem.Function:
        """V = φ_s − φ_e of the particle's surface as one unknown (a Real space)."""
        space = fem.functionspace(self.mesh, basix.ufl.real_element(self.mesh.basix_cell(), ()))
        return fem.Function(space, name="anode_potential")

    def start_at_rest(self) -> None:
        """Start from equilibrium: every host at the same potential V0, φ_e = −V0.

        V0 is the lowest of the hosts' equilibrium potentials (3.2) at their `theta_initial`
        and their mean σ_h (zero until a mechanics solve has filled it); hosts whose
        potential is higher there (graphite at θ → 0 sits near 2 V) start at the θ where
        U_k = V0. Without this a Si/graphite mixture would start with a volt of
        overpotential, and a confined particle would start out of equilibrium.
        """
        shifts = {h.name: self._stress_shift(h) for h in self.hosts}
        v0 = min(float(equilibrium_potential(h.card, np.float64(h.card.host.theta_initial), 0.0))
                 + shifts[h.name] for h in self.hosts)
        for host in self.hosts:
            theta0 = max(host.card.host.theta_initial,
                         theta_at_potential(host.card, v0 - shifts[host.name]))
            for field_ in (host.theta, host.theta_old, host.theta_stressed):
                field_.x.array[:] = theta0
        if self.phi is not None:
            self.phi.x.array[:] = -v0
        if self.potential is not None:
            self.potential.x.array[:] = v0
        self._accepted = [unknown.x.array.copy() for unknown in self.unknowns]
        log.info("initial state at rest: V0 = %.4f V, θ0 = %s", v0,
                 ", ".join(f"{h.name} {h.theta.x.array[0]:.4g}" for h in self.hosts))

    def _stress_shift(self, host: HostField) -> float:
        """Ω σ̄_h / F (V) of (3.2) for the host's mean nodal σ_h."""
        owned = host.sigma_h.x.array[:host.sigma_h.function_space.dofmap.index_map.size_local]
        total = self.comm.allreduce(np.array([owned.sum(), owned.size]), op=MPI.SUM)
        mean = total[0] / max(total[1], 1)
        return float(equilibrium_potential(host.card, np.float64(0.5), mean)
                     - equilibrium_potential(host.card, np.float64(0.5), 0.0))

    def _electrolyte_field(self) -> fem.Function:
        in_electrolyte = np.isin(self.regions, list(self.electrolyte_layers))
        cells = np.flatnonzero(in_electrolyte).astype(np.int32)
        submesh, self.phi_entity_map, _, _ = dolfinx.mesh.create_submesh(self.mesh, TDIM, cells)
        phi = fem.Function(fem.functionspace(submesh, ("Lagrange", 1)), name="phi_e")
        # κ/(F c_ref) per layer, µm²/(V s): a DG0 coefficient on the electrolyte submesh.
        self.kappa_scaled = fem.Function(fem.functionspace(submesh, ("DG", 0)), name="kappa")
        sub_cells = np.arange(len(cells), dtype=np.int32)
        parent_cells = self.phi_entity_map.sub_topology_to_topology(sub_cells, inverse=False)
        for tag, card in self.electrolyte_layers.items():
            kappa = Q_(conductivity(card, self.temperature), "S/m")
            scaled = _to_float(kappa / (F * Q_(self.c_ref, "mol/m^3")), "um^2/(V*s)")
            self.kappa_scaled.x.array[sub_cells[self.regions[parent_cells] == tag]] = scaled
        return phi

    def interface_measure(self, name: str, first_side_tags: set[int], second_side_tags: set[int],
                   metadata: dict | None = None) -> ufl.Measure:
        """dS over the facet group `name`, with the first side's cells "+" (all interface
        measures share one integration-data list, `_interface_data`); `metadata`: the
        quadrature (default `QUADRATURE`)."""
        tag = self.tagged.interfaces[name]
        if tag not in self._interface_sides:
            entities = interface_entities(self.tagged, self.regions, tag, first_side_tags)
            other_side = self.regions[entities.reshape(-1, 4)[:, 2]]
            if not np.all(np.isin(other_side, list(second_side_tags))):
                raise RuntimeError(f"{name} facets do not all face the expected region")
            self._interface_data.append((tag, entities))
            self._interface_sides[tag] = (frozenset(first_side_tags), frozenset(second_side_tags))
        elif self._interface_sides[tag] != (frozenset(first_side_tags),
                                            frozenset(second_side_tags)):
            raise ValueError(f"{name} was registered with its sides the other way round")
        measure = ufl.Measure("dS", domain=self.mesh, subdomain_data=self._interface_data,
                              metadata=metadata or QUADRATURE)
        return measure(tag)

    def _reaction_sites(self) -> list[ReactionSite]:
        if self.single_particle:
            return [ReactionSite(host, self.ds(self.tagged.interfaces["surface"]), None, None)
                    for host in self.hosts]
        sites = []
        for host in self.hosts:
            name = f"EH:{host.name}"
            if name not in self.tagged.interfaces:
                log.warning("host %s does not touch the electrolyte", host.name)
                continue
            measure = self.interface_measure(name, {host.cell_tag}, set(self.electrolyte_layers))
            sites.append(ReactionSite(host, measure, "+", "-"))
        return sites

    def _plating_facets(self) -> ufl.Measure | None:
        """Γ_EP (pore "+", electrolyte "−"), where Li⁺ from the electrolyte may plate.

        Like the storage of ψ, the plating currents are lumped (vertex quadrature), in every
        row they enter: the Li plated at a vertex then depends on ψ at that vertex only, and
        a vertex without metal cannot lose any (ψ ≥ 0 up to the Newton tolerance)."""
        if "EP" not in self.tagged.interfaces:
            log.warning("no pore touches the electrolyte: no plating on Γ_EP")
            return None
        return self.interface_measure("EP", {self.pores.cell_tag}, set(self.electrolyte_layers),
                               LUMPED)

    def _host_contacts(self) -> list[HostContact]:
        """Γ_HP of every host and Γ_HH' of every pair of host materials that touch."""
        by_name = {host.name: host for host in self.hosts}
        contacts = []
        for host in self.hosts:
            name = f"HP:{host.name}"
            if name in self.tagged.interfaces:
                contacts.append(HostContact(host, self.interface_measure(
                    name, {host.cell_tag}, {self.pores.cell_tag}, LUMPED)))
        for name in sorted(self.tagged.interfaces):
            letters, _, pair = name.partition(":")
            if letters != "HH":
                continue
            first, second = (by_name[material] for material in pair.split("|"))
            contacts.append(HostContact(first, self.interface_measure(
                name, {first.cell_tag}, {second.cell_tag}), other=second))
        return contacts

    def _solver_options(self, command_line: dict[str, str | None]) -> dict[str, object]:
        settings = self.case.solver
        options: dict[str, object] = {
            "snes_type": "newtonls", "snes_linesearch_type": "bt",
            "snes_rtol": settings.newton_rtol, "snes_atol": settings.newton_atol,
            "snes_stol": 0.0, "snes_max_it": settings.newton_max_it,
        }
        if settings.linear_solver == "mumps":
            options |= {"ksp_type": "preonly", "pc_type": "lu",
                        "pc_factor_mat_solver_type": "mumps"}
        else:
            options |= {"ksp_type": "gmres", "pc_type": "gamg", "ksp_rtol": 1e-10}
        options |= settings.petsc_options
        return options | {key: value for key, value in command_line.items()
                          if not key.startswith(TRANSPORT_PREFIXES)}

    @staticmethod
    def _options_of_one_solver(command_line: dict[str, str | None]
                               ) -> dict[str, dict[str, str | None]]:
        """Command-line options with a transport solver's prefix, by solver key ("current",
        "voltage", "flux"), the prefix taken off: they go to that solver alone, after (so
        over) the case's settings."""
        by_solver: dict[str, dict[str, str | None]] = {}
        for key, value in command_line.items():
            for prefix in TRANSPORT_PREFIXES:
                if key.startswith(prefix):
                    solver = prefix.removeprefix("constrict_").rstrip("_")
                    by_solver.setdefault(solver, {})[key.removeprefix(prefix)] = value
        return by_solver

    # -- the physics --------------------------------------------------------------------

    def site_current(self, site: ReactionSite, drive: Drive) -> ufl.core.expr.Expr:
        """Local reaction current density i (A/m²) on a site (5.1)."""
        host = site.host.card
        if self._uniform_flux(drive):
            return self.applied_current  # the surface takes the applied current uniformly
        theta_s, sigma_s = self._restricted(site, site.host.theta, site.host.transport_sigma_h)
        phi_e = self._surface_electrolyte_potential() if self.phi is None \
            else self.phi(site.electrolyte_side)
        eta = transport.alloying_overpotential(host, 0.0, phi_e, theta_s, sigma_s)
        i0 = _to_float(host.host.i0_alloy, "A/m^2") * transport.site_availability(theta_s,
                                                                                 host.host.alpha)
        return transport.butler_volmer(i0, host.host.alpha, self.f, eta)

    def _uniform_flux(self, drive: Drive) -> bool:
        """A galvanostatic particle without plating: the applied current is the flux."""
        return self.single_particle and self.void is None and drive.mode == "current"

    def _surface_electrolyte_potential(self):
        """φ_e at the particle's surface: −V, with V the unknown (plating on) or the applied
        voltage."""
        return -self.potential if self.potential is not None else -self.applied_voltage

    def surface_plating_current(self) -> ufl.core.expr.Expr:
        """Li⁺ + e⁻ → Li(metal) on the particle's surface into its void (A/m², §5): (5.1)
        with the surface electrolyte's plating kinetics against U_Li(p_Li) of the void, and
        the host's nucleation barrier while the void holds no metal."""
        void, layer = self.void, self.surface_electrolyte.electrolyte
        host = self.hosts[0].card.host
        eta = self.potential - void.plating_potential()  # η = φ_s − φ_e − U_Li
        return transport.deposition_current(
            _to_float(layer.i0_plating, "A/m^2"), layer.alpha_plating, self.f, eta,
            void.presence(), _to_float(host.nucleation_overpotential, "V"))

    def surface_forced_plating_current(self) -> ufl.core.expr.Expr:
        """Li(host) → Li(metal) from the particle's surface into its void (A/m², §5, Γ_HP):
        driving force Δ = U_k(θ_s, σ_h,s) − U_Li(p_Li)."""
        host, void = self.hosts[0], self.void
        card = host.card.host
        u_host = equilibrium_potential(host.card, host.theta, host.transport_sigma_h)
        i0 = _to_float(card.i0_forced_plating, "A/m^2") * transport.site_availability(
            host.theta, card.alpha)
        return transport.deposition_current(
            i0, card.alpha, self.f, u_host - void.plating_potential(), void.presence(),
            _to_float(card.nucleation_overpotential, "V"))

    def plating_current(self) -> ufl.core.expr.Expr:
        """Li plating from the electrolyte on Γ_EP (A/m²), §5: where the facet has electrons,
        (5.1) against U_Li(p_Li) with the nucleation barrier where no metal is present yet."""
        pores, layer = self.pores, self._bottom_layer().electrolyte
        eta = 0.0 - self.phi("-") - pores.plating_potential("+")  # η = φ_s − φ_e − U_Li
        current = transport.deposition_current(
            _to_float(layer.i0_plating, "A/m^2"), layer.alpha_plating, self.f, eta,
            pores.presence("+"), pores.eta_nucleation("+"))
        return pores.electron_access("+") * current

    def _bottom_layer(self) -> MaterialCard:
        """The electrolyte layer that meets the scaffold (layer 0)."""
        (tag,) = [tag for name, tag in self.tagged.regions.items()
                  if name.startswith("electrolyte:0:")]
        return self.electrolyte_layers[tag]

    def contact_current(self, contact: HostContact) -> ufl.core.expr.Expr:
        """Li moved from the host ("+") to the pore's metal or to the other host ("−"),
        in A/m² (§5): (5.1) with η replaced by the driving force Δ.

        Γ_HP: Δ = U_k(θ_s, σ_h,s) − U_Li(p_Li), forced plating with the nucleation barrier
        of the host where its pore holds no metal. Γ_HH': Δ = U_k − U_k', exchange."""
        host, card = contact.host, contact.host.card.host
        theta_s, sigma_s = host.theta("+"), host.transport_sigma_h("+")
        u_host = equilibrium_potential(host.card, theta_s, sigma_s)
        availability = transport.site_availability(theta_s, card.alpha)
        i0 = _to_float(card.i0_forced_plating, "A/m^2")
        if contact.other is None:
            pores = self.pores
            return transport.deposition_current(
                i0 * availability, card.alpha, self.f, u_host - pores.plating_potential("-"),
                pores.presence("-"), _to_float(card.nucleation_overpotential, "V"))
        other = contact.other
        theta_o, sigma_o = other.theta("-"), other.transport_sigma_h("-")
        i0 = min(i0, _to_float(other.card.host.i0_forced_plating, "A/m^2"))
        availability *= transport.site_availability(theta_o, other.card.host.alpha)
        delta = u_host - equilibrium_potential(other.card, theta_o, sigma_o)
        return transport.butler_volmer(i0 * availability, card.alpha, self.f, delta)

    def _pore_residuals(self) -> list[ufl.Form]:
        """(7.1)–(7.2) on the pore cells; ψ gains the Li plated on Γ_EP and Γ_HP: −Ω_Li q
        per facet area with q = i/F."""
        pores = self.pores
        R_psi, R_p = pores.residuals(self.dt, self.dx(pores.cell_tag, metadata=LUMPED))
        v = ufl.TestFunction(pores.psi.function_space)
        per_current = pores.volume_per_mol_flux / F.m_as("C/mol")  # A/m² → µm/s of Li metal
        if self.plating_sites is not None:
            R_psi -= per_current * self.plating_current() * v("+") * self.plating_sites
        for contact in self.host_contacts:
            if contact.other is None:
                R_psi -= per_current * self.contact_current(contact) * v("-") * contact.measure
        return [R_psi, R_p]

    @staticmethod
    def _restricted(site: ReactionSite, *functions):
        side = site.host_side
        return [function if side is None else function(side) for function in functions]

    def _void_residuals(self, drive: Drive) -> list[ufl.Form]:
        """The rows of V and ψ of a plating particle: the applied current fixes V (the
        galvanostatic condition of §4 on the particle's surface: alloying plus plating carry
        i_app), or V is the applied voltage; the void gains what plates on the surface,
        electrochemically and from the host ((7.1) lumped over the void)."""
        host, surface = self.hosts[0], self.sites[0].measure
        per_current = self.flux_per_current_ref
        r = ufl.TestFunction(self.potential.function_space)
        plating = self.surface_plating_current()
        if drive.mode == "current":
            alloying = self.site_current(self.sites[0], drive)
            R_V = per_current * (alloying + plating - self.applied_current) * r * surface
        else:
            R_V = (self.potential - self.applied_voltage) * r * surface
        s = ufl.TestFunction(self.void.psi.function_space)
        R_psi = self.void.storage(self.dt, s, self.dx(host.cell_tag, metadata=LUMPED), self.c_ref)
        R_psi -= per_current * (plating + self.surface_forced_plating_current()) * s * surface
        return [R_V, R_psi]

    def _residuals(self, drive: Drive) -> list[ufl.Form]:
        residuals = []
        for host in self.hosts:
            v = ufl.TestFunction(host.theta.function_space)
            residual = transport.host_residual(host.card, host.theta, host.theta_old, v, self.dt,
                                               host.transport_sigma_h, host.eps_lat,
                                               self.temperature,
                                               self.dx(host.cell_tag),
                                               self.dx(host.cell_tag, metadata=LUMPED))
            for site in self.sites:
                if site.host is host:
                    (v_s,) = self._restricted(site, v)
                    residual -= host.flux_per_current * self.site_current(site, drive) * v_s \
                        * site.measure
            for contact in self.host_contacts:
                if contact.host is host:  # Li leaves through Γ_HP or Γ_HH'
                    residual += host.flux_per_current * self.contact_current(contact) \
                        * v("+") * contact.measure
                if contact.other is host:  # Li arrives through Γ_HH'
                    residual -= host.flux_per_current * self.contact_current(contact) \
                        * v("-") * contact.measure
            if self.void is not None:  # Li leaves the particle's surface into its void
                residual += host.flux_per_current * self.surface_forced_plating_current() \
                    * v * self.sites[0].measure
            residuals.append(residual)
        if self.phi is not None:
            residuals.append(self._electrolyte_residual(drive))
        if self.pores is not None:
            residuals += self._pore_residuals()
        if self.void is not None:
            residuals += self._void_residuals(drive)
        return residuals

    def _electrolyte_residual(self, drive: Drive) -> ufl.Form:
        """(4.1) with the interface currents and, when galvanostatic, the applied current."""
        w = ufl.TestFunction(self.phi.function_space)
        per_current = self.flux_per_current_ref
        residual = transport.electrolyte_residual(self.kappa_scaled, self.phi, w,
                                                  self.dx(tuple(self.electrolyte_layers)))
        for site in self.sites:
            residual += per_current * self.site_current(site, drive) * w(site.electrolyte_side) \
                * site.measure
        if self.plating_sites is not None:
            residual += per_current * self.plating_current() * w("-") * self.plating_sites
        if drive.mode == "current":
            top = self.ds(self.tagged.interfaces["top"])
            residual -= per_current * self.applied_current * w * top
        return residual

    def _jacobian(self, residuals: list[ufl.Form], unknowns: list[fem.Function]):
        """Block Jacobian by ufl.derivative; blocks that vanish are left out (None)."""
        blocks = []
        for residual in residuals:
            row = []
            for unknown in unknowns:
                block = ufl.algorithms.expand_derivatives(
                    ufl.derivative(residual, unknown, ufl.TrialFunction(unknown.function_space)))
                row.append(block if block.integrals() else None)
            blocks.append(row)
        return blocks

    def _solver_for(self, drive: Drive) -> BlockNewtonProblem:
        key = "voltage" if drive.mode == "voltage" else "current"
        if self._uniform_flux(drive):
            key = "flux"
        if key not in self._solvers:
            unknowns = self.unknowns
            residuals = self._residuals(drive)
            bcs = self._voltage_bcs() if key == "voltage" and self.phi is not None else []
            log.info("compiling the %s-controlled transport forms", key)
            jacobian = self._jacobian(residuals, unknowns)
            if len(unknowns) == 1:  # a single field is not a block system for DOLFINx
                residuals, unknowns, jacobian = residuals[0], unknowns[0], jacobian[0][0]
            terms = []
            if self.pores is not None:  # the creep flux of (7.1) in the ψ row, per unit time
                terms.append(CreepTerm(unknowns, self.pores.creep, self.pores.psi,
                                       self.pores.p_li, lambda: 1.0))
            self._solvers[key] = BlockNewtonProblem(
                residuals, unknowns, terms=terms, J=jacobian, bcs=bcs,
                entity_maps=self.entity_maps, petsc_options_prefix=f"constrict_{key}_",
                petsc_options=self.petsc_options | self._solver_specific_options.get(key, {}))
        return self._solvers[key]

    def _voltage_bcs(self) -> list[fem.DirichletBC]:
        """Potentiostatic: φ_e = −V on the (flat) top face; V = φ_s − φ_e with φ_s = 0."""
        space = self.phi.function_space
        z_top = self.comm.allreduce(np.max(self.mesh.geometry.x[:, 2]), op=MPI.MAX)
        dofs = fem.locate_dofs_geometrical(space, lambda x: np.isclose(x[2], z_top))
        return [fem.dirichletbc(self.top_potential, dofs, space)]

    # -- TransientProblem interface -----------------------------------------------------

    @property
    def unknowns(self) -> list[fem.Function]:
        unknowns = [host.theta for host in self.hosts]
        unknowns += [self.phi] if self.phi is not None else []
        unknowns += [self.potential, self.void.psi] if self.void is not None else []
        return unknowns + ([self.pores.psi, self.pores.p_li] if self.pores is not None else [])

    def apply_drive(self, drive: Drive) -> None:
        self.drive = drive
        if drive.mode == "current":
            self.applied_current.value = drive.value
        else:
            self.applied_voltage.value = drive.value
            self.top_potential.value = -drive.value

    def solve(self, dt: float) -> StepResult:
        """Block Newton on (θ_k, φ_e, and ψ, p_Li when plating is on)."""
        self.dt.value = dt
        if self.pores is not None:
            self.pores.update_metal_contacts()
        solver = self._solver_for(self.drive)
        solver.solve()
        snes = solver.solver
        converged = snes.getConvergedReason() > 0 or self._stalled_at_round_off(solver)
        for unknown in self.unknowns:
            unknown.x.scatter_forward()
        if converged and self.pores is not None:
            converged = self.pores.after_solve()
        self.last_theta_change = self._max_theta_change() if converged else np.inf
        return StepResult(converged, snes.getIterationNumber())

    @staticmethod
    def _stalled_at_round_off(solver: BlockNewtonProblem) -> bool:
        """A line search that cannot lower, or a Newton that stagnates at, a residual already
        STALL_RTOL below the first: the creep term of (7.1) has a round-off floor above
        newton_rtol (docs/plating.md)."""
        snes = solver.solver
        reason = snes.getConvergedReason()
        stalled = (PETSc.SNES.ConvergedReason.DIVERGED_LINE_SEARCH,
                   PETSc.SNES.ConvergedReason.DIVERGED_LOCAL_MIN)
        floor = STALL_RTOL * solver.first_residual_norm
        return reason in stalled and snes.getFunctionNorm() <= floor

    def accept(self, time: float) -> None:
        for host in self.hosts:
            host.theta_old.x.array[:] = host.theta.x.array
        self._accepted = [unknown.x.array.copy() for unknown in self.unknowns]
        if self.pores is not None:
            self.pores.accept()
        if self.void is not None:
            self.void.accept()

    def reject(self) -> None:
        for unknown, accepted in zip(self.unknowns, self._accepted, strict=True):
            unknown.x.array[:] = accepted
        if self.pores is not None:
            self.pores.reject()

    def _max_theta_change(self) -> float:
        local = max((np.max(np.abs(h.theta.x.array - h.theta_old.x.array), initial=0.0)
                     for h in self.hosts), default=0.0)
        return self.comm.allreduce(local, op=MPI.MAX)

    def max_theta_change(self) -> float:
        return self.last_theta_change

    def solver_timings(self) -> NewtonTimings:
        """The Newton solves' time and iterations so far, over all drives (this rank)."""
        return sum((solver.timings for solver in self._solvers.values()), NewtonTimings())

    # -- observables --------------------------------------------------------------------

    def _diagnostic_forms(self) -> dict[str, fem.Form]:
        one = self._constant(1.0)
        forms = {f"theta_volume:{host.name}": fem.form(host.theta * self.dx(host.cell_tag),
                                                       entity_maps=self.entity_maps)
                 for host in self.hosts}
        forms |= {f"volume:{host.name}": fem.form(one * self.dx(host.cell_tag))
                  for host in self.hosts}
        if self.phi is not None:
            top = self.ds(self.tagged.interfaces["top"])
            forms["top_area"] = fem.form(one * top)
            forms["phi_top"] = fem.form(self.phi * top, entity_maps=self.entity_maps)
        else:
            surface = self.ds(self.tagged.interfaces["surface"])
            forms["top_area"] = fem.form(one * surface)
            host = self.hosts[0]
            forms["ocv_surface"] = fem.form(
                equilibrium_potential(host.card, host.theta, host.sigma_h) * surface,
                entity_maps=self.entity_maps)
            forms["availability_surface"] = fem.form(
                transport.site_availability(host.theta, host.card.host.alpha) * surface,
                entity_maps=self.entity_maps)
        return forms

    def integral(self, name: str) -> float:
        return self.comm.allreduce(fem.assemble_scalar(self._diagnostics[name]), op=MPI.SUM)

    def anode_potential(self) -> float:
        """V = φ_s − φ_e averaged over the top face (MODEL §4); for the particle, U + η."""
        area = self.integral("top_area")
        if self.phi is not None:
            return -self.integral("phi_top") / area
        if self.potential is not None:
            return float(self.potential.x.array[0])
        if self.drive.mode == "voltage":
            return self.drive.value
        # Uniform surface current: V = <U_k> + η(i; i0·<availability>), the voltage of a
        # single-particle model evaluated with surface averages.
        host = self.hosts[0].card.host
        i0 = _to_float(host.i0_alloy, "A/m^2") * self.integral("availability_surface") / area
        return self.integral("ocv_surface") / area + _overpotential_for_current(
            self.drive.value, i0, host.alpha, self.f)

    def current_density(self) -> float:
        """Mean current density (A/m²) over the top face (over the surface for a particle)."""
        if self.drive.mode == "current":
            return self.drive.value
        if "reaction_current" not in self._diagnostics:
            voltage = Drive("voltage", 0.0)
            total = sum(self.site_current(site, voltage) * site.measure for site in self.sites)
            if self.plating_sites is not None:
                total += self.plating_current() * self.plating_sites
            if self.void is not None:
                total += self.surface_plating_current() * self.sites[0].measure
            self._diagnostics["reaction_current"] = fem.form(total, entity_maps=self.entity_maps)
        return self.integral("reaction_current") / self.integral("top_area")

    def theta_range(self) -> dict[str, tuple[float, float]]:
        """(min θ, max θ) of each host over all ranks."""
        ranges = {}
        for host in self.hosts:
            owned = host.theta.x.array[:host.theta.function_space.dofmap.index_map.size_local]
            low = self.comm.allreduce(owned.min(initial=np.inf), op=MPI.MIN)
            high = self.comm.allreduce(owned.max(initial=-np.inf), op=MPI.MAX)
            ranges[host.name] = (low, high)
        return ranges

    def li_plated_mol(self) -> float:
        """Li metal in the pores or the particle's void (mol); 0 without plating."""
        if self.void is not None:
            return self.void.li_mol(self.integral(f"volume:{self.hosts[0].name}"))
        return self.pores.li_mol() if self.pores is not None else 0.0

    def li_in_hosts_mol(self) -> dict[str, float]:
        return {host.name: host.mol_per_theta_volume * self.integral(f"theta_volume:{host.name}")
                for host in self.hosts}


def _overpotential_for_current(current: float, i0: float, alpha: float, f: float) -> float:
    """Invert (5.1) for η at a given current density (Newton on the monotone BV curve)."""
    eta = 0.0
    for _ in range(100):
        residual = i0 * (np.exp(-alpha * f * eta) - np.exp((1 - alpha) * f * eta)) - current
        slope = -i0 * f * (alpha * np.exp(-alpha * f * eta)
                           + (1 - alpha) * np.exp((1 - alpha) * f * eta))
        step = residual / slope
        eta -= step
        if abs(step) < 1e-14:
            break
    return eta
