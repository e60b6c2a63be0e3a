"""``[[program]]``: a trial, pipeline or launched program, its enrollment, trial plan, uptake
and PPQ lots; the checks of one program's own consistency.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from pmcap.scenario.base import PHASE, Float, Int, _param, _Strict, _within


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
