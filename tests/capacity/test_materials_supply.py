"""Supplier disruption, a second supplier and the materials spend by program
(capacity.materials) on cases with known values."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from capacity import InputError
from capacity.materials import (
    BillOfMaterials,
    arrival_months,
    consumption,
    lead_times,
    lots_waiting,
    order_up_to,
    plan_materials,
    simulate_policy,
    spend_by_program,
    supplier_down,
)
from tests.helpers import lots_of


def item(**overrides):
    raw = {
        "name": "kit",
        "unit": "kit",
        "quantity_per_lot": 1,
        "unit_cost": 100.0,
        "lead_time_months": 1,
    }
    raw.update(overrides)
    return raw


SPELL = {"spells_per_year": 1.0, "duration_months": {"uniform": [1, 3]}}


def one_spell_case():
    # 10 lots a month, one kit each, lead time 1 month; the supplier is down in months 3 and 4
    lots = lots_of(np.full((1, 8), 10.0))
    down = np.zeros((1, 8, 1), bool)
    down[0, 3:5, 0] = True
    return lots, down


def test_one_spell_by_hand_stock_out_exactly_when_expected():
    lots, down = one_spell_case()
    bill = BillOfMaterials.from_records([item()])
    cons, lead = consumption(lots, bill), lead_times(bill, 1)
    # an order placed in month 3 or 4 waits for month 5 and arrives in month 6
    first, _, part = arrival_months(lead, down)
    np.testing.assert_array_equal(first[0, :, 0], [1, 2, 3, 6, 6, 6, 7, 8])
    assert not part.any()
    # a level of 20 (the no-disruption level: two months of 10) ignores the spell:
    # month 2 orders 10 (arrives 3); months 3, 4 and 5 order 10 each, all arriving in month 6,
    # so months 4 and 5 end 10 and 20 kits short and month 6 is back to 0
    flat = xr.full_like(order_up_to(cons, lead), 20.0)
    sim = simulate_policy(cons, lead, flat, bill, down=down)
    np.testing.assert_array_equal(sim["stock"].values[0, :, 0], [10, 0, 0, 0, -10, -20, 0, 0])
    np.testing.assert_array_equal(sim["orders"].values[0, :, 0], [0, 10, 10, 10, 10, 10, 10, 10])
    waiting = lots_waiting(sim["stock"], np.ones((1, 1)))
    np.testing.assert_array_equal(waiting.values[0, :, 0], [0, 0, 0, 0, 10, 20, 0, 0])
    # 2.5 kits a lot: 25 and 50 kits short are 10 and 20 lots (rounded up: 10, 20)
    np.testing.assert_array_equal(
        lots_waiting(sim["stock"] * 2.5, [[2.5]]).values[0, 4:6, 0], [10, 20]
    )
    # the disruption-aware level: month 2's cycle runs to month 5 (the next review's order
    # arrives in month 6), month 3's and month 4's too
    aware = order_up_to(cons, lead, down=down)
    np.testing.assert_array_equal(aware.values[:, 0], [20, 20, 40, 30, 20, 20, 20, 10])
    sim = simulate_policy(cons, lead, aware, bill, down=down)
    np.testing.assert_array_equal(sim["stock"].values[0, :, 0], [10, 0, 0, 20, 10, 0, 0, 0])
    assert (sim["stock"].values >= 0).all()


def test_second_supplier_fills_orders_in_the_spell_at_its_premium():
    lots, down = one_spell_case()
    second = {"lead_time_months": 1, "unit_cost_premium": 0.5}
    bill = BillOfMaterials.from_records([item(disruption=SPELL, second_supplier=second)])
    cons, lead = consumption(lots, bill), lead_times(bill, 1)
    second_lead = lead_times(bill, 1, second=True)
    assert second_lead.tolist() == [[1]]
    _, second_at, part = arrival_months(lead, down, second_lead)
    np.testing.assert_array_equal(second_at[0, :, 0], np.arange(1, 9))
    np.testing.assert_array_equal(part[0, :, 0], [0, 0, 0, 1, 1, 0, 0, 0])
    flat = xr.full_like(order_up_to(cons, lead), 20.0)
    sim = simulate_policy(cons, lead, flat, bill, down=down, second_lead=second_lead)
    np.testing.assert_array_equal(sim["stock"].values[0, :, 0], [10, 0, 0, 0, 0, 0, 0, 0])
    # orders of 10 kits at 100 each; those of months 3 and 4 cost 50% more
    np.testing.assert_array_equal(sim["premium"].values[0, :, 0], [0, 0, 0, 500, 500, 0, 0, 0])
    np.testing.assert_array_equal(
        sim["spend"].values[0, :, 0], [0, 1000, 1000, 1500, 1500, 1000, 1000, 1000]
    )
    # a second supplier 3 months slower: month 3's and 4's orders arrive in months 7 and 8,
    # after the first supplier's order of month 5 (orders cross)
    first, second_at, part = arrival_months(lead, down, np.array([[4]]))
    arrive = np.where(part == 1, second_at, first)[0, :, 0]
    np.testing.assert_array_equal(arrive, [1, 2, 3, 7, 8, 6, 7, 8])


def test_spell_frequency_matches_the_poisson_closed_form():
    # spells start as a Poisson process of 1.2 a year; a duration uniform on (1, 3) rounds up
    # to 2 or 3 months, each with probability 1/2. A month m >= 2 is down if a spell started in
    # month m, m - 1 (any duration) or m - 2 (3 months): Poisson mean 0.1 x (1 + 1 + 1/2), so
    # P(down) = 1 - exp(-0.25); month 0: 1 - exp(-0.1), month 1: 1 - exp(-0.2)
    n, months = 20_000, 12
    bill = BillOfMaterials.from_records(
        [item(disruption={"spells_per_year": 1.2, "duration_months": {"uniform": [1, 3]}})]
    )
    down = supplier_down(bill, n, months, seed=3)
    p = down[:, :, 0].mean(axis=0)
    expected = 1 - np.exp(-0.1 * np.array([1, 2] + [2.5] * (months - 2)))
    se = np.sqrt(expected * (1 - expected) / n)
    assert (np.abs(p - expected) < 4 * se).all()
    # a rate of 0, or no disruption, is never down; the same seed gives the same spells
    none = BillOfMaterials.from_records([item(disruption={**SPELL, "spells_per_year": 0})])
    assert not supplier_down(none, 50, months).any()
    assert not supplier_down(BillOfMaterials.from_records([item()]), 50, months).any()
    np.testing.assert_array_equal(down, supplier_down(bill, n, months, seed=3))


def test_fixed_duration_spell_lasts_exactly_its_months():
    # 2 spells a year, a fixed 3-month duration: every run of down months (spells may
    # overlap) is at least 3 long unless cut by the horizon
    bill = BillOfMaterials.from_records(
        [item(disruption={"spells_per_year": 2.0, "duration_months": 3})]
    )
    down = supplier_down(bill, 2_000, 12, seed=1)[:, :, 0].astype(int)
    starts = np.diff(np.pad(down, ((0, 0), (1, 0))), axis=1) == 1
    ends = np.diff(np.pad(down, ((0, 0), (0, 1))), axis=1) == -1
    for d in range(200):
        for a, b in zip(np.flatnonzero(starts[d]), np.flatnonzero(ends[d]), strict=True):
            assert b - a + 1 >= 3 or b == 11
    # a month from 2 on is down if a spell started in it or one of the 2 before it
    p = 1 - np.exp(-3 * 2 / 12)
    assert abs(down[:, 2:].mean() - p) < 4 * np.sqrt(p * (1 - p) / 2_000)


def poisson_case(n=10_000, months=24, seed=1):
    return lots_of(np.random.default_rng(seed).poisson(4, (n, months)))


def test_level_sized_for_disruption_keeps_fresh_stock_outs_at_target():
    # Poisson(4) lots a month, lead time 2 months, spells of 2-3 months once a year
    target, n = 0.1, 10_000
    lots, fresh = poisson_case(n), poisson_case(n, seed=2)
    plain = plan_materials(
        lots,
        BillOfMaterials.from_records([item(lead_time_months=2)]),
        target=target,
        fresh_lots=fresh,
    )
    single = BillOfMaterials.from_records([item(lead_time_months=2, disruption=SPELL)])
    aware = plan_materials(lots, single, target=target, fresh_lots=fresh)
    se = np.sqrt(target * (1 - target) / n)
    inner = slice(3, 21)  # months whose cycles lie inside the horizon
    # the disruption raises the level (more lead-time demand) ...
    assert (
        aware["order_up_to"].values[inner, 0].mean()
        > plain["order_up_to"].values[inner, 0].mean() + 2
    )
    # ... and keeps P(stock-out) at the target on fresh draws (with fresh spells)
    assert (aware["stockout_probability_fresh"].values[inner, 0] < target + 3 * se).all()
    assert (aware["supplier_down_probability"].values[2:, 0] > 0.15).all()
    # the no-disruption levels on the same disrupted fresh draws stock out far more often
    cons = consumption(fresh, single, seed=9)
    lead = lead_times(single, n, 9)
    down = supplier_down(single, n, 24, 9)
    sim = simulate_policy(cons, lead, plain["order_up_to"], single, down=down)
    assert (sim["stock"].values[:, inner, 0] < 0).mean() > 1.5 * target


def test_second_supplier_brings_stock_outs_back_to_the_no_disruption_level():
    target, n = 0.1, 10_000
    lots, fresh = poisson_case(n), poisson_case(n, seed=2)
    plain_bill = BillOfMaterials.from_records([item(lead_time_months=2)])
    plain = plan_materials(lots, plain_bill, target=target, fresh_lots=fresh)
    second = {"lead_time_months": 2, "unit_cost_premium": 0.3}
    dual = plan_materials(
        lots,
        BillOfMaterials.from_records(
            [item(lead_time_months=2, disruption=SPELL, second_supplier=second)]
        ),
        target=target,
        fresh_lots=fresh,
    )
    # as fast as the first supplier: the spells cost nothing but the premium
    xr.testing.assert_equal(dual["order_up_to"], plain["order_up_to"])
    xr.testing.assert_equal(dual["stockout_probability"], plain["stockout_probability"])
    inner = slice(3, 21)
    se = np.sqrt(target * (1 - target) / n)
    p_fresh = dual["stockout_probability_fresh"].values[inner, 0]
    assert np.abs(p_fresh - plain["stockout_probability_fresh"].values[inner, 0]).max() < 4 * se
    # without it, the same levels and spells stock out about twice as often
    alone = dual["stockout_probability_single_source"].values[inner, 0]
    assert alone.mean() > 1.5 * plain["stockout_probability"].values[inner, 0].mean()
    at_risk = dual["expected_lots_at_risk"].values[inner, 0].mean()
    assert dual["expected_lots_at_risk_single_source"].values[inner, 0].mean() > 3 * at_risk
    # its premium: 30% of the expected spend on the orders placed in spells, which are a
    # share of the spend near P(down) ~ 0.19
    premium = dual["expected_second_supplier_premium"].values[:, 0].sum()
    spend = dual["expected_spend"].values[:, 0].sum()
    assert 0.3 * 0.12 * spend / 1.06 < premium < 0.3 * 0.26 * spend


def test_single_source_columns_are_nan_for_items_without_a_second_supplier():
    second = {"lead_time_months": 1}
    bill = BillOfMaterials.from_records(
        [item(disruption=SPELL, second_supplier=second), item(name="media", unit="L")]
    )
    out = plan_materials(poisson_case(200, 12), bill, target=0.1)
    assert np.isnan(out["stockout_probability_single_source"].sel(item="media")).all()
    assert np.isfinite(out["stockout_probability_single_source"].sel(item="kit")).all()
    assert (out["expected_second_supplier_premium"].sel(item="kit") == 0).all()  # no premium
    assert (out["supplier_down_probability"].sel(item="media") == 0).all()
    without = plan_materials(poisson_case(200, 12), BillOfMaterials.from_records([item()]))
    assert "supplier_down_probability" not in without
    assert "stockout_probability_single_source" not in without


def test_spend_by_program_follows_each_orders_cycle():
    # A starts 2 lots in month 0, B 2 in month 2; cycles of two months (t, t + 1)
    lots = lots_of(np.array([[[2, 0], [0, 0], [0, 2], [0, 0]], [[0, 0]] * 4]), programs=["A", "B"])
    bill = BillOfMaterials.from_records([item()])
    spend = xr.DataArray(
        np.array([[[100.0], [200.0], [300.0], [400.0]]] * 2), dims=("draw", "month", "item")
    )
    end = np.minimum(np.arange(4) + 2, 4)[None, :, None].repeat(2, axis=0)
    split = spend_by_program(lots, bill, spend, end)
    # draw 0: month 0 covers months 0-1 (A only), 1 and 2 cover B's lots, month 3 none ->
    # the draw's lots over the horizon (2 and 2); draw 1 has no lot: half each
    np.testing.assert_array_equal(split.values[0], [[100, 0], [0, 200], [0, 300], [200, 200]])
    np.testing.assert_array_equal(split.values[1], [[50, 50], [100, 100], [150, 150], [200, 200]])
    # B's lots use no kit: all of it goes to A, even in the cycles of B's lots
    only_a = spend_by_program(lots, bill, spend, end, uses={"B": []})
    np.testing.assert_array_equal(only_a.values[..., 1], 0)
    np.testing.assert_array_equal(only_a.values[..., 0], spend.values[..., 0])


def test_plan_spend_by_program_adds_up_to_the_spend():
    rng = np.random.default_rng(4)
    lots = lots_of(rng.poisson([1.0, 3.0], (300, 18, 2)), programs=["A", "B"])
    bill = BillOfMaterials.from_records(
        [
            item(quantity_per_lot={"uniform": [1, 2]}, disruption=SPELL),
            item(name="media", unit="L", lead_time_months={"uniform": [1, 3]}, unit_cost=7.0),
        ]
    )
    out = plan_materials(lots, bill, seed=2)
    split = out["spend_by_program"]
    np.testing.assert_allclose(split.sum("program").mean("draw"), out["expected_spend"].sum("item"))
    # B starts three times A's lots: about three quarters of the spend
    share_b = float(split.sel(program="B").sum() / split.sum())
    assert 0.70 < share_b < 0.80
    again = plan_materials(lots, bill, seed=2)
    xr.testing.assert_identical(out, again)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            {"disruption": {**SPELL, "spells_per_year": -1}},
            "item 'kit': field 'disruption': field 'spells_per_year': must be >= 0",
        ),
        (
            {"disruption": {**SPELL, "duration_months": 0}},
            "item 'kit': field 'disruption': field 'duration_months': must be > 0",
        ),
        (
            {"disruption": {**SPELL, "duration_months": {"uniform": [0, 2]}}},
            "field 'duration_months': must be > 0",
        ),
        (
            {"disruption": {"spells_per_year": 1}},
            "field 'disruption': missing field 'duration_months'",
        ),
        ({"disruption": {**SPELL, "every": 2}}, "field 'disruption': unknown fields ['every']"),
        ({"disruption": 3}, "field 'disruption': expected a table"),
        (
            {"second_supplier": {"lead_time_months": 2}},
            "field 'second_supplier': it takes over during a disruption",
        ),
        (
            {"disruption": SPELL, "second_supplier": {"lead_time_months": -1}},
            "field 'second_supplier': field 'lead_time_months': must be >= 0",
        ),
        (
            {
                "disruption": SPELL,
                "second_supplier": {"lead_time_months": 1, "unit_cost_premium": -0.1},
            },
            "field 'second_supplier': field 'unit_cost_premium': must be >= 0",
        ),
        (
            {
                "disruption": SPELL,
                "second_supplier": {"lead_time_months": 1, "share_of_orders": 1.5},
            },
            "field 'second_supplier': field 'share_of_orders': must be <= 1",
        ),
        (
            {"disruption": SPELL, "second_supplier": {"unit_cost_premium": 0.1}},
            "field 'second_supplier': missing field 'lead_time_months'",
        ),
    ],
)
def test_bad_disruption_names_the_item_and_field(bad, message):
    with pytest.raises(InputError) as err:
        BillOfMaterials.from_records([item(**bad)], source="process.toml [materials]")
    assert str(err.value).startswith("process.toml [materials]: item 'kit': ")
    assert message in str(err.value)


def test_disruption_writes_back_unchanged():
    second = {
        "lead_time_months": {"uniform": [2, 3]},
        "unit_cost_premium": 0.2,
        "share_of_orders": 0.3,
    }
    bill = BillOfMaterials.from_records([item(disruption=SPELL, second_supplier=second)])
    again = BillOfMaterials.from_mapping(bill.to_toml())
    assert again == bill
    assert again.items[0].disruption.duration_months.kind == "uniform"
    assert again.items[0].second_supplier.unit_cost_premium == 0.2
    assert again.items[0].second_supplier.share_of_orders == 0.3


def test_bad_down_mask():
    bill = BillOfMaterials.from_records([item()])
    cons = consumption(lots_of(np.ones((2, 3))), bill)
    with pytest.raises(InputError, match="down: expected True/False per draw, month and item"):
        order_up_to(cons, lead_times(bill, 2), down=np.zeros((2, 3)))


def test_dual_sourcing_a_share_of_every_order_by_hand():
    # 10 kits a month; the first supplier takes 1 month, the second (half of every order,
    # at 20% more) 2 months; no spells
    lots = lots_of(np.full((1, 8), 10.0))
    no_spell = {"spells_per_year": 0, "duration_months": 1}
    second = {"lead_time_months": 2, "unit_cost_premium": 0.2, "share_of_orders": 0.5}
    bill = BillOfMaterials.from_records([item(disruption=no_spell, second_supplier=second)])
    cons, lead = consumption(lots, bill), lead_times(bill, 1)
    second_lead, down = lead_times(bill, 1, second=True), np.zeros((1, 8, 1), bool)
    first, second_at, part = arrival_months(lead, down, second_lead, np.array([0.5]))
    np.testing.assert_array_equal(first[0, :, 0], np.arange(1, 9))
    np.testing.assert_array_equal(second_at[0, :, 0], np.arange(2, 10))
    np.testing.assert_array_equal(part, 0.5)
    # the single-source level of 20 (two months of 10): from month 2 on, half of each order
    # is a month late, so every month ends 5 kits short
    flat = xr.full_like(order_up_to(cons, lead), 20.0)
    sim = simulate_policy(cons, lead, flat, bill, down=down, second_lead=second_lead)
    np.testing.assert_array_equal(sim["stock"].values[0, :, 0], [10, 0, -5, -5, -5, -5, -5, -5])
    # the level sized with the split covers three months (an order is in when both halves
    # are): 30, cut at the horizon in the last two months; it never stocks out
    out = plan_materials(lots, bill)
    np.testing.assert_array_equal(out["order_up_to"].values[:, 0], [30] * 6 + [20, 10])
    np.testing.assert_array_equal(out["expected_stock"].values[:6, 0], [20, 10, 5, 5, 5, 5])
    assert out["stockout_probability"].max() == 0
    # each order of 10 kits: half at 100 x 1.2; orders in months 1 to 5
    np.testing.assert_array_equal(out["expected_second_supplier_premium"].values[1:6, 0], 100)
    np.testing.assert_array_equal(out["expected_spend"].values[1:6, 0], 1100)
    # without the second supplier all of every order comes in a month: no stock-out either
    assert out["stockout_probability_single_source"].max() == 0
