"""P1/P2 reduced and V9: the shell-limited lithiation of a confined Si particle (issue 5).

The cases are cases/shell_solid.yaml (particle in a solid electrolyte: matrix spring and
stack pressure) and cases/shell_liquid.yaml (traction-free control), on coarser meshes and
a shorter time than the shipped runs (docs/mechanics.md has the full-size numbers). P1 and
V9 measure the shell where the surface reaches 0 V, so the solid case runs without plating
to a 0 V cut-off there; P3 runs it as shipped, plating into the particle's void for an
hour (5150 mAh/g, the paper's total at its short circuit).
"""

from __future__ import annotations

from pathlib import Path

from mpi4py import MPI

import pytest
from test_single_particle import ROOT, solve_problem

from postprocess.metrics import shell_depths_nm
from solver.config import case_materials, load_case
from solver.physics.transport import plating_potential
from solver.simulation import SHELL_THRESHOLD, run_case

PLATING_SHARE_P3 = 0.80  # VALIDATION P3


def run_shell(kind: str, cache: Path, size_um: float, duration_s: float):
    to_zero_volts = (["plating.enabled=false", "protocol.steps[0].cutoff_voltage=0 V"]
                     if kind == "solid" else [])
    case = load_case(ROOT / "cases" / f"shell_{kind}.yaml", [
        f"geometry.mesh.size_surface={size_um} um",
        f"protocol.steps[0].duration={duration_s} s", *to_zero_volts])
    return solve_problem(case, cache, coupled=True)


def shell_depth_nm(coupled) -> float:
    depths = shell_depths_nm(coupled.transport, coupled.transport.tagged, SHELL_THRESHOLD)
    return float(depths["Si"][0])


def capacity_theta(coupled) -> float:
    transport = coupled.transport
    return transport.integral("theta_volume:Si") / transport.integral("volume:Si")


@pytest.fixture(scope="module")
def shells(tmp_path_factory) -> dict:
    cache = tmp_path_factory.mktemp("meshes")
    return {kind: run_shell(kind, cache, 0.07, 200.0) for kind in ("solid", "liquid")}


def test_p1_solid_electrolyte_confines_lithiation_to_a_shell(shells) -> None:
    """P1 (reduced): in the solid electrolyte the squeezed shell lowers the host potential
    (3.2) by GPa stresses and the surface reaches 0 V within 200 s (at 160 s here)."""
    coupled, stepper = shells["solid"]
    assert stepper.summary.stopped_by_cutoff
    assert stepper.time < 200.0
    assert coupled.extremes()["sigma_h_GPa_min"] < -1.0


def test_p2_liquid_control_lithiates_on(shells) -> None:
    """P2 (reduced): the free particle keeps taking the current after the confined one has
    stopped, at a steady ~0.15 V, and it is less compressed."""
    solid, _ = shells["solid"]
    liquid, stepper = shells["liquid"]
    assert not stepper.summary.stopped_by_cutoff
    assert liquid.anode_potential() > 0.1
    assert capacity_theta(liquid) > capacity_theta(solid)
    assert liquid.extremes()["sigma_h_GPa_min"] > solid.extremes()["sigma_h_GPa_min"]



def test_v9_shell_depth_converges_with_the_mesh(shells, tmp_path_factory) -> None:
    """V9 (reduced): the solid case's shell depth at 0 V on surface meshes of 100, 70 and
    50 nm (63.0, 58.7, 55.2 nm with the as-made stress-free reference of session 6;
    51.1 and 50.5 nm at 35 and 25 nm before it, see docs/mechanics.md) falls
    monotonically, by less than 8 % per refinement. With P1
    mechanics, which locks under isochoric plastic flow, it was 1, 18 and 40 nm at 50, 35
    and 25 nm."""
    cache = tmp_path_factory.mktemp("v9")
    depths = [shell_depth_nm(run_shell("solid", cache, 0.1, 200.0)[0]),
              shell_depth_nm(shells["solid"][0]),
              shell_depth_nm(run_shell("solid", cache, 0.05, 200.0)[0])]
    assert depths[0] > depths[1] > depths[2] > 0.0, depths
    steps = zip(depths[:-1], depths[1:], strict=True)
    assert all(abs(coarse - fine) < 0.08 * fine for coarse, fine in steps), depths


def test_p3_plating_carries_the_capacity_below_zero_volts(tmp_path) -> None:
    """P3 (reduced: 100 nm surface mesh, Δt up to 200 s): the shipped solid case runs on
    past 0 V for the hour that brings the paper's ≈ 5000 mAh/g. The confined shell holds
    ≈ 200 mAh/g above 0 V (the paper: ≈ 200); below 0 V Li plates into the particle's
    void, fills it and then lifts the layer against the 50 MPa stack, so p_Li stays at the
    stack pressure and V just below U_Li(p_stack): the −0.2 V cut-off is never reached.
    Plating carries ≥ 80 % of the capacity (91 % here, 83 % when the void is full). Li is
    conserved with the plated Li (V1)."""
    case = load_case(ROOT / "cases" / "shell_solid.yaml",
                     ["geometry.mesh.size_surface=0.1 um", "solver.dt_max=200 s",
                      "output.fields_every=0", "output.checkpoint_every=0"])
    metrics = run_case(case, tmp_path, MPI.COMM_WORLD)
    alloy, plating = metrics["capacity_alloy_mAh_per_g"], metrics["capacity_plating_mAh_per_g"]
    assert not metrics["stopped_by_cutoff"]
    assert alloy + plating > 4000.0
    assert 100.0 < metrics["capacity_above_0V_mAh_per_g"] < 400.0
    assert plating >= PLATING_SHARE_P3 * (alloy + plating)
    assert metrics["void_p_li_MPa_final"] == pytest.approx(case.stack_pressure, abs=0.01)
    assert metrics["void_opening_final"] > 0.5
    li_metal = case_materials(case)[case.plating.metal].metal
    u_li = float(plating_potential(case.stack_pressure, li_metal.molar_volume.m_as("m^3/mol")))
    assert u_li - 0.02 < metrics["anode_potential_V_final"] < u_li
    assert metrics["li_balance_rel_error"] < 1e-6
