"""forecast._dist and the rank helpers against scipy.stats, which they replace at run time
(scipy.stats takes about a second to import): the same numbers, bit for bit where the
formula is the same."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from forecast import _dist

finite = st.floats(-40, 40, allow_nan=False)
prob = st.floats(1e-300, 1.0, exclude_max=True)


@settings(max_examples=200, deadline=None)
@given(st.lists(finite, min_size=1, max_size=20), finite, st.floats(1e-3, 50))
def test_normal_functions_equal_scipy_stats(xs, loc, scale):
    x = np.array(xs)
    np.testing.assert_array_equal(_dist.norm_cdf(x), stats.norm.cdf(x))
    np.testing.assert_array_equal(_dist.norm_sf(x), stats.norm.sf(x))
    np.testing.assert_array_equal(_dist.norm_logsf(x), stats.norm.logsf(x))
    np.testing.assert_allclose(
        _dist.norm_logpdf(x, loc, scale), stats.norm.logpdf(x, loc, scale), rtol=1e-14, atol=0
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(prob, min_size=1, max_size=20))
def test_normal_quantiles_equal_scipy_stats(qs):
    q = np.array(qs)
    np.testing.assert_array_equal(_dist.norm_ppf(q), stats.norm.ppf(q))
    np.testing.assert_array_equal(_dist.norm_isf(q), stats.norm.isf(q))


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 500), st.data(), st.floats(0.0, 1.0))
def test_binomial_log_pmf_equals_scipy_stats(n, data, p):
    k = data.draw(st.integers(0, n))
    np.testing.assert_array_equal(_dist.binom_logpmf(k, n, p), stats.binom.logpmf(k, n, p))


def test_edges_of_the_normal_and_binomial():
    assert _dist.norm_ppf(0.975) == pytest.approx(1.959963984540054, abs=1e-15)
    assert _dist.norm_ppf(0.0) == -np.inf and _dist.norm_isf(0.0) == np.inf
    assert _dist.binom_logpmf(0, 10, 0.0) == 0.0  # certain: no success
    assert _dist.binom_logpmf(3, 10, 0.0) == -np.inf
    assert _dist.binom_logpmf(10, 10, 1.0) == 0.0


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(0, 6), min_size=3, max_size=40),  # many ties
    st.integers(0, 2**31 - 1),
)
def test_spearman_equals_scipy_with_ties(values, seed):
    from pmcap.decisions import spearman

    x = np.array(values, float)
    y = np.random.default_rng(seed).permutation(len(x)).astype(float) + x
    if len(np.unique(x)) < 2 or len(np.unique(y)) < 2:  # no rank correlation: nan
        return
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


def test_z_scale_ranks_as_scipy_rankdata():
    from forecast._pymc import _z_scale

    rng = np.random.default_rng(1)
    ary = rng.integers(0, 5, size=(4, 50)).astype(float)  # ties everywhere
    rank = stats.rankdata(ary, method="average", nan_policy="omit")
    want = stats.norm.ppf((rank - 3 / 8) / (rank.size - 2 * 3 / 8 + 1)).reshape(ary.shape)
    np.testing.assert_array_equal(_z_scale(ary), want)
    assert pd.isna(_z_scale(np.array([[1.0, np.nan, 2.0]]))[0, 1])
