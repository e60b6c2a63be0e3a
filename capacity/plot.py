"""Fan charts of requirements and demand, and shortfall probability over time (matplotlib)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from capacity.resource_needs import facility
from capacity.summary import bands as _bands

__all__ = ["fan_chart", "shortfall_chart"]


def fan_chart(
    result: xr.Dataset | xr.DataArray | pd.DataFrame,
    metric: str,
    *,
    program: str = "all",
    installed: float | Sequence[float] | pd.Series | None = None,
    quantiles: Sequence[float] = (0.1, 0.5, 0.9),
    ax=None,
):
    """Median line with the outer band shaded, and installed capacity as a step line.

    ``result`` is a requirements Dataset, demand draws, or an already computed bands frame.
    Returns the matplotlib Axes.
    """
    import matplotlib.pyplot as plt

    if isinstance(result, xr.Dataset) and program == "all":
        result = facility(result)
    frame = result if isinstance(result, pd.DataFrame) else _bands(result, quantiles)
    rows = frame[(frame["metric"] == metric) & (frame["program"] == program)]
    if rows.empty:
        raise ValueError(f"no metric {metric!r} for program {program!r} in the bands")
    qs = sorted(c for c in rows.columns if c.startswith("p") and c[1:].replace(".", "").isdigit())
    qs = sorted(qs, key=lambda c: float(c[1:]))
    low, mid, high = qs[0], qs[len(qs) // 2], qs[-1]
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.5))
    ax.fill_between(
        rows["month"],
        rows[low],
        rows[high],
        alpha=0.3,
        step="mid",
        label=f"{low.upper()}-{high.upper()}",
    )
    ax.plot(rows["month"], rows[mid], drawstyle="steps-mid", label=mid.upper())
    if installed is not None:
        cap = installed.to_numpy(float) if isinstance(installed, pd.Series) else installed
        cap = np.broadcast_to(np.asarray(cap, float), (len(rows),))
        ax.plot(
            rows["month"],
            cap,
            drawstyle="steps-mid",
            color="black",
            linestyle="--",
            label="installed",
        )
    _dates(ax)
    unit = rows["unit"].iloc[0]
    ax.set_ylabel(f"{metric} [{unit}]" if unit else metric)
    ax.set_title(metric if program == "all" else f"{metric} ({program})")
    ax.legend(loc="upper left", frameon=False)
    return ax


def shortfall_chart(shortfall: pd.DataFrame, ax=None):
    """Probability of running short per month, one line per resource (and ``any``)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.5))
    for metric, rows in shortfall.groupby("metric", sort=False):
        style = {"color": "black", "linewidth": 2} if metric == "any" else {}
        ax.plot(rows["month"], rows["probability"], drawstyle="steps-mid", label=metric, **style)
    _dates(ax)
    ax.set_ylim(0, 1)
    ax.set_ylabel("P(need > installed)")
    ax.legend(loc="upper left", frameon=False)
    return ax


def _dates(ax) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
