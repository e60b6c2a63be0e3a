"""Scenario files: one TOML file describing the portfolio, the facility and the run.

Validated with pydantic at the door: unknown keys, wrong types, missing files, dates in the
wrong order and bad CSV rows give one :class:`~capacity.errors.InputError` naming the file, the
key or row, and what was expected; a number written as text (``target = "120"``) is refused,
not read as the number. Paths are relative to the scenario file. Uncertain numbers
may be written as a number or a one-key distribution table: ``{beta = [a, b]}``,
``{triangular = [low, mode, high]}``, ``{uniform = [low, high]}`` or
``{lognormal = {median = m, p90 = x}}``. See ``pmcap init`` for a commented starter.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import (
    AllowInfNan,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from capacity.distributions import Param
from capacity.errors import InputError

__all__ = [
    "Scenario",
    "check_files",
    "describe_validation_error",
    "example_scenario_path",
    "load_scenario",
    "read_toml",
    "scenario_from_tables",
]

PHASE = Literal["phase1", "phase2", "phase3"]


def _not_text(expected: str) -> BeforeValidator:
    """Refuse a number written as text (``target = "120"``) or as a boolean (``suites =
    true``), which pydantic's lax mode reads as the number (1); everything else as lax mode
    has it (an int where a float is expected)."""

    def check(value: Any) -> Any:
        if isinstance(value, str | bytes | bool):
            raise ValueError(f"expected {expected}, got {value!r}")
        return value

    return BeforeValidator(check)


Int = Annotated[int, _not_text("a whole number")]
# a finite number: ``operator_fte = inf`` or ``nan`` is refused where it is read, naming the key
Float = Annotated[float, _not_text("a number"), AllowInfNan(False)]
# the most draws a run takes, in the scenario file and on the command line alike
MAX_DRAWS = 1_000_000


def check_draws_option(draws: int | None) -> None:
    """``--draws``: a whole number in [20, MAX_DRAWS], as ``run.draws`` (InputError)."""
    if draws is not None and not 20 <= draws <= MAX_DRAWS:
        raise InputError(f"--draws: expected a whole number in [20, {MAX_DRAWS:,}], got {draws}")


def _param(value: Any) -> Any:
    """Validate an uncertain number (kept as written, so the scenario round-trips)."""
    try:
        Param.parse(value)
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    return value


def _within(value: Any, low: float, high: float, what: str) -> None:
    """An uncertain number whose every draw lies in [low, high] (ValueError otherwise)."""
    if value is None:
        return
    lo, hi = Param.parse(value).support
    if lo < low or hi > high:
        span = f"in [{low:g}, {high:g}]" if np.isfinite(high) else f">= {low:g}"
        raise ValueError(f"{what} must be {span} in every draw; {value!r} allows [{lo:g}, {hi:g}]")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


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


class EnrollmentConfig(_Strict):
    patients: Path | None = None
    counts: Path | None = None
    sites: Path | None = None
    target: Int = Field(gt=0)
    calendar_effect: bool = False
    ramp_days: Float = Field(0.0, ge=0)
    pauses: list[tuple[dt.date, dt.date]] = []
    manufactured_share: Any = 1.0
    lag_days: Any = 0.0
    follow_up_months: Any = 12.0
    filing_prep_months: Any = 3.0
    pivotal_success: Any = None

    _p = field_validator(
        "manufactured_share", "lag_days", "follow_up_months", "filing_prep_months"
    )(_param)

    @field_validator("pivotal_success")
    @classmethod
    def _pivotal(cls, v: Any) -> Any:
        return None if v is None else _param(v)

    @model_validator(mode="after")
    def _ranges(self) -> EnrollmentConfig:
        _within(self.manufactured_share, 0, 1, "manufactured_share")
        _within(self.pivotal_success, 0, 1, "pivotal_success")
        for name in ("lag_days", "follow_up_months", "filing_prep_months"):
            _within(getattr(self, name), 0, np.inf, name)
        return self

    @model_validator(mode="after")
    def _one_source(self) -> EnrollmentConfig:
        if (self.patients is None) == (self.counts is None):
            raise ValueError("give either 'patients' (an EDC export) or 'counts', not both")
        for start, end in self.pauses:
            if end < start:
                raise ValueError(f"pause {start} to {end} ends before it starts")
        return self


class PhasePlan(_Strict):
    patients: Any
    enrollment_months: Any = None

    @model_validator(mode="after")
    def _ranges(self) -> PhasePlan:
        _within(self.patients, 0, np.inf, "patients")
        _within(self.enrollment_months, 1e-9, np.inf, "enrollment_months")
        return self

    _p = field_validator("patients")(_param)

    @field_validator("enrollment_months")
    @classmethod
    def _months(cls, v: Any) -> Any:
        return None if v is None else _param(v)


class Expansion(_Strict):
    date: dt.date | None = None
    months_after_launch: Float | None = Field(None, ge=0)
    eligible_per_year: Any

    _p = field_validator("eligible_per_year")(_param)

    @model_validator(mode="after")
    def _when(self) -> Expansion:
        if (self.date is None) == (self.months_after_launch is None):
            raise ValueError("give either 'date' or 'months_after_launch'")
        return self

    @property
    def when(self) -> Any:
        return str(self.date) if self.date is not None else float(self.months_after_launch)


class UptakeConfig(_Strict):
    eligible_per_year: Any
    peak_share: Any
    launch_lag_months: Any = 0.0
    expansions: list[Expansion] = []
    backlog: Float = Field(0.0, ge=0)
    patients: Path | None = None  # the product's own patients per period: period,patients

    _p = field_validator("eligible_per_year", "peak_share", "launch_lag_months")(_param)

    @model_validator(mode="after")
    def _ranges(self) -> UptakeConfig:
        _within(self.eligible_per_year, 0, np.inf, "eligible_per_year")
        _within(self.peak_share, 0, 1, "peak_share (a fraction, not a percentage)")
        _within(self.launch_lag_months, 0, np.inf, "launch_lag_months")
        for x in self.expansions:
            _within(x.eligible_per_year, 0, np.inf, "expansions.eligible_per_year")
        return self


class PPQConfig(_Strict):
    lots: Int = Field(0, ge=0)
    window_months: tuple[Int, Int] = (12, 4)

    @field_validator("window_months")
    @classmethod
    def _window(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not v[0] >= v[1] >= 0:
            raise ValueError(
                f"expected [early, late] months before filing, early >= late >= 0, got {list(v)}"
            )
        return v


class ProgramConfig(_Strict):
    name: str = Field(min_length=1)
    stage: Literal["trial", "pipeline", "launched"]
    process: str
    group: str | None = None
    duration_group: str | None = None
    review: Literal["priority", "standard", "breakthrough"] | None = None
    registrational: bool = False
    phase: PHASE | None = None
    phase_start: dt.date | None = None
    launch: dt.date | None = None
    enrollment: EnrollmentConfig | None = None
    trial_plan: dict[PHASE, PhasePlan] = {}
    pivotal: Literal["phase2", "phase3"] = "phase3"  # pipeline: the pivotal phase
    manufactured_share: Any = 1.0  # pipeline trial plans
    lag_days: Any = 0.0
    uptake: UptakeConfig | None = None
    ppq: PPQConfig = PPQConfig()
    in_progress: Float = Field(0.0, ge=0)

    _p = field_validator("manufactured_share", "lag_days")(_param)

    # the checks of one program's own consistency, each its own validator (run in this order)
    @model_validator(mode="after")
    def _launched_is_past_its_trials(self) -> ProgramConfig:
        """A launched product is approved: it has no current phase, phase start or
        registrational trial (those describe a program that has still to file)."""
        if self.stage != "launched":
            return self
        given = [k for k in ("phase", "phase_start") if getattr(self, k) is not None]
        if self.registrational:
            given.append("registrational = true")
        if given:
            raise ValueError(
                f"a launched product is approved, so {' and '.join(given)} "
                f"contradict{'s' if len(given) == 1 else ''} stage = 'launched'; remove "
                f"{'it' if len(given) == 1 else 'them'}, or model a product still in trials as "
                "stage = 'trial' or 'pipeline'"
            )
        return self

    @model_validator(mode="after")
    def _trial_plan_from_current_phase(self) -> ProgramConfig:
        """A pipeline program's trial plan holds its current phase and later ones only: a
        phase before ``phase`` has been run already."""
        if self.stage != "pipeline" or self.phase is None:
            return self
        earlier = sorted(ph for ph in self.trial_plan if ph < self.phase)
        if earlier:
            raise ValueError(
                f"trial_plan.{earlier[0]}: the program is at {self.phase}, so it has run "
                f"{earlier[0]} already; plan {self.phase} and later phases only"
            )
        return self

    @model_validator(mode="after")
    def _stage(self) -> ProgramConfig:
        if self.stage == "trial" and self.enrollment is None:
            raise ValueError("a trial program needs an [program.enrollment] table")
        if self.stage != "trial" and self.enrollment is not None:
            raise ValueError(f"'enrollment' is for trial programs, not {self.stage}")
        if self.stage == "pipeline" and (self.phase is None or self.phase_start is None):
            raise ValueError("a pipeline program needs 'phase' and 'phase_start'")
        if self.stage != "pipeline" and self.trial_plan:
            raise ValueError("'trial_plan' is for pipeline programs")
        if self.stage != "pipeline" and "pivotal" in self.model_fields_set:
            raise ValueError("'pivotal' is for pipeline programs")
        if self.pivotal == "phase2" and "phase3" in (self.phase, *self.trial_plan):
            raise ValueError(
                "pivotal = 'phase2' has no phase III: the program cannot be in phase3 nor plan "
                "a trial_plan.phase3"
            )
        if self.stage == "launched" and (self.launch is None or self.uptake is None):
            raise ValueError("a launched program needs 'launch' and an [program.uptake] table")
        if self.stage != "launched" and self.launch is not None:
            raise ValueError("'launch' is for launched programs (others launch on approval)")
        if (self.stage == "pipeline" or self.registrational) and not self.group:
            raise ValueError("give 'group', the phase-table group for approval (e.g. 'CAR-T')")
        if self.review is not None and not (self.stage == "pipeline" or self.registrational):
            raise ValueError(
                "'review' is for programs that file (pipeline programs and registrational "
                "trials): a launched product is approved, a trial that is not registrational "
                "never files"
            )
        if (
            self.stage == "trial"
            and not self.registrational
            and (self.uptake is not None or self.ppq.lots)
        ):
            raise ValueError(
                "a trial that is not registrational never files, so it has no commercial or "
                "PPQ demand: set registrational = true or remove [program.uptake] / ppq.lots"
            )
        if (
            self.uptake is not None
            and self.uptake.patients is not None
            and self.stage != "launched"
        ):
            raise ValueError(
                "uptake.patients (own sales) is for launched programs; a program that launches "
                "on approval has a different launch month in every draw"
            )
        _within(self.manufactured_share, 0, 1, "manufactured_share")
        _within(self.lag_days, 0, np.inf, "lag_days")
        if self.in_progress != round(self.in_progress):
            raise ValueError("in_progress must be a whole number of patients per month")
        return self


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


class NetworkProgram(_Strict):
    """``[network.program.NAME]``: one program's own region shares and vein-to-vein limit."""

    region_shares: dict[str, Float] | None = None
    vein_to_vein_days: Float | None = Field(None, ge=0, allow_inf_nan=False)


class NetworkSection(_Strict):
    """``[network]``: sites, CDMOs and lanes planned across the draws by
    :func:`capacity.plan_network` in ``pmcap run`` (``network.csv``). Shares and limits
    apply to every program unless ``[network.program.NAME]`` gives its own; the checks
    that need the whole network (a lane's site, shares summing to one, a vein-to-vein limit
    no route meets) are :func:`pmcap.inputs.scenario_network`'s."""

    site: list[NetworkSite] = []
    lane: list[NetworkLane] = Field(min_length=1)
    facility: NetworkFacility = NetworkFacility()
    region_shares: dict[str, Float] = Field(min_length=1)
    share_concentration: Float | None = Field(None, gt=0, allow_inf_nan=False)
    vein_to_vein_days: Float = Field(ge=0, allow_inf_nan=False)
    program: dict[str, NetworkProgram] = {}
    cost_per_patient_unserved: Float = Field(ge=0, allow_inf_nan=False)
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


class Scenario(_Strict):
    run: RunConfig
    models: ModelsConfig = ModelsConfig()
    program: list[ProgramConfig] = Field(min_length=1)
    facility: FacilityConfig
    costs: CostsConfig = CostsConfig()
    workforce: WorkforceSection | None = None
    network: NetworkSection | None = None  # [network]: capacity.plan_network
    # [process.NAME]: fields of the process named NAME (a template's name or the ``name`` in a
    # process file) replaced for this scenario, e.g. a shorter culture; checked against the
    # process specification when the processes are loaded
    process: dict[str, dict[str, Any]] = {}

    # set by scenario_from_tables (load_scenario), not part of the file: the file's absolute
    # path (to read), and its path as the user wrote it (to name it in messages)
    _path: Path | None = None
    _given: Path | None = None

    @model_validator(mode="after")
    def _cross(self) -> Scenario:
        names = [p.name for p in self.program]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"program names must be unique; repeated: {dup}")
        for p in self.program:
            if p.launch is not None and p.launch > self.run.as_of:
                raise ValueError(
                    f"program {p.name!r}: launch {p.launch} is after as_of {self.run.as_of}; "
                    "a future launch is modelled as a trial or pipeline program"
                )
        if isinstance(self.facility.suites, list):
            first = self.facility.suites[0].from_
            if first > self.run.start:
                raise ValueError(
                    f"facility.suites: the first step ({first}) must be on or before run.start "
                    f"({self.run.start})"
                )
        return self

    @property
    def folder(self) -> Path:
        return self._path.parent if self._path is not None else Path.cwd()

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def shown_path(self) -> Path | None:
        """The scenario file as the user wrote it (``my-plan/scenario.toml``): messages name
        it so; relative stays relative."""
        return self._given if self._given is not None else self._path

    def resolve(self, path: Path | None) -> Path | None:
        """A path of the scenario (relative to its file) as an absolute path, to read."""
        if path is None:
            return None
        return path if path.is_absolute() else (self.folder / path)

    def shown(self, path: Path | str | None) -> Path | None:
        """A path of the scenario as the user would write it from where pmcap was started:
        relative to the scenario file as it was given (``my-plan/patients.csv`` for
        ``patients = "patients.csv"`` in ``my-plan/scenario.toml``); an absolute one as
        written."""
        if path is None:
            return None
        path = Path(path)
        if path.is_absolute() or self._given is None:
            return self.resolve(path)
        return self._given.parent / path

    def input_files(self) -> list[Path]:
        """Every file the scenario reads (for hashes in the manifest and --out checks)."""
        files = [] if self._path is None else [self._path]
        for p in self.program:
            if p.enrollment is not None:
                files += [
                    self.resolve(x)
                    for x in (p.enrollment.patients, p.enrollment.counts, p.enrollment.sites)
                    if x
                ]
            if p.uptake is not None and p.uptake.patients is not None:
                files.append(self.resolve(p.uptake.patients))
            proc = self.resolve(Path(p.process))
            if p.process.endswith(".toml"):
                files.append(proc)
        return files

    def suites_by_month(self, months: pd.DatetimeIndex) -> pd.Series:
        """Installed suites per month of the horizon."""
        s = self.facility.suites
        if isinstance(s, int):
            return pd.Series(float(s), index=months)
        steps = pd.Series(
            [x.suites for x in s], index=pd.DatetimeIndex([pd.Timestamp(x.from_) for x in s])
        )
        return steps.reindex(steps.index.union(months)).ffill().reindex(months).astype(float)

    def apply(self, *, draws: int | None = None, seed: int | None = None) -> Scenario:
        """A copy with command-line overrides."""
        out = self.model_copy(deep=True)
        out._path, out._given = self._path, self._given
        if draws is not None:
            check_draws_option(draws)
            out.run.draws = draws
        if seed is not None:
            if seed < 0 or seed >= 2**32:
                raise InputError(f"--seed: expected a whole number in [0, 2^32), got {seed}")
            out.run.seed = seed
        return out

    def digest(self) -> str:
        """Hash of the scenario's content and of the bytes of every file it reads: the same
        for an equivalent scenario file (other comments or layout, a sweep's own copy)."""
        h = hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode())
        for f in self.input_files():
            if f != self._path:  # its content is in the dump above
                h.update(f.read_bytes())
        return h.hexdigest()


def example_scenario_path() -> Path:
    """The bundled example portfolio: ``pmcap/example/`` in an installed wheel,
    ``data/examples/portfolio/`` in a source checkout."""
    from importlib import resources

    shipped = resources.files("pmcap").joinpath("example", "scenario.toml")
    if shipped.is_file():
        return Path(str(shipped))
    here = Path(__file__).resolve().parents[1] / "data" / "examples" / "portfolio" / "scenario.toml"
    if not here.exists():
        raise InputError(
            f"{here}: the bundled example is not found; run pmcap from a source checkout "
            "(pip install -e .) or give a scenario file"
        )
    return here


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """A TOML file's tables, or one InputError naming the file (``what``: "scenario")."""
    if not path.exists():
        raise InputError(f"{path}: no such {what} file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; expected a {what} .toml file")
    try:
        return tomllib.loads(path.read_text())
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file; expected a {what} .toml file") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file, including that every file it names exists."""
    path = Path(path)
    return scenario_from_tables(read_toml(path, "scenario"), path, str(path))


def scenario_from_tables(raw: dict[str, Any], path: Path, where: str) -> Scenario:
    """Validate a scenario's tables (``raw``, as read from TOML) located at ``path``: its
    relative file paths are relative to ``path``'s folder, and every file it names must
    exist. Errors name ``where`` (the file, or a sweep's scenario) and the key."""
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        raise InputError(describe_validation_error(exc, where, raw)) from None
    scenario._path = Path(path).resolve()
    scenario._given = Path(path)
    check_files(scenario, where)
    return scenario


def check_files(scenario: Scenario, where: str) -> None:
    """Every file the scenario names exists (InputError naming ``where`` and the key)."""
    for i, p in enumerate(scenario.program):
        at = f"{where}: program[{i}] ({p.name})"
        files = []
        if p.enrollment is not None:
            files += [
                ("enrollment." + k, getattr(p.enrollment, k))
                for k in ("patients", "counts", "sites")
            ]
        if p.uptake is not None:
            files.append(("uptake.patients", p.uptake.patients))
        for key, f in files:
            if f is None:
                continue
            if not scenario.resolve(f).is_file():
                raise InputError(f"{at}: {key}: file {scenario.shown(f)} not found")
        if p.process.endswith(".toml") and not scenario.resolve(Path(p.process)).is_file():
            raise InputError(f"{at}: process: file {scenario.shown(p.process)} not found")


_BOUNDS = {
    "greater_than_equal": ">=",
    "greater_than": ">",
    "less_than": "<",
    "less_than_equal": "<=",
}
_SCALARS = {"int": "a whole number", "float": "a number", "str": "text", "bool": "true or false"}


def _is_tag(part: object) -> bool:
    """A union member pydantic puts in an error's location (``int``, ``list[SuiteStep]``)."""
    return isinstance(part, str) and (part in _SCALARS or part in ("date", "none") or "[" in part)


def _tag_text(tag: str) -> str:
    if tag in _SCALARS:
        return _SCALARS[tag]
    if tag.startswith("list["):
        return "a list of tables" if tag[5:6].isupper() else "a list"
    return tag


def _one_branch(errors: list[dict]) -> list[dict]:
    """A value that may take several forms (``suites``: a number or a list of steps) failed
    every form: report the form whose shape the value had (a list's bad step, not "expected
    a whole number"), or one line naming the forms when it had none of them."""
    groups: dict[tuple, list[tuple[int, dict]]] = {}
    out: list[dict] = []
    for err in errors:
        loc = tuple(err["loc"])
        at = next((i for i, part in enumerate(loc) if _is_tag(part)), None)
        if at is None:
            out.append(err)
        else:
            groups.setdefault(loc[:at], []).append((at, err))
    for prefix, members in groups.items():
        deep = [e for at, e in members if len(e["loc"]) > at + 1]
        tags = list(dict.fromkeys(e["loc"][at] for at, e in members))
        if len(tags) > 1 and not deep:
            forms = " or ".join(_tag_text(t) for t in tags)
            got = members[0][1].get("input")
            out.append({"loc": prefix, "type": "union", "msg": f"expected {forms}, got {got!r}"})
            continue
        keep = deep if len(tags) > 1 else [e for _, e in members]
        out += [{**e, "loc": tuple(p for p in e["loc"] if not _is_tag(p))} for e in keep]
    return out


def _program_name(programs: Any, i: Any) -> str:
    if isinstance(programs, list) and isinstance(i, int) and 0 <= i < len(programs):
        entry = programs[i]
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            return f" ({entry['name']})"
    return ""


def describe_validation_error(exc: ValidationError, source: str, raw: dict | None = None) -> str:
    """One line per problem: the file, the key and what was expected. With the scenario's
    ``raw`` data a program is named too: ``program[1] (CART-B).uptake.peak_share``."""
    programs = (raw or {}).get("program")
    lines = []
    for err in _one_branch(exc.errors()):
        loc = ""
        for j, part in enumerate(err["loc"]):
            loc += f"[{part}]" if isinstance(part, int) else ("." if loc else "") + str(part)
            if j == 1 and err["loc"][0] == "program":
                loc += _program_name(programs, part)
        kind = err["type"]
        if kind == "extra_forbidden":
            msg = "unknown key"
        elif kind == "missing":
            msg = "required key is missing"
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
            if kind == "finite_number":
                msg = f"expected a finite number, got {err.get('input')!r}"
            elif kind in ("int_type", "int_parsing", "int_from_float"):
                msg = f"expected a whole number, got {err.get('input')!r}"
            elif kind.startswith("date"):
                msg = f"expected a date such as 2027-01-01, got {err.get('input')!r}"
            elif kind in _BOUNDS:
                bound = next(iter(err.get("ctx", {}).values()), "")
                if isinstance(bound, int | float):
                    bound = f"{bound:g}"
                msg = f"must be {_BOUNDS[kind]} {bound}, got {err.get('input')!r}"
        lines.append(f"{source}: {loc or 'scenario'}: {msg}")
    return lines[0] if len(lines) == 1 else "\n".join([f"{len(lines)} problems:", *lines])
