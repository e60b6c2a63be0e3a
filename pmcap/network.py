"""The ``[network]`` stage of ``pmcap run``: the network plan, ``network.csv`` and its costs.

:func:`plan_scenario_network` builds the scenario's :class:`capacity.Network`
(:func:`pmcap.inputs.scenario_network`, suite-days per lot from the run's requirements) and
plans it across the run's demand draws with :func:`capacity.plan_network` (the model and its
assumptions are that module's). :func:`network_table` lays the plan out as ``network.csv``;
:func:`site_costs` gives each site's capital and operating cost per month of the recommended
plan (``finance.csv``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["NetworkRun", "network_table", "plan_scenario_network", "site_costs"]


@dataclass
class NetworkRun:
    """The network stage's result: the network, its plan and the plan's costs per site."""

    network: Any  # capacity.Network
    plan: Any  # capacity.NetworkPlan
    costs: pd.DataFrame  # site_costs: month x (kind, site)
    period_months: int
    currency: str


def suite_days_per_lot(req: xr.Dataset) -> dict[str, float]:
    """Suite-days a lot occupies per program: the program's suite-days over its lots, summed
    over draws and months (1 for a program with no lot, which then needs no capacity)."""
    ratio = req["suite_days"].sum(("draw", "month")) / req["lots"].sum(("draw", "month"))
    out = {}
    for program, value in ratio.to_series().items():
        out[str(program)] = float(value) if np.isfinite(value) and value > 0 else 1.0
    return out


def operator_hours_per_lot(req: xr.Dataset, hours_per_month: float) -> dict[str, float]:
    """Operator-hours a lot takes per program: the program's operator FTE-months (hands-on
    hours or the crew floor, whichever is larger: ``operator_fte``) x ``hours_per_month``
    over its lots, summed over draws and months (1 for a program with no lot)."""
    ratio = (
        req["operator_fte"].sum(("draw", "month"))
        * hours_per_month
        / req["lots"].sum(("draw", "month"))
    )
    out = {}
    for program, value in ratio.to_series().items():
        out[str(program)] = float(value) if np.isfinite(value) and value > 0 else 1.0
    return out


def plan_scenario_network(scenario, demand: xr.DataArray, req: xr.Dataset) -> NetworkRun:
    """Plan the scenario's ``[network]`` across the demand draws (seed ``run.seed``)."""
    from capacity.network import plan_network
    from pmcap.inputs import scenario_network

    sec = scenario.network
    net = scenario_network(
        scenario,
        suite_days_per_lot(req),
        operator_hours_per_lot(req, sec.operator_hours_per_month),
    )
    currency = scenario.costs.currency
    plan = plan_network(
        demand,
        net,
        period_months=sec.period_months,
        decision_months=sec.decision_months,
        milp_draws=sec.milp_draws,
        seed=scenario.run.seed,
        service_target=sec.service_target,
        readout=None if sec.readout is None else pd.Timestamp(sec.readout),
        wait_months=sec.wait_months,
        information_groups=sec.information_groups,
        mip_rel_gap=sec.mip_rel_gap,
        time_limit=sec.time_limit,
        currency=currency,
        integer_hires=sec.integer_hires,
    )
    costs = site_costs(plan, net, demand, period_months=sec.period_months, seed=scenario.run.seed)
    return NetworkRun(net, plan, costs, sec.period_months, currency)


def online_suites(plan, network, months: pd.DatetimeIndex, period_months: int) -> np.ndarray:
    """Suites (own) or reserved slots (CDMO) online per period and site under the plan's
    commitments of group 0 (the optimum's, the same in every draw)."""
    starts = months[::period_months]
    online = np.tile([float(s.suites) for s in network.sites], (len(starts), 1))
    names = [s.name for s in network.sites]
    for row in plan.commitments.itertuples():
        if row.group != 0 or row.kind == "hire":
            continue
        online[starts >= row.online_month, names.index(row.site)] += row.suites_added
    return online


def online_operators(plan, network, months: pd.DatetimeIndex, period_months: int) -> np.ndarray:
    """Qualified operators per period and site under the plan's hires of group 0 (0 at a
    site whose operators are not modelled)."""
    starts = months[::period_months]
    online = np.tile([float(s.operators or 0.0) for s in network.sites], (len(starts), 1))
    names = [s.name for s in network.sites]
    for row in plan.commitments.itertuples():
        if row.group == 0 and row.kind == "hire":
            online[starts >= row.online_month, names.index(row.site)] += row.units
    return online


def site_costs(
    plan, network, demand: xr.DataArray, *, period_months: int = 3, seed: int = 0
) -> pd.DataFrame:
    """Capital and operating cost per month and site of the plan's commitments (undiscounted,
    the mean over draws): a frame indexed by month with columns ``(kind, site)``.

    Capital: ``module_capital`` per module in its commitment month. Operating: an own module's
    ``module_cost_per_year / 12`` per month from the month it is online, a CDMO slot's fee
    per month from the month it is reserved, ``fixed_cost_per_year / 12`` per month (a site
    with suites now: every month; a new site: from the first period it has capacity
    online), and the site's ``cost_per_lot`` times the lots it makes in the least-cost
    assignment of each draw (:func:`capacity.assign_lots`; a period's lots spread evenly over
    its months). A site with ``operators`` also has an ``operators`` column:
    ``operator_cost_per_year / 12`` per qualified operator per month (those now: every
    month; a hire: from the month qualified) and ``hire_cost`` per hire in its commitment
    month. Lane costs, the penalty for patients not served and the late cost of a backlog
    are not a site's and are left out; discounted as :func:`capacity.plan_network`
    discounts (per period start), these costs plus those three are the plan's expected cost.
    """
    from capacity.network import assign_lots

    months = pd.DatetimeIndex(demand["month"].values)
    n = len(months)
    online = online_suites(plan, network, months, period_months)
    crew = online_operators(plan, network, months, period_months)
    lots = assign_lots(
        demand, network, online, operators_online=crew, period_months=period_months, seed=seed
    )["lots"]
    lots_mean = lots.mean("draw").values  # (period, site)
    period_of = np.arange(n) // period_months
    in_period = np.bincount(period_of)
    month_index = {m: i for i, m in enumerate(months)}
    columns = {}
    for j, site in enumerate(network.sites):
        capital = np.zeros(n)
        running = np.zeros(n)
        has_capacity = np.full(n, site.suites > 0)
        staff = np.full(n, float(site.operators or 0.0) * site.operator_cost_per_year / 12.0)
        for row in plan.commitments.itertuples():
            if row.site != site.name or row.group != 0:
                continue
            c = month_index[row.commit_month]
            if row.kind == "hire":
                staff[c] += site.hire_cost * row.units
                if row.online_month <= months[-1]:
                    o = month_index[row.online_month]
                    staff[o:] += site.operator_cost_per_year / 12.0 * row.units
                continue
            capital[c] += site.module_capital * row.units
            o = month_index.get(row.online_month, n) if row.online_month <= months[-1] else n
            begin = c if site.kind == "cdmo" else o
            running[begin:] += site.unit_cost_per_month * row.units
            has_capacity[o:] = True
        # a new site's fixed cost is paid from its first period with capacity online
        first = np.flatnonzero(has_capacity)
        fixed = np.zeros(n)
        if len(first):
            fixed[first[0] :] = site.fixed_cost_per_year / 12.0
        variable = site.cost_per_lot * lots_mean[period_of, j] / in_period[period_of]
        columns[("capital", site.name)] = capital
        columns[("operating", site.name)] = running + fixed + variable
        if site.crewed:
            columns[("operators", site.name)] = staff
    frame = pd.DataFrame(columns, index=months)
    frame.columns = pd.MultiIndex.from_tuples(frame.columns, names=["kind", "site"])
    return frame


COLUMNS = [
    "section",
    "name",
    "site",
    "kind",
    "group",
    "commit_month",
    "online_month",
    "units",
    "suites_added",
    "expected_cost",
    "cost_p10",
    "cost_p50",
    "cost_p90",
    "service_probability",
    "cost_per_patient_p10",
    "cost_per_patient_p50",
    "cost_per_patient_p90",
    "p_in_house_cheaper",
    "late_patients",
    "modules",
    "cdmo_slots",
    "hires",
    "in_sample_cost",
    "mip_gap",
    "milp_draws",
    "wait_months",
    "value_of_waiting",
    "currency",
]


def network_table(run: NetworkRun) -> pd.DataFrame:
    """``network.csv``: one ``plan`` row (the recommended plan's summary), one
    ``commitment`` row per commitment (with dates), one ``alternative`` row per plan
    considered and one ``waiting`` row per ``wait_months`` (columns :data:`COLUMNS`)."""
    plan = run.plan
    rows: list[dict[str, Any]] = [{"section": "plan", "name": "optimum", **plan.summary}]
    for c in plan.commitments.itertuples(index=False):
        row = c._asdict()
        row["commit_month"] = f"{row['commit_month']:%Y-%m}"
        row["online_month"] = f"{row['online_month']:%Y-%m}"
        rows.append({"section": "commitment", "name": "optimum", **row})
    for a in plan.alternatives.to_dict("records"):
        rows.append({"section": "alternative", "name": a.pop("alternative"), **a})
    for months, value in plan.value_of_waiting.items():
        rows.append(
            {
                "section": "waiting",
                "name": f"wait {months} months",
                "wait_months": months,
                "value_of_waiting": value,
            }
        )
    frame = pd.DataFrame(rows).reindex(columns=COLUMNS)
    frame["currency"] = run.currency
    return frame
