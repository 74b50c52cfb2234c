"""Geometry specifications handed from the config layer to the mesh generators.

Plain frozen dataclasses with float fields, lengths in micrometres. The config layer
(`solver.config`) validates user input and builds these; the checks here are only a
second line of defence against programming errors.
"""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("host", "conductor", "insulator")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


@dataclass(frozen=True)
class ParticleFamily:
    """One particle population of a scaffold.

    Radii follow a lognormal distribution with mean `radius_mean` and standard deviation
    `radius_std`, truncated to [0.5, 2] x `radius_mean` (the truncation shifts the mean
    slightly when the std is large).
    """

    material: str
    role: str
    radius_mean: float
    radius_std: float
    volume_share: float

    def __post_init__(self) -> None:
        _require(self.role in ROLES, f"ParticleFamily.role must be in {ROLES}, not {self.role!r}")
        _require(self.radius_mean > 0, "ParticleFamily.radius_mean must be > 0")
        _require(self.radius_std >= 0, "ParticleFamily.radius_std must be >= 0")
        _require(0 < self.volume_share <= 1, "ParticleFamily.volume_share must be in (0, 1]")
        _require(
            self.material != "" and not any(c in self.material for c in ":|"),
            f"ParticleFamily.material {self.material!r} must be non-empty without ':' or '|'",
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
            _require(
                roles.setdefault(f.material, f.role) == f.role,
                f"ScaffoldSpec: material {f.material!r} given two roles",
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
