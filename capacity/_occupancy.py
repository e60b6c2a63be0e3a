"""numba loops of :func:`capacity.occupancy.occupancy_weights`, one draw at a time.

The same operations on the same numbers, in the same order, as the vectorised formulas
of :mod:`capacity.occupancy` (so the same weights, bit for bit), without the
(draw, month, offset) temporaries each NumPy step makes:

* :func:`lot_day_weights`: lots that occupy ``[s + delay, s + delay + duration)`` with
  ``delay >= 0``, from the table ``G[i, k] = Phi(end[i + k] - (start[i] + delay))`` of the
  twice-integrated indicator ``Phi`` (``0``, ``x**2 / 2``, then ``d**2 / 2 + d (x - d)``):
  ``w[m, k] = (G[m, k] - G[m, k - 1] - G[m + 1, k - 1] + G[m + 1, k - 2]) / days[m]``, the
  terms with a negative offset left out;
* :func:`event_weights`: the share of starts in ``[t0, t1)`` whose event ``s + delay``
  falls in month ``[a, b)``: ``max(min(b, t1 + delay) - max(a, t0 + delay), 0) / days[m]``.

Entries for months beyond the horizon (``m + k >= n``) are 0.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["event_weights", "lot_day_weights"]


@numba.njit(cache=True)
def lot_day_weights(
    start: np.ndarray, end: np.ndarray, delay: np.ndarray, duration: np.ndarray, out: np.ndarray
) -> None:
    """Days per lot in month ``m + k`` of lots started in month ``m``, into ``out`` (draw,
    month, k); ``start``/``end`` hold at least ``n + n_k`` months, ``delay >= 0``."""
    draws, n, n_k = out.shape
    g = np.empty((n + 1, n_k))
    for d in range(draws):
        du = duration[d]
        for i in range(n + 1):
            s = start[i] + delay[d]
            for k in range(n_k):
                x = np.maximum(end[i + k] - s, 0.0)
                inside = np.minimum(x, du)
                x -= inside
                x *= du
                g[i, k] = inside * 0.5 * inside + x
        for m in range(n):
            width = end[m] - start[m]
            for k in range(n_k):
                if m + k >= n:
                    out[d, m, k] = 0.0
                    continue
                w = g[m, k]
                if k >= 1:
                    w -= g[m, k - 1]
                    w -= g[m + 1, k - 1]
                if k >= 2:
                    w += g[m + 1, k - 2]
                out[d, m, k] = w / width


@numba.njit(cache=True)
def event_weights(start: np.ndarray, end: np.ndarray, delay: np.ndarray, out: np.ndarray) -> None:
    """Share of lots started in month ``m`` whose event (``delay`` days after the start)
    falls in month ``m + k``, into ``out`` (draw, month, k)."""
    draws, n, n_k = out.shape
    for d in range(draws):
        for m in range(n):
            t0 = start[m] + delay[d]
            t1 = end[m] + delay[d]
            width = end[m] - start[m]
            for k in range(n_k):
                if m + k >= n:
                    out[d, m, k] = 0.0
                    continue
                w = np.minimum(end[m + k], t1) - np.maximum(start[m + k], t0)
                out[d, m, k] = np.maximum(w, 0.0) / width
