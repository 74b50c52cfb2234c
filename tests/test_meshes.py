"""Serial tests of meshes/: packing, scaffold and single-particle meshes, the cache."""

from __future__ import annotations

import dataclasses
import json

from mpi4py import MPI

import dolfinx
import numpy as np
import pytest
import ufl

from meshes import (
    Coating,
    ElectrolyteLayer,
    ParticleFamily,
    ScaffoldSpec,
    SingleParticleSpec,
    build_mesh,
    pack,
)
from meshes.microstructure import interface_name

SMALL = ScaffoldSpec(
    lx=3.0,
    ly=3.0,
    height=3.0,
    families=(
        ParticleFamily("Si", "host", radius_mean=0.5, radius_std=0.05, volume_share=0.5),
        ParticleFamily("graphite", "host", radius_mean=0.5, radius_std=0.05, volume_share=0.5),
    ),
    solid_fraction=0.5,
    overlap=0.05,
    layers=(ElectrolyteLayer("LPSCl", 1.0), ElectrolyteLayer("LGPS", 1.0)),
    size_bulk=0.5,
    size_surface=0.2,
    seed=1,
)
REGIONS = {"host:Si", "host:graphite", "pore", "electrolyte:0:LPSCl", "electrolyte:1:LGPS"}
EXTERIOR = {"bottom", "top", "lateral"}
INTERIOR = {"EE:0", "EH:Si", "EH:graphite", "EP", "HP:Si", "HP:graphite", "HH:Si|graphite"}


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("mesh-cache")


@pytest.fixture(scope="session")
def packing():
    return pack(SMALL)


@pytest.fixture(scope="session")
def scaffold(cache_dir):
    return build_mesh(SMALL, MPI.COMM_SELF, cache_dir, progress=False)


def measure(tm, kind: str, tag: int) -> float:
    m = ufl.Measure(kind, tm.mesh, subdomain_data=tm.facet_tags if kind != "dx" else tm.cell_tags)
    one = dolfinx.fem.Constant(tm.mesh, 1.0)
    return dolfinx.fem.assemble_scalar(dolfinx.fem.form(one * m(tag)))


# -- packing ------------------------------------------------------------------------


def test_packing_is_reproducible(packing):
    again = pack(SMALL)
    for name in ("centres", "radii", "family", "parent"):
        np.testing.assert_array_equal(getattr(packing, name), getattr(again, name))
    other = pack(dataclasses.replace(SMALL, seed=2))
    same = other.radii.shape == packing.radii.shape and np.allclose(other.centres, packing.centres)
    assert not same


def test_packing_fraction_and_shares(packing):
    assert packing.volume_fraction_in_box() == pytest.approx(SMALL.solid_fraction, abs=0.02)
    np.testing.assert_allclose(packing.volume_shares(), [0.5, 0.5], atol=0.05)


def test_packing_contacts_are_pressed_faces(packing):
    pairs, h = packing.overlaps()
    assert len(pairs) > len(packing.radii) / 2, "too few contacts"
    rmin = packing.radii[pairs].min(axis=1)
    assert np.all(h <= SMALL.overlap * rmin + 1e-9)
    assert np.all(h >= 0.25 * SMALL.overlap * rmin), "near-tangent contact"
    # copies of one original are the same sphere shifted by the box period
    for i in np.flatnonzero(packing.parent != np.arange(len(packing.radii))):
        shift = packing.centres[i] - packing.centres[packing.parent[i]]
        np.testing.assert_allclose(np.abs(shift[:2]) % SMALL.lx, 0.0, atol=1e-12)
        assert shift[2] == 0


def test_packing_refuses_unreachable_fraction():
    with pytest.raises(ValueError, match="not reachable"):
        pack(dataclasses.replace(SMALL, solid_fraction=0.65))
    with pytest.raises(ValueError, match="not reachable"):
        pack(dataclasses.replace(SMALL, solid_fraction=0.59), max_rounds=2)


def test_spec_checks():
    with pytest.raises(ValueError, match="volume shares"):
        dataclasses.replace(SMALL, families=SMALL.families[:1])
    with pytest.raises(ValueError, match="role"):
        ParticleFamily("Si", "anode", 0.5, 0.0, 1.0)
    with pytest.raises(ValueError, match="largest particle radius"):
        dataclasses.replace(SMALL, lx=1.5)


def test_interface_names():
    si, cu = ("particle", "host", "Si"), ("particle", "conductor", "Cu")
    g, al = ("particle", "host", "graphite"), ("particle", "insulator", "Al2O3")
    se0, se1, pore = ("electrolyte", 0, "LPSCl"), ("electrolyte", 1, "LGPS"), ("pore",)
    assert interface_name(cu, si) == "HC:Si|Cu"
    assert interface_name(g, si) == "HH:Si|graphite"
    assert interface_name(al, se0) == "EN:Al2O3"
    assert interface_name(pore, se0) == "EP"
    assert interface_name(pore, al) == "NP:Al2O3"
    assert interface_name(se1, se0) == "EE:0"
    assert interface_name(si, si) is None


# -- scaffold mesh ------------------------------------------------------------------


def test_scaffold_tags(scaffold):
    assert set(scaffold.regions) == REGIONS
    assert set(scaffold.interfaces) == EXTERIOR | INTERIOR
    assert len(set(scaffold.regions.values()) | set(scaffold.interfaces.values())) == len(
        REGIONS | EXTERIOR | INTERIOR
    )
    for name, tag in scaffold.regions.items():
        assert measure(scaffold, "dx", tag) > 0, name
    for name, tag in scaffold.interfaces.items():
        outer, inner = measure(scaffold, "ds", tag), measure(scaffold, "dS", tag)
        assert (outer > 0 and inner == 0) if name in EXTERIOR else (inner > 0 and outer == 0), name
    lx, ly, top = SMALL.lx, SMALL.ly, SMALL.top
    tags = scaffold.interfaces
    assert measure(scaffold, "ds", tags["bottom"]) == pytest.approx(lx * ly)
    assert measure(scaffold, "ds", tags["top"]) == pytest.approx(lx * ly)
    assert measure(scaffold, "ds", tags["lateral"]) == pytest.approx(2 * (lx + ly) * top)
    assert measure(scaffold, "dS", tags["EE:0"]) == pytest.approx(lx * ly)


def test_scaffold_volumes(scaffold):
    mesh = scaffold.mesh
    total = sum(measure(scaffold, "dx", tag) for tag in scaffold.regions.values())
    assert total == pytest.approx(SMALL.lx * SMALL.ly * SMALL.top, rel=1e-6)
    # the plane z=height splits particles, so the part inside the box is exact in the mesh
    below = ufl.conditional(ufl.lt(ufl.SpatialCoordinate(mesh)[2], SMALL.height), 1.0, 0.0)
    dx = ufl.Measure("dx", mesh, subdomain_data=scaffold.cell_tags)
    solid = sum(
        dolfinx.fem.assemble_scalar(dolfinx.fem.form(below * dx(scaffold.regions[name])))
        for name in ("host:Si", "host:graphite")
    )
    box = SMALL.lx * SMALL.ly * SMALL.height
    assert solid / box == pytest.approx(scaffold.particles.volume_fraction_in_box(), abs=0.03)


def test_particle_of_cell(scaffold):
    values = np.full(len(scaffold.particle_of_cell), -1)
    values[scaffold.cell_tags.indices] = scaffold.cell_tags.values
    material = {tag: name[5:] for name, tag in scaffold.regions.items() if name.startswith("host:")}
    in_particle = np.isin(values, list(material))
    assert np.all(scaffold.particle_of_cell[~in_particle] == -1)
    owners = scaffold.particle_of_cell[in_particle]
    assert np.all(owners >= 0)
    families = [f.material for f in SMALL.families]
    got = [families[scaffold.particles.family[p]] for p in owners]
    assert got == [material[v] for v in values[in_particle]]


# -- single particle ----------------------------------------------------------------


@pytest.mark.parametrize("octant", [False, True])
def test_single_particle(cache_dir, octant):
    R = 2.0
    spec = SingleParticleSpec("Si", R, octant, size_surface=0.2, size_center=0.5)
    tm = build_mesh(spec, MPI.COMM_SELF, cache_dir, progress=False)
    share = 1 / 8 if octant else 1.0
    assert tm.regions == {"host:Si": 1}
    assert measure(tm, "dx", 1) == pytest.approx(share * 4 / 3 * np.pi * R**3, rel=0.01)
    area = measure(tm, "ds", tm.interfaces["surface"])
    assert area == pytest.approx(share * 4 * np.pi * R**2, rel=0.01)
    if octant:
        for axis in "xyz":
            area = measure(tm, "ds", tm.interfaces[f"symmetry_{axis}"])
            assert area == pytest.approx(np.pi * R**2 / 4, rel=0.01)
    else:
        assert set(tm.interfaces) == {"surface"}
    assert np.all(tm.particle_of_cell == 0)


def test_cache_reuse(cache_dir):
    spec = SingleParticleSpec("graphite", 1.0, True, size_surface=0.2, size_center=0.4)
    first = build_mesh(spec, MPI.COMM_SELF, cache_dir, progress=False).source
    mtime = first.stat().st_mtime_ns
    second = build_mesh(spec, MPI.COMM_SELF, cache_dir, progress=False).source
    assert second == first and second.stat().st_mtime_ns == mtime
    sidecar = json.loads(first.with_suffix(".json").read_text())
    assert sidecar["spec"] == dataclasses.asdict(spec)
    other = dataclasses.replace(spec, size_center=0.3)
    changed = build_mesh(other, MPI.COMM_SELF, cache_dir, progress=False)
    assert changed.source != first and changed.source.exists()
    assert not list(cache_dir.glob(".*"))  # no temporary files left


# -- coated particles ------------------------------------------------------------------

COATED = ScaffoldSpec(
    lx=3.0,
    ly=3.0,
    height=3.0,
    families=(
        ParticleFamily("SiO2", "insulator", 0.6, 0.05, 0.6, coating=Coating("Ag", 0.05)),
        ParticleFamily("graphite", "host", radius_mean=0.5, radius_std=0.05, volume_share=0.4),
    ),
    solid_fraction=0.4,
    overlap=0.05,
    layers=(ElectrolyteLayer("LPSCl", 1.0),),
    size_bulk=0.5,
    size_surface=0.15,
    seed=1,
)


@pytest.fixture(scope="session")
def coated(cache_dir):
    return build_mesh(COATED, MPI.COMM_SELF, cache_dir, progress=False)


def _slab_volume(c: np.ndarray, r: np.ndarray, height: float) -> np.ndarray:
    """Volume of spheres between z=0 and z=height."""
    cap = lambda a: np.pi * np.clip(a, 0, 2 * r) ** 2 * (3 * r - np.clip(a, 0, 2 * r)) / 3  # noqa: E731
    return 4 / 3 * np.pi * r**3 - cap(r - c[:, 2]) - cap(c[:, 2] + r - height)


def test_coated_spec_checks():
    with pytest.raises(ValueError, match="thickness"):
        ParticleFamily("SiO2", "insulator", 0.6, 0.05, 1.0, coating=Coating("Ag", 0.2))
    with pytest.raises(ValueError, match="differ"):
        ParticleFamily("Ag", "host", 0.6, 0.0, 1.0, coating=Coating("Ag", 0.05))
    with pytest.raises(ValueError, match="two roles"):
        fams = (COATED.families[0], ParticleFamily("Ag", "conductor", 0.5, 0.0, 0.4))
        dataclasses.replace(COATED, families=fams)
    assert COATED.families[1].core_volume_fraction() == 0
    one = ParticleFamily("SiO2", "insulator", 1.0, 0.0, 1.0, coating=Coating("Ag", 0.1))
    assert one.core_volume_fraction() == pytest.approx(0.9**3)
    # a narrow distribution averages (1 - t/r)^3 with weight r^3: close to the mean radius
    spread = dataclasses.replace(one, radius_std=0.05)
    assert spread.core_volume_fraction() == pytest.approx(0.9**3, abs=2e-3)


def test_coated_packing_keeps_cores_apart():
    p = pack(COATED)
    t = np.array([f.thickness for f in COATED.families])[p.family]
    pairs, h = p.overlaps()
    coated = (t[pairs] > 0).any(axis=1)
    assert coated.any()
    assert np.all(h[coated] <= 0.5 * t[pairs][coated].max(axis=1) + 1e-9)
    # cores end above the floor
    core = t > 0
    assert np.all(p.centres[core, 2] - (p.radii[core] - t[core]) > 0.4 * t[core])


def test_coated_scaffold_tags(coated):
    assert set(coated.regions) == {"host:Ag", "insulator:SiO2", "host:graphite", "pore",
                                   "electrolyte:0:LPSCl"}
    assert list(coated.regions)[:3] == ["host:Ag", "insulator:SiO2", "host:graphite"]
    interior = {"EH:Ag", "EH:graphite", "EP", "HP:Ag", "HP:graphite", "HH:Ag|graphite",
                "HN:Ag|SiO2"}
    assert set(coated.interfaces) == EXTERIOR | interior
    # a core touches its shell only (and the lateral faces where a periodic copy is cut)
    mesh = coated.mesh
    mesh.topology.create_connectivity(2, 3)
    f2c = mesh.topology.connectivity(2, 3)
    values = np.full(mesh.topology.index_map(3).size_local, -1)
    values[coated.cell_tags.indices] = coated.cell_tags.values
    core, shell = coated.regions["insulator:SiO2"], coated.regions["host:Ag"]
    offsets, links = f2c.offsets, f2c.array
    n = np.diff(offsets)
    pairs = np.sort(values[links[offsets[:-1][n == 2][:, None] + [0, 1]]], axis=1)
    touching = pairs[(pairs == core).any(axis=1)]
    assert set(map(tuple, touching.tolist())) <= {(min(core, shell), max(core, shell)),
                                                 (core, core)}
    facet_values = dict(zip(coated.facet_tags.indices, coated.facet_tags.values, strict=True))
    boundary = np.flatnonzero(n == 1)
    outer = [facet_values.get(f) for f in boundary if values[links[offsets[f]]] == core]
    assert outer, "no core is cut by a lateral face: the check is empty"
    assert set(outer) <= {coated.interfaces["lateral"]}


def test_coated_scaffold_volumes_and_areas(coated):
    p = coated.particles
    t = np.array([f.thickness for f in COATED.families])[p.family]
    orig = np.flatnonzero(p.parent == np.arange(len(p.radii)))
    c, r, tc = p.centres[orig], p.radii[orig], t[orig]
    is_coated = tc > 0
    core_r = r[is_coated] - tc[is_coated]
    # shell volume below z=height: sphere minus core, minus the lenses a shell gives away
    # (to a neighbour of lower index) or shares with another shell (counted twice)
    shells = (_slab_volume(c[is_coated], r[is_coated], COATED.height)
              - _slab_volume(c[is_coated], core_r, COATED.height)).sum()
    period = np.array([COATED.lx, COATED.ly])
    for a, b in zip(*np.triu_indices(len(orig), 1), strict=True):  # originals: lower index first
        dv = c[b] - c[a]
        dv[:2] -= period * np.round(dv[:2] / period)
        d = np.linalg.norm(dv)
        depth = r[a] + r[b] - d
        zc = c[a, 2] + dv[2] / d * (r[a] - depth / 2)  # the lens' centre
        if depth > 0 and tc[b] > 0 and 0 < zc < COATED.height:
            lens = np.pi * depth**2 * (d**2 + 2 * d * (r[a] + r[b]) - 3 * (r[a] - r[b]) ** 2)
            shells -= lens / (12 * d)
    below = ufl.conditional(ufl.lt(ufl.SpatialCoordinate(coated.mesh)[2], COATED.height), 1.0, 0.0)
    dx = ufl.Measure("dx", coated.mesh, subdomain_data=coated.cell_tags)
    meshed = dolfinx.fem.assemble_scalar(dolfinx.fem.form(below * dx(coated.regions["host:Ag"])))
    assert meshed == pytest.approx(shells, rel=0.03)
    # the core-shell surface: every core's whole sphere (periodic copies add up to one)
    area = measure(coated, "dS", coated.interfaces["HN:Ag|SiO2"])
    assert area == pytest.approx((4 * np.pi * core_r**2).sum(), rel=0.02)
    cores = measure(coated, "dx", coated.regions["insulator:SiO2"])
    assert cores == pytest.approx((4 / 3 * np.pi * core_r**3).sum(), rel=0.02)


def test_coated_particle_of_cell(coated):
    values = np.full(len(coated.particle_of_cell), -1)
    values[coated.cell_tags.indices] = coated.cell_tags.values
    family_of_region = {coated.regions["host:Ag"]: 0, coated.regions["insulator:SiO2"]: 0,
                        coated.regions["host:graphite"]: 1}
    in_particle = np.isin(values, list(family_of_region))
    assert np.all(coated.particle_of_cell[~in_particle] == -1)
    owners = coated.particle_of_cell[in_particle]
    assert np.all(owners >= 0)
    expected = np.array([family_of_region[v] for v in values[in_particle]])
    np.testing.assert_array_equal(coated.particles.family[owners], expected)
    # every sphere with core cells has shell cells too, and core cells lie in its core
    core = values == coated.regions["insulator:SiO2"]
    shell = values == coated.regions["host:Ag"]
    assert set(coated.particle_of_cell[core]) <= set(coated.particle_of_cell[shell])
    x = dolfinx.mesh.compute_midpoints(coated.mesh, 3, np.flatnonzero(core).astype(np.int32))
    owner = coated.particle_of_cell[core]
    p = coated.particles
    dist = np.linalg.norm(x - p.centres[owner], axis=1)
    assert np.all(dist < p.radii[owner] - COATED.families[0].thickness)


def test_coating_changes_the_cache_name(tmp_path):
    from meshes import mesh_path

    plain = dataclasses.replace(COATED.families[0], coating=None)
    other = dataclasses.replace(COATED.families[0], coating=Coating("Ag", 0.06))
    names = {
        mesh_path(dataclasses.replace(COATED, families=(f, COATED.families[1])), tmp_path)
        for f in (COATED.families[0], plain, other)
    }
    assert len(names) == 3
