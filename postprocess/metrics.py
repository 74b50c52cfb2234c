"""Run metrics of MODEL §9: shell depth per particle and the capacity split."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mpi4py import MPI

import numpy as np
import ufl
from dolfinx import fem

from solver.units import F

if TYPE_CHECKING:
    from meshes import TaggedMesh

# Quadrature degree for the volume where θ exceeds the threshold inside a P1 cell.
_INDICATOR_DEGREE = 4


def host_masses_g(problem) -> dict[str, float]:
    """Mass (g) of each host material in the mesh: density × volume."""
    return {host.name: host.card.density.m_as("g/um^3") * problem.integral(f"volume:{host.name}")
            for host in problem.hosts}


def capacity_mAh_per_g(li_mol: float, masses_g: dict[str, float]) -> float:
    """Capacity F·n_Li per gram of all host material, in mAh/g."""
    return li_mol * F.m_as("C/mol") / 3.6 / sum(masses_g.values())


def _lithiated_volume_per_cell(theta: fem.Function,
                               threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(volume with θ > threshold, cell volume) for each owned cell of θ's mesh."""
    mesh = theta.function_space.mesh
    space = fem.functionspace(mesh, ("DG", 0))
    w = ufl.TestFunction(space)
    dx = ufl.dx(domain=mesh, metadata={"quadrature_degree": _INDICATOR_DEGREE})
    lithiated = fem.assemble_vector(fem.form(ufl.conditional(ufl.gt(theta, threshold), 1.0, 0.0)
                                             * w * dx))
    volume = fem.assemble_vector(fem.form(w * ufl.dx(domain=mesh)))
    owned = mesh.topology.index_map(3).size_local
    cells = np.arange(owned, dtype=np.int32)
    dofs = space.dofmap.list[cells, 0]
    return lithiated.array[dofs], volume.array[dofs]


def shell_depths_nm(problem, tagged: TaggedMesh, threshold: float) -> dict[str, np.ndarray]:
    """Volume-equivalent shell depth δ = R(1 − (1 − V_lith/V_p)^(1/3)) of every particle (§9).

    V_p is the particle's meshed volume (all its periodic pieces), R its radius; for
    a whole sphere this is δ = R − (R³ − 3V_lith/4π)^(1/3) of MODEL §9.
    Returns, per host material, the depths (nm) of its particles, on every rank.
    """
    packing = tagged.particles
    count = len(packing.radii)
    # Periodic copies of a particle that cross the box are separate spheres of the
    # packing; `parent` merges them back into one particle.
    parent_of_sphere = packing.parent
    depths = {}
    for host in problem.hosts:
        lithiated, volume = _lithiated_volume_per_cell(host.theta, threshold)
        sub_cells = np.arange(len(lithiated), dtype=np.int32)
        parent_cells = host.entity_map.sub_topology_to_topology(sub_cells, inverse=False)
        particle = parent_of_sphere[tagged.particle_of_cell[parent_cells]]
        lith_sum = np.bincount(particle, weights=lithiated, minlength=count)
        vol_sum = np.bincount(particle, weights=volume, minlength=count)
        lith_sum = problem.comm.allreduce(lith_sum, op=MPI.SUM)
        vol_sum = problem.comm.allreduce(vol_sum, op=MPI.SUM)
        mine = vol_sum > 0
        fraction = np.clip(lith_sum[mine] / vol_sum[mine], 0.0, 1.0)
        depths[host.name] = 1e3 * packing.radii[mine] * (1.0 - np.cbrt(1.0 - fraction))
    return depths


def summarize_shell_depths(depths: dict[str, np.ndarray], case) -> dict[str, object]:
    """Mean/std shell depth over the lithiated particles of the first particle material."""
    geometry = case.geometry
    primary = (geometry.single_particle.material if geometry.kind == "single_particle"
               else geometry.scaffold.particles[0].material)
    values = depths.get(primary, np.array([]))
    lithiated = values[values > 0.0]
    summary: dict[str, object] = {
        "shell_depth_material": primary,
        "shell_depth_nm_mean": float(lithiated.mean()) if lithiated.size else None,
        "shell_depth_nm_std": float(lithiated.std()) if lithiated.size else None,
        "n_particles_lithiated": int(lithiated.size),
        "n_particles": int(values.size),
    }
    summary["shell_depth_nm_by_material"] = {
        name: float(d[d > 0].mean()) if np.any(d > 0) else None for name, d in depths.items()}
    return summary
