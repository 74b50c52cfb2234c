"""The cached scaffold mesh read on several ranks (run with `mpirun -n 2`)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from mpi4py import MPI

import dolfinx
import numpy as np
import pytest
import ufl
from test_meshes import SMALL

from meshes import build_mesh

pytestmark = pytest.mark.mpi


@pytest.fixture(scope="module")
def shared_cache():
    """One cache directory for all ranks (pytest's tmp_path differs between ranks)."""
    comm = MPI.COMM_WORLD
    path = Path(comm.bcast(tempfile.mkdtemp(prefix="constrict-mesh-") if comm.rank == 0 else None))
    yield path
    comm.barrier()
    if comm.rank == 0:
        shutil.rmtree(path)


def integrals(tm) -> dict[str, float]:
    """Global volume of every region and area of every interface."""
    mesh = tm.mesh
    one = dolfinx.fem.Constant(mesh, 1.0)
    dx = ufl.Measure("dx", mesh, subdomain_data=tm.cell_tags)
    ds = ufl.Measure("ds", mesh, subdomain_data=tm.facet_tags)
    dS = ufl.Measure("dS", mesh, subdomain_data=tm.facet_tags)
    forms = {name: one * dx(tag) for name, tag in tm.regions.items()}
    forms |= {name: one * ds(tag) + one("+") * dS(tag) for name, tag in tm.interfaces.items()}
    return {
        name: mesh.comm.allreduce(dolfinx.fem.assemble_scalar(dolfinx.fem.form(f)), op=MPI.SUM)
        for name, f in forms.items()
    }


def test_distributed_mesh_matches_serial(shared_cache):
    comm = MPI.COMM_WORLD
    parallel = build_mesh(SMALL, comm, shared_cache, progress=False)
    serial = build_mesh(SMALL, MPI.COMM_SELF, shared_cache, progress=False)
    assert parallel.source == serial.source
    assert parallel.regions == serial.regions and parallel.interfaces == serial.interfaces
    got, want = integrals(parallel), integrals(serial)
    for name in want:
        assert got[name] == pytest.approx(want[name], rel=1e-10), name
    # every owned particle cell is assigned, and the cell counts add up
    imap = parallel.mesh.topology.index_map(3)
    owned = parallel.particle_of_cell[: imap.size_local]
    assigned = comm.allreduce(int((owned >= 0).sum()), op=MPI.SUM)
    assert assigned == int((serial.particle_of_cell >= 0).sum())
    assert imap.size_global == serial.mesh.topology.index_map(3).size_global
    assert np.all(parallel.particle_of_cell < len(parallel.particles.radii))
