"""The tables of pmcap/export.py on small hand-made inputs: exact columns and values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pytest import approx

from pmcap import export

MONTHS = pd.date_range("2027-01-01", periods=2, freq="MS")


def test_shortfall_table_of_pmcap_run_keeps_its_units():
    # the resources `pmcap run` checks; their units unchanged since shortfall_table took units
    # from the requirements' metrics (for `pmcap capacity`'s fte[qa], qc_hours[...])
    metrics = ["suites", "operator_fte", "qc_fte", "qa_fte", "any"]
    raw = pd.DataFrame(
        {
            "month": np.tile(MONTHS, len(metrics)),
            "metric": np.repeat(metrics, 2),
            "installed": [12, 12, 160, 160, 12, 12, 6, 6, np.nan, np.nan],
            "probability": [0.1, 0.2, 0, 0, 0, 0.05, 0, 0, 0.1, 0.25],
        }
    )
    table = export.shortfall_table(raw)
    assert list(table.columns) == ["month", "metric", "unit", "installed", "probability"]
    assert table["metric"].tolist()[::2] == [
        "suites",
        "operator_fte",
        "qc_fte",
        "qa_fte",
        "any of suites/operator_fte/qc_fte/qa_fte",
    ]
    assert table["unit"].tolist()[::2] == [
        "suites",
        "FTE",
        "FTE",
        "FTE",
        "(no installed value: at least one resource short)",
    ]
    pd.testing.assert_series_equal(table["probability"], raw["probability"])


def _plan(n: int, size: float, cost: float):
    from types import SimpleNamespace

    commitments = pd.DataFrame(
        {
            "unit": np.arange(1, n + 1),
            "commit_month": pd.date_range("2027-01-01", periods=n, freq="12MS"),
            "online_month": pd.date_range("2028-09-01", periods=n, freq="12MS"),
            "capacity_added": size,
        }
    )
    return SimpleNamespace(commitments=commitments, target=0.1, cost={"total": cost})


COST = "plan_total_expected_cost [currency of facility.module_cost_per_year]"


def test_plan_table_gives_each_plans_cost_once():
    # a plan's total cost is on one row, not on each of its commitments (a sum in Excel
    # would read 30e6 as 60e6), under a name that gives its currency
    plans = {
        "suites": _plan(2, 4, 30e6),
        "operator_fte": _plan(0, 1, 0.0),
        "qc_fte": _plan(3, 1, 0.0),
    }
    table = export.plan_table(plans)
    assert list(table.columns) == [
        "resource",
        "commitment",
        "commit_month",
        "online_month",
        "capacity_added",
        "unit",
        "target_shortfall_probability",
        COST,
    ]
    assert table["resource"].tolist() == ["suites"] * 2 + ["qc_fte"] * 3
    assert table["commitment"].tolist() == [1, 2, 1, 2, 3]
    assert table["unit"].tolist() == ["suites"] * 2 + ["FTE"] * 3
    assert table["capacity_added"].tolist() == [4.0, 4.0, 1.0, 1.0, 1.0]
    cost = table[COST].tolist()
    assert cost[0] == 30e6 and cost[2] == 0.0
    assert np.isnan([cost[1], *cost[3:]]).all()
    assert table[COST].sum() == 30e6


def test_plan_table_csv_leaves_the_repeated_cells_empty(tmp_path):
    export.write_csv(export.plan_table({"suites": _plan(2, 4, 30e6)}), tmp_path / "plan.csv")
    lines = (tmp_path / "plan.csv").read_text().splitlines()
    assert lines == [
        "resource,commitment,commit_month,online_month,capacity_added,unit,"
        f"target_shortfall_probability,{COST}",
        "suites,1,2027-01-01,2028-09-01,4,suites,0.1,30000000",
        "suites,2,2028-01-01,2029-09-01,4,suites,0.1,",
    ]


def test_finance_patients_leave_out_ppq_lots_and_lots_count_them():
    # what finance_table's docstring says (and README should): PPQ lots are in lots_*, not in
    # patients_*; here no lot fails, so lots = patients + PPQ lots in every period
    from capacity import facility, requirements
    from tests.helpers import fixed_process, make_demand

    rng = np.random.default_rng(3)
    values = rng.poisson([5, 3, 2], (30, 14, 2, 3))  # draw, month, program, stream
    demand = make_demand(values, start="2027-01-01", programs=["A", "B"])
    req = requirements(demand, fixed_process(), seed=0, by_program=True)
    table = export.finance_table(req, facility(req), demand, [0.5])
    year = table[(table["granularity"] == "year") & (table["period"] == "2027")]
    year = year.set_index("program")
    patients = values[:, :12, :, :2].sum(axis=(1, 3))  # draw x program, clinical + commercial
    ppq = values[:, :12, :, 2].sum(axis=1)
    for i, program in enumerate(["A", "B"]):
        row = year.loc[program]
        assert row["patients_mean [patients per period]"] == approx(patients[:, i].mean())
        assert row["lots_mean [lots per period]"] == approx((patients[:, i] + ppq[:, i]).mean())
        assert ppq[:, i].mean() > 20  # so leaving PPQ lots out (or in) shows
    total = year.loc["total", "patients_mean [patients per period]"]
    assert total == approx(patients.sum(axis=1).mean())


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        (123_456_789.0, "123456789"),  # a cost: every digit, no exponent (not 1.23457e+08)
        (-2.5e9, "-2500000000"),
        (999_999.6, "1000000"),  # rounds up to a million: written out, not 1e+06
        (999_999.4, "999999"),
        (1234.5678, "1234.57"),
        (0.1234567, "0.123457"),
        (1e-7, "1e-07"),  # small probabilities keep 6 significant digits
    ],
)
def test_csv_cells_keep_six_digits_and_write_large_numbers_out(tmp_path, value, cell):
    export.write_csv(pd.DataFrame({"x": [value, np.nan]}), tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_text() == f'x\n{cell}\n""\n'
