"""Posterior prediction of uptake: the forecast's noise, conditioning on early sales, inputs.

Modelling choices:

* Means. :func:`~forecast.uptake.curves.mean_patients` is the one function giving the modelled
  patients of any set of periods (flows of every label plus ``backlog x dF``); the monthly
  forecast, the importance weights of ``condition_on`` and
  :func:`~forecast.uptake.model.observation_means` all call it, so what is weighed is what is
  forecast.
* Noise. phi is fitted on totals of quarters, half-years, nine months and years, each
  NB(mean, phi): an excess variance of mean^2 / phi *whatever the period length*. Independent
  monthly NB draws would give a year only a twelfth of that (phi = 20, 1,200 patients a year:
  an SD of 85 instead of 270). The forecast therefore draws one factor
  G_y ~ Gamma(phi, phi) per calendar year, shared by the months of that year, and patients per
  month ~ Poisson(mean x G_y). Every period inside one calendar year (a month, a quarter,
  H1, 9M, the year: every period the fit sees) then totals NB(mean, phi) exactly. Stated
  correlation: the months of one calendar year share their factor (a good year is good
  throughout), calendar years are independent. The fit treats observations of one year as
  independent; no noise model matches one phi at every period length with that
  independence, and the bands planners read are monthly, quarterly and annual totals.
* Conditioning. ``condition_on`` weights each draw by the likelihood of the observations
  under the same noise: exact observations within one calendar year share G_y (jointly
  negative multinomial), and that year's factor is then drawn from its posterior
  Gamma(phi + observed, phi + modelled); lower bounds and observations spanning two years
  count as independent NB and leave the factors alone. The weights are then resampled. Few
  effective draws (importance ESS below 10% of the draws, :data:`MIN_ESS_SHARE`) raise an
  :class:`ImportanceWarning`: the forecast then repeats each kept draw ten times or more and
  its bands rest on a few curves. The refit path,
  :meth:`~forecast.uptake.model.UptakeModel.with_product`, fits the product as one more analog
  instead; use it once a product has about a year of its own quarterly sales or whenever the
  warning appears.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.special import gammaln

from capacity.distributions import Param
from forecast.draws import param_draws
from forecast.errors import InputError
from forecast.uptake.curves import mean_patients, months_since_origin

__all__ = [
    "MIN_ESS_SHARE",
    "ImportanceWarning",
    "expansion_months",
    "input_draws",
    "launch_months",
    "monthly_patients",
    "observation_loglik",
    "observation_pieces",
]

MIN_ESS_SHARE = 0.10  # importance ESS below this share of the draws: warn (module docstring)


class ImportanceWarning(UserWarning):
    """Conditioning on early observations left few effective draws (module docstring)."""


def observation_pieces(obs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start and end (months since origin) of every period of every observation, and the
    observation each belongs to (one-hot, period x observation)."""
    t0, t1, owner = [], [], []
    for i, row in enumerate(obs.itertuples()):
        for start, end in zip(row.starts, row.ends, strict=True):
            a, b = months_since_origin([start, end])
            t0.append(a)
            t1.append(b)
            owner.append(i)
    onehot = np.zeros((len(owner), len(obs)))
    onehot[np.arange(len(owner)), owner] = 1.0
    return np.array(t0), np.array(t1), onehot


def _calendar_years(obs: pd.DataFrame) -> np.ndarray:
    """The calendar year all periods of an observation fall in (-1 if they span years)."""
    out = []
    for row in obs.itertuples():
        years = {pd.Timestamp(s).year for s in row.starts}
        years |= {(pd.Timestamp(e) - pd.Timedelta(days=1)).year for e in row.ends}
        out.append(years.pop() if len(years) == 1 else -1)
    return np.array(out, int)


def observation_loglik(obs: pd.DataFrame, means: np.ndarray, phi: np.ndarray):
    """log p(observations | means, phi) per draw under the forecast's noise.

    ``means`` (draw, observation). Exact observations within one calendar year share that
    year's factor G ~ Gamma(phi, phi): jointly negative multinomial; returns also, per such
    year, ``(Y, M)`` (observed and modelled totals, M per draw), so the year's factor given the
    observations is Gamma(phi + Y, phi + M). Lower bounds and observations spanning two years
    enter as independent negative binomials and leave the factors alone.
    """
    y = np.round(obs["patients"].to_numpy(float))
    lower = obs["lower_bound"].to_numpy(bool)
    years = _calendar_years(obs)
    means = np.maximum(np.nan_to_num(means), 1e-6)
    phi = np.asarray(phi, float)
    logp = np.zeros(means.shape[0])
    factors: dict[int, tuple[float, np.ndarray]] = {}
    exact = ~lower & (years >= 0)
    for year in np.unique(years[exact]):
        k = exact & (years == year)
        total, m = float(y[k].sum()), means[:, k].sum(axis=1)
        logp += (
            gammaln(phi + total)
            - gammaln(phi)
            + phi * np.log(phi)
            - (phi + total) * np.log(phi + m)
            + (y[k] * np.log(means[:, k])).sum(axis=1)
            - gammaln(y[k] + 1).sum()
        )
        factors[int(year)] = (total, m)
    inexact = np.flatnonzero(~exact)
    if len(inexact):  # scipy.stats is slow to import (forecast._dist): only when needed
        from scipy import stats
    for i in inexact:
        prob = phi / (phi + means[:, i])
        if lower[i]:
            logp += stats.nbinom.logsf(y[i] - 1, phi, prob)
        else:
            logp += stats.nbinom.logpmf(y[i], phi, prob)
    return logp, factors


def input_draws(value, n, rng) -> np.ndarray:
    """``n`` draws of a forecast input: a number, a ``(low, high)`` uniform range, a
    distribution table such as ``{"beta": [a, b]}``, or draws (repeated to ``n``)."""
    if isinstance(value, tuple) and len(value) == 2:
        return rng.uniform(value[0], value[1], n)
    if isinstance(value, dict | Param):  # a distribution table such as {"beta": [a, b]}
        return param_draws(value, n, rng, "uptake input")
    arr = np.asarray(value, float)
    if arr.ndim == 0:
        # a number takes its uniforms too, so the inputs drawn after it keep their draws
        # when a sensitivity swing fixes this one (common random numbers)
        return param_draws(float(arr), n, rng, "uptake input")
    return np.resize(arr, n)


def expansion_months(when, launch_t: np.ndarray, shift: float) -> np.ndarray:
    """Months since origin an expansion starts per draw: never before launch, inf if the
    product never launches. ``when``: a date, or a number of months after launch."""
    if isinstance(when, int | float | np.integer | np.floating) and not isinstance(when, bool):
        if when < 0:
            raise InputError(f"expansion: months after launch must be >= 0, got {when}")
        return launch_t + float(when)
    try:
        t = months_since_origin([pd.Timestamp(when)])[0] + shift
    except (TypeError, ValueError):
        raise InputError(
            f"expansion: expected a date or months after launch, got {when!r}"
        ) from None
    return np.maximum(t, launch_t)


def launch_months(launch, n) -> np.ndarray:
    """Months since origin of the launch per draw from one date or one per draw (NaT: never,
    inf)."""
    if np.ndim(launch) == 0 and not isinstance(launch, (list, tuple, np.ndarray, pd.Index)):
        ts = pd.Timestamp(launch)
        return np.full(n, months_since_origin([ts])[0])
    values = pd.DatetimeIndex(pd.to_datetime(np.asarray(launch)))
    if len(values) != n:
        raise InputError(f"forecast: {len(values)} launch months for {n} draws")
    out = np.full(n, np.inf)
    ok = ~values.isna()
    out[ok] = months_since_origin(values[ok])
    return out


def monthly_patients(
    months: pd.DatetimeIndex,
    seg_t: np.ndarray,
    flows: np.ndarray,
    launch_t: np.ndarray,
    backlog: float,
    p_year: np.ndarray,
    q_year: np.ndarray,
    phi: np.ndarray,
    rng: np.random.Generator,
    *,
    observations: pd.DataFrame | None = None,
    product: str = "",
) -> tuple[np.ndarray, np.ndarray | slice, float | None]:
    """Patients per month (draw, month) around the Bass means, with the yearly gamma noise.

    ``months``: the first days of the forecast months and of the month after the last;
    ``seg_t``, ``flows``, ``launch_t``, ``backlog`` as in
    :func:`~forecast.uptake.curves.mean_patients`; ``p_year``, ``q_year``, ``phi`` (draw,).
    With ``observations`` (of ``product`` alone) the draws are reweighted by their likelihood
    and resampled, and the factors of the observed calendar years drawn given them (module
    docstring). Returns the counts, the input draw behind each output draw (``slice(None)``:
    each its own) and the importance effective sample size (None without observations).
    """
    draws = len(phi)
    edges = months_since_origin(months)
    p_m, q_m = p_year / 12.0, q_year / 12.0
    mean = mean_patients(edges[:-1], edges[1:], seg_t, flows, launch_t, backlog, p_m, q_m)
    # noise: one gamma factor per calendar year, shared by its months (module docstring)
    years, year_of_month = np.unique(months[:-1].year, return_inverse=True)
    shape = np.repeat(phi[:, None], len(years), axis=1)
    rate = shape.copy()
    idx = slice(None)
    ess = None
    if observations is not None:
        t0, t1, onehot = observation_pieces(observations)
        obs_mean = mean_patients(t0, t1, seg_t, flows, launch_t, backlog, p_m, q_m) @ onehot
        logw, factors = observation_loglik(observations, obs_mean, phi)
        if not np.isfinite(logw).any():
            raise InputError(
                f"condition_on: no draw of {product!r} can produce these observations "
                "(patients before launch?)"
            )
        w = np.exp(logw - logw.max())
        w = np.where(np.isfinite(w), w, 0.0)
        ess = float(w.sum() ** 2 / (w**2).sum())
        if ess < MIN_ESS_SHARE * draws:
            warnings.warn(
                f"{product}: importance ESS {ess:.0f} of {draws} draws "
                f"({ess / draws:.1%}, below {MIN_ESS_SHARE:.0%}): the conditioned forecast "
                "rests on a few distinct draws; refit with the product as one more analog "
                "(UptakeModel.with_product)",
                ImportanceWarning,
                stacklevel=3,  # the caller of UptakeModel.forecast
            )
        idx = rng.choice(draws, size=draws, p=w / w.sum())
        mean, phi, shape, rate = mean[idx], phi[idx], shape[idx], rate[idx]
        for year, (total, m) in factors.items():
            if year in years:  # this year's factor given its observations
                k = int(np.searchsorted(years, year))
                shape[:, k] = phi + total
                rate[:, k] = phi + m[idx]
    factor = rng.gamma(shape, 1.0 / rate)
    counts = rng.poisson(mean * factor[:, year_of_month])
    return counts, idx, ess
