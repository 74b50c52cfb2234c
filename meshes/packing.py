"""Seeded random packing of overlapping spheres ("pressed contacts") in the scaffold box.

Algorithm (laterally periodic, floor at z=0, SE above z=height):

1. Draw particles one at a time: the family is the one furthest below its volume share,
   the radius comes from that family's truncated lognormal distribution; each particle is
   placed at the best of 24 random positions (largest clearance to the others).
2. Relax by Jacobi projection sweeps (each particle moves by the mean of the corrections
   of its active constraints; positions are then clipped to the floor and lid):
   - pressed contacts: the overlap h = r_i + r_j - d of a pair, or the depth of a sphere
     in the floor z=0 (the current collector), stays below h_max = overlap * min(r);
   - no near-tangency: a pair either overlaps by >= CONTACT_MIN * h_max or keeps a gap
     >= MIN_GAP * min(r) (it is moved to the nearer side); a sphere cuts the plane
     z=height, the lateral planes and their vertical edges by a cap >= BAND * r high or
     stays BAND * r away; a contact circle cuts those planes clearly (not near its rim nor
     its centre) or misses them. This keeps the OpenCASCADE booleans free of tiny edges
     and the mesh free of needles;
   - support: a particle touching nothing (no contact, not on the floor, not protruding
     into the SE) is pulled onto its nearest neighbour or the floor;
   - centres stay below z=height; particles protrude into the first SE layer (and end
     below its top).
   When progress stalls with constraints still broken, the offending particles are shaken.
3. Remove a particle that cannot be relaxed; add or remove particles (and swap one of a
   family in surplus for one in deficit) until the volume fraction inside the box is
   within 0.002 of the target and every family within 3/4 of a particle of its share;
   the last fraction of a particle is made up by scaling all radii (by < 2 %, so radii can
   leave the truncation range by that much).

Coated particles (a family with a `coating` of thickness t) are packed as whole spheres;
their contacts are overlaps of the shells only: the pair overlap and the depth into the
floor stay below min(overlap * min(r), COATED_CONTACT * t) (t the thinner coating of the
pair), so a core keeps >= (1 - COATED_CONTACT) t from every other sphere and the floor.
Their cores (radius r - t) also obey the near-tangency rule against the planes and edges.

Limits: Jacobi relaxation jams well below random close packing: with overlap = 0.05,
fractions up to about 0.5 pack in seconds, 0.55 only sometimes; ValueError otherwise.
Particles may be supported only through periodic neighbours (see `Packing.isolated`).
Packing time grows roughly with n^1.5 (about 10 s for 200 particles).

The returned `Packing` lists every periodic copy that intersects the box as its own
sphere (`parent` maps copies to originals), so the box clips them plainly.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from meshes.spec import ScaffoldSpec

log = logging.getLogger("constrict.meshes")

MIN_GAP = 0.1  # accepted gap between non-touching spheres, x min(r)
CONTACT_MIN = 0.3  # accepted overlap of touching spheres, x h_max
PULL_TO, PUSH_TO = 0.6, 0.9  # projection targets, x h_max
BAND = 0.1  # forbidden |cap height| of spheres against planes and edges, x r
CIRCLE_BAND = 0.3  # the same for contact circles against planes, x circle radius
FRACTION_TOL = 0.002
CANDIDATES = 24
MAX_FRACTION = 0.6  # targets above are refused at once
MAX_FAILURES = 5  # relaxations in a row that fail: the target is too dense
STALL, SHAKE = 50, 0.05  # sweeps without progress before shaking; shake size x r
COATED_CONTACT = 0.5  # largest contact overlap of a coated particle, x its coating thickness


@dataclass(frozen=True)
class Packing:
    """Spheres intersecting the box [box_lo, box_hi]; lengths in um.

    centres (n, 3), radii (n,), family (n,) index into the spec's families, parent (n,)
    index of the periodic original (a particle's own index for originals).
    """

    centres: np.ndarray
    radii: np.ndarray
    family: np.ndarray
    parent: np.ndarray
    box_lo: tuple[float, float, float]
    box_hi: tuple[float, float, float]
    n_families: int

    def _owner(self, max_points: int = 1_000_000) -> np.ndarray:
        """Owner particle of each point of a regular grid over the box (-1: outside all).

        A point in several spheres goes to the lowest parent index, as the overlap lenses do
        in the geometry. Deterministic (no random numbers); error ~ (grid spacing / r)^2.
        """
        lo, hi = np.array(self.box_lo), np.array(self.box_hi)
        h = (np.prod(hi - lo) / max_points) ** (1 / 3)
        axes = [np.arange(a + h / 2, b, h) for a, b in zip(lo, hi, strict=True)]
        pts = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
        owner = np.full(len(pts), -1)
        tree = cKDTree(pts)
        hits = tree.query_ball_point(self.centres, self.radii)
        for i in np.argsort(self.parent, kind="stable")[::-1]:
            owner[hits[i]] = i
        return owner

    def volume_fraction_in_box(self) -> float:
        """Volume of the union of the spheres inside the box / box volume (grid estimate)."""
        return float(np.mean(self._owner() >= 0))

    def volume_shares(self) -> np.ndarray:
        """Share of each family in the particle volume inside the box (grid estimate)."""
        owner = self._owner()
        counts = np.bincount(self.family[owner[owner >= 0]], minlength=self.n_families)
        return counts / counts.sum()

    def overlaps(self) -> tuple[np.ndarray, np.ndarray]:
        """Overlapping pairs (k, 2) and their overlap depths r_i + r_j - d (> 0)."""
        pairs = cKDTree(self.centres).query_pairs(2 * self.radii.max(), output_type="ndarray")
        d = np.linalg.norm(self.centres[pairs[:, 0]] - self.centres[pairs[:, 1]], axis=1)
        h = self.radii[pairs[:, 0]] + self.radii[pairs[:, 1]] - d
        return pairs[h > 0], h[h > 0]

    def isolated(self) -> np.ndarray:
        """Spheres touching no other listed sphere, nor the floor, nor the SE above.

        A copy cut by a lateral face may be held only through its part outside the box.
        """
        pairs, _ = self.overlaps()
        touching = np.zeros(len(self.radii), bool)
        touching[pairs.ravel()] = True
        touching |= self.centres[:, 2] - self.radii < self.box_lo[2]
        touching |= self.centres[:, 2] + self.radii > self.box_hi[2]
        return np.flatnonzero(~touching)

    def to_dict(self) -> dict:
        return {
            "centres": self.centres.tolist(),
            "radii": self.radii.tolist(),
            "family": self.family.tolist(),
            "parent": self.parent.tolist(),
            "box_lo": list(self.box_lo),
            "box_hi": list(self.box_hi),
            "n_families": self.n_families,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Packing:
        return cls(
            centres=np.asarray(d["centres"], float).reshape(-1, 3),
            radii=np.asarray(d["radii"], float),
            family=np.asarray(d["family"], int),
            parent=np.asarray(d["parent"], int),
            box_lo=tuple(d["box_lo"]),
            box_hi=tuple(d["box_hi"]),
            n_families=int(d["n_families"]),
        )


def _cap(r: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Volume of a spherical cap of height a (clipped to [0, 2r])."""
    a = np.clip(a, 0.0, 2 * r)
    return np.pi * a**2 * (3 * r - a) / 3


def _lens(r1: np.ndarray, r2: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Volume of the intersection of two spheres at distance d (partial overlap)."""
    return np.pi * (r1 + r2 - d) ** 2 * (d**2 + 2 * d * (r1 + r2) - 3 * (r1 - r2) ** 2) / (12 * d)


def _contact_targets(h: np.ndarray, hmax: np.ndarray, gap: np.ndarray) -> np.ndarray:
    """Projection targets for overlaps h: below h_max, and out of the near-tangent band
    (-gap, CONTACT_MIN h_max) on its nearer side."""
    hc = CONTACT_MIN * hmax
    band = (h > -gap) & (h < hc)
    join = band & (h >= 0.5 * (hc - gap))
    target = np.where(h > hmax, PUSH_TO * hmax, h)
    target = np.where(join, PULL_TO * hmax, target)
    return np.where(band & ~join, -1.25 * gap, target)


def _contact_violations(h: np.ndarray, hmax: np.ndarray, gap: np.ndarray) -> np.ndarray:
    return (h > hmax * (1 + 1e-9)) | ((h > -gap) & (h < CONTACT_MIN * hmax))


class _Packer:
    """State of the periodic packing: originals only, x in [0, lx), y in [0, ly)."""

    def __init__(self, spec: ScaffoldSpec) -> None:
        self.spec = spec
        self.rng = np.random.default_rng(spec.seed)
        self.c = np.empty((0, 3))
        self.r = np.empty(0)
        self.fam = np.empty(0, int)
        self.shares = np.array([f.volume_share for f in spec.families])
        # coating thickness of each family; np.inf without a coating (no limit on contacts)
        self.coat = np.array([f.thickness if f.coating else np.inf for f in spec.families])
        self.box_volume = spec.lx * spec.ly * spec.height
        rmax = spec.max_radius
        self.cutoff = 2.2 * rmax  # pair search radius
        self.zoff = 2 * rmax
        self.zbox = spec.height + 2 * self.zoff + 2 * self.cutoff

    # -- drawing and placing -------------------------------------------------------
    def _radius(self, k: int) -> float:
        f = self.spec.families[k]
        if f.radius_std == 0:
            return f.radius_mean
        s2 = math.log(1 + (f.radius_std / f.radius_mean) ** 2)
        while True:
            r = self.rng.lognormal(math.log(f.radius_mean) - s2 / 2, math.sqrt(s2))
            if 0.5 * f.radius_mean <= r <= 2 * f.radius_mean:
                return float(r)

    def _clipped_volumes(self) -> np.ndarray:
        """Volume of each sphere between z=0 and z=height (lateral faces are periodic)."""
        c, r = self.c, self.r
        return 4 / 3 * np.pi * r**3 - _cap(r, r - c[:, 2]) - _cap(r, c[:, 2] + r - self.spec.height)

    def _family_volumes(self) -> np.ndarray:
        vols = self._clipped_volumes()
        return np.bincount(self.fam, weights=vols, minlength=len(self.shares))

    def share_surplus(self) -> np.ndarray:
        """Volume of each family beyond its share, in units of the family's mean particle."""
        vols = self._family_volumes()
        means = [4 / 3 * np.pi * f.radius_mean**3 for f in self.spec.families]
        return (vols - self.shares * vols.sum()) / means

    def _zmax(self, r: np.ndarray | float) -> np.ndarray | float:
        """Highest centre: at z=height, or lower so the sphere ends below the first SE layer."""
        s = self.spec
        return np.minimum(s.height, s.height + s.layers[0].thickness - (1 + 2 * BAND) * r)

    def _min_image(self, dv: np.ndarray) -> np.ndarray:
        for a, length in ((0, self.spec.lx), (1, self.spec.ly)):
            dv[..., a] -= length * np.round(dv[..., a] / length)
        return dv

    def add(self) -> None:
        """Add a particle of the family furthest below its share, at the best of
        CANDIDATES random places (largest clearance)."""
        vols = self._family_volumes()
        k = int(np.argmax(self.shares * vols.sum() - vols if vols.any() else self.shares))
        r = self._radius(k)
        s = self.spec
        cand = self.rng.random((CANDIDATES, 3)) * [s.lx, s.ly, 1.0]
        zlo = r * (1 - PULL_TO * s.overlap)
        if np.isfinite(self.coat[k]):
            zlo = r - PULL_TO * min(s.overlap * r, COATED_CONTACT * self.coat[k])
        cand[:, 2] = zlo + cand[:, 2] * (self._zmax(r) - zlo)
        if len(self.r):
            dv = self._min_image(self.c[None, :, :] - cand[:, None, :])
            clearance = (np.linalg.norm(dv, axis=2) - self.r[None, :]).min(axis=1)
            cand = cand[[int(np.argmax(clearance))]]
        self.c = np.vstack([self.c, cand[:1]])
        self.r = np.append(self.r, r)
        self.fam = np.append(self.fam, k)

    def remove(self, among: np.ndarray | None = None) -> None:
        """Remove a random particle: one of `among` if given, else of the family with the
        largest volume surplus."""
        if among is None:
            vols = self._family_volumes()
            among = np.flatnonzero(self.fam == int(np.argmax(vols - self.shares * vols.sum())))
        i = int(self.rng.choice(among))
        self.c, self.r, self.fam = (np.delete(a, i, axis=0) for a in (self.c, self.r, self.fam))

    # -- constraints -----------------------------------------------------------------
    def _pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Candidate pairs (i, j) and minimum-image vectors c_j - c_i."""
        s = self.spec
        pts = self.c + [0.0, 0.0, self.zoff]
        pts[:, 0] %= s.lx
        pts[:, 1] %= s.ly
        pts[:, 2] = np.clip(pts[:, 2], 0.0, self.zbox * (1 - 1e-12))
        tree = cKDTree(pts, boxsize=[s.lx, s.ly, self.zbox])
        p = tree.query_pairs(self.cutoff, output_type="ndarray")
        i, j = p[:, 0], p[:, 1]
        return i, j, self._min_image(self.c[j] - self.c[i])

    def _contacts(self) -> tuple[np.ndarray, ...]:
        """Pairs (i, j), vectors c_j - c_i, distances, overlaps h, h_max and minimum gaps."""
        i, j, dv = self._pairs()
        d = np.linalg.norm(dv, axis=1)
        rmin = np.minimum(self.r[i], self.r[j])
        hmax = self.spec.overlap * rmin
        t = self.coat[self.fam]
        coated = np.isfinite(np.minimum(t[i], t[j]))
        if coated.any():  # only shells overlap (module docstring)
            hmax[coated] = np.minimum(hmax, COATED_CONTACT * np.minimum(t[i], t[j]))[coated]
        return i, j, dv, d, self.r[i] + self.r[j] - d, hmax, MIN_GAP * rmin

    def _floor_hmax(self) -> np.ndarray:
        """Largest depth of each sphere into the floor z=0."""
        hmax = self.spec.overlap * self.r
        t = self.coat[self.fam]
        coated = np.isfinite(t)
        hmax[coated] = np.minimum(hmax, COATED_CONTACT * t)[coated]
        return hmax

    def _cores(self) -> tuple[np.ndarray, np.ndarray]:
        """Coated particles and their core radii."""
        t = self.coat[self.fam]
        k = np.flatnonzero(np.isfinite(t))
        return k, self.r[k] - t[k]

    def _planes(self, x: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, int | None]]:
        """Distance e from points x to the plane z=height, the lateral planes and the lateral
        edges, the unit direction that increases e, and the plane's normal axis (None: edge)."""
        s = self.spec
        lateral = []
        for a, length in ((0, s.lx), (1, s.ly)):
            xa = x[:, a] % length
            lateral.append((np.minimum(xa, length - xa), np.where(xa < length / 2, 1.0, -1.0)))
        (ex, sx), (ey, sy) = lateral
        ee = np.maximum(np.hypot(ex, ey), 1e-12)
        ez = x[:, 2] - s.height
        sz = np.where(ez > 0, 1.0, -1.0)
        zero = np.zeros(len(x))
        return [
            (np.abs(ez), np.stack([zero, zero, sz], axis=1), 2),
            (ex, np.stack([sx, zero, zero], axis=1), 0),
            (ey, np.stack([zero, sy, zero], axis=1), 1),
            (ee, np.stack([sx * ex / ee, sy * ey / ee, zero], axis=1), None),
        ]

    def _circles(self, contacts: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        """Contact circles of the touching pairs: (i, j, centre, radius, unit normal)."""
        i, j, dv, d, h, _, _ = contacts
        on = h > 0
        i, j, dv, d = i[on], j[on], dv[on], d[on]
        ri, rj = self.r[i], self.r[j]
        t = (d**2 + ri**2 - rj**2) / (2 * d)
        u = dv / d[:, None]
        return i, j, self.c[i] + t[:, None] * u, np.sqrt(np.maximum(ri**2 - t**2, 0.0)), u

    def _features(self, contacts: tuple[np.ndarray, ...]) -> list[tuple[np.ndarray, ...]]:
        """Near-tangency checks as (particles, e, extent, band, direction): the sphere or
        contact circle of extent rho across a plane or edge at distance e must either cut
        it clearly or miss it: |rho - e| >= band. Moving along `direction` increases e.
        A plane must also keep clear of a contact circle's centre (OpenCASCADE puts the
        circle's vertex on a line through the centre parallel to a box plane)."""
        r = self.r
        every = np.arange(len(r))
        features = [(every, e, r, BAND * r, direction) for e, direction, _ in self._planes(self.c)]
        k, rc = self._cores()
        if len(k):
            planes = self._planes(self.c[k])
            features += [(k, e, rc, BAND * rc, direction) for e, direction, _ in planes]
        i, j, centre, a, u = self._circles(contacts)
        for e, direction, axis in self._planes(centre):
            if axis is not None:
                rho = a * np.sqrt(np.maximum(1 - u[:, axis] ** 2, 0.0))
                for k in (i, j):
                    features.append((k, e, rho, CIRCLE_BAND * a, direction))
                    features.append((k, e, 0 * rho, CIRCLE_BAND * a, direction))
        return features

    def _violations(self) -> np.ndarray:
        """Particles that break a hard constraint (overlap, near-tangency, lid)."""
        c, r = self.c, self.r
        contacts = self._contacts()
        i, j, _, _, h, hmax, gap = contacts
        bad = c[:, 2] > self._zmax(r) + 1e-9
        pair = _contact_violations(h, hmax, gap)
        bad[i[pair]] = bad[j[pair]] = True
        bad |= _contact_violations(r - c[:, 2], self._floor_hmax(), MIN_GAP * r)
        for k, e, rho, band, _ in self._features(contacts):
            bad[k[np.abs(rho - e) < band]] = True
        return bad

    def _sweep(self) -> tuple[int, int]:
        """One Jacobi projection sweep; returns the numbers of projected constraints and of
        particles without support."""
        s, c, r = self.spec, self.c, self.r
        n = len(r)
        disp, cnt = np.zeros_like(c), np.zeros(n)
        active = 0

        def project(idx: np.ndarray, move: np.ndarray, on: np.ndarray) -> None:
            nonlocal active
            np.add.at(disp, idx[on], move[on])
            np.add.at(cnt, idx[on], 1)
            active += int(on.sum())

        # contacts: pairs (h = r_i + r_j - d) and the floor (h = r - z, a pressed contact
        # with the current collector)
        contacts = self._contacts()
        i, j, dv, d, h, hmax, gap = contacts
        hf = r - c[:, 2]
        target = _contact_targets(h, hmax, gap)
        hmax_f = self._floor_hmax()
        target_f = _contact_targets(hf, hmax_f, MIN_GAP * r)
        # a particle without support (no contact, not on the floor, not held by the SE)
        # is pulled onto its nearest neighbour or the floor, whichever is closer
        supported = (hf > 0) | (c[:, 2] + r > s.height)
        supported[i[h > 0]] = supported[j[h > 0]] = True
        who, pair = np.concatenate([i, j]), np.tile(np.arange(len(i)), 2)
        order = np.lexsort((np.tile(-h, 2), who))
        first_of, first = np.unique(who[order], return_index=True)
        nearest_pair = np.full(n, -1)
        nearest_pair[first_of] = pair[order[first]]
        nearest_gap = np.where(nearest_pair >= 0, -h[nearest_pair], np.inf)
        lonely = np.flatnonzero(~supported)
        to_floor = lonely[-hf[lonely] <= nearest_gap[lonely]]
        to_pair = nearest_pair[np.setdiff1d(lonely, to_floor)]
        # (uncoated spheres: the same numbers, in the original floating-point order)
        coated = np.isfinite(self.coat[self.fam])
        target_f[to_floor] = np.where(coated, PULL_TO * hmax_f, s.overlap * PULL_TO * r)[to_floor]
        target[to_pair] = PULL_TO * hmax[to_pair]
        move = (0.5 * (target - h) / d)[:, None] * dv
        project(i, move, target != h)
        project(j, -move, target != h)
        project(np.arange(n), np.outer(hf - target_f, [0.0, 0.0, 1.0]), target_f != hf)
        # spheres and contact circles cut by planes and edges: |rho - e| >= band
        for k, e, rho, band, direction in self._features(contacts):
            cuts = (rho - e >= 0) & (rho > 1.25 * band)
            target_e = rho - np.where(cuts, 1.25, -1.25) * band
            project(k, (target_e - e)[:, None] * direction, np.abs(rho - e) < 1.25 * band)
        c += disp / np.maximum(cnt, 1)[:, None]
        # hard walls: the floor (at most h_max deep) and the lid (centres below z=height,
        # spheres below the top of the first SE layer)
        c[:, 2] = np.clip(c[:, 2], np.where(coated, r - hmax_f, r * (1 - s.overlap)), self._zmax(r))
        c[:, 0] %= s.lx
        c[:, 1] %= s.ly
        return active, len(lonely)

    def relax(self, max_sweeps: int = 4000) -> bool:
        """Project until no constraint is active; when progress stalls, accept the state if
        no hard constraint is broken, else shake the offending particles. True on success."""
        best, stalled = np.inf, 0
        for sweep in range(max_sweeps):
            active, lonely = self._sweep()
            if active == 0:
                return True
            best, stalled = (active, 0) if active < best else (best, stalled + 1)
            if sweep % 10 == 0 and lonely == 0 and not self._violations().any():
                return True
            if stalled >= STALL:
                bad = self._violations()
                if not bad.any():
                    return True
                self.c[bad] += self.rng.normal(scale=SHAKE, size=(bad.sum(), 3)) * self.r[bad, None]
                best, stalled = np.inf, 0
        return not self._violations().any()

    # -- volume ----------------------------------------------------------------------
    def fraction(self) -> float:
        """Particle volume inside the box / box volume.

        Exact for lateral periodicity up to triple overlaps: clipped sphere volumes minus
        the pairwise lenses whose contact point lies in 0 < z < height.
        """
        s, c, r = self.spec, self.c, self.r
        v = self._clipped_volumes()
        i, j, dv = self._pairs()
        d = np.linalg.norm(dv, axis=1)
        hit = d < r[i] + r[j]
        i, j, dv, d = i[hit], j[hit], dv[hit], d[hit]
        zc = c[i, 2] + dv[:, 2] / d * (r[i] - 0.5 * (r[i] + r[j] - d))
        inside = (zc > 0) & (zc < s.height)
        return float((v.sum() - _lens(r[i], r[j], d)[inside].sum()) / self.box_volume)

    # -- output ----------------------------------------------------------------------
    def packing(self) -> Packing:
        """All periodic copies that intersect the box, originals first."""
        s = self.spec
        centres, radii, family, parent = [], [], [], []
        shifts = sorted(((a, b) for a in (-1, 0, 1) for b in (-1, 0, 1)), key=lambda t: t != (0, 0))
        for shift in shifts:
            cs = self.c + [shift[0] * s.lx, shift[1] * s.ly, 0.0]
            keep = (
                (cs[:, 0] - self.r < s.lx)
                & (cs[:, 0] + self.r > 0)
                & (cs[:, 1] - self.r < s.ly)
                & (cs[:, 1] + self.r > 0)
            )
            centres.append(cs[keep])
            radii.append(self.r[keep])
            family.append(self.fam[keep])
            parent.append(np.flatnonzero(keep))
        return Packing(
            centres=np.concatenate(centres),
            radii=np.concatenate(radii),
            family=np.concatenate(family),
            parent=np.concatenate(parent),
            box_lo=(0.0, 0.0, 0.0),
            box_hi=(s.lx, s.ly, s.height),
            n_families=len(s.families),
        )


def pack(spec: ScaffoldSpec, max_rounds: int = 100) -> Packing:
    """Random pressed-contact packing of `spec.families` at `spec.solid_fraction`.

    Raises ValueError if the target fraction cannot be reached without violating the
    overlap bounds.
    """
    target = spec.solid_fraction
    if target > MAX_FRACTION:
        raise ValueError(
            f"solid_fraction {target:.3f} not reachable: this packer jams below {MAX_FRACTION}"
        )
    p = _Packer(spec)
    mean_volume = sum(f.volume_share * 4 / 3 * np.pi * f.radius_mean**3 for f in spec.families)
    while p.r.size == 0 or (4 / 3 * np.pi * p.r**3).sum() < target * p.box_volume:
        p.add()
    failures = 0
    for _ in range(max_rounds):
        relaxed = p.relax()
        f = p.fraction()
        log.debug("packing: n=%d fraction=%.4f relaxed=%s", p.r.size, f, relaxed)
        deficit = (target - f) * p.box_volume / mean_volume  # in mean particles
        failures = 0 if relaxed else failures + 1
        if failures > MAX_FAILURES:
            break
        if not relaxed:
            p.remove(among=np.flatnonzero(p._violations()))
        elif abs(target - f) <= FRACTION_TOL and np.abs(p.share_surplus()).max() < 0.75:
            return p.packing()
        elif deficit < -0.5:
            for _ in range(max(1, round(-deficit / 2))):
                p.remove()
        elif deficit > 0.5:
            for _ in range(max(1, round(deficit / 2))):
                p.add()
        elif np.abs(p.share_surplus()).max() >= 0.75:
            p.remove()
            p.add()
        else:
            p.r *= np.clip((target / f) ** (1 / 3), 0.98, 1.02)
    raise ValueError(
        f"solid_fraction {target:.3f} not reachable with overlap {spec.overlap}: "
        f"the packing jams at about {f:.3f} ({p.r.size} particles)"
    )
