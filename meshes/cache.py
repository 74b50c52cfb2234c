"""Mesh cache: generate a .msh once (rank 0, gmsh), read it distributed on every rank.

A mesh is named by a hash of its spec and MESH_FORMAT_VERSION; a JSON sidecar holds the
spec, the packing and the physical-name -> tag maps, so a cached mesh needs no
re-packing. Both files are written to a temporary name and renamed, the .msh last, so
an interrupted run leaves no partial cache entry.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from mpi4py import MPI

import dolfinx
import gmsh
import numpy as np
from dolfinx.io.gmsh import model_to_mesh
from scipy.spatial import cKDTree

from meshes.microstructure import COATED_ALGORITHMS, build_scaffold
from meshes.packing import Packing, pack
from meshes.single_particle import build_single_particle, single_particle_packing
from meshes.spec import ROLES, ParticleFamily, ScaffoldSpec, SingleParticleSpec

MESH_FORMAT_VERSION = 1

log = logging.getLogger("constrict.meshes")

Spec = ScaffoldSpec | SingleParticleSpec


@dataclasses.dataclass
class TaggedMesh:
    """A distributed mesh with its region (cell) and interface (facet) tags.

    particle_of_cell: for each local cell (owned, then ghost, in dolfinx order) the index
    into `particles` of the sphere it belongs to, -1 for pore and SE cells.
    """

    mesh: dolfinx.mesh.Mesh
    cell_tags: dolfinx.mesh.MeshTags
    facet_tags: dolfinx.mesh.MeshTags
    regions: dict[str, int]
    interfaces: dict[str, int]
    particles: Packing | None
    particle_of_cell: np.ndarray
    source: Path


def mesh_path(spec: Spec, cache_dir: Path) -> Path:
    """Cache file of `spec`: <kind>-<sha256 of the spec and format version>.msh."""
    kind = "scaffold" if isinstance(spec, ScaffoldSpec) else "particle"
    fields = dataclasses.asdict(spec)
    for family in fields.get("families", []):
        if family["coating"] is None:  # uncoated families hash as before coatings existed
            del family["coating"]
    payload = {"kind": kind, "version": MESH_FORMAT_VERSION, "spec": fields}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return Path(cache_dir) / f"{kind}-{digest[:20]}.msh"


@contextlib.contextmanager
def _gmsh_session(name: str, terminal: bool) -> Iterator[None]:
    """A fresh gmsh model; gmsh is initialised (and finalised) here unless it already was."""
    owner = not gmsh.isInitialized()
    if owner:
        gmsh.initialize(interruptible=False)
    gmsh.option.setNumber("General.Terminal", int(terminal))
    gmsh.model.add(name)
    try:
        yield
    finally:
        gmsh.model.remove()
        if owner:
            gmsh.finalize()


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class _CoatedMeshError(RuntimeError):
    """gmsh failed on a model with coated surfaces (another 2D algorithm may succeed)."""


def _generate(
    spec: Spec, packing: Packing, path: Path, gmsh_output: bool, algorithm: int, t_pack: float, info
) -> tuple[int, float, float]:
    """Build and mesh the model of `spec` in a gmsh session of its own and write it
    (atomically, sidecar first); the surfaces of coated particles are meshed with gmsh 2D
    `algorithm`. Returns (cells, t_geometry, t_mesh)."""
    start = time.perf_counter()
    with _gmsh_session(path.stem, gmsh_output):
        for option, value in {
            "Mesh.MeshSizeExtendFromBoundary": 0,
            "Mesh.MeshSizeFromPoints": 0,
            "Mesh.MeshSizeFromCurvature": 0,
            "Mesh.ElementOrder": 1,
            # HXT: about twice as fast as the default Delaunay here, with fewer slivers
            "Mesh.Algorithm3D": 10,
            "Mesh.MshFileVersion": 4.1,
        }.items():
            gmsh.option.setNumber(option, value)
        coated: list[int] = []
        if isinstance(spec, ScaffoldSpec):
            regions, interfaces, coated = build_scaffold(spec, packing)
        else:
            regions, interfaces = build_single_particle(spec)
        for surface in coated:
            gmsh.model.mesh.setAlgorithm(2, surface, algorithm)
        t_geo = time.perf_counter() - start
        info("geometry built in %.1f s, meshing", t_geo)
        try:
            gmsh.model.mesh.generate(3)
        except Exception as error:  # gmsh raises plain Exception
            if coated:
                raise _CoatedMeshError() from error
            raise
        n_cells = sum(len(t) for t in gmsh.model.mesh.getElements(3)[1])
        t_mesh = time.perf_counter() - start - t_geo
        sidecar = {
            "format_version": MESH_FORMAT_VERSION,
            "spec_type": type(spec).__name__,
            "spec": dataclasses.asdict(spec),
            "packing": packing.to_dict(),
            "regions": regions,
            "interfaces": interfaces,
            "stats": {"cells": n_cells, "t_packing": t_pack, "t_geometry": t_geo, "t_mesh": t_mesh},
        }
        _write_atomic(path.with_suffix(".json"), lambda p: p.write_text(json.dumps(sidecar)))
        _write_atomic(path, lambda p: gmsh.write(str(p)))
    return n_cells, t_geo, t_mesh


def write_mesh(
    spec: Spec, cache_dir: Path, progress: bool = True, gmsh_output: bool = False
) -> Path:
    """Generate the .msh of `spec` in `cache_dir` unless it is cached; return its path.

    Serial (call it on one rank). gmsh's terminal output is off unless `gmsh_output`.
    """
    info = log.info if progress else log.debug
    path = mesh_path(spec, cache_dir)
    if path.exists() and path.with_suffix(".json").exists():
        info("mesh cache hit: %s", path)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if isinstance(spec, ScaffoldSpec):
        packing = pack(spec)
        info("packed %d spheres (periodic copies included)", len(packing.radii))
    else:
        packing = single_particle_packing(spec)
    t_pack = time.perf_counter() - start
    # a failed gmsh run stays locked ("I'm busy!") until gmsh is finalised: a retry with
    # another 2D algorithm on coated surfaces needs a session of its own
    retries = len(COATED_ALGORITHMS) - 1 if not gmsh.isInitialized() else 0
    for attempt in range(retries + 1):
        try:
            n_cells, t_geo, t_mesh = _generate(
                spec, packing, path, gmsh_output, COATED_ALGORITHMS[attempt], t_pack, info
            )
            break
        except _CoatedMeshError as error:
            if attempt == retries:
                raise error.__cause__ from None
            info(
                "meshing failed (%s); again with 2D algorithm %d on the coated surfaces",
                error.__cause__,
                COATED_ALGORITHMS[attempt + 1],
            )
    info(
        "mesh written: %s (%d cells; packing %.1f s, geometry %.1f s, meshing %.1f s)",
        path,
        n_cells,
        t_pack,
        t_geo,
        t_mesh,
    )
    return path


def _read_msh(path: Path, comm: MPI.Comm) -> dolfinx.io.gmsh.MeshData:
    """dolfinx.io.gmsh.read_from_msh with gmsh kept quiet, and ghost cells across shared
    facets (needed for interior-facet integrals dS on process boundaries)."""
    partitioner = dolfinx.mesh.create_cell_partitioner(dolfinx.mesh.GhostMode.shared_facet, 2)
    if comm.rank == 0:
        with _gmsh_session("read", terminal=False):
            gmsh.merge(str(path))
            return model_to_mesh(gmsh.model, comm, 0, gdim=3, partitioner=partitioner)
    return model_to_mesh(None, comm, 0, gdim=3, partitioner=partitioner)


def _particle_of_cell(
    mesh: dolfinx.mesh.Mesh,
    cell_values: np.ndarray,
    cell_material: dict[int, str],
    packing: Packing,
    particle_parts: list[list[tuple[str, float]]],
) -> np.ndarray:
    """Index of the sphere each local cell lies in: among the spheres with a part of the
    cell's material, the one with the smallest |x - c| - r at the cell midpoint; -1
    elsewhere. particle_parts[i] lists (material, radius) of sphere i's parts: the sphere
    itself, or its coating (radius r) and core (radius r - thickness)."""
    result = np.full(len(cell_values), -1, dtype=np.int64)
    materials = {m for parts in particle_parts for m, _ in parts}
    for material in sorted(materials):
        tags = [tag for tag, m in cell_material.items() if m == material]
        cells = np.flatnonzero(np.isin(cell_values, tags)).astype(np.int32)
        if len(cells) == 0:
            continue
        x = dolfinx.mesh.compute_midpoints(mesh, mesh.topology.dim, cells)
        tree = cKDTree(x)
        depth = np.full(len(cells), np.inf)
        spheres = [
            (i, r) for i, parts in enumerate(particle_parts) for m, r in parts if m == material
        ]
        for i, r in spheres:
            # a midpoint lies in its (faceted, hence inscribed) sphere: search within r
            c = packing.centres[i]
            hits = np.asarray(tree.query_ball_point(c, 1.001 * r), dtype=np.int64)
            d = np.linalg.norm(x[hits] - c, axis=1) - r
            better = d < depth[hits]
            depth[hits[better]] = d[better]
            result[cells[hits[better]]] = i
    return result


def build_mesh(spec: Spec, comm: MPI.Comm, cache_dir: Path, progress: bool = True) -> TaggedMesh:
    """Generate (rank 0) or reuse the cached mesh of `spec` and read it distributed on `comm`."""
    info = log.info if progress and comm.rank == 0 else log.debug
    path, sidecar, error = None, None, None
    if comm.rank == 0:
        try:
            path = write_mesh(spec, Path(cache_dir), progress=progress)
            sidecar = json.loads(path.with_suffix(".json").read_text())
        except Exception as e:  # noqa: BLE001  (raised on every rank below)
            error = e
    message = None if error is None else repr(error)
    path, sidecar, message = comm.bcast((path, sidecar, message), root=0)
    if error is not None:
        raise error
    if message is not None:
        raise RuntimeError(f"mesh generation failed on rank 0: {message}")
    start = time.perf_counter()
    data = _read_msh(path, comm)
    regions, interfaces = sidecar["regions"], sidecar["interfaces"]
    packing = Packing.from_dict(sidecar["packing"])
    cell_material = {
        tag: name.split(":")[-1] for name, tag in regions.items() if name.split(":")[0] in ROLES
    }
    if isinstance(spec, ScaffoldSpec):
        particle_parts = [
            _parts(spec.families[k], r) for k, r in zip(packing.family, packing.radii, strict=True)
        ]
    else:
        particle_parts = [[(spec.material, float(packing.radii[0]))]]
    cell_values = _local_cell_values(data.mesh, data.cell_tags)
    particle_of_cell = _particle_of_cell(
        data.mesh, cell_values, cell_material, packing, particle_parts
    )
    info(
        "mesh read on %d rank(s) in %.1f s: %d cells",
        comm.size,
        time.perf_counter() - start,
        data.mesh.topology.index_map(3).size_global,
    )
    return TaggedMesh(
        mesh=data.mesh,
        cell_tags=data.cell_tags,
        facet_tags=data.facet_tags,
        regions=regions,
        interfaces=interfaces,
        particles=packing,
        particle_of_cell=particle_of_cell,
        source=path,
    )


def _parts(family: ParticleFamily, r: float) -> list[tuple[str, float]]:
    """(material, outer radius) of the parts of a sphere of `family` with radius r."""
    if family.coating is None:
        return [(family.material, float(r))]
    return [(family.coating.material, float(r)), (family.material, float(r) - family.thickness)]


def _local_cell_values(mesh: dolfinx.mesh.Mesh, cell_tags: dolfinx.mesh.MeshTags) -> np.ndarray:
    """Cell tag of every local cell, owned and ghost."""
    imap = mesh.topology.index_map(mesh.topology.dim)
    values = np.full(imap.size_local + imap.num_ghosts, -1, dtype=np.int32)
    values[cell_tags.indices] = cell_tags.values
    return values
