"""Materials in finance.csv, the report and sweeps, on cases with known values."""

from __future__ import annotations

import numpy as np
from pytest import approx

from capacity import facility, load_process, requirements
from pmcap import export
from tests.helpers import fixed_process, make_demand


def process_with_bill(items, name="with-bill"):
    spec = fixed_process().to_dict()
    spec["name"] = name
    spec["materials"] = {"stockout_target": 0.05, "item": items}
    return load_process(spec)


KIT = {"name": "kit", "unit": "kit", "quantity_per_lot": 1, "unit_cost": 100, "lead_time_months": 1}


def finance_case(values, items):
    demand = make_demand(values, start="2027-01-01", programs=["A", "B", "C"])
    req = requirements(demand, fixed_process(), seed=0, by_program=True)
    bill = process_with_bill(items)
    from capacity.materials import materials_by_process

    plans = materials_by_process(req["lots"], {"A": bill, "B": bill, "C": fixed_process()})
    table = export.finance_table(req, facility(req), demand, [0.5, 0.9], materials=plans)
    return req, plans, table


def test_materials_spend_by_hand_split_by_the_programs_lots():
    # A starts 1 lot a month, B 3, C 2 (made with a process without a bill); one kit a lot,
    # 100 a kit, lead time 1 month: the level is 2 months of 4 kits, the opening stock covers
    # month 0, and every month from 1 to 12 orders the 4 kits used (month 13, the last, orders
    # none: its level covers only itself). 2027: 11 orders of 400, A a quarter of each.
    values = np.zeros((5, 14, 3, 3))
    values[:, :, :, 0] = [1, 3, 2]
    _, plans, table = finance_case(values, [KIT])
    np.testing.assert_array_equal(
        plans["with-bill"]["expected_spend"].values[:, 0], [0] + [400] * 12 + [0]
    )
    year = table[(table["granularity"] == "year") & (table["period"] == "2027")].set_index(
        "program"
    )
    column = "materials_spend_{} [currency per period]"
    assert year.loc["A", column.format("mean")] == approx(1100)
    assert year.loc["B", column.format("p90")] == approx(3300)
    assert year.loc["C", column.format("mean")] == 0
    assert year.loc["total", column.format("p50")] == approx(4400)
    month = table[(table["granularity"] == "month") & (table["program"] == "B")]
    np.testing.assert_allclose(month[column.format("mean")], [0] + [300] * 12 + [0])


def test_materials_spend_percentiles_are_of_each_draws_annual_total():
    rng = np.random.default_rng(8)
    values = rng.poisson([2, 4, 1], (60, 14, 3, 3)) * np.array([1, 0, 0])  # clinical only
    items = [
        {**KIT, "quantity_per_lot": {"uniform": [1, 3]}, "lead_time_months": {"uniform": [1, 3]}},
        {
            "name": "medium",
            "unit": "L",
            "quantity_per_lot": 8,
            "unit_cost": 30,
            "lead_time_months": 2,
            "pack_size": 10,
            "disruption": {"spells_per_year": 2, "duration_months": 2},
            "second_supplier": {"lead_time_months": 1, "unit_cost_premium": 0.5},
        },
    ]
    _, plans, table = finance_case(values, items)
    split = plans["with-bill"]["spend_by_program"]
    annual = split.isel(month=slice(0, 12)).sum("month")  # draw x program
    year = table[(table["granularity"] == "year") & (table["period"] == "2027")].set_index(
        "program"
    )
    for program in ("A", "B"):
        each = annual.sel(program=program).values
        assert each.std() > 0
        assert year.loc[program, "materials_spend_p90 [currency per period]"] == approx(
            np.quantile(each, 0.9)
        )
        assert year.loc[program, "materials_spend_mean [currency per period]"] == approx(
            each.mean()
        )
    # the total is the plan's expected spend (premium included) over 2027's months
    spend = plans["with-bill"]["expected_spend"].isel(month=slice(0, 12)).sum()
    assert year.loc["total", "materials_spend_mean [currency per period]"] == approx(float(spend))
    total = annual.sum("program").values
    assert year.loc["total", "materials_spend_p50 [currency per period]"] == approx(
        np.quantile(total, 0.5)
    )


def test_no_bill_no_materials_columns():
    values = np.ones((3, 4, 3, 3))
    demand = make_demand(values, start="2027-01-01", programs=["A", "B", "C"])
    req = requirements(demand, fixed_process(), seed=0, by_program=True)
    table = export.finance_table(req, facility(req), demand, [0.5], materials={})
    assert not [c for c in table.columns if c.startswith("materials")]
