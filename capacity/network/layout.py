"""The problem laid out as arrays: periods, arcs allowed by the vein-to-vein limit, patients
per draw, period and (program, region)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from capacity.errors import InputError
from capacity.network.model import Network
from capacity.resource_needs import PATIENT_STREAMS

DAYS_PER_MONTH = 365.25 / 12  # a month of waiting in the vein-to-vein check (backlog)


# --- the problem laid out as arrays -------------------------------------------------------------
@dataclass
class _Layout:
    """Periods, arcs (program, region, site allowed by the vein-to-vein limit) and costs."""

    months: pd.DatetimeIndex
    period_start: np.ndarray  # month index of each period's first month
    period_months: np.ndarray  # months in each period
    days: np.ndarray  # calendar days in each period
    discount: np.ndarray  # per period
    arc_pair: np.ndarray  # arc -> (program, region) pair index
    arc_site: np.ndarray  # arc -> site index
    arc_cost: np.ndarray  # per lot, undiscounted
    arc_suite_days: np.ndarray  # per lot
    n_pairs: int
    pair_program: np.ndarray
    pair_region: np.ndarray
    lead_periods: np.ndarray  # per site
    step: int  # months per period
    hire_lead_periods: np.ndarray  # per site
    res_site: np.ndarray  # capacity resource -> site (suites of every site, then crews)
    res_crew: np.ndarray  # bool per resource: operator-hours (True) or suite-days
    arc_use: np.ndarray  # (resource, arc): suite-days or operator-hours per lot
    operator_hours_per_month: float
    arc_delays: np.ndarray  # per arc: most periods a lot may wait (backlog), 0 without

    @property
    def n_res(self) -> int:
        return len(self.res_site)

    def capacity(self, suites: np.ndarray, operators: np.ndarray) -> np.ndarray:
        """Suite-days and operator-hours per resource: ``suites`` and ``operators`` online,
        shape ``(..., period, site)`` -> ``(..., period, resource)``."""
        days = self.days[:, None] * np.asarray(suites, float)
        hours = (self.operator_hours_per_month * self.period_months)[:, None] * np.asarray(
            operators, float
        )
        crew = self.res_site[self.res_crew]
        return np.concatenate([days, hours[..., crew]], axis=-1)


def _layout(net: Network, months: pd.DatetimeIndex, period_months: int) -> _Layout:
    if int(period_months) != period_months or period_months < 1:
        raise InputError(
            f"network: period_months must be a whole number >= 1, got {period_months!r}"
        )
    n = len(months)
    start = np.arange(0, n, period_months)
    length = np.minimum(period_months, n - start)
    month_days = np.asarray(months.days_in_month, float)
    days = np.add.reduceat(month_days, start)
    discount = (1.0 + net.discount_rate) ** (-start / 12.0)
    programs, regions = net.programs, net.regions
    site_index = {s.name: i for i, s in enumerate(net.sites)}
    lanes = {(ln.region, ln.site): ln for ln in net.lanes}
    pair_program, pair_region = np.divmod(np.arange(len(programs) * len(regions)), len(regions))
    arcs = []
    for p, (j, r) in enumerate(zip(pair_program, pair_region, strict=True)):
        program, region = programs[j], regions[r]
        for site in net.sites:
            lane = lanes.get((region, site.name))
            if (
                lane is None
                or 2 * lane.transport_days + site.turnaround_days > net.vein_to_vein_days[program]
            ):
                continue
            slack = net.vein_to_vein_days[program] - 2 * lane.transport_days - site.turnaround_days
            wait = min(net.max_wait_months, slack / DAYS_PER_MONTH)  # months
            arcs.append(
                (
                    p,
                    site_index[site.name],
                    site.cost_per_lot + lane.cost_per_lot,
                    net.suite_days_per_lot[program],
                    math.floor(wait / period_months + 1e-9),
                )
            )
    arc = np.array(arcs, float).reshape(-1, 5)
    lead = np.array([math.ceil(s.lead_time_months / period_months) for s in net.sites], int)
    hire_lead = np.array(
        [math.ceil(s.hire_lead_time_months / period_months) for s in net.sites], int
    )
    n_sites = len(net.sites)
    crewed = np.array([i for i, s in enumerate(net.sites) if s.crewed], int)
    arc_pair, arc_site = arc[:, 0].astype(int), arc[:, 1].astype(int)
    use = np.zeros((n_sites + crewed.size, len(arc)))
    use[arc_site, np.arange(len(arc))] = arc[:, 3]
    hours = net.operator_hours_per_lot or {}
    for k, i in enumerate(crewed):
        on = arc_site == i
        use[n_sites + k, on] = [hours[programs[pair_program[a]]] for a in arc_pair[on]]
    return _Layout(
        months,
        start,
        length,
        days,
        discount,
        arc_pair,
        arc_site,
        arc[:, 2],
        arc[:, 3],
        len(pair_program),
        pair_program,
        pair_region,
        lead,
        int(period_months),
        hire_lead,
        np.r_[np.arange(n_sites), crewed].astype(int),
        np.r_[np.zeros(n_sites, bool), np.ones(crewed.size, bool)],
        use,
        float(net.operator_hours_per_month),
        arc[:, 4].astype(int),
    )


def _regional_patients(
    demand: xr.DataArray, net: Network, seed: int
) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """Patients per draw, month, program, region (programs and regions in the network's order)."""
    if (
        not isinstance(demand, xr.DataArray)
        or "draw" not in demand.dims
        or "month" not in demand.dims
    ):
        raise InputError(
            "network: demand must be a DataArray with dims draw and month (the demand contract)"
        )
    if "stream" in demand.dims:
        demand = demand.sel(
            stream=[s for s in PATIENT_STREAMS if s in demand["stream"].values]
        ).sum("stream")
    if "program" not in demand.dims:
        if len(net.programs) != 1:
            raise InputError("network: demand has no program dim; the network has several programs")
        demand = demand.expand_dims(program=net.programs)
    missing = [p for p in net.programs if p not in demand["program"].values]
    if missing:
        raise InputError(
            f"network: demand has no program {missing[0]!r}; "
            f"it has {list(demand['program'].values)}"
        )
    patients = (
        demand.sel(program=net.programs).transpose("draw", "month", "program").values.astype(float)
    )
    if not np.isfinite(patients).all() or (patients < 0).any():
        raise InputError("network: demand must be finite and >= 0")
    regions = net.regions
    mean = np.array([[net.region_shares[p].get(r, 0.0) for r in regions] for p in net.programs])
    if net.share_concentration is None:
        shares = np.broadcast_to(mean, (patients.shape[0], *mean.shape))
    else:
        rng = np.random.default_rng(seed)
        alpha = net.share_concentration * mean
        gamma = np.where(
            alpha > 0,
            rng.gamma(np.where(alpha > 0, alpha, 1.0), size=(patients.shape[0], *mean.shape)),
            0.0,
        )
        shares = gamma / gamma.sum(axis=2, keepdims=True)
    return patients[:, :, :, None] * shares[:, None, :, :], pd.DatetimeIndex(demand["month"].values)


def _by_period(regional: np.ndarray, lay: _Layout) -> np.ndarray:
    """Patients per draw, period, pair."""
    per = np.add.reduceat(regional, lay.period_start, axis=1)
    return per.reshape(per.shape[0], per.shape[1], -1)
