"""Serial = parallel for the coupled transport (VALIDATION V6). Run under mpirun -n 2."""

from __future__ import annotations

from mpi4py import MPI

import numpy as np
import pytest
from test_transport import run

pytestmark = pytest.mark.mpi

STEPS = [{"type": "galvanostatic", "current_density": "2 mA/cm^2", "duration": "15 s"},
         {"type": "potentiostatic", "voltage": "0.08 V", "duration": "5 s"}]


def observables(comm: MPI.Comm) -> np.ndarray:
    problem, balance = run(comm, STEPS, n=6)
    host = problem.hosts[0].name
    return np.array([problem.integral(f"theta_volume:{host}"), problem.anode_potential(),
                     problem.current_density(), problem.integral("phi_top")])


def test_v6_serial_equals_parallel() -> None:
    world = MPI.COMM_WORLD
    if world.size < 2:
        pytest.skip("needs mpirun -n 2")
    parallel = observables(world)
    serial = observables(MPI.COMM_SELF)
    assert np.allclose(parallel, serial, rtol=1e-8, atol=1e-12), (parallel, serial)
