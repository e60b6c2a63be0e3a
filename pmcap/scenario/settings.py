"""``[run]``, ``[models]`` and ``[costs]``: the run's dates, draws and seed, the sampler's
settings and the currency and loaded costs.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, field_validator, model_validator

from pmcap.scenario.base import MAX_DRAWS, Float, Int, _Strict


class RunConfig(_Strict):
    title: str | None = Field(None, min_length=1, max_length=200)  # names the report
    as_of: dt.date
    start: dt.date
    horizon_months: Int = Field(gt=0, le=600)
    draws: Int = Field(1000, ge=20, le=MAX_DRAWS)
    seed: Int = Field(0, ge=0, lt=2**32)
    quantiles: list[Float] = [0.1, 0.5, 0.9]

    @field_validator("start")
    @classmethod
    def _first_of_month(cls, v: dt.date) -> dt.date:
        if v.day != 1:
            raise ValueError(f"must be the first day of a month, got {v}")
        return v

    @field_validator("quantiles")
    @classmethod
    def _quantiles(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 < q < 1 for q in v) or len(set(v)) != len(v):
            raise ValueError(f"expected distinct numbers strictly between 0 and 1, got {v}")
        return sorted(v)

    @model_validator(mode="after")
    def _order(self) -> RunConfig:
        if self.start <= self.as_of.replace(day=1) - dt.timedelta(days=1):
            raise ValueError(
                f"start {self.start} is before the month of as_of {self.as_of}: the forecast "
                "cannot start in the past"
            )
        return self


class ModelsConfig(_Strict):
    """Sampler settings of the fitted models (NUTS draws per chain, tuning, chains)."""

    phase_table: Literal["all", "area", "modality", "oncology_subtype", "population"] = "modality"
    draws: Int = Field(1000, ge=100)
    tune: Int = Field(1000, ge=100)
    chains: Int = Field(2, ge=1, le=8)
    seed: Int = Field(0, ge=0, lt=2**32)  # fit seed, apart from run.seed so fits are reused
    target_accept: Float = Field(0.99, gt=0.5, lt=1)


class CostsConfig(_Strict):
    """``[costs]``: the currency of every cost (``facility.module_cost_per_year`` too), a new
    module's capital cost and the loaded cost of one FTE-year per role (salary, benefits and
    overhead). The salary defaults are assumptions (``data/SOURCES.md``): give your own."""

    currency: str = "USD"
    module_capital: Float = Field(0.0, ge=0, allow_inf_nan=False)
    operator_salary: Float = Field(95_000.0, ge=0, allow_inf_nan=False)
    qc_salary: Float = Field(110_000.0, ge=0, allow_inf_nan=False)
    qa_salary: Float = Field(120_000.0, ge=0, allow_inf_nan=False)

    @field_validator("currency")
    @classmethod
    def _code(cls, v: str) -> str:
        if not (len(v) == 3 and v.isascii() and v.isalpha() and v.isupper()):
            raise ValueError(f"expected a three-letter currency code such as USD or EUR, got {v!r}")
        return v

    def salary(self, role: str) -> float:
        """The loaded cost per FTE-year of ``role`` (``operator_fte``, ``qc_fte``, ``qa_fte``)."""
        return float(getattr(self, role.removesuffix("_fte") + "_salary"))
