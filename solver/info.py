"""`constrict info`: the versions a bug report needs."""

from __future__ import annotations

import platform

from mpi4py import MPI

_PETSC_PACKAGES = ("mumps", "superlu_dist", "hypre", "ptscotch", "parmetis", "metis",
                   "scalapack", "hdf5", "slepc")


def environment_report() -> str:
    """Versions of Python, DOLFINx, PETSc, MPI, gmsh and the PETSc external packages."""
    import dolfinx
    import gmsh
    from petsc4py import PETSc

    import solver

    petsc_version = ".".join(str(part) for part in PETSc.Sys.getVersion())
    packages = ", ".join(f"{name}={'yes' if PETSc.Sys.hasExternalPackage(name) else 'no'}"
                         for name in _PETSC_PACKAGES)
    mpi_library = MPI.Get_library_version().splitlines()[0].strip()
    lines = [
        f"constrict  {solver.__version__}",
        f"python     {platform.python_version()}",
        f"dolfinx    {dolfinx.__version__} (scalar type {PETSc.ScalarType.__name__})",
        f"petsc      {petsc_version}",
        f"petsc pkgs {packages}",
        f"mpi        {mpi_library} ({MPI.COMM_WORLD.size} ranks)",
        f"gmsh       {gmsh.__version__}",
    ]
    return "\n".join(lines)
