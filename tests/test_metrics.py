"""Shell depth (MODEL §9) of bare and coated particles against analytic answers."""

from __future__ import annotations

from types import SimpleNamespace

from mpi4py import MPI  # before dolfinx: loads the MPI library (see solver/__init__.py)

import dolfinx
import gmsh
import numpy as np
import pytest
from dolfinx.io.gmsh import model_to_mesh
from test_cli_run import ROOT

from meshes import Packing
from postprocess.metrics import part_radii, shell_depth, shell_depths_nm, summarize_shell_depths
from solver.config import load_case
from solver.simulation import SHELL_THRESHOLD

R, T = 0.5, 0.1  # particle radius and coating thickness (µm)
SHELL, CORE = 1, 2  # cell tags of the coated sphere
COATED = [f"geometry.scaffold.particles[0].{key}" for key in ("radius=0.5 um", "radius_std=0 um",
                                                               "coating.thickness=100 nm")]


def coated_case(*assignments: str):
    """cases/coated_scaffold.yaml (Ag on SiO2) with 0.5 µm particles under 100 nm of Ag."""
    return load_case(ROOT / "cases" / "coated_scaffold.yaml", [*COATED, *assignments])


def test_shell_depth_of_a_known_layer() -> None:
    """δ inverts the volume share of the layer outer − δ < r < outer of a spherical part."""
    def share(depth, outer, inner):
        return (outer**3 - (outer - depth) ** 3) / (outer**3 - inner**3)

    depths = np.array([0.0, 0.01, 0.05, T])
    coating = shell_depth(share(depths, R, R - T), R, R - T)
    assert coating == pytest.approx(depths, abs=1e-12)  # through: δ = thickness
    bare = shell_depth(share(depths, R, 0.0), R, 0.0)
    assert bare == pytest.approx(depths, abs=1e-12)
    fraction = np.linspace(0.0, 1.0, 11)  # MODEL §9 on a bare sphere
    assert shell_depth(fraction, R, 0.0) == pytest.approx(R * (1 - np.cbrt(1 - fraction)))


def test_part_radii_follow_the_families() -> None:
    """Coating (r, r − t), its core (r − t, 0) and bare particles (r, 0), sphere by sphere."""
    mixed = ("geometry.scaffold.particles=[{material: SiO2, radius: 0.5 um, fraction: 0.5, "
             "coating: {material: Ag, thickness: 100 nm}}, "
             "{material: Ag, radius: 0.3 um, fraction: 0.5}]")
    case = load_case(ROOT / "cases" / "coated_scaffold.yaml", [mixed])
    packing = SimpleNamespace(radii=np.array([0.5, 0.3, 0.6]), family=np.array([0, 1, 0]))
    outer, inner = part_radii(case, packing, "Ag")
    assert outer == pytest.approx([0.5, 0.3, 0.6]) and inner == pytest.approx([0.4, 0.0, 0.5])
    outer, inner = part_radii(case, packing, "SiO2")
    assert outer == pytest.approx([0.4, 0.3, 0.5]) and inner == pytest.approx([0.0, 0.0, 0.0])


@pytest.fixture(scope="module")
def coated_sphere():
    """A whole sphere of radius R: an SiO2 core (r < R − T) under a tagged shell, meshed
    with gmsh (~0.04 µm elements); the shell's submesh and its entity map."""
    gmsh.initialize(interruptible=False)
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.model.add("coated_sphere")
        outer = gmsh.model.occ.addSphere(0.0, 0.0, 0.0, R)
        core = gmsh.model.occ.addSphere(0.0, 0.0, 0.0, R - T)
        gmsh.model.occ.fragment([(3, outer)], [(3, core)])
        gmsh.model.occ.synchronize()
        volumes = [tag for _, tag in gmsh.model.getEntities(3)]
        inside = min(volumes, key=lambda v: gmsh.model.getBoundingBox(3, v)[3])
        gmsh.model.addPhysicalGroup(3, [v for v in volumes if v != inside], SHELL)
        gmsh.model.addPhysicalGroup(3, [inside], CORE)
        gmsh.option.setNumber("Mesh.MeshSizeMax", 0.04)
        gmsh.model.mesh.generate(3)
        data = model_to_mesh(gmsh.model, MPI.COMM_SELF, 0, gdim=3)
    finally:
        gmsh.finalize()
    shell = data.cell_tags.find(SHELL)
    submesh, entity_map, _, _ = dolfinx.mesh.create_submesh(data.mesh, 3, shell)
    packing = Packing(centres=np.zeros((1, 3)), radii=np.array([R]), family=np.array([0]),
                      parent=np.array([0]), box_lo=(-R, -R, -R), box_hi=(R, R, R), n_families=1)
    imap = data.mesh.topology.index_map(3)
    tagged = SimpleNamespace(particles=packing,
                             particle_of_cell=np.zeros(imap.size_local + imap.num_ghosts, int))
    return submesh, entity_map, tagged


def coating_depths(coated_sphere, theta_of_radius):
    """Shell depths of the coated sphere with θ(|x|) on its Ag coating."""
    submesh, entity_map, tagged = coated_sphere
    theta = dolfinx.fem.Function(dolfinx.fem.functionspace(submesh, ("Lagrange", 1)))
    theta.interpolate(lambda x: theta_of_radius(np.linalg.norm(x, axis=0)))
    host = SimpleNamespace(name="Ag", theta=theta, entity_map=entity_map)
    problem = SimpleNamespace(hosts=[host], comm=MPI.COMM_SELF, case=coated_case())
    return shell_depths_nm(problem, tagged, SHELL_THRESHOLD)


def test_coating_lithiated_through_has_its_thickness(coated_sphere) -> None:
    depths = coating_depths(coated_sphere, lambda r: np.ones_like(r))
    assert depths["Ag"] == pytest.approx([1e3 * T], rel=1e-9)  # not the radius (500 nm)
    assert depths.full_nm["Ag"] == pytest.approx([1e3 * T])
    summary = summarize_shell_depths(depths, coated_case())
    assert summary["shell_depth_material"] == "Ag"  # the coating, not the inert SiO2 core
    assert summary["coating_thickness_nm"] == pytest.approx(1e3 * T)
    assert summary["shell_depth_fraction_mean"] == pytest.approx(1.0, rel=1e-9)
    assert summary["n_particles_lithiated"] == summary["n_particles"] == 1


def test_coating_depth_of_a_partly_lithiated_coating(coated_sphere) -> None:
    """θ crosses the threshold 0.1 on the sphere r = R − 40 nm: δ = 40 nm, 0.4 of the coating
    (the faceted surfaces and the P1 level set cost 1.6 % here)."""
    depth = 0.04
    depths = coating_depths(coated_sphere, lambda r: SHELL_THRESHOLD + (r - (R - depth)))
    assert depths["Ag"] == pytest.approx([1e3 * depth], rel=0.03)
    summary = summarize_shell_depths(depths, coated_case())
    assert summary["shell_depth_nm_mean"] == pytest.approx(1e3 * depth, rel=0.03)
    assert summary["shell_depth_fraction_mean"] == pytest.approx(depth / T, rel=0.03)
    assert summary["shell_depth_nm_std"] == 0.0


def test_summary_of_bare_particles_is_relative_to_the_radius() -> None:
    case = load_case(ROOT / "cases" / "si_scaffold.yaml")
    depths = SimpleNamespace(depth_nm={"Si": np.array([0.0, 50.0, 100.0])},
                             full_nm={"Si": np.array([1000.0, 500.0, 1000.0])})
    summary = summarize_shell_depths(depths, case)
    assert summary["shell_depth_material"] == "Si" and summary["coating_thickness_nm"] is None
    assert summary["shell_depth_nm_mean"] == pytest.approx(75.0)
    assert summary["shell_depth_fraction_mean"] == pytest.approx(0.1)  # 50/500, 100/1000
    assert summary["n_particles_lithiated"] == 2 and summary["n_particles"] == 3
