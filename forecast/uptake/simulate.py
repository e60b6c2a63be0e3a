"""Posterior prediction of uptake: the forecast's noise, conditioning on early sales, inputs.

Modelling choices:

* Means. :func:`~forecast.uptake.curves.mean_patients` is the one function giving the modelled
  patients of any set of periods (flows of every label plus ``backlog x dF``); the monthly
  forecast, the importance weights of ``condition_on`` and
  :func:`~forecast.uptake.model.observation_means` all call it, so what is weighed is what is
  forecast.
* Noise. Patients per month ~ Poisson(mean_t x G_t) with G_t a stationary gamma AR(1) factor
  over calendar months: G_t ~ Gamma(a, a) (mean 1, variance 1 / a) in every month and
  corr(G_s, G_t) = rho^|s - t|. It is built with a latent Poisson link (Pitt, Chatfield and
  Walker 2002): z_t | G_t ~ Poisson(c G_t), G_t+1 | z_t ~ Gamma(a + z_t, a + c) with
  c = a rho / (1 - rho); G_t ~ Gamma(a, a) then gives G_t+1 ~ Gamma(a, a) and
  E[G_t+1 | G_t] = 1 - rho + rho G_t. No month is special: December to January moves like any
  other pair of months, and a good quarter carries into the next ones, fading as rho^k.
* rho: consecutive quarters' mean factors correlate
  ``rho (1 + rho + rho^2)^2 / (3 + 4 rho + 2 rho^2)`` (:func:`quarter_correlation`), set to
  :data:`QUARTER_CORRELATION` = 0.5, so rho = 0.704 (:func:`monthly_autocorrelation`). The
  target is measured on the analogs (``forecast/reference/uptake``, 19 pairs of consecutive
  single quarters of one product, against the shipped posterior): log(observed / posterior
  mean patients) correlate 0.51 between consecutive quarters; per posterior draw, Pearson
  residuals (y - m) / sqrt(m + m^2 / phi) correlate 0.57 (P10-P90 0.44-0.68). With 19 pairs
  the sampling error of such a correlation is large (Fisher 95% interval about 0.07-0.78).
  Poisson noise lowers the correlation of counts below that of the factor, 0.5 being the
  limit for large counts: at the shipped posterior's median phi (47), 0.41 at 110 patients a
  quarter and 0.49 at 1,000 (a per-year factor gave 0.70 and 0.96 within a calendar year and
  0 across it).
* a: phi is fitted with every observed period NB(mean, phi). The forecast keeps that spread
  for a year: the mean factor of any 12 consecutive months has variance S(rho) / (144 a),
  ``S(rho) = sum_{i, j < 12} rho^|i - j| = 12 (1 + rho) / (1 - rho) - 2 rho (1 - rho^12) /
  (1 - rho)^2`` (:func:`year_sum_correlation`), set equal to 1 / phi, the variance of a
  per-year Gamma(phi, phi) factor: a = phi S(rho) / 144 = 0.369 phi
  (:func:`monthly_shape`). Twelve months of equal mean m then total mean 12 m and variance
  12 m + (12 m)^2 / phi, the fitted negative binomial, whether or not they form a calendar
  year. Shorter periods are wider than the fit's NB(phi): the excess variance of a quarter
  is ``(3 + 4 rho + 2 rho^2) / (9 a)`` = 2.05 / phi, of a month 1 / a = 2.71 / phi. The fit
  treats every observation as an independent NB(phi) at its own period length; no stationary
  process matches one phi at every period length. The forecast keeps the annual one: a
  year's total has the fitted spread, while months, and so the peak month of a year that
  capacity is sized on, spread wider than under one factor per calendar year.
* Conditioning. ``condition_on`` weights each draw by its likelihood of the observations
  under the same noise, marginal over the factor: each draw simulates
  :data:`PATHS_PER_DRAW` factor paths over the months the observations cover (from the
  first observed or forecast month), and its weight is the mean over paths of the Poisson
  likelihood of the observations (a lower bound y enters as P(Y >= y)), an unbiased
  estimate of its marginal likelihood. Draws are resampled by weight and each kept draw
  takes one of its paths in proportion to that path's likelihood, so every (draw, path)
  pair is drawn from the exact posterior as the number of draws grows (importance sampling
  with an unbiased likelihood estimate, pseudo-marginal: Andrieu and Roberts 2009). The
  forecast months continue the chosen path: a quarter above its mean raises the next
  quarters' factor, less and less. Few effective draws (importance ESS below 10% of the
  draws, :data:`MIN_ESS_SHARE`) raise an :class:`ImportanceWarning`: the forecast then
  repeats each kept draw ten times or more and its bands rest on a few curves. The refit
  path, :meth:`~forecast.uptake.model.UptakeModel.with_product`, fits the product as one more
  analog instead; use it once a product has about a year of its own quarterly sales or
  whenever the warning appears.

References
----------
Pitt, M. K., Chatfield, C. and Walker, S. G. (2002). Constructing first order stationary
autoregressive models via latent processes. Scandinavian Journal of Statistics 29(4),
657-663.

Andrieu, C. and Roberts, G. O. (2009). The pseudo-marginal approach for efficient Monte
Carlo computations. Annals of Statistics 37(2), 697-725.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.special import gammainc, gammaln, logsumexp

from capacity.distributions import Param
from forecast.draws import param_draws
from forecast.errors import InputError
from forecast.uptake.curves import mean_patients, months_since_origin

__all__ = [
    "MIN_ESS_SHARE",
    "PATHS_PER_DRAW",
    "QUARTER_CORRELATION",
    "ImportanceWarning",
    "expansion_months",
    "input_draws",
    "launch_months",
    "factor_paths",
    "monthly_autocorrelation",
    "monthly_patients",
    "monthly_shape",
    "observation_loglik",
    "quarter_correlation",
    "year_sum_correlation",
    "observation_pieces",
]

MIN_ESS_SHARE = 0.10  # importance ESS below this share of the draws: warn (module docstring)
QUARTER_CORRELATION = 0.5  # consecutive quarters' mean factors (module docstring: measured)
PATHS_PER_DRAW = 64  # factor paths per draw through the observed months (conditioning)


class ImportanceWarning(UserWarning):
    """Conditioning on early observations left few effective draws (module docstring)."""


def quarter_correlation(rho):
    """Correlation of two consecutive quarters' mean factors, months at autocorrelation rho.

    With corr(G_s, G_t) = rho^|s - t| and equal variances, the covariance of the sums of months
    0-2 and 3-5 is ``rho + 2 rho^2 + 3 rho^3 + 2 rho^4 + rho^5 = rho (1 + rho + rho^2)^2`` and
    each sum's variance ``3 + 4 rho + 2 rho^2`` (times the monthly variance).
    """
    rho = np.asarray(rho, float)
    return rho * (1 + rho + rho**2) ** 2 / (3 + 4 * rho + 2 * rho**2)


def monthly_autocorrelation(quarter_corr: float = QUARTER_CORRELATION) -> float:
    """The lag-one autocorrelation rho of the monthly factor whose consecutive quarters
    correlate ``quarter_corr``: the root in [0, 1) of
    ``rho (1 + rho + rho^2)^2 = quarter_corr (3 + 4 rho + 2 rho^2)`` (increasing in rho from
    0 at rho = 0 to 1 at rho = 1, so the root is unique)."""
    if not 0.0 <= quarter_corr < 1.0:
        raise InputError(f"quarter correlation must be in [0, 1), got {quarter_corr}")
    # rho (1 + rho + rho^2)^2 = rho^5 + 2 rho^4 + 3 rho^3 + 2 rho^2 + rho
    poly = np.array([1.0, 2.0, 3.0, 2.0 - 2.0 * quarter_corr, 1.0 - 4.0 * quarter_corr])
    poly = np.append(poly, -3.0 * quarter_corr)
    roots = np.roots(poly)
    real = roots[(np.abs(roots.imag) < 1e-9) & (roots.real >= -1e-12) & (roots.real < 1.0)]
    return max(float(real.real.min()), 0.0)


def year_sum_correlation(rho) -> np.ndarray:
    """S(rho) = sum over months i, j < 12 of rho^|i - j|, closed form::

        S = 12 (1 + rho) / (1 - rho) - 2 rho (1 - rho^12) / (1 - rho)^2,   0 <= rho < 1

    The mean factor of 12 consecutive months has variance S(rho) / 144 times a month's.
    """
    rho = np.asarray(rho, float)
    return 12 * (1 + rho) / (1 - rho) - 2 * rho * (1 - rho**12) / (1 - rho) ** 2


def monthly_shape(phi, rho) -> np.ndarray:
    """Shape a of the monthly factor Gamma(a, a) whose 12-month mean has variance 1 / phi,
    the fitted per-year excess variance: ``S(rho) / (144 a) = 1 / phi``, so
    ``a = phi S(rho) / 144`` (:func:`year_sum_correlation`)."""
    return np.asarray(phi, float) * year_sum_correlation(rho) / 144.0


def factor_paths(shape, rho: float, n_months: int, rng, last=None) -> np.ndarray:
    """Paths (``shape``'s shape, month) of the stationary gamma AR(1) factor (module docstring).

    ``shape``: a per path (an array); ``last``: the factor of the month before the first (the
    path continues from it), or None to start from the stationary Gamma(a, a).
    """
    a = np.asarray(shape, float)
    c = a * rho / (1.0 - rho)
    out = np.empty(a.shape + (n_months,))
    if n_months == 0:
        return out
    g = rng.gamma(a, 1.0 / a) if last is None else _step(a, c, np.asarray(last, float), rng)
    out[..., 0] = g
    for t in range(1, n_months):
        g = _step(a, c, g, rng)
        out[..., t] = g
    return out


def _step(a, c, g, rng):
    """One month of the chain: z ~ Poisson(c g), next ~ Gamma(a + z, rate a + c)."""
    z = rng.poisson(c * g)
    return rng.gamma(a + z, 1.0 / (a + c))


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


def observation_loglik(obs: pd.DataFrame, lam: np.ndarray) -> np.ndarray:
    """log p(observations | Poisson means) summed over observations.

    ``lam`` (..., observation): each observation's Poisson mean, the modelled patients of its
    periods times the factor of their months. An exact observation enters as its Poisson
    probability, a lower bound ``y`` as P(Y >= y) = P(y, lam), the regularised lower
    incomplete gamma function.
    """
    y = np.round(obs["patients"].to_numpy(float))
    lower = obs["lower_bound"].to_numpy(bool)
    lam = np.maximum(np.nan_to_num(np.asarray(lam, float)), 1e-6)
    exact = np.where(lower, 0.0, y * np.log(lam) - lam - gammaln(y + 1))
    with np.errstate(divide="ignore"):
        bound = np.where(lower & (y >= 1), np.log(gammainc(np.maximum(y, 1), lam)), 0.0)
    return (exact + bound).sum(axis=-1)


def _month_overlaps(t0, t1, edges):
    """(period, month) pairs that overlap and the overlap's start and end (months since
    origin), for periods [t0, t1) and months [edges[w], edges[w + 1])."""
    lo = np.maximum(t0[:, None], edges[None, :-1])
    hi = np.minimum(t1[:, None], edges[None, 1:])
    piece, month = np.nonzero(hi > lo)
    return piece, month, lo[piece, month], hi[piece, month]


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
    """Patients per month (draw, month) around the Bass means, with the monthly AR(1) factor.

    ``months``: the first days of the forecast months and of the month after the last;
    ``seg_t``, ``flows``, ``launch_t``, ``backlog`` as in
    :func:`~forecast.uptake.curves.mean_patients`; ``p_year``, ``q_year``, ``phi`` (draw,).
    With ``observations`` (of ``product`` alone) the draws are reweighted by their likelihood
    and resampled together with a factor path through the observed months, which the
    forecast months continue (module docstring). Returns the counts, the input draw behind
    each output draw (``slice(None)``: each its own) and the importance effective sample size
    (None without observations).
    """
    draws = len(phi)
    edges = months_since_origin(months)
    p_m, q_m = p_year / 12.0, q_year / 12.0
    mean = mean_patients(edges[:-1], edges[1:], seg_t, flows, launch_t, backlog, p_m, q_m)
    rho = monthly_autocorrelation()
    shape = monthly_shape(phi, rho)
    n_months = len(months) - 1
    if observations is None:
        factor = factor_paths(shape, rho, n_months, rng)
        return rng.poisson(mean * factor), slice(None), None
    # the factor's months run from the first observed (or forecast) month to the last
    t0, t1, onehot = observation_pieces(observations)
    first = min(
        min(min(r) for r in observations["starts"]).to_period("M").to_timestamp(), months[0]
    )
    last_day = max(max(r) for r in observations["ends"]) - pd.Timedelta(days=1)
    window = pd.date_range(first, last_day.to_period("M").to_timestamp(), freq="MS")
    window = window.append(pd.DatetimeIndex([window[-1] + pd.offsets.MonthBegin(1)]))
    piece, month, lo, hi = _month_overlaps(t0, t1, months_since_origin(window))
    piece_mean = mean_patients(lo, hi, seg_t, flows, launch_t, backlog, p_m, q_m)
    paths = factor_paths(
        np.repeat(shape[:, None], PATHS_PER_DRAW, axis=1), rho, len(window) - 1, rng
    )
    loglik = np.empty(paths.shape[:2])  # (draw, path), in blocks of draws to bound memory
    for b in range(0, draws, 256):
        blk = slice(b, b + 256)
        lam = (piece_mean[blk, None, :] * paths[blk][:, :, month]) @ onehot[piece]
        loglik[blk] = observation_loglik(observations, lam)
    with np.errstate(divide="ignore"):
        logw = logsumexp(loglik, axis=1) - np.log(PATHS_PER_DRAW)
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
    # one path of each kept draw, in proportion to its likelihood
    own = loglik[idx]
    with np.errstate(invalid="ignore"):
        cdf = np.cumsum(np.exp(own - own.max(axis=1, keepdims=True)), axis=1)
    u = rng.random(draws) * cdf[:, -1]
    k = np.minimum((cdf < u[:, None]).sum(axis=1), PATHS_PER_DRAW - 1)
    path = paths[idx, k]
    mean, shape = mean[idx], shape[idx]
    offset = len(pd.date_range(first, months[0], freq="MS")) - 1  # forecast's first month
    more = max(offset + n_months - path.shape[1], 0)
    path = np.concatenate([path, factor_paths(shape, rho, more, rng, last=path[:, -1])], axis=1)
    return rng.poisson(mean * path[:, offset : offset + n_months]), idx, ess
