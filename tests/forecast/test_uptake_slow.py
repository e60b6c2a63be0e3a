"""Uptake: parameter recovery on simulated launches and the analog backtest (slow tier)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from forecast.backtest import uptake_backtest, uptake_summary
from forecast.uptake import Product, UptakeModel, period_patients, yearly_to_monthly


def simulate_products(seed):
    """Five launches with known p, q (per year) and scale; quarters with gaps, some years."""
    rng = np.random.default_rng(seed)
    truth, products, rows = [], [], []
    for k in range(5):
        launch = pd.Timestamp("2018-01-01") + pd.Timedelta(days=int(rng.integers(0, 900)))
        p, q = np.exp(rng.normal(np.log(0.3), 0.3)), np.exp(rng.normal(np.log(0.6), 0.3))
        scale = float(np.exp(rng.normal(np.log(150), 0.5)))
        name = f"P{k}"
        products.append(Product(name, launch))
        truth.append({"product": name, "p_year": p, "q_year": q, "scale": scale})
        quarters = pd.date_range(launch.to_period("Q").start_time, "2025-12-31", freq="QS")
        for i, start in enumerate(quarters):
            if rng.random() < 0.35:
                continue  # gaps
            if i % 8 == 7 and i + 4 <= len(quarters):  # now and then a whole year
                starts = tuple(quarters[i : i + 4])
            else:
                starts = (start,)
            starts = tuple(max(s, launch) for s in starts)
            ends = tuple(
                s.to_period("Q").end_time.normalize() + pd.Timedelta(days=1) for s in starts
            )
            t = lambda d: (d - pd.Timestamp("2015-01-01")).days / (365.25 / 12)  # noqa: E731
            pm_, qm = yearly_to_monthly(p, q)
            mean = sum(
                period_patients(t(s), t(e), t(launch), scale, 1.0, pm_, qm)
                for s, e in zip(starts, ends, strict=True)
            )
            y = rng.negative_binomial(30, 30 / (30 + mean))
            rows.append(
                {
                    "products": (name,),
                    "starts": starts,
                    "ends": ends,
                    "patients": float(y),
                    "lower_bound": False,
                    "first_start": min(starts),
                    "last_end": max(ends),
                }
            )
    obs = pd.DataFrame(rows).drop_duplicates(subset=["products", "first_start"])
    return products, obs, pd.DataFrame(truth)


@pytest.mark.slow
def test_recovery_of_p_q_and_scale():
    logging.getLogger("pymc").setLevel(logging.ERROR)
    hits, total = 0, 0
    for seed in range(3):
        products, obs, truth = simulate_products(seed)
        model = UptakeModel(draws=400, tune=600, seed=seed).fit(obs, products)
        post = model.idata.posterior
        for k, row in truth.iterrows():
            for name in ("p_year", "q_year", "scale"):
                lo, hi = np.quantile(post[name].values[..., k].ravel(), [0.05, 0.95])
                hits += lo <= row[name] <= hi
                total += 1
    assert hits / total >= 0.75, f"{hits} of {total} 90% intervals cover the truth"


@pytest.mark.slow
def test_analog_backtest_leave_one_out_beats_baselines():
    summary = uptake_summary(uptake_backtest(draws=300, tune=300)).set_index(["split", "method"])
    loo = summary.loc["leave_one_out"]
    gap = (loo["coverage_80"] - 0.8).abs()
    assert gap["pmcap"] < gap["ets"] and gap["pmcap"] < gap["bass_least_squares"]
    assert loo.loc["pmcap", "crps"] < min(
        loo.loc["ets", "crps"], loo.loc["bass_least_squares", "crps"]
    )


@pytest.mark.slow
def test_with_product_refits_the_product_as_one_more_analog():
    # with_product, the refit path when conditioning on many early quarters degenerates: the
    # product's own posterior covers at least 75% of the next four quarters (90% intervals)
    logging.getLogger("pymc").setLevel(logging.ERROR)
    launch = pd.Timestamp("2025-01-01")
    t = lambda d: (d - pd.Timestamp("2015-01-01")).days / (365.25 / 12)  # noqa: E731
    pm_, qm = yearly_to_monthly(0.3, 0.8)
    edges = pd.date_range(launch, periods=13, freq="QS")
    rng = np.random.default_rng(4)
    rows = []
    for s, e in zip(edges[:-1], edges[1:], strict=True):
        mean = period_patients(t(s), t(e), t(launch), 120.0, 1.0, pm_, qm)
        rows.append(
            {
                "products": ("NEW",),
                "starts": (s,),
                "ends": (e,),
                "patients": float(rng.negative_binomial(40, 40 / (40 + mean))),
                "lower_bound": False,
            }
        )
    obs = pd.DataFrame(rows)
    early, later = obs.iloc[:8], obs.iloc[8:]
    analogs = UptakeModel(draws=300, tune=400, seed=1).fit()
    refit = analogs.with_product(Product("NEW", launch), early)
    assert [p.name for p in refit.products_][-1] == "NEW"
    assert refit.diagnostics()["r_hat_max"] < 1.1
    fc = refit.forecast("NEW", horizon_months=12, start="2027-01-01", draws=2000, seed=2)
    assert "peak_share" not in fc.coords  # the product's own posterior, no funnel inputs
    quarterly = fc.values.reshape(2000, 4, 3).sum(axis=2)
    lo, hi = np.quantile(quarterly, [0.05, 0.95], axis=0)
    observed = later["patients"].to_numpy()
    assert ((lo <= observed) & (observed <= hi)).mean() >= 0.75
