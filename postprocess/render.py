"""Off-screen 3D renders (PNG) of a run folder's field files, for a look without ParaView.

`render_run(folder)` writes, next to the field files of a finished run:

- ``render_theta.png``: θ of every host at the last time step, cut by a plane through the
  middle of the scaffold (the lithiated shells and caps show on the cut faces), the solid
  electrolyte translucent; one panel with all hosts, then one per host;
- ``render_phi_e.png``: φ_e in the electrolyte (cut the same way) over the particles, at the
  last snapshot taken under current (at rest φ_e is uniform);
- ``render_<kind>.png`` for every other known field kind that a run wrote and that is not
  identically zero (σ_h, ε_lat, u, ψ, p_Li, interface current, …; see `STYLES`). Fields are
  found by name in every ``*.xdmf`` of the folder, so a new field needs at most a `STYLES`
  entry. Images from an earlier rendering of the folder are replaced.

The XDMF/HDF5 files are read directly (ElementTree + h5py): the mesh is the first uniform
grid with a topology (``/Mesh/<name>/topology|geometry``), at the top as DOLFINx writes it or
in the temporal collection as `solver.xdmf.regroup` leaves it; the fields are the
attributes of the collections' grids (``/Function/<name>/<time>``). Restarted runs add
``<name>_restart<k>.xdmf``; a time present in several files is taken from the latest one.
VTX (``.bp``) output is not read.

Rendering needs an OpenGL context without a display: `select_backend` picks X (if DISPLAY is
set), EGL (libEGL, e.g. Mesa llvmpipe or a GPU driver) or OSMesa, in that order; without any
of them nothing is rendered and a warning says why. `render_run` renders in a child process:
a VTK crash (VTK aborts when no OpenGL context can be made) cannot take the run down with it.

Run by hand: ``python -m postprocess.render RUN_FOLDER``.
"""

from __future__ import annotations

import argparse
import csv
import ctypes.util
import dataclasses
import json
import logging
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from postprocess.fields import FieldFile, field_files, series_times

if TYPE_CHECKING:
    import pyvista as pv

log = logging.getLogger("constrict.render")

ROOT = Path(__file__).resolve().parents[1]
PANEL_PIXELS = (900, 820)  # one 3D view
RENDER_TIMEOUT_S = 900


# --------------------------------------------------------------------------- field kinds


@dataclass(frozen=True)
class FieldStyle:
    """How one kind of field is shown; `pattern` is matched against the whole field name."""

    kind: str
    pattern: str
    label: str  # scalar bar title, with unit
    cmap: str
    clim: tuple[float, float] | None = None  # None: the data range
    diverging: bool = False  # centre the colour range on `centre` (None: the data mean)
    centre: float | None = None
    scale: float = 1.0  # shown value = stored value * scale (unit of `label`)

    def matches(self, name: str) -> bool:
        return re.fullmatch(self.pattern, name) is not None


# Field names as the solver writes them (θ_k, σ_h and ε_lat per host material k, φ_e) and
# the ones MODEL §9 announces. A field that matches no entry is not rendered.
STYLES: list[FieldStyle] = [
    FieldStyle("theta", r"theta_.+", r"$\theta$ (Li fraction)", "viridis", clim=(0.0, 1.0)),
    FieldStyle("phi_e", r"phi_e", r"$\varphi_e$ (mV)", "coolwarm", diverging=True, scale=1e3),
    FieldStyle("sigma_h", r"sigma_h(_.+)?", r"$\sigma_h$ (MPa)", "RdBu_r", diverging=True,
               centre=0.0),
    FieldStyle("von_mises", r"(sigma_vm|von_mises)(_.+)?", r"$\sigma_{vM}$ (MPa)", "inferno"),
    FieldStyle("eps_lat", r"eps_lat(_.+)?", r"$\varepsilon_{lat}$", "PuOr_r", diverging=True,
               centre=0.0),
    FieldStyle("D_ratio", r"(D_ratio|D_over_D0)(_.+)?", r"$D/D_0$", "cividis"),
    FieldStyle("u", r"u(_.+)?", r"$|u|$ (µm)", "plasma"),
    FieldStyle("psi", r"psi(_.+)?", r"$\psi$ (plated Li volume fraction)", "YlGnBu",
               clim=(0.0, 1.0)),
    FieldStyle("p_Li", r"p_Li(_.+)?", r"$p_{Li}$ (MPa)", "magma"),
    FieldStyle("interface_current",
               r"(i|i_n|i_int|i_interface|interface_current|current_density)(_.+)?",
               r"$i$ (A/m²)", "coolwarm", diverging=True, centre=0.0),
    FieldStyle("plated_Li", r"(h_Li|plated_Li|plated)(_.+)?", "plated Li thickness (µm)",
               "copper"),
]


Bar = tuple[FieldStyle, tuple[float, float]]  # a colour bar: style and colour range


def _vtk_cells(cell_type: str) -> Any:
    import pyvista as pv

    types = {"Tetrahedron": pv.CellType.TETRA, "Triangle": pv.CellType.TRIANGLE,
             "Hexahedron": pv.CellType.HEXAHEDRON, "Quadrilateral": pv.CellType.QUAD,
             "Polyline": pv.CellType.LINE}
    if cell_type not in types:
        raise ValueError(f"cell type {cell_type} is not supported (first-order cells only)")
    return types[cell_type]


def load_snapshot(files: list[FieldFile], when: float | None = None) -> pv.UnstructuredGrid:
    """The mesh of a series with every field at time `when` (default: the last time).

    DOLFINx writes XDMF cells in VTK vertex order, so they are used as they are.
    """
    import pyvista as pv

    times = series_times(files)
    if not times:
        raise ValueError(f"{files[0].path.name}: no time steps")
    when = times[-1] if when is None else when
    source = next(f for f in reversed(files) if when in f.times)
    cells = source.topology.read()
    points = source.geometry.read()
    if points.shape[1] == 2:
        points = np.column_stack([points, np.zeros(len(points))])
    grid = pv.UnstructuredGrid({_vtk_cells(source.cell_type): cells}, points)
    for name, series in source.fields.items():
        if when not in series:
            continue
        centre, ref = series[when]
        values = ref.read()
        values = values[:, 0] if values.ndim == 2 and values.shape[1] == 1 else values
        if values.ndim == 2 and values.shape[1] == 2:  # 2D vectors: pad for VTK
            values = np.column_stack([values, np.zeros(len(values))])
        target = grid.point_data if centre == "Node" else grid.cell_data
        target[name] = values
    grid.field_data["time"] = [when]
    return grid


# --------------------------------------------------------------------------- backend


def select_backend(apply: bool = True) -> str | None:
    """Choose VTK's off-screen OpenGL window; None when this machine has none.

    Respects VTK_DEFAULT_OPENGL_WINDOW if set. Otherwise X when DISPLAY is set, EGL when
    libEGL is found, OSMesa when libOSMesa is found (VTK ≥ 9.4 wheels load all three at run
    time). With `apply`, EGL or OSMesa is set in VTK_DEFAULT_OPENGL_WINDOW for this process:
    that spares VTK a failed attempt at X and its warning.
    """
    if os.environ.get("VTK_DEFAULT_OPENGL_WINDOW"):
        return os.environ["VTK_DEFAULT_OPENGL_WINDOW"]
    if os.environ.get("DISPLAY"):
        return "X"
    for library, window in (("EGL", "vtkEGLRenderWindow"), ("OSMesa", "vtkOSOpenGLRenderWindow")):
        if ctypes.util.find_library(library):
            if apply:
                os.environ["VTK_DEFAULT_OPENGL_WINDOW"] = window
            return window
    return None


# --------------------------------------------------------------------------- scenes


def _format_time(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.4g} s"
    if seconds < 2 * 3600:
        return f"{seconds:.0f} s ({seconds / 60:.1f} min)"
    return f"{seconds:.0f} s ({seconds / 3600:.2f} h)"


@dataclass
class Scene:
    """Geometry shared by the panels of one image: bounds, cut plane, camera."""

    bounds: tuple[float, ...]  # xmin, xmax, ymin, ymax, zmin, zmax of everything
    origin: tuple[float, float, float]  # cut plane through the middle of the scaffold
    normal: tuple[float, float, float] = (0.0, -1.0, 0.0)  # the half y > middle is kept

    def clip(self, grid: pv.DataSet) -> pv.DataSet:
        return grid.clip(normal=self.normal, origin=self.origin, invert=True, crinkle=False)

    def camera(self, plotter: pv.Plotter, view: str = "oblique") -> None:
        """View "oblique": from the front (−y), right and above, onto the cut; "below": from −z."""
        x0, x1, y0, y1, z0, z1 = self.bounds
        centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2, (z0 + z1) / 2])
        size = max(x1 - x0, y1 - y0, z1 - z0)
        direction, up = {"oblique": ((0.55, -1.0, 0.45), (0.0, 0.0, 1.0)),
                         "below": ((0.0, 0.0, -1.0), (0.0, 1.0, 0.0))}[view]
        position = centre + 3.0 * size * np.array(direction) / np.linalg.norm(direction)
        plotter.camera_position = [tuple(position), tuple(centre), up]
        plotter.reset_camera()
        plotter.camera.zoom(1.1)


def _scene(hosts: Iterable[pv.DataSet], others: Iterable[pv.DataSet]) -> Scene:
    hosts = list(hosts)
    everything = [*hosts, *others]
    reference = hosts or everything
    low = np.min([g.bounds[0::2] for g in reference], axis=0)
    high = np.max([g.bounds[1::2] for g in reference], axis=0)
    lows = np.min([g.bounds[0::2] for g in everything], axis=0)
    highs = np.max([g.bounds[1::2] for g in everything], axis=0)
    flat = tuple(float(v) for pair in zip(lows, highs, strict=True) for v in pair)
    return Scene(bounds=flat, origin=tuple(float(v) for v in (low + high) / 2))


class Panel:
    """One off-screen 3D view; its picture goes into a `Figure`."""

    def __init__(self, scene: Scene) -> None:
        import pyvista as pv

        pv.OFF_SCREEN = True
        self.scene = scene
        self.plotter = pv.Plotter(off_screen=True, window_size=PANEL_PIXELS)
        self.plotter.set_background("white")

    def coloured(self, grid: pv.DataSet, scalars: str, style: FieldStyle,
                 clim: tuple[float, float], clip: bool = True) -> None:
        grid = self.scene.clip(grid) if clip else grid
        if grid.n_points:
            # mostly ambient light: the colours stay readable against the colour bar
            self.plotter.add_mesh(grid, scalars=scalars, cmap=style.cmap, clim=clim,
                                  show_scalar_bar=False, ambient=0.45, diffuse=0.6,
                                  specular=0.0)

    def grey(self, grid: pv.DataSet, opacity: float = 1.0, color: str = "#d1d1d1") -> None:
        grid = self.scene.clip(grid)
        if grid.n_points:
            self.plotter.add_mesh(grid, color=color, opacity=opacity)

    def electrolyte(self, grid: pv.DataSet) -> None:
        """The solid electrolyte as context: translucent where kept, its box as an outline."""
        self.grey(grid, opacity=0.12, color="#8c8c8c")
        self.outline(grid)

    def outline(self, grid: pv.DataSet) -> None:
        self.plotter.add_mesh(grid.outline(), color="#595959", line_width=1)

    def picture(self, view: str = "oblique") -> np.ndarray:
        self.scene.camera(self.plotter, view)
        image = self.plotter.screenshot(return_img=True)
        self.plotter.close()
        return image


def _trim(images: list[np.ndarray], margin: int = 12) -> list[np.ndarray]:
    """Cut the white border common to same-sized pictures (so they keep one scale)."""
    drawn = np.argwhere(np.any(np.stack([image[..., :3] < 250 for image in images]), axis=(0, -1)))
    if not len(drawn):
        return images
    (top, left), (bottom, right) = drawn.min(axis=0), drawn.max(axis=0)
    rows = slice(max(top - margin, 0), bottom + margin + 1)
    columns = slice(max(left - margin, 0), right + margin + 1)
    return [image[rows, columns] for image in images]


class Figure:
    """Panels side by side (matplotlib), each with a caption and a colour bar with units."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.panels: list[tuple[np.ndarray, str, Bar | None]] = []

    def add(self, image: np.ndarray, caption: str, bar: Bar | None) -> None:
        self.panels.append((image, caption, bar))

    def save(self, target: Path) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        count = len(self.panels)
        images = _trim([image for image, _, _ in self.panels])
        figure, axes = plt.subplots(1, count, figsize=(4.6 * count, 4.9), squeeze=False)
        for ax, image, (_, caption, bar) in zip(axes[0], images, self.panels, strict=True):
            ax.imshow(image, interpolation="antialiased")
            ax.set_axis_off()
            ax.set_title(caption, fontsize=10)
            if bar is not None:
                style, clim = bar
                mappable = ScalarMappable(Normalize(*clim), plt.get_cmap(style.cmap))
                colorbar = figure.colorbar(mappable, ax=ax, orientation="horizontal",
                                           fraction=0.05, pad=0.02, aspect=30, shrink=0.8)
                colorbar.set_label(style.label)
        figure.suptitle(self.title, fontsize=12)
        figure.savefig(target, dpi=150, bbox_inches="tight", facecolor="white")
        plt.close(figure)
        return target


def _colour_range(style: FieldStyle, shown: list[np.ndarray]) -> tuple[float, float]:
    """The colour range for values as shown (already scaled)."""
    if style.clim is not None:
        return style.clim
    data = np.concatenate([np.ravel(v) for v in shown])
    low, high = float(np.min(data)), float(np.max(data))
    if style.diverging:
        centre = float(np.mean(data)) if style.centre is None else style.centre * style.scale
        half = max(high - centre, centre - low) or max(abs(centre) * 1e-6, 1e-12)
        return centre - half, centre + half
    if high - low <= 1e-12 * max(abs(high), 1.0):
        high = low + max(abs(low) * 1e-6, 1e-12)
    return low, high


def _shown(grid: pv.DataSet, name: str, style: FieldStyle) -> tuple[pv.DataSet, str]:
    """A copy of `grid` carrying the field as shown (scaled; vectors as magnitude, warped)."""
    values = np.asarray(grid[name])
    shown = grid.copy()
    if values.ndim == 2:  # a vector field (u): warp by it, colour by its magnitude
        shown = shown.warp_by_vector(name, factor=1.0)
        values = np.linalg.norm(values, axis=1)
    shown[f"{name} (shown)"] = values * style.scale
    return shown, f"{name} (shown)"


# --------------------------------------------------------------------------- renders


@dataclass
class RunData:
    folder: Path
    name: str
    files: dict[str, list[FieldFile]]
    current_times: list[float] | None  # times (CSV) with a non-zero current, if known

    snapshots: dict[tuple[str, float | None], pv.UnstructuredGrid] = field(default_factory=dict)

    @property
    def hosts(self) -> list[str]:
        return sorted(base for base in self.files if base.startswith("host_"))

    def snapshot(self, base: str, when: float | None = None) -> pv.UnstructuredGrid:
        """`load_snapshot` of a series, read once per run (treat it as read-only)."""
        if (base, when) not in self.snapshots:
            self.snapshots[base, when] = load_snapshot(self.files[base], when)
        return self.snapshots[base, when]

    @staticmethod
    def material(base: str) -> str:
        return base.removeprefix("host_")

    def title(self, when: float, note: str = "") -> str:
        return f"{self.name}   t = {_format_time(when)}{note}"


def _case_name(folder: Path) -> str:
    case = folder / "case.yaml"
    if case.is_file():
        import yaml

        try:
            name = (yaml.safe_load(case.read_text()) or {}).get("name")
        except yaml.YAMLError:
            name = None
        if name:
            return str(name)
    return folder.name


def _current_times(folder: Path) -> list[float] | None:
    series = folder / "timeseries.csv"
    if not series.is_file():
        return None
    with series.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    column = "current_density_A_per_m2"
    if not rows or column not in rows[0]:
        return None
    return [float(row["time_s"]) for row in rows
            if row[column] and abs(float(row[column])) > 0.0]


def _style(kind: str) -> FieldStyle:
    return next(style for style in STYLES if style.kind == kind)


def render_theta(run: RunData, target: Path) -> Path | None:
    """θ of every host at the last time, cut through the scaffold; all hosts, then each."""
    style = _style("theta")
    hosts = {}
    for base in run.hosts:
        grid = run.snapshot(base)
        name = next((n for n in grid.point_data if style.matches(n)), None)
        if name is not None:
            hosts[base] = (grid, name)
    if not hosts:
        return None
    electrolyte = run.snapshot("electrolyte") if "electrolyte" in run.files else None
    scene = _scene([grid for grid, _ in hosts.values()], [electrolyte] if electrolyte else [])
    when = max(float(grid.field_data["time"][0]) for grid, _ in hosts.values())
    groups = [("all hosts: " + ", ".join(run.material(b) for b in hosts), list(hosts))]
    if len(hosts) > 1:
        groups += [(run.material(base), [base]) for base in hosts]
    figure = Figure(run.title(when) + f"   θ, cut at y = {scene.origin[1]:.3g} µm")
    for caption, members in groups:
        panel = Panel(scene)
        for base in members:
            grid, name = hosts[base]
            panel.coloured(grid, name, style, style.clim)
        if electrolyte is not None:
            panel.electrolyte(electrolyte)
        figure.add(panel.picture(), caption, (style, style.clim))
    return figure.save(target)


def _phi_time(run: RunData, files: list[FieldFile]) -> tuple[float, str]:
    """The last snapshot under current (φ_e is uniform at rest), else the last one."""
    times = series_times(files)
    if run.current_times:
        flowing = [t for t in times if any(math.isclose(t, c, rel_tol=1e-9, abs_tol=1e-12)
                                           for c in run.current_times)]
        if flowing and flowing[-1] != times[-1]:
            return flowing[-1], " (last snapshot under current)"
    return times[-1], ""


def render_phi_e(run: RunData, target: Path) -> Path | None:
    """φ_e in the electrolyte: cut through the middle over the grey particles, and its
    underside (its face on the scaffold, where the current enters the particles)."""
    if "electrolyte" not in run.files:
        return None
    style = _style("phi_e")
    when, note = _phi_time(run, run.files["electrolyte"])
    electrolyte = run.snapshot("electrolyte", when)
    if "phi_e" not in electrolyte.point_data:
        return None
    hosts = [run.snapshot(base) for base in run.hosts]
    scene = _scene(hosts, [electrolyte])
    shown, name = _shown(electrolyte, "phi_e", style)
    mean, spread = float(np.mean(shown[name])), float(np.ptp(shown[name]))
    about = f"range {spread:.3g} mV"
    if spread < 0.01 * abs(mean):  # a small variation on a large offset: show the variation
        shown[name] = (shown[name] - mean) * 1e3
        style = dataclasses.replace(style, label=r"$\varphi_e - \langle\varphi_e\rangle$ (µV)",
                                    centre=0.0)
        about = f"⟨φ_e⟩ = {mean:.6g} mV, range {spread * 1e3:.3g} µV"
    clim = _colour_range(style, [shown[name]])
    figure = Figure(run.title(when, note) + f"   φ_e: {about}")
    panel = Panel(scene)
    for grid in hosts:
        panel.grey(grid)
    panel.coloured(shown, name, style, clim)
    panel.outline(electrolyte)
    figure.add(panel.picture(), f"cut at y = {scene.origin[1]:.3g} µm, particles grey",
               (style, clim))
    panel = Panel(scene)
    panel.coloured(shown, name, style, clim, clip=False)
    figure.add(panel.picture("below"), "from below: the electrolyte's face on the scaffold\n"
               "(holes: particles reaching into it)", (style, clim))
    return figure.save(target)


def _overlaps(a: pv.DataSet, b: pv.DataSet, samples: int = 100) -> bool:
    """Whether one mesh lies mostly inside the other (a submesh of it, say): then drawing
    both would put two surfaces in the same place."""
    def inside(big: pv.DataSet, small: pv.DataSet) -> bool:
        centres = small.cell_centers().points
        centres = centres[np.linspace(0, len(centres) - 1, min(samples, len(centres))).astype(int)]
        return bool(np.mean(big.find_containing_cell(centres) >= 0) > 0.5)

    return inside(a, b) or inside(b, a)


def render_kind(run: RunData, style: FieldStyle, target: Path) -> Path | None:
    """Any other field kind, on the series that have it, at their last time; None if all ≈ 0.

    A series that overlaps another one with the same kind (a host mesh inside the whole
    solid, say) is left out, the all-zero or smaller one; so are context series that overlap
    a coloured one.
    """
    grids = {base: run.snapshot(base) for base in run.files}
    found = [(base, grid, name) for base, grid in grids.items()
             for name in [*grid.point_data, *grid.cell_data] if style.matches(name)]
    if not found or all(np.allclose(grid[name], 0.0) for _, grid, name in found):
        return None
    # in an overlap, a series with data wins over an all-zero one, then the larger volume
    found.sort(key=lambda item: (bool(np.allclose(item[1][item[2]], 0.0)), -item[1].volume))
    kept: list[tuple[str, pv.DataSet, str]] = []
    for item in found:
        if not any(_overlaps(item[1], other[1]) for other in kept):
            kept.append(item)
    bases = {base for base, _, _ in found}
    context = {base: grid for base, grid in grids.items() if base not in bases
               and not any(_overlaps(grid, other) for _, other, _ in kept)}
    hosts = [grid for base, grid in grids.items() if base.startswith("host_")]
    scene = _scene(hosts or [grid for _, grid, _ in kept], grids.values())
    shown = [_shown(grid, name, style) for _, grid, name in kept]
    clim = _colour_range(style, [grid[name] for grid, name in shown])
    when = max(float(grid.field_data["time"][0]) for _, grid, _ in kept)
    panel = Panel(scene)
    for grid, name in shown:
        panel.coloured(grid, name, style, clim)
    for base, grid in context.items():
        if base == "electrolyte":
            panel.electrolyte(grid)
        elif base.startswith("host_"):
            panel.grey(grid)
        else:
            panel.grey(grid, opacity=0.12, color="#8c8c8c")
    names = ", ".join(sorted(name for _, _, name in kept))
    warped = " (deformed shape, true scale)" if any(
        np.asarray(grid[name]).ndim == 2 for _, grid, name in kept) else ""
    figure = Figure(run.title(when))
    figure.add(panel.picture(), f"{names}{warped}, cut at y = {scene.origin[1]:.3g} µm",
               (style, clim))
    return figure.save(target)


def render_folder(folder: Path) -> tuple[list[Path], list[str]]:
    """Render what the run in `folder` wrote, in this process.

    Returns the PNGs written and the images that failed (each logged with its traceback);
    `render_run` is the entry point that isolates the run from crashes.
    """
    folder = Path(folder)
    names = ["render_theta.png", "render_phi_e.png"]
    names += [f"render_{s.kind}.png" for s in STYLES if s.kind not in ("theta", "phi_e")]
    for stale in names:
        (folder / stale).unlink(missing_ok=True)
    files = field_files(folder)
    if not files:
        if any(folder.glob("*.bp")):
            log.warning("%s: VTX (.bp) output is not rendered; use output.format: xdmf", folder)
        return [], []
    if select_backend() is None:
        log.warning("no off-screen OpenGL (no DISPLAY, libEGL or libOSMesa): nothing rendered; "
                    "see docs/paraview.md")
        return [], []
    run = RunData(folder, _case_name(folder), files, _current_times(folder))
    renders: list[tuple[str, Callable[[Path], Path | None]]] = [
        ("render_theta.png", lambda target: render_theta(run, target)),
        ("render_phi_e.png", lambda target: render_phi_e(run, target)),
    ]
    for style in STYLES:
        if style.kind not in ("theta", "phi_e"):
            renders.append((f"render_{style.kind}.png",
                            lambda target, style=style: render_kind(run, style, target)))
    written, failed = [], []
    for filename, render in renders:
        start = time.perf_counter()
        try:
            result = render(folder / filename)
        except Exception:  # one image failing should not cost the others
            log.exception("%s failed", filename)
            failed.append(filename)
            continue
        if result is not None:
            log.info("%s rendered in %.1f s", filename, time.perf_counter() - start)
            written.append(result)
    return written, failed


def render_run(folder: Path) -> list[Path]:
    """Render the run in `folder` to PNGs in a child process; never raises.

    Meant for rank 0 at the end of a run, after every field file is closed. Returns the PNGs
    written (an empty list, with a warning in the log, when rendering was not possible).
    """
    folder = Path(folder).resolve()
    start, started = time.perf_counter(), time.time()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PMI_", "PMIX_", "HYDRA_", "MPIR_", "OMPI_", "I_MPI_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "postprocess.render", str(folder), "--json"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=env,
                                timeout=RENDER_TIMEOUT_S, cwd=folder)
    except (OSError, subprocess.TimeoutExpired) as error:
        log.warning("rendering %s failed: %s", folder, error)
        return []
    lines = result.stdout.strip().splitlines()
    try:
        written = [Path(p) for p in json.loads(lines[-1])]
    except (IndexError, ValueError):  # the child died before reporting (a VTK crash)
        written = sorted(p for p in folder.glob("render_*.png")
                         if p.stat().st_mtime >= started - 1.0)
    if result.returncode != 0:
        log.warning("rendering %s failed (exit %s): %s", folder, result.returncode,
                    result.stderr.strip()[-1500:])
    log.info("rendered %d images in %.1f s: %s", len(written), time.perf_counter() - start,
             ", ".join(p.name for p in written) or "none")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m postprocess.render",
                                     description="Render a run folder's fields to PNG.")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--json", action="store_true",
                        help="print the written files as a JSON list on the last line")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s: %(message)s")
    written, failed = render_folder(args.folder)
    if args.json:
        print(json.dumps([str(p) for p in written]))
    else:
        for path in written:
            print(path)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
