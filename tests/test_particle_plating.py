"""Plating on a single particle into its void (solver/void.py; MODEL §5, §7): the anode
potential as an unknown fixed by the applied current, Li conservation with the plated Li
(V1), no metal above 0 V, the void that opens at the stack pressure, stripping and the
checkpoint of the Real unknowns.

A small, fast variant of the P3 case: a free Si particle (no mechanics) that starts at
θ = 0.7 (0.12 V), a 0.1 µm mesh, 10× the paper's current and a small void (0.2 of the
particle's volume), so that it reaches 0 V after 38 s, plates (and, being free, goes on
lithiating), fills the void by 80 s and then, under 50 MPa of stack pressure, pushes the
layer open: at 150 s the void holds 6.8 times its volume of metal.
"""

from __future__ import annotations

from pathlib import Path

from mpi4py import MPI

import numpy as np
import pytest

from solver.checkpoint import Checkpointer
from solver.config import CaseError, case_materials, load_case
from solver.physics.transport import plating_potential
from solver.problem import TransportProblem
from solver.simulation import build_case_mesh
from solver.stepper import TimeStepper, protocol_segments
from solver.units import F

ROOT = Path(__file__).resolve().parents[1]
PARTICLE = ROOT / "cases" / "single_particle.yaml"
CURRENT = "2 mA/cm^2"


def particle_case(steps: list[str], *extra: str):
    overrides = ["plating.enabled=true", "geometry.single_particle.void_ratio=0.2",
                 "geometry.single_particle.electrolyte=LPSCl1.5",
                 "geometry.mesh.size_surface=0.1 um", "materials.overrides.Si.theta_initial=0.7",
                 "solver.dt_initial=0.05 s", "solver.dt_max=5 s",
                 f"protocol.steps=[{', '.join(steps)}]", *extra]
    return load_case(PARTICLE, overrides)


class History:
    """Per accepted step: time, V, plated and stored Li (mol), and the charge passed."""

    def __init__(self, problem: TransportProblem) -> None:
        self.problem = problem
        self.area_m2 = problem.integral("top_area") * 1e-12
        self.li0 = self.stored()
        self.coulomb = 0.0
        self.rows: list[tuple[float, float, float, float]] = []

    def stored(self) -> float:
        return sum(self.problem.li_in_hosts_mol().values()) + self.problem.li_plated_mol()

    def __call__(self, record) -> None:
        self.coulomb += self.problem.current_density() * self.area_m2 * record.dt
        passed = self.coulomb / F.m_as("C/mol")
        self.rows.append((record.time, self.problem.anode_potential(),
                          self.problem.li_plated_mol(), self.stored() - self.li0 - passed))


def run(case) -> tuple[TransportProblem, History, object]:
    problem = TransportProblem(build_case_mesh(case, MPI.COMM_WORLD), case, case_materials(case))
    history = History(problem)
    summary = TimeStepper(problem, case.solver, history).run(protocol_segments(case.protocol))
    return problem, history, summary


STACK_PRESSURE_MPA = 50.0


@pytest.fixture(scope="module")
def plated_past_full():
    case = particle_case([f"{{type: galvanostatic, current_density: {CURRENT}, duration: 150 s,"
                          " cutoff_voltage: -0.2 V}"], f"stack_pressure={STACK_PRESSURE_MPA} MPa")
    return run(case)


def test_particle_plates_below_zero_volts_and_conserves_li(plated_past_full) -> None:
    """Every mole passed is in the host or in the void at every step (V1), no metal forms
    while V > 0, and the void takes a real share of the charge once it does (15 % in all:
    the free particle goes on lithiating below 0 V)."""
    problem, history, _ = plated_past_full
    rows = np.array(history.rows)
    passed = history.coulomb / F.m_as("C/mol")
    assert np.max(np.abs(rows[:, 3])) < 1e-9 * passed
    above = rows[:, 1] > 0.0
    assert above.any() and (~above).any()
    assert np.max(rows[above, 2]) < 1e-6 * passed
    assert problem.li_plated_mol() > 0.5 * passed


def test_full_void_opens_at_the_stack_pressure(plated_past_full) -> None:
    """Once the void is full its metal is pressed to the stack pressure and no further: it
    lifts the layer and keeps plating, so the void ends with several times its volume of
    metal, p_Li = p_stack, and V lies just below U_Li(p_stack) = −Ω_Li p_stack / F = −6.7 mV
    (§5; overpotential of tens of mV at 2 mA/cm² against i0 = 2.6 mA/cm²). The cut-off at
    −0.2 V is never reached."""
    problem, history, summary = plated_past_full
    void = problem.void
    assert void.value() > 2.0
    assert void.opening() == pytest.approx(void.value() / void.psi_open() - 1.0)
    assert void.pressure_value() == pytest.approx(STACK_PRESSURE_MPA, abs=0.01)
    u_li = float(plating_potential(STACK_PRESSURE_MPA, void.molar_volume))
    assert u_li == pytest.approx(-STACK_PRESSURE_MPA * 1e6 * void.molar_volume / F.m_as("C/mol"))
    assert u_li - 0.05 < problem.anode_potential() < u_li
    assert not summary.stopped_by_cutoff
    assert history.rows[-1][0] == pytest.approx(150.0)


def test_stripping_empties_the_void_before_the_host() -> None:
    """Plate for 70 s, then strip at the same current up to 0.1 V: the metal dissolves first
    (V stays near 0.02 V while it lasts), then the host gives Li back and V rises; Li is
    conserved over both steps. 1 % of the metal is left at 0.1 V (stripping is gated by
    the coverage m(ψ), which falls with ψ)."""
    case = particle_case([f"{{type: galvanostatic, current_density: {CURRENT}, duration: 70 s}}",
                          "{type: galvanostatic, current_density: -2 mA/cm^2, duration: 60 s,"
                          " cutoff_voltage: 0.1 V}"])
    problem, history, summary = run(case)
    rows = np.array(history.rows)
    plated_peak = rows[:, 2].max()
    assert plated_peak > 0.0
    assert problem.li_plated_mol() < 0.02 * plated_peak
    stripping = (rows[:, 0] > 70.0) & (rows[:, 2] > 0.5 * plated_peak)
    assert stripping.any() and np.all(rows[stripping, 1] < 0.05)
    assert summary.stopped_by_cutoff
    passed = np.abs(history.coulomb) / F.m_as("C/mol")
    assert np.max(np.abs(rows[:, 3])) < 1e-9 * max(passed, plated_peak)


def test_plating_particle_needs_its_void_and_electrolyte() -> None:
    """V8: plating on a single particle without void_ratio (or electrolyte) is refused,
    naming the field."""
    with pytest.raises(CaseError, match="geometry.single_particle.void_ratio"):
        load_case(PARTICLE, ["plating.enabled=true",
                             "geometry.single_particle.electrolyte=LPSCl1.5"])
    with pytest.raises(CaseError, match="geometry.single_particle.electrolyte"):
        load_case(PARTICLE, ["plating.enabled=true", "geometry.single_particle.void_ratio=1"])
    with pytest.raises(CaseError, match="geometry.single_particle.electrolyte"):
        load_case(PARTICLE, ["plating.enabled=true", "geometry.single_particle.void_ratio=1",
                             "geometry.single_particle.electrolyte=Si"])


def test_real_unknowns_round_trip_through_a_checkpoint(tmp_path) -> None:
    """V7 for the Real unknowns: V and ψ of the void are written with the fields and
    restored exactly (keyed by their one dof)."""
    case = particle_case(["{type: rest, duration: 1 s}"])
    problem = TransportProblem(build_case_mesh(case, MPI.COMM_WORLD), case, case_materials(case))
    fields = {u.name: u for u in problem.unknowns}
    problem.potential.x.array[:] = -0.123
    problem.void.psi.x.array[:] = 0.456
    writer = Checkpointer(tmp_path, fields, MPI.COMM_WORLD)
    writer.write({"position": {"time": 1.0}}, 1)
    saved = {name: f.x.array.copy() for name, f in fields.items()}
    for function in fields.values():
        function.x.array[:] = 0.0
    Checkpointer(tmp_path, fields, MPI.COMM_WORLD).restore_latest()
    for name, function in fields.items():
        assert np.array_equal(function.x.array, saved[name])
    assert problem.anode_potential() == -0.123
