"""gmsh (OpenCASCADE) geometry of a packed scaffold under solid-electrolyte layers.

The scaffold box [0,lx]x[0,ly]x[0,height], the SE layer boxes stacked above it and all
spheres of the packing (periodic copies included) are fragmented in one `occ.fragment`
call, so the mesh is conforming across every interface. Pieces outside the boxes are
deleted: spheres are thereby clipped at the lateral faces and at z=0, while the part of
a sphere above z=height stays particle inside the first SE layer (curved SE-particle
contact caps). The plane z=height also splits those particles; both pieces belong to the
same region. Overlap lenses are cut from the sphere of higher parent index before the
fragment, so particles are disjoint and no thin lens volume has to be meshed.

Physical groups (names -> tags) are described in `docs/meshes.md`.
"""

from __future__ import annotations

import gmsh
import numpy as np
from scipy.spatial.transform import Rotation

from meshes.packing import Packing
from meshes.spec import ScaffoldSpec

ROLE_LETTER = {"host": "H", "conductor": "C", "insulator": "N"}

# A region label: ("particle", role, material), ("pore",) or ("electrolyte", i, material).
Label = tuple


def region_name(label: Label) -> str:
    if label[0] == "particle":
        return f"{label[1]}:{label[2]}"
    if label[0] == "electrolyte":
        return f"electrolyte:{label[1]}:{label[2]}"
    return "pore"


def interface_name(a: Label, b: Label) -> str | None:
    """Facet group name between two different regions (None: same region, no tag)."""
    if region_name(a) == region_name(b):
        return None
    a, b = sorted((a, b), key=_order)
    if a[0] == "electrolyte" and b[0] == "electrolyte":
        return f"EE:{min(a[1], b[1])}"
    if a[0] == "electrolyte":
        return "EP" if b[0] == "pore" else f"E{ROLE_LETTER[b[1]]}:{b[2]}"
    if b[0] == "pore":
        return f"{ROLE_LETTER[a[1]]}P:{a[2]}"
    return f"{ROLE_LETTER[a[1]]}{ROLE_LETTER[b[1]]}:{a[2]}|{b[2]}"


def _order(label: Label) -> tuple:
    """Sort key: electrolyte (by layer), particles (host, conductor, insulator; by name), pore."""
    if label[0] == "electrolyte":
        return (0, label[1], "")
    if label[0] == "particle":
        return (1, list(ROLE_LETTER).index(label[1]), label[2])
    return (2, 0, "")


def build_scaffold(spec: ScaffoldSpec, packing: Packing) -> tuple[dict[str, int], dict[str, int]]:
    """Build the geometry, physical groups and size field in the current gmsh model.

    Returns (regions, interfaces): physical name -> tag for cells and facets.
    """
    occ = gmsh.model.occ
    boxes = [occ.addBox(0, 0, 0, spec.lx, spec.ly, spec.height)]
    z = spec.height
    for layer in spec.layers:
        boxes.append(occ.addBox(0, 0, z, spec.lx, spec.ly, layer.thickness))
        z += layer.thickness
    # disjoint particles: each overlap lens stays with the sphere of lower parent index, so
    # no thin lens becomes a volume of its own
    neighbours: list[list[int]] = [[] for _ in packing.radii]
    for a, b in packing.overlaps()[0]:
        neighbours[a].append(b)
        neighbours[b].append(a)
    spheres = []
    for i, (c, r) in enumerate(zip(packing.centres, packing.radii, strict=True)):
        rims = _rims(i, packing, neighbours[i], spec)
        frame = _seam_frame(*rims, np.random.default_rng([spec.seed, i]))
        tag = occ.addSphere(*c, r)
        rotvec = Rotation.from_matrix(frame).as_rotvec()
        if np.linalg.norm(rotvec) > 0:  # a rotation (not a general transform) keeps it a sphere
            occ.rotate([(3, tag)], *c, *rotvec, np.linalg.norm(rotvec))
        spheres.append(tag)
    particles: list[list[int]] = [[s] for s in spheres]
    for j, near in enumerate(neighbours):
        lower = [(3, spheres[i]) for i in near if packing.parent[i] < packing.parent[j]]
        if lower:
            out, _ = occ.cut([(3, spheres[j])], lower, removeTool=False)
            particles[j] = [v for _, v in out]
    tools = [(3, v) for vols in particles for v in vols]
    owner = [i for i, vols in enumerate(particles) for _ in vols]
    _, pieces = occ.fragment([(3, b) for b in boxes], tools)
    occ.synchronize()

    # label each piece by the box and the particle that contain it
    in_box: dict[int, int] = {}
    in_sphere: dict[int, int] = {}
    for k, out in enumerate(pieces):
        for _, v in out:
            if k < len(boxes):
                in_box[v] = k
            else:
                in_sphere[v] = owner[k - len(boxes)]
    outside = [(3, v) for v in in_sphere if v not in in_box]
    occ.remove(outside, recursive=True)
    occ.synchronize()

    labels: dict[int, Label] = {}
    for v, k in in_box.items():
        if v in in_sphere:
            fam = spec.families[packing.family[in_sphere[v]]]
            labels[v] = ("particle", fam.role, fam.material)
        elif k == 0:
            labels[v] = ("pore",)
        else:
            labels[v] = ("electrolyte", k - 1, spec.layers[k - 1].material)

    # regions in a fixed order: particle materials by family, pore, SE layers bottom first
    region_order = [("particle", f.role, f.material) for f in spec.families] + [("pore",)]
    region_order += [("electrolyte", i, layer.material) for i, layer in enumerate(spec.layers)]
    regions: dict[str, int] = {}
    for label in region_order:
        name = region_name(label)
        vols = sorted(v for v, lab in labels.items() if region_name(lab) == name)
        if vols and name not in regions:
            regions[name] = gmsh.model.addPhysicalGroup(3, vols, len(regions) + 1, name=name)

    facets: dict[str, list[int]] = {}
    eps = 1e-6 * max(spec.lx, spec.ly, spec.top)
    for _, s in gmsh.model.getEntities(2):
        up, _ = gmsh.model.getAdjacencies(2, s)
        if len(up) == 2:
            name = interface_name(labels[up[0]], labels[up[1]])
        else:
            name = _boundary_name(s, spec, eps)
        if name is not None:
            facets.setdefault(name, []).append(s)
    interfaces: dict[str, int] = {}
    for name in ["bottom", "top", "lateral", *sorted(set(facets) - {"bottom", "top", "lateral"})]:
        tag = len(regions) + len(interfaces) + 1
        interfaces[name] = gmsh.model.addPhysicalGroup(2, facets[name], tag, name=name)

    surfaces = [s for _, s in gmsh.model.getEntities(2) if gmsh.model.getType(2, s) == "Sphere"]
    _size_field(surfaces, spec.size_surface, spec.size_bulk, float(packing.radii.max()))
    return regions, interfaces


def _rims(
    i: int, packing: Packing, neighbours: list[int], spec: ScaffoldSpec
) -> tuple[np.ndarray, np.ndarray]:
    """Circles where sphere i meets its neighbours and the box planes, as unit axis n_k
    and angular radius beta_k (points x of the unit sphere with n_k . x = cos beta_k)."""
    c, r = packing.centres[i], packing.radii[i]
    axes, cosines = [], []
    for j in neighbours:
        dv = packing.centres[j] - c
        d = np.linalg.norm(dv)
        axes.append(dv / d)
        cosines.append((d**2 + r**2 - packing.radii[j] ** 2) / (2 * d * r))
    planes = [(0, 0.0), (0, spec.lx), (1, 0.0), (1, spec.ly), (2, 0.0), (2, spec.height)]
    for k, at in planes:
        if abs(c[k] - at) < r:
            n = np.zeros(3)
            n[k] = np.sign(at - c[k]) or 1.0
            axes.append(n)
            cosines.append(abs(at - c[k]) / r)
    return np.array(axes).reshape(-1, 3), np.arccos(np.clip(cosines, -1, 1))


def _seam_frame(
    axes: np.ndarray, beta: np.ndarray, rng: np.random.Generator, tries: int = 64
) -> np.ndarray:
    """Rotation for an OpenCASCADE sphere whose poles and seam keep clear of its rims.

    An OCC sphere has poles on its z axis and a seam (a meridian through +x); where they
    come close to a contact circle or a box plane, the boolean operations leave tiny edges
    and the mesh gets needle elements. Of `tries` random frames, take the one whose poles
    are farthest from every rim, whose seam meets no two rims at one place and whose
    great circle is nowhere tangent to a rim. Columns: images of x, y, z.
    """
    if len(axes) == 0:
        return np.eye(3)
    pole = rng.normal(size=(tries, 3))
    pole /= np.linalg.norm(pole, axis=1, keepdims=True)
    seam = rng.normal(size=(tries, 3))
    seam -= np.sum(seam * pole, axis=1, keepdims=True) * pole
    seam /= np.linalg.norm(seam, axis=1, keepdims=True)
    t = np.linspace(0, np.pi, 61)[None, :, None]
    points = np.cos(t) * pole[:, None, :] + np.sin(t) * seam[:, None, :]  # (tries, 61, 3)
    dist = np.abs(np.arccos(np.clip(points @ axes.T, -1, 1)) - beta)  # from each rim
    pole_margin = np.minimum(dist[:, 0], dist[:, -1]).min(axis=1)
    junction_margin = np.sort(dist, axis=2)[:, :, 1].min(axis=1) if len(axes) > 1 else np.inf
    normal = np.cross(pole, seam)
    tangency_margin = np.abs(beta - np.abs(np.arcsin(np.clip(normal @ axes.T, -1, 1)))).min(axis=1)
    best = int(np.argmax(np.minimum(np.minimum(pole_margin, junction_margin), tangency_margin)))
    return np.column_stack([seam[best], np.cross(pole[best], seam[best]), pole[best]])


def _boundary_name(surface: int, spec: ScaffoldSpec, eps: float) -> str:
    x0, y0, z0, x1, y1, z1 = gmsh.model.getBoundingBox(2, surface)
    if z1 - z0 < eps and abs(z0) < eps:
        return "bottom"
    if z1 - z0 < eps and abs(z0 - spec.top) < eps:
        return "top"
    if (x1 - x0 < eps and min(abs(x0), abs(x0 - spec.lx)) < eps) or (
        y1 - y0 < eps and min(abs(y0), abs(y0 - spec.ly)) < eps
    ):
        return "lateral"
    raise RuntimeError(f"gmsh surface {surface} lies on the boundary but not on a box face")


def _size_field(surfaces: list[int], size_surface: float, size_bulk: float, r_max: float) -> None:
    """Element size size_surface on the particle surfaces, growing linearly to size_bulk
    at a distance 2 x size_bulk from them."""
    field = gmsh.model.mesh.field
    distance = field.add("Distance")
    field.setNumbers(distance, "SurfacesList", surfaces)
    # sample points per parametric direction of each surface: a few per surface element
    field.setNumber(distance, "Sampling", int(np.clip(2 * np.pi * r_max / size_surface, 10, 100)))
    threshold = field.add("Threshold")
    field.setNumber(threshold, "InField", distance)
    field.setNumber(threshold, "SizeMin", size_surface)
    field.setNumber(threshold, "SizeMax", size_bulk)
    field.setNumber(threshold, "DistMin", 0.0)
    field.setNumber(threshold, "DistMax", 2 * size_bulk)
    field.setAsBackgroundMesh(threshold)
