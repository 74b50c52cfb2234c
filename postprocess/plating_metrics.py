"""Metrics and plots of a scaffold run's interface current and plated Li (no MPI, no DOLFINx).

Reads the CSV files a scaffold run writes into its folder at the end:

- ``interface_current.csv``: one row per facet of the SE–scaffold interface (the plane
  z = scaffold top): midpoint ``x_um, y_um, z_um``, ``area_um2``, ``kind`` (``EH:<host>``,
  ``EP``, ``EC:<material>``, ``EN:<material>``), ``near_conductor`` (0/1),
  ``current_density_A_per_m2`` (last step) and ``charge_density_C_per_m2`` (its time
  integral over the run).
- ``plated_li.csv``: one row per vertex of the pore mesh: ``x_um, y_um, z_um``,
  ``volume_um3`` (the lumped pore volume of the vertex), ``psi`` (plated-Li volume
  fraction) and ``p_li_MPa``.
- ``timeseries.csv``: ``anode_potential_V`` and ``capacity_alloy_mAh_per_g`` per step.

The current metrics use the charge density, the time-averaged current distribution, not the
current density of the last step. Every statistic over facets is weighted by facet area, so
that a refined mesh patch does not count more than a coarse one of the same area.
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the off-screen backend)

log = logging.getLogger("constrict.postprocess")

INTERFACE_CSV = "interface_current.csv"
PLATED_CSV = "plated_li.csv"
TIMESERIES_CSV = "timeseries.csv"
PERCENTILE = 99.0
# Slack for coordinates written with finite precision: a vertex this far above the scaffold
# top still counts as depth 0, one this far below the band still counts as inside it.
DEPTH_TOLERANCE_UM = 1e-6
METRIC_KEYS = ("hotspot_factor", "current_cov", "inert_contact_current_fraction",
               "interfacial_plating_fraction", "plated_depth_centroid_um",
               "capacity_above_0V_mAh_per_g")


# --- reading ---------------------------------------------------------------------------------


def _read_rows(path: Path) -> list[dict[str, str]]:
    with Path(path).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _column(rows: list[dict[str, str]], key: str) -> np.ndarray:
    """A numeric column; empty cells and 'None' become NaN."""
    return np.array([float(row[key]) if row[key] not in ("", "None") else math.nan
                     for row in rows], dtype=float)


def _facets(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(area µm², charge density C/m², inert-contact mask) of the facets with finite values."""
    rows = _read_rows(path)
    area = _column(rows, "area_um2")
    charge = _column(rows, "charge_density_C_per_m2")
    kind = [row["kind"].strip() for row in rows]
    near = _column(rows, "near_conductor")
    inert = np.array([(k == "EP" and n == 1) or k.split(":")[0] == "EC"
                      for k, n in zip(kind, near, strict=True)], dtype=bool)
    finite = np.isfinite(area) & np.isfinite(charge)
    if not finite.all():
        log.warning("%s: %d facets without a finite area or charge left out", path,
                    int((~finite).sum()))
    return area[finite], charge[finite], inert[finite]


def _plated(path: Path, scaffold_top_um: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(depth below the SE µm, pore volume µm³, ψ) per pore-mesh vertex.

    Raises ValueError when a vertex lies above the scaffold top (a wrong `scaffold_top_um`).
    """
    rows = _read_rows(path)
    depth = scaffold_top_um - _column(rows, "z_um")
    if depth.size and depth.min() < -DEPTH_TOLERANCE_UM:
        raise ValueError(f"{path}: a vertex lies {-depth.min():.3g} um above the scaffold top "
                         f"z = {scaffold_top_um} um; is scaffold_top_um right?")
    return np.maximum(depth, 0.0), _column(rows, "volume_um3"), _column(rows, "psi")


# --- statistics ------------------------------------------------------------------------------


def weighted_percentile(values: np.ndarray, weights: np.ndarray, percentile: float) -> float:
    """The smallest value v such that the entries with value ≤ v carry at least
    `percentile` % of the total weight (the inverse of the weighted step CDF, no
    interpolation). With equal weights and n entries this is the ⌈p·n/100⌉-th smallest."""
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    # The relative slack keeps a weight share of exactly p % (e.g. 0.99 of the area) from
    # falling short through round-off in the cumulative sum.
    index = np.searchsorted(cumulative, percentile / 100.0 * cumulative[-1] * (1 - 1e-12))
    return float(values[order][min(index, values.size - 1)])


def _weighted_mean_std(values: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    mean = float(np.average(values, weights=weights))
    return mean, float(math.sqrt(np.average((values - mean) ** 2, weights=weights)))


# --- metrics ---------------------------------------------------------------------------------


def interface_current_metrics(path: Path) -> dict[str, float | None]:
    """Uniformity of the charge passed through the SE–scaffold interface.

    q is the per-facet charge density (C/m²), A the facet area. With the area-weighted
    mean q̄ = Σ q·A / Σ A and standard deviation σ = (Σ (q − q̄)²·A / Σ A)^½:

    - ``hotspot_factor`` = q₉₉ / q̄, with q₉₉ the area-weighted 99th percentile: the
      smallest q such that the facets with charge density ≤ q cover ≥ 99 % of the
      interface area (`weighted_percentile`; no interpolation between facets).
    - ``current_cov`` = σ / q̄.
    - ``inert_contact_current_fraction`` = the share of the net charge Σ q·A that passed
      through electrolyte|pore facets fed by an inert-conductor contact band
      (``EP`` with near_conductor = 1) and electrolyte|inert-conductor facets (``EC:*``).
      Facets with a negative charge (net stripping) count with their sign.
    - ``interface_area_um2`` = Σ A.

    An empty file gives an area of 0 and None elsewhere; a mean q̄ ≤ 0 (no net
    lithiation) gives None for the three ratios, with the reason logged.
    """
    area, charge, inert = _facets(path)
    total_area = float(area.sum())
    metrics: dict[str, float | None] = {"hotspot_factor": None, "current_cov": None,
                                        "inert_contact_current_fraction": None,
                                        "interface_area_um2": total_area}
    if total_area <= 0.0:
        log.warning("%s: no interface facets; no current metrics", path)
        return metrics
    mean, std = _weighted_mean_std(charge, area)
    if mean <= 0.0:
        log.warning("%s: area-weighted mean charge density %.3g C/m^2 <= 0; "
                    "no current metrics", path, mean)
        return metrics
    metrics["hotspot_factor"] = weighted_percentile(charge, area, PERCENTILE) / mean
    metrics["current_cov"] = std / mean
    metrics["inert_contact_current_fraction"] = (float((charge * area)[inert].sum())
                                                 / (mean * total_area))
    return metrics


def plating_metrics(path: Path, scaffold_top_um: float,
                    band_um: float = 1.0) -> dict[str, float | None]:
    """Where the plated Li sits below the SE.

    Each pore-mesh vertex carries a plated volume ψ·V (V its lumped pore volume) at the
    depth d = scaffold_top_um − z. Returns ``plated_volume_um3`` = Σ ψ·V,
    ``interfacial_plating_fraction`` = the share of it with d ≤ band_um and
    ``plated_depth_centroid_um`` = Σ ψ·V·d / Σ ψ·V; the last two are None when nothing is
    plated.
    """
    depth, volume, psi = _plated(path, scaffold_top_um)
    plated = np.nan_to_num(psi * volume)
    total = float(plated.sum())
    metrics: dict[str, float | None] = {"plated_volume_um3": total,
                                        "interfacial_plating_fraction": None,
                                        "plated_depth_centroid_um": None}
    if total <= 0.0:
        log.info("%s: no plated Li", path)
        return metrics
    metrics["interfacial_plating_fraction"] = float(
        plated[depth <= band_um + DEPTH_TOLERANCE_UM].sum() / total)
    metrics["plated_depth_centroid_um"] = float((plated * depth).sum() / total)
    return metrics


def plated_depth_profile(path: Path, scaffold_top_um: float,
                         n_bins: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bin edges in depth µm, plated volume µm³ per bin, mean ψ per bin).

    The bins split 0 .. the depth of the deepest vertex evenly; the mean ψ of a bin is
    Σ ψ·V / Σ V over its vertices (NaN for a bin without vertices). A file without
    vertices, or with all vertices at depth 0, gives three empty arrays.
    """
    depth, volume, psi = _plated(path, scaffold_top_um)
    if depth.size == 0 or depth.max() <= 0.0:
        return np.empty(0), np.empty(0), np.empty(0)
    edges = np.linspace(0.0, float(depth.max()), n_bins + 1)
    plated, _ = np.histogram(depth, edges, weights=np.nan_to_num(psi * volume))
    pore, _ = np.histogram(depth, edges, weights=volume)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_psi = np.where(pore > 0, plated / pore, np.nan)
    return edges, plated, mean_psi


def capacity_above_0V(timeseries_path: Path) -> float | None:
    """The alloying capacity (mAh/g host) stored before the anode first reaches 0 V vs Li.

    Rows without a potential or capacity are skipped. At the first row whose anode
    potential is ≤ 0 V, the capacity is interpolated linearly in the potential between that
    row and the one before (the exact crossing for a piecewise-linear run); a run that
    starts at ≤ 0 V gives its first value. A run that never reaches 0 V gives its last
    value (the capacity was all stored above 0 V). None for a run without rows.
    """
    rows = _read_rows(timeseries_path)
    if not rows:
        return None
    potential = _column(rows, "anode_potential_V")
    capacity = _column(rows, "capacity_alloy_mAh_per_g")
    keep = np.isfinite(potential) & np.isfinite(capacity)
    potential, capacity = potential[keep], capacity[keep]
    if potential.size == 0:
        return None
    below = np.flatnonzero(potential <= 0.0)
    if below.size == 0:
        return float(capacity[-1])
    i = int(below[0])
    if i == 0:
        return float(capacity[0])
    share = potential[i - 1] / (potential[i - 1] - potential[i])
    return float(capacity[i - 1] + share * (capacity[i] - capacity[i - 1]))


# --- plots -----------------------------------------------------------------------------------


def _no_data(png: Path, title: str, reason: str) -> None:
    figure, ax = plt.subplots(figsize=(5, 3.5))
    ax.text(0.5, 0.5, f"no data\n({reason})", ha="center", va="center", fontsize=12,
            transform=ax.transAxes)
    ax.set_axis_off()
    ax.set_title(title)
    figure.savefig(png, dpi=100)
    plt.close(figure)


def plot_plated_depth_profile(path: Path, png: Path, scaffold_top_um: float, title: str,
                              band_um: float = 1.0, n_bins: int = 20) -> None:
    """Plated volume and mean ψ per depth bin below the SE (depth pointing down), with the
    interfacial band's lower edge marked."""
    edges, plated, mean_psi = plated_depth_profile(path, scaffold_top_um, n_bins)
    if edges.size == 0:
        _no_data(png, title, "no pore vertices below the SE")
        return
    centers = 0.5 * (edges[1:] + edges[:-1])
    height = np.diff(edges)
    figure, (left, right) = plt.subplots(1, 2, figsize=(8, 4.5), sharey=True)
    left.barh(centers, plated, height=height, color="C2", alpha=0.8)
    left.set_xlabel("plated Li per bin (µm³)")
    left.set_ylabel("depth below the SE (µm)")
    right.plot(mean_psi, centers, "o-", color="C0")
    right.set_xlabel("mean ψ (plated volume fraction)")
    right.set_xlim(left=0.0)
    for ax in (left, right):
        ax.axhline(band_um, color="C3", ls="--", lw=1, label=f"band {band_um:g} µm")
    left.set_ylim(edges[-1], 0.0)  # depth points down, the SE at the top
    left.legend(fontsize=8)
    if plated.sum() <= 0.0:
        left.text(0.5, 0.5, "nothing plated", ha="center", transform=left.transAxes)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(png, dpi=120)
    plt.close(figure)


def plot_current_histogram(path: Path, png: Path, title: str, bins: int = 40) -> None:
    """Area-weighted histogram of the per-facet charge density over its area-weighted mean
    (bar heights: the share of the interface area), the mean (1) and q₉₉/q̄ marked."""
    area, charge, _ = _facets(path)
    if area.sum() <= 0.0:
        _no_data(png, title, "no interface facets")
        return
    mean, _ = _weighted_mean_std(charge, area)
    if mean <= 0.0:
        _no_data(png, title, f"mean charge density {mean:.3g} C/m² ≤ 0")
        return
    ratio = charge / mean
    hotspot = weighted_percentile(charge, area, PERCENTILE) / mean
    figure, ax = plt.subplots(figsize=(6, 4))
    ax.hist(ratio, bins=bins, weights=area / area.sum(), color="C0", alpha=0.8)
    ax.axvline(1.0, color="k", lw=1, label="mean")
    ax.axvline(hotspot, color="C3", ls="--", lw=1, label=f"99th percentile ({hotspot:.3g})")
    ax.set_xlabel("charge density / area-weighted mean")
    ax.set_ylabel("share of the interface area")
    ax.set_title(title)
    ax.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(png, dpi=120)
    plt.close(figure)


# --- a run folder ----------------------------------------------------------------------------


def write_plating_outputs(folder: Path, scaffold_top_um: float,
                          band_um: float = 1.0) -> dict[str, float | None]:
    """The metrics of `METRIC_KEYS` for a run folder, plus ``current_histogram.png`` and
    ``plated_depth.png`` in it. Each CSV is used when it is there; the metrics of a missing
    one are None (and its figure is not drawn)."""
    folder = Path(folder)
    metrics: dict[str, float | None] = dict.fromkeys(METRIC_KEYS)
    interface = folder / INTERFACE_CSV
    if interface.is_file():
        current = interface_current_metrics(interface)
        metrics |= {key: current[key] for key in
                    ("hotspot_factor", "current_cov", "inert_contact_current_fraction")}
        plot_current_histogram(interface, folder / "current_histogram.png",
                               "SE–scaffold interface: charge density")
    plated = folder / PLATED_CSV
    if plated.is_file():
        plating = plating_metrics(plated, scaffold_top_um, band_um)
        metrics |= {key: plating[key] for key in
                    ("interfacial_plating_fraction", "plated_depth_centroid_um")}
        plot_plated_depth_profile(plated, folder / "plated_depth.png", scaffold_top_um,
                                  "plated Li below the SE", band_um)
    series = folder / TIMESERIES_CSV
    if series.is_file():
        metrics["capacity_above_0V_mAh_per_g"] = capacity_above_0V(series)
    return metrics
