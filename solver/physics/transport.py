"""Li transport in hosts, electrolyte potential and interface kinetics (MODEL §3–§5).

UFL building blocks only: each function returns the expression or form of one
equation, in the internal units of `solver.units` (µm, s, V, K, MPa). The problem
builder (`solver.problem`) assembles them into the coupled block system.

Scaling. Every residual is a balance of Li in units of θ·µm³/s: the host equation
(3.3) is divided by c_max of its host, and the charge balance (4.1) by F·c_ref, with
c_ref a reference concentration (the largest c_max of the hosts). The blocks then have
entries of similar size and one Newton tolerance serves them all.
"""

from __future__ import annotations

import ufl

from solver.materials import MaterialCard, diffusivity, equilibrium_potential
from solver.units import Q_, F, R


def thermal_voltage_inverse(temperature: float) -> float:
    """f = F/RT in 1/V."""
    return float(F.m_as("C/mol") / (R.m_as("J/(mol*K)") * temperature))


def stress_coupling(host: MaterialCard, temperature: float) -> float:
    """Ω/RT in 1/MPa: the weight of ∇σ_h against ∇θ in the flux (3.3)."""
    h = host.host
    return float((h.molar_volume_li * Q_(1.0, "MPa") / (R * Q_(temperature, "K"))).m_as(""))


def host_residual(host: MaterialCard, theta, theta_old, v, dt, sigma_h, eps_lat,
                  temperature: float, dx: ufl.Measure, dx_lumped: ufl.Measure) -> ufl.Form:
    """Weak form of c_max ∂θ/∂t + ∇·J = 0 (3.3), divided by c_max.

    The flux is the lattice-gas flux of (3.3) for an ideal solution, the form MODEL §3
    gives for it: J/c_max = −D [∇θ − θ(1−θ) (Ω/RT) ∇σ_h], with D = D(θ, ε_lat, T) from
    (3.4)–(3.5). The fitted OCV enters the kinetics and the equilibrium (3.2), not the
    mobility: fitted OCVs have plateaus (graphite) and lack the log divergence at θ → 1
    (Si), where θ(1−θ)·dU/dθ would give a vanishing or negative diffusivity
    (docs/model.md). The storage term uses a lumped mass matrix, which keeps the sharp
    lithiation front of D_0 ≪ D_1 free of undershoots (θ < 0) on P1 elements.
    Interface source terms are added by the caller.
    """
    D = diffusivity(host, theta, eps_lat, temperature)
    occupancy = ufl.max_value(theta, 0.0) * ufl.max_value(1 - theta, 0.0)
    coupling = stress_coupling(host, temperature)
    flux = -D * (ufl.grad(theta) - occupancy * coupling * ufl.grad(sigma_h))
    return (theta - theta_old) / dt * v * dx_lumped - ufl.inner(flux, ufl.grad(v)) * dx


def electrolyte_residual(kappa_scaled, phi, w, dx: ufl.Measure) -> ufl.Form:
    """−∇·(κ ∇φ_e) = 0  (4.1), with κ scaled by F·c_ref (µm²/(V s))."""
    return kappa_scaled * ufl.inner(ufl.grad(phi), ufl.grad(w)) * dx


def butler_volmer(i0, alpha: float, f: float, eta) -> ufl.core.expr.Expr:
    """i = i0 [exp(−α f η) − exp((1−α) f η)]  (5.1); positive when Li⁺ is reduced."""
    return i0 * (ufl.exp(-alpha * f * eta) - ufl.exp((1 - alpha) * f * eta))


# θ is held in [ε, 1 − ε] inside the availability: a saturated site keeps a small exchange
# current (so a galvanostatic step runs on into its voltage cut-off instead of leaving the
# electrolyte potential undetermined) and the derivative stays finite at θ = 0 and 1.
AVAILABILITY_FLOOR = 1e-6


def site_availability(theta_s, alpha: float) -> ufl.core.expr.Expr:
    """θ^(1−α) (1−θ)^α / 0.5: the θ-dependence of the alloying exchange current.

    The standard insertion kinetics (i0 ∝ c_s^(1−α) (c_max − c_s)^α): insertion stops on a
    full surface, extraction on an empty one. Normalised to 1 at θ = 1/2, where the card's
    i0_alloy applies. MODEL (5.1) takes i0 constant; without this factor a host whose
    OCV stays above the anode potential up to θ = 1 (graphite, U_ocv ≥ 0.09 V) would take
    Li without bound (docs/model.md).
    """
    filled = ufl.max_value(ufl.min_value(theta_s, 1.0 - AVAILABILITY_FLOOR), AVAILABILITY_FLOOR)
    return filled ** (1 - alpha) * (1 - filled) ** alpha / 0.5


def split_hydrostatic_stress(sigma_h, theta, theta_stressed, stiffness):
    """σ_h seen by the transport in one staggered iteration (fixed-stress split).

    σ_h was computed by the mechanics for θ = θ_stressed; the transport sees it corrected
    to first order for its own change of θ, σ_h − β (θ − θ_stressed), with β the local
    stiffness dσ_h/dθ of a swelling inclusion (`mechanics.inclusion_stress_stiffness`).
    The correction vanishes when the iteration has converged (θ = θ_stressed); it makes
    the transport feel the elastic penalty of its own swelling, without which the plain
    staggered scheme diverges for Si (the stress term outweighs diffusion ~10³-fold,
    docs/mechanics.md). The split is that of Kim, Tchelepi & Juanes (CMAME 200, 1591,
    2011) for poroelasticity.
    """
    return sigma_h - stiffness * (theta - theta_stressed)


def alloying_overpotential(host: MaterialCard, phi_s, phi_e, theta_s, sigma_h_s):
    """η = φ_s − φ_e − U_k(θ_s, σ_h,s) for alloying on Γ_EH  (§5 table, (3.2))."""
    return phi_s - phi_e - equilibrium_potential(host, theta_s, sigma_h_s)


# --- plating, forced plating and exchange (§5) ---------------------------------------------


def plating_potential(p_li, molar_volume_li: float):
    """U_Li = −Ω_Li p_Li / F (V) for p_Li in MPa (§5 table): Li under pressure plates less
    readily, 135 mV per GPa."""
    return -molar_volume_li * 1e6 / F.m_as("C/mol") * p_li


def metal_presence(psi, psi_perc: float):
    """m = ψ₊/(ψ₊ + ψ_perc): how much of a pore surface is covered by Li metal (§5: metal
    is present once ψ exceeds ψ_perc; m = ½ there). It gates stripping and lifts the
    nucleation barrier. m ∝ ψ near ψ = 0, so that with ψ implicit the stripping rate
    falls to zero with the metal left; zero for ψ < 0 (a creep undershoot must not drive
    any reaction)."""
    covered = ufl.max_value(psi, 0.0)
    return covered / (covered + psi_perc)


def deposition_current(i0, alpha: float, f: float, eta, presence, eta_nucleation,
                       smoothing: float = 1e-3):
    """Current density of Li metal deposition (> 0) or dissolution (< 0), (5.1) and §5.

    With the metal coverage m = `presence`:

        i = m i0 [exp(−α f η) − exp((1−α) f η)] + (1 − m) ⟨i_BV(η + η_nuc)⟩₊

    On metal (m = 1) this is (5.1). Where there is no metal yet (m = 0) metal can only
    form, and only beyond the nucleation overpotential: ⟨i_BV(η + η_nuc)⟩₊ is zero for
    η > −η_nuc. Dissolution scales with m, so it stops with the metal. ⟨x⟩₊ is smoothed
    over `smoothing`·i0 so that Newton sees a smooth curve (it adds at most 5·10⁻⁴ i0 at
    η = −η_nuc and decays away from it).
    """
    nucleating = butler_volmer(i0, alpha, f, eta + eta_nucleation)
    delta = smoothing * i0
    nucleating = 0.5 * (nucleating + ufl.sqrt(nucleating * nucleating + delta * delta))
    return presence * butler_volmer(i0, alpha, f, eta) + (1 - presence) * nucleating
