"""A program of the portfolio: its stage (trial, pipeline, launched) and its uncertain inputs.

:class:`Program` holds and checks what a planner says about one program; how its draws are
made, in causal order per draw, is :class:`forecast.Portfolio`'s (see :mod:`forecast.portfolio`
for what each stage means).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from forecast.errors import InputError
from forecast.phase.durations import REVIEW_TYPES

__all__ = ["EVENTS", "STAGES", "TRIAL_PHASES", "Program"]

STAGES = ("trial", "pipeline", "launched")
EVENTS = ("enrollment_complete", "filing", "approval", "launch")
TRIAL_PHASES = ("phase1", "phase2", "phase3")


@dataclass
class Program:
    """One program of the portfolio (see the module docstring for what each stage means).

    Parameters
    ----------
    name, stage
        Program name (the ``program`` label of the demand) and ``"trial"``, ``"pipeline"`` or
        ``"launched"``.
    group, duration_group
        Group of the phase-transition table (e.g. ``"CAR-T"``) for approval odds and phase
        durations (``duration_group`` defaults to ``group``).
    review
        The program's own FDA review type, ``"priority"``, ``"standard"`` or
        ``"breakthrough"`` (default: its group's share of priority reviews;
        :mod:`forecast.phase.durations`).
    enrollment, registrational, follow_up_months, filing_prep_months, pivotal_success
        Trial stage: a fitted :class:`~forecast.EnrollmentModel` (with a ``target`` when
        registrational); months from enrollment completion to readout and from readout to
        filing; optional probability (or Beta table) that the pivotal trial is positive.
    manufactured_share, lag_days
        Share of enrolled patients whose lot is made, and days from enrollment to the start
        of manufacture (trial stage and trial plans).
    phase, phase_start, trial_plan
        Pipeline stage: current phase, when it started, and per phase
        ``{"patients": n, "enrollment_months": m}`` (``m`` omitted: the whole phase). The
        current phase's patients are spread from its start: those that fall before the
        horizon are not demand.
    pivotal
        Pipeline stage: the pivotal phase, ``"phase3"`` (default) or ``"phase2"`` (a
        single-arm pivotal phase II, then the filing: no phase III;
        :mod:`forecast.phase.simulate`).
    launch, launch_lag_months
        Launched stage: the launch date. Other stages: months from approval to the first
        commercial patient.
    eligible_per_year, peak_share, expansions, backlog, sales
        Uptake inputs (no commercial stream without ``eligible_per_year`` and
        ``peak_share``); ``expansions`` are ``(date or months after launch, added eligible per
        year)``; ``sales`` are observations of the product (the output of
        :func:`forecast.uptake.data.observations_from_sales`) that reweight the uptake draws.
    ppq_lots, ppq_window_months
        Process-performance-qualification lots and the window before the planned filing they
        run in (from ``[0]`` months to ``[1]`` months before the filing month), at risk: in
        every draw that reaches the window's first month without a failure (module docstring).
    in_progress
        Patients started per month before the horizon (a number, or a Series indexed by
        month): lots already in manufacture at the start.
    """

    name: str
    stage: str
    group: str | None = None
    duration_group: str | None = None
    review: str | None = None
    enrollment: Any = None
    registrational: bool = False
    follow_up_months: Any = 12.0
    filing_prep_months: Any = 3.0
    pivotal_success: Any = None
    manufactured_share: Any = 1.0
    lag_days: Any = 0.0
    phase: str | None = None
    phase_start: Any = None
    trial_plan: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    pivotal: str = "phase3"
    launch: Any = None
    launch_lag_months: Any = 0.0
    eligible_per_year: Any = None
    peak_share: Any = None
    expansions: Sequence[tuple[Any, Any]] = ()
    backlog: float = 0.0
    sales: pd.DataFrame | None = None
    ppq_lots: int = 0
    ppq_window_months: tuple[int, int] = (12, 4)
    in_progress: Any = None

    def __post_init__(self) -> None:
        where = f"program {self.name!r}"
        if not self.name or not isinstance(self.name, str):
            raise InputError("program: name must be a non-empty string")
        if self.stage not in STAGES:
            raise InputError(f"{where}: stage {self.stage!r}; expected one of {list(STAGES)}")
        if self.review is not None and self.review not in REVIEW_TYPES:
            raise InputError(
                f"{where}: review {self.review!r}; expected one of {list(REVIEW_TYPES)}"
            )
        if self.stage == "trial":
            if self.enrollment is None or getattr(self.enrollment, "data_", None) is None:
                raise InputError(f"{where}: a trial needs a fitted EnrollmentModel (enrollment)")
            if self.registrational and self.enrollment.target is None:
                raise InputError(
                    f"{where}: a registrational trial needs the enrollment model's target"
                )
        if self.stage == "pipeline":
            if self.phase not in TRIAL_PHASES:
                raise InputError(
                    f"{where}: phase {self.phase!r}; expected one of {list(TRIAL_PHASES)}"
                )
            if self.phase_start is None:
                raise InputError(f"{where}: a pipeline program needs phase_start")
            if self.pivotal not in ("phase2", "phase3"):
                raise InputError(
                    f"{where}: pivotal {self.pivotal!r}; expected 'phase2' or 'phase3'"
                )
            if self.pivotal == "phase2" and "phase3" in (self.phase, *self.trial_plan):
                raise InputError(
                    f"{where}: pivotal = 'phase2' has no phase III (phase {self.phase!r}, "
                    f"trial_plan phases {sorted(self.trial_plan)})"
                )
            unknown = sorted(set(self.trial_plan) - set(TRIAL_PHASES))
            if unknown:
                raise InputError(
                    f"{where}: trial_plan phases {unknown}; expected {list(TRIAL_PHASES)}"
                )
            for phase, plan in self.trial_plan.items():
                extra = sorted(set(plan) - {"patients", "enrollment_months"})
                if extra or "patients" not in plan:
                    raise InputError(
                        f"{where}: trial_plan[{phase!r}] needs 'patients' and optionally "
                        f"'enrollment_months'; got keys {sorted(plan)}"
                    )
        if self.stage in ("pipeline", "trial") and (
            self.registrational or self.stage == "pipeline"
        ):
            if not self.group:
                raise InputError(f"{where}: give the phase-table group (e.g. 'CAR-T')")
        if self.sales is not None and self.stage != "launched":
            raise InputError(
                f"{where}: sales (own observations) are for launched products; a program "
                "that launches on approval has a different launch month in every draw"
            )
        if self.stage == "launched":
            if self.launch is None:
                raise InputError(f"{where}: a launched product needs its launch date")
            if self.eligible_per_year is None or self.peak_share is None:
                raise InputError(
                    f"{where}: a launched product needs eligible_per_year and peak_share"
                )
        if (self.eligible_per_year is None) != (self.peak_share is None):
            raise InputError(f"{where}: give both eligible_per_year and peak_share, or neither")
        if self.ppq_lots < 0 or int(self.ppq_lots) != self.ppq_lots:
            raise InputError(f"{where}: ppq_lots must be a whole number >= 0")
        early, late = self.ppq_window_months
        if not (int(early) == early and int(late) == late and early >= late >= 0):
            raise InputError(
                f"{where}: ppq_window_months must be whole months (early, late) with "
                f"early >= late >= 0, got {self.ppq_window_months}"
            )

    @property
    def has_commercial(self) -> bool:
        return self.eligible_per_year is not None
