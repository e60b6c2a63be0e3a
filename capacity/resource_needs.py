"""Demand draws -> lots, suite-days, QC hours and FTEs per draw and month: :func:`requirements`.

Timing convention (calendar days; a month's starts are spread evenly over the month):

* a lot starts on day ``s``; it holds a suite slot over ``[s, s + culture_days +
  changeover_days)``, and operators work on it over ``[s, s + culture_days)``;
* QC testing happens at harvest, day ``s + culture_days``; QA disposition at release, day
  ``s + culture_days + max(turnaround_days)`` of the panel;
* a re-run after a failed lot is counted in the month the patient started (the day-level
  facility simulation is where remanufacture delays belong).

The month-to-month spreading is exact for uniform starts (:mod:`capacity.occupancy`); the
arithmetic of a block of draws is in :mod:`capacity.workload`, and demand chunked along
draw (dask) is computed a chunk at a time by :mod:`capacity.chunked`. This module checks the
inputs, samples each draw's process parameters, lays out the job, and assembles the
``xarray.Dataset``; :func:`facility` sums a ``by_program`` result into facility totals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from capacity.chunked import lazy_outputs
from capacity.demand import as_demand
from capacity.errors import InputError
from capacity.occupancy import Calendar, kernel_offsets
from capacity.process import ProcessSpec, check_seed, load_process
from capacity.workload import FIXED_WORK, RequirementsJob, compute_draws

__all__ = [
    "PATIENT_STREAMS",
    "RNG_BLOCK",
    "ROLES",
    "UNITS",
    "facility",
    "longest_lot_days",
    "opening_history",
    "requirements",
]

ProcessLike = ProcessSpec | str | Path
PATIENT_STREAMS = ("clinical", "commercial")
ROLES = ("operator", "qc", "qa")
RNG_BLOCK = 256  # draws per random stream of lot failures (fixed: results depend on it)

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
        Demand draws (``patients``, dims draw and month, optionally program and stream); see
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
          ``instrument_hours``, summed per instrument. QC work that does not scale with lots
          is the label ``qc_hours[fixed_work]`` = (suites x ``qc_hours_per_suite_month`` +
          the program's share of ``qc_fixed_hours_per_month``) x days in month / 30.44.
        * productive hours [h/FTE/month] = ``productive_hours_per_fte_year`` x days in month /
          days in year; every FTE below is hours / productive hours.
        * ``operator_hands_on_fte`` from operator-hours spread over each lot's culture;
          ``operator_crew_fte`` from suite_days x operating share x ``shifts_per_day`` x
          ``min_operators_per_suite_shift`` x ``hours_per_shift``; ``operator_fte`` is the
          larger of the two (the crew floor).
        * ``qc_fte`` = sum of qc_hours / productive hours; ``qa_fte`` = (lots released x
          ``qa_hours_per_lot`` + (suites x ``qa_hours_per_suite_month`` + the program's share
          of ``qa_fixed_hours_per_month``) x days in month / 30.44) / productive hours;
          ``fte[role]`` stacks the three.

    Notes
    -----
    Demand larger than memory: demand backed by a dask array chunked along ``draw`` (an
    xarray DataArray over ``dask.array``, e.g. a NetCDF file opened with ``chunks``) gives a
    *lazy* result, a Dataset of dask arrays chunked along draw. Nothing is computed until
    :func:`capacity.bands`, :func:`capacity.shortfall_probability`,
    :func:`capacity.summarise` (both in one pass), ``.compute()`` or ``.to_netcdf()`` reads
    the demand a chunk at a time. Its numbers are exactly those of the same draws in memory,
    ``opening`` included. Memory is bounded by the chunks being computed (a chunk's demand and
    outputs, worked through in blocks of ``capacity.workload.CHUNK_CELLS`` draw-months) plus
    the process parameters of every draw, sampled up front (a few dozen numbers per draw).
    Chunks are realigned, when needed, to start on multiples of ``RNG_BLOCK`` draws. Demand
    values are checked as each chunk is read, for example:

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
    cal = Calendar(months, 0)

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
    job = RequirementsJob(
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
        n_k={name: kernel_offsets(par) for name, par in params.items()},
        rng_block=RNG_BLOCK,
    )
    if demand.chunks is not None:  # dask-backed: a lazy result chunked along draw
        data = lazy_outputs(job, demand.data, params)
    else:
        data = job.outputs(n_draws)
        compute_draws(job, demand.values, 0, params, data)
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
