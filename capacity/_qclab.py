"""Compiled core of the QC laboratory: every lot's assays through analysts and instruments.

One draw is one event-ordered pass over the lab's jobs (the tests of every lot's release panel,
their retests, and the monitoring blocks), the draws run in parallel with ``numba.prange``.
Random numbers come from the counter-based generator of :mod:`capacity._queue`: a number is a
hash of the draw's key, what it is for (hands-on time, retest) and the job's identity (lot,
assay, test, run), so it does not depend on threads, on which draws run together or on the
lab's size (common random numbers across lab sizes).

Time runs on two clocks. Work (hands-on and instrument time) advances only in the analysts'
working hours: the *working clock* counts roster hours (``hours_per_day`` a day from
``shift_start_hour``, on the first ``days_per_week`` days of each 7-day week, day 0 being the
first). Incubation and turnaround are pure delays in calendar days.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from capacity._fields import EXPONENTIAL, FIXED
from capacity._queue import _sift_down, sample, stream_key, unit_uniform

SNAP_DAYS = 1e-9  # a wait shorter than this (0.1 ms) is rounding, not waiting
BOUNDARY = 1e-9  # shifts: a working time this close to a shift boundary is on it

# what a random number is for (one stream of each per draw)
HANDS_ON, RETEST = np.uint64(0x3F84D5B5B5470917), np.uint64(0x9216D5D98979FB1B)


@numba.njit(cache=True, inline="always")
def working_hours(t, hours_per_day, days_per_week, shift_start):
    """Roster hours worked from calendar day 0 to calendar day ``t`` (days, may be < 0)."""
    week = math.floor(t / 7.0)
    rest = t - 7.0 * week
    day = math.floor(rest)
    if day >= days_per_week:
        within = 0.0
        day = days_per_week
    else:
        within = min(max((rest - day) * 24.0 - shift_start, 0.0), hours_per_day)
    return (week * days_per_week + day) * hours_per_day + within


@numba.njit(cache=True, inline="always")
def calendar_start(w, hours_per_day, days_per_week, shift_start):
    """The calendar day at which ``w`` roster hours have been worked, taking a boundary
    between shifts as the start of the next shift (when work can begin)."""
    per_week = days_per_week * hours_per_day
    week = math.floor(w / per_week)
    rest = w - week * per_week
    # a boundary computed a rounding error short of a whole shift is that boundary
    day = math.floor(rest / hours_per_day + BOUNDARY)
    hour = max(rest - day * hours_per_day, 0.0)
    if day >= days_per_week:  # the end of the week's last shift: the next week's first
        week += 1
        day = 0
        hour = 0.0
    return 7.0 * week + day + (shift_start + hour) / 24.0


@numba.njit(cache=True, inline="always")
def calendar_end(w, hours_per_day, days_per_week, shift_start):
    """As :func:`calendar_start`, but a boundary between shifts is the end of the earlier
    shift (when work that ends there is done)."""
    per_week = days_per_week * hours_per_day
    week = math.ceil(w / per_week - BOUNDARY) - 1
    rest = w - week * per_week  # in (0, per_week], up to rounding
    day = min(max(math.ceil(rest / hours_per_day - BOUNDARY) - 1, 0), days_per_week - 1)
    hour = min(max(rest - day * hours_per_day, 0.0), hours_per_day)
    return 7.0 * week + day + (shift_start + hour) / 24.0


@numba.njit(cache=True, inline="always")
def _before(t1, c1, j1, t2, c2, j2):
    """Order of service: working time, then calendar arrival (jobs that arrive while the lab
    is closed queue in their order of arrival), then id (a lot's assays in panel order)."""
    return t1 < t2 or (t1 == t2 and (c1 < c2 or (c1 == c2 and j1 < j2)))


@numba.njit(cache=True, inline="always")
def _push(w, cal, ids, acc_a, acc_i, n, t, c, job, a, i_):
    """Push a job on the min-heap in order of service (:func:`_before`)."""
    i = n
    while i > 0:
        parent = (i - 1) // 2
        if not _before(t, c, job, w[parent], cal[parent], ids[parent]):
            break
        w[i] = w[parent]
        cal[i] = cal[parent]
        ids[i] = ids[parent]
        acc_a[i] = acc_a[parent]
        acc_i[i] = acc_i[parent]
        i = parent
    w[i] = t
    cal[i] = c
    ids[i] = job
    acc_a[i] = a
    acc_i[i] = i_


@numba.njit(cache=True, inline="always")
def _pop(w, cal, ids, acc_a, acc_i, n):
    """Remove the root of the job heap of size ``n`` (``n - 1`` left)."""
    n -= 1
    t, c, job, a, i_ = w[n], cal[n], ids[n], acc_a[n], acc_i[n]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n and _before(
            w[child + 1], cal[child + 1], ids[child + 1], w[child], cal[child], ids[child]
        ):
            child += 1
        if not _before(w[child], cal[child], ids[child], t, c, job):
            break
        w[i] = w[child]
        cal[i] = cal[child]
        ids[i] = ids[child]
        acc_a[i] = acc_a[child]
        acc_i[i] = acc_i[child]
        i = child
    if n > 0:
        w[i] = t
        cal[i] = c
        ids[i] = job
        acc_a[i] = a
        acc_i[i] = i_


@numba.njit(cache=True)
def _on_roll(t, i, path, edge_w):
    """The first roster time >= ``t`` at which analyst ``i`` is at work (``path[m] > i`` in
    the month of that time; months end at ``edge_w``, roster hours); ``inf`` if never."""
    n = path.shape[0]
    m = np.searchsorted(edge_w, t, side="right") - 1
    m = min(max(m, 0), n - 1)
    while path[m] <= i:
        if m == n - 1:
            return np.inf
        m += 1
        t = max(t, edge_w[m])
    return t


@numba.njit(cache=True)
def _first_on_roll(t, free, n, path, edge_w):
    """The analyst (of ``n``, free from ``free[i]``) at work first at or after ``t`` under the
    headcount ``path`` (:func:`_on_roll`), and that time; the lowest index on a tie."""
    best = np.inf
    slot = 0
    for i in range(n):
        t_i = _on_roll(max(t, free[i]), i, path, edge_w)
        if t_i < best:
            best = t_i
            slot = i
    return best, slot


@numba.njit(cache=True, parallel=True)
def lab_draws(
    ready,
    process,
    keys,
    n_assays,
    instrument,
    tests,
    hands_on,
    instrument_hours,
    turnaround,
    retest_rate,
    counts,
    monitor_time,
    monitor_hours,
    monitor_type,
    monitor_instrument_hours,
    hours_per_day,
    days_per_week,
    shift_start,
    exponential,
    max_runs,
    month_edges,
    analyst_path,
):
    """Simulate the QC lab of every draw; returns (release, wait, busy hours by month).

    ``ready[d, j]`` calendar day lot ``j`` of draw ``d`` leaves manufacture (NaN: no lot);
    ``process[d, j]`` its process ``p``, whose panel has ``n_assays[p]`` assays; assay ``a``
    uses instrument type ``instrument[p, a]`` (-1: none) and runs ``tests[d, p, a]`` tests,
    each ``hands_on[d, p, a]`` analyst hours (the mean if ``exponential``),
    ``instrument_hours[d, p, a]`` on one instrument, then ``turnaround[d, p, a]`` calendar
    days; a run is repeated with probability ``retest_rate[d, p, a]`` (at most ``max_runs``
    runs). ``counts[d, 0]`` analysts, ``counts[d, 1 + i]`` instruments of type ``i`` (-1:
    unlimited). Monitoring blocks arrive at ``monitor_time[b]`` (calendar days) with
    ``monitor_hours[d, b]`` analyst hours and ``monitor_instrument_hours[d, b]`` hours on
    type ``monitor_type[b]``. ``analyst_path[d, m]`` (or no columns: ``counts[d, 0]`` all
    along) analysts at work in month ``m`` of ``month_edges`` (before the first edge: the
    first month's, after the last: the last month's): analyst ``i`` (0-based) works in the
    months where ``analyst_path[d, m] > i``; ``counts[d, 0]`` must be the path's maximum.
    """
    draws, n_lots = ready.shape
    n_res = counts.shape[1]
    n_months = month_edges.shape[0] - 1
    release = np.full((draws, n_lots), np.nan)
    wait = np.zeros((draws, n_lots, n_res))
    busy = np.zeros((draws, max(n_months, 0), n_res))
    # the monitoring blocks (the same in every draw) in order of service, once: stable sorts
    # by calendar time, then working time, of blocks in id order
    monitor_w = np.empty(monitor_time.shape[0])
    for b in range(monitor_time.shape[0]):
        monitor_w[b] = working_hours(monitor_time[b], hours_per_day, days_per_week, shift_start)
    monitor_order = np.argsort(monitor_time, kind="mergesort")
    monitor_order = monitor_order[np.argsort(monitor_w[monitor_order], kind="mergesort")]
    for d in numba.prange(draws):
        _one_draw(
            ready[d],
            process[d],
            keys[d],
            n_assays,
            instrument,
            tests[d],
            hands_on[d],
            instrument_hours[d],
            turnaround[d],
            retest_rate[d],
            counts[d],
            monitor_time,
            monitor_w,
            monitor_order,
            monitor_hours[d],
            monitor_type,
            monitor_instrument_hours[d],
            hours_per_day,
            days_per_week,
            shift_start,
            exponential,
            max_runs,
            month_edges,
            analyst_path[d],
            release[d],
            wait[d],
            busy[d],
        )
    return release, wait, busy


@numba.njit(cache=True)
def _one_draw(
    ready,
    process,
    key,
    n_assays,
    instrument,
    tests,
    hands_on,
    instrument_hours,
    turnaround,
    retest_rate,
    counts,
    monitor_time,
    monitor_w,
    monitor_order,
    monitor_hours,
    monitor_type,
    monitor_instrument_hours,
    hours_per_day,
    days_per_week,
    shift_start,
    exponential,
    max_runs,
    month_edges,
    analyst_path,
    release,
    wait,
    busy,
):
    n_lots = ready.shape[0]
    n_res = counts.shape[0]
    n_months = month_edges.shape[0] - 1
    most_assays = instrument.shape[1]
    most_tests = max(tests.max(), 1)
    n_monitor = monitor_time.shape[0]
    service_key = stream_key(key, HANDS_ON)
    retest_key = stream_key(key, RETEST)
    kind = EXPONENTIAL if exponential else FIXED
    no_args = np.zeros(1)
    # a job's id: ((lot * most_assays + assay) * most_tests + test) * max_runs + run; the
    # monitoring blocks follow
    base = n_lots * most_assays * most_tests * max_runs
    size = n_monitor
    for j in range(n_lots):
        if not np.isnan(ready[j]):
            p = process[j]
            for a in range(n_assays[p]):
                size += tests[p, a]
    # the first run of every job is known upfront, so first runs are taken in order of
    # service from two sorted arrays (the lots' tests, and the monitoring blocks sorted once
    # for every draw by :func:`lab_draws`) and only retests go through the heap; taking the
    # earliest of the three heads each time gives the order of one heap of every job (the
    # ids are distinct). A lot's tests share its times and have consecutive ids in panel
    # order, so sorting the lots by (working time, calendar time, lot) sorts their tests.
    lots = np.empty(n_lots, np.int64)
    lot_w = np.empty(n_lots)
    n_ready = 0
    for j in range(n_lots):
        if not np.isnan(ready[j]):
            lots[n_ready] = j
            lot_w[n_ready] = working_hours(ready[j], hours_per_day, days_per_week, shift_start)
            n_ready += 1
    lots = lots[:n_ready]
    lot_w = lot_w[:n_ready]
    order = np.argsort(ready[lots], kind="mergesort")  # stable: lots in index order
    order = order[np.argsort(lot_w[order], kind="mergesort")]
    s_w = np.empty(size)
    s_cal = np.empty(size)
    s_id = np.empty(size, np.int64)
    n_first = 0
    for o in order:
        j = lots[o]
        p = process[j]
        for a in range(n_assays[p]):
            for t in range(tests[p, a]):
                s_w[n_first] = lot_w[o]
                s_cal[n_first] = ready[j]
                s_id[n_first] = ((j * most_assays + a) * most_tests + t) * max_runs
                n_first += 1
    h_w = np.empty(size)
    h_cal = np.empty(size)
    h_id = np.empty(size, np.int64)
    h_acc_a = np.empty(size)
    h_acc_i = np.empty(size)
    n = 0
    f = 0  # next lot test (sorted)
    g = 0  # next monitoring block (in ``monitor_order``)
    # free[k, :counts[k]]: min-heap of the times (working clock) resource k's units are free
    width = 1
    for k in range(n_res):
        width = max(width, counts[k])
    free = np.full((n_res, width), -np.inf)
    # analysts by month: roster-clock times of the month edges; analyst slots are scanned
    # (not a heap) because which analyst is at work depends on the month
    by_month = analyst_path.shape[0] > 0
    edge_w = np.empty(month_edges.shape[0])
    for m in range(month_edges.shape[0]):
        edge_w[m] = working_hours(month_edges[m], hours_per_day, days_per_week, shift_start)
    slot = 0
    while n > 0 or f < n_first or g < n_monitor:
        source = -1  # 0: a lot's test, 1: a monitoring block, 2: a retest (the heap)
        w = cal = 0.0
        job = 0
        if f < n_first:
            source = 0
            w = s_w[f]
            cal = s_cal[f]
            job = s_id[f]
        if g < n_monitor:
            b = monitor_order[g]
            if source < 0 or _before(monitor_w[b], monitor_time[b], base + b, w, cal, job):
                source = 1
                w = monitor_w[b]
                cal = monitor_time[b]
                job = base + b
        if n > 0 and (source < 0 or _before(h_w[0], h_cal[0], h_id[0], w, cal, job)):
            source = 2
        acc_a = 0.0
        acc_i = 0.0
        if source == 0:
            f += 1
        elif source == 1:
            g += 1
        else:
            w = h_w[0]
            cal = h_cal[0]
            job = h_id[0]
            acc_a = h_acc_a[0]
            acc_i = h_acc_i[0]
            _pop(h_w, h_cal, h_id, h_acc_a, h_acc_i, n)
            n -= 1
        if job >= base:
            b = job - base
            analyst_h = monitor_hours[b]
            kind_i = monitor_type[b]
            inst_h = monitor_instrument_hours[b]
            lot = -1
            p = 0
            a = 0
        else:
            run = job % max_runs
            rest = job // max_runs
            rest = rest // most_tests
            a = rest % most_assays
            lot = rest // most_assays
            p = process[lot]
            analyst_h = sample(kind, no_args, hands_on[p, a], service_key, job)
            kind_i = instrument[p, a]
            inst_h = instrument_hours[p, a]
        # the rule: a job takes the analyst who is free first (first come, first served in
        # order of arrival), then, holding that analyst, the instrument of its type that is
        # free first; both are held from the start together, the analyst for the hands-on
        # hours and the instrument for the instrument hours
        uses_analyst = analyst_h > 0 and counts[0] >= 0
        k = 1 + kind_i
        uses_instrument = kind_i >= 0 and inst_h > 0 and counts[k] >= 0
        got_analyst = w
        if uses_analyst and by_month:
            got_analyst, slot = _first_on_roll(w, free[0], counts[0], analyst_path, edge_w)
        elif uses_analyst:
            got_analyst = max(w, free[0, 0])
        start = got_analyst
        if uses_instrument:
            start = max(got_analyst, free[k, 0])
        rechosen = 0.0  # roster hours waited again for an analyst after the instrument
        if uses_analyst and by_month and _on_roll(start, slot, analyst_path, edge_w) > start:
            # the analyst left the roster while the job waited for the instrument: the job
            # takes the analyst at work first from the time the instrument is free
            ready_i = start
            start, slot = _first_on_roll(ready_i, free[0], counts[0], analyst_path, edge_w)
            rechosen = start - ready_i
        if uses_analyst and by_month:
            free[0, slot] = start + analyst_h
        elif uses_analyst:
            free[0, 0] = start + analyst_h
            _sift_down(free[0], counts[0], 0)
        if uses_instrument:
            free[k, 0] = start + inst_h
            _sift_down(free[k], counts[k], 0)
        work = max(analyst_h, inst_h if kind_i >= 0 else 0.0)
        if work > 0 or n_months > 0:
            cal_start = calendar_start(start, hours_per_day, days_per_week, shift_start)
        else:
            cal_start = cal
        if n_months > 0 and (analyst_h > 0 or inst_h > 0):
            m = np.searchsorted(month_edges, cal_start, side="right") - 1
            if 0 <= m < n_months:
                busy[m, 0] += analyst_h
                if kind_i >= 0:
                    busy[m, k] += inst_h
        if lot < 0:
            continue
        if work > 0:
            got = calendar_start(got_analyst, hours_per_day, days_per_week, shift_start)
            # days waited for the analyst (or the roster's next shift), then the instrument;
            # the round trip through the working clock is exact to about 1e-14 days, so
            # anything under SNAP_DAYS is no wait
            wait_a = got - cal if got - cal > SNAP_DAYS else 0.0
            wait_i = cal_start - max(got, cal)
            if rechosen > 0:  # the wait after the instrument was free is the analysts'
                ready_cal = calendar_start(start - rechosen, hours_per_day, days_per_week,
                                           shift_start)  # fmt: skip
                wait_a += cal_start - ready_cal
                wait_i -= cal_start - ready_cal
            wait_i = wait_i if wait_i > SNAP_DAYS else 0.0
            done = calendar_end(start + work, hours_per_day, days_per_week, shift_start)
            done = max(done, cal)
        else:  # a pure delay: no analyst, no instrument, no roster
            wait_a = 0.0
            wait_i = 0.0
            done = cal
        result = done + turnaround[p, a]
        acc_a += wait_a
        acc_i += wait_i
        run = job % max_runs
        rate = retest_rate[p, a]
        if rate > 0 and run + 1 < max_runs and unit_uniform(retest_key, job) < rate:
            w1 = working_hours(result, hours_per_day, days_per_week, shift_start)
            _push(h_w, h_cal, h_id, h_acc_a, h_acc_i, n, w1, result, job + 1, acc_a, acc_i)
            n += 1
            continue
        if np.isnan(release[lot]) or result > release[lot]:
            release[lot] = result
            for r in range(n_res):
                wait[lot, r] = 0.0
            wait[lot, 0] = acc_a
            if kind_i >= 0:
                wait[lot, k] = acc_i
