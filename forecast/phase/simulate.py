"""Simulating a program's path through the phases, and the approval bands of a simulation.

Days are counted from :data:`EPOCH` (1970-01-01) as floats; a month is the first day of the
calendar month holding the day. One draw is one program: it passes each phase with that
draw's step probability, after a time drawn from the draw's duration parameters
(:class:`~forecast.phase.durations.DurationPriors`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from forecast.errors import InputError
from forecast.phase.data import PHASES, phase_index
from forecast.phase.durations import DurationPriors, lognormal_years

__all__ = [
    "DAYS_PER_YEAR",
    "DAY_UNITS",
    "EPOCH",
    "approval_bands",
    "epoch_day",
    "month_starts",
    "phase_end_days",
]

DAYS_PER_YEAR = 365.25
DAY_UNITS = "days since 1970-01-01 (NaN: never)"
EPOCH = pd.Timestamp("1970-01-01")


def phase_end_days(
    current: int,
    start_day: float,
    p: np.ndarray,
    median: np.ndarray,
    sigma: np.ndarray,
    priors: DurationPriors,
    rng: np.random.Generator,
    *,
    elapsed_years: float,
    min_years: Mapping[str, float | np.ndarray] | None,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The day each phase ends, from phase ``current`` on, per draw.

    ``p`` (draw, step): step probabilities; ``median``, ``sigma`` (draw, phase): duration
    parameters; the current phase, entered on ``start_day``, has lasted ``elapsed_years``.
    ``min_years`` (phase -> years, a number or one per draw): a phase the program passes lasts
    at least that long; a draw shorter than that is redrawn given the minimum, with one
    uniform per draw from a stream of its own (``[seed, 17]``), whatever its outcome, so the
    other draws are unchanged and a draw's redrawn duration does not depend on whether it, or
    any other draw, passes. Returns the end days (draw, phase; NaN after the program
    stopped), whether each phase was passed, the minimum years (draw, phase), and the day each
    phase the program entered would end if it passed (its plan: the end day itself in a draw
    that passes it, or that fails it no sooner than its minimum).
    """
    draws = len(p)
    t = np.full(draws, start_day, dtype=float)  # days since epoch
    alive = np.ones(draws, bool)
    ends = np.full((draws, len(PHASES)), np.nan)
    if_passed = np.full((draws, len(PHASES)), np.nan)
    passed = np.zeros((draws, len(PHASES)), bool)
    floors = {} if min_years is None else dict(min_years)
    unknown = sorted(set(floors) - set(PHASES[:3]))
    if unknown:
        raise InputError(f"min_years: phases {unknown}; expected phase1, phase2 or phase3")
    minimum = np.zeros((draws, len(PHASES)))  # kept in the result: bands() draws with it
    for phase, value in floors.items():
        minimum[:, PHASES.index(phase)] = np.asarray(value, float)
    extra = np.random.default_rng([seed, 17])  # redraws given a minimum (docstring)
    for k in range(current, len(PHASES)):
        years = priors.phase_years(
            k, median[:, k], sigma[:, k], rng, floor=elapsed_years if k == current else 0.0
        )
        success = rng.random(draws) < p[:, k]
        planned = years
        if PHASES[k] in floors:
            need = np.broadcast_to(np.asarray(floors[PHASES[k]], float), (draws,))
            floor = np.maximum(need, elapsed_years if k == current else 0.0)
            redrawn = lognormal_years(median[:, k], sigma[:, k], extra, floor)  # every draw
            planned = np.where(years < need, redrawn, years)
            years = np.where(success, planned, years)  # a failed phase may end sooner
        if_passed[alive, k] = t[alive] + planned[alive] * DAYS_PER_YEAR
        t = t + years * DAYS_PER_YEAR
        ends[alive, k] = t[alive]
        passed[:, k] = alive & success
        alive = passed[:, k]
    return ends, passed, minimum, if_passed


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
    rng = np.random.default_rng(int(sim.attrs["seed"]) + 1)
    median = sim["duration_median_years"].values[:, c:]
    sigma = sim["duration_sigma"].values[:, c:]
    elapsed = (pd.Timestamp(sim.attrs["as_of"]) - pd.Timestamp(sim.attrs["phase_start"])).days
    # an approved draw passed every phase: each lasted at least its minimum (simulate)
    minimum = sim["min_years"].values[:, c:] if "min_years" in sim else np.zeros_like(median)

    def floor(j: int) -> float | np.ndarray:
        base = elapsed / DAYS_PER_YEAR if j == 0 else 0.0
        if not minimum[:, j].any():
            return base
        return np.maximum(np.repeat(minimum[:, j : j + 1], replicates, 1), base)

    years = np.stack(
        [
            priors.phase_years(
                c + j,
                np.repeat(median[:, j : j + 1], replicates, 1),
                np.repeat(sigma[:, j : j + 1], replicates, 1),
                rng,
                floor=floor(j),
            )
            for j in range(median.shape[1])
        ],
        axis=-1,
    ).sum(-1)  # (draw, replicate) years to the approval decision
    approval_day = (pd.Timestamp(sim.attrs["phase_start"]) - EPOCH).days + years * DAYS_PER_YEAR
    loa = sim["p"].values[:, c:].prod(axis=1)
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
