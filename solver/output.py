"""Result files of a run: field series for ParaView, the time-series CSV, metrics JSON.

All ranks write the field files collectively (one file set per run, whatever the
number of ranks); rank 0 alone writes the CSV and JSON files.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mpi4py import MPI

import dolfinx

from solver import xdmf

log = logging.getLogger("constrict.output")


class FieldWriter:
    """Time series of functions, one XDMF or VTX file per mesh the functions live on.

    Functions on different submeshes (θ on each host, φ_e on the electrolyte) go to
    different files; ParaView opens them side by side in the same coordinates. Each XDMF
    file is regrouped after every write into one temporal collection with all its fields
    (`solver.xdmf`), the form ParaView's and VTK's readers open.
    """

    def __init__(self, folder: Path, groups: dict[str, Sequence[dolfinx.fem.Function]],
                 file_format: str, suffix: str = "") -> None:
        self._writers: list[Any] = []
        self._paths: list[Path] = []
        self._format = file_format
        for name, functions in groups.items():
            mesh = functions[0].function_space.mesh
            if file_format == "vtx":
                path = folder / f"{name}{suffix}.bp"
                writer = dolfinx.io.VTXWriter(mesh.comm, path, list(functions), engine="BP4")
            else:
                path = folder / f"{name}{suffix}.xdmf"
                writer = dolfinx.io.XDMFFile(mesh.comm, path, "w")
                writer.write_mesh(mesh)
            self._writers.append((writer, list(functions)))
            self._paths.append(path)

    def write(self, time: float) -> None:
        for (writer, functions), path in zip(self._writers, self._paths, strict=True):
            if self._format == "vtx":
                writer.write(time)
                continue
            for function in functions:
                writer.write_function(function, time)
            if writer.comm.rank == 0:  # the rank that writes the XML
                xdmf.regroup(path, float_bytes=functions[0].x.array.dtype.itemsize)

    def close(self) -> None:
        for writer, _ in self._writers:
            writer.close()


class TimeSeries:
    """``timeseries.csv``: one row per accepted time step, flushed as it is written.

    On a restart from time `resume_from`, the rows written after it (by the run that was
    killed) are dropped and the file continues from there.
    """

    def __init__(self, path: Path, columns: Sequence[str], comm: MPI.Comm,
                 resume_from: float | None = None) -> None:
        self.columns = list(columns)
        self._file = None
        if comm.rank == 0:
            kept = [] if resume_from is None else _rows_until(path, resume_from)
            self._file = path.open("w", newline="")
            self._writer = csv.DictWriter(self._file, fieldnames=self.columns)
            self._writer.writeheader()
            self._writer.writerows(kept)
            self._file.flush()

    def append(self, row: dict[str, float]) -> None:
        if self._file is None:
            return
        self._writer.writerow({key: _format_number(row.get(key)) for key in self.columns})
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _rows_until(path: Path, time: float) -> list[dict[str, str]]:
    # The rows hold 12 significant digits (_format_number): the row of the checkpoint's
    # own step may read up to 5e-12 relative above its time, so compare at 1e-10.
    with path.open(newline="") as handle:
        return [row for row in csv.DictReader(handle)
                if float(row["time_s"]) <= time * (1 + 1e-10)]


def _format_number(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.12g}"


def write_json(path: Path, data: dict[str, Any], comm: MPI.Comm) -> None:
    """Write JSON from rank 0; missing metrics are written as null, never invented."""
    if comm.rank == 0:
        clean = {key: (None if isinstance(value, float) and not math.isfinite(value) else value)
                 for key, value in data.items()}
        path.write_text(json.dumps(clean, indent=2, sort_keys=True) + "\n")
