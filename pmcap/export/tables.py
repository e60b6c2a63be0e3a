"""The tidy tables of a run: requirement and demand bands, shortfall, plans, materials and
vector campaigns.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from capacity.resource_needs import UNITS
from capacity.summary import metric_series
from pmcap.costs import Rates

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
