"""`make bench`: the default case (cases/si_scaffold_2c.yaml, 2C with plating) end to end,
with the mechanics off and on, on 1 and 2 ranks and at two mesh sizes (JSON).

Each measurement runs bench/case_run.py under mpirun: the real run (plating, output,
checkpoints) for a stretch of the 2C charge, then the elasticity floor on the same mesh in
the same process. The results go to output/bench/benchmarks.json with the parallel
efficiency 1 -> 2 ranks and the weak scaling (the fine mesh has about twice the DOFs of the
default one: default on 1 rank against fine on 2). Timings are never asserted in tests.

BENCH_DURATION and BENCH_MECHANICS_DURATION (e.g. "20 s") set the simulated stretch.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASE = ROOT / "cases" / "si_scaffold_2c.yaml"
DURATION = os.environ.get("BENCH_DURATION", "20 s")
MECHANICS_DURATION = os.environ.get("BENCH_MECHANICS_DURATION", "1 s")
FINE_MESH = ["--set", "geometry.mesh.size_surface=0.12 um",
             "--set", "geometry.mesh.size_bulk=0.4 um"]
# The default box with the chemo-mechanics on (P2): at 0 MPa, since the stack load through
# the elastic contact necks stops the 50 MPa run at its initial state (issue 16).
MECHANICS = ["--set", "mechanics.enabled=true", "--set", "mechanics.degree=2",
             "--set", "stack_pressure=0 MPa"]
RUNS = {
    "plating_np1": (1, [], DURATION),
    "plating_np2": (2, [], DURATION),
    "plating_fine_np2": (2, FINE_MESH, DURATION),
    "plating_mechanics_np1": (1, MECHANICS, MECHANICS_DURATION),
    "plating_mechanics_np2": (2, MECHANICS, MECHANICS_DURATION),
}


def measure(ranks: int, overrides: list[str], duration: str) -> dict:
    mpirun = Path(sys.executable).parent / "mpirun"
    command = [str(mpirun), "-n", str(ranks), sys.executable, str(ROOT / "bench" / "case_run.py"),
               str(CASE), "--duration", duration, *overrides]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        return {"ranks": ranks, "error": result.stderr.strip().splitlines()[-1:]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def efficiency(one: dict, two: dict) -> dict | None:
    """Parallel efficiency 1 -> 2 ranks of the time per Newton iteration and of the floor."""
    if "error" in one or "error" in two:
        return None
    per_newton = (one["wall_s_per_newton_iteration"]["total"]
                  / (2 * two["wall_s_per_newton_iteration"]["total"]))
    return {"newton_iteration": per_newton,
            "elasticity_floor": one["floor_solve_s"] / (2 * two["floor_solve_s"])}


def main() -> None:
    results = {}
    for name, (ranks, overrides, duration) in RUNS.items():
        print(f"benchmark: {name} ({duration} of the 2C charge on {ranks} rank(s))", flush=True)
        results[name] = measure(ranks, overrides, duration)
    results["efficiency_1_to_2"] = efficiency(results["plating_np1"], results["plating_np2"])
    results["mechanics_efficiency_1_to_2"] = efficiency(results["plating_mechanics_np1"],
                                                        results["plating_mechanics_np2"])
    one, fine = results["plating_np1"], results["plating_fine_np2"]
    if "error" not in one and "error" not in fine:
        results["weak_scaling"] = {
            "dofs_per_rank": [one["dofs"], fine["dofs"] / 2],
            "krylov_per_newton": [one["krylov_iterations_per_newton"],
                                  fine["krylov_iterations_per_newton"]],
            "newton_iteration_s": [one["wall_s_per_newton_iteration"]["total"],
                                   fine["wall_s_per_newton_iteration"]["total"]]}
    results["machine"] = {"platform": platform.platform(), "python": platform.python_version(),
                          "cpus": os.cpu_count()}
    target = ROOT / "output" / "bench" / "benchmarks.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"written to {target}")


if __name__ == "__main__":
    main()
