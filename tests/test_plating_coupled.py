"""Plating wired into the transport (MODEL §5, §7; docs/plating.md): Li conservation with
plated Li (V1), plating that starts only below the nucleation overpotential, and the
current distribution output."""

from __future__ import annotations

import csv
from pathlib import Path

from mpi4py import MPI

import numpy as np
import pytest

from solver.config import case_materials, load_case
from solver.problem import TransportProblem
from solver.simulation import build_case_mesh, run_case
from solver.stepper import TimeStepper, protocol_segments
from solver.units import F

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "cases" / "validation" / "small_scaffold.yaml"
TWO_C = "7.4 mA/cm^2"


def small_case(steps: list[str], *extra: str):
    """The small scaffold with plating on and the given protocol steps (YAML flow maps)."""
    overrides = ["plating.enabled=true", "solver.max_theta_change=0.2", "output.fields_every=0",
                 "output.checkpoint_every=0", f"protocol.steps=[{', '.join(steps)}]", *extra]
    return load_case(SMALL, overrides)


class Charge:
    """Counts the charge passed (C) over accepted steps, as the run's recorder does."""

    def __init__(self, problem: TransportProblem) -> None:
        self.problem = problem
        self.area_m2 = problem.integral("top_area") * 1e-12
        self.coulomb = 0.0
        self.max_plated = 0.0

    def __call__(self, record) -> None:
        self.coulomb += self.problem.current_density() * self.area_m2 * record.dt
        self.max_plated = max(self.max_plated, self.problem.li_plated_mol())


def run_steps(comm: MPI.Comm, case) -> tuple[TransportProblem, Charge, float]:
    problem = TransportProblem(build_case_mesh(case, comm), case, case_materials(case))
    li0 = sum(problem.li_in_hosts_mol().values()) + problem.li_plated_mol()
    charge = Charge(problem)
    TimeStepper(problem, case.solver, charge).run(protocol_segments(case.protocol))
    return problem, charge, li0


def stored_mol(problem: TransportProblem) -> float:
    return sum(problem.li_in_hosts_mol().values()) + problem.li_plated_mol()


def test_v1_plated_li_is_conserved_at_2c(comm) -> None:
    """At 2C the hosts at the SE fill within seconds and Li plates into the pores; every
    coulomb passed is in a host or in ψ (V1)."""
    case = small_case([f"{{type: galvanostatic, current_density: {TWO_C}, duration: 12 s}}"])
    problem, charge, li0 = run_steps(comm, case)
    passed_mol = charge.coulomb / F.m_as("C/mol")
    plated = problem.li_plated_mol()
    assert plated > 0.05 * passed_mol  # plating carries a real share of the charge
    assert abs(stored_mol(problem) - li0 - passed_mol) < 1e-6 * passed_mol
    assert problem.anode_potential() < 0.0  # Li metal forms only below 0 V


def test_no_plating_above_zero_volts(comm) -> None:
    """At 1 mA/cm² for 4 s the anode stays above 0 V: the nucleation barrier keeps ψ at
    zero up to the smoothing of ⟨·⟩₊ (5·10⁻⁴ i0 at most), so the plated share is tiny."""
    case = small_case(["{type: galvanostatic, current_density: 1 mA/cm^2, duration: 4 s}"])
    problem, charge, _ = run_steps(comm, case)
    assert problem.anode_potential() > 0.0
    assert problem.li_plated_mol() < 1e-4 * charge.coulomb / F.m_as("C/mol")


@pytest.mark.skipif(MPI.COMM_WORLD.size > 1, reason="end-to-end files, serial")
def test_run_writes_the_current_distribution_and_plating_metrics(tmp_path) -> None:
    case = small_case([f"{{type: galvanostatic, current_density: {TWO_C}, duration: 10 s}}"])
    metrics = run_case(case, tmp_path, MPI.COMM_WORLD)
    with (tmp_path / "interface_current.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    area = np.array([float(r["area_um2"]) for r in rows])
    charge = np.array([float(r["charge_density_C_per_m2"]) for r in rows])
    # the interface elements cover the SE's bottom: at least the box's cross-section (more
    # where particles reach into the SE layer)
    assert area.sum() >= case.geometry.scaffold.size_x * case.geometry.scaffold.size_y
    # and the charge through them is the charge passed at the top (current continuity)
    passed = metrics["capacity_alloy_mAh_per_cm2"] + metrics["capacity_plating_mAh_per_cm2"]
    top_um2 = case.geometry.scaffold.size_x * case.geometry.scaffold.size_y
    through = float(charge @ area) * 1e-12 / 3.6 / (top_um2 * 1e-8)  # mAh/cm² of the top
    assert through == pytest.approx(passed, rel=1e-6)
    for key in ("hotspot_factor", "current_cov", "interfacial_plating_fraction",
                "plated_depth_centroid_um"):
        assert metrics[key] is not None
    assert metrics["hotspot_factor"] >= 1.0
    assert (tmp_path / "plated_depth.png").is_file()
    assert (tmp_path / "current_histogram.png").is_file()
    assert (tmp_path / "plated_li.csv").is_file()


class StripRecord(Charge):
    """Charge passed, and the plated Li at the end of every protocol step."""

    def __init__(self, problem: TransportProblem) -> None:
        super().__init__(problem)
        self.at_step_ends: list[float] = []

    def __call__(self, record) -> None:
        super().__call__(record)
        if record.segment_end:
            self.at_step_ends.append(self.problem.li_plated_mol())


def test_two_plate_strip_cycles_conserve_li_and_empty_the_pores(comm) -> None:
    """Two cycles of 11 s at 2C and a strip at −2C up to 0.3 V: plated Li dissolves first
    (stripping gated by the metal coverage), then the hosts give Li back. Li is conserved
    over both cycles (V1) and the pores are nearly empty after each strip: measured 0.4 %
    and 0.7 % of the plated Li is left when V reaches 0.3 V (metal in pores that touch
    hosts but not the separator leaves only as fast as the hosts take it)."""
    case = small_case([f"{{type: galvanostatic, current_density: {TWO_C}, duration: 11 s}}",
                       "{type: galvanostatic, current_density: -7.4 mA/cm^2, duration: 30 s,"
                       " cutoff_voltage: 0.3 V}"], "protocol.cycles=2")
    problem = TransportProblem(build_case_mesh(case, comm), case, case_materials(case))
    li0 = stored_mol(problem)
    record = StripRecord(problem)
    summary = TimeStepper(problem, case.solver, record).run(protocol_segments(case.protocol))
    plated_after_charge, plated_after_strip = record.at_step_ends[0::2], record.at_step_ends[1::2]
    assert len(plated_after_strip) == 2 and len(summary.stopped_by_cutoff) == 2
    for plated, stripped in zip(plated_after_charge, plated_after_strip, strict=True):
        assert plated > 1e-15  # mol: a real amount of metal at the end of each charge
        assert stripped < 0.02 * plated  # ... nearly gone after the strip
    passed_mol = record.coulomb / F.m_as("C/mol")
    assert abs(stored_mol(problem) - li0 - passed_mol) < 1e-6 * record.max_plated
