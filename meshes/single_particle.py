"""gmsh geometry of one sphere at the origin, or its octant x, y, z >= 0."""

from __future__ import annotations

import gmsh
import numpy as np

from meshes.packing import Packing
from meshes.spec import SingleParticleSpec


def build_single_particle(spec: SingleParticleSpec) -> tuple[dict[str, int], dict[str, int]]:
    """Build the geometry, physical groups and size field in the current gmsh model.

    Cell group "host:<material>"; facet groups "surface" and, for the octant,
    "symmetry_x", "symmetry_y", "symmetry_z" (the planes x=0, y=0, z=0).
    """
    occ = gmsh.model.occ
    R = spec.radius
    volume = occ.addSphere(0, 0, 0, R)
    if spec.octant:
        (_, volume), *_ = occ.intersect([(3, volume)], [(3, occ.addBox(0, 0, 0, R, R, R))])[0]
    occ.synchronize()
    name = f"host:{spec.material}"
    regions = {name: gmsh.model.addPhysicalGroup(3, [volume], 1, name=name)}

    facets: dict[str, list[int]] = {}
    for _, s in gmsh.model.getBoundary([(3, volume)], oriented=False):
        if gmsh.model.getType(2, s) == "Sphere":
            name = "surface"
        else:
            x0, y0, z0, x1, y1, z1 = gmsh.model.getBoundingBox(2, s)
            name = "symmetry_" + "xyz"[int(np.argmin([x1 - x0, y1 - y0, z1 - z0]))]
        facets.setdefault(name, []).append(s)
    interfaces = {}
    for name in ["surface", "symmetry_x", "symmetry_y", "symmetry_z"]:
        if name in facets:
            tag = len(regions) + len(interfaces) + 1
            interfaces[name] = gmsh.model.addPhysicalGroup(2, facets[name], tag, name=name)

    # size varies linearly with the distance from the centre
    field = gmsh.model.mesh.field
    size = field.add("MathEval")
    rc, rs = spec.size_center, spec.size_surface
    field.setString(size, "F", f"{rc} + ({rs} - {rc}) * Sqrt(x*x + y*y + z*z) / {R}")
    field.setAsBackgroundMesh(size)
    return regions, interfaces


def single_particle_packing(spec: SingleParticleSpec) -> Packing:
    """The one particle as a Packing, with the box that holds the meshed body."""
    R = spec.radius
    lo = 0.0 if spec.octant else -R
    return Packing(
        centres=np.zeros((1, 3)),
        radii=np.array([R]),
        family=np.zeros(1, int),
        parent=np.zeros(1, int),
        box_lo=(lo, lo, lo),
        box_hi=(R, R, R),
        n_families=1,
    )
