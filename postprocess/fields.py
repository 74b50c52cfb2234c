"""Every field of a run at every time, for Python users and for the renders (docs/paraview.md).

`read_run_fields(folder)` gives, for each field file of a run folder (``host_Si``,
``electrolyte``, ``pores``, ``interface``, ``solid``, …), its mesh, its times and a
function that returns a field's values at a time as a numpy array, with the parts a restart
added (``<name>_restart<k>.xdmf``) joined in: a time present in several parts is taken
from the latest. meshio's time-series reader cannot do this: it returns the last function
of a file only.

The XDMF/HDF5 files are read directly (ElementTree + h5py): the mesh is the first uniform
grid with a topology (``/Mesh/<name>/topology|geometry``), at the top as DOLFINx writes it or
in the temporal collection as `solver.xdmf.regroup` leaves it; the fields are the attributes
of the collections' grids (``/Function/<name>/<time>``). Data is read when asked for. VTX
(``.bp``) output is not read.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger("constrict.fields")

RESTART = re.compile(r"^(?P<base>.+)_restart(?P<k>\d+)$")
SKIP_FILES = {"mesh"}  # `constrict mesh` output: tags, not fields


@dataclass(frozen=True)
class DataRef:
    """One XDMF DataItem: ``file.h5:/path`` (Format="HDF") or numbers inline ("XML")."""

    xdmf: Path
    text: str
    fmt: str
    shape: tuple[int, ...]
    number_type: str

    def read(self) -> np.ndarray:
        dtype = np.int64 if self.number_type in ("Int", "UInt") else np.float64
        if self.fmt == "XML":
            return np.array(self.text.split(), dtype=dtype).reshape(self.shape)
        if self.fmt != "HDF":
            raise ValueError(f"{self.xdmf.name}: DataItem format {self.fmt} is not supported")
        import h5py

        filename, _, path = self.text.partition(":")
        with h5py.File(self.xdmf.parent / filename, "r") as h5:
            return np.asarray(h5[path][...], dtype=dtype).reshape(self.shape)


def _data_ref(xdmf: Path, element: ET.Element) -> DataRef:
    item = element if element.tag == "DataItem" else element.find("DataItem")
    if item is None:
        raise ValueError(f"{xdmf.name}: <{element.tag}> has no DataItem")
    shape = tuple(int(n) for n in item.get("Dimensions", "").split())
    return DataRef(xdmf, (item.text or "").strip(), item.get("Format", "XML"), shape,
                   item.get("NumberType", "Float"))


@dataclass
class FieldFile:
    """One XDMF file as DOLFINx writes it: a mesh and time series of functions on it."""

    path: Path
    cell_type: str
    topology: DataRef
    geometry: DataRef
    # field name -> time -> (centre "Node" | "Cell", data)
    fields: dict[str, dict[float, tuple[str, DataRef]]] = field(default_factory=dict)

    @property
    def times(self) -> list[float]:
        return sorted({t for series in self.fields.values() for t in series})

    def unreadable(self) -> str | None:
        """Why the HDF5 file(s) behind this XDMF cannot be opened (None if they can): a run
        killed while writing leaves its files unclosed."""
        import h5py

        refs = [self.topology, self.geometry,
                *(ref for series in self.fields.values() for _, ref in series.values())]
        for name in sorted({ref.text.partition(":")[0] for ref in refs if ref.fmt == "HDF"}):
            try:
                with h5py.File(self.path.parent / name, "r"):
                    pass
            except OSError as error:
                return f"{name}: {error}"
        return None


def read_xdmf(path: Path) -> FieldFile:
    """Parse a DOLFINx XDMF file (mesh + temporal collections); no data is read yet."""
    domain = ET.parse(path).getroot().find("Domain")
    if domain is None:
        raise ValueError(f"{path.name}: no <Domain>")
    grids = domain.findall("Grid")
    uniform = [g for g in grids if g.get("GridType", "Uniform") == "Uniform"]
    uniform += [g for c in grids if c.get("GridType") == "Collection" for g in c.findall("Grid")]
    mesh = next((g for g in uniform if g.find("Topology") is not None), None)
    if mesh is None:
        raise ValueError(f"{path.name}: no mesh grid")
    topology = mesh.find("Topology")
    geometry = mesh.find("Geometry")
    if geometry is None or geometry.get("GeometryType", "XYZ") not in ("XYZ", "XY"):
        raise ValueError(f"{path.name}: only XYZ/XY geometry is supported")
    result = FieldFile(path, topology.get("TopologyType", ""), _data_ref(path, topology),
                       _data_ref(path, geometry))
    for collection in grids:
        if collection.get("GridType") != "Collection":
            continue
        for grid in collection.findall("Grid"):
            stamp = grid.find("Time")
            when = float(stamp.get("Value")) if stamp is not None else 0.0
            for attribute in grid.findall("Attribute"):
                series = result.fields.setdefault(attribute.get("Name"), {})
                series[when] = (attribute.get("Center", "Node"), _data_ref(path, attribute))
    return result


def field_files(folder: Path) -> dict[str, list[FieldFile]]:
    """The XDMF files of a run folder by series name, each list in restart order."""
    found: dict[str, list[tuple[int, FieldFile]]] = {}
    for path in sorted(folder.glob("*.xdmf")):
        match = RESTART.match(path.stem)
        base, k = (match["base"], int(match["k"])) if match else (path.stem, 0)
        if base in SKIP_FILES:
            continue
        try:
            parsed = read_xdmf(path)
        except (ET.ParseError, ValueError) as error:
            log.warning("skipping %s: %s", path.name, error)
            continue
        problem = parsed.unreadable()
        if problem:
            log.warning("skipping %s: cannot read %s", path.name, problem)
            continue
        found.setdefault(base, []).append((k, parsed))
    return {base: [f for _, f in sorted(files, key=lambda item: item[0])]
            for base, files in found.items()}


def series_times(files: list[FieldFile]) -> list[float]:
    return sorted({t for f in files for t in f.times})




@dataclass
class RunFields:
    """One field file of a run (all its restart parts): mesh, times and field values."""

    name: str
    parts: list[FieldFile]

    @property
    def times(self) -> list[float]:
        return series_times(self.parts)

    @property
    def field_names(self) -> list[str]:
        return sorted({name for part in self.parts for name in part.fields})

    @property
    def points(self) -> np.ndarray:
        """Vertex coordinates (µm), vertices × 3."""
        return self.parts[-1].geometry.read()

    @property
    def cells(self) -> np.ndarray:
        """Cell vertices (indices into `points`), in VTK order; `cell_type` names them."""
        return self.parts[-1].topology.read()

    @property
    def cell_type(self) -> str:
        return self.parts[-1].cell_type

    def centre(self, name: str) -> str:
        """"Node" (one value per point) or "Cell" (one per cell) for field `name`."""
        return next(c for part in self.parts for c, _ in part.fields.get(name, {}).values())

    def values(self, name: str, time: float | None = None) -> np.ndarray:
        """Field `name` at `time` (default: the last), one row per point or cell."""
        times = [t for t in self.times if any(t in part.fields.get(name, {})
                                              for part in self.parts)]
        if not times:
            raise KeyError(f"{self.name}: no field {name!r} (fields: {self.field_names})")
        when = times[-1] if time is None else time
        source = next((part for part in reversed(self.parts)
                       if when in part.fields.get(name, {})), None)
        if source is None:
            raise KeyError(f"{self.name}: {name!r} was not written at t = {when} s "
                           f"(times: {times})")
        data = source.fields[name][when][1].read()
        return data[:, 0] if data.ndim == 2 and data.shape[1] == 1 else data

    def series(self, name: str) -> dict[float, np.ndarray]:
        """Field `name` at every time it was written: time (s) -> values."""
        return {t: self.values(name, t) for t in self.times
                if any(t in part.fields.get(name, {}) for part in self.parts)}


def read_run_fields(folder: Path) -> dict[str, RunFields]:
    """The field files of a run folder by name (``host_Si``, ``pores``, …)."""
    return {name: RunFields(name, parts) for name, parts in field_files(Path(folder)).items()}
