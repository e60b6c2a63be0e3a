"""What the capacity costs, in the scenario's currency (``[costs]``).

Model
    * Staff: a role's cost in a month is its FTE x the role's loaded cost per FTE-year
      (``costs.operator_salary``, ``qc_salary``, ``qa_salary``) / 12.
    * Suites: a suite's running cost per year is a new module's, ``facility.module_cost_per_year``
      / ``facility.module_suites``; a month's is the suites x that / 12.
    * Capital: ``costs.module_capital`` per module, spent in the month it is committed (a
      commitment before the horizon's first month is counted in that first month).

Two views, both in ``finance.csv``: the cost of the *need* (per draw, so with percentiles,
per program and in total: :func:`need_costs`), and the cost of the *recommended plan*
(installed plus the plan's modules and hires, capital and operating, one value per month:
:func:`plan_costs`). Operating costs are salaries and running costs; capital is the modules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["Rates", "need_costs", "plan_costs", "rates"]

ROLES = ("operator_fte", "qc_fte", "qa_fte")


@dataclass(frozen=True)
class Rates:
    """Cost rates of a scenario: ``salary`` per role per FTE-year, ``suite_year`` (a suite
    running for a year), ``module_capital`` (one module) and ``module_suites``."""

    currency: str
    salary: dict[str, float]
    suite_year: float
    module_capital: float
    module_suites: int


def rates(scenario) -> Rates:
    """The cost rates of a scenario's ``[costs]`` and ``[facility]``."""
    fac, costs = scenario.facility, scenario.costs
    return Rates(
        currency=costs.currency,
        salary={role: costs.salary(role) for role in ROLES},
        suite_year=fac.module_cost_per_year / fac.module_suites,
        module_capital=costs.module_capital,
        module_suites=fac.module_suites,
    )


def need_costs(req: xr.Dataset, r: Rates) -> dict[str, xr.DataArray]:
    """Per draw, month (and program, if ``req`` has one): ``staff_cost`` (sum over roles of
    FTE x salary / 12), ``suite_cost`` (suites x ``suite_year`` / 12) and
    ``operating_cost``, their sum; currency per month."""
    staff = sum(req[role] * (r.salary[role] / 12.0) for role in ROLES)
    suite = req["suites"] * (r.suite_year / 12.0)
    return {"staff_cost": staff, "suite_cost": suite, "operating_cost": staff + suite}


def plan_costs(plans: dict, installed: dict, r: Rates, months: pd.DatetimeIndex) -> pd.DataFrame:
    """The recommended plan's cost per month: ``capital`` (``module_capital`` per module in
    its commit month, or the first month if committed before it) and ``operating`` (the
    suites online, installed and added, x ``suite_year`` / 12, plus each role's FTE,
    installed and hired, x its salary / 12). ``plans``: resource -> ExpansionPlan (its
    ``by_month["capacity"]`` is what is online); ``installed``: resource -> level, for a
    resource without a plan. Columns ``month, capital, operating``."""
    months = pd.DatetimeIndex(months)
    capital = np.zeros(len(months))
    suites_plan = plans.get("suites")
    if suites_plan is not None and len(suites_plan.commitments):
        commit = pd.DatetimeIndex(suites_plan.commitments["commit_month"])
        at = np.clip(months.searchsorted(commit), 0, len(months) - 1)
        np.add.at(capital, at, r.module_capital)
    operating = np.zeros(len(months))
    for resource, rate in [("suites", r.suite_year), *r.salary.items()]:
        plan = plans.get(resource)
        if plan is not None:
            online = plan.by_month.set_index("month")["capacity"].reindex(months).to_numpy(float)
        else:
            level = installed[resource]
            online = (
                level.reindex(months).to_numpy(float)
                if isinstance(level, pd.Series)
                else np.full(len(months), float(level))
            )
        operating += online * rate / 12.0
    return pd.DataFrame({"month": months, "capital": capital, "operating": operating})
