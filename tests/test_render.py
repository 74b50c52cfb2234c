"""Off-screen renders of a run folder and the ParaView script written into it."""

from __future__ import annotations

import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_cli_run import CASE, constrict

from postprocess.fields import field_files, read_xdmf, series_times
from postprocess.paraview_state import SCRIPT_NAME, write_paraview_script
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


class FakeProxy:
    """A ParaView proxy that knows only its real property and method names: a typo raises."""

    def __init__(self, kind: str, calls: list, properties=(), methods=(),
                 arrays: dict[str, str] | None = None, name: str = "") -> None:
        self.__dict__.update(kind=kind, calls=calls, properties=set(properties),
                             methods=set(methods), values={}, arrays=arrays or {}, name=name)

    def __setattr__(self, name: str, value) -> None:
        if name not in self.properties:
            raise AttributeError(f"{self.kind} has no property {name!r}")
        if self.kind == "Clip" and name == "ClipType":
            assert value == "Plane"
            value = FakeProxy("Plane", self.calls, properties=("Origin", "Normal"))
        if self.kind == "ExtractBlock" and name == "Selectors":
            assert len(value) == 1 and value[0].startswith("/Root/")
            block = value[0].removeprefix("/Root/")
            assert block in self.arrays, f"no block {block!r}"
            self.__dict__["arrays"] = {block: self.arrays[block]}
        self.values[name] = value
        self.calls.append((self.kind, "=", name, value))

    def __getattr__(self, name: str):
        if name in self.methods:
            return lambda *args, **kwargs: self.calls.append((self.kind, name, args, kwargs))
        if name in self.values:
            return self.values[name]
        raise AttributeError(f"{self.kind} has no attribute {name!r}")


def fake_paraview(calls: list) -> types.ModuleType:
    """`paraview.simple` with the functions the script may call, with their real keywords."""
    simple = types.ModuleType("paraview.simple")
    luts: dict[str, FakeProxy] = {}
    view = FakeProxy("RenderView", calls,
                     properties=("CameraPosition", "CameraFocalPoint", "CameraViewUp"))

    def record(name, *args, **kwargs):
        calls.append(("simple", name, args, kwargs))

    def GetActiveViewOrCreate(view_type):
        assert view_type == "RenderView"
        return view

    def Xdmf3ReaderT(registrationName=None, FileName=None):
        record("Xdmf3ReaderT", registrationName=registrationName, FileName=FileName)
        (path,) = FileName
        if not Path(path).is_file():
            raise FileNotFoundError(path)
        centres = {name: next(iter(series.values()))[0]
                   for name, series in read_xdmf(Path(path)).fields.items()}
        return FakeProxy("Xdmf3ReaderT", calls, properties=("PointArrays", "CellArrays"),
                         arrays={name: {"Node": "POINTS", "Cell": "CELLS"}[centre]
                                 for name, centre in centres.items()})

    def ExtractBlock(registrationName=None, Input=None):
        record("ExtractBlock", registrationName=registrationName)
        return FakeProxy("ExtractBlock", calls, properties=("Selectors",), arrays=Input.arrays)

    def Clip(registrationName=None, Input=None):
        record("Clip", registrationName=registrationName)
        return FakeProxy("Clip", calls, properties=("ClipType", "Invert", "Scalars"),
                         arrays=Input.arrays, name=registrationName)

    def Show(proxy, view_=None):
        assert view_ is view
        record("Show", proxy.kind)
        return FakeProxy("Display", calls, properties=("Representation", "Opacity"),
                         methods=("SetScalarBarVisibility", "RescaleTransferFunctionToDataRange"),
                         arrays=proxy.arrays)

    def Hide(proxy, view_=None):
        record("Hide", proxy.name)

    def ColorBy(display, value=None):
        association, name = value
        assert display.arrays.get(name) == association, f"no {association} array {name!r}"
        record("ColorBy", name)

    def GetColorTransferFunction(name):
        return luts.setdefault(name, FakeProxy(f"LUT {name}", calls,
                                               properties=("AutomaticRescaleRangeMode",),
                                               methods=("ApplyPreset", "RescaleTransferFunction")))

    def GetOpacityTransferFunction(name):
        return FakeProxy(f"PWF {name}", calls, methods=("RescaleTransferFunction",))

    def GetScalarBar(lut, view_=None):
        return FakeProxy("ScalarBar", calls, properties=("Title", "ComponentTitle"))

    def GetAnimationScene():
        return FakeProxy("AnimationScene", calls,
                         methods=("UpdateAnimationUsingDataTimeSteps", "GoToLast"))

    def ResetCamera(view_=None):
        record("ResetCamera")

    def Render(view_=None):
        record("Render")

    def SaveScreenshot(filename, viewOrLayout=None, ImageResolution=None):
        record("SaveScreenshot", filename)

    for function in (GetActiveViewOrCreate, Xdmf3ReaderT, ExtractBlock, Clip, Show, Hide, ColorBy,
                     GetColorTransferFunction, GetOpacityTransferFunction, GetScalarBar,
                     GetAnimationScene, ResetCamera, Render, SaveScreenshot):
        setattr(simple, function.__name__, function)
    return simple


def run_script(script: Path, monkeypatch: pytest.MonkeyPatch, *argv: str) -> list:
    calls: list = []
    package = types.ModuleType("paraview")
    package.simple = fake_paraview(calls)
    monkeypatch.setitem(sys.modules, "paraview", package)
    monkeypatch.setitem(sys.modules, "paraview.simple", package.simple)
    monkeypatch.setattr(sys, "argv", [str(script), *argv])
    code = compile(script.read_text(encoding="utf-8"), str(script), "exec")
    exec(code, {"__file__": str(script), "__name__": "__main__"})
    return calls


def add_pores(folder: Path) -> None:
    """A `pores.xdmf` as a run with plating writes it (ψ and p_Li), on a box for the pores."""
    write_series(folder / "pores.xdmf", (3.0, 3.0, 2.5), {
        "psi": ((), lambda x: x[2] / 2.5), "p_Li": ((), lambda x: 5.0 + 0.0 * x[0])})


def opened_files(calls: list) -> list[Path]:
    return [Path(kwargs["FileName"][0]) for _, name, _, kwargs in calls if name == "Xdmf3ReaderT"]


def hidden(calls: list) -> list[str]:
    return [args[0] for _, name, args, _ in calls if name == "Hide"]


def test_paraview_script_opens_every_field_file(run_copy: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Hosts and electrolyte, and the plating run's pores (ψ) and interface current."""
    add_pores(run_copy)
    script = write_paraview_script(run_copy)
    assert script == run_copy / SCRIPT_NAME
    compile(script.read_text(encoding="utf-8"), str(script), "exec")

    moved = Path(shutil.move(run_copy, tmp_path / "moved"))  # relative paths: still works
    calls = run_script(moved / SCRIPT_NAME, monkeypatch, "--screenshot", "shot.png")
    opened = opened_files(calls)
    assert sorted(p.name for p in opened) == sorted(p.name for p in moved.glob("*.xdmf")) == [
        "electrolyte.xdmf", "host_Si.xdmf", "host_graphite.xdmf", "interface.xdmf", "pores.xdmf"]
    assert all(p.parent == moved for p in opened)
    coloured = {args[0] for _, name, args, _ in calls if name == "ColorBy"}
    assert coloured == {"theta_Si", "theta_graphite", "phi_e", "psi", "interface_current"}
    for host in ("Si", "graphite"):
        lut = f"LUT theta_{host}"
        assert (lut, "ApplyPreset", ("Viridis (matplotlib)", True), {}) in calls
        assert (lut, "RescaleTransferFunction", (0.0, 1.0), {}) in calls
    assert ("LUT phi_e", "ApplyPreset", ("Cool to Warm", True), {}) in calls
    assert ("LUT psi", "ApplyPreset", ("Blues", True), {}) in calls
    assert ("LUT psi", "RescaleTransferFunction", (0.0, 1.0), {}) in calls
    # the interface current density (DG0: cell data) on ± its largest |value| of the run
    current = "LUT interface_current"
    assert (current, "ApplyPreset", ("Blue Orange (divergent)", True), {}) in calls
    (low, high), = [args for kind, name, args, _ in calls
                    if kind == current and name == "RescaleTransferFunction"]
    interface = field_files(moved)["interface"]
    largest = max(np.abs(load_snapshot(interface, time)["interface_current"]).max()
                  for time in series_times(interface))
    assert high == -low == pytest.approx(largest) and largest > 0.0
    assert sum(name == "Clip" for _, name, _, _ in calls) == 5
    assert hidden(calls) == ["interface.xdmf: clip"]  # on the electrolyte's cells
    assert [name for _, name, _, _ in calls if name in ("GoToLast", "ResetCamera")] == [
        "GoToLast", "ResetCamera"]
    assert ("simple", "SaveScreenshot", ("shot.png",), {}) in calls


def test_paraview_script_without_plating_files(run_copy: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """No pores.xdmf or interface.xdmf (a single particle, an older run): neither is needed."""
    for path in run_copy.glob("interface.*"):
        path.unlink()
    script = write_paraview_script(run_copy)
    assert "pores.xdmf" not in script.read_text() and "interface" not in script.read_text()
    calls = run_script(script, monkeypatch)
    assert sorted(p.name for p in opened_files(calls)) == [
        "electrolyte.xdmf", "host_Si.xdmf", "host_graphite.xdmf"]
    assert {args[0] for _, name, args, _ in calls if name == "ColorBy"} == {
        "theta_Si", "theta_graphite", "phi_e"}
    assert hidden(calls) == []


def test_paraview_script_shows_the_latest_restart_part(run_copy: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(run_copy / "host_Si.xdmf", run_copy / "host_Si_restart1.xdmf")
    calls = run_script(write_paraview_script(run_copy), monkeypatch)
    readers = [kwargs["registrationName"] for _, name, _, kwargs in calls
               if name == "Xdmf3ReaderT"]
    assert readers.index("host_Si.xdmf") + 1 == readers.index("host_Si_restart1.xdmf")
    assert "host_Si.xdmf: clip" in hidden(calls)  # the part before the restart
    assert "host_Si_restart1.xdmf: clip" not in hidden(calls)


def test_paraview_script_fails_on_a_missing_file(run_copy: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    script = write_paraview_script(run_copy)
    (run_copy / "electrolyte.xdmf").unlink()
    with pytest.raises(SystemExit, match="electrolyte.xdmf is missing"):
        run_script(script, monkeypatch)


def test_paraview_script_needs_field_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_paraview_script(tmp_path)
