"""Microstructure generation for constrict: particle packing, gmsh geometry, tagged meshes.

`from mpi4py import MPI` must run before petsc4py or dolfinx are imported: with the
binary DOLFINx wheel it loads the wheel's MPICH library.
"""

from mpi4py import MPI  # noqa: F401  (import order matters, see docstring)

