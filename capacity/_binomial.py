"""Binomial draws of lot failures in a numba loop, the same numbers as ``Generator.binomial``.

``Generator.binomial(n, p)`` on arrays walks a broadcast iterator and, for each cell, draws
by inversion when ``n * min(p, 1 - p) <= 30`` and by BTPE (Kachitvichyanukul & Schmeiser,
Commun. ACM 31(2), 1988) above. Lot failures are almost always in the inversion regime
(tens of lots a month, failure rates of a few percent), where the broadcast iterator costs
about as much as the draw itself. :func:`binomial_rows` runs the same inversion on the same
stream (``Generator.random()`` is the ``next_double`` of NumPy's C code), cell by cell in
row-major order, and hands back at the first cell that needs BTPE, so that the caller draws
the rest with ``Generator.binomial``: the numbers, and the generator's state afterwards,
are those of ``Generator.binomial`` over the whole array.

Inversion (Kachitvichyanukul & Schmeiser 1988, algorithm BINV): with ``q = 1 - p``, ``X`` is
the smallest ``x`` with ``U <= sum_{k <= x} P(X = k)``, the probabilities built by the
recursion ``P(k) = P(k - 1) (n - k + 1) p / (k q)`` from ``P(0) = q**n``; a uniform that runs
past ``bound = min(n, np + 10 sqrt(npq + 1))`` is drawn again. Cells with ``n == 0`` or
``p == 0`` are 0 and draw nothing; for ``p > 0.5`` the draw is ``n - X`` with ``X`` drawn at
``1 - p``.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["binomial_rows"]

_INVERSION_MAX_MEAN = 30.0  # n * min(p, 1 - p) above this: NumPy draws by BTPE
_TABLE = 1024  # n below this: q**n and the bound are kept per row


@numba.njit(cache=True, inline="always")
def _inversion(rng, n: int, p: float, q: float, qn: float, bound: int) -> int:
    x = 0
    px = qn
    u = rng.random()
    while u > px:
        x += 1
        if x > bound:
            x = 0
            px = qn
            u = rng.random()
        else:
            u -= px
            px = ((n - x + 1) * p * px) / (x * q)
    return x


@numba.njit(cache=True)
def binomial_rows(rng, n: np.ndarray, p: np.ndarray, out: np.ndarray) -> int:
    """``out[i, j] = Binomial(n[i, j], p[i])`` in row-major order, drawn from ``rng``.

    Returns the number of cells drawn: ``n.size``, or the flat index of the first cell in the
    BTPE regime (that cell and those after it are left for ``Generator.binomial``).
    """
    rows, cols = n.shape
    # q**n and the bound of each n seen in a row, computed once per row (same values: the
    # same operations on the same numbers)
    seen = np.full(_TABLE, -1, np.int64)
    qn_of = np.empty(_TABLE)
    bound_of = np.empty(_TABLE, np.int64)
    for i in range(rows):
        pi = p[i]
        flip = pi > 0.5
        r = 1.0 - pi if flip else pi  # NumPy draws n - X(n, 1 - p) for p > 0.5
        q = 1.0 - r
        log_q = np.log(q)
        for j in range(cols):
            nij = n[i, j]
            if nij == 0 or pi == 0.0:
                out[i, j] = 0
                continue
            if r * nij > _INVERSION_MAX_MEAN:
                return i * cols + j
            if nij < _TABLE and seen[nij] == i:
                qn, bound = qn_of[nij], bound_of[nij]
            else:
                qn = np.exp(nij * log_q)
                mean = nij * r
                bound = np.int64(min(nij, mean + 10.0 * np.sqrt(mean * q + 1)))
                if nij < _TABLE:
                    seen[nij], qn_of[nij], bound_of[nij] = i, qn, bound
            x = _inversion(rng, nij, r, q, qn, bound)
            out[i, j] = nij - x if flip else x
    return rows * cols
