"""Sweeps (docs/sweeps.md): expansion, validation before anything is written, local runs
with retry and resume after a kill, the report, and the Slurm array script."""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_cli_run import MPIRUN, constrict

from solver.cli import main
from solver.sweep import load_sweep

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "cases" / "single_particle.yaml"
# A coarse octant sphere and a 20 s charge: about 3 s per run, most of it start-up.
TINY = {"geometry.mesh.size_surface": "0.1 um", "geometry.mesh.size_bulk": "0.2 um",
        "protocol.steps[0].duration": "20 s", "solver.dt_initial": "5 s",
        "solver.dt_max": "5 s", "output.fields_every": 0, "output.checkpoint_every": 2}


@pytest.fixture(autouse=True)
def _keep_logging():
    """`main()` in-process points the 'constrict' logger at the captured stdout; undo it."""
    logger = logging.getLogger("constrict")
    handlers, level, propagate = logger.handlers[:], logger.level, logger.propagate
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate


def write_sweep(folder: Path, name: str = "tiny", **fields) -> Path:
    data = {"name": name, "base": str(BASE), "set": TINY, **fields}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def statuses(folder: Path) -> list[str]:
    return [entry["status"] for entry in manifest(folder)["runs"]]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


# --- expansion and validation (no runs) ----------------------------------------------------


def test_grid_expands_every_combination_with_linked_keys(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, mode="grid", axes={
        "geometry.single_particle.radius": {
            "values": [0.5, 1, 2], "unit": "um",
            "with": {"geometry.mesh.size_bulk": ["0.2 um", "0.4 um", "0.8 um"]}},
        "temperature": ["25 degC", "55 degC"]})
    sweep = load_sweep(path)
    assert sweep.axes == ["geometry.single_particle.radius", "temperature"]
    assert [run.id for run in sweep.runs[:3]] == [
        "radius-0.5um_temperature-25degC", "radius-0.5um_temperature-55degC",
        "radius-1um_temperature-25degC"]  # the last axis varies fastest
    assert len(sweep.runs) == 6
    run = sweep.runs[5]
    assert run.parameters == {"geometry.single_particle.radius": "2 um",
                              "geometry.mesh.size_bulk": "0.8 um", "temperature": "55 degC"}
    assert run.case.geometry.single_particle.radius == pytest.approx(2.0)  # internal µm
    assert run.case.geometry.mesh.size_bulk == pytest.approx(0.8)
    assert run.case.temperature == pytest.approx(328.15)
    assert run.case.protocol.steps[0].duration == pytest.approx(20.0)  # the `set` block
    assert run.case.name == f"tiny {run.id}"


def test_list_mode_runs_as_given_and_names_them_by_what_varies(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, mode="list", runs=[
        {"geometry.single_particle.material": "Si", "temperature": "25 degC"},
        {"geometry.single_particle.material": "graphite", "temperature": "25 degC"},
        {"geometry.single_particle.material": "Si", "stack_pressure": "50 MPa",
         "temperature": "25 degC"}])
    sweep = load_sweep(path)
    assert sweep.axes == ["geometry.single_particle.material", "stack_pressure"]
    assert [run.id for run in sweep.runs] == [
        "material-Si", "material-graphite", "material-Si_stack_pressure-50MPa"]
    assert [run.case.geometry.single_particle.material for run in sweep.runs] == [
        "Si", "graphite", "Si"]
    assert sweep.runs[2].case.stack_pressure == pytest.approx(50.0)


@pytest.mark.parametrize(("fields", "expected"), [
    ({"axes": {"geometry.single_particle.radius": ["0.5 um", "-1 um", "2 um"]}},
     ["1 of 3 runs are not valid", "run 'radius--1um' is not valid",
      "geometry.single_particle.radius: must be > 0 um"]),
    ({"axes": {"geometry.single_particle.radius": ["1 um", "2"]}},
     ["run 'radius-2' is not valid", "geometry.single_particle.radius", "the unit is missing"]),
    ({"axes": {"geometry.single_particle.radious": ["1 um"]}},
     ["geometry.single_particle.radious: unknown key"]),
    ({"axes": {"protocol.steps[3].duration": ["1 s"]}},
     ["run 'duration-1s': protocol.steps[3].duration: '3' does not exist"]),
    ({"axes": {"temperature": {"values": [25, 55], "unit": "degC",
                               "with": {"stack_pressure": ["5 MPa"]}}}},
     ["axes.temperature", "with.stack_pressure: has 1 values, expected 2"]),
    ({"axes": {"temperature": "25 degC"}}, ["axes.temperature", "non-empty list"]),
    ({"mode": "list", "axes": {"temperature": ["25 degC"]}}, ["mode 'list' needs 'runs'"]),
    ({"axes": {"temperature": ["25 degC"]}, "slurm": {"time": "soon"}},
     ["slurm.time: expected Slurm's"]),
    ({"axes": {"temperature": ["25 degC", "25 degC"]}}, ["have the same parameters"]),
])
def test_invalid_sweep_names_run_and_field_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture, fields: dict,
        expected: list[str]) -> None:
    path = write_sweep(tmp_path, **fields)
    out = tmp_path / "out"
    assert main(["sweep", str(path), "-o", str(out)]) == 2
    error = capsys.readouterr().err
    for text in expected:
        assert text in error
    assert not out.exists()


def test_shipped_sweeps_are_valid() -> None:
    local = load_sweep(ROOT / "cases" / "sweep_size_pressure.yaml")
    assert local.axes == ["geometry.single_particle.radius", "stack_pressure"]
    assert len(local.runs) == 9
    cluster = load_sweep(ROOT / "cases" / "sweep_size_pressure_cluster.yaml")
    assert len(cluster.runs) == 18
    radii = sorted({run.case.geometry.scaffold.particles[0].radius for run in cluster.runs})
    assert radii == [0.5, 1.0, 2.0, 5.0, 10.0, 22.0]
    assert cluster.settings.slurm.partition and cluster.settings.ranks_per_run > 1


# --- local runs ----------------------------------------------------------------------------------


def test_local_sweep_retries_a_failing_run_records_it_and_reports(tmp_path: Path) -> None:
    # 100 mA/cm^2 with dt fixed at dt_min: Newton gives up at once (exit code 3).
    path = write_sweep(tmp_path, axes={"protocol.steps[0].current_density": [
        "0.2 mA/cm^2", "1 mA/cm^2", "100 mA/cm^2"]}, set=TINY | {"solver.dt_min": "5 s"})
    result = constrict("sweep", str(path), "-o", "out", "--jobs", "2", cwd=tmp_path)
    assert result.returncode == 3, result.stderr[-2000:]
    out = tmp_path / "out"
    runs = manifest(out)["runs"]
    assert [r["status"] for r in runs] == ["completed", "completed", "failed"]
    for entry in runs[:2]:
        assert entry["attempts"] == 1 and entry["exit_code"] == 0 and entry["wall_time_s"] > 0
        metrics = json.loads((out / entry["metrics"]).read_text())
        assert metrics["status"] == "completed"
    failed = runs[2]
    assert failed["attempts"] == 2 and failed["exit_code"] == 3
    assert "the run stopped early" in failed["stderr_tail"]
    assert (out / failed["id"] / "stderr.log").read_text().count("=== ") == 2

    report = constrict("report", "out", cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-2000:]
    rows = read_csv(out / "report" / "results.csv")
    assert [row["status"] for row in rows] == ["completed", "completed", "failed"]
    assert rows[1]["protocol.steps[0].current_density"] == "1 mA/cm^2"
    assert float(rows[1]["capacity_alloy_mAh_per_g"]) > float(rows[0]["capacity_alloy_mAh_per_g"])
    figure = out / "report" / "vs_protocol.steps0.current_density.png"
    assert figure.stat().st_size > 10_000
    assert "hotspot_factor" in report.stdout  # null everywhere: noted, not plotted


def _sweep_process(path: Path, work: Path, log: Path) -> subprocess.Popen:
    env = dict(os.environ, CONSTRICT_CACHE_DIR=str(work / "cache"))
    return subprocess.Popen([sys.executable, "-m", "solver", "sweep", str(path), "-o", "out"],
                            cwd=work, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def _wait_for(out: Path, completed: int, process: subprocess.Popen) -> None:
    """Until `completed` runs are done and the next one is running."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        with_manifest = (out / "manifest.json").is_file()
        states = statuses(out) if with_manifest else []
        if states.count("completed") >= completed and "running" in states:
            return
        time.sleep(0.05)
    raise AssertionError(f"the sweep did not get there: {states}")


def _gone(pid: int, within_s: float = 15.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in "ZX":
            return True
        time.sleep(0.1)
    return False


def test_interrupted_sweep_goes_on_without_redoing_finished_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write_sweep(tmp_path, axes={"temperature": ["25 degC", "35 degC", "45 degC"]})
    out = tmp_path / "out"

    # SIGINT while the second run is going: it is stopped and marked, the sweep exits 130.
    process = _sweep_process(path, tmp_path, tmp_path / "first.log")
    _wait_for(out, 0, process)
    assert main(["sweep", str(path), "-o", str(out)]) == 2  # one sweep per folder at a time
    assert "another sweep is running" in capsys.readouterr().err
    _wait_for(out, 1, process)
    process.send_signal(signal.SIGINT)
    assert process.wait(60) == 130, (tmp_path / "first.log").read_text()[-2000:]
    assert statuses(out) == ["completed", "interrupted", "pending"]
    first = out / manifest(out)["runs"][0]["metrics"]
    first_mtime = first.stat().st_mtime_ns

    # SIGKILL while the third run is going: the manifest still says what finished, and the
    # orphaned run is taken down with the sweep.
    process = _sweep_process(path, tmp_path, tmp_path / "second.log")
    _wait_for(out, 2, process)
    process.send_signal(signal.SIGKILL)
    process.wait(60)
    runs = manifest(out)["runs"]
    assert [r["status"] for r in runs] == ["completed", "completed", "running"]
    assert _gone(runs[2]["pid"]), "the run of a killed sweep kept running"
    second_mtime = (out / runs[1]["metrics"]).stat().st_mtime_ns
    assert "skip temperature-25degC: completed" in (tmp_path / "second.log").read_text()

    result = constrict("sweep", str(path), "-o", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert statuses(out) == ["completed"] * 3
    assert first.stat().st_mtime_ns == first_mtime
    assert (out / runs[1]["metrics"]).stat().st_mtime_ns == second_mtime
    for skipped in ("temperature-25degC", "temperature-35degC"):
        assert f"skip {skipped}: completed" in result.stdout
    assert "start temperature-45degC" in result.stdout
    assert len(read_csv(out / "report" / "results.csv")) == 3  # the report of a local sweep

    # A run killed after a checkpoint (made here by hand: a kill between two checkpoints
    # is too short a window to hit) goes on with --restart.
    state = manifest(out)
    last = state["runs"][2]
    last["status"] = "interrupted"
    (out / last["metrics"]).unlink()
    (out / "manifest.json").write_text(json.dumps(state))
    result = constrict("sweep", str(path), "-o", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "(attempt 1, --restart)" in result.stdout
    assert json.loads((out / last["metrics"]).read_text())["n_restarts"] == 1
    assert first.stat().st_mtime_ns == first_mtime


# --- Slurm ---------------------------------------------------------------------------------------


def test_slurm_array_script_and_one_entry_run_locally(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, axes={"temperature": ["25 degC", "45 degC"]},
                       slurm={"partition": "short", "time": "02:00:00", "sbatch": ["--exclusive"]})
    result = constrict("sweep", str(path), "--slurm", "-o", "out", "--time", "00:20:00",
                       "--ranks-per-run", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    out = (tmp_path / "out").resolve()
    script = (out / "sweep.sbatch").read_text()
    for line in ("#SBATCH --partition=short", "#SBATCH --time=00:20:00", "#SBATCH --ntasks=2",
                 "#SBATCH --nodes=1", "#SBATCH --array=0-1", "#SBATCH --exclusive",
                 f"#SBATCH --output={out}/slurm/", "temperature-45degC",
                 '${CONSTRICT_LAUNCHER:-srun} "$PYTHON" -m solver run'):
        assert line in script, line
    assert "solver report" in (out / "gather.sbatch").read_text()
    assert "--dependency=afterany:" in (out / "submit.sh").read_text()
    assert statuses(out) == ["pending", "pending"]
    case = yaml.safe_load((out / "temperature-45degC" / "case.in.yaml").read_text())
    assert case["temperature"] == "45 degC"

    env = dict(os.environ, SLURM_ARRAY_TASK_ID="1", CONSTRICT_LAUNCHER=f"{MPIRUN} -n 2",
               CONSTRICT_CACHE_DIR=str(tmp_path / "cache"))
    task = subprocess.run(["bash", str(out / "sweep.sbatch")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert task.returncode == 0, task.stderr[-2000:]
    metrics_path = out / "temperature-45degC" / "result" / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    assert metrics["status"] == "completed" and metrics["n_ranks"] == 2
    mtime = metrics_path.stat().st_mtime_ns
    again = subprocess.run(["bash", str(out / "sweep.sbatch")], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "already completed; skipped" in again.stdout
    assert metrics_path.stat().st_mtime_ns == mtime

    report = constrict("report", str(out), cwd=tmp_path)  # the gather step, run by hand
    assert report.returncode == 0, report.stderr[-2000:]
    rows = read_csv(out / "report" / "results.csv")
    assert [row["status"] for row in rows] == ["pending", "completed"]


# --- compare: a metric vs an axis, an analytic curve and published values (V4, Fig. 3e) -------

KEFF = ROOT / "cases" / "keff_capacity.yaml"
COMPARE = {"x": "mechanics.confinement.value", "metric": "capacity_held_mAh_per_g",
           "analytic": {"name": "equilibrium_capacity_under_pressure", "material": "Si"},
           "reference": {"source": "a test", "label": "paper", "points": [
               {"x": "0 GPa", "y": 4000}, {"x": ["1 GPa", "3 GPa"], "y": [1000, 2000]},
               {"x": "5.5 GPa", "y": 0}]}}
PRESSURES = {"mechanics.confinement.value": ["1 GPa", "3 GPa", "5 GPa"]}


def test_keff_capacity_sweep_is_valid_and_carries_its_reference_table() -> None:
    sweep = load_sweep(KEFF)
    assert sweep.axes == ["mechanics.confinement.value"]
    values = [run.case.mechanics.confinement.value for run in sweep.runs]
    assert values == pytest.approx([0.0, 1000.0, 2000.0, 3000.0, 5000.0, 5500.0])  # MPa
    case = sweep.runs[0].case
    assert case.mechanics.enabled and case.mechanics.confinement.type == "pressure"
    assert case.mechanics.degree == 1 and case.mechanics.kinematics == "finite"
    assert case.protocol.steps[0].type == "potentiostatic"
    compare = sweep.settings.compare
    assert compare.metric == "capacity_held_mAh_per_g"
    assert compare.analytic.name == "equilibrium_capacity_under_pressure"
    assert "Fig. 3e" in compare.reference.source
    assert [p.y for p in compare.reference.points] == [4000, [1000, 2000], 164, 0]


def _compare(**changes) -> dict:
    data = json.loads(json.dumps(COMPARE))
    for key, value in changes.items():
        target = data
        *path, last = key.split(".")
        for part in path:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value
    return data


@pytest.mark.parametrize(("compare", "expected"), [
    (_compare(x="temperature"),
     ["compare.x: 'temperature' is not an axis of the sweep", "mechanics.confinement.value"]),
    (_compare(**{"analytic.name": "capacity_of_the_moon"}),
     ["compare.analytic", "unknown analytic curve 'capacity_of_the_moon'",
      "equilibrium_capacity_under_pressure"]),
    (_compare(**{"analytic.materiel": "Si"}),
     ["compare.analytic", "takes the parameters ['material']"]),
    (_compare(**{"analytic.material": "LPSCl1.5"}),
     ["compare.analytic: equilibrium_capacity_under_pressure", "not a host"]),
    (_compare(**{"reference.points.1.x": ["1 um", "3 um"]}),
     ["compare.reference.points[1].x", "not in units of the axis (GPa)"]),
    (_compare(**{"reference.points.1.x": ["3 GPa", "1 GPa"]}),
     ["compare.reference.points[1].x: a range [low, high] needs low <= high"]),
    (_compare(**{"reference.points.1.y": [2000, 1000]}),
     ["compare.reference.points[1].y", "needs low <= high"]),
    (_compare(**{"reference.source": ""}), ["compare.reference.source"]),
    (_compare(metric=None), ["compare.metric"]),
    (_compare(**{"reference.points.0.z": 1}), ["compare.reference.points[0].z: unknown key"]),
])
def test_invalid_compare_block_names_the_field_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture, compare: dict,
        expected: list[str]) -> None:
    path = write_sweep(tmp_path, axes=PRESSURES, compare=compare)
    out = tmp_path / "out"
    assert main(["sweep", str(path), "-o", str(out)]) == 2
    error = capsys.readouterr().err
    for text in expected:
        assert text in error
    assert not out.exists()


def test_report_compares_a_fake_sweep_with_the_analytic_curve_and_reference(
        tmp_path: Path) -> None:
    """compare.csv and compare.png from fake run results: the held capacity is
    θ_mean c_max F / ρ (initial Li included), next to the analytic value and the reference
    point or range that matches each run; reference points no run matches get rows too."""
    from postprocess.report import write_report
    from solver.materials import equilibrium_capacity_under_pressure, load_library
    from solver.sweep import prepare_folder
    from solver.units import Q_

    path = write_sweep(tmp_path, axes=PRESSURES, compare=COMPARE)
    sweep = load_sweep(path)
    out = tmp_path / "out"
    manifest_ = prepare_folder(sweep, out)
    card = load_library()["Si"]
    off = {"1GPa": 1.01, "3GPa": 0.98}  # simulated θ relative to the analytic one
    for entry in manifest_["runs"]:
        pressure = entry["parameters"]["mechanics.confinement.value"]
        theta, _ = equilibrium_capacity_under_pressure(card, pressure)
        theta *= off.get(pressure.replace(" ", ""), 1.0)
        result = out / entry["result"]
        result.mkdir()
        (result / "metrics.json").write_text(json.dumps(
            {"status": "completed", "capacity_alloy_mAh_per_g": 123.0}))
        li0 = 2e-14
        (result / "timeseries.csv").write_text(
            "time_s,li_Si_mol,theta_min_Si,theta_max_Si\n"
            f"0,{li0},0.5,0.5\n100,{li0 * theta / 0.5},{theta},{theta}\n")
        entry["status"] = "completed"
    (out / "manifest.json").write_text(json.dumps(manifest_))
    report = write_report(out)
    assert report.comparison == out / "report" / "compare.csv"
    assert (out / "report" / "compare.png").stat().st_size > 10_000
    rows = read_csv(report.comparison)
    assert [r["mechanics.confinement.value"] for r in rows] == ["1 GPa", "3 GPa", "5 GPa", "", ""]
    assert [r["status"] for r in rows[3:]] == ["reference only"] * 2
    assert [float(r["x_GPa"]) for r in rows] == [1.0, 3.0, 5.0, 0.0, 5.5]
    for row, factor in zip(rows[:3], (1.01, 0.98, 1.0), strict=True):
        _, exact = equilibrium_capacity_under_pressure(card, row["mechanics.confinement.value"])
        assert float(row["analytic"]) == pytest.approx(exact.m_as("mA*h/g"), rel=1e-12)
        assert float(row["capacity_held_mAh_per_g"]) == pytest.approx(
            factor * exact.m_as("mA*h/g"), rel=1e-9)
        assert float(row["relative_error"]) == pytest.approx(factor - 1, abs=1e-9)
    assert [(r["reference_min"], r["reference_max"]) for r in rows] == [
        ("1000.0", "2000.0"), ("1000.0", "2000.0"), ("", ""), ("4000.0", "4000.0"),
        ("0.0", "0.0")]
    assert rows[0]["reference"] == "" and rows[3]["reference"] == "4000.0"
    assert rows[0]["reference_label"] == "paper"
    results = read_csv(out / "report" / "results.csv")
    theta = float(results[0]["theta_mean.Si"])
    held = theta * card.host.c_max * Q_(1, "faraday_constant") / card.density
    assert float(results[0]["capacity_held_mAh_per_g"]) == pytest.approx(
        held.m_as("mA*h/g"), rel=1e-9)


def test_keff_capacity_two_points_end_to_end(tmp_path: Path) -> None:
    """A reduced cases/keff_capacity.yaml (1 and 5.5 GPa) run for real: the coupled particle
    settles at the analytic capacity (V4, < 2 %); about 20 s on 2 cores."""
    data = yaml.safe_load(KEFF.read_text())
    data["base"] = str(ROOT / "cases" / data["base"])
    data["axes"] = {"mechanics.confinement.value": ["1 GPa", "5.5 GPa"]}
    data["set"]["output.fields_every"] = 0
    path = tmp_path / "keff.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    result = constrict("sweep", str(path), "-o", "out", "--jobs", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = read_csv(tmp_path / "out" / "report" / "compare.csv")
    assert [r["status"] for r in rows] == ["completed", "completed", "reference only",
                                          "reference only"]
    for row in rows[:2]:
        assert abs(float(row["relative_error"])) < 0.02
    assert float(rows[0]["analytic"]) == pytest.approx(2464.7, rel=1e-3)
    assert rows[1]["reference"] == "0.0"
    assert (tmp_path / "out" / "report" / "compare.png").is_file()


def test_report_of_a_list_sweep_over_names_draws_a_bar_per_run(tmp_path: Path) -> None:
    """Materials have no order: besides vs_<axis>.png, comparison.png shows one bar per run
    labelled by its values; the plating metrics of scaffold runs get their own panels."""
    from postprocess.report import _run_label, gather, write_report
    from solver.sweep import prepare_folder

    path = write_sweep(tmp_path, mode="list", runs=[
        {"geometry.single_particle.material": "Si"},
        {"geometry.single_particle.material": "graphite"},
        {"geometry.single_particle.material": "Mg2Si", "stack_pressure": "50 MPa"}])
    sweep = load_sweep(path)
    out = tmp_path / "out"
    manifest_ = prepare_folder(sweep, out)
    for index, entry in enumerate(manifest_["runs"]):
        result = out / entry["result"]
        result.mkdir()
        (result / "metrics.json").write_text(json.dumps(
            {"status": "completed", "capacity_alloy_mAh_per_g": 100.0 * (index + 1),
             "hotspot_factor": 1.5 + index, "current_cov": 0.2 * index,
             "plated_depth_centroid_um": None}))
    report = write_report(out)
    assert report.figures == [out / "report" / name for name in (
        "vs_geometry.single_particle.material.png", "vs_stack_pressure.png",
        "comparison.png")]
    assert (out / "report" / "comparison.png").stat().st_size > 10_000
    assert any("plated_depth_centroid_um" in note for note in report.notes)
    rows = read_csv(out / "report" / "results.csv")
    assert [row["hotspot_factor"] for row in rows] == ["1.5", "2.5", "3.5"]
    assert [_run_label(row, manifest_["axes"]) for row in gather(out)[1]] == [
        "material=Si", "material=graphite", "material=Mg2Si\nstack_pressure=50 MPa"]
