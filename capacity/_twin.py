"""Compiled core of the facility twin: one draw's event-driven simulation of suites, crews,
downtime and remakes, run for the draws in parallel.

Within a draw the events (a lot ready at the facility, a hands-on step done, a culture done, a
suite free, a wake-up when a shift opens, a shutdown ends or a month's crews change) are
processed in time order from a binary heap (ties: the order they were scheduled), so every
lot's events keep their causal order. Random numbers come from the counter-based generator of
:mod:`capacity._queue` (a hash of the draw's key, the purpose and the lot), so a draw's numbers
do not depend on threads, on the other draws, or on the number of suites and crews (common
random numbers across facility sizes). A lot's culture and changeover use the same streams and
indices as :mod:`capacity._queue`, so with no crews, transport or downtime the twin sees the
same lots as the suite queue.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from capacity._fields import FIXED
from capacity._queue import (
    CHANGEOVER,
    CULTURE,
    FAIL,
    in_chunks,
    sample,
    stream_key,
    unit_uniform,
)

# purposes of the twin's own random streams (arbitrary distinct 64-bit words)
INBOUND, OUTBOUND, INFUSION, CONTAMINATION, EQUIPMENT, DROPOUT = (
    np.uint64(0x3F84D5B5B5470917),
    np.uint64(0x9216D5D98979FB1B),
    np.uint64(0xD1310BA698DFB5AC),
    np.uint64(0x2FFD72DBD01ADFB7),
    np.uint64(0xB8E1AFED6A267E96),
    np.uint64(0xBA7C9045F12C7F99),
)

# event types (the low 3 bits of an event's code; the rest is the lot)
READY, START_DONE, CULTURE_END, HARVEST_DONE, SUITE_FREE, SUITE_FREE_DOWN, WAKE, SUITE_ONLINE = (
    range(8)
)
# causes of waiting (columns of the wait outputs)
SUITE, CREW, DOWN = 0, 1, 2
N_CAUSES = 3
# patient outcome codes
TREATED, LOST_WAITING, LOST_FAILED, NOT_STARTED, PPQ = 0, 1, 2, 3, 4
# monthly outputs
LOTS_WAITING, SUITES_BUSY = 0, 1
N_MONTHLY = 2

# numba types of the helpers' explicit signatures: each compiles once, eagerly (integer
# constants passed as arguments would otherwise compile a copy per value)
_F1 = numba.types.Array(numba.float64, 1, "C")
_F2 = numba.types.Array(numba.float64, 2, "C")
_I1 = numba.types.Array(numba.int64, 1, "C")


@numba.njit(numba.types.Tuple((_F1, _I1, _I1))(_F1, _I1, _I1, numba.int64), cache=True)
def _grow(times, seqs, codes, need):
    """The heap's arrays, at least twice as long and long enough for ``need`` events."""
    n = times.shape[0]
    size = max(2 * n, need)
    bigger_t = np.empty(size)
    bigger_s = np.empty(size, np.int64)
    bigger_c = np.empty(size, np.int64)
    for i in range(n):  # a loop: a slice copy compiles its shape-error message
        bigger_t[i] = times[i]
        bigger_s[i] = seqs[i]
        bigger_c[i] = codes[i]
    return bigger_t, bigger_s, bigger_c


@numba.njit(cache=True, inline="always")
def _push(times, seqs, codes, n, t, seq, code):
    """Push an event on the heap ``(times, seqs, codes)[:n]``, which has room for it."""
    i = n
    while i > 0:
        parent = (i - 1) // 2
        if times[parent] < t or (times[parent] == t and seqs[parent] < seq):
            break
        times[i] = times[parent]
        seqs[i] = seqs[parent]
        codes[i] = codes[parent]
        i = parent
    times[i] = t
    seqs[i] = seq
    codes[i] = code


@numba.njit(cache=True, inline="always")
def _pop(times, seqs, codes, n):
    """Remove the earliest event of the heap ``[:n]`` (``n - 1`` left)."""
    n -= 1
    t, s, c = times[n], seqs[n], codes[n]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        r = child + 1
        if r < n and (
            times[r] < times[child] or (times[r] == times[child] and seqs[r] < seqs[child])
        ):
            child = r
        if times[child] > t or (times[child] == t and seqs[child] > s):
            break
        times[i] = times[child]
        seqs[i] = seqs[child]
        codes[i] = codes[child]
        i = child
    if n > 0:
        times[i] = t
        seqs[i] = s
        codes[i] = c


_ARRAY_ARGS = {
    # name: (dtype, ndim) of every kernel argument, cast once in :func:`simulate_twin` so
    # the kernel has a single compiled signature
    "apheresis": (np.float64, 2),
    "is_ppq": (np.bool_, 2),
    "job_process": (np.int64, 2),
    "keys": (np.uint64, 1),
    "culture_kind": (np.int64, 1),
    "culture_args": (np.float64, 2),
    "culture_mean": (np.float64, 2),
    "changeover_kind": (np.int64, 1),
    "changeover_args": (np.float64, 2),
    "changeover_mean": (np.float64, 2),
    "failure_rate": (np.float64, 2),
    "turnaround": (np.float64, 2),
    "oos_remakes": (np.int64, 1),
    "contamination": (np.float64, 2),
    "contamination_remakes": (np.int64, 0),
    "decontamination_days": (np.float64, 1),
    "equipment_rate": (np.float64, 1),
    "repair_days": (np.float64, 1),
    "new_apheresis": (np.bool_, 1),
    "reapheresis_days": (np.float64, 0),
    "start_hours": (np.float64, 1),
    "harvest_hours": (np.float64, 1),
    "transport_kind": (np.int64, 1),
    "transport_args": (np.float64, 2),
    "transport_mean": (np.float64, 2),
    "dropout_per_day": (np.float64, 0),
    "n_suites": (np.int64, 1),
    "suite_online": (np.float64, 2),
    "width": (np.int64, 1),
    "crews": (np.int64, 2),
    "window_hours": (np.float64, 0),
    "shutdown_start": (np.float64, 1),
    "shutdown_end": (np.float64, 1),
    "month_starts": (np.float64, 1),
    "month_ends": (np.float64, 1),
}
_OUTPUTS = (
    # lot_ready, lot_released, patient_wait, outcome, final_lot, after_release, monthly
    (np.float64, 2),
    (np.bool_, 2),
    (np.float64, 3),
    (np.int64, 2),
    (np.int64, 2),
    (np.float64, 2),
    (np.float64, 3),
)


def _numba_type(dtype, ndim):
    scalar = numba.from_dtype(np.dtype(dtype))
    return scalar if ndim == 0 else numba.types.Array(scalar, ndim, "C")


def simulate_twin(*args, threads=None):
    """Simulate every draw; see :func:`capacity.twin.simulate_twin` for the model.

    Arguments in the order of ``_ARRAY_ARGS``, cast here to its dtypes (C-contiguous,
    writable). Per draw ``d`` and patient ``j`` (lots ``j * most + k``, ``most`` = 1 + the
    most remakes a patient can have): returns ``lot_ready`` (day manufacture ends, NaN = no
    lot), ``lot_released`` (the lot passes: not contaminated, not out of specification),
    ``patient_wait`` (days waited, by cause), ``outcome`` (code), ``final_lot`` (the lot that
    is released, -1 if none), ``after_release`` (outbound transport + release-to-infusion
    days) and ``monthly`` (lot-days waiting and suite-days busy per calendar month).
    ``transport_*`` rows: 0 inbound, 1 outbound, 2 release to infusion.

    The draws run in chunks on ``threads`` threads (default ``numba.get_num_threads()``; the
    kernel releases the GIL). A draw's random numbers are counter-based on its key and its
    state is its own, so the results do not depend on the chunks or the threads.
    """
    if len(args) != len(_ARRAY_ARGS):
        raise TypeError(f"simulate_twin: expected {len(_ARRAY_ARGS)} arguments, got {len(args)}")
    cast = []
    for value, (dtype, ndim) in zip(args, _ARRAY_ARGS.values(), strict=True):
        if ndim == 0:
            cast.append(dtype(value))
        else:
            value = np.require(value, dtype, ["C", "W"])
            if value.ndim != ndim:
                raise ValueError(f"simulate_twin: expected {ndim} dimensions, got {value.ndim}")
            cast.append(value)
    draws, n_patients = cast[0].shape
    most = 1 + int(cast[12].max()) + int(cast[14])
    n_months = cast[33].shape[0]
    # filled by each draw's kernel (NaN, -1 or 0 where it writes nothing), on its thread
    lot_ready = np.empty((draws, n_patients * most))
    lot_released = np.empty((draws, n_patients * most), np.bool_)
    patient_wait = np.empty((draws, n_patients, N_CAUSES))
    outcome = np.empty((draws, n_patients), np.int64)  # -1: padding, no patient
    final_lot = np.empty((draws, n_patients), np.int64)
    after_release = np.empty((draws, n_patients))
    monthly = np.empty((draws, n_months, N_MONTHLY))
    outputs = (lot_ready, lot_released, patient_wait, outcome, final_lot, after_release, monthly)
    in_chunks(_simulate_chunk, (*cast, most), outputs, draws, threads)
    return outputs


@numba.njit(numba.float64(numba.int64, _F1, numba.float64, numba.uint64, numba.int64), cache=True)
def _sample(kind, args, mean, key, index):
    """:func:`capacity._queue.sample` as a plain call: it is inlined where it is written, and
    the twin draws in several places (one copy compiles faster than eight)."""
    return sample(kind, args, mean, key, index)


@numba.njit(cache=True, inline="always")
def _draw(kind, args, row, mean, key, index):
    """:func:`_sample` of ``args[row]``; a fixed quantity is its mean without the call (and
    without a view of ``args``): the transport and changeover days are often fixed."""
    if kind == FIXED:
        return mean
    return _sample(kind, args[row], mean, key, index)


@numba.njit(cache=True, inline="always")
def _spread(monthly, column, month_starts, month_ends, t0, t1, weight, first):
    """Add ``weight x`` the overlap of ``[t0, t1)`` with each calendar month (from month
    ``first``, the month of ``t0``)."""
    if weight == 0 or t1 <= t0:
        return
    n_months = month_starts.shape[0]
    for m in range(first, n_months):
        if month_ends[m] <= t0:
            continue
        if month_starts[m] >= t1:
            break
        monthly[m, column] += weight * (min(t1, month_ends[m]) - max(t0, month_starts[m]))


@numba.njit(cache=True, inline="always")
def _crew_free(t, hours, busy, crews, month_ends, window_hours, month):
    """Can a crew start a step of ``hours`` at day ``t`` (in calendar month ``month``; the
    last month's crews beyond the horizon)? Returns (ok, the next time that could change
    other than a crew finishing: the next month or the next shift opening)."""
    n_months = month_ends.shape[0]
    n = crews[min(month, n_months - 1)]
    next_month = month_ends[month] if month < n_months else np.inf
    if busy >= n:
        return False, next_month
    if window_hours >= 24.0:
        return True, np.inf
    hour_of_day = (t - math.floor(t)) * 24.0
    if hour_of_day + hours <= window_hours + 1e-9:
        return True, np.inf
    return False, min(math.floor(t) + 1.0, next_month)


@numba.njit(cache=True)
def _one_draw(
    apheresis,
    is_ppq,
    job_process,
    key,
    culture_kind,
    culture_args,
    culture_mean,
    changeover_kind,
    changeover_args,
    changeover_mean,
    failure_rate,
    turnaround,
    oos_remakes,
    contamination,
    contamination_remakes,
    decontamination_days,
    equipment_rate,
    repair_days,
    new_apheresis,
    reapheresis_days,
    start_hours,
    harvest_hours,
    transport_kind,
    transport_args,
    transport_mean,
    dropout_per_day,
    n_suites,
    suite_online,
    width,
    crews,
    window_hours,
    shutdown_start,
    shutdown_end,
    month_starts,
    month_ends,
    most,
    lot_ready,
    lot_released,
    patient_wait,
    outcome,
    final_lot,
    after_release,
    monthly,
):
    n_patients = apheresis.shape[0]
    n_lots = n_patients * most
    lot_ready[:] = np.nan
    lot_released[:] = False
    patient_wait[:] = 0.0
    outcome[:] = -1
    final_lot[:] = -1
    after_release[:] = np.nan
    monthly[:] = 0.0
    culture_key = stream_key(key, CULTURE)
    changeover_key = stream_key(key, CHANGEOVER)
    fail_key = stream_key(key, FAIL)
    inbound_key = stream_key(key, INBOUND)
    outbound_key = stream_key(key, OUTBOUND)
    infusion_key = stream_key(key, INFUSION)
    contamination_key = stream_key(key, CONTAMINATION)
    equipment_key = stream_key(key, EQUIPMENT)
    dropout_key = stream_key(key, DROPOUT)
    n_shutdowns = shutdown_start.shape[0]

    cap = 2 * n_patients + 64 + suite_online.shape[0]
    times = np.empty(cap)
    seqs = np.empty(cap, np.int64)
    codes = np.empty(cap, np.int64)
    n_events = 0
    n_wakes = 0  # wake-ups among the heap's events
    seq = 0
    ready = np.empty(n_lots)
    culture = np.empty(n_lots)
    culture_end = np.empty(n_lots)
    snapshot = np.empty((n_lots, N_CAUSES))
    queue = np.empty(n_lots, np.int64)  # lots waiting to start, first come first served
    head = 0
    tail = 0
    harvest = np.empty(n_lots, np.int64)  # lots waiting for a crew to harvest
    h_head = 0
    h_tail = 0
    n_oos = np.zeros(n_patients, np.int64)
    n_contaminated = np.zeros(n_patients, np.int64)
    clock = np.zeros(N_CAUSES)  # cumulative time the queue's head has been held, by cause

    # events: the first lots' arrivals (known upfront) in a sorted array, the rest in a
    # binary heap; taken in (time, seq) order from both, as from one heap
    arrival_t = np.empty(n_patients)
    arrival_code = np.empty(n_patients, np.int64)
    n_arrivals = 0
    for j in range(n_patients):
        if apheresis[j] < np.inf:
            lot = j * most
            p = job_process[j]
            inbound = _draw(
                transport_kind[0], transport_args, 0, transport_mean[0], inbound_key, lot
            )
            arrival_t[n_arrivals] = apheresis[j] + inbound
            arrival_code[n_arrivals] = lot * 8 + READY
            n_arrivals += 1
            seq += 1
            outcome[j] = PPQ if is_ppq[j] else NOT_STARTED
    # the first lots' arrivals, in (time, seq) order: their seq is their index here, and
    # every later event's seq is larger, so an arrival goes before a heap event at its time
    arrival_order = np.argsort(arrival_t[:n_arrivals], kind="mergesort")
    a = 0  # next arrival

    free = n_suites
    total = n_suites  # suites installed so far: more come online at ``suite_online`` days
    for k in range(suite_online.shape[0]):
        if suite_online[k] < np.inf:
            _push(times, seqs, codes, n_events, suite_online[k], seq, SUITE_ONLINE)
            n_events += 1
            seq += 1
    down = 0  # suites closed for decontamination
    busy = 0  # crews at work
    now = 0.0 if n_arrivals == 0 else arrival_t[arrival_order[0]]
    block = -1  # why the queue's head waits (SUITE, CREW, DOWN), -1 = queue empty
    next_wake = np.inf
    sd = 0  # first shutdown that has not ended
    month = 0  # calendar month of ``now`` (n_months beyond the horizon)
    n_months = month_starts.shape[0]
    while month < n_months and month_ends[month] <= now:
        month += 1
    while n_events > 0 or a < n_arrivals:
        # one step of the loop below pushes at most 2 events for the event it takes, one
        # for each lot waiting to start or to be harvested (one more may join), and a
        # wake-up; the heap grows here so that the loop below never reassigns its arrays:
        # an array reassigned inside the loop made numba count references to it at every
        # push and pop (atomic NRT_incref/NRT_decref, most of the kernel's time)
        need = n_events + (tail - head) + (h_tail - h_head) + 5
        if need > times.shape[0]:
            times, seqs, codes = _grow(times, seqs, codes, need)
        while (n_events > 0 or a < n_arrivals) and (
            n_events + (tail - head) + (h_tail - h_head) + 5 <= times.shape[0]
        ):
            if a < n_arrivals and (n_events == 0 or arrival_t[arrival_order[a]] <= times[0]):
                t = arrival_t[arrival_order[a]]
                code = arrival_code[arrival_order[a]]
                a += 1
            else:
                t = times[0]
                code = codes[0]
                _pop(times, seqs, codes, n_events)
                n_events -= 1
                if (code & 7) == WAKE:
                    n_wakes -= 1
            # ---- time passes: the head's cause accrues, and lots waiting by month ------------
            if t > now:
                if head < tail and block >= 0:
                    clock[block] += t - now
                waiting = (tail - head) + (h_tail - h_head)
                _spread(monthly, LOTS_WAITING, month_starts, month_ends, now, t, waiting, month)
                _spread(monthly, SUITES_BUSY, month_starts, month_ends, now, t, total - free, month)
                now = t
                while month < n_months and month_ends[month] <= now:
                    month += 1
            kind = code & 7
            lot = code >> 3
            j = lot // most
            p = job_process[j]
            if kind == READY:
                ready[lot] = t
                culture[lot] = _draw(
                    culture_kind[p], culture_args, p, culture_mean[p], culture_key, lot
                )
                for c in range(N_CAUSES):
                    snapshot[lot, c] = clock[c]
                queue[tail] = lot
                tail += 1
            elif kind == START_DONE:
                busy -= 1
                run = culture[lot]
                rate = equipment_rate[p]
                if rate > 0 and unit_uniform(equipment_key, lot) < 1.0 - math.exp(-rate * run):
                    run += repair_days[p]  # the lot is held in its suite while repaired
                    patient_wait[j, DOWN] += repair_days[p]
                _push(times, seqs, codes, n_events, t + run, seq, lot * 8 + CULTURE_END)
                n_events += 1
                seq += 1
            elif kind == CULTURE_END:
                culture_end[lot] = t
                harvest[h_tail] = lot
                h_tail += 1
            elif kind == HARVEST_DONE:
                busy -= 1
                lot_ready[lot] = t
                ppq = is_ppq[j]
                contaminated = (
                    contamination[p] > 0 and unit_uniform(contamination_key, lot) < contamination[p]
                )
                if contaminated:
                    down += width[p]
                    _push(
                        times,
                        seqs,
                        codes,
                        n_events,
                        t + decontamination_days[p],
                        seq,
                        lot * 8 + SUITE_FREE_DOWN,
                    )
                else:
                    changeover = _draw(
                        changeover_kind[p],
                        changeover_args,
                        p,
                        changeover_mean[p],
                        changeover_key,
                        lot,
                    )
                    _push(times, seqs, codes, n_events, t + changeover, seq, lot * 8 + SUITE_FREE)
                n_events += 1
                seq += 1
                rate = failure_rate[p]
                oos = (not contaminated) and rate > 0 and unit_uniform(fail_key, lot) < rate
                remake_at = np.inf
                if ppq:
                    lot_released[lot] = not (contaminated or oos)
                elif contaminated:
                    if n_contaminated[j] < contamination_remakes:
                        n_contaminated[j] += 1
                        remake_at = t  # found at harvest (assumption: in-process testing)
                    else:
                        outcome[j] = LOST_FAILED
                elif oos:
                    if n_oos[j] < oos_remakes[p]:
                        n_oos[j] += 1
                        remake_at = t + turnaround[p]  # found when the QC panel reads out
                    else:
                        outcome[j] = LOST_FAILED
                else:
                    lot_released[lot] = True
                    outcome[j] = TREATED
                    final_lot[j] = lot
                    after_release[j] = _draw(
                        transport_kind[1], transport_args, 1, transport_mean[1], outbound_key, lot
                    ) + _draw(
                        transport_kind[2], transport_args, 2, transport_mean[2], infusion_key, lot
                    )
                if remake_at < np.inf:
                    new = j * most + n_oos[j] + n_contaminated[j]
                    if new_apheresis[p]:
                        remake_at += reapheresis_days + _draw(
                            transport_kind[0],
                            transport_args,
                            0,
                            transport_mean[0],
                            inbound_key,
                            new,
                        )
                    _push(times, seqs, codes, n_events, remake_at, seq, new * 8 + READY)
                    n_events += 1
                    seq += 1
            elif kind == SUITE_FREE:
                free += width[p]
            elif kind == SUITE_FREE_DOWN:
                free += width[p]
                down -= width[p]
            elif kind == SUITE_ONLINE:  # a new suite (a module coming online)
                free += 1
                total += 1
            else:  # WAKE
                if t >= next_wake:
                    next_wake = np.inf

            # ---- dispatch: harvests first (a grown culture cannot wait), then starts ---------
            wake = np.inf
            block = -1
            while True:
                progressed = False
                if h_head < h_tail:
                    hlot = harvest[h_head]
                    hp = job_process[hlot // most]
                    ok, when = _crew_free(
                        t, harvest_hours[hp], busy, crews, month_ends, window_hours, month
                    )
                    if ok:
                        h_head += 1
                        busy += 1
                        patient_wait[hlot // most, CREW] += t - culture_end[hlot]
                        _push(
                            times,
                            seqs,
                            codes,
                            n_events,
                            t + harvest_hours[hp] / 24.0,
                            seq,
                            hlot * 8 + HARVEST_DONE,
                        )
                        n_events += 1
                        seq += 1
                        progressed = True
                    else:
                        wake = min(wake, when)
                if head < tail:
                    qlot = queue[head]
                    qj = qlot // most
                    qp = job_process[qj]
                    block = -1
                    if dropout_per_day > 0 and not is_ppq[qj]:
                        patience = -math.log(unit_uniform(dropout_key, qlot)) / dropout_per_day
                        if ready[qlot] + patience <= t:  # left the queue before it could start
                            head += 1
                            outcome[qj] = LOST_WAITING
                            for c in range(N_CAUSES):
                                patient_wait[qj, c] += clock[c] - snapshot[qlot, c]
                            continue
                    while sd < n_shutdowns and shutdown_end[sd] <= t:
                        sd += 1
                    planned = (start_hours[qp] + harvest_hours[qp]) / 24.0 + culture[qlot]
                    if free < width[qp]:
                        block = DOWN if down > 0 else SUITE
                    elif sd < n_shutdowns and shutdown_start[sd] < t + planned:
                        block = DOWN  # a planned shutdown: no lot starts that it would interrupt
                        wake = min(wake, shutdown_end[sd])
                    else:
                        ok, when = _crew_free(
                            t, start_hours[qp], busy, crews, month_ends, window_hours, month
                        )
                        if ok:
                            head += 1
                            free -= width[qp]
                            busy += 1
                            for c in range(N_CAUSES):
                                patient_wait[qj, c] += clock[c] - snapshot[qlot, c]
                            _push(
                                times,
                                seqs,
                                codes,
                                n_events,
                                t + start_hours[qp] / 24.0,
                                seq,
                                qlot * 8 + START_DONE,
                            )
                            n_events += 1
                            seq += 1
                            progressed = True
                        else:
                            block = CREW
                            wake = min(wake, when)
                if not progressed:
                    break
            if head == tail:
                block = -1
            if wake < next_wake:
                next_wake = wake
                _push(times, seqs, codes, n_events, wake, seq, WAKE)
                n_events += 1
                n_wakes += 1
                seq += 1
            if n_events > 0 and a == n_arrivals and head == tail and h_head == h_tail:
                if n_wakes == n_events:
                    # only wake-ups left with nobody waiting: they change nothing
                    n_events = 0
                    n_wakes = 0


@numba.njit(
    numba.void(
        *(_numba_type(*spec) for spec in _ARRAY_ARGS.values()),
        numba.int64,
        numba.int64,
        numba.int64,
        *(_numba_type(*spec) for spec in _OUTPUTS),
    ),
    cache=True,
    nogil=True,
)
def _simulate_chunk(
    apheresis,
    is_ppq,
    job_process,
    keys,
    culture_kind,
    culture_args,
    culture_mean,
    changeover_kind,
    changeover_args,
    changeover_mean,
    failure_rate,
    turnaround,
    oos_remakes,
    contamination,
    contamination_remakes,
    decontamination_days,
    equipment_rate,
    repair_days,
    new_apheresis,
    reapheresis_days,
    start_hours,
    harvest_hours,
    transport_kind,
    transport_args,
    transport_mean,
    dropout_per_day,
    n_suites,
    suite_online,
    width,
    crews,
    window_hours,
    shutdown_start,
    shutdown_end,
    month_starts,
    month_ends,
    most,
    lo,
    hi,
    lot_ready,
    lot_released,
    patient_wait,
    outcome,
    final_lot,
    after_release,
    monthly,
):
    """Simulate draws ``lo`` to ``hi`` into the outputs (see :func:`simulate_twin`)."""
    for d in range(lo, hi):
        _one_draw(
            apheresis[d],
            is_ppq[d],
            job_process[d],
            keys[d],
            culture_kind,
            culture_args,
            culture_mean[d],
            changeover_kind,
            changeover_args,
            changeover_mean[d],
            failure_rate[d],
            turnaround[d],
            oos_remakes,
            contamination[d],
            contamination_remakes,
            decontamination_days,
            equipment_rate,
            repair_days,
            new_apheresis,
            reapheresis_days,
            start_hours,
            harvest_hours,
            transport_kind,
            transport_args,
            transport_mean[d],
            dropout_per_day,
            n_suites[d],
            suite_online[d],
            width,
            crews[d],
            window_hours,
            shutdown_start,
            shutdown_end,
            month_starts,
            month_ends,
            most,
            lot_ready[d],
            lot_released[d],
            patient_wait[d],
            outcome[d],
            final_lot[d],
            after_release[d],
            monthly[d],
        )


_B2 = numba.types.Array(numba.boolean, 2, "C")
_I2 = numba.types.Array(numba.int64, 2, "C")
_F3 = numba.types.Array(numba.float64, 3, "C")


@numba.njit(
    numba.void(
        _F2, _B2, _I2, _I2, _F2, _F3, _F2, _F3, _F1, numba.float64, numba.int64, numba.int64,
        _F2, _F2, _F2, _F2, _F2, _F3, _F2, _F2, _F2, _F2, _F2,
    ),
    cache=True,
    nogil=True,
)  # fmt: skip
def summarise_chunk(
    arrivals,
    is_ppq,
    outcome,
    final_lot,
    after_release,
    patient_wait,
    release,
    qc_wait,
    ends,
    target,
    lo,
    hi,
    count,
    lost_waiting,
    lost,
    over,
    treated_by_month,
    wait_sum,
    p50,
    p90,
    v2v_days,
    wait_days,
    apheresis_day,
):
    """Per draw ``lo`` to ``hi``: each patient's vein-to-vein days and the monthly sums of
    :func:`capacity.twin.simulate_twin` in one pass over the patients (see ``_summarise``).

    A patient is a job with a finite arrival that is not a PPQ lot; its month is the
    calendar month of its apheresis (``ends``: each month's end day; none past the last).
    ``count``, ``lost_waiting``, ``lost`` (waiting or after failed lots) and ``over`` (not
    infused within ``target`` days) count patients by month of apheresis, ``wait_sum`` adds
    their waits by cause (the twin's causes, then the QC stage's: ``qc_wait`` of the released
    lot), ``treated_by_month`` counts treated patients by month of infusion, and
    ``p50``/``p90`` are the median and 90th percentile (linear interpolation, as
    ``np.nanquantile``) of the treated patients' vein-to-vein days by month of apheresis
    (NaN for a month with none). Per patient: ``v2v_days``, and for patients (NaN for
    other jobs) ``wait_days`` (the twin's waits summed over causes) and ``apheresis_day``.
    Sums run in patient order.
    """
    n_patients = arrivals.shape[1]
    n_months = ends.shape[0]
    n_twin = patient_wait.shape[2]
    n_qc = qc_wait.shape[2]
    month_of = np.empty(n_patients, np.int64)
    filled = np.zeros(n_months + 1, np.int64)
    values = np.empty(n_patients)
    for d in range(lo, hi):
        for m in range(n_months + 1):
            filled[m] = 0
        for j in range(n_patients):
            a = arrivals[d, j]
            finite = math.isfinite(a)
            aph = a if finite else np.nan
            treated = outcome[d, j] == TREATED
            lot = final_lot[d, j] if final_lot[d, j] >= 0 else 0
            rel = release[d, lot] if treated else np.nan
            infusion = rel + after_release[d, j]
            v2v = infusion - aph
            v2v_days[d, j] = v2v
            month_of[j] = -1
            if not finite or is_ppq[d, j]:
                wait_days[d, j] = np.nan
                apheresis_day[d, j] = np.nan
                continue
            apheresis_day[d, j] = aph
            waited = patient_wait[d, j, 0]
            for c in range(1, n_twin):
                waited += patient_wait[d, j, c]
            wait_days[d, j] = waited
            m = np.searchsorted(ends, aph, side="right")
            if treated:
                at = np.searchsorted(ends, np.inf if math.isnan(infusion) else infusion, "right")
                if at < n_months:
                    treated_by_month[d, at] += 1.0
            if m >= n_months:
                continue
            month_of[j] = m
            count[d, m] += 1.0
            code = outcome[d, j]
            if code == LOST_WAITING:
                lost_waiting[d, m] += 1.0
            if code == LOST_WAITING or code == LOST_FAILED:
                lost[d, m] += 1.0
            if not (treated and v2v <= target):
                over[d, m] += 1.0
            for c in range(n_twin):
                wait_sum[d, m, c] += patient_wait[d, j, c]
            for c in range(n_qc):
                wait_sum[d, m, n_twin + c] += qc_wait[d, lot, c] if treated else 0.0
            if treated:
                filled[m + 1] += 1
        # the treated patients' vein-to-vein days grouped by month (a counting sort), then
        # each month's quantiles from its sorted values
        for m in range(n_months):
            filled[m + 1] += filled[m]
        for j in range(n_patients):
            m = month_of[j]
            if m >= 0 and outcome[d, j] == TREATED:
                values[filled[m]] = v2v_days[d, j]
                filled[m] += 1
        start = 0
        for m in range(n_months):
            stop = filled[m]
            chunk = np.sort(values[start:stop])  # NaN last
            n = 0
            for i in range(chunk.shape[0]):
                if math.isfinite(chunk[i]):
                    n += 1
            for k in range(2):
                q = 0.5 if k == 0 else 0.9
                if n == 0:
                    value = np.nan
                else:
                    pos = float(n - 1) * q
                    low = int(math.floor(pos))
                    high = min(low + 1, n - 1)
                    value = chunk[low] + (chunk[high] - chunk[low]) * (pos - low)
                if k == 0:
                    p50[d, m] = value
                else:
                    p90[d, m] = value
            start = stop
