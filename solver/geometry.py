"""From a validated case to the plain geometry description that `meshes` builds."""

from __future__ import annotations

import dataclasses

from meshes.spec import (
    Coating,
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
    """Particle families with volume shares; mass fractions are converted with the densities.

    A coated particle's density is the volume average of core and coating,
    ρ = φ ρ_core + (1 − φ) ρ_coating, with φ = E[(r − t)³]/E[r³] the expected core volume
    fraction over the family's radius distribution (`ParticleFamily.core_volume_fraction`).
    """
    families, weights = [], []
    for config in scaffold.particles:
        coating = None
        if config.coating is not None:
            coating = Coating(material=config.coating.material,
                              thickness=config.coating.thickness,
                              role=materials[config.coating.material].kind)
        family = ParticleFamily(material=config.material, role=materials[config.material].kind,
                                radius_mean=config.radius, radius_std=config.radius_std,
                                volume_share=1.0, coating=coating)
        density = materials[config.material].density.m_as("kg/m^3")
        if coating is not None:
            core = family.core_volume_fraction()
            density = (core * density
                       + (1 - core) * materials[coating.material].density.m_as("kg/m^3"))
        families.append(family)
        weights.append(config.fraction / density if scaffold.fraction_basis == "mass"
                       else config.fraction)
    total = sum(weights)
    return tuple(dataclasses.replace(family, volume_share=weight / total)
                 for family, weight in zip(families, weights, strict=True))
