"""Closed-form solutions the numerical model is checked against (VALIDATION.md)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq


def sphere_flux_eigenvalues(count: int) -> np.ndarray:
    """The first `count` positive roots of tan(a) = a (a·cot(a) = 1)."""
    roots = []
    for n in range(1, count + 1):
        # One root lies in each interval (n pi, n pi + pi/2).
        low, high = n * np.pi + 1e-9, n * np.pi + np.pi / 2 - 1e-9
        roots.append(brentq(lambda a: np.sin(a) - a * np.cos(a), low, high))
    return np.array(roots)


def sphere_constant_flux(r: np.ndarray, t: float, radius: float, diffusivity: float,
                         influx: float, initial: float = 0.0, terms: int = 200) -> np.ndarray:
    """θ(r, t) in a sphere with constant D and a constant influx at r = R.

    Carslaw & Jaeger, Conduction of Heat in Solids, §9.3 (Crank, The Mathematics of
    Diffusion, eq. 6.44 with the flux condition): with q the influx in θ·length/time,

        θ − θ0 = (qR/D) [3Dt/R² + r²/(2R²) − 3/10
                        − (2R/r) Σ exp(−D a_n² t/R²) sin(a_n r/R) / (a_n² sin a_n)]

    where a_n are the positive roots of tan a = a. r = 0 uses the limit sin(x)/x → 1.
    """
    r = np.asarray(r, dtype=float)
    alphas = sphere_flux_eigenvalues(terms)
    rho = np.maximum(r / radius, 1e-12)[..., None]
    decay = np.exp(-diffusivity * alphas**2 * t / radius**2)
    series = np.sum(decay * np.sin(alphas * rho) / (alphas**2 * np.sin(alphas) * rho), axis=-1)
    bracket = 3.0 * diffusivity * t / radius**2 + rho[..., 0] ** 2 / 2.0 - 0.3 - 2.0 * series
    return initial + influx * radius / diffusivity * bracket


def slab_constant_flux(z: np.ndarray, t: float, thickness: float, diffusivity: float,
                       influx: float, initial: float = 0.0, terms: int = 200) -> np.ndarray:
    """θ(z, t) in a slab 0 < z < l, no flux at z = 0, constant influx q at z = l.

    Crank, The Mathematics of Diffusion, §4.3.3 (eq. 4.54 with the flux condition):

        θ − θ0 = qt/l + (ql/D) [(3z² − l²)/(6l²)
                 − (2/π²) Σ (−1)ⁿ/n² exp(−D n²π² t/l²) cos(nπz/l)]
    """
    z = np.asarray(z, dtype=float)[..., None]
    n = np.arange(1, terms + 1)
    series = np.sum((-1.0) ** n / n**2 * np.exp(-diffusivity * n**2 * np.pi**2 * t / thickness**2)
                    * np.cos(n * np.pi * z / thickness), axis=-1)
    z = z[..., 0]
    bracket = (3 * z**2 - thickness**2) / (6 * thickness**2) - 2.0 / np.pi**2 * series
    return initial + influx * t / thickness + influx * thickness / diffusivity * bracket


# --- mechanics (VALIDATION V3; MODEL §6) ------------------------------------------------------


def _gauss_legendre_unit(points: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes and weights on [0, 1]."""
    nodes, weights = np.polynomial.legendre.leggauss(points)
    return 0.5 * (nodes + 1.0), 0.5 * weights


def sphere_eigenstrain_stresses(r: np.ndarray, eigenstrain, radius: float, youngs_modulus: float,
                                poisson_ratio: float,
                                points: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Radial and hoop stress (σ_r, σ_θ) in a free, linear-elastic sphere with a spherically
    symmetric isotropic eigenstrain e*(r) (small strain).

    The thermoelastic sphere of Timoshenko & Goodier (Theory of Elasticity, §151) with
    αT(r) replaced by e*(r):

        σ_r = 2E/(1−ν) [A(R) − A(r)],   σ_θ = E/(1−ν) [2A(R) + A(r) − e*(r)],
        A(r) = (1/r³) ∫_0^r e*(ρ) ρ² dρ = ∫_0^1 e*(r s) s² ds,

    the last form (Gauss–Legendre with `points` nodes) being regular at r = 0, where
    A(0) = e*(0)/3 and σ_r = σ_θ. `eigenstrain` maps an array of radii to e*; the stresses
    carry the unit of E.
    """
    r = np.asarray(r, dtype=float)
    s, w = _gauss_legendre_unit(points)

    def mean(x: np.ndarray) -> np.ndarray:
        return np.sum(eigenstrain(x[..., None] * s) * s**2 * w, axis=-1)

    a_surface = mean(np.asarray(radius, dtype=float))
    a = mean(r)
    sigma_r = 2 * youngs_modulus / (1 - poisson_ratio) * (a_surface - a)
    sigma_t = youngs_modulus / (1 - poisson_ratio) * (2 * a_surface + a - eigenstrain(r))
    return sigma_r, sigma_t


def zhang_shyy_sastry_stresses(r: np.ndarray, theta, radius: float, youngs_modulus: float,
                               poisson_ratio: float,
                               omega_c_max: float) -> tuple[np.ndarray, np.ndarray]:
    """Diffusion-induced stresses (σ_r, σ_θ) in a free sphere (VALIDATION V3).

    Zhang, Shyy & Sastry, J. Electrochem. Soc. 154, A910 (2007), eqs. 10–11; Cheng &
    Verbrugge, J. Power Sources 190, 453 (2009): with the linear chemical strain Ωc/3 per
    direction (c = c_max θ),

        σ_r = 2ΩE/(3(1−ν)) [(1/R³) ∫_0^R c r² dr − (1/r³) ∫_0^r c ρ² dρ]
        σ_θ =  ΩE/(3(1−ν)) [(2/R³) ∫_0^R c r² dr + (1/r³) ∫_0^r c ρ² dρ − c]

    i.e. `sphere_eigenstrain_stresses` with e* = Ω c_max θ(r)/3. `theta` maps radii to θ;
    `omega_c_max` = Ω c_max (dimensionless).
    """
    return sphere_eigenstrain_stresses(r, lambda x: omega_c_max * theta(x) / 3.0, radius,
                                       youngs_modulus, poisson_ratio)


def swelling_sphere_in_spring_small(eigenstrain: float, youngs_modulus: float,
                                    poisson_ratio: float, stiffness: float) -> tuple[float, float]:
    """Uniformly swelling sphere held by a spring t = −K_eff (u·n/R) n, small strain.

    Returns (u_R/R, σ_h); σ_h has the unit of E and K_eff.

    Derivation. With a uniform isotropic eigenstrain e* the field u = e X (a uniform
    strain ε = e I) satisfies equilibrium exactly, and σ = 3K (e − e*) I with the bulk
    modulus K = E/(3(1−2ν)). The spring gives σ_rr(R) = −K_eff u_R/R = −K_eff e, so

        3K (e − e*) = −K_eff e   ⇒   e = u_R/R = 3K e* / (3K + K_eff),
        σ_h = −K_eff e = −3K K_eff e* / (3K + K_eff).

    Limits: K_eff → 0 gives free swelling (e = e*, σ = 0); K_eff → ∞ full constraint
    (e → 0, σ_h → −3K e*). The field is also exact with symmetry planes through the centre.
    """
    bulk = youngs_modulus / (3 * (1 - 2 * poisson_ratio))
    strain = 3 * bulk * eigenstrain / (3 * bulk + stiffness)
    return strain, -stiffness * strain


def swelling_sphere_in_spring_finite(swelling_ratio: float, youngs_modulus: float,
                                     poisson_ratio: float, stiffness: float) -> tuple[float, float]:
    """Uniformly swelling neo-Hookean sphere in a (follower) spring, finite strain (MODEL §6).

    Returns (λ − 1, σ_h) with λ the stretch of the sphere, u_R/R = λ − 1, and σ_h the
    Cauchy hydrostatic stress.

    Derivation. With J_c = det F_c uniform, F = λ I is an exact solution: F_e = λ_e I with
    λ_e = λ / J_c^(1/3), J_e = λ_e³. For W = μ/2 (tr C_e − 3) − μ ln J_e + λ_L/2 (ln J_e)²,
    the Cauchy stress is σ = [μ (λ_e² − 1) + λ_L ln J_e] / J_e · I. The spring acts as a
    pressure K_eff (u·N/R) on the current surface, so σ_rr(R) = −K_eff (λ − 1):

        [μ (λ_e² − 1) + λ_L ln J_e] / J_e + K_eff (λ − 1) = 0,

    solved for λ between 1 and J_c^(1/3), where the left side changes sign (for J_c > 1 it
    is σ(λ = 1) < 0 at λ = 1 and K_eff (J_c^(1/3) − 1) > 0 at free swelling). For small
    swelling it reduces to `swelling_sphere_in_spring_small` with e* = J_c^(1/3) − 1.
    """
    mu = youngs_modulus / (2 * (1 + poisson_ratio))
    lam = youngs_modulus * poisson_ratio / ((1 + poisson_ratio) * (1 - 2 * poisson_ratio))
    free = swelling_ratio ** (1.0 / 3.0)

    def cauchy(stretch: float) -> float:
        elastic = stretch / free
        j_e = elastic**3
        return (mu * (elastic**2 - 1) + lam * np.log(j_e)) / j_e

    if stiffness == 0.0 or free == 1.0:
        return free - 1.0, 0.0
    stretch = brentq(lambda x: cauchy(x) + stiffness * (x - 1), min(1.0, free), max(1.0, free),
                     xtol=1e-15, rtol=4 * np.finfo(float).eps)
    return stretch - 1.0, cauchy(stretch)


def viscoplastic_confined_swelling(times: np.ndarray, swelling_ratio, youngs_modulus: float,
                                   poisson_ratio: float, yield_stress: float, rate: float,
                                   exponent: float) -> tuple[np.ndarray, np.ndarray]:
    """Lateral Cauchy stress σ_xx(t) and plastic strain ε̄_p(t) of a swelling block held by
    rollers on its sides and bottom, top free (uniform fields; MODEL §6, (6.2)).

    Kinematics F = diag(1, 1, λ) = F_e F_c F_p with F_c = J_c(t)^(1/3) I and the isochoric
    F_p = diag(a, a, a⁻²). Neo-Hookean F_e: b_e = J_c^(−2/3) diag(a⁻², a⁻², λ² a⁴),
    J_e = λ/J_c, τ = μ(b_e − I) + λ_L ln J_e I. The free top gives τ_zz = 0, which fixes λ
    for given a (monotone in λ). Flow along the deviatoric Mandel (= Kirchhoff) stress,
    D_p = ε̇_p (3/2) dev τ/q with q = √(3/2)|dev τ| = |τ_xx| (as τ_zz = 0) and
    ε̇_p = ε̇_0 ⟨q/σ_Y − 1⟩^m (6.2); its xx component is d(ln a)/dt = ε̇_p sign(τ_xx)/2.
    Integrated with scipy's Radau to 1e-10. `swelling_ratio` maps t to J_c; σ_xx = τ_xx/J_e.
    """
    from scipy.integrate import solve_ivp

    mu = youngs_modulus / (2 * (1 + poisson_ratio))
    lam = youngs_modulus * poisson_ratio / ((1 + poisson_ratio) * (1 - 2 * poisson_ratio))

    def stress(t: float, log_a: float) -> tuple[float, float]:
        jc, a = float(swelling_ratio(t)), np.exp(log_a)
        stretch = brentq(lambda s: mu * (s**2 * a**4 * jc ** (-2 / 3) - 1) + lam * np.log(s / jc),
                         1e-6, 1e6, xtol=1e-15, rtol=4 * np.finfo(float).eps)
        j_e = stretch / jc
        return mu * (a**-2 * jc ** (-2 / 3) - 1) + lam * np.log(j_e), j_e

    def rates(t: float, y: np.ndarray) -> list[float]:
        tau_xx, _ = stress(t, y[0])
        flow = rate * max(abs(tau_xx) / yield_stress - 1.0, 0.0) ** exponent
        return [0.5 * flow * np.sign(tau_xx), flow]

    times = np.asarray(times, dtype=float)
    solution = solve_ivp(rates, (0.0, times[-1]), [0.0, 0.0], method="Radau", t_eval=times,
                         rtol=1e-10, atol=1e-12)
    sigma = np.array([np.divide(*stress(t, y)) for t, y in zip(times, solution.y[0], strict=True)])
    return sigma, solution.y[1]
