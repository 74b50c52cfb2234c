"""V12: every field file of a run opens in real ParaView (Debian's pvpython under xvfb-run)
with its fields and time steps, the generated script renders a screenshot, and pyvista's
reader and `postprocess.fields` read the same series.

The run: small_scaffold with Cu and graphite at 2C with plating, a snapshot every step;
and, for the mechanics' view (the solid warped by u and coloured by σ_h), a `solid.xdmf`
written beside it by the run's own `FieldWriter` on a box over the same region (a
mechanics run of the small box takes ~10 minutes, docs/performance.md).

ParaView is not a Python package of the project: where `pvpython` or `xvfb-run` is missing
the ParaView tests skip, saying how to install them.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import textwrap
from pathlib import Path

from mpi4py import MPI

import numpy as np
import pytest
from dolfinx import fem, mesh
from PIL import Image
from test_cli_run import CASE, constrict
from test_p4_scaffold_comparison import COMPARISON_SETTINGS, FIRST_FAMILIES

from postprocess.fields import read_run_fields
from postprocess.paraview_state import SCRIPT_NAME, write_paraview_script
from solver.output import FieldWriter

pytestmark = pytest.mark.skipif(MPI.COMM_WORLD.size > 1, reason="serial: subprocesses")

PVPYTHON, XVFB = shutil.which("pvpython"), shutil.which("xvfb-run")
needs_paraview = pytest.mark.skipif(
    PVPYTHON is None or XVFB is None,
    reason="ParaView is not installed: apt-get install paraview python3-paraview xvfb "
           "(Debian/Ubuntu; .ci/run installs them)")
# P4's Cu scaffold (tests/test_p4_scaffold_comparison.py) for 3 s: Li plates at the Cu
# contacts from the start
SETTINGS = [*COMPARISON_SETTINGS[:-3], *FIRST_FAMILIES["Cu"], "output.fields_every=1",
            "protocol.steps=[{type: galvanostatic, current_density: 7.4 mA/cm^2, "
            "duration: 3 s}]"]
# xvfb-run's default screen is 8-bit, on which ParaView's OpenGL window fails now and then
XVFB_SCREEN = "-screen 0 1920x1200x24"

# Opens one XDMF file with a named reader and prints what ParaView sees, as JSON.
OPEN_SCRIPT = textwrap.dedent("""
    import json, sys
    from paraview import simple
    reader_name, path = sys.argv[1], sys.argv[2]
    if reader_name == "XDMFReader":
        reader = simple.XDMFReader(FileNames=[path])
    else:
        reader = getattr(simple, reader_name)(FileName=[path])
    times = list(reader.TimestepValues)
    reader.UpdatePipeline(times[-1])
    info = reader.GetDataInformation()
    print(json.dumps({"times": times, "points": info.GetNumberOfPoints(),
                      "cells": info.GetNumberOfCells(),
                      "fields": sorted(list(reader.PointData.keys())
                                       + list(reader.CellData.keys()))}))
""")


def write_solid(folder: Path, times: list[float]) -> None:
    """solid.xdmf as a mechanics run writes it (u, σ_h on the solid), on a box over the
    scaffold, through the run's FieldWriter (so it is regrouped the same way)."""
    box = mesh.create_box(MPI.COMM_SELF, [np.zeros(3), np.array([3.0, 3.0, 3.5])], [4, 4, 4],
                          mesh.CellType.tetrahedron)
    u = fem.Function(fem.functionspace(box, ("Lagrange", 1, (3,))), name="u")
    sigma_h = fem.Function(fem.functionspace(box, ("Lagrange", 1)), name="sigma_h")
    writer = FieldWriter(folder, {"solid": [u, sigma_h]}, "xdmf")
    for time in times:
        u.interpolate(lambda x, t=time: np.vstack([0 * x[0], 0 * x[0], -0.01 * t * x[2]]))
        sigma_h.interpolate(lambda x, t=time: -100.0 * t * x[2])
        writer.write(time)
    writer.close()


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("paraview")
    sets = [item for setting in SETTINGS for item in ("--set", setting)]
    result = constrict("run", str(CASE), "-o", "run", *sets, cwd=work)
    assert result.returncode == 0, result.stderr[-2000:]
    folder = work / "run"
    write_solid(folder, snapshot_times(folder))
    write_paraview_script(folder)
    return folder


def snapshot_times(folder: Path) -> list[float]:
    """The times of timeseries.csv: with a snapshot every step, those of the field files."""
    with (folder / "timeseries.csv").open() as handle:
        return [float(row["time_s"]) for row in csv.DictReader(handle)]


def paraview(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """pvpython under a virtual display; once more if the display was not ready (seen once
    in ~40 runs: an abort in vtkXOpenGLRenderWindow::CreateAWindow before any data)."""
    command = [XVFB, "-a", "-s", XVFB_SCREEN, PVPYTHON, *args]
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=300)
    if result.returncode != 0 and "CreateAWindow" in result.stderr:
        result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=300)
    return result


def field_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.glob("*.xdmf"))


def test_the_run_plated_and_wrote_every_series(run: Path) -> None:
    """The files V12 checks: every series of a plating run, with Li in the pores."""
    assert [path.stem for path in field_files(run)] == [
        "electrolyte", "host_graphite", "interface", "pores", "solid"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["capacity_plating_mAh_per_cm2"] > 0


@needs_paraview
@pytest.mark.parametrize("reader", ["XDMFReader", "Xdmf3ReaderS", "Xdmf3ReaderT"])
def test_v12_every_file_opens_in_paraview_with_its_fields_and_steps(run: Path, reader: str,
                                                                    tmp_path: Path) -> None:
    """The legacy reader segfaulted on DOLFINx's XInclude namespace and the Xdmf3 readers
    showed the mesh and each function as unnamed coincident blocks (solver/xdmf.py)."""
    script = tmp_path / "open.py"
    script.write_text(OPEN_SCRIPT)
    times = snapshot_times(run)
    ours = read_run_fields(run)
    for path in field_files(run):
        result = paraview(str(script), reader, str(path), cwd=run)
        assert result.returncode == 0, f"{path.name}: {result.stderr[-1500:]}"
        seen = json.loads(result.stdout.strip().splitlines()[-1])
        assert seen["times"] == pytest.approx(times), path.name
        assert seen["fields"] == ours[path.stem].field_names, path.name
        assert seen["points"] == len(ours[path.stem].points), path.name
        assert seen["cells"] == len(ours[path.stem].cells), path.name


@needs_paraview
def test_v12_generated_script_renders_a_screenshot(run: Path) -> None:
    result = paraview(SCRIPT_NAME, "--screenshot", "view.png", cwd=run)
    assert result.returncode == 0, result.stderr[-2000:]
    pixels = np.asarray(Image.open(run / "view.png").convert("RGB")).astype(int)
    assert pixels.shape[:2] == (1000, 1600)
    colours, counts = np.unique(pixels.reshape(-1, 3), axis=0, return_counts=True)
    assert len(colours) > 500  # not one colour: shaded particles, colour bars, text
    background = colours[np.argmax(counts)]
    drawn = np.any(np.abs(pixels - background) > 10, axis=-1)
    assert np.mean(drawn) > 0.2  # the scaffold fills a good part of the view


@needs_paraview
def test_v12_script_shows_plated_li_and_the_deformed_solid(run: Path) -> None:
    """The pipeline the script builds: θ per host clipped, φ_e − mean, ψ ≥ PSI_SHOWN over
    the transparent pores with Li in it, the solid warped by u; ranges fixed over the
    series."""
    probe = run / "probe.py"
    probe.write_text(textwrap.dedent("""
        import json, runpy, sys
        sys.argv = ["open_in_paraview.py"]
        runpy.run_path("open_in_paraview.py", run_name="__main__")
        from paraview import simple
        out = {}
        for name, source in simple.GetSources().items():
            source.UpdatePipeline(max(simple.GetAnimationScene().TimeKeeper.TimestepValues))
            out[name[0]] = source.GetDataInformation().GetNumberOfCells()
        lut = simple.GetColorTransferFunction("psi")
        out["psi_range"] = [lut.RGBPoints[0], lut.RGBPoints[-4]]
        print(json.dumps(out))
    """))
    result = paraview(str(probe), cwd=run)
    assert result.returncode == 0, result.stderr[-2000:]
    sources = json.loads(result.stdout.strip().splitlines()[-1])
    assert sources["pores.xdmf: plated Li"] > 0  # the threshold holds plated Li
    assert sources["solid.xdmf: deformed"] > 0 and sources["solid.xdmf: clip"] > 0
    assert sources["electrolyte.xdmf: deviation"] > 0
    assert sources["host_graphite.xdmf: clip"] > 0
    assert sources["psi_range"] == [0.0, 1.0]


def test_pyvista_and_our_reader_read_every_field_at_every_time(run: Path) -> None:
    import pyvista as pv

    times = snapshot_times(run)
    for name, series in read_run_fields(run).items():
        assert series.times == pytest.approx(times), name
        reader = pv.XdmfReader(str(run / f"{name}.xdmf"))
        assert reader.time_values == pytest.approx(times), name
        for time in (times[0], times[-1]):
            reader.set_active_time_value(time)
            grid = reader.read()
            assert sorted(grid.array_names) == series.field_names, name
            for field in series.field_names:
                ours = series.values(field, time)
                np.testing.assert_array_equal(np.asarray(grid[field]), ours, err_msg=name)
    pores = read_run_fields(run)["pores"].series("psi")
    assert list(pores) == pytest.approx(times)
    assert pores[times[0]].max() == 0.0 < pores[times[-1]].max()  # Li plates during the run


@needs_paraview
def test_script_shows_the_latest_restart_part_and_hides_the_earlier(run: Path,
                                                                    tmp_path: Path) -> None:
    folder = Path(shutil.copytree(run, tmp_path / "moved"))  # relative paths: still works
    shutil.copy(folder / "host_graphite.xdmf", folder / "host_graphite_restart1.xdmf")
    write_paraview_script(folder)
    probe = folder / "visible.py"
    probe.write_text(textwrap.dedent("""
        import json, runpy, sys
        sys.argv = ["open_in_paraview.py"]
        runpy.run_path("open_in_paraview.py", run_name="__main__")
        from paraview import simple
        view = simple.GetActiveView()
        print(json.dumps({name[0]: simple.GetDisplayProperties(source, view).Visibility
                          for name, source in simple.GetSources().items()}))
    """))
    result = paraview(str(probe), cwd=folder)
    assert result.returncode == 0, result.stderr[-2000:]
    visible = json.loads(result.stdout.strip().splitlines()[-1])
    assert visible["host_graphite_restart1.xdmf: clip"] == 1
    assert visible["host_graphite.xdmf: clip"] == 0  # the part before the restart
    assert visible["interface.xdmf: clip"] == 0  # on the electrolyte's cells: hidden at first
    assert visible["pores.xdmf: plated Li"] == 1


@needs_paraview
def test_script_stops_with_a_message_on_a_missing_file(run: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(run, tmp_path / "broken"))
    (folder / "electrolyte.xdmf").unlink()
    result = paraview(SCRIPT_NAME, cwd=folder)
    assert result.returncode != 0
    assert "electrolyte.xdmf is missing" in result.stdout + result.stderr


def test_script_of_a_run_without_plating_opens_no_pores(run: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(run, tmp_path / "no_plating"))
    for path in [*folder.glob("pores.*"), *folder.glob("interface.*"), *folder.glob("solid.*")]:
        path.unlink()
    text = write_paraview_script(folder).read_text()
    for absent in ("pores.xdmf", "interface.xdmf", "solid.xdmf"):
        assert absent not in text
    assert "host_graphite.xdmf" in text and "electrolyte.xdmf" in text
