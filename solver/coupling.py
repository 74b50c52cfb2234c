"""Transport and mechanics in one time step, iterated to a tolerance (MODEL §8).

Staggered scheme per backward-Euler step: solve the transport (θ_k, φ_e) with the
stresses of the last iterate, hand θ to the mechanics, solve it, hand σ_h and ε_lat back
to the hosts, and repeat until σ_h changes by less than the tolerance. θ reaches the
mechanics through (3.1)–(3.5): the stress-corrected potential in the kinetics and the
flux, and D(ε_lat) in the mobility.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mpi4py import MPI

import numpy as np
from dolfinx import fem

from solver.config import CaseConfig
from solver.materials import diffusivity
from solver.physics.mechanics import (
    BoundaryCondition,
    FixedBottom,
    MechanicsProblem,
    MechanicsSettings,
    Pressure,
    Roller,
    SolidDomain,
    Spring,
)
from solver.problem import HostField, TransportProblem
from solver.stepper import Drive, StepResult

log = logging.getLogger("constrict.coupling")

# Stresses below this (MPa) count as zero in the relative convergence test.
STRESS_FLOOR_MPA = 1.0


def boundary_conditions(case: CaseConfig) -> list[BoundaryCondition]:
    """The mechanical boundary conditions of MODEL §6 for the case's geometry."""
    geometry = case.geometry
    if geometry.kind == "scaffold":
        return [FixedBottom("bottom"), Roller("lateral"), Pressure("top", case.stack_pressure)]
    conditions: list[BoundaryCondition] = [Roller(f"symmetry_{axis}") for axis in "xyz"]
    confinement = case.mechanics.confinement
    if confinement.type == "pressure":
        conditions.append(Pressure("surface", confinement.value))
    elif confinement.type == "spring":
        conditions.append(Spring("surface", confinement.value, geometry.single_particle.radius))
    return conditions


@dataclass
class _HostLink:
    """The cells of one host on its transport submesh and on the solid mesh."""

    host: HostField
    host_cells: np.ndarray
    solid_cells: np.ndarray


class ChemoMechanicalProblem:
    """A `TransientProblem`: the transport problem with the mechanics coupled in."""

    def __init__(self, transport: TransportProblem, case: CaseConfig,
                 materials: dict) -> None:
        settings = case.mechanics
        self.transport = transport
        self.comm = transport.comm
        self.tolerance = settings.coupling_tolerance
        self.max_iterations = settings.coupling_max_iterations
        domain = SolidDomain.from_tagged(transport.tagged, materials)
        self.theta = fem.Function(fem.functionspace(domain.mesh, ("DG", 1)), name="theta")
        self.mechanics = MechanicsProblem(
            domain, self.theta, boundary_conditions(case),
            MechanicsSettings(kinematics=settings.kinematics, degree=settings.degree,
                              linear_solver=settings.linear_solver),
            temperature=case.temperature)
        self.links = [self._link(host, domain) for host in transport.hosts]
        self.displacement = fem.Function(fem.functionspace(domain.mesh, ("Lagrange", 1, (3,))),
                                         name="u")
        self.diffusivity_ratio = {link.host.name: self._diffusivity_ratio(link.host, case)
                                  for link in self.links}
        self.mechanics_newton_total = 0
        self.coupling_iterations_total = 0
        self._accepted = self._state()

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
        groups = {"solid": [self.displacement, self.mechanics.sigma_h, self.mechanics.von_mises,
                            self.mechanics.eps_lat]}
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

    def resolve_mechanics(self) -> None:
        """Mechanics for the current θ (after a restart: elasticity depends on θ alone)."""
        self._send_theta()
        if not self.mechanics.solve().converged:
            raise RuntimeError("mechanics did not converge for the restored state")
        self._receive_stresses()
        self.accept(float("nan"))

    # -- the two transfers ----------------------------------------------------------------

    def _send_theta(self) -> None:
        for link in self.links:
            self.theta.interpolate(link.host.theta, cells0=link.host_cells,
                                   cells1=link.solid_cells)
        self.theta.x.scatter_forward()

    def _receive_stresses(self) -> float:
        """σ_h and ε_lat onto the hosts; returns the relative change of σ_h."""
        change, scale = 0.0, STRESS_FLOOR_MPA
        for link in self.links:
            previous = link.host.sigma_h.x.array.copy()
            for source, target in ((self.mechanics.sigma_h, link.host.sigma_h),
                                   (self.mechanics.eps_lat, link.host.eps_lat)):
                target.interpolate(source, cells0=link.solid_cells, cells1=link.host_cells)
                target.x.scatter_forward()
            new = link.host.sigma_h.x.array
            change = max(change, np.max(np.abs(new - previous), initial=0.0))
            scale = max(scale, np.max(np.abs(new), initial=0.0))
        return self.comm.allreduce(change, op=MPI.MAX) / self.comm.allreduce(scale, op=MPI.MAX)

    # -- TransientProblem ----------------------------------------------------------------

    def apply_drive(self, drive: Drive) -> None:
        self.transport.apply_drive(drive)

    def solve(self, dt: float) -> StepResult:
        newton = 0
        for iteration in range(1, self.max_iterations + 1):
            result = self.transport.solve(dt)
            newton += result.newton_iterations
            if not result.converged:
                return StepResult(False, newton)
            self._send_theta()
            mechanics = self.mechanics.solve()
            self.mechanics_newton_total += mechanics.newton_iterations
            if not mechanics.converged:
                log.warning("mechanics did not converge (%d Newton iterations)",
                            mechanics.newton_iterations)
                return StepResult(False, newton)
            change = self._receive_stresses()
            log.debug("staggered iteration %d: relative change of sigma_h %.2e", iteration,
                      change)
            if change < self.tolerance:
                self.coupling_iterations_total += iteration
                return StepResult(True, newton)
        log.warning("transport-mechanics iteration: sigma_h still changes by %.2e after %d "
                    "iterations", change, self.max_iterations)
        return StepResult(False, newton)

    def _state(self) -> list[np.ndarray]:
        arrays = [self.mechanics.u.x.array, self.mechanics.theta.x.array]
        for link in self.links:
            arrays += [link.host.sigma_h.x.array, link.host.eps_lat.x.array]
        return [array.copy() for array in arrays]

    def accept(self, time: float) -> None:
        self.transport.accept(time)
        self._accepted = self._state()
        self._update_outputs()

    def reject(self) -> None:
        self.transport.reject()
        targets = [self.mechanics.u.x.array, self.mechanics.theta.x.array]
        for link in self.links:
            targets += [link.host.sigma_h.x.array, link.host.eps_lat.x.array]
        for target, saved in zip(targets, self._accepted, strict=True):
            target[:] = saved

    def anode_potential(self) -> float:
        return self.transport.anode_potential()

    def current_density(self) -> float:
        return self.transport.current_density()

    def max_theta_change(self) -> float:
        return self.transport.max_theta_change()
