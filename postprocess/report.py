"""`constrict report`: a sweep folder gathered into one CSV and metric-vs-parameter plots.

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
# run are left out with a note; a panel with nothing left is not drawn. The hot-spot
# factor and the interfacial plating fraction come with the mechanics and plating models
# (issue 5/6) under these names.
PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("shell depth (nm)", ("shell_depth_nm_mean",)),
    ("capacity (mAh/g host)", ("capacity_alloy_mAh_per_g", "capacity_plating_mAh_per_g")),
    ("hot-spot factor", ("hot_spot_factor",)),
    ("interfacial plating fraction", ("interfacial_plating_fraction",)),
    ("final anode potential (V)", ("anode_potential_V_final",)),
)
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
    """results.csv and one PNG per swept axis in `target` (default FOLDER/report)."""
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
        for axis in manifest["axes"]:
            others = [a for a in manifest["axes"] if a != axis]
            figure = _plot_axis(done, axis, others, empty, manifest["sweep"])
            if figure is not None:
                path = target / f"vs_{_slug(axis)}.png"
                figure.savefig(path, dpi=120)
                plt.close(figure)
                report.figures.append(path)
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
    """One panel per metric group; one line per combination of the other axes."""
    panels = [(label, [k for k in keys if k not in empty]) for label, keys in PANELS]
    panels = [(label, keys) for label, keys in panels if keys]
    if not panels:
        return None
    x_of, x_label, ticks = _axis_positions([row.get(axis) for row in rows], axis)
    series: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        label = ", ".join(f"{_short(o)}={row.get(o)}" for o in others)
        series.setdefault(label, []).append(row)
    columns = min(3, len(panels))
    n_rows = math.ceil(len(panels) / columns)
    figure, grid = plt.subplots(n_rows, columns, figsize=(4.6 * columns, 3.6 * n_rows + 0.6),
                                squeeze=False)
    for ax, (label, keys) in zip(grid.flat, panels, strict=False):
        for index, (name, members) in enumerate(series.items()):
            members = sorted(members, key=lambda r: x_of[_key(r.get(axis))])
            x = [x_of[_key(r.get(axis))] for r in members]
            for style, key in zip(("o-", "s--", "^:"), keys, strict=False):
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
    for ax in list(grid.flat)[len(panels):]:
        ax.set_visible(False)
    figure.suptitle(f"{title}: metrics vs {axis}")
    if empty:
        figure.text(0.01, 0.005, "not plotted (null in every run): " + ", ".join(empty),
                    fontsize=7, color="0.4")
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    return figure


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
