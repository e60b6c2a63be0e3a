"""The self-contained HTML report of a run: inline PNG charts, no network access.

Sections (``templates/report.html``): the decisions (what to build or hire when, from the
module and hiring plans, with key facts), demand, capacity against installed, what drives
the P90 suite need, sampler diagnostics, and the assumptions and sources with the scenario as
written. Charts are drawn in matplotlib's default style on ``Figure`` objects (never pyplot),
so the caller's settings and backend are left alone.
"""

from __future__ import annotations

import io
from importlib import resources

import numpy as np
import pandas as pd

from pmcap._style import default_style
from pmcap.run import DIAGNOSTIC_LIMITS, RunResult, diagnostics_pass
from pmcap.scenario import Scenario

__all__ = [
    "decision_rows",
    "decision_table",
    "demand_notes",
    "inline_png",
    "installed_series",
    "key_facts",
    "program_demand_rows",
    "program_demand_table",
    "headline",
    "money",
    "render_report",
    "report_figures",
    "report_title",
]

RESOURCES = (
    ("suites", "Suites"),
    ("operator_fte", "Operators (FTE)"),
    ("qc_fte", "QC analysts (FTE)"),
    ("qa_fte", "QA (FTE)"),
)


def inline_png(fig, tight: bool = True) -> str:
    """The figure as an inline PNG (base64): self-contained and several times faster to
    render than SVG for fan charts with thousands of vertices.

    ``tight`` crops to the drawn content (``bbox_inches="tight"``), which draws the figure
    twice; the report's own charts lay themselves out (:func:`fixed_layout`) and pass
    ``tight=False`` to be drawn once."""
    import base64

    buf = io.BytesIO()
    fig.savefig(
        buf,
        format="png",
        dpi=90,
        bbox_inches="tight" if tight else None,
        metadata={"Software": None},
    )
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img alt="chart" src="data:image/png;base64,{data}">'


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


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _upper(text: str) -> str:
    return text[:1].upper() + text[1:]


def headline(result: RunResult) -> dict:
    """The one-line answer the report opens with, from the decision tables: what runs short
    first and when (``shortfall.csv``: the first month whose shortfall probability with what
    is installed exceeds the target), what to commit now (the modules of ``plan.csv`` whose
    commit month is the month of ``run.as_of`` or earlier, with their capital and running
    cost), when to open the first requisition (the earliest hiring commit month) and how
    sure (the plans' target, and the highest monthly shortfall probability of the plan in the
    months before a new module or hire can be online). Returns the sentences (``answer``,
    ``lines``: (label, text) pairs) and the numbers behind them (``numbers``)."""
    sc = result.scenario
    fac, costs = sc.facility, sc.costs
    cur = costs.currency
    target = fac.shortfall_target
    now = pd.Timestamp(sc.run.as_of).to_period("M").to_timestamp()
    numbers: dict = {"target": target}
    sf = result.shortfall
    over = sf[(sf["probability"] > target) & (sf["metric"] != "any")]
    lines = []
    if len(over):
        first = over["month"].min()
        which = [
            m for m, _ in RESOURCES if ((over["metric"] == m) & (over["month"] == first)).any()
        ]
        numbers.update(first_short_month=f"{first:%Y-%m}", first_short=which)
        limit = (
            "Runs short first",
            f"{_and([LABELS[m] for m in which])} from {first:%Y-%m}: the chance that need "
            f"exceeds what is installed is over {100 * target:g}%.",
        )
        short_answer = f"{_upper(_and([LABELS[m] for m in which]))} run short from {first:%Y-%m}."
    else:
        numbers.update(first_short_month=None, first_short=[])
        limit = (
            "Runs short",
            f"nothing: no month has a chance of a shortfall over {100 * target:g}% with what "
            "is installed.",
        )
        short_answer = "What is installed covers the need."
    lines.append(limit)

    c = result.plans["suites"].commitments
    due = c[c["commit_month"] <= now]
    n_now = len(due)
    numbers.update(modules_now=n_now, modules_total=len(c))
    if n_now:
        online = due["online_month"].min()
        capital = n_now * costs.module_capital
        per_year = n_now * fac.module_cost_per_year
        numbers.update(online=f"{online:%Y-%m}", capital=capital, operating_per_year=per_year)
        cost = f"capital {money(capital, cur)}" if capital else "no capital cost given"
        run = f", then {money(per_year, cur)} a year to run" if per_year else ""
        commit = (
            "Commit now",
            f"{n_now} module{'s' * (n_now > 1)} ({n_now * fac.module_suites} suites), online "
            f"{online:%Y-%m}: {cost}{run}.",
        )
        commit_answer = f"Commit {n_now} module{'s' * (n_now > 1)} now ({cost})."
    elif len(c):
        nxt = c.iloc[0]
        numbers.update(next_commit=f"{nxt['commit_month']:%Y-%m}")
        commit = (
            "Commit now",
            f"nothing; the first module is due {nxt['commit_month']:%Y-%m} (online "
            f"{nxt['online_month']:%Y-%m}), capital {money(costs.module_capital, cur)}.",
        )
        commit_answer = f"No module to commit now (next: {nxt['commit_month']:%Y-%m})."
    else:
        commit = ("Commit now", "nothing: no new module is needed over the horizon.")
        commit_answer = "No new module is needed."
    lines.append(commit)

    hires = {r: result.plans[r].commitments for r, _ in RESOURCES[1:] if r in result.plans}
    firsts = {r: h["commit_month"].min() for r, h in hires.items() if len(h)}
    if firsts:
        when = min(firsts.values())
        roles = [r for r, m in firsts.items() if m == when]
        fte = {r: int((hires[r]["commit_month"] == when).sum()) for r in roles}
        staff = sum(fte[r] * costs.salary(r) for r in roles)
        numbers.update(first_requisition=f"{when:%Y-%m}", requisition_fte=fte, staff_cost=staff)
        is_now = " (now)" if when <= now else ""
        what = _and([f"{fte[r]} {LABELS[r]}" for r in roles])
        lines.append(
            (
                "First requisition",
                f"{when:%Y-%m}{is_now}: {what}, {money(staff, cur)} a year in loaded salaries.",
            )
        )
        hire_answer = f"Open the first requisition {when:%Y-%m}{is_now}."
    else:
        numbers.update(first_requisition=None)
        lines.append(("First requisition", "none: no hire is needed over the horizon."))
        hire_answer = "No hire is needed."

    # before a new unit can be online the plan cannot help: say how short it may be then
    worst, worst_month, worst_what = 0.0, None, None
    for resource, plan in result.plans.items():
        bm = plan.by_month
        early = bm[~bm["helpable"]]
        if len(early) and early["shortfall_probability"].max() > worst:
            i = early["shortfall_probability"].idxmax()
            worst = float(early.loc[i, "shortfall_probability"])
            worst_month, worst_what = early.loc[i, "month"], resource
    numbers.update(worst_before_online=worst)
    sure = (
        f"the plan keeps each resource's chance of running short under {100 * target:g}% in "
        f"every month it can reach, each on its own, not all at once ({sc.run.draws} draws)"
    )
    if worst > target:
        sure += (
            f"; before new capacity can be online it is up to {percent(worst)} "
            f"({LABELS[worst_what]}, {worst_month:%Y-%m})."
        )
    else:
        sure += "."
    joint = getattr(result, "joint_shortfall", None)  # the chance that any resource is short
    if joint is not None and joint["helpable"].any():
        reach = joint[joint["helpable"]]
        i = reach["probability"].idxmax()
        any_worst, any_month = float(reach.loc[i, "probability"]), reach.loc[i, "month"]
        numbers.update(any_short_worst=any_worst, any_short_month=f"{any_month:%Y-%m}")
        sure += (
            f" All resources at once: the chance that any of them runs short is up to "
            f"{percent(any_worst)} in a month every plan can reach ({any_month:%Y-%m})."
        )
    lines.append(("How sure", sure))
    sure_answer = (
        f"Each resource is planned for a {100 * (1 - target):g}% chance of enough each month."
    )
    answer = " ".join([short_answer, commit_answer, hire_answer, sure_answer])
    return {"answer": answer, "lines": lines, "numbers": numbers}


def key_facts(result: RunResult) -> list[str]:
    facts = []
    sf = result.shortfall
    target = result.scenario.facility.shortfall_target
    over = sf[sf["probability"] > target]
    first = over.groupby("metric")["month"].min()
    if "any" in first:
        detail = ", ".join(f"{LABELS[m]} {first[m]:%Y-%m}" for m, _ in RESOURCES if m in first)
        facts.append(
            f"First month with a shortfall probability over {100 * target:g}% with what is "
            f"installed: {first['any']:%Y-%m} ({detail})."
        )
    else:
        facts.append(
            f"No month has a shortfall probability over {100 * target:g}% with what is installed."
        )
    if result.service is not None:
        sl = result.service
        lvl = result.scenario.facility.service_level
        made_with = ", ".join(f"{p} {name}" for p, name in result.service_processes.items())
        facts.append(
            f"Service level: to keep {100 * (1 - lvl.epsilon):g}% of patients waiting under "
            f"{lvl.max_wait_days:g} days for a suite over the horizon you need {sl['p50']} "
            f"suites at P50 and {sl['p90']} at P90 (day-level simulation of {sl['draws']} "
            f"draws, lots made with each program's own process: {made_with})."
        )
    plan = result.plans["suites"]
    c = plan.commitments
    sc = result.scenario
    fac = sc.facility
    if len(c):
        commit, online = c["commit_month"].iloc[0], c["online_month"].iloc[0]
        decided = pd.Timestamp(result.scenario.run.as_of).to_period("M").to_timestamp()
        late = (
            " - that is now: the need arises before a module committed today can be online"
            if commit <= decided
            else ""
        )
        now = int((c["commit_month"] == commit).sum())
        cost = (
            f" Expected running cost of the added modules over the horizon: "
            f"{money(plan.cost['total'], sc.costs.currency)}."
            if fac.module_cost_per_year
            else ""
        )
        facts.append(
            f"Next module ({fac.module_suites} suites, {fac.module_lead_time_months} months lead "
            f"time): commit {now} module(s) {commit:%Y-%m} to be online {online:%Y-%m}{late}; "
            f"{len(c)} module(s) in all over the horizon to keep the monthly shortfall "
            f"probability under {plan.target:g}.{cost}"
        )
    else:
        facts.append("No new module is needed over the horizon at the shortfall target.")
    for role, label in RESOURCES[1:]:
        hires = result.plans[role].commitments
        if len(hires):
            facts.append(
                f"{label}: open the first requisition {hires['commit_month'].iloc[0]:%Y-%m} "
                f"({len(hires)} FTE to add by {hires['online_month'].iloc[-1]:%Y-%m}; staffing "
                "only the suites the module plan brings online, so it can differ from the "
                "shortfall dates above, which compare need with what is installed today)."
            )
    wf = result.workforce
    if wf is not None and (wf.by_month["requisitions"] > 0).any():
        first = wf.by_month.loc[wf.by_month["requisitions"] > 0].iloc[0]
        facts.append(
            f"With [workforce] (workforce.csv): open the first operator requisitions "
            f"{pd.Timestamp(first['month']):%Y-%m} ({first['requisitions']:g}), counting "
            "recruiting, training, mentoring and attrition. The operator lines above do not "
            "count them yet; where the two differ, plan hiring from workforce.csv."
        )
    facts += vector_facts(result)
    return facts


def vector_facts(result: RunResult) -> list[str]:
    """One key fact per process with a ``[vector]``: its campaign calendar, P(a lot waits
    for vector) and the doses that expire unused (from :func:`capacity.plan_vector`)."""
    facts = []
    currency = result.scenario.costs.currency
    for process, plan in (getattr(result, "vector", None) or {}).items():
        by_month = plan.by_month
        started = by_month.loc[by_month["campaigns_started"] > 0, "month"]
        planned = by_month[by_month["planned"]]
        totals = plan.totals.set_index("metric")
        when = (
            f"the first {pd.Timestamp(started.iloc[0]):%Y-%m}"
            + (f", the next {pd.Timestamp(started.iloc[1]):%Y-%m}" if len(started) > 1 else "")
            if len(started)
            else "none needed"
        )
        risk = (
            f"P(a lot waits for vector) is at most {percent(planned['wait_probability'].max())} "
            f"a month from {pd.Timestamp(planned['month'].iloc[0]):%Y-%m}, the first month a "
            f"campaign started now can reach (target {percent(plan.target)})"
            if len(planned)
            else "no month is within reach of a campaign started now"
        )
        cost = f"; campaigns cost {money(plan.cost, currency)}" if plan.cost else ""
        facts.append(
            f"Vector of {process} (vector.csv): start {len(plan.starts)} campaign(s), {when}; "
            f"{risk}. Over the horizon a draw releases {totals.loc['doses_made', 'p50']:,.0f} "
            f"doses at P50 and loses {totals.loc['doses_expired', 'p50']:,.0f} to expiry (P90 "
            f"{totals.loc['doses_expired', 'p90']:,.0f}){cost}."
        )
    return facts


# Fixed chart layout, in inches: room for y tick labels of ``n`` characters at the default
# 10 pt (a digit is about 0.09 in), for x tick labels below and a 12 pt title above. A
# figure laid out ahead is drawn once (``bbox_inches="tight"`` draws it twice), and explicit
# date ticks avoid the automatic date locator's layout of every shared axis, the largest
# cost of writing a run.
_CHAR_IN = 0.09
_RIGHT_IN = 0.15
_BOTTOM_IN = 0.35
_TOP_IN = 0.32


def _ylabel_chars(axes) -> int:
    """The longest y tick label of ``axes`` (as they will be drawn), in characters."""
    longest = 1
    for ax in axes:
        lo, hi = sorted(ax.get_ylim())
        ticks = [t for t in ax.yaxis.get_majorticklocs() if lo <= t <= hi]
        labels = ax.yaxis.get_major_formatter().format_ticks(ticks)
        longest = max(longest, *map(len, labels)) if labels else longest
    return longest


def fixed_layout(fig, axes, nrows: int, ncols: int) -> float:
    """Place the axes grid with margins sized for its tick labels and titles (no draw);
    returns the width of one axes in inches."""
    width, height = fig.get_size_inches()
    left = 0.2 + _CHAR_IN * _ylabel_chars(axes)
    gap_w = left + _RIGHT_IN
    gap_h = _TOP_IN + 0.12
    ax_w = (width - left - _RIGHT_IN - (ncols - 1) * gap_w) / ncols
    ax_h = (height - _BOTTOM_IN - _TOP_IN - (nrows - 1) * gap_h) / nrows
    fig.subplots_adjust(
        left=left / width,
        right=1 - _RIGHT_IN / width,
        bottom=_BOTTOM_IN / height,
        top=1 - _TOP_IN / height,
        wspace=gap_w / ax_w,
        hspace=gap_h / ax_h,
    )
    return ax_w


def date_axis(ax, x: np.ndarray, width_in: float) -> None:
    """Year ticks (every year if they fit, else every few), or month ticks for a horizon
    of under three years; set explicitly, which is much cheaper to lay out than the
    automatic date locator on shared axes. ``x`` holds the months as matplotlib dates."""
    import matplotlib.dates as mdates

    first, last = mdates.num2date(x[0]), mdates.num2date(x[-1])
    years = last.year - first.year + 1
    if len(x) >= 36:
        fits = max(2, int(width_in / 0.45))
        ax.xaxis.set_major_locator(mdates.YearLocator(max(1, -(-years // fits))))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y"))
    else:
        fits = max(2, int(width_in / 0.7))
        step = next(s for s in (1, 2, 3, 4, 6, 12) if s == 12 or len(x) / s <= fits)
        ax.xaxis.set_major_locator(mdates.MonthLocator(bymonth=range(1, 13, step)))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m"))


@default_style
def report_figures(result: RunResult) -> dict[str, str]:
    """The report's charts as inline PNG ``<img>`` tags: ``demand`` (patients per month by
    stream: P50 line, P10-P90 band and mean dashed, per program), ``approval``,
    ``capacity`` (need per resource with installed) and ``shortfall`` (probability per
    month)."""
    import matplotlib.dates as mdates

    # Figure objects, not pyplot: no global backend or figure registry is touched (a
    # notebook's inline charts keep working after a run)
    from matplotlib.figure import Figure

    demand = result.world.demand
    months = pd.DatetimeIndex(demand["month"].values)
    grid = months.to_numpy("datetime64[ns]")
    # plain date numbers: no unit conversion per artist, and the explicit date ticks below
    x = mdates.date2num(grid)
    figs = {}

    # titles get an explicit y: matplotlib then skips re-measuring every (shared) axis's
    # ticks to place them, which it would do for each of the three titles of each axes
    fig = Figure(figsize=(10.6, 3.2))
    axes = fig.subplots(1, 3, sharex=True)
    programs = list(map(str, demand["program"].values))
    streams = ("clinical", "commercial", "ppq")
    values = demand.transpose("draw", "month", "program", "stream").sel(stream=list(streams))
    values = values.values
    q_all = np.quantile(values, [0.1, 0.5, 0.9], axis=0)  # quantile x month x program x stream
    # the mean beside the percentiles: a program launched in fewer than 10% of draws has a
    # P10-P90 band of 0 and would otherwise look like no demand
    mean_all = values.mean(axis=0)  # month x program x stream
    present = values.any(axis=(0, 1))
    for j, (ax, stream) in enumerate(zip(axes, streams, strict=True)):
        for i, program in enumerate(programs):
            if not present[i, j]:
                continue
            q = q_all[:, :, i, j]
            (line,) = ax.plot(x, q[1], drawstyle="steps-mid", label=program)
            ax.fill_between(x, q[0], q[2], step="mid", alpha=0.2, color=line.get_color())
            ax.plot(x, mean_all[:, i, j], ls="--", lw=1, color=line.get_color())
        if present[:, j].any():
            ax.plot([], [], ls="--", lw=1, color="grey", label="mean")
        unit = "lots" if stream == "ppq" else "patients"
        ax.set_title(f"{stream} ({unit}/month, P10-P50-P90)", fontsize=10, y=1.0)
        ax.legend(frameon=False, fontsize=8, loc="upper left")
    date_axis(axes[0], x, fixed_layout(fig, axes, 1, 3))
    figs["demand"] = inline_png(fig, tight=False)

    fig = Figure(figsize=(6.7, 2.95))
    ax = fig.subplots()
    events = result.world.events
    for program in map(str, events["program"].values):
        approval = events["approval"].sel(program=program).values
        if np.isnat(approval).all():
            continue
        share = (approval[:, None] <= grid[None, :]).mean(axis=0)
        ax.plot(x, share, label=program)
    ax.set_ylim(0, 1.02)
    ax.set_title("P(approved by month)", y=1.0)
    ax.legend(frameon=False, fontsize=8)
    date_axis(ax, x, fixed_layout(fig, [ax], 1, 1))
    figs["approval"] = inline_png(fig, tight=False)

    fig = Figure(figsize=(10.6, 5.25))
    axes = fig.subplots(2, 2, sharex=True)
    for ax, (resource, label) in zip(axes.ravel(), RESOURCES, strict=True):
        q = np.quantile(result.total[resource].values, [0.1, 0.5, 0.9], axis=0)
        ax.fill_between(x, q[0], q[2], step="mid", alpha=0.25, color="C0", label="need, P10-P90")
        ax.plot(x, q[1], drawstyle="steps-mid", color="C0", lw=1, label="need, P50")
        ax.plot(
            x,
            installed_series(result, resource, months),
            "k--",
            lw=1,
            label="installed (no new commitment)",
        )
        plan = result.plans.get(resource)
        if plan is not None:
            online = plan.by_month.set_index("month")["capacity"].reindex(months).to_numpy(float)
            # steps-mid as the need: month m's capacity over month m's need
            staffed = "with the plan" if resource == "suites" else "with the plan (suites online)"
            ax.plot(x, online, drawstyle="steps-mid", color="C2", lw=2, label=staffed)
            if resource == "suites":  # a dot per module online (hires are too many to dot)
                added = mdates.date2num(plan.commitments["online_month"].drop_duplicates())
                at = np.searchsorted(x, added).clip(0, len(x) - 1)
                ax.plot(x[at], online[at], "o", color="C2", ms=4)
        ax.set_title(label, y=1.0)
        ax.legend(frameon=False, fontsize=8, loc="upper left")
    date_axis(axes[0, 0], x, fixed_layout(fig, axes.ravel(), 2, 2))
    figs["capacity"] = inline_png(fig, tight=False)

    fig = Figure(figsize=(6.7, 2.95))
    ax = fig.subplots()
    for metric, rows in result.shortfall.groupby("metric", sort=False):
        month = mdates.date2num(rows["month"].to_numpy("datetime64[ns]"))
        ax.plot(month, rows["probability"], label=LABELS.get(metric, metric))
    target = result.scenario.facility.shortfall_target
    ax.axhline(target, color="grey", lw=0.8, ls=":")
    ax.set_ylim(0, 1.02)
    ax.set_title("Chance that need exceeds what is installed or scheduled, per month", y=1.0)
    ax.legend(frameon=False, fontsize=8)
    date_axis(ax, x, fixed_layout(fig, [ax], 1, 1))
    figs["shortfall"] = inline_png(fig, tight=False)
    return figs


def report_title(sc: Scenario, title: str | None = None) -> str:
    """The report's name: ``title`` (a sweep names its scenario), else the scenario's
    ``run.title``, else its file and folder (``my-plan/scenario.toml``)."""
    if title:
        return title
    if sc.run.title:
        return sc.run.title
    return sc.path.parent.name + "/" + sc.path.name if sc.path else "scenario"


def render_report(
    result: RunResult,
    scenario_text: str,
    version: str,
    overrides: str = "",
    title: str | None = None,
) -> str:
    """The report of ``result`` as one HTML page. ``scenario_text`` is shown as run,
    ``version`` is pmcap's, ``overrides`` names command-line overrides (``draws=200``) and
    ``title`` names the run in the heading (default: :func:`report_title`)."""
    import jinja2

    sc = result.scenario
    qs = sc.run.quantiles
    qlabels = [f"p{100 * q:g}" for q in qs]
    events = []
    for row in result.world.event_percentiles(qs).itertuples(index=False):
        row = row._asdict()
        if row["probability"] == 0:
            continue
        entry = {"program": row["program"], "event": row["event"].replace("_", " ")}
        entry["probability"] = f"{row['probability']:.2f}"
        for q in qlabels:
            entry[q] = "" if pd.isna(row[q]) else f"{row[q]:%Y-%m-%d}"
        events.append(entry)
    diagnostics = []
    failing = []
    for name, d in result.diagnostics.items():
        ok = diagnostics_pass(d)
        if not ok:
            failing.append(name)
        diagnostics.append(
            {
                "model": name,
                "source": result.fit_sources.get(name, ""),
                "r_hat": "closed form" if d.get("closed_form") else f"{d['r_hat_max']:.3f}",
                "ess": f"{d['ess_bulk_min']:.0f}",
                "div": d["divergences"],
                "status": "ok" if ok else "FAIL",
            }
        )
    drivers = [
        {"input": r.input, "rho": f"{r.spearman_rho:+.2f}"}
        for r in result.drivers.head(12).itertuples()
    ]
    months = pd.DatetimeIndex(result.total["month"].values)
    demand_programs, demand_rows = program_demand_rows(result)
    assumptions = [
        "Approval odds and phase durations: BIO/Informa/QLS, Clinical Development Success "
        f"Rates 2011-2020 (2021), table '{sc.models.phase_table}', pooled across its groups.",
        "Uptake: Bass adoption pooled across five US CAR-T launches (Kymriah, Yescarta, "
        "Tecartus, Breyanzi, Abecma) fitted to public quarterly and annual sales over US list "
        "prices; a new product draws p and q from that population.",
        "Enrollment: hierarchical Poisson-gamma site rates fitted to the trial's own data; "
        "sites not yet open activate after a learned delay or never (10% prior).",
        "Processes: "
        + "; ".join(
            sorted(
                {
                    f"{p.name} ({s.name})"
                    for p, s in zip(sc.program, result.processes.values(), strict=True)
                }
            )
        )
        + ". Every process parameter and its source is in the process file or template.",
        "Requirements: lots spread over the days they occupy a suite; binomial failures and "
        "re-runs; FTE from hands-on hours and the minimum crew per suite and shift.",
        "Lots in progress at the start (in_progress) are counted in the first months.",
    ]
    template = jinja2.Template(
        (resources.files("pmcap") / "templates" / "report.html").read_text(),
        autoescape=True,
    )
    return template.render(
        title=report_title(sc, title),
        as_of=sc.run.as_of,
        horizon=f"{months[0]:%Y-%m} to {months[-1]:%Y-%m}",
        draws=sc.run.draws,
        seed=sc.run.seed,
        version=version,
        diagnostics_ok=not failing,
        failing=failing,
        limits=DIAGNOSTIC_LIMITS,
        facts=key_facts(result),
        headline=headline(result),
        resources=[{"label": label} for _, label in RESOURCES],
        decision_rows=decision_rows(result),
        plan_label=plan_label(result),
        figures=report_figures(result),
        demand_notes=demand_notes(result),
        demand_programs=demand_programs,
        demand_rows=demand_rows,
        qlabels=qlabels,
        events=events,
        drivers=drivers,
        diagnostics=diagnostics,
        assumptions=assumptions,
        scenario_text=scenario_text,
        target=sc.facility.shortfall_target,
        overrides=overrides,
        materials=materials_section(result),
        network=network_paragraph(result),
        twin=twin_section(result),
    )


def materials_section(result: RunResult, top: int = 8) -> dict | None:
    """The report's materials block: the items most at risk and the spend per year.

    ``rows``: the ``top`` items of every process's bill by P(stock-out) averaged over the
    months of the horizon (then its worst month's), with the worst month and its value, the
    expected lots waiting for the item at the end of that month, the expected spend over the
    horizon and, for an item with a second supplier, the average P(stock-out) and the lots
    waiting in the worst month without it, and the premium it costs. The average ranks: the
    last months' levels cover only the months left in the horizon, so their P(stock-out)
    can exceed the target. ``spend``: per year, the mean and percentiles of each draw's
    materials spend in the year (all processes, as ``finance.csv``). None when no process
    has a bill of materials.
    """
    if not result.materials:
        return None
    from pmcap.export import materials_spend

    sc = result.scenario
    currency = sc.costs.currency
    rows = []
    for process, plan in result.materials.items():
        months = pd.DatetimeIndex(plan["month"].values)
        for item in map(str, plan["item"].values):
            one = plan.sel(item=item)
            p = one["stockout_probability"].values
            worst = int(np.argmax(p))
            row = {
                "process": process,
                "item": item,
                "p": float(p.mean()),
                "p_text": percent(float(p.mean())),
                "worst": float(p[worst]),
                "worst_text": percent(float(p[worst])),
                "month": f"{months[worst]:%Y-%m}",
                "lots": float(one["expected_lots_at_risk"].values[worst]),
                "spend": money(float(one["expected_spend"].values.sum()), currency),
                "single": "",
                "single_lots": "",
                "premium": "",
            }
            row["lots_text"] = f"{row['lots']:.1f}"
            if "stockout_probability_single_source" in one:
                alone = one["stockout_probability_single_source"].values
                if np.isfinite(alone).all():
                    row["single"] = percent(float(alone.mean()))
                    lots = one["expected_lots_at_risk_single_source"].values[worst]
                    row["single_lots"] = f"{float(lots):.1f}"
                    premium = float(one["expected_second_supplier_premium"].values.sum())
                    row["premium"] = money(premium, currency)
            rows.append(row)
    rows.sort(key=lambda r: (-r["p"], -r["worst"], r["process"], r["item"]))
    spend = materials_spend(result.materials, result.requirements["lots"]).sum("program")
    spend = spend.transpose("draw", "month").values
    years = pd.DatetimeIndex(result.requirements["month"].values).year.to_numpy()
    qs = sc.run.quantiles
    spend_rows = []
    for year in np.unique(years):
        each = spend[:, years == year].sum(axis=1)  # each draw's spend in the year
        cells = [money(float(v), currency) for v in np.quantile(each, qs)]
        spend_rows.append(
            {"year": int(year), "mean": money(float(each.mean()), currency), "cells": cells}
        )
    return {
        "rows": rows[:top],
        "more": max(len(rows) - top, 0),
        "second": any(r["single"] for r in rows[:top]),
        "spend": spend_rows,
        "target": percent(min(float(p.attrs["target"]) for p in result.materials.values())),
    }


def network_paragraph(result: RunResult) -> str | None:
    """The report's ``[network]`` paragraph (``None`` without it): the recommended
    commitments with dates, the expected discounted cost with its P10/P90, P(service met)
    and the value of waiting (:func:`capacity.plan_network`, ``network.csv``)."""
    run = getattr(result, "network", None)
    if run is None:
        return None
    plan, cur = run.plan, run.currency
    s = plan.summary

    def money(x: float) -> str:
        return f"{x / 1e6:,.1f}M {cur}".rstrip()

    commits = [
        f"{c.units} {'module(s)' if c.kind == 'own' else 'CDMO slot(s)'} at {c.site} "
        f"committed {c.commit_month:%Y-%m} (online {c.online_month:%Y-%m})"
        for c in plan.commitments.itertuples()
    ]
    text = (
        "Network plan (network.csv): "
        + ("; ".join(commits) if commits else "no new capacity")
        + f". Expected cost {money(s['expected_cost'])} discounted at "
        f"{result.scenario.network.discount_rate:g} a year (P10 {money(s['cost_p10'])}, "
        f"P90 {money(s['cost_p90'])}), P(every patient served) {s['service_probability']:.2f}, "
        f"cost per patient treated P50 {money(s['cost_per_patient_p50'])}."
    )
    for months, value in plan.value_of_waiting.items():
        verdict = "worth it" if value > 0 else "not worth it"
        text += (
            f" Waiting {months} months before committing changes the expected cost by "
            f"{money(-value)} (value of waiting {money(value)}: {verdict})."
        )
    return text


def _cause_label(cause: str) -> str:
    named = {"suites": "rooms (suites)", "crews": "operators (crews)", "downtime": "downtime"}
    if cause in named:
        return named[cause]
    return "QC analysts" if cause == "analysts" else f"QC instrument {cause}"


def twin_section(result: RunResult) -> dict | None:
    """The facility twin's block of the report (``[facility.twin]`` only): per year of
    apheresis the binding constraint and the vein-to-vein bands.

    * binding constraint: the cause with the largest share of the year's waiting days (days
      lots waited for suites, crews, downtime and each QC resource, summed over the year's
      patients and over draws), with that share and the share of suites; the P50 and P90
      across draws of each draw's mean days waited per patient in the year;
    * vein-to-vein: P50 and P90 across draws of each draw's median and 90th percentile of
      the year's treated patients' vein-to-vein days, and P(v2v > target): the share of the
      year's patients not infused within the target (lost patients count as over), pooled
      over draws.
    """
    from pmcap.twin_sizing import sizing_sentence

    twin = getattr(result, "twin", None)
    if twin is None:
        return None
    months = pd.DatetimeIndex(twin["month"].values)
    years = months.year.to_numpy()
    target = float(twin["share_v2v_over_target"].attrs.get("target_days", np.nan))
    patients = np.nan_to_num(twin["patients"].values)  # (draw, month)
    waits = np.nan_to_num(twin["wait_days"].transpose("draw", "month", "cause").values)
    total = waits * patients[..., None]  # waiting days (draw, month, cause)
    causes = [str(c) for c in twin["cause"].values]
    over = np.nan_to_num(twin["share_v2v_over_target"].values) * patients
    # per patient: year of apheresis, v2v days
    first = months[0]
    day = twin["apheresis_day"].values
    starts = (months - first).days.to_numpy(float)
    has = np.isfinite(day)
    month_of = np.clip(np.searchsorted(starts, np.where(has, day, 0.0), "right") - 1, 0, None)
    frame = pd.DataFrame(
        {
            "draw": np.broadcast_to(np.arange(day.shape[0])[:, None], day.shape)[has],
            "year": years[month_of[has]],
            "v2v": twin["v2v_days"].values[has],
        }
    )
    per_draw = frame.groupby(["year", "draw"])["v2v"].quantile([0.5, 0.9]).unstack()
    rows = []
    for year in sorted(set(years.tolist())):
        sel = years == year
        n = patients[:, sel].sum(axis=1)  # patients per draw in the year
        if n.sum() == 0:
            continue
        by_cause = total[:, sel].sum(axis=(0, 1))
        waited = by_cause.sum()
        mean_wait = np.where(n > 0, total[:, sel].sum(axis=(1, 2)) / np.maximum(n, 1), np.nan)
        row = {"year": int(year), "patients": f"{np.median(n):.0f}"}
        if waited > 0:
            k = int(np.argmax(by_cause))
            row["binding"] = _cause_label(causes[k])
            row["share"] = percent(by_cause[k] / waited)
            row["suites_share"] = percent(by_cause[causes.index("suites")] / waited)
        else:
            row["binding"], row["share"], row["suites_share"] = "none (no waiting)", "", ""
        p50_wait, p90_wait = np.nanquantile(mean_wait, [0.5, 0.9])
        row["wait"] = f"{p50_wait:.1f} / {p90_wait:.1f}"
        if year in per_draw.index.get_level_values(0):
            q = per_draw.loc[year]
            for key, level in (("v2v_p50", 0.5), ("v2v_p90", 0.9)):
                lo, hi = np.nanquantile(q[level], [0.5, 0.9])
                row[key] = f"{lo:.0f} / {hi:.0f}"
        else:
            row["v2v_p50"] = row["v2v_p90"] = "no patient treated"
        row["over"] = percent(over[:, sel].sum() / n.sum())
        rows.append(row)
    binding = [r for r in rows if r["share"]]
    worst = max(binding, key=lambda r: float(r["wait"].split(" / ")[1]), default=None)
    if worst is None:
        lead = "In the facility twin no lot waited: neither rooms, operators nor QC bind."
    else:
        lead = (
            f"In {worst['year']} (the year with the longest P90 wait) the waiting comes from "
            f"{worst['binding']} ({worst['share']} of waiting days)"
            + (
                "."
                if worst["binding"] == "rooms (suites)"
                else f", not rooms (rooms: {worst['suites_share']})."
            )
        )
    return {
        "lead": lead,
        "rows": rows,
        "target": f"{target:g}",
        "draws": int(twin.sizes["draw"]),
        "suites": twin.attrs.get("suites"),
        "suites_last": twin.attrs.get("suites_last", twin.attrs.get("suites")),
        "operators": twin.attrs.get("operators", ""),
        "sizing": sizing_sentence(getattr(result, "twin_sizing", None)),
        "qc": (
            "the QC lab of [facility.qc_lab] (its instruments throughout, its analysts from "
            "the [workforce] QC hiring plan)"
            if twin.attrs.get("analysts") == "workforce"
            else "the QC lab of [facility.qc_lab] (its analysts and instruments throughout)"
            if "analysts" in causes
            else "each QC panel's turnaround (no QC queue)"
        ),
    }
