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
