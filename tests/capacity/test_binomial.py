"""The numba binomial of lot failures against ``numpy.random.Generator.binomial``.

``capacity.workload._binomial`` must give the very numbers of ``Generator.binomial(n, p[:,
None])`` and leave the generator in the same state, in every regime NumPy distinguishes:
``n == 0`` or ``p == 0`` (no draw), inversion for ``n * min(p, 1 - p) <= 30`` (30 itself
included), ``p > 0.5`` (drawn at ``1 - p``), and BTPE above 30, which the numba loop leaves
to NumPy from the first such cell on.
"""

from __future__ import annotations

import numpy as np
import pytest

from capacity._binomial import binomial_rows
from capacity.workload import _binomial


def numpy_and_ours(n: np.ndarray, p: np.ndarray, seed: int):
    ref, ours = np.random.default_rng(seed), np.random.default_rng(seed)
    want = ref.binomial(n, p[:, None])
    got = np.full_like(n, -1)
    _binomial(ours, n, p, got)
    return want, got, ref.random(4), ours.random(4)


def cases():
    rng = np.random.default_rng(3)
    rows, cols = 60, 50
    # lot counts of one program: many empty months, repeated counts within a row
    small = rng.poisson(rng.gamma(2.0, 4.0, size=(rows, 1)), size=(rows, cols))
    small[rng.random((rows, cols)) < 0.3] = 0
    p_small = rng.beta(4, 76, size=rows)
    yield "failure rates", small, p_small
    # the same counts at rates on both sides of 0.5, and the edges 0, 0.5 and 1
    p_wide = rng.uniform(0, 1, size=rows)
    p_wide[:4] = [0.0, 0.5, 1.0, 1 - 1e-12]
    yield "rates 0..1", small, p_wide
    # n * p exactly 30 (inversion) next to 31 (BTPE) in the same row
    edge = np.full((rows, cols), 120)
    edge[5, 7] = 124
    yield "n p = 30 then 31", edge, np.full(rows, 0.25)
    # large counts: BTPE from the first cell of a later row on
    large = small.copy()
    large[40:] *= 100
    yield "BTPE rows at the end", large, p_small
    # counts past the per-row table (n >= 1024) still by inversion (n p <= 30)
    big = rng.integers(1024, 3000, size=(rows, cols))
    yield "n past the table", big, rng.uniform(0.001, 0.01, size=rows)


@pytest.mark.parametrize("name", [c[0] for c in cases()])
def test_same_numbers_and_state_as_numpy(name):
    _, n, p = next(c for c in cases() if c[0] == name)
    n = n.astype(np.int64)
    for seed in (0, 1, 2):
        want, got, after_ref, after_ours = numpy_and_ours(n, p, seed)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(after_ours, after_ref)  # the same draws consumed


def test_loop_stops_at_the_first_btpe_cell():
    n = np.array([[3, 0, 40], [700, 2, 1]], np.int64)
    p = np.array([0.05, 0.05])
    out = np.full_like(n, -1)
    # 40 * 0.05 = 2: inversion; 700 * 0.05 = 35 > 30: BTPE, flat index 3
    assert binomial_rows(np.random.default_rng(0), n, p, out) == 3
    assert out[1].tolist() == [-1, -1, -1]  # left for NumPy
    assert out[0, 1] == 0
    # p > 0.5 is drawn at 1 - p: 70 * (1 - 0.6) = 28 stays in the loop, and so does 30
    assert binomial_rows(np.random.default_rng(0), np.array([[70]]), np.array([0.6]), out) == 1
    assert binomial_rows(np.random.default_rng(0), np.array([[120]]), np.array([0.25]), out) == 1


def test_strided_counts():
    # a program's counts are a strided view of (draw, month, program) patients
    rng = np.random.default_rng(5)
    patients = rng.poisson(30, size=(40, 12, 3))
    p = rng.beta(4, 76, size=40)
    for j in range(3):
        n = patients[:, :, j]
        want, got, after_ref, after_ours = numpy_and_ours(n, p, j)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(after_ours, after_ref)


def test_a_bad_rate_or_count_is_refused_as_numpy_refuses_it():
    from capacity.workload import _binomial

    rng = np.random.default_rng(0)
    out = np.empty((2, 3), np.int64)
    n = np.ones((2, 3), np.int64)
    for p in (np.array([0.1, np.nan]), np.array([0.1, 1.5]), np.array([-0.1, 0.2])):
        with pytest.raises(ValueError, match="failure rate"):
            _binomial(rng, n, p, out)
    with pytest.raises(ValueError, match="negative"):
        _binomial(rng, -n, np.array([0.1, 0.2]), out)
