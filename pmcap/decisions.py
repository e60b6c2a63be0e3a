"""The decisions stage of a run: what to build or hire when, and what drives the need.

From the portfolio's draws and the facility totals of their requirements:

* installed capacity per month (``[facility]``: suites, possibly in steps, and FTEs per role)
  and the probability each month needs more (:func:`capacity.shortfall_probability`);
* a module expansion plan for suites and a hiring plan per role that staffs the suites the
  module plan brings online: when to commit to each module or requisition, a lead time
  ahead and not before ``run.as_of``, so that the monthly shortfall probability stays under
  ``facility.shortfall_target`` (:func:`capacity.plan_expansion`,
  :func:`capacity.plan_hiring`);
* the suites that keep P(wait > ``max_wait_days``) <= ``epsilon``, every lot made with its
  program's own process, from a day-level facility simulation of the first
  ``service_level.draws`` draws (:func:`service_level_suites`);
* the drivers: every input sampled per draw ranked by Spearman rank correlation with the
  draw's peak suite need (:func:`rank_drivers`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pmcap.scenario import Scenario

__all__ = [
    "Decisions",
    "ROLES",
    "decide",
    "input_columns",
    "rank_drivers",
    "service_level_suites",
    "spearman",
]

ROLES = ("operator_fte", "qc_fte", "qa_fte")
# The service-level search starts each draw at this share of its peak monthly suite need.
# The peak month over-states the suites the whole horizon needs at the service level: on the
# bundled example's 200 draws the answer was 0.63-1.11 of the peak (median 0.88). Starting
# at 0.85 of it took 919 queue runs instead of 1,074 (0.95: 1,009; 0.9: 963; 0.8: 955), with
# every draw's answer the same: the search finds each draw's fewest suites wherever it
# starts (more suites never delay a patient). A tuning of the search only; an assumption.
SERVICE_START_SHARE = 0.85


@dataclass
class Decisions:
    """What the decisions stage gives :class:`pmcap.run.RunResult`."""

    installed: dict[str, Any]  # resource -> installed level (suites: a Series per month)
    shortfall: pd.DataFrame  # capacity.shortfall_probability
    plans: dict[str, Any]  # resource -> ExpansionPlan (suites, then each role)
    service: dict[str, Any] | None  # service_level_suites; None when not simulated
    service_processes: dict[str, str]  # program -> the process its lots are sized with
    drivers: pd.DataFrame  # input, spearman_rho


def input_columns(world, processes: dict, draws: int, seed: int) -> dict[str, np.ndarray]:
    """Every input sampled per draw: the portfolio's (``CART-A.peak_share``, approval years
    ...) and each process's (``car-t-autologous-manual.failure_rate``), aligned by draw with
    the requirements (the same streams as :func:`capacity.requirements` with ``seed``)."""
    columns: dict[str, np.ndarray] = {}
    for name, var in world.inputs.data_vars.items():
        # an event that never happens ranks last (latest), not as missing
        columns[name] = np.where(np.isnan(var.values), np.inf, var.values)
    seen = set()
    for spec in processes.values():
        if spec.name in seen:
            continue
        seen.add(spec.name)
        par = spec.sample(draws, seed)
        for name, var in par.data_vars.items():
            if "assay" in var.dims:
                for assay in var["assay"].values:
                    columns[f"{spec.name}.{name}[{assay}]"] = var.sel(assay=assay).values
            else:
                columns[f"{spec.name}.{name}"] = var.values
    return columns


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho: the Pearson correlation of average ranks (ties share their mean
    rank), as ``scipy.stats.spearmanr`` (not used: slow to import)."""
    rx = pd.Series(x).rank(method="average").to_numpy()
    ry = pd.Series(y).rank(method="average").to_numpy()
    return float(np.corrcoef(rx, ry)[0, 1])


def rank_drivers(columns: dict[str, np.ndarray], target: np.ndarray) -> pd.DataFrame:
    """Spearman rank correlation of each input that varies with ``target`` (one value per
    draw), largest absolute correlation first: ``input, spearman_rho``."""
    rows = []
    for name, values in columns.items():
        values = np.asarray(values, float)
        finite = values[np.isfinite(values)]
        if len(np.unique(values)) < 2 or (
            len(finite) and finite.min() == finite.max() and np.isfinite(values).all()
        ):
            continue
        rho = spearman(np.nan_to_num(values, nan=np.inf, posinf=1e300), target)
        if np.isfinite(rho):
            rows.append({"input": name, "spearman_rho": float(rho)})
    frame = pd.DataFrame(rows, columns=["input", "spearman_rho"])
    if len(frame):
        frame = frame.reindex(frame["spearman_rho"].abs().sort_values(ascending=False).index)
    return frame.reset_index(drop=True)


def service_level_suites(
    demand: xr.DataArray,
    process,
    *,
    quantiles=(0.5, 0.9),
    max_wait_days: float,
    epsilon: float,
    seed: int,
    opening=None,
    start: np.ndarray | None = None,
    params=None,
) -> dict[str, Any]:
    """Percentiles across draws of the fewest suites keeping P(wait > max_wait_days) <= epsilon.

    Each draw's own answer is found by :func:`capacity.suites_for_service_level` over the
    horizon (more suites never make a wait longer, and every size sees the same patients),
    searching from ``start`` (one guess per draw; :func:`decide` gives
    :data:`SERVICE_START_SHARE` of its peak suite need) and simulating only the draws still
    unsettled; percentiles are values a draw takes (inverted CDF).
    ``process``: a process, or a mapping program -> process (each program's lots made with
    its own, all sharing the suites first come, first served); ``params``: each process's
    per-draw parameters of these draws (those requirements used; a Dataset, or a mapping
    process name -> Dataset).
    ``queue_runs`` is the number of draw-simulations made (a draw simulated at one size
    counts 1).
    """
    from capacity import suites_for_service_level

    need = suites_for_service_level(
        demand,
        process,
        max_wait_days=max_wait_days,
        epsilon=epsilon,
        seed=seed,
        opening=opening,
        by_month=False,
        start=start,
        params=params,
    )
    per_draw = need["suites_needed"].values
    out: dict[str, Any] = {
        f"p{100 * q:g}": int(np.quantile(per_draw, q, method="inverted_cdf")) for q in quantiles
    }
    out.update(
        draws=int(demand.sizes["draw"]),
        queue_runs=int(need.attrs["queue_runs"]),
        queue_runs_per_draw=int(need.attrs["queue_runs_per_draw"]),
    )
    return out


def _plans(scenario: Scenario, total: xr.Dataset, suites: pd.Series) -> dict[str, Any]:
    """The module plan for suites, then a hiring plan per role staffing its suites."""
    from capacity import plan_expansion, plan_hiring

    fac = scenario.facility
    as_of = pd.Timestamp(scenario.run.as_of)
    plans = {
        "suites": plan_expansion(
            total,
            resource="suites",
            installed=suites,
            unit_size=fac.module_suites,
            lead_time_months=fac.module_lead_time_months,
            target=fac.shortfall_target,
            cost_per_unit_year=fac.module_cost_per_year,
            as_of=as_of,
        )
    }
    for role in ROLES:
        plans[role] = plan_hiring(
            total,
            role=role,
            installed=getattr(fac, role),
            hiring_months=fac.hiring_lead_months,
            training_months=0,
            target=fac.shortfall_target,
            cost_per_fte_year=scenario.costs.salary(role),
            suites=plans["suites"],  # staff the suites the module plan brings online
            as_of=as_of,
        )
    return plans


def decide(
    scenario: Scenario,
    world,
    req: xr.Dataset,
    total: xr.Dataset,
    processes: dict[str, Any],
    *,
    service_level: bool = True,
) -> Decisions:
    """Shortfall, plans, service-level suites and drivers of one run.

    ``world``: the portfolio's draws (:class:`forecast.PortfolioDraws`); ``req``: their
    requirements by program; ``total``: the facility totals; ``processes``: each program's
    process. ``service_level=False`` skips the day-level simulation (``service`` is None).
    """
    from capacity import shortfall_probability

    fac = scenario.facility
    suites = scenario.suites_by_month(pd.DatetimeIndex(total["month"].values))
    installed = {
        "suites": suites,
        "operator_fte": fac.operator_fte,
        "qc_fte": fac.qc_fte,
        "qa_fte": fac.qa_fte,
    }
    shortfall = shortfall_probability(total, installed)
    plans = _plans(scenario, total, suites)
    service_processes = {str(program): spec.name for program, spec in processes.items()}
    service = None
    peak = total["suites"].max("month").values
    if service_level:
        n = min(fac.service_level.draws, world.demand.sizes["draw"])
        all_draws = world.demand.sizes["draw"]
        service = service_level_suites(
            world.demand.isel(draw=slice(0, n)),
            processes,
            quantiles=(0.5, 0.9),
            max_wait_days=fac.service_level.max_wait_days,
            epsilon=fac.service_level.epsilon,
            seed=scenario.run.seed,
            opening=world.opening or None,
            start=SERVICE_START_SHARE * peak[:n],
            # draw i keeps the process parameters requirements drew for it
            params={
                spec.name: spec.sample(all_draws, world.seed).isel(draw=slice(0, n))
                for spec in {s.name: s for s in processes.values()}.values()
            },
        )
    drivers = rank_drivers(input_columns(world, processes, len(peak), scenario.run.seed), peak)
    return Decisions(installed, shortfall, plans, service, service_processes, drivers)
