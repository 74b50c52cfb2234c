"""`constrict report`: a sweep folder gathered into one CSV and metric-vs-parameter plots
(a bar chart of the runs for a list sweep over names, such as scaffold materials).

Reads the sweep's manifest.json and each run's metrics.json (no MPI, no DOLFINx). The
status of a run comes from its metrics.json when there is one, so a Slurm sweep (whose
array tasks never touch the manifest) reports correctly too. Plots show completed runs
only; failed runs are in the CSV with their partial metrics.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the off-screen backend)

from solver.config import CaseError  # noqa: E402
from solver.units import Q_  # noqa: E402

log = logging.getLogger("constrict.report")

# Panels of each figure: (y label, metrics drawn in it). Metrics that are null in every
# run are left out with a note; a panel with nothing left is not drawn. The interface and
# plating metrics are those of postprocess/plating_metrics.py (scaffold runs only).
PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("shell depth (nm)", ("shell_depth_nm_mean",)),
    ("capacity (mAh/g host)", ("capacity_alloy_mAh_per_g", "capacity_plating_mAh_per_g")),
    ("hot-spot factor (q99 / mean)", ("hotspot_factor",)),
    ("interface current CoV", ("current_cov",)),
    ("interfacial plating fraction", ("interfacial_plating_fraction",)),
    ("plated depth centroid (µm)", ("plated_depth_centroid_um",)),
    ("final anode potential (V)", ("anode_potential_V_final",)),
)
COMPARISON_FIGURE = "comparison.png"
ERROR_BARS = {"shell_depth_nm_mean": "shell_depth_nm_std"}
LABELS = {"capacity_alloy_mAh_per_g": "alloying", "capacity_plating_mAh_per_g": "plating"}
_NUMBER_FIRST = re.compile(r"\s*[-+]?(\d|\.\d)")


@dataclass
class Report:
    csv: Path
    figures: list[Path] = field(default_factory=list)
    comparison: Path | None = None  # compare.csv, when the sweep has a `compare` block
    notes: list[str] = field(default_factory=list)


def gather(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The manifest and one row per run: id, status, parameters, metrics (nested flattened)."""
    folder = Path(folder)
    path = folder / "manifest.json"
    if not path.is_file():
        raise CaseError(f"{folder} is not a sweep folder (no manifest.json)")
    manifest = json.loads(path.read_text())
    rows = []
    for entry in manifest["runs"]:
        metrics_path = folder / entry["metrics"]
        metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else None
        status = entry["status"]
        if metrics is not None and status not in ("running", "interrupted"):
            status = "completed" if metrics.get("status") == "completed" else "failed"
        row = {"run": entry["id"], "status": status, "attempts": entry.get("attempts"),
               "exit_code": entry.get("exit_code"), "sweep_wall_time_s": entry.get("wall_time_s")}
        row |= entry["parameters"]
        row |= _flatten(metrics or {})
        row |= _derived(folder, entry) if metrics is not None else {}
        rows.append(row)
    return manifest, rows


def _derived(folder: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """Metrics derived from the run's files: θ_mean per host and the capacity the hosts
    hold at the end, initial Li included (`postprocess.compare.held_capacity`)."""
    from postprocess.compare import held_capacity

    series = folder / entry.get("result", "") / "timeseries.csv"
    case = folder / entry.get("case", "")
    if not (series.is_file() and case.is_file()):
        return {}
    try:
        return held_capacity(series, case)
    except Exception as error:  # a damaged or foreign run folder: leave them out
        log.debug("report: %s: no held capacity (%s)", entry["id"], error)
        return {}


def _flatten(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        if key == "status":
            continue
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, list) else value
    return flat


def write_report(folder: Path, target: Path | None = None) -> Report:
    """results.csv and one PNG per swept axis in `target` (default FOLDER/report), and
    comparison.png (a bar per run) for a list sweep with a categorical axis."""
    folder = Path(folder)
    manifest, rows = gather(folder)
    target = Path(target) if target else folder / "report"
    target.mkdir(parents=True, exist_ok=True)
    report = Report(csv=target / "results.csv")
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with report.csv.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns, restval="")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    done = [row for row in rows if row["status"] == "completed"]
    if not done:
        report.notes.append("no completed runs: nothing to plot")
    else:
        empty = [key for _, keys in PANELS for key in keys
                 if all(_number(row.get(key)) is None for row in done)]
        if empty:
            report.notes.append("not plotted (null in every completed run): " + ", ".join(empty))
        figures = {f"vs_{_slug(axis)}.png": _plot_axis(
            done, axis, [a for a in manifest["axes"] if a != axis], empty, manifest["sweep"])
            for axis in manifest["axes"]}
        if manifest.get("mode") == "list" and _categorical(done, manifest["axes"]):
            figures[COMPARISON_FIGURE] = _plot_runs(done, manifest["axes"], empty,
                                                    manifest["sweep"])
        for name, figure in figures.items():
            if figure is not None:
                figure.savefig(target / name, dpi=120)
                plt.close(figure)
                report.figures.append(target / name)
    if manifest.get("compare"):
        from postprocess.compare import write_comparison

        comparison = write_comparison(folder, manifest, rows, target, manifest["compare"])
        report.comparison = comparison.csv
        report.figures += [comparison.figure] if comparison.figure else []
        report.notes += comparison.notes
    for note in report.notes:
        log.info("report: %s", note)
    log.info("report: %s and %d figures in %s", report.csv.name, len(report.figures), target)
    return report


def _plot_axis(rows: list[dict[str, Any]], axis: str, others: list[str], empty: list[str],
               title: str) -> plt.Figure | None:
    """One panel per metric group; one line per combination of the other axes (markers
    only when the axis is categorical: a line between names would suggest a trend)."""
    panels = _panels(empty)
    if not panels:
        return None
    x_of, x_label, ticks = _axis_positions([row.get(axis) for row in rows], axis)
    series: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        label = ", ".join(f"{_short(o)}={row.get(o)}" for o in others)
        series.setdefault(label, []).append(row)
    styles = ("o", "s", "^") if ticks else ("o-", "s--", "^:")
    figure, grid = _panel_grid(len(panels), 4.6)
    for ax, (label, keys) in zip(grid.flat, panels, strict=False):
        for index, (name, members) in enumerate(series.items()):
            members = sorted(members, key=lambda r: x_of[_key(r.get(axis))])
            x = [x_of[_key(r.get(axis))] for r in members]
            for style, key in zip(styles, keys, strict=False):
                y = [_number(r.get(key)) for r in members]
                y = [math.nan if v is None else v for v in y]
                err = ERROR_BARS.get(key)
                yerr = ([_number(r.get(err)) or 0.0 for r in members] if err else None)
                text = " ".join(t for t in (LABELS.get(key, "") if len(keys) > 1 else "",
                                            name) if t)
                ax.errorbar(x, y, yerr=yerr, fmt=style, color=f"C{index}", capsize=3,
                            label=text or None)
        ax.set_xlabel(x_label)
        ax.set_ylabel(label)
        if ticks:
            ax.set_xticks(range(len(ticks)), ticks)
        elif _log_scale(list(x_of.values())):
            ax.set_xscale("log")
        if len(series) > 1 or len(keys) > 1:
            ax.legend(fontsize=7)
    _finish(figure, grid, len(panels), f"{title}: metrics vs {axis}", empty)
    return figure


def _plot_runs(rows: list[dict[str, Any]], axes: list[str], empty: list[str],
               title: str) -> plt.Figure | None:
    """One panel per metric group with one bar per run (side by side when the panel has
    several metrics), labelled by the run's axis values: for list sweeps over names
    (scaffold materials), where runs have no order to draw a line along."""
    panels = _panels(empty)
    if not panels:
        return None
    labels = [_run_label(row, axes) for row in rows]
    positions = range(len(rows))
    figure, grid = _panel_grid(len(panels), max(4.6, 0.55 * len(rows) + 1.5))
    for ax, (label, keys) in zip(grid.flat, panels, strict=False):
        width = 0.8 / len(keys)
        for index, key in enumerate(keys):
            y = [_number(r.get(key)) for r in rows]
            err = ERROR_BARS.get(key)
            ax.bar([p + (index - (len(keys) - 1) / 2) * width for p in positions],
                   [math.nan if v is None else v for v in y], width, color=f"C{index}",
                   yerr=[_number(r.get(err)) or 0.0 for r in rows] if err else None,
                   capsize=3, label=LABELS.get(key, key) if len(keys) > 1 else None)
        long = max(len(line) for text in labels for line in text.splitlines()) > 6
        ax.set_xticks(positions, labels, rotation=30 if long else 0,
                      ha="right" if long else "center", fontsize=8)
        ax.set_ylabel(label)
        if len(keys) > 1:
            ax.legend(fontsize=7)
    _finish(figure, grid, len(panels), f"{title}: metrics per run", empty)
    return figure


def _panels(empty: list[str]) -> list[tuple[str, list[str]]]:
    """PANELS without the metrics of `empty`, and without the panels left with none."""
    panels = [(label, [k for k in keys if k not in empty]) for label, keys in PANELS]
    return [(label, keys) for label, keys in panels if keys]


def _panel_grid(count: int, width: float) -> tuple[plt.Figure, Any]:
    columns = min(3, count)
    n_rows = math.ceil(count / columns)
    return plt.subplots(n_rows, columns, figsize=(width * columns, 3.6 * n_rows + 0.6),
                        squeeze=False)


def _finish(figure: plt.Figure, grid: Any, used: int, title: str, empty: list[str]) -> None:
    for ax in list(grid.flat)[used:]:
        ax.set_visible(False)
    figure.suptitle(title)
    if empty:
        figure.text(0.01, 0.005, "not plotted (null in every run): " + ", ".join(empty),
                    fontsize=7, color="0.4")
    figure.tight_layout(rect=(0, 0.03, 1, 1))


def _categorical(rows: list[dict[str, Any]], axes: list[str]) -> bool:
    """Whether some axis has values that are not quantities of one dimension."""
    return any(_axis_positions([row.get(axis) for row in rows], axis)[2] for axis in axes)


def _run_label(row: dict[str, Any], axes: list[str]) -> str:
    """The run's values of the axes it sets: the value alone for a single axis, one
    `key=value` line per axis otherwise; the run id when it sets none."""
    values = [(axis, row.get(axis)) for axis in axes if row.get(axis) is not None]
    if len(axes) == 1 and values:
        return str(values[0][1])
    return "\n".join(f"{_short(axis)}={value}" for axis, value in values) or str(row["run"])


def _axis_positions(values: list[Any], axis: str) -> tuple[dict[str, float], str, list[str]]:
    """x positions of an axis: magnitudes in the unit of the first value when all values
    are numbers or quantities of one dimension, else categories in order of appearance."""
    distinct = list(dict.fromkeys(_key(v) for v in values))
    try:
        quantities = [_quantity(json.loads(v)) for v in distinct]
        unit = quantities[0].units
        x_of = {k: float(q.to(unit).magnitude) for k, q in zip(distinct, quantities, strict=True)}
        unit_text = f"{unit:~P}"
        return x_of, f"{axis} ({unit_text})" if unit_text else axis, []
    except Exception:  # pint raises several error types for text that is not a quantity
        return ({k: float(i) for i, k in enumerate(distinct)}, axis,
                [str(json.loads(k)) for k in distinct])


def _quantity(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"not a quantity: {value!r}")
    if isinstance(value, str) and not _NUMBER_FIRST.match(value):
        raise ValueError(f"not a quantity: {value!r}")
    return Q_(value) if isinstance(value, str) else Q_(float(value), "")


def _log_scale(x: list[float]) -> bool:
    return len(x) > 2 and min(x) > 0 and max(x) / min(x) >= 20


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _short(key: str) -> str:
    return re.sub(r"\[\d+\]", "", key).rsplit(".", 1)[-1]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", re.sub(r"[][]", "", text)).strip("_")
