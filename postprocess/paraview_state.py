"""A ParaView Python script, written into a run folder, that opens the run's results.

`write_paraview_script(folder)` writes ``open_in_paraview.py``: run it with
``paraview --script=open_in_paraview.py`` (GUI) or ``pvpython open_in_paraview.py
[--screenshot out.png]``. It opens every ``host_*.xdmf`` and ``electrolyte.xdmf`` of the
folder, and ``pores.xdmf`` and ``interface.xdmf`` when the run wrote them (restart files
``*_restart<k>.xdmf`` too; the latest of a series is shown). It colours θ with Viridis on
0–1, φ_e with a diverging map, ψ (plated Li) with Blues on 0–1 and the interface current
density with another diverging map around 0, clips everything through the middle of the
scaffold, goes to the last time step and resets the camera. The interface current lives on
the electrolyte's cells, so it starts hidden (its eye in the pipeline browser shows it).
Paths are relative to the script, so the folder can be moved or copied.

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

from postprocess.render import FieldFile, field_files, series_times

log = logging.getLogger("constrict.paraview")

SCRIPT_NAME = "open_in_paraview.py"
# Colour presets (ParaView names): θ on the hosts, φ_e in the electrolyte, ψ in the pores,
# the interface current density (diverging, unlike φ_e's, so that the two bars differ).
THETA_PRESET = "Viridis (matplotlib)"
DIVERGING_PRESET = "Cool to Warm"
PSI_PRESET = "Blues"
CURRENT_PRESET = "Blue Orange (divergent)"
# XDMF attribute centre -> ParaView array association (DG0 fields are cell data)
ASSOCIATION = {"Node": "POINTS", "Cell": "CELLS"}


@dataclass(frozen=True)
class SeriesStyle:
    """How the script shows the series whose base file name matches `files`: the first field
    matching `field`, its preset, range ((low, high), None for the data range, "symmetric"
    for ± the largest |value| of every saved step), colour bar title, shown at the start."""

    files: str
    field: str
    preset: str
    value_range: tuple[float, float] | str | None
    title: str
    visible: bool = True


# The series the script opens, in this order (names as solver/simulation.py writes them).
STYLES = (
    SeriesStyle(r"host_.+", r"theta_.+", THETA_PRESET, (0.0, 1.0),
                "theta (Li fraction), all hosts"),
    SeriesStyle(r"electrolyte", r"phi_e", DIVERGING_PRESET, None, "phi_e (V)"),
    SeriesStyle(r"pores", r"psi", PSI_PRESET, (0.0, 1.0), "psi (plated Li volume fraction)"),
    # on the electrolyte's cells at the interface (zero elsewhere): the same cells as φ_e
    SeriesStyle(r"interface", r"interface_current", CURRENT_PRESET, "symmetric",
                "interface current density (A/m^2)", visible=False),
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
    field, value_range = series["field"], series["range"]
    simple.ColorBy(display, (series["association"], field))
    lut = simple.GetColorTransferFunction(field)
    lut.ApplyPreset(series["preset"], True)
    if value_range is None:
        display.RescaleTransferFunctionToDataRange(False, True)
    else:
        lut.AutomaticRescaleRangeMode = "Never"
        lut.RescaleTransferFunction(value_range[0], value_range[1])
        simple.GetOpacityTransferFunction(field).RescaleTransferFunction(value_range[0],
                                                                        value_range[1])
    if bar:  # hosts share one colour bar (same map and range)
        display.SetScalarBarVisibility(view, True)
        scalar_bar = simple.GetScalarBar(lut, view)
        scalar_bar.Title = series["title"]
        scalar_bar.ComponentTitle = ""


def only_block(reader, name, field):
    """DOLFINx writes each function as its own grid (a block) on a shared mesh: keep the
    block that carries `field`, or the coincident blocks without it hide its colours."""
    try:
        block = simple.ExtractBlock(registrationName="%s: %s" % (name, field), Input=reader)
        block.Selectors = ["/Root/%s" % field]
    except AttributeError:  # ParaView < 5.10 has no block selectors: use the whole reader
        return reader
    return block


def main():
    view = simple.GetActiveViewOrCreate("RenderView")
    bars = set()
    for series in SERIES:
        files = series["files"]
        for index, name in enumerate(files):
            reader = simple.Xdmf3ReaderT(registrationName=name, FileName=[path_of(name)])
            clip = simple.Clip(registrationName="%s: clip" % name,
                               Input=only_block(reader, name, series["field"]))
            clip.ClipType = "Plane"
            clip.ClipType.Origin = CLIP_ORIGIN
            clip.ClipType.Normal = CLIP_NORMAL
            clip.Invert = 1
            display = simple.Show(clip, view)
            display.Representation = "Surface"
            colour(display, view, series, bar=series["title"] not in bars)
            bars.add(series["title"])
            if index < len(files) - 1 or not series["visible"]:  # earlier part of a restart
                simple.Hide(clip, view)
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
        simple.SaveScreenshot(target, view, ImageResolution=[1600, 1000])
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
    elif value_range is not None:
        value_range = list(value_range)
    return {"files": [part.path.name for part in parts], "field": field,
            "association": ASSOCIATION[centre], "preset": style.preset, "range": value_range,
            "title": style.title, "visible": style.visible}


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
        "# association, its colour preset and range (None: the data range), the colour bar",
        "# title, and whether it is shown at the start (the eye in the pipeline browser).",
        "SERIES = [",
        *[_entry_text(entry) for entry in entries],
        "]",
        f"CLIP_ORIGIN = {vector(origin)}  # the middle of the scaffold (µm)",
        "CLIP_NORMAL = [0.0, -1.0, 0.0]  # keeps y > middle; look from -y onto the cut",
        f"CAMERA_POSITION = {vector(position)}",
        f"CAMERA_FOCAL_POINT = {vector(centre)}",
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
