"""Demand draws -> lots, suite-days, QC hours and FTEs, for every draw at once.

Timing convention (calendar days; a month's starts are spread evenly over the month):

* a lot starts on day ``s``; it holds a suite slot over ``[s, s + culture_days +
  changeover_days)``, and operators work on it over ``[s, s + culture_days)``;
* QC testing happens at harvest, day ``s + culture_days``; QA disposition at release, day
  ``s + culture_days + max(turnaround_days)`` of the panel;
* a re-run after a failed lot is counted in the month the patient started (the day-level
  facility simulation is where remanufacture delays belong).

The month-to-month spreading is exact for uniform starts: the share of a month's lot-days that
falls in a later month is a closed-form double integral (:func:`_occupancy_weights`), so no
Python loop runs over draws or months.
"""

from __future__ import annotations

import functools
import os
import tempfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from capacity.demand import as_demand
from capacity.errors import InputError
from capacity.process import ProcessSpec, check_seed, load_process

__all__ = [
    "requirements",
    "bands",
    "shortfall_probability",
    "summarise",
    "facility",
    "metric_names",
]

ProcessLike = ProcessSpec | str | Path
PATIENT_STREAMS = ("clinical", "commercial")
ROLES = ("operator", "qc", "qa")

UNITS = {
    "lots": "lots/month",
    "remanufactured_lots": "lots/month",
    "patients_lost": "patients/month",
    "suite_days": "suite-days/month",
    "suites": "suites",
    "qc_hours": "hours/month",
    "qc_fte": "FTE",
    "operator_hands_on_fte": "FTE",
    "operator_crew_fte": "FTE",
    "operator_fte": "FTE",
    "qa_fte": "FTE",
    "fte": "FTE",
    "instrument_hours": "hours/month",
}


# --------------------------------------------------------------------------------------------
# Calendar and the closed-form spreading of lots over months
# --------------------------------------------------------------------------------------------
class _Calendar:
    """Month boundaries in days since the first month, with ``extra`` months of run-off."""

    def __init__(self, months: pd.DatetimeIndex, extra: int):
        ext = pd.date_range(months[0], periods=len(months) + extra + 1, freq="MS")
        days0 = (ext - ext[0]).days.to_numpy().astype(float)
        self.n = len(months)
        self.start = days0[:-1]  # (M + extra,)
        self.end = days0[1:]
        self.days = (self.end - self.start)[: self.n]
        self.days_in_year = np.where(months.is_leap_year, 366.0, 365.0)


def _phi(x: np.ndarray, duration: np.ndarray) -> np.ndarray:
    """Twice-integrated indicator of ``[0, duration)``: 0, x**2/2, then d**2/2 + d (x - d)."""
    x = np.maximum(x, 0.0)
    inside = np.minimum(x, duration)
    return 0.5 * inside * inside + duration * (x - inside)


def _offsets(delay: np.ndarray, duration: np.ndarray) -> int:
    """How many months after its start month a lot can still touch (plus the start month)."""
    return int(np.ceil(np.max(delay + duration) / 28.0)) + 1


def _occupancy_weights(
    months: pd.DatetimeIndex, delay: np.ndarray, duration: np.ndarray, n_k: int | None = None
) -> np.ndarray:
    """Days per lot that fall in month ``m + k`` for lots started in month ``m``.

    Lots start uniformly over month ``m`` = ``[t0, t1)`` and occupy ``[s + delay, s + delay +
    duration)``. The days inside month ``[a, b)``, averaged over starts, are
    ``(Phi(b - t0') - Phi(a - t0') - Phi(b - t1') + Phi(a - t1')) / (t1 - t0)`` with
    ``t' = t + delay``. With ``duration == 0`` it returns the *fraction* of lots whose event
    ``s + delay`` falls in month ``m + k`` instead. Shape ``(draw, month, k)``; entries
    beyond the horizon are 0. ``n_k`` (default: enough for these draws) sets the number of
    offsets ``k``; :func:`requirements` gives the one of all draws, so that a block of draws
    gets the same weights whichever other draws share it.
    """
    delay = np.asarray(delay, float)[:, None, None]
    duration = np.asarray(duration, float)[:, None, None]
    if n_k is None:
        n_k = _offsets(delay, duration) + 1
    cal = _Calendar(months, n_k)
    m = np.arange(cal.n)
    t0 = cal.start[m][None, :, None] + delay
    t1 = cal.end[m][None, :, None] + delay
    target = m[:, None] + np.arange(n_k)[None, :]  # (M, K)
    a = cal.start[target][None]
    b = cal.end[target][None]
    width = (cal.end[m] - cal.start[m])[None, :, None]
    if np.all(duration == 0):
        w = np.clip(np.minimum(b, t1) - np.maximum(a, t0), 0.0, None) / width
    else:
        w = (
            _phi(b - t0, duration)
            - _phi(a - t0, duration)
            - _phi(b - t1, duration)
            + _phi(a - t1, duration)
        ) / width
    w[:, target >= cal.n] = 0.0
    return w


def _spread(lots: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``out[d, j] = sum_k lots[d, j - k] * weights[d, j - k, k]`` (a short loop over k only)."""
    out = np.zeros(lots.shape, float)
    n = lots.shape[1]
    for k in range(min(weights.shape[2], n)):
        out[:, k:] += lots[:, : n - k] * weights[:, : n - k, k]
    return out


# --------------------------------------------------------------------------------------------
# requirements
# --------------------------------------------------------------------------------------------
def requirements(
    demand: xr.DataArray,
    process: ProcessLike | Mapping[str, ProcessLike],
    *,
    seed: int | None = None,
    by_program: bool = False,
    opening: Any = None,
) -> xr.Dataset:
    """Resources needed per draw and month to make every lot the demand calls for.

    Parameters
    ----------
    demand
        Demand draws (``patients``, dims draw, month[, program][, stream]); see
        :mod:`capacity.demand`.
    process
        One process (``ProcessSpec``, template name or TOML path) for every program, or a
        mapping ``program -> process``; the key ``"*"`` sets the default.
    seed
        Seed for parameter draws and lot failures. ``None`` takes ``demand.attrs["seed"]``
        or 0, so the same inputs always give the same result. The failures of each program,
        re-run attempt and block of ``RNG_BLOCK`` (256) draws have their own random stream,
        so a draw's lots depend neither on how draws are split into blocks or chunks nor
        on the other programs.
    by_program
        Keep a ``program`` dim (``facility(result)`` gives the totals).
    opening
        Lots already in manufacture when the demand starts: patients who started in the
        months before the first demand month, as a number (the same count in each of those
        months: a steady flow), a Series indexed by month (months before the start; months
        not given count 0), or a mapping ``program -> number | Series`` (a single number or
        Series needs a single program). Their suite-days, QC and release work still to come
        are counted, so the first months are not understated; their re-runs are not.

    Returns
    -------
    xarray.Dataset
        Dims ``draw``, ``month`` (``program``), ``assay``, ``role``, ``instrument``; each
        variable has a ``units`` attr. Formulas, per draw and month (units in brackets):

        * ``lots`` [lots/month] = patients + ppq lots + re-runs. Re-run ``r`` of a patient
          whose previous lot failed: ``F_r ~ Binomial(F_{r-1}, failure_rate)``, ``F_0`` =
          patients, up to ``max_remanufacture`` re-runs; ``remanufactured_lots`` = sum of
          re-runs; ``patients_lost`` = failures of the last allowed attempt. PPQ lots are
          not re-run.
        * ``suite_days`` [suite-days/month] = lot-days inside the month / ``lots_per_suite``,
          a lot holding its slot ``culture_days + changeover_days``.
        * ``suites`` [suites] = suite_days / calendar days in the month: the average number
          of suites occupied. One calendar drives suites, crews and the facility simulation:
          a lot holds its suite on calendar days (culture does not stop at weekends), as in
          :func:`capacity.simulate_facility`; crews staff the occupied suites on operating
          days only, a share ``operating_days_per_year`` / 365 (at most 1) of the days.
        * ``qc_hours[assay]`` [hours/month] = lots harvested x ``tests_per_lot`` x
          ``hands_on_hours`` x (1 + ``retest_rate``); ``instrument_hours`` likewise with
          ``instrument_hours``, summed per instrument.
        * productive hours [h/FTE/month] = ``productive_hours_per_fte_year`` x days in month /
          days in year; every FTE below is hours / productive hours.
        * ``operator_hands_on_fte`` from operator-hours spread over each lot's culture;
          ``operator_crew_fte`` from suite_days x operating share x ``shifts_per_day`` x
          ``min_operators_per_suite_shift`` x ``hours_per_shift``; ``operator_fte`` is the
          larger of the two (the crew floor).
        * ``qc_fte`` = sum of qc_hours / productive hours; ``qa_fte`` = lots released x
          ``qa_hours_per_lot`` / productive hours; ``fte[role]`` stacks the three.

    Notes
    -----
    Demand larger than memory: demand backed by a dask array chunked along ``draw`` (an
    xarray DataArray over ``dask.array``, e.g. a NetCDF file opened with ``chunks``) gives a
    *lazy* result, a Dataset of dask arrays chunked along draw. Nothing is computed until
    :func:`bands`, :func:`shortfall_probability`, :func:`summarise` (both in one pass),
    ``.compute()`` or ``.to_netcdf()`` reads the demand a chunk at a time. Its numbers are
    exactly those of the same draws in memory, ``opening`` included. Memory is bounded by the
    chunks being computed (a chunk's demand and outputs, worked through in blocks of
    ``CHUNK_CELLS`` draw-months) plus the process parameters of every draw, sampled up front
    (a few dozen numbers per draw). Chunks are realigned, when needed, to start on multiples
    of ``RNG_BLOCK`` draws. Demand values are checked as each chunk is read::

        demand = xr.open_dataset("demand.nc", chunks={"draw": 1000})
        # or: demand = read_demand("demand.nc", chunks=1000)
        req = requirements(demand, "car-t-autologous-manual", seed=1)  # lazy
        table, risk = summarise(req, installed={"suites": 12})  # one pass

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> months = pd.date_range("2027-01-01", periods=3, freq="MS")
    >>> demand = xr.DataArray(np.full((2, 3), 10), dims=("draw", "month"),
    ...                       coords={"draw": [0, 1], "month": months})
    >>> req = requirements(demand, "car-t-autologous-manual", seed=1)
    >>> req["lots"].sizes["month"]
    3
    """
    demand = as_demand(demand, copy=False)  # only read, summed in int64
    seed = check_seed(demand.attrs.get("seed", 0) if seed is None else seed)
    programs = [str(p) for p in demand["program"].values]
    specs = _process_map(process, programs)
    months = pd.DatetimeIndex(demand["month"].values)
    n_draws = demand.sizes["draw"]

    # process parameters of every draw, sampled up front (small: draws x parameters); a block
    # or chunk of draws takes its own rows
    params: dict[str, xr.Dataset] = {}
    for spec in specs.values():
        if spec.name in params:
            continue
        params[spec.name] = spec.sample(n_draws, seed)

    assays = _union([a.assay for s in specs.values() for a in s.qc])
    if any(
        s.qc_fixed_hours_per_month.support[1] > 0 or s.qc_hours_per_suite_month.support[1] > 0
        for s in specs.values()
    ):
        assays.append(FIXED_WORK)  # QC work that does not scale with lots
    instruments = _union([a.instrument for s in specs.values() for a in s.qc if a.instrument])
    history = opening_history(
        opening, programs, months, max(longest_lot_days(par) for par in params.values())
    )
    n_hist = history.shape[1]
    if n_hist:
        months = pd.date_range(
            months[0] - pd.DateOffset(months=n_hist), periods=len(months) + n_hist, freq="MS"
        )
    cal = _Calendar(months, 0)

    # Lots per program (each program and re-run attempt its own random streams, so adding or
    # reordering programs leaves the others' draws alone), then resources once per *unit*: a
    # program, or for facility totals all programs sharing a process. Resources are linear in
    # lots for a given process, so summing lots first gives the same totals at a fraction of
    # the work. Draws are processed in blocks of about CHUNK_CELLS draw-months, so memory is
    # bounded by the block and the outputs, not by the draws; the failures of draws
    # [k * RNG_BLOCK, (k + 1) * RNG_BLOCK) come from their own streams, used in draw order, so
    # the result depends neither on the block size nor on how a dask array is chunked.
    units: dict[str, list[str]] = {}
    for program in programs:
        units.setdefault(program if by_program else specs[program].name, []).append(program)
    streams = [str(s) for s in demand["stream"].values]
    plan = _Plan(
        seed=seed,
        programs=programs,
        specs=specs,
        units=units,
        by_program=by_program,
        months=months,
        n_hist=n_hist,
        n_out=demand.sizes["month"],
        history=history,
        assays=assays,
        instruments=instruments,
        month_share=cal.days / cal.days_in_year,  # (M,) fraction of a year in each month
        month_days=cal.days,
        patient_idx=[i for i, s in enumerate(streams) if s in PATIENT_STREAMS],
        ppq_idx=[i for i, s in enumerate(streams) if s == "ppq"],
        n_k={name: _kernel_offsets(par) for name, par in params.items()},
        rng_block=RNG_BLOCK,
    )
    if demand.chunks is not None:  # dask-backed: a lazy result chunked along draw
        data = _lazy_outputs(plan, demand.data, params)
    else:
        data = plan.outputs(n_draws)
        _compute(plan, demand.values, 0, params, data)
    coords = {
        "draw": demand["draw"].values,
        "month": demand["month"].values,
        "assay": assays,
        "instrument": instruments,
        "role": list(ROLES),
    }
    if by_program:
        coords["program"] = list(units)
    base = ("draw", "month", "program") if by_program else ("draw", "month")
    dims = {"qc_hours": (*base, "assay"), "instrument_hours": (*base, "instrument")}
    ds = xr.Dataset({k: (dims.get(k, base), v) for k, v in data.items()}, coords=coords)
    ds["operator_fte"] = np.maximum(ds["operator_hands_on_fte"], ds["operator_crew_fte"])
    ds = _with_fte(ds)[list(UNITS)]
    for name in ds.data_vars:
        ds[name].attrs["units"] = UNITS[name]
    ds.attrs = {
        "seed": seed,
        "processes": _json({p: specs[p].to_dict() for p in programs}),
        "description": "pmcap capacity requirements per demand draw",
    }
    return ds


def longest_lot_days(par: xr.Dataset) -> float:
    """The longest start-to-release span of any draw of a process (days)."""
    span = par["culture_days"] + par["changeover_days"] + par["qc_turnaround_days"].max("assay")
    return float(span.max())


def opening_history(
    opening: Any, programs: list[str], months: pd.DatetimeIndex, longest_days: float
) -> np.ndarray:
    """Patients started per month before the start, shape (1, months before, program).

    As many months are prepended as a lot of ``longest_days`` can still touch.
    """
    if opening is None or (isinstance(opening, Mapping) and not opening):
        return np.zeros((1, 0, len(programs)))
    if not isinstance(opening, Mapping):
        if len(programs) != 1:
            raise InputError(
                "opening: with several programs give a mapping program -> patients per month"
            )
        opening = {programs[0]: opening}
    unknown = sorted(set(map(str, opening)) - set(programs))
    if unknown:
        raise InputError(f"opening: programs {unknown} are not in the demand {programs}")
    n_hist = int(np.ceil(longest_days / 28.0)) + 1
    before = pd.date_range(months[0] - pd.DateOffset(months=n_hist), periods=n_hist, freq="MS")
    out = np.zeros((1, n_hist, len(programs)))
    for program, value in opening.items():
        where = f"opening[{program!r}]"
        if isinstance(value, pd.Series):
            index = pd.DatetimeIndex(pd.to_datetime(value.index))
            if (index >= months[0]).any():
                raise InputError(f"{where}: months must be before the first demand month")
            if (index != index.to_period("M").to_timestamp()).any():
                raise InputError(f"{where}: months must be first days of months")
            series = value.set_axis(index).reindex(before, fill_value=0)
            values = series.to_numpy(float)
        else:
            try:
                values = np.full(n_hist, float(value))
            except (TypeError, ValueError):
                raise InputError(f"{where}: expected a number or a Series by month") from None
        if (
            not np.isfinite(values).all()
            or (values < 0).any()
            or (values != np.round(values)).any()
        ):
            raise InputError(f"{where}: patients per month must be whole numbers >= 0")
        out[0, :, programs.index(str(program))] = values
    return out


FIXED_WORK = "fixed_work"  # qc_hours label of QC work that does not scale with lots
CHUNK_CELLS = 2_000_000  # draw-months per block of requirements (a few MB per array)
RNG_BLOCK = 256  # draws per random stream of lot failures (fixed: results depend on it)
_COMPUTED = (
    "lots",
    "suite_days",
    "suites",
    "qc_hours",
    "qc_fte",
    "operator_hands_on_fte",
    "operator_crew_fte",
    "qa_fte",
    "instrument_hours",
    "remanufactured_lots",
    "patients_lost",
)
_RESOURCE_DIMS = {"qc_hours": "assays", "instrument_hours": "instruments"}


@dataclass(eq=False)
class _Plan:
    """Everything a block of draws needs besides its demand and parameters."""

    seed: int
    programs: list[str]
    specs: dict[str, ProcessSpec]
    units: dict[str, list[str]]  # output unit -> its programs
    by_program: bool
    months: pd.DatetimeIndex  # with the months of opening history first
    n_hist: int
    n_out: int
    history: np.ndarray  # (1, n_hist, program)
    assays: list[str]
    instruments: list[str]
    month_share: np.ndarray
    month_days: np.ndarray
    patient_idx: list[int]
    ppq_idx: list[int]
    n_k: dict[str, dict[str, int]]  # process -> kernel -> month offsets (from all draws)
    rng_block: int

    def shape(self, name: str, rows: int) -> tuple[int, ...]:
        lead = (rows, self.n_out, len(self.units)) if self.by_program else (rows, self.n_out)
        extra = _RESOURCE_DIMS.get(name)
        return (*lead, len(getattr(self, extra))) if extra else lead

    def outputs(self, rows: int) -> dict[str, np.ndarray]:
        return {k: np.zeros(self.shape(k, rows)) for k in _COMPUTED}

    def fields(self) -> dict[str, slice]:
        """Where each output sits along the last axis of a packed block."""
        out, j = {}, 0
        for k in _COMPUTED:
            width = len(getattr(self, _RESOURCE_DIMS[k])) if k in _RESOURCE_DIMS else 1
            out[k] = slice(j, j + width)
            j += width
        return out

    def n_fields(self) -> int:
        """Length of the last axis of a packed block."""
        return max(where.stop for where in self.fields().values())

    def unpack(self, packed: Any) -> dict[str, Any]:
        """Each output's view into a packed block (draw, month, unit, field), NumPy or dask."""
        data = {}
        for k, where in self.fields().items():
            view = packed[..., where] if k in _RESOURCE_DIMS else packed[..., where.start]
            data[k] = view if self.by_program else view[:, :, 0]
        return data


class _FailureStreams:
    """Random streams of lot failures: one per program, attempt and block of draws.

    The failures of draws ``[k * block, (k + 1) * block)`` in attempt ``r`` of a program come
    from the ``k``-th spawned child of the seed sequence ``(seed, "failures", program,
    "attempt-r")``, drawn in draw order. A stream left part-way through its block is kept for
    the next call, so consecutive blocks of any size give the numbers of all draws at once;
    a chunk that starts on a multiple of ``block`` needs no other chunk's draws.
    """

    def __init__(self, seed: int, block: int):
        self.seed, self.block = seed, block
        self.live: dict[tuple[str, int, int], np.random.Generator] = {}

    def _stream(self, program: str, attempt: int, k: int) -> np.random.Generator:
        words = [zlib.crc32(w.encode()) for w in ("failures", program, f"attempt-{attempt}")]
        return np.random.default_rng(np.random.SeedSequence([self.seed, *words], spawn_key=(k,)))

    def binomial(
        self, program: str, attempt: int, start: int, n: np.ndarray, p: np.ndarray
    ) -> np.ndarray:
        """``Binomial(n, p)`` for the rows of draws ``start, start + 1, ...``."""
        out = np.empty(n.shape, np.int64)
        i, rows = 0, n.shape[0]
        while i < rows:
            k, offset = divmod(start + i, self.block)
            stop = min(rows, i + self.block - offset)
            key = (program, attempt, k)
            rng = self.live.pop(key, None)
            if rng is None:
                rng = self._stream(program, attempt, k)
            out[i:stop] = rng.binomial(n[i:stop], p[i:stop])
            if offset + stop - i < self.block:  # the block goes on in the next call
                self.live[key] = rng
            i = stop
        return out


def _lots(
    patients: np.ndarray,
    ppq: np.ndarray,
    max_remanufacture: int,
    binomial: Callable[[int, np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lots started, re-runs and patients lost: binomial failures, ``max_remanufacture`` re-runs.

    ``binomial(r, n)`` draws the failures of attempt ``r`` among ``n`` lots (its own streams,
    see :class:`_FailureStreams`).
    """
    attempt = patients
    rerun = np.zeros_like(patients)
    for r in range(max_remanufacture):
        attempt = binomial(r, attempt)
        rerun += attempt
    lost = binomial(max_remanufacture, attempt)
    return patients + ppq + rerun, rerun, lost


def _kernel_spans(par: xr.Dataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(delay, duration) per draw of the slot, culture, harvest and release kernels."""
    culture = par["culture_days"].values
    turnaround = par["qc_turnaround_days"].values.max(axis=1)
    zero = np.zeros_like(culture)
    return {
        "slot": (zero, culture + par["changeover_days"].values),
        "culture": (zero, culture),
        "harvest": (culture, zero),
        "release": (culture + turnaround, zero),
    }


def _kernel_offsets(par: xr.Dataset) -> dict[str, int]:
    """Month offsets each kernel needs for the longest lot of any draw."""
    return {k: _offsets(*span) + 1 for k, span in _kernel_spans(par).items()}


def _kernels(
    months: pd.DatetimeIndex, par: xr.Dataset, n_k: Mapping[str, int] | None = None
) -> dict[str, np.ndarray]:
    """Month-spreading weights of one process (slot, culture, harvest and release)."""
    n_k = n_k or {}
    return {
        k: _occupancy_weights(months, delay, duration, n_k.get(k))
        for k, (delay, duration) in _kernel_spans(par).items()
    }


def _compute(
    plan: _Plan,
    values: np.ndarray,
    start: int,
    params: Mapping[str, xr.Dataset],
    data: Mapping[str, np.ndarray],
) -> None:
    """Requirements of the draws ``start, start + 1, ...`` (demand ``values``) into ``data``.

    Works through blocks of about CHUNK_CELLS draw-months; ``params`` are those of these
    draws. ``start`` must be a multiple of ``plan.rng_block`` unless it is 0.
    """
    failures = _FailureStreams(plan.seed, plan.rng_block)
    n = values.shape[0]
    block = max(1, CHUNK_CELLS // max(1, len(plan.months) * len(plan.programs)))
    for a in range(0, n, block):
        rows = slice(a, min(n, a + block))
        par = {name: p.isel(draw=rows) for name, p in params.items()}
        for k, v in _block(plan, values[rows], start + a, par, failures).items():
            data[k][rows] = v


def _block(
    plan: _Plan,
    values: np.ndarray,
    start: int,
    par: Mapping[str, xr.Dataset],
    failures: _FailureStreams,
) -> dict[str, np.ndarray]:
    """Outputs of one block of draws (demand ``values``: draw, month, program, stream)."""
    n_rows, n_hist, n_months = values.shape[0], plan.n_hist, len(plan.months)
    specs, programs = plan.specs, plan.programs
    # lots of every program in the block first: a process's fixed QC/QA work is shared among
    # the programs made with it in proportion to their lots
    lots: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    by_process: dict[str, np.ndarray] = {}
    for p_i, program in enumerate(programs):
        spec = specs[program]
        block_values = values[:, :, p_i]

        def binomial(
            r: int,
            n: np.ndarray,
            program: str = program,
            failure: np.ndarray = par[spec.name]["failure_rate"].values[:, None],
        ) -> np.ndarray:
            return failures.binomial(program, r, start, n, failure)

        out = _lots(
            block_values[..., plan.patient_idx].sum(axis=-1, dtype=np.int64),
            block_values[..., plan.ppq_idx].sum(axis=-1, dtype=np.int64),
            spec.max_remanufacture,
            binomial,
        )
        made = np.zeros((n_rows, n_months))
        made[:, n_hist:] += out[0]
        # opening lots (months before the start): only the work still to come counts
        made[:, :n_hist] += plan.history[:, :, p_i]
        lots[program] = (made, out[1], out[2])
        by_process[spec.name] = by_process.get(spec.name, 0.0) + made
    data = plan.outputs(n_rows)
    kernels: dict[str, dict[str, np.ndarray]] = {}
    for u_i, members in enumerate(plan.units.values()):
        spec = specs[members[0]]
        if spec.name not in kernels:
            kernels[spec.name] = _kernels(plan.months, par[spec.name], plan.n_k[spec.name])
        made = sum(lots[m][0] for m in members)
        n_sharing = sum(specs[p].name == spec.name for p in programs)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(
                by_process[spec.name] > 0,
                made / by_process[spec.name],
                len(members) / n_sharing,
            )
        result = _resources(
            made,
            spec,
            par[spec.name],
            kernels[spec.name],
            plan.month_share,
            plan.month_days,
            plan.assays,
            plan.instruments,
            share,
        )
        result["remanufactured_lots"] = np.zeros((n_rows, n_months))
        result["patients_lost"] = np.zeros((n_rows, n_months))
        for m in members:
            result["remanufactured_lots"][:, n_hist:] += lots[m][1]
            result["patients_lost"][:, n_hist:] += lots[m][2]
        for k, v in result.items():
            target = data[k][:, :, u_i] if plan.by_program else data[k]
            target += v[:, n_hist:]  # drop the months before the start
    return data


def _aligned_chunks(chunks: Sequence[int], block: int) -> tuple[int, ...]:
    """Chunks along draw whose boundaries fall on multiples of ``block`` (about as large)."""
    chunks = tuple(int(c) for c in chunks)
    if all(b % block == 0 for b in np.cumsum(chunks)[:-1]):
        return chunks
    size = block * max(1, round(max(chunks) / block))
    total = sum(chunks)
    return (size,) * (total // size) + ((total % size,) if total % size else ())


def _packed_block(
    plan: _Plan, values: np.ndarray, start: int, params: Mapping[str, xr.Dataset]
) -> np.ndarray:
    """One dask chunk: every output of its draws in one array (draw, month, unit, field)."""
    packed = np.empty((values.shape[0], plan.n_out, len(plan.units), plan.n_fields()))
    _compute(plan, values, start, params, plan.unpack(packed))
    return packed


def _lazy_outputs(plan: _Plan, demand: Any, params: Mapping[str, xr.Dataset]) -> dict[str, Any]:
    """Outputs as dask arrays chunked along draw: one task per chunk, nothing computed yet.

    Chunks are realigned, when needed, so that each starts on a multiple of
    ``plan.rng_block`` (see :class:`_FailureStreams`); each task gets its demand chunk and
    its draws' process parameters.
    """
    import dask
    import dask.array as da

    chunks = _aligned_chunks(demand.chunks[0], plan.rng_block)
    demand = demand.rechunk((chunks, -1, -1, -1))
    n_fields = plan.n_fields()
    plan_key = dask.delayed(plan, pure=False)
    pieces = demand.to_delayed().reshape(-1)  # one per chunk, its own key (no copy)
    blocks, start = [], 0
    for i, rows in enumerate(chunks):
        par = {name: p.isel(draw=slice(start, start + rows)) for name, p in params.items()}
        task = dask.delayed(_packed_block, pure=True)(plan_key, pieces[i], start, par)
        shape = (rows, plan.n_out, len(plan.units), n_fields)
        blocks.append(da.from_delayed(task, shape=shape, dtype=float))
        start += rows
    return plan.unpack(da.concatenate(blocks, axis=0))


def _resources(
    lots: np.ndarray,
    spec: ProcessSpec,
    par: xr.Dataset,
    kernels: dict[str, np.ndarray],
    month_share: np.ndarray,
    month_days: np.ndarray,
    assays: list[str],
    instruments: list[str],
    fixed_share: np.ndarray | float = 1.0,
) -> dict[str, np.ndarray]:
    """Resources for lots of one process (arrays of shape (draw, month[, assay|instrument]))."""
    col = lambda name: par[name].values[:, None]  # noqa: E731 - (draw, 1) for broadcasting
    lots = lots.astype(float)
    suite_days = _spread(lots, kernels["slot"]) / spec.lots_per_suite
    culture_days = _spread(lots, kernels["culture"])
    harvested = _spread(lots, kernels["harvest"])
    released = _spread(lots, kernels["release"])
    # one calendar: lots hold suites on calendar days (culture does not stop), crews staff
    # the occupied suites on operating days (a share operating_days_per_year / 365, at most 1)
    operating_share = np.minimum(col("operating_days_per_year") / 365.0, 1.0)
    productive = col("productive_hours_per_fte_year") * month_share  # h per FTE in the month

    per_test = par["qc_tests_per_lot"] * (1 + par["qc_retest_rate"])  # (draw, assay)
    qc_factor = (per_test * par["qc_hands_on_hours"]).values  # hours per lot
    qc_hours = np.zeros((*lots.shape, len(assays)))
    qc_hours[:, :, [assays.index(a.assay) for a in spec.qc]] = (
        harvested[:, :, None] * qc_factor[:, None, :]
    )
    # work that does not scale with lots: per suite in use, and the process's fixed share
    suites = suite_days / month_days
    if FIXED_WORK in assays:
        qc_hours[:, :, assays.index(FIXED_WORK)] = (
            suites * col("qc_hours_per_suite_month") + fixed_share * col("qc_fixed_hours_per_month")
        ) * (month_days / (365.25 / 12))
    qa_other = (
        suites * col("qa_hours_per_suite_month") + fixed_share * col("qa_fixed_hours_per_month")
    ) * (month_days / (365.25 / 12))

    inst_factor = (per_test * par["qc_instrument_hours"]).values
    instrument_hours = np.zeros((*lots.shape, len(instruments)))
    for j, assay in enumerate(spec.qc):
        if assay.instrument:
            i = instruments.index(assay.instrument)
            instrument_hours[:, :, i] += harvested * inst_factor[:, None, j]

    hands_on_hours = culture_days / col("culture_days") * col("operator_hours_per_lot")
    crew_hours = (
        suite_days
        * operating_share
        * spec.shifts_per_day
        * spec.min_operators_per_suite_shift
        * col("hours_per_shift")
    )
    return {
        "lots": lots,
        "suite_days": suite_days,
        "suites": suites,
        "qc_hours": qc_hours,
        "qc_fte": qc_hours.sum(axis=-1) / productive,
        "operator_hands_on_fte": hands_on_hours / productive,
        "operator_crew_fte": crew_hours / productive,
        "qa_fte": (released * col("qa_hours_per_lot") + qa_other) / productive,
        "instrument_hours": instrument_hours,
    }


def _with_fte(ds: xr.Dataset) -> xr.Dataset:
    fte = xr.concat([ds["operator_fte"], ds["qc_fte"], ds["qa_fte"]], dim="role")
    return ds.assign(fte=fte.assign_coords(role=list(ROLES)).transpose(..., "role"))


def facility(req: xr.Dataset) -> xr.Dataset:
    """Facility totals of a ``by_program`` result: sums, with the operator crew floor re-applied.

    Operators are shared across programs, so the facility needs the larger of total hands-on
    FTE and total crew FTE, not the sum of each program's larger one. A lazy (dask-backed)
    result gives a lazy total.
    """
    if "program" not in req.dims:
        return req
    total = req.drop_vars(["operator_fte", "fte"]).sum("program", skipna=False, keep_attrs=True)
    total["operator_fte"] = np.maximum(total["operator_hands_on_fte"], total["operator_crew_fte"])
    total = _with_fte(total)[list(UNITS)]
    for name in total.data_vars:
        total[name].attrs["units"] = UNITS[name]
    total.attrs = dict(req.attrs)
    return total


def _process_map(
    process: ProcessLike | Mapping[str, ProcessLike], programs: Sequence[str]
) -> dict[str, ProcessSpec]:
    if isinstance(process, Mapping) and "culture_days" not in process:
        known = {str(k): load_process(v) for k, v in process.items()}
        default = known.pop("*", None)
        unknown = sorted(set(known) - set(programs))
        if unknown:
            raise InputError(
                f"process mapping: programs {unknown} are not in the demand {list(programs)}"
            )
        missing = [p for p in programs if p not in known and default is None]
        if missing:
            raise InputError(
                f"process mapping: no process for programs {missing} (add them or a '*' default)"
            )
        specs = {p: known.get(p, default) for p in programs}
    else:
        spec = load_process(process)
        specs = {p: spec for p in programs}
    by_name: dict[str, ProcessSpec] = {}
    for spec in specs.values():
        other = by_name.setdefault(spec.name, spec)
        if other != spec:
            raise InputError(
                f"process mapping: two different processes are named {spec.name!r}; "
                "give each process its own name"
            )
    return specs


def _union(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj, sort_keys=True)


# --------------------------------------------------------------------------------------------
# bands and shortfall
# --------------------------------------------------------------------------------------------
def metric_names(result: xr.Dataset | xr.DataArray) -> list[str]:
    """Names ``bands`` gives each series, e.g. ``suites`` or ``qc_hours[sterility]``."""
    return [name for name, _ in metric_series(_as_dataset(result))]


def _as_dataset(result: xr.Dataset | xr.DataArray) -> xr.Dataset:
    if isinstance(result, xr.DataArray):
        return result.to_dataset(name=result.name or "value")
    return result


def metric_series(ds: xr.Dataset):
    """Yield ``(metric, DataArray with dims draw, month[, program])`` for every series."""
    for name, var in ds.data_vars.items():
        if "draw" not in var.dims or "month" not in var.dims:
            continue
        extra = [d for d in var.dims if d not in ("draw", "month", "program")]
        if not extra:
            yield str(name), var
            continue
        stacked = var.stack(_metric=extra) if len(extra) > 1 else var.rename({extra[0]: "_metric"})
        for i in range(stacked.sizes["_metric"]):
            label = stacked["_metric"].values[i]
            label = ",".join(map(str, label)) if isinstance(label, tuple) else str(label)
            yield f"{name}[{label}]", stacked.isel(_metric=i, drop=True).assign_attrs(var.attrs)


def _quantile_label(q: float) -> str:
    return f"p{100 * q:g}"


def _check_quantiles(quantiles: Sequence[float]) -> list[float]:
    qs = [float(q) for q in quantiles]
    if not qs or any(not 0 <= q <= 1 for q in qs):
        raise InputError(f"quantiles must be numbers in [0, 1], got {list(quantiles)}")
    if len({_quantile_label(q) for q in qs}) != len(qs):
        raise InputError(f"quantiles must be distinct, got {list(quantiles)}")
    return qs


def _is_lazy(result: xr.Dataset | xr.DataArray) -> bool:
    """Whether any variable is a dask array (nothing computed yet)."""
    return any(v.chunks is not None for v in _as_dataset(result).data_vars.values())


def _band_series(result: xr.Dataset | xr.DataArray) -> list[tuple[str, xr.DataArray]]:
    """Every series of ``result`` with dims (draw, month, program)."""
    out = []
    for metric, var in metric_series(_as_dataset(result)):
        if "program" not in var.dims:
            var = var.expand_dims(program=["all"], axis=2)
        out.append((metric, var.transpose("draw", "month", "program")))
    if not out:
        raise InputError("bands: nothing to summarise (no variable with dims draw and month)")
    return out


def _stats(values: np.ndarray, qs: Sequence[float], axis: int) -> dict[str, np.ndarray]:
    """Mean and quantiles over the draws (``axis``), the same whatever the array's layout.

    The mean is the sum in draw order (a cumulative sum: no pairwise or blocked summation that
    would depend on the layout) over the number of draws; quantiles are NumPy's exact linear
    interpolation between order statistics.
    """
    n = values.shape[axis]
    stats = {"mean": np.take(np.cumsum(values, axis=axis), -1, axis=axis) / n}
    for q, v in zip(qs, np.quantile(values, qs, axis=axis), strict=True):
        stats[_quantile_label(q)] = v
    return stats


def _band_frame(metric: str, var: xr.DataArray, stats: Mapping[str, np.ndarray]) -> pd.DataFrame:
    n_m, n_p = var.sizes["month"], var.sizes["program"]
    return pd.DataFrame(
        {
            "month": np.repeat(pd.DatetimeIndex(var["month"].values), n_p),
            "program": np.tile(np.asarray(var["program"].values, str), n_m),
            "metric": metric,
            "unit": var.attrs.get("units", ""),
            **{k: v.reshape(-1) for k, v in stats.items()},
        }
    )


SLAB_BYTES = 64 * 2**20  # months of all draws read at once by bands of a lazy result


class _Spill:
    """A float64 array (month, program, draw) in a scratch file, written block by block.

    Plain reads and writes (no memory map), so the pages sit in the system's file cache, not
    in the process. Holds only its path: tasks on other processes of the same machine can
    write to it too.
    """

    def __init__(self, path: Path, shape: tuple[int, int, int]):
        self.path, self.shape = str(path), tuple(int(n) for n in shape)
        with open(self.path, "wb") as fh:
            fh.truncate(int(np.prod(self.shape)) * 8)

    def __dask_tokenize__(self) -> tuple:
        return ("pmcap-spill", self.path, self.shape)

    def write(self, block: np.ndarray, location: Sequence[tuple[int, int]]) -> None:
        (m0, m1), (p0, p1), (d0, _) = location
        _, n_p, n_d = self.shape
        block = np.ascontiguousarray(block, dtype=float)
        fd = os.open(self.path, os.O_WRONLY)
        try:
            for i in range(m1 - m0):
                for j in range(p1 - p0):
                    row = block[i, j]
                    offset = (((m0 + i) * n_p + p0 + j) * n_d + d0) * 8
                    if os.pwrite(fd, row, offset) != row.nbytes:
                        raise OSError(f"{self.path}: short write")
        finally:
            os.close(fd)

    def slabs(self) -> list[tuple[int, int]]:
        n_m, n_p, n_d = self.shape
        width = max(1, SLAB_BYTES // max(1, n_p * n_d * 8))
        return [(m, min(n_m, m + width)) for m in range(0, n_m, width)]

    def read(self, m0: int, m1: int) -> np.ndarray:
        _, n_p, n_d = self.shape
        out = np.empty((m1 - m0, n_p, n_d))
        view = memoryview(out).cast("B")
        with open(self.path, "rb", buffering=0) as fh:
            fh.seek(m0 * n_p * n_d * 8)
            done = 0
            while done < len(view):
                got = fh.readinto(view[done:])
                if not got:
                    raise OSError(f"{self.path}: file ends early")
                done += got
        return out


def _spill_block(block: np.ndarray, spill: _Spill, block_info: dict | None = None) -> np.ndarray:
    spill.write(block, block_info[0]["array-location"])
    return np.zeros((1,) * block.ndim)


def _lazy_summaries(
    series: list[tuple[str, xr.DataArray]],
    qs: Sequence[float],
    counts: Sequence[Any],
    spill_dir: str | Path | None,
) -> tuple[list[pd.DataFrame], list[np.ndarray]]:
    """Bands of lazy series and any other dask arrays (``counts``) in one pass over the chunks.

    Every series is written, chunk by chunk, to a scratch file laid out month by month; the
    files are then read a slab of months (all draws) at a time for the exact statistics.
    """
    import dask
    import dask.array as da

    with tempfile.TemporaryDirectory(prefix="pmcap-bands-", dir=spill_dir) as tmp:
        spills, writes = [], []
        for i, (_, var) in enumerate(series):
            data = da.asarray(var.data).astype(float).transpose(1, 2, 0)  # month, program, draw
            spill = _Spill(Path(tmp) / f"{i}.f8", data.shape)
            done = tuple((1,) * len(c) for c in data.chunks)
            writes.append(data.map_blocks(_spill_block, spill=spill, chunks=done, dtype=float))
            spills.append(spill)
        computed = dask.compute(*writes, *counts)
        frames = []
        for (metric, var), spill in zip(series, spills, strict=True):
            parts = [_stats(spill.read(m0, m1), qs, axis=-1) for m0, m1 in spill.slabs()]
            stats = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
            frames.append(_band_frame(metric, var, stats))
    return frames, list(computed[len(writes) :])


def bands(
    result: xr.Dataset | xr.DataArray,
    quantiles: Sequence[float] = (0.1, 0.5, 0.9),
    *,
    spill_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Tidy percentile bands: ``month, program, metric, unit, mean, p10, p50, p90``.

    Works on requirements and on demand draws alike. Variables with a resource dim (assay,
    role, instrument, stream) give one metric per label, ``qc_hours[sterility]``; without a
    ``program`` dim the program is ``"all"``. The mean is the sum over draws in draw order
    divided by their number; quantiles are exact (NumPy's linear interpolation).

    A lazy (dask-backed) result, e.g. :func:`requirements` of demand chunked along draw, gives
    exactly the numbers of the same draws in memory. It is computed once, chunk by chunk, and
    each series is written to a scratch file laid out month by month (in ``spill_dir``,
    default the system's temporary folder; removed afterwards), then read back a slab of
    months with all draws at a time. Memory: the chunks being computed (one per dask worker
    thread) plus a few copies of a slab of about ``SLAB_BYTES`` (64 MiB); disk: the result's
    size, 8 bytes per draw, month and program of every series. Workers must share
    ``spill_dir`` (threads, or processes on one machine). To get bands and shortfall
    probabilities from one pass over a lazy result, use :func:`summarise`.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> da = xr.DataArray(np.arange(10.0)[:, None], dims=("draw", "month"),
    ...                   coords={"month": pd.date_range("2027-01-01", periods=1, freq="MS")},
    ...                   name="suites")
    >>> bands(da)[["metric", "p10", "p50", "p90"]].to_dict("records")
    [{'metric': 'suites', 'p10': 0.9, 'p50': 4.5, 'p90': 8.1}]
    """
    qs = _check_quantiles(quantiles)
    series = _band_series(result)
    if _is_lazy(result):
        frames, _ = _lazy_summaries(series, qs, [], spill_dir)
    else:
        frames = [
            _band_frame(metric, var, _stats(np.asarray(var.values, float), qs, axis=0))
            for metric, var in series
        ]
    return pd.concat(frames, ignore_index=True)


@dataclass
class _Shortfall:
    months: pd.DatetimeIndex
    metrics: list[str]
    caps: list[np.ndarray]
    counts: list[Any]  # draws short per month, per metric then "any" (NumPy or dask)
    n_draws: int

    def frame(self, counts: Sequence[np.ndarray]) -> pd.DataFrame:
        frames = [
            pd.DataFrame(
                {
                    "month": self.months,
                    "metric": metric,
                    "installed": cap,
                    "probability": np.asarray(count) / self.n_draws,
                }
            )
            for metric, cap, count in zip(
                [*self.metrics, "any"], [*self.caps, np.nan], counts, strict=True
            )
        ]
        return pd.concat(frames, ignore_index=True)


def _shortfall(
    req: xr.Dataset, installed: Mapping[str, float | Sequence[float] | pd.Series]
) -> _Shortfall:
    """Checks, then the counts of draws short per month (lazy for a lazy ``req``)."""
    if not installed:
        raise InputError("installed: give at least one resource, e.g. {'suites': 6}")
    req = facility(req)
    series = dict(metric_series(req))
    months = pd.DatetimeIndex(req["month"].values)
    caps, shorts = [], []
    for metric, capacity in installed.items():
        if metric not in series:
            raise InputError(
                f"installed: unknown metric {metric!r}; expected one of: {', '.join(series)}"
            )
        cap = _capacity_by_month(capacity, months, metric)
        need = series[metric].transpose("draw", "month").astype(float).data  # dask stays lazy
        shorts.append(need > cap[None, :] * (1 + 1e-12) + 1e-12)
        caps.append(cap)
    any_short = functools.reduce(np.logical_or, shorts)
    counts = [short.sum(axis=0) for short in [*shorts, any_short]]
    return _Shortfall(months, list(installed), caps, counts, req.sizes["draw"])


def shortfall_probability(
    req: xr.Dataset, installed: Mapping[str, float | Sequence[float] | pd.Series]
) -> pd.DataFrame:
    """Per month, the probability that need exceeds what is installed.

    ``installed`` maps a metric (``suites``, ``qc_fte``, ``operator_fte``, ``fte[qa]``,
    ``instrument_hours[qpcr]`` ...) to a number, a sequence with one value per month, or a
    Series indexed by month (capacity that changes when a module comes online). Returns
    ``month, metric, installed, probability``, plus metric ``any``: the chance that at least
    one of the listed resources falls short that month. The probability is the count of draws
    short over the number of draws; a lazy (dask-backed) ``req`` is computed once, chunk by
    chunk, with the same result (counts are exact).

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> req = xr.Dataset({"suites": (("draw", "month"), [[1.0], [3.0], [5.0], [7.0]])},
    ...                  coords={"month": pd.date_range("2027-01-01", periods=1, freq="MS")})
    >>> shortfall_probability(req, {"suites": 4})["probability"].tolist()
    [0.5, 0.5]
    """
    short = _shortfall(req, installed)
    counts = short.counts
    if _is_lazy(req):
        import dask

        counts = dask.compute(*counts)
    return short.frame(counts)


def summarise(
    req: xr.Dataset,
    quantiles: Sequence[float] = (0.1, 0.5, 0.9),
    installed: Mapping[str, float | Sequence[float] | pd.Series] | None = None,
    *,
    spill_dir: str | Path | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """``bands(req, quantiles)`` and ``shortfall_probability(req, installed)`` together.

    The same two tables (the second is None without ``installed``); a lazy result is computed
    only once for both, where calling the two functions computes it twice.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> req = xr.Dataset({"suites": (("draw", "month"), [[1.0], [3.0], [5.0], [7.0]])},
    ...                  coords={"month": pd.date_range("2027-01-01", periods=1, freq="MS")})
    >>> table, risk = summarise(req.chunk({"draw": 2}), [0.5], {"suites": 4})
    >>> table["p50"].tolist(), risk["probability"].tolist()
    ([4.0], [0.5, 0.5])
    """
    qs = _check_quantiles(quantiles)
    series = _band_series(req)
    short = None if installed is None else _shortfall(req, installed)
    if not _is_lazy(req):
        table = bands(req, qs)
        return table, None if short is None else short.frame(short.counts)
    frames, counts = _lazy_summaries(series, qs, [] if short is None else short.counts, spill_dir)
    table = pd.concat(frames, ignore_index=True)
    return table, None if short is None else short.frame(counts)


def _capacity_by_month(capacity: Any, months: pd.DatetimeIndex, metric: str) -> np.ndarray:
    if isinstance(capacity, pd.Series):
        index = pd.DatetimeIndex(pd.to_datetime(capacity.index))
        missing = months.difference(index)
        if len(missing):
            raise InputError(f"installed[{metric!r}]: no value for month {missing[0].date()}")
        cap = capacity.set_axis(index).reindex(months).to_numpy(float)
    else:
        cap = np.asarray(capacity, float)
        if cap.ndim == 0:
            cap = np.full(len(months), float(cap))
        elif cap.shape != (len(months),):
            raise InputError(
                f"installed[{metric!r}]: expected one number or {len(months)} monthly values, "
                f"got {cap.shape[0]}"
            )
    if not np.isfinite(cap).all() or (cap < 0).any():
        raise InputError(f"installed[{metric!r}]: capacity must be finite and >= 0")
    return cap
