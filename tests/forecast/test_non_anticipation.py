"""Non-anticipation: an at-risk commitment depends only on what its draw knows when it is made.

A PPQ campaign is committed at its first month, planned from the draw's filing date had every
readout been positive. It runs in full in every draw that has not learned of a failure before
that month, whatever the draw does later; it never runs in a draw that failed before it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.draws import DAYS_PER_MONTH
from tests.forecast import builders, fakes

P = (0.5, 0.6, 0.7, 0.9)  # phase1->2, 2->3, 3->filing, filing->approval in the fake model
NEVER, ALWAYS = 1e-9, 1 - 1e-9  # a phase III that (almost surely) fails or passes
EPOCH_D = np.datetime64("1970-01-01", "D")


@pytest.fixture(scope="module")
def enrollment():
    return fakes.enrollment_model(target=100)


def pivotal_world(enrollment, pivotal_success, *, follow=12, prep=3, window=(8, 6), draws=300):
    """A pivotal trial (100 patients from 2027, about 2 years) with 3 PPQ lots, 8 years."""
    prog = builders.trial(
        "PIV",
        enrollment,
        group="CAR-T",
        registrational=True,
        follow_up_months=follow,
        filing_prep_months=prep,
        pivotal_success=pivotal_success,
        ppq_lots=3,
        ppq_window_months=window,
    )
    return builders.portfolio(
        prog, horizon_months=96, draws=draws, seed=3, phase_model=fakes.phase_model(P)
    ).simulate()


def month_index(dates: np.ndarray, start="2027-01") -> np.ndarray:
    """Months from ``start`` of datetime64 values."""
    return dates.astype("datetime64[M]").astype("int64") - np.datetime64(start, "M").astype("int64")


def day_month_index(days: np.ndarray, start="2027-01") -> np.ndarray:
    """Months from ``start`` of days since 1970-01-01 (floats)."""
    return month_index(EPOCH_D + np.floor(days).astype("int64").astype("timedelta64[D]"), start)


def days_since_epoch(dates: np.ndarray) -> np.ndarray:
    return (dates - np.datetime64("1970-01-01", "ns")) / np.timedelta64(1, "D")


# --- (a) the campaign runs in full once its first month is reached --------------------------
def test_ppq_runs_in_full_in_draws_whose_readout_fails_after_it_starts(enrollment):
    """No draw's readout is positive; each would file 12 + 3 months after completion, so its
    campaign starts 8 months before that, 7 months after completion, before the readout (12
    months after). Every draw runs its 3 lots, one a month at filing - 8, - 7 and - 6."""
    w = pivotal_world(enrollment, 0.0)
    assert np.isnat(w.events["filing"].sel(program="PIV").values).all()
    ppq = w.demand.sel(program="PIV", stream="ppq").values
    done = days_since_epoch(w.events["enrollment_complete"].sel(program="PIV").values)
    planned = day_month_index(done + 15 * DAYS_PER_MONTH)  # the filing month it planned
    assert np.isfinite(done).all() and planned.max() < 96  # every window inside the horizon
    expected = np.zeros_like(ppq)
    for back in (8, 7, 6):
        expected[np.arange(len(ppq)), planned - back] = 1
    np.testing.assert_array_equal(ppq, expected)


def test_mean_ppq_lots_per_draw_equal_the_committed_lots(enrollment):
    """Readouts are positive with probability 0.7, but every draw reaches its campaign's start
    before its readout: 3.0 lots per draw exactly, not 0.7 x 3."""
    w = pivotal_world(enrollment, None)
    filed = ~np.isnat(w.events["filing"].sel(program="PIV").values)
    assert 0.6 < filed.mean() < 0.8
    lots = w.demand.sel(program="PIV", stream="ppq").values.sum(axis=1)
    np.testing.assert_array_equal(lots, 3)
    assert lots.mean() == 3.0


def test_no_ppq_in_draws_whose_readout_fails_before_it_starts(enrollment):
    """Filing 6 months after a readout 12 months after completion, the campaign 3 to 0 months
    before filing: a failed readout is known 3 months before it would start. Exactly the
    draws that file run their 3 lots."""
    w = pivotal_world(enrollment, None, prep=6, window=(3, 0))
    filed = ~np.isnat(w.events["filing"].sel(program="PIV").values)
    assert 0.6 < filed.mean() < 0.8
    lots = w.demand.sel(program="PIV", stream="ppq").values.sum(axis=1)
    np.testing.assert_array_equal(lots, np.where(filed, 3, 0))


def pipeline_world(p3: float, window: tuple[int, int], dispersion=0.0, draws=400):
    """Phase III from 2027-01 planned over 30 months of enrollment, with 4 PPQ lots; with no
    dispersion phase III lasts 2 years unless it passes (then its 2.5-year minimum)."""
    pipe = builders.pipeline(
        "phase3",
        "2027-01-01",
        trial_plan={"phase3": {"patients": 100, "enrollment_months": 30}},
        ppq_lots=4,
        ppq_window_months=window,
    )
    model = fakes.phase_model(
        (0.5, 0.6, p3, 0.9), years=(1.0, 1.5, 2.0, 1.0), dispersion=dispersion
    )
    if not dispersion:
        model.speed_sd = 0.0  # with no program speed either, every duration is its mean
    pf = builders.portfolio(pipe, horizon_months=96, draws=draws, seed=8, phase_model=model)
    return pf, model, pf.simulate()


@pytest.mark.parametrize(
    ("window", "failed_lots"),
    [
        # filing planned 2029-07 (2.5 years): lots 2028-07..10 (4 over the 9-month window),
        # committed in 2028-07, before the failure in 2029-01: they run
        ((12, 4), {"2028-07": 1, "2028-08": 1, "2028-09": 1, "2028-10": 1}),
        # window 2029-03..07: the failure (2029-01) is known before it starts
        ((4, 0), {}),
    ],
)
def test_a_pipeline_phase_iii_that_fails_after_the_start_keeps_its_ppq(window, failed_lots):
    _, _, w = pipeline_world(0.7, window)
    filing = w.events["filing"].sel(program="PIPE").values
    filed = ~np.isnat(filing)
    assert 0.6 < filed.mean() < 0.8
    np.testing.assert_array_equal(month_index(filing[filed]), 30)  # 2027-01 + 2.5 y: 2029-07
    ppq = w.demand.sel(program="PIPE", stream="ppq").to_pandas()  # (draw, month)
    early, late = window
    planned = pd.period_range(
        pd.Period("2029-07", "M") - early, pd.Period("2029-07", "M") - late, freq="M"
    )
    filed_lots = {str(m): 1 if i < 4 else 0 for i, m in enumerate(planned)}
    for rows, lots in ((filed, filed_lots), (~filed, failed_lots)):
        expected = pd.Series(0, index=ppq.columns)
        for month, n in lots.items():
            expected[pd.Timestamp(month)] = n
        np.testing.assert_array_equal(ppq.values[rows], np.tile(expected.values, (rows.sum(), 1)))


# --- (b) a commitment is a function of its draw's history ---------------------------------
def test_ppq_up_to_the_readout_is_the_same_whatever_the_readout(enrollment):
    """Two worlds with the same seed, one where every readout fails and one where every
    readout succeeds, share each draw's history up to its readout. Up to the readout's month
    the PPQ lots are the same; after it they may differ (a failure known before the campaign
    starts stops it). Filing prep of 1-8 months and a 4-0 month window put the campaign's
    start before the readout in some draws and after it in others."""
    kw = dict(follow={"uniform": [9, 15]}, prep={"uniform": [1, 8]}, window=(4, 0), draws=400)
    fail, succeed = pivotal_world(enrollment, 0.0, **kw), pivotal_world(enrollment, 1.0, **kw)
    for name in ("PIV.follow_up_months", "PIV.filing_prep_months"):
        np.testing.assert_array_equal(fail.inputs[name].values, succeed.inputs[name].values)
    done = fail.events["enrollment_complete"].sel(program="PIV").values
    np.testing.assert_array_equal(done, succeed.events["enrollment_complete"].sel(program="PIV"))
    follow = fail.inputs["PIV.follow_up_months"].values
    readout = day_month_index(days_since_epoch(done) + follow * DAYS_PER_MONTH)
    a = fail.demand.sel(program="PIV", stream="ppq").values
    b = succeed.demand.sel(program="PIV", stream="ppq").values
    months = np.arange(a.shape[1])
    known = months[None, :] <= readout[:, None]  # (draw, month): history still shared
    np.testing.assert_array_equal(np.where(known, a, 0), np.where(known, b, 0))
    np.testing.assert_array_equal(b.sum(axis=1), 3)  # every draw files and runs its lots
    ran = a.sum(axis=1) > 0
    assert 0.2 < ran.mean() < 0.8  # the campaign started before the readout in some draws
    np.testing.assert_array_equal(a[ran], b[ran])  # ... and ran in full there


def test_pipeline_ppq_up_to_the_phase_iii_end_is_the_same_whatever_its_result():
    """The same for a phase III with uncertain durations and a 30-month enrollment minimum
    for a passed phase: a failed phase may end sooner than its plan, at the month its draw
    learns the failure; up to that month the lots are the same as in the passed world."""
    pf, model, fail = pipeline_world(NEVER, (12, 4), dispersion=0.4)
    _, _, succeed = pipeline_world(ALWAYS, (12, 4), dispersion=0.4)
    assert np.isnat(fail.events["filing"].sel(program="PIPE").values).all()
    assert not np.isnat(succeed.events["filing"].sel(program="PIPE").values).any()
    sim = model.simulate(
        "phase3",
        "2027-01-01",
        draws=400,
        seed=pf.seed_for("PIPE", "approval"),
        group="CAR-T",
        as_of="2027-01-01",
        min_years={"phase3": 2.5},
    )
    assert np.isnan(sim["filing_day"].values).all()  # the failing world's phase model
    failure = day_month_index(sim["phase_end_day"].values[:, 2])
    a = fail.demand.sel(program="PIPE", stream="ppq").values
    b = succeed.demand.sel(program="PIPE", stream="ppq").values
    months = np.arange(a.shape[1])
    known = months[None, :] <= failure[:, None]
    np.testing.assert_array_equal(np.where(known, a, 0), np.where(known, b, 0))
    ran = a.sum(axis=1) > 0
    assert 0.2 < ran.mean() < 0.95 and (~ran).any()
    np.testing.assert_array_equal(a[ran], b[ran])
    np.testing.assert_array_equal(a[~ran], 0)


def test_phase_model_ppq_month_is_the_same_whatever_the_phase_iii_result():
    """:meth:`PhaseTransitionModel.simulate`'s PPQ (lots 6 months before the filing planned
    had phase III passed): the same month and lots in both worlds wherever the campaign
    starts no later than the failure's month; none where the failure is known before."""
    kw = dict(
        draws=2000,
        seed=5,
        group="CAR-T",
        as_of="2027-01-01",
        ppq_lots=3,
        ppq_months_before_filing=6,
        min_years={"phase3": 2.5},
    )
    fail = fakes.phase_model((0.5, 0.6, NEVER, 0.9), dispersion=0.4).simulate(
        "phase2", "2027-01-01", **kw
    )
    succeed = fakes.phase_model((0.5, 0.6, ALWAYS, 0.9), dispersion=0.4).simulate(
        "phase2", "2027-01-01", **kw
    )
    reached = np.isfinite(fail["phase_end_day"].values[:, 2])  # entered phase III
    assert 0.5 < reached.mean() < 0.7
    failure = day_month_index(np.nan_to_num(fail["phase_end_day"].values[:, 2]))
    start = month_index(succeed["ppq_month"].values)
    np.testing.assert_array_equal(succeed["ppq_lots"].values, np.where(reached, 3, 0))
    before = reached & (start <= failure)
    assert 0.2 < before[reached].mean() < 0.95
    np.testing.assert_array_equal(fail["ppq_lots"].values, np.where(before, 3, 0))
    np.testing.assert_array_equal(fail["ppq_month"].values[before], succeed["ppq_month"][before])
    assert np.isnat(fail["ppq_month"].values[~before]).all()
