"""Restart with plating on (VALIDATION V7, docs/plating.md): a 2C charge of
`small_scaffold` killed after a checkpoint and restarted ends where the uninterrupted run
ends. Serial.

Checkpoints every 3 steps; the run is killed (SIGKILL) once its fourth checkpoint (step
12, t = 10.48 s) is on disk. By then Li has plated and pore vertices hold metal (max ψ
0.58 ≥ ψ_perc), so the electron access of the metal front matters for the next steps,
in which the first pores pass ψ_c (t = 12.58 s) and creep (max p_Li 4.8 MPa at 13 s).
What the restart must rebuild: ψ_old and p_Li (the checkpoint's ψ, p_Li;
`TransportProblem.accept`), the access of the metal front (recomputed from ψ before
every solve), the charges per interface element (checkpointed), the Li balance, the
next Δt and the time-series rows (checkpoint state).

Measured: the restarted run is bitwise the uninterrupted one: timeseries.csv,
interface_current.csv and plated_li.csv are identical files, the final θ_k, φ_e, ψ, p_Li
and interface charges differ by 0, the metrics by 0, including
`plating_clipped_volume_fraction` (the clipped volume is in the checkpoint's recorder
state; before it was, the restarted run reported 8.3e-26 instead of 1.6e-20). The
reference and the restart run in this process (run_case, without the PNG renders);
≈ 35 s CPU.
"""

from __future__ import annotations

import csv
import json
import signal
from pathlib import Path

from mpi4py import MPI

import numpy as np
import pytest
from test_cli_run import timeseries
from test_restart import kill_after_checkpoints as kill_run

import solver.simulation as simulation
from solver.config import load_case

pytestmark = pytest.mark.skipif(MPI.COMM_WORLD.size > 1, reason="serial: a killed subprocess")

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "cases" / "validation" / "small_scaffold.yaml"
SETTINGS = ["plating.enabled=true", "solver.max_theta_change=0.2", "output.fields_every=0",
            "output.checkpoint_every=3",
            "protocol.steps=[{type: galvanostatic, current_density: 7.4 mA/cm^2, "
            "duration: 13 s}]"]
KILL_AFTER = 3  # checkpoints: step 9, t = 9.11 s (11 steps in all)
PSI_PERC = 0.05  # plating.percolation_fraction (default)


def kill_after_checkpoints(work: Path, count: int) -> int:
    """The run killed once `count` checkpoints exist; it reads the mesh from this process's
    cache (no gmsh run)."""
    sets = [item for setting in SETTINGS for item in ("--set", setting)]
    return kill_run(work, count, SMALL, sets, simulation.cache_dir().parent.resolve())


def run_in_process(folder: Path, restart: bool = False) -> dict:
    """`constrict run` (or `--restart`) in this process, without the PNG renders."""
    folder.mkdir(exist_ok=True)
    case = load_case(SMALL, SETTINGS)
    render = simulation.render_run
    simulation.render_run = lambda folder: []
    try:
        return simulation.run_case(case, folder, MPI.COMM_WORLD, restart=restart)
    finally:
        simulation.render_run = render


def latest_checkpoint(folder: Path) -> dict[str, np.ndarray]:
    checkpoints = folder / "checkpoints"
    name = json.loads((checkpoints / "latest.json").read_text())["file"]
    with np.load(checkpoints / name) as data:
        return {key: data[key] for key in data.files}


def interface_rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "interface_current.csv").open() as stream:
        return list(csv.DictReader(stream))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """The uninterrupted run, the killed one restarted, and the checkpoint it went on from."""
    work = tmp_path_factory.mktemp("plating_restart")
    reference = run_in_process(work / "reference")
    assert kill_after_checkpoints(work, KILL_AFTER) == -signal.SIGKILL, \
        "the run ended before the kill"
    start = latest_checkpoint(work / "killed")
    restarted = run_in_process(work / "killed", restart=True)
    return {"work": work, "metrics": (reference, restarted), "start": start}


def test_v7_restart_with_plating_equals_uninterrupted_run(runs) -> None:
    work, (reference, restarted), start = runs["work"], runs["metrics"], runs["start"]
    state = json.loads(str(start["state"]))
    assert state["number"] == KILL_AFTER
    resumed_at = state["position"]["time"]
    assert 0.0 < resumed_at < 13.0
    # the restart went on from a state with plated Li and a metal front ...
    assert state["recorder"]["charge_C"] > 0.0
    assert start["psi/values"].max() >= PSI_PERC
    # ... and went through the filling of the first pores (creep: p_Li > 0)
    final = latest_checkpoint(work / "reference")
    assert final["p_Li/values"].max() > 1.0  # MPa

    full, resumed = timeseries(work / "reference"), timeseries(work / "killed")
    assert np.array_equal(full["time_s"], resumed["time_s"])  # no step lost or repeated
    assert np.count_nonzero(full["time_s"] > resumed_at) >= 2
    for column in full:
        assert np.allclose(resumed[column], full[column], rtol=1e-10, atol=1e-300,
                           equal_nan=True), column
    # plating carries a real share of the charge
    assert full["capacity_plating_mAh_per_cm2"][-1] > 0.02 * full["charge_mAh_per_cm2"][-1]

    # the final state: θ_k, φ_e, ψ, p_Li and the charge per interface element
    resumed_final = latest_checkpoint(work / "killed")
    fields = [key[:-len("/values")] for key in final if key.endswith("/values")]
    assert {"psi", "p_Li", "phi_e", "theta_Si", "theta_graphite"} <= set(fields)
    assert any(name.startswith("charge_EP") for name in fields)
    for name in fields:
        assert np.array_equal(resumed_final[f"{name}/keys"], final[f"{name}/keys"]), name
        scale = max(np.abs(final[f"{name}/values"]).max(), 1e-300)
        difference = np.abs(resumed_final[f"{name}/values"] - final[f"{name}/values"]).max()
        assert difference <= 1e-10 * scale, (name, difference, scale)

    # interface_current.csv: the same elements, currents and charges (9 digits written)
    rows = [interface_rows(work / name) for name in ("reference", "killed")]
    assert len(rows[0]) == len(rows[1]) > 0
    for full_row, resumed_row in zip(*rows, strict=True):
        assert full_row["kind"] == resumed_row["kind"]
        for column in ("x_um", "y_um", "z_um", "area_um2", "current_density_A_per_m2",
                       "charge_density_C_per_m2"):
            assert float(resumed_row[column]) == pytest.approx(float(full_row[column]),
                                                               rel=1e-8, abs=1e-300), column
    assert sum(float(row["charge_density_C_per_m2"]) for row in rows[0]
               if row["kind"] == "EP") > 0.0

    assert restarted["n_restarts"] == 1 and reference["n_restarts"] == 0
    for key in ("n_steps", "n_newton_total", "n_cutbacks", "capacity_alloy_mAh_per_cm2",
                "capacity_plating_mAh_per_cm2", "anode_potential_V_final", "hotspot_factor",
                "interfacial_plating_fraction", "plated_depth_centroid_um",
                "li_balance_rel_error"):
        assert restarted[key] == pytest.approx(reference[key], rel=1e-10, abs=1e-300), key


def test_restart_keeps_the_clipped_volume(runs) -> None:
    """The volume clipped before the kill is in the checkpoint's recorder state."""
    reference, restarted = runs["metrics"]
    assert reference["plating_clipped_volume_fraction"] > 0.0
    assert restarted["plating_clipped_volume_fraction"] == pytest.approx(
        reference["plating_clipped_volume_fraction"], rel=1e-10, abs=0.0)
