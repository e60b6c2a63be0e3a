"""plan_expansion, plan_hiring and newsvendor on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from capacity import (
    InputError,
    joint_shortfall,
    newsvendor,
    plan_expansion,
    plan_hiring,
    requirements,
)
from capacity.plan import ExpansionPlan
from tests.helpers import fixed_process, make_demand

MONTHS = pd.date_range("2027-01-01", periods=48, freq="MS")


def need(values, name="suites"):
    values = np.atleast_2d(values)
    return xr.DataArray(
        values, dims=("draw", "month"), coords={"month": MONTHS[: values.shape[1]]}, name=name
    )


def step_need(draws=10):
    # 5 suites until 2029-01, 9 after, identical in every draw
    return need(np.tile(np.where(np.arange(48) < 24, 5.0, 9.0), (draws, 1)))


def test_commit_exactly_lead_time_before_the_step():
    plan = plan_expansion(step_need(), installed=6, unit_size=4, lead_time_months=18, target=0.05)
    assert plan.commitments["commit_month"].tolist() == [pd.Timestamp("2027-07-01")]
    assert plan.commitments["online_month"].tolist() == [pd.Timestamp("2029-01-01")]
    assert plan.by_month["shortfall_probability"].max() == 0
    assert "commit 2027-07 -> online 2029-01" in str(plan)


def test_two_modules_when_one_is_not_enough_and_cost():
    plan = plan_expansion(
        step_need(),
        installed=6,
        unit_size=2,
        lead_time_months=12,
        target=0.0,
        cost_per_unit_year=1.2e6,
    )
    assert plan.commitments["commit_month"].tolist() == [pd.Timestamp("2028-01-01")] * 2
    # two modules online for 24 months at 1.2 M a year each
    assert plan.cost["units"] == pytest.approx(2 * 24 * 1.2e6 / 12)


def test_shortfall_inside_the_lead_time_is_reported_not_hidden():
    plan = plan_expansion(step_need(), installed=6, unit_size=4, lead_time_months=30, target=0.05)
    assert plan.commitments["online_month"].tolist() == [pd.Timestamp("2029-07-01")]
    early = plan.by_month.set_index("month").loc["2029-01-01":"2029-06-01"]
    assert (early["shortfall_probability"] == 1).all() and not early["helpable"].any()


def test_target_is_a_probability_over_draws():
    # need 7 in 10% of draws, 5 otherwise: target 0.05 builds, target 0.2 does not
    values = np.full((100, 48), 5.0)
    values[:10, 30:] = 7.0
    assert (
        len(
            plan_expansion(
                need(values), installed=6, unit_size=2, lead_time_months=6, target=0.05
            ).commitments
        )
        == 1
    )
    assert (
        len(
            plan_expansion(
                need(values), installed=6, unit_size=2, lead_time_months=6, target=0.2
            ).commitments
        )
        == 0
    )


def test_cost_optimal_target_and_cdmo_mix():
    values = np.full((100, 48), 5.0)
    values[:10, 30:] = 7.0  # 10% chance of needing one more suite for 18 months
    lots = xr.full_like(need(values), 30.0)
    req = xr.Dataset({"suites": need(values), "lots": lots})
    # a module (2 suites) costs 10 a year; a lost patient 1: losing 30 x 2/7 lots a month in
    # 10% of draws for 18 months costs about 15, the module about 15 -> compare with CDMO
    plan = plan_expansion(
        req,
        installed=6,
        unit_size=2,
        lead_time_months=6,
        target=None,
        cost_per_unit_year=10,
        cost_per_patient_lost=1,
        cdmo_slot_fee_per_month=0.01,
        cdmo_slot_options=(0, 1, 2),
    )
    assert plan.cdmo_slots == 1  # one cheap reserved slot covers the extra suite
    assert len(plan.commitments) == 0
    assert plan.cost["total"] == pytest.approx(0.01 * 48)
    assert set(plan.alternatives["cdmo_slots"]) == {0, 1, 2}


def test_hiring_uses_hiring_plus_training_lead_time():
    fte = need(np.tile(np.where(np.arange(48) < 20, 10.0, 13.0), (5, 1)), "operator_fte")
    plan = plan_hiring(fte, installed=10, hiring_months=3, training_months=4, batch=1)
    assert len(plan.commitments) == 3
    assert set(plan.commitments["commit_month"]) == {MONTHS[13]}


def test_newsvendor_critical_fractile():
    rng = np.random.default_rng(0)
    values = rng.uniform(0, 10, size=(10_000, 12))
    frame = newsvendor(need(values[:, :12]), cost_short_per_unit_year=9, cost_idle_per_unit_year=1)
    assert frame["critical_fractile"].iloc[0] == pytest.approx(0.9)
    # peak of 12 uniforms on [0, 10] has CDF (x/10)**12: 0.9 quantile = 10 * 0.9**(1/12);
    # its sampling sd is sqrt(q (1 - q) / n) / density at the quantile
    x = 10 * 0.9 ** (1 / 12)
    se = np.sqrt(0.9 * 0.1 / 10_000) / (12 / 10 * (x / 10) ** 11)
    assert abs(frame["capacity"].iloc[0] - x) < 4 * se
    # mean of the peak: 10 n / (n + 1), sd 10 sqrt(n / (n + 2) - (n / (n + 1))**2)
    sd = 10 * np.sqrt(12 / 14 - (12 / 13) ** 2)
    assert abs(frame["peak_mean"].iloc[0] - 120 / 13) < 4 * sd / np.sqrt(10_000)


def test_bad_plan_input():
    with pytest.raises(InputError, match="give a target"):
        plan_expansion(step_need(), installed=6, unit_size=4, lead_time_months=18, target=None)
    with pytest.raises(InputError, match="no variable 'suits'"):
        plan_expansion(
            xr.Dataset({"suites": step_need()}),
            resource="suits",
            installed=6,
            unit_size=4,
            lead_time_months=18,
        )
    with pytest.raises(InputError, match="CDMO options"):
        plan_expansion(
            step_need(), installed=6, unit_size=4, lead_time_months=18, cdmo_slot_options=(0, 2)
        )


def test_hiring_follows_the_suites_online():
    # demand for ~20 suites, but only 10 online until a module brings 30 in month 13: crews
    # staff the suites online, so the first year is hired for 10 suites, not 20
    demand = make_demand(np.full((20, 24), 62))
    process = fixed_process(min_operators_per_suite_shift=2)
    req = requirements(demand, process, seed=1, opening=62)
    suites_online = pd.Series(
        np.r_[np.full(12, 10.0), np.full(12, 30.0)], index=req["month"].values
    )
    free = plan_hiring(req, installed=0, hiring_months=0, training_months=0, target=0.0)
    tied = plan_hiring(
        req, installed=0, hiring_months=0, training_months=0, target=0.0, suites=suites_online
    )
    need = req["operator_fte"].values
    share = np.minimum(1, suites_online.to_numpy() / req["suites"].values)
    first_year = tied.by_month["capacity"].to_numpy()[:12]
    assert first_year.max() == pytest.approx(np.ceil((need * share)[:, :12].max()), abs=1)
    assert first_year.max() < 0.6 * free.by_month["capacity"].to_numpy()[:12].max()
    # with 30 suites online nothing is capped: staffed for the whole need (target 0)
    assert tied.by_month["capacity"].to_numpy()[-1] == np.ceil(need[:, 12:].max())


def test_decision_date_before_the_horizon_moves_the_first_helpable_month():
    # need 10 suites from the first month, 4 installed, modules of 4 with 20 months lead time
    months = pd.date_range("2027-01-01", periods=36, freq="MS")
    need = xr.DataArray(np.full((5, 36), 10.0), dims=("draw", "month"), coords={"month": months})
    kw = {"installed": 4, "unit_size": 4, "lead_time_months": 20, "target": 0.0}
    late = plan_expansion(need, **kw)
    early = plan_expansion(need, as_of="2026-07-15", **kw)  # decided 6 months ahead
    assert late.commitments["online_month"].min() == pd.Timestamp("2028-09-01")
    assert early.commitments["online_month"].min() == pd.Timestamp("2028-03-01")
    assert early.commitments["commit_month"].min() == pd.Timestamp("2026-07-01")
    assert len(early.commitments) == 2  # 4 + 2 x 4 >= 10
    assert early.by_month["helpable"].to_numpy().argmax() == 14
    with pytest.raises(InputError, match="after the horizon"):
        plan_expansion(need, as_of="2030-01-01", **kw)


def test_expected_shortfall_and_refused_targets():
    # expected_shortfall is the mean over draws of need above capacity (here nonzero);
    # target=1 and a zero idle cost are refused
    months = pd.date_range("2027-01-01", periods=2, freq="MS")
    need = xr.DataArray(
        np.array([[5.0, 5.0], [15.0, 15.0], [12.0, 8.0], [9.0, 11.0]]),
        dims=("draw", "month"),
        coords={"month": months},
    )
    plan = plan_expansion(need, installed=10, unit_size=4, lead_time_months=6, target=0.5)
    # capacity 10 in both months (nothing can be online inside the lead time)
    np.testing.assert_allclose(plan.by_month["expected_shortfall"], [(5 + 2) / 4, (5 + 1) / 4])
    np.testing.assert_allclose(plan.by_month["shortfall_probability"], [0.5, 0.5])
    with pytest.raises(InputError, match="target"):
        plan_expansion(need, installed=10, unit_size=4, lead_time_months=6, target=1.0)
    with pytest.raises(InputError):
        newsvendor(need, cost_short_per_unit_year=1.0, cost_idle_per_unit_year=0.0)


@pytest.mark.parametrize(
    ("slots_per_suite", "best_slots", "cdmo_suites", "option_totals"),
    [
        # 2 slots make a suite: 1 slot adds 0.5 (short by 0.5 of 7), so 2 slots are needed
        (2.0, 2, 1.0, [54 / 7, 2.4 + 27 / 7, 4.8]),
        # a slot makes 2 suites: 1 slot already covers the 7th suite (capacity 8)
        (0.5, 1, 2.0, [54 / 7, 2.4, 4.8]),
        (1.0, 1, 1.0, [54 / 7, 2.4, 4.8]),
    ],
)
def test_cdmo_slots_count_per_unit_of_resource(
    slots_per_suite, best_slots, cdmo_suites, option_totals
):
    # a CDMO slot adds 1 / slots_per_unit_of_resource units of the resource (suites).
    # Need 5 suites, 7 in 10 of 100 draws for months 30-47; 6 installed; no module can be
    # online inside the horizon (lead time 48), so only CDMO slots (0.05 a slot a month,
    # 2.4 over 48 months) help. Lost lots = 30 a month x (1 - capacity / 7) in 10% of draws
    # for 18 months: 54 / 7 with capacity 6, 27 / 7 with 6.5, none with 7 or more.
    values = np.full((100, 48), 5.0)
    values[:10, 30:] = 7.0
    req = xr.Dataset({"suites": need(values), "lots": xr.full_like(need(values), 30.0)})
    plan = plan_expansion(
        req,
        installed=6,
        unit_size=2,
        lead_time_months=48,
        target=0.05,
        cost_per_patient_lost=1,
        cdmo_slot_fee_per_month=0.05,
        cdmo_slot_options=(0, 1, 2),
        slots_per_unit_of_resource=slots_per_suite,
    )
    assert plan.cdmo_slots == best_slots
    assert len(plan.commitments) == 0
    np.testing.assert_allclose(plan.alternatives["total"], option_totals, rtol=1e-12)
    np.testing.assert_allclose(plan.alternatives["cdmo"], [0.0, 2.4, 4.8], rtol=1e-12)
    assert plan.cost["total"] == pytest.approx(0.05 * 48 * best_slots, rel=1e-12)
    np.testing.assert_array_equal(plan.by_month["cdmo"], cdmo_suites)
    np.testing.assert_array_equal(plan.by_month["capacity"], 6 + cdmo_suites)
    np.testing.assert_array_equal(plan.by_month["shortfall_probability"], 0.0)


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan, np.inf])
def test_slots_per_unit_of_resource_must_be_a_positive_number(bad):
    # 0, a negative value, NaN and infinity are refused with a message naming the field
    values = np.full((20, 12), 5.0)
    with pytest.raises(InputError, match="slots_per_unit_of_resource must be a finite number > 0"):
        plan_expansion(
            xr.Dataset({"suites": need(values)}),
            installed=6,
            unit_size=2,
            lead_time_months=6,
            cdmo_slot_fee_per_month=0.05,
            cdmo_slot_options=(0, 1),
            slots_per_unit_of_resource=bad,
        )


def _fixed_plan(resource: str, months, capacity, helpable) -> ExpansionPlan:
    by_month = pd.DataFrame({"month": months, "capacity": capacity, "helpable": helpable})
    return ExpansionPlan(resource, 0.1, pd.DataFrame(), by_month, {}, 0, pd.DataFrame())


def test_joint_shortfall_counts_a_month_short_if_any_resource_is():
    """Four draws, two months, by hand. Suites capacity 4 then 5, operators 10 then 15.
    Month 1: only draw 1's operators (12 > 10) are short: 1/4. Month 2: draw 1's operators
    (20 > 15), draw 2's suites (6 > 5), draw 3's operators (30 > 15): 3/4, although each
    plan alone is short in at most 2/4 (draw 0's 5 suites against 5 is met)."""
    months = pd.date_range("2027-01-01", periods=2, freq="MS")
    total = xr.Dataset(
        {
            "suites": (("draw", "month"), [[3.0, 5.0], [4.0, 4.0], [2.0, 6.0], [3.0, 3.0]]),
            "operator_fte": (("draw", "month"), [[10.0, 10], [12, 20], [8, 16], [10, 30]]),
        },
        coords={"month": months},
    )
    plans = {
        "suites": _fixed_plan("suites", months, [4.0, 5.0], [False, True]),
        "operator_fte": _fixed_plan("operator_fte", months, [10.0, 15.0], [True, True]),
    }
    got = joint_shortfall(total, plans)
    np.testing.assert_allclose(got["probability"], [0.25, 0.75])
    assert got["helpable"].tolist() == [False, True]  # every plan can act only in month 2
    assert (got["month"] == months).all()
    # the suites alone: only draw 2 in month 2
    alone = joint_shortfall(total[["suites"]], {"suites": plans["suites"]})
    np.testing.assert_allclose(alone["probability"], [0.0, 0.25])
    with pytest.raises(InputError, match="suites plan"):
        joint_shortfall(total, {"operator_fte": plans["operator_fte"]})
