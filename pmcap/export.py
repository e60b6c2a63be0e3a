"""Files for finance and for other tools: tidy bands, the finance table, draws, plans.

Rules every file follows: one name per metric (no metric appears twice under two names, so a
pivot never double-counts), units in a column or in the header, counts (lots, patients) as
whole numbers (their percentiles are values some draw took), annual percentiles taken over each
draw's annual total (flows: lots, patients, QC hours) or annual average (stocks: suites, FTE),
never by adding monthly percentiles.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from capacity.resource_needs import UNITS
from capacity.summary import metric_series
from pmcap.costs import Rates, need_costs

__all__ = [
    "REPORTED",
    "requirements_table",
    "demand_table",
    "finance_table",
    "materials_spend",
    "materials_table",
    "shortfall_table",
    "plan_table",
    "write_csv",
    "write_draws",
    "write_xlsx",
]

# requirement metrics that go out, each once (fte[role] repeats operator/qc/qa_fte, and the
# operator hands-on and crew components are inputs to operator_fte, not extra staff)
REPORTED = (
    "lots",
    "remanufactured_lots",
    "patients_lost",
    "suite_days",
    "suites",
    "qc_hours",
    "instrument_hours",
    "operator_fte",
    "qc_fte",
    "qa_fte",
)
# whole numbers per draw, whose percentiles are values some draw took
COUNTS = ("lots", "remanufactured_lots", "patients_lost", "patients", "launched")
FLOWS = (
    "staff_cost",
    "suite_cost",
    "operating_cost",
    "lots",
    "remanufactured_lots",
    "patients_lost",
    "patients",
    "suite_days",
    "qc_hours",
    "instrument_hours",
    "materials_spend",
    "workforce_salary_cost",
)


def quantile_label(q: float) -> str:
    return f"p{100 * q:g}"


def _tidy(ds: xr.Dataset, quantiles: Sequence[float], program_label: str | None = None):
    """Like capacity.bands, with whole-number percentiles for counts."""
    frames = []
    for metric, var in metric_series(ds):
        if "program" not in var.dims:
            var = var.expand_dims(program=[program_label or "total"], axis=2)
        var = var.transpose("draw", "month", "program")
        arr = np.asarray(var.values, float)
        base = metric.split("[")[0]
        method = "inverted_cdf" if base in COUNTS else "linear"
        stats = {"mean": arr.mean(axis=0)}
        for q, values in zip(
            quantiles, np.quantile(arr, quantiles, axis=0, method=method), strict=True
        ):
            stats[quantile_label(q)] = values
        n_m, n_p = arr.shape[1:]
        frames.append(
            pd.DataFrame(
                {
                    "month": np.repeat(pd.DatetimeIndex(var["month"].values), n_p),
                    "program": np.tile(np.asarray(var["program"].values, str), n_m),
                    "metric": metric,
                    "unit": var.attrs.get("units", ""),
                    **{k: v.reshape(-1) for k, v in stats.items()},
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def requirements_table(req: xr.Dataset, total: xr.Dataset, quantiles) -> pd.DataFrame:
    """Monthly bands per program and for the facility (``program == "total"``)."""
    keep = [m for m in REPORTED if m in req]
    frame = pd.concat(
        [_tidy(req[keep], quantiles), _tidy(total[keep], quantiles, "total")], ignore_index=True
    )
    return frame.sort_values(["program", "metric", "month"], kind="stable").reset_index(drop=True)


def materials_table(plans: dict[str, xr.Dataset], currency: str) -> pd.DataFrame:
    """One row per process, item and month of :func:`capacity.plan_materials` results."""
    frames = []
    for process, plan in plans.items():
        units = plan["item"].attrs["units"]
        # per-draw variables (spend_by_program, for finance.csv) are not rows of this table
        plan = plan[[v for v in plan.data_vars if "draw" not in plan[v].dims]]
        frame = plan.to_dataframe().reset_index()
        frame.insert(0, "process", process)
        frame.insert(3, "unit", frame["item"].map(units))
        frame = frame.rename(columns={"expected_spend": f"expected_spend [{currency} per month]"})
        frame["stockout_target"] = plan.attrs["target"]
        frames.append(
            frame[["process", "item", "unit", *frame.columns.drop(["process", "item", "unit"])]]
        )
    frame = pd.concat(frames, ignore_index=True)
    return frame.sort_values(["process", "item", "month"], kind="stable").reset_index(drop=True)


def demand_table(
    demand: xr.DataArray, quantiles, launched: xr.DataArray | None = None
) -> pd.DataFrame:
    """Monthly bands of patients (lots for ppq) per program and stream, and totals.

    With ``launched`` (draw x month x program, True where the draw's program has launched by
    the end of the month: :meth:`forecast.PortfolioDraws.launched_by_month`), rows of the
    metric ``launched`` [probability] per program and month follow: their ``mean`` is
    P(launched by the month), the share of draws launched; their percentiles, of a 0/1 value,
    are 1 only where more than 1 - q of the draws have launched. They say why a program that
    launches in few draws has commercial percentiles of 0 beside a mean that is not.
    """
    ds = demand.to_dataset(name="patients")
    ds["patients"].attrs["units"] = "patients/month"
    total = demand.sum("program").to_dataset(name="patients")
    total["patients"].attrs["units"] = "patients/month"
    frames = [_tidy(ds, quantiles), _tidy(total, quantiles, "total")]
    if launched is not None:
        launched = launched.sel(program=demand["program"].values, month=demand["month"].values)
        ds = launched.astype(np.int8).to_dataset(name="launched")
        ds["launched"].attrs["units"] = "probability"
        frames.append(_tidy(ds, quantiles))
    frame = pd.concat(frames, ignore_index=True)
    frame.loc[frame["metric"] == "patients[ppq]", "unit"] = "lots/month"
    return frame


def _per_period(arr: np.ndarray, flow: bool, groups: list[slice]) -> np.ndarray:
    """``arr`` (draw x month x program) summed (flows) or averaged (stocks) over each group
    of months (draw x group x program), skipping NaN - the reductions xarray's
    ``groupby(...).sum/mean("month")`` makes, per group, without its per-group overhead."""
    out = []
    for group in groups:
        part = arr[:, group, :]
        if flow:
            out.append(part.sum(axis=1) if part.dtype.kind in "iub" else np.nansum(part, axis=1))
        else:
            with warnings.catch_warnings():  # all-NaN: a total-only metric on a program row
                warnings.simplefilter("ignore", RuntimeWarning)
                out.append(np.nanmean(part, axis=1))
    return np.stack(out, axis=1)


def finance_sources(
    req: xr.Dataset,
    total: xr.Dataset,
    demand: xr.DataArray,
    rates: Rates | None = None,
    materials: dict[str, xr.Dataset] | None = None,
    workforce=None,
) -> dict:
    """Each finance metric: ``(by program, facility total, unit)``. ``patients`` are the
    clinical and commercial patients starting manufacture; PPQ lots (process performance
    qualification runs before filing) are not patients and are not counted in them, though
    they are in ``lots`` (which also counts re-runs). With ``rates``, the cost of the need
    follows, in ``rates.currency`` (:func:`pmcap.costs.need_costs`): ``staff_cost``,
    ``suite_cost`` and ``operating_cost``, their sum. With ``materials``
    (:func:`capacity.materials.materials_by_process`) the materials spend follows
    (:func:`materials_spend`). With ``workforce`` (the run's ``[workforce]`` plan,
    :class:`capacity.WorkforcePlan`) ``workforce_headcount`` and ``workforce_salary_cost``
    follow on the total only (:func:`workforce_costs`)."""
    patients = demand.sel(stream=["clinical", "commercial"]).sum("stream")
    costs = {}
    if rates is not None:
        by_program, facility_total = need_costs(req, rates), need_costs(total, rates)
        costs = {k: (by_program[k], facility_total[k], rates.currency) for k in by_program}
    if materials:
        spend = materials_spend(materials, req["lots"])
        currency = rates.currency if rates is not None else "currency"
        costs["materials_spend"] = (spend, spend.sum("program"), currency)
    if workforce is not None:
        costs.update(workforce_costs(workforce, req["lots"], rates))
    return {
        "patients": (patients, patients.sum("program"), "patients"),
        "lots": (req["lots"], total["lots"], "lots"),
        "suites": (req["suites"], total["suites"], "suites"),
        "operator_fte": (req["operator_fte"], total["operator_fte"], "FTE"),
        "qc_fte": (req["qc_fte"], total["qc_fte"], "FTE"),
        "qa_fte": (req["qa_fte"], total["qa_fte"], "FTE"),
        "qc_hours": (req["qc_hours"].sum("assay"), total["qc_hours"].sum("assay"), "hours"),
        **costs,
    }


def _vector_cost_by_month(vector: dict, months: pd.DatetimeIndex) -> np.ndarray:
    """The cost of the vector campaigns started each month, summed over processes."""
    per = np.zeros(len(months))
    for plan in vector.values():
        by_month = plan.by_month.set_index(pd.DatetimeIndex(plan.by_month["month"]))
        per += by_month["campaign_cost"].reindex(months, fill_value=0.0).to_numpy(float)
    return per


def materials_spend(materials: dict[str, xr.Dataset], lots: xr.DataArray) -> xr.DataArray:
    """Each draw's materials spend per month and program (draw x month x program).

    The spend of each process's bill (orders x unit cost, plus any second supplier's
    premium, in the month the order is placed) split across the programs made with it
    (``spend_by_program`` of :func:`capacity.materials.plan_materials`); a program whose
    process has no bill spends 0. ``lots`` gives the draws, months and programs.
    """
    lots = lots.transpose("draw", "month", "program")
    out = xr.zeros_like(lots, dtype=float)
    for plan in materials.values():
        split = plan["spend_by_program"].transpose("draw", "month", "program")
        out.loc[{"program": split["program"].values}] += split.values
    out.name = "materials_spend"
    out.attrs = {"units": "currency/month"}
    return out


def workforce_costs(workforce, lots: xr.DataArray, rates: Rates | None) -> dict:
    """Finance sources of the ``[workforce]`` plan: ``workforce_headcount`` (qualified
    operators plus trainees, each draw's simulated headcount of
    :func:`capacity.simulate_workforce` with the plan, a stock) and
    ``workforce_salary_cost`` (that headcount x ``costs.operator_salary`` / 12 a month, a
    flow: trainees are paid while they train). The facility's only: NaN on program rows.
    ``lots`` gives the draws, months and programs."""
    lots = lots.transpose("draw", "month", "program")
    sim = workforce.simulation
    head = (sim["qualified"] + sim["trainees"]).transpose("draw", "month")
    head = head.sel(month=lots["month"].values)
    if head.sizes["draw"] != lots.sizes["draw"]:
        raise ValueError(f"workforce: {head.sizes['draw']} draws, the run has {lots.sizes['draw']}")
    head = xr.DataArray(head.values, dims=("draw", "month"), coords={"month": lots["month"]})
    salary = float(rates.salary["operator_fte"]) if rates is not None else np.nan
    currency = rates.currency if rates is not None else "currency"
    nan = xr.full_like(lots, np.nan, dtype=float)
    return {
        "workforce_headcount": (nan, head, "operators"),
        "workforce_salary_cost": (nan, head * salary / 12.0, currency),
    }


LAUNCHED_COLUMN = "launched_mean [probability, by end of period]"


def finance_table(
    req: xr.Dataset,
    total: xr.Dataset,
    demand: xr.DataArray,
    quantiles,
    launched: xr.DataArray | None = None,
    rates: Rates | None = None,
    plan: pd.DataFrame | None = None,
    materials: dict[str, xr.Dataset] | None = None,
    network_costs: pd.DataFrame | None = None,
    workforce=None,
    vector: dict | None = None,
) -> pd.DataFrame:
    """Annual and monthly rows per program and total; columns ``METRIC_STAT [UNIT]``.

    With ``rates`` (:func:`pmcap.costs.rates`) the cost of the need per program and total
    (``staff_cost``, ``suite_cost``, ``operating_cost``: flows, in ``rates.currency`` per
    period), and with ``plan`` (:func:`pmcap.costs.plan_costs`, one row per month of the
    horizon) the recommended plan's ``plan_capital_cost`` and ``plan_operating_cost`` on the
    ``total`` rows (one plan, no percentiles; empty on a program's rows).

    The ``patients_*`` columns count clinical and commercial patients only: PPQ lots (process
    performance qualification, no patient) are left out of them but counted in ``lots_*``,
    as are re-runs, so lots can exceed patients in a period with no failure.

    With ``launched`` (draw x month x program: :meth:`forecast.PortfolioDraws.launched_by_month`)
    the column ``launched_mean [probability, by end of period]`` follows the patients: the
    share of draws in which the program has launched by the period's last month (empty for
    ``total``), beside ``patients_mean``, which a percentile of 0 may hide.

    With ``materials`` (the run's :func:`capacity.materials.materials_by_process`, when a
    process has a bill of materials) ``materials_spend`` follows: each draw's spend on
    materials per period (a flow), by program (:func:`materials_spend`) and in total.

    With ``network_costs`` (:func:`pmcap.network.site_costs` of a ``[network]`` run, one row
    per month, columns ``(kind, site)``) the network plan's
    ``network_capital_cost[SITE]`` and ``network_operating_cost[SITE]`` per site on the
    ``total`` rows (expected over draws, undiscounted).

    With ``vector`` (process -> :class:`capacity.VectorPlan`, the run's vector campaign
    calendars) ``vector_campaign_cost``: the cost of the campaigns started in the period, all
    processes, on the ``total`` rows (one calendar, the same in every draw: no percentiles).
    """
    sources = finance_sources(req, total, demand, rates, materials, workforce)
    patients = sources["patients"][0]
    months = pd.DatetimeIndex(demand["month"].values)
    programs = np.asarray([*map(str, patients["program"].values), "total"], str)
    # each year's months (the month axis is sorted, so a year is a contiguous run)
    years = months.year.to_numpy()
    starts = np.flatnonzero(np.r_[True, years[1:] != years[:-1]])
    groups = [slice(a, b) for a, b in zip(starts, [*starts[1:], len(years)], strict=True)]
    both = {}
    for metric, (by_program, facility_total, _) in sources.items():
        by_program = by_program.transpose("draw", "month", "program")
        if list(map(str, by_program["program"].values)) != list(programs[:-1]):
            raise ValueError(f"{metric}: programs out of order")
        both[metric] = np.concatenate(
            [by_program.values, facility_total.transpose("draw", "month").values[:, :, None]],
            axis=2,
        )
    by_period_end = {}
    if launched is not None:
        launched = launched.sel(program=list(programs[:-1]), month=demand["month"].values)
        share = launched.transpose("draw", "month", "program").values.mean(axis=0)
        share = np.concatenate([share, np.full((len(months), 1), np.nan)], axis=1)  # no total
        by_period_end = {"month": share, "year": share[[g.stop - 1 for g in groups]]}
    rows = []
    for freq in ("year", "month"):
        columns: dict[str, np.ndarray] = {}
        for metric, (_, _, unit) in sources.items():
            flow = metric in FLOWS
            per = both[metric] if freq == "month" else _per_period(both[metric], flow, groups)
            arr = np.asarray(per, float)
            # one header for both granularities: flows are totals over the row's period
            unit_label = f"{unit} per period" if flow else f"{unit}, average"
            method = "inverted_cdf" if metric in COUNTS else "linear"
            columns[f"{metric}_mean [{unit_label}]"] = arr.mean(axis=0).reshape(-1)
            qs = np.quantile(arr, quantiles, axis=0, method=method)
            for q, values in zip(quantiles, qs, strict=True):
                columns[f"{metric}_{quantile_label(q)} [{unit_label}]"] = values.reshape(-1)
            if metric == "patients" and launched is not None:
                columns[LAUNCHED_COLUMN] = by_period_end[freq].reshape(-1)
        if plan is not None and rates is not None:
            for kind in ("capital", "operating"):
                per = plan[kind].to_numpy(float)
                if freq == "year":
                    per = np.array([per[g].sum() for g in groups])
                cells = np.full((len(per), len(programs)), np.nan)
                cells[:, -1] = per  # the total row only
                columns[f"plan_{kind}_cost [{rates.currency} per period]"] = cells.reshape(-1)
        if vector and rates is not None:
            per = _vector_cost_by_month(vector, months)
            if freq == "year":
                per = np.array([per[g].sum() for g in groups])
            cells = np.full((len(per), len(programs)), np.nan)
            cells[:, -1] = per  # the total row only
            columns[f"vector_campaign_cost [{rates.currency} per period]"] = cells.reshape(-1)
        if network_costs is not None and rates is not None:
            for (kind, site), values in network_costs.items():
                per = np.asarray(values, float)
                if freq == "year":
                    per = np.array([per[g].sum() for g in groups])
                cells = np.full((len(per), len(programs)), np.nan)
                cells[:, -1] = per  # the total row only
                name = f"network_{kind}_cost[{site}] [{rates.currency} per period]"
                columns[name] = cells.reshape(-1)
        if freq == "month":
            labels = months.strftime("%Y-%m")
            n_months = np.ones(len(months), int)
        else:
            labels = np.asarray(years[starts]).astype(str)
            n_months = np.array([g.stop - g.start for g in groups])
        frame = pd.DataFrame(
            {
                "granularity": freq,
                "period": np.repeat(labels, len(programs)),
                "months_in_period": np.repeat(n_months, len(programs)),
                "program": np.tile(programs, len(labels)),
                **columns,
            }
        )
        rows.append(frame)
    return pd.concat(rows, ignore_index=True)


def shortfall_table(shortfall: pd.DataFrame) -> pd.DataFrame:
    """Shortfall probability per month and resource, with units; ``any`` says what it means.

    ``shortfall``: :func:`capacity.shortfall_probability`'s table, of ``pmcap run`` or of
    ``pmcap capacity``. A resource's unit is its metric's in ``requirements.csv``
    (``fte[qa]``: FTE, ``qc_hours[sterility]``: hours/month).
    """
    frame = shortfall.copy()
    listed = [m for m in frame["metric"].unique() if m != "any"]
    frame["unit"] = frame["metric"].map(lambda m: UNITS.get(str(m).split("[")[0], ""))
    is_any = frame["metric"] == "any"
    frame.loc[is_any, "metric"] = "any of " + "/".join(listed)
    frame.loc[is_any, "unit"] = "(no installed value: at least one resource short)"
    return frame[["month", "metric", "unit", "installed", "probability"]]


PLAN_UNITS = {"suites": "suites", "operator_fte": "FTE", "qc_fte": "FTE", "qa_fte": "FTE"}


def plan_table(plans: dict, rates: Rates | None = None) -> pd.DataFrame:
    """One row per commitment (a module, a hire): what it adds and in which unit, what it
    costs, and the expected cost over the horizon of the resource's whole plan.

    Costs are in ``rates.currency`` (``[costs] currency``; without ``rates`` the columns
    say ``currency``): ``capital_cost`` is one module's ``costs.module_capital`` (0 for a
    hire), ``operating_cost_per_year`` what the commitment costs a year once online (a
    module's ``facility.module_cost_per_year``, a hire's loaded salary x FTE added), and
    ``plan_operating_cost_in_horizon`` the expected operating cost of every commitment of
    the resource's plan from its online month to the horizon's end, given once, on the plan's
    first row, empty on its other rows, so that a column sum adds each plan once."""
    cur = rates.currency if rates is not None else "currency"
    capital, per_year, in_horizon = plan_cost_columns(cur)
    rows = []
    for resource, plan in plans.items():
        for i, c in enumerate(plan.commitments.itertuples()):
            added = float(c.capacity_added)
            if rates is None:
                cap = year = np.nan
            elif resource == "suites":
                cap, year = rates.module_capital, rates.suite_year * added
            else:
                cap, year = 0.0, rates.salary.get(resource, np.nan) * added
            rows.append(
                {
                    "resource": resource,
                    "commitment": int(c.unit),
                    "commit_month": c.commit_month,
                    "online_month": c.online_month,
                    "capacity_added": added,
                    "unit": PLAN_UNITS.get(resource, ""),
                    "target_shortfall_probability": plan.target,
                    capital: cap,
                    per_year: year,
                    in_horizon: plan.cost.get("total", np.nan) if i == 0 else np.nan,
                }
            )
    columns = [
        "resource",
        "commitment",
        "commit_month",
        "online_month",
        "capacity_added",
        "unit",
        "target_shortfall_probability",
        capital,
        per_year,
        in_horizon,
    ]
    return pd.DataFrame(rows, columns=columns)


def plan_cost_columns(currency: str) -> tuple[str, str, str]:
    """The cost columns of :func:`plan_table` in ``currency``."""
    return (
        f"capital_cost [{currency}]",
        f"operating_cost_per_year [{currency} per year]",
        f"plan_operating_cost_in_horizon [{currency}]",
    )


def csv_number(value: float) -> str:
    """A float as a CSV cell: 6 significant digits, but from a million up every digit of the
    whole number (``%.6g`` wrote a $123,456,789 plan cost as ``1.23457e+08``)."""
    return f"{value:.0f}" if abs(value) >= 999_999.5 else f"{value:.6g}"


# |x| below this is floating-point rounding of 0 (a mean of FTEs 9.7e-17), written as 0: no
# quantity pmcap writes (probabilities >= 1/draws, FTE, suites, hours, costs) is that small
ZERO_TOLERANCE = 1e-9


def clean_zeros(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose float cells within :data:`ZERO_TOLERANCE` of 0 (and ``-0.0``)
    are 0, so no file shows ``-1.47876e-18`` for nothing. NaN stays NaN."""
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_float_dtype(out[col]):
            values = out[col].to_numpy(float, copy=True)
            values[np.abs(values) < ZERO_TOLERANCE] = 0.0
            out[col] = values
    return out


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    frame = clean_zeros(frame)
    for col in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[col]):
            frame[col] = frame[col].dt.strftime("%Y-%m-%d")
    frame.to_csv(path, index=False, float_format=csv_number, lineterminator="\n")


def csv_text(frame: pd.DataFrame) -> str:
    """``frame`` as CSV text as the sweep and sensitivity tables write it (pandas' full
    precision), with values within rounding of 0 written as 0 (:func:`clean_zeros`)."""
    return clean_zeros(frame).to_csv(index=False, lineterminator="\n")


def write_draws(path: Path, world, req: xr.Dataset, total: xr.Dataset) -> None:
    """Every draw: demand, requirements by program and total, events and sampled inputs."""
    keep = [m for m in REPORTED if m in req]
    ds = xr.Dataset(
        {
            "patients": world.demand.astype(np.int32),
            **{f"{m}": req[m].astype(np.float32) for m in keep},
            **{f"total_{m}": total[m].astype(np.float32) for m in keep},
            **{f"event_{e}": world.events[e] for e in world.events.data_vars},
            **{f"input:{k}": v for k, v in world.inputs.data_vars.items()},
        }
    )
    for name in ds.data_vars:
        ds[name].attrs = {
            k: v for k, v in ds[name].attrs.items() if isinstance(v, str | int | float)
        }
    ds.attrs = {"seed": int(world.seed), "description": "pmcap run: all draws"}
    encoding = {
        name: {"zlib": True, "complevel": 1, "shuffle": True}
        for name in ds.data_vars
        if not np.issubdtype(ds[name].dtype, np.datetime64)
    }
    # what ds.to_netcdf(path, engine="h5netcdf", encoding=encoding) writes, minus its look-ups
    # of an active dask scheduler (to pick a file lock and whether to close the file between
    # writes), which import dask and distributed (0.4 s CPU) for a dataset with no dask
    # arrays. One writer of a new file: the lock that serialises HDF5 calls is all it needs.
    from xarray.backends import H5NetCDFStore
    from xarray.backends.locks import HDF5_LOCK

    store = H5NetCDFStore.open(str(path), mode="w", lock=HDF5_LOCK)
    try:
        ds.dump_to_store(store, encoding=encoding)
    finally:
        store.close()


def _as_csv_precision(values: np.ndarray) -> np.ndarray:
    """Floats rounded as :func:`csv_number` writes them (6 significant digits, whole numbers
    from a million up), so a sheet shows what the CSV holds."""
    out = values.astype(float, copy=True)
    ok = np.isfinite(out)
    out[ok] = [float(csv_number(v)) for v in out[ok]]
    return out


def write_xlsx(
    path: Path, sheets: dict[str, pd.DataFrame], notes: Sequence[tuple[str, str]] = ()
) -> None:
    """An Excel workbook: a ``notes`` sheet first (``notes``: (item, text) rows), then one
    sheet per table with a frozen, filtered header row, readable column widths, dates as
    dates (``period`` of a monthly finance sheet as a month, of an annual one as a year) and
    numbers as in the CSV files (6 significant digits, 0 for rounding noise)."""
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        if notes:
            frame = pd.DataFrame(list(notes), columns=["item", "note"])
            frame.to_excel(writer, sheet_name="notes", index=False)
            ws = writer.sheets["notes"]
            ws.column_dimensions["A"].width = 24
            ws.column_dimensions["B"].width = 110
            for row in ws.iter_rows(min_row=2):
                for cell in row:
                    cell.alignment = Alignment(wrap_text=True, vertical="top")
            for cell in ws[1]:
                cell.font = Font(bold=True)
        for name, frame in sheets.items():
            frame = clean_zeros(frame)
            formats: dict[str, str] = {}
            for col in frame.columns:
                if pd.api.types.is_datetime64_any_dtype(frame[col]):
                    formats[col] = "yyyy-mm-dd"
                elif pd.api.types.is_float_dtype(frame[col]):
                    frame[col] = _as_csv_precision(frame[col].to_numpy())
            if "period" in frame and "granularity" in frame and len(frame):
                if (frame["granularity"] == "month").all():
                    frame["period"] = pd.to_datetime(frame["period"], format="%Y-%m")
                    formats["period"] = "yyyy-mm"
                elif (frame["granularity"] == "year").all():
                    frame["period"] = frame["period"].astype(int)
            sheet = name[:31]
            frame.to_excel(writer, sheet_name=sheet, index=False)
            ws = writer.sheets[sheet]
            ws.freeze_panes = "A2"
            ws.auto_filter.ref = ws.dimensions
            for cell in ws[1]:
                cell.alignment = Alignment(wrap_text=True, vertical="top")
            for j, col in enumerate(frame.columns, start=1):
                letter = get_column_letter(j)
                if col in formats:
                    for (cell,) in ws.iter_rows(min_row=2, min_col=j, max_col=j):
                        cell.number_format = formats[col]
                # the longest value, or the header's longest word (the header wraps)
                values = frame[col].head(2000)
                longest = max(
                    [len(w) for w in str(col).split()]
                    + [10 if col in formats else len(str(v)) for v in values]
                )
                ws.column_dimensions[letter].width = min(max(longest + 2, 9), 40)
            ws.row_dimensions[1].height = 45


def vector_table(plans: dict, currency: str, quantiles: Sequence[float]) -> pd.DataFrame:
    """``vector.csv``: per process, one row per month of a :func:`capacity.plan_vector`
    calendar (``granularity = "month"``) and one row of horizon totals per draw
    (``granularity = "horizon"``, dated the first month)."""
    frames = []
    for process, plan in plans.items():
        sim = plan.sim
        monthly = plan.by_month.drop(columns=["wait_probability_fresh"], errors="ignore")
        monthly = monthly.rename(columns={"campaign_cost": f"campaign_cost [{currency}]"})
        monthly.insert(0, "granularity", "month")
        total = {
            "granularity": "horizon",
            "month": monthly["month"].iloc[0],
            "campaigns_started": int(monthly["campaigns_started"].sum()),
            f"campaign_cost [{currency}]": plan.cost,
        }
        per_draw = {
            "doses_released": sim["doses_released"].values.sum(axis=1),
            "doses_used": sim["doses_used"].values.sum(axis=1),
            "doses_expired": sim["doses_expired"].values.sum(axis=1),
            "doses_on_hand": sim["doses_on_hand"].values[:, -1],
            "lots_waiting": sim["lots_waiting"].values.sum(axis=1),
        }
        for name, values in per_draw.items():
            for q in quantiles:
                total[f"{name}_p{100 * q:g}"] = float(np.quantile(values, q))
        total["wait_probability"] = float((sim["lots_waiting"].values > 1e-9).any(axis=1).mean())
        frame = pd.concat([monthly, pd.DataFrame([total])], ignore_index=True)
        frame["wait_target"] = plan.target
        frame.insert(0, "process", process)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def vector_campaigns_table(plans: dict, currency: str) -> pd.DataFrame:
    """``vector_campaigns.csv``: one row per campaign of each :func:`capacity.plan_vector`
    calendar (its start, release month and doses percentiles, what FEFO used and what
    expired unused within the horizon, its cost)."""
    frames = []
    for process, plan in plans.items():
        frame = plan.campaigns.rename(columns={"cost": f"cost [{currency}]"})
        frame.insert(0, "process", process)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
