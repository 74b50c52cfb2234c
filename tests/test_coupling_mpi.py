"""Serial = parallel for the transport–mechanics coupling (V6). Run under mpirun -n 2."""

from __future__ import annotations

from pathlib import Path

from mpi4py import MPI

import numpy as np
import pytest
from test_single_particle import ROOT

from meshes import build_mesh
from solver.config import case_materials, load_case
from solver.coupling import ChemoMechanicalProblem
from solver.geometry import mesh_spec
from solver.problem import TransportProblem
from solver.stepper import TimeStepper, protocol_segments

pytestmark = pytest.mark.mpi


def observables(comm: MPI.Comm, cache: Path) -> np.ndarray:
    """25 s of the solid shell case (finite strain, viscoplastic Si, GAMG) on a coarse mesh."""
    case = load_case(ROOT / "cases" / "shell_solid.yaml", [
        "geometry.mesh.size_surface=0.1 um", "protocol.steps[0].duration=25 s"])
    materials = case_materials(case)
    tagged = build_mesh(mesh_spec(case, materials), comm, cache, progress=False)
    coupled = ChemoMechanicalProblem(TransportProblem(tagged, case, materials), case, materials)
    stepper = TimeStepper(coupled, case.solver, lambda record: None)
    stepper.run(protocol_segments(case.protocol))
    extremes = coupled.extremes()
    return np.array([coupled.transport.integral("theta_volume:Si"), coupled.anode_potential(),
                     extremes["sigma_h_GPa_min"], extremes["eps_lat_min"],
                     coupled.mechanics.integral(coupled.mechanics.plastic_strain),
                     stepper.summary.n_steps, coupled.coupling_iterations_total])


def test_v6_coupled_serial_equals_parallel(tmp_path_factory) -> None:
    world = MPI.COMM_WORLD
    if world.size < 2:
        pytest.skip("needs mpirun -n 2")
    cache = Path(world.bcast(str(tmp_path_factory.mktemp("meshes")) if world.rank == 0 else None))
    parallel = observables(world, cache)  # rank 0 writes the mesh for both
    serial = observables(MPI.COMM_SELF, cache)
    assert parallel[4] > 0.0  # the shell has flowed
    assert np.allclose(parallel, serial, rtol=1e-7, atol=0.0), (parallel, serial)
