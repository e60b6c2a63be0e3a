"""Decisions from need draws: when to commit to a module or a hire, newsvendor sizing, CDMO mix.

The plan is greedy in time and exact for its rule: walking forward month by month, whenever the
probability that need exceeds installed capacity passes ``target``, one more unit (a module of
``unit_size`` suites, or a batch of hires) is brought online that month, which means committing
``lead_time_months`` earlier. Units are never removed. Months earlier than the lead time cannot
be helped by a new commitment; their shortfall is reported, not hidden.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from capacity.errors import InputError
from capacity.resource_needs import facility

__all__ = ["ExpansionPlan", "plan_expansion", "plan_hiring", "joint_shortfall", "newsvendor"]

TARGET_GRID = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)


@dataclass
class ExpansionPlan:
    """Commitments, capacity by month, risk and expected cost of one plan."""

    resource: str
    target: float
    commitments: pd.DataFrame  # unit, commit_month, online_month
    by_month: pd.DataFrame  # month, installed, cdmo, capacity, shortfall_probability, ...
    cost: dict[str, float]
    cdmo_slots: int = 0
    alternatives: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __str__(self) -> str:
        lines = [f"{self.resource}: {len(self.commitments)} new unit(s) at target {self.target:g}"]
        grouped = self.commitments.groupby(["commit_month", "online_month"], sort=True).size()
        for (commit, online), n in grouped.items():
            times = f" x{n}" if n > 1 else ""
            lines.append(f"  commit {commit:%Y-%m} -> online {online:%Y-%m}{times}")
        if self.cdmo_slots:
            lines.append(f"  plus {self.cdmo_slots} reserved CDMO slot(s)")
        lines.append(f"  expected cost {self.cost['total']:,.0f}")
        return "\n".join(lines)


def _need(req: xr.Dataset | xr.DataArray, resource: str) -> tuple[np.ndarray, np.ndarray | None]:
    if isinstance(req, xr.DataArray):
        need, lots = req, None
    else:
        req = facility(req)
        if resource not in req:
            raise InputError(f"plan: no variable {resource!r}; have {list(req.data_vars)}")
        need, lots = req[resource], req.get("lots")
    extra = [d for d in need.dims if d not in ("draw", "month")]
    if extra:
        raise InputError(f"plan: {resource!r} has extra dims {extra}; select one label first")
    need = need.transpose("draw", "month")
    lots_values = None if lots is None else lots.transpose("draw", "month").values
    return need, lots_values


def _per_month(value, months: pd.DatetimeIndex, what: str) -> np.ndarray:
    if isinstance(value, pd.Series):
        index = pd.DatetimeIndex(pd.to_datetime(value.index))
        missing = months.difference(index)
        if len(missing):
            raise InputError(f"plan: {what} has no value for month {missing[0].date()}")
        arr = value.set_axis(index).reindex(months).to_numpy(float)
    else:
        arr = np.broadcast_to(np.asarray(value, float), (len(months),)).copy()
    if not np.isfinite(arr).all():
        raise InputError(f"plan: {what} must be finite numbers, one or one per month")
    return arr


def plan_expansion(
    req: xr.Dataset | xr.DataArray,
    *,
    resource: str = "suites",
    installed: float | Sequence[float] | pd.Series,
    unit_size: float,
    lead_time_months: int,
    target: float | None = 0.05,
    cost_per_unit_year: float = 0.0,
    cost_per_patient_lost: float = 0.0,
    cdmo_slot_fee_per_month: float | None = None,
    cdmo_slot_options: Sequence[int] = (0,),
    slots_per_unit_of_resource: float = 1.0,
    as_of: str | pd.Timestamp | None = None,
) -> ExpansionPlan:
    """When to commit to each new unit so that P(need > capacity) stays under ``target``.

    Parameters
    ----------
    req
        A requirements Dataset (``resource`` and, for the cost of lost patients, ``lots``)
        or a DataArray of need with dims draw, month.
    installed
        Capacity already installed or committed, a number or one value per month.
    unit_size, lead_time_months
        Capacity one commitment adds (e.g. 4 suites per module) and months from commitment to
        use (e.g. 18 to 24 for a cleanroom module; hiring plus training for staff).
    target
        Largest acceptable monthly shortfall probability. ``None``: choose, from a grid of
        targets, the one with the lowest expected cost (needs the two costs).
    cost_per_unit_year, cost_per_patient_lost
        Expected cost = units online x cost_per_unit_year / 12 per month + lots not served x
        cost_per_patient_lost, where lots not served = lots x max(0, 1 - capacity / need).
    cdmo_slot_fee_per_month, cdmo_slot_options
        Reserved CDMO slots (take-or-pay: the fee is paid every month for every reserved slot)
        add ``slots / slots_per_unit_of_resource`` capacity; every option is planned and the
        cheapest mix returned, with all options in ``alternatives``.
    as_of
        The decision date (default: the first month of the need). It may be before the
        first month: a unit committed in the month of ``as_of`` is online
        ``lead_time_months`` later, so with a decision 6 months ahead of the horizon the
        first helpable month is ``lead_time_months - 6``. Commit months may then precede the
        first month of the need.
    """
    need_da, lots = _need(req, resource)
    need = need_da.values
    months = pd.DatetimeIndex(need_da["month"].values)
    decide = 0
    if as_of is not None:
        when = pd.Timestamp(as_of).to_period("M")
        decide = (when - months[0].to_period("M")).n
        if decide >= len(months):
            raise InputError(f"plan: as_of {pd.Timestamp(as_of).date()} is after the horizon")
    earliest = max(0, decide + int(lead_time_months))  # first month a new unit can be online
    base = _per_month(installed, months, "installed")
    if unit_size <= 0 or lead_time_months < 0:
        raise InputError("plan: unit_size must be > 0 and lead_time_months >= 0")
    if target is None and not (cost_per_unit_year > 0 and cost_per_patient_lost > 0):
        raise InputError(
            "plan: give a target, or both cost_per_unit_year and cost_per_patient_lost"
        )
    if target is not None and not 0 <= target < 1:
        raise InputError(f"plan: target must be in [0, 1), got {target}")
    options = [int(s) for s in cdmo_slot_options]
    if not (np.isfinite(slots_per_unit_of_resource) and slots_per_unit_of_resource > 0):
        raise InputError(
            "plan: slots_per_unit_of_resource must be a finite number > 0, got "
            f"{slots_per_unit_of_resource}"
        )
    if any(s < 0 for s in options) or (any(options) and cdmo_slot_fee_per_month is None):
        raise InputError("plan: CDMO options need slots >= 0 and cdmo_slot_fee_per_month")

    plans = []
    for slots in options:
        cdmo = slots / slots_per_unit_of_resource
        targets = TARGET_GRID if target is None else (target,)
        for t in targets:
            units_online = _greedy(need, base + cdmo, unit_size, earliest, t)
            cost = _cost(
                need,
                lots,
                base + cdmo + units_online * unit_size,
                units_online,
                cost_per_unit_year,
                cost_per_patient_lost,
                slots * (cdmo_slot_fee_per_month or 0.0) * len(months),
            )
            plans.append((cost["total"], slots, t, units_online, cost))
    alternatives = pd.DataFrame(
        [
            {"cdmo_slots": s, "target": t, "units": int(u.max(initial=0)), **c}
            for _, s, t, u, c in plans
        ]
    )
    best = min(plans, key=lambda p: (p[0], p[1], -p[2]))
    _, slots, t, units_online, cost = best
    cdmo = slots / slots_per_unit_of_resource
    capacity = base + cdmo + units_online * unit_size
    short = _short(need, capacity[None, :])
    gap = np.clip(need - capacity[None, :], 0, None)
    by_month = pd.DataFrame(
        {
            "month": months,
            "installed": base,
            "cdmo": cdmo,
            "new_units": units_online,
            "capacity": capacity,
            "shortfall_probability": short.mean(axis=0),
            "expected_shortfall": gap.mean(axis=0),
            "helpable": np.arange(len(months)) >= earliest,
        }
    )
    steps = np.diff(np.r_[0, units_online]).astype(int)
    online = np.repeat(np.arange(len(months)), steps)
    commitments = pd.DataFrame(
        {
            "unit": np.arange(1, len(online) + 1),
            "commit_month": pd.DatetimeIndex(
                [months[0] + pd.DateOffset(months=int(o - lead_time_months)) for o in online]
            ),
            "online_month": months[online],
            "capacity_added": unit_size,
        }
    )
    return ExpansionPlan(resource, t, commitments, by_month, cost, slots, alternatives)


def _short(need: np.ndarray, capacity) -> np.ndarray:
    """Need above capacity, with the tolerance of ``shortfall_probability``: a need equal to
    capacity up to floating-point rounding (0.1 * 3 against 0.3) is met, not short."""
    return need > capacity * (1 + 1e-12) + 1e-12


def _greedy(need, capacity, unit_size, lead, target) -> np.ndarray:
    """Units online per month: add one whenever the shortfall probability exceeds target
    (from month ``lead``, the first a new unit can be online)."""
    n_months = need.shape[1]
    units = np.zeros(n_months)
    added = 0
    for m in range(n_months):  # sequential by nature; each step is vectorised over draws
        if m >= lead:
            while np.mean(_short(need[:, m], capacity[m] + added * unit_size)) > target:
                added += 1
        units[m] = added
    return units


def _cost(need, lots, capacity, units_online, unit_year, per_patient, cdmo_total) -> dict:
    unit_cost = float(units_online.sum() * unit_year / 12.0)
    if lots is None or per_patient == 0:
        lost = 0.0
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            unserved = np.where(need > 0, np.clip(1 - capacity[None, :] / need, 0, 1), 0.0)
        lost = float((lots * unserved).sum(axis=1).mean())
    return {
        "units": unit_cost,
        "cdmo": float(cdmo_total),
        "lost_patients": lost,
        "lost_patients_cost": lost * per_patient,
        "total": unit_cost + float(cdmo_total) + lost * per_patient,
    }


def plan_hiring(
    req: xr.Dataset | xr.DataArray,
    *,
    role: str = "operator_fte",
    installed: float | Sequence[float] | pd.Series,
    hiring_months: int,
    training_months: int,
    batch: float = 1.0,
    target: float = 0.05,
    cost_per_fte_year: float = 0.0,
    suites: ExpansionPlan | float | Sequence[float] | pd.Series | None = None,
    as_of: str | pd.Timestamp | None = None,
) -> ExpansionPlan:
    """When to open each requisition: lead time = hiring + training months (``plan_expansion``).

    Staff can only work the lots the facility can hold: with ``suites`` (the suites online
    each month: an expansion plan of ``suites``, a number, or one value per month) the need
    of every draw and month is scaled by ``min(1, suites online / suites needed)``, so a year
    with 10 suites online is staffed for 10 suites, not for the demand that cannot be made.
    Needs a requirements Dataset with ``suites``.
    """
    if suites is not None:
        if not isinstance(req, xr.Dataset):
            raise InputError("plan_hiring: suites= needs the requirements Dataset (with suites)")
        total = facility(req)
        if role not in total or "suites" not in total:
            raise InputError(f"plan_hiring: needs {role!r} and 'suites' in the requirements")
        months = pd.DatetimeIndex(total["month"].values)
        if isinstance(suites, ExpansionPlan):
            if suites.resource != "suites":
                raise InputError(f"plan_hiring: the plan is for {suites.resource!r}, not suites")
            online = suites.by_month.set_index("month")["capacity"]
        else:
            online = suites
        cap = _per_month(online, months, "suites")
        need_suites = total["suites"].transpose("draw", "month").values
        with np.errstate(divide="ignore", invalid="ignore"):
            fits = np.where(need_suites > cap[None, :], cap[None, :] / need_suites, 1.0)
        need = total[role].transpose("draw", "month") * fits
        req = need.rename(role)
    return plan_expansion(
        req,
        resource=role,
        installed=installed,
        unit_size=batch,
        lead_time_months=int(hiring_months) + int(training_months),
        target=target,
        cost_per_unit_year=cost_per_fte_year * batch,
        as_of=as_of,
    )


def joint_shortfall(total: xr.Dataset, plans: dict[str, ExpansionPlan]) -> pd.DataFrame:
    """P(at least one resource runs short in a month) with the recommended plans in place.

    Each plan holds only its own resource's shortfall probability under its target; the events
    differ, so the chance that any of them happens can be larger (up to the sum). Per draw and
    month, as the plans measure it: the suite need of ``total`` against the ``suites`` plan's
    capacity, and each other planned role's need against its plan's capacity; a need equal to
    capacity up to rounding is met. (:func:`plan_hiring` staffs a role for the suites online,
    scaling its need by ``min(1, suites online / suites needed)``; that scaling only acts in a
    draw and month whose suites are short already, so it cannot change whether any resource
    is short.) Returns ``month``,
    ``probability`` (the share of draws with any resource short) and ``helpable`` (every plan
    can still act by then: each plan's own ``helpable``)."""
    if "suites" not in plans:
        raise InputError("joint_shortfall: needs the suites plan")
    need_suites, _ = _need(total, "suites")
    months = pd.DatetimeIndex(need_suites["month"].values)
    short = np.zeros(need_suites.shape, bool)
    can_act = np.ones(len(months), bool)
    for role, plan in plans.items():
        need = need_suites if role == "suites" else total[role].transpose("draw", "month")
        by_month = plan.by_month.set_index("month")
        short |= _short(need.values, _per_month(by_month["capacity"], months, role)[None, :])
        can_act &= by_month["helpable"].reindex(months).to_numpy(bool)
    return pd.DataFrame({"month": months, "probability": short.mean(axis=0), "helpable": can_act})


def newsvendor(
    req: xr.Dataset | xr.DataArray,
    *,
    resource: str = "suites",
    cost_short_per_unit_year: float,
    cost_idle_per_unit_year: float,
) -> pd.DataFrame:
    """Per calendar year, the capacity at the critical fractile of the year's peak monthly need.

    Critical fractile = cost_short / (cost_short + cost_idle): with a short unit-year costing
    9 times an idle one, size to the 90th percentile of the peak.
    """
    if cost_short_per_unit_year <= 0 or cost_idle_per_unit_year <= 0:
        raise InputError("newsvendor: both costs must be > 0")
    need_da, _ = _need(req, resource)
    fractile = cost_short_per_unit_year / (cost_short_per_unit_year + cost_idle_per_unit_year)
    years = pd.DatetimeIndex(need_da["month"].values).year
    rows = []
    for year in np.unique(years):
        peak = need_da.values[:, years == year].max(axis=1)
        rows.append(
            {
                "year": int(year),
                "critical_fractile": fractile,
                "capacity": float(np.quantile(peak, fractile)),
                "peak_p50": float(np.median(peak)),
                "peak_mean": float(peak.mean()),
            }
        )
    return pd.DataFrame(rows)
