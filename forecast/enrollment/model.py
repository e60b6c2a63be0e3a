"""Trial enrollment: hierarchical Poisson-gamma recruitment with site activation and dropout.

Model (rates per day; exposure = days a site is open, weighted by a linear ramp-up after
activation and zero on declared pauses)::

    lambda_s ~ Gamma(alpha, alpha / mu[country_s])          site rates (marginalised)
    eps_t    = exp(s z_t - s^2/2), z_t ~ Normal(0, 1)       calendar effect per month (optional)
    k[s, t]  ~ Poisson(lambda_s * E[s, t] * eps_t)

    alpha ~ LogNormal(log 2, 1)                              between-site gamma shape
    log mu ~ Normal(log 0.01, 2)                             mean site rate per day, or with a
                                                             planning prior mu ~ Gamma(nP, TP S)
    log mu[c] = log mu + sigma_country z_c                   with more than one country:
    sigma_country ~ HalfNormal(0.5), z_c ~ Normal(0, 1)      country effects, non-centred
    s ~ HalfNormal(0.5)                                      calendar effect's log-sd

(S: the number of open sites, so that S mu is the planned trial rate.)

Integrating lambda_s out gives a negative multinomial per site: with eps = 1 this is the
negative binomial of site totals of Anisimov & Fedorov. Forecasts draw lambda_s from its
conjugate posterior Gamma(alpha + K_s, alpha / mu + sum_t E[s, t] eps_t), so no site rate is
ever sampled by MCMC. With one site, lambda has a fixed Gamma prior (a planning prior
Gamma(nP, TP) after Gajewski, Simon & Carlson 2008, or a weak default) and, without a calendar
effect, the posterior is exact and closed-form: no sampler runs at all. Otherwise
:meth:`EnrollmentModel.fit` samples the density of :func:`build_model`, written with its
gradient in :mod:`forecast.enrollment.density`, with nutpie's NUTS (no PyTensor compilation);
:func:`build_model` is the PyMC statement of the same model (the tests check the two agree).

``sites_needed`` evaluates enrollment at its ``by`` date itself, spreading the patients of
the month holding it evenly over its days as :meth:`EnrollmentModel.time_to_target` does.
Screen failure (screened -> enrolled) and dropout (enrolled -> treated) are binomial with
Beta(1, 1) priors pooled across sites, conjugate. Sites not yet open, the forecast's exposure
and its month factors are described in :mod:`forecast.enrollment.simulate`.

References
----------
Anisimov, V. V. and Fedorov, V. V. (2007). Modelling, prediction and adaptive adjustment of
recruitment in multicentre trials. Statistics in Medicine 26(27), 4958-4975.

Gajewski, B. J., Simon, S. D. and Carlson, S. E. (2008). Predicting accrual in clinical trials
with Bayesian posterior predictive distributions. Statistics in Medicine 27(13), 2328-2340.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from forecast import _pymc
from forecast._dist import norm_isf, norm_sf
from forecast.draws import manufacture_starts, resample_index
from forecast.enrollment.data import EnrollmentData, enrollment_data
from forecast.enrollment.density import (
    LOG_MU_PRIOR,
    SIGMA_SCALE,
    EnrollmentDensity,
    sample_nutpie,
)
from forecast.enrollment.simulate import (
    ALPHA_PRIOR,
    activation_draws,
    enrolled_per_month,
    forecast_window,
    future_exposure,
    month_spans,
    new_site_rates,
    observed_target_day,
    planning_prior,
    site_rates,
)
from forecast.errors import InputError
from forecast.sampling import SamplerConfig, SamplerSettings

if TYPE_CHECKING:
    import pymc as pm

__all__ = ["EnrollmentModel", "build_model", "negative_multinomial_logp", "planning_prior"]


def negative_multinomial_logp(counts, exposure, eps, alpha, beta):
    """log p(k[s, :] | alpha, beta, eps) with lambda_s ~ Gamma(alpha, beta) integrated out.

    ``counts``, ``exposure``: (site, month); ``eps``: (month,); ``alpha``: scalar;
    ``beta``: (site,). Terms constant in the parameters (log k!) are dropped.
    """
    import pytensor.tensor as pt

    mean_exposure = exposure * eps[None, :]
    total = pt.sum(counts, axis=1)
    return pt.sum(
        pt.gammaln(alpha + total)
        - pt.gammaln(alpha)
        + alpha * pt.log(beta)
        - (alpha + total) * pt.log(beta + pt.sum(mean_exposure, axis=1))
    ) + pt.sum(counts * pt.log(pt.switch(counts > 0, mean_exposure, 1.0)))


def build_model(
    counts: np.ndarray,
    exposure: np.ndarray,
    countries: Sequence[str],
    *,
    calendar_effect: bool = False,
    planning: tuple[float, float, float] | None = None,
    single_site_prior: tuple[float, float] = (1.0, 10.0),
) -> pm.Model:
    """The PyMC model of open sites' counts (site, month) with site rates marginalised
    (negative multinomial likelihood; module docstring). ``planning`` and
    ``single_site_prior`` as in :class:`EnrollmentModel`."""
    import pytensor.tensor as pt

    pm = _pymc.pymc()
    n_sites, n_months = counts.shape
    country_names = sorted(set(countries))
    country_idx = np.array([country_names.index(c) for c in countries])
    coords = {"country": country_names, "month": np.arange(n_months)}
    with pm.Model(coords=coords) as model:
        if calendar_effect:
            # log eps_t = s z_t - s^2 / 2 (mean 1), non-centred: no funnel in s
            sigma_cal = pm.HalfNormal("sigma_calendar", SIGMA_SCALE)
            z_cal = pm.Normal("z_calendar", 0.0, 1.0, dims="month")
            eps = pm.Deterministic(
                "eps", pt.exp(sigma_cal * z_cal - sigma_cal**2 / 2), dims="month"
            )
        else:
            eps = pt.ones(n_months)
        if n_sites == 1:
            a, b = planning_prior(*planning) if planning is not None else single_site_prior
            alpha, beta = pt.constant(a), pt.constant(np.array([b]))
        else:
            alpha = pm.LogNormal("alpha", *ALPHA_PRIOR)
            if planning is not None:
                a, b = planning_prior(*planning)
                mu = pm.Gamma("mu", a, b * n_sites)  # mean site rate x sites = trial rate
                log_mu = pt.log(mu)
            else:
                log_mu = pm.Normal("log_mu", *LOG_MU_PRIOR)
            if len(country_names) > 1:
                sigma_c = pm.HalfNormal("sigma_country", SIGMA_SCALE)
                z_c = pm.Normal("z_country", 0.0, 1.0, dims="country")
                log_mu_c = log_mu + sigma_c * z_c
            else:
                log_mu_c = pt.stack([log_mu])
            mu_c = pm.Deterministic("mu_country", pt.exp(log_mu_c), dims="country")
            if planning is None:
                pm.Deterministic("mu", pt.exp(log_mu))
            beta = alpha / mu_c[country_idx]
        pm.Potential("enrolled", negative_multinomial_logp(counts, exposure, eps, alpha, beta))
    return model


# a nutpie fit whose bulk ESS is below TOP_UP_ESS or R-hat above TOP_UP_R_HAT is sampled again
# with twice the draws: margins over pmcap's diagnostic limits (400 and 1.01). On the example
# trial (seeds 0-5, 2 chains of 1,000) bulk ESS was 403-725 with R-hat up to 1.01; with 2,000
# draws 894-1,266 and R-hat 1.00.
TOP_UP_ESS = 500.0
TOP_UP_R_HAT = 1.005


class EnrollmentModel(SamplerSettings, _pymc.Fitted):
    """Posterior draws of trial enrollment, time to target and patients reaching apheresis.

    Parameters
    ----------
    target
        Patients to enroll; the forecast stops there. A ``cap`` column in the sites table
        stops each open site at its cap too (sites not open yet are not capped).
    planning
        Optional planning prior ``(n, duration_days, P)``: "n patients in T days, P confident".
        It is the prior of the (single) site rate, or of the mean site rate x number of sites.
    calendar_effect
        Month-to-month multiplicative noise shared by all sites (lognormal with mean 1 and
        log-sd ``sigma_calendar ~ HalfNormal(0.5)``).
    ramp_days
        Linear ramp-up of a new site's rate over its first days (0: none).
    pauses
        Trial-wide declared pauses ``[(start, end), ...]`` (no recruitment, inclusive).
    p_never
        Beta prior ``(a, b)`` of the probability that a planned site never opens; updated by
        the planned sites that opened and by how overdue the pending ones are.
    single_site_prior
        Gamma ``(shape, rate per day)`` prior of the rate of a single open site without a
        planning prior; default (1, 10): mean 0.1 a day, about 3 a month, weak (an
        assumption).
    draws, tune, chains, seed, target_accept
        NUTS settings (nutpie's sampler), kept in ``sampler``
        (:class:`~forecast.sampling.SamplerConfig`). In the closed form no sampler runs:
        ``draws`` x ``chains`` exact posterior draws from ``seed``.
    """

    def __init__(
        self,
        target: int | None = None,
        *,
        planning: tuple[float, float, float] | None = None,
        calendar_effect: bool = False,
        ramp_days: float = 0.0,
        pauses: Sequence[tuple[str, str]] = (),
        p_never: tuple[float, float] = (1.0, 9.0),
        single_site_prior: tuple[float, float] = (1.0, 10.0),
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 2,
        seed: int = 0,
        target_accept: float = 0.9,
    ):
        if target is not None:
            if isinstance(target, bool) or not isinstance(target, int | float | np.number):
                raise InputError(f"target: expected a whole number >= 1, got {target!r}")
            if not np.isfinite(target) or target < 1 or target != round(target):
                raise InputError(f"target: expected a whole number >= 1, got {target!r}")
            target = int(target)
        if not (np.isfinite(ramp_days) and ramp_days >= 0):
            raise InputError(f"ramp_days: expected a number of days >= 0, got {ramp_days!r}")
        if len(p_never) != 2 or not all(np.isfinite(v) and v > 0 for v in p_never):
            raise InputError(f"p_never: expected Beta parameters (a, b) > 0, got {p_never!r}")
        for i, pause in enumerate(pauses):
            try:
                p_start, p_end = (pd.Timestamp(d) for d in pause)
            except (TypeError, ValueError):
                raise InputError(f"pauses: pause {i + 1}: expected (start, end) dates") from None
            if p_end < p_start:
                raise InputError(f"pauses: pause {i + 1}: ends {p_end.date()} before it starts")
        self.target = target
        self.planning = planning
        self.calendar_effect = calendar_effect
        self.ramp_days = float(ramp_days)
        self.pauses = list(pauses)
        self.p_never = p_never
        self.single_site_prior = single_site_prior
        self.sampler = SamplerConfig(draws, tune, chains, seed, float(target_accept))
        self._idata = None
        self.data_: EnrollmentData | None = None
        self.forecast_: xr.Dataset | None = None

    def config(self) -> dict[str, Any]:
        return {
            k: getattr(self, k)
            for k in (
                "target",
                "planning",
                "calendar_effect",
                "ramp_days",
                "pauses",
                "p_never",
                "single_site_prior",
                "draws",
                "tune",
                "chains",
                "seed",
                "target_accept",
            )
        }

    def save(self, path) -> Path:
        """Posterior, the validated data and the config (JSON attrs) to one NetCDF file."""
        if self._idata is None:
            raise RuntimeError("call fit() first")
        saved = {"config": self.config(), "data": self.data_.to_json()}
        _pymc.save_idata(self._idata, path, saved)
        return Path(path)

    @classmethod
    def load(cls, path) -> EnrollmentModel:
        idata, saved = _pymc.load_idata(path)
        config = saved["config"]
        model = cls(
            **{
                **config,
                "planning": tuple(config["planning"]) if config["planning"] else None,
                "pauses": [tuple(p) for p in config["pauses"]],
                "p_never": tuple(config["p_never"]),
                "single_site_prior": tuple(config["single_site_prior"]),
            }
        )
        model.data_ = EnrollmentData.from_json(saved["data"])
        model.idata = idata
        return model

    # --- fitting --------------------------------------------------------------------------
    def fit(
        self,
        patients: pd.DataFrame | None = None,
        sites: pd.DataFrame | None = None,
        *,
        as_of: str | pd.Timestamp,
        counts: pd.DataFrame | None = None,
    ) -> EnrollmentModel:
        """Validate the data and sample (or compute) the posterior."""
        data = enrollment_data(
            patients,
            sites,
            counts=counts,
            as_of=as_of,
            pauses=self.pauses,
            ramp_days=self.ramp_days,
        )
        self.data_ = data
        opened = ~data.sites["activated_on"].isna().to_numpy()
        if not opened.any():
            raise InputError("enrollment data: no site is open yet; nothing to learn a rate from")
        counts_o, exposure_o = data.counts[opened], data.exposure[opened]
        single = int(opened.sum()) == 1
        if single and not self.calendar_effect:
            self._idata = self._closed_form(counts_o, exposure_o)
            return self
        density = EnrollmentDensity(
            counts_o,
            exposure_o,
            data.sites.loc[opened, "country"].to_numpy(),
            calendar_effect=self.calendar_effect,
            planning=self.planning,
            single_site_prior=self.single_site_prior,
        )
        self._idata = sample_nutpie(density, self.sampler)
        d = self.diagnostics()
        if d["ess_bulk_min"] < TOP_UP_ESS or d["r_hat_max"] > TOP_UP_R_HAT:
            # near or past the run's limits (bulk ESS 400, R-hat 1.01): sample again with twice
            # the draws (same seed and tuning), so a fit passes with a margin, not by chance
            wider = replace(self.sampler, draws=2 * self.sampler.draws)
            self._idata = sample_nutpie(density, wider)
        return self

    def _prior_single(self) -> tuple[float, float]:
        if self.planning is not None:
            return planning_prior(*self.planning)
        return self.single_site_prior

    def _closed_form(self, counts, exposure):
        """One site, no calendar effect: lambda ~ Gamma(a + K, b + E) exactly."""
        import arviz as az

        a, b = self._prior_single()
        rng = np.random.default_rng(self.seed)
        n = self.draws * self.chains
        lam = rng.gamma(a + counts.sum(), 1.0 / (b + exposure.sum()), size=n)
        return az.from_dict(
            posterior={"site_rate": lam.reshape(self.chains, self.draws)}, attrs={"closed_form": 1}
        )

    def build_model(self, counts, exposure, countries) -> pm.Model:
        """The PyMC model of open sites' counts with this model's priors (:func:`build_model`)."""
        return build_model(
            counts,
            exposure,
            countries,
            calendar_effect=self.calendar_effect,
            planning=self.planning,
            single_site_prior=self.single_site_prior,
        )

    def diagnostics(self) -> dict[str, Any]:
        if self._idata is None:
            raise RuntimeError("call fit() first")
        if self._idata.attrs.get("closed_form"):
            return {
                "r_hat_max": 1.0,
                "ess_bulk_min": float(self.draws * self.chains),
                "divergences": 0,
                "closed_form": True,
            }
        names = [
            v
            for v in ("alpha", "log_mu", "mu", "sigma_calendar", "z_calendar", "sigma_country")
            if v in self._idata.posterior
        ]
        return _pymc.diagnostics(self._idata, names)

    # --- posterior pieces -------------------------------------------------------------------
    def _posterior(self, pick: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Flattened posterior draws of what the forecast needs (rows ``pick`` if given)."""
        if self._idata is None:
            raise RuntimeError("call fit() first")
        post = self._idata.posterior
        out = {name: _pymc.stacked(self._idata, name) for name in post.data_vars}
        if pick is not None:
            out = {name: values[pick] for name, values in out.items()}
        return out

    def _fitted_countries(self) -> list[str]:
        """The ``country`` coordinate of a hierarchical fit (none for one open site)."""
        if "alpha" not in self._idata.posterior:
            return []
        return list(self._idata.posterior["country"].values)

    def forecast(
        self,
        horizon_months: int = 24,
        *,
        until=None,
        seed: int | None = None,
        draws: int | None = None,
    ) -> xr.Dataset:
        """Draws of enrolled, treated and cumulative enrolled per month after ``as_of``.

        The first month holds the days after ``as_of`` only; with ``until`` the forecast
        ends on that day (inclusive) instead of after ``horizon_months`` months. ``draws``
        resamples the posterior draws to that many (default: one per posterior draw), so the
        forecast lines up with other models' draws in a portfolio.
        """
        data = self.data_
        if data is None:
            raise RuntimeError("call fit() first")
        rng = np.random.default_rng(self.seed if seed is None else seed)
        as_of = data.as_of
        first_day, months, end_day = forecast_window(as_of, horizon_months, until)
        pick = None
        n_post = len(_pymc.stacked(self._idata, next(iter(self._idata.posterior.data_vars))))
        if draws is not None:
            if draws < 1:
                raise InputError(f"draws must be >= 1, got {draws}")
            pick = resample_index(n_post, draws, rng)
        post = self._posterior(pick)
        lam_open, population = site_rates(
            data, post, self._fitted_countries(), self._prior_single(), rng
        )
        enrolled = enrolled_per_month(
            data,
            months,
            first_day,
            end_day,
            lam_open,
            population,
            post,
            rng,
            ramp_days=self.ramp_days,
            pauses=self.pauses,
            p_never=self.p_never,
        )
        n_draws = lam_open.shape[0]
        self._population = population  # sites_needed: new sites from the same draws
        self._end_day = end_day
        self._uncapped = enrolled  # time_to_target interpolates within the crossing month
        observed = int(data.counts.sum())
        if self.target is not None:
            before = observed + np.cumsum(enrolled, axis=1) - enrolled
            enrolled = np.clip(self.target - before, 0, enrolled)
        cumulative = observed + np.cumsum(enrolled, axis=1)
        p_treated = rng.beta(1 + data.treated, 1 + data.dropped, size=(n_draws, 1))
        treated = rng.binomial(enrolled, p_treated)
        coords = {"draw": np.arange(n_draws), "month": months}
        dims = ("draw", "month")
        ds = xr.Dataset(
            {
                "enrolled": (dims, enrolled, {"units": "patients/month"}),
                "treated": (dims, treated, {"units": "patients/month"}),
                "cumulative_enrolled": (dims, cumulative, {"units": "patients"}),
            },
            coords=coords,
            attrs={
                "as_of": str(as_of.date()),
                "observed_enrolled": observed,
                "target": -1 if self.target is None else int(self.target),
            },
        )
        if data.screened:
            p_enroll = rng.beta(
                1 + data.screened - data.screen_failed, 1 + data.screen_failed, size=(n_draws, 1)
            )
            failures = rng.negative_binomial(np.maximum(enrolled, 1), p_enroll) * (enrolled > 0)
            ds["screened"] = (dims, enrolled + failures, {"units": "patients/month"})
        self.forecast_ = ds
        return ds

    def _forecast(self) -> xr.Dataset:
        if self.forecast_ is None:
            raise RuntimeError("call forecast() first")
        return self.forecast_

    def time_to_target(self) -> xr.DataArray:
        """Draws of the day the target is reached (NaT beyond the forecast horizon)."""
        if self.target is None:
            raise InputError("time_to_target needs the model's target")
        fc = self._forecast()
        observed = fc.attrs["observed_enrolled"]
        enrolled = self._uncapped
        cum = observed + np.cumsum(enrolled, axis=1)
        months = pd.DatetimeIndex(fc["month"].values)
        out = np.full(cum.shape[0], np.datetime64("NaT"), dtype="datetime64[ns]")
        if observed >= self.target:  # reached in the data: when, as far as months tell
            out[:] = np.datetime64(observed_target_day(self.data_, self.target), "ns")
            return xr.DataArray(out, dims="draw", name="time_to_target")
        reached = cum >= self.target
        hit = reached.any(axis=1)
        m = reached.argmax(axis=1)
        rows = np.arange(len(m))
        before = cum[rows, m] - enrolled[rows, m]
        frac = (self.target - before) / np.maximum(enrolled[rows, m], 1)
        starts, lengths = month_spans(months, self.data_.as_of, self._end_day)
        day = starts[m] + frac * lengths[m]
        dates = np.datetime64(self.data_.as_of, "ns") + (day * 86400e9).astype("timedelta64[ns]")
        out[hit] = dates[hit]
        return xr.DataArray(out, dims="draw", name="time_to_target")

    def probability_by(self, date) -> float:
        """P(target reached on or before ``date``)."""
        ttt = self.time_to_target().values
        return float((ttt <= np.datetime64(pd.Timestamp(date), "ns")).mean())

    def sites_needed(
        self,
        by,
        probability: float = 0.8,
        max_sites: int = 100,
        seed: int | None = None,
        country: str | None = None,
    ) -> int | None:
        """Fewest additional sites so that P(target reached by ``by``) >= ``probability``;
        None if ``max_sites`` are not enough.

        Enrollment is evaluated at ``by`` itself (to the end of that day): in the month
        holding ``by`` the current sites' patients are spread evenly over its days, as in
        :meth:`time_to_target`, so with no extra site the answer agrees with
        :meth:`probability_by`. Additional sites are planned for ``as_of`` and open after the
        learned activation delay (or never, with the posterior ``p_never``); declared pauses
        apply. Their rates come from the population new sites draw from: of ``country``'s
        open sites, or, by default, of a country drawn from the population of countries.
        """
        if self.target is None:
            raise InputError("sites_needed needs the model's target")
        if not 0 < probability <= 1:
            raise InputError(f"probability: expected a number in (0, 1], got {probability!r}")
        if max_sites < 1:
            raise InputError(f"max_sites: expected a whole number >= 1, got {max_sites!r}")
        fc = self._forecast()
        by = pd.Timestamp(by)
        as_of = self.data_.as_of
        if by > self._end_day:
            raise InputError(f"sites_needed: {by.date()} is beyond the forecast horizon")
        if by <= as_of:
            raise InputError(f"sites_needed: {by.date()} must be after as_of {as_of.date()}")
        rng = np.random.default_rng((self.seed if seed is None else seed) + 17)
        # enrolled by the end of day `by` with the current sites (uncapped), per draw
        months = pd.DatetimeIndex(fc["month"].values)
        starts, lengths = month_spans(months, as_of, self._end_day)
        x = float((by - as_of).days)
        m = min(int(np.searchsorted(starts + lengths, x)), len(months) - 1)
        enrolled = self._uncapped
        base = (
            fc.attrs["observed_enrolled"]
            + enrolled[:, :m].sum(axis=1)
            + enrolled[:, m] * (x - starts[m]) / lengths[m]
        )
        n = len(base)
        act = activation_draws(self.data_.sites, as_of, self.p_never, n, rng)
        mu, sd = act["mu"][:, None], act["sd"][:, None]
        still = norm_sf(-mu / sd)  # delay > 0: planned for as_of, not open yet
        u = rng.random((n, max_sites))
        delay = mu + sd * norm_isf(np.maximum(u * still, 1e-300))
        never = rng.random((n, max_sites)) < act["p_never"][:, None]
        start = np.where(never, np.inf, np.maximum(delay, 0.0))
        opened = ~self.data_.sites["activated_on"].isna().to_numpy()
        share = float(np.mean(self.data_.open_share[opened]))
        exposure = future_exposure(
            start,
            np.full(max_sites, np.inf),
            np.array([0.0, x]),
            as_of,
            self.pauses,
            self.ramp_days,
        )
        lam = new_site_rates(self._population, [country] * max_sites, rng)
        extra = np.cumsum(rng.poisson(lam * exposure[:, :, 0] * share), axis=1)
        totals = np.c_[base, base[:, None] + extra]
        ok = (totals >= self.target).mean(axis=0) >= probability
        return int(np.argmax(ok)) if ok.any() else None

    def bands(self, quantiles=(0.1, 0.5, 0.9), program: str = "trial") -> pd.DataFrame:
        """Tidy bands (month, program, metric, unit, mean, p10, p50, p90) of the forecast."""
        from capacity import bands

        fc = self._forecast()
        frame = bands(
            fc[[v for v in ("enrolled", "treated", "cumulative_enrolled", "screened") if v in fc]],
            quantiles,
        )
        frame["program"] = program
        return frame

    def to_demand(
        self,
        program: str = "trial",
        *,
        manufactured_share=1.0,
        lag_days=0.0,
        seed: int | None = None,
    ) -> xr.DataArray:
        """Patients starting manufacture as demand draws, stream ``clinical``.

        Lots are made for enrolled patients who reach apheresis, including those who later
        drop out before infusion, so demand is *enrolled* x ``manufactured_share`` (binomial,
        the share a number or a distribution such as ``{"beta": [18, 2]}`` drawn once per
        draw), started ``lag_days`` after enrollment (a number or a distribution, drawn once
        per draw; within a month enrollment is uniform, so a lag of a third of a month moves
        a third of the month's patients into the next month). Months run from the forecast's
        first month; patients whose start falls after its last month are dropped.
        """
        from capacity import as_demand

        fc = self._forecast()
        rng = np.random.default_rng((self.seed if seed is None else seed) + 29)
        starts = manufacture_starts(
            fc["enrolled"].values,
            manufactured_share,
            lag_days,
            pd.DatetimeIndex(fc["month"].values),
            rng,
        )
        da = xr.DataArray(
            starts[:, :, None, None],
            dims=("draw", "month", "program", "stream"),
            coords={
                "draw": fc["draw"].values,
                "month": fc["month"].values,
                "program": [program],
                "stream": ["clinical"],
            },
            name="patients",
            attrs={"seed": self.seed if seed is None else seed},
        )
        return as_demand(da)

    def plot_forecast(self, ax=None):
        """Fan chart of monthly enrolled with the observed history
        (:func:`forecast.enrollment.plot.plot_forecast`)."""
        from forecast.enrollment.plot import plot_forecast

        return plot_forecast(self, ax=ax)

    def plot_time_to_target(self, ax=None):
        """Histogram of the date the target is reached
        (:func:`forecast.enrollment.plot.plot_time_to_target`)."""
        from forecast.enrollment.plot import plot_time_to_target

        return plot_time_to_target(self, ax=ax)
