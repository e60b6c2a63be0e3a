"""Enrollment: parameter recovery and the backtest on GRIPS and PACE (slow tier)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from forecast.backtest import backtest_summary, enrollment_backtest
from forecast.enrollment import EnrollmentModel


def simulate_sites(seed, n_sites=200, days=600, alpha=1.4, mean_rate=0.01):
    """Sites opening over the first 120 days; daily Poisson counts at gamma site rates."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01")
    activation = rng.integers(0, 120, n_sites)
    rates = rng.gamma(alpha, mean_rate / alpha, n_sites)
    rows = []
    for s in range(n_sites):
        open_days = np.arange(activation[s], days)
        counts = rng.poisson(rates[s], len(open_days))
        for day in np.repeat(open_days, counts):
            rows.append({"site": f"S{s:03d}", "enrolled_on": start + pd.Timedelta(days=int(day))})
    sites = pd.DataFrame(
        {
            "site": [f"S{s:03d}" for s in range(n_sites)],
            "activated_on": start + pd.to_timedelta(activation, unit="D"),
        }
    )
    return pd.DataFrame(rows), sites, start


@pytest.mark.slow
def test_parameter_recovery_and_held_out_coverage():
    logging.getLogger("pymc").setLevel(logging.ERROR)
    alpha_hits = mu_hits = 0
    covered, months = 0, 0
    for seed in range(10):
        patients, sites, start = simulate_sites(seed)
        interim = start + pd.Timedelta(days=359)
        seen = patients[patients["enrolled_on"] <= interim]
        model = EnrollmentModel(draws=500, tune=500, seed=seed).fit(seen, sites, as_of=interim)
        post = model.idata.posterior
        lo, hi = np.quantile(post["alpha"].values.ravel(), [0.05, 0.95])
        alpha_hits += lo <= 1.4 <= hi
        lo, hi = np.quantile(post["mu"].values.ravel(), [0.05, 0.95])
        mu_hits += lo <= 0.01 <= hi
        fc = model.forecast(6)["enrolled"].values
        later = patients[patients["enrolled_on"] > interim]
        observed = later.groupby(later["enrolled_on"].dt.to_period("M")).size()
        observed = observed.reindex(
            pd.PeriodIndex(pd.DatetimeIndex(model.forecast_["month"].values), freq="M"),
            fill_value=0,
        ).to_numpy()
        low, high = np.quantile(fc, [0.1, 0.9], axis=0)
        full = np.arange(6) < 5  # the month holding day 600 is cut short by the simulation
        covered += int(((low <= observed) & (observed <= high))[full].sum())
        months += int(full.sum())
    assert alpha_hits >= 8, alpha_hits
    assert mu_hits >= 8, mu_hits
    assert 0.7 <= covered / months <= 0.9, covered / months


@pytest.mark.slow
def test_backtest_beats_plugins_on_grips_and_pace():
    summary = backtest_summary(enrollment_backtest()).set_index(["log", "method"])
    overall = summary.loc["all"]
    gap = (overall["pit_coverage_80"] - 0.8).abs()
    assert gap["pmcap"] < gap["plugin_poisson"] and gap["pmcap"] < gap["plugin_negative_binomial"]
    assert overall.loc["pmcap", "crps"] <= overall.loc["plugin_negative_binomial", "crps"]
