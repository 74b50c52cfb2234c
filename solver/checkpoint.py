"""Checkpoints: the state of a run, written atomically, read back on any number of ranks.

A checkpoint is one ``.npz`` file with the nodal values of every unknown keyed by the
mesh's input (gmsh) node index, which does not depend on the partition, plus the
stepper and recorder state as JSON inside it. It is written to a temporary name and
renamed, and ``latest.json`` is switched to it the same way, so a run killed at any
moment leaves the previous complete checkpoint in place.

Limit: rank 0 gathers each field (a few floats per node); fine up to ~10⁷ nodes.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np
from dolfinx import fem

log = logging.getLogger("constrict.checkpoint")

KEEP = 2  # complete checkpoints kept on disk


def input_node_index(function: fem.Function) -> np.ndarray:
    """Input (gmsh) node index of each local dof of a P1 function (owned, then ghosts).

    For P1 on an affine mesh each cell's dofs and geometry nodes correspond one to one;
    submeshes keep their parent's input indices.
    """
    space = function.function_space
    element = space.element.basix_element
    if element.degree != 1 or space.dofmap.index_map_bs != 1:
        raise ValueError(f"checkpoints support scalar P1 fields; '{function.name}' is not one")
    mesh = space.mesh
    local_dofs = space.dofmap.index_map.size_local + space.dofmap.index_map.num_ghosts
    node_of_dof = np.empty(local_dofs, dtype=np.int64)
    node_of_dof[space.dofmap.list.ravel()] = mesh.geometry.dofmaps[0].ravel()
    return mesh.geometry.input_global_indices[node_of_dof]


def default_keys(function: fem.Function) -> np.ndarray:
    """Checkpoint keys of a function's local dofs: the input node index of a P1 field; for a
    Real space (one global value, e.g. the anode potential of a plating particle) its dof 0,
    owned by one rank."""
    if function.function_space.ufl_element().is_real:
        return np.arange(function.function_space.dofmap.index_map.size_local, dtype=np.int64)
    return input_node_index(function)


def cell_entry_keys(function: fem.Function, input_cell: np.ndarray) -> np.ndarray:
    """Keys of the owned entries of a cell-wise field (quadrature or DG), from the input
    index of each owned cell: input cell × entries per cell + the entry's place in its cell.

    `input_cell[c]` is the input (gmsh) index of owned cell c of the function's mesh; for a
    submesh the caller maps through its parent.
    """
    dofmap = function.function_space.dofmap
    bs = dofmap.index_map_bs
    cells = len(input_cell)
    per_cell = dofmap.list.shape[1] * bs
    entries = (dofmap.list[:cells, :, None] * bs + np.arange(bs)).reshape(cells, per_cell)
    owned = dofmap.index_map.size_local * bs
    if np.any(entries >= owned) or np.unique(entries).size != owned:
        raise ValueError(f"'{function.name}' is not a cell-wise field of owned cells")
    keys = np.empty(owned, dtype=np.int64)
    keys[entries] = input_cell[:, None].astype(np.int64) * per_cell + np.arange(per_cell)
    return keys


class Checkpointer:
    """Writes and restores the fields of a run under ``folder/checkpoints``.

    Scalar P1 fields are keyed by input node index, Real-space values by their one dof;
    other fields (the quadrature-point
    internal variables of the mechanics) come with their keys (`cell_entry_keys`).
    """

    def __init__(self, folder: Path, functions: dict[str, fem.Function], comm: MPI.Comm,
                 keys: dict[str, np.ndarray] | None = None) -> None:
        self.folder = folder / "checkpoints"
        self.functions = functions
        self.comm = comm
        given = keys or {}
        self.keys = {name: given[name] if name in given else default_keys(f)
                     for name, f in functions.items()}
        if comm.rank == 0:
            self.folder.mkdir(exist_ok=True)

    def write(self, state: dict[str, Any], number: int) -> None:
        """Write checkpoint `number` with the current field values and `state` (JSON-able)."""
        arrays = {}
        for name, function in self.functions.items():
            index_map = function.function_space.dofmap.index_map
            owned = index_map.size_local * function.function_space.dofmap.index_map_bs
            pieces = self.comm.gather((self.keys[name][:owned], function.x.array[:owned]), root=0)
            if self.comm.rank == 0:
                keys = np.concatenate([k for k, _ in pieces])
                values = np.concatenate([v for _, v in pieces])
                order = np.argsort(keys)
                arrays[f"{name}/keys"], arrays[f"{name}/values"] = keys[order], values[order]
        if self.comm.rank == 0:
            target = self.folder / f"checkpoint-{number:06d}.npz"
            temporary = target.with_suffix(".tmp.npz")
            np.savez(temporary, state=np.array(json.dumps(state)), **arrays)
            os.replace(temporary, target)
            pointer = self.folder / "latest.json"
            pointer.with_suffix(".tmp").write_text(json.dumps({"file": target.name}))
            os.replace(pointer.with_suffix(".tmp"), pointer)
            for old in sorted(self.folder.glob("checkpoint-*.npz"))[:-KEEP]:
                if not old.name.endswith(".tmp.npz"):
                    old.unlink()
            log.debug("checkpoint %s at t = %.6g s", target.name, state["position"]["time"])
        self.comm.barrier()

    def restore_latest(self) -> dict[str, Any]:
        """Load the latest complete checkpoint into the fields; return its state."""
        pointer = self.folder / "latest.json"
        if not pointer.is_file():
            raise FileNotFoundError(f"no checkpoint in {self.folder}")
        path = self.folder / json.loads(pointer.read_text())["file"]
        with np.load(path) as data:
            for name, function in self.functions.items():
                keys, values = data[f"{name}/keys"], data[f"{name}/values"]
                position = np.searchsorted(keys, self.keys[name])
                if np.any(position >= len(keys)) or np.any(keys[np.minimum(
                        position, len(keys) - 1)] != self.keys[name]):
                    raise ValueError(f"checkpoint {path.name} does not match the mesh of '{name}'")
                function.x.array[:len(position)] = values[position]
                function.x.scatter_forward()
            state = json.loads(str(data["state"]))
        log.info("restored checkpoint %s (t = %.6g s)", path.name, state["position"]["time"])
        return state
