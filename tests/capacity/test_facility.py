"""Facility simulation against queueing closed forms, Little's law and monotonicity."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from capacity import InputError, describe, simulate_facility, suites_for_service_level
from capacity.simulation import erlang_c_wait_probability
from tests.helpers import fixed_process, make_demand

MONTHS = pd.date_range("2027-01-01", periods=36, freq="MS")
SEVEN_DAYS = fixed_process(culture_days=7, changeover_days=0, failure_rate=0.0)


def poisson_demand(per_year, draws, seed=0, months=36):
    rng = np.random.default_rng(seed)
    days = MONTHS[:months].days_in_month.to_numpy()
    return make_demand(rng.poisson(per_year / 365 * days[None, :], size=(draws, months)))


def steady_wait_share(sim, t_days, warmup_days=90):
    """Per-draw share of patients (arriving after warm-up) waiting > t, and its MC error."""
    waits, arrivals = sim["patient_wait_days"].values, sim["patient_arrival_day"].values
    keep = (arrivals > warmup_days) & ~np.isnan(waits)
    per_draw = np.array([(w[k] > t_days).mean() for w, k in zip(waits, keep, strict=True)])
    return per_draw.mean(), per_draw.std(ddof=1) / np.sqrt(len(per_draw))


def test_erlang_c_closed_form_matches_the_sizing_in_process_parameters():
    # data/process_parameters.md: M/M/c, 7-day service, P(wait > 2 days) with 8 slots at
    # 200 patients/year and 46 slots at 2,000/year; Erlang C, P(W > t) = C(c, a)
    # exp(-(c - a) t / s) with a = lambda s (Kleinrock, Queueing Systems I, 1975, sec. 3.5)
    assert erlang_c_wait_probability(200 / 365, 7, 8, 2) == pytest.approx(0.0146, abs=0.0005)
    assert erlang_c_wait_probability(2000 / 365, 7, 46, 2) == pytest.approx(0.0186, abs=0.0005)


@pytest.mark.parametrize(("per_year", "slots", "draws"), [(200, 8, 1000), (2000, 46, 150)])
def test_exponential_service_matches_erlang_c(per_year, slots, draws):
    sim = simulate_facility(
        poisson_demand(per_year, draws), SEVEN_DAYS, slots, service="exponential", seed=3
    )
    share, se = steady_wait_share(sim, 2.0)
    expected = erlang_c_wait_probability(per_year / 365, 7, slots, 2.0)
    assert abs(share - expected) < 4 * se + 0.001, (share, expected, se)


def test_fixed_service_waits_less_and_littles_law_holds():
    demand = poisson_demand(600, 400, seed=1)
    fixed = simulate_facility(demand, SEVEN_DAYS, 17, service="fixed", seed=2)
    expo = simulate_facility(demand, SEVEN_DAYS, 17, service="exponential", seed=2)
    assert steady_wait_share(fixed, 2.0)[0] <= steady_wait_share(expo, 2.0)[0]
    assert np.nanmean(fixed["wait_mean_days"][:, 3:]) <= np.nanmean(expo["wait_mean_days"][:, 3:])
    # Little: mean slots busy = arrivals per day x days in slot (7), away from the edges;
    # within 4 standard errors of the mean over draws
    busy = fixed["slots_busy"][:, 3:-1].mean("month").values
    se = busy.std(ddof=1) / np.sqrt(busy.size)
    assert abs(busy.mean() - 600 / 365 * 7) < 4 * se, (busy.mean(), se)
    util = fixed["slot_utilisation"][:, 3:-1].mean("month").values
    np.testing.assert_allclose(util, busy / 17, rtol=1e-9)  # 17 slots online all along


def test_more_suites_never_increase_waits():
    demand = poisson_demand(500, 60, seed=4)
    # lot-to-lot culture times; no failures (a re-run arriving earlier could pass a patient)
    spec = fixed_process(culture_days={"triangular": [7, 9, 14]}, failure_rate=0.0)
    waits = [
        simulate_facility(demand, spec, c, seed=5, cryopreserved=True)["patient_wait_days"].values
        for c in (8, 9, 10, 12)
    ]
    for fewer, more in zip(waits, waits[1:], strict=False):
        assert np.all(np.nan_to_num(more) <= np.nan_to_num(fewer) + 1e-9)


def test_module_online_earlier_never_loses_more_patients():
    demand = poisson_demand(500, 200, seed=6)
    spec = fixed_process(culture_days=9, failure_rate=0.0)
    late = pd.Series(np.where(MONTHS >= "2028-07-01", 16, 10), index=MONTHS)
    early = pd.Series(np.where(MONTHS >= "2028-01-01", 16, 10), index=MONTHS)
    lost_late = simulate_facility(demand, spec, late, max_wait_days=3, seed=7)["patients_lost"]
    lost_early = simulate_facility(demand, spec, early, max_wait_days=3, seed=7)["patients_lost"]
    # pathwise a served patient can push a later one over the limit, so compare totals
    assert float(lost_early.sum()) < float(lost_late.sum())
    # nothing changes for patients who arrive more than max_wait_days before the module
    before = MONTHS < "2027-12-01"
    np.testing.assert_array_equal(lost_early[:, before], lost_late[:, before])
    # while only the early plan has 16 suites, it loses fewer in every month, by far
    between = (MONTHS >= "2028-01-01") & (MONTHS < "2028-07-01")
    early_total = lost_early[:, between].sum("draw").values
    late_total = lost_late[:, between].sum("draw").values
    assert np.all(early_total < 0.2 * late_total), (early_total, late_total)


def test_fresh_material_is_lost_and_cryopreserved_waits():
    demand = make_demand(np.full((50, 3), 60))
    spec = fixed_process(culture_days=10, changeover_days=0, failure_rate=0.0)
    fresh = simulate_facility(demand, spec, 10, max_wait_days=1, seed=1)
    cryo = simulate_facility(demand, spec, 10, max_wait_days=1, cryopreserved=True, seed=1)
    assert float(fresh["patients_lost"].sum()) > 0
    assert float(cryo["patients_lost"].sum()) == 0
    assert float(cryo["wait_mean_days"].mean()) > float(fresh["wait_mean_days"].mean())
    served = fresh["patient_wait_days"].values
    assert np.nanmax(served) <= 1 + 1e-9


def test_remanufacture_requeues_and_loses_after_the_last_attempt():
    demand = make_demand(np.full((400, 6), 20))
    never = fixed_process(failure_rate=1.0, max_remanufacture=2)
    sim = simulate_facility(demand, never, 50, seed=2)
    # every patient fails three times and is lost, in the month the patient arrived
    np.testing.assert_array_equal(sim["patients_lost"], 20.0)
    np.testing.assert_array_equal(sim["patients"], 20.0)
    assert np.isnan(sim["release_days_mean"]).all()
    some = fixed_process(failure_rate=0.1, max_remanufacture=1)
    sim = simulate_facility(demand, some, 50, seed=2)
    patients = float(sim["patients"].sum())
    lost_share = float(sim["patients_lost"].sum()) / patients
    assert abs(lost_share - 0.01) < 4 * np.sqrt(0.01 * 0.99 / patients)  # fails twice: 0.1**2
    # no waits: released after 9 + 14 days, or after a re-run at 23 + 23 days; a released
    # patient was re-run with probability 0.09 / 0.99
    release = sim["release_days_mean"].values
    expected = 23 + 23 * 0.09 / 0.99
    assert abs(release.mean() - expected) < 4 * release.std() / np.sqrt(release.size)


def test_qc_queue_and_release_time():
    demand = make_demand(np.full((20, 4), 30))
    spec = fixed_process(culture_days=9, changeover_days=1, failure_rate=0.0)
    ample = simulate_facility(demand, spec, 40, seed=1)
    # no slot wait, no QC queue: release = apheresis + culture 9 + sterility 14 days
    np.testing.assert_allclose(ample["release_days_mean"], 23, atol=1e-9)
    np.testing.assert_array_equal(ample["qc_wait_mean_days"], 0)
    np.testing.assert_array_equal(ample["wait_mean_days"], 0)
    # 30 lots a month x 1.53 analyst hours against 0.05 FTE (1650 h a year): 6.77 days of QC
    # a lot, FIFO by harvest (arrival + 9): QC start_k = max(harvest_k, start_(k-1) + work)
    short = simulate_facility(demand, spec, 40, qc_fte=0.05, seed=1)
    work = 1.5 * 1.02 / (0.05 * 1650 / 365)
    edges = np.r_[0, np.cumsum(pd.DatetimeIndex(demand["month"].values).days_in_month)]
    for d in range(20):
        arrival = short["patient_arrival_day"].values[d]
        harvest = arrival + 9
        qc_start = harvest.copy()
        for k in range(1, len(qc_start)):
            qc_start[k] = max(harvest[k], qc_start[k - 1] + work)
        month = np.searchsorted(edges, arrival, side="right") - 1
        per_month = np.bincount(month, qc_start - harvest, 4) / 30
        np.testing.assert_allclose(short["qc_wait_mean_days"][d], per_month, atol=1e-9)
        np.testing.assert_allclose(short["release_days_mean"][d], per_month + 23, atol=1e-9)
    assert float(short["qc_wait_mean_days"][:, -1].mean()) > 100  # the queue builds up


def test_same_seed_same_result_and_bad_input():
    demand = poisson_demand(300, 20, seed=1)
    a = simulate_facility(demand, "car-t-autologous-manual", 6, seed=3)
    b = simulate_facility(demand, "car-t-autologous-manual", 6, seed=3)
    assert a.identical(b)
    with pytest.raises(InputError, match="can only grow"):
        simulate_facility(demand, SEVEN_DAYS, pd.Series([5] * 20 + [4] * 16, index=MONTHS))
    with pytest.raises(InputError, match="service must be"):
        simulate_facility(demand, SEVEN_DAYS, 5, service="gamma")
    with pytest.raises(InputError, match="no suites"):
        simulate_facility(demand, SEVEN_DAYS, 0)


def test_suites_for_service_level_matches_erlang_c_sizing():
    # M/M/c with 200 patients/year, 7 days: P(wait > 2 days) <= 2% needs 8 slots
    # (process_parameters.md); with fixed 7-day service fewer or as many suffice.
    demand = poisson_demand(200, 300, seed=8)
    need = suites_for_service_level(
        demand,
        SEVEN_DAYS,
        max_wait_days=2,
        epsilon=0.02,
        candidates=range(4, 14),
        service="exponential",
        seed=9,
    )
    # Erlang C: P(wait > 2) is 4.6% with 7 slots and 1.5% with 8, so 8 is the sizing; the
    # per-draw answer scatters around it (36 months of ~600 patients)
    median = float(np.nanmedian(need["suites_needed"]))
    assert erlang_c_wait_probability(200 / 365, 7, 7, 2) > 0.02
    assert erlang_c_wait_probability(200 / 365, 7, 8, 2) <= 0.02
    assert median == 8
    fixed = suites_for_service_level(
        demand,
        SEVEN_DAYS,
        max_wait_days=2,
        epsilon=0.02,
        candidates=range(4, 14),
        service="fixed",
        seed=9,
    )
    assert fixed["suites_needed"].mean() < need["suites_needed"].mean()
    # describe's numbers, not its wording: the fewest suites meeting the level in 50% / 90% of
    # draws (inverted-CDF quantiles of suites_needed)
    sentence = describe(need)
    assert sentence.startswith("to keep 98% of patients waiting under 2 days you need")
    numbers = re.search(r"you need (\d+) suites at P50, (\d+) at P90$", sentence)
    expected = np.quantile(need["suites_needed"].values, [0.5, 0.9], method="inverted_cdf")
    assert (float(numbers[1]), float(numbers[2])) == tuple(expected)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"max_wait_days": -5}, "max_wait_days"),
        ({"wait_threshold_days": -1}, "wait_threshold_days"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_bad_simulation_arguments_are_refused_before_any_work(kwargs, words):
    from capacity import InputError
    from tests.helpers import fixed_process, make_demand

    with pytest.raises(InputError, match=words):
        simulate_facility(make_demand(np.ones((2, 3), int)), fixed_process(), 4, **kwargs)


def test_bad_service_level_and_requirements_arguments():
    from capacity import InputError, requirements
    from tests.helpers import fixed_process, make_demand

    demand = make_demand(np.ones((2, 3), int))
    with pytest.raises(InputError, match="max_wait_days"):
        suites_for_service_level(demand, fixed_process(), max_wait_days=-1)
    with pytest.raises(InputError, match="seed"):
        requirements(demand, fixed_process(), seed=-1)


def _exhaustive(demand, process, max_wait, eps, seed, sizes):
    """Brute force: simulate every size, the first that meets the level per draw / month."""
    horizon = np.full(demand.sizes["draw"], np.nan)
    by_month = np.full((demand.sizes["draw"], demand.sizes["month"]), np.nan)
    for c in sizes:
        sim = simulate_facility(
            demand,
            process,
            c,
            max_wait_days=None,
            cryopreserved=True,
            wait_threshold_days=max_wait,
            seed=seed,
        )
        waits = sim["patient_wait_days"].values
        late = np.nansum(waits > max_wait, axis=1)
        meets = late <= eps * np.isfinite(waits).sum(axis=1)
        horizon[np.isnan(horizon) & meets] = c
        counts = sim["patients"].values
        ok = sim["share_waiting_over"].fillna(0).values * counts <= eps * counts + 1e-9
        by_month[np.isnan(by_month) & ok & (counts > 0)] = c
    by_month[np.asarray(demand.values).reshape(*by_month.shape, -1).sum(-1) == 0] = 0
    return horizon, by_month


def test_service_level_sizing_never_clamps_and_matches_brute_force():
    # draws with very different demand: every draw gets the first size that meets the level
    # by brute force, the small draws below the busy ones (no shared floor), and a
    # candidate range far too small still gives the answer (not NaN)
    rng = np.random.default_rng(4)
    rate = np.r_[np.full(6, 4.0), np.full(6, 60.0)][:, None] * np.linspace(0.5, 1.5, 8)[None]
    demand = make_demand(rng.poisson(rate))
    process = fixed_process(changeover_days=1)
    got = suites_for_service_level(demand, process, max_wait_days=2.0, epsilon=0.05, seed=3)
    horizon, by_month = _exhaustive(demand, process, 2.0, 0.05, 3, range(1, 60))
    np.testing.assert_array_equal(got["suites_needed"].values, horizon)
    np.testing.assert_array_equal(got["suites_needed_by_month"].values, by_month)
    assert got["suites_needed"].values[:6].max() < 8 < got["suites_needed"].values[6:].min()
    assert isinstance(got.attrs["candidates"], list)
    assert 2 <= got.attrs["queue_runs_per_draw"] < 30  # bisection, not all 59 sizes
    # a candidate range that is far too small only sets where the search starts
    small = suites_for_service_level(
        demand, process, max_wait_days=2.0, epsilon=0.05, seed=3, candidates=[1, 2]
    )
    np.testing.assert_array_equal(small["suites_needed"].values, horizon)


def test_horizon_sizing_from_any_guess_matches_brute_force():
    # by_month=False searches each draw from its own guess (galloping, then bisection): a
    # wrong step rule would settle a draw on a size that is not the first to meet, or loop.
    # Guesses far too low, far too high, exact, 1, and mixed must all give the brute force.
    rng = np.random.default_rng(4)
    rate = np.r_[np.full(6, 4.0), np.full(6, 60.0)][:, None] * np.linspace(0.5, 1.5, 8)[None]
    demand = make_demand(rng.poisson(rate))
    process = fixed_process(changeover_days=1)
    horizon, _ = _exhaustive(demand, process, 2.0, 0.05, 3, range(1, 60))
    kw = {"max_wait_days": 2.0, "epsilon": 0.05, "seed": 3, "by_month": False}
    guesses = {
        "default": None,
        "exact": horizon,
        "ones": np.ones(12),
        "far above": horizon * 5 + 7,
        "just below": horizon - 1,
        "mixed": np.where(np.arange(12) % 2, 1, 90),
        "fractional": horizon * 0.8 + 0.3,
    }
    for name, start in guesses.items():
        got = suites_for_service_level(demand, process, start=start, **kw)
        np.testing.assert_array_equal(got["suites_needed"].values, horizon, err_msg=name)
        assert "suites_needed_by_month" not in got
    exact = suites_for_service_level(demand, process, start=horizon, **kw)
    far = suites_for_service_level(demand, process, start=horizon * 5 + 7, **kw)
    # the default guess (each draw's busiest month by Little's law) saves runs over 1
    default = suites_for_service_level(demand, process, **kw)
    ones = suites_for_service_level(demand, process, start=np.ones(12), **kw)
    assert default.attrs["queue_runs"] < ones.attrs["queue_runs"]
    # from the answer itself: a run to meet it, one a step (10%) below to fail, then
    # bisection of that step (at most 6 suites here: 3 runs)
    assert horizon.max() <= 60 and exact.attrs["queue_runs_per_draw"] <= 5
    assert exact.attrs["queue_runs"] < far.attrs["queue_runs"]
    with pytest.raises(InputError, match="one guess per draw"):
        suites_for_service_level(demand, process, start=np.ones(3), **kw)
    # a NaN guess is refused; a guess above the largest size tried still finds the answer
    with pytest.raises(InputError, match="finite"):
        suites_for_service_level(demand, process, start=np.r_[np.nan, np.ones(11)], **kw)
    huge = suites_for_service_level(demand, process, start=np.full(12, 5e6), **kw)
    np.testing.assert_array_equal(huge["suites_needed"].values, horizon)


def test_p95_wait_is_the_interpolated_95th_percentile_of_the_months_patients():
    # wait_p95_days: NumPy's linear interpolation over the waits of the month's patients
    rng = np.random.default_rng(2)
    demand = make_demand(rng.poisson(40, size=(20, 4)))
    sim = simulate_facility(demand, fixed_process(changeover_days=1), 12, seed=5)
    waits = sim["patient_wait_days"].values
    day = sim["patient_arrival_day"].values
    starts = (sim["month"].values - sim["month"].values[0]) / np.timedelta64(1, "D")
    ends = np.r_[starts[1:], starts[-1] + 31]
    for d in range(3):
        for m in range(4):
            inside = (day[d] >= starts[m]) & (day[d] < ends[m]) & ~np.isnan(waits[d])
            want = np.percentile(waits[d, inside], 95)
            assert sim["wait_p95_days"].values[d, m] == pytest.approx(want)


def test_a_wait_equal_to_the_limit_is_served():
    # a wait equal to max_wait_days (0 here: idle suites, every wait 0) is served, not lost
    demand = make_demand(np.full((5, 3), 10))
    sim = simulate_facility(demand, fixed_process(), 200, max_wait_days=0.0, seed=1)
    assert sim["patients_lost"].values.sum() == 0
    assert sim["share_waiting_over"].values.max() == 0
    with pytest.raises(InputError, match="max_wait_days"):
        simulate_facility(demand, fixed_process(), 4, max_wait_days=-1)  # the internal sentinel


def test_given_process_params_are_the_ones_simulated():
    # params= replaces the facility's own draw of the process parameters: the default's
    # rows give the same facility, another draw's rows a different one, and a mismatch
    # in draws or fields is refused
    import xarray as xr

    from capacity.process import stream_rng

    rng = np.random.default_rng(8)
    demand = make_demand(rng.poisson(30, size=(40, 6)))
    process = fixed_process(changeover_days=1)
    own = process.sample(40, stream_rng(3, "facility-process", process.name))
    base = simulate_facility(demand, process, 14, seed=3)
    same = simulate_facility(demand, process, 14, seed=3, params=own)
    xr.testing.assert_identical(base, same)
    failing = own.copy()
    failing["failure_rate"] = xr.full_like(own["failure_rate"], 0.5)
    worse = simulate_facility(demand, process, 14, seed=3, params=failing)
    assert worse["patients_lost"].sum() > base["patients_lost"].sum()
    with pytest.raises(InputError, match="one row per demand draw"):
        simulate_facility(demand, process, 14, seed=3, params=own.isel(draw=slice(0, 10)))
    with pytest.raises(InputError, match="Dataset of process.sample"):
        simulate_facility(demand, process, 14, seed=3, params=own["failure_rate"].values)
    flipped = own.transpose("assay", "draw")  # the dimension order does not matter
    xr.testing.assert_identical(
        simulate_facility(demand, process, 14, seed=3, params=flipped), base
    )
    with pytest.raises(InputError, match="missing failure_rate"):
        simulate_facility(demand, process, 14, seed=3, params=own.drop_vars("failure_rate"))


def test_opening_simulates_history_with_the_first_months_suites():
    # with an opening state and suites that grow by month (a list or a Series), the months
    # simulated before the start have the first month's suites. 1 suite in January, 3 from
    # February; 10 opening lots a month in the two months before (a lot holds its slot
    # 9 + 1 days; longest lot 24 days: 2 months)
    spec = fixed_process(culture_days=9, changeover_days=1, failure_rate=0.0)
    demand = make_demand(np.full((4, 3), 2))
    months = pd.DatetimeIndex(demand["month"].values)
    kw = {"opening": 10, "cryopreserved": True, "seed": 4}
    by_list = simulate_facility(demand, spec, [1, 3, 3], **kw)
    by_series = simulate_facility(demand, spec, pd.Series([1, 3, 3], index=months), **kw)
    assert by_list.identical(by_series)
    assert by_list.sizes["month"] == 3 and by_list.attrs["slots_installed_max"] == 3
    # 20 opening lots = 200 slot-days of work by Dec 31 on 1 slot from Nov 1: at most 92
    # slot-days done by Feb 1, so the one January slot is busy all month, and the >= 108
    # left (> 3 x 28) keep all three February slots busy
    np.testing.assert_array_equal(by_list["slots_busy"].values[:, :2], [[1.0, 3.0]] * 4)
    np.testing.assert_array_equal(by_list["slot_utilisation"].values[:, :2], 1.0)
    # the same as simulating the history months as demand, with the suites written out
    history = np.c_[np.full((4, 2), 10), np.full((4, 3), 2)]
    explicit = simulate_facility(
        make_demand(history, start="2026-11-01"), spec, [1, 1, 1, 3, 3], cryopreserved=True, seed=4
    ).isel(month=slice(2, None))
    for name in ("slots_busy", "slot_utilisation", "wait_mean_days", "patients", "patients_lost"):
        np.testing.assert_array_equal(by_list[name].values, explicit[name].values, err_msg=name)
    # patients of the horizon (20 opening patients first, then 6): same waits, days from Jan 1
    waits = by_list["patient_wait_days"].values
    assert np.isnan(waits[:, :20]).all() and np.isfinite(waits[:, 20:]).all()
    np.testing.assert_array_equal(waits[:, 20:], explicit["patient_wait_days"].values[:, 20:])
    np.testing.assert_allclose(
        by_list["patient_arrival_day"].values[:, 20:],
        explicit["patient_arrival_day"].values[:, 20:] - 61,  # Nov + Dec 2026
    )
    # the prepended months themselves: two months before the start, at the first value
    from capacity.simulation import extend_suites

    np.testing.assert_array_equal(extend_suites([1, 3, 3], months, 2), [1, 1, 1, 3, 3])
    extended = extend_suites(pd.Series([1, 3, 3], index=months), months, 2)
    assert list(extended.index) == list(pd.date_range("2026-11-01", periods=5, freq="MS"))
    assert extended.tolist() == [1, 1, 1, 3, 3]
    assert extend_suites(5, months, 2) == 5


# ---- each program's lots made with its own process -----------------------------------------

TEN_DAYS = fixed_process(name="ten", culture_days=10, changeover_days=0)
FIVE_DAYS = fixed_process(name="five", culture_days=5, changeover_days=0)
TEN_DAYS_TOO = fixed_process(name="ten-too", culture_days=10, changeover_days=0)


def _hand_queue(arrivals, programs, slots, process_of):
    """Prepare a one-draw facility, then fix its arrivals and each job's process by hand."""
    from capacity.simulation import prepare_facility, run_queue

    counts = np.zeros((1, 1, 2, 1), int)
    for p in programs:
        counts[0, 0, p, 0] += 1
    prep = prepare_facility(
        make_demand(counts, programs=["A", "B"]),
        process_of,
        qc_fte=None,
        max_wait_days=None,
        cryopreserved=True,
        wait_threshold_days=0.0,
        service="process",
        seed=1,
        opening=None,
    )
    assert [s.name for s in prep.processes] == [process_of["A"].name, process_of["B"].name]
    prep.arrivals = np.array([arrivals], float)
    prep.job_process = np.array([programs], np.int64)
    prep.is_ppq = np.zeros((1, len(arrivals)), bool)
    _, waits = run_queue(prep, np.zeros((1, slots)))
    return waits[0]


def test_each_lot_holds_its_slot_for_its_own_process_by_hand():
    # jobs (arrival day, program): (0, A), (0, A), (2, B), (4, B), (6, A); A lots take 10
    # days, B lots 5, two slots, first come first served:
    #   A@0 -> slot 1, days 0-10; A@0 -> slot 2, 0-10; B@2 waits to 10 (8), 10-15;
    #   B@4 waits to 10 (6), 10-15; A@6 waits to 15 (9)
    arrivals, programs = [0, 0, 2, 4, 6], [0, 0, 1, 1, 0]
    own = _hand_queue(arrivals, programs, 2, {"A": TEN_DAYS, "B": FIVE_DAYS})
    np.testing.assert_array_equal(own, [0, 0, 8, 6, 9])
    # every lot 10 days: B@2 and B@4 wait to 10 (8, 6), end at 20; A@6 waits to 20 (14)
    slow = _hand_queue(arrivals, programs, 2, {"A": TEN_DAYS, "B": TEN_DAYS_TOO})
    np.testing.assert_array_equal(slow, [0, 0, 8, 6, 14])
    # one slot: A 0-10, A 10-20 (10), B 20-25 (18), B 25-30 (21), A 30-40 (24)
    one = _hand_queue(arrivals, programs, 1, {"A": TEN_DAYS, "B": FIVE_DAYS})
    np.testing.assert_array_equal(one, [0, 10, 18, 21, 24])


def test_a_lot_of_a_process_with_fewer_lots_per_suite_holds_more_slots_by_hand():
    # A: 1 lot per suite, B: 2, so a suite has 2 slots, an A lot holds both and a B lot one.
    # One suite; jobs B@0, A@1, B@2, each 10 days, strictly first come first served:
    # B@0 takes a slot 0-10; A@1 needs both, starts at 10 (waits 9), ends 20; B@2 waits
    # behind it to 20 (18) although the second slot is idle from day 0 to 10
    half = fixed_process(name="half", culture_days=10, changeover_days=0, lots_per_suite=2)
    waits = _hand_queue([0, 1, 2], [1, 0, 1], 2, {"A": TEN_DAYS, "B": half})
    np.testing.assert_array_equal(waits, [0, 9, 18])


def test_service_level_sizes_each_program_with_its_own_process_by_hand():
    # one month: 6 lots of A (1 lot per suite) and 10 of B (2 lots per suite, so half the
    # suite-days), every lot 40 days: all lots of the month overlap, so nobody waits iff the
    # facility holds them all at once: 6 + 10 / 2 = 11 suites (A's process for every lot:
    # 16; B's: 8)
    slow = fixed_process(name="slow", culture_days=40, changeover_days=0)
    fast = fixed_process(name="fast", culture_days=40, changeover_days=0, lots_per_suite=2)
    counts = np.zeros((5, 1, 2), int)
    counts[..., 0], counts[..., 1] = 6, 10
    demand = make_demand(counts, programs=["A", "B"])
    kw = dict(max_wait_days=0.0, epsilon=0.01, seed=4)

    def need(process):
        return suites_for_service_level(demand, process, **kw)["suites_needed"].values

    np.testing.assert_array_equal(need({"A": slow, "B": fast}), 11)
    np.testing.assert_array_equal(need(slow), 16)
    np.testing.assert_array_equal(need(fast), 8)


def test_mixed_processes_need_fewer_suites_than_the_slower_and_more_than_the_faster():
    # the bundled processes: the automated one runs 4 lots per suite for 12-13 days, the
    # manual one 1 for 7-12 days; half the patients on each
    rng = np.random.default_rng(3)
    demand = make_demand(rng.poisson(12, size=(30, 12, 2)), programs=["A", "B"])
    kw = dict(max_wait_days=2.0, epsilon=0.05, seed=2, by_month=False)
    manual, automated = "car-t-autologous-manual", "car-t-autologous-automated"

    def p50(process):
        need = suites_for_service_level(demand, process, **kw)["suites_needed"].values
        return np.quantile(need, 0.5, method="inverted_cdf")

    mixed = p50({"A": manual, "B": automated})
    assert p50(automated) < mixed < p50(manual)


def test_one_process_for_every_program_gives_the_single_process_results():
    # a mapping naming one process for every program is that process: the same random
    # streams, so the same facility to the last bit; and the numbers are those of the
    # single-process simulation before lots carried their own process (pinned)
    rng = np.random.default_rng(0)
    demand = make_demand(rng.poisson(6, size=(10, 12, 2, 3)), programs=["A", "B"])
    spec = "car-t-autologous-manual"
    one = simulate_facility(demand, spec, 5, seed=1, qc_fte=0.5)
    same = simulate_facility(demand, {"A": spec, "*": spec}, 5, seed=1, qc_fte=0.5)
    xr.testing.assert_identical(one, same)
    assert float(one["patient_wait_days"].sum()) == pytest.approx(PINNED_WAIT_SUM, rel=1e-12)
    need = suites_for_service_level(demand, {"A": spec, "B": spec}, seed=1, by_month=False)
    np.testing.assert_array_equal(need["suites_needed"].values, PINNED_NEED)


# simulate_facility and suites_for_service_level of the test above on the code before lots
# carried their own process (one process for the whole facility)
PINNED_WAIT_SUM = 750164.1963067474
PINNED_NEED = [17, 17, 18, 15, 17, 16, 16, 16, 17, 15]
