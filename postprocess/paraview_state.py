"""A ParaView Python script, written into a run folder, that opens the run's results.

`write_paraview_script(folder)` writes ``open_in_paraview.py``: run it with
``paraview --script=open_in_paraview.py`` (GUI) or ``pvpython open_in_paraview.py
[--screenshot out.png]`` (on a machine without a display: ``xvfb-run -a pvpython …``). It
opens every ``host_*.xdmf`` and ``electrolyte.xdmf`` of the folder, and ``pores.xdmf``,
``interface.xdmf`` and ``solid.xdmf`` when the run wrote them (restart files
``*_restart<k>.xdmf`` too; the latest of a series is shown), with the Xdmf3 reader. It shows
θ per host (Viridis, 0–1) and φ_e (a diverging map) clipped through the middle of the
scaffold, the plated Li as a threshold ψ ≥ PSI_SHOWN over the transparent pores (Blues,
light at 0), the interface current density (hidden at first: it lives on the
electrolyte's cells) and, with the mechanics, the deformed solid coloured by σ_h (hidden
at first: it covers the hosts). Every colour range is fixed over the whole series, so a
colour means the same value at every time; the view goes to the last time step. Paths are
relative to the script, so the folder can be moved or copied.

The script only uses ``paraview.simple``; it is generated from plain data (file names, field
names, clip plane), see `SCRIPT_BODY`. See docs/paraview.md.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from postprocess.fields import FieldFile, field_files, series_times

log = logging.getLogger("constrict.paraview")

SCRIPT_NAME = "open_in_paraview.py"
# Colour presets (ParaView names): θ on the hosts, φ_e in the electrolyte, ψ in the pores,
# the interface current density (diverging, unlike φ_e's, so that the two bars differ).
THETA_PRESET = "Viridis (matplotlib)"
DIVERGING_PRESET = "Cool to Warm"
PSI_PRESET = "Blues"  # inverted in the script: light at ψ = 0, dark blue where pores are full
CURRENT_PRESET = "Blue Orange (divergent)"
STRESS_PRESET = "Cool to Warm (Extended)"
# XDMF attribute centre -> ParaView array association (DG0 fields are cell data)
ASSOCIATION = {"Node": "POINTS", "Cell": "CELLS"}
# ψ above which a pore vertex shows as plated Li (the threshold over the transparent pores)
PSI_SHOWN = 0.05
VIEW_SIZE = (1600, 1000)  # pixels; the screenshot is taken at this size, so text fits


@dataclass(frozen=True)
class SeriesStyle:
    """How the script shows the series whose base file name matches `files`: the first field
    matching `field`, its preset, range ((low, high), "symmetric" for ± the largest |value|
    of every saved step, "deviation" for ± the largest |value − mean| of every saved step),
    colour bar title, shown at the start, and how: "clip" (cut through the middle of the
    scaffold), "deviation" (value − its mean at each time, clipped), "threshold" (ψ ≥
    PSI_SHOWN over the transparent pores) or "warp" (the solid deformed by u, true scale)."""

    files: str
    field: str
    preset: str
    value_range: tuple[float, float] | str
    title: str
    visible: bool = True
    view: str = "clip"


# The series the script opens, in this order (names as solver/simulation.py writes them).
STYLES = (
    SeriesStyle(r"host_.+", r"theta_.+", THETA_PRESET, (0.0, 1.0),
                "theta (Li fraction), all hosts"),
    # φ_e − its mean at each time: the variation within a step (µV–mV) is what shows where
    # the current goes; φ_e itself moves by ~1 V over a charge
    SeriesStyle(r"electrolyte", r"phi_e", DIVERGING_PRESET, "deviation",
                "phi_e - its mean (V)", view="deviation"),
    SeriesStyle(r"pores", r"psi", PSI_PRESET, (0.0, 1.0), "psi (plated Li volume fraction)",
                view="threshold"),
    # on the electrolyte's cells at the interface (zero elsewhere): the same cells as φ_e
    SeriesStyle(r"interface", r"interface_current", CURRENT_PRESET, "symmetric",
                "interface current density (A/m^2)", visible=False),
    # with the mechanics: the whole solid, deformed, over the hosts (hence hidden at first)
    SeriesStyle(r"solid", r"sigma_h", STRESS_PRESET, "symmetric", "sigma_h (MPa)",
                visible=False, view="warp"),
)


SCRIPT_IMPORTS = '''
import os
import sys

from paraview import simple
'''

SCRIPT_BODY = '''
try:
    HERE = os.path.dirname(os.path.abspath(__file__))
except NameError:  # some ParaView versions run --script without __file__
    HERE = os.getcwd()


def path_of(name):
    path = os.path.join(HERE, name)
    if not os.path.isfile(path):
        raise SystemExit("open_in_paraview: %s is missing; run this script from the run folder"
                         % path)
    return path


def colour(display, view, series, bar):
    """Colour by the series' field on its range, fixed over the whole series."""
    field, low, high = series["shown_field"], series["range"][0], series["range"][1]
    simple.ColorBy(display, (series["association"], field))
    lut = simple.GetColorTransferFunction(field)
    lut.ApplyPreset(series["preset"], True)
    if series.get("invert"):
        lut.InvertTransferFunction()
    lut.AutomaticRescaleRangeMode = "Never"
    lut.RescaleTransferFunction(low, high)
    simple.GetOpacityTransferFunction(field).RescaleTransferFunction(low, high)
    if bar:  # hosts share one colour bar (same map and range)
        display.SetScalarBarVisibility(view, True)
        scalar_bar = simple.GetScalarBar(lut, view)
        scalar_bar.Title = series["title"]
        scalar_bar.ComponentTitle = ""
        scalar_bar.TitleFontSize = 14
        scalar_bar.LabelFontSize = 12
        scalar_bar.ScalarBarLength = 0.3


def clipped(source, name):
    clip = simple.Clip(registrationName="%s: clip" % name, Input=source)
    clip.ClipType = "Plane"
    clip.ClipType.Origin = CLIP_ORIGIN
    clip.ClipType.Normal = CLIP_NORMAL
    clip.Invert = 1
    return clip


def shown(reader, name, series, view):
    """The filters a series is shown through; returns what to colour and what else to show."""
    if series["view"] == "threshold":  # transparent pores, the plated Li opaque inside
        pores = simple.Show(reader, view)
        pores.Representation = "Surface"
        pores.Opacity = 0.08
        simple.ColorBy(pores, None)
        pores.AmbientColor = pores.DiffuseColor = [0.75, 0.75, 0.75]
        metal = simple.Threshold(registrationName="%s: plated Li" % name, Input=reader)
        metal.Scalars = ["POINTS", series["field"]]
        metal.LowerThreshold, metal.UpperThreshold = PSI_SHOWN, 10.0
        metal.AllScalars = 0  # a cell with Li at any vertex: a thin deposit shows too
        return metal, [reader]
    if series["view"] == "deviation":  # value − its mean at this time
        deviation = simple.PythonCalculator(registrationName="%s: deviation" % name,
                                            Input=reader)
        deviation.Expression = "%s - mean(%s)" % (series["field"], series["field"])
        deviation.ArrayName = series["shown_field"]
        return clipped(deviation, name), []
    if series["view"] == "warp":  # the deformed solid (true scale)
        warp = simple.WarpByVector(registrationName="%s: deformed" % name, Input=reader)
        warp.Vectors = ["POINTS", "u"]
        return clipped(warp, name), []
    return clipped(reader, name), []


def main():
    view = simple.GetActiveViewOrCreate("RenderView")
    view.ViewSize = VIEW_SIZE
    view.OrientationAxesVisibility = 1
    bars = set()
    for series in SERIES:
        files = series["files"]
        for index, name in enumerate(files):
            reader = simple.Xdmf3ReaderS(registrationName=name, FileName=[path_of(name)])
            coloured, extras = shown(reader, name, series, view)
            display = simple.Show(coloured, view)
            display.Representation = "Surface"
            colour(display, view, series, bar=series["title"] not in bars)
            bars.add(series["title"])
            if index < len(files) - 1 or not series["visible"]:  # earlier part of a restart
                for source in [coloured, *extras]:
                    simple.Hide(source, view)
    clock = simple.Show(simple.AnnotateTimeFilter(registrationName="time", Input=reader,
                                                  Format="t = {time:.4g} s"), view)
    clock.FontSize = 14
    clock.WindowLocation = "Upper Center"
    scene = simple.GetAnimationScene()
    scene.UpdateAnimationUsingDataTimeSteps()
    scene.GoToLast()
    view.CameraPosition = CAMERA_POSITION
    view.CameraFocalPoint = CAMERA_FOCAL_POINT
    view.CameraViewUp = [0.0, 0.0, 1.0]
    simple.ResetCamera(view)
    simple.Render(view)
    if "--screenshot" in sys.argv[1:]:
        target = sys.argv[sys.argv.index("--screenshot") + 1]
        simple.SaveScreenshot(target, view, ImageResolution=VIEW_SIZE)
        print("open_in_paraview: wrote %s" % target)


main()
'''


def _style_of(base: str) -> SeriesStyle | None:
    return next((style for style in STYLES if re.fullmatch(style.files, base)), None)


def _symmetric_range(parts: list[FieldFile], field: str) -> list[float]:
    """[−m, m], m the largest |value| of `field` over every saved step (1 if all zero)."""
    largest = max(float(np.max(np.abs(ref.read()), initial=0.0))
                  for part in parts for _, ref in part.fields.get(field, {}).values()) or 1.0
    return [-largest, largest]


def _deviation_range(parts: list[FieldFile], field: str) -> list[float]:
    """[−m, m], m the largest |value − mean| of `field` over every saved step (the mean over
    the points, as ParaView's `mean` takes it)."""
    largest = max(float(np.max(np.abs(values - values.mean()), initial=0.0))
                  for part in parts for _, ref in part.fields.get(field, {}).values()
                  if (values := ref.read()).size) or 1e-9
    return [-largest, largest]


def _entry(parts: list[FieldFile], style: SeriesStyle) -> dict | None:
    """The script's description of one series (None: no field to colour, or no step)."""
    names = sorted({name for part in parts for name in part.fields})
    field = next((name for name in names if re.fullmatch(style.field, name)), None)
    if field is None or not series_times(parts):
        return None
    centre = next(c for part in parts for c, _ in part.fields.get(field, {}).values())
    value_range = style.value_range
    if value_range == "symmetric":
        value_range = _symmetric_range(parts, field)
    elif value_range == "deviation":
        value_range = _deviation_range(parts, field)
    else:
        value_range = list(value_range)
    if style.view == "warp" and "u" not in names:
        return None
    shown_field = f"{field} - mean" if style.view == "deviation" else field
    return {"files": [part.path.name for part in parts], "field": field,
            "shown_field": shown_field,
            "association": ASSOCIATION[centre], "preset": style.preset, "range": value_range,
            "invert": style.preset == PSI_PRESET, "title": style.title,
            "visible": style.visible, "view": style.view}


def _series_entries(folder: Path) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """One entry per field series (hosts first, then as in `STYLES`); the scaffold's and
    everything's bounds (low, high corners stacked)."""
    files = field_files(folder)
    styled = sorted((STYLES.index(style), base, style) for base in files
                    if (style := _style_of(base)) is not None)
    entries = []
    host_bounds, all_bounds = [], []
    for _, base, style in styled:
        entry = _entry(files[base], style)
        if entry is None:
            continue
        points = files[base][-1].geometry.read()
        bounds = np.array([points.min(axis=0), points.max(axis=0)])
        all_bounds.append(bounds)
        if base.startswith("host_"):
            host_bounds.append(bounds)
        entries.append(entry)
    return entries, np.array(host_bounds or all_bounds), np.array(all_bounds)


def _entry_text(entry: dict) -> str:
    items = "".join(f"\n        {key!r}: {value!r}," for key, value in entry.items())
    return f"    {{{items}\n    }},"


def script_text(folder: Path) -> str:
    """The text of ``open_in_paraview.py`` for the run in `folder`."""
    entries, scaffold, everything = _series_entries(folder)
    if not entries:
        raise FileNotFoundError(f"{folder}: no host_*.xdmf, electrolyte.xdmf, pores.xdmf or "
                                "interface.xdmf with fields")
    low, high = scaffold[:, 0].min(axis=0), scaffold[:, 1].max(axis=0)
    origin = (low + high) / 2
    lo_all, hi_all = everything[:, 0].min(axis=0), everything[:, 1].max(axis=0)
    centre = (lo_all + hi_all) / 2
    size = float(np.max(hi_all - lo_all))
    direction = np.array([0.55, -1.0, 0.45]) / np.linalg.norm([0.55, -1.0, 0.45])
    position = centre + 3.0 * size * direction

    def vector(values: np.ndarray) -> str:
        return "[" + ", ".join(f"{float(v):.6g}" for v in values) + "]"

    header = [
        f'"""Open the constrict run in this folder ({folder.name}) in ParaView.',
        "",
        f"    paraview --script={SCRIPT_NAME}",
        f"    pvpython {SCRIPT_NAME} [--screenshot picture.png]",
        "",
        "Written by constrict (postprocess/paraview_state.py). File paths are relative to",
        "this script, so the run folder can be moved. See docs/paraview.md.",
        '"""',
        SCRIPT_IMPORTS,
        "# Field series: files in restart order (the last is shown), the coloured field and its",
        "# association, its colour preset and range (over every saved step), the colour bar",
        "# title, whether it is shown at the start (the eye in the pipeline browser) and how.",
        "SERIES = [",
        *[_entry_text(entry) for entry in entries],
        "]",
        f"CLIP_ORIGIN = {vector(origin)}  # the middle of the scaffold (µm)",
        "CLIP_NORMAL = [0.0, -1.0, 0.0]  # keeps y > middle; look from -y onto the cut",
        f"CAMERA_POSITION = {vector(position)}",
        f"CAMERA_FOCAL_POINT = {vector(centre)}",
        f"PSI_SHOWN = {PSI_SHOWN}  # ψ from which a pore vertex shows as plated Li",
        f"VIEW_SIZE = {list(VIEW_SIZE)}",
    ]
    return "\n".join(header) + "\n" + SCRIPT_BODY


def write_paraview_script(folder: Path) -> Path:
    """Write ``open_in_paraview.py`` into the run `folder`; returns its path.

    Meant for rank 0 at the end of a run, after every field file is closed. Raises
    FileNotFoundError when the folder has no field file the script knows (`STYLES`).
    """
    folder = Path(folder)
    target = folder / SCRIPT_NAME
    target.write_text(script_text(folder), encoding="utf-8")
    log.info("ParaView script written: %s", target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m postprocess.paraview_state",
                                     description=f"Write {SCRIPT_NAME} into a run folder.")
    parser.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    print(write_paraview_script(args.folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
