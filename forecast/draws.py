"""Small tools for lining up draws across models: resampling, seeds, uncertain inputs, timing.

Every model in a portfolio contributes one value per draw; draw ``i`` of every model belongs
to one world. These helpers keep that bookkeeping in one place.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import pandas as pd

from capacity.distributions import Param
from forecast.errors import InputError

__all__ = [
    "DAYS_PER_MONTH",
    "EPOCH",
    "at_risk_start",
    "derive_seed",
    "manufacture_starts",
    "month_number",
    "param_draws",
    "resample_index",
    "spread_over_windows",
]

DAYS_PER_MONTH = 365.25 / 12
EPOCH = pd.Timestamp("1970-01-01")


def resample_index(available: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """Rows of ``available`` posterior draws to use for ``draws`` draws.

    The identity when the numbers agree; otherwise a random choice (without replacement when
    fewer draws are asked for, with replacement when more).
    """
    if available < 1:
        raise InputError("no posterior draws to resample")
    if draws == available:
        return np.arange(draws)
    return rng.choice(available, size=draws, replace=draws > available)


def derive_seed(seed: int, *key: str) -> int:
    """An integer seed for one part of a run, independent of the others (order-free)."""
    words = [zlib.crc32(k.encode()) for k in key]
    state = np.random.SeedSequence([int(seed), *words]).generate_state(1, dtype=np.uint32)
    return int(state[0])


def param_draws(value: Any, draws: int, rng: np.random.Generator, what: str) -> np.ndarray:
    """A number, a distribution table (``{"beta": [a, b]}`` ...) or an array of draws -> draws."""
    if isinstance(value, np.ndarray | list | tuple) and not isinstance(value, dict):
        arr = np.asarray(value, float)
        if arr.ndim == 1 and len(arr) == draws:
            bad = np.flatnonzero(~np.isfinite(arr))
            if bad.size:
                raise InputError(
                    f"{what}: draw {bad[0]} is {arr[bad[0]]}; expected finite numbers "
                    f"({bad.size} of {draws} draws are not)"
                )
            return arr.copy()
        raise InputError(f"{what}: expected {draws} draws, got an array of shape {arr.shape}")
    try:
        param = Param.parse(value)
    except ValueError as exc:
        raise InputError(f"{what}: {exc}") from None
    # one uniform per draw whatever the kind: fixing this input leaves the draws of the
    # inputs sampled after it unchanged (common random numbers across sensitivity swings)
    return param.sample_per_draw(draws, rng)


def manufacture_starts(
    enrolled: np.ndarray,
    share: Any,
    lag_days: Any,
    months: pd.DatetimeIndex,
    rng: np.random.Generator,
) -> np.ndarray:
    """Enrolled patients per (draw, month) -> patients starting manufacture per (draw, month).

    ``share`` of enrolled patients are manufactured (binomial; drawn once per draw),
    ``lag_days`` after enrollment (drawn once per draw). Enrollment is uniform within a
    month, so with a lag of ``k`` whole months plus a fraction ``f`` a binomial share ``f``
    of the month's patients start in month ``m + k + 1`` and the rest in ``m + k``. Starts
    beyond the last month are dropped.
    """
    enrolled = np.asarray(enrolled)
    n_draws, n_months = enrolled.shape
    share_d = param_draws(share, n_draws, rng, "manufactured_share")
    if ((share_d < 0) | (share_d > 1)).any():
        raise InputError("manufactured_share: must lie in [0, 1]")
    lag = param_draws(lag_days, n_draws, rng, "lag_days")
    if (lag < 0).any():
        raise InputError("lag_days: must be >= 0")
    made = rng.binomial(enrolled, share_d[:, None])
    if not lag.any():
        return made.astype(np.int64)
    lag_months = lag / DAYS_PER_MONTH
    whole = np.floor(lag_months).astype(np.int64)
    moved = rng.binomial(made, (lag_months - whole)[:, None])
    out = np.zeros((n_draws, n_months + int(whole.max()) + 2), np.int64)
    rows = np.repeat(np.arange(n_draws), n_months)
    cols = (np.arange(n_months)[None, :] + whole[:, None]).ravel()
    np.add.at(out, (rows, cols), (made - moved).ravel())
    np.add.at(out, (rows, cols + 1), moved.ravel())
    return out[:, :n_months]


def spread_over_windows(
    patients: np.ndarray,
    start_day: np.ndarray,
    end_day: np.ndarray,
    months: pd.DatetimeIndex,
    rng: np.random.Generator,
) -> np.ndarray:
    """Spread ``patients[d]`` uniformly over ``[start_day[d], end_day[d])`` into months.

    Days are days since 1970-01-01 (NaN: no window, nothing spread). A multinomial per draw:
    patients whose day falls outside the months are dropped. Returns (draw, month) int64.
    """
    edges = np.r_[
        (months - EPOCH).days.to_numpy(float),
        float(((months[-1] + pd.offsets.MonthBegin(1)) - EPOCH).days),
    ]
    ok = np.isfinite(start_day) & np.isfinite(end_day) & (end_day > start_day)
    s = np.where(ok, start_day, 0.0)[:, None]
    e = np.where(ok, end_day, 1.0)[:, None]
    overlap = np.clip(np.minimum(edges[None, 1:], e) - np.maximum(edges[None, :-1], s), 0, None)
    inside = overlap / (e - s)
    pvals = np.column_stack([inside, np.clip(1 - inside.sum(axis=1), 0, 1)])
    pvals /= pvals.sum(axis=1, keepdims=True)
    n = np.where(ok, np.asarray(patients).astype(np.int64), 0)
    counts = rng.multinomial(n, pvals)
    return counts[:, :-1].astype(np.int64)


def month_number(days: np.ndarray) -> np.ndarray:
    """Calendar month of a day (days since 1970-01-01) as months since 1970-01 (floats;
    NaN and infinities kept)."""
    days = np.asarray(days, float)
    ok = np.isfinite(days)
    out = days.copy()
    dates = np.datetime64("1970-01-01", "D") + np.floor(days[ok]).astype("int64").astype(
        "timedelta64[D]"
    )
    out[ok] = dates.astype("datetime64[M]").astype("int64")
    return out


def at_risk_start(
    planned_day: np.ndarray,
    known_day: np.ndarray,
    failed_day: np.ndarray,
    months_before: int,
) -> np.ndarray:
    """The month an at-risk commitment is made in each draw, under non-anticipation.

    A commitment (a PPQ campaign) is planned ``months_before`` months before the month of the
    event that justifies it (filing), at the date that event would have if every readout still
    ahead were positive (``planned_day``). It is made at that month, but never before the
    month of ``known_day``, the event its plan is dated from (enrollment completion of the
    pivotal trial, the start of phase III): a commitment may only depend on what is known when
    it is made. The draw makes it if it has not learned of a failure (``failed_day``: the
    negative readout or failed phase; NaN if none) in a month before it, whatever the draw
    does later.

    Parameters
    ----------
    planned_day, known_day, failed_day
        Days since 1970-01-01 per draw; NaN ``planned_day`` or ``known_day``: never reached;
        ``known_day`` = -inf: known from the outset; NaN ``failed_day``: no failure.
    months_before
        Whole months from the commitment to the planned event.

    Returns
    -------
    numpy.ndarray
        Months since 1970-01 of the commitment per draw (floats), NaN in draws that never
        make it.

    Examples
    --------
    >>> d = lambda s: float((np.datetime64(s) - np.datetime64("1970-01-01")).astype(int))
    >>> m = at_risk_start(np.array([d("2030-07-10")] * 2), np.array([d("2029-01-05")] * 2),
    ...                   np.array([d("2030-03-20"), d("2029-12-31")]), 6)
    >>> (np.datetime64("1970-01", "M") + m[:1].astype(int)).tolist(), bool(np.isnan(m[1]))
    ([datetime.date(2030, 1, 1)], True)
    """
    planned = month_number(planned_day) - int(months_before)
    start = np.maximum(planned, month_number(known_day))  # NaN (never reached) propagates
    with np.errstate(invalid="ignore"):
        stopped = month_number(failed_day) < start  # NaN failure: False
    return np.where(np.isfinite(start) & ~stopped, start, np.nan)
