"""Coupled θ/φ_e transport with Butler–Volmer kinetics on a layered box (MODEL §3–§5)."""

from __future__ import annotations

from mpi4py import MPI

import numpy as np
import pytest
from conftest import case_with, layered_box

from solver.problem import TransportProblem
from solver.reference_solutions import slab_constant_flux
from solver.stepper import StepRecord, TimeStepper, protocol_segments
from solver.units import Q_, F

FICKIAN = {"ideal_host": {"D0": "1e-14 m^2/s", "D1": "1e-14 m^2/s"}}


class ChargeCounter:
    """Charge passed, integrated with the same backward-Euler rule as the model."""

    def __init__(self, problem: TransportProblem) -> None:
        self.problem = problem
        self.area_m2 = problem.integral("top_area") * 1e-12
        self.coulombs = 0.0

    def __call__(self, record: StepRecord) -> None:
        self.coulombs += self.problem.current_density() * self.area_m2 * record.dt


def run(comm: MPI.Comm, steps: list[dict], n: int = 6, **solver) -> tuple[TransportProblem, float]:
    case = case_with(steps, FICKIAN, **solver)
    from solver.config import case_materials

    problem = TransportProblem(layered_box(comm, n), case, case_materials(case))
    li_before = sum(problem.li_in_hosts_mol().values())
    counter = ChargeCounter(problem)
    TimeStepper(problem, case.solver, counter).run(protocol_segments(case.protocol))
    stored = (sum(problem.li_in_hosts_mol().values()) - li_before) * F.m_as("C/mol")
    return problem, (counter.coulombs - stored) / counter.coulombs


def test_v1_li_conservation_over_charge_rest_and_hold(comm) -> None:
    steps = [{"type": "galvanostatic", "current_density": "1 mA/cm^2", "duration": "20 s"},
             {"type": "rest", "duration": "10 s"},
             {"type": "potentiostatic", "voltage": "0.05 V", "duration": "10 s"}]
    problem, error = run(comm, steps)
    assert abs(error) < 1e-6
    assert problem.current_density() > 0.0  # the hold at 0.05 V keeps lithiating


def slab_error(comm: MPI.Comm, n: int) -> tuple[float, float]:
    """Max nodal error of θ after 20 s at 1 mA/cm², and the spread of the exact profile."""
    duration, current = 20.0, Q_(1.0, "mA/cm^2")
    steps = [{"type": "galvanostatic", "current_density": "1 mA/cm^2", "duration": "20 s"}]
    problem, _ = run(comm, steps, n=n, dt_initial="0.01 s", dt_max="0.5 s",
                     max_theta_change=0.01)
    host = problem.hosts[0].card.host
    influx = (current / (F * host.c_max)).m_as("um/s")
    theta = problem.hosts[0].theta
    z = theta.function_space.tabulate_dof_coordinates()[:, 2]
    exact = slab_constant_flux(z, duration, 0.5, host.D0.m_as("um^2/s"), influx,
                               host.theta_initial)
    error = comm.allreduce(np.max(np.abs(theta.x.array - exact)), op=MPI.MAX)
    spread = comm.allreduce(exact.max(), op=MPI.MAX) - comm.allreduce(exact.min(), op=MPI.MIN)
    return error, spread


def test_slab_galvanostatic_matches_crank_series_and_converges(comm) -> None:
    """A uniform BV current through the electrolyte gives Crank's constant-flux slab."""
    coarse, spread = slab_error(comm, 4)
    fine, _ = slab_error(comm, 8)
    assert fine < 0.05 * spread, f"max error {fine:.3g} vs spread {spread:.3g}"
    rate = np.log2(coarse / fine)
    assert rate > 1.4, f"nodal error rate {rate:.2f} (errors {coarse:.3g}, {fine:.3g})"


def test_anode_potential_follows_ocv_plus_overpotential(comm) -> None:
    """At the end of a rest the anode potential is the OCV of the (uniform) host."""
    steps = [{"type": "galvanostatic", "current_density": "1 mA/cm^2", "duration": "10 s"},
             {"type": "rest", "duration": "2000 s"}]
    problem, _ = run(comm, steps, dt_max="200 s")
    host = problem.hosts[0]
    mean_theta = problem.integral("theta_volume:ideal_host") / problem.integral("volume:ideal_host")
    ocv = float(host.card.host.ocv(np.float64(mean_theta)))
    assert problem.anode_potential() == pytest.approx(ocv, abs=1e-4)
