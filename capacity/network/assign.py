"""The recourse: the least-cost assignment of every (draw, period)'s lots to sites, for given
capacity (closed form where no site is congested, else block-diagonal HiGHS LPs)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import xarray as xr
from scipy.optimize import linprog

from capacity.errors import InputError
from capacity.network.layout import _by_period, _Layout, _layout, _regional_patients
from capacity.network.model import Network


# --- the recourse block: assignment of every (draw, period) -------------------------------------
def _recourse_matrices(lay: _Layout, n_blocks: int):
    """Demand rows (equalities) and capacity rows of ``n_blocks`` (draw, period) blocks.

    Columns per block: the arcs' lots, then the pairs' unmet patients. Capacity rows per
    block: one per resource (every site's suite-days, then each crewed site's
    operator-hours)."""
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
    res, arc = np.nonzero(lay.arc_use)  # capacity rows: suite-days, then operator-hours
    n_res = lay.n_res
    c_rows = (block * n_res + res[None, :]).ravel()
    c_cols = (block * width + arc[None, :]).ravel()
    c_vals = np.broadcast_to(lay.arc_use[res, arc], (n_blocks, res.size)).ravel()
    capacity_rows = sp.csr_matrix(
        (c_vals, (c_rows, c_cols)), shape=(n_blocks * n_res, n_blocks * width)
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
    operators_online: np.ndarray | None = None,
    period_months: int = 3,
    seed: int = 0,
    chunk_draws: int = 10,
    closed_form: bool = True,
) -> xr.Dataset:
    """The least-cost assignment of every draw's lots to sites, for given capacity.

    ``suites_online``: suites (own) or reserved slots (CDMO) online per period and site,
    shape ``(period, site)`` for all draws or ``(draw, period, site)``; ``operators_online``
    likewise, qualified operators per period and site (used at sites with ``operators``;
    ``None``: each site's ``operators`` now, in every period). Solves the recourse LP
    of every (draw, period) (see the module docstring): in closed form where no site is
    congested (``closed_form``), the rest as one block-diagonal HiGHS LP per ``chunk_draws``
    draws' worth of blocks (HiGHS's time grows faster than the blocks of one LP: on the bundled
    example, 300 draws, blocks of 10 draws took 0.84-0.98 s of CPU against 2.07 s for blocks of
    200 and 1.0 s for blocks of 2). With a backlog (``network.max_wait_months > 0``) the
    periods of a draw are coupled and each draw is one LP over its periods
    (``chunk_draws`` draws per HiGHS LP, no closed form); ``lots`` are then by the period
    made and ``unmet_patients`` by the period the patients started. Returns a Dataset with
    dims draw, period, site: ``lots``
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
    if operators_online is None:
        operators_online = [[s.operators or 0.0 for s in network.sites]]
    operators = np.asarray(operators_online, float)
    if operators.shape[-1] != n_sites:
        raise InputError(
            f"network: operators_online must have {n_sites} sites in its last axis, "
            f"got {operators.shape}"
        )
    cap = lay.capacity(online, np.broadcast_to(operators, online.shape))
    lots, unmet, cost = _assign(lay, network, need, cap, n_sites, chunk_draws, closed_form)
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
    cap: np.ndarray,
    n_sites: int,
    chunk_draws: int,
    closed_form: bool = True,
):
    """Lots per site, unmet patients per (draw, period) and discounted cost per draw
    (:func:`_assign_blocks` over every (draw, period)); ``cap``: (draw, period, resource)."""
    n_draws, n_periods, n_pairs = need.shape
    if net.backlog:  # periods are coupled: one LP per draw over its periods
        lots, unmet, cost, _ = _assign_backlog(lay, net, need, cap, chunk_draws)
        return lots, unmet, cost
    n_blocks = n_draws * n_periods
    x, unit_cost = _assign_blocks(
        lay,
        net,
        need.reshape(n_blocks, n_pairs),
        cap.reshape(n_blocks, lay.n_res),
        np.tile(lay.discount, n_draws),
        max(1, chunk_draws) * n_periods,
        closed_form,
    )
    n_arcs = len(lay.arc_pair)
    site_lots = np.zeros((n_blocks, n_sites))
    np.add.at(site_lots.T, lay.arc_site, x[:, :n_arcs].T)
    cost = (x * unit_cost[None, :]).sum(axis=1) * np.tile(lay.discount, n_draws)
    return (
        site_lots.reshape(n_draws, n_periods, n_sites),
        x[:, n_arcs:].sum(axis=1).reshape(n_draws, n_periods),
        cost.reshape(n_draws, n_periods).sum(axis=1),
    )


def _assign_blocks(
    lay: _Layout,
    net: Network,
    need_b: np.ndarray,
    cap_b: np.ndarray,
    discount_b: np.ndarray,
    per_lp: int,
    closed_form: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """The recourse LP of independent blocks: patients per pair ``need_b`` (block, pair),
    capacity ``cap_b`` (block, resource: suite-days, then operator-hours), discount per
    block. Returns the columns per block (arcs' lots, then unmet patients per pair) and the
    undiscounted cost per column.

    Closed form first: in a block where every (program, region) pair can go to its
    cheapest allowed site (or stay unserved, if the penalty is cheaper) without any site
    exceeding its suite-days, that is the optimum (each pair's cost is then at its lower
    bound). Only the other blocks go to HiGHS, ``per_lp`` blocks per LP.
    """
    n_blocks, n_pairs = need_b.shape
    n_arcs = len(lay.arc_pair)
    width = n_arcs + n_pairs
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
        uses = lay.arc_use > 0
        open_column = np.ones((n_blocks, width), bool)
        open_column[:, :n_arcs] = ((cap_b[:, :, None] > 0) | ~uses[None]).all(axis=1)
        allowed = np.where(options[None] >= 0, open_column[:, np.maximum(options, 0)], False)
        best = options[np.arange(n_pairs)[None, :], allowed.argmax(axis=2)]  # (block, pair)
        rows = np.arange(n_blocks)[:, None]
        x[rows, best] = need_b
        load = x[:, :n_arcs] @ lay.arc_use.T  # (block, resource)
        congested = (load > cap_b * (1 + 1e-12) + 1e-9).any(axis=1)
        x[congested] = 0.0
    todo = np.flatnonzero(congested)
    for lo in range(0, len(todo), per_lp):  # LPs of per_lp blocks each
        blocks = todo[lo : lo + per_lp]
        demand_rows, capacity_rows, _ = _recourse_matrices(lay, len(blocks))
        c = (discount_b[blocks, None] * unit_cost[None, :]).ravel()
        res = linprog(
            c,
            A_ub=capacity_rows,
            b_ub=cap_b[blocks].ravel(),
            A_eq=demand_rows,
            b_eq=need_b[blocks].ravel(),
            bounds=(0, None),
            method="highs",
            # presolve finds little in blocks this small: without it 0.69-0.95 s of CPU
            # against 0.92-1.41 s (300 draws of the bundled example, same costs to 3e-16)
            options={"presolve": False},
        )
        if res.status != 0:  # the unmet columns keep it feasible; anything else is a bug
            raise RuntimeError(f"network: assignment LP failed: {res.message}")
        x[blocks] = res.x.reshape(len(blocks), width)
    return x, unit_cost


# --- the recourse with a backlog: one LP per draw over its periods ------------------------------
def _backlog_template(lay: _Layout, net: Network):
    """One draw's recourse when patients may wait (``net.max_wait_months > 0``).

    Columns: lots ``y[q, d, arc]`` of patients who started in period ``q`` made in period
    ``q + d`` (``d`` up to the arc's ``arc_delays``, within the horizon), then patients not
    served ``u[q, pair]``. Rows: demand per (period started, pair) (equalities) and capacity
    per (period made, resource). Cost per column, discounted at the period the lot is made:
    the arc's cost per lot plus ``d x period months x late_cost_per_patient_month``; ``u``:
    the penalty at the period the patient started. Returns the two row blocks, the costs,
    the columns' (q, d, arc) and the number of ``y`` columns."""
    n_periods, n_pairs, n_res = len(lay.period_start), lay.n_pairs, lay.n_res
    q, d, a = [], [], []
    for delay in range(int(lay.arc_delays.max(initial=0)) + 1):
        arcs = np.flatnonzero(lay.arc_delays >= delay)
        qq, aa = np.meshgrid(np.arange(n_periods - delay), arcs, indexing="ij")
        q.append(qq.ravel())
        a.append(aa.ravel())
        d.append(np.full(qq.size, delay))
    q, d, a = (np.concatenate(v).astype(int) for v in (q, d, a))
    n_y = q.size
    n_cols = n_y + n_periods * n_pairs
    rows = np.r_[q * n_pairs + lay.arc_pair[a], np.arange(n_periods * n_pairs)]
    demand = sp.csr_matrix(
        (np.ones(n_cols), (rows, np.arange(n_cols))), shape=(n_periods * n_pairs, n_cols)
    )
    r_rows, r_cols, r_vals = [], [], []
    for r in range(n_res):
        on = np.flatnonzero(lay.arc_use[r, a] > 0)
        r_rows.append((q[on] + d[on]) * n_res + r)
        r_cols.append(on)
        r_vals.append(lay.arc_use[r, a[on]])
    capacity = sp.csr_matrix(
        (np.concatenate(r_vals), (np.concatenate(r_rows), np.concatenate(r_cols))),
        shape=(n_periods * n_res, n_cols),
    )
    late = d * lay.step * net.late_cost_per_patient_month
    cost = np.r_[
        (lay.arc_cost[a] + late) * lay.discount[q + d],
        np.repeat(lay.discount, n_pairs) * net.cost_per_patient_unserved,
    ]
    return demand, capacity, cost, (q, d, a), n_y


def _recourse_program(lay: _Layout, net: Network, n_draws: int):
    """The recourse of ``n_draws`` draws for the MILP: demand rows ((draw, period, pair)
    order), capacity rows ((draw, period, resource) order), the discounted cost per column
    and the columns of the patients not served, shape (draw, period x pair)."""
    n_periods, n_pairs = len(lay.period_start), lay.n_pairs
    if not net.backlog:
        demand_rows, capacity_rows, width = _recourse_matrices(lay, n_draws * n_periods)
        unmet = (
            np.arange(n_draws * n_periods)[:, None] * width
            + len(lay.arc_pair)
            + np.arange(n_pairs)[None, :]
        ).reshape(n_draws, -1)
        return demand_rows, capacity_rows, _block_costs(lay, net, n_draws), unmet
    demand, capacity, cost, _, n_y = _backlog_template(lay, net)
    eye = sp.identity(n_draws, format="csr")
    n_cols = cost.size
    unmet = np.arange(n_draws)[:, None] * n_cols + n_y + np.arange(n_periods * n_pairs)[None, :]
    return (
        sp.kron(eye, demand, format="csr"),
        sp.kron(eye, capacity, format="csr"),
        np.tile(cost, n_draws),
        unmet,
    )


def _assign_backlog(lay: _Layout, net: Network, need: np.ndarray, cap: np.ndarray, chunk: int):
    """The backlog recourse of every draw (:func:`_backlog_template`), ``chunk`` draws per
    block-diagonal HiGHS LP. ``need``: (draw, period, pair); ``cap``: (draw, period,
    resource). Returns lots per (draw, period made, site), patients not served per (draw,
    period started), discounted cost per draw and patients made late per (draw, period
    started)."""
    demand, capacity, cost, (q, d, a), n_y = _backlog_template(lay, net)
    n_draws, n_periods, _ = need.shape
    n_sites = int(lay.res_site[~lay.res_crew].size)
    lots = np.zeros((n_draws, n_periods, n_sites))
    unmet = np.zeros((n_draws, n_periods))
    late = np.zeros((n_draws, n_periods))
    total = np.zeros(n_draws)
    rows = np.arange(n_y)
    to_site = sp.csr_matrix(
        (np.ones(n_y), (rows, (q + d) * n_sites + lay.arc_site[a])),
        shape=(n_y, n_periods * n_sites),
    )
    to_late = sp.csr_matrix(((d > 0).astype(float), (rows, q)), shape=(n_y, n_periods))
    for lo in range(0, n_draws, max(1, chunk)):
        hi = min(n_draws, lo + max(1, chunk))
        eye = sp.identity(hi - lo, format="csr")
        res = linprog(
            np.tile(cost, hi - lo),
            A_ub=sp.kron(eye, capacity, format="csr"),
            b_ub=cap[lo:hi].ravel(),
            A_eq=sp.kron(eye, demand, format="csr"),
            b_eq=need[lo:hi].ravel(),
            bounds=(0, None),
            method="highs",
            options={"presolve": False},
        )
        if res.status != 0:  # the unmet columns keep it feasible; anything else is a bug
            raise RuntimeError(f"network: backlog assignment LP failed: {res.message}")
        x = res.x.reshape(hi - lo, cost.size)
        total[lo:hi] = x @ cost
        y = x[:, :n_y]
        lots[lo:hi] = (to_site.T @ y.T).T.reshape(hi - lo, n_periods, n_sites)
        late[lo:hi] = (to_late.T @ y.T).T
        unmet[lo:hi] = x[:, n_y:].reshape(hi - lo, n_periods, -1).sum(axis=2)
    return lots, unmet, total, late
