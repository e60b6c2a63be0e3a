"""Time writing a run's output folder (``pmcap.runfolder.write_run``) against a baseline, in
the same process, on the bundled example scenario.

The baseline is the straightforward implementation of the costly parts, kept here: the report
charts drawn through pyplot with ``bbox_inches="tight"`` and matplotlib's automatic date
ticks (each figure drawn twice), the finance table's per-metric xarray ``groupby`` and a
per-year loop for the report's decision table. ``write_draws`` (draws.nc) and the other CSV
tables are the same in both; they are timed once per round for the per-part table.

Rounds alternate baseline and current code; medians are printed. Run:
``python benchmarks/bench_write.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from pmcap import export, report
from pmcap.report import RESOURCES, installed_series, render, tables
from pmcap.run import run_scenario
from pmcap.runfolder import write_run
from pmcap.scenario import example_scenario_path, load_scenario

# ---- the baseline ------------------------------------------------------------------------


def baseline_figures(result) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    demand = result.world.demand
    months = pd.DatetimeIndex(demand["month"].values)
    figs = {}

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.3), sharex=True)
    for ax, stream in zip(axes, ("clinical", "commercial", "ppq"), strict=True):
        for program in map(str, demand["program"].values):
            values = demand.sel(program=program, stream=stream).values
            if not values.any():
                continue
            q = np.quantile(values, [0.1, 0.5, 0.9], axis=0)
            (line,) = ax.plot(months, q[1], drawstyle="steps-mid", label=program)
            ax.fill_between(months, q[0], q[2], step="mid", alpha=0.2, color=line.get_color())
        ax.set_title(f"{stream} ({'lots' if stream == 'ppq' else 'patients'}/month, P10-P50-P90)")
        ax.legend(frameon=False, fontsize=8, loc="upper left")
    figs["demand"] = report.inline_png(fig, tight=True)

    fig, ax = plt.subplots(figsize=(8, 3))
    grid = months.to_numpy("datetime64[ns]")
    for program in map(str, result.world.events["program"].values):
        approval = result.world.events["approval"].sel(program=program).values
        if np.isnat(approval).all():
            continue
        share = (approval[:, None] <= grid[None, :]).mean(axis=0)
        ax.plot(months, share, label=program)
    ax.set_ylim(0, 1.02)
    ax.set_title("P(approved by month)")
    ax.legend(frameon=False, fontsize=8)
    figs["approval"] = report.inline_png(fig, tight=True)

    fig, axes = plt.subplots(2, 2, figsize=(13, 6), sharex=True)
    for ax, (resource, label) in zip(axes.ravel(), RESOURCES, strict=True):
        values = result.total[resource].values
        q = np.quantile(values, [0.1, 0.5, 0.9], axis=0)
        ax.fill_between(months, q[0], q[2], step="mid", alpha=0.3, label="P10-P90")
        ax.plot(months, q[1], drawstyle="steps-mid", label="P50")
        ax.plot(months, installed_series(result, resource, months), "k--", label="installed")
        ax.set_title(label)
        ax.legend(frameon=False, fontsize=8, loc="upper left")
    figs["capacity"] = report.inline_png(fig, tight=True)

    fig, ax = plt.subplots(figsize=(8, 3))
    for metric, rows in result.shortfall.groupby("metric", sort=False):
        ax.plot(rows["month"], rows["probability"], label=metric)
    ax.axhline(0.1, color="grey", lw=0.8, ls=":")
    ax.set_ylim(0, 1.02)
    ax.set_title("Probability that need exceeds installed, per month")
    ax.legend(frameon=False, fontsize=8)
    figs["shortfall"] = report.inline_png(fig, tight=True)
    return figs


def baseline_decision_table(result) -> pd.DataFrame:
    total = result.total
    months = pd.DatetimeIndex(total["month"].values)
    target = result.scenario.facility.shortfall_target
    sf = result.shortfall.set_index(["metric", "month"])["probability"]
    rows = []
    for year in sorted(set(months.year)):
        in_year = months.year == year
        for resource, _ in RESOURCES:
            peak = total[resource].values[:, in_year].max(axis=1)
            p50, plan = np.quantile(peak, [0.5, round(1 - target, 6)])
            risk = float(sf.loc[resource].reindex(months[in_year]).max())
            rows.append(
                {
                    "year": int(year),
                    "months": int(in_year.sum()),
                    "resource": resource,
                    "p50": float(p50),
                    "plan": float(plan),
                    "installed": float(installed_series(result, resource, months)[in_year].min()),
                    "max_shortfall_probability": risk,
                    "short": bool(risk > target),
                }
            )
    return pd.DataFrame(rows)


def _baseline_per_period(var: xr.DataArray, flow: bool, freq: str) -> xr.DataArray:
    if freq == "month":
        return var
    grouped = var.groupby(var["month"].dt.year)
    return (grouped.sum("month") if flow else grouped.mean("month")).rename(year="period")


def baseline_finance_table(req, total, demand, quantiles, launched=None) -> pd.DataFrame:
    # without the launched_mean column: a mean over draws per month, cheap beside the rest
    sources = export.finance_sources(req, total, demand)  # the same inputs as the current code
    months = pd.DatetimeIndex(demand["month"].values)
    rows = []
    for freq in ("year", "month"):
        columns: dict[str, np.ndarray] = {}
        index = None
        for metric, (by_program, facility_total, unit) in sources.items():
            flow = metric in export.FLOWS
            both = xr.concat(
                [by_program, facility_total.expand_dims(program=["total"])], dim="program"
            ).transpose("draw", "month", "program")
            per = _baseline_per_period(both, flow, freq)
            dim = "month" if freq == "month" else "period"
            arr = np.asarray(per.transpose("draw", dim, "program").values, float)
            unit_label = f"{unit} per period" if flow else f"{unit}, average"
            method = "inverted_cdf" if metric in export.COUNTS else "linear"
            columns[f"{metric}_mean [{unit_label}]"] = arr.mean(axis=0).reshape(-1)
            qs = np.quantile(arr, quantiles, axis=0, method=method)
            for q, values in zip(quantiles, qs, strict=True):
                columns[f"{metric}_{export.quantile_label(q)} [{unit_label}]"] = values.reshape(-1)
            if index is None:
                index = (per[dim].values, np.asarray(per["program"].values, str))
        periods, programs = index
        if freq == "month":
            labels = pd.DatetimeIndex(periods).strftime("%Y-%m")
            n_months = np.ones(len(periods), int)
        else:
            labels = np.asarray(periods).astype(str)
            n_months = np.array([(months.year == int(y)).sum() for y in periods])
        rows.append(
            pd.DataFrame(
                {
                    "granularity": freq,
                    "period": np.repeat(labels, len(programs)),
                    "months_in_period": np.repeat(n_months, len(programs)),
                    "program": np.tile(programs, len(periods)),
                    **columns,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


@contextmanager
def baseline_code():
    """write_run with the baseline figures, finance table and decision table swapped in
    (in the modules that look them up: the page's render, the decision rows' tables)."""
    saved = (render.report_figures, tables.decision_table, export.finance_table)
    render.report_figures, tables.decision_table, export.finance_table = (
        baseline_figures,
        baseline_decision_table,
        baseline_finance_table,
    )
    try:
        yield
    finally:
        render.report_figures, tables.decision_table, export.finance_table = saved


# ---- timing ------------------------------------------------------------------------------


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def parts(result, folder: Path, baseline: bool) -> dict[str, float]:
    qs = result.scenario.run.quantiles
    req, total, demand = result.requirements, result.total, result.world.demand
    figures = baseline_figures if baseline else report.report_figures
    finance = baseline_finance_table if baseline else export.finance_table
    decision = baseline_decision_table if baseline else report.decision_table
    return {
        "figures": _time(lambda: figures(result)),
        "finance+decision tables": _time(
            lambda: (finance(req, total, demand, qs), decision(result))
        ),
        "requirements+demand tables (same code)": _time(
            lambda: (export.requirements_table(req, total, qs), export.demand_table(demand, qs))
        ),
        "draws.nc (same code)": _time(
            lambda: export.write_draws(folder / "draws.nc", result.world, req, total)
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sc = load_scenario(example_scenario_path())
    result = run_scenario(sc)
    times: dict[str, list[float]] = {"baseline": [], "current": []}
    part_times: dict[str, dict[str, list[float]]] = {"baseline": {}, "current": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)

        def write(name: str) -> float:
            folder = tmp / name
            folder.mkdir()
            t0 = time.perf_counter()
            write_run(folder, result, xlsx=False, version="bench", t0=t0)
            return time.perf_counter() - t0

        with baseline_code():  # warm-up: imports, font cache, first-figure costs
            write("warm-baseline")
        write("warm-current")
        for i in range(args.rounds):
            order = ("baseline", "current") if i % 2 == 0 else ("current", "baseline")
            for which in order:
                if which == "baseline":
                    with baseline_code():
                        times["baseline"].append(write(f"baseline-{i}"))
                else:
                    times["current"].append(write(f"current-{i}"))
                for part, t in parts(result, tmp / f"{which}-{i}", which == "baseline").items():
                    part_times[which].setdefault(part, []).append(t)
    base, current = statistics.median(times["baseline"]), statistics.median(times["current"])
    print(
        f"write_run, {sc.run.draws} draws, median of {args.rounds} alternating rounds "
        f"(warm process):"
    )
    print(f"{'part':42s}{'baseline s':>12s}{'current s':>12s}{'ratio':>10s}")
    for part in part_times["baseline"]:
        b = statistics.median(part_times["baseline"][part])
        c = statistics.median(part_times["current"][part])
        print(f"{part:42s}{b:12.3f}{c:12.3f}{b / c:10.2f}")
    print(f"{'write_run (whole folder)':42s}{base:12.3f}{current:12.3f}{base / current:10.2f}")


if __name__ == "__main__":
    main()
