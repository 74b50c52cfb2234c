"""PNG summaries of a run, drawn from its CSV files (rank 0 only, no MPI)."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the off-screen backend)


def _read_columns(path: Path) -> dict[str, list[float]]:
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    return {key: [float(row[key]) if row[key] else float("nan") for row in rows]
            for key in (rows[0] if rows else {})}


def plot_run_summary(timeseries: Path, target: Path, title: str) -> None:
    """Anode potential and the capacity split (alloying vs plating) over time."""
    data = _read_columns(timeseries)
    hours = [t / 3600.0 for t in data["time_s"]]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(6.5, 6), sharex=True)
    top.plot(hours, data["anode_potential_V"], color="C0")
    top.axhline(0.0, color="0.6", lw=0.8, ls="--")
    top.set_ylabel("anode potential vs Li (V)")
    top.set_title(title)
    bottom.plot(hours, data["capacity_alloy_mAh_per_g"], label="alloying", color="C1")
    plating = data["capacity_plating_mAh_per_g"]
    if any(value == value for value in plating):  # not all NaN: plating is modelled
        bottom.plot(hours, plating, label="plating", color="C2")
    bottom.set_xlabel("time (h)")
    bottom.set_ylabel("capacity (mAh/g host)")
    bottom.legend()
    figure.tight_layout()
    figure.savefig(target, dpi=120)
    plt.close(figure)
