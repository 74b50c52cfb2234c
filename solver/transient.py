"""What the time loop and a physics problem agree on (MODEL §8): the drive a protocol
imposes, the outcome of one step, and the interface every problem offers the stepper.

It sits below both `solver.stepper` and the problems (`solver.problem`, `solver.coupling`)
so that neither reaches up the flow for the other's types (ARCHITECTURE.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol


@dataclass(frozen=True)
class Drive:
    """What the protocol imposes: an applied current density (A/m²), a voltage (V) or rest."""

    mode: Literal["current", "voltage"]
    value: float


@dataclass
class StepResult:
    """newton_iterations: all of the step's Newton iterations; `solves` Newton solves made
    them (the staggered coupling repeats the transport solve), and Δt control judges a
    step by the iterations per solve."""

    converged: bool
    newton_iterations: int
    solves: int = 1


class TransientProblem(Protocol):
    """What the stepper needs of a physics problem."""

    def apply_drive(self, drive: Drive) -> None: ...

    def solve(self, dt: float) -> StepResult:
        """One backward-Euler step of size dt from the last accepted state."""

    def accept(self, time: float) -> None:
        """Make the current solution the new old state."""

    def reject(self) -> None:
        """Restore the last accepted state."""

    def anode_potential(self) -> float: ...

    def current_density(self) -> float:
        """Mean current density (A/m²) delivered in the last solve."""

    def max_theta_change(self) -> float:
        """Largest |θ − θ_old| over all hosts after the last solve."""


