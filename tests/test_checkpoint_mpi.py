"""A checkpoint written on 2 ranks restores on 1 rank (and the reverse). Run under mpirun -n 2."""

from __future__ import annotations

from pathlib import Path

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from conftest import layered_box
from dolfinx import fem

from solver.checkpoint import Checkpointer

pytestmark = pytest.mark.mpi


def field_on(comm: MPI.Comm) -> fem.Function:
    mesh = layered_box(comm, 6).mesh
    theta = fem.Function(fem.functionspace(mesh, ("Lagrange", 1)), name="theta")
    return theta


def integral(function: fem.Function) -> float:
    form = fem.form(function * function * ufl.dx)
    return function.function_space.mesh.comm.allreduce(fem.assemble_scalar(form))


def test_checkpoint_moves_between_rank_counts(tmp_path_factory) -> None:
    world = MPI.COMM_WORLD
    if world.size < 2:
        pytest.skip("needs mpirun -n 2")
    folder = Path(world.bcast(str(tmp_path_factory.mktemp("ckpt")) if world.rank == 0 else None))
    parallel = field_on(world)
    parallel.interpolate(lambda x: np.sin(3 * x[0]) + x[1] * x[2] ** 2)
    Checkpointer(folder, {"theta": parallel}, world).write({"position": {"time": 1.0}}, 1)

    serial = field_on(MPI.COMM_SELF)
    restored = Checkpointer(folder, {"theta": serial}, MPI.COMM_SELF).restore_latest()
    assert restored["position"]["time"] == 1.0
    assert integral(serial) == pytest.approx(integral(parallel), rel=1e-12)
    exact = fem.Function(serial.function_space)
    exact.interpolate(lambda x: np.sin(3 * x[0]) + x[1] * x[2] ** 2)
    assert np.allclose(serial.x.array, exact.x.array, atol=1e-14)
