"""The void next to a single particle as the home of plated Li (MODEL §5, §7; docs/plating.md).

A particle of a scaffold shares the voids between the particles with its neighbours. The
single-particle geometry has no pores, so with plating on it gets its share as one lumped
pore of volume V_void = void_ratio · V_particle:

- ψ, the volume of Li metal per V_void, is one unknown (a Real space); the metal stays
  uniform in the void (no creep within it);
- p_Li(ψ) is (7.2) up to the stack pressure: the void fills at no pressure up to ψ_c and is
  then pressurised, until p_Li reaches the stack pressure p_stack. Then the metal pushes
  the layer open against the stack and creeps into the room it makes, so ψ grows past 1 at
  p_Li = p_stack (`psi_open`). U_Li = −Ω_Li p_Li / F shifts the plating potential
  (§5, 135 mV per GPa);
- the metal coverage m(ψ) gates stripping and lifts the nucleation barrier, as in a pore
  of the scaffold (`transport.deposition_current`).

Why the void opens. The layer is held together by the stack pressure alone (a cell under a
constant load); Li metal at p_Li > p_stack lifts it, as in a hydraulic jack. The paper's
layer takes > 5000 mAh/g (Fig. 1a), twice what its voids hold, before it shorts, so its
Li does leave the voids. How fast is set by the creep law (§7): the void's metal must
strain at ε̇ = Ω_Li q / V_void, which needs p_Li − p_stack = (ε̇/A_cr)^(1/n), 0.7 MPa at the
P3 current (ε̇ ≈ 6.5·10⁻⁴ s⁻¹). That is 1.4 % of 50 MPa and 0.09 mV in U_Li, so the cap
is taken rate-independent. Without stack pressure the void holds no pressure at all.
"""

from __future__ import annotations

import basix.ufl
import dolfinx
import numpy as np
import ufl
from dolfinx import fem

from solver.config import CaseConfig
from solver.materials import MaterialCard
from solver.physics import transport
from solver.physics.plating import PlatingSettings, li_pressure, smooth_positive


class ParticleVoid:
    """ψ of the lumped void of a single particle, its pressure and its Li content."""

    def __init__(self, mesh: dolfinx.mesh.Mesh, case: CaseConfig,
                 materials: dict[str, MaterialCard]) -> None:
        settings = case.plating
        metal = materials[settings.metal].metal
        self.void_ratio = case.geometry.single_particle.void_ratio
        self.molar_volume = float(metal.molar_volume.m_as("m^3/mol"))
        self.bulk_modulus = float(metal.bulk_modulus.m_as("MPa"))
        self.psi_c = settings.filling_fraction
        self.psi_perc = settings.percolation_fraction
        self.pressure_smoothing = PlatingSettings(psi_c=self.psi_c).pressure_smoothing
        self.stack_pressure = float(case.stack_pressure)
        space = fem.functionspace(mesh, basix.ufl.real_element(mesh.basix_cell(), ()))
        self.psi = fem.Function(space, name="psi_void")
        self.psi_old = fem.Function(space)

    def pressure(self):
        """p_Li(ψ) in MPa: (7.2), ⟨·⟩₊ smoothed as in the pores, capped at the stack pressure
        where the void opens (module docstring)."""
        return self._capped(li_pressure(self.psi, self.bulk_modulus, self.psi_c,
                                        self.pressure_smoothing))

    def _capped(self, pressure):
        """min(p, p_stack), smoothed over δ_p like ⟨·⟩₊ (UFL or numpy)."""
        return self.stack_pressure - smooth_positive(self.stack_pressure - pressure,
                                                     self.pressure_smoothing)

    def psi_open(self) -> float:
        """ψ at which (7.2) reaches p_stack: beyond it the layer opens and p_Li stays there."""
        return self.psi_c + self.stack_pressure * (1 - self.psi_c) / self.bulk_modulus

    def opening(self) -> float:
        """How far the void has grown past its volume V_void (the layer's swelling per
        V_void): ψ / ψ_open − 1, 0 while the void is not yet pressed to p_stack."""
        return max(self.value() / self.psi_open() - 1.0, 0.0)

    def plating_potential(self):
        """U_Li(p_Li) of the metal in the void (§5)."""
        return transport.plating_potential(self.pressure(), self.molar_volume)

    def presence(self):
        """Li-metal coverage m(ψ) (`transport.metal_presence`)."""
        return transport.metal_presence(self.psi, self.psi_perc)

    def storage(self, dt, test, dx_particle: ufl.Measure, c_ref: float) -> ufl.Form:
        """d/dt of the plated Li, V_void ∂ψ/∂t / Ω_Li ((7.1) integrated over the void, which
        has no creep inside), per c_ref: in θ·µm³/s like the host
        rows. V_void is void_ratio times the particle volume, so the integral runs over
        the particle's cells."""
        per_theta = 1.0 / (self.molar_volume * c_ref)  # ψ·µm³ of metal → θ·µm³ at c_ref
        return self.void_ratio * per_theta * (self.psi - self.psi_old) / dt * test * dx_particle

    def li_mol(self, particle_volume_um3: float) -> float:
        """Li metal in the void (mol): ψ V_void / Ω_Li."""
        return self.value() * self.void_ratio * particle_volume_um3 * 1e-18 / self.molar_volume

    def value(self) -> float:
        """ψ (every rank holds the Real dof, owned or ghosted)."""
        return float(self.psi.x.array[0])

    def pressure_value(self) -> float:
        """p_Li (MPa) of the current ψ."""
        return float(self._capped(li_pressure(np.float64(self.value()), self.bulk_modulus,
                                              self.psi_c, self.pressure_smoothing)))

    def accept(self) -> None:
        self.psi_old.x.array[:] = self.psi.x.array
