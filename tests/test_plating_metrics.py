"""Interface-current and plated-Li metrics of a scaffold run (postprocess/plating_metrics.py)
on synthetic CSV files whose answers are known in closed form."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from postprocess.plating_metrics import (
    METRIC_KEYS,
    capacity_above_0V,
    interface_current_metrics,
    plated_depth_profile,
    plating_metrics,
    plot_current_histogram,
    plot_plated_depth_profile,
    weighted_percentile,
    write_plating_outputs,
)

INTERFACE_COLUMNS = ["x_um", "y_um", "z_um", "area_um2", "kind", "near_conductor",
                     "current_density_A_per_m2", "charge_density_C_per_m2"]
PLATED_COLUMNS = ["x_um", "y_um", "z_um", "volume_um3", "psi", "p_li_MPa"]
TOP = 10.0  # scaffold top (µm)
PNG_MAGIC = b"\x89PNG"


def write_csv(path: Path, columns: list[str], rows: list[dict]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def interface(path: Path, charge: list[float], area: list[float],
              kind: list[str] | None = None, near: list[int] | None = None) -> Path:
    kind = kind or ["EH:Si"] * len(charge)
    near = near or [0] * len(charge)
    rows = [{"x_um": i, "y_um": 0.0, "z_um": TOP, "area_um2": a, "kind": k,
             "near_conductor": n, "current_density_A_per_m2": 1.0,
             "charge_density_C_per_m2": q}
            for i, (q, a, k, n) in enumerate(zip(charge, area, kind, near, strict=True))]
    return write_csv(path / "interface_current.csv", INTERFACE_COLUMNS, rows)


def plated(path: Path, depth: list[float], volume: list[float], psi: list[float]) -> Path:
    rows = [{"x_um": 0.0, "y_um": 0.0, "z_um": TOP - d, "volume_um3": v, "psi": p,
             "p_li_MPa": 0.0} for d, v, p in zip(depth, volume, psi, strict=True)]
    return write_csv(path / "plated_li.csv", PLATED_COLUMNS, rows)


def timeseries(path: Path, potential: np.ndarray, capacity: np.ndarray) -> Path:
    rows = [{"time_s": i, "anode_potential_V": v, "current_density_A_per_m2": 1.0,
             "capacity_alloy_mAh_per_g": c, "capacity_plating_mAh_per_g": ""}
            for i, (v, c) in enumerate(zip(potential, capacity, strict=True))]
    return write_csv(path / "timeseries.csv", list(rows[0]), rows)


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:4] == PNG_MAGIC and path.stat().st_size > 2_000


# --- interface current -----------------------------------------------------------------------


def test_uniform_charge_has_no_hotspot_and_no_spread(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    area = rng.uniform(0.01, 0.1, 50)
    path = interface(tmp_path, [3.7] * 50, list(area))
    metrics = interface_current_metrics(path)
    assert metrics["hotspot_factor"] == pytest.approx(1.0, rel=1e-12)
    assert metrics["current_cov"] == pytest.approx(0.0, abs=1e-12)
    assert metrics["interface_area_um2"] == pytest.approx(area.sum(), rel=1e-12)
    assert metrics["inert_contact_current_fraction"] == 0.0


@pytest.mark.parametrize(("f", "a", "b"), [(0.3, 1.0, 4.0), (0.995, 1.0, 10.0),
                                           (0.99, 2.0, 5.0), (0.98, 2.0, 5.0)])
def test_two_level_distribution_matches_the_analytic_moments(
        tmp_path: Path, f: float, a: float, b: float) -> None:
    """Area share f at q = a, the rest at b > a, over facets of unequal area: mean
    f a + (1 − f) b, std (b − a)√(f(1 − f)); the 99th percentile is b when the b facets
    cover more than 1 % of the area and a when they cover 1 % or less."""
    low = [f * 0.25, f * 0.75]  # two facets of unequal area at a
    high = [(1 - f) * 0.6, (1 - f) * 0.4]
    path = interface(tmp_path, [a, a, b, b], low + high)
    mean = f * a + (1 - f) * b
    std = (b - a) * math.sqrt(f * (1 - f))
    p99 = b if 1 - f > 0.01 + 1e-12 else a
    metrics = interface_current_metrics(path)
    assert metrics["current_cov"] == pytest.approx(std / mean, rel=1e-9)
    assert metrics["hotspot_factor"] == pytest.approx(p99 / mean, rel=1e-12)
    assert metrics["interface_area_um2"] == pytest.approx(1.0, rel=1e-12)


def test_area_weighting_decides_the_mean_and_the_percentile(tmp_path: Path) -> None:
    """The same three values with the hot facet large or small: unweighted statistics
    would give the same answer for both."""
    values = [1.0, 1.0, 9.0]
    hot_large = interface_current_metrics(interface(tmp_path, values, [0.25, 0.25, 0.5]))
    assert hot_large["hotspot_factor"] == pytest.approx(9.0 / 5.0)  # mean 0.5·1 + 0.5·9
    assert hot_large["current_cov"] == pytest.approx(4.0 / 5.0)
    hot_small = interface_current_metrics(interface(tmp_path, values, [0.4975, 0.4975, 0.005]))
    mean = 0.995 * 1.0 + 0.005 * 9.0
    assert hot_small["hotspot_factor"] == pytest.approx(1.0 / mean)  # 0.5 % of area is hot
    assert hot_small["current_cov"] == pytest.approx(8.0 * math.sqrt(0.995 * 0.005) / mean)


def test_weighted_percentile_with_equal_weights_is_the_ceil_rank() -> None:
    values = np.arange(1.0, 201.0)[::-1].copy()
    weights = np.ones_like(values)
    assert weighted_percentile(values, weights, 99.0) == 198.0  # ⌈0.99·200⌉-th smallest
    assert weighted_percentile(values, weights, 50.0) == 100.0
    assert weighted_percentile(values, weights, 100.0) == 200.0


def test_inert_contact_fraction_counts_conductor_fed_pores_and_conductor_facets(
        tmp_path: Path) -> None:
    kind = ["EH:Si", "EP", "EP", "EC:Cu", "EN:Al2O3", "EH:graphite"]
    near = [0, 1, 0, 0, 0, 0]
    charge = [2.0, 3.0, 5.0, 7.0, 0.0, 1.0]
    area = [1.0, 2.0, 1.0, 0.5, 1.0, 1.0]
    metrics = interface_current_metrics(interface(tmp_path, charge, area, kind, near))
    total = sum(q * a for q, a in zip(charge, area, strict=True))
    assert metrics["inert_contact_current_fraction"] == pytest.approx((3.0 * 2.0 + 7.0 * 0.5)
                                                                      / total)


@pytest.mark.parametrize("charge", [[0.0, 0.0], [-1.0, 0.5]])
def test_no_net_charge_gives_none_not_a_crash(tmp_path: Path, charge: list[float]) -> None:
    metrics = interface_current_metrics(interface(tmp_path, charge, [1.0, 1.0]))
    assert metrics["hotspot_factor"] is None and metrics["current_cov"] is None
    assert metrics["inert_contact_current_fraction"] is None
    assert metrics["interface_area_um2"] == 2.0


def test_empty_interface_file_gives_none(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "interface_current.csv", INTERFACE_COLUMNS, [])
    metrics = interface_current_metrics(path)
    assert metrics == {"hotspot_factor": None, "current_cov": None,
                       "inert_contact_current_fraction": None, "interface_area_um2": 0.0}


# --- plated Li -------------------------------------------------------------------------------


def test_uniform_layer_in_the_top_half_micron(tmp_path: Path) -> None:
    """ψ = 0.3 on 11 equal-volume vertices spread evenly over depth [0, 0.5] µm, nothing
    deeper: all of it interfacial, centroid at 0.25 µm."""
    depth = list(np.linspace(0.0, 0.5, 11)) + list(np.linspace(0.6, 5.0, 20))
    psi = [0.3] * 11 + [0.0] * 20
    path = plated(tmp_path, depth, [0.2] * 31, psi)
    metrics = plating_metrics(path, TOP, band_um=1.0)
    assert metrics["plated_volume_um3"] == pytest.approx(11 * 0.3 * 0.2)
    assert metrics["interfacial_plating_fraction"] == pytest.approx(1.0)
    assert metrics["plated_depth_centroid_um"] == pytest.approx(0.25, rel=1e-12)


def test_half_the_plated_volume_below_the_band(tmp_path: Path) -> None:
    """Equal plated volumes at 0.5 µm (ψ 0.5 on volume 2) and 3 µm (ψ 1 on volume 1); the
    vertex exactly at the band edge (1 µm) has no plating but counts as inside."""
    path = plated(tmp_path, [0.5, 1.0, 3.0], [2.0, 1.0, 1.0], [0.5, 0.0, 1.0])
    metrics = plating_metrics(path, TOP, band_um=1.0)
    assert metrics["interfacial_plating_fraction"] == pytest.approx(0.5)
    assert metrics["plated_depth_centroid_um"] == pytest.approx(1.75)
    assert plating_metrics(path, TOP, band_um=3.0)["interfacial_plating_fraction"] == 1.0


def test_nothing_plated_gives_none(tmp_path: Path) -> None:
    path = plated(tmp_path, [0.0, 1.0], [1.0, 1.0], [0.0, 0.0])
    metrics = plating_metrics(path, TOP)
    assert metrics == {"plated_volume_um3": 0.0, "interfacial_plating_fraction": None,
                       "plated_depth_centroid_um": None}


def test_a_vertex_above_the_scaffold_top_is_refused(tmp_path: Path) -> None:
    path = plated(tmp_path, [-0.5, 1.0], [1.0, 1.0], [0.1, 0.0])
    with pytest.raises(ValueError, match="above the scaffold top"):
        plating_metrics(path, TOP)


def test_depth_profile_bins_volume_and_mean_psi(tmp_path: Path) -> None:
    # Depths 0..4 µm in 4 bins of 1 µm; the deepest vertex sets the range.
    path = plated(tmp_path, [0.2, 0.4, 1.5, 3.0, 4.0], [1.0, 3.0, 2.0, 1.0, 1.0],
                  [1.0, 0.2, 0.5, 0.0, 0.0])
    edges, volume, mean_psi = plated_depth_profile(path, TOP, n_bins=4)
    assert edges == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0])
    assert volume == pytest.approx([1.0 + 0.6, 1.0, 0.0, 0.0])
    assert mean_psi[:2] == pytest.approx([1.6 / 4.0, 0.5])
    assert math.isnan(mean_psi[2]) and mean_psi[3] == 0.0  # no vertex in [2, 3)
    assert volume.sum() == pytest.approx(plating_metrics(path, TOP)["plated_volume_um3"])


# --- capacity above 0 V ----------------------------------------------------------------------


def test_capacity_at_the_zero_volt_crossing_is_interpolated_exactly(tmp_path: Path) -> None:
    """V = 0.5 − t/100 and capacity = 3 t, sampled every 7 s: 0 V at t = 50 s between
    samples (49, 56), so 150 mAh/g, not a sampled value."""
    t = np.arange(0.0, 100.0, 7.0)
    path = timeseries(tmp_path, 0.5 - t / 100.0, 3.0 * t)
    assert capacity_above_0V(path) == pytest.approx(150.0, rel=1e-12)


def test_capacity_without_a_crossing_is_the_last_value(tmp_path: Path) -> None:
    t = np.arange(0.0, 40.0, 7.0)
    assert capacity_above_0V(timeseries(tmp_path, 0.5 - t / 100.0, 3.0 * t)) == 3.0 * 35.0


# --- plots and the run folder ----------------------------------------------------------------


def test_plots_write_pngs_with_and_without_data(tmp_path: Path) -> None:
    full, empty = tmp_path / "full", tmp_path / "empty"
    full.mkdir()
    empty.mkdir()
    charge = list(np.linspace(0.5, 2.0, 30))
    plot_current_histogram(interface(full, charge, [0.1] * 30), full / "h.png", "histogram")
    plot_plated_depth_profile(plated(full, [0.2, 1.5, 3.0], [1.0] * 3, [0.5, 0.1, 0.0]),
                              full / "p.png", TOP, "profile")
    plot_current_histogram(write_csv(empty / "interface_current.csv", INTERFACE_COLUMNS, []),
                           empty / "h.png", "histogram")
    plot_plated_depth_profile(write_csv(empty / "plated_li.csv", PLATED_COLUMNS, []),
                              empty / "p.png", TOP, "profile")
    for png in ("full/h.png", "full/p.png", "empty/h.png", "empty/p.png"):
        assert_png(tmp_path / png)


def test_write_plating_outputs_in_a_run_folder(tmp_path: Path) -> None:
    assert write_plating_outputs(tmp_path, TOP) == dict.fromkeys(METRIC_KEYS)
    interface(tmp_path, [1.0, 3.0], [1.0, 1.0], ["EP", "EC:Ti"], [1, 0])
    plated(tmp_path, [0.5, 2.0], [1.0, 1.0], [0.4, 0.0])
    t = np.arange(0.0, 100.0, 10.0)
    timeseries(tmp_path, 0.25 - t / 100.0, 2.0 * t)
    metrics = write_plating_outputs(tmp_path, TOP)
    assert set(metrics) == set(METRIC_KEYS)
    assert metrics["hotspot_factor"] == pytest.approx(3.0 / 2.0)
    assert metrics["current_cov"] == pytest.approx(0.5)
    assert metrics["inert_contact_current_fraction"] == pytest.approx(1.0)
    assert metrics["interfacial_plating_fraction"] == 1.0
    assert metrics["plated_depth_centroid_um"] == pytest.approx(0.5)
    assert metrics["capacity_above_0V_mAh_per_g"] == pytest.approx(50.0)
    assert_png(tmp_path / "current_histogram.png")
    assert_png(tmp_path / "plated_depth.png")
