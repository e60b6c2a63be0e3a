"""Plots of an :class:`~forecast.enrollment.model.EnrollmentModel` forecast.

Each function takes the model after :meth:`~forecast.enrollment.model.EnrollmentModel.forecast`
and an optional matplotlib ``Axes`` and returns the ``Axes`` it drew on (a new figure when none
is given). Matplotlib is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from forecast.enrollment.model import EnrollmentModel

__all__ = ["plot_forecast", "plot_time_to_target"]


def plot_forecast(model: EnrollmentModel, ax=None):
    """Fan chart of patients enrolled per month (P10-P90, P50) after the observed history
    (grey bars)."""
    import matplotlib.pyplot as plt

    fc = model.forecast_
    if fc is None:
        raise RuntimeError("call forecast() first")
    data = model.data_
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3.5))
    ax.bar(data.months, data.counts.sum(axis=0), width=25, color="grey", label="observed")
    q = np.quantile(fc["enrolled"].values, [0.1, 0.5, 0.9], axis=0)
    ax.fill_between(fc["month"].values, q[0], q[2], alpha=0.3, step="mid", label="P10-P90")
    ax.plot(fc["month"].values, q[1], drawstyle="steps-mid", label="P50")
    ax.set_ylabel("enrolled per month")
    ax.legend(loc="upper left", frameon=False)
    return ax


def plot_time_to_target(model: EnrollmentModel, ax=None):
    """Histogram of the date the target is reached (draws that reach it in the horizon)."""
    import matplotlib.pyplot as plt

    ttt = model.time_to_target().values
    ttt = ttt[~np.isnat(ttt)]
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3))
    ax.hist(pd.DatetimeIndex(ttt), bins=40)
    ax.set_xlabel("date target reached")
    return ax
