"""Time loop: the protocol as segments, backward-Euler steps, adaptive Δt, cut-backs (MODEL §8).

The stepper knows nothing of the physics: it drives any object with the
`TransientProblem` interface, so the same loop serves the single particle and the
scaffold, and later the coupled mechanics.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from solver.config import (
    GalvanostaticStep,
    PotentiostaticStep,
    ProtocolConfig,
    RestStep,
    SolverConfig,
)
from solver.transient import Drive, StepResult, TransientProblem

log = logging.getLogger("constrict.stepper")

# A step that lands this close (V) past a voltage cut-off ends its segment.
CUTOFF_TOLERANCE_V = 2e-3


class SimulationError(RuntimeError):
    """The run cannot continue (e.g. Δt fell below dt_min)."""


@dataclass(frozen=True)
class Segment:
    drive: Drive
    duration: float
    cutoff_voltage: float | None
    label: str
    cutoff_current: float | None = None  # A/m²: a potentiostatic hold ends below it


def protocol_segments(protocol: ProtocolConfig) -> list[Segment]:
    """Unroll the protocol's steps over its cycles; a rest is a zero current."""
    segments = []
    for cycle in range(1, protocol.cycles + 1):
        for index, step in enumerate(protocol.steps, start=1):
            label = f"cycle {cycle} step {index} ({step.type})"
            if isinstance(step, GalvanostaticStep):
                drive = Drive("current", step.current_density)
                segments.append(Segment(drive, step.duration, step.cutoff_voltage, label))
            elif isinstance(step, PotentiostaticStep):
                segments.append(Segment(Drive("voltage", step.voltage), step.duration, None, label,
                                        step.cutoff_current))
            elif isinstance(step, RestStep):
                segments.append(Segment(Drive("current", 0.0), step.duration, None, label))
    return segments


@dataclass(frozen=True)
class Position:
    """Where a run stands between two steps; a checkpoint stores it to resume from."""

    segment_index: int = 0
    segment_start: float = 0.0  # time at which that segment began
    time: float = 0.0
    dt: float | None = None  # the next step size; None: the segment's first step


@dataclass
class StepRecord:
    time: float
    dt: float
    newton_iterations: int
    segment: Segment
    segment_end: bool
    next_position: Position  # where the run goes on from after this step


@dataclass
class RunSummary:
    n_steps: int = 0
    n_newton_total: int = 0
    n_cutbacks: int = 0
    dt_history: list[float] = field(default_factory=list)
    stopped_by_cutoff: list[str] = field(default_factory=list)


class TimeStepper:
    """Backward-Euler time loop with Δt adapted to Newton effort and the θ change."""

    def __init__(self, problem: TransientProblem, settings: SolverConfig,
                 on_step: Callable[[StepRecord], None],
                 progress: Callable[[float], None] | None = None) -> None:
        self.problem = problem
        self.settings = settings
        self.on_step = on_step
        self.progress = progress
        self.time = 0.0
        self.summary = RunSummary()

    def run(self, segments: list[Segment], start: Position | None = None) -> RunSummary:
        """Run the segments, from the beginning or from a checkpoint's position."""
        start = start or Position()
        self.time = start.time
        for index in range(start.segment_index, len(segments)):
            segment = segments[index]
            resumed = index == start.segment_index
            log.info("%s: %s %.4g for up to %.4g s%s", segment.label, segment.drive.mode,
                     segment.drive.value, segment.duration,
                     f" (resumed at t = {self.time:.6g} s)" if resumed and start.time else "")
            segment_start = start.segment_start if resumed else self.time
            dt = start.dt if resumed and start.dt is not None else self.settings.dt_initial
            self._run_segment(index, segment, segment_start, dt)
        return self.summary

    def _run_segment(self, index: int, segment: Segment, segment_start: float,
                     dt: float) -> None:
        self.problem.apply_drive(segment.drive)
        end = segment_start + segment.duration
        previous_voltage = self.problem.anode_potential()
        while end - self.time > 1e-9 * max(1.0, end):
            step = min(dt, end - self.time)
            result = self.problem.solve(step)
            if not result.converged:
                dt = self._cut_back(step, "Newton did not converge")
                continue
            change = self.problem.max_theta_change()
            if change > 2.0 * self.settings.max_theta_change and step > self.settings.dt_min:
                dt = self._cut_back(step, f"θ changed by {change:.3g} in one step")
                continue
            voltage = self.problem.anode_potential()
            cutoff_step = self._cutoff_step(segment, previous_voltage, voltage, step)
            if cutoff_step is not None:
                self.problem.reject()
                dt = cutoff_step
                continue
            crossed = self._crossed_cutoff(segment, voltage) or self._current_below_cutoff(segment)
            self.time += step
            self.problem.accept(self.time)
            previous_voltage = voltage
            dt = self._next_dt(step, result.newton_iterations / result.solves, change)
            last = crossed or end - self.time <= 1e-9 * max(1.0, end)
            following = (Position(index + 1, self.time, self.time, None) if last
                         else Position(index, segment_start, self.time, dt))
            self._record(step, result, segment, last, following)
            if crossed:
                log.info("%s: cut-off reached at t = %.6g s (V = %.4g V, i = %.4g A/m²)",
                         segment.label, self.time, voltage, self.problem.current_density())
                self.summary.stopped_by_cutoff.append(segment.label)
                break

    def _record(self, step: float, result: StepResult, segment: Segment, last: bool,
                following: Position) -> None:
        self.summary.n_steps += 1
        self.summary.n_newton_total += result.newton_iterations
        self.summary.dt_history.append(step)
        self.on_step(StepRecord(self.time, step, result.newton_iterations, segment, last,
                                following))
        if self.progress is not None:
            self.progress(self.time)

    def _cut_back(self, step: float, reason: str) -> float:
        self.problem.reject()
        self.summary.n_cutbacks += 1
        new_dt = step / 4.0
        if new_dt < self.settings.dt_min:
            raise SimulationError(f"{reason} at t = {self.time:.6g} s even with dt = {step:.3g} s"
                                  f" (dt_min = {self.settings.dt_min:.3g} s)")
        log.warning("%s at t = %.6g s with dt = %.3g s: retrying with dt = %.3g s", reason,
                    self.time, step, new_dt)
        return new_dt

    def _next_dt(self, step: float, newton_iterations: float, change: float) -> float:
        settings = self.settings
        factor = settings.dt_growth if newton_iterations <= settings.newton_easy_iterations else 1.0
        if newton_iterations >= settings.newton_hard_iterations:
            factor = 0.7
        if change > 0.0:
            factor = min(factor, self.settings.max_theta_change / change)
        return min(self.settings.dt_max, max(self.settings.dt_min, step * max(factor, 0.25)))

    @staticmethod
    def _crossed_cutoff(segment: Segment, voltage: float) -> bool:
        cutoff = segment.cutoff_voltage
        if cutoff is None:
            return False
        charging = segment.drive.value >= 0.0
        return voltage <= cutoff if charging else voltage >= cutoff

    def _current_below_cutoff(self, segment: Segment) -> bool:
        cutoff = segment.cutoff_current
        return cutoff is not None and abs(self.problem.current_density()) < cutoff

    def _cutoff_step(self, segment: Segment, before: float, after: float,
                     step: float) -> float | None:
        """A shorter step that lands on the cut-off, when this one overshot it by too much."""
        if not self._crossed_cutoff(segment, after):
            return None
        if abs(after - segment.cutoff_voltage) <= CUTOFF_TOLERANCE_V:
            return None
        if self._crossed_cutoff(segment, before) or before == after:
            return None
        fraction = (before - segment.cutoff_voltage) / (before - after)
        shorter = step * min(max(fraction, 0.05), 0.95)
        if shorter < self.settings.dt_min:
            return None
        return shorter
