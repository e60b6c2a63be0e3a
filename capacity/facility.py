"""Day-level facility simulation for every demand draw at once, and service-level sizing.

Patients of each month arrive as a Poisson process (given the month's count, arrival times are
uniform over the month). Lots are served first come, first served by ``suites x lots_per_suite``
slots; a lot holds its slot for its culture time plus changeover. A lot fails release with the
draw's failure rate and, up to ``max_remanufacture`` times, re-queues as a new job when the
failure is known (manufacture end + the panel's longest turnaround). With ``max_wait_days`` and
fresh (not cryopreserved) material, a patient who would wait longer is lost. QC is a second
queue: lots enter in order of manufacture end, each needs the panel's hands-on hours, analysts
supply ``qc_fte x productive hours / 365`` hours a day, and release = QC start + the longest
turnaround.

The simulation is vectorised over draws: one loop runs over the *sequence* of jobs (the k-th
job to arrive in every draw is handled in the same NumPy step), never over draws or months.
Random numbers are drawn per patient and attempt before the loop, so two facilities simulated
with the same seed see the same patients (common random numbers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from capacity.demand import as_demand
from capacity.errors import InputError
from capacity.process import ProcessSpec, load_process, stream_rng

__all__ = ["simulate_facility", "suites_for_service_level", "erlang_c_wait_probability"]

Service = Literal["process", "fixed", "exponential"]
_PENDING = 64  # re-runs waiting to re-enter the queue at once, per draw


def erlang_c_wait_probability(
    arrivals_per_day: float, service_days: float, servers: int, t_days: float
) -> float:
    """P(wait > t) in an M/M/c queue (Erlang C): C(c, a) exp(-(c mu - lambda) t)."""
    from scipy import special

    a = arrivals_per_day * service_days
    if a >= servers:
        return 1.0
    k = np.arange(servers)
    log_terms = k * np.log(a) - special.gammaln(k + 1)
    log_last = servers * np.log(a) - special.gammaln(servers + 1) + np.log(servers / (servers - a))
    c = np.exp(log_last - np.logaddexp(special.logsumexp(log_terms), log_last))
    return float(c * np.exp(-(servers / service_days - arrivals_per_day) * t_days))


def _slot_online_days(
    suites: int | Sequence[int] | pd.Series, months: pd.DatetimeIndex, lots_per_suite: int
) -> np.ndarray:
    """Day (since the first month) each slot comes online; inf for slots never installed."""
    if isinstance(suites, pd.Series):
        index = pd.DatetimeIndex(pd.to_datetime(suites.index))
        missing = months.difference(index)
        if len(missing):
            raise InputError(f"suites: no value for month {missing[0].date()}")
        per_month = suites.set_axis(index).reindex(months).to_numpy()
    else:
        per_month = np.broadcast_to(np.asarray(suites), (len(months),))
    if (per_month < 0).any() or (per_month != np.round(per_month)).any():
        raise InputError("suites: installed suites must be whole numbers >= 0")
    if (np.diff(per_month) < 0).any():
        raise InputError("suites: installed suites can only grow over the horizon")
    per_month = per_month.astype(int)
    starts = (months - months[0]).days.to_numpy(float)
    slots = int(per_month.max()) * lots_per_suite
    online = np.full(slots, np.inf)
    for j in range(slots):  # a few dozen slots, not draws or months
        first = np.flatnonzero(per_month * lots_per_suite > j)
        online[j] = starts[first[0]] if len(first) else np.inf
    return online


def simulate_facility(
    demand: xr.DataArray,
    process: ProcessSpec | str,
    suites: int | Sequence[int] | pd.Series,
    *,
    qc_fte: float | None = None,
    max_wait_days: float | None = None,
    cryopreserved: bool = False,
    wait_threshold_days: float = 2.0,
    service: Service = "process",
    seed: int | None = None,
) -> xr.Dataset:
    """Simulate one facility day by day for every demand draw.

    Parameters
    ----------
    demand
        Demand draws (the demand contract); patients of all programs and clinical and
        commercial streams share the facility; ``ppq`` lots use slots but never wait-out or
        re-run.
    process
        The facility's process. Culture and changeover days are drawn per lot from their
        distributions (``service="process"``), fixed at each draw's mean (``"fixed"``), or
        exponential with that mean (``"exponential"``, for checks against M/M/c).
    suites
        Installed suites: a number, or one value per month (a module coming online).
    qc_fte
        QC analysts; ``None`` means QC capacity never queues.
    max_wait_days, cryopreserved
        Fresh material: a patient who would wait longer than ``max_wait_days`` is lost.
        Cryopreserved material waits.
    wait_threshold_days
        ``share_waiting_over`` counts patients waiting longer than this.

    Returns
    -------
    xarray.Dataset
        Per draw and month of arrival: ``patients``, ``wait_mean_days`` and ``wait_p95_days``
        (wait for the first slot, patients served), ``share_waiting_over`` (waiting longer
        than the threshold or turned away), ``patients_lost`` (turned away, or failed after
        the last re-run), ``qc_wait_mean_days`` and ``release_days_mean`` (apheresis to
        release of the lot that is released, re-runs included); per draw and calendar month:
        ``slots_busy`` (average slots occupied) and ``slot_utilisation``; per draw and
        patient (in arrival order, so facilities simulated with one seed line up):
        ``patient_wait_days`` and ``patient_arrival_day``.
    """
    demand = as_demand(demand)
    spec = load_process(process)
    seed = int(demand.attrs.get("seed", 0)) if seed is None else int(seed)
    months = pd.DatetimeIndex(demand["month"].values)
    draws = demand.sizes["draw"]
    streams = list(map(str, demand["stream"].values))
    patient_cols = [i for i, s in enumerate(streams) if s != "ppq"]
    ppq_cols = [i for i, s in enumerate(streams) if s == "ppq"]
    counts = demand.values[..., patient_cols].sum(axis=(2, 3))
    ppq_counts = demand.values[..., ppq_cols].sum(axis=(2, 3))
    online = _slot_online_days(suites, months, spec.lots_per_suite)
    if len(online) == 0:
        raise InputError("suites: the facility has no suites")
    par = spec.sample(draws, stream_rng(seed, "facility-process", spec.name))
    rng = stream_rng(seed, "facility", spec.name)

    # ---- arrivals: per draw, sorted days since the first month (inf = padding) ----------
    starts = (months - months[0]).days.to_numpy(float)
    days = months.days_in_month.to_numpy(float)
    arrivals, is_ppq = _arrivals(counts, ppq_counts, starts, days, rng)
    n_jobs = arrivals.shape[1]
    attempts = spec.max_remanufacture + 1

    # ---- per patient and attempt random numbers (common across facilities) -------------
    culture_mean = par["culture_days"].values[:, None, None]
    changeover_mean = par["changeover_days"].values[:, None, None]
    shape = (draws, n_jobs, attempts)
    if service == "process":
        culture = _per_lot(spec.culture_days, shape, rng)
        changeover = _per_lot(spec.changeover_days, shape, rng)
    elif service == "fixed":
        culture = np.broadcast_to(culture_mean, shape)
        changeover = np.broadcast_to(changeover_mean, shape)
    elif service == "exponential":
        culture = rng.exponential(1.0, shape) * culture_mean
        changeover = np.broadcast_to(changeover_mean, shape)
    else:
        raise InputError(f"service must be 'process', 'fixed' or 'exponential', got {service!r}")
    fails = rng.random(shape) < par["failure_rate"].values[:, None, None]
    turnaround = par["qc_turnaround_days"].values.max(axis=1)

    jobs = _run_queue(
        arrivals,
        is_ppq,
        culture,
        changeover,
        fails,
        online,
        turnaround,
        max_wait_days if not cryopreserved else None,
    )
    qc_hours_per_lot = (
        (par["qc_tests_per_lot"] * par["qc_hands_on_hours"] * (1 + par["qc_retest_rate"]))
        .sum("assay")
        .values
    )
    if qc_fte is None:
        qc_start = jobs["end"].copy()
    else:
        if qc_fte <= 0:
            raise InputError("qc_fte must be > 0 (or None for unlimited QC capacity)")
        hours_per_day = qc_fte * par["productive_hours_per_fte_year"].values / 365.0
        qc_start = _qc_queue(jobs["end"], qc_hours_per_lot / hours_per_day)
    release = qc_start + turnaround[:, None]

    return _summarise(
        jobs,
        qc_start,
        release,
        arrivals,
        is_ppq,
        months,
        starts,
        days,
        online,
        wait_threshold_days,
        attrs={
            "seed": seed,
            "process": spec.name,
            "service": service,
            "max_wait_days": -1.0 if max_wait_days is None else float(max_wait_days),
            "cryopreserved": int(cryopreserved),
            "qc_fte": -1.0 if qc_fte is None else qc_fte,
            "wait_threshold_days": float(wait_threshold_days),
        },
    )


def _per_lot(param, shape, rng) -> np.ndarray:
    """Lot-to-lot draws of a process parameter (a fixed value is repeated)."""
    return param.sample(int(np.prod(shape)), rng).reshape(shape)


def _arrivals(counts, ppq_counts, starts, days, rng):
    """Uniform arrival days within each month (Poisson given the count), sorted per draw."""
    draws = counts.shape[0]
    total = counts + ppq_counts
    n_jobs = int(total.sum(axis=1).max()) if total.size else 0
    arrivals = np.full((draws, max(n_jobs, 1)), np.inf)
    is_ppq = np.zeros_like(arrivals, dtype=bool)
    per_draw = total.sum(axis=1)
    # flat list of (draw, month, ppq?) for every job, then uniform times within the month
    draw_idx = np.repeat(np.repeat(np.arange(draws), total.shape[1]), total.ravel())
    month_idx = np.repeat(np.tile(np.arange(total.shape[1]), draws), total.ravel())
    rank = np.arange(len(draw_idx)) - np.repeat(
        np.cumsum(total.ravel()) - total.ravel(), total.ravel()
    )
    ppq_flag = rank < np.repeat(ppq_counts.ravel(), total.ravel())
    times = starts[month_idx] + rng.random(len(draw_idx)) * days[month_idx]
    order = np.lexsort((times, draw_idx))
    position = np.arange(len(order)) - np.repeat(np.cumsum(per_draw) - per_draw, per_draw)
    arrivals[draw_idx[order], position] = times[order]
    is_ppq[draw_idx[order], position] = ppq_flag[order]
    return arrivals, is_ppq


def _run_queue(arrivals, is_ppq, culture, changeover, fails, online, turnaround, max_wait):
    """FCFS over slots, one job per draw per step, re-runs merged in arrival order."""
    draws, n_primary = arrivals.shape
    attempts = culture.shape[2]
    rows = np.arange(draws)
    free = np.broadcast_to(online, (draws, len(online))).copy()
    pend_time = np.full((draws, _PENDING), np.inf)
    pend_job = np.zeros((draws, _PENDING), dtype=np.int64)
    pend_attempt = np.zeros((draws, _PENDING), dtype=np.int64)
    ptr = np.zeros(draws, dtype=np.int64)

    steps = n_primary * attempts
    out = {k: np.full((draws, steps), np.nan) for k in ("arrival", "start", "end", "slot_end")}
    flags = {k: np.zeros((draws, steps), bool) for k in ("lost", "rerun", "ppq", "released")}
    patient_lost_at = np.full((draws, steps), False)
    job_of = np.full((draws, steps), -1, dtype=np.int64)
    step = 0
    while True:
        next_primary = np.where(
            ptr < n_primary, arrivals[rows, np.minimum(ptr, n_primary - 1)], np.inf
        )
        k = pend_time.argmin(axis=1)
        next_rerun = pend_time[rows, k]
        take_rerun = next_rerun < next_primary
        arrival = np.minimum(next_primary, next_rerun)
        active = np.isfinite(arrival)
        if not active.any() or step >= steps:
            break
        job = np.where(take_rerun, pend_job[rows, k], np.minimum(ptr, n_primary - 1))
        attempt = np.where(take_rerun, pend_attempt[rows, k], 0)
        ppq = is_ppq[rows, job] & ~take_rerun
        pend_time[rows[take_rerun], k[take_rerun]] = np.inf
        ptr += active & ~take_rerun

        slot = free.argmin(axis=1)
        start = np.maximum(arrival, free[rows, slot])
        with np.errstate(invalid="ignore"):  # inf - inf in draws already finished
            wait = start - arrival
        lost = active & ~ppq & (wait > max_wait) if max_wait is not None else np.zeros(draws, bool)
        served = active & ~lost
        cult = culture[rows, job, attempt]
        end = start + cult
        slot_end = end + changeover[rows, job, attempt]
        free[rows[served], slot[served]] = slot_end[served]

        failed = served & ~ppq & fails[rows, job, attempt]
        retry = failed & (attempt + 1 < attempts)
        if retry.any():
            free_pend = pend_time[retry].argmax(axis=1)  # an inf entry (argmax of inf first)
            r = rows[retry]
            pend_time[r, free_pend] = (end + turnaround)[retry]
            pend_job[r, free_pend] = job[retry]
            pend_attempt[r, free_pend] = attempt[retry] + 1
        out["arrival"][:, step] = np.where(active, arrival, np.nan)
        out["start"][:, step] = np.where(served, start, np.nan)
        out["end"][:, step] = np.where(served, end, np.nan)
        out["slot_end"][:, step] = np.where(served, slot_end, np.nan)
        flags["lost"][:, step] = lost
        patient_lost_at[:, step] = lost | (failed & ~retry)
        flags["rerun"][:, step] = active & take_rerun
        flags["ppq"][:, step] = active & ppq
        flags["released"][:, step] = served & ~failed
        job_of[:, step] = np.where(active, job, -1)
        step += 1
    jobs = {k: v[:, :step] for k, v in out.items()}
    jobs.update({k: v[:, :step] for k, v in flags.items()})
    jobs["patient_lost"] = patient_lost_at[:, :step]
    jobs["job"] = job_of[:, :step]
    jobs["wait"] = jobs["start"] - jobs["arrival"]
    return jobs


def _qc_queue(end: np.ndarray, work_days: np.ndarray) -> np.ndarray:
    """Lindley recursion of a FIFO QC queue in order of manufacture end; returns QC start."""
    order = np.argsort(np.where(np.isnan(end), np.inf, end), axis=1)
    sorted_end = np.take_along_axis(end, order, axis=1)
    start = np.full_like(sorted_end, np.nan)
    done = np.full(end.shape[0], -np.inf)
    for i in range(end.shape[1]):  # the sequence of lots, vectorised over draws
        e = sorted_end[:, i]
        ok = ~np.isnan(e)
        s = np.maximum(e, done)
        start[:, i] = np.where(ok, s, np.nan)
        done = np.where(ok, s + work_days, done)
    out = np.empty_like(start)
    np.put_along_axis(out, order, start, axis=1)
    return out


def _summarise(
    jobs, qc_start, release, arrivals, is_ppq, months, starts, days, online, threshold, attrs
):
    """Per-patient results (aligned by patient across facilities), then per draw and month."""
    draws, n_patients = arrivals.shape
    n_months = len(months)
    ends = starts + days
    rows = np.broadcast_to(np.arange(draws)[:, None], jobs["job"].shape)
    has_job = jobs["job"] >= 0
    r, j = rows[has_job], jobs["job"][has_job]

    def scatter(values, mask, fill=np.nan):
        out = np.full((draws, n_patients), fill, dtype=float)
        m = has_job & mask
        out[rows[m], jobs["job"][m]] = values[m]
        return out

    first = ~jobs["rerun"]
    wait = scatter(jobs["wait"], first)  # wait for the first slot; NaN if turned away
    turned_away = scatter(jobs["lost"].astype(float), first, 0.0) > 0
    lost = np.zeros((draws, n_patients), bool)
    np.logical_or.at(lost, (r, j), jobs["patient_lost"][has_job])
    released = jobs["released"]
    release_day = scatter(release, released)
    qc_wait = scatter(qc_start - jobs["end"], released)

    patient = np.isfinite(arrivals) & ~is_ppq
    month = np.searchsorted(ends, np.where(patient, arrivals, np.inf), side="right")
    patient &= month < n_months
    group = np.where(patient, np.arange(draws)[:, None] * n_months + month, -1)
    size = draws * n_months

    def per_month(values, mask):
        m = patient & mask
        return np.bincount(group[m], weights=values[m], minlength=size).reshape(draws, n_months)

    ones = np.ones((draws, n_patients))
    served = ~turned_away
    count = per_month(ones, patient)
    with np.errstate(invalid="ignore", divide="ignore"):
        wait_mean = per_month(np.nan_to_num(wait), served) / per_month(ones, served)
        over = (
            per_month(((np.nan_to_num(wait) > threshold) | turned_away).astype(float), patient)
            / count
        )
        done = ~np.isnan(release_day)
        to_release = per_month(np.nan_to_num(release_day - arrivals), done) / per_month(ones, done)
        qc_wait_mean = per_month(np.nan_to_num(qc_wait), done) / per_month(ones, done)
    wait_p95 = _group_quantile(np.where(patient & served, wait, np.nan), group, size, 0.95)
    patients_lost = per_month(lost.astype(float), patient)

    busy = _busy_slot_days(jobs["start"], jobs["slot_end"], starts, ends)
    available = np.clip(ends[None, :] - np.maximum(starts[None, :], online[:, None]), 0, None).sum(
        0
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        utilisation = busy / available[None, :]
    dims = ("draw", "month")
    ds = xr.Dataset(
        {
            "patients": (dims, count, {"units": "patients/month"}),
            "wait_mean_days": (dims, wait_mean, {"units": "days"}),
            "wait_p95_days": (dims, wait_p95, {"units": "days"}),
            "share_waiting_over": (dims, over, {"units": "fraction", "threshold_days": threshold}),
            "patients_lost": (dims, patients_lost, {"units": "patients/month"}),
            "qc_wait_mean_days": (dims, qc_wait_mean, {"units": "days"}),
            "release_days_mean": (dims, to_release, {"units": "days"}),
            "slots_busy": (dims, busy / days[None, :], {"units": "slots"}),
            "slot_utilisation": (dims, utilisation, {"units": "fraction"}),
            "patient_wait_days": (
                ("draw", "patient"),
                np.where(patient, wait, np.nan),
                {"units": "days"},
            ),
            "patient_arrival_day": (
                ("draw", "patient"),
                np.where(patient, arrivals, np.nan),
                {"units": "days since the first month"},
            ),
        },
        coords={"draw": np.arange(draws), "month": months},
        attrs={**attrs, "slots_installed_max": len(online)},
    )
    return ds


def _group_quantile(values: np.ndarray, group: np.ndarray, size: int, q: float) -> np.ndarray:
    """Quantile (linear interpolation) of ``values`` within each group id (NaN skipped)."""
    ok = ~np.isnan(values) & (group >= 0)
    g, v = group[ok], values[ok]
    order = np.lexsort((v, g))
    g, v = g[order], v[order]
    counts = np.bincount(g, minlength=size)
    first = np.cumsum(counts) - counts
    out = np.full(size, np.nan)
    has = counts > 0
    pos = (counts[has] - 1) * q
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, counts[has] - 1)
    frac = pos - lo
    out[has] = v[first[has] + lo] * (1 - frac) + v[first[has] + hi] * frac
    return out.reshape(group.shape[0], -1)


def _busy_slot_days(start, slot_end, month_starts, month_ends) -> np.ndarray:
    """Slot-days occupied in each month: overlap of [start, slot_end) with each month."""
    draws = start.shape[0]
    out = np.zeros((draws, len(month_starts)))
    ok = ~np.isnan(start)
    s, e = start[ok], slot_end[ok]
    d = np.broadcast_to(np.arange(draws)[:, None], start.shape)[ok]
    first = np.searchsorted(month_ends, s, side="right")
    span = int(np.ceil(np.max(e - s, initial=0) / 28.0)) + 2
    for k in range(span):  # months a lot can touch, a handful
        m = first + k
        inside = m < len(month_starts)
        overlap = np.clip(
            np.minimum(e[inside], month_ends[m[inside]])
            - np.maximum(s[inside], month_starts[m[inside]]),
            0,
            None,
        )
        out += np.bincount(
            d[inside] * len(month_starts) + m[inside], weights=overlap, minlength=out.size
        ).reshape(out.shape)
    return out


def suites_for_service_level(
    demand: xr.DataArray,
    process: ProcessSpec | str,
    *,
    max_wait_days: float = 2.0,
    epsilon: float = 0.05,
    candidates: Sequence[int] | None = None,
    seed: int | None = None,
    **simulate_kw,
) -> xr.Dataset:
    """Fewest suites such that P(wait > max_wait_days) <= epsilon, per draw (and per month).

    Every candidate facility sees the same patients (common random numbers). Waits are those
    of cryopreserved material (nobody is turned away while sizing). Returns ``suites_needed``
    (draw) over the horizon and ``suites_needed_by_month`` (draw, month); a draw that no
    candidate satisfies gets NaN. ``describe(result)`` prints the P50/P90 sentence.
    """
    if not 0 < epsilon < 1:
        raise InputError(f"epsilon must be in (0, 1), got {epsilon}")
    spec = load_process(process)
    demand = as_demand(demand)
    if candidates is None:
        peak = float(demand.sum(("program", "stream")).max())
        mean_days = spec.culture_days.mean + spec.changeover_days.mean
        little = peak / 28.0 * mean_days / spec.lots_per_suite
        candidates = range(max(1, int(little * 0.5)), int(little * 2.5) + 3)
    candidates = sorted(set(int(c) for c in candidates))
    draws, months = demand.sizes["draw"], demand.sizes["month"]
    horizon = np.full(draws, np.nan)
    by_month = np.full((draws, months), np.nan)
    for c in candidates:
        sim = simulate_facility(
            demand,
            spec,
            c,
            max_wait_days=None,
            cryopreserved=True,
            wait_threshold_days=max_wait_days,
            seed=seed,
            **simulate_kw,
        )
        waits = sim["patient_wait_days"].values
        with np.errstate(invalid="ignore"):
            share = np.nanmean(waits > max_wait_days, axis=1, where=~np.isnan(waits))
        meets = share <= epsilon
        horizon[np.isnan(horizon) & meets] = c
        month_ok = np.nan_to_num(sim["share_waiting_over"].values, nan=0.0) <= epsilon
        by_month[np.isnan(by_month) & month_ok] = c
        if not np.isnan(horizon).any() and not np.isnan(by_month).any():
            break
    coords = {"draw": np.arange(draws), "month": demand["month"].values}
    return xr.Dataset(
        {
            "suites_needed": ("draw", horizon, {"units": "suites"}),
            "suites_needed_by_month": (("draw", "month"), by_month, {"units": "suites"}),
        },
        coords=coords,
        attrs={"max_wait_days": max_wait_days, "epsilon": epsilon, "candidates": str(candidates)},
    )


def describe(result: xr.Dataset) -> str:
    """One sentence a planner can read off ``suites_for_service_level``."""
    need = result["suites_needed"].values
    p50, p90 = np.nanquantile(need, [0.5, 0.9])
    share = 100 * (1 - result.attrs["epsilon"])
    return (
        f"to keep {share:g}% of patients waiting under {result.attrs['max_wait_days']:g} days "
        f"you need {p50:.0f} suites at P50, {p90:.0f} at P90"
    )
