"""Geometry specifications handed from the config layer to the mesh generators.

Plain frozen dataclasses with float fields, lengths in micrometres. The config layer
(`solver.config`) validates user input and builds these; the checks here are only a
second line of defence against programming errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ROLES = ("host", "conductor", "insulator")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


# Bounds of a coating's thickness, x the family's smallest radius (see ParticleFamily).
COATING_MIN, COATING_MAX = 0.02, 0.5


def _check_material(owner: str, material: str) -> None:
    _require(
        material != "" and not any(c in material for c in ":|"),
        f"{owner} {material!r} must be non-empty without ':' or '|'",
    )


@dataclass(frozen=True)
class Coating:
    """A shell of `material` (role `role`, a host) and `thickness` (um) on every particle of
    a family; the family's own material is the core."""

    material: str
    thickness: float
    role: str = "host"

    def __post_init__(self) -> None:
        _require(self.role in ROLES, f"Coating.role must be in {ROLES}, not {self.role!r}")
        _require(self.thickness > 0, "Coating.thickness must be > 0")
        _check_material("Coating.material", self.material)


@dataclass(frozen=True)
class ParticleFamily:
    """One particle population of a scaffold.

    Radii follow a lognormal distribution with mean `radius_mean` and standard deviation
    `radius_std`, truncated to [0.5, 2] x `radius_mean` (the truncation shifts the mean
    slightly when the std is large).

    With a `coating`, each particle is a core of `material` (radius r - thickness) inside a
    shell of the coating's material; `radius_*` and `volume_share` describe the whole
    particle. The thickness must lie in [COATING_MIN, COATING_MAX] x `min_radius`, so the
    core keeps at least half the radius of the smallest particle.
    """

    material: str
    role: str
    radius_mean: float
    radius_std: float
    volume_share: float
    coating: Coating | None = None

    @property
    def min_radius(self) -> float:
        """Smallest radius the family can draw (0.5 x mean when radius_std > 0)."""
        return self.radius_mean * (0.5 if self.radius_std > 0 else 1.0)

    @property
    def thickness(self) -> float:
        """Coating thickness (0 without a coating)."""
        return self.coating.thickness if self.coating is not None else 0.0

    def core_volume_fraction(self) -> float:
        """Expected core volume / particle volume, E[(r - t)^3] / E[r^3] over the truncated
        lognormal radius distribution ((1 - t/r)^3 for one radius; 0 without a coating)."""
        if self.coating is None:
            return 0.0
        t = self.coating.thickness
        if self.radius_std == 0:
            return (1 - t / self.radius_mean) ** 3
        s2 = math.log(1 + (self.radius_std / self.radius_mean) ** 2)
        mu = math.log(self.radius_mean) - s2 / 2
        r = np.linspace(0.5 * self.radius_mean, 2 * self.radius_mean, 4001)
        pdf = np.exp(-((np.log(r) - mu) ** 2) / (2 * s2)) / r
        return float(np.trapezoid(pdf * (r - t) ** 3, r) / np.trapezoid(pdf * r**3, r))

    def __post_init__(self) -> None:
        _require(self.role in ROLES, f"ParticleFamily.role must be in {ROLES}, not {self.role!r}")
        _require(self.radius_mean > 0, "ParticleFamily.radius_mean must be > 0")
        _require(self.radius_std >= 0, "ParticleFamily.radius_std must be >= 0")
        _require(0 < self.volume_share <= 1, "ParticleFamily.volume_share must be in (0, 1]")
        _check_material("ParticleFamily.material", self.material)
        if self.coating is not None:
            t, rmin = self.coating.thickness, self.min_radius
            _require(
                COATING_MIN * rmin <= t <= COATING_MAX * rmin,
                f"ParticleFamily.coating.thickness {t:g} must be in [{COATING_MIN}, "
                f"{COATING_MAX}] x the smallest radius {rmin:g}",
            )
            _require(
                self.coating.material != self.material,
                "ParticleFamily.coating.material must differ from the core material",
            )


@dataclass(frozen=True)
class ElectrolyteLayer:
    material: str
    thickness: float

    def __post_init__(self) -> None:
        _require(self.thickness > 0, "ElectrolyteLayer.thickness must be > 0")


@dataclass(frozen=True)
class ScaffoldSpec:
    """Scaffold box [0,lx]x[0,ly]x[0,height] of packed spheres, SE layers stacked above."""

    lx: float
    ly: float
    height: float
    families: tuple[ParticleFamily, ...]
    solid_fraction: float
    overlap: float
    layers: tuple[ElectrolyteLayer, ...]
    size_bulk: float
    size_surface: float
    seed: int

    @property
    def max_radius(self) -> float:
        """Largest radius any family can draw (the distribution is truncated at 2 x mean)."""
        return max(f.radius_mean * (2.0 if f.radius_std > 0 else 1.0) for f in self.families)

    @property
    def top(self) -> float:
        """z of the top face (separator side)."""
        return self.height + sum(layer.thickness for layer in self.layers)

    def __post_init__(self) -> None:
        _require(min(self.lx, self.ly, self.height) > 0, "ScaffoldSpec: box sizes must be > 0")
        _require(len(self.families) > 0, "ScaffoldSpec.families must not be empty")
        _require(len(self.layers) > 0, "ScaffoldSpec.layers must hold at least one SE layer")
        shares = sum(f.volume_share for f in self.families)
        _require(abs(shares - 1) < 1e-6, f"ScaffoldSpec: volume shares sum to {shares}, not 1")
        roles: dict[str, str] = {}
        for f in self.families:
            parts = [(f.material, f.role)]
            if f.coating is not None:
                parts.append((f.coating.material, f.coating.role))
            for material, role in parts:
                _require(
                    roles.setdefault(material, role) == role,
                    f"ScaffoldSpec: material {material!r} given two roles",
                )
        _require(0 < self.solid_fraction < 0.7, "ScaffoldSpec.solid_fraction must be in (0, 0.7)")
        _require(0 < self.overlap <= 0.3, "ScaffoldSpec.overlap must be in (0, 0.3]")
        _require(
            0 < self.size_surface <= self.size_bulk,
            "ScaffoldSpec: need 0 < size_surface <= size_bulk",
        )
        # Periodic images of one particle must not touch each other, and no sphere may span
        # the scaffold height (each is cut by at most one of z=0 and z=height).
        _require(
            min(self.lx, self.ly, self.height) > 2.2 * self.max_radius,
            "ScaffoldSpec: lx, ly and height must exceed 2.2 x the largest particle radius",
        )


@dataclass(frozen=True)
class SingleParticleSpec:
    """One sphere centred at the origin, or its octant x, y, z >= 0."""

    material: str
    radius: float
    octant: bool
    size_surface: float
    size_center: float

    def __post_init__(self) -> None:
        _require(self.radius > 0, "SingleParticleSpec.radius must be > 0")
        _require(
            self.size_surface > 0 and self.size_center > 0,
            "SingleParticleSpec: element sizes must be > 0",
        )
