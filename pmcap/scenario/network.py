"""``[network]``: sites, CDMOs, lanes and the settings of :func:`capacity.plan_network`."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, field_validator, model_validator

from pmcap.scenario.base import Float, Int, _Strict


class NetworkSite(_Strict):
    """``[[network.site]]``: an own facility or a CDMO (:class:`capacity.Site`)."""

    name: str = Field(min_length=1)
    kind: Literal["own", "cdmo"] = "own"
    suites: Float = Field(0.0, ge=0, allow_inf_nan=False)
    module_suites: Float = Field(1.0, gt=0, allow_inf_nan=False)
    max_units: Int = Field(4, ge=0)
    module_capital: Float = Field(0.0, ge=0, allow_inf_nan=False)
    module_cost_per_year: Float = Field(0.0, ge=0, allow_inf_nan=False)
    slot_fee_per_month: Float = Field(0.0, ge=0, allow_inf_nan=False)
    fixed_cost_per_year: Float = Field(0.0, ge=0, allow_inf_nan=False)
    cost_per_lot: Float = Field(0.0, ge=0, allow_inf_nan=False)
    lead_time_months: Int = Field(0, ge=0)
    turnaround_days: Float = Field(0.0, ge=0, allow_inf_nan=False)
    operators: Float | None = Field(None, ge=0, allow_inf_nan=False)
    hire_lead_time_months: Int = Field(0, ge=0)
    operator_cost_per_year: Float | None = Field(None, ge=0, allow_inf_nan=False)
    hire_cost: Float = Field(0.0, ge=0, allow_inf_nan=False)
    max_hires: Int = Field(20, ge=0)


class NetworkLane(_Strict):
    """``[[network.lane]]``: transport from a region to a site and back (:class:`capacity.Lane`)."""

    region: str = Field(min_length=1)
    site: str = Field(min_length=1)
    transport_days: Float = Field(ge=0, allow_inf_nan=False)
    cost_per_lot: Float = Field(0.0, ge=0, allow_inf_nan=False)


class NetworkFacility(_Strict):
    """``[network.facility]``: the ``[facility]``'s suites as the first own site (its suites
    at ``run.start``, ``module_suites``, ``module_lead_time_months``,
    ``module_cost_per_year`` and ``costs.module_capital``) and what ``[facility]`` lacks."""

    include: bool = True
    name: str = Field("facility", min_length=1)
    max_units: Int = Field(4, ge=0)
    fixed_cost_per_year: Float = Field(0.0, ge=0, allow_inf_nan=False)
    cost_per_lot: Float = Field(0.0, ge=0, allow_inf_nan=False)
    turnaround_days: Float = Field(0.0, ge=0, allow_inf_nan=False)
    operators: Float | None = Field(None, ge=0, allow_inf_nan=False)
    hire_lead_time_months: Int = Field(0, ge=0)
    operator_cost_per_year: Float | None = Field(None, ge=0, allow_inf_nan=False)
    hire_cost: Float = Field(0.0, ge=0, allow_inf_nan=False)
    max_hires: Int = Field(20, ge=0)


class NetworkProgram(_Strict):
    """``[network.program.NAME]``: one program's own region shares and vein-to-vein limit."""

    region_shares: dict[str, Float] | None = None
    vein_to_vein_days: Float | None = Field(None, ge=0, allow_inf_nan=False)
    operator_hours_per_lot: Float | None = Field(None, gt=0, allow_inf_nan=False)


class NetworkSection(_Strict):
    """``[network]``: sites, CDMOs and lanes planned across the draws by
    :func:`capacity.plan_network` in ``pmcap run`` (``network.csv``). Shares and limits
    apply to every program unless ``[network.program.NAME]`` gives its own; the checks
    that need the whole network (a lane's site, shares summing to one, a vein-to-vein limit
    no route meets) are :func:`pmcap.inputs.scenario_network`'s. Operators are modelled at
    the own sites that give ``operators``; ``operator_hours_per_lot`` defaults to the run's
    requirements (operator FTE x ``operator_hours_per_month`` over lots, per program)."""

    site: list[NetworkSite] = []
    lane: list[NetworkLane] = Field(min_length=1)
    facility: NetworkFacility = NetworkFacility()
    region_shares: dict[str, Float] = Field(min_length=1)
    share_concentration: Float | None = Field(None, gt=0, allow_inf_nan=False)
    vein_to_vein_days: Float = Field(ge=0, allow_inf_nan=False)
    operator_hours_per_lot: Float | None = Field(None, gt=0, allow_inf_nan=False)
    operator_hours_per_month: Float = Field(137.5, gt=0, allow_inf_nan=False)
    integer_hires: bool = True
    program: dict[str, NetworkProgram] = {}
    cost_per_patient_unserved: Float = Field(ge=0, allow_inf_nan=False)
    max_wait_months: Int = Field(0, ge=0)
    late_cost_per_patient_month: Float = Field(0.0, ge=0, allow_inf_nan=False)
    discount_rate: Float = Field(0.0, ge=0, allow_inf_nan=False)
    service_target: Float | None = Field(None, ge=0, lt=1)
    readout: dt.date | None = None
    wait_months: list[Int] = []
    milp_draws: Int = Field(50, ge=1)
    period_months: Int = Field(3, ge=1, le=12)
    decision_months: Int = Field(12, ge=1)
    information_groups: Int = Field(2, ge=1)
    mip_rel_gap: Float = Field(0.01, gt=0, lt=1)
    time_limit: Float = Field(60.0, gt=0, allow_inf_nan=False)

    @field_validator("wait_months")
    @classmethod
    def _waits(cls, v: list[int]) -> list[int]:
        if any(m < 1 for m in v):
            raise ValueError(f"months to wait must be whole numbers >= 1, got {v}")
        return v

    @model_validator(mode="after")
    def _decisions(self) -> NetworkSection:
        if self.decision_months % self.period_months:
            raise ValueError(
                f"decision_months ({self.decision_months}) must be a multiple of "
                f"period_months ({self.period_months})"
            )
        return self
