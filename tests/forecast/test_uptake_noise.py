"""The forecast's uptake noise: a stationary monthly gamma AR(1) factor with no calendar seam,
its closed forms, and conditioning on early sales under it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.uptake import months_since_origin, period_patients, yearly_to_monthly
from forecast.uptake.simulate import (
    QUARTER_CORRELATION,
    factor_paths,
    monthly_autocorrelation,
    monthly_shape,
    quarter_correlation,
    year_sum_correlation,
)
from tests.forecast import fakes

PHI = 20.0
RHO = monthly_autocorrelation()


def flat_forecast(eligible, draws, seed, phi=PHI, years=4):
    """A launch adopted at once (p = 50 a year): the monthly mean is eligible x days / 365.25
    from 2028 on; the rest is noise."""
    model = fakes.uptake_model(p_year=50.0, q_year=0.1, phi=phi, draws=500)
    fc = model.forecast(
        "NEW",
        launch="2027-01-01",
        horizon_months=12 * (years + 1),
        draws=draws,
        start="2027-01-01",
        eligible_per_year=eligible,
        peak_share=1.0,
        seed=seed,
    )
    fc = fc.sel(month=slice("2028-01-01", None))
    months = pd.DatetimeIndex(fc["month"].values)
    days = months.days_in_month.to_numpy(float)
    return fc.values.astype(float), months, eligible * days / 365.25


def toeplitz(rho, n):
    lag = np.abs(np.subtract.outer(np.arange(n), np.arange(n)))
    return rho**lag


# ------------------------------------------------------------------ closed forms of the factor
def test_closed_forms_match_brute_force_sums():
    for rho in (0.0, 0.3, RHO, 0.95):
        assert year_sum_correlation(rho) == pytest.approx(toeplitz(rho, 12).sum(), rel=1e-12)
        c = toeplitz(rho, 6)
        brute = c[:3, 3:].sum() / c[:3, :3].sum()
        assert quarter_correlation(rho) == pytest.approx(brute, rel=1e-12)
    for target in (0.1, QUARTER_CORRELATION, 0.9):
        assert quarter_correlation(monthly_autocorrelation(target)) == pytest.approx(target)
    assert RHO == pytest.approx(0.7037, abs=1e-4)
    # a 12-month mean of the monthly factor has the fitted per-year variance 1 / phi: the
    # variance of the per-year Gamma(phi, phi) factor it replaces
    a = monthly_shape(PHI, RHO)
    assert toeplitz(RHO, 12).sum() / 144 / a == pytest.approx(1 / PHI, rel=1e-12)


def test_factor_is_stationary_gamma_ar1():
    rng = np.random.default_rng(0)
    a = 8.0
    g = factor_paths(np.full(200_000, a), RHO, 14, rng)
    assert g.mean() == pytest.approx(1.0, abs=0.002)
    for t in (0, 13):  # Gamma(a, a) at every month: variance 1 / a, skewness 2 / sqrt(a)
        assert g[:, t].var() == pytest.approx(1 / a, rel=0.02)
        z = (g[:, t] - 1) * np.sqrt(a)
        assert (z**3).mean() == pytest.approx(2 / np.sqrt(a), rel=0.1)
    for k in (1, 3, 6):
        assert np.corrcoef(g[:, 5], g[:, 5 + k])[0, 1] == pytest.approx(RHO**k, abs=0.01)
    # continuing from a known month: E[G_next | G] = 1 - rho + rho G
    nxt = factor_paths(np.full(200_000, a), RHO, 1, rng, last=np.full(200_000, 2.0))
    assert nxt.mean() == pytest.approx(1 - RHO + 2 * RHO, abs=0.003)


def test_same_seed_same_forecast():
    a, _, _ = flat_forecast(1200, 50, seed=4, years=1)
    b, _, _ = flat_forecast(1200, 50, seed=4, years=1)
    c, _, _ = flat_forecast(1200, 50, seed=5, years=1)
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    model = fakes.uptake_model(p_year=0.3, q_year=0.6, phi=PHI)
    obs = quarter_observed("2028-04-01", 40.0)
    kw = dict(launch="2028-01-01", draws=300, eligible_per_year=3000, peak_share=(0.1, 0.3))
    one = model.forecast("NEW", condition_on=obs, seed=7, **kw)
    two = model.forecast("NEW", condition_on=obs, seed=7, **kw)
    np.testing.assert_array_equal(one.values, two.values)
    assert one.attrs["importance_ess"] == two.attrs["importance_ess"]


def quarter_observed(start, patients):
    start = pd.Timestamp(start)
    return pd.DataFrame(
        {
            "products": [("NEW",)],
            "starts": [(start,)],
            "ends": [(start + pd.offsets.QuarterBegin(1, startingMonth=1),)],
            "patients": [float(patients)],
            "lower_bound": [False],
        }
    )


# ------------------------------------------------------------------------- the forecast's noise
def test_no_seam_at_the_new_year():
    # December -> January moves like any other month -> month: the old per-year factor made
    # them much larger (independent years, shared months)
    counts, months, mean = flat_forecast(1.2e7, 4000, seed=1)  # ~1e6 a month: Poisson ~0.1%
    jumps = np.abs(np.diff(counts / mean, axis=1))
    new_year = months[1:].month == 1
    ratio = jumps[:, new_year].mean() / jumps[:, ~new_year].mean()
    assert ratio == pytest.approx(1.0, abs=0.05)  # MC error about 0.01


def test_annual_totals_keep_the_fitted_spread():
    # phi is fitted per year: any 12 months total NB(mean, phi) (variance m + m^2 / phi, as
    # the per-year Gamma(phi, phi) factor gave), calendar year or not; shorter periods carry
    # the monthly factor's own wider spread
    counts, months, mean = flat_forecast(1200, 20_000, seed=2)
    a = monthly_shape(PHI, RHO)
    for first in ("2029-01-01", "2029-07-01"):
        k = np.flatnonzero(months >= first)[:12]
        total = counts[:, k].sum(axis=1)
        m = mean[k]
        exact = m.sum() + m @ toeplitz(RHO, 12) @ m / a
        old = m.sum() + m.sum() ** 2 / PHI  # the per-year gamma's NB variance
        assert exact == pytest.approx(old, rel=0.002)
        assert total.mean() == pytest.approx(m.sum(), rel=0.01)
        assert total.var() == pytest.approx(exact, rel=0.05)  # MC error about 1.5%
    q = np.flatnonzero((months >= "2029-04-01") & (months < "2029-07-01"))
    m = mean[q]
    quarter = counts[:, q].sum(axis=1)
    assert quarter.var() == pytest.approx(m.sum() + m @ toeplitz(RHO, 3) @ m / a, rel=0.05)
    month = counts[:, q[0]]
    assert month.var() == pytest.approx(m[0] + m[0] ** 2 / a, rel=0.05)


def test_consecutive_quarters_correlate_as_targeted():
    # every pair of consecutive quarters, the Q4 -> Q1 pair across the new year included
    counts, months, mean = flat_forecast(1.2e7, 8000, seed=3, years=2)
    resid = (counts / mean).reshape(len(counts), -1, 3).mean(axis=2)  # quarters' mean factor
    for j in range(resid.shape[1] - 1):
        corr = np.corrcoef(resid[:, j], resid[:, j + 1])[0, 1]
        assert corr == pytest.approx(QUARTER_CORRELATION, abs=0.04), j  # MC error about 0.01


# -------------------------------------------------------------- conditioning under the noise
def test_conditioning_agrees_with_rejection_sampling():
    # the conditioned forecast against the exact posterior predictive: simulate without
    # conditioning and keep the draws whose second quarter is exactly the observed count
    model = fakes.uptake_model(p_year=0.3, q_year=0.6, phi=PHI, draws=500)
    kwargs = dict(
        launch="2028-01-01",
        horizon_months=12,
        start="2028-01-01",
        eligible_per_year=3000,
        peak_share=(0.1, 0.3),
    )
    t0, t1, launch = months_since_origin(["2028-04-01", "2028-07-01", "2028-01-01"])
    p, q = yearly_to_monthly(0.3, 0.6)
    y = round(1.5 * period_patients(t0, t1, launch, 3000 / 12, 0.2, p, q))  # a strong quarter
    free = model.forecast("NEW", draws=300_000, seed=11, **kwargs).values
    kept = free[free[:, 3:6].sum(axis=1) == y]
    assert len(kept) > 3000
    obs = quarter_observed("2028-04-01", y)
    assert obs["ends"][0] == (pd.Timestamp("2028-07-01"),)
    fc = model.forecast("NEW", draws=20_000, seed=12, condition_on=obs, **kwargs)
    cond, ess = fc.values, fc.attrs["importance_ess"]
    for cols in (slice(6, 9), slice(9, 12)):  # the next two quarters
        exact, got = kept[:, cols].sum(axis=1), cond[:, cols].sum(axis=1)
        se = np.sqrt(exact.var() / len(exact) + got.var() / ess)
        assert abs(got.mean() - exact.mean()) < 4 * se
        assert got.std() == pytest.approx(exact.std(), rel=0.06)
        prior = free[:, cols].sum(axis=1).mean()
        assert abs(exact.mean() - prior) > 10 * se  # the observation matters
