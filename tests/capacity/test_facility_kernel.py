"""The compiled facility kernels: random numbers drawn inside them, arrivals without a
global sort, a heap of slots.

Their random numbers are a counter-based hash of (draw key, purpose, index), so the checks
here are deterministic: distributions against their closed forms (scipy), the same output
whatever the number of threads and whichever draws run together, and the queue against a
plain-Python first-come-first-served reference with many slots.
"""

from __future__ import annotations

import heapq

import numba
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from capacity import _fields as f
from capacity import _queue, simulate_facility
from capacity.distributions import Z90, Param
from capacity.simulation import lot_distribution, prepare_facility, run_queue, slot_online_days
from tests.helpers import fixed_process, make_demand

KEYS = np.random.default_rng(11).integers(0, 2**64, size=3, dtype=np.uint64)


@numba.njit(cache=False)
def _lots(kind, args, mean, key, n):
    out = np.empty(n)
    for i in range(n):
        out[i] = _queue.sample(kind, args, mean, key, i)
    return out


@numba.njit(cache=False)
def _uniforms(key, n):
    out = np.empty(n)
    for i in range(n):
        out[i] = _queue.unit_uniform(key, i)
    return out


def test_uniforms_are_uniform_and_uncorrelated():
    n = 200_000
    for key in KEYS:
        u = _uniforms(key, n)
        assert 0 < u.min() and u.max() < 1
        counts = np.histogram(u, bins=100, range=(0, 1))[0]
        assert stats.chisquare(counts).pvalue > 1e-3
        assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 4 / np.sqrt(n)
    # neighbouring keys (draws) are not correlated either
    a, b = _uniforms(np.uint64(1), n), _uniforms(np.uint64(2), n)
    assert abs(np.corrcoef(a, b)[0, 1]) < 4 / np.sqrt(n)


@pytest.mark.parametrize(
    "param, reference",
    [
        ({"uniform": [0.5, 2]}, stats.uniform(0.5, 1.5)),
        ({"triangular": [7, 8, 12]}, stats.triang(0.2, loc=7, scale=5)),
        ({"triangular": [7, 7, 12]}, stats.triang(0.0, loc=7, scale=5)),
        (
            {"lognormal": {"median": 9, "p90": 13}},
            stats.lognorm(np.log(13 / 9) / Z90, scale=9),
        ),
        ({"beta": [4, 96]}, stats.beta(4, 96)),
        ({"beta": [0.5, 0.7]}, stats.beta(0.5, 0.7)),  # shapes below 1: boosted gammas
    ],
)
def test_lot_to_lot_draws_follow_the_process_distribution(param, reference):
    (kind, args), _ = lot_distribution(Param.parse(param), np.zeros(1))
    values = _lots(kind, args, 0.0, KEYS[0], 50_000)
    assert stats.kstest(values, reference.cdf).pvalue > 1e-3
    assert values.mean() == pytest.approx(Param.parse(param).mean, rel=0.02)


def test_exponential_and_fixed_service():
    values = _lots(f.EXPONENTIAL, np.zeros(3), 7.0, KEYS[1], 50_000)
    assert stats.kstest(values, stats.expon(scale=7).cdf).pvalue > 1e-3
    fixed = _lots(f.FIXED, np.zeros(3), 7.0, KEYS[1], 10)
    np.testing.assert_array_equal(fixed, 7.0)
    (kind, _), per_draw = lot_distribution(Param.fixed(9), np.array([8.0, 10.0]))
    assert kind == f.FIXED
    np.testing.assert_array_equal(per_draw, 9.0)  # a fixed lot value, not the draw's mean


def test_arrivals_are_sorted_uniform_order_statistics_per_month():
    months = pd.date_range("2027-01-01", periods=12, freq="MS")
    starts = (months - months[0]).days.to_numpy(float)
    days = months.days_in_month.to_numpy(float)
    draws, n = 2000, 30
    counts = np.full((draws, 12), n, np.int64)
    counts[:, 5] = 0  # an empty month
    ppq = np.zeros_like(counts)
    ppq[::7, 3] = 4  # PPQ lots in some cells (drawn and sorted there)
    keys = np.random.default_rng(3).integers(0, 2**64, size=draws, dtype=np.uint64)
    n_jobs = int((counts + ppq).sum(axis=1).max())
    arrivals, is_ppq = _queue.arrivals(counts, ppq, starts, days, keys, n_jobs)
    finite = np.isfinite(arrivals)
    np.testing.assert_array_equal(finite.sum(axis=1), (counts + ppq).sum(axis=1))
    assert (np.diff(np.where(finite, arrivals, 1e9), axis=1) >= 0).all()  # sorted per draw
    month = np.searchsorted(starts + days, np.where(finite, arrivals, 1e9), side="right")
    for m in range(12):
        np.testing.assert_array_equal((month == m).sum(axis=1), counts[:, m] + ppq[:, m])
        np.testing.assert_array_equal(((month == m) & is_ppq).sum(axis=1), ppq[:, m])
    # within a month: uniform, and the k-th of n has mean k / (n + 1) (Beta(k, n + 1 - k))
    plain = ppq.sum(axis=1) == 0
    first = arrivals[plain, :n]  # month 0: the first 30 jobs
    u = (first - starts[0]) / days[0]
    assert stats.kstest(u.ravel(), "uniform").pvalue > 1e-3
    for k in (1, 15, 30):
        beta = stats.beta(k, n + 1 - k)
        values = u[:, k - 1]
        assert abs(values.mean() - beta.mean()) < 4 * beta.std() / np.sqrt(len(values))
    # PPQ lots are placed at random among their cell's 34 jobs: mean rank 16.5
    cell = (month == 3) & (np.arange(draws)[:, None] % 7 == 0)
    rank = np.cumsum(cell, axis=1) - 1
    ranks = rank[cell & is_ppq]
    assert abs(ranks.mean() - 16.5) < 4 * np.sqrt((34**2 - 1) / 12 / len(ranks))


def _demand_with_everything(draws=40):
    """Patients of two streams and PPQ lots, with an opening state: every random part used."""
    rng = np.random.default_rng(0)
    values = np.zeros((draws, 18, 1, 3), np.int64)
    values[..., 0] = rng.poisson(25, (draws, 18, 1))
    values[..., 1] = rng.poisson(10, (draws, 18, 1))
    values[:, 4:6, :, 2] = 3
    return make_demand(values)


PROCESS = fixed_process(
    culture_days={"triangular": [7, 8, 12]},
    changeover_days={"uniform": [0.5, 2]},
    failure_rate={"beta": [10, 90]},
    max_remanufacture=2,
)


def test_output_does_not_depend_on_the_number_of_threads():
    demand = _demand_with_everything()
    kw = {"seed": 4, "qc_fte": 0.3, "opening": 20, "max_wait_days": 5}
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = simulate_facility(demand, PROCESS, 12, **kw)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = simulate_facility(demand, PROCESS, 12, **kw)
    finally:
        numba.set_num_threads(before)
    xr.testing.assert_identical(one, many)
    again = simulate_facility(demand, PROCESS, 12, **kw)
    xr.testing.assert_identical(one, again)
    other = simulate_facility(demand, PROCESS, 12, **{**kw, "seed": 5})
    assert not np.array_equal(one["wait_mean_days"], other["wait_mean_days"], equal_nan=True)


def _cryopreserved_prep():
    """The facility of every feature, cryopreserved (nobody turned away), as the service-level
    search prepares it."""
    return prepare_facility(
        _demand_with_everything(),
        PROCESS,
        qc_fte=0.3,
        max_wait_days=None,
        cryopreserved=True,
        wait_threshold_days=2.0,
        service="process",
        seed=2,
        opening=None,
    )


def test_draws_run_alone_see_the_same_lots_as_draws_run_together():
    """Service-level sizing reruns only its unsettled draws, with other facility sizes: each
    draw's lots must not depend on which draws run with it or on the facility."""
    prep = _cryopreserved_prep()
    online = np.zeros((prep.draws, 10))
    monthly, waits = run_queue(prep, online)
    idx = np.array([3, 17, 29])
    sizes = np.where(np.arange(10)[None, :] < np.array([[10], [6], [8]]), 0.0, np.inf)
    m_some, w_some = run_queue(prep, sizes, idx)
    np.testing.assert_array_equal(m_some[0], monthly[3])  # the same size: the same result
    np.testing.assert_array_equal(w_some[0], waits[3])
    # a smaller facility: the same patients and lots, so never a shorter wait
    assert (np.nan_to_num(w_some[1], nan=0) >= np.nan_to_num(waits[17], nan=0) - 1e-9).all()


def test_a_run_stopped_at_its_late_limit_is_the_same_run_up_to_the_stop():
    """``late_limit``: a draw stops right after its (limit + 1)-th late patient counted from
    the start; every wait before is the full run's, every later one is nan, so the late
    count is limit + 1 exactly (service-level sizing reads it as a failure)."""
    prep = _cryopreserved_prep()
    online = np.where(np.arange(4)[None, :] < 1, 0.0, np.full((prep.draws, 4), np.inf))
    _, full = run_queue(prep, online)
    counted = np.isfinite(prep.arrivals) & (prep.arrivals >= prep.starts[prep.n_hist])
    late_full = (counted & (full > 2.0)).sum(axis=1)
    assert late_full.max() >= 5  # one suite: enough late patients to stop early
    limit = np.floor(late_full / 2) + 0.5  # stops halfway through its late patients
    limit[0] = np.inf  # draw 0 is never stopped
    _, stopped = run_queue(prep, online, late_limit=limit)
    np.testing.assert_array_equal(stopped[0], full[0])
    for d in range(1, prep.draws):
        late = counted[d] & (stopped[d] > 2.0)
        assert late.sum() == min(late_full[d], np.floor(limit[d]) + 1), d
        if late_full[d] <= limit[d]:  # never reached: the whole run
            np.testing.assert_array_equal(stopped[d], full[d])
            continue
        # the stop: the (limit + 1)-th late patient in arrival order; all before it as in
        # the full run, none after it simulated
        order = np.argsort(prep.arrivals[d], kind="stable")
        late_in_order = np.flatnonzero((counted[d] & (full[d] > 2.0))[order])
        last = order[: late_in_order[int(np.floor(limit[d]))] + 1]
        rest = order[late_in_order[int(np.floor(limit[d]))] + 1 :]
        np.testing.assert_array_equal(stopped[d][last], full[d][last])
        assert np.isnan(stopped[d][rest]).all()


def _fcfs_reference(arrivals, online, service):
    """Waits of first-come-first-served patients on slots coming online at ``online``."""
    free = sorted(online)
    waits = []
    for a in arrivals:
        slot_free = heapq.heappop(free)
        start = max(a, slot_free)
        waits.append(start - a)
        heapq.heappush(free, start + service)
    return np.array(waits)


@pytest.mark.parametrize("suites", [3, 64, "growing"])
def test_queue_matches_a_plain_fcfs_reference(suites):
    """Fixed 10-day lots (9 culture + 1 changeover), no failures: waits equal a heapq FCFS
    queue, with few slots, many slots and a module coming online later."""
    months = pd.date_range("2027-01-01", periods=6, freq="MS")
    rng = np.random.default_rng(1)
    per_month = 150 if suites != 3 else 8
    demand = make_demand(rng.poisson(per_month, (5, 6)))
    if suites == "growing":
        suites = pd.Series([20, 20, 40, 40, 60, 60], index=months)
    sim = simulate_facility(demand, fixed_process(failure_rate=0.0), suites, seed=3)
    online = slot_online_days(suites, months, 1)
    for d in range(5):
        arrivals = sim["patient_arrival_day"].values[d]
        keep = np.isfinite(arrivals)
        want = _fcfs_reference(arrivals[keep], online, 10.0)
        np.testing.assert_allclose(sim["patient_wait_days"].values[d][keep], want, atol=1e-9)


def test_each_months_jobs_take_that_months_process_labels():
    """``job_processes``: the jobs of month m (laid out one month after another, PPQ lots
    among them) carry exactly month m's process counts, whatever the shuffle."""
    counts = np.array([[[3, 1], [0, 2], [2, 2]]])  # (draw, month, process)
    ppq = np.zeros_like(counts)
    ppq[0, 2, 1] = 1  # one PPQ lot of process 1 in the third month
    sizes = (counts + ppq).sum(axis=2)[0]  # 4, 2, 5 jobs
    is_ppq = np.zeros((1, sizes.sum()), bool)
    is_ppq[0, 4 + 2 + 3] = True  # the third month's fourth job
    out = _queue.job_processes(counts, ppq, is_ppq, np.array([5], np.uint64))
    edges = np.r_[0, np.cumsum(sizes)]
    for m in range(3):
        jobs = out[0, edges[m] : edges[m + 1]]
        patients = jobs[~is_ppq[0, edges[m] : edges[m + 1]]]
        assert np.bincount(patients, minlength=2).tolist() == counts[0, m].tolist()
    assert out[0, 9] == 1  # the PPQ lot keeps its process
