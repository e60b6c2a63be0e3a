"""``finance.csv``: annual and monthly rows per program and total, each metric's mean and
percentiles over each draw's period total (flows) or average (stocks), and the costs.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import xarray as xr

from pmcap.costs import Rates, need_costs
from pmcap.export.tables import COUNTS, quantile_label

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
