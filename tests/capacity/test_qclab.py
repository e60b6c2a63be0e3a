"""Values of the QC laboratory (capacity.qclab): closed forms, hand-computed cases and an
independent SimPy model of the same lab."""

from __future__ import annotations

import math

import numpy as np
import pytest

from capacity import InputError, QCLab, release_days, size_lab

ALWAYS = dict(hours_per_day=24, days_per_week=7, shift_start_hour=0)  # a 24/7 roster


def _process(*assays, name="p"):
    return {"name": name, "culture_days": 8, "qc": list(assays)}


def _assay(name, hands, turnaround, instrument=None, instrument_hours=0.0, retest=0.0, tests=1):
    out = {
        "assay": name,
        "hands_on_hours": hands,
        "turnaround_days": turnaround,
        "instrument_hours": instrument_hours,
        "retest_rate": retest,
        "tests_per_lot": tests,
    }
    if instrument is not None:
        out["instrument"] = instrument
    return out


def _lab(*assays, analysts=1, instruments=None, **kw):
    kw.setdefault("monitoring_hours_per_month", 0)
    return QCLab([_process(*assays)], analysts=analysts, instruments=instruments or {}, **kw)


def _run(lab, ready, **kw):
    ready = np.atleast_2d(np.asarray(ready, float))
    keys = np.arange(1, ready.shape[0] + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    return release_days(ready, np.zeros(ready.shape, np.int64), keys, lab, **kw)


# --- hand-computed cases -------------------------------------------------------------------
def test_roster_holds_a_friday_evening_lot_until_monday():
    # 8 h from 08:00, Monday to Friday (day 0 a Monday); ready Friday 17:00 (day 4 + 17/24):
    # 2 hands-on hours start Monday 08:00 (day 7 + 8/24), end 10:00, result a day later
    lab = _lab(_assay("a", 2, 1))
    out = _run(lab, [[4 + 17 / 24]])
    assert out.release[0, 0] == pytest.approx(8 + 10 / 24, abs=1e-12)
    assert out.wait[0, 0, 0] == pytest.approx(7 + 8 / 24 - (4 + 17 / 24), abs=1e-12)


def test_hours_per_year_make_a_shorter_day():
    # 1,461 h a year over 5 days x 365.25/7 weeks = 5.6 h a day from 08:00: a 6-hour task
    # ready Monday 08:00 ends Tuesday 08:24 (5.6 h, then 0.4 h)
    lab = _lab(_assay("a", 6, 0), hours_per_year=1461)
    assert lab.working_hours_per_day == pytest.approx(5.6)
    assert _run(lab, [[8 / 24]]).release[0, 0] == pytest.approx(1 + 8.4 / 24, abs=1e-12)


def test_work_that_outlasts_the_shift_resumes_next_morning():
    # ready day 0 at 15:00 with 3 h of work: 1 h to 16:00, 2 h from 08:00 on day 1
    out = _run(_lab(_assay("a", 3, 0)), [[15 / 24]])
    assert out.release[0, 0] == pytest.approx(1 + 10 / 24, abs=1e-12)
    assert out.wait[0, 0, 0] == pytest.approx(0, abs=1e-12)


def test_two_lots_wait_for_the_analyst_then_for_the_instrument():
    # 24/7, one analyst, one instrument; lot A at day 0, lot B at day 0.1 (2.4 h)
    # analyst-bound: 12 h hands-on, 6 h instrument -> B starts at 12 h, waits 0.4 d (analyst)
    lab = _lab(_assay("a", 12, 2, "x", 6), instruments={"x": 1}, **ALWAYS)
    out = _run(lab, [[0.0, 0.1]])
    np.testing.assert_allclose(out.release[0], [0.5 + 2, 1.0 + 2], atol=1e-12)
    np.testing.assert_allclose(out.wait[0, 1], [0.4, 0.0], atol=1e-12)
    # instrument-bound: 2 h hands-on, 12 h instrument -> B has an analyst at 2.4 h and waits
    # for the instrument until 12 h: 0.4 d on the instrument, none on analysts
    lab = _lab(_assay("a", 2, 2, "x", 12), instruments={"x": 1}, **ALWAYS)
    out = _run(lab, [[0.0, 0.1]])
    np.testing.assert_allclose(out.release[0], [0.5 + 2, 1.0 + 2], atol=1e-12)
    np.testing.assert_allclose(out.wait[0, 1], [0.0, 0.4], atol=1e-12)
    assert out.resources == ("analysts", "x")


def test_monitoring_block_takes_the_analyst_and_shows_in_utilisation():
    # one 4-hour monitoring block in the middle of a 30-day month (day 15); a lot arriving an
    # hour later waits 3 h for the only analyst
    lab = _lab(_assay("a", 1, 0), **ALWAYS, monitoring_hours_per_month=4)
    out = _run(lab, [[15 + 1 / 24]], month_edges=np.array([0.0, 30.0]))
    assert out.release[0, 0] == pytest.approx(15 + 5 / 24, abs=1e-12)
    assert out.wait[0, 0, 0] == pytest.approx(3 / 24, abs=1e-12)
    assert out.utilisation[0, 0, 0] == pytest.approx(5 / (30 * 24), rel=1e-12)


def test_pure_delay_is_the_longest_assay_chain():
    # unlimited analysts and instruments, 24/7: every lot is released after the longest of
    # its assays' work (hands-on or instrument, whichever is longer) plus turnaround
    spec = _process(
        _assay("sterility", {"triangular": [1, 1.5, 3]}, 14, "incubator", 0.5),
        _assay("flow", {"uniform": [2, 5]}, {"uniform": [0.5, 2]}, "cytometer", 2, tests=2),
        _assay("count", 0, 0),
        _assay("potency", {"uniform": [4, 60]}, 13.5, "reader", {"uniform": [1, 70]}),
    )
    lab = QCLab(
        [spec],
        analysts=1,
        instruments={"incubator": 1, "cytometer": 1, "reader": 1},
        monitoring_hours_per_month=0,
        **ALWAYS,
    )
    draws, lots = 50, 20
    params = [lab.processes[0].sample(draws, 3)]
    ready = np.random.default_rng(1).uniform(0, 100, (draws, lots))
    ready[:, -1] = np.nan  # no lot
    out = _run(lab, ready, params=params, counts=np.full(4, -1))
    ds = params[0]
    work = np.maximum(ds["qc_hands_on_hours"].values, ds["qc_instrument_hours"].values)
    longest = (work / 24 + ds["qc_turnaround_days"].values).max(axis=1)
    np.testing.assert_allclose(out.release, ready + longest[:, None], rtol=0, atol=1e-9)
    assert np.isnan(out.release[:, -1]).all()
    np.testing.assert_array_equal(out.wait[:, :-1], 0)


def test_contention_only_delays_and_waits_account_for_the_delay():
    # the same lots, tests, hands-on times and retests (common random numbers) with finite
    # and unlimited resources: no lot is released earlier with contention, and on a 24/7
    # roster the critical test's waits plus its own chain (at most the longest chain)
    # make up the release time
    lab = _lab(
        _assay("s", 1, 7, "x", 3, retest=0.2),
        _assay("f", 3, 1, "y", 2, retest=0.3, tests=2),
        _assay("c", 0.5, 0),
        analysts=2,
        instruments={"x": 1, "y": 1},
        hands_on="exponential",
        **ALWAYS,
    )
    ready = np.cumsum(np.random.default_rng(6).exponential(1 / 6, (20, 150)), axis=1)
    edges = np.arange(0, 60, 30.0)
    busy = _run(lab, ready, month_edges=edges)
    free = _run(lab, ready, month_edges=edges, counts=np.full(3, -1))
    assert (busy.release >= free.release - 1e-9).all()
    assert (busy.release > free.release + 0.01).mean() > 0.3  # a loaded lab
    own_chain = busy.qc_days - busy.wait.sum(axis=2)
    assert (own_chain <= free.qc_days + 1e-9).all()
    assert (own_chain > 0).all()


def test_pure_delay_without_work_is_exact():
    lab = _lab(_assay("sterility", 0, 14), _assay("endotoxin", 0, 1))
    ready = np.array([[0.3, 17.25, 1000.125]])
    out = _run(lab, ready)
    np.testing.assert_array_equal(out.release, ready + 14)


def test_rapid_sterility_replaces_the_turnaround():
    lab = _lab(_assay("sterility", 0, 14), turnaround_days={"sterility": 7})
    assert _run(lab, [[2.0]]).release[0, 0] == 9.0


# --- closed forms ----------------------------------------------------------------------------
def _erlang_c(servers: int, offered: float) -> float:
    """P(wait > 0) in M/M/c with offered load ``offered`` = lambda / mu (Erlang C)."""
    top = offered**servers / math.factorial(servers) * servers / (servers - offered)
    return top / (sum(offered**k / math.factorial(k) for k in range(servers)) + top)


def test_analysts_only_match_erlang_c():
    # M/M/3: arrivals 1.05 an hour, exponential hands-on time of mean 2 h, 24/7 roster
    servers, rate, mean_hours = 3, 1.05, 2.0
    lab = _lab(_assay("a", mean_hours, 0), analysts=servers, hands_on="exponential", **ALWAYS)
    draws, lots, warm = 100, 1500, 150
    gaps = np.random.default_rng(5).exponential(1 / rate, (draws, lots)) / 24
    out = _run(lab, np.cumsum(gaps, axis=1))
    wait_hours = out.wait[:, warm:, 0] * 24
    c = _erlang_c(servers, rate * mean_hours)
    wq = c / (servers / mean_hours - rate)  # mean wait in hours
    per_draw = wait_hours.mean(axis=1)
    se = per_draw.std(ddof=1) / np.sqrt(draws)
    assert abs(per_draw.mean() - wq) < 4 * se, (per_draw.mean(), wq, se)
    waited = (wait_hours > 1e-9).mean(axis=1)
    se = waited.std(ddof=1) / np.sqrt(draws)
    assert abs(waited.mean() - c) < 4 * se, (waited.mean(), c, se)


@pytest.mark.parametrize("max_runs", [50, 2])
def test_retests_make_a_geometric_number_of_runs(max_runs):
    # each run takes 1 day of turnaround and fails with probability 0.3: the days to release
    # count the runs; runs ~ geometric(0.7) truncated at max_runs
    r = 0.3
    lab = _lab(_assay("a", 0, 1, retest=r), max_runs=max_runs)
    ready = np.zeros((200, 100))
    runs = _run(lab, ready).qc_days
    np.testing.assert_allclose(runs, np.round(runs), atol=1e-12)
    n = runs.size
    mean = (1 - r**max_runs) / (1 - r)
    sd = runs.std()
    assert abs(runs.mean() - mean) < 4 * sd / np.sqrt(n)
    for k in (1, 2):
        p = (1 - r) * r ** (k - 1) if k < max_runs else r ** (k - 1)
        assert abs((runs == k).mean() - p) < 4 * np.sqrt(p * (1 - p) / n)
    assert runs.max() <= max_runs


# --- an independent SimPy model ----------------------------------------------------------------
SIMPY_ASSAYS = [  # name, hands-on mean h (exponential), instrument, its hours, days, retest
    ("sterility", 1.0, "incubator", 0.5, 7.0, 0.0),
    ("flow", 3.0, "cytometer", 2.0, 1.0, 0.2),
    ("count", 0.5, "cytometer", 0.25, 0.0, 0.0),
]
SIMPY_LAB = dict(analysts=2, instruments={"incubator": 1, "cytometer": 1})
ROSTER = (8.0, 5, 8.0)  # hours a day, days a week, shift start hour
LOTS, LOTS_PER_DAY = 60, 1.2
# monitoring: 40 analyst hours and 8 cytometer hours a month, in 4-hour blocks evenly spread
# over months of 30 days
MONTH_EDGES = np.arange(0.0, 150.0, 30.0)
MONITOR_HOURS, MONITOR_CYTOMETER_HOURS, BLOCK = 40.0, 8.0, 4.0


def _monitoring_blocks():
    """(day, analyst hours, instrument, instrument hours) of every monitoring block."""
    out = []
    for start, end in zip(MONTH_EDGES[:-1], MONTH_EDGES[1:], strict=True):
        for total, kind in ((MONITOR_HOURS, None), (MONITOR_CYTOMETER_HOURS, "cytometer")):
            n = int(np.ceil(total / BLOCK))
            for i in range(n):
                day = start + (i + 0.5) * (end - start) / n
                out.append(
                    (day, total / n, None, 0.0) if kind is None else (day, 0.0, kind, total / n)
                )
    return out


def _simpy_release(ready_days: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Days from ready to release of each lot, simulated with SimPy in calendar hours."""
    import simpy

    hours, days, first = ROSTER

    def next_on_shift(t):  # earliest calendar hour >= t inside a shift
        while True:
            day = math.floor(t / 24)
            if day % 7 < days:
                opens, closes = day * 24 + first, day * 24 + first + hours
                if t < opens:
                    return opens
                if t < closes:
                    return t
            t = (day + 1) * 24

    def finish(t, work):  # calendar hour when ``work`` shift hours started at t are done
        t = next_on_shift(t)
        while True:
            closes = math.floor(t / 24) * 24 + first + hours
            if work <= closes - t:
                return t + work
            work -= closes - t
            t = next_on_shift(closes)

    env = simpy.Environment()
    analysts = simpy.Resource(env, SIMPY_LAB["analysts"])
    instruments = {k: simpy.Resource(env, n) for k, n in SIMPY_LAB["instruments"].items()}
    release = np.full(len(ready_days), -np.inf)

    def hold(resource, request, until):
        yield env.timeout(until - env.now)
        resource.release(request)

    def test(lot, assay):
        _, mean, kind, inst_hours, turnaround, retest = assay
        while True:
            got_analyst = analysts.request()
            yield got_analyst
            got_instrument = instruments[kind].request()
            yield got_instrument
            start = next_on_shift(env.now)
            analyst_done = finish(start, rng.exponential(mean))
            instrument_done = finish(start, inst_hours)
            env.process(hold(analysts, got_analyst, analyst_done))
            env.process(hold(instruments[kind], got_instrument, instrument_done))
            yield env.timeout(max(analyst_done, instrument_done) - env.now + 24 * turnaround)
            if rng.random() >= retest:
                break
        release[lot] = max(release[lot], env.now / 24)

    def block(day, analyst_hours, kind, inst_hours):
        yield env.timeout(24 * day)
        resource = analysts if kind is None else instruments[kind]
        request = resource.request()
        yield request
        start = next_on_shift(env.now)
        env.process(hold(resource, request, finish(start, analyst_hours or inst_hours)))

    for day, analyst_hours, kind, inst_hours in _monitoring_blocks():
        env.process(block(day, analyst_hours, kind, inst_hours))

    def lot_arrives(lot):
        yield env.timeout(24 * ready_days[lot])
        for assay in SIMPY_ASSAYS:
            env.process(test(lot, assay))

    for lot in range(len(ready_days)):
        env.process(lot_arrives(lot))
    env.run()
    return release - ready_days


def _summary(qc_days: np.ndarray) -> np.ndarray:
    """Per replication: mean, P50 and P90 of days to release."""
    return np.stack(
        [qc_days.mean(axis=1), *np.quantile(qc_days, [0.5, 0.9], axis=1)],
        axis=1,
    )


def test_agrees_with_an_independent_simpy_model():
    reps = 100
    rng = np.random.default_rng(11)
    simpy_days = np.array(
        [
            _simpy_release(np.cumsum(rng.exponential(1 / LOTS_PER_DAY, LOTS)), rng)
            for _ in range(reps)
        ]
    )
    lab = QCLab(
        [_process(*(_assay(a, h, t, i, ih, r) for a, h, i, ih, t, r in SIMPY_ASSAYS))],
        hours_per_day=ROSTER[0],
        days_per_week=ROSTER[1],
        shift_start_hour=ROSTER[2],
        hands_on="exponential",
        monitoring_hours_per_month=MONITOR_HOURS,
        monitoring_instrument_hours_per_month={"cytometer": MONITOR_CYTOMETER_HOURS},
        monitoring_block_hours=BLOCK,
        max_runs=50,
        **SIMPY_LAB,
    )
    draws = 400
    ready = np.cumsum(np.random.default_rng(12).exponential(1 / LOTS_PER_DAY, (draws, LOTS)), 1)
    assert ready.max() < MONTH_EDGES[-1]
    kernel_days = _run(lab, ready, month_edges=MONTH_EDGES).qc_days
    a, b = _summary(kernel_days), _summary(simpy_days)
    se = np.sqrt(a.var(axis=0, ddof=1) / draws + b.var(axis=0, ddof=1) / reps)
    diff = a.mean(axis=0) - b.mean(axis=0)
    assert (np.abs(diff) < 4 * se).all(), (a.mean(axis=0), b.mean(axis=0), se)
    # the lab is loaded: waits are a visible part of the release time
    assert a.mean(axis=0)[0] > 7.5


def test_monitoring_defaults_to_each_draws_fixed_qc_hours():
    spec = _process(_assay("a", 2, 1))
    spec["qc_fixed_hours_per_month"] = {"uniform": [50, 400]}
    lab = QCLab([spec], analysts=1, instruments={}, **ALWAYS)
    draws = 8
    params = [lab.processes[0].sample(draws, 1)]
    hours = params[0]["qc_fixed_hours_per_month"].values
    edges = np.array([0.0, 30.0, 60.0, 90.0])
    # no lots: each month's analyst hours are the draw's monitoring hours, in blocks of at
    # most 4 h spaced 30 / ceil(max / 4) days apart (no overlap on a 24/7 roster)
    idle = _run(lab, np.full((draws, 1), np.nan), params=params, month_edges=edges)
    expected = np.repeat(hours[:, None] / (30 * 24), 3, axis=1)
    np.testing.assert_allclose(idle.utilisation[:, :, 0], expected, rtol=1e-12)
    ready = np.sort(np.random.default_rng(4).uniform(0, 60, (draws, 30)), axis=1)
    out = _run(lab, ready, params=params, month_edges=edges)
    per_month = np.repeat(hours[:, None], 3, axis=1)
    given = _run(lab, ready, params=params, month_edges=edges, monitoring_hours=per_month)
    np.testing.assert_array_equal(out.release, given.release)
    none = _run(lab, ready, params=params, month_edges=edges, monitoring_hours=0)
    assert (out.wait[:, :, 0].sum(axis=1) > none.wait[:, :, 0].sum(axis=1)).all()


# --- reproducibility -----------------------------------------------------------------------------
def test_same_seed_same_result_and_draws_independent_of_batching():
    lab = _lab(
        _assay("s", {"triangular": [1, 2, 4]}, 7, "x", 1, retest={"beta": [2, 8]}),
        _assay("f", 3, 1, "y", 2, retest=0.1, tests=2),
        analysts=2,
        instruments={"x": 1, "y": 1},
        hands_on="exponential",
        monitoring_hours_per_month=40,
    )
    ready = np.sort(np.random.default_rng(2).uniform(0, 120, (12, 60)), axis=1)
    params = [lab.processes[0].sample(12, 4)]
    one = _run(lab, ready, params=params)
    two = _run(lab, ready, params=params)
    np.testing.assert_array_equal(one.release, two.release)
    np.testing.assert_array_equal(one.wait, two.wait)
    np.testing.assert_array_equal(one.utilisation, two.utilisation)
    # draws 4..7 alone: the same numbers (keys and params of those draws)
    keys = np.arange(1, 13, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    part = release_days(
        ready[4:8],
        np.zeros((4, 60), np.int64),
        keys[4:8],
        lab,
        params=[params[0].isel(draw=slice(4, 8))],
        month_edges=one.month_edges,
    )
    np.testing.assert_array_equal(part.release, one.release[4:8])
    assert (one.wait > 0).any()  # the case has contention


def test_the_kernel_is_compiled_for_one_signature():
    # one draw (its counts a read-only broadcast view), several draws, Fortran-order and
    # read-only lots, counts given per resource and month edges given as a read-only array:
    # release_days casts them all to the kernel's one signature (each other signature would
    # be compiled again, 13-16 s of CPU) and the numbers do not depend on the layout
    from capacity._qclab import lab_draws

    lab = _lab(_assay("a", 2, 1, "x", 1), instruments={"x": 1}, monitoring_hours_per_month=8)
    ready = np.sort(np.random.default_rng(6).uniform(0, 50, (3, 8)), axis=1)
    base = _run(lab, ready)
    _run(lab, ready[:1])
    odd = np.asfortranarray(ready)
    odd.flags.writeable = False
    edges = base.month_edges.copy()
    edges.flags.writeable = False
    keys = np.arange(1, 4, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    again = release_days(odd, np.zeros((3, 8), np.int32), keys, lab, counts=np.array([1, 1]),
                         month_edges=edges)  # fmt: skip
    np.testing.assert_array_equal(again.release, base.release)
    np.testing.assert_array_equal(again.wait, base.wait)
    assert len(lab_draws.signatures) == 1, lab_draws.signatures


# --- sizing --------------------------------------------------------------------------------------
def test_size_lab_is_the_smallest_count_that_meets_the_level():
    lab = _lab(
        _assay("s", 2, 3, "x", 4),
        _assay("f", 3, 1, "y", 1),
        analysts=1,
        instruments={"x": 1, "y": 1},
        hands_on="exponential",
        **ALWAYS,
    )
    draws, lots = 6, 120
    ready = np.cumsum(np.random.default_rng(3).exponential(1 / 8, (draws, lots)), axis=1)
    keys = np.arange(1, draws + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    process = np.zeros((draws, lots), np.int64)
    target, eps = 3.5, 0.1
    sized = size_lab(ready, process, keys, lab, target_days=target, epsilon=eps)
    need = sized["needed"].values
    assert (need >= 1).all() and need[:, 0].max() > 1  # analysts bind at 8 lots a day

    def late(counts):
        out = release_days(ready, process, keys, lab, counts=counts)
        return (out.qc_days > target).mean(axis=1)

    # the search's premise on this case: more analysts never make more lots late
    shares = [late(np.array([[c, -1, -1]] * draws)) for c in range(1, 6)]
    assert (np.diff(shares, axis=0) <= 0).all()
    for k in range(3):
        counts = np.full((draws, 3), -1)
        counts[:, k] = need[:, k]
        assert (late(counts) <= eps).all()
        counts[:, k] = np.maximum(need[:, k] - 1, 1)
        short = need[:, k] > 1
        assert (late(counts)[short] > eps).all()
    np.testing.assert_allclose(sized["late_share_joint"].values, late(need))
    together = sized["needed_together"].values
    assert (together >= need).all()
    assert (late(together) <= eps).all()
    # a draw whose sizes alone meet the level together keeps them
    meets = late(need) <= eps
    np.testing.assert_array_equal(together[meets], need[meets])


def test_size_lab_refuses_a_target_shorter_than_the_panel():
    lab = _lab(_assay("sterility", 0, 14))
    with pytest.raises(InputError, match="shorter than the QC panel"):
        size_lab(
            np.zeros((2, 3)),
            np.zeros((2, 3), np.int64),
            np.array([1, 2], np.uint64),
            lab,
            target_days=10,
        )


# --- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (dict(instruments={}), "assay 'a' needs instrument 'x', which the QC lab lacks"),
        (dict(analysts=0), "qc_lab.analysts: expected a whole number >= 1, got 0"),
        (dict(analysts=-2), "qc_lab.analysts: expected a whole number >= 1, got -2"),
        (dict(hours_per_day=25), "qc_lab.hours_per_day: must be > 0 and <= 24 hours, got 25"),
        (dict(instruments={"x": -1}), "qc_lab.instruments.x: expected a whole number >= 1"),
        (dict(days_per_week=8), "qc_lab.days_per_week: must be at most 7, got 8"),
        (dict(shift_start_hour=20), "the shift must start at >= 0 h and end by 24 h"),
        (dict(turnaround_days={"sterile": 7}), "no assay named 'sterile'"),
        (dict(hands_on="normal"), "expected 'fixed' or 'exponential'"),
        (dict(monitoring_hours_per_month=-1), "monitoring_hours_per_month: must be >= 0"),
        (
            dict(hours_per_year=3000),
            "qc_lab.hours_per_year: must be > 0 and at most the roster's 2087",
        ),
        (dict(hours_per_year=0), "qc_lab.hours_per_year: must be > 0"),
    ],
)
def test_bad_lab_is_refused(kw, message):
    base = dict(analysts=1, instruments={"x": 1})
    base.update(kw)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _lab(_assay("a", 1, 1, "x", 1), **base)


def test_bad_lots_are_refused():
    lab = _lab(_assay("a", 1, 1))
    keys = np.array([1], np.uint64)
    with pytest.raises(InputError, match="lot_process: process indices must be in 0..0"):
        release_days(np.zeros((1, 2)), np.array([[0, 1]]), keys, lab)
    with pytest.raises(InputError, match="draw_keys: one key per draw"):
        release_days(np.zeros((1, 2)), np.zeros((1, 2), np.int64), np.array([1, 2]), lab)
    with pytest.raises(InputError, match="counts: expected whole numbers >= 1"):
        release_days(np.zeros((1, 2)), np.zeros((1, 2), np.int64), keys, lab, counts=[0])


# --- the working clock ---------------------------------------------------------------------------
def test_working_clock_round_trips_on_random_rosters():
    # random rosters and working times, including whole shifts and whole weeks (boundaries
    # that floating point lands a hair either side of)
    rng = np.random.default_rng(9)
    for _ in range(300):
        hours = rng.uniform(0.5, 24)
        days = int(rng.integers(1, 8))
        start = rng.uniform(0, 24 - hours)
        k = int(rng.integers(-50, 3000))
        for w in (rng.uniform(-500, 5000), k * hours, k * hours * days):
            _check_clock(w, hours, days, start)


def _check_clock(w, hours, days, start):
    from capacity._qclab import calendar_end, calendar_start, working_hours

    begin = calendar_start(w, hours, days, start)
    end = calendar_end(w, hours, days, start)
    assert working_hours(begin, hours, days, start) == pytest.approx(w, abs=1e-7)
    assert working_hours(end, hours, days, start) == pytest.approx(w, abs=1e-7)
    assert begin >= end - 1e-9  # equal inside a shift; at a boundary, end before begin
    for t, edge in ((begin, 1e-12), (end, -1e-12)):  # on a roster day, inside the shift
        day = np.floor(t + edge)
        assert day % 7 < days
        hour = (t - day) * 24
        assert start - 1e-6 <= hour <= start + hours + 1e-6
    shifts = w / hours
    if hours < 24 and abs(shifts - round(shifts)) < 1e-9:  # on a boundary between shifts:
        # work starts at the next shift's start and ends at the earlier shift's end
        assert (begin - np.floor(begin + 1e-12)) * 24 == pytest.approx(start, abs=1e-6)
        assert (end - np.floor(end - 1e-12)) * 24 == pytest.approx(start + hours, abs=1e-6)
