"""End to end through the command line: results on disk, no silent overwrite, serial = parallel."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CASE = ROOT / "cases" / "validation" / "small_scaffold.yaml"
MPIRUN = shutil.which("mpirun", path=str(Path(sys.executable).parent)) or "mpirun"
REQUIRED_METRICS = {
    "shell_depth_nm_mean", "shell_depth_nm_std", "capacity_alloy_mAh_per_g",
    "capacity_plating_mAh_per_g", "li_balance_rel_error", "anode_potential_V_final", "n_steps",
    "n_newton_total", "ndofs", "n_ranks", "wall_time_s"}


def constrict(*args: str, cwd: Path, ranks: int = 1) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "solver", *args]
    if ranks > 1:
        command = [MPIRUN, "-n", str(ranks), *command]
    env = dict(os.environ, CONSTRICT_CACHE_DIR=str(cwd / "cache"))
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def timeseries(folder: Path) -> dict[str, np.ndarray]:
    with (folder / "timeseries.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return {key: np.array([float(row[key]) if row[key] else np.nan for row in rows])
            for key in rows[0]}


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("run")
    result = constrict("run", str(CASE), "-o", "serial", cwd=work)
    assert result.returncode == 0, result.stderr[-2000:]
    return work


def test_run_writes_fields_series_metrics_and_plot(serial_run: Path) -> None:
    folder = serial_run / "serial"
    for name in ("case.yaml", "run.log", "timeseries.csv", "metrics.json", "summary.png",
                 "host_Si.xdmf", "host_Si.h5", "host_graphite.xdmf", "electrolyte.xdmf"):
        assert (folder / name).is_file(), name
    metrics = json.loads((folder / "metrics.json").read_text())
    assert set(metrics) >= REQUIRED_METRICS
    assert metrics["capacity_plating_mAh_per_g"] == 0.0  # plating is off in this case
    assert (folder / "interface_current.csv").is_file()  # every scaffold run writes it
    assert metrics["status"] == "completed"
    assert metrics["li_balance_rel_error"] < 1e-6  # V1 over the whole run
    timings = metrics["solver_timings"]  # what `make bench` reads
    assert timings["transport_newton_iterations"] >= metrics["n_newton_total"] > 0
    assert timings["transport_residual_evaluations"] >= (timings["transport_newton_iterations"]
                                                         + timings["transport_solves"])
    assert (timings["transport_newton_iterations"] <= timings["transport_jacobian_evaluations"]
            <= timings["transport_newton_iterations"] + timings["transport_solves"])
    assert 0 < timings["transport_solve_s"] < timings["stepping_s"] < metrics["wall_time_s"]
    series = timeseries(folder)
    charging = series["time_s"] <= 60.0
    assert np.all(series["current_density_A_per_m2"][charging][1:] == pytest.approx(10.0))
    assert np.all(series["current_density_A_per_m2"][~charging] == pytest.approx(0.0))
    assert series["capacity_alloy_mAh_per_g"][-1] == pytest.approx(
        metrics["capacity_alloy_mAh_per_g"])


def test_run_never_overwrites_without_flag(serial_run: Path) -> None:
    metrics = serial_run / "serial" / "metrics.json"
    before = metrics.stat().st_mtime_ns
    result = constrict("run", str(CASE), "-o", "serial", cwd=serial_run)
    assert result.returncode == 2
    assert "--overwrite" in result.stderr
    assert metrics.stat().st_mtime_ns == before


def test_v6_serial_equals_two_ranks(serial_run: Path) -> None:
    result = constrict("run", str(CASE), "-o", "parallel", cwd=serial_run, ranks=2)
    assert result.returncode == 0, result.stderr[-2000:]
    serial = timeseries(serial_run / "serial")
    parallel = timeseries(serial_run / "parallel")
    for column in ("time_s", "anode_potential_V", "li_Si_mol", "li_graphite_mol",
                   "capacity_alloy_mAh_per_g"):
        assert np.allclose(parallel[column], serial[column], rtol=1e-8, atol=1e-14), column
    metrics = [json.loads((serial_run / name / "metrics.json").read_text())
               for name in ("serial", "parallel")]
    assert metrics[1]["n_ranks"] == 2
    assert metrics[0]["n_steps"] == metrics[1]["n_steps"]
    assert metrics[1]["shell_depth_nm_mean"] == pytest.approx(metrics[0]["shell_depth_nm_mean"],
                                                              rel=1e-6)


def test_mesh_command_writes_tagged_mesh(serial_run: Path) -> None:
    result = constrict("mesh", str(CASE), "-o", "mesh_only", cwd=serial_run)
    assert result.returncode == 0, result.stderr[-2000:]
    tags = json.loads((serial_run / "mesh_only" / "tags.json").read_text())
    assert {"host:Si", "host:graphite", "pore"} <= set(tags["regions"])
    assert {"EH:Si", "EH:graphite", "top", "bottom"} <= set(tags["interfaces"])
    assert (serial_run / "mesh_only" / "mesh.xdmf").is_file()


def test_info_reports_versions_and_solver_packages(tmp_path: Path) -> None:
    result = constrict("info", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "dolfinx    0.1" in result.stdout
    assert "mumps=yes" in result.stdout
