"""Off-screen renders of a run folder and the ParaView script written into it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_cli_run import CASE, constrict

from postprocess.fields import field_files, series_times
from postprocess.paraview_state import write_paraview_script
from postprocess.render import _overlaps, load_snapshot, render_run, select_backend


@pytest.fixture(scope="session")
def run_folder(tmp_path_factory) -> Path:
    """A finished small_scaffold run (charge, then rest), made through the command line."""
    work = tmp_path_factory.mktemp("render")
    result = constrict("run", str(CASE), "-o", "run", cwd=work)
    assert result.returncode == 0, result.stderr[-2000:]
    return work / "run"


@pytest.fixture
def run_copy(run_folder: Path, tmp_path: Path) -> Path:
    """A copy of the run folder that a test may change."""
    return Path(shutil.copytree(run_folder, tmp_path / "run"))


needs_opengl = pytest.mark.skipif(select_backend(apply=False) is None,
                                  reason="no off-screen OpenGL here (DISPLAY, EGL or OSMesa)")


def image_content(path: Path) -> tuple[np.ndarray, float]:
    """The pixels and the fraction of clearly coloured (not grey, white or black) ones."""
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    chroma = pixels.max(axis=-1) - pixels.min(axis=-1)
    return pixels, float(np.mean(chroma > 60))


# --------------------------------------------------------------------------- reading


def test_xdmf_reader_reads_dolfinx_series(run_folder: Path) -> None:
    files = field_files(run_folder)
    assert set(files) == {"host_Si", "host_graphite", "electrolyte", "interface"}
    host = files["host_Si"][0]
    assert host.cell_type == "Tetrahedron"
    assert set(host.fields) == {"theta_Si", "sigma_h_Si", "eps_lat_Si"}
    times = series_times(files["host_Si"])
    assert times[0] == 0.0 and times[-1] == pytest.approx(90.0)  # 60 s charge + 30 s rest
    grid = load_snapshot(files["host_Si"])
    assert grid.n_points == host.geometry.shape[0] and grid.n_cells == host.topology.shape[0]
    theta = np.asarray(grid["theta_Si"])
    assert theta.min() > -0.01 and 0.1 < theta.max() <= 1.0  # lithiated near the SE
    first = load_snapshot(files["host_Si"], 0.0)
    assert np.ptp(first["theta_Si"]) < 1e-12  # uniform initial state
    phi = load_snapshot(files["electrolyte"])["phi_e"]
    assert np.all(np.isfinite(phi))


def test_restart_files_join_their_series(run_copy: Path) -> None:
    shutil.copy(run_copy / "host_Si.xdmf", run_copy / "host_Si_restart1.xdmf")
    files = field_files(run_copy)
    assert [f.path.name for f in files["host_Si"]] == ["host_Si.xdmf", "host_Si_restart1.xdmf"]
    assert "host_Si_restart1" not in files


# --------------------------------------------------------------------------- renders


@needs_opengl
def test_render_run_writes_non_blank_pngs(run_copy: Path) -> None:
    written = render_run(run_copy)
    names = {path.name for path in written}
    assert {"render_theta.png", "render_phi_e.png"} <= names
    assert "render_sigma_h.png" not in names  # σ_h is zero until the mechanics lands
    for path in written:
        assert path.parent == run_copy and path.stat().st_size > 10_000
        pixels, coloured = image_content(path)
        assert pixels.shape[0] > 300 and pixels.shape[1] > 500
        assert pixels.std() > 20 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200
        # the interface current lives on the cells along the SE–scaffold interface only
        least = 0.005 if path.name == "render_interface_current.png" else 0.02
        assert coloured > least, f"{path.name}: hardly any coloured pixels"


def write_series(path: Path, box: tuple[float, float, float], fields: dict) -> None:
    """A DOLFINx XDMF series on a box mesh: P1 fields given as x ↦ values, at 0 and 90 s."""
    from mpi4py import MPI

    from dolfinx import fem, io, mesh

    domain = mesh.create_box(MPI.COMM_SELF, [np.zeros(3), np.array(box)], [4, 4, 4],
                             mesh.CellType.tetrahedron)
    functions = []
    for name, (shape, expression) in fields.items():
        function = fem.Function(fem.functionspace(domain, ("Lagrange", 1, shape)), name=name)
        function.interpolate(expression)
        functions.append(function)
    with io.XDMFFile(MPI.COMM_SELF, path, "w") as xdmf:
        xdmf.write_mesh(domain)
        for time in (0.0, 90.0):
            for function in functions:
                xdmf.write_function(function, time)


def add_future_fields(folder: Path) -> None:
    """What later issues write (names as MODEL §9): a solid mesh around particles and SE
    with u and σ_h, and a pore mesh with ψ. Boxes stand in for the real meshes."""
    write_series(folder / "solid.xdmf", (3.0, 3.0, 3.5), {
        "u": ((3,), lambda x: np.vstack([0.05 * x[0], 0.0 * x[1], -0.02 * x[2]])),
        "sigma_h": ((), lambda x: -100.0 * x[2])})
    write_series(folder / "pore.xdmf", (3.0, 3.0, 2.5), {"psi": ((), lambda x: x[2] / 2.5)})


def test_overlapping_meshes_are_recognised(run_copy: Path) -> None:
    add_future_fields(run_copy)
    files = field_files(run_copy)
    grid = {base: load_snapshot(files[base]) for base in files}
    assert _overlaps(grid["solid"], grid["host_Si"]) and _overlaps(grid["host_Si"], grid["solid"])
    assert _overlaps(grid["solid"], grid["electrolyte"])
    assert not _overlaps(grid["host_Si"], grid["electrolyte"])
    assert not _overlaps(grid["host_Si"], grid["host_graphite"])
    assert grid["solid"]["u"].shape == (grid["solid"].n_points, 3)


@needs_opengl
def test_new_fields_are_rendered_by_name(run_copy: Path) -> None:
    """Fields that later issues add get their image from their name alone, once non-zero."""
    add_future_fields(run_copy)
    names = {path.name for path in render_run(run_copy)}
    assert {"render_theta.png", "render_phi_e.png", "render_u.png", "render_sigma_h.png",
            "render_psi.png"} <= names
    assert "render_eps_lat.png" not in names  # still zero everywhere
    for name in ("render_u.png", "render_sigma_h.png", "render_psi.png"):
        assert image_content(run_copy / name)[1] > 0.02


def test_render_run_without_fields_writes_nothing(tmp_path: Path) -> None:
    assert render_run(tmp_path) == []


def test_render_run_survives_a_crashing_renderer(run_copy: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """VTK aborts the process when it cannot make an OpenGL context: the run goes on."""
    crashing = tmp_path / "python"
    crashing.write_text("#!/bin/sh\nkill -SEGV $$\n")
    crashing.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(crashing))
    assert render_run(run_copy) == []


# --------------------------------------------------------------------------- ParaView
# The generated script runs in real pvpython in tests/test_paraview.py (V12).


def test_paraview_script_needs_field_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_paraview_script(tmp_path)
