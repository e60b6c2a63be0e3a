"""The report's tables and numbers: the decision table (need per year and resource against
what is installed), the commercial demand per program and year, and how amounts and
probabilities are written.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pmcap.run import RunResult

RESOURCES = (
    ("suites", "Suites"),
    ("operator_fte", "Operators (FTE)"),
    ("qc_fte", "QC analysts (FTE)"),
    ("qa_fte", "QA (FTE)"),
)


def installed_series(result: RunResult, resource: str, months: pd.DatetimeIndex) -> np.ndarray:
    """The installed level of ``resource`` (``suites``, ``operator_fte`` ...) in each month."""
    value = result.installed[resource]
    if isinstance(value, pd.Series):
        return value.reindex(months).to_numpy(float)
    return np.full(len(months), float(value))


def plan_quantile(result: RunResult) -> float:
    """The quantile of need the decision table shows beside the median: one minus
    ``facility.shortfall_target`` (0.9 at the default target of 10%), the level the module
    and hiring plans size to and the shading compares with."""
    return round(1.0 - result.scenario.facility.shortfall_target, 6)


def plan_label(result: RunResult) -> str:
    """The name of :func:`plan_quantile`'s column: ``P90`` at the default target."""
    return f"P{100 * plan_quantile(result):g}"


def decision_table(result: RunResult, upper: float | None = None) -> pd.DataFrame:
    """Per year and resource: the median and the ``upper`` quantile (default
    :func:`plan_quantile`) of each draw's peak month in the year, the least installed in the
    year, the largest monthly shortfall probability and whether it exceeds the shortfall
    target. Columns ``year, months, resource, p50, plan, installed,
    max_shortfall_probability, short``."""
    total = result.total
    months = pd.DatetimeIndex(total["month"].values)
    target = result.scenario.facility.shortfall_target
    upper = plan_quantile(result) if upper is None else upper
    sf = result.shortfall.set_index(["metric", "month"])["probability"]
    years = sorted(set(months.year))
    in_year = [months.year == year for year in years]
    per_resource = {}
    for resource, _ in RESOURCES:
        values = total[resource].values
        # each draw's peak month per year (draw x year), then both quantiles of every year
        peaks = np.stack([values[:, mask].max(axis=1) for mask in in_year], axis=1)
        risk = sf.loc[resource].reindex(months)
        per_resource[resource] = (
            np.quantile(peaks, [0.5, upper], axis=0),
            risk.groupby(months.year).max(),
            installed_series(result, resource, months),
        )
    rows = []
    for i, (year, mask) in enumerate(zip(years, in_year, strict=True)):
        for resource, _ in RESOURCES:
            (p50, plan), risk, installed = per_resource[resource]
            rows.append(
                {
                    "year": int(year),
                    "months": int(mask.sum()),
                    "resource": resource,
                    "p50": float(p50[i]),
                    "plan": float(plan[i]),
                    "installed": float(installed[mask].min()),
                    "max_shortfall_probability": float(risk.loc[year]),
                    "short": bool(risk.loc[year] > target),
                }
            )
    return pd.DataFrame(rows)


def decision_rows(result: RunResult) -> list[dict]:
    """:func:`decision_table` formatted for the report: one row per year."""
    rows = []
    for (year, n), cells in decision_table(result).groupby(["year", "months"], sort=True):
        cells = cells.set_index("resource").loc[[r for r, _ in RESOURCES]]
        rows.append(
            {
                "year": f"{year}" + ("" if n == 12 else f" ({n} mo)"),
                "cells": [
                    {
                        "p50": f"{c.p50:.1f}",
                        "plan": f"{c.plan:.1f}",
                        "installed": f"{c.installed:g}",
                        "short": bool(c.short),
                    }
                    for c in cells.itertuples()
                ],
            }
        )
    return rows


def percent(p: float) -> str:
    """A probability as a percentage of 3 significant digits: ``8.7%``, ``58.1%``, ``100%``."""
    return f"{100 * p:.3g}%"


def program_demand_table(result: RunResult) -> pd.DataFrame:
    """Per calendar year and program with a commercial stream: the mean and the percentiles
    (``run.quantiles``, values some draw took) of each draw's commercial patients in the
    year, and ``p_launched``, the share of draws in which the program has launched by the
    year's last month in the horizon (:meth:`forecast.PortfolioDraws.launched_by_month`).
    A program launched in fewer than 1 - q of the draws has a q percentile of 0 whatever its
    mean. Columns ``year, months, program, p_launched, mean, pQ...``."""
    world = result.world
    qs = result.scenario.run.quantiles
    commercial = world.demand.sel(stream="commercial").transpose("draw", "month", "program")
    months = pd.DatetimeIndex(commercial["month"].values)
    programs = [
        str(p) for p in commercial["program"].values if commercial.sel(program=p).values.any()
    ]
    launched = world.launched_by_month().sel(program=programs).mean("draw")
    launched = launched.transpose("month", "program").values
    values = commercial.sel(program=programs).values
    rows = []
    for year in sorted(set(months.year)):
        in_year = np.flatnonzero(months.year == year)
        annual = values[:, in_year, :].sum(axis=1)  # draw x program
        bands = np.quantile(annual, qs, axis=0, method="inverted_cdf")
        for j, program in enumerate(programs):
            row = {
                "year": int(year),
                "months": len(in_year),
                "program": program,
                "p_launched": float(launched[in_year[-1], j]),
                "mean": float(annual[:, j].mean()),
            }
            row.update({f"p{100 * q:g}": float(b[j]) for q, b in zip(qs, bands, strict=True)})
            rows.append(row)
    return pd.DataFrame(rows)


def program_demand_rows(result: RunResult) -> tuple[list[str], list[dict]]:
    """:func:`program_demand_table` formatted for the report: the programs, and one row
    per year with, per program, P(launched), the mean and the percentiles."""
    table = program_demand_table(result)
    qlabels = [f"p{100 * q:g}" for q in result.scenario.run.quantiles]
    programs = list(dict.fromkeys(table["program"]))
    rows = []
    for (year, n), cells in table.groupby(["year", "months"], sort=True):
        cells = cells.set_index("program").loc[programs]
        rows.append(
            {
                "year": f"{year}" + ("" if n == 12 else f" ({n} mo)"),
                "cells": [
                    [percent(c["p_launched"]), f"{c['mean']:.1f}"] + [f"{c[q]:g}" for q in qlabels]
                    for _, c in cells.iterrows()
                ],
            }
        )
    return programs, rows


def demand_notes(result: RunResult) -> list[str]:
    """One sentence per program whose commercial upper band (the highest of
    ``run.quantiles``) is 0 in months where its mean is not, because it launches in few
    draws: P(launched) by the horizon's end and the mean of the last year concerned, so the
    program does not read as "no demand"."""
    world = result.world
    upper = max(result.scenario.run.quantiles)
    commercial = world.demand.sel(stream="commercial").transpose("draw", "month", "program")
    months = pd.DatetimeIndex(commercial["month"].values)
    values = commercial.values
    band = np.quantile(values, upper, axis=0, method="inverted_cdf")  # month x program
    hidden = (band == 0) & (values.mean(axis=0) > 0)
    launched = world.launched_by_month().mean("draw").transpose("month", "program").values
    notes = []
    for j, program in enumerate(map(str, commercial["program"].values)):
        if not hidden[:, j].any():
            continue
        last = months[hidden[:, j]][-1]
        in_year = months.year == last.year
        annual_mean = values[:, in_year, j].sum(axis=1).mean()
        at_last = launched[months.get_loc(last), j]
        at_end = last == months[-1]
        where = " (the horizon's end)" if at_end else ""
        tail = (
            ""
            if at_end
            else f"; by the horizon's end ({months[-1]:%Y-%m}) it has launched in "
            f"{percent(launched[-1, j])} of draws"
        )
        notes.append(
            f"{program}: its commercial P{100 * upper:g} is 0 in {int(hidden[:, j].sum())} "
            f"months up to {last:%Y-%m}{where}, by when "
            f"it has launched in {percent(at_last)} of draws, though its mean is "
            f"{annual_mean:.1f} patients in {last.year} (the dashed line on the chart){tail}."
        )
    return notes


LABELS = {
    "suites": "suites",
    "operator_fte": "operators",
    "qc_fte": "QC analysts",
    "qa_fte": "QA staff",
    "any": "any resource",
}


def money(value: float, currency: str) -> str:
    """An amount for a reader, to 3 significant digits from a million up: ``USD 120 million``,
    ``EUR 1.25 million``, ``USD 2.5 billion``, ``GBP 95,000``."""
    for scale, word in ((1e9, "billion"), (1e6, "million")):
        if abs(value) >= 0.9995 * scale:
            number = value / scale
            text = f"{number:.3g}" if abs(number) < 999.5 else f"{number:,.0f}"
            return f"{currency} {text} {word}"
    return f"{currency} {value:,.0f}"
