"""Plans and their evaluation on every draw: the optimum, the alternatives and the value of
waiting."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from capacity.errors import InputError
from capacity.network.assign import _assign_backlog, _assign_blocks
from capacity.network.layout import _by_period, _Layout, _layout, _regional_patients
from capacity.network.milp import _first_stage_cost, _hire_cost, _Options, _solve
from capacity.network.model import SERVICE_TOLERANCE, Network


# --- plans and their evaluation -----------------------------------------------------------------
@dataclass
class NetworkPlan:
    """A network plan: commitments, its out-of-sample cost distribution and the alternatives.

    ``commitments``: site, kind (``own``: modules, ``cdmo``: slots, ``hire``: operators),
    group, commit_month, online_month (a hire: qualified), units, suites_added.
    ``summary``: expected_cost and p10/p50/p90 (discounted, evaluated on every draw),
    in_sample_cost (the MILP's objective on its draws), mip_gap (HiGHS's relative gap at the
    end: above ``mip_rel_gap`` only when ``time_limit`` stopped it), service_probability
    (share of draws where every patient is served), cost_per_patient_p10/p50/p90 (total cost
    / patients treated), p_in_house_cheaper (share of draws where the in-house-only plan costs less
    than the CDMO-only plan; NaN without both kinds of site or without ``alternatives``),
    late_patients (mean over draws of the patients made after the period they started:
    0 without a backlog).
    ``alternatives``: one row per plan considered (``hires``: operators hired, mean over
    draws). ``value_of_waiting``: months -> expected
    cost of committing now minus that of waiting (positive: waiting is worth it).
    ``draws``: per draw total_cost, patients, unmet_patients, service_met, late_patients.
    ``timings``: seconds to solve and evaluate each plan.
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
            what = {"own": "modules", "cdmo": "slots", "hire": "operators"}[row.kind]
            lines.append(
                f"  {row.site}: commit {row.commit_month:%Y-%m} -> "
                f"online {row.online_month:%Y-%m} x{row.units} {what}"
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


def _operators(hires: np.ndarray, lay: _Layout, net: Network) -> np.ndarray:
    """Qualified operators per group, period and site: those now plus the hires qualified."""
    n_periods = hires.shape[2]
    usable = (
        np.arange(n_periods)[None, :, None]
        >= np.arange(n_periods)[None, None, :] + lay.hire_lead_periods[:, None, None]
    )
    added = np.einsum("gip,iqp->gqi", hires, usable.astype(float))
    return np.array([s.operators or 0.0 for s in net.sites])[None, None, :] + added


def _fixed_cost(units: np.ndarray, lay: _Layout, net: Network, hires=None) -> np.ndarray:
    """First-stage cost per group: commitments, hires, running and fixed costs."""
    commit, opened, constant = _first_stage_cost(lay, net)
    hire, crew = _hire_cost(lay, net)
    if hires is None:
        hires = np.zeros_like(units)
    usable = (
        np.arange(units.shape[2])[None, :, None]
        >= np.arange(units.shape[2])[None, None, :] + lay.lead_periods[:, None, None]
    )
    any_online = np.einsum("gip,iqp->giq", units, usable.astype(float)) > 0
    return (
        (units * commit[None]).sum(axis=(1, 2))
        + (any_online * opened[None]).sum(axis=(1, 2))
        + (hires * hire[None]).sum(axis=(1, 2))
        + constant
        + crew
    )


def _evaluate(units, lay, net, need, groups, chunk_draws, memo=None, hires=None) -> pd.DataFrame:
    """Every draw's total cost, patients and unmet patients under a plan.

    ``memo`` (a dict shared by the plans of one :func:`plan_network` call) keeps each
    (period, capacity: suite-days and operator-hours online) block's unmet patients and
    discounted cost per draw: a (draw, period) whose capacity an earlier plan already had is
    not solved again. The recourse of a block depends on nothing else (same draws, same
    periods), so the results are the same as without it; on the bundled example 32% of the
    (draw, period) blocks of the seven plans repeat an earlier plan's. With a backlog
    (``network.max_wait_months > 0``) the periods of a draw are coupled: every draw is one
    LP over its periods and the memo is not used.
    """
    if hires is None:
        hires = np.zeros_like(units)
    online = lay.capacity(_online(units, lay, net), _operators(hires, lay, net))
    n_draws, n_periods, _ = need.shape
    if net.backlog:  # periods coupled within a draw: no block is shared, every draw solved
        _, unmet, cost, late = _assign_backlog(lay, net, need, online[groups], chunk_draws)
        return _draw_frame(units, hires, lay, net, need, groups, unmet, cost, late)
    memo = {} if memo is None else memo
    entries = {}
    wanted_d, wanted_q = [], []
    for g in np.unique(groups):
        draws = np.flatnonzero(groups == g)
        for q in range(n_periods):
            key = (q, online[g, q].tobytes())
            if key not in memo:
                memo[key] = np.full((2, n_draws), np.nan)  # unmet, cost
            entries[g, q] = memo[key]
            missing = draws[np.isnan(memo[key][1, draws])]
            wanted_d.append(missing)
            wanted_q.append(np.full(missing.size, q))
    d = np.concatenate(wanted_d).astype(int)
    q = np.concatenate(wanted_q).astype(int)
    if d.size:
        x, unit_cost = _assign_blocks(
            lay,
            net,
            need[d, q],
            online[groups[d], q],
            lay.discount[q],
            max(1, chunk_draws) * n_periods,
        )
        n_arcs = len(lay.arc_pair)
        block_unmet = x[:, n_arcs:].sum(axis=1)
        block_cost = (x * unit_cost[None, :]).sum(axis=1) * lay.discount[q]
        for (g, period), entry in entries.items():
            here = (q == period) & (groups[d] == g)
            entry[0, d[here]] = block_unmet[here]
            entry[1, d[here]] = block_cost[here]
    unmet = np.zeros((n_draws, n_periods))
    cost = np.zeros(n_draws)
    for (g, period), entry in entries.items():
        draws = groups == g
        unmet[draws, period] = entry[0, draws]
        cost[draws] += entry[1, draws]
    return _draw_frame(units, hires, lay, net, need, groups, unmet, cost)


def _draw_frame(units, hires, lay, net, need, groups, unmet, cost, late=None) -> pd.DataFrame:
    """Per draw: first-stage plus recourse cost, patients, patients not served, patients
    made late (backlog only; else 0)."""
    patients = need.sum(axis=(1, 2))
    unmet_total = unmet.sum(axis=1)
    total = _fixed_cost(units, lay, net, hires)[groups] + cost
    return pd.DataFrame(
        {
            "total_cost": total,
            "patients": patients,
            "unmet_patients": unmet_total,
            "service_met": unmet_total <= SERVICE_TOLERANCE,
            "late_patients": np.zeros(len(patients)) if late is None else late.sum(axis=1),
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
    chunk_draws: int = 10,
    currency: str = "",
    integer_hires: bool = True,
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

    integer_hires
        Hires are integers in the MILP (exact); ``False``: continuous there and each
        rounded up afterwards, a faster approximation for sites with many operators.

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
    memo: dict = {}  # (period, suites online) -> unmet patients and cost per draw

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
            hires = units
            groups_all = np.zeros(n_draws, int)
        else:
            opts = _Options(allowed, wait, groups_sample)
            units, in_sample, gap, hires = _solve(
                lay,
                network,
                need[sample],
                opts,
                service_target,
                mip_rel_gap,
                time_limit,
                integer_hires=integer_hires,
            )
        draws = _evaluate(units, lay, network, need, groups_all, chunk_draws, memo, hires)
        return {
            "name": name,
            "units": units,
            "hires": hires,
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
                "hires": float(r["hires"][r["groups"]].sum(axis=(1, 2)).mean()),
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
        "late_patients": float(draws["late_patients"].mean()),
        "milp_draws": int(len(sample)),
    }
    return NetworkPlan(
        _commitments(best["units"], lay, network, best["hires"]),
        summary,
        table,
        draws,
        value,
        currency,
        timings,
    )


def _commitments(units: np.ndarray, lay: _Layout, net: Network, hires=None) -> pd.DataFrame:
    """One row per commitment: modules (kind ``own``), CDMO slots (``cdmo``) and hires
    (kind ``hire``: ``units`` operators, qualified from ``online_month``)."""
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
    if hires is not None:
        for gg, ii, pp in zip(*np.nonzero(hires), strict=True):
            rows.append(
                {
                    "site": net.sites[ii].name,
                    "kind": "hire",
                    "group": int(gg),
                    "commit_month": start + pd.DateOffset(months=int(lay.period_start[pp])),
                    "online_month": start
                    + pd.DateOffset(months=int((pp + lay.hire_lead_periods[ii]) * lay.step)),
                    "units": int(hires[gg, ii, pp]),
                    "suites_added": 0.0,
                }
            )
    columns = ["site", "kind", "group", "commit_month", "online_month", "units", "suites_added"]
    return pd.DataFrame(rows, columns=columns)
