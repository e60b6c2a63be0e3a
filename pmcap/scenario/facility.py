"""``[facility]`` (suites, FTE, modules, service level, ``[facility.qc_lab]``,
``[facility.twin]``) and ``[workforce]``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Tag, field_validator, model_validator

from capacity.errors import InputError
from pmcap.scenario.base import Float, Int, _Strict


class SuiteStep(_Strict):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: dt.date = Field(alias="from")
    suites: Int = Field(ge=0)


class ServiceLevel(_Strict):
    max_wait_days: Float = Field(3.0, ge=0)
    epsilon: Float = Field(0.05, gt=0, lt=1)
    draws: Int = Field(200, ge=10)


class QCLabSection(_Strict):
    """``[facility.qc_lab]``: the QC laboratory as queues (:class:`capacity.QCLab`); the
    roster, block size and run cap defaults are assumptions (``data/SOURCES.md``)."""

    analysts: Int = Field(ge=1)
    instruments: dict[str, Int]
    hours_per_day: Float = Field(8.0, gt=0, le=24)
    days_per_week: Int = Field(5, ge=1, le=7)
    shift_start_hour: Float = Field(8.0, ge=0, lt=24)
    hands_on: Literal["fixed", "exponential"] = "fixed"
    turnaround_days: dict[str, Float] = {}
    monitoring_hours_per_month: Float | None = Field(None, ge=0)
    monitoring_instrument_hours_per_month: dict[str, Float] = {}
    monitoring_block_hours: Float = Field(4.0, gt=0)
    max_runs: Int = Field(10, ge=1)
    hours_per_year: Float | None = Field(None, gt=0)
    target_days: Float | None = Field(None, gt=0)

    @field_validator("instruments")
    @classmethod
    def _counts(cls, v: dict[str, int]) -> dict[str, int]:
        bad = {k: n for k, n in v.items() if n < 1}
        if bad:
            name, n = next(iter(bad.items()))
            raise ValueError(f"instruments of type {name!r}: expected a whole number >= 1, got {n}")
        return v

    @field_validator("turnaround_days", "monitoring_instrument_hours_per_month")
    @classmethod
    def _non_negative(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: x for k, x in v.items() if x < 0}
        if bad:
            name, x = next(iter(bad.items()))
            raise ValueError(f"{name!r}: expected a number >= 0, got {x:g}")
        return v

    @model_validator(mode="after")
    def _shift_in_a_day(self) -> QCLabSection:
        if self.shift_start_hour + self.hours_per_day > 24:
            raise ValueError(
                f"the analysts' shift must end by 24 h: shift_start_hour {self.shift_start_hour:g}"
                f" + hours_per_day {self.hours_per_day:g} > 24"
            )
        missing = sorted(set(self.monitoring_instrument_hours_per_month) - set(self.instruments))
        if missing:
            raise ValueError(
                f"monitoring_instrument_hours_per_month names instrument {missing[0]!r}, which "
                "is not in instruments"
            )
        return self

    def lab(self, processes):
        """The :class:`capacity.QCLab` for ``processes`` (specs or template names, in the
        order of the lots' process indices); an assay's instrument the lab lacks is an
        InputError naming ``facility.qc_lab``."""
        from capacity.qclab import QCLab

        try:
            return QCLab(list(processes), **self.model_dump(exclude={"target_days"}))
        except InputError as exc:
            raise InputError(f"facility.{exc}") from None


def _twin_config(section: BaseModel, kind: str):
    """The ``capacity.twin`` config ``kind`` of a ``[facility.twin.*]`` table: the keys given,
    the config's defaults (assumptions, ``data/SOURCES.md``) for the rest; its InputError
    (which names the key) as a ValueError, so the scenario's error names the table."""
    import capacity.twin as twin

    try:
        return getattr(twin, kind)(**section.model_dump(exclude_unset=True))
    except InputError as exc:  # "crews.crew_size: ..." -> "crew_size: ..." (the table is named)
        text = str(exc)
        for table in ("crews", "downtime", "vein_to_vein"):
            text = text.removeprefix(f"{table}: ").removeprefix(f"{table}.")
        raise ValueError(text) from None


class TwinCrews(_Strict):
    """``[facility.twin.crews]``: :class:`capacity.CrewConfig` (unset keys: its defaults)."""

    crew_size: Int = 2
    shifts_per_day: Int = 2
    hours_per_shift: Float = 8.0
    start_hours: Float = 6.0
    harvest_hours: Float = 6.0
    attendance: Float = 0.55

    @model_validator(mode="after")
    def _valid(self) -> TwinCrews:
        _twin_config(self, "CrewConfig")
        return self


class TwinDowntime(_Strict):
    """``[facility.twin.downtime]``: :class:`capacity.DowntimeConfig` (unset keys: its
    defaults); ``contamination_rate`` an uncertain share of lots (e.g. ``{beta = [1, 199]}``)."""

    shutdown_days_per_year: Float = 0.0
    shutdown_start: str = "12-20"
    contamination_rate: Any = None
    decontamination_days: Float = 14.0
    contamination_remakes: Int = 1
    equipment_failures_per_suite_year: Float = 0.0
    repair_days: Float = 2.0

    @model_validator(mode="after")
    def _valid(self) -> TwinDowntime:
        _twin_config(self, "DowntimeConfig")
        return self


class TwinVeinToVein(_Strict):
    """``[facility.twin.vein_to_vein]``: :class:`capacity.VeinToVeinConfig` (unset keys: its
    defaults); the transport and scheduling days are uncertain numbers."""

    inbound_days: Any = 1.0
    outbound_days: Any = 1.0
    release_to_infusion_days: Any = 5.0
    reapheresis_days: Float = 14.0
    new_apheresis: bool = True
    dropout_per_day: Float = 0.0
    target_days: Float = 30.0

    @model_validator(mode="after")
    def _valid(self) -> TwinVeinToVein:
        _twin_config(self, "VeinToVeinConfig")
        return self


class TwinSection(_Strict):
    """``[facility.twin]``: the facility twin (:func:`capacity.simulate_twin`) in ``pmcap
    run``, on the first ``draws`` draws: crews of qualified operators (``[workforce]``'s
    simulated headcount per draw and month when given, else ``facility.operator_fte``),
    downtime, vein-to-vein, and ``[facility.qc_lab]`` as the QC stage when given."""

    draws: Int = Field(200, ge=10)
    size: bool = False  # twin_sizing.csv (pmcap.twin_sizing)
    epsilon: Float = Field(0.1, gt=0, lt=1)  # its P(v2v > target) level
    crews: TwinCrews = TwinCrews()
    downtime: TwinDowntime = TwinDowntime()
    vein_to_vein: TwinVeinToVein = TwinVeinToVein()

    def configs(self):
        """``(CrewConfig, DowntimeConfig, VeinToVeinConfig)`` of the section."""
        return (
            _twin_config(self.crews, "CrewConfig"),
            _twin_config(self.downtime, "DowntimeConfig"),
            _twin_config(self.vein_to_vein, "VeinToVeinConfig"),
        )


class FacilityConfig(_Strict):
    suites: Annotated[Int, Tag("int")] | list[SuiteStep]
    operator_fte: Float = Field(ge=0)
    qc_fte: Float = Field(ge=0)
    qa_fte: Float = Field(ge=0)
    module_suites: Int = Field(4, gt=0)
    module_lead_time_months: Int = Field(20, ge=0)
    module_cost_per_year: Float = Field(0.0, ge=0)
    hiring_lead_months: Int = Field(6, ge=0)
    shortfall_target: Float = Field(0.1, gt=0, lt=1)
    service_level: ServiceLevel = ServiceLevel()
    qc_lab: QCLabSection | None = None
    twin: TwinSection | None = None

    @field_validator("suites")
    @classmethod
    def _suites(cls, v: int | list[SuiteStep]) -> int | list[SuiteStep]:
        if isinstance(v, int):
            if v < 0:
                raise ValueError("installed suites must be >= 0")
            return v
        if not v:
            raise ValueError("give a number or a list of {from = date, suites = n}")
        dates = [s.from_ for s in v]
        if dates != sorted(dates) or len(set(dates)) != len(dates):
            raise ValueError("suite steps must be in date order, each date once")
        counts = [s.suites for s in v]
        if counts != sorted(counts):
            raise ValueError("installed suites can only grow over time")
        return v


_WORKFORCE_CHECKED = (
    "lead_time_months",
    "training_months",
    "mentor_ratio",
    "mentor_share",
    "attrition_per_year",
)


class WorkforceSection(_Strict):
    """``[workforce]``: operators as a workforce (:class:`capacity.WorkforceConfig`, whose
    defaults are assumptions) and the requisition plan written to ``workforce.csv``."""

    lead_time_months: Any = {"triangular": [1, 3, 6]}
    training_months: Any = {"triangular": [2, 4, 9]}
    mentor_ratio: Float = 2.0
    mentor_share: Any = {"uniform": [0.1, 0.3]}
    attrition_per_year: Any = {"beta": [3, 17]}
    trainee_attrition: bool = True
    shortfall_target: Float = Field(0.1, gt=0, lt=1)
    qc: bool = False  # also plan QC analysts for the twin's QC lab (pmcap.run)

    def config(self):
        from capacity.workforce import WorkforceConfig

        return WorkforceConfig(**self.model_dump(exclude={"shortfall_target", "qc"}))

    @field_validator(*_WORKFORCE_CHECKED)
    @classmethod
    def _valid(cls, v: Any, info) -> Any:
        from capacity.workforce import WorkforceConfig

        try:  # the field alone, the others at their defaults
            WorkforceConfig(**{info.field_name: v})
        except InputError as exc:
            raise ValueError(str(exc).split(": ", 1)[1]) from None
        return v
