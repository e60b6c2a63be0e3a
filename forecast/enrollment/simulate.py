"""Posterior prediction of enrollment: site rates, site activation, future exposure.

Sites not yet open (modelling choices, stated):

* Activation: planned date + delay, delay ~ Normal(m, s) with a normal-inverse-gamma prior
  (mean 60 days, sd 60 days, worth 2 sites; an assumption); a site never opens with
  probability ``p_never`` (Beta prior, default Beta(1, 9): 10%, an assumption). Sites with a
  planned and an actual activation are observed delays and planned sites that opened. A
  pending site is censored: it never opens, or its delay exceeds the days elapsed since its
  plan. The posterior of (p_never, m, s) and of each pending site's fate uses all three
  kinds of evidence (data augmentation, :func:`activation_draws`), so a site long
  overdue while the others opened within weeks almost surely never opens, and p_never
  learns from it. Sites cancelled and dropped from the sites table would bias p_never low:
  keep them, pending, with their planned date.
* Rates: never the prior when data exist. With several open sites a new site's rate is
  Gamma(alpha, alpha / mu_c) with mu_c its own country's posterior mean rate (a country
  without open sites draws its effect from the population of countries, so its mean is
  mu exp(sigma_country^2 / 2), not the median mu); with one open site the new site's rate
  is Gamma(alpha, alpha / lambda_open) centred on that draw's rate of the open site, alpha
  from the hierarchical model's prior LogNormal(log 2, 1) (one site says nothing about the
  spread between sites).
* Exposure: declared pauses, the ramp-up and a planned ``closed_on`` apply to them as to open
  sites; they are not capped. ``closed_on`` is the first day a site no longer recruits, in
  the fit and in the forecast alike.

Times are continuous days after the end of ``as_of``: day d after it covers [d - 1, d).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from forecast._dist import norm_isf, norm_sf
from forecast.enrollment.data import EnrollmentData, ramp_integral, sum_by_month
from forecast.errors import InputError

__all__ = [
    "ALPHA_PRIOR",
    "activation_draws",
    "enrolled_per_month",
    "forecast_window",
    "future_exposure",
    "month_spans",
    "new_site_rates",
    "observed_target_day",
    "site_rates",
]

ALPHA_PRIOR = (np.log(2.0), 1.0)  # LogNormal prior of the between-site gamma shape alpha


def planning_prior(n: float, duration_days: float, confidence: float) -> tuple[float, float]:
    """Gamma(shape, rate per day) of 'n patients in T days, P confident' (Gajewski 2008).

    Shape nP and rate TP: P near 0 carries no information, P = 1 as much as n observed
    patients would. ``accrual`` states T in months or weeks: multiply by the days in one.
    """
    if not (n > 0 and duration_days > 0 and 0 < confidence <= 1):
        raise InputError("planning prior: need n > 0, T > 0 and 0 < P <= 1")
    return n * confidence, duration_days * confidence


def forecast_window(
    as_of: pd.Timestamp, horizon_months: int, until=None
) -> tuple[pd.Timestamp, pd.DatetimeIndex, pd.Timestamp]:
    """First day, months (first days) and last day of a forecast after ``as_of``: to
    ``until`` (inclusive) if given, else ``horizon_months`` whole months."""
    first_day = as_of + pd.Timedelta(days=1)
    start_month = first_day.to_period("M").to_timestamp()
    if until is not None:
        end_day = pd.Timestamp(until)
        if end_day <= as_of:
            raise InputError(f"until {end_day.date()} must be after as_of {as_of.date()}")
        months = pd.date_range(start_month, end_day.to_period("M").to_timestamp(), freq="MS")
    else:
        if horizon_months < 1:
            raise InputError("horizon_months must be >= 1")
        months = pd.date_range(start_month, periods=horizon_months, freq="MS")
        end_day = months[-1] + pd.offsets.MonthEnd(0)
    return first_day, months, end_day


def site_rates(
    data: EnrollmentData,
    post: dict[str, np.ndarray],
    fitted_countries: Sequence[str],
    single_site_prior: tuple[float, float],
    rng: np.random.Generator,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Per draw: rates (draw, open site) of the open sites from their conjugate posterior, and
    the population new sites draw their rates from (see :func:`new_site_rates`).

    ``post``: flattened posterior draws; ``fitted_countries``: the ``country`` coordinate of
    the hierarchical fit; ``single_site_prior``: the Gamma(shape, rate per day) of a single
    site's rate.
    """
    opened = ~data.sites["activated_on"].isna().to_numpy()
    counts, exposure = data.counts[opened], data.exposure[opened]
    if "site_rate" in post:  # closed form, one site
        lam = post["site_rate"][:, None]
        return lam, {"single": lam[:, 0]}
    eps = (
        post["eps"] if "eps" in post else np.ones((len(next(iter(post.values()))), counts.shape[1]))
    )
    n = len(eps)
    if "alpha" in post:
        alpha = post["alpha"]
        names = list(fitted_countries)
        countries = data.sites.loc[opened, "country"].to_numpy()
        idx = np.array([names.index(c) for c in countries])
        beta = alpha[:, None] / post["mu_country"][:, idx]
    else:  # one site with a calendar effect: its rate has the fixed single-site prior
        a, b = single_site_prior
        alpha = np.full(n, a)
        beta = np.full((n, 1), b)
    shape = alpha[:, None] + counts.sum(axis=1)[None, :]
    rate = beta + (eps[:, None, :] * exposure[None, :, :]).sum(axis=2)
    lam = rng.gamma(shape, 1.0 / rate)
    if "alpha" not in post:
        return lam, {"single": lam[:, 0]}
    return lam, {
        "alpha": alpha,
        "names": names,
        "mu_country": post["mu_country"],
        "log_mu": np.log(post["mu"]),
        "sigma_country": post.get("sigma_country"),
    }


def new_site_rates(population: dict[str, Any], countries: Sequence[str], rng) -> np.ndarray:
    """Rates (draw, site) of sites not open yet, from the population the data inform.

    Hierarchical fit: Gamma(alpha, alpha / mu_c) with mu_c the site's own country's mean
    rate; a country without open sites draws its effect from the population of countries
    (log mu + sigma_country z), or takes mu when one country was fitted. One open site:
    Gamma(alpha, alpha / lambda_open), centred on that draw's rate of the open site, with
    alpha from the prior the hierarchical model gives it (LogNormal(log 2, 1)): one site
    says nothing about the spread between sites.
    """
    countries = list(countries)
    if "single" in population:
        lam = population["single"]
        alpha = np.exp(rng.normal(*ALPHA_PRIOR, size=len(lam)))
        mean = np.repeat(lam[:, None], len(countries), axis=1)
    else:
        alpha = population["alpha"]
        names = population["names"]
        mu_c, log_mu = population["mu_country"], population["log_mu"]
        sigma = population["sigma_country"]
        mean = np.empty((len(log_mu), len(countries)))
        for j, country in enumerate(countries):
            if country in names:
                mean[:, j] = mu_c[:, names.index(country)]
            elif sigma is not None:
                mean[:, j] = np.exp(log_mu + sigma * rng.standard_normal(len(log_mu)))
            else:
                mean[:, j] = np.exp(log_mu)
    return rng.gamma(alpha[:, None], mean / alpha[:, None])


def activation_draws(
    sites: pd.DataFrame,
    as_of: pd.Timestamp,
    p_never: tuple[float, float],
    n_draws: int,
    rng,
    sweeps: int = 25,
) -> dict[str, np.ndarray]:
    """Posterior draws of the activation model given every site's history.

    Returns ``p_never``, ``mu`` and ``sd`` of the delay (draw,) and ``start`` (draw,
    pending site): the day after ``as_of`` each site not open yet opens (inf: never).

    Sites with a planned and an actual activation give observed delays and are planned
    sites that opened. A pending site is censored: as of ``as_of`` it either never opens
    (probability p_never) or its delay exceeds the days elapsed since its plan, so the
    longer it is overdue, the likelier 'never' and the longer the delay. The joint
    posterior is sampled by data augmentation (per draw: whether each pending site never
    opens, and the delays of those that will, then p_never ~ Beta and (mu, sd) from the
    normal-inverse-gamma prior updated with observed and augmented delays), ``sweeps``
    Gibbs sweeps per draw, vectorised over draws, from the posterior without censoring.
    """
    both = sites["activated_on"].notna() & sites["planned_activation"].notna()
    d = (sites.loc[both, "activated_on"] - sites.loc[both, "planned_activation"]).dt.days
    d = d.to_numpy(float)
    pending = sites["activated_on"].isna().to_numpy()
    elapsed = (as_of - sites.loc[pending, "planned_activation"]).dt.days.to_numpy(float)
    m0, k0, a0, b0 = 60.0, 2.0, 2.0, 3600.0  # prior: mean 60 d, sd about 60 d, 2 sites' worth
    a_never, b_never = p_never

    def delay_params(n_aug, s_aug, ss_aug):
        n = len(d) + n_aug
        total, squares = d.sum() + s_aug, (d**2).sum() + ss_aug
        mean = np.where(n > 0, total / np.maximum(n, 1), 0.0)
        kn, an = k0 + n, a0 + n / 2
        mn = (k0 * m0 + total) / kn
        bn = b0 + 0.5 * (squares - n * mean**2) + k0 * n * (mean - m0) ** 2 / (2 * kn)
        var = bn / rng.gamma(an, 1.0, size=n_draws)  # inverse gamma
        return rng.normal(mn, np.sqrt(var / kn)), np.sqrt(var)

    zeros = np.zeros(n_draws)
    mu, sd = delay_params(zeros, zeros, zeros)
    p_never = rng.beta(a_never, b_never + len(d), size=n_draws)
    never = np.zeros((n_draws, len(elapsed)), bool)
    delay = np.zeros((n_draws, len(elapsed)))
    for sweep in range(sweeps if len(elapsed) else 0):
        # pending sites given the parameters: never, or a delay beyond the days elapsed
        z = (elapsed[None, :] - mu[:, None]) / sd[:, None]
        still = norm_sf(z)  # P(delay > elapsed)
        prob = p_never[:, None] / (p_never[:, None] + (1 - p_never[:, None]) * still)
        never = rng.random(prob.shape) < prob
        u = rng.random(prob.shape)
        delay = mu[:, None] + sd[:, None] * norm_isf(np.maximum(u * still, 1e-300))
        if sweep == sweeps - 1:
            break
        # the parameters given the pending sites' states
        opens = ~never
        n_aug = opens.sum(axis=1)
        p_never = rng.beta(a_never + never.sum(axis=1), b_never + len(d) + n_aug)
        mu, sd = delay_params(n_aug, (delay * opens).sum(axis=1), (delay**2 * opens).sum(axis=1))
    planned = (sites.loc[pending, "planned_activation"] - as_of).dt.days.to_numpy(float)
    start = np.maximum(planned[None, :] + delay, 0.0)
    return {
        "p_never": p_never,
        "mu": mu,
        "sd": sd,
        "start": np.where(never, np.inf, start),
    }


def future_exposure(
    start: np.ndarray,
    closed: np.ndarray,
    bounds: np.ndarray,
    as_of: pd.Timestamp,
    pauses: Sequence[tuple[str, str]],
    ramp_days: float,
) -> np.ndarray:
    """Weighted open days (draw, site, period) of sites opening on continuous day
    ``start`` (draw, site; days after the end of ``as_of``, inf: never) and closing at
    ``closed`` (site,; inf: never), in periods [bounds[k], bounds[k + 1]): the ramp-up,
    closure and the declared pauses applied exactly."""
    lo, hi = bounds[0], bounds[-1]
    cuts = [bounds]
    for p_start, p_end in pauses:
        a = (pd.Timestamp(p_start) - as_of).days - 1.0  # day d covers [t - 1, t)
        b = float((pd.Timestamp(p_end) - as_of).days)
        cuts.append(np.clip([a, b], lo, hi))
    grid = np.unique(np.concatenate(cuts))
    mid = (grid[:-1] + grid[1:]) / 2
    paused = np.zeros(len(mid), bool)
    for p_start, p_end in pauses:
        a = (pd.Timestamp(p_start) - as_of).days - 1.0
        b = float((pd.Timestamp(p_end) - as_of).days)
        paused |= (mid > a) & (mid < b)
    until = np.minimum(grid[None, None, :], closed[None, :, None])
    cum = ramp_integral(until - start[:, :, None], ramp_days)
    pieces = np.where(paused, 0.0, np.diff(cum, axis=2))
    pieces = np.where(np.isfinite(pieces), pieces, 0.0)
    first = np.searchsorted(grid, bounds[:-1])
    return np.add.reduceat(pieces, first, axis=2) if len(mid) else pieces


def enrolled_per_month(
    data: EnrollmentData,
    months: pd.DatetimeIndex,
    first_day: pd.Timestamp,
    end_day: pd.Timestamp,
    lam_open: np.ndarray,
    population: dict[str, Any],
    post: dict[str, np.ndarray],
    rng: np.random.Generator,
    *,
    ramp_days: float,
    pauses: Sequence[tuple[str, str]],
    p_never: tuple[float, float],
) -> np.ndarray:
    """Patients enrolled (draw, month) from ``first_day`` to ``end_day``, before any target.

    Open sites enroll Poisson(rate x exposure x month factors), each stopping at its ``cap``;
    sites not open yet open per draw (:func:`activation_draws`) with rates from
    ``population`` (:func:`new_site_rates`). The month factors are shared by every site: the
    share of open days of a past month drawn at random (when pauses made it vary) and the
    calendar effect of ``post`` (if fitted).
    """
    as_of = data.as_of
    n_draws = lam_open.shape[0]
    # future exposure of open sites, daily (pauses and ramp exact)
    days = pd.date_range(first_day, end_day, freq="D")
    sites = data.sites
    opened = ~sites["activated_on"].isna().to_numpy()
    t = (days - as_of).days.to_numpy(float)[None, :]  # 1, 2, ...
    # continuous time in days after the end of as_of; a day d covers [t - 1, t)
    act = ((sites.loc[opened, "activated_on"] - as_of).dt.days).to_numpy(float)[:, None] - 1
    closed = ((sites.loc[opened, "closed_on"] - as_of).dt.days).to_numpy(float)[:, None]
    closed = np.where(np.isnan(closed), np.inf, closed)
    weight = ramp_integral(t - act, ramp_days) - ramp_integral(t - 1 - act, ramp_days)
    # closed_on is the first day without recruitment (as in the fit): day t counts if t < it
    weight = np.where(t < closed, weight, 0.0) * data.open_share[opened][:, None]
    for p_start, p_end in pauses:
        weight[:, (days >= pd.Timestamp(p_start)) & (days <= pd.Timestamp(p_end))] = 0.0
    month_of_day = np.searchsorted(months, days, side="right") - 1
    exposure = sum_by_month(weight, month_of_day, len(months))
    # month factors shared by every site: open days (pauses) and the calendar effect
    factor = np.ones((n_draws, len(months)))
    history = data.monthly_open_share
    if len(history) and history.min() < 1:
        # open days vary by month (pauses): each future month takes the open share of a
        # past month drawn at random, relative to the average share in ``exposure``
        picked = history[rng.integers(0, len(history), size=factor.shape)]
        factor *= picked / max(float(np.mean(data.open_share[opened])), 1e-9)
    calendar = np.ones_like(factor)
    if "sigma_calendar" in post:
        s = post["sigma_calendar"][:, None]
        calendar = np.exp(s * rng.standard_normal(factor.shape) - s**2 / 2)
    caps = sites.loc[opened, "cap"].to_numpy(float)
    if np.isfinite(caps).any():
        # site caps: per-site counts, each site stopping at its cap
        per_site = rng.poisson(
            lam_open[:, :, None] * exposure[None] * (factor * calendar)[:, None, :]
        )
        before = data.counts[opened].sum(axis=1)[None, :, None] + np.cumsum(per_site, 2) - per_site
        capped = np.clip(caps[None, :, None] - before, 0, per_site)
        enrolled = np.where(np.isfinite(caps)[None, :, None], capped, per_site).sum(axis=1)
        enrolled = enrolled.astype(np.int64)
    else:
        enrolled = rng.poisson((lam_open @ exposure) * factor * calendar)
    # sites not open yet: activation per draw, rate from the population the data inform
    # (own country), declared pauses and planned closures applied (no caps)
    pending = ~opened
    if pending.any():
        start = activation_draws(sites, as_of, p_never, n_draws, rng)[
            "start"
        ]  # (draw, site) days after as_of
        lam_new = new_site_rates(population, sites.loc[pending, "country"], rng)
        share = float(np.mean(data.open_share[opened]))
        bounds = np.maximum((months - as_of).days.to_numpy(float) - 1, 0.0)
        bounds = np.r_[bounds, float((end_day - as_of).days)]
        ends = (sites.loc[pending, "closed_on"] - as_of).dt.days.to_numpy(float) - 1
        ends = np.where(np.isnan(ends), np.inf, ends)
        new_exposure = future_exposure(start, ends, bounds, as_of, pauses, ramp_days) * share
        new_rate = (lam_new[:, :, None] * new_exposure).sum(axis=1) * calendar
        enrolled = enrolled + rng.poisson(new_rate)
    return enrolled


def month_spans(
    months: pd.DatetimeIndex, as_of: pd.Timestamp, end_day: pd.Timestamp
) -> tuple[np.ndarray, np.ndarray]:
    """Start (continuous days after the end of ``as_of``) and length in days of each
    forecast month; the first starts after ``as_of``, the last ends on ``end_day``."""
    starts = np.maximum((months - as_of).days.to_numpy(float) - 1, 0.0)
    ends = (months + pd.offsets.MonthEnd(0) - as_of).days.to_numpy(float)
    ends[-1] = min(ends[-1], float((end_day - as_of).days))
    return starts, ends - starts


def observed_target_day(data: EnrollmentData, target: int) -> pd.Timestamp:
    """The day the data reached ``target``: the month whose count crosses it, with its
    patients spread evenly over the month's days up to ``as_of``."""
    per_month = data.counts.sum(axis=0)
    cum = np.cumsum(per_month)
    m = int(np.argmax(cum >= target))
    before = cum[m] - per_month[m]
    start = data.months[m]
    end = min(start + pd.offsets.MonthEnd(0), data.as_of) + pd.Timedelta(days=1)
    frac = (target - before) / max(per_month[m], 1)
    return (start + (end - start) * frac).normalize()
