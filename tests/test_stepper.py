"""The time loop on a problem with a known solution: cut-backs, cut-offs, protocol unrolling."""

from __future__ import annotations

import logging
import math

import pytest

from solver.config import ProtocolConfig, SolverConfig
from solver.stepper import (
    CUTOFF_TOLERANCE_V,
    Drive,
    Segment,
    SimulationError,
    StepResult,
    TimeStepper,
    protocol_segments,
)


class LinearCell:
    """θ' = i/Q; the 'anode potential' falls linearly, V = 0.5 − θ.

    Newton 'fails' for steps longer than `max_converging_dt`, as a stiff problem would.
    """

    def __init__(self, capacity: float, max_converging_dt: float) -> None:
        self.capacity = capacity
        self.max_converging_dt = max_converging_dt
        self.theta = self.theta_old = 0.0
        self.current = 0.0

    def apply_drive(self, drive: Drive) -> None:
        assert drive.mode == "current"
        self.current = drive.value

    def solve(self, dt: float) -> StepResult:
        if dt > self.max_converging_dt:
            return StepResult(False, 25)
        self.theta = self.theta_old + dt * self.current / self.capacity
        return StepResult(True, 2)

    def accept(self, time: float) -> None:
        self.theta_old = self.theta

    def reject(self) -> None:
        self.theta = self.theta_old

    def anode_potential(self) -> float:
        return 0.5 - self.theta

    def current_density(self) -> float:
        return self.current

    def max_theta_change(self) -> float:
        return abs(self.theta - self.theta_old)


def settings(**kwargs) -> SolverConfig:
    values = {"dt_initial": "10 s", "dt_max": "100 s", "dt_min": "1e-3 s",
              "max_theta_change": 0.5}
    values.update(kwargs)
    return SolverConfig.model_validate(values)


def test_cutback_on_failed_newton_is_logged_and_reaches_the_end(caplog) -> None:
    cell = LinearCell(capacity=1000.0, max_converging_dt=3.0)
    records = []
    stepper = TimeStepper(cell, settings(), records.append)
    with caplog.at_level(logging.WARNING, logger="constrict.stepper"):
        summary = stepper.run([Segment(Drive("current", 1.0), 30.0, None, "charge")])
    assert "Newton did not converge" in caplog.text
    assert summary.n_cutbacks >= 1
    assert stepper.time == pytest.approx(30.0)
    assert cell.theta == pytest.approx(0.03)
    assert max(summary.dt_history) <= 3.0
    assert records[-1].segment_end


def test_cutoff_is_landed_within_tolerance() -> None:
    cell = LinearCell(capacity=100.0, max_converging_dt=1e9)
    stepper = TimeStepper(cell, settings(), lambda record: None)
    summary = stepper.run([Segment(Drive("current", 1.0), 1000.0, -0.2, "charge")])
    assert summary.stopped_by_cutoff == ["charge"]
    assert cell.anode_potential() <= -0.2
    assert cell.anode_potential() >= -0.2 - CUTOFF_TOLERANCE_V
    assert stepper.time == pytest.approx(70.0, abs=CUTOFF_TOLERANCE_V * 100.0)


def test_stepper_gives_up_below_dt_min() -> None:
    cell = LinearCell(capacity=1.0, max_converging_dt=1e-5)
    stepper = TimeStepper(cell, settings(), lambda record: None)
    with pytest.raises(SimulationError, match="dt_min"):
        stepper.run([Segment(Drive("current", 1.0), 1.0, None, "charge")])


def test_protocol_unrolls_cycles_and_rests() -> None:
    protocol = ProtocolConfig.model_validate({
        "cycles": 2,
        "steps": [
            {"type": "galvanostatic", "current_density": "1 mA/cm^2", "duration": "1 h"},
            {"type": "rest", "duration": "10 min"},
            {"type": "potentiostatic", "voltage": "0.1 V", "duration": "5 min"},
        ]})
    segments = protocol_segments(protocol)
    assert [s.drive.mode for s in segments] == ["current", "current", "voltage"] * 2
    assert segments[0].drive.value == pytest.approx(10.0)
    assert segments[1].drive.value == 0.0
    assert segments[4].duration == pytest.approx(600.0)
    assert segments[5].label.startswith("cycle 2 step 3")


class RelaxingHold:
    """A potentiostatic hold whose current decays as exp(−t/τ), τ = 10 s."""

    def __init__(self) -> None:
        self.time = self.trial_time = 0.0

    def apply_drive(self, drive: Drive) -> None:
        assert drive.mode == "voltage"

    def solve(self, dt: float) -> StepResult:
        self.trial_time = self.time + dt
        return StepResult(True, 2)

    def accept(self, time: float) -> None:
        self.time = time

    def reject(self) -> None:
        self.trial_time = self.time

    def anode_potential(self) -> float:
        return 0.05

    def current_density(self) -> float:
        return 10.0 * math.exp(-self.trial_time / 10.0)

    def max_theta_change(self) -> float:
        return 0.0


def test_potentiostatic_hold_ends_when_current_falls_below_cutoff() -> None:
    hold = RelaxingHold()
    stepper = TimeStepper(hold, settings(dt_initial="0.5 s", dt_max="2 s"), lambda record: None)
    segment = Segment(Drive("voltage", 0.05), 1000.0, None, "CV hold", cutoff_current=1.0)
    summary = stepper.run([segment])
    assert summary.stopped_by_cutoff == ["CV hold"]
    # |i| = 1 A/m² at t = 10 ln 10 ≈ 23.0 s; the hold stops within one step after that.
    assert 10.0 * math.log(10.0) <= stepper.time <= 10.0 * math.log(10.0) + 2.0
