"""Plots of a :class:`~forecast.phase.model.PhaseTransitionModel` simulation.

Each function takes the model and an optional matplotlib ``Axes`` and returns the ``Axes`` it
drew on (a new figure when none is given). Matplotlib is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import xarray as xr

    from forecast.phase.model import PhaseTransitionModel

__all__ = ["plot_approval"]


def plot_approval(model: PhaseTransitionModel, simulation: xr.Dataset | None = None, ax=None, **kw):
    """Cumulative probability of approval over time (the share of draws approved by each
    month) with its P10-P90 band; ``kw`` go to :meth:`PhaseTransitionModel.bands`."""
    import matplotlib.pyplot as plt

    frame = model.bands(simulation, **kw)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.5))
    ax.fill_between(frame["month"], frame["p10"], frame["p90"], alpha=0.3, label="P10-P90")
    ax.plot(frame["month"], frame["mean"], label="P(approved by month)")
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability approved")
    ax.legend(loc="upper left", frameon=False)
    return ax
