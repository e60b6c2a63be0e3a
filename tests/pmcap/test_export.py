"""The tables of pmcap/export.py on small hand-made inputs: exact columns and values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
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


CAPITAL, PER_YEAR, COST = export.plan_cost_columns("currency")


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
        CAPITAL,
        PER_YEAR,
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


def _rates(currency="EUR"):
    from pmcap.costs import Rates

    salary = {"operator_fte": 90e3, "qc_fte": 100e3, "qa_fte": 120e3}
    return Rates(currency, salary, suite_year=3e6, module_capital=50e6, module_suites=4)


def test_plan_table_costs_capital_and_a_hire_its_salary():
    # a module: capital 50e6 and 4 suites x 3e6 a suite-year; a QC hire: 100e3 a year, no
    # capital (hiring used to show a cost of 0)
    table = export.plan_table({"suites": _plan(2, 4, 1.0), "qc_fte": _plan(3, 1, 2.0)}, _rates())
    capital, per_year, _ = export.plan_cost_columns("EUR")
    assert table[capital].tolist() == [50e6, 50e6, 0, 0, 0]
    assert table[per_year].tolist() == [12e6, 12e6, 100e3, 100e3, 100e3]


def test_plan_costs_by_month_by_hand():
    # 3 months from 2027-01; 10 suites installed, a module of 4 online from 2027-03, committed
    # 2026-07 (before the horizon: its capital counts in the first month) and one 2027-02;
    # operators 2 installed + 1 hired from 2027-02; QC and QA without a plan (1 and 0.5)
    from types import SimpleNamespace

    from pmcap.costs import plan_costs

    months = pd.date_range("2027-01-01", periods=3, freq="MS")

    def plan(capacity, commits):
        by_month = pd.DataFrame({"month": months, "capacity": capacity})
        return SimpleNamespace(
            by_month=by_month, commitments=pd.DataFrame({"commit_month": pd.to_datetime(commits)})
        )

    plans = {
        "suites": plan([10, 10, 14], ["2026-07-01", "2027-02-01"]),
        "operator_fte": plan([2, 3, 3], []),
    }
    installed = {"qc_fte": 1.0, "qa_fte": 0.5}
    got = plan_costs(plans, installed, _rates(), months)
    assert got["capital"].tolist() == [50e6, 50e6, 0]
    staff = np.array([2, 3, 3]) * 90e3 + 1 * 100e3 + 0.5 * 120e3
    suites = np.array([10, 10, 14]) * 3e6
    np.testing.assert_allclose(got["operating"], (staff + suites) / 12)


def test_values_within_rounding_of_zero_are_written_as_zero(tmp_path):
    # finance.csv held cells such as -1.47876e-18 (a mean of FTEs that is 0 up to rounding)
    frame = pd.DataFrame({"x": [-1.47876e-18, 9.65945e-17, -0.0, 1e-7, 2.5, np.nan]})
    export.write_csv(frame, tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_text().splitlines() == [
        "x",
        "0",
        "0",
        "0",
        "1e-07",
        "2.5",
        '""',
    ]
    assert export.csv_text(frame).splitlines()[1:4] == ["0.0", "0.0", "0.0"]


def test_plan_table_csv_leaves_the_repeated_cells_empty(tmp_path):
    export.write_csv(export.plan_table({"suites": _plan(2, 4, 30e6)}), tmp_path / "plan.csv")
    lines = (tmp_path / "plan.csv").read_text().splitlines()
    assert lines == [
        "resource,commitment,commit_month,online_month,capacity_added,unit,"
        f"target_shortfall_probability,{CAPITAL},{PER_YEAR},{COST}",
        "suites,1,2027-01-01,2028-09-01,4,suites,0.1,,,30000000",
        "suites,2,2028-01-01,2029-09-01,4,suites,0.1,,,",
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


def rare_launch():
    """20 draws of three months from 2027-01 and two programs. B launches in two draws only:
    draw 0 on 2027-02-10 (4 then 6 commercial patients), draw 2 on 2027-03-01, the first
    day of March (2 patients in March); draw 1 launches on 2027-04-01, after the horizon.
    C launched before the start and starts 1 patient a month in every draw."""
    from forecast import PortfolioDraws
    from tests.helpers import make_demand

    n = 20
    values = np.zeros((n, 3, 2, 3), int)  # draw, month, program, stream
    values[0, 1:, 0, 1] = [4, 6]
    values[2, 2, 0, 1] = 2
    values[:, :, 1, 1] = 1
    demand = make_demand(values, programs=["B", "C"])
    launch = np.full((n, 2), np.datetime64("NaT"), "datetime64[ns]")
    launch[[0, 1, 2], 0] = pd.to_datetime(["2027-02-10", "2027-04-01", "2027-03-01"])
    launch[:, 1] = np.datetime64("2026-05-01", "ns")
    events = xr.Dataset(
        {"launch": (("draw", "program"), launch)},
        coords={"draw": np.arange(n), "program": ["B", "C"]},
    )
    return PortfolioDraws(demand, events, xr.Dataset(coords={"draw": np.arange(n)}), {}, 0)


def test_launched_by_month_counts_a_launch_in_its_month_and_never_a_missing_one():
    world = rare_launch()
    launched = world.launched_by_month().transpose("draw", "month", "program").values
    expected = np.zeros((20, 3, 2), bool)
    expected[0, 1:, 0] = True  # 2027-02-10: launched by the end of February
    expected[2, 2, 0] = True  # 2027-03-01: in March, not by the end of February
    expected[:, :, 1] = True  # launched before the horizon
    np.testing.assert_array_equal(launched, expected)
    # P(launched by month) = share of draws with launch <= the month
    np.testing.assert_allclose(launched.mean(axis=0)[:, 0], [0, 1 / 20, 2 / 20])
    # beside each year's patients: P(launched) by the year's last month in the horizon
    by_year = world.patients_by_year().query("program == 'B' and stream == 'commercial'")
    assert by_year["mean"].item() == approx(12 / 20) and by_year["p50"].item() == 0
    assert by_year["p_launched"].item() == approx(2 / 20)


def test_demand_table_gives_the_mean_and_p_launched_where_the_bands_are_zero():
    world = rare_launch()
    table = export.demand_table(world.demand, [0.1, 0.5, 0.9], world.launched_by_month())
    commercial = table.query("program == 'B' and metric == 'patients[commercial]'")
    # by hand: B's commercial patients are (0, 4, 6) in draw 0, (0, 0, 2) in draw 2, else 0
    np.testing.assert_allclose(commercial["mean"], [0, 4 / 20, 8 / 20])
    assert (commercial[["p10", "p50", "p90"]] == 0).all().all()  # 2 of 20 draws: under P90
    launched = table[table["metric"] == "launched"]
    assert set(launched["program"]) == {"B", "C"}  # no total: a facility does not launch
    assert set(launched["unit"]) == {"probability"}
    b = launched[launched["program"] == "B"]
    assert list(b["month"]) == list(pd.date_range("2027-01-01", periods=3, freq="MS"))
    np.testing.assert_allclose(b["mean"], [0, 1 / 20, 2 / 20])
    assert (b[["p10", "p50", "p90"]] == 0).all().all()  # launched in under 10% of draws
    c = launched[launched["program"] == "C"]
    assert (c[["mean", "p10", "p50", "p90"]] == 1).all().all()
    # the patients rows are as without launch dates
    without = export.demand_table(world.demand, [0.1, 0.5, 0.9])
    assert "launched" not in set(without["metric"])
    pd.testing.assert_frame_equal(
        table[table["metric"] != "launched"].reset_index(drop=True), without
    )


def test_finance_table_gives_p_launched_by_the_end_of_each_period():
    from capacity import facility, requirements
    from tests.helpers import fixed_process

    world = rare_launch()
    req = requirements(world.demand, fixed_process(), seed=0, by_program=True)
    table = export.finance_table(
        req, facility(req), world.demand, [0.1, 0.5, 0.9], world.launched_by_month()
    )
    column = "launched_mean [probability, by end of period]"
    year = table[table["granularity"] == "year"].set_index("program")
    assert year.loc["B", column] == approx(2 / 20)  # by 2027-03, the horizon's last month
    assert year.loc["C", column] == 1
    assert np.isnan(year.loc["total", column])
    # B's 2027 patients: 10 in draw 0, 2 in draw 2: mean 0.6, P90 0
    assert year.loc["B", "patients_mean [patients per period]"] == approx(12 / 20)
    assert year.loc["B", "patients_p90 [patients per period]"] == 0
    month = table[(table["granularity"] == "month") & (table["program"] == "B")]
    np.testing.assert_allclose(month[column], [0, 1 / 20, 2 / 20])


def _small_finance(rates=None, plan=None):
    from capacity import facility, requirements
    from tests.helpers import fixed_process, make_demand

    rng = np.random.default_rng(5)
    values = rng.poisson([5, 3, 0], (40, 14, 2, 3))  # draw, month, program, stream
    demand = make_demand(values, start="2027-01-01", programs=["A", "B"])
    req = requirements(demand, fixed_process(), seed=0, by_program=True)
    table = export.finance_table(req, facility(req), demand, [0.5, 0.9], rates=rates, plan=plan)
    return req, table


def test_finance_staff_and_suite_costs_by_hand():
    # per draw: sum over 2027's months of (FTE x salary + suites x suite-year) / 12; the
    # percentiles are over those annual sums, the plan's costs on the total row only
    rates = _rates()
    months = pd.date_range("2027-01-01", periods=14, freq="MS")
    plan = pd.DataFrame({"month": months, "capital": 0.0, "operating": 1.0})
    plan.loc[3, "capital"] = 50e6
    req, table = _small_finance(rates, plan)
    year = table[(table["granularity"] == "year") & (table["period"] == "2027")]
    year = year.set_index("program")
    for program in ("A", "B"):
        r = req.sel(program=program).isel(month=slice(0, 12))
        staff = sum(r[k].values * rates.salary[k] for k in rates.salary).sum(axis=1) / 12
        suite = r["suites"].values.sum(axis=1) * 3e6 / 12
        row = year.loc[program]
        assert row["staff_cost_mean [EUR per period]"] == approx(staff.mean())
        assert row["suite_cost_p50 [EUR per period]"] == approx(np.quantile(suite, 0.5))
        assert row["operating_cost_p90 [EUR per period]"] == approx(np.quantile(staff + suite, 0.9))
        assert np.isnan(row["plan_capital_cost [EUR per period]"])
    assert year.loc["total", "plan_capital_cost [EUR per period]"] == 50e6
    assert year.loc["total", "plan_operating_cost [EUR per period]"] == 12.0
    month = table[(table["granularity"] == "month") & (table["program"] == "total")]
    assert month["plan_capital_cost [EUR per period]"].tolist() == plan["capital"].tolist()


def test_finance_xlsx_has_notes_a_frozen_filtered_header_dates_and_csv_precision(tmp_path):
    import openpyxl

    _, table = _small_finance(_rates())
    table = table.copy()
    col = "qa_fte_mean [FTE, average]"
    table.loc[0, col] = -1.47876e-18  # rounding noise, as finance.csv used to show
    table.loc[1, col] = 1.23456789
    path = tmp_path / "finance.xlsx"
    export.write_xlsx(
        path,
        {
            "annual": table[table["granularity"] == "year"],
            "monthly": table[table["granularity"] == "month"],
        },
        notes=[("P-columns", "Do not add P50s across programs.")],
    )
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["notes", "annual", "monthly"]  # it opens on the notes
    assert book["notes"]["B2"].value == "Do not add P50s across programs."
    for name in ("annual", "monthly"):
        ws = book[name]
        assert ws.freeze_panes == "A2"
        assert ws.auto_filter.ref == ws.dimensions
        header = [c.value for c in ws[1]]
        assert header == list(table.columns)
        widths = [ws.column_dimensions[c.column_letter].width for c in ws[1]]
        assert min(widths) >= 9 and max(widths) <= 40
        for row in ws.iter_rows(min_row=2, values_only=True):
            for value in row:
                if isinstance(value, float) and value != 0:
                    assert abs(value) >= 1e-9, value  # no 1e-18
                    assert value == float(export.csv_number(value))  # the CSV's precision
    annual, monthly = book["annual"], book["monthly"]
    j = list(table.columns).index(col) + 1
    assert annual.cell(2, j).value == 0
    assert annual.cell(3, j).value == 1.23457
    assert annual.cell(2, 2).value == 2027  # a year as a number
    first = monthly.cell(2, 2)
    assert first.value == pd.Timestamp("2027-01-01").to_pydatetime()  # a month as a date
    assert first.number_format == "yyyy-mm"
