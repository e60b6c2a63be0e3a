"""`pmcap sensitivity`: which uncertain inputs drive the P90 suite and operator need.

Two views, both in ``sweep.html`` and in CSV files:

* **One at a time** (a sweep): every input written as a distribution in the scenario (a
  program's ``peak_share``, ``lag_days``, a trial plan's patients ...) and every uncertain
  field of the processes it uses (``culture_days``, ``failure_rate`` ...) is fixed at its P10
  (low) and at its P90 (high) while all other inputs keep their distributions. Per-draw inputs
  are drawn by the inverse CDF of one uniform per draw, so a swing changes only its own input:
  every other input keeps its draws (common random numbers) and the difference between low
  and high is the input's effect, not Monte Carlo noise. ``sensitivity.csv``; tornado charts
  of the P90 need (each draw's peak month in the chosen year) of suites and operator FTE.
* **Across draws** of the base run: the Spearman rank correlation of every input sampled per
  draw (including those that are not scenario inputs: approval timing, enrollment completion,
  the uptake posterior's draws) with the draw's suite and operator need in the year.
  ``ranking.csv``.

QC assay fields (hands-on hours, turnaround) and label expansions (a list in the scenario) are
not swung one at a time; they are in the ranking across draws. A launched product with its
own sales is conditioned on them by re-weighting its draws: its swings use the P10/P90 of
the inputs as written (before conditioning), and fixing one of its inputs re-picks its draws,
so its other inputs do not keep their draws there.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtri

from capacity.distributions import Param
from capacity.errors import InputError
from pmcap._style import default_style
from pmcap.scenario import Scenario
from pmcap.sweep import (
    CaseOutputs,
    ExtraOutputs,
    Sweep,
    SweepResult,
    is_distribution,
    make_cases,
    run_sweep,
)

__all__ = [
    "uncertain_inputs",
    "sensitivity_sweep",
    "run_sensitivity",
    "swing_table",
    "ranking_table",
    "pick_year",
    "SensitivityTables",
]

LOW, HIGH = 0.1, 0.9
# the base run in full, with every input sampled per draw (the ranking); the swings as
# summaries; each case's per-draw peaks tell its swing apart from sampling noise
OUTPUTS = {
    "base": CaseOutputs(full_run=True, per_draw=True, ranking=True),
    "low": CaseOutputs(full_run=False, per_draw=True),
    "high": CaseOutputs(full_run=False, per_draw=True),
}


def uncertain_inputs(base: Scenario, parsed: dict[str, Any]) -> list[tuple[tuple[str, ...], Param]]:
    """Every input of ``base`` given as a distribution: ``(path, Param)``, in file order."""
    raw = tomllib.loads(base.path.read_text())
    out: list[tuple[tuple[str, ...], Param]] = []

    def walk(node: dict, path: tuple[str, ...]) -> None:
        for key, value in node.items():
            if is_distribution(value):
                out.append(((*path, key), Param.parse(value)))
            elif isinstance(value, dict):
                walk(value, (*path, key))

    for program in raw.get("program", []):
        walk({k: v for k, v in program.items() if k != "name"}, ("program", program["name"]))
    seen = set()
    for spec in parsed["processes"].values():
        if spec.name in seen:
            continue
        seen.add(spec.name)
        for name in type(spec).model_fields:
            value = getattr(spec, name)
            if isinstance(value, Param) and value.kind != "fixed":
                out.append((("process", spec.name, name), value))
    return out


def _label(path: tuple[str, ...]) -> str:
    """``program.CART-A.uptake.peak_share`` -> ``CART-A.uptake.peak_share``."""
    return ".".join(path[1:])


def sensitivity_sweep(
    base: Scenario,
    *,
    draws: int | None = None,
    only: list[str] | None = None,
    progress: Callable | None = None,
) -> tuple[Sweep, list[dict[str, Any]]]:
    """The base scenario plus a low and a high swing of each uncertain input.

    ``only``: keep the inputs whose label contains one of these texts. Returns the sweep and
    one record per input (label, path, low and high values).
    """
    from pmcap.inputs import check_inputs
    from pmcap.scenario import check_draws_option

    check_draws_option(draws)
    parsed = check_inputs(base)
    inputs = uncertain_inputs(base, parsed)
    if only:
        inputs = [(p, v) for p, v in inputs if any(o in _label(p) for o in only)]
    if not inputs:
        raise InputError(
            f"{base.shown_path}: no uncertain input to swing"
            + (f" matches {', '.join(only)}" if only else "")
            + "; write an input as a distribution, e.g. peak_share = {uniform = [0.1, 0.2]}"
        )
    common = [] if draws is None else [(("run", "draws"), draws)]
    variants: list[tuple[str, list]] = [("base", [])]
    roles = ["base"]
    records = []
    for path, param in inputs:
        low, high = (float(x) for x in param.ppf([LOW, HIGH]))
        label = _label(path)
        records.append(
            {"input": label, "path": ".".join(path), "low_value": low, "high_value": high}
        )
        variants.append((f"{label} = {low:.4g} (P10)", [(path, low)]))
        variants.append((f"{label} = {high:.4g} (P90)", [(path, high)]))
        roles += ["low", "high"]
    cases, keys = make_cases(
        base,
        variants,
        common=common,
        where=f"{base.shown_path}: sensitivity",
        roles=roles,
        progress=progress,
    )
    cases = [replace(case, outputs=OUTPUTS[case.role]) for case in cases]
    sweep = Sweep(
        path=None, title=f"Sensitivity of {base.path.name}", base=base, cases=cases, keys=keys
    )
    return sweep, records


def _p90(summary: dict[str, Any], resource: str, year: int) -> float:
    for y in summary["years"]:
        if y["year"] == year and y["resource"] == resource:
            return float(y["p90"])
    raise InputError(f"--year {year}: not in the horizon")


def p90_interval(values: Sequence[float], level: float = 0.9) -> tuple[float, float]:
    """A distribution-free ``level`` interval of the P90 of ``values`` (one per draw): the
    order statistics whose ranks bracket 0.9 n, the number of draws below the true P90 being
    Binomial(n, 0.9) (normal approximation, ranks rounded outwards)."""
    x = np.sort(np.asarray(values, float))
    n = len(x)
    z = float(ndtri(0.5 + level / 2))
    half = z * np.sqrt(n * 0.9 * 0.1)
    lo = int(np.clip(np.floor(0.9 * n - half), 1, n))  # 1-based ranks
    hi = int(np.clip(np.ceil(0.9 * n + half) + 1, 1, n))
    return float(x[lo - 1]), float(x[hi - 1])


def pick_year(summary: dict[str, Any]) -> int:
    """The year of the base run's highest P90 suite need (the first such year)."""
    rows = [y for y in summary["years"] if y["resource"] == "suites"]
    return int(max(rows, key=lambda y: (y["p90"], -y["year"]))["year"])


BOOTSTRAP = 1000  # resamples of the draws for a swing's interval


def swing_interval(
    low: Sequence[float], high: Sequence[float], level: float = 0.9, seed: int = 0
) -> tuple[float, float]:
    """A ``level`` bootstrap interval of P90(high) - P90(low), the draws resampled in pairs:
    draw i of the low and of the high swing share every other input (common random numbers),
    so their difference is far less noisy than either P90 (an input that adds 0.8 suites to
    every draw gives exactly 0.8)."""
    low, high = np.asarray(low, float), np.asarray(high, float)
    idx = np.random.default_rng(seed).integers(0, len(low), size=(BOOTSTRAP, len(low)))
    diff = np.quantile(high[idx], 0.9, axis=1) - np.quantile(low[idx], 0.9, axis=1)
    a, b = np.quantile(diff, [(1 - level) / 2, (1 + level) / 2])
    return float(a), float(b)


def rho_noise(draws: int, level: float = 0.9) -> float:
    """The |Spearman rho| an input unrelated to the need exceeds with probability 1 - level
    at this many draws (large-sample sd of rho under independence: 1 / sqrt(n - 1))."""
    return float(ndtri(0.5 + level / 2) / np.sqrt(max(draws - 1, 1)))


def base_noise(summary: dict[str, Any], year: int) -> dict[str, tuple[float, float]]:
    """The 90% interval of the base run's P90 need in ``year`` per resource, from its draws'
    peak months (:func:`p90_interval`)."""
    return {
        resource: p90_interval(summary["per_draw"][resource][str(year)])
        for resource in ("suites", "operator_fte")
    }


def swing_table(
    sweep: Sweep, records: list[dict[str, Any]], summaries: dict[str, dict], year: int
) -> pd.DataFrame:
    """One row per input: the P90 need in ``year`` with it at its P10 and at its P90."""
    base = next(c for c in sweep.cases if c.role == "base")
    low = [c for c in sweep.cases if c.role == "low"]
    high = [c for c in sweep.cases if c.role == "high"]
    rows = []
    for rec, lo, hi in zip(records, low, high, strict=True):
        row = dict(rec, year=year)
        a, b = summaries.get(lo.name), summaries.get(hi.name)
        for resource in ("suites", "operator_fte"):
            row[f"{resource}_p90_low"] = np.nan if a is None else _p90(a, resource, year)
            row[f"{resource}_p90_high"] = np.nan if b is None else _p90(b, resource, year)
            row[f"{resource}_p90_base"] = _p90(summaries[base.name], resource, year)
            row[f"{resource}_swing"] = abs(row[f"{resource}_p90_high"] - row[f"{resource}_p90_low"])
            # is the swing told apart from sampling noise? its 90% interval, draws in pairs
            if a is None or b is None or "per_draw" not in a or "per_draw" not in b:
                lo_ = hi_ = np.nan  # a failed swing, or a summary without per-draw peaks
            else:
                lo_, hi_ = swing_interval(
                    a["per_draw"][resource][str(year)], b["per_draw"][resource][str(year)]
                )
            row[f"{resource}_swing_p05"], row[f"{resource}_swing_p95"] = lo_, hi_
            row[f"{resource}_within_noise"] = bool(lo_ <= 0 <= hi_)
        rows.append(row)
    frame = pd.DataFrame(rows)
    for col in ("low_value", "high_value"):  # the exact values are in each scenario.toml
        frame[col] = [float(f"{x:.6g}") for x in frame[col]]
    return frame.sort_values(["suites_swing", "operator_fte_swing"], ascending=False).reset_index(
        drop=True
    )


def ranking_table(summary: dict[str, Any], year: int) -> pd.DataFrame:
    """Spearman rho of each per-draw input with the draw's peak suite / operator need."""
    from pmcap.decisions import rank_drivers

    columns = {k: np.asarray(v, float) for k, v in summary["inputs"].items()}
    frames = []
    for resource in ("suites", "operator_fte"):
        target = np.asarray(summary["per_draw"][resource][str(year)], float)
        frames.append(
            rank_drivers(columns, target).set_index("input")["spearman_rho"].rename(resource)
        )
    table = pd.concat(frames, axis=1).reset_index()
    table.columns = ["input", "rho_suites", "rho_operator_fte"]
    # below what an unrelated input reaches 10% of the time at this many draws
    limit = rho_noise(len(target))
    table["within_noise"] = (table["rho_suites"].abs().fillna(0) < limit) & (
        table["rho_operator_fte"].abs().fillna(0) < limit
    )
    order = table["rho_suites"].abs().fillna(0).sort_values(ascending=False, kind="stable").index
    return table.loc[order].reset_index(drop=True)


def ranking_paths(inputs: list[str], swings: pd.DataFrame) -> list[str]:
    """For each ranked input, the scenario key swung in ``sensitivity.csv`` (its ``path``),
    or "" where the input is no key of the scenario (approval timing, posterior draws, QC
    assays). A program's inputs are ranked without the table they sit in: ``CART-C.peak_share``
    is swung as ``program.CART-C.uptake.peak_share``, ``CART-A.lag_days`` as
    ``program.CART-A.enrollment.lag_days``, ``CART-B.phase2_patients`` as
    ``program.CART-B.trial_plan.phase2.patients``; a process's carry the same name in both."""
    names: dict[str, set[str]] = {}
    for path in swings["path"]:
        parts = path.split(".")
        forms = {".".join(parts[1:])}
        if parts[0] == "program" and len(parts) == 4:  # program.A.<table>.field
            forms.add(f"{parts[1]}.{parts[3]}")
        if parts[0] == "program" and len(parts) == 5 and parts[2] == "trial_plan":
            forms.add(f"{parts[1]}.{parts[3]}_{parts[4]}")
        for form in forms:
            names.setdefault(form, set()).add(path)
    return [next(iter(names[n])) if len(names.get(n, ())) == 1 else "" for n in inputs]


@default_style
def tornado(swings: pd.DataFrame, top: int = 15) -> str:
    from matplotlib.figure import Figure

    from pmcap.report import inline_png

    rows = swings.head(top).iloc[::-1]
    fig = Figure(figsize=(13, 0.35 * len(rows) + 1.4))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, (resource, label) in zip(
        axes, (("suites", "P90 suites"), ("operator_fte", "P90 operator FTE")), strict=True
    ):
        base = float(rows[f"{resource}_p90_base"].iloc[0]) if len(rows) else 0.0
        y = np.arange(len(rows))
        lo = rows[f"{resource}_p90_low"].to_numpy(float)
        hi = rows[f"{resource}_p90_high"].to_numpy(float)
        ax.barh(y, lo - base, left=base, color="#4c78a8", label="input at P10")
        ax.barh(y, hi - base, left=base, color="#e45756", label="input at P90")
        ax.axvline(base, color="k", lw=0.8)
        ax.set_title(label)
        ax.legend(frameon=False, fontsize=8, loc="lower right")
    axes[0].set_yticks(np.arange(len(rows)), rows["input"], fontsize=8)
    return inline_png(fig)


def _csv(frame: pd.DataFrame) -> bytes:
    """6 significant digits and values within rounding of 0 written as 0, as a run's CSVs."""
    from pmcap.export import clean_zeros, csv_number

    text = clean_zeros(frame).to_csv(index=False, float_format=csv_number, lineterminator="\n")
    return text.encode()


TORNADO_ROWS = 15  # the largest swings charted; every swing is in the table


def _fmt(x: float) -> str:
    return "" if pd.isna(x) else f"{x:.1f}"


@dataclass(frozen=True)
class SensitivityTables:
    """sensitivity.csv, ranking.csv and the tornado and ranking sections of sweep.html, from
    the summaries of a sensitivity sweep (a :class:`pmcap.sweep.ExtraTables`).

    Attributes
    ----------
    records : tuple of dict
        One per swung input, in the order of the low and high cases (label, path, low and
        high values), as :func:`sensitivity_sweep` returns them.
    year : int or None, default None
        Year whose P90 need is compared; None: the base run's peak year (:func:`pick_year`).
    """

    records: tuple[dict[str, Any], ...]
    year: int | None = None

    def __call__(self, sweep: Sweep, summaries: dict[str, dict]) -> ExtraOutputs:
        base = next(c for c in sweep.cases if c.role == "base")
        if base.name not in summaries:
            return ExtraOutputs()
        summary = summaries[base.name]
        y = self.year if self.year is not None else pick_year(summary)
        swings = swing_table(sweep, list(self.records), summaries, y)
        ranking = ranking_table(summary, y)
        ranking.insert(1, "path", ranking_paths(list(ranking["input"]), swings))
        noise = base_noise(summary, y)
        html = {
            "year": y,
            "draws": summary["draws"],
            "noise_suites": " and ".join(_fmt(v) for v in noise["suites"]),
            "noise_operators": " and ".join(_fmt(v) for v in noise["operator_fte"]),
            "noisy": int(
                (swings["suites_within_noise"] & swings["operator_fte_within_noise"]).sum()
            ),
            "rho_noise": f"{rho_noise(summary['draws']):.2f}",
            "ranked": len(ranking),
            "base_suites": _fmt(swings["suites_p90_base"].iloc[0]),
            "base_operators": _fmt(swings["operator_fte_p90_base"].iloc[0]),
            "tornado": tornado(swings, top=TORNADO_ROWS),
            "shown": min(TORNADO_ROWS, len(swings)),
            "changes_in_name": True,  # each swing's name says the input and its value
            "swings": [
                {
                    "input": r.input,
                    "low_value": f"{r.low_value:.4g}",
                    "high_value": f"{r.high_value:.4g}",
                    "suites_low": _fmt(r.suites_p90_low),
                    "suites_high": _fmt(r.suites_p90_high),
                    "suites_swing": _fmt(r.suites_swing),
                    "operators_low": _fmt(r.operator_fte_p90_low),
                    "operators_high": _fmt(r.operator_fte_p90_high),
                    "operators_swing": _fmt(r.operator_fte_swing),
                    # both swings narrower than the base P90's sampling interval
                    "noisy": bool(r.suites_within_noise and r.operator_fte_within_noise),
                }
                for r in swings.itertuples()
            ],
            "ranking": [
                {
                    "input": r.input,
                    "suites": "" if pd.isna(r.rho_suites) else f"{r.rho_suites:+.2f}",
                    "operators": ""
                    if pd.isna(r.rho_operator_fte)
                    else f"{r.rho_operator_fte:+.2f}",
                    "noisy": bool(r.within_noise),
                }
                for r in ranking.head(25).itertuples()
            ],
        }
        files = {
            # 6 significant digits, as a run's CSV files (16.282531999999996 -> 16.2825)
            "sensitivity.csv": _csv(swings),
            "ranking.csv": _csv(ranking),
        }
        return ExtraOutputs(
            sections=html, files=files, tables={"year": y, "swings": swings, "ranking": ranking}
        )


def run_sensitivity(
    base: Scenario,
    out: Path,
    *,
    year: int | None = None,
    draws: int | None = None,
    only: list[str] | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    use_cache: bool = True,
    progress: Callable | None = None,
    client: Any = None,
    force: bool = False,
) -> SweepResult:
    """Run the swings (base run folder in full, the swings as summaries) and write
    sensitivity.csv, ranking.csv and the tornado and ranking in sweep.html."""
    start = pd.Timestamp(base.run.start)
    years = range(start.year, (start + pd.DateOffset(months=base.run.horizon_months - 1)).year + 1)
    if year is not None and year not in years:
        raise InputError(f"--year {year}: outside the horizon ({years[0]}-{years[-1]})")
    sweep, records = sensitivity_sweep(base, draws=draws, only=only, progress=progress)
    sweep.extra_tables = SensitivityTables(records=tuple(records), year=year)
    return run_sweep(
        sweep,
        out,
        workers=workers,
        scheduler=scheduler,
        use_cache=use_cache,
        progress=progress,
        command="sensitivity",
        client=client,
        force=force,
    )
