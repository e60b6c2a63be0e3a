"""Trial plans and the phase model: enrollment inside the calibrated phase time, a pivotal
phase II, and conditioning on a program still in its phase against a rejection sampler."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.errors import InputError
from tests.forecast import fakes

P = (0.5, 0.6, 0.7, 0.9)
EPOCH = pd.Timestamp("1970-01-01")


@pytest.fixture(scope="module")
def car_t():
    from pmcap.fits import reference_phase_model

    return reference_phase_model("modality")


def test_a_pivotal_phase_ii_files_with_phase_ii_and_iii_odds_after_their_time():
    """Fixed durations (1, 1.5, 2 years, the review at its mean): a pivotal phase II from
    2027-01-01 lasts 1.5 + 2 = 3.5 years, files with probability 0.6 * 0.7 = 0.42 and is
    approved a review later with 0.9 more; phase III ends the day phase II does."""
    model = fakes.phase_model(P, years=(1.0, 1.5, 2.0, 1.0)).with_durations(
        duration_dispersion=0.0, median_sd=0.0, speed_sd=0.0
    )
    sim = model.simulate(
        "phase2", "2027-01-01", draws=20_000, seed=4, group="CAR-T", pivotal="phase2"
    )
    start = (pd.Timestamp("2027-01-01") - EPOCH).days
    filed = np.isfinite(sim["filing_day"].values)
    assert filed.mean() == pytest.approx(0.42, abs=4 * np.sqrt(0.42 * 0.58 / 20_000))
    np.testing.assert_allclose(sim["filing_day"].values[filed], start + 3.5 * 365.25)
    ends = sim["phase_end_day"].values
    np.testing.assert_array_equal(ends[filed, 2], ends[filed, 1])
    assert np.isnan(ends[~filed, 2]).all()  # a failed pivotal phase II: no phase III
    approved = np.isfinite(sim["approval_day"].values)
    assert approved.mean() == pytest.approx(0.378, abs=4 * np.sqrt(0.378 * 0.622 / 20_000))
    review = model.review_for("CAR-T").mean_months / 12  # fixed durations: the review's mean
    np.testing.assert_allclose(
        sim["approval_day"].values[approved], start + (3.5 + review) * 365.25
    )
    with pytest.raises(InputError, match="no phase III"):
        model.simulate(
            "phase1",
            "2027-01-01",
            draws=10,
            group="CAR-T",
            pivotal="phase2",
            min_years={"phase3": 1.0},
        )


def test_a_typical_car_t_plan_keeps_the_calibrated_years_to_approval(car_t):
    """CAR-T from phase I with a pivotal phase II: the years from phase I start to approval of
    approved draws are the calibrated ones (no plan) with a typical plan (12 months of phase
    I and 15 of phase II enrollment: medians within 0.15 y), and a plan can only add time (it
    binds in the fastest draws)."""
    kw = dict(draws=20_000, seed=8, group="CAR-T", pivotal="phase2")
    free = car_t.simulate("phase1", "2027-01-01", **kw)
    plan = car_t.simulate("phase1", "2027-01-01", min_years={"phase1": 1.0, "phase2": 1.25}, **kw)
    start = (pd.Timestamp("2027-01-01") - EPOCH).days

    def years(sim):
        day = sim["approval_day"].values
        return (day[np.isfinite(day)] - start) / 365.25

    assert np.median(years(plan)) == pytest.approx(np.median(years(free)), abs=0.15)
    both = np.isfinite(plan["approval_day"].values) & np.isfinite(free["approval_day"].values)
    np.testing.assert_array_equal(
        np.isfinite(plan["approval_day"].values), np.isfinite(free["approval_day"].values)
    )
    assert (plan["approval_day"].values[both] >= free["approval_day"].values[both] - 1e-6).all()


def _window(n, rng):
    return rng.uniform(1.0, 2.0, n)  # an uncertain 12-24 month phase I enrollment


PLANS = {
    "none": ({}, "phase3"),
    "phase3 plan": ({"phase1": 1.5, "phase2": 2.0, "phase3": 2.5}, "phase3"),
    "pivotal phase2": ({"phase1": 1.0, "phase2": 1.25}, "phase2"),
    "uncertain window": ({"phase1": _window}, "phase2"),
}


@pytest.mark.parametrize("elapsed_months", [9, 24, 40])
@pytest.mark.parametrize("plan", list(PLANS))
def test_conditioning_on_today_matches_a_rejection_sampler(car_t, plan, elapsed_months):
    """A CAR-T program ``elapsed_months`` into phase I: simulate(as_of=...) against the exact
    sampler (simulate from the phase start, keep the draws still in phase I at as_of): the
    probability of approval and the approval-time quartiles agree within Monte Carlo error
    (4 standard errors; 5 for the quartiles, whose error is estimated roughly)."""
    min_years, pivotal = PLANS[plan]
    start = pd.Timestamp("2024-01-01")
    as_of = start + pd.DateOffset(months=elapsed_months)
    kw = dict(group="CAR-T", min_years=min_years, pivotal=pivotal)
    ref = car_t.simulate("phase1", start, draws=120_000, seed=1, **kw)
    as_of_day = (as_of - EPOCH).days
    kept = ref["phase_end_day"].values[:, 0] > as_of_day
    assert kept.sum() > 4000
    cond = car_t.simulate("phase1", start, draws=20_000, seed=2, as_of=as_of, **kw)
    assert cond.attrs["duration_ess"] == 20_000  # every draw exact
    a_ref = ref["approval_day"].values[kept]
    a_cond = cond["approval_day"].values
    p_ref, p_cond = np.isfinite(a_ref).mean(), np.isfinite(a_cond).mean()
    se = np.sqrt(p_ref * (1 - p_ref) / kept.sum() + p_cond * (1 - p_cond) / len(a_cond))
    assert abs(p_ref - p_cond) < 4 * se
    x_ref, x_cond = a_ref[np.isfinite(a_ref)] / 365.25, a_cond[np.isfinite(a_cond)] / 365.25
    for q in (0.25, 0.5, 0.75):
        # the quantile's standard error from the spread of the reference draws
        width = np.quantile(x_ref, min(q + 0.05, 1)) - np.quantile(x_ref, max(q - 0.05, 0))
        dens = 0.1 / max(width, 1e-9)
        se_q = np.sqrt(q * (1 - q) * (1 / len(x_ref) + 1 / len(x_cond))) / dens
        assert abs(np.quantile(x_ref, q) - np.quantile(x_cond, q)) < 5 * se_q + 1 / 365.25
    # the windows used are drawn with the rest: given by min_years in the result
    if plan == "uncertain window":
        w_ref = ref["min_years"].values[kept, 0]
        w_cond = cond["min_years"].values[:, 0]
        assert abs(w_ref.mean() - w_cond.mean()) < 4 * 0.29 * np.sqrt(
            1 / len(w_ref) + 1 / len(w_cond)
        )


def test_a_program_still_enrolling_past_its_failure_time_passes():
    """Fixed durations (phase I: 1 year) and a 2-year phase I enrollment, seen 1.5 years in:
    a draw that failed phase I would have stopped at 1 year, so every draw still in it
    passes. P(approval) is 0.6 * 0.7 * 0.9 = 0.378 (not 0.5 * 0.378), approval comes 2 + 1.5
    + 2 years and a review after the start, and the bands' P(approved | parameters) is 0.378 too."""
    model = fakes.phase_model(P, years=(1.0, 1.5, 2.0, 1.0)).with_durations(
        duration_dispersion=0.0, median_sd=0.0, speed_sd=0.0
    )
    kw = dict(draws=8000, seed=5, group="CAR-T", min_years={"phase1": 2.0})
    sim = model.simulate("phase1", "2027-01-01", as_of="2028-07-02", **kw)
    approved = np.isfinite(sim["approval_day"].values)
    assert np.isfinite(sim["phase_end_day"].values[:, 1]).all()  # every draw passed phase I
    assert approved.mean() == pytest.approx(0.378, abs=4 * np.sqrt(0.378 * 0.622 / 8000))
    start = (pd.Timestamp("2027-01-01") - EPOCH).days
    review = model.review_for("CAR-T").mean_months / 12  # fixed durations: the review's mean
    np.testing.assert_allclose(
        sim["approval_day"].values[approved], start + (5.5 + review) * 365.25
    )
    bands = model.bands(sim, months=pd.date_range("2034-01-01", periods=2, freq="MS"))
    np.testing.assert_allclose(bands[["p10", "p50", "p90"]].to_numpy(), 0.378, rtol=1e-12)
