"""Command line: ``constrict run|check|mesh|info|screen|sweep|report`` (also
``python -m solver``).

Arguments that start with ``-`` and are not ours are PETSc options
(``-ksp_monitor``, ``-snes_view``); they are handed to PETSc unchanged.
Every command works the same under ``mpirun -n N``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

from mpi4py import MPI

import yaml

from solver.config import CaseConfig, CaseError, load_case
from solver.mpi_exit import finish
from solver.stepper import SimulationError

log = logging.getLogger("constrict")

EXIT_CASE_ERROR = 2
EXIT_RUN_FAILED = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="constrict",
        description="Reaction-diffusion-mechanics of Li-metal solid-state anodes.",
        epilog="Unrecognised options starting with '-' are passed to PETSc.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    def case_command(name: str, help_text: str) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help_text)
        command.add_argument("case", type=Path, help="case YAML file")
        command.add_argument("--set", dest="assignments", action="append", default=[],
                             metavar="KEY=VALUE",
                             help="override a case value, e.g. --set temperature='55 degC'")
        return command

    run = case_command("run", "validate the case, build the mesh, run it, write results")
    run.add_argument("-o", "--output", type=Path, help="output folder (default output/<name>)")
    run.add_argument("--overwrite", action="store_true",
                     help="replace an existing output folder")
    run.add_argument("--restart", action="store_true",
                     help="go on from the last checkpoint in the output folder")
    case_command("check", "validate the case only; builds and writes nothing")
    mesh = case_command("mesh", "build (or reuse) the mesh of the case and write it")
    mesh.add_argument("-o", "--output", type=Path, help="folder for the XDMF mesh file")
    mesh.add_argument("--overwrite", action="store_true")
    commands.add_parser("info", help="versions of DOLFINx, PETSc, MPI and PETSc packages")
    screen = commands.add_parser(
        "screen", help="constriction susceptibility of the material cards (MODEL §10): "
        "screening.csv/.png, capacity_vs_confinement.csv/.png")
    screen.add_argument("--materials", type=Path, metavar="FILE",
                        help="also screen the materials of a table (.csv/.yaml/.json) or an "
                             "entry set (docs/screening.md)")
    screen.add_argument("--cards", type=Path, action="append", default=[], metavar="FILE",
                        help="extra material-card file merged into the library (repeatable)")
    screen.add_argument("--k-max", default="10 GPa",
                        help="largest confinement of the capacity curves (default '10 GPa')")
    screen.add_argument("-o", "--output", type=Path,
                        help="output folder (default output/screening)")
    screen.add_argument("--overwrite", action="store_true",
                        help="replace an existing output folder")
    sweep = commands.add_parser(
        "sweep", help="run a parameter sweep locally, or write it as a Slurm array job "
        "(docs/sweeps.md)")
    sweep.add_argument("sweep_file", type=Path, metavar="SWEEP", help="sweep YAML file")
    sweep.add_argument("-o", "--output", type=Path,
                       help="sweep folder (default output/<sweep name>); re-running into it "
                            "skips the completed runs")
    sweep.add_argument("-j", "--jobs", type=int, help="concurrent runs (default: the sweep "
                       "file's jobs, else 1)")
    sweep.add_argument("--ranks-per-run", type=int, metavar="K",
                       help="MPI ranks of each run (default: the sweep file's, else 1)")
    sweep.add_argument("--check", action="store_true",
                       help="validate every run of the sweep only; writes nothing")
    sweep.add_argument("--slurm", action="store_true",
                       help="write a Slurm array job (sweep.sbatch, gather.sbatch, submit.sh) "
                            "instead of running")
    sweep.add_argument("--partition", help="Slurm partition (overrides the sweep file)")
    sweep.add_argument("--time", help="Slurm time limit per run, e.g. 04:00:00")
    sweep.add_argument("--nodes", type=int, help="Slurm nodes per run")
    report = commands.add_parser(
        "report", help="gather a sweep folder: results.csv and metric-vs-parameter plots")
    report.add_argument("folder", type=Path, help="sweep folder (holds manifest.json)")
    report.add_argument("-o", "--output", type=Path, help="default FOLDER/report")
    return parser


def configure_logging(verbose: bool) -> None:
    """INFO on rank 0, warnings only on the other ranks."""
    rank = MPI.COMM_WORLD.rank
    level = (logging.DEBUG if verbose else logging.INFO) if rank == 0 else logging.WARNING
    handler = logging.StreamHandler(sys.stdout if rank == 0 else sys.stderr)
    prefix = "" if MPI.COMM_WORLD.size == 1 else f"[{rank}] "
    handler.setFormatter(logging.Formatter(f"{prefix}%(asctime)s %(name)s: %(message)s",
                                           "%H:%M:%S"))
    root = logging.getLogger("constrict")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def petsc_options_from_argv(extra: list[str]) -> dict[str, str | None]:
    """PETSc options from the command line.

    ``['-ksp_monitor', '-ksp_rtol', '1e-8']`` -> ``{'ksp_monitor': None, 'ksp_rtol': '1e-8'}``
    """
    options: dict[str, str | None] = {}
    key: str | None = None
    for token in extra:
        if token.startswith("-") and not _is_number(token):
            key = token.lstrip("-")
            options[key] = None
        elif key is not None and options[key] is None:
            options[key] = token
        else:
            raise CaseError(f"unexpected argument '{token}'")
    return options


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def prepare_output_folder(folder: Path, overwrite: bool, comm: MPI.Comm) -> None:
    """Create the output folder; refuse to replace an existing one without --overwrite."""
    error = None
    if comm.rank == 0:
        if folder.exists() and not overwrite:
            error = f"{folder} exists; choose another folder with -o or pass --overwrite"
        else:
            if folder.exists():
                log.warning("replacing existing output folder %s (--overwrite)", folder)
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
    error = comm.bcast(error, root=0)
    if error:
        raise CaseError(error)


def check_restart_folder(folder: Path, case: CaseConfig) -> None:
    """A restart needs the folder of the same case, with a checkpoint in it."""
    if not (folder / "checkpoints" / "latest.json").is_file():
        raise CaseError(f"--restart: {folder} holds no checkpoint (checkpoints/latest.json)")
    if not (folder / "case.yaml").is_file():
        raise CaseError(f"--restart: {folder} has checkpoints but no case.yaml to check the "
                        "case against (a run folder holds the case it ran)")
    saved = yaml.safe_load((folder / "case.yaml").read_text())
    if saved != case.model_dump(mode="json"):
        raise CaseError(f"--restart: the case differs from the one run in {folder} "
                        "(compare with its case.yaml)")


def _cmd_check(case: CaseConfig, args: argparse.Namespace) -> None:
    log.info("case '%s' is valid (%s geometry, %d protocol steps x %d cycles)", case.name,
             case.geometry.kind, len(case.protocol.steps), case.protocol.cycles)


def _cmd_mesh(case: CaseConfig, args: argparse.Namespace) -> None:
    from solver.simulation import write_case_mesh

    folder = args.output or Path("output") / f"{case.name}_mesh"
    prepare_output_folder(folder, args.overwrite, MPI.COMM_WORLD)
    write_case_mesh(case, folder, MPI.COMM_WORLD)


def _cmd_run(case: CaseConfig, args: argparse.Namespace) -> None:
    from solver.simulation import run_case

    folder = args.output or Path("output") / case.name
    if args.restart:
        check_restart_folder(folder, case)
    else:
        prepare_output_folder(folder, args.overwrite, MPI.COMM_WORLD)
    run_case(case, folder, MPI.COMM_WORLD, petsc_options=args.petsc_options,
             restart=args.restart)


def _cmd_screen(args: argparse.Namespace) -> None:
    """`constrict screen`: every rank computes (it is cheap), rank 0 writes."""
    from solver.screening import log_table, run_screening, write_screening

    try:
        result = run_screening(args.materials, args.cards, args.k_max)
    except ValueError as error:
        raise CaseError(str(error)) from None
    folder = args.output or Path("output") / "screening"
    prepare_output_folder(folder, args.overwrite, MPI.COMM_WORLD)
    if MPI.COMM_WORLD.rank == 0:
        log_table(result)
        write_screening(result, folder)
        log.info("wrote %s", folder)


def _cmd_sweep(args: argparse.Namespace) -> int:
    """`constrict sweep`: the driver itself runs serially; each run gets its own mpirun."""
    from solver import sweep as sweeps

    if MPI.COMM_WORLD.size > 1:
        raise CaseError("run 'constrict sweep' without mpirun; set the ranks of each run "
                        "with --ranks-per-run")
    _refuse_extra_arguments(args)
    plan = sweeps.load_sweep(args.sweep_file)
    if args.check:
        log.info("sweep '%s' is valid: %d runs (%s) over %s", plan.name, len(plan.runs),
                 plan.mode, ", ".join(plan.axes) or "no varying key")
        return 0
    folder = args.output or Path("output") / plan.name
    if args.slurm:
        settings = sweeps.slurm_settings(plan, args.partition, args.time, args.nodes)
        sweeps.write_slurm(plan, folder, settings, args.ranks_per_run)
        return 0
    return sweeps.run_local(plan, folder, args.jobs, args.ranks_per_run)


def _cmd_report(args: argparse.Namespace) -> int:
    from postprocess.report import write_report

    _refuse_extra_arguments(args)
    if MPI.COMM_WORLD.rank == 0:
        write_report(args.folder, args.output)
    return 0


def _refuse_extra_arguments(args: argparse.Namespace) -> None:
    if args.petsc_options:
        raise CaseError(f"constrict {args.command}: unrecognised arguments "
                        f"{' '.join(args.petsc_options)} (PETSc options of the runs go in the "
                        "sweep file: set: {solver.petsc_options.NAME: VALUE})")


def _cmd_info() -> None:
    from solver.info import environment_report

    report = environment_report()
    if MPI.COMM_WORLD.rank == 0:
        print(report)


def main(argv: list[str] | None = None) -> int:
    args, extra = _parser().parse_known_args(argv)
    configure_logging(args.verbose)
    try:
        args.petsc_options = petsc_options_from_argv(extra)
        if args.command == "info":
            _cmd_info()
            return 0
        if args.command == "screen":
            _cmd_screen(args)
            return 0
        if args.command in ("sweep", "report"):
            return {"sweep": _cmd_sweep, "report": _cmd_report}[args.command](args)
        case = load_case(args.case, args.assignments)
        {"check": _cmd_check, "mesh": _cmd_mesh, "run": _cmd_run}[args.command](case, args)
    except CaseError as error:
        if MPI.COMM_WORLD.rank == 0:
            print(f"error: {error}", file=sys.stderr)
        return EXIT_CASE_ERROR
    except SimulationError as error:
        if MPI.COMM_WORLD.rank == 0:
            print(f"error: the run stopped early: {error} (partial results were written)",
                  file=sys.stderr)
        return EXIT_RUN_FAILED
    return 0


def entry() -> None:
    """The console script: `main`, then an exit that is safe under mpirun (solver.mpi_exit)."""
    finish(main())
