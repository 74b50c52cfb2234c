"""Run metrics of MODEL §9: shell depth per particle and the capacity split.

The shell depth of a coated particle (a host coating on a core, e.g. 50 nm Ag on SiO2) is
measured from its outer surface into the coating only, so it ends at the coating thickness.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mpi4py import MPI

import numpy as np
import ufl
from dolfinx import fem

from solver.units import F

if TYPE_CHECKING:
    from meshes import Packing, TaggedMesh

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


@dataclass(frozen=True)
class ShellDepths:
    """Shell depth of every particle of each host material (nm), periodic copies merged.

    `full_nm` is the depth at which the particle's part of that material is lithiated
    through: the coating thickness on a coated particle, the core radius for a host core,
    the radius of a bare particle. ``depths[material]`` gives the depths.
    """

    depth_nm: dict[str, np.ndarray]
    full_nm: dict[str, np.ndarray]

    def __getitem__(self, material: str) -> np.ndarray:
        return self.depth_nm[material]


def part_radii(case, packing: Packing, material: str) -> tuple[np.ndarray, np.ndarray]:
    """Outer and inner radius (µm) of `material`'s part of each sphere of the packing:
    (r, 0) for a bare particle, (r, r − t) for the coating of a coated one (thickness t),
    (r − t, 0) for its core. Spheres without that material get (r, 0); they are unused."""
    outer = np.asarray(packing.radii, dtype=float).copy()
    inner = np.zeros_like(outer)
    geometry = case.geometry
    families = geometry.scaffold.particles if geometry.kind == "scaffold" else []
    for index, family in enumerate(families):
        if family.coating is None:
            continue
        spheres = packing.family == index
        if family.coating.material == material:
            inner[spheres] = outer[spheres] - family.coating.thickness
        elif family.material == material:
            outer[spheres] -= family.coating.thickness
    return outer, inner


def shell_depth(fraction: np.ndarray, outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Depth δ below the outer surface of a spherical part (radii outer > inner ≥ 0) such
    that the layer outer − δ < |x − c| < outer holds `fraction` of the part's volume:
    outer³ − (outer − δ)³ = fraction · (outer³ − inner³).

    δ = outer − inner when lithiated through (a coating: its thickness); with inner = 0 this
    is MODEL §9's δ = R (1 − (1 − V_lith/V_p)^(1/3)).
    """
    return outer - np.cbrt(outer**3 - fraction * (outer**3 - inner**3))


def _lithiated_fraction(host, tagged: TaggedMesh, threshold: float,
                        comm: MPI.Comm) -> tuple[np.ndarray, np.ndarray]:
    """(particles with cells of `host`, the lithiated share of their meshed volume)."""
    packing = tagged.particles
    lithiated, volume = _lithiated_volume_per_cell(host.theta, threshold)
    sub_cells = np.arange(len(lithiated), dtype=np.int32)
    parent_cells = host.entity_map.sub_topology_to_topology(sub_cells, inverse=False)
    # Periodic copies of a particle that cross the box are separate spheres of the
    # packing; `parent` merges them back into one particle.
    particle = packing.parent[tagged.particle_of_cell[parent_cells]]
    count = len(packing.radii)
    lith_sum = comm.allreduce(np.bincount(particle, weights=lithiated, minlength=count),
                              op=MPI.SUM)
    vol_sum = comm.allreduce(np.bincount(particle, weights=volume, minlength=count), op=MPI.SUM)
    mine = np.flatnonzero(vol_sum > 0)
    return mine, np.clip(lith_sum[mine] / vol_sum[mine], 0.0, 1.0)


def shell_depths_nm(problem, tagged: TaggedMesh, threshold: float) -> ShellDepths:
    """Volume-equivalent shell depth of every particle (§9), per host material, on every rank.

    V_lith (θ > threshold) over the meshed volume V_p of the particle's part of the host
    (all its periodic pieces) is the share of a spherical layer under its outer surface
    (`shell_depth`): on a bare sphere δ = R (1 − (1 − V_lith/V_p)^(1/3)); on a coated one
    the layer lies in the coating, so δ ≤ its thickness.
    """
    depth, full = {}, {}
    for host in problem.hosts:
        particles, fraction = _lithiated_fraction(host, tagged, threshold, problem.comm)
        outer, inner = part_radii(problem.case, tagged.particles, host.name)
        outer, inner = outer[particles], inner[particles]
        depth[host.name] = 1e3 * shell_depth(fraction, outer, inner)
        full[host.name] = 1e3 * (outer - inner)
    return ShellDepths(depth, full)


def _shell_family(case) -> tuple[str, float | None]:
    """The host whose shells the summary reports and its coating thickness (µm, None when
    bare): the first particle family's coating if it has one (a coated particle takes Li in
    its coating, e.g. Ag on inert SiO2), else its material."""
    geometry = case.geometry
    if geometry.kind == "single_particle":
        return geometry.single_particle.material, None
    family = geometry.scaffold.particles[0]
    if family.coating is None:
        return family.material, None
    return family.coating.material, family.coating.thickness


def _mean_std(values: np.ndarray) -> tuple[float | None, float | None]:
    return (float(values.mean()), float(values.std())) if values.size else (None, None)


def summarize_shell_depths(depths: ShellDepths, case) -> dict[str, object]:
    """Shell depth over the lithiated particles of the host of the first particle family
    (its coating on coated particles), in nm and as a fraction of the depth at which each is
    lithiated through (`ShellDepths.full_nm`: the coating thickness, or the radius of a bare
    particle; 1 = lithiated through)."""
    material, coating = _shell_family(case)
    values = depths.depth_nm.get(material, np.array([]))
    lithiated = values > 0.0
    relative = values[lithiated] / depths.full_nm.get(material, values)[lithiated]
    depth_mean, depth_std = _mean_std(values[lithiated])
    fraction_mean, fraction_std = _mean_std(relative)
    return {
        "shell_depth_material": material,
        "shell_depth_nm_mean": depth_mean,
        "shell_depth_nm_std": depth_std,
        "shell_depth_fraction_mean": fraction_mean,
        "shell_depth_fraction_std": fraction_std,
        "coating_thickness_nm": 1e3 * coating if coating is not None else None,
        "n_particles_lithiated": int(lithiated.sum()),
        "n_particles": int(values.size),
        "shell_depth_nm_by_material": {name: float(d[d > 0].mean()) if np.any(d > 0) else None
                                       for name, d in depths.depth_nm.items()},
    }
