"""Compiled core of the facility simulation: one draw's queue, QC queue and monthly summary.

Numba earns its place here: the queue is sequential within a draw (each patient's start
depends on every earlier one), so a compiled loop over patients, run for the draws in parallel,
replaces Python-level stepping. All random numbers are drawn by the caller in NumPy.
"""

from __future__ import annotations

import numba
import numpy as np

# monthly outputs, in this order along the last axis of ``monthly``
from capacity._fields import (
    BUSY,
    COUNT,
    LOST,
    N_MONTHLY,
    OVER,
    P95,
    QC_WAIT_SUM,
    RELEASE_SUM,
    RELEASED,
    SERVED,
    WAIT_SUM,
)


@numba.njit(cache=True, parallel=True)
def simulate_draws(
    arrivals,
    is_ppq,
    culture,
    changeover,
    fails,
    online,
    n_slots,
    turnaround,
    qc_work_days,
    max_wait,
    month_starts,
    month_ends,
    threshold,
    attempts,
):
    """Simulate every draw; returns (monthly (draw, month, N_MONTHLY), patient waits).

    ``online[d, :n_slots[d]]`` are the days draw ``d``'s slots come online (facilities of
    different sizes per draw share one call: service-level sizing bisects per draw).
    """
    draws, n_primary = arrivals.shape
    n_months = month_starts.shape[0]
    monthly = np.zeros((draws, n_months, N_MONTHLY))
    patient_wait = np.full((draws, n_primary), np.nan)
    for d in numba.prange(draws):
        _one_draw(
            d,
            arrivals[d],
            is_ppq[d],
            culture[d],
            changeover[d],
            fails[d],
            online[d, : n_slots[d]],
            turnaround[d],
            qc_work_days[d],
            max_wait,
            month_starts,
            month_ends,
            threshold,
            attempts,
            monthly[d],
            patient_wait[d],
        )
    return monthly, patient_wait


@numba.njit(cache=True)
def _month_of(day, month_ends):
    return np.searchsorted(month_ends, day, side="right")


@numba.njit(cache=True)
def _one_draw(
    d,
    arrivals,
    is_ppq,
    culture,
    changeover,
    fails,
    online,
    turnaround,
    qc_work_days,
    max_wait,
    month_starts,
    month_ends,
    threshold,
    attempts,
    monthly,
    patient_wait,
):
    n_primary = arrivals.shape[0]
    n_months = month_starts.shape[0]
    n_slots = online.shape[0]
    free = online.copy()
    pend_time = np.empty(n_primary)
    pend_job = np.empty(n_primary, np.int64)
    n_pend = 0
    attempt_of = np.zeros(n_primary, np.int64)
    max_lots = n_primary * attempts
    lot_job = np.empty(max_lots, np.int64)
    lot_end = np.empty(max_lots)
    lot_released = np.zeros(max_lots, np.bool_)
    n_lots = 0
    ptr = 0
    while True:
        a_p = arrivals[ptr] if ptr < n_primary else np.inf
        k = -1
        a_r = np.inf
        for i in range(n_pend):
            if pend_time[i] < a_r:
                a_r = pend_time[i]
                k = i
        if a_r < a_p:
            job = pend_job[k]
            arrival = a_r
            n_pend -= 1
            pend_time[k] = pend_time[n_pend]
            pend_job[k] = pend_job[n_pend]
            rerun = True
        elif a_p < np.inf:
            job = ptr
            arrival = a_p
            ptr += 1
            rerun = False
        else:
            break
        ppq = is_ppq[job] and not rerun
        slot = 0
        for s in range(1, n_slots):
            if free[s] < free[slot]:
                slot = s
        start = max(arrival, free[slot])
        wait = start - arrival
        m = _month_of(arrivals[job], month_ends)  # the patient's month, re-runs included
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
        attempt = attempt_of[job]
        lot = job * attempts + attempt
        end = start + culture[lot]
        slot_end = end + changeover[lot]
        free[slot] = slot_end
        # slot-days busy, by calendar month
        mm = _month_of(start, month_ends)
        while mm < n_months and month_starts[mm] < slot_end:
            lo = max(start, month_starts[mm])
            hi = min(slot_end, month_ends[mm])
            monthly[mm, BUSY] += hi - lo
            mm += 1
        failed = (not ppq) and fails[lot]
        if failed and attempt + 1 < attempts:
            pend_time[n_pend] = end + turnaround
            pend_job[n_pend] = job
            n_pend += 1
            attempt_of[job] += 1
        elif failed and counted:
            monthly[m, LOST] += 1
        lot_job[n_lots] = job
        lot_end[n_lots] = end
        lot_released[n_lots] = not failed
        n_lots += 1

    # QC: FIFO in order of manufacture end; release = QC start + longest turnaround
    order = np.argsort(lot_end[:n_lots])
    done = -np.inf
    for i in range(n_lots):
        lot = order[i]
        qc_start = max(lot_end[lot], done)
        done = qc_start + qc_work_days
        job = lot_job[lot]
        if lot_released[lot] and not is_ppq[job]:
            m = _month_of(arrivals[job], month_ends)
            if m < n_months:
                monthly[m, RELEASED] += 1
                monthly[m, RELEASE_SUM] += qc_start + turnaround - arrivals[job]
                monthly[m, QC_WAIT_SUM] += qc_start - lot_end[lot]

    # P95 of first-slot waits per month of arrival (linear interpolation)
    counts = np.zeros(n_months, np.int64)
    month_of_patient = np.full(n_primary, -1, np.int64)
    for j in range(n_primary):
        if not np.isnan(patient_wait[j]):
            m = _month_of(arrivals[j], month_ends)
            month_of_patient[j] = m
            counts[m] += 1
    offsets = np.zeros(n_months + 1, np.int64)
    for m in range(n_months):
        offsets[m + 1] = offsets[m] + counts[m]
    buffer = np.empty(offsets[n_months])
    fill = offsets[:-1].copy()
    for j in range(n_primary):
        m = month_of_patient[j]
        if m >= 0:
            buffer[fill[m]] = patient_wait[j]
            fill[m] += 1
    for m in range(n_months):
        n = counts[m]
        if n == 0:
            monthly[m, P95] = np.nan
            continue
        values = np.sort(buffer[offsets[m] : offsets[m + 1]])
        pos = (n - 1) * 0.95
        lo = int(np.floor(pos))
        hi = min(lo + 1, n - 1)
        monthly[m, P95] = values[lo] + (values[hi] - values[lo]) * (pos - lo)
