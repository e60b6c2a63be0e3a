"""The investment MILP: the sample average approximation over the draws, solved by HiGHS."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp

from capacity.errors import InputError
from capacity.network.assign import _recourse_program
from capacity.network.layout import _Layout
from capacity.network.model import SERVICE_TOLERANCE, Network


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


def _hire_cost(lay: _Layout, net: Network) -> tuple[np.ndarray, float]:
    """Discounted cost of one hire per (site, period) (``hire_cost`` at commitment and the
    loaded cost from the month qualified to the end) and the constant cost of the operators
    qualified now (the whole horizon)."""
    n_periods = len(lay.period_start)
    running = lay.discount * lay.period_months
    later = np.cumsum(running[::-1])[::-1]
    hire = np.zeros((len(net.sites), n_periods))
    constant = 0.0
    for i, site in enumerate(net.sites):
        if not site.crewed:
            continue
        per_month = site.operator_cost_per_year / 12.0
        online_from = np.arange(n_periods) + lay.hire_lead_periods[i]
        run = np.where(online_from < n_periods, later[np.minimum(online_from, n_periods - 1)], 0.0)
        hire[i] = site.hire_cost * lay.discount + per_month * run
        constant += float(site.operators) * per_month * running.sum()
    return hire, constant


def _solve(
    lay: _Layout,
    net: Network,
    need: np.ndarray,
    opts: _Options,
    service_target: float | None,
    mip_rel_gap: float,
    time_limit: float,
    cumulative: bool = True,
    integer_hires: bool = True,
) -> tuple[np.ndarray, float, float, np.ndarray]:
    """Commitments per group, site and period minimising the sample average cost; the
    in-sample cost and HiGHS's relative gap at the end; the hires per group, site and
    period (integer ``h``, with ``w[g, i, q]`` the hires qualified by period ``q``, the
    cumulative form; only when a site has operators) come third. Without
    ``integer_hires`` the hires are continuous in the MILP and each is rounded up after it
    (the plan keeps at least the capacity the MILP chose; its cost is then that of the
    rounded plan, evaluated as every plan is).

    With ``cumulative`` (the default) a continuous variable ``u[g, i, q]`` holds the units
    online at site ``i`` in period ``q`` (``u[q] = u[q - 1] + k[q - lead_i]``, one row of
    three terms each), and every capacity row of a draw refers to that one variable. Without
    it, every capacity row lists every commitment usable by then (``periods / 2`` terms on
    average): the same feasible set and optimum, with about half the nonzeros on the
    bundled example (156,620 against 328,469 at 100 draws x 40 quarters x 3 sites).
    """
    n_draws, n_periods, n_pairs = need.shape
    sites = net.sites
    n_sites = len(sites)
    n_groups = int(opts.groups.max()) + 1
    weight = np.bincount(opts.groups, minlength=n_groups) / n_draws
    commit_cost, open_cost, constant = _first_stage_cost(lay, net)
    n_k = n_groups * n_sites * n_periods
    k_index = np.arange(n_k).reshape(n_groups, n_sites, n_periods)
    o_index = n_k + k_index
    u_index = 2 * n_k + k_index  # units online (cumulative formulation only)
    n_first = (3 if cumulative else 2) * n_k
    crewed = np.array([s.crewed for s in sites])
    hire_cost, crew_constant = _hire_cost(lay, net)
    constant += crew_constant
    h_index = n_first + k_index  # hires committed (integer)
    w_index = n_first + n_k + k_index  # hires qualified by then (cumulative)
    if crewed.any():
        n_first += 2 * n_k
    n_z = n_draws if service_target is not None else 0
    z_offset = n_first
    rec_offset = n_first + n_z
    demand_rows, capacity_rows, rec_cost, unmet_cols = _recourse_program(lay, net, n_draws)
    n_res = lay.n_res
    n_rec = rec_cost.size
    n_vars = rec_offset + n_rec

    c = np.zeros(n_vars)
    c[k_index] = weight[:, None, None] * commit_cost[None]
    c[o_index] = weight[:, None, None] * open_cost[None]
    if crewed.any():
        c[h_index] = weight[:, None, None] * hire_cost[None]
    c[rec_offset:] = rec_cost / n_draws

    unit = np.array([s.unit_suites for s in sites])
    installed = np.array([s.suites for s in sites])
    max_units = np.array([s.max_units for s in sites], float)
    max_hires = np.where(crewed, [float(s.max_hires) for s in sites], 0.0)
    blocks = []
    # demand: recourse only
    blocks.append(
        (
            sp.hstack([sp.csr_matrix((demand_rows.shape[0], rec_offset)), demand_rows]),
            need.ravel(),
            need.ravel(),
        )
    )
    # online[i, q, p]: a commitment in p is usable in q
    online = (
        np.arange(n_periods)[None, :, None]
        >= np.arange(n_periods)[None, None, :] + lay.lead_periods[:, None, None]
    )
    operators_now = np.array([s.operators or 0.0 for s in sites])
    cap_rhs = np.broadcast_to(
        lay.capacity(installed[None, :], operators_now[None, :]), (n_draws, n_periods, n_res)
    ).ravel()
    new = np.flatnonzero(installed == 0)
    if cumulative:
        # u[g, i, q] = u[g, i, q - 1] + k[g, i, q - lead_i]: units online, one row each
        blocks.append(_running_total(u_index, k_index, lay.lead_periods, n_vars))
        # capacity: lots' suite-days - days x unit x u <= days x suites now
        draw, period, site = np.unravel_index(
            np.arange(n_draws * n_periods * n_sites), (n_draws, n_periods, n_sites)
        )
        cols = u_index[opts.groups[draw], site, period]
        rows = (draw * n_periods + period) * n_res + site
    else:
        # capacity with every usable commitment written out (the formulation before u)
        draw, site, period, commit_p = np.nonzero(
            np.broadcast_to(online[None], (n_draws, n_sites, n_periods, n_periods))
        )
        rows = (draw * n_periods + period) * n_res + site
        cols = k_index[opts.groups[draw], site, commit_p]
    vals = -lay.days[period] * unit[site]
    if crewed.any():
        # operator-hours: lots' hours - hours per operator x w <= hours of the operators now
        n_crew = n_res - n_sites
        draw, period, k = np.unravel_index(
            np.arange(n_draws * n_periods * n_crew), (n_draws, n_periods, n_crew)
        )
        site = lay.res_site[n_sites + k]
        rows = np.r_[rows, (draw * n_periods + period) * n_res + n_sites + k]
        cols = np.r_[cols, w_index[opts.groups[draw], site, period]]
        vals = np.r_[vals, -lay.operator_hours_per_month * lay.period_months[period]]
    link = sp.csr_matrix((vals, (rows, cols)), shape=(capacity_rows.shape[0], rec_offset))
    blocks.append((sp.hstack([link, capacity_rows]), np.full(cap_rhs.size, -np.inf), cap_rhs))
    # a new site pays its fixed cost in every period it has capacity online
    if new.size:
        n_rows = n_groups * new.size * n_periods
        gg, ii, qq = np.unravel_index(np.arange(n_rows), (n_groups, new.size, n_periods))
        if cumulative:
            a = sp.csr_matrix(
                (np.ones(n_rows), (np.arange(n_rows), u_index[gg, new[ii], qq])),
                shape=(n_rows, n_vars),
            )
        else:
            g, i, q, p = np.nonzero(
                np.broadcast_to(online[None, new], (n_groups, new.size, n_periods, n_periods))
            )
            rows = (g * new.size + i) * n_periods + q
            a = sp.csr_matrix(
                (np.ones(rows.size), (rows, k_index[g, new[i], p])), shape=(n_rows, n_vars)
            )
        a = a - sp.csr_matrix(
            (max_units[new[ii]], (np.arange(n_rows), o_index[gg, new[ii], qq])),
            shape=(n_rows, n_vars),
        )
        blocks.append((a, np.full(n_rows, -np.inf), np.zeros(n_rows)))
    if crewed.any():
        # w[g, i, q] = w[g, i, q - 1] + h[g, i, q - hire_lead_i]: hires qualified, one row each
        blocks.append(_running_total(w_index, h_index, lay.hire_lead_periods, n_vars))
        rows = np.repeat(np.arange(n_groups * n_sites), n_periods)
        a = sp.csr_matrix(
            (np.ones(n_k), (rows, h_index.ravel())), shape=(n_groups * n_sites, n_vars)
        )
        blocks.append((a, np.full(n_groups * n_sites, -np.inf), np.tile(max_hires, n_groups)))
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
        for index in (k_index, h_index) if crewed.any() else (k_index,):
            n_rows = g.size
            r = np.arange(n_rows)
            a = sp.csr_matrix(
                (
                    np.r_[np.ones(n_rows), -np.ones(n_rows)],
                    (np.r_[r, r], np.r_[index[g + 1, i, p], index[0, i, p]]),
                ),
                shape=(n_rows, n_vars),
            )
            blocks.append((a, np.zeros(n_rows), np.zeros(n_rows)))
    if service_target is not None:
        # unmet patients of draw s <= (its patients) x z_s; sum z <= floor(target x draws)
        rows = np.repeat(np.arange(n_draws), n_periods * n_pairs)
        big_m = need.sum(axis=(1, 2))
        a = sp.csr_matrix(
            (np.ones(rows.size), (rows, rec_offset + unmet_cols.ravel())), shape=(n_draws, n_vars)
        )
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
    if cumulative:
        upper[u_index] = max_units[None, :, None]
    if crewed.any():
        upper[h_index] = np.where(opts.allowed[None], max_hires[None, :, None], 0.0)
        upper[w_index] = max_hires[None, :, None]
    upper[z_offset : z_offset + n_z] = 1.0
    integrality = np.zeros(n_vars)
    integrality[: 2 * n_k] = 1  # commitments and "open"; u, z follow
    integrality[z_offset : z_offset + n_z] = 1
    if crewed.any() and integer_hires:
        integrality[h_index] = 1
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
    if not crewed.any():
        hires = np.zeros_like(units)
    elif integer_hires:
        hires = np.rint(res.x[h_index]).astype(int)
    else:
        hires = np.ceil(res.x[h_index] - 1e-6).astype(int)
    gap = float(getattr(res, "mip_gap", np.nan) or 0.0)
    return units, float(res.fun) * scale + constant, gap, hires


def _running_total(total_index, add_index, lead, n_vars):
    """Equality rows ``total[g, i, q] - total[g, i, q - 1] - add[g, i, q - lead_i] = 0``
    (one per group, site and period; no previous total in period 0, no addition before
    ``lead_i``): the units online (or operators qualified) from the commitments (hires)."""
    n = total_index.size
    g, i, q = np.unravel_index(np.arange(n), total_index.shape)
    rows, cols, vals = [np.arange(n)], [total_index[g, i, q]], [np.ones(n)]
    has_prev = q > 0
    rows.append(np.flatnonzero(has_prev))
    cols.append(total_index[g, i, q - 1][has_prev])
    vals.append(-np.ones(int(has_prev.sum())))
    source = q - lead[i]
    has_add = source >= 0
    rows.append(np.flatnonzero(has_add))
    cols.append(add_index[g, i, source][has_add])
    vals.append(-np.ones(int(has_add.sum())))
    a = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n_vars)
    )
    return a, np.zeros(n), np.zeros(n)
