"""A sweep metric against one axis, next to an analytic curve and published values.

The optional `compare` block of a sweep file (docs/sweeps.md, "Comparing with theory and
the literature") names an axis, a metric of the runs, an analytic curve from `CURVES`
(by name, with its parameters) and a `reference` table of published points with their
source. `constrict report` then writes ``report/compare.csv`` (per run: the axis value,
the simulated metric, the analytic value, the relative error and the reference value
that matches the run's x) and ``report/compare.png`` (simulation markers, the analytic
curve on a fine grid, the reference points with their ranges).

The analytic curves see the material cards of the run's own case (library, user files
and overrides), so a sweep over a card value compares each run with its own curve. This
module needs neither MPI nor DOLFINx; matplotlib is imported only to draw.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from solver.config import case_materials, validate_case
from solver.materials import MaterialCard, equilibrium_capacity_under_pressure
from solver.units import Q_, F, Quantity

log = logging.getLogger("constrict.report")

CSV_NAME = "compare.csv"
FIGURE_NAME = "compare.png"
GRID_POINTS = 201  # of the analytic line
_NUMBER_FIRST = re.compile(r"\s*[-+]?(\d|\.\d)")


# --- analytic curves -----------------------------------------------------------------------


@dataclass(frozen=True)
class Curve:
    """y = function(x, library, **parameters), x of the dimension of `x_unit`, y as a
    plain float in the unit of the metric it is compared with (`y_unit`)."""

    function: Callable[..., float]
    x_unit: str
    y_unit: str
    parameters: tuple[str, ...]
    description: str


def _equilibrium_capacity(x: Quantity, library: dict[str, MaterialCard], material: str) -> float:
    card = _host_card(library, material)
    return float(equilibrium_capacity_under_pressure(card, x)[1].m_as("mA*h/g"))


def _equilibrium_theta(x: Quantity, library: dict[str, MaterialCard], material: str) -> float:
    return float(equilibrium_capacity_under_pressure(_host_card(library, material), x)[0])


def _host_card(library: dict[str, MaterialCard], material: str) -> MaterialCard:
    if material not in library:
        raise ValueError(f"unknown material '{material}' (known: {', '.join(sorted(library))})")
    card = library[material]
    if card.host is None:
        raise ValueError(f"material '{material}' is a {card.kind}, not a host")
    return card


CURVES: dict[str, Curve] = {
    "equilibrium_capacity_under_pressure": Curve(
        _equilibrium_capacity, "Pa", "mAh/g", ("material",),
        "capacity (mAh/g of host) of a host held at 0 V under a confining pressure p: "
        "U_ocv(θ) = Ω p / F (MODEL §10)"),
    "equilibrium_theta_under_pressure": Curve(
        _equilibrium_theta, "Pa", "", ("material",),
        "Li fraction θ of the same equilibrium"),
}


def evaluate(name: str, parameters: dict[str, Any], x: Quantity,
             library: dict[str, MaterialCard]) -> float:
    curve = CURVES[name]
    if not x.is_compatible_with(curve.x_unit):
        raise ValueError(f"'{name}' takes x in units of {curve.x_unit}, got '{x:~}'")
    return curve.function(x, library, **parameters)


def as_quantity(value: Any) -> Quantity:
    """An axis or reference value ("5 GPa", 0.3) as a pint Quantity; ValueError if not."""
    if isinstance(value, Quantity):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"not a quantity: {value!r}")
    if isinstance(value, str):
        if not _NUMBER_FIRST.match(value):
            raise ValueError(f"not a quantity: {value!r}")
        try:
            return Q_(value)
        except Exception as error:  # pint raises several error types
            raise ValueError(f"not a quantity: {value!r} ({error})") from None
    return Q_(float(value), "")


# --- the run's materials and the capacity the hosts hold ------------------------------------


_LIBRARIES: dict[str, dict[str, MaterialCard]] = {}


def run_library(case_file: Path) -> dict[str, MaterialCard]:
    """The material cards of a run's case (library, user files, overrides); cached by the
    case's `materials` section."""
    data = yaml.safe_load(Path(case_file).read_text())
    key = json.dumps(data.get("materials"), sort_keys=True, default=str)
    if key not in _LIBRARIES:
        _LIBRARIES[key] = case_materials(validate_case(data, str(case_file)))
    return _LIBRARIES[key]


def held_capacity(series_file: Path, case_file: Path) -> dict[str, float]:
    """The Li the hosts hold at the end of a run: θ_mean of each host and the capacity
    F·n_Li / m_host (mAh per gram of host), counting the Li they started with.

    `capacity_alloy_mAh_per_g` of metrics.json is the Li *gained* since the start, so a
    run that starts at θ0 > 0 needs this to compare with an equilibrium capacity. Per host
    (from timeseries.csv): θ0 from the first row (uniform there, θ_min = θ_max), n0 and n
    the Li at the start and end; then θ_mean = θ0 n / n0 and the host's mass is
    ρ n0 / (θ0 c_max), so for one host the capacity is θ_mean c_max F / ρ. Hosts that
    start empty (θ0 = 0) leave their mass unknown: {} then.
    """
    with Path(series_file).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if len(rows) < 1:
        return {}
    first, last = rows[0], rows[-1]
    # li_plated_mol (Li metal in the pores) has no θ: it is not a host.
    hosts = [c[3:-4] for c in first if c.startswith("li_") and c.endswith("_mol")
             and f"theta_min_{c[3:-4]}" in first]
    library = run_library(case_file)
    out: dict[str, float] = {}
    li_total, mass_g = 0.0, 0.0
    for host in hosts:
        theta0 = float(first[f"theta_min_{host}"])
        n0, n = float(first[f"li_{host}_mol"]), float(last[f"li_{host}_mol"])
        if not (theta0 > 0 and n0 > 0) or host not in library or library[host].host is None:
            return {}
        card = library[host]
        out[f"theta_mean.{host}"] = theta0 * n / n0
        li_total += n
        mass_g += (card.density * Q_(n0, "mol") / (theta0 * card.host.c_max)).m_as("g")
    if not hosts:
        return {}
    out["capacity_held_mAh_per_g"] = li_total * F.m_as("C/mol") / 3.6 / mass_g
    return out


# --- the comparison -----------------------------------------------------------------------


@dataclass
class Comparison:
    csv: Path
    figure: Path | None
    notes: list[str]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _span(value: Any, unit: Any) -> tuple[float, float]:
    """(low, high) of a reference x or y: one value or a [low, high] range."""
    values = value if isinstance(value, list) else [value, value]
    numbers = [as_quantity(v) for v in values]
    if unit is None:
        return float(numbers[0].magnitude), float(numbers[1].magnitude)
    return float(numbers[0].m_as(unit)), float(numbers[1].m_as(unit))


def write_comparison(folder: Path, manifest: dict[str, Any], rows: list[dict[str, Any]],
                     target: Path, settings: dict[str, Any]) -> Comparison:
    """compare.csv and compare.png for the manifest's `compare` block (see the module)."""
    axis, metric = settings["x"], settings["metric"]
    analytic = settings.get("analytic")
    reference = settings.get("reference")
    notes: list[str] = []
    entries = {entry["id"]: entry for entry in manifest["runs"]}
    missing = [row["run"] for row in rows if row.get(axis) is None]
    if missing:  # a list sweep whose run keeps the base value of the axis
        notes.append(f"compare: runs without a value of {axis} left out: {', '.join(missing)}")
        rows = [row for row in rows if row.get(axis) is not None]
    if not rows:
        notes.append(f"compare: no run has a value of {axis}")
        return Comparison(_write_csv(target, []), None, notes)
    # x of each run in the unit of the first run's value
    quantities = [as_quantity(row[axis]) for row in rows]
    unit = quantities[0].units
    unit_text = f"{unit:~}".replace(" ", "") or "1"
    xs = [float(q.m_as(unit)) for q in quantities]
    points = []
    for point in (reference or {}).get("points", []):
        (x0, x1), (y0, y1) = _span(point["x"], unit), _span(point["y"], None)
        points.append({"x": (x0, x1), "y": (y0, y1), "note": point.get("note"),
                       "matched": False})

    table = []
    for row, x in zip(rows, xs, strict=True):
        simulated = _number(row.get(metric)) if row["status"] == "completed" else None
        exact = None
        if analytic:
            try:
                library = run_library(folder / entries[row["run"]]["case"])
                exact = evaluate(analytic["name"], _curve_parameters(analytic), x * unit, library)
            except Exception as error:  # a run without its case file: no analytic value
                notes.append(f"{row['run']}: no analytic value ({error})")
        error = ((simulated - exact) / exact
                 if simulated is not None and exact not in (None, 0.0) else None)
        record = {"run": row["run"], "status": row["status"], axis: row[axis],
                  f"x_{unit_text}": x, metric: simulated, "analytic": exact,
                  "relative_error": error}
        if reference:
            match = next((p for p in points
                          if p["x"][0] - 1e-9 * abs(x) <= x <= p["x"][1] + 1e-9 * abs(x)), None)
            if match:
                match["matched"] = True
            record |= _reference_columns(match, reference)
        table.append(record)
    table.sort(key=lambda r: r[f"x_{unit_text}"])
    for point in points:  # published points that no run matches: rows of their own
        if not point["matched"]:
            table.append({"run": "", "status": "reference only",
                          f"x_{unit_text}": _mid(point["x"])}
                         | _reference_columns(point, reference))
    path = _write_csv(target, table)
    if all(r.get(metric) is None for r in table):
        notes.append(f"compare: '{metric}' is missing in every completed run; nothing to plot")
        return Comparison(path, None, notes)
    figure = target / FIGURE_NAME
    _plot(figure, table, points, settings, unit, unit_text, xs, folder, manifest, entries)
    return Comparison(path, figure, notes)


def _write_csv(target: Path, table: list[dict[str, Any]]) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    path = target / CSV_NAME
    columns = list(dict.fromkeys(key for record in table for key in record)) or ["run"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns, restval="")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in table)
    return path


def _curve_parameters(analytic: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in analytic.items() if k != "name"}


def _mid(span: tuple[float, float]) -> float:
    return 0.5 * (span[0] + span[1])


def _reference_columns(point: dict[str, Any] | None, reference: dict[str, Any]) -> dict[str, Any]:
    if point is None:
        return {"reference": None, "reference_min": None, "reference_max": None,
                "reference_label": None, "reference_note": None}
    low, high = point["y"]
    return {"reference": low if low == high else None, "reference_min": low,
            "reference_max": high, "reference_label": reference.get("label") or "reference",
            "reference_note": point.get("note") or None}


def _plot(path: Path, table: list[dict[str, Any]], points: list[dict[str, Any]],
          settings: dict[str, Any], unit: Any, unit_text: str, xs: list[float], folder: Path,
          manifest: dict[str, Any], entries: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axis, metric = settings["x"], settings["metric"]
    analytic, reference = settings.get("analytic"), settings.get("reference")
    figure, ax = plt.subplots(figsize=(6.4, 4.6))
    if analytic:
        lows = xs + [p["x"][0] for p in points]
        highs = xs + [p["x"][1] for p in points]
        grid = np.linspace(min(lows), max(highs), GRID_POINTS)
        first = next((r for r in table if r["run"] and r["status"] == "completed"), None)
        if first is not None:
            library = run_library(folder / entries[first["run"]]["case"])
            values = [evaluate(analytic["name"], _curve_parameters(analytic), x * unit, library)
                      for x in grid]
            ax.plot(grid, values, "-", color="C0", label=f"analytic: {analytic['name']}")
    simulated = [r for r in table if r["run"] and r.get(metric) is not None]
    ax.plot([r[f"x_{unit_text}"] for r in simulated], [r[metric] for r in simulated], "o",
            color="C1", markersize=7, label=f"simulation ({metric})", zorder=3)
    if reference and points:
        _draw_reference(ax, points, reference.get("label") or "reference")
    ax.set_xlabel(f"{axis} ({unit_text})")
    ax.set_ylabel(settings.get("label") or metric)
    ax.set_title(f"{manifest['sweep']}: {settings.get('label') or metric} vs {axis}",
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if reference:
        figure.text(0.01, 0.005, f"reference: {reference['source']}", fontsize=6, color="0.35",
                    wrap=True)
    figure.tight_layout(rect=(0, 0.05 if reference else 0, 1, 1))
    figure.savefig(path, dpi=130)
    plt.close(figure)


def _draw_reference(ax: Any, points: list[dict[str, Any]], label: str) -> None:
    """Exact points as markers, y ranges as error bars, x-and-y ranges as shaded boxes."""
    from matplotlib.patches import Rectangle

    exact = [p for p in points if p["x"][0] == p["x"][1]]
    boxes = [p for p in points if p["x"][0] != p["x"][1]]
    if exact:
        x = np.array([p["x"][0] for p in exact])
        y = np.array([_mid(p["y"]) for p in exact])
        yerr = np.array([[yy - p["y"][0], p["y"][1] - yy] for yy, p in zip(y, exact,
                                                                         strict=True)]).T
        ax.errorbar(x, y, yerr=yerr if yerr.any() else None, fmt="s", color="C2", capsize=4,
                    markersize=7, markerfacecolor="none", markeredgewidth=1.5, label=label,
                    zorder=2)
    for index, p in enumerate(boxes):
        (x0, x1), (y0, y1) = p["x"], p["y"]
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, facecolor="C2", alpha=0.18,
                               edgecolor="C2", linewidth=1.0, zorder=1,
                               label=(f"{label}: {p['note']}" if p.get("note") else
                                      f"{label} (range)") if index == 0 else None))
