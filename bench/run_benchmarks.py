"""`make bench`: the default scaffold case at two mesh sizes on 1 and 2 ranks (JSON).

Each measurement runs bench/transport_step.py under mpirun; the results, with the
parallel efficiency 1 -> 2 ranks of the coupled step and of the elasticity floor, go to
output/bench/benchmarks.json. The plating run is the whole `make run` case (2C with
plating, adaptive steps): wall time, steps and Newton iterations from its metrics.json.
Timings are never asserted in tests.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASE = ROOT / "cases" / "si_scaffold.yaml"
PLATING_CASE = ROOT / "cases" / "si_scaffold_2c.yaml"
PLATING_KEYS = ("wall_time_s", "n_steps", "n_newton_total", "n_cutbacks", "ndofs", "n_cells",
                "capacity_alloy_mAh_per_cm2", "capacity_plating_mAh_per_cm2",
                "li_balance_rel_error", "plating_clipped_volume_fraction")
MESHES = {
    "default": [],
    "fine": ["--set", "geometry.mesh.size_surface=0.1 um",
             "--set", "geometry.mesh.size_bulk=0.35 um"],
}
RANKS = (1, 2)


def measure(mesh: str, ranks: int) -> dict:
    mpirun = Path(sys.executable).parent / "mpirun"
    script = ROOT / "bench" / "transport_step.py"
    command = [str(mpirun), "-n", str(ranks), sys.executable, str(script), str(CASE),
               *MESHES[mesh]]
    result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(result.stdout.strip().splitlines()[-1])


def plating_run(ranks: int) -> dict:
    """The 2C plating case end to end on `ranks` ranks; its cost and outcome."""
    mpirun = Path(sys.executable).parent / "mpirun"
    folder = ROOT / "output" / "bench" / f"plating_np{ranks}"
    command = [str(mpirun), "-n", str(ranks), sys.executable, "-m", "solver", "run",
               str(PLATING_CASE), "-o", str(folder), "--overwrite"]
    subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    metrics = json.loads((folder / "metrics.json").read_text())
    per_iteration = metrics["wall_time_s"] / max(metrics["n_newton_total"], 1)
    return {"ranks": ranks, **{key: metrics.get(key) for key in PLATING_KEYS},
            "wall_s_per_newton_iteration": per_iteration}


def main() -> None:
    results = {}
    print("benchmark: plating run (2C) on 2 ranks", flush=True)
    results["plating_2c_np2"] = plating_run(2)
    for mesh in MESHES:
        for ranks in RANKS:
            print(f"benchmark: {mesh} mesh on {ranks} rank(s)", flush=True)
            results[f"{mesh}_np{ranks}"] = measure(mesh, ranks)
        one, two = results[f"{mesh}_np1"], results[f"{mesh}_np2"]
        results[f"{mesh}_efficiency_1_to_2"] = {
            "coupled_step": one["time_per_step_s"] / (2 * two["time_per_step_s"]),
            "elasticity_floor": one["floor_solve_s"] / (2 * two["floor_solve_s"]),
        }
    results["machine"] = {"platform": platform.platform(), "python": platform.python_version()}
    target = ROOT / "output" / "bench" / "benchmarks.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"written to {target}")


if __name__ == "__main__":
    main()
