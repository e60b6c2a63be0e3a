"""Plots of a fitted :class:`~forecast.uptake.model.UptakeModel`.

Each function takes the fitted model and an optional matplotlib ``Axes`` and returns the
``Axes`` it drew on (a new figure when none is given). Matplotlib is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from forecast.uptake.curves import DAYS_PER_MONTH

if TYPE_CHECKING:
    from forecast.uptake.model import UptakeModel

__all__ = ["plot_fit"]


def plot_fit(model: UptakeModel, product: str, ax=None):
    """Fitted monthly patients of analog ``product`` (P10-P90, P50) from its launch to mid
    2026, with its observations as monthly averages (dotted: a lower bound)."""
    import matplotlib.pyplot as plt

    analog = {p.name: p for p in model.products_}[product]
    fc = model.forecast(
        product,
        horizon_months=int((pd.Timestamp("2026-07-01") - analog.launch).days / 30.4) + 2,
        start=analog.launch.to_period("M").to_timestamp(),
    )
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3))
    q = np.quantile(fc.values, [0.1, 0.5, 0.9], axis=0)
    ax.fill_between(fc["month"].values, q[0], q[2], alpha=0.3, label="P10-P90")
    ax.plot(fc["month"].values, q[1], label="P50")
    obs = model.observations_
    for row in obs[obs["products"].apply(lambda n: n == (product,))].itertuples():
        months = (
            sum((e - s).days for s, e in zip(row.starts, row.ends, strict=True)) / DAYS_PER_MONTH
        )
        for s, e in zip(row.starts, row.ends, strict=True):
            ax.hlines(
                row.patients / months,
                s,
                e,
                color="k",
                linestyle=":" if row.lower_bound else "-",
            )
    ax.set_title(product)
    ax.set_ylabel("patients per month")
    return ax
