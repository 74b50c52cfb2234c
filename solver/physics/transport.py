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
from solver.units import F, R


def thermal_voltage_inverse(temperature: float) -> float:
    """f = F/RT in 1/V."""
    return float(F.m_as("C/mol") / (R.m_as("J/(mol*K)") * temperature))


def reduced_chemical_potential(host: MaterialCard, theta: ufl.core.expr.Expr,
                               sigma_h: ufl.core.expr.Expr, temperature: float) -> ufl.core.expr.Expr:
    """μ/RT with μ = −F U_ocv(θ) − Ω σ_h  (3.1), i.e. −f·U_k(θ, σ_h) with U_k from (3.2)."""
    return -thermal_voltage_inverse(temperature) * equilibrium_potential(host, theta, sigma_h)


def host_residual(host: MaterialCard, theta, theta_old, v, dt, sigma_h, eps_lat,
                  temperature: float, dx: ufl.Measure) -> ufl.Form:
    """Weak form of c_max ∂θ/∂t + ∇·J = 0, J = −(D c_max θ(1−θ)/RT) ∇μ  (3.3), over c_max.

    Interface source terms are added by the caller. D = D(θ, ε_lat, T) from (3.4)–(3.5).
    """
    mobility = diffusivity(host, theta, eps_lat, temperature) * theta * (1 - theta)
    mu = reduced_chemical_potential(host, theta, sigma_h, temperature)
    return ((theta - theta_old) / dt * v
            + mobility * ufl.inner(ufl.grad(mu), ufl.grad(v))) * dx


def electrolyte_residual(kappa_scaled, phi, w, dx: ufl.Measure) -> ufl.Form:
    """−∇·(κ ∇φ_e) = 0  (4.1), with κ scaled by F·c_ref (µm²/(V s))."""
    return kappa_scaled * ufl.inner(ufl.grad(phi), ufl.grad(w)) * dx


def butler_volmer(i0, alpha: float, f: float, eta) -> ufl.core.expr.Expr:
    """i = i0 [exp(−α f η) − exp((1−α) f η)]  (5.1); positive when Li⁺ is reduced."""
    return i0 * (ufl.exp(-alpha * f * eta) - ufl.exp((1 - alpha) * f * eta))


def alloying_overpotential(host: MaterialCard, phi_s, phi_e, theta_s, sigma_h_s):
    """η = φ_s − φ_e − U_k(θ_s, σ_h,s) for alloying on Γ_EH  (§5 table, (3.2))."""
    return phi_s - phi_e - equilibrium_potential(host, theta_s, sigma_h_s)
