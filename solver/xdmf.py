"""XDMF that ParaView's and VTK's readers open: one temporal collection per file, every
field of a time step in one grid (docs/paraview.md).

DOLFINx (0.11) writes a file's mesh as one grid and each function as its own temporal
collection of grids that pull the mesh in with XInclude, under the namespace
``https://www.w3.org/2001/XInclude``. Checked with Debian's ParaView 5.11 and VTK 9.7
(pyvista): the legacy XDMF reader (ParaView's "XDMF Reader", pyvista's `XdmfReader`)
crashes on that namespace (XInclude's name is ``http://…``), and the Xdmf3 readers, which
open it, show the mesh and each function as unnamed coincident blocks, so a field is
hidden under the others' surfaces.

`regroup` rewrites such a file after each write (on the rank that writes the XML): the
same HDF5 datasets, referenced from one temporal collection named after the file, one
uniform grid per time with the mesh's topology and geometry and all fields written at that
time. It also states each DataItem's precision: without it XDMF means 4 bytes, and VTK's
reader hands out DOLFINx's float64 values rounded to float32 (checked with pyvista).
DOLFINx keeps its own document in memory and saves it again at its next write, after which
the writer regroups again, so the file on disk is readable between writes and after a run
is killed.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

XINCLUDE_WRONG = "https://www.w3.org/2001/XInclude"
XINCLUDE = "http://www.w3.org/2001/XInclude"


def regroup(path: Path, float_bytes: int = 8, int_bytes: int = 8) -> None:
    """Rewrite the DOLFINx XDMF file `path` as one temporal collection (module docstring),
    with the precision of its data: `float_bytes` for the coordinates and fields,
    `int_bytes` for the cell vertices (DOLFINx's float64 and int64 by default). A file
    without time series (a mesh with tags) keeps its grids; only the XInclude namespace
    and the precisions are corrected there."""
    text = Path(path).read_text()
    root = ET.fromstring(text.replace(XINCLUDE_WRONG, XINCLUDE))
    for item in root.iter("DataItem"):
        if item.get("Format") == "HDF" and "Precision" not in item.attrib:
            integer = item.get("NumberType", "Float") in ("Int", "UInt")
            item.set("Precision", str(int_bytes if integer else float_bytes))
    domain = root.find("Domain")
    grids = domain.findall("Grid") if domain is not None else []
    mesh = next((grid for grid in grids if grid.get("GridType", "Uniform") == "Uniform"
                 and grid.find("Topology") is not None), None)
    collections = [grid for grid in grids if grid.get("CollectionType") == "Temporal"]
    if mesh is None or not collections:
        ET.indent(root)
        _replace(path, '<?xml version="1.0"?>\n' + ET.tostring(root, encoding="unicode") + "\n")
        return
    _replace(path, _document(Path(path).stem, mesh, _fields_by_time(collections)))


def _fields_by_time(collections: list[ET.Element]) -> dict[float, tuple[str, list[ET.Element]]]:
    """time -> (its Time value as written, the Attribute elements written at that time)."""
    by_time: dict[float, tuple[str, list[ET.Element]]] = {}
    for collection in collections:
        for grid in collection.findall("Grid"):
            stamp = grid.find("Time")
            value = stamp.get("Value") if stamp is not None else "0"
            entry = by_time.setdefault(float(value), (value, []))
            entry[1].extend(grid.findall("Attribute"))
    return dict(sorted(by_time.items()))


def _document(name: str, mesh: ET.Element,
              fields: dict[float, tuple[str, list[ET.Element]]]) -> str:
    root = ET.Element("Xdmf", {"Version": "3.0"})
    domain = ET.SubElement(root, "Domain")
    series = ET.SubElement(domain, "Grid", {"Name": name, "GridType": "Collection",
                                            "CollectionType": "Temporal"})
    for value, attributes in fields.values():
        grid = ET.SubElement(series, "Grid", {"Name": name, "GridType": "Uniform"})
        grid.append(mesh.find("Topology"))
        grid.append(mesh.find("Geometry"))
        ET.SubElement(grid, "Time", {"Value": value})
        grid.extend(attributes)
    ET.indent(root)
    return '<?xml version="1.0"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _replace(path: Path, text: str) -> None:
    """Write atomically: a reader never sees half a file."""
    partial = Path(path).with_name(Path(path).name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)
