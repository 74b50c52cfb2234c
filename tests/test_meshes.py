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
