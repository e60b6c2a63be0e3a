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

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from capacity.demand import as_demand
from capacity.errors import InputError
from capacity.process import ProcessSpec, check_seed, load_process, stream_rng

__all__ = ["requirements", "bands", "shortfall_probability", "facility", "metric_names"]

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
    months: pd.DatetimeIndex, delay: np.ndarray, duration: np.ndarray
) -> np.ndarray:
    """Days per lot that fall in month ``m + k`` for lots started in month ``m``.

    Lots start uniformly over month ``m`` = ``[t0, t1)`` and occupy ``[s + delay, s + delay +
    duration)``. The days inside month ``[a, b)``, averaged over starts, are
    ``(Phi(b - t0') - Phi(a - t0') - Phi(b - t1') + Phi(a - t1')) / (t1 - t0)`` with
    ``t' = t + delay``. With ``duration == 0`` it returns the *fraction* of lots whose event
    ``s + delay`` falls in month ``m + k`` instead. Shape ``(draw, month, k)``; entries
    beyond the horizon are 0.
    """
    delay = np.asarray(delay, float)[:, None, None]
    duration = np.asarray(duration, float)[:, None, None]
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
        or 0, so the same inputs always give the same result.
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
    demand = as_demand(demand)
    seed = check_seed(demand.attrs.get("seed", 0) if seed is None else seed)
    programs = [str(p) for p in demand["program"].values]
    specs = _process_map(process, programs)
    months = pd.DatetimeIndex(demand["month"].values)
    n_draws = demand.sizes["draw"]

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
    month_share = cal.days / cal.days_in_year  # (M,) fraction of a year in each month

    streams = [str(s) for s in demand["stream"].values]
    patient_idx = [i for i, s in enumerate(streams) if s in PATIENT_STREAMS]
    ppq_idx = [i for i, s in enumerate(streams) if s == "ppq"]
    values = demand.values  # (draw, month, program, stream)

    # Lots per program (each program and re-run attempt its own random stream, so adding or
    # reordering programs leaves the others' draws alone), then resources once per *unit*: a
    # program, or for facility totals all programs sharing a process. Resources are linear in
    # lots for a given process, so summing lots first gives the same totals at a fraction of
    # the work. Draws are processed in blocks of about CHUNK_CELLS draw-months, so memory is
    # bounded by the block and the outputs, not by the draws; every random stream is used in
    # draw order, so the result does not depend on the block size.
    units: dict[str, list[str]] = {}
    for program in programs:
        units.setdefault(program if by_program else specs[program].name, []).append(program)
    rngs = {
        program: [
            stream_rng(seed, "failures", program, f"attempt-{r}")
            for r in range(specs[program].max_remanufacture + 1)
        ]
        for program in programs
    }
    n_out = demand.sizes["month"]
    lead = (n_draws, n_out, len(units)) if by_program else (n_draws, n_out)
    extra = {"qc_hours": (len(assays),), "instrument_hours": (len(instruments),)}
    data = {k: np.zeros((*lead, *extra.get(k, ()))) for k in _COMPUTED}
    block = max(1, CHUNK_CELLS // max(1, len(months) * len(programs)))
    for a in range(0, n_draws, block):
        rows = slice(a, min(n_draws, a + block))
        n_rows = rows.stop - rows.start
        par = {name: p.isel(draw=rows) for name, p in params.items()}
        kernels: dict[str, dict[str, np.ndarray]] = {}
        # lots of every program in the block first: a process's fixed QC/QA work is shared
        # among the programs made with it in proportion to their lots
        lots: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        by_process: dict[str, np.ndarray] = {}
        for p_i, program in enumerate(programs):
            spec = specs[program]
            block_values = values[rows, :, p_i]
            out = _lots(
                block_values[..., patient_idx].sum(axis=-1),
                block_values[..., ppq_idx].sum(axis=-1),
                par[spec.name]["failure_rate"].values[:, None],
                spec.max_remanufacture,
                rngs[program],
            )
            made = np.zeros((n_rows, len(months)))
            made[:, n_hist:] += out[0]
            # opening lots (months before the start): only the work still to come counts
            made[:, :n_hist] += history[:, :, p_i]
            lots[program] = (made, out[1], out[2])
            by_process[spec.name] = by_process.get(spec.name, 0.0) + made
        for u_i, members in enumerate(units.values()):
            spec = specs[members[0]]
            if spec.name not in kernels:
                kernels[spec.name] = _kernels(months, par[spec.name])
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
                month_share,
                cal.days,
                assays,
                instruments,
                share,
            )
            result["remanufactured_lots"] = np.zeros((n_rows, len(months)))
            result["patients_lost"] = np.zeros((n_rows, len(months)))
            for m in members:
                result["remanufactured_lots"][:, n_hist:] += lots[m][1]
                result["patients_lost"][:, n_hist:] += lots[m][2]
            for k, v in result.items():
                target = data[k][rows, :, u_i] if by_program else data[k][rows]
                target += v[:, n_hist:]  # drop the months before the start
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


def _lots(
    patients: np.ndarray,
    ppq: np.ndarray,
    failure: np.ndarray,
    max_remanufacture: int,
    rngs: Sequence[np.random.Generator],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lots started, re-runs and patients lost: binomial failures, ``max_remanufacture`` re-runs.

    ``rngs[r]`` draws the failures of attempt ``r`` (one stream per attempt, so blocks of
    draws processed one after another give the same numbers as all draws at once).
    """
    attempt = patients
    rerun = np.zeros_like(patients)
    for r in range(max_remanufacture):
        attempt = rngs[r].binomial(attempt, failure)
        rerun += attempt
    lost = rngs[max_remanufacture].binomial(attempt, failure)
    return patients + ppq + rerun, rerun, lost


def _kernels(months: pd.DatetimeIndex, par: xr.Dataset) -> dict[str, np.ndarray]:
    """Month-spreading weights of one process (slot, culture, harvest and release)."""
    culture = par["culture_days"].values
    turnaround = par["qc_turnaround_days"].values.max(axis=1)
    zero = np.zeros_like(culture)
    return {
        "slot": _occupancy_weights(months, zero, culture + par["changeover_days"].values),
        "culture": _occupancy_weights(months, zero, culture),
        "harvest": _occupancy_weights(months, culture, zero),
        "release": _occupancy_weights(months, culture + turnaround, zero),
    }


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
    FTE and total crew FTE, not the sum of each program's larger one.
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
    return [name for name, _ in _series(_as_dataset(result))]


def _as_dataset(result: xr.Dataset | xr.DataArray) -> xr.Dataset:
    if isinstance(result, xr.DataArray):
        return result.to_dataset(name=result.name or "value")
    return result


def _series(ds: xr.Dataset):
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


def bands(
    result: xr.Dataset | xr.DataArray, quantiles: Sequence[float] = (0.1, 0.5, 0.9)
) -> pd.DataFrame:
    """Tidy percentile bands: ``month, program, metric, unit, mean, p10, p50, p90``.

    Works on requirements and on demand draws alike. Variables with a resource dim (assay,
    role, instrument, stream) give one metric per label, ``qc_hours[sterility]``; without a
    ``program`` dim the program is ``"all"``.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> da = xr.DataArray(np.arange(10.0)[:, None], dims=("draw", "month"),
    ...                   coords={"month": pd.date_range("2027-01-01", periods=1, freq="MS")},
    ...                   name="suites")
    >>> bands(da)[["metric", "p10", "p50", "p90"]].to_dict("records")
    [{'metric': 'suites', 'p10': 0.9, 'p50': 4.5, 'p90': 8.1}]
    """
    qs = [float(q) for q in quantiles]
    if not qs or any(not 0 <= q <= 1 for q in qs):
        raise InputError(f"quantiles must be numbers in [0, 1], got {list(quantiles)}")
    if len({_quantile_label(q) for q in qs}) != len(qs):
        raise InputError(f"quantiles must be distinct, got {list(quantiles)}")
    frames = []
    for metric, var in _series(_as_dataset(result)):
        if "program" not in var.dims:
            var = var.expand_dims(program=["all"], axis=2)
        var = var.transpose("draw", "month", "program")
        arr = np.asarray(var.values, float)
        stats = {"mean": arr.mean(axis=0)}
        for q, values in zip(qs, np.quantile(arr, qs, axis=0), strict=True):
            stats[_quantile_label(q)] = values
        n_m, n_p = arr.shape[1:]
        frame = pd.DataFrame(
            {
                "month": np.repeat(pd.DatetimeIndex(var["month"].values), n_p),
                "program": np.tile(np.asarray(var["program"].values, str), n_m),
                "metric": metric,
                "unit": var.attrs.get("units", ""),
                **{k: v.reshape(-1) for k, v in stats.items()},
            }
        )
        frames.append(frame)
    if not frames:
        raise InputError("bands: nothing to summarise (no variable with dims draw and month)")
    return pd.concat(frames, ignore_index=True)


def shortfall_probability(
    req: xr.Dataset, installed: Mapping[str, float | Sequence[float] | pd.Series]
) -> pd.DataFrame:
    """Per month, the probability that need exceeds what is installed.

    ``installed`` maps a metric (``suites``, ``qc_fte``, ``operator_fte``, ``fte[qa]``,
    ``instrument_hours[qpcr]`` ...) to a number, a sequence with one value per month, or a
    Series indexed by month (capacity that changes when a module comes online). Returns
    ``month, metric, installed, probability``, plus metric ``any``: the chance that at least
    one of the listed resources falls short that month.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> req = xr.Dataset({"suites": (("draw", "month"), [[1.0], [3.0], [5.0], [7.0]])},
    ...                  coords={"month": pd.date_range("2027-01-01", periods=1, freq="MS")})
    >>> shortfall_probability(req, {"suites": 4})["probability"].tolist()
    [0.5, 0.5]
    """
    if not installed:
        raise InputError("installed: give at least one resource, e.g. {'suites': 6}")
    req = facility(req)
    series = dict(_series(req))
    months = pd.DatetimeIndex(req["month"].values)
    frames, shorts = [], []
    for metric, capacity in installed.items():
        if metric not in series:
            raise InputError(
                f"installed: unknown metric {metric!r}; expected one of: {', '.join(series)}"
            )
        cap = _capacity_by_month(capacity, months, metric)
        need = np.asarray(series[metric].transpose("draw", "month").values, float)
        short = need > cap[None, :] * (1 + 1e-12) + 1e-12
        shorts.append(short)
        frames.append(
            pd.DataFrame(
                {
                    "month": months,
                    "metric": metric,
                    "installed": cap,
                    "probability": short.mean(axis=0),
                }
            )
        )
    any_short = np.logical_or.reduce(shorts)
    frames.append(
        pd.DataFrame(
            {
                "month": months,
                "metric": "any",
                "installed": np.nan,
                "probability": any_short.mean(axis=0),
            }
        )
    )
    return pd.concat(frames, ignore_index=True)


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
