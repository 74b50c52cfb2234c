"""PNG figures of `constrict screen`, drawn from its CSV files (rank 0 only, no MPI).

- the voltage–susceptibility map (the paper's Fig. 3f): U against n / K_crit, with the
  reciprocal iso-lines U n / K_crit = ε V / F = const (10.4) and the paper's band;
- the equilibrium capacity against the confinement K_eff (the paper's Fig. 3e, (10.5)).

The paper's numbers drawn for comparison (not used in any computation) are from
Ye et al., Nat. Mater. (2024): the band of highest lithiation energy per unit constriction
(text to Fig. 3f) and the simulated Si capacities under confinement (text to Fig. 3e).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the off-screen backend)
import numpy as np  # noqa: E402

PAPER_BAND_EV_PER_GPA = (0.35, 0.55)  # Fig. 3f text: "around 0.35-0.55 eV GPa^-1 per Li"
PAPER_SI_CAPACITY = [(0.0, 4000.0), (5.0, 164.0), (5.5, 0.0)]  # (K_eff GPa, mAh/g), Fig. 3e
PAPER_SI_RANGE = ((1.0, 3.0), (1000.0, 2000.0))  # "~1,000-2,000 mAh/g at K_eff ~1-3 GPa"
PAPER_SI_K_CRIT_GPA = 5.5
MARKED = ("Si", "Ag", "Mg2Si", "Cu", "Ti")  # the materials Fig. 3f names
MARKED_NOTE = "red, bold: named in Fig. 3f"
ISO_LINES_EV_PER_GPA = (0.1, 0.2, 0.35, 0.55, 0.8)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _num(text: str) -> float:
    return float(text) if text else math.nan


def r_source(rows: list[dict[str, str]], kind: str) -> str:
    """The file names behind the rows of one source kind ('table:x.yaml' -> 'x.yaml')."""
    return ", ".join(sorted({r["source"].split(":", 1)[-1] for r in rows
                             if r["source"].startswith(kind)}))


def plot_screening_map(screening_csv: Path, target: Path) -> None:
    """U (V) against n / K_crit (1/GPa); cards as circles, user materials as squares;
    materials without Li uptake (n = 0, K_crit undefined) listed at the origin."""
    rows = _rows(screening_csv)
    hosts = [r for r in rows if r["alloying"] == "true" and math.isfinite(
        _num(r["n_over_K_crit_per_GPa"]))]
    inert = [r["name"] for r in rows if r["alloying"] == "false"]
    x_max = 1.15 * max([_num(r["n_over_K_crit_per_GPa"]) for r in hosts] + [2.0])
    y_max = 1.15 * max([_num(r["U_V"]) for r in hosts] + [0.8])
    figure, axes = plt.subplots(figsize=(7.5, 5.5))
    x = np.linspace(x_max / 400, x_max, 400)
    low, high = PAPER_BAND_EV_PER_GPA
    axes.fill_between(x, low / x, high / x, color="C1", alpha=0.15, lw=0,
                      label=f"paper's band: U n/K_crit = {low}–{high} eV/GPa")
    for i, c in enumerate(ISO_LINES_EV_PER_GPA):
        axes.plot(x, c / x, color="0.6", lw=0.7, ls="--",
                  label="U n/K_crit = const (eV/GPa)" if i == 0 else None)
        x_label = math.sqrt(c * x_max / y_max)  # where the curve meets the axes' diagonal
        axes.annotate(f"{c:g}", (x_label, c / x_label), color="0.3", fontsize=7,
                      textcoords="offset points", xytext=(2, 2))
    style = {"card": ("o", "C0"), "table": ("s", "C2"), "entries": ("^", "C4")}
    for kind, (marker, color) in style.items():
        if any(r["source"].split(":")[0] == kind for r in hosts):
            axes.plot([], [], marker, color=color, ls="none", label=f"{kind} ({MARKED_NOTE})"
                      if kind == "card" else f"{kind}: " + r_source(hosts, kind))
    placed: list[tuple[float, float]] = []
    for r in hosts:
        marker, color = style.get(r["source"].split(":")[0], ("o", "C0"))
        marked = r["name"] in MARKED and r["source"] == "card"
        point = (_num(r["n_over_K_crit_per_GPa"]), _num(r["U_V"]))
        axes.plot(*point, marker, color="C3" if marked else color, ms=8 if marked else 6)
        stacked = sum(abs(point[0] - x) < 0.03 * x_max and abs(point[1] - y) < 0.03 * y_max
                      for x, y in placed)  # labels of coinciding points go one under another
        placed.append(point)
        axes.annotate(r["name"], point, textcoords="offset points", xytext=(5, 4 - 10 * stacked),
                      fontsize=8, fontweight="bold" if marked else "normal")
    if inert:
        axes.plot([0.0], [0.0], "X", color="k", ms=9, clip_on=False)
        axes.annotate("no Li uptake (n = 0, K_crit undefined):\n" + ", ".join(inert),
                      (0.0, 0.0), textcoords="offset points", xytext=(8, 8), fontsize=8)
    axes.set_xlim(0.0, x_max)
    axes.set_ylim(0.0, y_max)
    axes.set_xlabel("constriction susceptibility n / K_crit (Li per formula unit per GPa)")
    axes.set_ylabel("average lithiation voltage U (V vs Li)")
    axes.set_title("Voltage vs constriction susceptibility (cf. Ye et al. 2024, Fig. 3f)\n"
                   "dashed: U n/K_crit = εV/F (eV/GPa)", fontsize=10)
    axes.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    figure.savefig(target, dpi=130)
    plt.close(figure)


def plot_capacity_vs_confinement(curves_csv: Path, target: Path,
                                 screening_csv: Path | None = None) -> None:
    """Equilibrium capacity at 0 V against K_eff for each host card, absolute and relative;
    the paper's Si numbers and, for Si, K_crit (energy average) and the 1 % confinement."""
    curves: dict[str, tuple[list[float], list[float], list[float]]] = {}
    for r in _rows(curves_csv):
        k, c, f = curves.setdefault(r["material"], ([], [], []))
        k.append(_num(r["K_eff_GPa"]))
        c.append(_num(r["capacity_mAh_per_g"]))
        f.append(_num(r["capacity_fraction"]))
    figure, (absolute, relative) = plt.subplots(1, 2, figsize=(11, 4.5))
    for i, (name, (k, c, f)) in enumerate(curves.items()):
        absolute.plot(k, c, color=f"C{i}", label=name)
        relative.plot(k, f, color=f"C{i}", label=name)
    (k0, k1), (c0, c1) = PAPER_SI_RANGE
    absolute.add_patch(plt.Rectangle((k0, c0), k1 - k0, c1 - c0, color="0.5", alpha=0.15,
                                     label="paper, Si: 1000–2000 mAh/g at 1–3 GPa"))
    absolute.plot(*zip(*PAPER_SI_CAPACITY, strict=True), "k^", label="paper, Si (Fig. 3e)")
    for axes in (absolute, relative):
        axes.axvline(PAPER_SI_K_CRIT_GPA, color="k", lw=0.8, ls=":")
    if screening_csv is not None:
        si = [r for r in _rows(screening_csv) if r["name"] == "Si" and r["source"] == "card"]
        for r in si:
            for key, style, text in (("K_crit_GPa", "--", "Si K_crit (energy avg.)"),
                                     ("K_1pct_GPa", "-.", "Si 1 % capacity")):
                if math.isfinite(_num(r[key])):
                    relative.axvline(_num(r[key]), color="C3", lw=0.9, ls=style,
                                     label=f"{text}: {_num(r[key]):.2f} GPa")
    relative.plot([], [], "k:", label=f"paper's K_crit(Si) = {PAPER_SI_K_CRIT_GPA} GPa")
    absolute.set_ylabel("equilibrium capacity at 0 V (mAh/g)")
    relative.set_ylabel("fraction of the unconfined capacity")
    relative.axhline(0.01, color="0.6", lw=0.7)
    for axes in (absolute, relative):
        axes.set_xlabel("confinement K_eff = p (GPa)")
        axes.set_xlim(0.0, max(max(k) for k, _, _ in curves.values()) if curves else 10.0)
        axes.set_ylim(bottom=0.0)
        axes.legend(fontsize=7)
    figure.suptitle("Capacity under constriction: U_ocv(θ) = Ω K_eff / F (MODEL §10, (3.2))",
                    fontsize=10)
    figure.tight_layout()
    figure.savefig(target, dpi=130)
    plt.close(figure)
