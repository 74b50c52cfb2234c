"""Shared fixtures: small analytic geometries that do not need gmsh."""

from __future__ import annotations

import gc
import os
from pathlib import Path

if "PYTEST_XDIST_WORKER" in os.environ:
    # One DOLFINx JIT cache per test worker (before dolfinx is imported): a worker that
    # needs a form another one is compiling waits for it only 10 s, then fails.
    os.environ["XDG_CACHE_HOME"] = str(
        Path.home() / ".cache" / f"constrict-tests-{os.environ['PYTEST_XDIST_WORKER']}")

from mpi4py import MPI  # before dolfinx: loads the MPI library (see solver/__init__.py)

import numpy as np
import pytest
import yaml
from dolfinx import mesh as dmesh

from meshes import Packing, TaggedMesh
from solver.config import CaseConfig, validate_case
from solver.mpi_exit import finish

ROOT = Path(__file__).resolve().parents[1]
HOST, ELECTROLYTE, INTERFACE, TOP = 1, 2, 3, 4


def layered_box(comm: MPI.Comm, n: int, host: str = "ideal_host",
                electrolyte: str = "LPSCl") -> TaggedMesh:
    """Unit box (µm): a host slab z < 1/2 under an electrolyte slab, a 1D problem in 3D.

    With a uniform reaction current the host sees a constant influx on z = 1/2, whose
    solution is Crank's slab series (solver.reference_solutions.slab_constant_flux).
    """
    assert n % 2 == 0, "the interface z = 1/2 must be a mesh plane"
    msh = dmesh.create_box(comm, [np.zeros(3), np.ones(3)], [n, n, n],
                           dmesh.CellType.tetrahedron, ghost_mode=dmesh.GhostMode.shared_facet)
    imap = msh.topology.index_map(3)
    cells = np.arange(imap.size_local + imap.num_ghosts, dtype=np.int32)
    values = np.full(len(cells), ELECTROLYTE, dtype=np.int32)
    values[dmesh.locate_entities(msh, 3, lambda x: x[2] <= 0.5 + 1e-12)] = HOST
    cell_tags = dmesh.meshtags(msh, 3, cells, values)
    msh.topology.create_connectivity(2, 3)
    interface = dmesh.locate_entities(msh, 2, lambda x: np.isclose(x[2], 0.5))
    top = dmesh.locate_entities_boundary(msh, 2, lambda x: np.isclose(x[2], 1.0))
    facets = np.concatenate([interface, top])
    tags = np.concatenate([np.full(len(interface), INTERFACE), np.full(len(top), TOP)])
    order = np.argsort(facets)
    facet_tags = dmesh.meshtags(msh, 2, facets[order], tags[order].astype(np.int32))
    slab = Packing(centres=np.array([[0.5, 0.5, 0.25]]), radii=np.array([0.5]),
                   family=np.array([0]), parent=np.array([0]), box_lo=(0.0, 0.0, 0.0),
                   box_hi=(1.0, 1.0, 0.5), n_families=1)
    particle_of_cell = np.where(values == HOST, 0, -1)
    return TaggedMesh(mesh=msh, cell_tags=cell_tags, facet_tags=facet_tags,
                      regions={f"host:{host}": HOST, f"electrolyte:0:{electrolyte}": ELECTROLYTE},
                      interfaces={f"EH:{host}": INTERFACE, "top": TOP},
                      particles=slab, particle_of_cell=particle_of_cell, source=Path("layered"))


def case_with(protocol_steps: list[dict], overrides: dict | None = None,
              **solver: str | float) -> CaseConfig:
    """The shipped scaffold case with another protocol, material overrides and solver settings."""
    data = yaml.safe_load((ROOT / "cases" / "si_scaffold.yaml").read_text())
    data["protocol"] = {"steps": protocol_steps}
    data["materials"] = {"overrides": overrides or {}}
    data["solver"] = {**data.get("solver", {}), **solver}
    return validate_case(data)


@pytest.fixture
def comm() -> MPI.Comm:
    return MPI.COMM_WORLD



_EXIT_STATUS = pytest.StashKey[int]()


def pytest_configure(config: pytest.Config) -> None:
    """Under mpirun, no automatic garbage collection: it runs at rank-dependent moments,
    and DOLFINx destroys a solver's SNES (a collective MUMPS call) when the collector
    finalises it, so one rank would wait in MPI_Comm_dup for the other (seen as a hang
    after a test file's last test). `_collect_together` collects after each test instead."""
    if MPI.COMM_WORLD.size > 1:
        gc.disable()


@pytest.fixture(autouse=True)
def _collect_together():
    yield
    if MPI.COMM_WORLD.size > 1:
        MPI.COMM_WORLD.Barrier()
        gc.collect()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Under mpirun, leave after the summary without Python's teardown: destroying the
    PETSc/MUMPS solvers in a rank-dependent order deadlocks (solver.mpi_exit)."""
    if MPI.COMM_WORLD.size > 1:
        finish(config.stash.get(_EXIT_STATUS, 1))
