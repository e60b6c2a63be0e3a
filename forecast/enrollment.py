"""Trial enrollment: hierarchical Poisson-gamma recruitment with site activation and dropout.

Model (rates per day; exposure = days a site is open, weighted by a linear ramp-up after
activation and zero on declared pauses)::

    lambda_s ~ Gamma(alpha, alpha / mu[country_s])          site rates (marginalised)
    eps_t    = exp(s z_t - s^2/2), z_t ~ Normal(0, 1)       calendar effect per month (optional)
    k[s, t]  ~ Poisson(lambda_s * E[s, t] * eps_t)

Integrating lambda_s out gives a negative multinomial per site: with eps = 1 this is the
negative binomial of site totals of Anisimov & Fedorov. Forecasts draw lambda_s from its
conjugate posterior Gamma(alpha + K_s, alpha / mu + sum_t E[s, t] eps_t), so no site rate is
ever sampled by MCMC. With one site, lambda has a fixed Gamma prior (a planning prior
Gamma(nP, TP) after Gajewski, Simon & Carlson 2008, or a weak default) and, without a calendar
effect, the posterior is exact and closed-form: no sampler runs at all.

Sites not yet open activate at planned date + delay, delay ~ Normal(m, s) with (m, s) from the
conjugate normal-inverse-gamma posterior of observed delays (prior: mean 60 days, sd 60 days,
worth 2 sites; an assumption), drawn given the delay already elapsed; a site never opens with
probability ``p_never`` (Beta(1, 9) prior, 10%, an assumption). Screen failure (screened ->
enrolled) and dropout (enrolled -> treated) are binomial with Beta(1, 1) priors pooled across
sites, conjugate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from scipy import stats

from forecast import _pymc
from forecast.draws import manufacture_starts, resample_index
from forecast.errors import InputError

__all__ = ["EnrollmentModel", "EnrollmentData", "enrollment_data", "planning_prior"]

DAYS_PER_MONTH = 365.25 / 12


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------
@dataclass
class EnrollmentData:
    """Validated enrollment data on a month grid (site x month counts and exposures)."""

    sites: pd.DataFrame  # site, country, activated_on, planned_activation, closed_on, cap
    months: pd.DatetimeIndex  # observed months (first day), up to the month of as_of
    counts: np.ndarray  # (site, month) enrolled
    exposure: np.ndarray  # (site, month) weighted open days
    as_of: pd.Timestamp
    open_share: np.ndarray  # (site,) share of open days, used for future exposure
    monthly_open_share: np.ndarray  # trial-wide share of open days in each past month
    screened: int = 0
    screen_failed: int = 0
    treated: int = 0
    dropped: int = 0


def _dates(frame: pd.DataFrame, column: str, source: str, required: bool) -> pd.Series:
    if column not in frame.columns:
        if required:
            raise InputError(f"{source}: missing column {column!r}")
        return pd.Series(pd.NaT, index=frame.index)
    raw = frame[column]
    parsed = pd.to_datetime(raw, errors="coerce", format="mixed")
    bad = parsed.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"{source}: row {i + 2}: {column} {raw.iloc[i]!r} is not a date")
    if required and parsed.isna().any():
        i = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise InputError(f"{source}: row {i + 2}: {column} is empty")
    return parsed


def enrollment_data(
    patients: pd.DataFrame | None = None,
    sites: pd.DataFrame | None = None,
    *,
    counts: pd.DataFrame | None = None,
    as_of: str | pd.Timestamp,
    pauses: Sequence[tuple[str, str]] = (),
    ramp_days: float = 0.0,
) -> EnrollmentData:
    """Validate an EDC export (or aggregate counts) and put it on a site x month grid.

    ``patients``: one row per patient with ``site`` and ``enrolled_on``; optional ``outcome``
    (``enrolled``/``screen_failed``, then rows with ``screen_failed`` are screening-log rows)
    and ``treated`` (bool, empty if not yet known). ``counts``: aggregate rows ``site, date,
    enrolled`` with optional ``screened`` and ``open`` (1 on days the site recruited, 0 on
    pauses). ``sites``: ``site``, optional ``country``, ``activated_on`` (empty if not open),
    ``planned_activation``, ``closed_on``, ``cap``. Without ``sites``, every site in the data is
    taken as activated on its first day of data. ``pauses`` are trial-wide date ranges with no
    recruitment (inclusive). Errors name the table, the row and what was expected.
    """
    as_of = pd.Timestamp(as_of)
    if (patients is None) == (counts is None):
        raise InputError("enrollment data: give either patients or counts, not both or neither")
    if patients is not None:
        daily, extra = _from_patients(patients, as_of)
    else:
        daily, extra = _from_counts(counts, as_of)
    site_table = _site_table(sites, daily, as_of)
    known = set(site_table["site"])
    unknown = daily.loc[~daily["site"].isin(known)]
    if len(unknown):
        raise InputError(
            f"{unknown['table'].iloc[0]}: row {unknown['row'].iloc[0]}: site "
            f"{unknown['site'].iloc[0]!r} is not in the sites table"
        )
    act = daily["site"].map(site_table.set_index("site")["activated_on"])
    early = daily["date"] < act
    if early.any():
        r = daily.loc[early].iloc[0]
        raise InputError(
            f"{r['table']}: row {r['row']}: enrollment on {r['date'].date()} at site "
            f"{r['site']!r} is before its activation on {act[early].iloc[0].date()}"
        )
    return _grid(daily, site_table, as_of, pauses, ramp_days, extra)


def _from_patients(patients: pd.DataFrame, as_of: pd.Timestamp):
    source = "patients"
    if "site" not in patients.columns:
        raise InputError(f"{source}: missing column 'site'")
    frame = patients.reset_index(drop=True)
    enrolled_on = _dates(frame, "enrolled_on", source, required=False)
    outcome = (
        frame["outcome"] if "outcome" in frame.columns else pd.Series("enrolled", index=frame.index)
    )
    bad = ~outcome.isin(["enrolled", "screen_failed"])
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"{source}: row {i + 2}: outcome must be enrolled or screen_failed")
    is_enrolled = outcome == "enrolled"
    missing = is_enrolled & enrolled_on.isna()
    if missing.any():
        i = int(np.flatnonzero(missing.to_numpy())[0])
        raise InputError(f"{source}: row {i + 2}: enrolled_on is empty")
    late = enrolled_on > as_of
    if late.any():
        i = int(np.flatnonzero(late.to_numpy())[0])
        raise InputError(
            f"{source}: row {i + 2}: enrolled_on {enrolled_on[i].date()} is after as_of "
            f"{as_of.date()}"
        )
    extra = {
        "screened": int(len(frame)) if "outcome" in frame.columns else 0,
        "screen_failed": int((~is_enrolled).sum()),
    }
    if "treated" in frame.columns:
        known = frame["treated"].notna() & is_enrolled
        treated = frame.loc[known, "treated"].astype(bool)
        extra.update(treated=int(treated.sum()), dropped=int((~treated).sum()))
    daily = pd.DataFrame(
        {
            "site": frame.loc[is_enrolled, "site"].astype(str),
            "date": enrolled_on[is_enrolled],
            "enrolled": 1,
            "open": 1.0,
            "table": source,
            "row": frame.index[is_enrolled] + 2,
        }
    )
    return daily, extra


def _from_counts(counts: pd.DataFrame, as_of: pd.Timestamp):
    source = "counts"
    frame = counts.reset_index(drop=True)
    for col in ("site", "enrolled"):
        if col not in frame.columns:
            raise InputError(f"{source}: missing column {col!r}")
    date = _dates(frame, "date", source, required=True)
    values = pd.to_numeric(frame["enrolled"], errors="coerce")
    bad = values.isna() | (values < 0) | (values != np.round(values))
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{source}: row {i + 2}: enrolled must be a whole number >= 0, got "
            f"{frame['enrolled'].iloc[i]!r}"
        )
    late = date > as_of
    if late.any():
        i = int(np.flatnonzero(late.to_numpy())[0])
        raise InputError(
            f"{source}: row {i + 2}: date {date[i].date()} is after as_of {as_of.date()}"
        )
    extra = {}
    if "screened" in frame.columns:
        screened = pd.to_numeric(frame["screened"], errors="coerce")
        bad = screened.isna() | (screened < values)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"{source}: row {i + 2}: screened must be a number >= enrolled")
        extra = {"screened": int(screened.sum()), "screen_failed": int((screened - values).sum())}
    open_ = (
        frame["open"].astype(float)
        if "open" in frame.columns
        else pd.Series(1.0, index=frame.index)
    )
    daily = pd.DataFrame(
        {
            "site": frame["site"].astype(str),
            "date": date,
            "enrolled": values.astype(int),
            "open": open_,
            "table": source,
            "row": frame.index + 2,
        }
    )
    return daily, extra


def _site_table(
    sites: pd.DataFrame | None, daily: pd.DataFrame, as_of: pd.Timestamp
) -> pd.DataFrame:
    if sites is None:
        first = daily.groupby("site")["date"].min()
        return pd.DataFrame(
            {
                "site": first.index.astype(str),
                "country": "all",
                "activated_on": first.to_numpy(),
                "planned_activation": pd.NaT,
                "closed_on": pd.NaT,
                "cap": np.nan,
            }
        )
    source = "sites"
    frame = sites.reset_index(drop=True)
    if "site" not in frame.columns:
        raise InputError(f"{source}: missing column 'site'")
    dup = frame["site"].astype(str).duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise InputError(f"{source}: row {i + 2}: site {frame['site'].iloc[i]!r} appears twice")
    table = pd.DataFrame(
        {
            "site": frame["site"].astype(str),
            "country": frame["country"].astype(str) if "country" in frame.columns else "all",
            "activated_on": _dates(frame, "activated_on", source, required=False),
            "planned_activation": _dates(frame, "planned_activation", source, required=False),
            "closed_on": _dates(frame, "closed_on", source, required=False),
            "cap": pd.to_numeric(frame["cap"], errors="coerce")
            if "cap" in frame.columns
            else np.nan,
        }
    )
    late = table["activated_on"] > as_of
    if late.any():
        i = int(np.flatnonzero(late.to_numpy())[0])
        raise InputError(f"{source}: row {i + 2}: activated_on is after as_of {as_of.date()}")
    neither = table["activated_on"].isna() & table["planned_activation"].isna()
    if neither.any():
        i = int(np.flatnonzero(neither.to_numpy())[0])
        raise InputError(f"{source}: row {i + 2}: a site needs activated_on or planned_activation")
    return table


def _ramp_integral(t: np.ndarray, ramp: float) -> np.ndarray:
    """Integral over [0, t] of min(1, max(0, u / ramp)) du (weighted open days by day t)."""
    t = np.maximum(t, 0.0)
    if ramp <= 0:
        return t
    inside = np.minimum(t, ramp)
    return inside**2 / (2 * ramp) + (t - inside)


def _grid(daily, site_table, as_of, pauses, ramp_days, extra) -> EnrollmentData:
    opened = site_table["activated_on"].dropna()
    first = min(
        opened.min() if len(opened) else as_of, daily["date"].min() if len(daily) else as_of
    )
    months = pd.date_range(
        first.to_period("M").to_timestamp(), as_of.to_period("M").to_timestamp(), freq="MS"
    )
    days = pd.date_range(months[0], as_of, freq="D")
    n_sites, n_days = len(site_table), len(days)
    site_index = {s: i for i, s in enumerate(site_table["site"])}
    day_of = (days - days[0]).days.to_numpy()
    # weighted open days per site and day: ramp x open flag x (activated <= day < closed)
    act = ((site_table["activated_on"] - days[0]).dt.days).to_numpy(float)  # NaN if not open
    closed = ((site_table["closed_on"] - days[0]).dt.days).to_numpy(float)
    closed = np.where(np.isnan(closed), np.inf, closed)
    t = day_of[None, :].astype(float)
    weight = _ramp_integral(t + 1 - act[:, None], ramp_days) - _ramp_integral(
        t - act[:, None], ramp_days
    )
    weight = np.where(np.isnan(act)[:, None], 0.0, weight)
    weight = np.where(t < closed[:, None], weight, 0.0)
    for start, end in pauses:
        paused = (days >= pd.Timestamp(start)) & (days <= pd.Timestamp(end))
        weight[:, paused] = 0.0
    open_flags = np.ones((n_sites, n_days))
    if len(daily) and (daily["open"] != 1).any():
        rows = daily["site"].map(site_index).to_numpy()
        cols = (daily["date"] - days[0]).dt.days.to_numpy()
        open_flags[rows, cols] = daily["open"].to_numpy(float)
    weight = weight * open_flags
    month_of_day = np.searchsorted(months, days, side="right") - 1
    exposure = _sum_by_month(weight, month_of_day, len(months))
    counts = np.zeros((n_sites, len(months)))
    if len(daily):
        rows = daily["site"].map(site_index).to_numpy()
        cols = month_of_day[(daily["date"] - days[0]).dt.days.to_numpy()]
        np.add.at(counts, (rows, cols), daily["enrolled"].to_numpy(float))
    # site-days between activation and closure, and those of them with recruitment
    active = np.where(np.isnan(act)[:, None], 0, (t >= act[:, None]) & (t < closed[:, None]))
    active_open = active * open_flags
    active_days, open_days = active.sum(1), active_open.sum(1)
    share = np.where(active_days > 0, open_days / np.maximum(active_days, 1), 1.0)
    per_month_active = _sum_by_month(active, month_of_day, len(months)).sum(0)
    per_month_open = _sum_by_month(active_open, month_of_day, len(months)).sum(0)
    has = per_month_active > 0
    monthly_share = per_month_open[has] / per_month_active[has]
    return EnrollmentData(
        site_table.reset_index(drop=True),
        months,
        counts,
        exposure,
        as_of,
        share,
        monthly_share,
        **extra,
    )


def _sum_by_month(values: np.ndarray, month_of_day: np.ndarray, n_months: int) -> np.ndarray:
    """Sum daily columns into months; days are sorted and every month has at least one."""
    starts = np.searchsorted(month_of_day, np.arange(n_months))
    return np.add.reduceat(np.asarray(values, float), starts, axis=1)


def planning_prior(n: float, duration_days: float, confidence: float) -> tuple[float, float]:
    """Gamma(shape, rate per day) of 'n patients in T days, P confident' (Gajewski 2008).

    Shape nP and rate TP: P near 0 carries no information, P = 1 as much as n observed
    patients would. ``accrual`` states T in months or weeks: multiply by the days in one.
    """
    if not (n > 0 and duration_days > 0 and 0 < confidence <= 1):
        raise InputError("planning prior: need n > 0, T > 0 and 0 < P <= 1")
    return n * confidence, duration_days * confidence


# --------------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------------
def negative_multinomial_logp(counts, exposure, eps, alpha, beta):
    """log p(k[s, :] | alpha, beta, eps) with lambda_s ~ Gamma(alpha, beta) integrated out.

    ``counts``, ``exposure``: (site, month); ``eps``: (month,); ``alpha``: scalar;
    ``beta``: (site,). Terms constant in the parameters (log k!) are dropped.
    """
    mean_exposure = exposure * eps[None, :]
    total = pt.sum(counts, axis=1)
    return pt.sum(
        pt.gammaln(alpha + total)
        - pt.gammaln(alpha)
        + alpha * pt.log(beta)
        - (alpha + total) * pt.log(beta + pt.sum(mean_exposure, axis=1))
    ) + pt.sum(counts * pt.log(pt.switch(counts > 0, mean_exposure, 1.0)))


class EnrollmentModel:
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
        Beta prior of the probability that a site not yet open never opens.
    draws, tune, chains, seed, target_accept
        NUTS settings (not used when the posterior is closed-form).
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
        self.target = target
        self.target_accept = float(target_accept)
        self.planning = planning
        self.calendar_effect = calendar_effect
        self.ramp_days = float(ramp_days)
        self.pauses = list(pauses)
        self.p_never = p_never
        self.single_site_prior = single_site_prior
        self.draws, self.tune, self.chains, self.seed = draws, tune, chains, seed
        self.idata = None
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
        if self.idata is None:
            raise RuntimeError("call fit() first")
        d = self.data_
        data = {
            "sites": d.sites.astype(object)
            .where(d.sites.notna(), None)
            .astype(str)
            .to_dict("list"),
            "months": [str(m.date()) for m in d.months],
            "counts": d.counts.tolist(),
            "exposure": d.exposure.tolist(),
            "as_of": str(d.as_of.date()),
            "open_share": d.open_share.tolist(),
            "monthly_open_share": d.monthly_open_share.tolist(),
            "screened": d.screened,
            "screen_failed": d.screen_failed,
            "treated": d.treated,
            "dropped": d.dropped,
        }
        _pymc.save_idata(self.idata, path, {"config": self.config(), "data": data})
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
        d = saved["data"]
        sites = pd.DataFrame(d["sites"]).replace({"None": None, "NaT": None, "nan": None})
        for col in ("activated_on", "planned_activation", "closed_on"):
            sites[col] = pd.to_datetime(sites[col])
        sites["cap"] = pd.to_numeric(sites["cap"])
        model.data_ = EnrollmentData(
            sites,
            pd.DatetimeIndex(d["months"]),
            np.array(d["counts"]),
            np.array(d["exposure"]),
            pd.Timestamp(d["as_of"]),
            np.array(d["open_share"]),
            np.array(d["monthly_open_share"]),
            d["screened"],
            d["screen_failed"],
            d["treated"],
            d["dropped"],
        )
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
            self.idata = self._closed_form(counts_o, exposure_o)
            return self
        model = self.build_model(counts_o, exposure_o, data.sites.loc[opened, "country"].to_numpy())
        self.idata = _pymc.sample(
            model,
            draws=self.draws,
            tune=self.tune,
            chains=self.chains,
            seed=self.seed,
            target_accept=self.target_accept,
        )
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
        """The PyMC model with site rates marginalised (negative multinomial likelihood)."""
        n_sites, n_months = counts.shape
        country_names = sorted(set(countries))
        country_idx = np.array([country_names.index(c) for c in countries])
        coords = {"country": country_names, "month": np.arange(n_months)}
        with pm.Model(coords=coords) as model:
            if self.calendar_effect:
                # log eps_t = s z_t - s^2 / 2 (mean 1), non-centred: no funnel in s
                sigma_cal = pm.HalfNormal("sigma_calendar", 0.5)
                z_cal = pm.Normal("z_calendar", 0.0, 1.0, dims="month")
                eps = pm.Deterministic(
                    "eps", pt.exp(sigma_cal * z_cal - sigma_cal**2 / 2), dims="month"
                )
            else:
                eps = pt.ones(n_months)
            if n_sites == 1:
                a, b = self._prior_single()
                alpha, beta = pt.constant(a), pt.constant(np.array([b]))
            else:
                alpha = pm.LogNormal("alpha", np.log(2.0), 1.0)
                if self.planning is not None:
                    a, b = planning_prior(*self.planning)
                    mu = pm.Gamma("mu", a, b * n_sites)  # mean site rate x sites = trial rate
                    log_mu = pt.log(mu)
                else:
                    log_mu = pm.Normal("log_mu", np.log(0.01), 2.0)
                if len(country_names) > 1:
                    sigma_c = pm.HalfNormal("sigma_country", 0.5)
                    z_c = pm.Normal("z_country", 0.0, 1.0, dims="country")
                    log_mu_c = log_mu + sigma_c * z_c
                else:
                    log_mu_c = pt.stack([log_mu])
                mu_c = pm.Deterministic("mu_country", pt.exp(log_mu_c), dims="country")
                if self.planning is None:
                    pm.Deterministic("mu", pt.exp(log_mu))
                beta = alpha / mu_c[country_idx]
            pm.Potential("enrolled", negative_multinomial_logp(counts, exposure, eps, alpha, beta))
        return model

    def diagnostics(self) -> dict[str, Any]:
        if self.idata is None:
            raise RuntimeError("call fit() first")
        if self.idata.attrs.get("closed_form"):
            return {
                "r_hat_max": 1.0,
                "ess_bulk_min": float(self.draws * self.chains),
                "divergences": 0,
                "closed_form": True,
            }
        names = [
            v
            for v in ("alpha", "log_mu", "mu", "sigma_calendar", "z_calendar", "sigma_country")
            if v in self.idata.posterior
        ]
        return _pymc.diagnostics(self.idata, names)

    # --- posterior pieces -------------------------------------------------------------------
    def _posterior(self, pick: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Flattened posterior draws of what the forecast needs (rows ``pick`` if given)."""
        if self.idata is None:
            raise RuntimeError("call fit() first")
        post = self.idata.posterior
        out = {name: _pymc.stacked(self.idata, name) for name in post.data_vars}
        if pick is not None:
            out = {name: values[pick] for name, values in out.items()}
        return out

    def _site_rates(self, rng, pick=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per draw: rates of open sites (conjugate posterior), alpha and beta for new sites."""
        data = self.data_
        post = self._posterior(pick)
        opened = ~data.sites["activated_on"].isna().to_numpy()
        counts, exposure = data.counts[opened], data.exposure[opened]
        if "site_rate" in post:  # closed form, one site
            a, b = self._prior_single()
            lam = post["site_rate"][:, None]
            return lam, np.full(len(lam), a), np.full(len(lam), b)
        eps = (
            post["eps"]
            if "eps" in post
            else np.ones((len(next(iter(post.values()))), counts.shape[1]))
        )
        n = len(eps)
        if "alpha" in post:
            alpha = post["alpha"]
            names = list(self.idata.posterior["country"].values)
            countries = data.sites.loc[opened, "country"].to_numpy()
            idx = np.array([names.index(c) for c in countries])
            beta = alpha[:, None] / post["mu_country"][:, idx]
            beta_new = alpha / post["mu"]
        else:
            a, b = self._prior_single()
            alpha = np.full(n, a)
            beta = np.full((n, 1), b)
            beta_new = np.full(n, b)
        shape = alpha[:, None] + counts.sum(axis=1)[None, :]
        rate = beta + (eps[:, None, :] * exposure[None, :, :]).sum(axis=2)
        lam = rng.gamma(shape, 1.0 / rate)
        return lam, alpha, beta_new

    def _delays(self, planned_gap: np.ndarray, n_draws: int, rng) -> np.ndarray:
        """Activation day (since as_of) for sites not yet open, per draw; inf = never opens."""
        sites = self.data_.sites
        both = sites["activated_on"].notna() & sites["planned_activation"].notna()
        d = (sites.loc[both, "activated_on"] - sites.loc[both, "planned_activation"]).dt.days
        d = d.to_numpy(float)
        m0, k0, a0, b0 = 60.0, 2.0, 2.0, 3600.0  # prior: mean 60 d, sd about 60 d, 2 sites' worth
        n = len(d)
        mean = d.mean() if n else 0.0
        kn, an = k0 + n, a0 + n / 2
        mn = (k0 * m0 + n * mean) / kn
        bn = b0 + 0.5 * ((d - mean) ** 2).sum() + k0 * n * (mean - m0) ** 2 / (2 * kn)
        var = stats.invgamma.rvs(an, scale=bn, size=n_draws, random_state=rng)
        mu = rng.normal(mn, np.sqrt(var / kn))
        sd = np.sqrt(var)[:, None]
        # delay > elapsed: planned date + delay is after as_of (the site is not open yet)
        low = stats.norm.cdf((-planned_gap[None, :] - mu[:, None]) / sd)
        u = low + (1 - low) * rng.random((n_draws, len(planned_gap)))
        delay = mu[:, None] + sd * stats.norm.ppf(np.clip(u, 1e-12, 1 - 1e-12))
        start = planned_gap[None, :] + delay  # days after as_of
        p_never = rng.beta(*self.p_never, size=(n_draws, 1))
        return np.where(rng.random(start.shape) < p_never, np.inf, np.maximum(start, 0.0))

    # --- forecasting ------------------------------------------------------------------------
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
        pick = None
        n_post = len(_pymc.stacked(self.idata, next(iter(self.idata.posterior.data_vars))))
        if draws is not None:
            if draws < 1:
                raise InputError(f"draws must be >= 1, got {draws}")
            pick = resample_index(n_post, draws, rng)
        lam_open, alpha, beta_new = self._site_rates(rng, pick)
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
        weight = _ramp_integral(t - act, self.ramp_days) - _ramp_integral(
            t - 1 - act, self.ramp_days
        )
        weight = np.where(t - 1 < closed, weight, 0.0) * data.open_share[opened][:, None]
        for p_start, p_end in self.pauses:
            weight[:, (days >= pd.Timestamp(p_start)) & (days <= pd.Timestamp(p_end))] = 0.0
        month_of_day = np.searchsorted(months, days, side="right") - 1
        exposure = _sum_by_month(weight, month_of_day, len(months))
        # month factors shared by every site: open days (pauses) and the calendar effect
        factor = np.ones((n_draws, len(months)))
        history = data.monthly_open_share
        if len(history) and history.min() < 1:
            # open days vary by month (pauses): each future month takes the open share of a
            # past month drawn at random, relative to the average share in ``exposure``
            picked = history[rng.integers(0, len(history), size=factor.shape)]
            factor *= picked / max(float(np.mean(data.open_share[opened])), 1e-9)
        post = self._posterior(pick)
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
            before = (
                data.counts[opened].sum(axis=1)[None, :, None] + np.cumsum(per_site, 2) - per_site
            )
            capped = np.clip(caps[None, :, None] - before, 0, per_site)
            enrolled = np.where(np.isfinite(caps)[None, :, None], capped, per_site).sum(axis=1)
            enrolled = enrolled.astype(np.int64)
        else:
            enrolled = rng.poisson((lam_open @ exposure) * factor * calendar)
        # sites not open yet: activation per draw, rate from the population (no caps)
        pending = ~opened
        if pending.any():
            gap = (sites.loc[pending, "planned_activation"] - as_of).dt.days.to_numpy(float)
            start = self._delays(gap, n_draws, rng)  # (draw, site) days after as_of
            lam_new = rng.gamma(alpha[:, None], 1.0 / beta_new[:, None], size=start.shape)
            share = float(np.mean(data.open_share[opened]))
            bounds = np.maximum((months - as_of).days.to_numpy(float) - 1, 0.0)
            bounds = np.r_[bounds, float((end_day - as_of).days)]
            cum = _ramp_integral(bounds[None, None, :] - start[:, :, None], self.ramp_days)
            new_exposure = np.diff(cum, axis=2) * share
            new_rate = (lam_new[:, :, None] * new_exposure).sum(axis=1) * calendar
            enrolled = enrolled + rng.poisson(new_rate)
        self._pick = pick
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
        if observed >= self.target:
            out[:] = np.datetime64(self.data_.as_of, "ns")
            return xr.DataArray(out, dims="draw", name="time_to_target")
        reached = cum >= self.target
        hit = reached.any(axis=1)
        m = reached.argmax(axis=1)
        rows = np.arange(len(m))
        before = cum[rows, m] - enrolled[rows, m]
        frac = (self.target - before) / np.maximum(enrolled[rows, m], 1)
        as_of = self.data_.as_of
        starts = np.maximum((months - as_of).days.to_numpy(float) - 1, 0.0)
        lengths = (months + pd.offsets.MonthEnd(0) - as_of).days.to_numpy(float) - starts
        day = starts[m] + frac * lengths[m]
        dates = np.datetime64(as_of, "ns") + (day * 86400e9).astype("timedelta64[ns]")
        out[hit] = dates[hit]
        return xr.DataArray(out, dims="draw", name="time_to_target")

    def probability_by(self, date) -> float:
        """P(target reached on or before ``date``)."""
        ttt = self.time_to_target().values
        return float((ttt <= np.datetime64(pd.Timestamp(date), "ns")).mean())

    def sites_needed(
        self, by, probability: float = 0.8, max_sites: int = 100, seed: int | None = None
    ) -> int | None:
        """Fewest additional sites (opening after the learned activation delay from ``as_of``)
        so that P(target reached by ``by``) >= ``probability``; None if ``max_sites`` fail."""
        if self.target is None:
            raise InputError("sites_needed needs the model's target")
        fc = self._forecast()
        by = pd.Timestamp(by)
        months = pd.DatetimeIndex(fc["month"].values)
        if by > months[-1] + pd.offsets.MonthEnd(0):
            raise InputError(f"sites_needed: {by.date()} is beyond the forecast horizon")
        rng = np.random.default_rng((self.seed if seed is None else seed) + 17)
        # enrolled by `by` with the current sites (uncapped), draws
        cum = fc["cumulative_enrolled"].values
        idx = np.searchsorted(months, by, side="right") - 1
        base = cum[:, idx] if idx >= 0 else np.full(cum.shape[0], fc.attrs["observed_enrolled"])
        _, alpha, beta_new = self._site_rates(rng, getattr(self, "_pick", None))
        n = len(alpha)
        days_left = (by - self.data_.as_of).days
        start = self._delays(np.zeros(max_sites), n, rng)
        share = float(np.mean(self.data_.open_share))
        exposure = _ramp_integral(days_left - start, self.ramp_days) * share
        lam = rng.gamma(alpha[:, None], 1.0 / beta_new[:, None], size=start.shape)
        extra = np.cumsum(rng.poisson(lam * np.where(np.isfinite(exposure), exposure, 0.0)), axis=1)
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
        """Fan chart of monthly enrolled with the observed history."""
        import matplotlib.pyplot as plt

        fc = self._forecast()
        data = self.data_
        if ax is None:
            _, ax = plt.subplots(figsize=(9, 3.5))
        ax.bar(data.months, data.counts.sum(axis=0), width=25, color="grey", label="observed")
        q = np.quantile(fc["enrolled"].values, [0.1, 0.5, 0.9], axis=0)
        ax.fill_between(fc["month"].values, q[0], q[2], alpha=0.3, step="mid", label="P10-P90")
        ax.plot(fc["month"].values, q[1], drawstyle="steps-mid", label="P50")
        ax.set_ylabel("enrolled per month")
        ax.legend(loc="upper left", frameon=False)
        return ax

    def plot_time_to_target(self, ax=None):
        """Histogram of the date the target is reached."""
        import matplotlib.pyplot as plt

        ttt = self.time_to_target().values
        ttt = ttt[~np.isnat(ttt)]
        if ax is None:
            _, ax = plt.subplots(figsize=(8, 3))
        ax.hist(pd.DatetimeIndex(ttt), bins=40)
        ax.set_xlabel("date target reached")
        return ax
