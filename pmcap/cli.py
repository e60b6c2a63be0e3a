"""The ``pmcap`` command line.

Each command parses its options, calls one library function (:mod:`pmcap.commands`) and
prints what it returns; no library module imports this one. Errors a user can cause
(:class:`~capacity.errors.InputError`) are turned into one message naming the file, row or
field and exit status 2 in one place, the command group's :meth:`PmcapGroup.invoke`; a
``--strict`` run whose sampler diagnostics fail exits with status 3.
"""

from __future__ import annotations

import contextlib
import errno
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperCommand, TyperGroup

from capacity.errors import InputError
from pmcap import __version__
from pmcap.output import WriteError

EXIT_FAULT = 1
EXIT_INPUT = 2
EXIT_DIAGNOSTICS = 3


class PmcapGroup(TyperGroup):
    """The command group: an :class:`InputError` raised by any command becomes the line
    ``pmcap: error: MESSAGE`` on stderr and exit status 2 (no traceback); a fault outside
    the inputs (a full disk: :class:`~pmcap.output.WriteError`, or ``ENOSPC`` raised by any
    other writer) becomes one such line and exit status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except InputError as exc:
            typer.echo(f"pmcap: error: {exc}", err=True)
            raise typer.Exit(code=EXIT_INPUT) from None
        except WriteError as exc:
            typer.echo(f"pmcap: error: {exc}", err=True)
            raise typer.Exit(code=EXIT_FAULT) from None
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
                raise
            where = f" writing {exc.filename}" if exc.filename else ""
            typer.echo(f"pmcap: error: no space left on the disk{where}: free space", err=True)
            raise typer.Exit(code=EXIT_FAULT) from None


class UsageCommand(TyperCommand):
    """A command whose usage line names its arguments the usual way: ``[OPTIONS] DEMAND``."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = super().collect_usage_pieces(ctx)
        out = []
        for piece in pieces:
            if piece.startswith("{") and piece.endswith("}"):  # required argument
                piece = piece[1:-1].upper()
            elif piece.startswith("[") and piece.endswith("]") and piece != "[OPTIONS]":
                piece = f"[{piece[1:-1].upper()}]"
            out.append(piece)
        return out


app = typer.Typer(
    cls=PmcapGroup,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # plain help: 80 columns, no type labels on flags ('--xlsx <bool>')
    rich_markup_mode=None,
    help="pmcap: uncertain patient demand -> manufacturing capacity with percentile bands.",
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"pmcap {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """pmcap: uncertain patient demand -> manufacturing capacity with percentile bands."""


# options shared by several commands
ForceOption = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Replace --out even if it holds files pmcap did not write or another command's "
        "output (never a file, a folder holding an input, the home folder, the root, the "
        "current folder or one above it, nor a folder holding a .git, .hg or .svn repository).",
    ),
]
SweepForceOption = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Start afresh in --out, replacing what it holds (another sweep's or command's "
        "output, files pmcap did not write), with the limits of pmcap run --force.",
    ),
]
ScenarioArgument = Annotated[
    Path | None,
    typer.Argument(help="Scenario TOML file (default: the bundled example portfolio)."),
]
NoCacheOption = Annotated[
    bool, typer.Option("--no-cache", help="Refit every model; do not read or write the cache.")
]
QuietOption = Annotated[bool, typer.Option("--quiet", help="No progress output.")]
XlsxOption = Annotated[bool, typer.Option("--xlsx", help="Also write finance.xlsx.")]
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


# ------------------------------------------------------------------------------------------
# option text -> values
# ------------------------------------------------------------------------------------------
def parse_installed(text: str | None) -> dict[str, float]:
    """``"suites=6,qc_fte=10"`` -> ``{"suites": 6.0, "qc_fte": 10.0}``.

    ``None`` (the option not given) is no installed capacity; an empty text, a name given
    twice, or a value that is not a finite number >= 0 is an error.
    """
    if text is None:
        return {}
    if not text.strip():
        raise InputError(
            "--installed: empty; give NAME=NUMBER pairs such as suites=6,qc_fte=10, or leave "
            "the option out"
        )
    out: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        try:
            if not sep or not name:
                raise ValueError
            number = float(value)
        except ValueError:
            raise InputError(
                f"--installed: cannot read {part!r}; expected NAME=NUMBER pairs such as "
                "suites=6,qc_fte=10"
            ) from None
        if name in out:
            raise InputError(f"--installed: {name!r} is given twice; give each resource once")
        if not math.isfinite(number) or number < 0:
            raise InputError(
                f"--installed: {name} must be a finite number >= 0, got {value.strip()!r}"
            )
        out[name] = number
    return out


def parse_processes(values: list[str]) -> str | dict[str, str]:
    """``["car-t-autologous-manual"]`` or ``["A=spec.toml", "*=aav-vector"]``."""
    if len(values) == 1 and "=" not in values[0]:
        return values[0]
    mapping: dict[str, str] = {}
    for value in values:
        program, sep, spec = value.partition("=")
        if not sep or not program or not spec:
            raise InputError(
                f"--process: cannot read {value!r}; give one NAME_OR_TOML for every program, "
                "or PROGRAM=NAME_OR_TOML pairs ('*' for the rest)"
            )
        if program in mapping:
            raise InputError(
                f"--process: program {program!r} is given twice ({program}={mapping[program]}, "
                f"{value}); give each program one process"
            )
        mapping[program] = spec
    return mapping


def parse_quantiles(text: str) -> tuple[float, ...]:
    """``"0.1,0.5,0.9"`` -> ``(0.1, 0.5, 0.9)``, in increasing order; each one once."""
    try:
        qs = tuple(float(q) for q in text.split(","))
    except ValueError:
        raise InputError(
            f"--quantiles: expected numbers such as 0.1,0.5,0.9, got {text!r}"
        ) from None
    if any(not 0 < q < 1 for q in qs):
        raise InputError(f"--quantiles: each must be strictly between 0 and 1, got {text!r}")
    twice = sorted({q for q in qs if qs.count(q) > 1})
    if twice:
        raise InputError(f"--quantiles: {twice[0]:g} is given twice in {text!r}; give each once")
    return tuple(sorted(qs))


def one_cluster(workers: int | None, scheduler: str | None) -> None:
    """``--workers`` (a local cluster) and ``--scheduler`` (an existing one) exclude each other."""
    if workers is not None and scheduler is not None:
        raise InputError(
            "give --workers (a local cluster) or --scheduler (an existing one), not both"
        )


# ------------------------------------------------------------------------------------------
# progress on stderr
# ------------------------------------------------------------------------------------------
STAGE_LABELS = {
    "check": "checking inputs",
    "fit": "fitting models (cached posteriors are reused)",
    "compose": "composing the portfolio's draws",
    "requirements": "computing requirements",
    "decisions": "shortfall, plans, service level, drivers",
    "workforce": "requisition plan for operators ([workforce])",
    "network": "network plan across the draws ([network])",
    "twin": "facility twin: crews, downtime, QC lab, vein-to-vein ([facility.twin])",
    "write": "writing the report and files",
}


@contextlib.contextmanager
def run_progress(quiet: bool) -> Iterator:
    """A per-stage status line on stderr (rich), or nothing with --quiet."""
    if quiet:
        yield lambda name: contextlib.nullcontext()
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=True, highlight=False)

    @contextlib.contextmanager
    def stage(name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        label = escape(STAGE_LABELS.get(name, name))  # "[workforce]" is not rich markup
        with console.status(label + " ..."):
            yield
        console.print(f"  {label}: {time.perf_counter() - t0:.1f} s")

    yield stage


@contextlib.contextmanager
def sweep_progress(quiet: bool, every: float = 5.0) -> Iterator:
    """Lines on stderr, or nothing with --quiet: the sweep's size before its scenarios are
    checked, then the checks done and the time left about every ``every`` seconds; a line
    per fit; a line per finished scenario with the time left at the rate so far."""
    if quiet:
        yield None
        return
    from rich.console import Console

    console = Console(stderr=True, highlight=False)
    clock = {"checking": 0.0, "running": 0.0, "shown": 0.0}

    def left(t0: float, done: int, total: int) -> str:
        if not done or done >= total:
            return ""
        rest = (time.perf_counter() - t0) / done * (total - done)
        return f", about {rest:.0f} s left" if rest < 120 else f", about {rest / 60:.0f} min left"

    def show(name: str, status: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if status == "checking":
            if done == 0:
                clock["checking"] = clock["shown"] = now
                console.print(f"  {total:,} scenarios: checking each one's inputs")
            elif done == total or now - clock["shown"] >= every:
                clock["shown"] = now
                console.print(
                    f"  checked {done:,}/{total:,} ({now - clock['checking']:.0f} s"
                    f"{left(clock['checking'], done, total)})"
                )
        elif status == "fitting":
            console.print(f"  fitting (or reading from the cache): {name}")
        else:
            if done == 1:
                clock["running"] = now - 1e-9
            console.print(
                f"  [{done}/{total}] {status}: {name}{left(clock['running'], done - 1, total - 1)}"
            )

    yield show


def finish_sweep(result, out: Path, quiet: bool) -> None:
    """Say what a sweep wrote; name each failed scenario and exit 1 if any failed."""
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


# ------------------------------------------------------------------------------------------
# the commands, in the order `pmcap --help` lists them
# ------------------------------------------------------------------------------------------
@app.command(cls=UsageCommand, short_help="Demand draws -> requirements and shortfall bands.")
def capacity(
    demand: Annotated[
        Path,
        typer.Argument(metavar="DEMAND", help="Demand draws: NetCDF (.nc) or long CSV."),
    ],
    process: Annotated[
        list[str],
        typer.Option(
            metavar="SPEC",
            help="Template name or TOML file; repeat PROGRAM=SPEC to map programs "
            "('*' for the rest).",
        ),
    ],
    out: Annotated[
        Path, typer.Option(metavar="FOLDER", help="Output folder (replaced atomically).")
    ] = Path("pmcap-output/capacity"),
    installed: Annotated[
        str | None,
        typer.Option(
            metavar="NAME=N,...",
            help="Installed capacity, e.g. suites=6,qc_fte=10,operator_fte=40.",
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(metavar="INT", help="Seed, >= 0 (default: the demand's seed, else 0)."),
    ] = None,
    quantiles: Annotated[
        str, typer.Option(metavar="Q,Q,...", help="Percentiles of the bands.")
    ] = "0.1,0.5,0.9",
    force: ForceOption = False,
) -> None:
    """Capacity alone: demand draws -> requirements.csv (percentile bands) and, with
    --installed, shortfall.csv (the probability each month needs more than is installed, each
    resource with its unit, as in pmcap run's).
    """
    from pmcap.commands import capacity_to_folder

    qs = parse_quantiles(quantiles)
    capacity_installed = parse_installed(installed)
    spec = parse_processes(process)
    written = capacity_to_folder(
        demand, spec, out, installed=capacity_installed, seed=seed, quantiles=qs, force=force
    )
    typer.echo(
        f"wrote {out}/requirements.csv"
        + (" and shortfall.csv" if "shortfall.csv" in written else "")
    )


@app.command(
    cls=UsageCommand, short_help="Scenario -> report, requirements, demand and finance files."
)
def run(
    scenario: ScenarioArgument = None,
    out: Annotated[
        Path,
        typer.Option(metavar="FOLDER", help="Output folder (replaced atomically; see --force)."),
    ] = Path("pmcap-output/run"),
    draws: Annotated[int | None, typer.Option(metavar="N", help="Override run.draws.")] = None,
    seed: Annotated[int | None, typer.Option(metavar="INT", help="Override run.seed.")] = None,
    xlsx: XlsxOption = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="Exit with status 3 (and write nothing) when sampler diagnostics fail."
        ),
    ] = False,
    quiet: QuietOption = False,
    force: ForceOption = False,
    no_cache: NoCacheOption = False,
) -> None:
    """Scenario -> report.html, requirements.csv, demand.csv, finance.csv, draws.nc."""
    import logging

    from pmcap.commands import DiagnosticsError, run_to_folder

    # the stage display (or --quiet) replaces PyMC's own sampling messages; PyMC is imported
    # only if a model is fitted, and then keeps the level set here (forecast._pymc)
    logging.getLogger("pymc").setLevel(logging.ERROR)
    with run_progress(quiet) as stage:
        try:
            written = run_to_folder(
                scenario,
                out,
                draws=draws,
                seed=seed,
                xlsx=xlsx,
                strict=strict,
                force=force,
                use_cache=not no_cache,
                stage=stage,
            )
        except DiagnosticsError as exc:
            typer.echo(
                f"pmcap: sampler diagnostics fail for {', '.join(exc.labels)} (--strict): "
                "nothing written",
                err=True,
            )
            raise typer.Exit(code=EXIT_DIAGNOSTICS) from None
    if not quiet:
        typer.echo(f"wrote {out}/: {', '.join(written)}")


@app.command(cls=UsageCommand)
def validate(
    scenario: Annotated[Path, typer.Argument(help="Scenario TOML file.")],
) -> None:
    """Check a scenario file and every input it names (no sampling)."""
    from pmcap.commands import validate_scenario

    sc = validate_scenario(scenario)
    stages = ", ".join(f"{p.name} ({p.stage})" for p in sc.program)
    typer.echo(f"{scenario}: ok: {len(sc.program)} programs: {stages}")


@app.command(
    cls=UsageCommand, short_help="Write a starter scenario and input templates to a new folder."
)
def init(
    folder: Annotated[Path, typer.Argument(help="New folder for a starter scenario.")],
) -> None:
    """Write a starter scenario (placeholders and a comment on every key: its meaning, unit and
    allowed values) and its input files, which pass `pmcap validate` as written."""
    from pmcap.commands import init_folder

    init_folder(folder)
    typer.echo(
        f"wrote {folder}/scenario.toml and its input files; edit them, then run "
        f"'pmcap validate {folder}/scenario.toml' and 'pmcap run {folder}/scenario.toml'"
    )


@app.command(cls=UsageCommand, short_help="Run a sweep file's scenarios on dask and compare them.")
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
    xlsx: XlsxOption = False,
    quiet: QuietOption = False,
    force: SweepForceOption = False,
    no_cache: NoCacheOption = False,
) -> None:
    """Run every scenario of SWEEP (each a task on dask.distributed) and write sweep.csv,
    sweep.html and one run folder per scenario. Scenarios already done in FOLDER (same
    scenario hash) are skipped; a failed scenario is reported and the others finish (exit
    status 1 if any failed). FOLDER is resumed only by the same sweep file; another sweep's
    or command's output there needs --force."""
    from pmcap.commands import sweep_to_folder
    from pmcap.scenario import check_draws_option

    one_cluster(workers, scheduler)
    check_draws_option(draws)
    with sweep_progress(quiet) as show:
        result = sweep_to_folder(
            sweep_file,
            out,
            workers=workers,
            scheduler=scheduler,
            draws=draws,
            xlsx=xlsx,
            force=force,
            use_cache=not no_cache,
            progress=show,
        )
    finish_sweep(result, out, quiet)


@app.command(cls=UsageCommand, short_help="Swing each uncertain input; rank what drives the need.")
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
    quiet: QuietOption = False,
    force: SweepForceOption = False,
    no_cache: NoCacheOption = False,
) -> None:
    """Fix each uncertain input at its P10 and P90 in turn (a sweep: tornado of the P90 suite
    and operator need in a year) and rank every input sampled per draw of the base run by
    rank correlation with the need. Writes sensitivity.csv, ranking.csv, sweep.csv and
    sweep.html (with the tornado and the ranking); the base run's folder in full."""
    from pmcap.commands import sensitivity_to_folder
    from pmcap.scenario import check_draws_option

    one_cluster(workers, scheduler)
    check_draws_option(draws)
    with sweep_progress(quiet) as show:
        result = sensitivity_to_folder(
            scenario,
            out,
            year=year,
            draws=draws,
            only=only,
            workers=workers,
            scheduler=scheduler,
            force=force,
            use_cache=not no_cache,
            progress=show,
        )
    if not quiet and result.sensitivity:
        top = result.sensitivity["swings"].head(3)
        typer.echo(
            f"largest swings of the P90 suite need in {result.sensitivity['year']}: "
            + "; ".join(
                f"{r.input} {r.suites_p90_low:.1f} to {r.suites_p90_high:.1f}"
                for r in top.itertuples()
            )
        )
    finish_sweep(result, out, quiet)


def main() -> None:
    """Console entry point (``pmcap``)."""
    app()


if __name__ == "__main__":
    main()
