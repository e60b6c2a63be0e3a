"""The numba loops of occupancy_weights against the vectorised closed forms, bit for bit.

``reference`` is the NumPy formula the loops replace (four ``Phi`` terms read from one table
for lot-days, ``min``/``max`` of the interval ends for events), kept here as the reference:
the loops must give the same float64 numbers, not only close ones, so that requirements()
keeps its outputs for a seed. Durations, delays and calendars vary: leap February, a lot
longer than the horizon, many offsets, one month.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from capacity.occupancy import _bounds, _phi, occupancy_weights
from tests.helpers import assert_occupancy_by_brute_force


def reference(months, delay, duration, n_k):
    delay = np.asarray(delay, float)[:, None, None]
    duration = np.asarray(duration, float)[:, None, None]
    start, end = _bounds(months[0], len(months), n_k)
    n = len(months)
    m = np.arange(n)
    t0 = start[m][None, :, None] + delay
    t1 = end[m][None, :, None] + delay
    target = m[:, None] + np.arange(n_k)[None, :]
    width = (end[m] - start[m])[None, :, None]
    if np.all(duration == 0):
        w = np.minimum(end[target][None], t1)
        w -= np.maximum(start[target][None], t0)
        np.maximum(w, 0.0, out=w)
        w /= width
    else:
        i = np.arange(n + 1)
        g = _phi(
            end[i[:, None] + np.arange(n_k)][None] - (start[i][None, :, None] + delay), duration
        )
        w = g[:, :n].copy()
        w[:, :, 1:] -= g[:, :n, :-1]
        w[:, :, 1:] -= g[:, 1:, :-1]
        w[:, :, 2:] += g[:, 1:, :-2]
        w /= width
    w[:, target >= n] = 0.0
    return w


CALENDARS = {
    "ten years": pd.date_range("2027-01-01", periods=120, freq="MS"),
    "leap February": pd.date_range("2027-11-01", periods=7, freq="MS"),
    "one month": pd.date_range("2028-02-01", periods=1, freq="MS"),
}


@pytest.mark.parametrize("calendar", list(CALENDARS))
@pytest.mark.parametrize("kind", ["lot-days", "events", "lot-days after a delay"])
def test_loops_equal_the_closed_forms(calendar, kind):
    months = CALENDARS[calendar]
    rng = np.random.default_rng(len(calendar) + len(kind))
    draws = 300
    culture = rng.triangular(7, 8, 12, draws)
    if kind == "lot-days":
        delay, duration = np.zeros(draws), culture + rng.uniform(0.5, 2, draws)
        duration[:3] = [0.0, 1e-9, 200.0]  # no slot, a sliver, longer than several months
    elif kind == "events":
        delay, duration = culture + rng.choice([0, 1, 2, 14], draws), np.zeros(draws)
        delay[:3] = [0.0, 31.0, 95.5]  # on a month edge, several months out
    else:
        delay, duration = rng.uniform(0, 40, draws), culture
        delay[0] = 0.0
    for n_k in (2, 4, 9):
        got = occupancy_weights(months, delay, duration, n_k)
        want = reference(months, delay, duration, n_k)
        assert got.shape == want.shape == (draws, len(months), n_k)
        np.testing.assert_array_equal(got, want)


def test_negative_delay_matches_brute_force_integration():
    # the general formula (four Phi terms), used when a kernel starts before the lot does
    months = pd.date_range("2027-01-01", periods=3, freq="MS")
    delay, duration = np.array([-10.0, 5.0]), np.array([25.0, 3.0])
    w = occupancy_weights(months, delay, duration)
    assert_occupancy_by_brute_force(w, months, delay, duration)


def test_one_duration_serves_every_draw():
    # a scalar or length-1 duration broadcasts over the draws' delays (no read past its end)
    months = pd.date_range("2027-01-01", periods=4, freq="MS")
    delay = np.array([0.0, 3.0, 40.0])
    full = occupancy_weights(months, delay, np.full(3, 5.0), 3)
    np.testing.assert_array_equal(occupancy_weights(months, delay, np.array([5.0]), 3), full)
    np.testing.assert_array_equal(occupancy_weights(months, delay, 5.0, 3), full)
