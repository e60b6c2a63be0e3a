"""Rolling-origin backtests of the demand models against plug-in baselines run alongside."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from forecast.data import screening_log
from forecast.enrollment import EnrollmentModel

__all__ = ["backtest_summary", "crps_samples", "enrollment_backtest", "pit_coverage"]


def crps_samples(samples: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """CRPS of predictive samples (draw first) against observations: E|X - y| - E|X - X'| / 2."""
    x = np.sort(np.asarray(samples, float), axis=0)
    n = x.shape[0]
    term1 = np.abs(x - observed[None]).mean(axis=0)
    weights = (2 * np.arange(1, n + 1) - n - 1)[:, None]
    term2 = (weights * x.reshape(n, -1)).sum(axis=0).reshape(x.shape[1:]) / n**2
    return term1 - term2


def pit_coverage(samples: np.ndarray, observed: np.ndarray, level: float = 0.8) -> np.ndarray:
    """Expected coverage of the central ``level`` interval under the randomised PIT.

    For counts, P(q10 <= y <= q90) of a calibrated forecast exceeds 80% because the endpoints
    carry mass (Poisson(2): 0 to 4 holds 95%). The randomised PIT u ~ U(F(y - 1), F(y)) is
    uniform for a calibrated forecast; this returns P(u in [0.1, 0.9]) exactly, so a
    calibrated forecast scores 0.8 on average.
    """
    x = np.asarray(samples, float)
    below = (x < observed[None]).mean(axis=0)  # F(y - 1)
    upto = (x <= observed[None]).mean(axis=0)  # F(y)
    lo, hi = (1 - level) / 2, (1 + level) / 2
    width = upto - below
    overlap = np.clip(np.minimum(upto, hi) - np.maximum(below, lo), 0, None)
    inside = ((below >= lo) & (below <= hi)).astype(float)  # degenerate width: u = F(y)
    return np.where(width > 0, overlap / np.where(width > 0, width, 1), inside)


def _plugin_poisson(history: pd.DataFrame, days: np.ndarray, rng, n) -> np.ndarray:
    """Constant rate = enrolled / calendar days so far; Poisson per future month."""
    rate = history["enrolled"].sum() / history["days"].sum()
    return rng.poisson(rate * days[None, :], size=(n, len(days)))


def _plugin_negative_binomial(history: pd.DataFrame, days: np.ndarray, rng, n) -> np.ndarray:
    """Anisimov-Fedorov plug-in: gamma-distributed monthly rates fitted by moments, NB counts.

    With one site, the gamma spread of rates is estimated across past months (the only
    replication there is); the estimate is plugged in, its uncertainty ignored.
    """
    k, d = history["enrolled"].to_numpy(float), history["days"].to_numpy(float)
    mean = k.sum() / d.sum()
    # var of the rate between months beyond Poisson noise (method of moments)
    excess = np.sum((k - mean * d) ** 2 - mean * d) / np.sum(d**2)
    shape = mean**2 / excess if excess > 0 else 1e6
    rates = rng.gamma(shape, mean / shape, size=(n, len(days)))
    return rng.poisson(rates * days[None, :])


def enrollment_backtest(
    logs: tuple[str, ...] = ("grips", "pace"),
    *,
    every_months: int = 3,
    horizon_months: int = 6,
    first_origin_months: int = 6,
    draws: int = 500,
    tune: int = 500,
    seed: int = 0,
) -> pd.DataFrame:
    """Rolling-origin backtest on bundled single-site screening logs.

    At each origin (a month end, every ``every_months`` from ``first_origin_months`` months
    after the first day) pmcap's ``EnrollmentModel`` (one site, calendar effect, open days as
    exposure) and two plug-in baselines forecast the next ``horizon_months`` monthly enrolled
    counts. Returns one row per log, origin, month ahead and method with the observed count,
    the 80% interval (P10-P90 of the predictive), whether it covers (``covered``), its
    randomised-PIT coverage (``pit_covered``, see :func:`pit_coverage`) and the CRPS.
    """
    logging.getLogger("pymc").setLevel(logging.ERROR)
    rows = []
    rng = np.random.default_rng(seed)
    n = 2 * draws
    for name in logs:
        log = screening_log(name)
        monthly = log.set_index("date").resample("MS").agg({"enrolled": "sum"})
        monthly["days"] = log.set_index("date").resample("MS")["enrolled"].size()
        months = monthly.index
        for o in range(first_origin_months, len(months) - 1, every_months):
            origin = months[o] - pd.Timedelta(days=1)  # last day of the previous month
            future = monthly.iloc[o : o + horizon_months]
            days = future.index.days_in_month.to_numpy(float)
            # the last month of a log is partial: score it only on its logged days
            days = np.minimum(days, future["days"].to_numpy(float))
            history = monthly.iloc[:o]
            model = EnrollmentModel(calendar_effect=True, draws=draws, tune=tune, seed=seed + o)
            model.fit(counts=log[log["date"] <= origin], as_of=origin)
            fc = model.forecast(len(future))["enrolled"].values
            # the model forecasts whole months; scale the partial last month by its days
            full = future.index.days_in_month.to_numpy(float)
            fc = rng.binomial(fc, np.minimum(days / full, 1.0)[None, :])
            predictions = {
                "pmcap": fc,
                "plugin_poisson": _plugin_poisson(history, days, rng, n),
                "plugin_negative_binomial": _plugin_negative_binomial(history, days, rng, n),
            }
            observed = future["enrolled"].to_numpy(float)
            for method, samples in predictions.items():
                low, high = np.quantile(samples, [0.1, 0.9], axis=0)
                crps = crps_samples(samples, observed)
                pit = pit_coverage(samples, observed)
                for h in range(len(future)):
                    rows.append(
                        {
                            "log": name,
                            "origin": origin,
                            "month": future.index[h],
                            "months_ahead": h + 1,
                            "method": method,
                            "observed": observed[h],
                            "mean": samples[:, h].mean(),
                            "p10": low[h],
                            "p90": high[h],
                            "covered": bool(low[h] <= observed[h] <= high[h]),
                            "pit_covered": pit[h],
                            "crps": crps[h],
                        }
                    )
    return pd.DataFrame(rows)


def backtest_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Coverage of the 80% interval and mean CRPS per log and method (and overall)."""
    stats = {
        "forecasts": ("covered", "size"),
        "coverage_80": ("covered", "mean"),
        "pit_coverage_80": ("pit_covered", "mean"),
        "crps": ("crps", "mean"),
    }
    by_log = frame.groupby(["log", "method"]).agg(**stats)
    overall = frame.groupby("method").agg(**stats)
    overall.index = pd.MultiIndex.from_product([["all"], overall.index], names=["log", "method"])
    return pd.concat([by_log, overall]).reset_index()
