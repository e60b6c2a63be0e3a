"""The decisions stage (:func:`pmcap.decisions.decide`) against small cases computed by hand.

Each test builds the facility totals and the portfolio's per-draw inputs directly (no fit, no
sampling of demand) and checks exact values: the months of the module plan and of every
requisition relative to the data cut (``run.as_of``), the shortfall against the installed
steps, the service-level suite count (P50 and P90 over the first ``service_level.draws``
draws) and the drivers of the peak suite need (Spearman's rho, order and which inputs).

The plan case (10 draws, 24 months from 2027-01, data cut 2026-11-20: a commitment made
today is dated 2026-11, 2 months before the first month of the horizon)::

    month index            0-5               6-11              12-23
    suites needed          13 in draws 0-1   17 in draw 0      17 in draws 0-4
                           12 in the others  12 in the others  15 in the others
    installed suites       12                14 (from 2027-07) 14

Modules of 2 suites, 6 months lead: the first month a module can be online is 2026-11 + 6
= 2027-05 (index 4), so months 0-3 stay short (P = 0.2 > target 0.1; reported, not
helped); module 1 is online 2027-05 (committed 2026-11, the month of the data cut); in
months 6-11 one draw in ten is short of 14 + 2 = 16 (P = 0.1, not over the target: no
module); from month 12, 17 > 16 in half the draws: module 2 online 2028-01, committed
2027-07. Suites online by the plan: 12, 14 (from index 4), 16 (6), 18 (12).
"""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pmcap.decisions import decide, input_columns, rank_drivers, spearman
from pmcap.scenario import FacilityConfig, ServiceLevel, example_scenario_path, load_scenario
from tests.helpers import fixed_process, make_demand

MONTHS = pd.date_range("2027-01-01", periods=24, freq="MS")
DRAWS = 10


def month(i: int) -> pd.Timestamp:
    """The month ``i`` months after the first of the horizon (negative: before it)."""
    return MONTHS[0] + pd.DateOffset(months=i)


@pytest.fixture(scope="module")
def example():
    return load_scenario(example_scenario_path())


def scenario_with(example, **facility):
    """The example scenario with the plan case's run settings and ``facility``."""
    sc = example.model_copy(deep=True)
    sc.run.as_of = dt.date(2026, 11, 20)
    sc.run.start = dt.date(2027, 1, 1)
    sc.run.horizon_months = len(MONTHS)
    sc.run.seed = 11
    raw = {
        "suites": [{"from": "2027-01-01", "suites": 12}, {"from": "2027-07-01", "suites": 14}],
        "operator_fte": 20,
        "qc_fte": 5,
        "qa_fte": 2,
        "module_suites": 2,
        "module_lead_time_months": 6,
        "hiring_lead_months": 4,
        "shortfall_target": 0.1,
    }
    sc.facility = FacilityConfig.model_validate(raw | facility)
    return sc


def suites_need() -> np.ndarray:
    """The table of the module docstring: suites needed (draw, month)."""
    need = np.full((DRAWS, len(MONTHS)), 12.0)
    need[:2, 0:6] = 13.0
    need[0, 6:12] = 17.0
    need[:, 12:] = 15.0
    need[:5, 12:] = 17.0
    return need


def totals(suites: np.ndarray) -> xr.Dataset:
    """Facility totals: 2 operators per suite, 4 QC and 3 QA FTE in every draw and month."""
    shape = suites.shape
    return xr.Dataset(
        {
            "suites": (("draw", "month"), suites),
            "operator_fte": (("draw", "month"), 2.0 * suites),
            "qc_fte": (("draw", "month"), np.full(shape, 4.0)),
            "qa_fte": (("draw", "month"), np.full(shape, 3.0)),
        },
        coords={"draw": np.arange(shape[0]), "month": MONTHS[: shape[1]]},
    )


def world_of(demand: xr.DataArray, inputs: xr.Dataset, seed: int) -> SimpleNamespace:
    """What :func:`decide` reads of :class:`forecast.PortfolioDraws`."""
    return SimpleNamespace(demand=demand, inputs=inputs, opening={}, seed=seed)


def no_inputs(draws: int = DRAWS) -> xr.Dataset:
    return xr.Dataset(coords={"draw": np.arange(draws)})


def plan_case(example, **facility):
    sc = scenario_with(example, **facility)
    demand = make_demand(np.zeros((DRAWS, len(MONTHS), 1)), programs=["P"])
    world = world_of(demand, no_inputs(), sc.run.seed)
    total = totals(suites_need())
    return decide(sc, world, total, total, {"P": fixed_process()}, service_level=False)


def commitments(plan) -> tuple[list, list]:
    c = plan.commitments
    return list(c["commit_month"]), list(c["online_month"])


def test_module_plan_dates_count_from_the_data_cut(example):
    d = plan_case(example)
    commit, online = commitments(d.plans["suites"])
    # module 1: committed in the month of the data cut (2026-11), online 6 months later
    assert commit == [pd.Timestamp("2026-11-01"), month(6)]
    assert online == [month(4), month(12)]
    assert d.plans["suites"].target == 0.1
    assert (d.plans["suites"].commitments["capacity_added"] == 2).all()
    by = d.plans["suites"].by_month.set_index("month")
    expected = np.r_[[12] * 4, [14] * 2, [16] * 6, [18] * 12]
    np.testing.assert_array_equal(by["capacity"], expected)
    np.testing.assert_array_equal(by["installed"], np.r_[[12] * 6, [14] * 18])
    # the months before a module committed today can be online stay short, and are said so
    np.testing.assert_array_equal(by["helpable"], np.arange(24) >= 4)
    np.testing.assert_allclose(
        by["shortfall_probability"], np.r_[[0.2] * 4, [0] * 2, [0.1] * 6, [0] * 12]
    )


def test_an_earlier_data_cut_moves_the_first_commitment_before_the_horizon(example):
    # data cut 2026-06-15: a module committed today is online 2026-12, before the horizon, so
    # every month can be helped; module 1 is online 2027-01 (index 0), committed 6 months
    # before, 2026-07 (after the data cut); module 2 as before
    sc = scenario_with(example)
    sc.run.as_of = dt.date(2026, 6, 15)
    demand = make_demand(np.zeros((DRAWS, len(MONTHS), 1)), programs=["P"])
    total = totals(suites_need())
    world = world_of(demand, no_inputs(), sc.run.seed)
    early = decide(sc, world, total, total, {"P": fixed_process()}, service_level=False)
    commit, online = commitments(early.plans["suites"])
    assert online == [month(0), month(12)]
    assert commit == [pd.Timestamp("2026-07-01"), month(6)]
    assert early.plans["suites"].by_month["helpable"].all()
    # hiring (4 months lead) can staff the first month too: 4 operators online 2027-01,
    # requisitions 2026-09; QA likewise
    commit, online = commitments(early.plans["operator_fte"])
    assert online[:4] == [month(0)] * 4 and commit[:4] == [pd.Timestamp("2026-09-01")] * 4
    assert commitments(early.plans["qa_fte"]) == ([pd.Timestamp("2026-09-01")], [month(0)])
    # the installed steps and the shortfall against them do not depend on the data cut
    pd.testing.assert_frame_equal(early.shortfall, plan_case(example).shortfall)


def test_requisitions_staff_the_suites_the_module_plan_brings_online(example):
    # operators: 2 per suite needed, but only for the suites online (12, 14, 16, 18 by the
    # plan); installed 20; hiring lead 4 months, so the first hire can start 2026-11 + 4 =
    # 2027-03 (index 2):
    #   index 2-3:  24 needed in every draw (12 suites online) -> 4 hires online 2027-03,
    #               requisitions 2026-11 (the month of the data cut);
    #   index 4-5:  draws 0-1 need 13 suites, 14 online -> 26 in 2 of 10 draws -> 2 hires
    #               online 2027-05, requisitions 2027-01;
    #   index 6-11: draw 0 needs 17 suites, 16 online -> 32 in 1 of 10 draws (P = 0.1): none;
    #   index 12-:  17 of 18 suites in half the draws -> 34 -> 8 hires online 2028-01,
    #               requisitions 2027-09.
    d = plan_case(example)
    commit, online = commitments(d.plans["operator_fte"])
    assert online == [month(2)] * 4 + [month(4)] * 2 + [month(12)] * 8
    assert commit == [pd.Timestamp("2026-11-01")] * 4 + [month(0)] * 2 + [month(8)] * 8
    by = d.plans["operator_fte"].by_month
    np.testing.assert_array_equal(by["capacity"], np.r_[[20] * 2, [24] * 2, [26] * 8, [34] * 12])
    # months 0-1 cannot be helped by a requisition opened today: short in every draw
    np.testing.assert_array_equal(by["shortfall_probability"][:2], [1.0, 1.0])
    # QC: 4 needed (less where suites are short), 5 installed: no requisition; QA: 3 needed
    # (2.77 with 12 of 13 suites online), 2 installed: one requisition, opened at the data cut
    assert len(d.plans["qc_fte"].commitments) == 0
    commit, online = commitments(d.plans["qa_fte"])
    assert commit == [pd.Timestamp("2026-11-01")] and online == [month(2)]


def test_shortfall_compares_need_with_the_installed_steps(example):
    d = plan_case(example)
    sf = d.shortfall.set_index(["metric", "month"])
    suites = sf.loc["suites"]
    np.testing.assert_array_equal(suites["installed"], np.r_[[12] * 6, [14] * 18])
    # 13 > 12 in 2 draws; 17 > 14 in 1; from index 12 every draw needs 15 or 17 > 14
    expected = np.r_[[0.2] * 6, [0.1] * 6, [1.0] * 12]
    np.testing.assert_allclose(suites["probability"], expected)
    # operators against 20 installed: 24 or more needed everywhere (unstaffed need)
    np.testing.assert_allclose(sf.loc["operator_fte", "probability"], 1.0)
    np.testing.assert_allclose(sf.loc["qc_fte", "probability"], 0.0)
    np.testing.assert_allclose(sf.loc["qa_fte", "probability"], 1.0)
    assert d.installed["operator_fte"] == 20 and d.installed["qc_fte"] == 5
    assert d.installed["qa_fte"] == 2


# --------------------------------------------------------------------------- service level

# patients of each draw, all in the second month; a culture longer than the horizon keeps
# every lot in its suite to the end, so with no wait allowed a draw needs one suite per
# patient but for the share epsilon allowed to wait: ceil(N (1 - epsilon))
PATIENTS = np.array([2, 1, 4, 1, 5, 9, 7, 6, 8, 3, 14, 16, 13, 15, 17, 12, 18, 19, 20, 21])


def service_case(example, draws: int, epsilon: float):
    sc = scenario_with(
        example,
        service_level=ServiceLevel(max_wait_days=0, epsilon=epsilon, draws=draws),
    )
    values = np.zeros((len(PATIENTS), 3, 1))
    values[:, 1, 0] = PATIENTS
    demand = make_demand(values, start="2027-01-01", programs=["P"])
    total = totals(np.repeat(PATIENTS[:, None], 3, axis=1).astype(float))
    world = world_of(demand, no_inputs(), sc.run.seed)
    return decide(sc, world, total, total, {"P": fixed_process(culture_days=200)})


def test_service_level_counts_suites_over_the_first_draws(example):
    # the first 10 of the 20 draws need 2 1 4 1 5 9 7 6 8 3 suites: sorted 1 1 2 3 4 5 6 7 8
    # 9, P50 the 5th (4) and P90 the 9th (8) by the inverted CDF (values a draw takes)
    d = service_case(example, draws=10, epsilon=0.01)
    assert (d.service["p50"], d.service["p90"], d.service["draws"]) == (4, 8, 10)
    assert d.service_processes == {"P": "fixed"}
    # all 20: sorted 1 1 2 3 4 5 6 7 8 9 12 13 ... 21 -> P50 the 10th (9), P90 the 18th (19);
    # the gap from 9 to 12 at the middle tells them from interpolated percentiles (10.5)
    d = service_case(example, draws=20, epsilon=0.01)
    assert (d.service["p50"], d.service["p90"], d.service["draws"]) == (9, 19, 20)
    # more draws asked than the run has: all of them
    assert service_case(example, draws=50, epsilon=0.01).service["draws"] == 20


def test_service_level_lets_epsilon_of_the_patients_wait(example):
    # epsilon 0.2: ceil(0.8 N) = 2 1 4 1 4 8 6 5 7 3 12 13 11 12 14 10 15 16 16 17; sorted
    # 1 1 2 3 4 4 5 6 7 8 10 11 12 12 13 14 15 16 16 17: P50 the 10th (8), P90 the 18th (16)
    d = service_case(example, draws=20, epsilon=0.2)
    assert (d.service["p50"], d.service["p90"]) == (8, 16)


def test_service_level_simulates_each_draw_with_its_requirements_parameters(example, monkeypatch):
    # draw i of the day-level simulation has the failure rate and culture time requirements
    # drew for draw i (the process's stream with the run's seed, all draws, the first n kept)
    import capacity.service_level as service_level

    seen = []
    real = service_level.run_queue

    def spy(prep, online, idx=None, **kw):
        seen.append((prep.failure_rate.copy(), prep.culture_mean.copy()))
        return real(prep, online, idx, **kw)

    monkeypatch.setattr(service_level, "run_queue", spy)
    process = fixed_process(failure_rate={"beta": [2, 20]}, culture_days={"triangular": [7, 9, 14]})
    sc = scenario_with(example, service_level=ServiceLevel(max_wait_days=3, epsilon=0.1, draws=12))
    values = np.zeros((len(PATIENTS), 3, 1))
    values[:, 1, 0] = PATIENTS
    demand = make_demand(values, programs=["P"])
    total = totals(np.repeat(PATIENTS[:, None], 3, axis=1).astype(float))
    decide(sc, world_of(demand, no_inputs(), sc.run.seed), total, total, {"P": process})
    par = process.sample(len(PATIENTS), sc.run.seed)
    failure, culture = seen[0]
    np.testing.assert_array_equal(failure[:, 0], par["failure_rate"].values[:12])
    np.testing.assert_allclose(culture[:, 0], par["culture_days"].values[:12])


# --------------------------------------------------------------------------- drivers

# five draws; the peak suite need of each (month 0) and a lower month 1 that ranks otherwise
PEAK = np.array([10.0, 6.0, 9.0, 7.0, 8.0])
LOW = np.array([1.0, 5.0, 2.0, 4.0, 3.0])


def test_drivers_rank_inputs_by_spearman_rho_with_the_peak_suite_need(example):
    # ranks of the peak: 5 1 4 2 3
    # X = the peak itself: rho 1
    # Y, an event time that never happens in draws 1 and 4 (ranked last, tied): ranks
    #   1 4.5 3 2 4.5; deviations from 3: (2 -2 1 -1 0) . (-2 1.5 0 -1 1.5) = -6, sums of
    #   squares 10 and 9.5: rho = -6 / sqrt(95)
    # W = 2 1 1 2 2: ranks 4 1.5 1.5 4 4; (1 -1.5 -1.5 1 1): products 2 + 3 - 1.5 - 1 + 0
    #   = 2.5, squares 7.5: rho = 2.5 / sqrt(75)
    # Z constant: not a driver
    sc = scenario_with(example)
    inputs = xr.Dataset(
        {
            "W.share": ("draw", [2.0, 1.0, 1.0, 2.0, 2.0]),
            "Y.approval": ("draw", [1.0, np.nan, 3.0, 2.0, np.nan]),
            "Z.fixed": ("draw", np.full(5, 3.0)),
            "X.peak_share": ("draw", PEAK),
        },
        coords={"draw": np.arange(5)},
    )
    suites = np.stack([PEAK, LOW], axis=1)
    total = totals(suites)
    demand = make_demand(np.zeros((5, 2, 1)), programs=["P"])
    process = fixed_process(failure_rate={"uniform": [0.0, 0.2]})
    d = decide(
        sc,
        world_of(demand, inputs, sc.run.seed),
        total,
        total,
        {"P": process},
        service_level=False,
    )
    # the table drivers.csv is written from: these two columns, rows numbered 0, 1, ...
    assert list(d.drivers.columns) == ["input", "spearman_rho"]
    assert list(d.drivers.index) == list(range(len(d.drivers)))
    rho = dict(zip(d.drivers["input"], d.drivers["spearman_rho"], strict=True))
    failure = process.sample(5, sc.run.seed)["failure_rate"].values
    ranks = pd.Series(failure).rank().to_numpy()
    dev = ranks - ranks.mean()
    by_hand = float(dev @ np.array([2, -2, 1, -1, 0]) / np.sqrt(10 * dev @ dev))
    assert set(rho) == {"X.peak_share", "Y.approval", "W.share", "fixed.failure_rate"}
    assert rho["X.peak_share"] == pytest.approx(1.0)
    assert rho["Y.approval"] == pytest.approx(-6 / np.sqrt(95))
    assert rho["W.share"] == pytest.approx(2.5 / np.sqrt(75))
    assert rho["fixed.failure_rate"] == pytest.approx(by_hand)
    # largest |rho| first, whatever its sign
    assert list(d.drivers["spearman_rho"].abs()) == sorted(map(abs, rho.values()), reverse=True)
    assert list(d.drivers["input"][:2]) == ["X.peak_share", "Y.approval"]


def test_input_columns_name_process_parameters_per_assay():
    process = fixed_process(
        failure_rate={"uniform": [0.0, 0.2]},
        qc=[
            {
                "assay": "sterility",
                "tests_per_lot": 1,
                "hands_on_hours": {"uniform": [1.0, 2.0]},
                "turnaround_days": 14,
            }
        ],
    )
    world = SimpleNamespace(inputs=xr.Dataset({"A.x": ("draw", [1.0, np.nan, 2.0])}))
    cols = input_columns(world, {"P": process, "Q": process}, 3, seed=5)
    par = process.sample(3, 5)
    np.testing.assert_array_equal(cols["A.x"], [1.0, np.inf, 2.0])  # never: latest
    np.testing.assert_array_equal(cols["fixed.failure_rate"], par["failure_rate"].values)
    np.testing.assert_array_equal(
        cols["fixed.qc_hands_on_hours[sterility]"],
        par["qc_hands_on_hours"].sel(assay="sterility").values,
    )


def test_spearman_and_rank_drivers_by_hand():
    # ties share their mean rank: x ranks 1.5 1.5 3 4, y = 1 2 3 4: deviations
    # (-1 -1 0.5 1.5) . (-1.5 -0.5 0.5 1.5) = 4.5; sums of squares 4.5 and 5: rho 4.5 / sqrt(22.5)
    assert spearman(np.array([1.0, 1.0, 2.0, 5.0]), np.arange(4.0)) == pytest.approx(
        4.5 / np.sqrt(22.5)
    )
    target = np.arange(4.0)
    out = rank_drivers(
        {
            "up": target**2,
            "down": np.array([3, 2, 2.5, 0]),
            "flat": np.ones(4),
            "half": np.array([0, 1, 0, 1.0]),
        },
        target,
    )
    assert list(out["input"]) == ["up", "down", "half"]
    # down: ranks 4 2 3 1, (1.5 -0.5 0.5 -1.5) . (-1.5 -0.5 0.5 1.5) = -4 over 5: -0.8;
    # half: ranks 1.5 3.5 1.5 3.5, (-1 1 -1 1) . (-1.5 -0.5 0.5 1.5) = 2 over sqrt(4 x 5)
    np.testing.assert_allclose(out["spearman_rho"], [1.0, -0.8, 1 / np.sqrt(5)])
