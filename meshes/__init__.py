"""Microstructure generation for constrict: particle packing, gmsh geometry, tagged meshes.

`from mpi4py import MPI` must run before petsc4py or dolfinx are imported: with the
binary DOLFINx wheel it loads the wheel's MPICH library.
"""

from mpi4py import MPI  # noqa: F401  (import order matters, see docstring)

from meshes.cache import MESH_FORMAT_VERSION, TaggedMesh, build_mesh, mesh_path, write_mesh
from meshes.packing import Packing, pack
from meshes.spec import Coating, ElectrolyteLayer, ParticleFamily, ScaffoldSpec, SingleParticleSpec

__all__ = [
    "MESH_FORMAT_VERSION",
    "Coating",
    "ElectrolyteLayer",
    "Packing",
    "ParticleFamily",
    "ScaffoldSpec",
    "SingleParticleSpec",
    "TaggedMesh",
    "build_mesh",
    "mesh_path",
    "pack",
    "write_mesh",
]
