"""Leaving an MPI run without Python's teardown.

At interpreter exit Python destroys the PETSc solvers in an order that can differ from rank
to rank (garbage collection, module teardown). Destroying a MUMPS factorisation is
collective (it duplicates a communicator), so two ranks destroying different solvers
deadlock: observed as `mpirun` hanging after the last test or the last step, both ranks
spinning in MPI_Comm_dup under SNESDestroy. A parallel run therefore ends with a barrier,
MPI_Finalize and os._exit, skipping the destructors; the operating system reclaims memory.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from mpi4py import MPI


def finish(code: int) -> NoReturn:
    """Exit with `code`; in a parallel run without running the destructors (see above)."""
    if MPI.COMM_WORLD.size == 1:
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    MPI.COMM_WORLD.Barrier()
    MPI.Finalize()
    os._exit(code)
