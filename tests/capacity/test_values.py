"""Value tests: closed forms, hand-computed cases and brute-force re-implementations.

Each test compares numbers with numbers derived here independently of the code under test, so
that an off-by-one, a dropped term, a swapped argument or a unit slip changes the result.
Sections: requirements, bands, facility, plans and shortfall, service level (demand months
out of order are tested in test_demand.py).
"""

from __future__ import annotations

import heapq
import itertools
import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from capacity import (
    InputError,
    bands,
    describe,
    plan_expansion,
    requirements,
    shortfall_probability,
    simulate_facility,
    suites_for_service_level,
)
from tests.helpers import fixed_process, make_demand


# --------------------------------------------------------------------------------------------
# 1. requirements: remanufacture beyond one re-run
# --------------------------------------------------------------------------------------------
def per_patient_pmf(p: float, max_remanufacture: int) -> dict[tuple[int, int], float]:
    """P(re-runs = r, lost = l) for one patient: fail, re-run, ... up to R re-runs.

    A patient is re-run after each failure while re-runs are left; lost when the last allowed
    attempt fails too. So P(r re-runs and not lost) = p**r (1 - p) and P(lost) = p**(R + 1).
    """
    pmf = {(r, 0): p**r * (1 - p) for r in range(max_remanufacture + 1)}
    pmf[(max_remanufacture, 1)] = p ** (max_remanufacture + 1)
    return pmf


def moments(pmf: dict[tuple[int, int], float], which: int) -> tuple[float, float, float]:
    """Mean, variance and fourth cumulant of one coordinate of a two-dimensional pmf."""
    values = np.array([k[which] for k in pmf], float)
    probs = np.array(list(pmf.values()))
    mean = probs @ values
    var = probs @ (values - mean) ** 2
    mu4 = probs @ (values - mean) ** 4
    return mean, var, mu4 - 3 * var**2


def assert_sum_of_iid(x: np.ndarray, n: int, mean: float, var: float, kappa4: float, what: str):
    """``x`` holds sums of ``n`` iid copies: check sample mean and variance within 4 SE."""
    cells = x.size
    total_var = n * var
    se_mean = np.sqrt(total_var / cells)
    assert abs(x.mean() - n * mean) <= 4 * se_mean + 1e-12, (what, x.mean(), n * mean, se_mean)
    # var(s**2) = (mu4 - sigma**4) / N with, for a sum of n iid, mu4 - sigma**4 = n k4 + 2 sigma**4
    se_var = np.sqrt((n * kappa4 + 2 * total_var**2) / cells)
    assert abs(x.var(ddof=1) - total_var) <= 4 * se_var + 1e-12, (what, x.var(ddof=1), total_var)


@pytest.mark.parametrize("max_remanufacture", [0, 1, 2, 3])
def test_remanufacture_moments_match_the_closed_form(max_remanufacture):
    # n = 40 patients a month (15 clinical + 25 commercial) and 10 PPQ lots that are never re-run
    p, draws, months = 0.1, 20_000, 2
    values = np.zeros((draws, months, 1, 3), dtype=int)
    values[..., 0], values[..., 1], values[..., 2] = 15, 25, 10
    n = 40
    spec = fixed_process(failure_rate=p, max_remanufacture=max_remanufacture)
    req = requirements(make_demand(values), spec, seed=11)
    rerun = req["remanufactured_lots"].values
    lost = req["patients_lost"].values
    pmf = per_patient_pmf(p, max_remanufacture)
    # e.g. R = 2: E[re-runs] = n (p + p**2), E[lost] = n p**3
    assert moments(pmf, 0)[0] == pytest.approx(sum(p**r for r in range(1, max_remanufacture + 1)))
    assert moments(pmf, 1)[0] == pytest.approx(p ** (max_remanufacture + 1))
    assert_sum_of_iid(rerun, n, *moments(pmf, 0), what="remanufactured_lots")
    assert_sum_of_iid(lost, n, *moments(pmf, 1), what="patients_lost")
    # the patients lost are the ones that used up every re-run: Cov = n (E[XL] - E[X] E[L])
    mx, ml = moments(pmf, 0)[0], moments(pmf, 1)[0]
    cov = n * (sum(pr * r * lo for (r, lo), pr in pmf.items()) - mx * ml)
    prod = (rerun - rerun.mean()) * (lost - lost.mean())
    assert abs(prod.mean() - cov) < 4 * prod.std() / np.sqrt(prod.size) + 1e-12, (prod.mean(), cov)
    np.testing.assert_array_equal(req["lots"].values, 50 + rerun)


@pytest.mark.parametrize("max_remanufacture", [1, 2, 3])
def test_remanufacture_joint_distribution_of_a_single_patient(max_remanufacture):
    # one patient per cell: (re-runs, lost) of every cell is one patient's path
    p, cells = 0.3, 40_000
    spec = fixed_process(failure_rate=p, max_remanufacture=max_remanufacture)
    req = requirements(make_demand(np.ones((cells // 2, 2), int)), spec, seed=3)
    rerun = req["remanufactured_lots"].values.ravel()
    lost = req["patients_lost"].values.ravel()
    pmf = per_patient_pmf(p, max_remanufacture)
    seen = set(zip(rerun.astype(int).tolist(), lost.astype(int).tolist(), strict=True))
    assert seen <= set(pmf), seen - set(pmf)  # e.g. never lost with re-runs left
    for (r, lo), prob in pmf.items():
        share = np.mean((rerun == r) & (lost == lo))
        assert abs(share - prob) < 4 * np.sqrt(prob * (1 - prob) / cells), (r, lo, share, prob)
    np.testing.assert_array_equal(req["lots"].values.ravel(), 1 + rerun)


def test_remanufacture_uses_each_draws_failure_rate():
    # failure rate ~ Uniform(a, b) per draw, 2 re-runs: E[re-runs] = n (E p + E p**2) and
    # E[lost] = n E p**3 (not n (E p + (E p)**2): the rate is uncertain, not averaged first)
    a, b, n, draws = 0.02, 0.3, 40, 40_000
    spec = fixed_process(failure_rate={"uniform": [a, b]}, max_remanufacture=2)
    req = requirements(make_demand(np.full((draws, 1), n)), spec, seed=5)

    def raw_moment(k):
        return (b ** (k + 1) - a ** (k + 1)) / ((k + 1) * (b - a))

    for x, mean in (
        (req["remanufactured_lots"].values[:, 0], n * (raw_moment(1) + raw_moment(2))),
        (req["patients_lost"].values[:, 0], n * raw_moment(3)),
    ):
        assert abs(x.mean() - mean) < 4 * x.std(ddof=1) / np.sqrt(draws), (x.mean(), mean)


# --------------------------------------------------------------------------------------------
# 2. bands: mean and percentiles against an independent reshaping
# --------------------------------------------------------------------------------------------
def independent_bands(result: xr.Dataset | xr.DataArray, quantiles) -> pd.DataFrame:
    """Mean and quantiles per (month, program, metric), with draws moved last and flattened."""
    ds = result.to_dataset(name=result.name) if isinstance(result, xr.DataArray) else result
    rows = []
    for name, var in ds.data_vars.items():
        extra = [d for d in var.dims if d not in ("draw", "month", "program")]
        labels = [None] if not extra else list(var[extra[0]].values)
        for label in labels:
            series = var if label is None else var.sel({extra[0]: label})
            programs = list(series["program"].values) if "program" in series.dims else ["all"]
            if "program" not in series.dims:
                series = series.expand_dims(program=["all"])
            table = series.transpose("month", "program", "draw").values
            table = table.reshape(-1, table.shape[-1])  # (month x program, draw)
            qs = np.quantile(table, quantiles, axis=1)
            keys = itertools.product(pd.DatetimeIndex(series["month"].values), programs)
            for i, (month, program) in enumerate(keys):
                row = {
                    "month": month,
                    "program": str(program),
                    "metric": name if label is None else f"{name}[{label}]",
                    "unit_expected": var.attrs.get("units", ""),
                    "mean_expected": table[i].sum() / table.shape[1],
                }
                for q, values in zip(quantiles, qs, strict=True):
                    row[f"p{100 * q:g}_expected"] = values[i]
                rows.append(row)
    return pd.DataFrame(rows)


def assert_bands_match(result, quantiles):
    got = bands(result, quantiles)
    expected = independent_bands(result, quantiles)
    assert len(got) == len(expected)
    merged = got.merge(expected, on=["month", "program", "metric"], how="outer", indicator=True)
    assert (merged["_merge"] == "both").all(), merged.loc[merged["_merge"] != "both"].head()
    assert (merged["unit"] == merged["unit_expected"]).all()
    for col in ["mean", *(f"p{100 * q:g}" for q in quantiles)]:
        np.testing.assert_allclose(merged[col], merged[f"{col}_expected"], rtol=1e-12, atol=1e-12)
    return merged


def test_bands_mean_and_percentiles_by_program_and_resource():
    # 3 programs of different size, 5 months (not 3: a month/program mix-up shows)
    rng = np.random.default_rng(3)
    scale = np.array([4, 12, 30])[None, None, :, None]
    values = rng.poisson(scale * np.ones((250, 5, 3, 3)))
    demand = make_demand(values, programs=["A", "B", "C"])
    req = requirements(demand, "car-t-autologous-manual", by_program=True, seed=2)
    merged = assert_bands_match(req, (0.1, 0.5, 0.9))
    assert {"qc_hours[potency]", "fte[qa]", "instrument_hours[ddpcr]"} <= set(merged["metric"])
    # the three programs really differ, so swapping program labels could not pass
    suites = merged[merged["metric"] == "suites"].groupby("program")["mean"].mean()
    assert suites["A"] < suites["B"] < suites["C"]
    assert_bands_match(req, (0.05, 0.25, 0.975))
    facility_totals = requirements(demand, "car-t-autologous-manual", seed=2)
    assert_bands_match(facility_totals, (0.1, 0.5, 0.9))
    assert_bands_match(demand, (0.1, 0.5, 0.9))  # a DataArray with a stream dim


# --------------------------------------------------------------------------------------------
# 3. facility: release timing with failures and a QC queue
# --------------------------------------------------------------------------------------------
# The panel's short assay comes first: release waits for the *longest* turnaround (14 days),
# not the first assay's (1 day) nor their sum (15).
PANEL = [
    {"assay": "endotoxin", "hands_on_hours": 0.5, "turnaround_days": 1},
    {"assay": "sterility", "hands_on_hours": 1.5, "turnaround_days": 14, "retest_rate": 0.02},
]
QC_HOURS_PER_LOT = 0.5 + 1.5 * 1.02
CULTURE, CHANGEOVER, TURNAROUND = 9.0, 1.0, 14.0


def qc_fte_for(work_days_per_lot: float) -> float:
    """Analysts giving ``work_days_per_lot`` days of QC per lot (1650 productive h a year)."""
    return QC_HOURS_PER_LOT / (work_days_per_lot * 1650 / 365)


def facility_process(**overrides):
    return fixed_process(culture_days=CULTURE, changeover_days=CHANGEOVER, qc=PANEL, **overrides)


def test_rerun_waits_for_the_qc_result_and_release_follows_the_qc_queue():
    # One patient (arrival a, any day of January), one suite, each lot fails with p = 0.5, two
    # re-runs, QC takes 30 days a lot. Attempt 1: slot a..a+10, harvest a+9, QC a+9..a+39.
    #   pass -> release a+9+14 = a+23 (no QC wait)
    #   fail -> known at a+9+14 = a+23: re-run a+23..a+32; QC max(a+32, a+39) = a+39 (wait 7)
    #     pass -> release a+39+14 = a+53
    #     fail -> known at a+32+14 = a+46: re-run a+46..a+55; QC starts at a+69 (wait 14)
    #       pass -> release a+83; fail -> lost (all three attempts used)
    draws = 2000
    values = np.zeros((draws, 6), int)
    values[:, 0] = 1
    spec = facility_process(failure_rate=0.5, max_remanufacture=2)
    sim = simulate_facility(
        make_demand(values), spec, 1, qc_fte=qc_fte_for(30.0), service="fixed", seed=4
    )
    release = sim["release_days_mean"].values[:, 0]
    qc_wait = sim["qc_wait_mean_days"].values[:, 0]
    lost = sim["patients_lost"].values[:, 0]
    outcomes = {1: (23.0, 0.0), 2: (53.0, 7.0), 3: (83.0, 14.0)}
    attempts = np.full(draws, 3)
    for k, (rel, wait) in outcomes.items():
        hit = np.isclose(release, rel, atol=1e-9)
        np.testing.assert_allclose(qc_wait[hit], wait, atol=1e-9)
        attempts[hit] = k
    released = ~np.isnan(release)
    assert np.all(np.isin(np.round(release[released], 9), [23.0, 53.0, 83.0])), release
    np.testing.assert_array_equal(lost, (~released).astype(float))
    np.testing.assert_array_equal(sim["patient_wait_days"].values[:, 0], 0.0)
    # every attempt holds the suite 10 days (re-runs take slots too)
    busy = (sim["slots_busy"] * sim["month"].dt.days_in_month).sum("month").values
    np.testing.assert_allclose(busy, 10.0 * attempts, atol=1e-9)
    # and the number of attempts is geometric: 1/2, 1/4, 1/8 released, 1/8 lost
    for share, expected in (
        (np.mean(attempts == 1), 0.5),
        (np.mean(attempts == 2), 0.25),
        (np.mean(released & (attempts == 3)), 0.125),
        (np.mean(~released), 0.125),
    ):
        assert abs(share - expected) < 4 * np.sqrt(expected * (1 - expected) / draws)


def brute_force_facility(arrivals, slots, fail, attempts, qc_work_days, month_edges):
    """Event-by-event FCFS facility in plain Python (one draw, fixed culture and changeover).

    Jobs join the queue at arrival, a re-run when the failed lot's result is known (harvest +
    longest turnaround); each takes the slot that frees first. QC is FIFO in order of harvest,
    ``qc_work_days`` a lot; release = QC start + longest turnaround. Returns per-patient first
    waits and per-month sums keyed by arrival month (and slot-days by calendar month).
    """
    queue = [(a, 0, i) for i, a in enumerate(arrivals)]
    heapq.heapify(queue)
    free = [0.0] * slots
    first_wait = np.full(len(arrivals), np.nan)
    lots = []
    while queue:
        ready, attempt, i = heapq.heappop(queue)
        slot = int(np.argmin(free))
        start = max(ready, free[slot])
        free[slot] = start + CULTURE + CHANGEOVER
        if attempt == 0:
            first_wait[i] = start - ready
        harvest = start + CULTURE
        if fail and attempt + 1 < attempts:
            heapq.heappush(queue, (harvest + TURNAROUND, attempt + 1, i))
        lots.append((harvest, start, i, not fail))
    n_months = len(month_edges) - 1
    release_sum, qc_wait_sum, released = (np.zeros(n_months) for _ in range(3))
    busy = np.zeros(n_months)
    qc_free = -np.inf
    for harvest, start, i, ok in sorted(lots):
        qc_start = max(harvest, qc_free)
        qc_free = qc_start + qc_work_days
        m = np.searchsorted(month_edges, arrivals[i], side="right") - 1
        if ok:
            released[m] += 1
            release_sum[m] += qc_start + TURNAROUND - arrivals[i]
            qc_wait_sum[m] += qc_start - harvest
        slot_end = start + CULTURE + CHANGEOVER
        for k in range(n_months):
            busy[k] += max(0.0, min(slot_end, month_edges[k + 1]) - max(start, month_edges[k]))
    return first_wait, released, release_sum, qc_wait_sum, busy


@pytest.mark.parametrize(
    ("suites", "failure_rate", "max_remanufacture", "qc_days"),
    [(2, 0.0, 1, 0.6), (1, 0.0, 0, 12.0), (2, 1.0, 1, 0.6), (1, 1.0, 2, None)],
)
def test_facility_matches_a_brute_force_simulation(
    suites, failure_rate, max_remanufacture, qc_days
):
    # a handful of patients a month on one or two suites; arrival days are read back from the
    # simulation (they are uniform within the month) and replayed through the brute force
    rng = np.random.default_rng(suites * 10 + max_remanufacture)
    values = rng.integers(2, 7, size=(12, 4))
    demand = make_demand(values)
    spec = facility_process(failure_rate=failure_rate, max_remanufacture=max_remanufacture)
    sim = simulate_facility(
        demand,
        spec,
        suites,
        qc_fte=None if qc_days is None else qc_fte_for(qc_days),
        service="fixed",
        seed=8,
    )
    months = pd.DatetimeIndex(demand["month"].values)
    edges = np.r_[0.0, np.cumsum(months.days_in_month.to_numpy(float))]
    for d in range(values.shape[0]):
        arrival = sim["patient_arrival_day"].values[d]
        arrival = arrival[~np.isnan(arrival)]
        assert len(arrival) == values[d].sum()
        np.testing.assert_array_equal(
            np.bincount(np.searchsorted(edges, arrival, side="right") - 1, minlength=4),
            values[d],
        )
        wait, released, release_sum, qc_wait_sum, busy = brute_force_facility(
            arrival, suites, failure_rate == 1.0, max_remanufacture + 1, qc_days or 0.0, edges
        )
        got = sim.isel(draw=d)
        np.testing.assert_allclose(got["patient_wait_days"].values[: len(arrival)], wait, atol=1e-9)
        month = np.searchsorted(edges, arrival, side="right") - 1
        served = np.bincount(month, minlength=4)
        np.testing.assert_allclose(
            got["wait_mean_days"].values, np.bincount(month, wait, 4) / served, atol=1e-9
        )
        with np.errstate(invalid="ignore"):
            np.testing.assert_allclose(
                got["release_days_mean"].values, release_sum / released, atol=1e-9
            )
            np.testing.assert_allclose(
                got["qc_wait_mean_days"].values, qc_wait_sum / released, atol=1e-9
            )
        np.testing.assert_allclose(got["slots_busy"].values, busy / np.diff(edges), atol=1e-9)
        lost = values[d] if failure_rate == 1.0 else np.zeros(4)
        np.testing.assert_array_equal(got["patients_lost"].values, lost)
    if failure_rate == 0.0 and qc_days:
        # the cases exercise what they claim: patients wait for a slot, lots for QC
        assert np.nanmax(sim["wait_mean_days"].values) > 0
        assert np.nanmax(sim["qc_wait_mean_days"].values) > 0


def test_release_is_harvest_plus_longest_turnaround_without_queues():
    # ample suites, no QC limit, no failures: every patient released 9 + 14 days after arrival
    demand = make_demand(np.full((5, 3), 4))
    sim = simulate_facility(demand, facility_process(), 20, service="fixed", seed=1)
    np.testing.assert_allclose(sim["release_days_mean"].values, CULTURE + TURNAROUND, atol=1e-9)
    np.testing.assert_allclose(sim["qc_wait_mean_days"].values, 0.0, atol=1e-12)
    np.testing.assert_array_equal(sim["wait_mean_days"].values, 0.0)


# --------------------------------------------------------------------------------------------
# 4. plans and shortfall: need == capacity is not a shortfall, slightly more is
# --------------------------------------------------------------------------------------------
MONTHS = pd.date_range("2027-01-01", periods=12, freq="MS")


def need_array(values) -> xr.DataArray:
    values = np.asarray(values, float)
    return xr.DataArray(
        values, dims=("draw", "month"), coords={"month": MONTHS[: values.shape[1]]}, name="suites"
    )


def test_need_equal_to_installed_is_not_a_shortfall():
    need = need_array(np.full((20, 12), 6.0))
    plan = plan_expansion(need, installed=6, unit_size=2, lead_time_months=3, target=0.0)
    assert len(plan.commitments) == 0
    np.testing.assert_array_equal(plan.by_month["shortfall_probability"], 0.0)
    np.testing.assert_array_equal(plan.by_month["expected_shortfall"], 0.0)
    out = shortfall_probability(xr.Dataset({"suites": need}), {"suites": 6})
    np.testing.assert_array_equal(out["probability"], 0.0)


def test_need_slightly_above_installed_is_a_shortfall():
    values = np.full((20, 12), 6.0)
    values[:5, 6:] = 6.0 + 1e-6  # a quarter of the draws, from month 6
    need = need_array(values)
    plan = plan_expansion(need, installed=6, unit_size=2, lead_time_months=3, target=0.1)
    assert plan.commitments["online_month"].tolist() == [MONTHS[6]]
    assert plan.commitments["commit_month"].tolist() == [MONTHS[3]]
    out = shortfall_probability(xr.Dataset({"suites": need}), {"suites": 6})
    np.testing.assert_allclose(
        out.query("metric == 'suites'")["probability"], np.r_[np.zeros(6), np.full(6, 0.25)]
    )
    np.testing.assert_allclose(
        out.query("metric == 'any'")["probability"], np.r_[[0] * 6, [0.25] * 6]
    )


def test_need_equal_to_installed_plus_units_needs_exactly_those_units():
    # need 10 = 6 installed + 2 units of 2: two units, not three; 10 + 1e-6 needs a third
    values = np.full((10, 12), 5.0)
    values[:, 4:] = 10.0
    plan = plan_expansion(
        need_array(values), installed=6, unit_size=2, lead_time_months=2, target=0.0
    )
    assert plan.commitments["online_month"].tolist() == [MONTHS[4]] * 2
    np.testing.assert_array_equal(plan.by_month["capacity"], np.r_[[6.0] * 4, [10.0] * 8])
    np.testing.assert_array_equal(plan.by_month["shortfall_probability"], 0.0)
    values[:, 4:] = 10.0 + 1e-6
    plan = plan_expansion(
        need_array(values), installed=6, unit_size=2, lead_time_months=2, target=0.0
    )
    assert plan.commitments["online_month"].tolist() == [MONTHS[4]] * 3


def test_target_equal_to_the_shortfall_probability_is_met():
    # 10% of draws need one more suite: P(short) = 0.1 meets target 0.1 but not 0.0999
    values = np.full((100, 12), 5.0)
    values[:10, 6:] = 7.0
    met = plan_expansion(
        need_array(values), installed=6, unit_size=2, lead_time_months=1, target=0.1
    )
    assert len(met.commitments) == 0
    np.testing.assert_allclose(met.by_month["shortfall_probability"], np.r_[[0] * 6, [0.1] * 6])
    missed = plan_expansion(
        need_array(values), installed=6, unit_size=2, lead_time_months=1, target=0.0999
    )
    assert missed.commitments["online_month"].tolist() == [MONTHS[6]]


def test_plan_and_shortfall_probability_agree_on_float_ties():
    # 0.1 * 3 is 0.30000000000000004 in floating point: the same need as an installed 0.3
    need = need_array(np.full((4, 12), 0.1) * 3)
    plan = plan_expansion(need, installed=0.3, unit_size=0.1, lead_time_months=0, target=0.0)
    short = shortfall_probability(xr.Dataset({"suites": need}), {"suites": 0.3})
    np.testing.assert_array_equal(short.query("metric == 'suites'")["probability"], 0.0)
    assert len(plan.commitments) == 0
    np.testing.assert_array_equal(plan.by_month["shortfall_probability"], 0.0)


# --------------------------------------------------------------------------------------------
# 5. service level: describe's P50 and P90 are the quantiles of suites_needed
# --------------------------------------------------------------------------------------------
SENTENCE = re.compile(r"you need (more than )?(\d+) suites at P50, (more than )?(\d+) at P90$")


def parse_describe(text: str) -> tuple[float, float]:
    match = SENTENCE.search(text)
    assert match, text
    p50 = np.inf if match[1] else float(match[2])
    p90 = np.inf if match[3] else float(match[4])
    return p50, p90


def suites_quantile(need: np.ndarray, q: float) -> float:
    """Fewest suites that meet the service level in at least a share q of the draws.

    A draw no candidate satisfied needs more than any candidate (infinitely many here).
    """
    need = np.where(np.isnan(need), np.inf, need)
    for c in np.unique(need):
        if np.mean(need <= c) >= q:
            return float(c)
    raise AssertionError("unreachable")


def result_with(need, candidates=(3, 4, 5, 6, 7, 8, 9, 10)) -> xr.Dataset:
    return xr.Dataset(
        {"suites_needed": ("draw", np.asarray(need, float))},
        attrs={"max_wait_days": 2.0, "epsilon": 0.05, "candidates": str(list(candidates))},
    )


@pytest.mark.parametrize(
    "need",
    [
        [7] * 5 + [8] * 5,  # half the draws need 7: P50 is 7 (not the midpoint 7.5 rounded)
        [8] * 15 + [9] * 2,  # 8 suites meet only 15/17 = 88% of draws: P90 is 9
        [6] * 9 + [7] * 1,
        [5] * 8 + [np.nan] * 2,  # 20% of draws need more than the largest candidate
        np.random.default_rng(0).integers(4, 11, 101),
    ],
)
def test_describe_numbers_are_quantiles_of_suites_needed(need):
    need = np.asarray(need, float)
    result = result_with(need)
    p50, p90 = parse_describe(describe(result))
    assert p50 == suites_quantile(need, 0.5)
    assert p90 == suites_quantile(need, 0.9)
    finite = need[~np.isnan(need)]
    if not np.isnan(need).any():
        assert (p50, p90) == tuple(np.quantile(finite, [0.5, 0.9], method="inverted_cdf"))
    assert describe(result).startswith("to keep 95% of patients waiting under 2 days")
    if np.isinf(p90):
        assert "more than 10 at P90" in describe(result)


def test_suites_for_service_level_is_the_fewest_suites_meeting_the_level():
    months = pd.date_range("2027-01-01", periods=12, freq="MS")
    rng = np.random.default_rng(12)
    demand = make_demand(rng.poisson(300 / 365 * months.days_in_month.to_numpy(), (80, 12)))
    spec = fixed_process(culture_days=7, changeover_days=0)
    candidates = range(4, 14)
    result = suites_for_service_level(
        demand, spec, max_wait_days=2, epsilon=0.05, candidates=candidates, seed=3
    )
    need = result["suites_needed"].values
    # brute force: the share of each draw's patients waiting over 2 days, per candidate
    share = {}
    for c in candidates:
        sim = simulate_facility(demand, spec, c, cryopreserved=True, seed=3)
        waits = sim["patient_wait_days"].values
        share[c] = np.array([np.mean(w[~np.isnan(w)] > 2) for w in waits])
    expected = np.array(
        [next((c for c in candidates if share[c][d] <= 0.05), np.nan) for d in range(80)]
    )
    np.testing.assert_array_equal(need, expected)
    assert len(np.unique(need)) >= 3  # the draws disagree, so the quantiles say something
    p50, p90 = parse_describe(describe(result))
    assert (p50, p90) == (suites_quantile(need, 0.5), suites_quantile(need, 0.9))
    assert p50 < p90


def test_installed_series_missing_a_month_is_refused():
    # a month with no installed value must not count as "never short" (NaN comparisons)
    need = need_array(np.full((5, 12), 8.0))
    installed = pd.Series(6.0, index=MONTHS[:11])
    with pytest.raises(InputError, match="no value for month 2027-12-01"):
        plan_expansion(need, installed=installed, unit_size=2, lead_time_months=0, target=0.0)
    with pytest.raises(InputError, match="no value for month 2027-12-01"):
        shortfall_probability(xr.Dataset({"suites": need}), {"suites": installed})
    # given in any order, a Series is matched by month
    full = pd.Series(np.r_[[6.0] * 6, [8.0] * 6], index=MONTHS)[::-1]
    plan = plan_expansion(need, installed=full, unit_size=2, lead_time_months=0, target=0.0)
    np.testing.assert_array_equal(plan.by_month["installed"], np.r_[[6.0] * 6, [8.0] * 6])
    np.testing.assert_array_equal(plan.by_month["new_units"], 1.0)
