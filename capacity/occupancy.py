"""How a lot's days fall into calendar months: the closed-form spreading of lots over months.

Lots that start in a month start uniformly over its days. A lot started on day ``s`` is
described by a *kernel* ``(delay, duration)`` in calendar days: it occupies ``[s + delay,
s + delay + duration)``, or, with ``duration == 0``, it is one event on day ``s + delay``.
The four kernels of a process (:func:`month_kernels`), per draw of its parameters:

* ``slot``: ``(0, culture_days + changeover_days)``, the suite slot a lot holds;
* ``culture``: ``(0, culture_days)``, the days operators work on it;
* ``harvest``: the event ``culture_days`` (QC testing);
* ``release``: the event ``culture_days + max(qc_turnaround_days)`` (QA disposition).

The share of a month's lot-days that falls in a later month is a double integral of the
kernel's indicator over the start day and the target month, in closed form
(:func:`occupancy_weights`; the numba loops over draws and months are in
:mod:`capacity._occupancy`); the loop in :func:`spread` runs over the few month offsets a lot
can reach.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["Calendar", "kernel_offsets", "month_kernels", "occupancy_weights", "spread"]


class Calendar:
    """Month boundaries in days since the first month, with ``extra`` months of run-off."""

    def __init__(self, months: pd.DatetimeIndex, extra: int):
        ext = pd.date_range(months[0], periods=len(months) + extra + 1, freq="MS")
        days0 = (ext - ext[0]).days.to_numpy().astype(float)
        self.n = len(months)
        self.start = days0[:-1]  # (M + extra,)
        self.end = days0[1:]
        self.days = (self.end - self.start)[: self.n]
        self.days_in_year = np.where(months.is_leap_year, 366.0, 365.0)


@functools.lru_cache(maxsize=32)
def _bounds(first: pd.Timestamp, n: int, extra: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end day of ``n + extra`` months from ``first`` (read-only; cached, since
    every block of draws and every kernel asks for the same calendar)."""
    cal = Calendar(pd.date_range(first, periods=n, freq="MS"), extra)
    cal.start.setflags(write=False)
    cal.end.setflags(write=False)
    return cal.start, cal.end


def _phi(x: np.ndarray, duration: np.ndarray) -> np.ndarray:
    """Twice-integrated indicator of ``[0, duration)``: 0, x**2/2, then d**2/2 + d (x - d).

    Overwrites ``x`` (a temporary of the caller) to make no more arrays than it returns.
    """
    x = np.maximum(x, 0.0, out=x)
    inside = np.minimum(x, duration)
    x -= inside
    x *= duration
    out = np.multiply(inside, 0.5)
    out *= inside
    out += x
    return out


def _offsets(delay: np.ndarray, duration: np.ndarray) -> int:
    """How many months after its start month a lot can still touch (plus the start month)."""
    return int(np.ceil(np.max(delay + duration) / 28.0)) + 1


def occupancy_weights(
    months: pd.DatetimeIndex, delay: np.ndarray, duration: np.ndarray, n_k: int | None = None
) -> np.ndarray:
    """Days per lot that fall in month ``m + k`` for lots started in month ``m``.

    Lots start uniformly over month ``m`` = ``[t0, t1)`` and occupy ``[s + delay, s + delay +
    duration)``. The days inside month ``[a, b)``, averaged over starts, are
    ``(Phi(b - t0') - Phi(a - t0') - Phi(b - t1') + Phi(a - t1')) / (t1 - t0)`` with
    ``t' = t + delay``. With ``duration == 0`` it returns the *fraction* of lots whose event
    ``s + delay`` falls in month ``m + k`` instead. Shape ``(draw, month, k)``; entries
    beyond the horizon are 0. ``n_k`` (default: enough for these draws) sets the number of
    offsets ``k``; :func:`capacity.requirements` gives that of all draws, so that a block of
    draws gets the same weights whichever other draws share it.
    """
    # one delay and duration per draw (a scalar of either serves every draw)
    # (C-contiguous and writable: the kernels are compiled for that one array type)
    delay, duration = (np.require(a, float, ["C", "W"]) for a in np.broadcast_arrays(
        np.atleast_1d(np.asarray(delay, float)), np.atleast_1d(np.asarray(duration, float))
    ))  # fmt: skip
    if n_k is None:
        n_k = _offsets(delay, duration) + 1
    start, end = _bounds(months[0], len(months), n_k)
    n = len(months)
    w = np.empty((len(delay), n, n_k))
    if np.all(duration == 0) or np.all(delay >= 0):
        # the kernels of a process (delay >= 0): loops over draws in numba (capacity._occupancy)
        from capacity import _occupancy  # numba: imported when weights are computed

        if np.all(duration == 0):
            _occupancy.event_weights(start, end, delay, w)
        else:
            _occupancy.lot_day_weights(start, end, delay, duration, w)
        return w
    # (Phi(b - t0) - Phi(a - t0)) - Phi(b - t1) + Phi(a - t1), left to right, in place
    delay, duration = delay[:, None, None], duration[:, None, None]
    m = np.arange(n)
    t0 = start[m][None, :, None] + delay
    t1 = end[m][None, :, None] + delay
    target = m[:, None] + np.arange(n_k)[None, :]  # (M, K)
    a = start[target][None]
    b = end[target][None]
    w = _phi(b - t0, duration)
    w -= _phi(a - t0, duration)
    w -= _phi(b - t1, duration)
    w += _phi(a - t1, duration)
    w /= (end[m] - start[m])[None, :, None]
    w[:, target >= n] = 0.0
    return w


def spread(lots: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``out[d, j] = sum_k lots[d, j - k] * weights[d, j - k, k]`` (a short loop over k only)."""
    out = np.zeros(lots.shape, float)
    n = lots.shape[1]
    for k in range(min(weights.shape[2], n)):
        out[:, k:] += lots[:, : n - k] * weights[:, : n - k, k]
    return out


def _kernel_spans(par: xr.Dataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(delay, duration) per draw of the slot, culture, harvest and release kernels."""
    culture = par["culture_days"].values
    turnaround = par["qc_turnaround_days"].values.max(axis=1)
    zero = np.zeros_like(culture)
    return {
        "slot": (zero, culture + par["changeover_days"].values),
        "culture": (zero, culture),
        "harvest": (culture, zero),
        "release": (culture + turnaround, zero),
    }


def kernel_offsets(par: xr.Dataset) -> dict[str, int]:
    """Month offsets each kernel needs for the longest lot of any draw."""
    return {k: _offsets(*span) + 1 for k, span in _kernel_spans(par).items()}


def month_kernels(
    months: pd.DatetimeIndex, par: xr.Dataset, n_k: Mapping[str, int] | None = None
) -> dict[str, np.ndarray]:
    """Month-spreading weights of one process (slot, culture, harvest and release)."""
    n_k = n_k or {}
    return {
        k: occupancy_weights(months, delay, duration, n_k.get(k))
        for k, (delay, duration) in _kernel_spans(par).items()
    }
