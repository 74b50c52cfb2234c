"""P4 (reduced) with the chemo-mechanics on: the paper's mechanism in a scaffold.

The small scaffold with the comparison's settings (tests/test_p4_scaffold_comparison.py,
8 s at 2C), now with finite-strain viscoplastic mechanics (P1, MUMPS), for Si, Cu and Al2O3
as the first particle family. What the model shows, and these tests check:

- the Si shells at the separator are squeezed to GPa as they lithiate, which lowers their
  potential (3.2): alloying chokes, the anode goes below 0 V at 1.8 s and 43 % of the
  charge plates (without the mechanics, Si plates nothing in these 8 s);
- the choked Si surface spreads the current: Si has the lowest hot-spot factor and current
  CoV of the three (3.11 / 0.51 vs Cu 3.61 / 0.84), where without the mechanics it has the
  highest (4.10 / 1.32; docs/plating.md).

The stack pressure is 0 here: 50 MPa through the scaffold's elastic contact necks gives
−7.7 GPa at t = 0 and the viscoplastic solve does not converge (docs/plating.md,
"Scaffold mechanics"). The paper notes that constriction comes from the materials' moduli
rather than from the external pressure.
"""

from __future__ import annotations

from mpi4py import MPI

import pytest
from test_p4_scaffold_comparison import COMPARISON_SETTINGS, FIRST_FAMILIES, SMALL

from solver.config import load_case
from solver.simulation import run_case

MECHANICS = ["mechanics.enabled=true", "mechanics.degree=1", "mechanics.linear_solver=mumps",
             "stack_pressure=0 MPa"]


@pytest.fixture(scope="module")
def constricted(tmp_path_factory) -> dict[str, dict]:
    runs = {}
    for label, overrides in {"Si": [*FIRST_FAMILIES["Si"], *MECHANICS],
                             "Cu": [*FIRST_FAMILIES["Cu"], *MECHANICS],
                             "Al2O3": [*FIRST_FAMILIES["Al2O3"], *MECHANICS],
                             "Si, no mechanics": FIRST_FAMILIES["Si"]}.items():
        case = load_case(SMALL, [*COMPARISON_SETTINGS, *overrides])
        runs[label] = run_case(case, tmp_path_factory.mktemp("run"), MPI.COMM_WORLD)
    return runs


def test_p4_compressed_si_chokes_alloying_and_plates(constricted) -> None:
    si, free = constricted["Si"], constricted["Si, no mechanics"]
    assert si["sigma_h_GPa_min"] < -1.0
    assert free["plating_share"] < 0.01
    assert si["plating_share"] > 0.2
    assert si["anode_potential_V_final"] < 0.0
    assert si["plated_depth_centroid_um"] < 0.05  # at the separator, where Si is squeezed
    for run in constricted.values():
        assert run["li_balance_rel_error"] < 1e-6


def test_p4_constricted_si_spreads_the_current_most_evenly(constricted) -> None:
    si = constricted["Si"]
    for inert in ("Cu", "Al2O3"):
        assert constricted[inert]["plating_share"] > si["plating_share"]
        assert si["hotspot_factor"] < constricted[inert]["hotspot_factor"]
        assert si["current_cov"] < constricted[inert]["current_cov"]
