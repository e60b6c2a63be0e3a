"""Viral vector campaigns, FEFO use, expiry and the campaign plan (capacity.vector)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from capacity import InputError, ProcessSpecError
from capacity.vector import VectorSpec, plan_vector, simulate_vector, vector_by_process
from tests.helpers import fixed_process


def spec_of(**overrides) -> VectorSpec:
    raw = {
        "doses_per_lot": 10,
        "campaign_lead_time_months": 1,
        "release_months": 1,
        "shelf_life_months": 4,
    }
    return VectorSpec.from_mapping({**raw, **overrides})


def lots_of(values) -> xr.DataArray:
    values = np.asarray(values, float)
    months = pd.date_range("2027-01-01", periods=values.shape[1], freq="MS")
    return xr.DataArray(
        values, dims=("draw", "month"), coords={"draw": np.arange(len(values)), "month": months}
    )


def uncertain_lots(draws: int, months: int, seed: int) -> np.ndarray:
    """Poisson lots whose rate is uncertain per draw and grows: launch-like demand."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(4.0, 5.0, size=(draws, 1)) * np.linspace(0.5, 1.5, months)
    return rng.poisson(rate).astype(float)


# --- a deterministic case by hand --------------------------------------------------------------
def test_fefo_expiry_and_waiting_by_hand():
    # 10 doses a campaign, 1 month to make, 1 to release, shelf life 4 months from the end of
    # manufacture: a campaign started at s is usable in months s+2 .. s+4 (expires at s+5).
    # Campaign 1 starts at 0 (usable 2..4), campaign 2 at 1 (usable 3..5). The opening stock,
    # 20 doses, lasts until month 7: it is the oldest, but expires last, so FEFO takes the
    # campaigns first once they are released (FIFO would take the opening stock).
    spec = spec_of(initial_doses=20, initial_expiry_months=7)
    lots = [2, 5, 3, 4, 1, 6, 0, 3]
    sim = simulate_vector(lots_of([lots] * 3), spec, [0, 1])
    # month 0: opening 20 -> 18; 1: -> 13; 2: c1 released, 3 from c1 (7 left); 3: c2 released,
    # 4 from c1 (3); 4: 1 from c1 (2); 5: c1's 2 expire, 6 from c2 (4); 6: c2's 4 expire;
    # 7: the opening's 13 expire and the month's 3 lots wait.
    assert sim["doses_used"].values[0].tolist() == [2, 5, 3, 4, 1, 6, 0, 0]
    assert sim["doses_expired"].values[0].tolist() == [0, 0, 0, 0, 0, 2, 4, 13]
    assert sim["doses_on_hand"].values[0].tolist() == [18, 13, 20, 26, 25, 17, 13, 0]
    assert sim["lots_waiting"].values[0].tolist() == [0, 0, 0, 0, 0, 0, 0, 3]
    assert sim["doses_released"].values[0].tolist() == [0, 0, 10, 10, 0, 0, 0, 0]
    assert sim["campaign_used"].values[0].tolist() == [8, 6]
    assert sim["campaign_expired"].values[0].tolist() == [2, 4]
    assert sim["opening_used"].values[0] == 7 and sim["opening_expired"].values[0] == 13
    assert sim["campaign_released"].values[0].tolist() == [2, 3]
    assert sim["campaign_expiry"].values[0].tolist() == [5, 6]
    # every draw is the same case
    assert (sim["doses_used"].values == sim["doses_used"].values[0]).all()


def test_waiting_lots_go_first_and_are_served_when_vector_arrives():
    # no opening stock: months 0 and 1 wait (2 + 5 lots); campaign 1 released at month 2 serves
    # the 7 waiting and the month's 3 lots as far as its 10 doses go
    sim = simulate_vector(lots_of([[2, 5, 3, 1]]), spec_of(), [0])
    assert sim["lots_waiting"].values[0].tolist() == [2, 7, 0, 1]
    assert sim["doses_used"].values[0].tolist() == [0, 0, 10, 0]


def test_lots_per_campaign_and_whole_doses():
    spec = spec_of(doses_per_lot=10.7, lots_per_campaign=3)
    sim = simulate_vector(lots_of([[0, 0, 0]]), spec, [0])
    assert sim["campaign_doses"].values.tolist() == [[30.0]]  # 3 vector lots x 10 whole doses


def test_doses_are_conserved_on_uncertain_inputs():
    spec = spec_of(
        doses_per_lot={"triangular": [20, 40, 80]},
        campaign_lead_time_months={"uniform": [1, 4]},
        release_months={"triangular": [0.5, 1, 2]},
        shelf_life_months=9,
        initial_doses=50,
        initial_expiry_months=5,
    )
    sim = simulate_vector(uncertain_lots(200, 30, 1), spec, [0, 3, 6, 9, 12, 15, 20], seed=4)
    made = sim["doses_released"].sum("month")
    used = sim["doses_used"].sum("month")
    expired = sim["doses_expired"].sum("month")
    np.testing.assert_allclose(50 + made, used + expired + sim["doses_on_hand"][:, -1])
    # per campaign: what FEFO took plus what expired never exceeds what it made
    taken = sim["campaign_used"] + sim["campaign_expired"]
    assert (taken <= sim["campaign_doses"] + 1e-9).all()
    # a lot waits only when no released, unexpired dose is left
    waits = sim["lots_waiting"].values > 0
    assert waits.any() and (sim["doses_on_hand"].values[waits] == 0).all()


# --- the plan --------------------------------------------------------------------------------
def test_plan_by_hand():
    # 2 lots a month in every draw, 10 doses a campaign, released 2 months after its start:
    # reach = 2. Month 0 checks month 2: lots of months 0 and 1 wait there without a campaign
    # and are served with one started at 0 (4 waiting + 2 = 6 of its 10 doses). Months 1 and
    # 2 check 3 and 4 (4 and then 2 doses left: enough). Month 3 checks 5 (none left): one more.
    spec = spec_of(shelf_life_months=12)
    plan = plan_vector(np.full((5, 8), 2.0), spec)
    assert plan.reach_months == 2
    assert plan.starts.tolist() == [0, 3]
    assert plan.by_month["wait_probability"].tolist() == [1, 1, 0, 0, 0, 0, 0, 0]
    assert plan.by_month["planned"].tolist() == [False, False] + [True] * 6
    assert plan.totals.set_index("metric").loc["doses_used", "p50"] == 16
    # campaign 1 serves months 2-4 (4 waiting + 2, then 2 and 2), campaign 2 months 5-7
    campaigns = plan.campaigns
    assert campaigns["start_month"].dt.strftime("%Y-%m").tolist() == ["2000-01", "2000-04"]
    assert campaigns["release_month_p90"].dt.strftime("%Y-%m").tolist() == ["2000-03", "2000-06"]
    assert campaigns["doses_used_mean"].tolist() == [10, 6]
    assert campaigns["doses_expired_mean"].tolist() == [0, 0]
    assert plan.cost == 0


def test_plan_meets_target_on_fresh_draws():
    # planned on 400 draws, re-simulated with the same calendar on 400 other draws with
    # fresh yields, lead and release times: P(a lot waits) in each month the rule protects is
    # within Monte Carlo error of the target (3 standard errors, plus the months' maximum)
    target, draws = 0.1, 400
    spec = spec_of(
        doses_per_lot={"triangular": [60, 100, 160]},
        campaign_lead_time_months={"uniform": [1, 3]},
        release_months={"triangular": [0.5, 1, 2]},
        shelf_life_months=12,
        initial_doses=60,
    )
    plan = plan_vector(
        uncertain_lots(draws, 36, 2),
        spec,
        target=target,
        seed=3,
        fresh_lots=uncertain_lots(draws, 36, 99),
    )
    planned = plan.by_month["planned"].to_numpy()
    assert plan.reach_months == 5  # 1 - 0.1 quantile of ceil(lead) + ceil(release): 3 + 2
    assert len(plan.starts) >= 5
    own = plan.by_month["wait_probability"].to_numpy()[planned]
    assert own.max() <= target + 1e-12  # on its own draws the rule holds by construction
    fresh = plan.fresh_wait_probability[planned]
    se = np.sqrt(target * (1 - target) / draws)
    assert fresh.max() <= target + 3 * se
    assert fresh.mean() <= target + se
    # and the plan is not wasteful: one campaign fewer breaks the target in some month
    fewer = simulate_vector(uncertain_lots(draws, 36, 2), spec, plan.starts[:-1], seed=3)
    assert (fewer["lots_waiting"].values > 0).mean(axis=0)[planned].max() > target


def test_plan_is_non_anticipative():
    # the decision at month t looks at the lots up to t + reach as a distribution over draws:
    # changing any draw's lots after t + reach leaves every start up to t as it was
    spec = spec_of(
        doses_per_lot={"uniform": [40, 70]},
        campaign_lead_time_months={"uniform": [1, 3]},
        shelf_life_months=10,
    )
    lots = uncertain_lots(300, 30, 5)
    base = plan_vector(lots, spec, seed=1)
    t = 12
    check = t + base.reach_months
    changed = lots.copy()
    changed[:150, check + 1 :] *= 3  # half the draws triple after t + reach
    changed[150:, check + 1 :] = 0  # the others stop
    other = plan_vector(changed, spec, seed=1)
    assert other.starts[other.starts <= t].tolist() == base.starts[base.starts <= t].tolist()
    assert other.starts.tolist() != base.starts.tolist()  # later starts do react
    # a change within the reach of month t does move the starts up to t (the test can fail)
    spike = lots.copy()
    spike[:, check] += 400
    moved = plan_vector(spike, spec, seed=1)
    assert moved.starts[moved.starts <= t].tolist() != base.starts[base.starts <= t].tolist()


def test_same_seed_same_plan_and_the_seed_matters():
    spec = spec_of(
        doses_per_lot={"uniform": [40, 70]}, campaign_lead_time_months={"uniform": [1, 3]}
    )
    lots = uncertain_lots(100, 20, 6)
    a, b = plan_vector(lots, spec, seed=7), plan_vector(lots, spec, seed=7)
    pd.testing.assert_frame_equal(a.by_month, b.by_month)
    c = plan_vector(lots, spec, seed=8)
    assert not a.by_month["doses_released_p50"].equals(c.by_month["doses_released_p50"])


def test_vector_by_process_sums_the_programs_of_a_process():
    spec = fixed_process(
        vector={
            "doses_per_lot": 10,
            "campaign_lead_time_months": 1,
            "release_months": 1,
            "shelf_life_months": 12,
        }
    )
    plain = fixed_process(name="other")
    lots = xr.DataArray(
        np.ones((5, 8, 3)),
        dims=("draw", "month", "program"),
        coords={
            "draw": np.arange(5),
            "month": pd.date_range("2027-01-01", periods=8, freq="MS"),
            "program": ["A", "B", "C"],
        },
    )
    plans = vector_by_process(lots, {"A": spec, "B": spec, "C": plain})
    assert list(plans) == ["fixed"]  # the process without a vector is left out
    # A and B: 2 lots a month in every draw: the hand case of test_plan_by_hand
    assert plans["fixed"].starts.tolist() == [0, 3]


# --- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"shelf_life_months": 2, "release_months": 2}, ["shelf_life_months", "expires before"]),
        (
            {"shelf_life_months": 3, "release_months": {"uniform": [1, 3]}},
            ["shelf_life_months", "longest 3 months"],
        ),
        (
            {"shelf_life_months": 3, "release_months": {"lognormal": {"median": 1, "p90": 2.5}}},
            ["shelf_life_months", "P90 2.5 months"],
        ),
        ({"doses_per_lot": 0}, ["doses_per_lot", "at least one dose"]),
        ({"doses_per_lot": -5}, ["doses_per_lot", ">= 0"]),
        ({"lots_per_campaign": 0}, ["lots_per_campaign", "whole number >= 1"]),
        ({"wait_target": 1.5}, ["wait_target", "(0, 1)"]),
        ({"initial_doses": -1}, ["initial_doses", ">= 0"]),
        ({"dose_per_lot": 3}, ["unknown fields ['dose_per_lot']"]),
    ],
)
def test_bad_vector_one_clear_error(overrides, words):
    with pytest.raises(InputError) as err:
        spec_of(**overrides)
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_missing_field_and_error_through_the_process():
    with pytest.raises(InputError, match="missing field 'shelf_life_months'"):
        VectorSpec.from_mapping(
            {"doses_per_lot": 1, "campaign_lead_time_months": 1, "release_months": 1}
        )
    raw = fixed_process().to_dict()
    raw["vector"] = {
        "doses_per_lot": 10,
        "campaign_lead_time_months": 1,
        "release_months": 3,
        "shelf_life_months": 3,
    }
    from capacity.process import ProcessSpec

    with pytest.raises(ProcessSpecError, match=r"p.toml: field 'vector': field 'shelf_life"):
        ProcessSpec.from_mapping(raw, "p.toml")


def test_spec_round_trips_through_toml():
    spec = spec_of(
        release_months={"triangular": [1, 2, 3]},
        shelf_life_months=24,
        initial_doses=5,
        initial_expiry_months=6,
        cost_per_campaign=1e6,
    )
    assert VectorSpec.from_mapping(spec.to_toml()) == spec


def test_bad_starts_and_lots():
    with pytest.raises(InputError, match="start months must be in 0..3"):
        simulate_vector(np.ones((2, 4)), spec_of(), [4])
    with pytest.raises(InputError, match="lots"):
        plan_vector(-np.ones((2, 4)), spec_of())


def test_the_plans_fast_state_agrees_with_the_simulation():
    # the plan probes with doses bucketed by expiry month (capacity.vector._Buckets); the
    # reported numbers come from simulate_vector's per-campaign books: both must give the
    # same waits month by month, expiries past the horizon and lost campaigns included
    from capacity.vector import _Buckets, _Campaigns

    spec = spec_of(
        doses_per_lot={"triangular": [20, 40, 80]},
        campaign_lead_time_months={"uniform": [0, 4]},
        release_months={"lognormal": {"median": 1, "p90": 2}},
        shelf_life_months=6,
        initial_doses=50,
        initial_expiry_months=4,
    )
    lots = uncertain_lots(300, 24, 8)
    starts = [0, 0, 3, 5, 9, 12, 14, 20, 23]
    sim = simulate_vector(lots, spec, starts, seed=2)
    camp = _Campaigns(spec, 300, 2, "vector")
    fast = _Buckets(spec, camp, 24)
    counts = np.bincount(starts, minlength=24)
    for t in range(24):
        fast.start(t, int(counts[t]))
        fast.step(t, lots[:, t])
        np.testing.assert_allclose(fast.waiting, sim["lots_waiting"].values[:, t], atol=1e-9)
    # the lognormal release outlasts the shelf life in some draws: those campaigns are lost
    lost = sim["campaign_released"] >= sim["campaign_expiry"]
    assert lost.any()
    np.testing.assert_allclose(sim["campaign_used"].where(lost, 0), 0)


def test_vector_csv_rows_are_the_plans_numbers():
    from pmcap.export import vector_table

    spec = spec_of(
        doses_per_lot={"uniform": [40, 70]},
        campaign_lead_time_months={"uniform": [1, 3]},
        cost_per_campaign=1000,
    )
    lots = uncertain_lots(200, 18, 3)
    plan = plan_vector(lots_of(lots), spec, seed=2)
    table = vector_table({"proc": plan}, "EUR", (0.1, 0.5, 0.9))
    monthly = table[table["granularity"] == "month"]
    horizon = table[table["granularity"] == "horizon"].iloc[0]
    assert len(monthly) == 18 and monthly["campaigns_started"].sum() == len(plan.starts)
    assert horizon["campaign_cost [EUR]"] == 1000 * len(plan.starts)
    used = plan.sim["doses_used"].values.sum(axis=1)
    assert horizon["doses_used_p50"] == np.quantile(used, 0.5)
    waits = plan.sim["lots_waiting"].values
    assert horizon["wait_probability"] == (waits > 0).any(axis=1).mean()
    np.testing.assert_allclose(monthly["wait_probability"], (waits > 0).mean(axis=0))
    np.testing.assert_allclose(monthly["lots_waiting_p90"], np.quantile(waits, 0.9, axis=0))


def test_vector_campaigns_csv_is_the_plans_campaign_table():
    from pmcap.export import vector_campaigns_table

    spec = spec_of(shelf_life_months=12, cost_per_campaign=5)
    plan = plan_vector(np.full((5, 8), 2.0), spec)
    table = vector_campaigns_table({"proc": plan, "other": plan}, "GBP")
    assert table["process"].tolist() == ["proc", "proc", "other", "other"]
    assert table["cost [GBP]"].tolist() == [5, 5, 5, 5]
    assert table["doses_used_p50"].tolist() == [10, 6, 10, 6]


@settings(max_examples=30, deadline=None)
@given(
    lots=st.lists(st.integers(0, 12), min_size=12, max_size=12),
    starts=st.lists(st.integers(0, 8), min_size=0, max_size=4),
    extra=st.integers(9, 11),
    doses=st.integers(1, 30),
    more=st.integers(1, 20),
    shelf=st.integers(3, 8),
    opening=st.integers(0, 20),
)
def test_more_vector_never_makes_a_lot_wait_longer(
    lots, starts, extra, doses, more, shelf, opening
):
    # in every draw and month, lots waiting can only fall with more doses per vector lot or
    # with one more campaign started after the others (the others keep their slots and so
    # their lead and release times), and doses are conserved
    spec = {
        "campaign_lead_time_months": {"uniform": [0, 2]},
        "release_months": {"uniform": [0, 1]},
        "shelf_life_months": shelf,
        "initial_doses": opening,
        "initial_expiry_months": 4,
    }
    few = VectorSpec.from_mapping({**spec, "doses_per_lot": doses})
    many = VectorSpec.from_mapping({**spec, "doses_per_lot": doses + more})
    values = np.tile(np.asarray(lots, float), (20, 1)) + np.arange(20)[:, None] % 3
    base = simulate_vector(values, few, starts, seed=1)
    richer = simulate_vector(values, many, starts, seed=1)
    later = simulate_vector(values, few, [*starts, extra], seed=1)
    waiting = base["lots_waiting"].values
    assert (richer["lots_waiting"].values <= waiting + 1e-9).all()
    assert (later["lots_waiting"].values <= waiting + 1e-9).all()
    for sim in (base, richer, later):
        made = sim["doses_released"].values.sum(axis=1)
        spent = sim["doses_used"].values.sum(axis=1) + sim["doses_expired"].values.sum(axis=1)
        np.testing.assert_allclose(opening + made, spent + sim["doses_on_hand"].values[:, -1])
