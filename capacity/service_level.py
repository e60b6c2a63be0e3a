"""Service-level sizing: the fewest suites that keep P(wait > ``max_wait_days``) <= ``epsilon``.

Each candidate size is run through the day-level facility simulation of
:mod:`capacity.simulation` with the same patients and lots (common random numbers), so "``c``
suites meet the level" is monotone in ``c`` and each draw's answer is found by a search that
simulates only the draws still unsettled.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import xarray as xr

from capacity._fields import COUNT, OVER
from capacity.demand import as_demand
from capacity.errors import InputError
from capacity.process import ProcessSpec
from capacity.simulation import prepare_facility, run_queue

__all__ = ["MAX_SUITES", "describe", "suites_for_service_level"]

MAX_SUITES = 1_000_000  # the largest facility the service-level search tries


def suites_for_service_level(
    demand: xr.DataArray,
    process: ProcessSpec | str,
    *,
    max_wait_days: float = 2.0,
    epsilon: float = 0.05,
    candidates: Sequence[int] | None = None,
    seed: int | None = None,
    by_month: bool = True,
    start: np.ndarray | None = None,
    **simulate_kw,
) -> xr.Dataset:
    """Fewest suites such that P(wait > max_wait_days) <= epsilon, per draw (and per month).

    Every facility size sees the same patients and lots (common random numbers), and with
    first-come-first-served slots and lot-bound culture times more suites never delay a
    patient, so "c suites meet the level" is monotone in c: each draw's answer is found by
    doubling until it is met, then bisection, simulating only the draws still unsettled
    (about 2 log2(answer) queue runs per draw instead of one per candidate). Waits are those
    of cryopreserved material (nobody is turned away while sizing). Every draw gets its
    answer (nothing is clamped to a search range); ``candidates``, if given, only sets
    where the search starts. Returns ``suites_needed`` (draw) over the horizon and
    ``suites_needed_by_month`` (draw, month; 0 in a month without patients);
    ``attrs["candidates"]`` lists the sizes simulated. ``describe(result)`` prints the
    P50/P90 sentence.

    ``by_month=False`` sizes the horizon only (no ``suites_needed_by_month``), which is several
    times cheaper; its search starts at each draw's own guess (``start``, one per draw, e.g.
    the draw's peak suite need from :func:`capacity.requirements`; by default the draw's
    busiest month by Little's law) and steps away from it by 10% of the guess, doubling the
    step each time (2, 4, 8... times), before bisecting: from each draw's peak suite need,
    the example portfolio's 200 draws took 1,004 queue runs (at most 9 for a draw). Each of
    its queue runs stops once more than ``epsilon`` of the draw's patients have waited
    longer than ``max_wait_days`` (the size fails whatever comes later; the same answers,
    0.85 of the search's CPU time on the example, ``benchmarks/bench_service_stop.py``).
    """
    if not 0 < epsilon < 1:
        raise InputError(f"epsilon must be in (0, 1), got {epsilon}")
    if not max_wait_days >= 0:
        raise InputError(f"max_wait_days must be >= 0, got {max_wait_days}")
    demand = as_demand(demand)
    unknown = sorted(set(simulate_kw) - {"qc_fte", "service", "opening", "params"})
    if unknown:
        raise InputError(f"suites_for_service_level: unexpected arguments {unknown}")
    prep = prepare_facility(
        demand,
        process,
        qc_fte=simulate_kw.get("qc_fte"),
        max_wait_days=None,
        cryopreserved=True,
        wait_threshold_days=max_wait_days,
        service=simulate_kw.get("service", "process"),
        seed=seed,
        opening=simulate_kw.get("opening"),
        params=simulate_kw.get("params"),
    )
    draws, months = demand.sizes["draw"], demand.sizes["month"]
    h = prep.n_hist
    if start is not None:
        start = np.asarray(start, float)
        if start.shape != (draws,):
            raise InputError(f"start: one guess per draw ({draws}), got shape {start.shape}")
        if not np.isfinite(start).all():
            raise InputError("start: every guess must be a finite number of suites")
        guess = np.clip(np.ceil(start), 1, MAX_SUITES).astype(np.int64)
    elif candidates is not None:
        guess = np.full(draws, max(1, min(int(c) for c in candidates)), np.int64)
    else:  # Little's law in the busiest month: the lots' average slot occupancy
        if len(prep.processes) == 1:
            lots = (
                np.isfinite(prep.arrivals)[:, :, None]
                & (prep.arrivals[:, :, None] >= prep.starts[None, None, h:])
                & (prep.arrivals[:, :, None] < (prep.starts + prep.days)[None, None, h:])
            ).sum(1)
            spec = prep.processes[0]
            slot_days = spec.culture_days.mean + spec.changeover_days.mean
            busy = lots * slot_days / prep.days[None, h:] / spec.lots_per_suite
        else:  # each lot's suite-days: its own process's
            suite_days = np.array(
                [
                    (s.culture_days.mean + s.changeover_days.mean) / s.lots_per_suite
                    for s in prep.processes
                ]
            )[prep.job_process]
            ends = (prep.starts + prep.days)[h:]
            month = np.searchsorted(ends, prep.arrivals, side="right")
            inside = np.isfinite(prep.arrivals) & (prep.arrivals >= prep.starts[h])
            inside &= month < len(ends)
            row = np.broadcast_to(np.arange(draws)[:, None], month.shape)
            busy = np.zeros((draws, len(ends)))
            np.add.at(busy, (row[inside], month[inside]), suite_days[inside])
            busy /= prep.days[None, h:]
        # by month: one start for every draw (the busiest draw's), as the months of a draw
        # search from it by doubling and halving; the horizon alone: each draw's own
        guess = np.full(draws, max(1, int(busy.max())), np.int64)
        if not by_month:
            guess = np.maximum(1, busy.max(axis=1).astype(np.int64))
    step = np.maximum(1, np.rint(0.1 * guess)).astype(np.int64)
    per_suite = prep.slots_per_suite
    lo = np.zeros(draws, np.int64)  # largest size known to fail (0: none known)
    hi = np.full(draws, -1, np.int64)  # smallest size known to meet (-1: none yet)
    lo_m = np.zeros((draws, months), np.int64)
    hi_m = np.full((draws, months), -1, np.int64)
    simulated: set[int] = set()
    runs = np.zeros(draws, np.int64)  # queue runs per draw
    keep_patient = np.isfinite(prep.arrivals) & ~prep.is_ppq
    keep_patient &= prep.arrivals >= prep.starts[h]
    while True:
        open_h = (hi < 0) | (hi - lo > 1)
        if by_month:
            open_m = (hi_m < 0) | (hi_m - lo_m > 1)
            todo = np.flatnonzero(open_h | open_m.any(axis=1))
        else:
            todo = np.flatnonzero(open_h)
        if not len(todo):
            break
        if by_month:
            # each unsettled draw's next size: its horizon interval first, then its first
            # open month; double until a size meets, then bisect
            month = np.argmax(open_m[todo], axis=1)
            a = np.where(open_h[todo], lo[todo], lo_m[todo, month])
            b = np.where(open_h[todo], hi[todo], hi_m[todo, month])
            size = np.where(b < 0, np.where(a == 0, guess[todo], 2 * a), (a + b) // 2)
        else:
            size = _gallop(lo[todo], hi[todo], guess[todo], step[todo])
        if size.max() > MAX_SUITES:
            raise InputError(f"service level: no facility up to {MAX_SUITES:,} suites meets it")
        simulated.update(int(c) for c in np.unique(size))
        slots = int(size.max()) * per_suite
        online = np.where(np.arange(slots)[None, :] < (size * per_suite)[:, None], 0.0, np.inf)
        n = keep_patient[todo].sum(axis=1)
        # the horizon alone: a draw's run stops once its late patients show the size fails
        # (its late count is then floor(epsilon * n) + 1, still a failure); by month, every
        # month's counts are needed
        limit = None if by_month else epsilon * n
        monthly, waits = run_queue(prep, online, todo, late_limit=limit)
        runs[todo] += 1
        late = np.where(keep_patient[todo], waits > max_wait_days, False).sum(axis=1)
        meets = late <= epsilon * n
        lo[todo] = np.where(meets, lo[todo], np.maximum(lo[todo], size))
        hi[todo] = np.where(
            meets, np.where(hi[todo] < 0, size, np.minimum(hi[todo], size)), hi[todo]
        )
        if not by_month:
            continue
        month_count = monthly[:, h:, COUNT]
        month_ok = monthly[:, h:, OVER] <= epsilon * month_count
        sz = size[:, None]
        lo_m[todo] = np.where(month_ok, lo_m[todo], np.maximum(lo_m[todo], sz))
        hi_m[todo] = np.where(
            month_ok, np.where(hi_m[todo] < 0, sz, np.minimum(hi_m[todo], sz)), hi_m[todo]
        )
        empty = month_count == 0  # no patient arrives: nothing to wait for
        hi_m[todo] = np.where(empty, 0, hi_m[todo])
        lo_m[todo] = np.where(empty, 0, lo_m[todo])
    coords = {"draw": np.arange(draws), "month": demand["month"].values}
    data = {"suites_needed": ("draw", hi.astype(float), {"units": "suites"})}
    if by_month:
        data["suites_needed_by_month"] = (
            ("draw", "month"),
            hi_m.astype(float),
            {"units": "suites"},
        )
    return xr.Dataset(
        data,
        coords=coords,
        attrs={
            "max_wait_days": max_wait_days,
            "epsilon": epsilon,
            "candidates": sorted(simulated),
            "queue_runs_per_draw": int(runs.max()),
            "queue_runs": int(runs.sum()),
        },
    )


def _gallop(lo: np.ndarray, hi: np.ndarray, guess: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Next size to simulate per draw: ``lo`` the largest size known to fail (0: none),
    ``hi`` the smallest known to meet (-1: none). Start at the guess, step away from it by
    ``step``, 3 ``step``, 7 ``step``... (the distance doubles) until the answer is bracketed,
    then bisect."""
    up = np.where(lo < guess, guess, guess + 2 * (lo - guess) + step)
    down = np.maximum(1, guess - (2 * np.maximum(guess - hi, 0) + step))
    down = np.where(hi > guess, np.minimum(guess, hi - 1), np.minimum(down, hi - 1))
    return np.where(
        hi < 0, np.maximum(up, lo + 1), np.where(lo == 0, np.maximum(down, 1), (lo + hi) // 2)
    )


def describe(result: xr.Dataset) -> str:
    """One sentence a planner can read off ``suites_for_service_level``.

    P50 and P90 are suite counts: the fewest suites that meet the service level in at least
    50% (90%) of the draws, i.e. inverted-CDF quantiles, never a rounded midpoint. A draw no
    candidate satisfied needs more than the largest candidate; it is not dropped.
    """
    need = result["suites_needed"].values
    need = np.where(np.isnan(need), np.inf, need)
    p50, p90 = np.quantile(need, [0.5, 0.9], method="inverted_cdf")
    share = 100 * (1 - result.attrs["epsilon"])
    return (
        f"to keep {share:g}% of patients waiting under {result.attrs['max_wait_days']:g} days "
        f"you need {_suites(p50, result)} suites at P50, {_suites(p90, result)} at P90"
    )


def _suites(count: float, result: xr.Dataset) -> str:
    if np.isfinite(count):
        return f"{count:.0f}"
    try:
        candidates = result.attrs["candidates"]
        if isinstance(candidates, str):  # results saved by older versions
            candidates = json.loads(candidates)
        return f"more than {max(candidates)}"
    except (KeyError, TypeError, ValueError):
        return "more than the largest candidate"
