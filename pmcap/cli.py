"""The ``pmcap`` command line.

Errors a user can cause exit with status 2 and one message naming the file, row or field.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperCommand

from capacity.errors import InputError
from pmcap import __version__

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # plain help: 80 columns, no type labels on flags ('--xlsx <bool>')
    rich_markup_mode=None,
    help="pmcap: uncertain patient demand -> manufacturing capacity with percentile bands.",
)


class _Command(TyperCommand):
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


# --force, shared by every command that writes an output folder
ForceOption = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Replace --out even if it holds files pmcap did not write "
        "(never a file, nor a folder holding an input).",
    ),
]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"pmcap: error: {message}", err=True)
    return typer.Exit(code=2)


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


@app.command(short_help="Demand draws -> requirements and shortfall bands.")
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
    from capacity import bands, load_process, read_demand, requirements, shortfall_probability
    from pmcap import export
    from pmcap.output import atomic_folder, check_out, file_sha256, write_manifest

    try:
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        qs = parse_quantiles(quantiles)
        capacity_installed = parse_installed(installed)
        spec = parse_processes(process)
        files = [Path(v) for v in (spec.values() if isinstance(spec, dict) else [spec])]
        inputs = [demand, *(f for f in files if f.exists())]
        check_out(out, inputs=inputs, force=force)
        specs = (
            {k: load_process(v) for k, v in spec.items()}
            if isinstance(spec, dict)
            else (load_process(spec))
        )
        draws = read_demand(demand)
        timings["read_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        req = requirements(draws, specs, seed=seed)
        timings["requirements_s"] = time.perf_counter() - t0
        table = bands(req, qs)
        shortfall = shortfall_probability(req, capacity_installed) if capacity_installed else None
    except InputError as exc:
        raise _fail(str(exc)) from None

    try:
        with atomic_folder(out, inputs=inputs, force=force) as folder:
            export.write_csv(table, folder / "requirements.csv")
            if shortfall is not None:  # the layout of `pmcap run`'s: units, "any of ..."
                export.write_csv(export.shortfall_table(shortfall), folder / "shortfall.csv")
            write_manifest(
                folder,
                command="capacity",
                demand={"path": str(demand), "sha256": file_sha256(demand)},
                process=spec,
                seed=req.attrs["seed"],
                draws=int(draws.sizes["draw"]),
                months=[str(draws["month"].values[0])[:10], str(draws["month"].values[-1])[:10]],
                installed=capacity_installed,
                quantiles=list(qs),
                timings=timings,
            )
    except InputError as exc:
        raise _fail(str(exc)) from None
    typer.echo(
        f"wrote {out}/requirements.csv" + (" and shortfall.csv" if shortfall is not None else "")
    )


# `run`, `validate` and `init` live in their own module; importing it registers them
from pmcap import commands as _commands  # noqa: E402,F401

for _info in app.registered_commands:  # one usage style for every command
    if _info.cls in (None, TyperCommand):
        _info.cls = _Command


def main() -> None:
    """Console entry point."""
    try:
        app()
    except InputError as exc:  # raised outside a command's own handler
        typer.echo(f"pmcap: error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
