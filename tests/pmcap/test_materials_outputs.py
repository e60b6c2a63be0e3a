"""Materials in finance.csv, the report and sweeps, on cases with known values."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tomli_w
import xarray as xr
from pytest import approx

from capacity import facility, load_process, requirements
from pmcap import export
from pmcap.scenario import example_scenario_path
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


def fake_plan(items, p, lots, spend, single=None, premium=None, single_lots=None):
    import pandas as pd
    import xarray as xr

    months = pd.date_range("2027-01-01", periods=len(p[0]), freq="MS")
    dims, coords = ("item", "month"), {"item": items, "month": months}
    ds = xr.Dataset(
        {
            "stockout_probability": (dims, np.array(p, float)),
            "expected_lots_at_risk": (dims, np.array(lots, float)),
            "expected_spend": (dims, np.array(spend, float)),
        },
        coords=coords,
    )
    if single is not None:
        ds["stockout_probability_single_source"] = (dims, np.array(single, float))
        ds["expected_lots_at_risk_single_source"] = (dims, np.array(single_lots, float))
        ds["expected_second_supplier_premium"] = (dims, np.array(premium, float))
    ds.attrs["target"] = 0.05
    return ds


def test_report_materials_section_ranks_items_by_their_average_risk():
    from types import SimpleNamespace

    import xarray as xr

    from pmcap.report import materials_section
    from pmcap.scenario import CostsConfig

    nan = [np.nan] * 3
    plans = {
        "manual": fake_plan(
            ["kit", "medium"],
            p=[[0.0, 0.02, 0.01], [0.0, 0.04, 0.2]],
            lots=[[0, 0.1, 0.0], [0, 0.5, 1.5]],
            spend=[[100, 200, 300], [10, 10, 10]],
            single=[[0.0, 0.3, 0.1], nan],
            premium=[[0, 20, 5], nan],
            single_lots=[[0, 0.7, 0.2], nan],  # the kit's worst month (with it) is 2027-02
        ),
        "automated": fake_plan(
            ["kit"], p=[[0.0, 0.025, 0.0]], lots=[[0, 0.3, 0]], spend=[[1, 1, 1]]
        ),
    }
    # per-draw spend split: two draws, program A (manual) and B (automated)
    months = plans["manual"]["month"].values
    for name, program, per_month in (("manual", "A", [1e6, 2e6]), ("automated", "B", [0.5e6, 0])):
        plans[name]["spend_by_program"] = xr.DataArray(
            np.array(per_month)[:, None, None] * np.ones((2, 3, 1)),
            dims=("draw", "month", "program"),
            coords={"draw": [0, 1], "month": months, "program": [program]},
        )
    lots = xr.DataArray(
        np.zeros((2, 3, 2)),
        dims=("draw", "month", "program"),
        coords={"draw": [0, 1], "month": months, "program": ["A", "B"]},
    )
    result = SimpleNamespace(
        materials=plans,
        requirements=xr.Dataset({"lots": lots}),
        scenario=SimpleNamespace(
            costs=CostsConfig(currency="EUR", module_capital=1.0),
            run=SimpleNamespace(quantiles=[0.5]),
        ),
    )
    section = materials_section(result)
    # by P(stock-out) averaged over the months: medium (8%), the manual kit (1%), then the
    # automated kit (0.833%), though its worst month (2.5%) is worse than the manual kit's (2%)
    assert [(r["process"], r["item"]) for r in section["rows"]] == [
        ("manual", "medium"),
        ("manual", "kit"),
        ("automated", "kit"),
    ]
    top = section["rows"][0]
    got = (top["p_text"], top["worst_text"], top["month"], top["lots_text"], top["spend"])
    assert got == ("8%", "20%", "2027-03", "1.5", "EUR 30")
    kit = section["rows"][1]
    # without the second supplier: (0 + 0.3 + 0.1) / 3; its premium 0 + 20 + 5
    assert (kit["single"], kit["premium"], kit["spend"]) == ("13.3%", "EUR 25", "EUR 600")
    assert section["rows"][2]["p_text"] == "0.833%"
    assert section["rows"][0]["single"] == "" and section["second"]
    # 2027: draw 0 spends 3 x (1 + 0.5) million, draw 1 3 x 2 million: mean 5.25, median 5.25
    assert section["spend"] == [
        {"year": 2027, "mean": "EUR 5.25 million", "cells": ["EUR 5.25 million"]}
    ]
    assert materials_section(SimpleNamespace(materials={})) is None
    # the report's template shows them (its materials block, rendered alone)
    import re
    from importlib import resources

    import jinja2

    text = (resources.files("pmcap") / "templates" / "report.html").read_text()
    text = text[text.index("{% if materials %}") : text.index("<h2>What drives")]
    page = jinja2.Template(text, autoescape=True).render(materials=section, qlabels=["p50"])
    items = re.search(r'<table id="materials-items">(.*?)</table>', page, re.S).group(1)
    cells = re.findall(
        r"<tr><td class=\"l\">(.*?)</td><td class=\"l\">(.*?)</td><td>(.*?)</td>", items
    )
    assert cells == [
        ("manual", "medium", "8%"),
        ("manual", "kit", "1%"),
        ("automated", "kit", "0.833%"),
    ]
    assert "<td>13.3%</td><td>0.7</td><td>EUR 25</td>" in items
    spend = re.search(r'<table id="materials-spend">(.*?)</table>', page, re.S).group(1)
    assert '<td class="l">2027</td><td>EUR 5.25 million</td><td>EUR 5.25 million</td>' in spend
    assert 'id="materials-heading"' not in jinja2.Template(text).render(materials=None)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """The example without its trial (no fit), 12 months, 20 draws; CART-C is made with the
    manual process, whose bill of materials is in the scenario."""
    folder = tmp_path_factory.mktemp("small")
    source = example_scenario_path().parent
    raw = tomllib.loads(example_scenario_path().read_text())
    raw["program"] = [p for p in raw["program"] if p["name"] != "CART-A"]
    raw["run"].update(draws=20, horizon_months=12)
    shutil.copyfile(source / "cart-c-patients.csv", folder / "cart-c-patients.csv")
    (folder / "scenario.toml").write_text(tomli_w.dumps(raw))
    return folder / "scenario.toml"


def write_sweep(folder: Path, base: Path, body: str) -> Path:
    path = folder / "sweep.toml"
    path.write_text(f'[sweep]\nbase = "{base}"\ntitle = "materials"\n\n' + body)
    return path


ITEM = '"process.car-t-autologous-manual.materials.item.culture medium.{}"'


def level_and_spend(case, months=12):
    """The case's bill on 10 lots a month (2 draws): order-up-to and spend of the medium."""
    from capacity.materials import plan_materials

    bill = case.parsed["processes"]["CART-C"].materials
    lots = xr.DataArray(
        np.full((2, months), 10.0),
        dims=("draw", "month"),
        coords={"draw": [0, 1], "month": pd.date_range("2027-01-01", periods=months, freq="MS")},
    )
    plan = plan_materials(lots, bill).sel(item="culture medium")
    return bill, plan


def test_sweep_keys_reach_an_items_fields_by_its_name(small, tmp_path):
    from pmcap.sweep.cases import load_sweep

    body = (
        f"[set]\n{ITEM.format('quantity_per_lot')} = 8\n\n"
        f"[grid]\n{ITEM.format('lead_time_months')} = [2, 5]\n"
        f"{ITEM.format('unit_cost')} = [300, 450]\n\n"
        '[[variant]]\nname = "as is"\n\n'
        '[[variant]]\nname = "disrupted"\n'
        f"{ITEM.format('disruption')} = {{spells_per_year = 0.5, duration_months = 3}}\n"
        '"process.car-t-autologous-manual.materials.stockout_target" = 0.2\n'
    )
    sweep = load_sweep(write_sweep(tmp_path, small, body))
    assert len(sweep.cases) == 8
    by_name = {c.name: c for c in sweep.cases}
    for lead in (2, 5):
        for cost in (300, 450):
            grid = f"culture medium.lead_time_months={lead}, "
            grid = f"process.car-t-autologous-manual.materials.item.{grid}"
            grid += (
                f"process.car-t-autologous-manual.materials.item.culture medium.unit_cost={cost}"
            )
            bill, plan = level_and_spend(by_name[f"as is, {grid}"])
            medium = bill.items[bill.names.index("culture medium")]
            assert medium.lead_time_months.mean == lead and medium.unit_cost == cost
            # 10 lots x 8 L a month over the lead time and the month itself; packs of 10 L
            np.testing.assert_array_equal(plan["order_up_to"].values[: 12 - lead], 80 * (lead + 1))
            # every month after the opening cycle orders the 80 L used, at the unit cost
            assert plan["expected_spend"].values[1] == 80 * cost
            # the other items are left as the base has them
            kit = bill.items[bill.names.index("single-use process kit")]
            assert kit.unit_cost == 8000 and kit.disruption.spells_per_year == 0.5
            bill, _ = level_and_spend(by_name[f"disrupted, {grid}"])
            medium = bill.items[bill.names.index("culture medium")]
            assert medium.disruption.spells_per_year == 0.5 and bill.stockout_target == 0.2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            '[grid]\n"process.car-t-autologous-manual.materials.item.vector.unit_cost" = [1, 2]\n',
            "process.car-t-autologous-manual.materials.item has no entry named 'vector' "
            "(names: single-use process kit, culture medium, activation reagent)",
        ),
        (
            f"[grid]\n{ITEM.format('pack_size')} = [0, 10]\n",
            "item 'culture medium': field 'pack_size': must be > 0",
        ),
        (
            f"[grid]\n{ITEM.format('disruption')} = "
            "[{spells_per_year = -1, duration_months = 2}]\n",
            "field 'disruption': field 'spells_per_year': must be >= 0",
        ),
        (
            f"[grid]\n{ITEM.format('disruption.duration_months')} = [0]\n"
            f"{ITEM.format('disruption.spells_per_year')} = [1]\n",
            "field 'disruption': field 'duration_months': must be > 0",
        ),
    ],
)
def test_bad_materials_sweep_keys_name_the_item_and_field(small, tmp_path, body, message):
    from capacity.errors import InputError
    from pmcap.sweep.cases import load_sweep

    path = write_sweep(tmp_path, small, body)
    with pytest.raises(InputError) as err:
        load_sweep(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_finance_xlsx_notes_explain_materials_spend_only_with_a_bill():
    from types import SimpleNamespace

    from pmcap.runfolder import materials_notes

    assert materials_notes(SimpleNamespace(materials={})) == []
    (name, text), *rest = materials_notes(SimpleNamespace(materials={"manual": None}))
    assert name == "materials spend" and text.startswith("materials_spend: ") and not rest
