"""A manufacturing network planned across demand draws: sites, CDMOs, lanes, investments.

Model (one MILP, solved by HiGHS through :func:`scipy.optimize.milp`)
    * **Time.** The demand months are grouped into periods of ``period_months`` (3: quarters).
      A period's capacity is suite-days: suites online x calendar days of the period.
    * **Sites.** An own site has ``suites`` installed now and can add modules of
      ``module_suites`` suites; a module committed in period ``p`` is online from period
      ``p + ceil(lead_time_months / period_months)`` for the rest of the horizon. A CDMO adds
      reserved slots instead; a slot is one suite's capacity, paid ``slot_fee_per_month``
      every month from the month it is reserved (take-or-pay), usable after the CDMO's lead
      time. ``fixed_cost_per_year`` is paid by a site with suites now for the whole horizon,
      and by a new site from the first period it has capacity online.
    * **Lanes and vein-to-vein.** Patients of a program start in regions (``region_shares``,
      fixed or Dirichlet per draw); a lane carries the apheresis material from a region to a
      site and the product back. A lot of program ``j`` from region ``r`` may be made at site
      ``s`` only if ``2 x transport_days(r, s) + turnaround_days(s) <= vein_to_vein_days(j)``
      (the same lane out and back, an assumption). A lot uses ``suite_days_per_lot[j]``
      suite-days at an own site or a CDMO alike.
    * **Recourse, per draw and period** (the assignment): lots served per allowed (program,
      region, site) and patients not served, at least cost: ``cost_per_lot`` of the site (a
      CDMO's price) + the lane's ``cost_per_lot`` per lot, ``cost_per_patient_unserved`` per
      patient not served in the period they start (there is no backlog: a patient not made in
      their period counts as not treated). Lots are continuous (an LP), so a draw's unmet
      patients can be fractional.
    * **Investment (first stage).** Integer modules / slots committed per site and period and a
      binary "site has capacity" per new site and period. Every commitment is the same in all
      draws (non-anticipative). With ``wait_months`` the commitments before that month are
      forbidden and, with ``information_groups > 1``, later commitments may differ between
      groups of draws that look different at that month (quantile bins of the patients who
      started before it, known then), so the plan still uses only what is known when it
      commits.
    * **Objective.** Expected total discounted cost (sample average over ``milp_draws``
      draws): capital at commitment, module running and slot fees while online / reserved,
      fixed costs, lot and lane costs, and the penalty per patient not served. Discounting:
      a cost in the period starting ``m`` months after the first month is multiplied by
      ``(1 + discount_rate) ** (-m / 12)``.
    * **Service level.** By default it is priced, not constrained (the penalty formulation:
      the plan minimises cost including ``cost_per_patient_unserved`` and the share of draws
      that serve everyone is reported). With ``service_target`` it is also a chance constraint:
      a binary per draw ``z`` with ``sum(unmet patients of the draw) <= M z`` (``M`` = the
      draw's patients, the tightest valid big-M) and ``sum(z) <= floor(service_target x draws)``,
      so at most that share of draws may leave anyone unserved.

The plan is then evaluated on every draw (the assignment LP of all draws, batched into a few
block-diagonal HiGHS solves) for out-of-sample cost percentiles, P(service met), cost per
patient treated and the alternatives (no new capacity, in-house now, in-house after a
readout, CDMO only, in-house only, the optimum). References: the network structure (candidate
sites, lanes with transport times, a vein-to-vein cap) follows i-SHIPMENT, Triantafyllou et
al., Sci Rep 12:17365 (2022); sample average approximation: Shapiro, Dentcheva and
Ruszczynski, Lectures on Stochastic Programming (2009), ch. 5.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from capacity.errors import InputError
from capacity.resource_needs import PATIENT_STREAMS

__all__ = ["Lane", "Network", "NetworkPlan", "Site", "assign_lots", "plan_network"]

KINDS = ("own", "cdmo")
SERVICE_TOLERANCE = 1e-6  # patients: unmet below this in a draw counts as served


def _nonnegative(owner: str, **values: float) -> None:
    for name, value in values.items():
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise InputError(
                f"network: {owner}: {name} must be a finite number >= 0, got {value!r}"
            )


@dataclass(frozen=True)
class Site:
    """An own facility (``kind="own"``) or a CDMO (``kind="cdmo"``); costs in one currency.

    ``suites``: suites installed now (own); ``module_suites``: suites one module adds (own; a
    CDMO slot is one suite); ``max_units``: most modules or slots committed over the horizon;
    ``module_capital`` (per module, at commitment), ``module_cost_per_year`` (per module
    online); ``slot_fee_per_month`` (CDMO, per reserved slot); ``fixed_cost_per_year``;
    ``cost_per_lot`` (own: variable cost; CDMO: price per lot); ``lead_time_months``
    (commitment to use); ``turnaround_days`` (receipt of the apheresis to product shipped).
    """

    name: str
    kind: str = "own"
    suites: float = 0.0
    module_suites: float = 1.0
    max_units: int = 4
    module_capital: float = 0.0
    module_cost_per_year: float = 0.0
    slot_fee_per_month: float = 0.0
    fixed_cost_per_year: float = 0.0
    cost_per_lot: float = 0.0
    lead_time_months: int = 0
    turnaround_days: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InputError(f"network: site name must be a non-empty string, got {self.name!r}")
        if self.kind not in KINDS:
            raise InputError(
                f"network: site {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}"
            )
        _nonnegative(
            f"site {self.name!r}",
            suites=self.suites,
            max_units=self.max_units,
            module_capital=self.module_capital,
            module_cost_per_year=self.module_cost_per_year,
            slot_fee_per_month=self.slot_fee_per_month,
            fixed_cost_per_year=self.fixed_cost_per_year,
            cost_per_lot=self.cost_per_lot,
            lead_time_months=self.lead_time_months,
            turnaround_days=self.turnaround_days,
        )
        if not (isinstance(self.module_suites, int | float) and self.module_suites > 0):
            raise InputError(
                f"network: site {self.name!r}: module_suites must be > 0, "
                f"got {self.module_suites!r}"
            )
        if (
            int(self.max_units) != self.max_units
            or int(self.lead_time_months) != self.lead_time_months
        ):
            raise InputError(
                f"network: site {self.name!r}: max_units and lead_time_months must be whole numbers"
            )
        if self.kind == "cdmo" and self.suites:
            raise InputError(
                f"network: site {self.name!r}: a CDMO has no suites of its own; reserve slots"
            )

    @property
    def unit_suites(self) -> float:
        """Suites one commitment adds: a module's suites (own) or one slot (CDMO)."""
        return float(self.module_suites) if self.kind == "own" else 1.0

    @property
    def unit_cost_per_month(self) -> float:
        """Running cost of one module (own) or the fee of one reserved slot (CDMO) per month."""
        return self.module_cost_per_year / 12.0 if self.kind == "own" else self.slot_fee_per_month


@dataclass(frozen=True)
class Lane:
    """Transport from a region's treatment centres to a site (and back): one way in days."""

    region: str
    site: str
    transport_days: float
    cost_per_lot: float = 0.0

    def __post_init__(self) -> None:
        _nonnegative(
            f"lane {self.region!r} -> {self.site!r}",
            transport_days=self.transport_days,
            cost_per_lot=self.cost_per_lot,
        )


@dataclass(frozen=True)
class Network:
    """Sites, lanes, where each program's patients are, and the costs of not serving them.

    ``region_shares``: program -> region -> share of its patients (each program's shares sum
    to one); with ``share_concentration`` the shares of each draw are Dirichlet with mean
    ``region_shares`` and concentration ``share_concentration`` (larger: less uncertain).
    ``vein_to_vein_days``: program -> most days from apheresis to infusion;
    ``suite_days_per_lot``: program -> suite-days a lot occupies (culture + changeover over
    lots per suite). ``cost_per_patient_unserved``: penalty per patient not made in the
    period they start. ``discount_rate``: per year.
    """

    sites: Sequence[Site]
    lanes: Sequence[Lane]
    region_shares: Mapping[str, Mapping[str, float]]
    vein_to_vein_days: Mapping[str, float]
    suite_days_per_lot: Mapping[str, float]
    cost_per_patient_unserved: float
    discount_rate: float = 0.0
    share_concentration: float | None = None

    def __post_init__(self) -> None:
        names = [s.name for s in self.sites]
        if not names:
            raise InputError("network: give at least one site")
        if len(set(names)) != len(names):
            raise InputError(f"network: site names must be unique, got {names}")
        regions = sorted({r for shares in self.region_shares.values() for r in shares})
        seen = set()
        for lane in self.lanes:
            if lane.site not in names:
                raise InputError(
                    f"network: lane {lane.region!r} -> {lane.site!r}: unknown site {lane.site!r}; "
                    f"sites are {names}"
                )
            if lane.region not in regions:
                raise InputError(
                    f"network: lane {lane.region!r} -> {lane.site!r}: unknown region "
                    f"{lane.region!r}; regions are {regions}"
                )
            if (lane.region, lane.site) in seen:
                raise InputError(f"network: lane {lane.region!r} -> {lane.site!r} is given twice")
            seen.add((lane.region, lane.site))
        _nonnegative(
            "network",
            cost_per_patient_unserved=self.cost_per_patient_unserved,
            discount_rate=self.discount_rate,
        )
        if self.share_concentration is not None and not self.share_concentration > 0:
            raise InputError(
                f"network: share_concentration must be > 0, got {self.share_concentration!r}"
            )
        site = {s.name: s for s in self.sites}
        for program, shares in self.region_shares.items():
            for region, share in shares.items():
                _nonnegative(f"region_shares[{program!r}]", **{region: share})
            total = sum(shares.values())
            if abs(total - 1.0) > 1e-9:
                raise InputError(
                    f"network: region_shares[{program!r}] must sum to one, "
                    f"got {total:g} ({dict(shares)})"
                )
            for table, what in (
                (self.vein_to_vein_days, "vein_to_vein_days"),
                (self.suite_days_per_lot, "suite_days_per_lot"),
            ):
                if program not in table:
                    raise InputError(f"network: {what} has no value for program {program!r}")
            limit = self.vein_to_vein_days[program]
            _nonnegative(f"vein_to_vein_days[{program!r}]", days=limit)
            if not self.suite_days_per_lot[program] > 0:
                raise InputError(
                    f"network: suite_days_per_lot[{program!r}] must be > 0, "
                    f"got {self.suite_days_per_lot[program]!r}"
                )
            for region, share in shares.items():
                if share == 0:
                    continue
                routes = [
                    2 * ln.transport_days + site[ln.site].turnaround_days
                    for ln in self.lanes
                    if ln.region == region
                ]
                if not routes:
                    raise InputError(
                        f"network: region {region!r} (program {program!r}) has no lane to any site"
                    )
                if min(routes) > limit:
                    raise InputError(
                        f"network: vein_to_vein_days[{program!r}] = {limit:g} is shorter than the "
                        "fastest route "
                        f"from region {region!r} ({min(routes):g} days: 2 x transport + turnaround)"
                    )

    @property
    def programs(self) -> list[str]:
        return list(self.region_shares)

    @property
    def regions(self) -> list[str]:
        return sorted({r for shares in self.region_shares.values() for r in shares})


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
            arcs.append(
                (
                    p,
                    site_index[site.name],
                    site.cost_per_lot + lane.cost_per_lot,
                    net.suite_days_per_lot[program],
                )
            )
    arc = np.array(arcs, float).reshape(-1, 4)
    lead = np.array([math.ceil(s.lead_time_months / period_months) for s in net.sites], int)
    return _Layout(
        months,
        start,
        length,
        days,
        discount,
        arc[:, 0].astype(int),
        arc[:, 1].astype(int),
        arc[:, 2],
        arc[:, 3],
        len(pair_program),
        pair_program,
        pair_region,
        lead,
        int(period_months),
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


# --- the recourse block: assignment of every (draw, period) -------------------------------------
def _recourse_matrices(lay: _Layout, n_blocks: int, n_sites: int):
    """Demand rows (equalities) and capacity rows of ``n_blocks`` (draw, period) blocks.

    Columns per block: the arcs' lots, then the pairs' unmet patients."""
    n_arcs, n_pairs = len(lay.arc_pair), lay.n_pairs
    width = n_arcs + n_pairs
    block = np.arange(n_blocks)[:, None]
    # demand: pair rows; arcs and the unmet column of the pair
    rows = np.concatenate([lay.arc_pair, np.arange(n_pairs)])
    d_rows = (block * n_pairs + rows[None, :]).ravel()
    d_cols = (block * width + np.arange(width)[None, :]).ravel()
    demand_rows = sp.csr_matrix(
        (np.ones(d_rows.size), (d_rows, d_cols)), shape=(n_blocks * n_pairs, n_blocks * width)
    )
    c_rows = (block * n_sites + lay.arc_site[None, :]).ravel()
    c_cols = (block * width + np.arange(n_arcs)[None, :]).ravel()
    c_vals = np.broadcast_to(lay.arc_suite_days, (n_blocks, n_arcs)).ravel()
    capacity_rows = sp.csr_matrix(
        (c_vals, (c_rows, c_cols)), shape=(n_blocks * n_sites, n_blocks * width)
    )
    return demand_rows, capacity_rows, width


def _block_costs(lay: _Layout, net: Network, n_draws: int) -> np.ndarray:
    """Discounted cost per column of (draw, period) blocks: arcs, then unmet patients."""
    per_period = np.concatenate(
        [
            lay.discount[:, None] * lay.arc_cost[None, :],
            lay.discount[:, None] * np.full((1, lay.n_pairs), net.cost_per_patient_unserved),
        ],
        axis=1,
    )
    return np.tile(per_period.ravel(), n_draws)


def assign_lots(
    demand: xr.DataArray,
    network: Network,
    suites_online: np.ndarray,
    *,
    period_months: int = 3,
    seed: int = 0,
    chunk_draws: int = 200,
    closed_form: bool = True,
) -> xr.Dataset:
    """The least-cost assignment of every draw's lots to sites, for given capacity.

    ``suites_online``: suites (own) or reserved slots (CDMO) online per period and site,
    shape ``(period, site)`` for all draws or ``(draw, period, site)``. Solves the recourse LP
    of every (draw, period) (see the module docstring): in closed form where no site is
    congested (``closed_form``), the rest as one block-diagonal HiGHS LP per ``chunk_draws``
    draws' worth of blocks. Returns a Dataset with dims draw, period, site: ``lots``
    (made at each site), ``unmet_patients``, ``patients``, ``assignment_cost`` (discounted,
    lots and lanes plus the unserved penalty).
    """
    regional, months = _regional_patients(demand, network, seed)
    lay = _layout(network, months, period_months)
    need = _by_period(regional, lay)
    online = np.asarray(suites_online, float)
    n_draws, n_periods, n_sites = need.shape[0], len(lay.period_start), len(network.sites)
    if online.shape[-2:] != (n_periods, n_sites):
        raise InputError(
            f"network: suites_online must have shape (..., {n_periods} periods, {n_sites} sites), "
            f"got {online.shape}"
        )
    online = np.broadcast_to(online, (n_draws, n_periods, n_sites))
    lots, unmet, cost = _assign(lay, network, need, online, chunk_draws, closed_form)
    period = months[lay.period_start]
    names = [s.name for s in network.sites]
    return xr.Dataset(
        {
            "lots": (("draw", "period", "site"), lots),
            "unmet_patients": (("draw", "period"), unmet),
            "patients": (("draw", "period"), need.sum(axis=2)),
            "assignment_cost": (("draw",), cost),
        },
        coords={"draw": np.asarray(demand["draw"].values), "period": period, "site": names},
    )


def _assign(
    lay: _Layout,
    net: Network,
    need: np.ndarray,
    online: np.ndarray,
    chunk_draws: int,
    closed_form: bool = True,
):
    """Lots per site, unmet patients per (draw, period) and discounted cost per draw.

    Closed form first: in a (draw, period) where every (program, region) pair can go to its
    cheapest allowed site (or stay unserved, if the penalty is cheaper) without any site
    exceeding its suite-days, that is the optimum (each pair's cost is then at its lower
    bound). Only the other blocks go to HiGHS, ``chunk_draws`` draws' worth of blocks per LP.
    """
    n_draws, n_periods, n_pairs = need.shape
    n_sites = online.shape[2]
    n_arcs = len(lay.arc_pair)
    width = n_arcs + n_pairs
    n_blocks = n_draws * n_periods
    need_b = need.reshape(n_blocks, n_pairs)
    cap_b = (online * lay.days[None, :, None]).reshape(n_blocks, n_sites)
    discount_b = np.tile(lay.discount, n_draws)
    x = np.zeros((n_blocks, width))
    # each pair's cheapest option among the arcs to sites with capacity in the block, and the
    # unmet column (chosen only when the penalty is cheaper: arcs come first among equals)
    unit_cost = np.r_[lay.arc_cost, np.full(n_pairs, net.cost_per_patient_unserved)]
    owner = np.r_[lay.arc_pair, np.arange(n_pairs)]
    order = np.lexsort((np.arange(width) >= n_arcs, unit_cost, owner))
    rank = np.empty(width, int)
    first_of = np.searchsorted(owner[order], np.arange(n_pairs))
    rank[order] = np.arange(width) - first_of[owner[order]]
    options = np.full((n_pairs, int(rank.max()) + 1), -1)
    options[owner, rank] = np.arange(width)  # per pair, its columns from cheapest
    congested = np.ones(n_blocks, bool)
    if closed_form:
        has_room = cap_b > 0
        open_column = np.ones((n_blocks, width), bool)
        open_column[:, :n_arcs] = has_room[:, lay.arc_site]
        allowed = np.where(options[None] >= 0, open_column[:, np.maximum(options, 0)], False)
        best = options[np.arange(n_pairs)[None, :], allowed.argmax(axis=2)]  # (block, pair)
        rows = np.arange(n_blocks)[:, None]
        x[rows, best] = need_b
        load = np.zeros((n_blocks, n_sites))
        arc_part = np.where(best < n_arcs, best, 0)
        sd = np.where(best < n_arcs, lay.arc_suite_days[arc_part] * need_b, 0.0)
        np.add.at(load, (np.broadcast_to(rows, best.shape), lay.arc_site[arc_part]), sd)
        congested = (load > cap_b * (1 + 1e-12) + 1e-9).any(axis=1)
        x[congested] = 0.0
    todo = np.flatnonzero(congested)
    per_lp = max(1, chunk_draws) * n_periods
    for lo in range(0, len(todo), per_lp):  # a few large LPs, each over many blocks
        blocks = todo[lo : lo + per_lp]
        demand_rows, capacity_rows, _ = _recourse_matrices(lay, len(blocks), n_sites)
        c = (discount_b[blocks, None] * unit_cost[None, :]).ravel()
        res = linprog(
            c,
            A_ub=capacity_rows,
            b_ub=cap_b[blocks].ravel(),
            A_eq=demand_rows,
            b_eq=need_b[blocks].ravel(),
            bounds=(0, None),
            method="highs",
        )
        if res.status != 0:  # the unmet columns keep it feasible; anything else is a bug
            raise RuntimeError(f"network: assignment LP failed: {res.message}")
        x[blocks] = res.x.reshape(len(blocks), width)
    site_lots = np.zeros((n_blocks, n_sites))
    np.add.at(site_lots.T, lay.arc_site, x[:, :n_arcs].T)
    cost = (x * unit_cost[None, :]).sum(axis=1) * discount_b
    return (
        site_lots.reshape(n_draws, n_periods, n_sites),
        x[:, n_arcs:].sum(axis=1).reshape(n_draws, n_periods),
        cost.reshape(n_draws, n_periods).sum(axis=1),
    )


# --- the investment MILP ------------------------------------------------------------------------
@dataclass
class _Options:
    """Which commitments a plan may make: per site, the allowed commit periods."""

    allowed: np.ndarray  # bool (site, period)
    info_period: int  # from this period on, commitments may differ between groups
    groups: np.ndarray  # group per MILP draw


def _first_stage_cost(lay: _Layout, net: Network) -> tuple[np.ndarray, np.ndarray, float]:
    """Discounted cost of one commitment per (site, period), of being open per (site, period),
    and the constant fixed cost of the sites with suites now."""
    n_periods = len(lay.period_start)
    commit = np.zeros((len(net.sites), n_periods))
    opened = np.zeros((len(net.sites), n_periods))
    constant = 0.0
    running = lay.discount * lay.period_months  # discounted months per period
    for i, site in enumerate(net.sites):
        later = np.cumsum(running[::-1])[::-1]  # from period q to the end
        online_from = np.arange(n_periods) + lay.lead_periods[i]
        run = np.where(online_from < n_periods, later[np.minimum(online_from, n_periods - 1)], 0.0)
        if site.kind == "cdmo":  # the fee is paid from reservation, not from use
            run = later
        commit[i] = site.module_capital * lay.discount + site.unit_cost_per_month * run
        fixed = site.fixed_cost_per_year / 12.0 * running
        if site.suites > 0:
            constant += fixed.sum()
        else:
            opened[i] = fixed
    return commit, opened, constant


def _solve(
    lay: _Layout,
    net: Network,
    need: np.ndarray,
    opts: _Options,
    service_target: float | None,
    mip_rel_gap: float,
    time_limit: float,
) -> tuple[np.ndarray, float, float]:
    """Commitments per group, site and period minimising the sample average cost; the
    in-sample cost and HiGHS's relative gap at the end."""
    n_draws, n_periods, n_pairs = need.shape
    sites = net.sites
    n_sites = len(sites)
    n_groups = int(opts.groups.max()) + 1
    weight = np.bincount(opts.groups, minlength=n_groups) / n_draws
    commit_cost, open_cost, constant = _first_stage_cost(lay, net)
    n_k = n_groups * n_sites * n_periods
    k_index = np.arange(n_k).reshape(n_groups, n_sites, n_periods)
    o_index = n_k + k_index
    n_first = 2 * n_k
    n_z = n_draws if service_target is not None else 0
    z_offset = n_first
    rec_offset = n_first + n_z
    demand_rows, capacity_rows, width = _recourse_matrices(lay, n_draws * n_periods, n_sites)
    n_rec = n_draws * n_periods * width
    n_vars = rec_offset + n_rec

    c = np.zeros(n_vars)
    c[k_index] = weight[:, None, None] * commit_cost[None]
    c[o_index] = weight[:, None, None] * open_cost[None]
    c[rec_offset:] = _block_costs(lay, net, n_draws) / n_draws

    unit = np.array([s.unit_suites for s in sites])
    installed = np.array([s.suites for s in sites])
    max_units = np.array([s.max_units for s in sites], float)
    blocks = []
    # demand: recourse only
    blocks.append(
        (
            sp.hstack([sp.csr_matrix((demand_rows.shape[0], rec_offset)), demand_rows]),
            need.ravel(),
            need.ravel(),
        )
    )
    # capacity: lots' suite-days - days x unit x (units online) <= days x suites now
    online = (
        np.arange(n_periods)[None, :, None]
        >= np.arange(n_periods)[None, None, :] + lay.lead_periods[:, None, None]
    )
    # online[i, q, p]: a commitment in p is usable in q
    draw, site, period, commit_p = np.nonzero(
        np.broadcast_to(online[None], (n_draws, n_sites, n_periods, n_periods))
    )
    rows = (draw * n_periods + period) * n_sites + site
    cols = k_index[opts.groups[draw], site, commit_p]
    vals = -lay.days[period] * unit[site]
    link = sp.csr_matrix((vals, (rows, cols)), shape=(capacity_rows.shape[0], rec_offset))
    cap_rhs = (lay.days[None, :, None] * installed[None, None, :]).repeat(n_draws, axis=0).ravel()
    blocks.append((sp.hstack([link, capacity_rows]), np.full(cap_rhs.size, -np.inf), cap_rhs))
    # a new site pays its fixed cost in every period it has capacity online
    new = np.flatnonzero(installed == 0)
    if new.size:
        g, i, q, p = np.nonzero(
            np.broadcast_to(online[None, new], (n_groups, new.size, n_periods, n_periods))
        )
        rows = (g * new.size + i) * n_periods + q
        n_rows = n_groups * new.size * n_periods
        a = sp.csr_matrix(
            (np.ones(rows.size), (rows, k_index[g, new[i], p])), shape=(n_rows, n_vars)
        )
        gg, ii, qq = np.unravel_index(np.arange(n_rows), (n_groups, new.size, n_periods))
        a = a - sp.csr_matrix(
            (max_units[new[ii]], (np.arange(n_rows), o_index[gg, new[ii], qq])),
            shape=(n_rows, n_vars),
        )
        blocks.append((a, np.full(n_rows, -np.inf), np.zeros(n_rows)))
    # at most max_units per site (per group)
    rows = np.repeat(np.arange(n_groups * n_sites), n_periods)
    a = sp.csr_matrix((np.ones(n_k), (rows, k_index.ravel())), shape=(n_groups * n_sites, n_vars))
    blocks.append((a, np.full(n_groups * n_sites, -np.inf), np.tile(max_units, n_groups)))
    # non-anticipation: before the information period, every group commits the same
    if n_groups > 1 and opts.info_period > 0:
        g, i, p = np.nonzero(
            np.broadcast_to(
                np.arange(n_periods)[None, None, :] < opts.info_period,
                (n_groups - 1, n_sites, n_periods),
            )
        )
        n_rows = g.size
        r = np.arange(n_rows)
        a = sp.csr_matrix(
            (
                np.r_[np.ones(n_rows), -np.ones(n_rows)],
                (np.r_[r, r], np.r_[k_index[g + 1, i, p], k_index[0, i, p]]),
            ),
            shape=(n_rows, n_vars),
        )
        blocks.append((a, np.zeros(n_rows), np.zeros(n_rows)))
    if service_target is not None:
        # unmet patients of draw s <= (its patients) x z_s; sum z <= floor(target x draws)
        unmet_cols = rec_offset + (
            np.arange(n_draws * n_periods)[:, None] * width
            + len(lay.arc_pair)
            + np.arange(n_pairs)[None, :]
        )
        rows = np.repeat(np.arange(n_draws), n_periods * n_pairs)
        big_m = need.sum(axis=(1, 2))
        a = sp.csr_matrix((np.ones(rows.size), (rows, unmet_cols.ravel())), shape=(n_draws, n_vars))
        a = a - sp.csr_matrix(
            (big_m, (np.arange(n_draws), z_offset + np.arange(n_draws))), shape=(n_draws, n_vars)
        )
        blocks.append((a, np.full(n_draws, -np.inf), np.full(n_draws, SERVICE_TOLERANCE)))
        a = sp.csr_matrix(
            (np.ones(n_draws), (np.zeros(n_draws, int), z_offset + np.arange(n_draws))),
            shape=(1, n_vars),
        )
        blocks.append((a, [-np.inf], [math.floor(service_target * n_draws + 1e-9)]))

    lower = np.zeros(n_vars)
    upper = np.full(n_vars, np.inf)
    upper[k_index] = np.where(opts.allowed[None], max_units[None, :, None], 0.0)
    upper[o_index] = 1.0
    upper[z_offset : z_offset + n_z] = 1.0
    integrality = np.zeros(n_vars)
    integrality[:rec_offset] = 1
    constraints = [
        LinearConstraint(
            sp.vstack([b[0] for b in blocks]).tocsr(),
            np.concatenate([np.ravel(b[1]) for b in blocks]),
            np.concatenate([np.ravel(b[2]) for b in blocks]),
        )
    ]
    # costs of 1e8 (capital) next to 1e2 (a lane) strain HiGHS; the optimum does not change
    scale = float(np.abs(c).max()) / 1e4 if np.abs(c).max() > 0 else 1.0
    res = milp(
        c / scale,
        constraints=constraints,
        integrality=integrality,
        bounds=Bounds(lower, upper),
        options={"mip_rel_gap": mip_rel_gap, "time_limit": time_limit},
    )
    if res.x is None:
        raise InputError(
            f"network: the investment MILP has no solution ({res.message}); "
            "relax service_target or max_units"
        )
    units = np.rint(res.x[k_index]).astype(int)
    gap = float(getattr(res, "mip_gap", np.nan) or 0.0)
    return units, float(res.fun) * scale + constant, gap


# --- plans and their evaluation -----------------------------------------------------------------
@dataclass
class NetworkPlan:
    """A network plan: commitments, its out-of-sample cost distribution and the alternatives.

    ``commitments``: site, kind, group, commit_month, online_month, units, suites_added.
    ``summary``: expected_cost and p10/p50/p90 (discounted, evaluated on every draw),
    in_sample_cost (the MILP's objective on its draws), mip_gap (HiGHS's relative gap at the
    end: above ``mip_rel_gap`` only when ``time_limit`` stopped it), service_probability
    (share of draws where every patient is served), cost_per_patient_p10/p50/p90 (total cost
    / patients treated), p_in_house_cheaper (share of draws where the in-house-only plan costs less
    than the CDMO-only plan; NaN without both kinds of site or without ``alternatives``).
    ``alternatives``: one row per plan considered. ``value_of_waiting``: months -> expected
    cost of committing now minus that of waiting (positive: waiting is worth it).
    ``draws``: per draw total_cost, patients, unmet_patients, service_met. ``timings``:
    seconds to solve and evaluate each plan.
    """

    commitments: pd.DataFrame
    summary: dict[str, float]
    alternatives: pd.DataFrame
    draws: pd.DataFrame
    value_of_waiting: dict[int, float] = field(default_factory=dict)
    currency: str = ""
    timings: dict[str, float] = field(default_factory=dict)  # seconds per plan solved

    def __str__(self) -> str:
        lines = [
            f"network plan: expected cost {self.summary['expected_cost']:,.0f} "
            f"{self.currency}".rstrip()
        ]
        for row in self.commitments.itertuples():
            lines.append(
                f"  {row.site}: commit {row.commit_month:%Y-%m} -> "
                f"online {row.online_month:%Y-%m} x{row.units}"
            )
        return "\n".join(lines)


def _online(units: np.ndarray, lay: _Layout, net: Network) -> np.ndarray:
    """Suites (or slots) online per group, period and site, installed ones included."""
    n_periods = units.shape[2]
    usable = (
        np.arange(n_periods)[None, :, None]
        >= np.arange(n_periods)[None, None, :] + lay.lead_periods[:, None, None]
    )
    added = np.einsum("gip,iqp->gqi", units, usable.astype(float))
    unit = np.array([s.unit_suites for s in net.sites])
    return np.array([s.suites for s in net.sites])[None, None, :] + added * unit[None, None, :]


def _fixed_cost(units: np.ndarray, lay: _Layout, net: Network) -> np.ndarray:
    """First-stage cost per group: commitments, running and fixed costs."""
    commit, opened, constant = _first_stage_cost(lay, net)
    usable = (
        np.arange(units.shape[2])[None, :, None]
        >= np.arange(units.shape[2])[None, None, :] + lay.lead_periods[:, None, None]
    )
    any_online = np.einsum("gip,iqp->giq", units, usable.astype(float)) > 0
    return (
        (units * commit[None]).sum(axis=(1, 2))
        + (any_online * opened[None]).sum(axis=(1, 2))
        + constant
    )


def _evaluate(units, lay, net, need, groups, chunk_draws) -> pd.DataFrame:
    online = _online(units, lay, net)[groups]
    _, unmet, cost = _assign(lay, net, need, online, chunk_draws)
    patients = need.sum(axis=(1, 2))
    unmet_total = unmet.sum(axis=1)
    total = _fixed_cost(units, lay, net)[groups] + cost
    return pd.DataFrame(
        {
            "total_cost": total,
            "patients": patients,
            "unmet_patients": unmet_total,
            "service_met": unmet_total <= SERVICE_TOLERANCE,
        }
    )


def _groups(
    need_months: np.ndarray, sample: np.ndarray, wait: int, n_groups: int
) -> tuple[np.ndarray, np.ndarray]:
    """Groups of draws by the patients who started before month ``wait`` (known then):
    quantile bins of the MILP sample, applied to every draw. Returns (all, sample) groups."""
    seen = need_months[:, :wait].sum(axis=1)
    if n_groups <= 1 or wait <= 0:
        return np.zeros(len(seen), int), np.zeros(len(sample), int)
    edges = np.unique(np.quantile(seen[sample], np.linspace(0, 1, n_groups + 1)[1:-1]))
    every = np.searchsorted(edges, seen, side="right")
    _, every = np.unique(every, return_inverse=True)  # drop empty bins
    return every, every[sample]


def plan_network(
    demand: xr.DataArray,
    network: Network,
    *,
    period_months: int = 3,
    decision_months: int = 12,
    milp_draws: int = 100,
    seed: int = 0,
    service_target: float | None = None,
    readout: str | pd.Timestamp | None = None,
    wait_months: Sequence[int] = (),
    information_groups: int = 2,
    alternatives: bool = True,
    mip_rel_gap: float = 0.01,
    time_limit: float = 60.0,
    chunk_draws: int = 200,
    currency: str = "",
) -> NetworkPlan:
    """The network investment plan at least expected cost across demand draws (SAA, HiGHS).

    Parameters
    ----------
    demand
        Demand draws (the demand contract); clinical and commercial patients of the
        network's programs are planned (a program the network does not list is left out);
        PPQ lots are not planned (an assumption: they are made before launch at the launch
        site).
    network
        Sites, lanes, regions and costs (:class:`Network`).
    period_months
        Months per assignment period (3: quarters).
    decision_months
        Commitments are made only in the first period of every ``decision_months`` (12:
        yearly decisions; a multiple of ``period_months``), which keeps the MILP small.
    milp_draws
        Draws in the MILP (a subsample chosen with ``seed``, all draws if fewer); the plan is
        then evaluated on every draw.
    service_target
        Largest share of draws allowed to leave any patient unserved (chance constraint,
        big-M per draw); ``None``: service is priced by ``cost_per_patient_unserved`` only.
    readout
        A month (e.g. the pivotal readout): adds the alternative "in-house after readout",
        commitments from that month on, which may depend on the draws' patients up to then.
    wait_months
        For each ``m``, the value of waiting ``m`` months: the expected cost (on every draw)
        of the optimum minus that of the plan that commits nothing in the first ``m``
        months and then commits per information group.
    information_groups
        Groups of draws (quantile bins of the patients who started before the waiting or
        readout month) whose later commitments may differ.
    mip_rel_gap, time_limit
        HiGHS options of each MILP (relative gap; seconds). A 1% gap is below the sampling
        error of the sample average itself: on the bundled example the standard error of a
        100-draw mean cost is 3.9% of it, and the plan at 1% equalled the plan at 0.01%.

    Returns
    -------
    NetworkPlan
    """
    if service_target is not None and not 0 <= service_target < 1:
        raise InputError(f"network: service_target must be in [0, 1), got {service_target!r}")
    if int(milp_draws) != milp_draws or milp_draws < 1:
        raise InputError(f"network: milp_draws must be a whole number >= 1, got {milp_draws!r}")
    regional, months = _regional_patients(demand, network, seed)
    lay = _layout(network, months, period_months)
    need = _by_period(regional, lay)
    monthly = regional.sum(axis=(2, 3))
    n_draws, n_periods = need.shape[0], need.shape[1]
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n_draws, size=min(milp_draws, n_draws), replace=False))
    kinds = np.array([s.kind for s in network.sites])
    if int(decision_months) != decision_months or decision_months % period_months:
        raise InputError(
            f"network: decision_months ({decision_months!r}) must be a multiple of "
            f"period_months ({period_months})"
        )
    every_period = np.zeros((len(network.sites), n_periods), bool)
    every_period[:, :: int(decision_months) // int(period_months)] = True

    def period_of(month: int) -> int:
        return min(n_periods, math.ceil(month / period_months))

    def from_period(wait: int) -> np.ndarray:
        """Decision periods from ``wait`` on, and ``wait`` itself (the first chance to act)."""
        period = np.arange(n_periods)[None, :]
        return (every_period | (period == wait)) & (period >= wait)

    timings: dict[str, float] = {}

    def run(name: str, allowed: np.ndarray, wait: int = 0, optimise: bool = True) -> dict:
        t0 = time.perf_counter()
        out = _run(name, allowed, wait, optimise)
        timings[name] = round(time.perf_counter() - t0, 3)
        return out

    def _run(name: str, allowed: np.ndarray, wait: int, optimise: bool) -> dict:
        groups_all, groups_sample = _groups(
            monthly, sample, wait * period_months, information_groups
        )
        if not optimise:
            units, in_sample, gap = np.zeros((1, len(network.sites), n_periods), int), np.nan, 0.0
            groups_all = np.zeros(n_draws, int)
        else:
            opts = _Options(allowed, wait, groups_sample)
            units, in_sample, gap = _solve(
                lay, network, need[sample], opts, service_target, mip_rel_gap, time_limit
            )
        draws = _evaluate(units, lay, network, need, groups_all, chunk_draws)
        return {
            "name": name,
            "units": units,
            "groups": groups_all,
            "in_sample": in_sample,
            "gap": gap,
            "draws": draws,
        }

    best = run("optimum", every_period)
    results = [best]
    if alternatives:
        own = (kinds == "own")[:, None]
        first = np.zeros_like(every_period)
        first[:, 0] = True
        results.append(run("no new capacity", every_period, optimise=False))
        results.append(run("in-house now", first & own))
        if readout is not None:
            month = (pd.Timestamp(readout).to_period("M") - months[0].to_period("M")).n
            if not 0 <= month < len(months):
                raise InputError(
                    f"network: readout {pd.Timestamp(readout).date()} is outside the demand months"
                )
            wait = period_of(month)
            allowed = own & from_period(wait)
            results.append(run("in-house after readout", allowed, wait=wait))
        if (kinds == "cdmo").any():
            results.append(run("CDMO only", every_period & ~own))
        if (kinds == "own").any():
            results.append(run("in-house only", every_period & own))
    value = {}
    for m in wait_months:
        wait = period_of(int(m))
        allowed = from_period(wait)
        waited = run(f"wait {int(m)} months", allowed, wait=wait)
        results.append(waited)
        value[int(m)] = float(
            best["draws"]["total_cost"].mean() - waited["draws"]["total_cost"].mean()
        )

    rows = []
    for r in results:
        d = r["draws"]
        rows.append(
            {
                "alternative": r["name"],
                "expected_cost": d["total_cost"].mean(),
                "cost_p10": d["total_cost"].quantile(0.1),
                "cost_p50": d["total_cost"].quantile(0.5),
                "cost_p90": d["total_cost"].quantile(0.9),
                "in_sample_cost": r["in_sample"],
                "mip_gap": r["gap"],
                "service_probability": d["service_met"].mean(),
                "modules": float(
                    r["units"][r["groups"]][:, kinds == "own"].sum(axis=(1, 2)).mean()
                ),
                "cdmo_slots": float(
                    r["units"][r["groups"]][:, kinds == "cdmo"].sum(axis=(1, 2)).mean()
                ),
            }
        )
    table = pd.DataFrame(rows)
    by_name = {r["name"]: r for r in results}
    draws = best["draws"].copy()
    draws.insert(0, "draw", np.asarray(demand["draw"].values))
    treated = draws["patients"] - draws["unmet_patients"]
    with np.errstate(divide="ignore", invalid="ignore"):
        per_patient = (draws["total_cost"] / treated).replace([np.inf, -np.inf], np.nan)
    cheaper = float("nan")
    if "CDMO only" in by_name and "in-house only" in by_name:
        cheaper = float(
            (
                by_name["in-house only"]["draws"]["total_cost"]
                < by_name["CDMO only"]["draws"]["total_cost"]
            ).mean()
        )
    summary = {
        "expected_cost": float(draws["total_cost"].mean()),
        "cost_p10": float(draws["total_cost"].quantile(0.1)),
        "cost_p50": float(draws["total_cost"].quantile(0.5)),
        "cost_p90": float(draws["total_cost"].quantile(0.9)),
        "in_sample_cost": float(best["in_sample"]),
        "mip_gap": best["gap"],
        "service_probability": float(draws["service_met"].mean()),
        "cost_per_patient_p10": float(per_patient.quantile(0.1)),
        "cost_per_patient_p50": float(per_patient.quantile(0.5)),
        "cost_per_patient_p90": float(per_patient.quantile(0.9)),
        "p_in_house_cheaper": cheaper,
        "milp_draws": int(len(sample)),
    }
    return NetworkPlan(
        _commitments(best["units"], lay, network), summary, table, draws, value, currency, timings
    )


def _commitments(units: np.ndarray, lay: _Layout, net: Network) -> pd.DataFrame:
    g, i, p = np.nonzero(units)
    start = lay.months[0]
    rows = []
    for gg, ii, pp in zip(g, i, p, strict=True):
        site = net.sites[ii]
        rows.append(
            {
                "site": site.name,
                "kind": site.kind,
                "group": int(gg),
                "commit_month": start + pd.DateOffset(months=int(lay.period_start[pp])),
                "online_month": start
                + pd.DateOffset(months=int((pp + lay.lead_periods[ii]) * lay.step)),
                "units": int(units[gg, ii, pp]),
                "suites_added": float(units[gg, ii, pp] * site.unit_suites),
            }
        )
    columns = ["site", "kind", "group", "commit_month", "online_month", "units", "suites_added"]
    return pd.DataFrame(rows, columns=columns)
