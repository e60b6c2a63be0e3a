"""What each ``pmcap`` command does, as functions a notebook can call as well.

The command line (:mod:`pmcap.cli`) parses options, calls one of these and prints what it
returns. Errors a user can cause raise :class:`~capacity.errors.InputError` naming the file,
row or field and what was expected. An output folder is only ever replaced if pmcap wrote it
(or it is empty), and is written atomically (:func:`pmcap.output.atomic_folder`): built beside
its place and renamed at the end, so nothing half-written is left behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from capacity.errors import InputError
from pmcap.scenario import Scenario, example_scenario_path, load_scenario

if TYPE_CHECKING:
    from pmcap.run import Stage
    from pmcap.sweep.runner import SweepResult

__all__ = [
    "DiagnosticsError",
    "capacity_to_folder",
    "init_folder",
    "load_or_example",
    "run_to_folder",
    "sensitivity_to_folder",
    "sweep_to_folder",
    "validate_scenario",
]


class DiagnosticsError(Exception):
    """Sampler diagnostics of one or more fits fail (a strict run writes nothing).

    ``labels`` names the fits, as the keys of :attr:`pmcap.run.RunResult.diagnostics`.
    """

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = list(labels)
        super().__init__(f"sampler diagnostics fail for {', '.join(self.labels)}")


def load_or_example(scenario: Scenario | str | Path | None) -> Scenario:
    """A validated scenario: ``scenario`` itself, the file at that path, or (``None``) the
    bundled example portfolio."""
    if isinstance(scenario, Scenario):
        return scenario
    return load_scenario(example_scenario_path() if scenario is None else scenario)


def run_to_folder(
    scenario: Scenario | str | Path | None,
    out: Path,
    *,
    draws: int | None = None,
    seed: int | None = None,
    xlsx: bool = False,
    strict: bool = False,
    force: bool = False,
    use_cache: bool = True,
    stage: Stage | None = None,
) -> list[str]:
    """``pmcap run``: a scenario end to end, written to the folder ``out``.

    Parameters
    ----------
    scenario
        A :class:`~pmcap.scenario.Scenario`, a scenario file, or ``None`` for the bundled
        example portfolio.
    out
        Output folder; replaced only if pmcap wrote it (or it is empty), unless ``force``
        (never a file, nor a folder holding an input).
    draws, seed
        Override ``run.draws`` and ``run.seed``; the report names the overrides.
    xlsx
        Also write ``finance.xlsx``.
    strict
        Raise :class:`DiagnosticsError`, writing nothing, when a fit's sampler diagnostics
        fail (:data:`pmcap.run.DIAGNOSTIC_LIMITS`).
    use_cache
        Read and write fitted posteriors in the cache (:mod:`pmcap.fits`).
    stage
        ``stage(name)`` returns a context manager around each stage (a progress display);
        default: none.

    Returns
    -------
    list of str
        The names of the files written, as :func:`pmcap.runfolder.write_run` returns them.
    """
    from pmcap import __version__, runfolder
    from pmcap.output import atomic_folder, check_out
    from pmcap.run import diagnostics_pass, no_progress, run_scenario

    stage = stage or no_progress
    sc = load_or_example(scenario).apply(draws=draws, seed=seed)
    inputs = sc.input_files()
    check_out(out, inputs=inputs, force=force, command="run")
    result = run_scenario(sc, stage=stage, use_cache=use_cache, background_compile=True)
    if strict and not result.diagnostics_ok:
        failed = [k for k, d in result.diagnostics.items() if not diagnostics_pass(d)]
        raise DiagnosticsError(failed)
    t0 = time.perf_counter()
    with stage("write"), atomic_folder(out, inputs=inputs, force=force, command="run") as folder:
        overrides = ", ".join(
            f"{k}={v}" for k, v in (("draws", draws), ("seed", seed)) if v is not None
        )
        return runfolder.write_run(
            folder,
            result,
            xlsx=xlsx,
            version=__version__,
            t0=t0,
            overrides=overrides,
            in_child=True,
        )


def validate_scenario(path: str | Path) -> Scenario:
    """``pmcap validate``: read a scenario file and check every input it names, short of
    sampling (:func:`pmcap.inputs.check_inputs`); returns the scenario."""
    from pmcap.inputs import check_inputs

    scenario = load_scenario(path)
    check_inputs(scenario)
    return scenario


def init_folder(folder: Path) -> list[str]:
    """``pmcap init``: write the starter scenario (``scenario.toml``, a comment on every key:
    its meaning, unit and allowed values; placeholder programs of each stage and a
    ``[process.NAME]`` change) and its input files into ``folder``, a new or empty folder;
    returns the names written. The starter passes ``pmcap validate`` as written."""
    from importlib import resources

    try:
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise InputError(f"{folder}: exists and is not an empty folder; give a new folder")
        source = resources.files("pmcap") / "templates" / "starter"
        folder.mkdir(parents=True, exist_ok=True)
        copied = []
        for item in sorted(source.iterdir(), key=lambda x: x.name):
            if item.name.endswith((".toml", ".csv")):
                (folder / item.name).write_bytes(item.read_bytes())
                copied.append(item.name)
    except OSError as exc:
        raise InputError(f"{folder}: cannot write ({exc.strerror})") from None
    return copied


def capacity_to_folder(
    demand: Path,
    process: str | dict[str, str],
    out: Path,
    *,
    installed: dict[str, float] | None = None,
    seed: int | None = None,
    quantiles: Sequence[float] = (0.1, 0.5, 0.9),
    force: bool = False,
) -> list[str]:
    """``pmcap capacity``: demand draws -> ``requirements.csv`` (percentile bands per month,
    program and metric) and, given ``installed``, ``shortfall.csv`` (the probability each
    month needs more than is installed, in the layout of ``pmcap run``'s), with a manifest.

    Parameters
    ----------
    demand
        Demand draws, NetCDF (``.nc``) or long CSV (:func:`capacity.read_demand`).
    process
        A template name or TOML file for every program, or ``{program: name_or_file}``
        (``"*"`` for the rest).
    out
        Output folder (as :func:`run_to_folder`'s).
    installed
        Installed capacity by metric, e.g. ``{"suites": 6, "qc_fte": 10}``.
    seed
        Seed of the process parameters; default: the demand's seed, else 0.
    quantiles
        Percentiles of the bands, increasing.

    Returns
    -------
    list of str
        The names of the files written.
    """
    from capacity import bands, load_process, read_demand, requirements, shortfall_probability
    from pmcap import export
    from pmcap.output import atomic_folder, check_out, file_sha256, write_manifest

    installed = dict(installed or {})
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    files = [Path(v) for v in (process.values() if isinstance(process, dict) else [process])]
    inputs = [demand, *(f for f in files if f.exists())]
    check_out(out, inputs=inputs, force=force, command="capacity")
    specs = (
        {k: load_process(v) for k, v in process.items()}
        if isinstance(process, dict)
        else load_process(process)
    )
    draws = read_demand(demand)
    timings["read_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    req = requirements(draws, specs, seed=seed)
    timings["requirements_s"] = time.perf_counter() - t0
    table = bands(req, quantiles)
    shortfall = shortfall_probability(req, installed) if installed else None

    written = ["requirements.csv"]
    with atomic_folder(out, inputs=inputs, force=force, command="capacity") as folder:
        export.write_csv(table, folder / "requirements.csv")
        if shortfall is not None:  # the layout of `pmcap run`'s: units, "any of ..."
            export.write_csv(export.shortfall_table(shortfall), folder / "shortfall.csv")
            written.append("shortfall.csv")
        write_manifest(
            folder,
            command="capacity",
            demand={"path": str(demand), "sha256": file_sha256(demand)},
            process=process,
            seed=req.attrs["seed"],
            draws=int(draws.sizes["draw"]),
            months=[str(draws["month"].values[0])[:10], str(draws["month"].values[-1])[:10]],
            installed=installed,
            quantiles=list(quantiles),
            timings=timings,
        )
    return [*written, "manifest.json"]


def sweep_to_folder(
    sweep_file: str | Path,
    out: Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    draws: int | None = None,
    xlsx: bool = False,
    force: bool = False,
    use_cache: bool = True,
    progress: Callable[[str, str, int, int], None] | None = None,
) -> SweepResult:
    """``pmcap sweep``: every scenario of the sweep file, run on dask.distributed
    (:func:`pmcap.sweep.run_sweep`) into ``out``. ``out`` is checked before the sweep is
    read: it is resumed only by the same sweep file, and another sweep's or command's output
    there needs ``force``. ``progress`` is told the sweep's size, each check and each
    finished scenario."""
    from pmcap.sweep import load_sweep, run_sweep
    from pmcap.sweep.runner import check_sweep_out

    sweep_file = Path(sweep_file)
    origin = str(sweep_file.resolve())
    check_sweep_out(out, [sweep_file], command="sweep", origin=origin, force=force)
    sw = load_sweep(sweep_file, draws=draws, progress=progress)
    return run_sweep(
        sw,
        out,
        workers=workers,
        scheduler=scheduler,
        use_cache=use_cache,
        xlsx=xlsx,
        progress=progress,
        force=force,
    )


def sensitivity_to_folder(
    scenario: Scenario | str | Path | None,
    out: Path,
    *,
    year: int | None = None,
    draws: int | None = None,
    only: list[str] | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    force: bool = False,
    use_cache: bool = True,
    progress: Callable[[str, str, int, int], None] | None = None,
) -> SweepResult:
    """``pmcap sensitivity``: the swings of ``scenario`` (``None``: the bundled example) by
    :func:`pmcap.sensitivity.run_sensitivity`, written to ``out``, which is checked (as
    :func:`sweep_to_folder`'s) before any swing is built."""
    from pmcap.sensitivity import run_sensitivity
    from pmcap.sweep.runner import check_sweep_out

    base = load_or_example(scenario)
    origin = str(base.path.resolve())
    check_sweep_out(out, base.input_files(), command="sensitivity", origin=origin, force=force)
    return run_sensitivity(
        base,
        out,
        year=year,
        draws=draws,
        only=only,
        workers=workers,
        scheduler=scheduler,
        use_cache=use_cache,
        progress=progress,
        force=force,
    )
