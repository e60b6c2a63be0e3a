"""Bill of materials and the order-up-to policy (capacity.materials) on cases with known values."""

from __future__ import annotations

import numpy as np
import pytest
import tomli_w
import xarray as xr
from scipy import stats

from capacity import InputError, requirements
from capacity.materials import (
    BillOfMaterials,
    consumption,
    lead_times,
    materials_by_process,
    order_up_to,
    plan_materials,
    simulate_policy,
)
from tests.helpers import fixed_process, lots_of, make_demand


def item(**overrides):
    raw = {
        "name": "kit",
        "unit": "kit",
        "quantity_per_lot": 1,
        "unit_cost": 1.0,
        "lead_time_months": 2,
    }
    raw.update(overrides)
    return raw


# Reference order-up-to levels for i.i.d. Poisson(lam) lots per month, lead time L, stock-out
# target a: stockpyl 1.0.2, stockpyl.newsvendor.newsvendor_poisson(holding_cost=1,
# stockout_cost=p, demand_mean=(L + 1) * lam)[0] with p / (1 + p) = 1 - a (the base-stock level
# of the L + 1 month protection interval), computed in a separate virtualenv (stockpyl is not a
# dependency of pmcap). Rows: (lam, L, a, stockout_cost p, stockpyl level).
STOCKPYL_POISSON = [
    (4.0, 2, 0.05, 19, 18.0),
    (3.0, 0, 0.02, 49, 7.0),
    (5.0, 3, 0.10, 9, 26.0),
    (1.5, 1, 0.05, 19, 6.0),
]


@pytest.mark.parametrize(("lam", "lead", "target", "p", "level"), STOCKPYL_POISSON)
def test_iid_poisson_level_is_the_poisson_quantile_of_lead_time_demand(lam, lead, target, p, level):
    # independent closed form: smallest S with Poisson((L+1) lam) CDF(S) >= 1 - target
    assert stats.poisson.ppf(1 - target, (lead + 1) * lam) == level
    assert p / (1 + p) == pytest.approx(1 - target)
    rng = np.random.default_rng(7)
    lots = lots_of(rng.poisson(lam, size=(20_000, 8)))
    bill = BillOfMaterials.from_records([item(lead_time_months=lead)])
    out = plan_materials(lots, bill, target=target, seed=3)
    full = out["order_up_to"].values[: 8 - lead, 0]  # windows inside the horizon
    np.testing.assert_array_equal(full, level)
    # on the draws it was sized on, no full cycle stocks out more often than the target
    # (after the first cycle, covered by the opening stock S[0])
    assert (out["stockout_probability"].values[lead:, 0] <= target + 1e-12).all()


def test_deterministic_consumption_pack_rounding_and_order_timing():
    # 2, 0, 3, 1, 4, 0 lots in every draw; 5 per lot -> consumption 10, 0, 15, 5, 20, 0
    lots = lots_of(np.tile([2, 0, 3, 1, 4, 0], (3, 1)))
    bill = BillOfMaterials.from_records(
        [
            item(name="kit", quantity_per_lot=5, unit_cost=2.5, lead_time_months=1, pack_size=12),
            item(
                name="media",
                unit="L",
                quantity_per_lot=5,
                unit_cost=1.0,
                lead_time_months=0.4,  # rounded up to 1 month
                pack_size=12,
                min_order=30,
            ),
        ]
    )
    out = plan_materials(lots, bill, target=0.05)
    np.testing.assert_array_equal(out["consumption_p50"].values[:, 0], [10, 0, 15, 5, 20, 0])
    # S[t] = c[t] + c[t+1] (lead 1 month), the last month truncated at the horizon
    np.testing.assert_array_equal(out["order_up_to"].values.T, [[10, 15, 20, 25, 20, 0]] * 2)
    # kit: opening 10 covers month 0; month 1 position 0 -> 15 short -> 2 packs of 12 arrive
    # in month 2 (24 - 15 = 9 left); month 3 position 9 -> 16 short -> 24 arrive in month 4
    kit = out.sel(item="kit")
    np.testing.assert_array_equal(kit["expected_orders"], [0, 24, 0, 24, 0, 0])
    np.testing.assert_array_equal(kit["expected_stock"], [0, 0, 9, 4, 8, 8])
    np.testing.assert_array_equal(kit["expected_spend"], [0, 60, 0, 60, 0, 0])
    # media: the same shortfalls, but at least 30 -> 3 packs of 12 = 36
    media = out.sel(item="media")
    np.testing.assert_array_equal(media["expected_orders"], [0, 36, 0, 36, 0, 0])
    np.testing.assert_array_equal(media["expected_stock"], [0, 0, 21, 16, 32, 32])
    assert out["stockout_probability"].values.max() == 0
    assert out["item"].attrs["units"] == {"kit": "kit", "media": "L"}


def test_backorder_when_the_level_is_too_low():
    # fixed levels of 10 with 8 per month and a 1-month lead time: the position is raised to
    # 10 each month but 16 are used per cycle; opening 10 -> month 0 ends at 2, month 1 at -6
    lots = lots_of(np.full((2, 4), 8.0))
    bill = BillOfMaterials.from_records([item(lead_time_months=1)])
    cons = consumption(lots, bill)
    lead = lead_times(bill, 2)
    levels = xr.full_like(order_up_to(cons, lead), 10.0)
    sim = simulate_policy(cons, lead, levels, bill)
    # orders: month 0 position 10 -> 0; month 1 position 2 -> 8; month 2 position 2 + 8 - 8
    # ... each month after the first orders the 8 used, arriving a month later
    np.testing.assert_array_equal(sim["orders"].values[0, :, 0], [0, 8, 8, 8])
    np.testing.assert_array_equal(sim["stock"].values[0, :, 0], [2, -6, -6, -6])


def test_consumption_counts_reruns_and_ppq_lots():
    # patients and PPQ lots from a fixed process with half the lots failing (one re-run)
    demand = make_demand(
        np.tile([[[10, 0, 3]], [[4, 0, 0]]], (50, 1, 1, 1)).reshape(50, 2, 1, 3),
        streams=["clinical", "commercial", "ppq"],
    )
    req = requirements(demand, fixed_process(failure_rate=0.5), seed=4)
    bill = BillOfMaterials.from_records([item(quantity_per_lot=2.5)])
    cons = consumption(req["lots"], bill)
    lots = 10 + 3 + req["remanufactured_lots"].values[:, 0]  # patients + ppq + re-runs
    assert req["remanufactured_lots"].values[:, 0].std() > 0  # re-runs vary by draw
    np.testing.assert_allclose(cons.values[:, 0, 0], 2.5 * lots)


def test_uses_selects_items_per_program():
    lots = lots_of(np.array([[[1, 10]], [[2, 20]]]), programs=["A", "B"])
    bill = BillOfMaterials.from_records(
        [item(name="vector-free kit", quantity_per_lot=1), item(name="media", quantity_per_lot=3)]
    )
    cons = consumption(lots, bill, uses={"A": ["media"]})  # B uses every item
    np.testing.assert_array_equal(cons.values[:, 0, :], [[10, 33], [20, 66]])


def test_fresh_draws_stock_out_within_monte_carlo_error_of_target():
    # continuous demand (uncertain quantity per lot) and an uncertain lead time of 1-3 months
    bill = BillOfMaterials.from_records(
        [
            item(
                name="media",
                quantity_per_lot={"uniform": [8, 12]},
                lead_time_months={"uniform": [1, 3]},
            )
        ]
    )
    n, months, target = 20_000, 24, 0.1
    lots = lots_of(np.random.default_rng(1).poisson(4, (n, months)))
    fresh = lots_of(np.random.default_rng(2).poisson(4, (n, months)))
    out = plan_materials(lots, bill, target=target, fresh_lots=fresh)
    se = np.sqrt(target * (1 - target) / n)
    # months 3 .. 20: every draw's month is covered by a full cycle inside the horizon
    p = out["stockout_probability_fresh"].values[3:21, 0]
    assert np.abs(p - target).max() < 4 * se
    assert abs(p.mean() - target) < 3 * se


def test_normal_approximation_undersizes_a_launch_that_may_not_happen():
    # launch (probability 0.2, per draw) -> Poisson(20) lots a month, else none; lead 2 months:
    # cycle demand D = B x Poisson(60), mean 12, sd sqrt(0.2 x 3660 - 144) = 24.2
    n, months, target = 20_000, 12, 0.05
    bill = BillOfMaterials.from_records([item(lead_time_months=2)])

    def launch_lots(seed):
        rng = np.random.default_rng(seed)
        return lots_of((rng.random((n, 1)) < 0.2) * rng.poisson(20, (n, months)))

    lots, fresh = launch_lots(5), launch_lots(6)
    emp = plan_materials(lots, bill, target=target, fresh_lots=fresh)
    nor = plan_materials(lots, bill, target=target, method="normal", fresh_lots=fresh)
    s_emp = emp["order_up_to"].values[:10, 0]
    s_nor = nor["order_up_to"].values[:10, 0]
    # closed form: P(D > S) = 0.2 x P(Poisson(60) > S); the exact level is the smallest S
    # with P(Poisson(60) > S) <= 0.25
    exact = stats.poisson.ppf(1 - target / 0.2, 60)
    assert np.abs(s_emp - exact).max() <= 1
    assert s_nor.max() < 12 + 1.6449 * 24.2 + 1  # mean + z sd, about 51.8
    p_nor = 0.2 * stats.poisson.sf(np.floor(s_nor), 60)
    p_emp = 0.2 * stats.poisson.sf(np.floor(s_emp), 60)
    assert p_nor.min() > 3 * target  # about 0.17
    assert p_emp.max() <= target + 0.003
    se = np.sqrt(target * (1 - target) / n)
    fresh_emp = emp["stockout_probability_fresh"].values[2:10, 0]
    fresh_nor = nor["stockout_probability_fresh"].values[2:10, 0]
    assert (fresh_emp < target + 3 * se).all()
    assert (fresh_nor > 3 * target).all()


def test_same_seed_same_output_and_seed_moves_uncertain_parameters():
    bill = BillOfMaterials.from_records(
        [item(quantity_per_lot={"triangular": [1, 2, 4]}, lead_time_months={"uniform": [1, 4]})]
    )
    lots = lots_of(np.random.default_rng(0).poisson(3, (500, 12)))
    a = plan_materials(lots, bill, seed=11, fresh_lots=lots)
    b = plan_materials(lots, bill, seed=11, fresh_lots=lots)
    c = plan_materials(lots, bill, seed=12)
    xr.testing.assert_identical(a, b)
    assert not np.array_equal(a["order_up_to"].values, c["order_up_to"].values)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"unit": None}, "item 'kit': field 'unit'"),
        ({"unit": ""}, "item 'kit': field 'unit'"),
        ({"pack_size": 0}, "item 'kit': field 'pack_size': must be > 0"),
        ({"quantity_per_lot": -1}, "item 'kit': field 'quantity_per_lot': must be >= 0"),
        ({"quantity_per_lot": {"uniform": [-1, 2]}}, "field 'quantity_per_lot': must be >= 0"),
        ({"unit_cost": -5}, "item 'kit': field 'unit_cost': must be >= 0"),
        ({"lead_time_months": -1}, "item 'kit': field 'lead_time_months': must be >= 0"),
        ({"lead_time_months": {"normal": [1, 2]}}, "field 'lead_time_months': unknown distrib"),
        ({"min_order": -1}, "item 'kit': field 'min_order'"),
        ({"shelf_life": 3}, "item 'kit': unknown fields ['shelf_life']"),
        ({"name": ""}, "an item has no name"),
    ],
)
def test_bad_item_names_the_item_and_field(bad, message):
    with pytest.raises(InputError, match=None) as err:
        BillOfMaterials.from_records([item(**bad)], source="process.toml [materials]")
    assert message in str(err.value)
    assert str(err.value).startswith("process.toml [materials]")


def test_item_without_unit_field_and_other_bad_bills():
    raw = item()
    del raw["unit"]
    with pytest.raises(InputError, match="item 'kit': missing field 'unit'"):
        BillOfMaterials.from_records([raw])
    with pytest.raises(InputError, match="item 'kit' is listed twice"):
        BillOfMaterials.from_records([item(), item()])
    with pytest.raises(InputError, match="the bill has no items"):
        BillOfMaterials.from_records([])


def test_process_naming_an_item_the_bill_lacks():
    bill = BillOfMaterials.from_records([item(name="media")])
    lots = lots_of(np.ones((2, 3, 1)), programs=["A"])
    with pytest.raises(InputError, match=r"uses\['A'\]: item 'vector' is not in the bill"):
        consumption(lots, bill, uses={"A": ["media", "vector"]})
    with pytest.raises(InputError, match="programs \\['Z'\\] are not in the lots"):
        consumption(lots, bill, uses={"Z": ["media"]})


def test_bad_lots_target_and_method():
    bill = BillOfMaterials.from_records([item()])
    with pytest.raises(InputError, match="lots: expected finite numbers >= 0"):
        plan_materials(lots_of(-np.ones((2, 3))), bill)
    with pytest.raises(InputError, match="lots: expected an xarray DataArray"):
        plan_materials(np.ones((2, 3)), bill)
    with pytest.raises(InputError, match="target: expected a probability"):
        plan_materials(lots_of(np.ones((2, 3))), bill, target=1.5)
    with pytest.raises(InputError, match="method: expected 'empirical' or 'normal'"):
        plan_materials(lots_of(np.ones((2, 3))), bill, method="gamma")


MATERIALS_TOML = """
[materials]
stockout_target = 0.1

[[materials.item]]
name = "kit"
unit = "kit"
quantity_per_lot = 1
unit_cost = 8000
lead_time_months = {uniform = [2, 4]}
pack_size = 10

[[materials.item]]
name = "medium"
unit = "L"
quantity_per_lot = {triangular = [5, 8, 12]}
unit_cost = 300
lead_time_months = 2
"""


def process_toml(tmp_path, materials: str):
    spec = fixed_process().to_dict()
    spec["name"] = "with-bill"
    text = tomli_w.dumps(spec) + materials
    path = tmp_path / "process.toml"
    path.write_text(text)
    return path


def test_a_process_file_carries_its_bill_and_writes_it_back(tmp_path):
    from capacity import load_process

    spec = load_process(process_toml(tmp_path, MATERIALS_TOML))
    bill = spec.materials
    assert bill.names == ["kit", "medium"] and bill.stockout_target == 0.1
    assert bill.items[0].lead_time_months.kind == "uniform"
    assert bill.items[1].pack_size == 1 and bill.items[1].min_order == 0
    assert load_process(spec.to_dict()) == spec
    assert load_process("car-t-autologous-manual").materials is None  # templates have none
    assert "materials" not in load_process("car-t-autologous-manual").to_dict()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('unit = "L"', 'unit = ""'), "field 'materials': item 'medium': field 'unit'"),
        (("pack_size = 10", "pack_size = 0"), "item 'kit': field 'pack_size': must be > 0"),
        (("stockout_target = 0.1", "stockout_target = 1.1"), "field 'stockout_target'"),
        (("stockout_target", "stockout_targt"), "unknown fields ['stockout_targt']"),
    ],
)
def test_a_bad_bill_in_a_process_file_names_the_file_item_and_field(tmp_path, change, message):
    from capacity import ProcessSpecError, load_process

    path = process_toml(tmp_path, MATERIALS_TOML.replace(*change))
    with pytest.raises(ProcessSpecError) as err:
        load_process(path)
    assert str(err.value).startswith(f"{path}: field 'materials': ")
    assert message in str(err.value)


def test_materials_by_process_sums_the_programs_of_each_process_with_a_bill(tmp_path):
    from capacity import load_process
    from pmcap.export import materials_table

    with_bill = load_process(process_toml(tmp_path, MATERIALS_TOML))
    lots = lots_of(np.array([[[1, 2, 4]] * 5] * 3), programs=["A", "B", "C"])
    plans = materials_by_process(
        lots, {"A": with_bill, "B": fixed_process(), "C": with_bill}, seed=2
    )
    assert list(plans) == ["with-bill"]
    # A and C: 1 + 4 = 5 lots a month, one kit each
    np.testing.assert_array_equal(plans["with-bill"]["consumption_p50"].sel(item="kit"), 5)
    assert plans["with-bill"].attrs["target"] == 0.1
    assert materials_by_process(lots, {"A": fixed_process(), "B": fixed_process()}) == {}
    table = materials_table(plans, "EUR")
    assert list(table.columns[:4]) == ["process", "item", "unit", "month"]
    kit = table[table["item"] == "kit"]
    assert (kit["unit"] == "kit").all() and len(kit) == 5
    np.testing.assert_allclose(
        kit["expected_spend [EUR per month]"],
        plans["with-bill"]["expected_orders"].sel(item="kit").values * 8000,
    )
    assert (table["stockout_target"] == 0.1).all()
