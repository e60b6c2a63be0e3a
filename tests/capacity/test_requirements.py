"""Hand-computed cases, closed forms and identities of capacity.requirements."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from capacity import InputError, bands, facility, requirements, shortfall_probability
from capacity.occupancy import occupancy_weights
from tests.helpers import assert_occupancy_by_brute_force, fixed_process, make_demand


def test_failure_rate_zero_lots_equal_patients_plus_ppq(process):
    rng = np.random.default_rng(0)
    values = rng.poisson(7, size=(20, 6, 2, 3))
    req = requirements(make_demand(values), process, by_program=True)
    np.testing.assert_array_equal(req["lots"].values, values.sum(axis=3))
    assert float(req["remanufactured_lots"].sum()) == 0
    assert float(req["patients_lost"].sum()) == 0


def test_hand_computed_january_case(process):
    # 31 lots start evenly over January 2027 (31 days); each holds a suite 9 + 1 = 10 days.
    # A lot started on day s < 21 stays in January 10 days, later ones 31 - s days:
    # (21 * 10 + 10**2 / 2) / 31 = 260 / 31 days per lot -> 260 suite-days in January, 50 in Feb.
    req = requirements(make_demand([[31, 0, 0]]), process)
    np.testing.assert_allclose(req["suite_days"].values[0], [260.0, 50.0, 0.0])
    np.testing.assert_allclose(req["suites"].values[0, :2], [260 / 31, 50 / 28])
    # QC at harvest (day s + 9): 22 of 31 lots harvest in January; 1.5 h x 1.02 per test.
    np.testing.assert_allclose(
        req["qc_hours"].sel(assay="sterility").values[0], [22 * 1.53, 9 * 1.53, 0]
    )
    np.testing.assert_allclose(
        req["instrument_hours"].sel(instrument="bact-alert").values[0], [22 * 0.51, 9 * 0.51, 0]
    )
    # QA at release, day s + 9 + 14: 8 lots in January, 23 in February; 8 h each.
    productive = 1650 * np.array([31, 28, 31]) / 365
    np.testing.assert_allclose(req["qa_fte"].values[0], np.array([8 * 8, 23 * 8, 0]) / productive)
    # Operators work over the 9 culture days: (22 * 9 + 9**2 / 2) / 31 of 9 days in January.
    jan = (22 * 9 + 81 / 2) / 9
    np.testing.assert_allclose(
        req["operator_fte"].values[0], np.array([jan * 80, (31 - jan) * 80, 0]) / productive
    )


def test_total_suite_days_equal_lots_times_slot_days():
    spec = fixed_process(
        culture_days={"triangular": [7, 9, 14]},
        changeover_days={"uniform": [0.5, 2]},
        lots_per_suite=3,
        failure_rate={"beta": [5, 45]},
        max_remanufacture=2,
    )
    rng = np.random.default_rng(2)
    values = rng.poisson(12, size=(50, 14))
    values[:, -2:] = 0  # nothing runs past the horizon
    req = requirements(make_demand(values), spec, seed=5)
    par = spec.sample(50, seed=5)
    slot_days = (par["culture_days"] + par["changeover_days"]).values
    expected = req["lots"].sum("month").values * slot_days / 3
    np.testing.assert_allclose(req["suite_days"].sum("month").values, expected, rtol=1e-12)
    qc = req["lots"].sum("month").values * 1.5 * 1.02
    np.testing.assert_allclose(req["qc_hours"].sum(("month", "assay")).values, qc, rtol=1e-12)


def test_spill_past_horizon_is_dropped_not_moved():
    req = requirements(make_demand([[0, 0, 31]]), fixed_process())
    assert float(req["suite_days"].sum()) == pytest.approx(260.0)


def test_littles_law_in_steady_state():
    # Constant 30 lots a month, 10 days a slot, 2 lots per suite. A lot started uniformly in a
    # month of D days spends 10 - 50 / D of its 10 days there and 50 / D in the next month,
    # so suite-days(m) = 30 (10 - 50 / D_m + 50 / D_(m-1)) / 2 (Little's law lots/day x 10 / 2
    # up to the month-length terms), and suites = suite-days / D_m.
    spec = fixed_process(lots_per_suite=2)
    req = requirements(make_demand(np.full((1, 36), 30)), spec)
    months = pd.DatetimeIndex(req["month"].values)
    days = months.days_in_month.to_numpy(float)
    spill_in = np.r_[0.0, 50 / days[:-1]]
    suite_days = 30 * (10 - 50 / days + spill_in) / 2
    np.testing.assert_allclose(req["suite_days"].values[0], suite_days, rtol=1e-12)
    # suites = suite-days / calendar days (lots hold suites every calendar day)
    np.testing.assert_allclose(req["suites"].values[0], suite_days / days, rtol=1e-12)
    little = 30 / days * 10 / 2
    assert np.all(np.abs(req["suites"].values[0, 1:] / little[1:] - 1) < 0.02)


def test_remanufacture_binomial_mean_and_variance():
    n, p, draws = 40, 0.1, 40_000
    spec = fixed_process(failure_rate=p, max_remanufacture=1)
    req = requirements(make_demand(np.full((draws, 1), n)), spec, seed=11)
    rerun = req["remanufactured_lots"].values[:, 0]
    lost = req["patients_lost"].values[:, 0]
    # re-runs ~ Binomial(n, p); lost ~ Binomial(n, p**2) (failing twice)
    for x, q in ((rerun, p), (lost, p**2)):
        mean, var = n * q, n * q * (1 - q)
        assert abs(x.mean() - mean) < 4 * np.sqrt(var / draws)
        # var(s**2) = (kappa4 + 2 var**2) / N, binomial kappa4 = n q (1 - q) (1 - 6 q (1 - q))
        kappa4 = var * (1 - 6 * q * (1 - q))
        assert abs(x.var(ddof=1) - var) < 4 * np.sqrt((kappa4 + 2 * var**2) / draws)
    np.testing.assert_array_equal(req["lots"].values[:, 0], n + rerun)


def test_no_remanufacture_means_every_failure_is_lost():
    spec = fixed_process(failure_rate=0.2, max_remanufacture=0)
    req = requirements(make_demand(np.full((2000, 2), 50)), spec, seed=1)
    assert float(req["remanufactured_lots"].sum()) == 0
    np.testing.assert_array_equal(req["lots"], 50)
    lost = req["patients_lost"].values  # Binomial(50, 0.2): mean 10, variance 8
    assert abs(lost.mean() - 10) < 4 * np.sqrt(8 / lost.size)
    assert abs(lost.var(ddof=1) - 8) < 4 * np.sqrt((8 * (1 - 6 * 0.16) + 2 * 64) / lost.size)


def test_ppq_lots_need_suites_but_are_not_rerun():
    spec = fixed_process(failure_rate=0.5)
    values = np.zeros((500, 2, 1, 3), dtype=int)
    values[:, 0, 0, 2] = 4  # ppq only
    req = requirements(make_demand(values), spec)
    np.testing.assert_array_equal(req["lots"].values[:, 0], 4)
    assert float(req["patients_lost"].sum()) == 0


def test_operator_crew_floor():
    # 1 lot a month cannot keep a crew of 2 x 2 shifts x 8 h busy: the floor sets operator FTE.
    spec = fixed_process(min_operators_per_suite_shift=2, operator_hours_per_lot=1)
    req = requirements(make_demand(np.full((1, 4), 1)), spec)
    crew = req["suite_days"] * 2 * 2 * 8
    days = pd.DatetimeIndex(req["month"].values).days_in_month.to_numpy()
    productive = 1650 * days / 365
    np.testing.assert_allclose(req["operator_fte"].values[0], crew.values[0] / productive)
    # hands-on: 1 h over the 9 culture days; a lot started uniformly in a month of D days
    # works (D - 9 + 4.5) / D of its culture there and the rest in the next month
    inside = (days - 4.5) / days
    hands_on = inside + np.r_[0, 1 - inside[:-1]]
    np.testing.assert_allclose(req["operator_hands_on_fte"].values[0], hands_on / productive)
    assert np.all(crew.values[0] > 10 * hands_on)  # the floor, not the hands-on work, binds
    np.testing.assert_array_equal(req["fte"].sel(role="operator"), req["operator_fte"])


def test_facility_reapplies_the_crew_floor_across_programs():
    a = fixed_process(name="a", min_operators_per_suite_shift=1, operator_hours_per_lot=1)
    b = fixed_process(name="b", operator_hours_per_lot=500)
    values = np.full((1, 3, 2), 5)
    req = requirements(make_demand(values, programs=["A", "B"]), {"A": a, "B": b}, by_program=True)
    total = facility(req)
    expected = np.maximum(
        req["operator_hands_on_fte"].sum("program"), req["operator_crew_fte"].sum("program")
    )
    np.testing.assert_allclose(total["operator_fte"], expected)
    # A is floor-bound and B hands-on-bound: summing each program's larger one over-counts
    assert np.all(total["operator_fte"] < req["operator_fte"].sum("program") - 1e-6)
    np.testing.assert_allclose(
        requirements(make_demand(values, programs=["A", "B"]), {"A": a, "B": b})["operator_fte"],
        expected,
    )


def test_process_mapping_default_and_errors():
    values = np.full((1, 2, 2), 3)
    demand = make_demand(values, programs=["A", "B"])
    req = requirements(
        demand,
        {"*": fixed_process(), "B": fixed_process(name="b", lots_per_suite=2)},
        by_program=True,
    )
    np.testing.assert_allclose(
        req["suite_days"].sel(program="B"), req["suite_days"].sel(program="A") / 2
    )
    with pytest.raises(InputError, match=r"no process for programs \['B'\]"):
        requirements(demand, {"A": fixed_process()})
    with pytest.raises(InputError, match=r"programs \['C'\] are not in the demand"):
        requirements(demand, {"*": fixed_process(), "C": fixed_process()})
    with pytest.raises(InputError, match="two different processes are named 'fixed'"):
        requirements(demand, {"A": fixed_process(), "B": fixed_process(lots_per_suite=2)})


def test_assay_union_across_processes():
    other = fixed_process(
        name="o", qc=[{"assay": "endotoxin", "hands_on_hours": 1, "turnaround_days": 1}]
    )
    demand = make_demand(np.full((1, 3, 2), 4), programs=["A", "B"])
    req = requirements(demand, {"A": fixed_process(), "B": other}, by_program=True)
    assert list(req["assay"].values) == ["sterility", "endotoxin"]
    assert float(req["qc_hours"].sel(program="A", assay="endotoxin").sum()) == 0


def test_same_seed_same_result_and_seed_from_demand_attrs():
    demand = make_demand(np.random.default_rng(0).poisson(10, (30, 6)))
    a = requirements(demand, "car-t-autologous-manual", seed=7)
    b = requirements(demand, "car-t-autologous-manual", seed=7)
    assert a.identical(b)
    assert not a.identical(requirements(demand, "car-t-autologous-manual", seed=8))
    demand.attrs["seed"] = 7
    assert requirements(demand, "car-t-autologous-manual").identical(a)


def test_program_order_does_not_change_each_programs_draws():
    values = np.random.default_rng(1).poisson(10, (40, 5, 2))
    spec = "car-t-autologous-manual"
    ab = requirements(make_demand(values, programs=["A", "B"]), spec, by_program=True)
    ba = requirements(make_demand(values[:, :, ::-1], programs=["B", "A"]), spec, by_program=True)
    xr.testing.assert_identical(ab["lots"].sel(program="A"), ba["lots"].sel(program="A"))


def test_occupancy_weights_match_brute_force_integration():
    months = pd.date_range("2027-01-01", periods=4, freq="MS")
    delay, duration = np.array([3.0, 20.0]), np.array([12.5, 40.0])
    w = occupancy_weights(months, delay, duration)
    assert_occupancy_by_brute_force(w, months, delay, duration)


def test_bands_frame_and_ordering():
    demand = make_demand(np.random.default_rng(3).poisson(20, (200, 4, 2, 3)), programs=["A", "B"])
    req = requirements(demand, "car-t-autologous-manual", by_program=True)
    frame = bands(req)
    assert list(frame.columns) == [
        "month",
        "program",
        "metric",
        "unit",
        "mean",
        "p10",
        "p50",
        "p90",
    ]
    assert set(frame["program"]) == {"A", "B"}
    assert "qc_hours[sterility]" in set(frame["metric"])
    assert "fte[qa]" in set(frame["metric"])
    for program in ("A", "B"):
        suites = frame.query("metric == 'suites' and program == @program")
        assert suites["unit"].unique().tolist() == ["suites"]
        draws = req["suites"].sel(program=program)
        np.testing.assert_allclose(suites["mean"], draws.mean("draw"), rtol=1e-12)
        for q, col in ((0.1, "p10"), (0.5, "p50"), (0.9, "p90")):
            np.testing.assert_allclose(suites[col], draws.quantile(q, "draw"), rtol=1e-12)
    qa = frame.query("metric == 'fte[qa]' and program == 'B'")
    np.testing.assert_allclose(
        qa["p90"], req["fte"].sel(role="qa", program="B").quantile(0.9, "draw")
    )
    custom = bands(demand, quantiles=(0.025, 0.975))
    assert {"p2.5", "p97.5"} <= set(custom.columns)
    assert set(custom["metric"]) == {"patients[clinical]", "patients[commercial]", "patients[ppq]"}
    with pytest.raises(InputError, match="quantiles"):
        bands(req, quantiles=(1.5,))


def test_shortfall_probability_counts_draws_over_capacity():
    req = xr.Dataset(
        {
            "suites": (
                ("draw", "month"),
                np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 9.0], [7.0, 9.0]]),
            ),
            "qc_fte": (
                ("draw", "month"),
                np.array([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [3.0, 1.0]]),
            ),
        },
        coords={"month": pd.date_range("2027-01-01", periods=2, freq="MS")},
    )
    out = shortfall_probability(req, {"suites": 5, "qc_fte": 2})
    got = out.pivot(index="month", columns="metric", values="probability")
    np.testing.assert_allclose(got["suites"], [0.25, 0.5])  # need == installed is not short
    np.testing.assert_allclose(got["qc_fte"], [0.25, 0.0])
    np.testing.assert_allclose(got["any"], [0.25, 0.5])
    # capacity that grows when a module comes online
    grow = pd.Series([5.0, 10.0], index=pd.date_range("2027-01-01", periods=2, freq="MS"))
    out = shortfall_probability(req, {"suites": grow})
    np.testing.assert_allclose(out.query("metric == 'suites'")["probability"], [0.25, 0.0])
    with pytest.raises(InputError, match="unknown metric 'suits'"):
        shortfall_probability(req, {"suits": 5})
    with pytest.raises(InputError, match="expected one number or 2 monthly values"):
        shortfall_probability(req, {"suites": [1, 2, 3]})


def test_one_calendar_for_suites_and_crews():
    # 250 operating days: suites stay the calendar occupancy (lots hold suites every
    # calendar day), crews staff the occupied suites on 250 of 365 days
    spec = fixed_process(operating_days_per_year=250, min_operators_per_suite_shift=2)
    req = requirements(make_demand(np.full((1, 3), 31)), spec, opening=31)
    jan_suite_days = 31 * 10  # 31 lots a month x 10 days each, steady state from the opening
    assert req["suite_days"].values[0, 0] == pytest.approx(jan_suite_days)
    assert req["suites"].values[0, 0] == pytest.approx(jan_suite_days / 31)
    productive = 1650 * 31 / 365
    crew = jan_suite_days * 250 / 365 * 2 * 2 * 8 / productive
    assert req["operator_crew_fte"].values[0, 0] == pytest.approx(crew)


@pytest.mark.parametrize("by_program", [False, True])
def test_blocks_of_draws_give_the_same_result_as_all_at_once(monkeypatch, by_program):
    import capacity.workload

    rng = np.random.default_rng(8)
    demand = make_demand(rng.poisson(5, size=(37, 14, 3, 3)), programs=["A", "B", "C"])
    processes = {
        "A": fixed_process(failure_rate=0.2, max_remanufacture=2),
        "*": "car-t-autologous-manual",
    }
    whole = requirements(demand, processes, seed=4, by_program=by_program, opening={"A": 3})
    monkeypatch.setattr(capacity.workload, "CHUNK_CELLS", 5 * 14 * 3)  # blocks of 5 draws
    blocks = requirements(demand, processes, seed=4, by_program=by_program, opening={"A": 3})
    xr.testing.assert_identical(whole, blocks)
    assert whole["remanufactured_lots"].sum() > 0


def test_fixed_qc_and_qa_work_counts_once_per_process_and_per_suite():
    # QC/QA departments carry work that does not scale with lots: a fixed amount per month
    # for each process, and an amount per suite in use
    spec = fixed_process(
        qc_fixed_hours_per_month=160,
        qc_hours_per_suite_month=40,
        qa_fixed_hours_per_month=100,
        qa_hours_per_suite_month=20,
    )
    plain = fixed_process()
    demand = make_demand(np.full((2, 3, 2), 31), programs=["A", "B"])  # two programs, 1 process
    total = requirements(demand, spec, opening={"A": 31, "B": 31})
    base = requirements(demand, plain, opening={"A": 31, "B": 31})
    jan = 31 / (365.25 / 12)  # January's share of an average month
    suites = 2 * 31 * 10 / 31  # 62 lots x 10 days over 31 days: 20 suites in use
    fixed_qc = (160 + 40 * suites) * jan
    assert total["qc_hours"].sel(assay="fixed_work").values[0, 0] == pytest.approx(fixed_qc)
    productive = 1650 * 31 / 365
    extra_qc = total["qc_fte"].values[0, 0] - base["qc_fte"].values[0, 0]
    assert extra_qc == pytest.approx(fixed_qc / productive)
    extra_qa = total["qa_fte"].values[0, 0] - base["qa_fte"].values[0, 0]
    assert extra_qa == pytest.approx((100 + 20 * suites) * jan / productive)
    # by program: the fixed work is shared (not counted once per program), the facility
    # total is the same
    by_program = requirements(demand, spec, opening={"A": 31, "B": 31}, by_program=True)
    shared = by_program["qc_hours"].sel(assay="fixed_work").sum("program").values
    np.testing.assert_allclose(shared, total["qc_hours"].sel(assay="fixed_work").values)
    a, b = by_program["qc_hours"].sel(assay="fixed_work", program=["A", "B"]).values[0, 0]
    assert a == pytest.approx(b)  # equal lots, equal shares
    assert "fixed_work" not in base["assay"].values  # no fixed work: no extra label
