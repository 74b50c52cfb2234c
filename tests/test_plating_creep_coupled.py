"""Creep alone in the coupled transport problem (MODEL §7; docs/plating.md, "Coupled to
the transport" and "The creep flux on edges"): a few pore vertices of `small_scaffold`
overfilled above ψ_c, then a rest. Serial.

The overfill (ψ = ψ_c + 2·10⁻⁴, p_Li = 44.4 MPa) sits in the pore vertices within
0.45 µm of the pore vertex farthest from every solid and from the box faces (4 vertices,
0.28 µm or more from a host vertex). At rest, creep pushes it into the empty
neighbours; where it reaches a host, forced plating may move some of it into the host.

Measured (newton_rtol 1e-14, 16 steps over 0.5 s): hosts + plated Li constant to 3e-15
relative; max p_Li 44.4 → 1.29 → 0.71 → … → 0.17 MPa, falling at every step; 99.7 % of
the overfill leaves the ball, 29 % of it stays as ψ in the pores around it and 71 % goes
into the hosts; min ψ ≥ 0 after every step, with a clipped undershoot of 1.3e-24 µm³
over the run (3e-20 of the overfill).

newton_rtol is tightened because the default (1e-9, relative to the step's first
residual) stops the first step far from convergence: from 44 MPa the first residual is
3.1e9 and Newton stops after 20 iterations at 1.2, with ψ at -2.5e-5 before the
clipping, which then moves 1.3 % of the overfill; max p_Li 1.06 instead of 1.29 MPa
after the first step (xfail test below).
"""

from __future__ import annotations

from mpi4py import MPI

import numpy as np
import pytest
from scipy.spatial import cKDTree
from test_plating_coupled import small_case

from solver.config import case_materials
from solver.problem import TransportProblem
from solver.simulation import build_case_mesh
from solver.stepper import TimeStepper, protocol_segments

pytestmark = pytest.mark.skipif(MPI.COMM_WORLD.size > 1, reason="serial: the ball is local")

PSI_C = 0.95  # plating.filling_fraction (default)
OVERFILL = 2e-4  # above ψ_c: 44.4 MPa
BALL_RADIUS = 0.45  # µm
# Δt grows after ≤ 12 iterations and shrinks after ≥ 20 (PLATING_NEWTON_COUNTS); the first
# step, from 44 MPa, takes 28 at newton_rtol 1e-14, so newton_max_it goes up to 40.
STEPPING = ["solver.dt_initial=1e-3 s", "solver.newton_easy_iterations=12",
            "solver.newton_hard_iterations=20", "solver.newton_max_it=40"]


def overfilled_ball(problem: TransportProblem) -> np.ndarray:
    """The pore vertices (dofs of ψ) to overfill: interior pore vertices (on no solid)
    within BALL_RADIUS of the one farthest from the solids and the box faces."""
    pores, mesh = problem.pores, problem.mesh
    solid = problem.regions != pores.cell_tag
    solid_points = mesh.geometry.x[np.unique(mesh.geometry.dofmaps[0][solid])]
    x = pores.psi.function_space.tabulate_dof_coordinates()
    to_solid, _ = cKDTree(solid_points).query(x)
    scaffold = problem.case.geometry.scaffold
    box = np.array([scaffold.size_x, scaffold.size_y, scaffold.height])
    to_faces = np.minimum(x, box - x).min(axis=1)
    centre = x[np.argmax(np.minimum(to_solid, to_faces))]
    return np.flatnonzero((np.linalg.norm(x - centre, axis=1) <= BALL_RADIUS)
                          & (to_solid > 1e-9))


def rest_after_overfill(comm: MPI.Comm, duration: str, *settings: str) -> dict:
    """Overfill the ball, rest for `duration`; per accepted step: total Li (mol), max p_Li,
    min ψ, the ψ volume outside the ball (µm³)."""
    case = small_case([f"{{type: rest, duration: {duration}}}"], *STEPPING, *settings)
    problem = TransportProblem(build_case_mesh(case, comm), case, case_materials(case))
    pores = problem.pores
    ball = overfilled_ball(problem)
    pores.psi.x.array[ball] = PSI_C + OVERFILL
    pores.psi.x.scatter_forward()
    pores.plating.update_pressure()  # p_Li = p(ψ): 44.4 MPa in the ball
    problem.accept(0.0)  # the old state is the overfilled one
    volume = pores.nodal_table()["volume_um3"]
    outside = np.ones(len(volume), dtype=bool)
    outside[ball] = False
    assert pores.psi.x.array[outside].max() == 0.0  # the pores start empty

    def state() -> dict:
        return {"li": sum(problem.li_in_hosts_mol().values()) + problem.li_plated_mol(),
                "hosts": sum(problem.li_in_hosts_mol().values()),
                "max_p": pores.plating.max_pressure(), "min_psi": pores.plating.min_psi(),
                "outside": float(pores.psi.x.array[outside] @ volume[outside]),
                "ball": float(pores.psi.x.array[ball] @ volume[ball])}

    steps = [state()]
    TimeStepper(problem, case.solver, lambda record: steps.append(state())).run(
        protocol_segments(case.protocol))
    return {"steps": steps, "ball": ball, "overfill_um3": OVERFILL * volume[ball].sum(),
            "host_distance": _distance_to_hosts(problem, ball),
            "clipped_um3": pores.clipped_volume}


def _distance_to_hosts(problem: TransportProblem, ball: np.ndarray) -> float:
    mesh = problem.mesh
    hosts = np.isin(problem.regions, [host.cell_tag for host in problem.hosts])
    host_points = mesh.geometry.x[np.unique(mesh.geometry.dofmaps[0][hosts])]
    x = problem.pores.psi.function_space.tabulate_dof_coordinates()[ball]
    return float(cKDTree(host_points).query(x)[0].min())


def test_overfilled_pores_creep_into_their_neighbours_at_rest(comm) -> None:
    run = rest_after_overfill(comm, "0.5 s", "solver.newton_rtol=1e-14")
    steps = run["steps"]
    first, last = steps[0], steps[-1]
    assert len(run["ball"]) >= 2 and run["host_distance"] > 0.2  # a few vertices, off hosts
    assert first["max_p"] == pytest.approx(11.1e3 * OVERFILL / (1 - PSI_C), rel=1e-6)
    assert len(steps) >= 6

    # Li is conserved: what leaves the ball is in the other pores or in the hosts
    li = np.array([step["li"] for step in steps])
    assert np.abs(li - li[0]).max() <= 1e-10 * li[0]
    # the overpressure relaxes at every step
    pressure = np.array([step["max_p"] for step in steps])
    assert np.all(np.diff(pressure) <= 0.0), pressure
    assert pressure[-1] < 0.02 * pressure[0]
    # into the neighbours: the ball empties towards ψ_c at every step and the ψ outside it
    # rises from zero. Where the creeping Li reaches a host, the host takes it (Γ_HP:
    # U_host ≈ 0.1 V > U_Li): measured, 29 % of the overfill stays in the pores around the
    # ball and 71 % goes into the hosts (the ψ outside dips once, by 0.1 % of it)
    ball = np.array([step["ball"] for step in steps])
    assert np.all(np.diff(ball) <= 0.0), ball
    assert ball[0] - ball[-1] > 0.95 * run["overfill_um3"]
    outside = np.array([step["outside"] for step in steps])
    assert outside[0] == 0.0 and outside[1] > 0.1 * run["overfill_um3"]
    assert outside[-1] > 0.1 * run["overfill_um3"]
    assert last["hosts"] > first["hosts"]
    # ψ ≥ 0 without help: the undershoot clipped after the steps is at round-off
    assert min(step["min_psi"] for step in steps) >= -1e-12
    assert run["clipped_um3"] <= 1e-12 * run["overfill_um3"]


@pytest.mark.xfail(strict=True, reason=(
    "newton_rtol (1e-9) is relative to the step's first residual, which an overpressure "
    "makes huge (3.1e9 from 44 MPa): Newton stops with ψ at -2.5e-5 (clipped: 1.3 % of the "
    "overfill) and max p_Li 1.06 instead of 1.29 MPa after the first step"))
def test_first_creep_step_is_converged_at_the_default_tolerance(comm) -> None:
    run = rest_after_overfill(comm, "1e-3 s")
    assert len(run["steps"]) == 2
    assert run["clipped_um3"] <= 1e-12 * run["overfill_um3"]
