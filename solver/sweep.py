"""Parameter sweeps: a base case, axes of dotted case keys, one run folder per combination.

A sweep file (docs/sweeps.md) names a base case and the values to vary, as a grid (every
combination of the axes) or a list (explicit runs). Keys are the dotted paths of
``constrict run --set`` and values are written as in a case file ("0.5 um", "25 MPa").
Every generated case is validated before anything is written or run.

The sweep folder holds ``manifest.json`` (the runs in order, their parameters, status,
attempts, wall time, metrics path), a copy of the sweep file and one folder per run::

    OUT/<run id>/case.in.yaml      the generated case
    OUT/<run id>/result/           the output folder of `constrict run`
    OUT/<run id>/stdout.log, stderr.log

Locally (`run_local`) the runs go in subprocesses, `jobs` at a time; the manifest is
rewritten atomically after every change of state, so a killed sweep loses nothing that
finished and a re-run picks up where it stopped. On a cluster, `write_slurm` writes an
array job with one task per run plus a dependent `constrict report` job.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import datetime
import fcntl
import hashlib
import itertools
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from solver.config import (
    CaseConfig,
    CaseError,
    format_validation_error,
    read_yaml_mapping,
    set_dotted,
    validate_case,
)

log = logging.getLogger("constrict.sweep")

MANIFEST = "manifest.json"
CASE_FILE = "case.in.yaml"
RESULT = "result"
LOCK = ".sweep.lock"
EXIT_RUNS_FAILED = 3  # as `constrict run` when a run stops early
EXIT_INTERRUPTED = 130
MAX_ATTEMPTS = 2  # a failed run is retried once
STDERR_TAIL_LINES = 15
_POLL_S = 0.2
_MAX_LISTED_ERRORS = 5


class SweepError(CaseError):
    """A sweep that cannot be run (exit code 2, nothing written)."""


# --- the sweep file ------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class LinkedAxis(_Strict):
    """An axis given as a mapping: ``{values: [...], unit: um, with: {key: [...]}}``.

    `unit` is appended to each of `values`; `with` names keys that change together with
    this one (one value per value of the axis), e.g. the box size that must grow with
    the particle radius.
    """

    values: Annotated[list[Any], Field(min_length=1)]
    unit: str | None = None
    linked: dict[str, list[Any]] = Field(default={}, alias="with")

    @model_validator(mode="after")
    def _same_lengths(self) -> LinkedAxis:
        for key, values in self.linked.items():
            if len(values) != len(self.values):
                raise ValueError(f"with.{key}: has {len(values)} values, expected "
                                 f"{len(self.values)} (one per value of the axis)")
        return self

    def quantities(self) -> list[Any]:
        return [f"{v} {self.unit}" if self.unit else v for v in self.values]


_SLURM_TIME = re.compile(r"^(\d+-)?\d+(:\d{2}){0,2}$")


class SlurmSettings(_Strict):
    partition: str | None = None
    account: str | None = None
    nodes: Annotated[int, Field(ge=1)] = 1
    time: str = "01:00:00"
    max_concurrent: Annotated[int, Field(ge=1)] | None = None
    sbatch: list[str] = []  # more '#SBATCH' options, e.g. '--mem-per-cpu=4G'

    @field_validator("time")
    @classmethod
    def _time_format(cls, value: str) -> str:
        if not _SLURM_TIME.match(value):
            raise ValueError(f"expected Slurm's [D-]HH:MM:SS or minutes, got '{value}'")
        return value


class ReferencePoint(_Strict):
    """One published value: x as on the axis ("5 GPa") or a range [low, high]; y in the
    unit of the compared metric, one value or a range [low, high]."""

    x: str | float | Annotated[list[str | float], Field(min_length=2, max_length=2)]
    y: float | Annotated[list[float], Field(min_length=2, max_length=2)]
    note: str = ""

    @field_validator("y")
    @classmethod
    def _ordered(cls, value: float | list[float]) -> float | list[float]:
        if isinstance(value, list) and value[0] > value[1]:
            raise ValueError(f"a range [low, high] needs low <= high, got {value}")
        return value


class ReferenceTable(_Strict):
    """Published values to draw next to the simulation, with where they come from."""

    source: Annotated[str, Field(min_length=1)]
    label: str = "reference"
    points: Annotated[list[ReferencePoint], Field(min_length=1)]


class AnalyticCurve(BaseModel):
    """A curve of `postprocess.compare.CURVES` by name; the other keys are its parameters."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str

    @model_validator(mode="after")
    def _known(self) -> AnalyticCurve:
        from postprocess.compare import CURVES

        if self.name not in CURVES:
            raise ValueError(f"unknown analytic curve '{self.name}' (known: "
                             f"{', '.join(sorted(CURVES))})")
        given, expected = set(self.model_extra or {}), set(CURVES[self.name].parameters)
        if given != expected:
            raise ValueError(f"'{self.name}' takes the parameters {sorted(expected)}, got "
                             f"{sorted(given)}")
        return self


class CompareSettings(_Strict):
    """One metric against one axis, with an analytic curve and/or published values
    (`constrict report` writes report/compare.csv and compare.png)."""

    x: str
    metric: Annotated[str, Field(min_length=1)]
    label: str | None = None
    analytic: AnalyticCurve | None = None
    reference: ReferenceTable | None = None


class SweepFile(_Strict):
    """The schema of a sweep file; `axes` values are checked by `_axes`."""

    name: str | None = None
    description: str = ""
    base: Path
    mode: Literal["grid", "list"] = "grid"
    fixed: dict[str, Any] = Field(default={}, alias="set")
    axes: dict[str, Any] = {}
    runs: list[Annotated[dict[str, Any], Field(min_length=1)]] = []
    jobs: Annotated[int, Field(ge=1)] = 1
    ranks_per_run: Annotated[int, Field(ge=1)] = 1
    slurm: SlurmSettings = SlurmSettings()
    compare: CompareSettings | None = None

    @model_validator(mode="after")
    def _mode_block(self) -> SweepFile:
        if self.mode == "grid" and (not self.axes or self.runs):
            raise ValueError("mode 'grid' needs 'axes' (and no 'runs')")
        if self.mode == "list" and (not self.runs or self.axes):
            raise ValueError("mode 'list' needs 'runs' (and no 'axes')")
        return self


@dataclass(frozen=True)
class Run:
    id: str
    parameters: dict[str, Any]  # dotted key -> value as written in the sweep file
    data: dict[str, Any]  # the raw case, written to case.in.yaml
    case: CaseConfig


@dataclass(frozen=True)
class Sweep:
    name: str
    path: Path
    base: Path
    mode: str
    axes: list[str]  # the keys that vary between runs (one plot per axis)
    runs: list[Run]
    settings: SweepFile = field(repr=False)


def load_sweep(path: Path) -> Sweep:
    """Read a sweep file, generate every run and validate every generated case.

    Raises `SweepError` listing the problems (the runs and fields at fault); nothing is
    written either way.
    """
    path = Path(path)
    settings = _read_settings(path)
    base = settings.base if settings.base.is_absolute() else path.parent / settings.base
    base_data = read_yaml_mapping(base, f"{path}: base:", SweepError)
    name = settings.name or path.stem
    parameter_sets = _parameter_sets(settings, path)
    axes = list(settings.axes) if settings.mode == "grid" else _varying_keys(parameter_sets)
    ids = _run_ids(parameter_sets, axes)
    runs, problems = [], []
    for run_id, parameters in zip(ids, parameter_sets, strict=True):
        try:
            data = _case_data(base_data, settings.fixed, parameters, name, run_id)
            runs.append(Run(run_id, parameters, data, validate_case(data, f"run '{run_id}'")))
        except CaseError as error:
            problems.append(str(error))
    if problems:
        listed = problems[:_MAX_LISTED_ERRORS]
        more = len(problems) - len(listed)
        text = "\n".join("  " + p.replace("\n", "\n  ") for p in listed)
        raise SweepError(f"{path}: {len(problems)} of {len(parameter_sets)} runs are not valid "
                         f"(nothing was written):\n{text}"
                         + (f"\n  ... and {more} more runs" if more else ""))
    if settings.compare is not None:
        problems = _compare_problems(settings.compare, axes, runs)
        if problems:
            raise SweepError(f"{path} is not valid:\n" + "\n".join(f"  {p}" for p in problems))
    return Sweep(name, path, base, settings.mode, axes, runs, settings)


def _compare_problems(compare: CompareSettings, axes: list[str], runs: list[Run]) -> list[str]:
    """Cross-checks of the `compare` block against the runs: x is an axis whose values are
    quantities of one dimension, the reference x have that dimension, and the analytic
    curve can be evaluated with the first run's materials."""
    from postprocess.compare import as_quantity, evaluate
    from solver.config import case_materials

    if compare.x not in axes:
        return [f"compare.x: '{compare.x}' is not an axis of the sweep (axes: "
                f"{', '.join(axes) or 'none'})"]
    try:
        values = [as_quantity(run.parameters[compare.x]) for run in runs]
    except (KeyError, ValueError) as error:
        return [f"compare.x: every run needs a number or a quantity for '{compare.x}' ({error})"]
    unit = values[0].units
    if any(not v.is_compatible_with(unit) for v in values):
        return [f"compare.x: the values of '{compare.x}' are not all of one dimension"]
    problems = []
    for index, point in enumerate(compare.reference.points if compare.reference else []):
        where = f"compare.reference.points[{index}].x"
        try:
            xs = [as_quantity(x) for x in (point.x if isinstance(point.x, list) else [point.x])]
        except ValueError as error:
            problems.append(f"{where}: {error}")
            continue
        if any(not x.is_compatible_with(unit) for x in xs):
            problems.append(f"{where}: '{point.x}' is not in units of the axis ({unit:~})")
        elif xs[0].m_as(unit) > xs[-1].m_as(unit):
            problems.append(f"{where}: a range [low, high] needs low <= high, got {point.x}")
    if compare.analytic is not None:
        parameters = dict(compare.analytic.model_extra or {})
        try:
            evaluate(compare.analytic.name, parameters, values[0],
                     case_materials(runs[0].case))
        except Exception as error:
            problems.append(f"compare.analytic: {compare.analytic.name} "
                            f"{parameters or ''} cannot be evaluated at "
                            f"{compare.x} = {runs[0].parameters[compare.x]}: {error}")
    return problems


def _read_settings(path: Path) -> SweepFile:
    data = read_yaml_mapping(path, "sweep file:", SweepError)
    try:
        return SweepFile.model_validate(data)
    except ValidationError as error:
        raise SweepError(f"{path} is not valid:\n{format_validation_error(error)}") from None


def _parameter_sets(settings: SweepFile, path: Path) -> list[dict[str, Any]]:
    """One {dotted key: value} per run, in sweep order (grid: the last axis varies fastest)."""
    if settings.mode == "list":
        return [dict(run) for run in settings.runs]
    columns: list[tuple[str, list[Any], dict[str, list[Any]]]] = []
    for key, spec in settings.axes.items():
        if isinstance(spec, list) and spec:
            columns.append((key, spec, {}))
            continue
        try:
            axis = LinkedAxis.model_validate(spec)
        except ValidationError as error:
            detail = (format_validation_error(error) if isinstance(spec, dict)
                      else "  expected a non-empty list of values or a mapping "
                           "{values: [...], unit: ..., with: {...}}")
            raise SweepError(f"{path} is not valid: axes.{key}:\n{detail}") from None
        columns.append((key, axis.quantities(), axis.linked))
    sets = []
    for choice in itertools.product(*(range(len(values)) for _, values, _ in columns)):
        parameters: dict[str, Any] = {}
        for (key, values, linked), index in zip(columns, choice, strict=True):
            parameters[key] = values[index]
            parameters |= {other: values_[index] for other, values_ in linked.items()}
        sets.append(parameters)
    return sets


def _varying_keys(parameter_sets: list[dict[str, Any]]) -> list[str]:
    """The axes of a list sweep: the keys whose value differs between runs."""
    keys = list(dict.fromkeys(k for p in parameter_sets for k in p))
    return [k for k in keys
            if len({json.dumps(p.get(k), sort_keys=True) for p in parameter_sets}) > 1]


def _case_data(base: dict[str, Any], fixed: dict[str, Any], parameters: dict[str, Any],
               sweep_name: str, run_id: str) -> dict[str, Any]:
    """The base case with the run's name, the sweep's `set` block and the run's values.

    Values go through `set_dotted` as JSON (a subset of YAML), so every key means exactly
    what it means for ``--set``.
    """
    data = copy.deepcopy(base)
    data["name"] = f"{sweep_name} {run_id}"
    for key, value in (fixed | parameters).items():
        try:
            set_dotted(data, f"{key}={json.dumps(value)}")
        except CaseError as error:
            raise CaseError(f"run '{run_id}': {str(error).removeprefix('--set ')}") from None
    materials = data.get("materials")
    if isinstance(materials, dict) and isinstance(materials.get("files"), list):
        # relative to the working directory, as for `constrict run`; absolute for Slurm
        materials["files"] = [str(Path(f).resolve()) for f in materials["files"]]
    return data


def _run_ids(parameter_sets: list[dict[str, Any]], axes: list[str]) -> list[str]:
    """Folder names from the values of the axes: 'radius-0.5um_stack_pressure-25MPa'.

    Each key is shortened to its last part unless two axes share it; the names do not
    depend on the position in the sweep, so adding a value to an axis keeps the folders
    (and finished results) of the other runs.
    """
    short = {k: re.sub(r"\[\d+\]", "", k).rsplit(".", 1)[-1] for k in axes}
    clash = {s for s in short.values() if list(short.values()).count(s) > 1}
    labels = {k: _slug(re.sub(r"[][]", "", k) if short[k] in clash else short[k]) for k in axes}
    ids = []
    for parameters in parameter_sets:
        text = "_".join(f"{labels[k]}-{_slug(str(parameters[k]))}" for k in axes
                        if k in parameters) or "base"
        if len(text) > 80:
            text = text[:71] + "-" + hashlib.sha256(text.encode()).hexdigest()[:8]
        ids.append(text)
    seen: dict[str, int] = {}
    for index, run_id in enumerate(ids):
        if run_id in seen:
            raise SweepError(f"runs {seen[run_id]} and {index} have the same parameters "
                             f"({run_id}); every run must differ")
        seen[run_id] = index
    return ids


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text.replace(" ", "")).strip("_") or "x"


# --- the sweep folder and its manifest ---------------------------------------------------------


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def read_manifest(folder: Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise SweepError(f"{folder} is not a sweep folder (no {MANIFEST})")
    return json.loads(path.read_text())


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest atomically (temp file, fsync, rename): a kill at any moment
    leaves either the old or the new manifest, never a truncated one."""
    manifest["updated"] = _now()
    path = Path(folder) / MANIFEST
    tmp = path.with_name(f".{MANIFEST}.{os.getpid()}.tmp")
    with tmp.open("w") as handle:
        json.dump(manifest, handle, indent=2)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _new_entry(run: Run, case_sha: str) -> dict[str, Any]:
    return {"id": run.id, "parameters": run.parameters, "case": f"{run.id}/{CASE_FILE}",
            "case_sha256": case_sha, "result": f"{run.id}/{RESULT}",
            "metrics": f"{run.id}/{RESULT}/metrics.json", "status": "pending", "attempts": 0,
            "exit_code": None, "stderr_tail": None, "wall_time_s": None, "started": None,
            "finished": None, "pid": None}


def check_folder(sweep: Sweep, out: Path) -> dict[str, Any]:
    """The manifest already in `out` ({} for a new folder); refuses a folder that holds
    something else. Writes nothing."""
    if (out / MANIFEST).is_file():
        existing = read_manifest(out)
        if existing.get("sweep") != sweep.name:
            raise SweepError(f"{out} holds the sweep '{existing.get('sweep')}', not "
                             f"'{sweep.name}'; choose another folder with -o")
        return existing
    if out.exists() and any(path.name != LOCK for path in out.iterdir()):
        raise SweepError(f"{out} exists and is not a sweep folder (no {MANIFEST}); "
                         "choose another folder with -o")
    return {}


def prepare_folder(sweep: Sweep, out: Path) -> dict[str, Any]:
    """Create (or update) the sweep folder: run folders, case files, manifest.

    An existing folder must hold the same sweep. Runs whose case is unchanged keep their
    manifest entry (and so their status); a changed case starts over as pending.
    """
    out = Path(out)
    old = check_folder(sweep, out)
    out.mkdir(parents=True, exist_ok=True)
    previous = {entry["id"]: entry for entry in old.get("runs", [])}
    entries = []
    for run in sweep.runs:
        (out / run.id).mkdir(exist_ok=True)
        text = yaml.safe_dump(run.data, sort_keys=False)
        sha = hashlib.sha256(text.encode()).hexdigest()
        case_file = out / run.id / CASE_FILE
        if not case_file.is_file() or case_file.read_text() != text:
            case_file.write_text(text)
        entry = previous.get(run.id)
        entries.append(entry if entry and entry.get("case_sha256") == sha
                       else _new_entry(run, sha))
    dropped = set(previous) - {run.id for run in sweep.runs}
    if dropped:
        log.warning("%d runs of %s are no longer in the sweep (their folders are kept): %s",
                    len(dropped), out, ", ".join(sorted(dropped)))
    shutil.copyfile(sweep.path, out / "sweep.yaml")
    manifest = {"sweep": sweep.name, "sweep_file": str(sweep.path.resolve()),
                "base": str(sweep.base.resolve()), "mode": sweep.mode, "axes": sweep.axes,
                "compare": (sweep.settings.compare.model_dump(mode="json", exclude_none=True)
                            if sweep.settings.compare else None),
                "created": old.get("created", _now()), "updated": None, "runs": entries}
    write_manifest(out, manifest)
    return manifest


def is_finished(out: Path, entry: dict[str, Any]) -> bool:
    return entry["status"] == "completed" and (Path(out) / entry["metrics"]).is_file()


# --- running locally ---------------------------------------------------------------------------


@dataclass
class _Attempt:
    """One `constrict run` subprocess of a run, with its log files."""

    entry: dict[str, Any]
    number: int
    restart: bool
    process: subprocess.Popen
    stdout: IO[str]
    stderr: IO[str]
    stderr_offset: int

    def close(self) -> None:
        self.stdout.close()
        self.stderr.close()


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the sweep process dies (Linux), so a
    killed sweep leaves no orphan writing into a run folder that a re-run will reuse."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _mpirun() -> str:
    found = (os.environ.get("CONSTRICT_MPIRUN")
             or shutil.which("mpirun", path=str(Path(sys.executable).parent))
             or shutil.which("mpirun"))
    if not found:
        raise SweepError("--ranks-per-run > 1 needs mpirun (none found; set CONSTRICT_MPIRUN)")
    return found


def _has_checkpoint_of(result: Path, case: CaseConfig) -> bool:
    """Whether `constrict run --restart` can go on in `result` (same case, a checkpoint)."""
    if not (result / "checkpoints" / "latest.json").is_file():
        return False
    try:
        return yaml.safe_load((result / "case.yaml").read_text()) == case.model_dump(mode="json")
    except (OSError, yaml.YAMLError):
        return False


def _start(out: Path, run: Run, entry: dict[str, Any], number: int, ranks: int,
           allow_restart: bool) -> _Attempt:
    folder = out / run.id
    restart = allow_restart and _has_checkpoint_of(folder / RESULT, run.case)
    command = [sys.executable, "-m", "solver", "run", str(folder / CASE_FILE),
               "-o", str(folder / RESULT), "--restart" if restart else "--overwrite"]
    if ranks > 1:
        command = [_mpirun(), "-n", str(ranks), *command]
    stdout = (folder / "stdout.log").open("a")
    stderr = (folder / "stderr.log").open("a")
    header = f"\n=== {_now()} attempt {number}: {' '.join(command)}\n"
    for handle in (stdout, stderr):
        handle.write(header)
        handle.flush()
    offset = stderr.tell()
    process = subprocess.Popen(command, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                               start_new_session=True,
                               preexec_fn=_die_with_parent if sys.platform == "linux" else None)
    entry["pid"] = process.pid
    log.info("start %s (attempt %d%s)", run.id, number, ", --restart" if restart else "")
    return _Attempt(entry, number, restart, process, stdout, stderr, offset)


def _stderr_tail(attempt: _Attempt) -> str:
    path = Path(attempt.stderr.name)
    with path.open(errors="replace") as handle:
        handle.seek(attempt.stderr_offset)
        text = handle.read()
    lines = [line for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return "\n".join(lines[-STDERR_TAIL_LINES:])[-2000:]


def _stop(attempt: _Attempt) -> None:
    """SIGTERM the run's process group (mpirun and its ranks), SIGKILL after 10 s."""
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(attempt.process.pid, sig)
        try:
            attempt.process.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


class _Interrupted(Exception):
    pass


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """SIGINT and SIGTERM both end the sweep in an orderly way (see `run_local`)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Interrupted(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _ignore_signals() -> None:
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)


@contextlib.contextmanager
def _locked(sweep: Sweep, out: Path) -> Iterator[None]:
    """One sweep process per folder at a time (the lock goes away with the process)."""
    check_folder(sweep, out)  # before creating anything
    out.mkdir(parents=True, exist_ok=True)
    with (out / LOCK).open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SweepError(f"another sweep is running in {out}") from None
        yield


def run_local(sweep: Sweep, out: Path, jobs: int | None = None,
              ranks_per_run: int | None = None) -> int:
    """Run the unfinished runs of the sweep, `jobs` at a time, each on `ranks_per_run` ranks.

    Returns 0 when every run completed, 3 when some failed (after one retry each), 130
    when interrupted (SIGINT/SIGTERM: the running runs are stopped and marked
    'interrupted'; their checkpoints let the next sweep go on with --restart).
    """
    out = Path(out)
    jobs = jobs or sweep.settings.jobs
    ranks = ranks_per_run or sweep.settings.ranks_per_run
    if jobs < 1 or ranks < 1:
        raise SweepError("--jobs and --ranks-per-run must be >= 1")
    if ranks > 1:
        _mpirun()  # fail now, not with runs going
    if jobs * ranks > (os.cpu_count() or 1):
        log.warning("%d jobs x %d ranks exceed the %d CPUs here", jobs, ranks, os.cpu_count())
    runs = {run.id: run for run in sweep.runs}
    with _locked(sweep, out), _interruptible():
        manifest = prepare_folder(sweep, out)
        pending = []
        for entry in manifest["runs"]:
            if is_finished(out, entry):
                log.info("skip %s: completed", entry["id"])
            else:
                pending.append(entry)
        active: list[_Attempt] = []
        first_start: dict[str, float] = {}
        try:
            while pending or active:
                while pending and len(active) < jobs:
                    entry = pending.pop(0)
                    first_start[entry["id"]] = time.monotonic()
                    entry.update(status="running", attempts=1, started=_now(), finished=None,
                                 exit_code=None, stderr_tail=None, wall_time_s=None)
                    active.append(_start(out, runs[entry["id"]], entry, 1, ranks, True))
                    write_manifest(out, manifest)
                time.sleep(_POLL_S)
                for attempt in [a for a in active if a.process.poll() is not None]:
                    active.remove(attempt)
                    attempt.close()
                    entry, code = attempt.entry, attempt.process.returncode
                    if code != 0 and attempt.number < MAX_ATTEMPTS:
                        log.warning("%s failed (exit code %d); retrying once", entry["id"], code)
                        entry["attempts"] = attempt.number + 1
                        # a refused --restart (exit 2) is retried from scratch
                        active.append(_start(out, runs[entry["id"]], entry, attempt.number + 1,
                                             ranks, not (attempt.restart and code == 2)))
                    else:
                        _finish(entry, attempt, code, time.monotonic() - first_start[entry["id"]])
                    write_manifest(out, manifest)
        except (_Interrupted, KeyboardInterrupt) as why:
            _ignore_signals()  # a second Ctrl-C must not cut the clean-up short
            for attempt in active:
                _stop(attempt)
                attempt.close()
                attempt.entry.update(status="interrupted", finished=_now(), pid=None)
            write_manifest(out, manifest)
            log.error("sweep interrupted (%s); %d runs were stopped. Run the same command "
                      "again to go on.", why or "SIGINT", len(active))
            return EXIT_INTERRUPTED
    return _conclude(out, manifest)


def _finish(entry: dict[str, Any], attempt: _Attempt, code: int, wall_s: float) -> None:
    entry.update(status="completed" if code == 0 else "failed", exit_code=code,
                 finished=_now(), wall_time_s=round(wall_s, 3), pid=None,
                 stderr_tail=None if code == 0 else _stderr_tail(attempt))
    if code == 0:
        log.info("done %s in %.1f s", entry["id"], wall_s)
    else:
        log.error("%s failed (exit code %d, %d attempts):\n%s", entry["id"], code,
                  entry["attempts"], entry["stderr_tail"])


def _conclude(out: Path, manifest: dict[str, Any]) -> int:
    from postprocess.report import write_report

    statuses = [entry["status"] for entry in manifest["runs"]]
    failed = statuses.count("failed")
    log.info("sweep '%s': %d of %d runs completed, %d failed (manifest %s)", manifest["sweep"],
             statuses.count("completed"), len(statuses), failed, out / MANIFEST)
    if statuses.count("completed"):
        try:
            log.info("report: %s", write_report(out).csv)
        except Exception as error:  # the results are safe; the report can be redone
            log.warning("the report failed (%s); run 'constrict report %s'", error, out)
    return EXIT_RUNS_FAILED if failed else 0


# --- Slurm ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlurmJob:
    array: Path  # sweep.sbatch: one task per run
    gather: Path  # gather.sbatch: `constrict report`
    submit: Path  # submit.sh: the array, then the gather job after it


def slurm_settings(sweep: Sweep, partition: str | None = None, time_limit: str | None = None,
                   nodes: int | None = None) -> SlurmSettings:
    """The sweep file's `slurm` block with the command-line flags applied."""
    updates = {k: v for k, v in (("partition", partition), ("time", time_limit),
                                 ("nodes", nodes)) if v is not None}
    try:
        return SlurmSettings.model_validate(sweep.settings.slurm.model_dump() | updates)
    except ValidationError as error:
        raise SweepError(f"slurm settings:\n{format_validation_error(error)}") from None


def write_slurm(sweep: Sweep, out: Path, settings: SlurmSettings,
                ranks_per_run: int | None = None) -> SlurmJob:
    """Write the run folders, the manifest and the Slurm scripts (absolute paths)."""
    ranks = ranks_per_run or sweep.settings.ranks_per_run
    with _locked(sweep, Path(out)):
        manifest = prepare_folder(sweep, out)
    out = Path(out).resolve()
    (out / "slurm").mkdir(exist_ok=True)
    ids = [entry["id"] for entry in manifest["runs"]]
    array = f"0-{len(ids) - 1}" + (f"%{settings.max_concurrent}" if settings.max_concurrent
                                   else "")
    header = _sbatch_header(settings, f"constrict-{sweep.name}", [
        f"--nodes={settings.nodes}", f"--ntasks={ranks}", f"--time={settings.time}",
        f"--array={array}", f"--output={out}/slurm/%x_%A_%a.out", *settings.sbatch])
    job = SlurmJob(out / "sweep.sbatch", out / "gather.sbatch", out / "submit.sh")
    job.array.write_text(header + _ARRAY_BODY.format(
        out=out, python=sys.executable, runs="\n".join(f"  {i}" for i in ids),
        attempts=MAX_ATTEMPTS))
    job.gather.write_text(_sbatch_header(settings, f"constrict-{sweep.name}-report", [
        "--nodes=1", "--ntasks=1", "--time=00:30:00",
        f"--output={out}/slurm/%x_%j.out"]) + _GATHER_BODY.format(out=out,
                                                                  python=sys.executable))
    job.submit.write_text(_SUBMIT.format(array=job.array, gather=job.gather))
    for script in (job.array, job.gather, job.submit):
        script.chmod(0o755)
    log.info("wrote %s (%d array tasks x %d ranks); submit with %s", job.array, len(ids), ranks,
             job.submit)
    return job


def _sbatch_header(settings: SlurmSettings, name: str, options: list[str]) -> str:
    lines = ["#!/bin/bash", f"#SBATCH --job-name={name}"]
    if settings.partition:
        lines.append(f"#SBATCH --partition={settings.partition}")
    if settings.account:
        lines.append(f"#SBATCH --account={settings.account}")
    lines += [f"#SBATCH {option}" for option in options]
    return "\n".join(lines) + "\n"


# The per-task command: skip a completed run, go on from a checkpoint, retry once
# (from scratch when the restart was refused). CONSTRICT_LAUNCHER replaces srun (tests
# run an array entry locally with it), CONSTRICT_PYTHON the Python that wrote the script.
_ARRAY_BODY = """\
# One array task per run; the order is that of manifest.json.
set -uo pipefail
SWEEP="{out}"
PYTHON="${{CONSTRICT_PYTHON:-{python}}}"
RUNS=(
{runs}
)
RUN="${{RUNS[$SLURM_ARRAY_TASK_ID]}}"
FOLDER="$SWEEP/$RUN"
if grep -qs '"status": "completed"' "$FOLDER/result/metrics.json"; then
  echo "constrict sweep: $RUN is already completed; skipped"
  exit 0
fi
status=0
for attempt in $(seq 1 {attempts}); do
  FLAG=--overwrite
  if [ -f "$FOLDER/result/checkpoints/latest.json" ] && [ "$status" != 2 ]; then
    FLAG=--restart
  fi
  echo "constrict sweep: $RUN attempt $attempt ($FLAG)"
  ${{CONSTRICT_LAUNCHER:-srun}} "$PYTHON" -m solver run "$FOLDER/case.in.yaml" \\
    -o "$FOLDER/result" $FLAG && exit 0
  status=$?
  echo "constrict sweep: $RUN attempt $attempt failed with exit code $status" >&2
done
exit $status
"""

_GATHER_BODY = """\
# The gather step: results.csv and the metric-vs-parameter plots of the whole sweep.
"${{CONSTRICT_PYTHON:-{python}}}" -m solver report "{out}"
"""

_SUBMIT = """\
#!/bin/bash
# Submit the sweep's array job, then the report job once every task has ended.
set -euo pipefail
array=$(sbatch --parsable "{array}")
sbatch --dependency=afterany:"${{array%%;*}}" "{gather}"
"""
