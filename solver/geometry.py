"""From a validated case to the plain geometry description that `meshes` builds."""

from __future__ import annotations

from meshes.spec import (
    ElectrolyteLayer,
    ParticleFamily,
    ScaffoldSpec,
    SingleParticleSpec,
)
from solver.config import CaseConfig, ScaffoldConfig
from solver.materials import MaterialCard


def mesh_spec(case: CaseConfig,
              materials: dict[str, MaterialCard]) -> ScaffoldSpec | SingleParticleSpec:
    """The mesh description of the case, lengths in µm."""
    geometry = case.geometry
    if geometry.kind == "single_particle":
        particle = geometry.single_particle
        return SingleParticleSpec(material=particle.material, radius=particle.radius,
                                  octant=particle.octant, size_surface=geometry.mesh.size_surface,
                                  size_center=geometry.mesh.size_bulk)
    scaffold = geometry.scaffold
    layers = tuple(ElectrolyteLayer(layer.material, layer.thickness)
                   for layer in geometry.electrolyte)
    return ScaffoldSpec(lx=scaffold.size_x, ly=scaffold.size_y, height=scaffold.height,
                        families=particle_families(scaffold, materials),
                        solid_fraction=scaffold.solid_fraction, overlap=scaffold.contact_overlap,
                        layers=layers, size_bulk=geometry.mesh.size_bulk,
                        size_surface=geometry.mesh.size_surface, seed=scaffold.seed)


def particle_families(scaffold: ScaffoldConfig,
                      materials: dict[str, MaterialCard]) -> tuple[ParticleFamily, ...]:
    """Particle families with volume shares; mass fractions are converted with the densities."""
    weights = []
    for family in scaffold.particles:
        density = materials[family.material].density.m_as("kg/m^3")
        weights.append(family.fraction / density if scaffold.fraction_basis == "mass"
                       else family.fraction)
    total = sum(weights)
    return tuple(ParticleFamily(material=family.material, role=materials[family.material].kind,
                                radius_mean=family.radius, radius_std=family.radius_std,
                                volume_share=weight / total)
                 for family, weight in zip(scaffold.particles, weights, strict=True))
