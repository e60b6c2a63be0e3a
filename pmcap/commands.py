"""``pmcap run``, ``pmcap validate`` and ``pmcap init`` (registered on the CLI app)."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from capacity.errors import InputError
from pmcap.cli import ForceOption, _fail, app

EXIT_DIAGNOSTICS = 3

ScenarioArgument = Annotated[
    Path | None,
    typer.Argument(help="Scenario TOML file (default: the bundled example portfolio)."),
]
NoCacheOption = Annotated[
    bool, typer.Option("--no-cache", help="Refit every model; do not read or write the cache.")
]


def _load(scenario: Path | None):
    from pmcap.scenario import example_scenario_path, load_scenario

    return load_scenario(example_scenario_path() if scenario is None else scenario)


@contextlib.contextmanager
def _progress(quiet: bool) -> Iterator:
    """A per-stage status line on stderr (rich), or nothing with --quiet."""
    if quiet:
        yield lambda name: contextlib.nullcontext()
        return
    from rich.console import Console

    console = Console(stderr=True, highlight=False)
    labels = {
        "check": "checking inputs",
        "fit": "fitting models (cached posteriors are reused)",
        "compose": "composing the portfolio's draws",
        "requirements": "computing requirements",
        "decisions": "shortfall, plans, service level, drivers",
        "write": "writing the report and files",
    }

    @contextlib.contextmanager
    def stage(name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        with console.status(labels.get(name, name) + " ..."):
            yield
        console.print(f"  {labels.get(name, name)}: {time.perf_counter() - t0:.1f} s")

    yield stage


@app.command(short_help="Scenario -> report, requirements, demand and finance files.")
def run(
    scenario: ScenarioArgument = None,
    out: Annotated[
        Path,
        typer.Option(metavar="FOLDER", help="Output folder (replaced atomically; see --force)."),
    ] = Path("pmcap-output/run"),
    draws: Annotated[int | None, typer.Option(metavar="N", help="Override run.draws.")] = None,
    seed: Annotated[int | None, typer.Option(metavar="INT", help="Override run.seed.")] = None,
    xlsx: Annotated[bool, typer.Option("--xlsx", help="Also write finance.xlsx.")] = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="Exit with status 3 (and write nothing) when sampler diagnostics fail."
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress output.")] = False,
    force: ForceOption = False,
    no_cache: NoCacheOption = False,
) -> None:
    """Scenario -> report.html, requirements.csv, demand.csv, finance.csv, draws.nc."""
    import logging

    # the stage display (or --quiet) replaces PyMC's own sampling messages; PyMC is imported
    # only if a model is fitted, and then keeps the level set here (forecast._pymc)
    from pmcap import __version__
    from pmcap.output import atomic_folder, check_out
    from pmcap.run import run_scenario
    from pmcap.runfolder import write_run

    logging.getLogger("pymc").setLevel(logging.ERROR)
    try:
        sc = _load(scenario).apply(draws=draws, seed=seed)
        inputs = sc.input_files()
        check_out(out, inputs=inputs, force=force)
        with _progress(quiet) as stage:
            result = run_scenario(sc, stage=stage, use_cache=not no_cache)
            if strict and not result.diagnostics_ok:
                bad = [k for k, d in result.diagnostics.items() if not _ok(d)]
                typer.echo(
                    f"pmcap: sampler diagnostics fail for {', '.join(bad)} (--strict): nothing "
                    "written",
                    err=True,
                )
                raise typer.Exit(code=EXIT_DIAGNOSTICS)
            t0 = time.perf_counter()
            with stage("write"), atomic_folder(out, inputs=inputs, force=force) as folder:
                overrides = ", ".join(
                    f"{k}={v}" for k, v in (("draws", draws), ("seed", seed)) if v is not None
                )
                written = write_run(
                    folder, result, xlsx=xlsx, version=__version__, t0=t0, overrides=overrides
                )
    except InputError as exc:
        raise _fail(str(exc)) from None
    if not quiet:
        typer.echo(f"wrote {out}/: {', '.join(written)}")


def _ok(d) -> bool:
    from pmcap.run import diagnostics_pass

    return diagnostics_pass(d)


@app.command()
def validate(
    scenario: Annotated[Path, typer.Argument(help="Scenario TOML file.")],
) -> None:
    """Check a scenario file and every input it names (no sampling)."""
    from pmcap.run import check_inputs

    try:
        sc = _load(scenario)
        check_inputs(sc)
    except InputError as exc:
        raise _fail(str(exc)) from None
    stages = ", ".join(f"{p.name} ({p.stage})" for p in sc.program)
    typer.echo(f"{scenario}: ok: {len(sc.program)} programs: {stages}")


@app.command(short_help="Write a starter scenario and input templates to a new folder.")
def init(
    folder: Annotated[Path, typer.Argument(help="New folder for a starter scenario.")],
) -> None:
    """Write a commented starter scenario and input templates (the example portfolio)."""
    from pmcap.scenario import example_scenario_path

    try:
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise InputError(f"{folder}: exists and is not an empty folder; give a new folder")
        source = example_scenario_path().parent
        folder.mkdir(parents=True, exist_ok=True)
        for path in sorted(source.iterdir()):
            if path.suffix in (".toml", ".csv"):
                shutil.copyfile(path, folder / path.name)
    except InputError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"{folder}: cannot write ({exc.strerror})") from None
    typer.echo(
        f"wrote {folder}/scenario.toml and its input files; edit them, then run "
        f"'pmcap validate {folder}/scenario.toml' and 'pmcap run {folder}/scenario.toml'"
    )


WorkersOption = Annotated[
    int | None,
    typer.Option(
        metavar="N",
        min=1,
        help="Workers of the local cluster (default: one per core, at most one per scenario).",
    ),
]
SchedulerOption = Annotated[
    str | None,
    typer.Option(
        metavar="ADDRESS",
        help="Run on an existing dask cluster (tcp://host:8786) instead of a local one.",
    ),
]


@contextlib.contextmanager
def _sweep_progress(quiet: bool) -> Iterator:
    if quiet:
        yield None
        return
    from rich.console import Console

    console = Console(stderr=True, highlight=False)

    def show(name: str, status: str, done: int, total: int) -> None:
        if status == "fitting":
            console.print(f"  fitting (or reading from the cache): {name}")
        else:
            console.print(f"  [{done}/{total}] {status}: {name}")

    yield show


def _finish_sweep(result, out: Path, quiet: bool) -> None:
    if not quiet:
        extra = "sensitivity.csv, ranking.csv, " if result.sensitivity else ""
        typer.echo(
            f"wrote {out}/: {extra}sweep.csv, sweep_monthly.csv, sweep.html (the comparison"
            f"{', tornado and ranking' if extra else ''}) and scenarios/ "
            f"({len(result.ran)} run, {len(result.skipped)} already done, "
            f"{len(result.failed)} failed)"
        )
    if result.failed:
        for name, error in result.failed.items():
            typer.echo(f"pmcap: scenario {name!r} failed: {error}", err=True)
        raise typer.Exit(code=1)


@app.command(short_help="Run a sweep file's scenarios on dask and compare them.")
def sweep(
    sweep_file: Annotated[Path, typer.Argument(metavar="SWEEP", help="Sweep TOML file.")],
    out: Annotated[
        Path,
        typer.Option(metavar="FOLDER", help="Output folder (an earlier sweep's is resumed)."),
    ] = Path("pmcap-output/sweep"),
    workers: WorkersOption = None,
    scheduler: SchedulerOption = None,
    draws: Annotated[
        int | None, typer.Option(metavar="N", help="Override run.draws in every scenario.")
    ] = None,
    xlsx: Annotated[bool, typer.Option("--xlsx", help="Also write finance.xlsx.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress output.")] = False,
    no_cache: NoCacheOption = False,
) -> None:
    """Run every scenario of SWEEP (each a task on dask.distributed) and write sweep.csv,
    sweep.html and one run folder per scenario. Scenarios already done in FOLDER (same
    scenario hash) are skipped; a failed scenario is reported and the others finish (exit
    status 1 if any failed)."""
    from pmcap.sweep import load_sweep, run_sweep

    if workers is not None and scheduler is not None:
        raise _fail("give --workers (a local cluster) or --scheduler (an existing one), not both")
    try:
        sw = load_sweep(sweep_file, draws=draws)
        with _sweep_progress(quiet) as show:
            result = run_sweep(
                sw,
                out,
                workers=workers,
                scheduler=scheduler,
                use_cache=not no_cache,
                xlsx=xlsx,
                progress=show,
            )
    except InputError as exc:
        raise _fail(str(exc)) from None
    _finish_sweep(result, out, quiet)


@app.command(short_help="Swing each uncertain input; rank what drives the need.")
def sensitivity(
    scenario: ScenarioArgument = None,
    out: Annotated[
        Path,
        typer.Option(metavar="FOLDER", help="Output folder (an earlier run's is resumed)."),
    ] = Path("pmcap-output/sensitivity"),
    year: Annotated[
        int | None,
        typer.Option(
            metavar="YYYY",
            help="Year whose P90 need is compared (default: the base run's peak year).",
        ),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(metavar="TEXT", help="Swing only inputs whose name contains TEXT (repeat)."),
    ] = None,
    workers: WorkersOption = None,
    scheduler: SchedulerOption = None,
    draws: Annotated[int | None, typer.Option(metavar="N", help="Override run.draws.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress output.")] = False,
    no_cache: NoCacheOption = False,
) -> None:
    """Fix each uncertain input at its P10 and P90 in turn (a sweep: tornado of the P90 suite
    and operator need in a year) and rank every input sampled per draw of the base run by
    rank correlation with the need. Writes sensitivity.csv, ranking.csv, sweep.csv and
    sweep.html (with the tornado and the ranking); the base run's folder in full."""
    from pmcap.sensitivity import run_sensitivity

    if workers is not None and scheduler is not None:
        raise _fail("give --workers (a local cluster) or --scheduler (an existing one), not both")
    try:
        base = _load(scenario)
        with _sweep_progress(quiet) as show:
            result = run_sensitivity(
                base,
                out,
                year=year,
                draws=draws,
                only=only,
                workers=workers,
                scheduler=scheduler,
                use_cache=not no_cache,
                progress=show,
            )
    except InputError as exc:
        raise _fail(str(exc)) from None
    if not quiet and result.sensitivity:
        top = result.sensitivity["swings"].head(3)
        typer.echo(
            f"largest swings of the P90 suite need in {result.sensitivity['year']}: "
            + "; ".join(
                f"{r.input} {r.suites_p90_low:.1f} to {r.suites_p90_high:.1f}"
                for r in top.itertuples()
            )
        )
    _finish_sweep(result, out, quiet)


__all__ = ["run", "validate", "init", "sweep", "sensitivity"]
