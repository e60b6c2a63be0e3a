"""Compiled core of the facility simulation: arrivals, one draw's queue, QC queue and summary.

Numba earns its place here: the queue is sequential within a draw (each patient's start
depends on every earlier one), so a compiled loop over patients, run for the draws in parallel,
replaces Python-level stepping.

Random numbers are drawn inside the kernels from a counter-based generator: every number is a
hash (SplitMix64's output function) of the draw's key, what it is for (arrival, culture,
changeover, failure) and an index (the patient, or the patient and attempt of a lot). So a
draw's numbers do not depend on the number of threads, on which draws are simulated together,
or on the facility: a lot has the same culture time whichever slot runs it and whenever it
starts (common random numbers across facility sizes), and nothing is stored per lot.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

# positions of the monthly outputs along the last axis of ``monthly``; lot-distribution codes
from capacity._fields import (
    BETA,
    BUSY,
    COUNT,
    EXPONENTIAL,
    FIXED,
    LOGNORMAL,
    LOST,
    N_MONTHLY,
    OVER,
    P95,
    QC_WAIT_SUM,
    RELEASE_SUM,
    RELEASED,
    SERVED,
    TRIANGULAR,
    UNIFORM,
    WAIT_SUM,
)

# what a random number is for: one independent stream of each per draw
ARRIVAL, ARRIVAL_END, CULTURE, CHANGEOVER, FAIL, PROCESS, PROCESS_PPQ = (
    np.uint64(0x243F6A8885A308D3),
    np.uint64(0xBE5466CF34E90C6C),
    np.uint64(0x13198A2E03707344),
    np.uint64(0xA4093822299F31D0),
    np.uint64(0x082EFA98EC4E6C89),
    np.uint64(0x452821E638D01377),
    np.uint64(0xC0AC29B7C97C50DD),
)
_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_TWO_53 = 1.0 / 9007199254740992.0


@numba.njit(cache=True, inline="always")
def _mix(z):
    """SplitMix64's output function (a bijection of 64-bit words; Steele et al. 2014)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, inline="always")
def unit_uniform(key, index):
    """Uniform number ``index`` of ``key``'s stream, in the open interval (0, 1)."""
    z = _mix(key + np.uint64(index + 1) * _GAMMA)
    return (np.float64(z >> np.uint64(11)) + 0.5) * _TWO_53


@numba.njit(cache=True, inline="always")
def _substream(key, index):
    """The key of stream ``index`` of ``key`` (a lot that needs several uniforms)."""
    return _mix(key + np.uint64(index + 1) * _GAMMA) ^ np.uint64(0x5851F42D4C957F2D)


@numba.njit(cache=True)
def stream_key(key, what):
    """A draw's key for one purpose (``ARRIVAL``, ``CULTURE``, ...)."""
    return _mix(key ^ what)


@numba.njit(cache=True, inline="always")
def _normal(state, k):
    """A standard normal from uniforms ``k`` and ``k + 1`` (Box-Muller)."""
    return math.sqrt(-2.0 * math.log(unit_uniform(state, k))) * math.cos(
        2.0 * math.pi * unit_uniform(state, k + 1)
    )


@numba.njit(cache=True)
def _gamma(shape, state, k):
    """Gamma(shape, 1) from uniforms ``k, k + 1, ...`` (Marsaglia and Tsang 2000); returns
    the value and the next unused ``k``."""
    boost = 1.0
    if shape < 1.0:
        boost = unit_uniform(state, k) ** (1.0 / shape)
        k += 1
        shape += 1.0
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        x = _normal(state, k)
        k += 2
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u = unit_uniform(state, k)
        k += 1
        if math.log(u) < 0.5 * x * x + d - d * v + d * math.log(v):
            return d * v * boost, k


@numba.njit(cache=True, inline="always")
def sample(kind, args, mean, key, index):
    """One draw of a lot-to-lot quantity: ``kind`` with ``args`` (as Param: uniform low, high;
    triangular low, mode, high; lognormal log median, sigma; beta a, b), ``EXPONENTIAL`` with
    ``mean``, ``FIXED`` at ``mean``."""
    if kind == FIXED:
        return mean
    if kind == UNIFORM:
        return args[0] + unit_uniform(key, index) * (args[1] - args[0])
    if kind == TRIANGULAR:
        low, mode, high = args[0], args[1], args[2]
        u = unit_uniform(key, index)
        if u < (mode - low) / (high - low):
            return low + math.sqrt(u * (high - low) * (mode - low))
        return high - math.sqrt((1.0 - u) * (high - low) * (high - mode))
    if kind == EXPONENTIAL:
        return -math.log(unit_uniform(key, index)) * mean
    state = _substream(key, index)
    if kind == LOGNORMAL:
        return math.exp(args[0] + args[1] * _normal(state, 0))
    if kind == BETA:
        x, k = _gamma(args[0], state, 0)
        y, k = _gamma(args[1], state, k)
        return x / (x + y)
    return np.nan


def in_chunks(kernel, head, tail, draws, threads=None):
    """Call ``kernel(*head, lo, hi, *tail)`` on chunks ``[lo, hi)`` of the draws, on
    ``threads`` threads (default ``numba.get_num_threads()``); the kernel releases the GIL
    and writes each draw's results into ``tail`` (a draw's state is its own, so the results
    do not depend on the chunks or the threads).

    The kernels are plain ``nogil`` functions run on a thread pool rather than numba's
    ``parallel=True`` loops: the same numbers, and a third less to compile on a new install
    (the suite queue's three kernels: 16.9 -> 11.0 s of CPU).
    """
    threads = numba.get_num_threads() if threads is None else threads
    threads = max(1, min(threads, draws))
    if threads == 1:
        kernel(*head, 0, draws, *tail)
        return
    n_chunks = min(draws, 16 * threads)  # many chunks a thread: draws differ in size
    bounds = np.linspace(0, draws, n_chunks + 1).astype(np.int64)
    with ThreadPoolExecutor(threads) as pool:
        jobs = [
            pool.submit(kernel, *head, lo, hi, *tail)
            for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)
        ]
        for job in jobs:
            job.result()


def arrivals(counts, ppq_counts, starts, days, keys, n_jobs, threads=None):
    """Arrival days per draw, sorted (inf = padding), and which are PPQ lots.

    Given a month's count ``n``, arrival times are uniform over the month (a Poisson
    process). Their order statistics are drawn already sorted, as the cumulative sums of
    ``n + 1`` exponential spacings divided by their total (no sort). A cell with PPQ lots
    draws ``n`` uniforms and sorts them instead; its first ``ppq_counts`` jobs (before
    sorting) are the PPQ lots.
    """
    draws = counts.shape[0]
    out = np.full((draws, n_jobs), np.inf)
    is_ppq = np.zeros((draws, n_jobs), np.bool_)
    in_chunks(
        _arrivals_chunk, (counts, ppq_counts, starts, days, keys), (out, is_ppq), draws, threads
    )
    return out, is_ppq


@numba.njit(cache=True, nogil=True)
def _arrivals_chunk(counts, ppq_counts, starts, days, keys, lo, hi, out, is_ppq):
    """:func:`arrivals` of draws ``[lo, hi)``."""
    n_months = counts.shape[1]
    for d in range(lo, hi):
        key = stream_key(keys[d], ARRIVAL)
        end_key = stream_key(keys[d], ARRIVAL_END)
        largest = 0
        for m in range(n_months):
            largest = max(largest, counts[d, m] + ppq_counts[d, m])
        buffer = np.empty(largest)
        pos = 0
        for m in range(n_months):
            n_ppq = ppq_counts[d, m]
            n = counts[d, m] + n_ppq
            if n == 0:
                continue
            u = buffer[:n]
            top = np.nextafter(starts[m] + days[m], -np.inf)  # inside the month when rounded
            if n_ppq == 0:
                total = 0.0
                for j in range(n):
                    total -= math.log(unit_uniform(key, pos + j))
                    u[j] = total
                total -= math.log(unit_uniform(end_key, m))
                scale = days[m] / total
                for j in range(n):
                    out[d, pos + j] = min(starts[m] + u[j] * scale, top)
            else:
                for j in range(n):
                    u[j] = unit_uniform(key, pos + j)
                order = np.argsort(u, kind="mergesort")
                for j in range(n):
                    out[d, pos + j] = min(starts[m] + u[order[j]] * days[m], top)
                    is_ppq[d, pos + j] = order[j] < n_ppq
            pos += n


def patient_days(arrivals, is_ppq):
    """Arrival days of patients (not PPQ lots), NaN elsewhere."""
    return np.where((arrivals < np.inf) & ~is_ppq, arrivals, np.nan)


def job_processes(counts, ppq_counts, is_ppq, keys, threads=None):
    """The process of every job: ``counts[d, m, p]`` patients (``ppq_counts`` PPQ lots) of
    process ``p`` arrive in month ``m`` of draw ``d``, laid out as :func:`arrivals` lays out
    the month's jobs. Arrival times within a month are exchangeable, so the month's patients
    take its process labels in a uniformly random order (a Fisher-Yates shuffle), and so do
    its PPQ lots (streams of their own)."""
    out = np.zeros(is_ppq.shape, np.int64)
    in_chunks(
        _job_processes_chunk, (counts, ppq_counts, is_ppq, keys), (out,), counts.shape[0], threads
    )
    return out


@numba.njit(cache=True, nogil=True)
def _job_processes_chunk(counts, ppq_counts, is_ppq, keys, lo, hi, out):
    """:func:`job_processes` of draws ``[lo, hi)``."""
    n_months, n_proc = counts.shape[1], counts.shape[2]
    for d in range(lo, hi):
        key = stream_key(keys[d], PROCESS)
        ppq_key = stream_key(keys[d], PROCESS_PPQ)
        largest = 1
        for m in range(n_months):
            n = 0
            for p in range(n_proc):
                n += counts[d, m, p] + ppq_counts[d, m, p]
            largest = max(largest, n)
        labels = np.empty(largest, np.int64)
        ppq_labels = np.empty(largest, np.int64)
        pos = 0
        for m in range(n_months):
            n = 0
            n_ppq = 0
            for p in range(n_proc):
                for _ in range(counts[d, m, p]):
                    labels[n] = p
                    n += 1
                for _ in range(ppq_counts[d, m, p]):
                    ppq_labels[n_ppq] = p
                    n_ppq += 1
            for j in range(n - 1, 0, -1):
                i = int(unit_uniform(key, pos + j) * (j + 1))
                labels[i], labels[j] = labels[j], labels[i]
            for j in range(n_ppq - 1, 0, -1):
                i = int(unit_uniform(ppq_key, pos + j) * (j + 1))
                ppq_labels[i], ppq_labels[j] = ppq_labels[j], ppq_labels[i]
            a = 0
            b = 0
            for j in range(pos, pos + n + n_ppq):
                if is_ppq[d, j]:
                    out[d, j] = ppq_labels[b]
                    b += 1
                else:
                    out[d, j] = labels[a]
                    a += 1
            pos += n + n_ppq


def simulate_draws(*args, threads=None):
    """Simulate every draw; returns (monthly (draw, month, N_MONTHLY), patient waits).

    ``args``: those of :func:`_simulate_chunk` before ``lo`` (``arrivals``, ``is_ppq``, ...,
    ``count_from``), in its order.

    ``job_process[d, j]`` is the process ``p`` of job ``j``: its lots' culture and changeover
    follow ``culture_kind[p], culture_args[p]`` (mean ``culture_mean[d, p]``) and the
    changeover's, fail release with ``failure_rate[d, p]``, are known to fail
    ``turnaround[d, p]`` days after manufacture end, take ``qc_work_days[d, p]`` of QC, are
    made at most ``attempts[p]`` times and hold ``width[p]`` slots at once.
    ``online[d, :n_slots[d]]`` are the days draw ``d``'s slots come online (facilities of
    different sizes per draw share one call: service-level sizing bisects per draw).
    ``keys[d]`` seeds draw ``d``'s random numbers (culture and changeover of each lot, its
    release failure).
    ``late_limit[d]``: draw ``d`` stops once more than this many patients arriving from day
    ``count_from`` on have waited longer than ``threshold`` (``inf``: never stops); its
    later patients keep a ``nan`` wait and its monthly counts are partial. Service-level
    sizing only needs to know that the size fails, which the late patients simulated so far
    (``floor(late_limit) + 1``) already show.
    """
    arrivals, month_starts = args[0], args[16]
    draws, n_primary = arrivals.shape
    monthly = np.zeros((draws, month_starts.shape[0], N_MONTHLY))
    patient_wait = np.full((draws, n_primary), np.nan)
    in_chunks(_simulate_chunk, args, (monthly, patient_wait), draws, threads)
    return monthly, patient_wait


@numba.njit(cache=True, nogil=True)
def _simulate_chunk(
    arrivals,
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
    online,
    n_slots,
    turnaround,
    qc_work_days,
    max_wait,
    month_starts,
    month_ends,
    threshold,
    attempts,
    width,
    late_limit,
    count_from,
    lo,
    hi,
    monthly,
    patient_wait,
):
    """:func:`simulate_draws` of draws ``[lo, hi)``."""
    for d in range(lo, hi):
        _one_draw(
            arrivals[d],
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
            online[d, : n_slots[d]],
            turnaround[d],
            qc_work_days[d],
            max_wait,
            month_starts,
            month_ends,
            threshold,
            attempts,
            width,
            late_limit[d],
            count_from,
            monthly[d],
            patient_wait[d],
        )


@numba.njit(cache=True)
def _select(a, n, k):
    """Reorder ``a[:n]`` so that ``a[k]`` is its k-th smallest value, with nothing larger
    before it and nothing smaller after it (Hoare's selection); returns ``a[k]``."""
    lo = 0
    hi = n - 1
    while lo < hi:
        pivot = a[(lo + hi) // 2]
        i = lo
        j = hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            break
    return a[k]


@numba.njit(cache=True, inline="always")
def _sift_down(heap, n, i):
    """Restore the min-heap ``heap[:n]`` after ``heap[i]`` grew."""
    value = heap[i]
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n and heap[child + 1] < heap[child]:
            child += 1
        if heap[child] >= value:
            break
        heap[i] = heap[child]
        i = child
    heap[i] = value


@numba.njit(cache=True, inline="always")
def _heap_push(heap, n, value):
    """Push ``value`` on the min-heap ``heap[:n]`` (``n + 1`` after)."""
    i = n
    while i > 0:
        parent = (i - 1) // 2
        if heap[parent] <= value:
            break
        heap[i] = heap[parent]
        i = parent
    heap[i] = value


@numba.njit(cache=True, inline="always")
def _before(t1, j1, t2, j2):
    return t1 < t2 or (t1 == t2 and j1 < j2)


@numba.njit(cache=True, inline="always")
def _pend_push(times, jobs, n, t, job):
    """Push (t, job) on the min-heap of re-runs ``times[:n], jobs[:n]`` (ties: lower job)."""
    i = n
    while i > 0:
        parent = (i - 1) // 2
        if not _before(t, job, times[parent], jobs[parent]):
            break
        times[i] = times[parent]
        jobs[i] = jobs[parent]
        i = parent
    times[i] = t
    jobs[i] = job


@numba.njit(cache=True, inline="always")
def _pend_pop(times, jobs, n):
    """Remove the root of the re-run heap of size ``n`` (``n - 1`` left)."""
    n -= 1
    t, job = times[n], jobs[n]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n and _before(times[child + 1], jobs[child + 1], times[child], jobs[child]):
            child += 1
        if not _before(times[child], jobs[child], t, job):
            break
        times[i] = times[child]
        jobs[i] = jobs[child]
        i = child
    if n > 0:
        times[i] = t
        jobs[i] = job


@numba.njit(cache=True)
def _one_draw(
    arrivals,
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
    online,
    turnaround,
    qc_work_days,
    max_wait,
    month_starts,
    month_ends,
    threshold,
    attempts,
    width,
    late_limit,
    count_from,
    monthly,
    patient_wait,
):
    n_primary = arrivals.shape[0]
    n_months = month_starts.shape[0]
    n_slots = online.shape[0]
    culture_key = stream_key(key, CULTURE)
    changeover_key = stream_key(key, CHANGEOVER)
    fail_key = stream_key(key, FAIL)
    free = np.sort(online)  # a sorted array is a min-heap of the slots' free times
    popped = np.empty(width.max())
    pend_time = np.empty(n_primary)  # min-heap of re-runs: (time the failure is known, job)
    pend_job = np.empty(n_primary, np.int64)
    n_pend = 0
    attempt_of = np.zeros(n_primary, np.int64)
    job_month = np.empty(n_primary, np.int64)  # the patient's month of arrival
    queued_qc = qc_work_days.max() > 0  # else QC starts at manufacture end: no second queue
    most = attempts.max()  # a lot's index: job * most + attempt
    max_lots = n_primary * most if queued_qc else 0
    lot_job = np.empty(max_lots, np.int64)
    lot_end = np.empty(max_lots)
    lot_released = np.zeros(max_lots, np.bool_)
    n_lots = 0
    n_late = 0  # patients from count_from on who waited longer than threshold
    ptr = 0
    month = 0  # month of arrivals[ptr]
    start_month = 0  # month of the latest start (starts never decrease: first come, first
    # served in time order, and the earliest free slot only gets later)
    while True:
        a_p = arrivals[ptr] if ptr < n_primary else np.inf
        a_r = pend_time[0] if n_pend > 0 else np.inf
        if a_r < a_p:
            job = pend_job[0]
            arrival = a_r
            _pend_pop(pend_time, pend_job, n_pend)
            n_pend -= 1
            rerun = True
        elif a_p < np.inf:
            job = ptr
            arrival = a_p
            while month < n_months and month_ends[month] <= a_p:
                month += 1
            job_month[job] = month
            ptr += 1
            rerun = False
        else:
            break
        ppq = is_ppq[job] and not rerun
        p = job_process[job]
        w = width[p]
        if w == 1:
            start = max(arrival, free[0])
        else:  # the lot needs w slots at once: it starts when the w-th is free
            for i in range(w):
                popped[i] = free[0]
                free[0] = free[n_slots - 1 - i]
                _sift_down(free, n_slots - 1 - i, 0)
            start = max(arrival, popped[w - 1])
        wait = start - arrival
        m = job_month[job]  # the patient's month, re-runs included
        counted = (not is_ppq[job]) and m < n_months
        if counted and not rerun:
            monthly[m, COUNT] += 1
            if wait > threshold or (max_wait >= 0 and wait > max_wait):
                monthly[m, OVER] += 1
        if max_wait >= 0 and not ppq and wait > max_wait:  # fresh material: turned away
            if counted:
                monthly[m, LOST] += 1
            continue
        if counted and not rerun:
            monthly[m, WAIT_SUM] += wait
            monthly[m, SERVED] += 1
            patient_wait[job] = wait
            if wait > threshold and arrival >= count_from:
                n_late += 1
                if n_late > late_limit:  # the size fails: nothing later changes that
                    break
        attempt = attempt_of[job]
        lot = job * most + attempt
        end = start + sample(culture_kind[p], culture_args[p], culture_mean[p], culture_key, lot)
        slot_end = end + sample(
            changeover_kind[p], changeover_args[p], changeover_mean[p], changeover_key, lot
        )
        if w == 1:
            free[0] = slot_end
            _sift_down(free, n_slots, 0)
        else:
            for i in range(w):
                _heap_push(free, n_slots - w + i, slot_end)
        # slot-days busy, by calendar month
        while start_month < n_months and month_ends[start_month] <= start:
            start_month += 1
        while start_month > 0 and month_ends[start_month - 1] > start:  # never taken
            start_month -= 1
        mm = start_month
        while mm < n_months and month_starts[mm] < slot_end:
            monthly[mm, BUSY] += w * (min(slot_end, month_ends[mm]) - max(start, month_starts[mm]))
            mm += 1
        rate = failure_rate[p]
        failed = (not ppq) and rate > 0 and unit_uniform(fail_key, lot) < rate
        if failed and attempt + 1 < attempts[p]:
            _pend_push(pend_time, pend_job, n_pend, end + turnaround[p], job)
            n_pend += 1
            attempt_of[job] += 1
        elif failed and counted:
            monthly[m, LOST] += 1
        if queued_qc:
            lot_job[n_lots] = job
            lot_end[n_lots] = end
            lot_released[n_lots] = not failed
            n_lots += 1
        elif not failed and counted:  # QC starts at manufacture end
            monthly[m, RELEASED] += 1
            monthly[m, RELEASE_SUM] += end + turnaround[p] - arrivals[job]

    if queued_qc:  # FIFO in order of manufacture end; release = QC start + longest turnaround
        order = np.argsort(lot_end[:n_lots], kind="mergesort")
        done = -np.inf
        for i in range(n_lots):
            lot = order[i]
            job = lot_job[lot]
            p = job_process[job]
            qc_start = max(lot_end[lot], done)
            done = qc_start + qc_work_days[p]
            if lot_released[lot] and not is_ppq[job]:
                m = job_month[job]
                if m < n_months:
                    monthly[m, RELEASED] += 1
                    monthly[m, RELEASE_SUM] += qc_start + turnaround[p] - arrivals[job]
                    monthly[m, QC_WAIT_SUM] += qc_start - lot_end[lot]

    # P95 of first-slot waits per month of arrival (linear interpolation); patients are in
    # arrival order, so a month's patients are consecutive
    buffer = np.empty(n_primary)
    j = 0
    for m in range(n_months):
        n = 0
        while j < ptr and job_month[j] == m:
            if not np.isnan(patient_wait[j]):
                buffer[n] = patient_wait[j]
                n += 1
            j += 1
        if n == 0:
            monthly[m, P95] = np.nan
            continue
        pos = (n - 1) * 0.95
        lo = int(np.floor(pos))
        v_lo = _select(buffer, n, lo)
        v_hi = v_lo  # the next order statistic: the smallest value after lo
        for i in range(lo + 1, n):
            if i == lo + 1 or buffer[i] < v_hi:
                v_hi = buffer[i]
        monthly[m, P95] = v_lo + (v_hi - v_lo) * (pos - lo)
