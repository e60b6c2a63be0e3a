"""Bass adoption curves of a flow of eligible patients (pure NumPy, months or years).

Bass cumulative adoption, read as the share of treating centres that have adopted::

    F(t) = (1 - exp(-(p + q) t)) / (1 + (q / p) exp(-(p + q) t)),   t >= 0

Patients treated in [t0, t1) from a constant eligible flow ``f`` (patients/month) that adopts
with peak share ``s`` from launch L are ``f s (G(t1 - L) - G(t0 - L))`` with the exact integral
``G(T) = T - ln((1 + q/p) / (1 + (q/p) exp(-(p + q) T))) / q`` (0 for T <= 0), so monthly
increments add up to quarterly ones exactly. A label expansion is a second flow with its own
curve from its own date; a backlog B at launch adds ``B (F(t1 - L) - F(t0 - L))``. p and q are
stated per year and converted exactly: F(t years; p, q) = F(12 t months; p / 12, q / 12).

References
----------
Bass, F. M. (1969). A new product growth for model consumer durables. Management Science
15(5), 215-227.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "DAYS_PER_MONTH",
    "ORIGIN",
    "bass_cdf",
    "bass_integral",
    "mean_patients",
    "months_since_origin",
    "period_patients",
    "pt_bass_integral",
    "time_to_peak_years",
    "yearly_to_monthly",
]

ORIGIN = pd.Timestamp("2015-01-01")  # time zero of the months the model counts
DAYS_PER_MONTH = 365.25 / 12


def bass_cdf(t, p, q):
    """Bass cumulative adoption F(t) (0 for t <= 0); t in the units of 1 / p."""
    t = np.maximum(np.asarray(t, float), 0.0)
    e = np.exp(-(p + q) * t)
    return (1 - e) / (1 + (q / p) * e)


def bass_integral(t, p, q):
    """G(T) = integral of F over [0, T] (0 for T <= 0), exact."""
    t = np.maximum(np.asarray(t, float), 0.0)
    c = q / p
    return t - np.log((1 + c) / (1 + c * np.exp(-(p + q) * t))) / q


def period_patients(t0, t1, launch, flow, share, p, q, backlog=0.0):
    """Patients treated in [t0, t1) (months) from a flow adopting from ``launch``."""
    steady = flow * share * (bass_integral(t1 - launch, p, q) - bass_integral(t0 - launch, p, q))
    return steady + backlog * (bass_cdf(t1 - launch, p, q) - bass_cdf(t0 - launch, p, q))


def yearly_to_monthly(p_year, q_year):
    """Exact: F(t years; p, q) = F(12 t months; p / 12, q / 12)."""
    return np.asarray(p_year) / 12.0, np.asarray(q_year) / 12.0


def time_to_peak_years(p_year, q_year):
    """Years until the adoption rate F'(t) peaks: ln(q / p) / (p + q) (0 if q <= p)."""
    p_year, q_year = np.asarray(p_year), np.asarray(q_year)
    return np.where(
        q_year > p_year, np.log(q_year / np.maximum(p_year, 1e-12)) / (p_year + q_year), 0.0
    )


def pt_bass_integral(t, p, q):
    """:func:`bass_integral` in PyTensor, for the model's likelihood."""
    import pytensor.tensor as pt

    t = pt.maximum(t, 0.0)
    c = q / p
    return t - pt.log((1 + c) / (1 + c * pt.exp(-(p + q) * t))) / q


def months_since_origin(dates) -> np.ndarray:
    """Months (of 365.25 / 12 days) from :data:`ORIGIN` to each date."""
    return ((pd.DatetimeIndex(pd.to_datetime(dates)) - ORIGIN).days / DAYS_PER_MONTH).to_numpy(
        float
    )


def mean_patients(t0, t1, seg_t, flows, launch_t, backlog, p_m, q_m) -> np.ndarray:
    """Modelled mean patients (draw, period) treated in [t0, t1) (months since origin).

    The one function the forecast's means come from: the monthly forecast and the importance
    weights of observations both call it. ``seg_t`` (draw, segment): month each label's flow
    starts adopting (inf: never); ``flows`` (draw, segment): patients/month at full adoption
    of that label; ``backlog`` adopts from ``launch_t`` (draw,); ``p_m``, ``q_m`` (draw,)
    per month.
    """
    t0 = np.asarray(t0, float)[None, :]
    t1 = np.asarray(t1, float)[None, :]
    p, q = np.asarray(p_m, float)[:, None], np.asarray(q_m, float)[:, None]
    mean = np.zeros((p.shape[0], t0.shape[1]))
    for j in range(seg_t.shape[1]):  # a base label and a few expansions
        s = seg_t[:, j : j + 1]
        inc = bass_integral(t1 - s, p, q) - bass_integral(t0 - s, p, q)
        mean += flows[:, j : j + 1] * np.where(np.isfinite(inc), inc, 0.0)
    if backlog:
        s = np.asarray(launch_t, float)[:, None]
        inc = bass_cdf(t1 - s, p, q) - bass_cdf(t0 - s, p, q)
        mean += backlog * np.where(np.isfinite(inc), inc, 0.0)
    return np.maximum(mean, 0.0)
