"""Simulating a program's path through the phases, and the approval bands of a simulation.

Days are counted from :data:`EPOCH` (1970-01-01) as floats; a month is the first day of the
calendar month holding the day. One draw is one program: it passes each phase with that
draw's step probability, after a time drawn from the draw's duration parameters
(:class:`~forecast.phase.durations.DurationPriors`).

Enrollment and phase duration. The benchmark durations are those of whole phases, enrollment
included: a phase's calibrated draw ``D`` is the time from its first patient to its readout.
A trial plan adds the phase's enrollment window ``E`` (its first patient to its last). A phase
cannot read out before its last patient is in, so a phase the program passes lasts::

    T = max(E, D)         (passed)        T = D      (failed: a trial may stop early)

``D`` is drawn whatever the outcome (``max(E, D)`` is the phase's plan, also in a draw that
fails it, for commitments made before the readout). The plan binds only in draws whose
calibrated phase is shorter than its enrollment: with a typical plan (enrollment well inside
the phase's calibrated time) ``T`` is the calibrated ``D``, and a long plan moves the phase
later by exactly what its enrollment needs, no more.

Pivotal phase. A program's pivotal phase is phase III (default) or phase II (``pivotal =
"phase2"``: a single-arm pivotal phase II, often a seamless phase I/II, then the filing, as
for the six CAR-Ts the FDA approved in 2017-2022). A pivotal phase II passes to the filing with
probability ``p[phase2_to_phase3] * p[phase3_to_filing]``: the benchmark counts a program that
files from phase II as passing the phase III it skipped, so a program in phase II files with
that product in the model. Its calibrated time ``D`` is the model's phase II plus phase III
time (both drawn with the program's speed): the time from phase II start to filing, so the
years from phase I to approval are those the durations were calibrated on (the CAR-T modality's
phase I-to-approval years are those of products approved on a pivotal phase II). It has no
phase III: in the result, phase III ends on the day phase II does and is passed with it.

Conditioning on today. A program ``elapsed_years`` into its current phase is still in it:
its parameters (step probabilities, duration parameters, speed, its modality shift), its
enrollment window when the plan's is uncertain, its outcome and its duration are drawn from
their joint distribution given ``T > elapsed_years`` by rejection (:func:`survivors`): draws
from the prior, simulated through the current phase with the same code, kept when still in the
phase, until every draw has one. A draw surviving long is likely slow and, when the plan's
enrollment is still under way, likely to pass (its failure would have ended the phase at
``D``), exactly as in a simulation from the phase start.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from forecast.draws import at_risk_start
from forecast.errors import InputError
from forecast.phase.data import PHASES, phase_index
from forecast.phase.durations import FILING, DurationPriors, lognormal_years

__all__ = [
    "DAYS_PER_YEAR",
    "DAY_UNITS",
    "EPOCH",
    "PIVOTAL_PHASES",
    "approval_bands",
    "calibrated_years",
    "epoch_day",
    "minimum_years",
    "month_starts",
    "pass_probabilities",
    "phase_end_days",
    "ppq_days",
    "survivors",
]

DAYS_PER_YEAR = 365.25
DAY_UNITS = "days since 1970-01-01 (NaN: never)"
EPOCH = pd.Timestamp("1970-01-01")
PIVOTAL_PHASES = ("phase2", "phase3")
MAX_PROPOSALS = 2000  # rejection: prior draws tried per draw before the fallback (survivors)
CHUNK = 1_000_000  # rejection: most prior draws proposed at once
SURVIVOR_REDRAWS = 200  # approval_bands: redraws of a replicate not yet past as_of

Propose = Callable[[np.ndarray, np.random.Generator], dict[str, np.ndarray]]


def pass_probabilities(p: np.ndarray, pivotal: int) -> np.ndarray:
    """P(passing each phase) (draw, phase) from the step probabilities (draw, step): a pivotal
    phase II (``pivotal`` = 1) passes to the filing with ``p[phase2_to_phase3] *
    p[phase3_to_filing]`` and its phase III is passed with it (module docstring)."""
    q = np.array(p, float, copy=True)
    if pivotal == 1:
        q[:, 1] = p[:, 1] * p[:, 2]
        q[:, 2] = 1.0
    return q


def calibrated_years(
    k: int,
    median: np.ndarray,
    sigma: np.ndarray,
    priors: DurationPriors,
    rng: np.random.Generator,
    pivotal: int,
    floor: float = 0.0,
) -> np.ndarray:
    """The calibrated time ``D`` of phase ``k`` per draw (module docstring): lognormal in
    phases I-III (a pivotal phase II: its phase II plus phase III time; its phase III: 0), the
    review on its own clock; drawn given it lasts at least ``floor`` (a pivotal phase II: its
    phase II part)."""
    if k == FILING:
        return priors.review_years(median[:, k], rng, floor=floor)
    if pivotal == 1 and k == 2:
        return np.zeros(len(median))
    years = lognormal_years(median[:, k], sigma[:, k], rng, floor)
    if pivotal == 1 and k == 1:
        years = years + lognormal_years(median[:, 2], sigma[:, 2], rng)
    return years


def minimum_years(
    min_years: Mapping[str, float | np.ndarray | Callable] | None,
    slots: np.ndarray,
    rng: np.random.Generator,
    pivotal: int,
) -> np.ndarray:
    """Each phase's enrollment window in years (slot, phase) for draws ``slots``: a number, one
    per draw (indexed by slot), or a sampler ``f(n, rng)`` of ``n`` windows."""
    floors = {} if min_years is None else dict(min_years)
    unknown = sorted(set(floors) - set(PHASES[:3]))
    if unknown:
        raise InputError(f"min_years: phases {unknown}; expected phase1, phase2 or phase3")
    if pivotal == 1 and "phase3" in floors:
        raise InputError("min_years: a program whose pivotal phase is phase II has no phase III")
    out = np.zeros((len(slots), len(PHASES)))
    for phase, value in floors.items():
        k = PHASES.index(phase)
        if callable(value):
            out[:, k] = np.asarray(value(len(slots), rng), float)
        elif np.ndim(value) == 0:
            out[:, k] = float(value)
        else:
            out[:, k] = np.asarray(value, float)[slots]
    return out


def _phase(k, world, priors, rng, pivotal, floor=0.0):
    """One pass through phase ``k``: outcome, years and years had it passed (module docstring)."""
    d = calibrated_years(k, world["median"], world["sigma"], priors, rng, pivotal, floor)
    success = rng.random(len(d)) < world["q"][:, k]
    planned = np.maximum(world["minimum"][:, k], d)
    return success, np.where(success, planned, d), planned


def survivors(
    propose: Propose,
    draws: int,
    current: int,
    elapsed_years: float,
    priors: DurationPriors,
    rng: np.random.Generator,
    pivotal: int,
) -> tuple[dict[str, np.ndarray], int]:
    """Program worlds given the program is still in phase ``current`` ``elapsed_years`` after
    entering it: ``propose(slots, rng)`` draws prior worlds (``p``, ``median``, ``sigma``,
    ``minimum``) for the draws ``slots``; each is run through the current phase
    (:func:`_phase`) and the first still in it at ``elapsed_years`` is kept per draw (exact
    rejection sampling). Returns the worlds with the current phase's ``success``, ``years`` and
    ``planned`` (years had it passed), and how many draws were drawn exactly: after
    ``MAX_PROPOSALS`` prior draws per draw (a survival probability under 1/2000), the rest
    take a prior world with the phase's time drawn given it exceeds ``elapsed_years``."""
    out: dict[str, np.ndarray] = {}
    todo, batch, tried = np.arange(draws), 1, 0
    while todo.size and tried < MAX_PROPOSALS * draws:
        slots = np.repeat(todo, batch)
        world = propose(slots, rng)
        success, years, planned = _phase(current, world, priors, rng, pivotal)
        world.update(success=success, years=years, planned=planned)
        ok = years > elapsed_years
        tried += len(slots)
        hits = np.flatnonzero(ok)
        first = hits[np.unique(slots[hits], return_index=True)[1]]  # first kept per draw
        for name, value in world.items():
            if name not in out:
                out[name] = np.zeros((draws, *value.shape[1:]), value.dtype)
            out[name][slots[first]] = value[first]
        todo = np.setdiff1d(todo, slots[first])
        rate = max(ok.mean(), 1e-6)
        batch = int(max(1, min(np.ceil(1.5 / rate), CHUNK // max(todo.size, 1))))
    exact = draws - todo.size
    if todo.size:  # survival too unlikely to reach by rejection: the floor as the condition
        world = propose(todo, rng)
        success, years, planned = _phase(current, world, priors, rng, pivotal, elapsed_years)
        world.update(success=success, years=years, planned=planned)
        for name, value in world.items():
            if name not in out:
                out[name] = np.zeros((draws, *value.shape[1:]), value.dtype)
            out[name][todo] = value
    return out, exact


def phase_end_days(
    current: int,
    start_day: float,
    world: Mapping[str, np.ndarray],
    priors: DurationPriors,
    rng: np.random.Generator,
    *,
    pivotal: int,
    elapsed_years: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The day each phase ends, from phase ``current`` on, per draw.

    ``world``: ``q`` (draw, phase) pass probabilities (:func:`pass_probabilities`);
    ``median``, ``sigma`` (draw, phase) duration parameters; ``minimum`` (draw, phase) the
    enrollment windows in years; and, when :func:`survivors` drew it, the current phase's
    ``success``, ``years`` and ``planned``. The current phase, entered on ``start_day``, has
    lasted ``elapsed_years`` (without ``success`` in ``world``, only the review is drawn given
    that: phases I-III come from :func:`survivors`). A passed phase lasts ``max(E, D)``, a
    failed one ``D`` (module docstring). Returns the end days (draw, phase; NaN after the
    program stopped), whether each phase was passed, and the day each phase the program
    entered would end if it passed (its plan: ``max(E, D)``, whatever its outcome).
    """
    draws = len(world["q"])
    t = np.full(draws, start_day, dtype=float)  # days since epoch
    alive = np.ones(draws, bool)
    ends = np.full((draws, len(PHASES)), np.nan)
    if_passed = np.full((draws, len(PHASES)), np.nan)
    passed = np.zeros((draws, len(PHASES)), bool)
    for k in range(current, len(PHASES)):
        if k == current and "success" in world:
            success, years, planned = world["success"], world["years"], world["planned"]
        else:
            floor = elapsed_years if k == current else 0.0
            success, years, planned = _phase(k, world, priors, rng, pivotal, floor)
        if_passed[alive, k] = t[alive] + planned[alive] * DAYS_PER_YEAR
        t = t + years * DAYS_PER_YEAR
        ends[alive, k] = t[alive]
        passed[:, k] = alive & success
        alive = passed[:, k]
    return ends, passed, if_passed


def ppq_days(
    current: int,
    start: pd.Timestamp,
    ends: np.ndarray,
    passed: np.ndarray,
    if_passed: np.ndarray,
    months_before: int,
    pivotal: int,
) -> np.ndarray:
    """The first day of the PPQ month per draw (days since epoch, NaN: no PPQ).

    Planned ``months_before`` months before the filing the draw would make if its pivotal
    phase (``pivotal``: phase III, or a pivotal phase II) passed, committed no earlier than
    the start of that phase, and run in every draw that has not failed it in a month before
    then (:func:`forecast.draws.at_risk_start`). A program already filed (``current`` =
    filing) made its PPQ before it filed.
    """
    start_day = float((start - EPOCH).days)
    n = len(ends)
    if current == FILING:
        planned, known, failed = np.full(n, start_day), np.full(n, -np.inf), np.full(n, np.nan)
    else:
        planned = if_passed[:, pivotal]
        known = np.full(n, start_day) if current == pivotal else ends[:, pivotal - 1]
        failed = np.where(passed[:, pivotal], np.nan, ends[:, pivotal])
    month = at_risk_start(planned, known, failed, months_before)
    ok = np.isfinite(month)
    out = np.full(n, np.nan)
    first = np.datetime64("1970-01", "M") + month[ok].astype("int64")
    out[ok] = (first.astype("datetime64[D]") - np.datetime64("1970-01-01", "D")).astype(float)
    return out


def approval_bands(
    sim: xr.Dataset,
    priors: DurationPriors,
    months: Sequence | pd.DatetimeIndex | None = None,
    quantiles: Sequence[float] = (0.1, 0.5, 0.9),
    replicates: int = 64,
    program: str | None = None,
) -> pd.DataFrame:
    """Cumulative probability of approval by month of a simulation, with bands over parameter
    uncertainty (:meth:`~forecast.phase.model.PhaseTransitionModel.bands`)."""
    if months is None:
        first = pd.Timestamp(sim.attrs["phase_start"]).to_period("M").to_timestamp()
        months = pd.date_range(first, periods=12 * 15, freq="MS")
    months = pd.DatetimeIndex(months)
    c = phase_index(sim.attrs["current_phase"])
    pivotal = phase_index(sim.attrs.get("pivotal", "phase3"))
    rng = np.random.default_rng(int(sim.attrs["seed"]) + 1)
    elapsed = (pd.Timestamp(sim.attrs["as_of"]) - pd.Timestamp(sim.attrs["phase_start"])).days
    elapsed /= DAYS_PER_YEAR
    rows = np.repeat(np.arange(sim.sizes["draw"]), replicates)
    median = sim["duration_median_years"].values[rows]
    # an approved draw passed every phase: each lasted max(its enrollment, D) (module docstring)
    minimum = sim["min_years"].values[rows] if "min_years" in sim else np.zeros_like(median)
    world = {"median": median, "sigma": sim["duration_sigma"].values[rows], "minimum": minimum}
    q = pass_probabilities(sim["p"].values, pivotal)
    years = np.zeros(len(rows))
    for k in range(c, len(PHASES)):
        d = calibrated_years(k, median, world["sigma"], priors, rng, pivotal, 0.0)
        passed = np.maximum(minimum[:, k], d)
        if k == c and k < FILING and elapsed > 0:  # still in the phase: redraw the others
            # P(it passes | it is still in the phase), per draw over its replicates: a passed
            # phase lasts max(E, D), a failed one D
            alive = np.stack([passed > elapsed, d > elapsed]).reshape(2, -1, replicates)
            survive_pass, survive_fail = alive.mean(axis=-1)
            q_c = q[:, c]
            with np.errstate(invalid="ignore", divide="ignore"):
                odds = q_c * survive_pass / (q_c * survive_pass + (1 - q_c) * survive_fail)
            q[:, c] = np.where(np.isfinite(odds), odds, q_c)
            for _ in range(SURVIVOR_REDRAWS):
                short = passed <= elapsed
                if not short.any():
                    break
                d = calibrated_years(k, median, world["sigma"], priors, rng, pivotal, 0.0)
                passed = np.where(short, np.maximum(minimum[:, k], d), passed)
            passed = np.maximum(passed, elapsed)  # the rare draw never redrawn long enough
        elif k == c and k == FILING:
            passed = calibrated_years(k, median, world["sigma"], priors, rng, pivotal, elapsed)
        years += passed
    years = years.reshape(-1, replicates)  # (draw, replicate) years to the approval decision
    approval_day = (pd.Timestamp(sim.attrs["phase_start"]) - EPOCH).days + years * DAYS_PER_YEAR
    loa = q[:, c:].prod(axis=1)
    ends = (months + pd.offsets.MonthEnd(0) - EPOCH).days.to_numpy(float)
    horizon = sim.attrs.get("horizon_end")
    if horizon:  # a month's end, or the horizon's day in its month; nothing after it
        ends = np.minimum(ends, epoch_day(horizon))
        ends = np.where(months > pd.Timestamp(horizon), -np.inf, ends)
    approval_day = np.floor(approval_day)
    by_month = (approval_day[:, :, None] <= ends[None, None, :]).mean(axis=1)  # (draw, month)
    conditional = loa[:, None] * by_month
    observed = sim["approval_month"].values
    mean = (observed[:, None] <= months.to_numpy("datetime64[ns]")[None, :]).mean(axis=0)
    frame = pd.DataFrame(
        {
            "month": months,
            "program": program or sim.attrs["group"],
            "metric": "probability_approved_by",
            "unit": "probability",
            "mean": mean,
        }
    )
    for q, values in zip(quantiles, np.quantile(conditional, quantiles, axis=0), strict=True):
        frame[f"p{100 * q:g}"] = values
    return frame


def month_starts(days: np.ndarray, horizon: pd.Timestamp | None) -> np.ndarray:
    """Days since epoch (NaN = never) -> first of month as datetime64[ns] (NaT = never/late)."""
    out = np.full(days.shape, np.datetime64("NaT"), dtype="datetime64[ns]")
    ok = np.isfinite(days)
    dates = np.datetime64("1970-01-01", "D") + np.floor(days[ok]).astype("int64").astype(
        "timedelta64[D]"
    )
    out[ok] = dates.astype("datetime64[M]").astype("datetime64[ns]")
    if horizon is not None:  # the dates themselves, not their months, against the horizon
        out[ok & (np.floor(np.where(ok, days, 0)) > epoch_day(horizon))] = np.datetime64("NaT")
    return out


def epoch_day(date) -> int:
    """Whole days since the epoch of ``date`` (its time of day dropped)."""
    return (pd.Timestamp(date).normalize() - EPOCH).days
