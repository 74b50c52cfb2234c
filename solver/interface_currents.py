"""Current distribution on the interface between the solid electrolyte and the scaffold
(MODEL §9): where the Li⁺ current leaves the electrolyte, element by element.

The interface is every facet of the bottom electrolyte layer that meets the scaffold:
Γ_EH (alloying into hosts), Γ_EP (plating into pores), Γ_EC and Γ_EN (inert conductors
and insulators, which take no current but count in the area). Each electrolyte cell on it
is one interface element: the current through its interface facets of one group,
divided by their area. The charge through each element is summed over the accepted
steps with the end-of-step current (the backward-Euler quadrature of the Li balance), so
that the time-averaged distribution (the hot-spot factor, `postprocess.plating_metrics`)
is exact for the steps taken.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import dolfinx
import numpy as np
import ufl
from dolfinx import fem

from solver.checkpoint import cell_entry_keys
from solver.problem import TransportProblem
from solver.transient import Drive

COLUMNS = ("x_um", "y_um", "z_um", "area_um2", "kind", "near_conductor",
           "current_density_A_per_m2", "charge_density_C_per_m2")


@dataclass
class _Group:
    """One facet group of the interface and its per-element integrals (DG0 on the
    electrolyte submesh; an entry is zero where a cell has no facet of the group)."""

    name: str
    area: np.ndarray  # µm²
    centroid: np.ndarray  # area-weighted facet midpoint, µm (n × 3)
    near_conductor: np.ndarray  # share of the area in a conductor's contact band
    current_form: fem.Form | None  # ∫ i w dS, A/m² · µm²
    current: np.ndarray  # the last evaluation, A/m² · µm²
    charge: fem.Function  # Σ dt · current, C/m² · µm²


class InterfaceCurrents:
    """Per-element interface current density and its time integral on a scaffold."""

    def __init__(self, problem: TransportProblem) -> None:
        if problem.phi is None:
            raise ValueError("interface currents need an electrolyte (a scaffold)")
        self.problem = problem
        self.comm = problem.comm
        self.space = fem.functionspace(problem.phi.function_space.mesh, ("DG", 0))
        self.owned = self.space.dofmap.index_map.size_local
        self.field = fem.Function(self.space, name="interface_current")  # A/m²
        self.groups = [self._group(name) for name in self._group_names()]

    def _group_names(self) -> list[str]:
        names = self.problem.tagged.interfaces
        return sorted(name for name in names
                      if name == "EP" or name.split(":")[0] in ("EH", "EC", "EN"))

    def _group(self, name: str) -> _Group:
        problem = self.problem
        w = ufl.TestFunction(self.space)
        letters, _, material = name.partition(":")
        if name == "EP":
            other_tags = {problem.tagged.regions["pore"]}
        else:
            other_tags = {tag for region, tag in problem.tagged.regions.items()
                          if region.split(":")[-1] == material
                          and not region.startswith("electrolyte")}
        measure = problem.interface_measure(name, other_tags, set(problem.electrolyte_layers))
        x = ufl.SpatialCoordinate(problem.mesh)
        area = self._assemble(w("-") * measure)
        centroid = np.column_stack([self._assemble(x[i] * w("-") * measure) for i in range(3)])
        centroid /= np.where(area > 0, area, 1.0)[:, None]
        near = np.zeros_like(area)
        if name == "EP" and problem.pores is not None:
            band = problem.pores.access * problem.pores.near_conductor
            near = self._assemble(band("+") * w("-") * measure) / np.where(area > 0, area, 1.0)
        current = None
        if letters == "EH":
            (site,) = [s for s in problem.sites if s.host.name == material]
            current = problem.site_current(site, Drive("voltage", 0.0)) * w("-") * measure
        elif name == "EP" and problem.plating_sites is not None:
            current = problem.plating_current() * w("-") * problem.plating_sites
        form = (fem.form(current, entity_maps=problem.entity_maps)
                if current is not None else None)
        return _Group(name, area, centroid, near, form, np.zeros_like(area),
                      fem.Function(self.space, name=f"charge_{name}"))

    def _assemble(self, integrand) -> np.ndarray:
        vector = fem.assemble_vector(fem.form(integrand, entity_maps=self.problem.entity_maps))
        vector.scatter_reverse(dolfinx.la.InsertMode.add)
        return vector.array[:self.owned].copy()

    # -- per step ---------------------------------------------------------------------------

    def update(self, dt: float) -> None:
        """Evaluate the currents of the accepted state and add dt × current to the charge."""
        total_current = np.zeros(self.owned)
        total_area = np.zeros(self.owned)
        for group in self.groups:
            if group.current_form is not None:
                group.current = self._assemble_form(group.current_form)
            group.charge.x.array[:self.owned] += dt * group.current
            group.charge.x.scatter_forward()
            total_current += group.current
            total_area += group.area
        self.field.x.array[:self.owned] = np.divide(
            total_current, total_area, out=np.zeros(self.owned), where=total_area > 0)
        self.field.x.scatter_forward()

    def _assemble_form(self, form: fem.Form) -> np.ndarray:
        vector = fem.assemble_vector(form)
        vector.scatter_reverse(dolfinx.la.InsertMode.add)
        return vector.array[:self.owned].copy()

    def checkpoint_fields(self) -> tuple[dict[str, fem.Function], dict[str, np.ndarray]]:
        """The accumulated charges (what a restart needs to continue the distribution) and
        their checkpoint keys, from the input index of each electrolyte cell."""
        cells = np.arange(self.owned, dtype=np.int32)
        parent = self.problem.phi_entity_map.sub_topology_to_topology(cells, inverse=False)
        input_cell = self.problem.mesh.topology.original_cell_index[parent]
        fields = {group.charge.name: group.charge for group in self.groups}
        return fields, {name: cell_entry_keys(f, input_cell) for name, f in fields.items()}

    # -- output --------------------------------------------------------------------------

    def write_csv(self, path: Path) -> None:
        """`interface_current.csv`: one row per interface element and group (rank 0)."""
        rows = []
        for group in self.groups:
            has = group.area > 0
            area_m2 = np.where(has, group.area, 1.0)
            local = np.column_stack([
                group.centroid[has], group.area[has], group.near_conductor[has],
                (group.current / area_m2)[has],
                (group.charge.x.array[:self.owned] / area_m2)[has]])
            for block in self.comm.gather(local, root=0) or []:
                rows += [(group.name, row) for row in block]
        if self.comm.rank != 0:
            return
        with path.open("w", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(COLUMNS)
            for name, (x, y, z, area, near, current, charge) in rows:
                writer.writerow([f"{x:.6g}", f"{y:.6g}", f"{z:.6g}", f"{area:.6g}", name,
                                 int(near > 0.5), f"{current:.9g}", f"{charge:.9g}"])


def write_plated_li_csv(problem: TransportProblem, path: Path) -> None:
    """`plated_li.csv`: ψ and p_Li at every pore vertex, with its lumped volume (rank 0)."""
    table = problem.pores.nodal_table()
    columns = list(table)
    local = np.column_stack([table[c] for c in columns])
    blocks = problem.comm.gather(local, root=0)
    if problem.comm.rank != 0:
        return
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(columns)
        for block in blocks:
            writer.writerows([[f"{value:.9g}" for value in row] for row in block])
