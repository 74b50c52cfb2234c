"""Restart from the checkpoint of a killed run gives the uninterrupted result (V7)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_cli_run import CASE, ROOT, constrict, timeseries

# A long rest with small steps: many checkpoints, time to kill the run in the middle.
LONGER = ["--set", "protocol.steps[1].duration=400 s", "--set", "solver.dt_max=1 s",
          "--set", "output.checkpoint_every=15"]


PARTICLE = ROOT / "cases" / "single_particle.yaml"
SHORT = ["--set", "protocol.steps[0].duration=30 s", "--set", "geometry.mesh.size_surface=0.1 um"]


SHELL = ROOT / "cases" / "shell_solid.yaml"
SHELL_SHORT = ["--set", "geometry.mesh.size_surface=0.07 um", "--set", "mechanics.degree=1",
               "--set", "protocol.steps[0].duration=40 s", "--set", "output.checkpoint_every=2",
               "--set", "output.fields_every=0"]


def kill_after_checkpoints(work: Path, count: int, case: Path = CASE,
                           options: list[str] = LONGER, cache: Path | None = None) -> int:
    """Start a run, SIGKILL it once `count` checkpoints exist; return its exit status.
    Meshes are cached in `cache` (default: a folder of `work`)."""
    env = dict(os.environ, CONSTRICT_CACHE_DIR=str(cache or work / "cache"))
    process = subprocess.Popen([sys.executable, "-m", "solver", "run", str(case), "-o", "killed",
                                *options], cwd=work, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    pointer = work / "killed" / "checkpoints" / "latest.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if pointer.is_file() and int(json.loads(pointer.read_text())["file"][11:17]) >= count:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    return process.wait()


def test_v7_restart_after_kill_equals_uninterrupted_run(tmp_path: Path) -> None:
    reference = constrict("run", str(CASE), "-o", "reference", *LONGER, cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr[-2000:]
    assert kill_after_checkpoints(tmp_path, 5) == -signal.SIGKILL, "the run ended before the kill"

    restarted = constrict("run", str(CASE), "-o", "killed", "--restart", *LONGER, cwd=tmp_path)
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    assert "restored checkpoint" in restarted.stdout

    full, resumed = timeseries(tmp_path / "reference"), timeseries(tmp_path / "killed")
    assert np.array_equal(full["time_s"], resumed["time_s"])  # no step lost or repeated
    for column in ("anode_potential_V", "li_Si_mol", "li_graphite_mol", "li_balance_rel_error"):
        assert np.allclose(resumed[column], full[column], rtol=1e-10, atol=1e-15), column
    metrics = [json.loads((tmp_path / name / "metrics.json").read_text())
               for name in ("reference", "killed")]
    assert metrics[1]["n_restarts"] == 1
    for key in ("n_steps", "n_newton_total", "capacity_alloy_mAh_per_g", "shell_depth_nm_mean"):
        assert metrics[1][key] == metrics[0][key] or np.isclose(metrics[1][key], metrics[0][key],
                                                                rtol=1e-10), key


def test_restart_of_a_finished_run_changes_nothing_and_refuses_another_case(
        tmp_path: Path) -> None:
    # A single particle ending on a galvanostatic step: its potential depends on the drive.
    first = constrict("run", str(PARTICLE), "-o", "run", *SHORT, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    before = json.loads((tmp_path / "run" / "metrics.json").read_text())
    again = constrict("run", str(PARTICLE), "-o", "run", "--restart", *SHORT, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    after = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for key in ("anode_potential_V_final", "capacity_alloy_mAh_per_g", "n_steps"):
        assert after[key] == pytest.approx(before[key], rel=1e-12), key
    other = constrict("run", str(PARTICLE), "-o", "run", "--restart", *SHORT,
                      "--set", "temperature=55 degC", cwd=tmp_path)
    assert other.returncode == 2
    assert "differs" in other.stderr
    (tmp_path / "run" / "case.yaml").unlink()  # a clear error, not a traceback
    bare = constrict("run", str(PARTICLE), "-o", "run", "--restart", *SHORT, cwd=tmp_path)
    assert bare.returncode == 2
    assert "no case.yaml" in bare.stderr and "Traceback" not in bare.stderr


def test_v7_restart_keeps_the_viscoplastic_state(tmp_path: Path) -> None:
    """A coupled run with flowing Si: the checkpoint carries the plastic internal variables
    (C_p⁻¹, ε̄_p at the quadrature points), so the run restarted at t = 12.9 s, after flow
    began, follows the uninterrupted one (without them: 2 mV off at the next step)."""
    reference = constrict("run", str(SHELL), "-o", "reference", *SHELL_SHORT, cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr[-2000:]
    assert kill_after_checkpoints(tmp_path, 6, SHELL, SHELL_SHORT) == -signal.SIGKILL
    restarted = constrict("run", str(SHELL), "-o", "killed", "--restart", *SHELL_SHORT,
                          cwd=tmp_path)
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    full, resumed = timeseries(tmp_path / "reference"), timeseries(tmp_path / "killed")
    assert np.array_equal(full["time_s"], resumed["time_s"])
    for column in ("anode_potential_V", "li_Si_mol", "sigma_h_GPa_min"):
        assert np.allclose(resumed[column], full[column], rtol=1e-9, atol=1e-14), column
    # the per-step solver counts of timeseries.csv: the same iterations after the restart
    for column in ("staggered_iterations", "mechanics_newton_iterations"):
        assert np.all(full[column][1:] >= 1) and np.array_equal(resumed[column], full[column])
    metrics = [json.loads((tmp_path / name / "metrics.json").read_text())
               for name in ("reference", "killed")]
    assert metrics[0]["sigma_h_GPa_min"] < -1.0
    assert metrics[1]["sigma_h_GPa_min"] == pytest.approx(metrics[0]["sigma_h_GPa_min"],
                                                          rel=1e-6)
