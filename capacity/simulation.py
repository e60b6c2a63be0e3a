"""Day-level facility simulation for every demand draw at once.

Patients of each month arrive as a Poisson process (given the month's count, arrival times are
uniform over the month). Each program's lots are made with its own process (one process, or a
mapping program -> process as :func:`capacity.requirements` takes); the patients of a month take
their programs in a uniformly random order, as arrival times within a month are exchangeable.
All lots share the suites first come, first served. A suite has ``L`` slots, ``L`` the least
common multiple of the processes' ``lots_per_suite`` (``lots_per_suite`` with one process); a
lot of a process running ``k`` lots per suite holds ``L / k`` slots at once, for its culture time
plus changeover, and starts when that many are free (strict first come, first served: a later
lot never starts before an earlier one, even where a slot is idle). A lot fails release with
its process's failure rate in the draw and, up to its process's ``max_remanufacture`` times,
re-queues as a new job when the failure is known (manufacture end + the panel's longest
turnaround). With ``max_wait_days`` and
fresh (not cryopreserved) material, a patient who would wait longer is lost. QC is a second
queue: lots enter in order of manufacture end, each needs the panel's hands-on hours, analysts
supply ``qc_fte x productive hours / 365`` hours a day, and release = QC start + the longest
turnaround.

Each draw's queue runs in a compiled loop over its patients (``capacity._queue``, draws in
parallel). Random numbers come from a counter-based generator keyed by the draw and by the
patient and attempt (arrival times, culture and changeover of each lot, release failures), so
two facilities simulated with the same seed see the same patients and lots (common random
numbers), and results do not depend on the number of threads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from capacity import _fields
from capacity.demand import as_demand
from capacity.distributions import Z90
from capacity.errors import InputError
from capacity.process import ProcessSpec, check_seed, stream_rng
from capacity.resource_needs import _process_map, longest_lot_days, opening_history

__all__ = ["simulate_facility", "erlang_c_wait_probability"]

Service = Literal["process", "fixed", "exponential"]


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


def slot_online_days(
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
    opening: Any = None,
    params: xr.Dataset | None = None,
) -> xr.Dataset:
    """Simulate one facility day by day for every demand draw.

    Parameters
    ----------
    demand
        Demand draws (the demand contract); patients of all programs and clinical and
        commercial streams share the facility; ``ppq`` lots use slots but never wait-out or
        re-run.
    process
        The facility's process, or a mapping program -> process (``"*"`` a default), as
        :func:`capacity.requirements` takes: each program's lots are made with its own.
        Culture and changeover days are drawn per lot from their process's distributions
        (``service="process"``), fixed at the draw's mean (``"fixed"``), or exponential with
        that mean (``"exponential"``, for checks against M/M/c). One process named for every
        program gives the single-process results (the same random streams).
    suites
        Installed suites: a number, or one value per month (a module coming online).
    qc_fte
        QC analysts; ``None`` means QC capacity never queues.
    max_wait_days, cryopreserved
        Fresh material: a patient who would wait longer than ``max_wait_days`` is lost.
        Cryopreserved material waits.
    wait_threshold_days
        ``share_waiting_over`` counts patients waiting longer than this.
    opening
        Lots already in manufacture at the start, as in :func:`capacity.requirements`:
        patients started per month before the first month (a number, a Series by month, or
        a mapping program -> either). They are simulated from before the start (with the
        first month's suites), so the facility does not start empty; results cover the
        demand's months only.
    params
        The process's per-draw parameters (``process.sample(draws, seed)``, one row per
        demand draw; with several processes a mapping process name -> its Dataset). Give
        the rows :func:`capacity.requirements` used (it samples
        ``process.sample(all_draws, seed)``) so that draw ``i`` has the same failure rate,
        culture and QC times in both; by default they are drawn from a stream of their own.

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
    prep = prepare_facility(
        demand,
        process,
        qc_fte=qc_fte,
        max_wait_days=max_wait_days,
        cryopreserved=cryopreserved,
        wait_threshold_days=wait_threshold_days,
        service=service,
        seed=seed,
        opening=opening,
        params=params,
    )
    if prep.n_hist:  # simulate from before the start with the first month's suites, cut later
        suites = extend_suites(suites, pd.DatetimeIndex(demand["month"].values), prep.n_hist)
    online = slot_online_days(suites, prep.months, prep.slots_per_suite)
    if len(online) == 0:
        raise InputError("suites: the facility has no suites")
    monthly, patient_wait = run_queue(prep, np.tile(online, (prep.draws, 1)))
    result = _dataset(
        monthly,
        patient_wait,
        prep.arrivals,
        prep.is_ppq,
        prep.months,
        prep.starts,
        prep.days,
        online,
        attrs={
            "seed": prep.seed,
            "process": ", ".join(s.name for s in prep.processes),
            "service": service,
            "max_wait_days": -1.0 if max_wait_days is None else float(max_wait_days),
            "cryopreserved": int(cryopreserved),
            "qc_fte": -1.0 if qc_fte is None else qc_fte,
            "wait_threshold_days": float(wait_threshold_days),
        },
    )
    if prep.n_hist:
        result = _cut_history(result, prep.n_hist, prep.starts[prep.n_hist])
    return result


@dataclass
class PreparedFacility:
    """Everything a facility simulation fixes before the queue runs: the patients' arrivals
    and each draw's parameters and random-number key (common random numbers: facilities of
    any size simulated from one preparation see the same patients and lots)."""

    seed: int
    draws: int
    months: pd.DatetimeIndex  # including months simulated before the start (opening state)
    n_hist: int
    starts: np.ndarray
    days: np.ndarray
    arrivals: np.ndarray  # (draw, job) days since the first month, sorted; inf = padding
    is_ppq: np.ndarray
    keys: np.ndarray  # (draw,) uint64: the draw's lots' random numbers (capacity._queue)
    processes: list[ProcessSpec]  # the processes lots are made with (index p below)
    job_process: np.ndarray  # (draw, job) the process of each job
    culture: tuple[np.ndarray, np.ndarray]  # lot-to-lot distribution: kind (p,), args (p, 3)
    culture_mean: np.ndarray  # (draw, p) for fixed and exponential service
    changeover: tuple[np.ndarray, np.ndarray]
    changeover_mean: np.ndarray
    failure_rate: np.ndarray  # (draw, p)
    turnaround: np.ndarray
    qc_work_days: np.ndarray
    wait_limit: float
    threshold: float
    attempts: np.ndarray  # (p,)
    width: np.ndarray  # (p,) slots a lot holds: slots_per_suite / lots_per_suite
    slots_per_suite: int


def prepare_facility(
    demand,
    spec,
    *,
    qc_fte,
    max_wait_days,
    cryopreserved,
    wait_threshold_days,
    service,
    seed,
    opening,
    params: xr.Dataset | Mapping[str, xr.Dataset] | None = None,
) -> PreparedFacility:
    """Check the options and fix the arrivals, processes, parameters and random keys of
    every draw.

    The arguments are those of :func:`simulate_facility` (``spec``: a process, or a mapping
    program -> process). :func:`run_queue` then simulates any facility size from the result,
    with the same patients and lots (common random numbers).
    """
    seed = check_seed(demand.attrs.get("seed", 0) if seed is None else seed)
    if max_wait_days is not None and not max_wait_days >= 0:
        raise InputError(f"max_wait_days must be >= 0 (or None for no limit), got {max_wait_days}")
    if not wait_threshold_days >= 0:
        raise InputError(f"wait_threshold_days must be >= 0, got {wait_threshold_days}")
    if service not in ("process", "fixed", "exponential"):
        raise InputError(f"service must be 'process', 'fixed' or 'exponential', got {service!r}")
    if qc_fte is not None and not qc_fte > 0:
        raise InputError("qc_fte must be > 0 (or None for unlimited QC capacity)")
    months = pd.DatetimeIndex(demand["month"].values)
    draws = demand.sizes["draw"]
    programs = [str(p) for p in demand["program"].values]
    by_program = _process_map(spec, programs)
    specs = list({s.name: s for s in by_program.values()}.values())
    names = [s.name for s in specs]
    proc_of = np.array([names.index(by_program[p].name) for p in programs], np.int64)
    n_proc = len(specs)
    streams = list(map(str, demand["stream"].values))
    patient_cols = [i for i, s in enumerate(streams) if s != "ppq"]
    ppq_cols = [i for i, s in enumerate(streams) if s == "ppq"]
    values = demand.values
    # (draw, month, process): patients and PPQ lots of each process
    counts_p = _by_process(values[..., patient_cols].sum(axis=3), proc_of, n_proc)
    ppq_p = _by_process(values[..., ppq_cols].sum(axis=3), proc_of, n_proc)
    pars = [_params(s, params, draws, seed, n_proc) for s in specs]
    history = opening_history(opening, programs, months, max(longest_lot_days(x) for x in pars))
    n_hist = history.shape[1]
    if n_hist:
        months = pd.date_range(
            months[0] - pd.DateOffset(months=n_hist), periods=len(months) + n_hist, freq="MS"
        )
        before = np.broadcast_to(
            _by_process(history, proc_of, n_proc), (draws, n_hist, n_proc)
        ).astype(np.int64)
        counts_p = np.concatenate([before, counts_p], axis=1)
        ppq_p = np.concatenate([np.zeros_like(before), ppq_p], axis=1)
    counts = counts_p.sum(axis=2)
    ppq_counts = ppq_p.sum(axis=2)
    # one key per draw seeds all of that draw's random numbers, drawn in the compiled
    # kernels (a draw's numbers do not depend on the other draws or on threads)
    keys = stream_rng(seed, "facility", "+".join(names)).integers(
        0, 2**64, size=draws, dtype=np.uint64, endpoint=False
    )

    # ---- arrivals: per draw, sorted days since the first month (inf = padding) ----------
    starts = (months - months[0]).days.to_numpy(float)
    days = months.days_in_month.to_numpy(float)
    arrivals, is_ppq = _arrivals(counts, ppq_counts, starts, days, keys)
    if n_proc == 1:
        job_process = np.zeros(arrivals.shape, np.int64)
    else:
        from capacity import _queue

        job_process = _queue.job_processes(
            np.ascontiguousarray(counts_p, dtype=np.int64),
            np.ascontiguousarray(ppq_p, dtype=np.int64),
            is_ppq,
            keys,
        )

    # ---- lot-to-lot culture and changeover: drawn per patient and attempt in the queue --
    culture_kind = np.zeros(n_proc, np.int64)
    culture_args = np.zeros((n_proc, 3))
    changeover_kind = np.zeros(n_proc, np.int64)
    changeover_args = np.zeros((n_proc, 3))
    culture_mean = np.zeros((draws, n_proc))
    changeover_mean = np.zeros((draws, n_proc))
    for p, (s, par) in enumerate(zip(specs, pars, strict=True)):
        culture_mean[:, p] = par["culture_days"].values.astype(float)
        changeover_mean[:, p] = par["changeover_days"].values.astype(float)
        if service == "process":
            (culture_kind[p], culture_args[p]), culture_mean[:, p] = lot_distribution(
                s.culture_days, culture_mean[:, p]
            )
            (changeover_kind[p], changeover_args[p]), changeover_mean[:, p] = lot_distribution(
                s.changeover_days, changeover_mean[:, p]
            )
        else:  # at each draw's mean, or exponential with that mean
            exponential = service == "exponential"
            culture_kind[p] = _fields.EXPONENTIAL if exponential else _fields.FIXED
            changeover_kind[p] = _fields.FIXED
    turnaround = np.stack([par["qc_turnaround_days"].values.max(axis=1) for par in pars], 1)
    qc_work_days = np.zeros((draws, n_proc))
    if qc_fte is not None:
        for p, par in enumerate(pars):
            qc_hours_per_lot = (
                (par["qc_tests_per_lot"] * par["qc_hands_on_hours"] * (1 + par["qc_retest_rate"]))
                .sum("assay")
                .values
            )
            hours_per_day = qc_fte * par["productive_hours_per_fte_year"].values / 365.0
            qc_work_days[:, p] = qc_hours_per_lot / hours_per_day
    per_suite = [s.lots_per_suite for s in specs]
    slots_per_suite = int(np.lcm.reduce(per_suite))
    return PreparedFacility(
        seed=seed,
        draws=draws,
        months=months,
        n_hist=n_hist,
        starts=starts,
        days=days,
        arrivals=arrivals,
        is_ppq=is_ppq,
        keys=keys,
        processes=specs,
        job_process=job_process,
        culture=(culture_kind, culture_args),
        culture_mean=culture_mean,
        changeover=(changeover_kind, changeover_args),
        changeover_mean=changeover_mean,
        failure_rate=np.stack([par["failure_rate"].values.astype(float) for par in pars], 1),
        turnaround=turnaround.astype(float),
        qc_work_days=qc_work_days,
        wait_limit=-1.0 if (max_wait_days is None or cryopreserved) else float(max_wait_days),
        threshold=float(wait_threshold_days),
        attempts=np.array([s.max_remanufacture + 1 for s in specs], np.int64),
        width=np.array([slots_per_suite // k for k in per_suite], np.int64),
        slots_per_suite=slots_per_suite,
    )


def _by_process(x: np.ndarray, proc_of: np.ndarray, n_proc: int) -> np.ndarray:
    """Sum the last (program) axis of ``x`` into one column per process."""
    out = np.zeros((*x.shape[:-1], n_proc), np.int64)
    for program, p in enumerate(proc_of):
        out[..., p] += x[..., program].astype(np.int64)
    return out


def _params(spec: ProcessSpec, params, draws: int, seed: int, n_proc: int) -> xr.Dataset:
    """The per-draw parameters of one process: given (a Dataset for a single process, or a
    mapping process name -> Dataset), or drawn from a stream of their own."""
    if params is None:
        return spec.sample(draws, stream_rng(seed, "facility-process", spec.name))
    if isinstance(params, Mapping) and not isinstance(params, xr.Dataset):
        if spec.name not in params:
            raise InputError(f"params: no parameters for process {spec.name!r}")
        par = params[spec.name]
    elif n_proc == 1:
        par = params
    else:
        raise InputError("params: with several processes give a mapping process name -> Dataset")
    if not isinstance(par, xr.Dataset) or "draw" not in par.dims:
        raise InputError("params: expected the Dataset of process.sample(draws, seed)")
    par = par.transpose("draw", ...)
    if par.sizes.get("draw") != draws:
        raise InputError(f"params: one row per demand draw ({draws}), got {par.sizes.get('draw')}")
    missing = sorted(set(spec.sample(1, 0).data_vars) - set(par.data_vars))
    if missing:
        raise InputError(f"params: missing {', '.join(missing)} (from process.sample)")
    return par


def run_queue(
    prep: PreparedFacility,
    online: np.ndarray,
    idx: np.ndarray | None = None,
    late_limit: np.ndarray | None = None,
):
    """The compiled queue for draws ``idx`` (all by default); ``online`` (draws, slots) with
    ``inf`` for slots a draw's facility does not have. ``late_limit`` (one per draw of
    ``idx``): a draw stops once more than this many patients arriving from the start
    (``starts[n_hist]``) waited longer than ``threshold`` (its later waits ``nan``, its
    monthly counts partial); none by default."""
    rows = slice(None) if idx is None else idx
    online = np.ascontiguousarray(online, dtype=float)
    n_slots = np.isfinite(online).sum(axis=1).astype(np.int64)
    if late_limit is None:
        late_limit = np.full(len(online), np.inf)
    # slots come online in time order, so a draw's installed slots are its first n_slots
    from capacity import _queue  # numba: imported only when a facility is simulated

    return _queue.simulate_draws(
        np.ascontiguousarray(prep.arrivals[rows]),
        np.ascontiguousarray(prep.is_ppq[rows]),
        np.ascontiguousarray(prep.job_process[rows]),
        np.ascontiguousarray(prep.keys[rows]),
        prep.culture[0],
        prep.culture[1],
        np.ascontiguousarray(prep.culture_mean[rows]),
        prep.changeover[0],
        prep.changeover[1],
        np.ascontiguousarray(prep.changeover_mean[rows]),
        np.ascontiguousarray(prep.failure_rate[rows]),
        online,
        n_slots,
        np.ascontiguousarray(prep.turnaround[rows]),
        np.ascontiguousarray(prep.qc_work_days[rows]),
        prep.wait_limit,
        prep.starts,
        prep.starts + prep.days,
        prep.threshold,
        prep.attempts,
        prep.width,
        np.ascontiguousarray(late_limit, dtype=float),
        float(prep.starts[prep.n_hist]),
    )


def extend_suites(suites, months: pd.DatetimeIndex, n_hist: int):
    """Installed suites for ``n_hist`` months before ``months``: the first month's value."""
    if isinstance(suites, pd.Series):
        index = pd.DatetimeIndex(pd.to_datetime(suites.index))
        first = suites.set_axis(index).reindex(months[:1]).iloc[0]
        before = pd.date_range(months[0] - pd.DateOffset(months=n_hist), periods=n_hist, freq="MS")
        return pd.concat([pd.Series(first, index=before), suites.set_axis(index)])
    arr = np.asarray(suites)
    if arr.ndim == 0:
        return suites
    return np.r_[np.full(n_hist, arr[0]), arr]


def _cut_history(result: xr.Dataset, n_hist: int, offset_days: float) -> xr.Dataset:
    """Drop the months simulated before the start; patient days count from the start."""
    out = result.isel(month=slice(n_hist, None))
    day = out["patient_arrival_day"].values - offset_days
    keep = day >= 0
    out["patient_arrival_day"] = out["patient_arrival_day"].copy(data=np.where(keep, day, np.nan))
    out["patient_wait_days"] = out["patient_wait_days"].copy(
        data=np.where(keep, out["patient_wait_days"].values, np.nan)
    )
    return out


def _dataset(monthly, patient_wait, arrivals, is_ppq, months, starts, days, online, attrs):
    q = _fields
    ends = starts + days
    with np.errstate(invalid="ignore", divide="ignore"):
        wait_mean = monthly[..., q.WAIT_SUM] / monthly[..., q.SERVED]
        over = monthly[..., q.OVER] / monthly[..., q.COUNT]
        to_release = monthly[..., q.RELEASE_SUM] / monthly[..., q.RELEASED]
        qc_wait = monthly[..., q.QC_WAIT_SUM] / monthly[..., q.RELEASED]
        available = np.clip(ends[None, :] - np.maximum(starts[None, :], online[:, None]), 0, None)
        utilisation = monthly[..., q.BUSY] / available.sum(axis=0)[None, :]
    from capacity import _queue

    # every arrival is inside the months; a patient has a wait only where it has a day
    patient_day = _queue.patient_days(arrivals, is_ppq)
    dims = ("draw", "month")
    threshold = attrs["wait_threshold_days"]
    return xr.Dataset(
        {
            "patients": (dims, monthly[..., q.COUNT], {"units": "patients/month"}),
            "wait_mean_days": (dims, wait_mean, {"units": "days"}),
            "wait_p95_days": (dims, monthly[..., q.P95], {"units": "days"}),
            "share_waiting_over": (dims, over, {"units": "fraction", "threshold_days": threshold}),
            "patients_lost": (dims, monthly[..., q.LOST], {"units": "patients/month"}),
            "qc_wait_mean_days": (dims, qc_wait, {"units": "days"}),
            "release_days_mean": (dims, to_release, {"units": "days"}),
            "slots_busy": (dims, monthly[..., q.BUSY] / days[None, :], {"units": "slots"}),
            "slot_utilisation": (dims, utilisation, {"units": "fraction"}),
            "patient_wait_days": (
                ("draw", "patient"),
                patient_wait,
                {"units": "days"},
            ),
            "patient_arrival_day": (
                ("draw", "patient"),
                patient_day,
                {"units": "days since the first month"},
            ),
        },
        coords={"draw": np.arange(arrivals.shape[0]), "month": months},
        attrs={**attrs, "slots_installed_max": len(online)},
    )


def lot_distribution(param, per_draw: np.ndarray) -> tuple[tuple[int, np.ndarray], np.ndarray]:
    """A process parameter's lot-to-lot distribution as the kernel's (kind code, arguments;
    see ``capacity._queue.sample``), and the per-draw value a ``FIXED`` kind takes (a fixed
    parameter's value)."""
    args = np.zeros(3)
    if param.kind == "fixed":
        return (_fields.FIXED, args), np.full(per_draw.shape, param.args[0])
    if param.kind == "lognormal":
        median, p90 = param.args
        args[:2] = np.log(median), np.log(p90 / median) / Z90
    else:
        args[: len(param.args)] = param.args
    kind = {
        "uniform": _fields.UNIFORM,
        "triangular": _fields.TRIANGULAR,
        "lognormal": _fields.LOGNORMAL,
        "beta": _fields.BETA,
    }[param.kind]
    return (kind, args), per_draw


def _arrivals(counts, ppq_counts, starts, days, keys):
    """Uniform arrival days within each month (Poisson given the count), sorted per draw
    (drawn in a compiled kernel cell by cell, already in order: no global sort)."""
    from capacity import _queue  # numba: imported only when a facility is simulated

    per_draw = (counts + ppq_counts).sum(axis=1)
    n_jobs = max(int(per_draw.max()) if per_draw.size else 0, 1)
    return _queue.arrivals(
        np.ascontiguousarray(counts, dtype=np.int64),
        np.ascontiguousarray(ppq_counts, dtype=np.int64),
        starts,
        days,
        keys,
        n_jobs,
    )
