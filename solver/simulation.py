"""One run, end to end: case → mesh → problem → stepper → output (ARCHITECTURE.md).

This module is the only place that sees the whole flow; each stage hands a plain
object to the next.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from mpi4py import MPI

import yaml
from tqdm import tqdm

from meshes import TaggedMesh, build_mesh
from postprocess.metrics import (
    capacity_mAh_per_g,
    host_masses_g,
    shell_depths_nm,
    summarize_shell_depths,
)
from postprocess.paraview_state import write_paraview_script
from postprocess.plating_metrics import capacity_above_0V, write_plating_outputs
from postprocess.plots import plot_run_summary
from postprocess.render import render_run
from solver.checkpoint import Checkpointer
from solver.config import CaseConfig, case_materials
from solver.coupling import ChemoMechanicalProblem
from solver.geometry import mesh_spec
from solver.interface_currents import InterfaceCurrents, write_plated_li_csv
from solver.output import FieldWriter, TimeSeries, write_json
from solver.problem import TransportProblem
from solver.stepper import (
    Drive,
    Position,
    RunSummary,
    SimulationError,
    StepRecord,
    TimeStepper,
    protocol_segments,
)
from solver.units import Q_, F
from solver.xdmf import regroup as regroup_xdmf

log = logging.getLogger("constrict.run")

SHELL_THRESHOLD = 0.1  # θ above which a host is "lithiated" (MODEL §9)


def cache_dir() -> Path:
    """Where meshes are cached: $CONSTRICT_CACHE_DIR or .cache/constrict in the working dir."""
    return Path(os.environ.get("CONSTRICT_CACHE_DIR", ".cache/constrict")) / "meshes"


def build_case_mesh(case: CaseConfig, comm: MPI.Comm) -> TaggedMesh:
    materials = case_materials(case)
    return build_mesh(mesh_spec(case, materials), comm, cache_dir(), progress=comm.rank == 0)


def write_case_mesh(case: CaseConfig, folder: Path, comm: MPI.Comm) -> None:
    """`constrict mesh`: the mesh with its region and interface tags, as XDMF."""
    import dolfinx

    tagged = build_case_mesh(case, comm)
    with dolfinx.io.XDMFFile(comm, folder / "mesh.xdmf", "w") as xdmf:
        xdmf.write_mesh(tagged.mesh)
        tagged.mesh.topology.create_connectivity(2, 3)
        xdmf.write_meshtags(tagged.cell_tags, tagged.mesh.geometry)
        xdmf.write_meshtags(tagged.facet_tags, tagged.mesh.geometry)
    if comm.rank == 0:
        regroup_xdmf(folder / "mesh.xdmf")  # the XInclude namespace ParaView reads
    write_json(folder / "tags.json", {"regions": tagged.regions, "interfaces": tagged.interfaces},
               comm)
    log.info("mesh written to %s (%d cells)", folder / "mesh.xdmf",
             tagged.mesh.topology.index_map(3).size_global)


class RunRecorder:
    """Turns accepted steps into CSV rows, field snapshots and the Li balance (V1).

    `resume` is the recorder part of a checkpoint's state: a restarted run continues the
    charge count and the Li balance from there and writes its fields to new files
    (``*_restart<k>.xdmf``) so the series already written stay intact.
    """

    def __init__(self, problem: TransportProblem, folder: Path, case: CaseConfig,
                 resume: dict | None = None,
                 extra_fields: dict[str, list] | None = None,
                 step_columns: Callable[[], dict[str, float]] | None = None,
                 interface: InterfaceCurrents | None = None) -> None:
        self.problem = problem
        self.interface = interface
        self.step_columns = step_columns or dict
        self.case = case
        self.comm = problem.comm
        self.area_um2 = problem.integral("top_area")
        self.masses_g = host_masses_g(problem)
        self.li_initial = resume["li_initial"] if resume else problem.li_in_hosts_mol()
        self.plated_initial = (resume.get("plated_initial", 0.0) if resume
                               else problem.li_plated_mol())
        self.charge_C = resume["charge_C"] if resume else 0.0
        if resume and problem.pores is not None:
            problem.pores.clipped_volume = resume.get("clipped_volume", 0.0)
        self.steps_since_fields = resume["steps_since_fields"] if resume else 0
        groups = {f"host_{host.name}": [host.theta, host.sigma_h, host.eps_lat]
                  for host in problem.hosts}
        if problem.phi is not None:
            groups["electrolyte"] = [problem.phi]
        if problem.pores is not None:
            groups["pores"] = [problem.pores.psi, problem.pores.p_li]
        if interface is not None:
            groups["interface"] = [interface.field]
        groups |= extra_fields or {}
        suffix = f"_restart{resume['restarts']}" if resume else ""
        self.fields = FieldWriter(folder, groups, case.output.format, suffix)
        columns = ["time_s", "dt_s", "newton_iterations", "current_density_A_per_m2",
                   "anode_potential_V", "charge_mAh_per_cm2"]
        columns += [f"li_{name}_mol" for name in self.li_initial]
        columns += [f"theta_{bound}_{name}" for name in self.li_initial for bound in ("min", "max")]
        columns += ["li_plated_mol", "capacity_alloy_mAh_per_g", "capacity_plating_mAh_per_g",
                    "capacity_alloy_mAh_per_cm2", "capacity_plating_mAh_per_cm2",
                    "li_balance_rel_error", *self._void_columns(), *self.step_columns()]
        self.series = TimeSeries(folder / "timeseries.csv", columns, self.comm,
                                 resume_from=resume["time"] if resume else None)
        self.last_row: dict[str, float] = {}
        if resume:
            self._update_row(resume["time"], 0.0, 0)
        else:
            self.fields.write(0.0)
            self.series.append(self._update_row(0.0, 0.0, 0))

    def li_gained_mol(self) -> float:
        return sum(now - self.li_initial[name]
                   for name, now in self.problem.li_in_hosts_mol().items())

    def li_plated_mol(self) -> float:
        return self.problem.li_plated_mol() - self.plated_initial

    def li_balance_error(self) -> float:
        """(charge passed − Li stored) / charge passed; Li stored = Li gained by the hosts
        plus Li plated in the pores (V1)."""
        stored_C = (self.li_gained_mol() + self.li_plated_mol()) * F.m_as("C/mol")
        return abs(self.charge_C - stored_C) / abs(self.charge_C) if self.charge_C else 0.0

    def on_step(self, record: StepRecord) -> None:
        if self.interface is not None:
            self.interface.update(record.dt)
        current = self.problem.current_density()
        self.charge_C += current * self.area_um2 * 1e-12 * record.dt  # A/m² · µm² · s
        self.series.append(self._update_row(record.time, record.dt, record.newton_iterations))
        self.steps_since_fields += 1
        every = self.case.output.fields_every
        if record.segment_end or (every and self.steps_since_fields >= every):
            self.fields.write(record.time)
            self.steps_since_fields = 0

    def state(self, time: float) -> dict:
        """What a restart needs to continue the records seamlessly."""
        pores = self.problem.pores
        return {"time": time, "li_initial": self.li_initial, "charge_C": self.charge_C,
                "plated_initial": self.plated_initial,
                "clipped_volume": pores.clipped_volume if pores is not None else 0.0,
                "steps_since_fields": self.steps_since_fields}

    def _update_row(self, time_s: float, dt: float, newton: int) -> dict[str, float]:
        li = self.problem.li_in_hosts_mol()
        plated = self.li_plated_mol()
        row = {"time_s": time_s, "dt_s": dt, "newton_iterations": newton,
               "current_density_A_per_m2": self.problem.current_density(),
               "anode_potential_V": self.problem.anode_potential(),
               "charge_mAh_per_cm2": Q_(self.charge_C / (self.area_um2 * 1e-8), "C/cm^2")
               .m_as("mA*h/cm^2"),
               "li_plated_mol": plated,
               "capacity_alloy_mAh_per_g": capacity_mAh_per_g(self.li_gained_mol(), self.masses_g),
               "capacity_plating_mAh_per_g": capacity_mAh_per_g(plated, self.masses_g),
               "capacity_alloy_mAh_per_cm2": self._per_area_mAh(self.li_gained_mol()),
               "capacity_plating_mAh_per_cm2": self._per_area_mAh(plated),
               "li_balance_rel_error": self.li_balance_error()}
        row |= {f"li_{name}_mol": value for name, value in li.items()}
        row |= self._void_columns()
        row |= self.step_columns()
        for name, (low, high) in self.problem.theta_range().items():
            row |= {f"theta_min_{name}": low, f"theta_max_{name}": high}
        self.last_row = row
        return row

    def _void_columns(self) -> dict[str, float]:
        """ψ and p_Li (MPa) of a plating particle's void (`solver.void`); none otherwise."""
        void = self.problem.void
        if void is None:
            return {}
        return {"void_psi": void.value(), "void_p_li_MPa": void.pressure_value()}

    def _per_area_mAh(self, li_mol: float) -> float:
        """mAh/cm² of the top face for an amount of Li (mol)."""
        return li_mol * F.m_as("C/mol") / 3.6 / (self.area_um2 * 1e-8)

    def close(self) -> None:
        self.fields.close()
        self.series.close()


class RunCheckpoints:
    """Checkpoints every `every` steps and at the end of each protocol segment."""

    def __init__(self, problem: TransportProblem, folder: Path, every: int,
                 coupled: ChemoMechanicalProblem | None = None,
                 interface: InterfaceCurrents | None = None) -> None:
        fields = {unknown.name: unknown for unknown in problem.unknowns}
        internal, keys = coupled.checkpoint_fields() if coupled else ({}, {})
        charges, charge_keys = interface.checkpoint_fields() if interface else ({}, {})
        self.writer = Checkpointer(folder, fields | internal | charges, problem.comm,
                                   keys | charge_keys)
        self.every = every
        self.number = 0
        self.restarts = 0

    def restore(self) -> dict:
        state = self.writer.restore_latest()
        self.number = state["number"]
        self.restarts = state["restarts"] + 1
        return state

    def after_step(self, record: StepRecord, stepper: TimeStepper,
                   recorder: RunRecorder) -> None:
        if not self.every or (stepper.summary.n_steps % self.every and not record.segment_end):
            return
        self.number += 1
        state = {"number": self.number, "restarts": self.restarts,
                 "position": dataclasses.asdict(record.next_position),
                 "drive": dataclasses.asdict(record.segment.drive),
                 "summary": dataclasses.asdict(stepper.summary),
                 "recorder": recorder.state(record.time)}
        self.writer.write(state, self.number)


def run_case(case: CaseConfig, folder: Path, comm: MPI.Comm,
             petsc_options: dict[str, str | None] | None = None, restart: bool = False) -> dict:
    """Run a validated case into `folder`; with `restart`, go on from its last checkpoint.

    Returns the metrics (also written to metrics.json).
    """
    start = time.perf_counter()
    _log_to_file(folder, comm)
    if comm.rank == 0 and not restart:
        (folder / "case.yaml").write_text(yaml.safe_dump(case.model_dump(mode="json"),
                                                         sort_keys=False))
    materials = case_materials(case)
    tagged = build_mesh(mesh_spec(case, materials), comm, cache_dir(), progress=comm.rank == 0)
    transport = TransportProblem(tagged, case, materials, petsc_options)
    coupled = ChemoMechanicalProblem(transport, case, materials) if case.mechanics.enabled else None
    problem = coupled or transport  # what the stepper drives
    ndofs = sum(u.function_space.dofmap.index_map.size_global for u in transport.unknowns)
    mechanics_dofs = (coupled.mechanics.V.dofmap.index_map.size_global * 3 if coupled else 0)
    log.info("case '%s': %d cells, %d transport dofs, %d mechanics dofs, %d ranks", case.name,
             tagged.mesh.topology.index_map(3).size_global, ndofs, mechanics_dofs, comm.size)

    interface = InterfaceCurrents(transport) if transport.phi is not None else None
    checkpoints = RunCheckpoints(transport, folder, case.output.checkpoint_every, coupled,
                                 interface)
    resume = checkpoints.restore() if restart else None
    if resume:
        # The drive of the step the checkpoint closed: what the potential and current of
        # the restored state refer to (the resumed segment applies its own drive).
        transport.apply_drive(Drive(**resume["drive"]))
        transport.accept(resume["recorder"]["time"])
        if coupled:
            coupled.resolve_mechanics()
        resume["recorder"]["restarts"] = checkpoints.restarts
    recorder = RunRecorder(transport, folder, case, resume["recorder"] if resume else None,
                           coupled.output_fields() if coupled else None,
                           coupled.step_columns if coupled else None, interface)
    segments = protocol_segments(case.protocol)
    total_time = sum(segment.duration for segment in segments)
    bar = tqdm(total=total_time, unit="s", disable=comm.rank != 0, desc=case.name, mininterval=1.0,
               bar_format="{l_bar}{bar}| {n:.4g}/{total:.4g} s [{elapsed}<{remaining}]")

    def on_step(record: StepRecord) -> None:
        recorder.on_step(record)
        checkpoints.after_step(record, stepper, recorder)

    stepper = TimeStepper(problem, case.solver, on_step, progress=lambda t: bar.update(t - bar.n))
    position = None
    if resume:
        stepper.summary = RunSummary(**resume["summary"])
        position = Position(**resume["position"])
    failure = None
    stepping_start = time.perf_counter()
    try:
        stepper.run(segments, position)
    except SimulationError as error:
        failure = error
        log.error("run stopped: %s", error)
    finally:
        bar.close()
        recorder.close()
    summary = stepper.summary

    depths = shell_depths_nm(transport, tagged, SHELL_THRESHOLD)
    distribution = _write_distribution(transport, interface, folder, case)
    mechanics_metrics = (coupled.extremes() | {
        "mechanics_newton_total": coupled.mechanics_newton_total,
        "coupling_iterations_total": coupled.coupling_iterations_total,
        "mechanics_dofs": mechanics_dofs}) if coupled else {
        "sigma_h_GPa_min": None, "eps_lat_min": None, "D_ratio_min": None}
    metrics = {
        "status": "completed" if failure is None else f"failed: {failure}",
        **summarize_shell_depths(depths, case),
        "capacity_alloy_mAh_per_g": recorder.last_row["capacity_alloy_mAh_per_g"],
        "capacity_plating_mAh_per_g": recorder.last_row["capacity_plating_mAh_per_g"],
        "capacity_alloy_mAh_per_cm2": recorder.last_row["capacity_alloy_mAh_per_cm2"],
        "capacity_plating_mAh_per_cm2": recorder.last_row["capacity_plating_mAh_per_cm2"],
        "plating_share": _plating_share(recorder.last_row),
        **distribution,
        "li_balance_rel_error": recorder.li_balance_error(),
        "anode_potential_V_final": recorder.last_row["anode_potential_V"],
        "time_final_s": stepper.time,
        "n_steps": summary.n_steps,
        "n_newton_total": summary.n_newton_total,
        "n_cutbacks": summary.n_cutbacks,
        "n_restarts": checkpoints.restarts,
        "stopped_by_cutoff": summary.stopped_by_cutoff,
        **mechanics_metrics,
        "solver_timings": _solver_timings(transport, coupled,
                                          time.perf_counter() - stepping_start, comm),
        "ndofs": ndofs + mechanics_dofs,
        "n_cells": tagged.mesh.topology.index_map(3).size_global,
        "n_ranks": comm.size,
        "wall_time_s": time.perf_counter() - start,
    }
    metrics["wall_time_s"] = comm.allreduce(metrics["wall_time_s"], op=MPI.MAX)
    write_json(folder / "metrics.json", metrics, comm)
    if comm.rank == 0:
        plot_run_summary(folder / "timeseries.csv", folder / "summary.png", case.name)
        render_run(folder)
        if case.output.format == "xdmf":
            _write_paraview_script(folder)
    log.info("done in %.1f s: %d steps, %d Newton iterations, V = %.4f V, Li balance %.2e",
             metrics["wall_time_s"], summary.n_steps, summary.n_newton_total,
             metrics["anode_potential_V_final"], metrics["li_balance_rel_error"])
    if failure is not None:
        raise failure
    return metrics


def _write_paraview_script(folder: Path) -> None:
    """open_in_paraview.py, unless no field file holds a readable snapshot (a restart from
    the final checkpoint of a run killed while it closed its files writes none)."""
    try:
        write_paraview_script(folder)
    except FileNotFoundError as error:
        log.warning("no ParaView script written: %s", error)


def _solver_timings(transport: TransportProblem, coupled: ChemoMechanicalProblem | None,
                    stepping_s: float, comm: MPI.Comm) -> dict[str, float]:
    """Where the time steps spent their wall time (s, the slowest rank's) and their
    Newton and Krylov iterations (benchmarks, docs/performance.md): the transport's
    residuals, Jacobians and the rest of its solves (the linear solve, mostly), the
    mechanics solves, and what is left (Python, output, checkpoints)."""
    timings = transport.solver_timings().as_dict()
    timings = {f"transport_{key}": value for key, value in timings.items()}
    timings["mechanics_s"] = coupled.mechanics_s if coupled else 0.0
    timings["mechanics_krylov_iterations"] = coupled.mechanics_krylov_total if coupled else 0
    timings["stepping_s"] = stepping_s
    timings["other_s"] = stepping_s - timings["transport_solve_s"] - timings["mechanics_s"]
    return {key: comm.allreduce(value, op=MPI.MAX) if isinstance(value, float) else value
            for key, value in timings.items()}


def _plating_share(row: dict[str, float]) -> float | None:
    """Plated Li / (alloyed + plated Li) of the capacity so far (P3); None before any."""
    alloy, plating = row["capacity_alloy_mAh_per_g"], row["capacity_plating_mAh_per_g"]
    return plating / (alloy + plating) if alloy + plating > 0 else None


def _write_distribution(transport: TransportProblem, interface: InterfaceCurrents | None,
                        folder: Path, case: CaseConfig) -> dict:
    """interface_current.csv, plated_li.csv, their PNGs and metrics (MODEL §9)."""
    if interface is None:
        return _particle_plating_metrics(transport, folder)
    interface.write_csv(folder / "interface_current.csv")
    metrics: dict = {}
    if transport.pores is not None:
        write_plated_li_csv(transport, folder / "plated_li.csv")
        metrics["plating_clipped_volume_fraction"] = (
            transport.pores.clipped_volume / max(transport.pores.plating.total_li_volume(),
                                                 1e-300))
    if transport.comm.rank == 0:
        metrics = write_plating_outputs(folder, case.geometry.scaffold.height) | metrics
    return transport.comm.bcast(metrics, root=0)


def _particle_plating_metrics(transport: TransportProblem, folder: Path) -> dict:
    """The capacity split of a plating particle (VALIDATION P3): alloying capacity above
    0 V, the plating share of the capacity, and the void's final filling, pressure and
    opening (its growth past V_void against the stack, `ParticleVoid.opening`)."""
    if transport.void is None:
        return {}
    above = capacity_above_0V(folder / "timeseries.csv") if transport.comm.rank == 0 else None
    return {"capacity_above_0V_mAh_per_g": transport.comm.bcast(above, root=0),
            "void_psi_final": transport.void.value(),
            "void_p_li_MPa_final": transport.void.pressure_value(),
            "void_opening_final": transport.void.opening()}


def _log_to_file(folder: Path, comm: MPI.Comm) -> None:
    if comm.rank == 0:
        handler = logging.FileHandler(folder / "run.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
        logging.getLogger("constrict").addHandler(handler)
