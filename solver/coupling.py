"""Transport and mechanics in one time step, iterated to a tolerance (MODEL §8).

Staggered scheme per backward-Euler step: solve the transport (θ_k, φ_e) with the
stresses of the last iterate, hand θ to the mechanics, solve it, hand σ_h and ε_lat back
to the hosts, and repeat until σ_h changes by less than the tolerance. θ reaches the
mechanics through (3.1)–(3.5): the stress-corrected potential in the kinetics and the
flux, and D(ε_lat) in the mobility.

The plain iteration diverges for Si: the stress term of the flux (3.3) responds to a
change of θ about 10³ times more strongly than diffusion does (docs/mechanics.md). Two
measures make it converge: the transport sees σ_h with a fixed-stress correction
(`transport.split_hydrostatic_stress`), which turns the iteration into a contraction, and
Anderson acceleration of the σ_h iterates removes its slow (smooth) modes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from mpi4py import MPI

import numpy as np
from dolfinx import fem
from scipy.spatial import cKDTree

from solver.checkpoint import cell_entry_keys
from solver.config import CaseConfig
from solver.materials import MaterialCard, diffusivity
from solver.physics.mechanics import (
    BoundaryCondition,
    FixedBottom,
    MechanicsProblem,
    MechanicsSettings,
    Pressure,
    Roller,
    SolidDomain,
    Spring,
    ViscoplasticMechanicsProblem,
    inclusion_stress_stiffness,
    lame,
)
from solver.pores import PoreSpace
from solver.problem import HostField, TransportProblem
from solver.transient import Drive, StepResult

log = logging.getLogger("constrict.coupling")

# Stresses below this (MPa) count as zero in the relative convergence test.
STRESS_FLOOR_MPA = 1.0
# Step (s) of the equilibrium solve after a restart: ε̇_0·RESTORE_DT·(overstress)^m ≪ 1e-12.
RESTORE_DT = 1e-15


def boundary_conditions(case: CaseConfig,
                        materials: dict[str, MaterialCard]) -> list[BoundaryCondition]:
    """The mechanical boundary conditions of MODEL §6 for the case's geometry."""
    geometry = case.geometry
    if geometry.kind == "scaffold":
        return [FixedBottom("bottom"), Roller("lateral"), Pressure("top", case.stack_pressure)]
    conditions: list[BoundaryCondition] = [Roller(f"symmetry_{axis}") for axis in "xyz"]
    confinement = case.mechanics.confinement
    radius = geometry.single_particle.radius
    if confinement.type == "pressure":
        conditions.append(Pressure("surface", confinement.value))
    elif confinement.type == "spring":
        conditions.append(Spring("surface", confinement.value, radius))
    elif confinement.type == "matrix":
        conditions.append(Spring("surface", cavity_stiffness(materials[confinement.material]),
                                 radius))
    if confinement.type in ("spring", "matrix") and case.stack_pressure > 0:
        conditions.append(Pressure("surface", case.stack_pressure))  # the cell's pressure
    return conditions


class PoreWallPressure:
    """p_Li of the plated Li on the pore walls of the solid mesh (MODEL §7: the metal in a
    pore pushes on its walls): a P1 function on the solid mesh equal to p_Li at every
    vertex the solid shares with the pores, for `Pressure` loads on the HP, CP, NP and EP
    facet groups. Both meshes are submeshes of one parent, so a wall vertex has the same
    coordinates in both; on every rank each local wall facet's pore cell is local too
    (shared-facet ghosts), so the match is local."""

    def __init__(self, pores: PoreSpace, domain: SolidDomain) -> None:
        self.p_li = pores.p_li
        space = fem.functionspace(domain.mesh, ("Lagrange", 1))
        self.pressure = fem.Function(space, name="p_Li_walls")
        pore_points = pores.p_li.function_space.tabulate_dof_coordinates()
        solid_points = space.tabulate_dof_coordinates()
        distance, nearest = cKDTree(pore_points).query(solid_points)
        extent = np.ptp(domain.mesh.geometry.x, axis=0).max() if len(solid_points) else 1.0
        self._solid = np.flatnonzero(distance <= 1e-9 * extent)
        self._pore = nearest[self._solid]
        self.walls = sorted(name for name in domain.facet_names
                            if name.startswith(("HP:", "CP:", "NP:")) or name == "EP")

    def loads(self) -> list[Pressure]:
        return [Pressure(name, self.pressure) for name in self.walls]

    def update(self) -> None:
        """The current p_Li onto the walls."""
        self.pressure.x.array[self._solid] = self.p_li.x.array[self._pore]


def cavity_stiffness(matrix: MaterialCard) -> float:
    """K_eff = 4 G (MPa) of a spherical cavity in an infinite elastic matrix: a radial
    displacement u of its wall takes the pressure p = 4 G u / R (Lamé)."""
    _, shear = lame(float(matrix.youngs_modulus.m_as("MPa")), float(matrix.poisson_ratio))
    return 4 * shear


class AndersonAcceleration:
    """Anderson mixing (type II, depth m) of a fixed-point iteration x ← G(x) whose vectors
    are distributed: the owned entries of each rank, the inner products summed over ranks.

    With the residual f = G(x) − x, the next iterate is G(x) − Σ γ_j (ΔG_j) where γ
    minimises |f − Σ γ_j Δf_j| over the last m differences (Walker & Ni, SINUM 49, 1715,
    2011). Depth 0 is the plain iteration.
    """

    def __init__(self, comm: MPI.Comm, depth: int) -> None:
        self.comm = comm
        self.depth = depth
        self.reset()

    def reset(self) -> None:
        self._last: tuple[np.ndarray, np.ndarray] | None = None
        self._dg: list[np.ndarray] = []
        self._df: list[np.ndarray] = []

    def update(self, x: np.ndarray, g: np.ndarray) -> np.ndarray:
        f = g - x
        if self._last is not None and self.depth > 0:
            self._dg.append(g - self._last[0])
            self._df.append(f - self._last[1])
            del self._dg[:-self.depth], self._df[:-self.depth]
        self._last = (g.copy(), f.copy())
        if not self._df:
            return g
        df = np.array(self._df)
        normal = self.comm.allreduce(df @ df.T, op=MPI.SUM)
        rhs = self.comm.allreduce(df @ f, op=MPI.SUM)
        gamma = np.linalg.lstsq(normal, rhs, rcond=1e-12)[0]
        return g - gamma @ np.array(self._dg)


@dataclass
class _HostLink:
    """The cells of one host on its transport submesh and on the solid mesh."""

    host: HostField
    host_cells: np.ndarray
    solid_cells: np.ndarray


class ChemoMechanicalProblem:
    """A `TransientProblem`: the transport problem with the mechanics coupled in."""

    def __init__(self, transport: TransportProblem, case: CaseConfig,
                 materials: dict[str, MaterialCard]) -> None:
        settings = case.mechanics
        self.transport = transport
        self.comm = transport.comm
        self.tolerance = settings.coupling_tolerance
        self.max_iterations = settings.coupling_max_iterations
        domain = SolidDomain.from_tagged(transport.tagged, materials)
        self.wall_pressure = (PoreWallPressure(transport.pores, domain)
                              if transport.pores is not None else None)
        walls = self.wall_pressure.loads() if self.wall_pressure is not None else []
        self.theta = fem.Function(fem.functionspace(domain.mesh, ("DG", 1)), name="theta")
        mechanics = (ViscoplasticMechanicsProblem if settings.viscoplastic
                     else MechanicsProblem)
        self.mechanics = mechanics(
            domain, self.theta, boundary_conditions(case, materials) + walls,
            MechanicsSettings(kinematics=settings.kinematics, degree=settings.degree,
                              linear_solver=settings.linear_solver),
            temperature=case.temperature)
        self.links = [self._link(host, domain) for host in transport.hosts]
        for host in transport.hosts:
            host.stress_stiffness.value = inclusion_stress_stiffness(host.card, 0.0)
        self.anderson = AndersonAcceleration(self.comm, settings.anderson_depth)
        self.displacement = fem.Function(fem.functionspace(domain.mesh, ("Lagrange", 1, (3,))),
                                         name="u")
        self.diffusivity_ratio = {link.host.name: self._diffusivity_ratio(link.host, case)
                                  for link in self.links}
        self.mechanics_newton_total = 0
        self.mechanics_s = 0.0  # wall time in the mechanics solves of the time steps
        self.mechanics_krylov_total = 0
        self.coupling_iterations_total = 0
        self.last_mechanics_newton = 0
        self.last_coupling_iterations = 0
        self._start_in_equilibrium()

    def _start_in_equilibrium(self) -> None:
        """Stresses of the initial state (confinement, stack pressure) and the rest potential
        that goes with them (3.2), so that the first step starts in equilibrium. The loads
        come on instantly, so the response is elastic (a step of RESTORE_DT: no flow); any
        flow they drive happens in the time steps. The mesh is
        the solid as made, at the initial θ: that θ is the mechanics' stress-free reference
        (`MechanicsProblem.theta_reference`), so a host that starts partly lithiated (the
        rest start of a mixed anode) is not stressed by the Li it was made with."""
        self._send_theta()
        self.mechanics.theta_reference.x.array[:] = self.theta.x.array
        if not self.mechanics.solve(RESTORE_DT).converged:
            raise RuntimeError("mechanics did not converge for the initial state")
        self._receive_stresses()
        self.transport.start_at_rest()
        self.accept(0.0)

    @staticmethod
    def _link(host: HostField, domain: SolidDomain) -> _HostLink:
        num_cells = host.submesh.topology.index_map(3)
        host_cells = np.arange(num_cells.size_local + num_cells.num_ghosts, dtype=np.int32)
        parent = host.entity_map.sub_topology_to_topology(host_cells, inverse=False)
        solid = (parent if domain.entity_map is None
                 else domain.entity_map.sub_topology_to_topology(parent, inverse=True))
        return _HostLink(host, host_cells, solid.astype(np.int32))

    @staticmethod
    def _diffusivity_ratio(host: HostField,
                           case: CaseConfig) -> tuple[fem.Function, fem.Expression]:
        """D(θ, ε_lat)/D(θ, 0) = exp(−ΔE_a(ε_lat)/k_B T) of (3.4)–(3.5), for output."""
        space = host.theta.function_space
        ratio = fem.Function(space, name=f"D_ratio_{host.name}")
        expression = (diffusivity(host.card, host.theta, host.eps_lat, case.temperature)
                      / diffusivity(host.card, host.theta, 0.0 * host.eps_lat, case.temperature))
        ratio.x.array[:] = 1.0
        return ratio, fem.Expression(expression, space.element.interpolation_points)

    def output_fields(self) -> dict[str, list[fem.Function]]:
        """Field groups for the writers: the solid's displacement and stresses, D/D0 per host."""
        solid = [self.displacement, self.mechanics.sigma_h, self.mechanics.von_mises,
                 self.mechanics.eps_lat]
        if isinstance(self.mechanics, ViscoplasticMechanicsProblem):
            solid.append(self.mechanics.plastic_strain)
        groups = {"solid": solid}
        groups |= {f"diffusivity_{name}": [ratio] for name, (ratio, _) in
                   self.diffusivity_ratio.items()}
        return groups

    def _update_outputs(self) -> None:
        self.displacement.interpolate(self.mechanics.u)
        for ratio, expression in self.diffusivity_ratio.values():
            ratio.interpolate(expression)

    def extremes(self) -> dict[str, float]:
        """min σ_h (GPa), min ε_lat and min D/D0 over the hosts (metrics of MODEL §9)."""
        def minimum(functions) -> float:
            local = min((np.min(f.x.array, initial=np.inf) for f in functions), default=np.inf)
            return self.comm.allreduce(local, op=MPI.MIN)

        hosts = [link.host for link in self.links]
        return {"sigma_h_GPa_min": minimum([h.sigma_h for h in hosts]) / 1e3,
                "eps_lat_min": minimum([h.eps_lat for h in hosts]),
                "D_ratio_min": minimum([r for r, _ in self.diffusivity_ratio.values()])}

    def checkpoint_fields(self) -> tuple[dict[str, fem.Function], dict[str, np.ndarray]]:
        """The mechanics' internal variables (viscoplastic hosts) and their checkpoint keys."""
        internal = (self.mechanics.internal_variables()
                    if isinstance(self.mechanics, ViscoplasticMechanicsProblem) else {})
        if not internal:
            return {}, {}
        solid = self.mechanics.domain
        owned = np.arange(solid.mesh.topology.index_map(3).size_local, dtype=np.int32)
        parent = (owned if solid.entity_map is None
                  else solid.entity_map.sub_topology_to_topology(owned, inverse=False))
        input_cell = self.transport.mesh.topology.original_cell_index[parent]
        return internal, {name: cell_entry_keys(f, input_cell) for name, f in internal.items()}

    def resolve_mechanics(self) -> None:
        """Displacement and stresses of a restored state (θ and, for viscoplastic hosts,
        the restored internal variables): an equilibrium solve over a step too short for
        any flow (RESTORE_DT)."""
        self._send_wall_pressure()
        self._send_theta()
        if not self.mechanics.solve(RESTORE_DT).converged:
            raise RuntimeError("mechanics did not converge for the restored state")
        self._receive_stresses()
        self.accept(float("nan"))

    # -- the two transfers ----------------------------------------------------------------

    def _send_wall_pressure(self) -> None:
        """p_Li of the accepted state onto the pore walls: explicit by one step in the
        mechanics, so that a step's staggered iteration stays a map of θ alone."""
        if self.wall_pressure is not None:
            self.wall_pressure.update()

    def _send_theta(self) -> None:
        for link in self.links:
            self.theta.interpolate(link.host.theta, cells0=link.host_cells,
                                   cells1=link.solid_cells)
        self.theta.x.scatter_forward()

    def _receive_stresses(self) -> None:
        """σ_h and ε_lat onto the hosts; θ_stressed records the θ they belong to."""
        for link in self.links:
            for source, target in ((self.mechanics.sigma_h, link.host.sigma_h),
                                   (self.mechanics.eps_lat, link.host.eps_lat)):
                target.interpolate(source, cells0=link.solid_cells, cells1=link.host_cells)
                target.x.scatter_forward()
            link.host.theta_stressed.x.array[:] = link.host.theta.x.array

    def _owned(self, name: str) -> np.ndarray:
        """The owned nodal values of one host field (`theta`, `sigma_h`) of all hosts."""
        return np.concatenate([getattr(link.host, name).x.array[:self._owned_size(link)]
                               for link in self.links])

    def _set_theta(self, values: np.ndarray) -> None:
        start = 0
        for link in self.links:
            size = self._owned_size(link)
            link.host.theta.x.array[:size] = values[start:start + size]
            link.host.theta.x.scatter_forward()
            start += size

    def _stiffness(self) -> np.ndarray:
        """β of each owned host node (the fixed-stress stiffness of its host)."""
        return np.concatenate([np.full(self._owned_size(link),
                                       float(link.host.stress_stiffness.value))
                               for link in self.links])

    @staticmethod
    def _owned_size(link: _HostLink) -> int:
        return link.host.sigma_h.function_space.dofmap.index_map.size_local

    # -- TransientProblem ----------------------------------------------------------------

    def apply_drive(self, drive: Drive) -> None:
        self.transport.apply_drive(drive)

    def solve(self, dt: float) -> StepResult:
        """One step: mechanics and transport iterated on θ until the stress that the
        transport saw, σ_h(θ_in) − β (θ − θ_in), and the mechanics' σ_h(θ_in) differ by less
        than the tolerance (relative to max |σ_h|, at least STRESS_FLOOR_MPA).

        Iterate: σ_h = mechanics(θ_in); θ = transport(σ_h, θ_in); θ_in ← Anderson(θ_in, θ).
        The map θ_in → θ depends on θ_in alone, which Anderson acceleration needs.
        """
        newton, mechanics_newton = 0, 0
        self.anderson.reset()
        stiffness = self._stiffness()
        theta_in = self._owned("theta")
        self._send_wall_pressure()
        previous = np.inf
        for iteration in range(1, self.max_iterations + 1):
            self._set_theta(theta_in)
            self._send_theta()
            mechanics = self._timed_mechanics_solve(dt)
            mechanics_newton += mechanics.newton_iterations
            if not mechanics.converged:
                return self._failed(newton, mechanics_newton, "mechanics Newton failed")
            self._receive_stresses()
            result = self.transport.solve(dt)
            newton += result.newton_iterations
            if not result.converged:
                return self._failed(newton, mechanics_newton, "transport Newton failed")
            theta_out = self._owned("theta")
            change = self._max(stiffness * np.abs(theta_out - theta_in))
            scale = max(self._max(np.abs(self._owned("sigma_h"))), STRESS_FLOOR_MPA)
            log.debug("staggered iteration %d: stress inconsistency %.3g MPa (relative %.2e)",
                      iteration, change, change / scale)
            if change < self.tolerance * scale:
                self.last_coupling_iterations = iteration
                self.last_mechanics_newton = mechanics_newton
                return StepResult(True, newton, iteration)
            if change > 2.0 * previous:  # Anderson overshot: start its history again
                self.anderson.reset()
            previous = change
            theta_in = self.anderson.update(theta_in, theta_out)
        return self._failed(newton, mechanics_newton,
                            f"the stresses are still inconsistent by {change / scale:.2e} "
                            f"(relative) after {self.max_iterations} staggered iterations")

    def _timed_mechanics_solve(self, dt: float):
        start = time.perf_counter()
        result = self.mechanics.solve(dt)
        self.mechanics_s += time.perf_counter() - start
        self.mechanics_krylov_total += self.mechanics.snes.getLinearSolveIterations()
        return result

    def _failed(self, newton: int, mechanics_newton: int, why: str) -> StepResult:
        log.warning("transport-mechanics step failed: %s", why)
        self.mechanics_newton_total += mechanics_newton
        return StepResult(False, newton)

    def _max(self, values: np.ndarray) -> float:
        return self.comm.allreduce(float(np.max(values, initial=0.0)), op=MPI.MAX)

    def _coupling_arrays(self) -> list[np.ndarray]:
        """The hosts' arrays that the coupling owns (the transport keeps θ, the mechanics u)."""
        return [field_.x.array for link in self.links
                for field_ in (link.host.sigma_h, link.host.eps_lat, link.host.theta_stressed)]

    def step_columns(self) -> dict[str, float]:
        """Per accepted step, for timeseries.csv: the staggered iterations, the mechanics'
        Newton iterations and the most compressive σ_h (GPa)."""
        return {"staggered_iterations": self._accepted_counts[0],
                "mechanics_newton_iterations": self._accepted_counts[1],
                "sigma_h_GPa_min": self.extremes()["sigma_h_GPa_min"]}

    def accept(self, time: float) -> None:
        self.transport.accept(time)
        self.mechanics.accept()
        self.mechanics_newton_total += self.last_mechanics_newton
        self.coupling_iterations_total += self.last_coupling_iterations
        self._accepted_counts = (self.last_coupling_iterations, self.last_mechanics_newton)
        self.last_mechanics_newton = self.last_coupling_iterations = 0
        self._accepted = [array.copy() for array in self._coupling_arrays()]
        self._update_outputs()

    def reject(self) -> None:
        self.transport.reject()
        self.mechanics.reject()
        for target, saved in zip(self._coupling_arrays(), self._accepted, strict=True):
            target[:] = saved

    def anode_potential(self) -> float:
        return self.transport.anode_potential()

    def current_density(self) -> float:
        return self.transport.current_density()

    def max_theta_change(self) -> float:
        return self.transport.max_theta_change()
