"""The report's charts: drawn in matplotlib's default style on ``Figure`` objects (never
pyplot), laid out ahead with explicit date ticks, and inlined as PNG.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from pmcap._style import default_style
from pmcap.report.tables import LABELS, RESOURCES, installed_series
from pmcap.run import RunResult


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
