"""gmsh (OpenCASCADE) geometry of a packed scaffold under solid-electrolyte layers.

The scaffold box [0,lx]x[0,ly]x[0,height], the SE layer boxes stacked above it and all
spheres of the packing (periodic copies included) are fragmented in one `occ.fragment`
call, so the mesh is conforming across every interface. Pieces outside the boxes are
deleted: spheres are thereby clipped at the lateral faces and at z=0, while the part of
a sphere above z=height stays particle inside the first SE layer (curved SE-particle
contact caps). The plane z=height also splits those particles; both pieces belong to the
same region. Overlap lenses are cut from the sphere of higher parent index before the
fragment, so particles are disjoint and no thin lens volume has to be meshed.

Coated particles (a family with a `coating`): the sphere of radius r is the shell (region
of the coating material), a concentric core sphere of radius r - t (region of the family's
material) joins the same fragment, which splits the particle into core and shell with a
conforming core-shell surface. The packing keeps cores off every other sphere and the
floor, so a core touches only its own shell (and the lateral faces where it is clipped).

Physical groups (names -> tags) are described in `docs/meshes.md`.
"""

from __future__ import annotations

import logging

import gmsh
import numpy as np
from scipy.spatial.transform import Rotation

from meshes.packing import Packing
from meshes.spec import ScaffoldSpec

log = logging.getLogger("constrict.meshes")

ROLE_LETTER = {"host": "H", "conductor": "C", "insulator": "N"}
COATING_SIZE = 2.0  # element size on coated particles: at most this x the coating thickness
# gmsh Mesh.Algorithm for the fine surfaces of coated particles, tried in turn until the
# volume mesh succeeds (meshes.cache.write_mesh): Delaunay, MeshAdapt, Frontal-Delaunay.
# Each of them folded some small core cap cut by a box plane onto the plane (HXT then
# fails), each in other cases. Other surfaces keep gmsh's default.
COATED_ALGORITHMS = (5, 1, 6)

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


def build_scaffold(
    spec: ScaffoldSpec, packing: Packing
) -> tuple[dict[str, int], dict[str, int], list[int]]:
    """Build the geometry, physical groups and size field in the current gmsh model.

    Returns (regions, interfaces, coated): physical name -> tag for cells and facets, and
    the sphere surfaces of coated particles (their 2D algorithm: COATED_ALGORITHMS).
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
    cores: dict[int, int] = {}  # sphere index -> core volume (coated particles)
    for i, (c, r) in enumerate(zip(packing.centres, packing.radii, strict=True)):
        rims = _rims(i, packing, neighbours[i], spec)
        spheres.append(_sphere(c, r, _seam_frame(*rims, np.random.default_rng([spec.seed, i]))))
        t = spec.families[packing.family[i]].thickness
        if t > 0:  # the core meets only box planes (packing): a frame of its own
            rims = _rims(i, packing, [], spec, r - t)
            frame = _seam_frame(*rims, np.random.default_rng([spec.seed, i, 1]))
            cores[i] = _sphere(c, r - t, frame)
    particles: list[list[int]] = [[s] for s in spheres]
    for j, near in enumerate(neighbours):
        lower = [(3, spheres[i]) for i in near if packing.parent[i] < packing.parent[j]]
        if lower:
            out, _ = occ.cut([(3, spheres[j])], lower, removeTool=False)
            particles[j] = [v for _, v in out]
    tools = [(3, v) for vols in particles for v in vols]
    owner = [i for i, vols in enumerate(particles) for _ in vols]
    core_owner = sorted(cores)
    tools += [(3, cores[i]) for i in core_owner]
    _, pieces = occ.fragment([(3, b) for b in boxes], tools)
    occ.synchronize()

    # label each piece by the box, the particle and the core that contain it
    in_box: dict[int, int] = {}
    in_sphere: dict[int, int] = {}
    in_core: dict[int, int] = {}
    for k, out in enumerate(pieces):
        for _, v in out:
            if k < len(boxes):
                in_box[v] = k
            elif k < len(boxes) + len(owner):
                in_sphere[v] = owner[k - len(boxes)]
            else:
                in_core[v] = core_owner[k - len(boxes) - len(owner)]
    stray = [v for v, i in in_core.items() if in_sphere.get(v) != i]
    if stray:  # the packing keeps every core inside its own particle
        raise RuntimeError(f"core volumes {stray} stick out of their particles")
    outside = [(3, v) for v in in_sphere if v not in in_box]
    occ.remove(outside, recursive=True)
    occ.synchronize()

    labels: dict[int, Label] = {}
    for v, k in in_box.items():
        if v in in_sphere:
            fam = spec.families[packing.family[in_sphere[v]]]
            if fam.coating is not None and v not in in_core:
                labels[v] = ("particle", fam.coating.role, fam.coating.material)
            else:
                labels[v] = ("particle", fam.role, fam.material)
        elif k == 0:
            labels[v] = ("pore",)
        else:
            labels[v] = ("electrolyte", k - 1, spec.layers[k - 1].material)

    # regions in a fixed order: particle materials by family (coating, then core), pore,
    # SE layers bottom first
    region_order = [
        label
        for f in spec.families
        for label in (
            [("particle", f.coating.role, f.coating.material)] if f.coating is not None else []
        )
        + [("particle", f.role, f.material)]
    ] + [("pore",)]
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

    # element size: size_surface on sphere surfaces, finer on coated particles (outer and
    # core surfaces) where the coating is thin
    particle_size = [
        min(spec.size_surface, COATING_SIZE * f.thickness) if f.coating else spec.size_surface
        for f in (spec.families[k] for k in packing.family)
    ]
    for f in spec.families:
        if f.coating is not None and COATING_SIZE * f.thickness < spec.size_surface:
            log.info(
                "%s particles: coating %g um thin, surfaces meshed at %g um (size_surface %g um)",
                f.material,
                f.thickness,
                COATING_SIZE * f.thickness,
                spec.size_surface,
            )
    groups: dict[float, list[int]] = {}
    coated = []
    for _, s in gmsh.model.getEntities(2):
        if gmsh.model.getType(2, s) != "Sphere":
            continue
        up = gmsh.model.getAdjacencies(2, s)[0]
        size = min(
            (particle_size[in_sphere[v]] for v in up if v in in_sphere), default=spec.size_surface
        )
        groups.setdefault(size, []).append(s)
        if any(spec.families[packing.family[in_sphere[v]]].coating for v in up if v in in_sphere):
            coated.append(s)
    _size_field(groups, spec.size_bulk, float(packing.radii.max()))
    return regions, interfaces, coated


def _sphere(c: np.ndarray, r: float, frame: np.ndarray) -> int:
    """An OpenCASCADE sphere with its poles and seam turned by `frame` (see _seam_frame)."""
    tag = gmsh.model.occ.addSphere(*c, r)
    rotvec = Rotation.from_matrix(frame).as_rotvec()
    if np.linalg.norm(rotvec) > 0:  # a rotation (not a general transform) keeps it a sphere
        gmsh.model.occ.rotate([(3, tag)], *c, *rotvec, np.linalg.norm(rotvec))
    return tag


def _rims(
    i: int, packing: Packing, neighbours: list[int], spec: ScaffoldSpec, r: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Circles where sphere i (or a concentric sphere of radius r) meets its neighbours and
    the box planes, as unit axis n_k and angular radius beta_k (points x of the unit sphere
    with n_k . x = cos beta_k)."""
    c = packing.centres[i]
    r = packing.radii[i] if r is None else r
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


def _size_field(groups: dict[float, list[int]], size_bulk: float, r_max: float) -> None:
    """Element size s on the particle surfaces of each group {s: surfaces}, growing
    linearly to size_bulk at a distance 2 x size_bulk from them (the smallest wins)."""
    field = gmsh.model.mesh.field
    thresholds = []
    for size, surfaces in sorted(groups.items(), reverse=True):
        distance = field.add("Distance")
        field.setNumbers(distance, "SurfacesList", surfaces)
        # sample points per parametric direction of each surface: a few per surface element
        field.setNumber(distance, "Sampling", int(np.clip(2 * np.pi * r_max / size, 10, 100)))
        threshold = field.add("Threshold")
        field.setNumber(threshold, "InField", distance)
        field.setNumber(threshold, "SizeMin", size)
        field.setNumber(threshold, "SizeMax", size_bulk)
        field.setNumber(threshold, "DistMin", 0.0)
        field.setNumber(threshold, "DistMax", 2 * size_bulk)
        thresholds.append(threshold)
    if len(thresholds) == 1:
        field.setAsBackgroundMesh(thresholds[0])
    elif thresholds:
        smallest = field.add("Min")
        field.setNumbers(smallest, "FieldsList", thresholds)
        field.setAsBackgroundMesh(smallest)
