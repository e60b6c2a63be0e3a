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

Sites not yet open (modelling choices, stated):

* Activation: planned date + delay, delay ~ Normal(m, s) with a normal-inverse-gamma prior
  (mean 60 days, sd 60 days, worth 2 sites; an assumption); a site never opens with
  probability ``p_never`` (Beta prior, default Beta(1, 9): 10%, an assumption). Sites with a
  planned and an actual activation are observed delays and planned sites that opened. A
  pending site is censored: it never opens, or its delay exceeds the days elapsed since its
  plan. The posterior of (p_never, m, s) and of each pending site's fate uses all three
  kinds of evidence (data augmentation, :meth:`EnrollmentModel._activation`), so a site long
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

``sites_needed`` evaluates enrollment at its ``by`` date itself, spreading the patients of
the month holding it evenly over its days as :meth:`EnrollmentModel.time_to_target` does.
Screen failure (screened -> enrolled) and dropout (enrolled -> treated) are binomial with
Beta(1, 1) priors pooled across sites, conjugate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from forecast import _pymc
from forecast._dist import norm_isf, norm_sf
from forecast.draws import manufacture_starts, resample_index
from forecast.errors import InputError

if TYPE_CHECKING:
    import pymc as pm

__all__ = ["EnrollmentModel", "EnrollmentData", "enrollment_data", "planning_prior"]

DAYS_PER_MONTH = 365.25 / 12
ALPHA_PRIOR = (np.log(2.0), 1.0)  # LogNormal prior of the between-site gamma shape alpha


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
    # ISO dates only: a day-first export (05/03/2026) would otherwise be read month-first
    # whenever the day is 12 or less, silently scrambling the dates
    parsed = pd.to_datetime(raw, errors="coerce", format="ISO8601")
    bad = parsed.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{source}: row {i + 2}: {column} {raw.iloc[i]!r} is not a date written YYYY-MM-DD"
        )
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
    ``planned_activation``, ``closed_on`` (the first day it no longer recruits), ``cap``.
    Without ``sites``, every site in the data is
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
    if daily.empty and sites is None:
        source = "patients" if patients is not None else "counts"
        raise InputError(
            f"{source}: no rows, and no sites table: no site to learn a rate from (give the "
            "sites table when open sites have enrolled nobody yet)"
        )
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
    import pytensor.tensor as pt

    mean_exposure = exposure * eps[None, :]
    total = pt.sum(counts, axis=1)
    return pt.sum(
        pt.gammaln(alpha + total)
        - pt.gammaln(alpha)
        + alpha * pt.log(beta)
        - (alpha + total) * pt.log(beta + pt.sum(mean_exposure, axis=1))
    ) + pt.sum(counts * pt.log(pt.switch(counts > 0, mean_exposure, 1.0)))


class EnrollmentModel(_pymc.Fitted):
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
        self.target_accept = float(target_accept)
        self.planning = planning
        self.calendar_effect = calendar_effect
        self.ramp_days = float(ramp_days)
        self.pauses = list(pauses)
        self.p_never = p_never
        self.single_site_prior = single_site_prior
        self.draws, self.tune, self.chains, self.seed = draws, tune, chains, seed
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
        _pymc.save_idata(self._idata, path, {"config": self.config(), "data": data})
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
            self._idata = self._closed_form(counts_o, exposure_o)
            return self
        model = self.build_model(counts_o, exposure_o, data.sites.loc[opened, "country"].to_numpy())
        self._idata = _pymc.sample(
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
        import pytensor.tensor as pt

        pm = _pymc.pymc()
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
                alpha = pm.LogNormal("alpha", *ALPHA_PRIOR)
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

    def _site_rates(self, rng, pick=None) -> tuple[np.ndarray, dict[str, Any]]:
        """Per draw: rates of open sites (conjugate posterior) and the population new sites
        draw their rates from (see :meth:`_new_site_rates`)."""
        data = self.data_
        post = self._posterior(pick)
        opened = ~data.sites["activated_on"].isna().to_numpy()
        counts, exposure = data.counts[opened], data.exposure[opened]
        if "site_rate" in post:  # closed form, one site
            lam = post["site_rate"][:, None]
            return lam, {"single": lam[:, 0]}
        eps = (
            post["eps"]
            if "eps" in post
            else np.ones((len(next(iter(post.values()))), counts.shape[1]))
        )
        n = len(eps)
        if "alpha" in post:
            alpha = post["alpha"]
            names = list(self._idata.posterior["country"].values)
            countries = data.sites.loc[opened, "country"].to_numpy()
            idx = np.array([names.index(c) for c in countries])
            beta = alpha[:, None] / post["mu_country"][:, idx]
        else:  # one site with a calendar effect: its rate has the fixed single-site prior
            a, b = self._prior_single()
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

    @staticmethod
    def _new_site_rates(population: dict[str, Any], countries: Sequence[str], rng) -> np.ndarray:
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

    def _activation(self, n_draws: int, rng, sweeps: int = 25) -> dict[str, np.ndarray]:
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
        sites = self.data_.sites
        as_of = self.data_.as_of
        both = sites["activated_on"].notna() & sites["planned_activation"].notna()
        d = (sites.loc[both, "activated_on"] - sites.loc[both, "planned_activation"]).dt.days
        d = d.to_numpy(float)
        pending = sites["activated_on"].isna().to_numpy()
        elapsed = (as_of - sites.loc[pending, "planned_activation"]).dt.days.to_numpy(float)
        m0, k0, a0, b0 = 60.0, 2.0, 2.0, 3600.0  # prior: mean 60 d, sd about 60 d, 2 sites' worth
        a_never, b_never = self.p_never

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
            mu, sd = delay_params(
                n_aug, (delay * opens).sum(axis=1), (delay**2 * opens).sum(axis=1)
            )
        planned = (sites.loc[pending, "planned_activation"] - as_of).dt.days.to_numpy(float)
        start = np.maximum(planned[None, :] + delay, 0.0)
        return {
            "p_never": p_never,
            "mu": mu,
            "sd": sd,
            "start": np.where(never, np.inf, start),
        }

    def _future_exposure(
        self, start: np.ndarray, closed: np.ndarray, bounds: np.ndarray
    ) -> np.ndarray:
        """Weighted open days (draw, site, period) of sites opening on continuous day
        ``start`` (draw, site; days after the end of ``as_of``, inf: never) and closing at
        ``closed`` (site,; inf: never), in periods [bounds[k], bounds[k + 1]): the ramp-up,
        closure and the declared pauses applied exactly."""
        as_of = self.data_.as_of
        lo, hi = bounds[0], bounds[-1]
        cuts = [bounds]
        for p_start, p_end in self.pauses:
            a = (pd.Timestamp(p_start) - as_of).days - 1.0  # day d covers [t - 1, t)
            b = float((pd.Timestamp(p_end) - as_of).days)
            cuts.append(np.clip([a, b], lo, hi))
        grid = np.unique(np.concatenate(cuts))
        mid = (grid[:-1] + grid[1:]) / 2
        paused = np.zeros(len(mid), bool)
        for p_start, p_end in self.pauses:
            a = (pd.Timestamp(p_start) - as_of).days - 1.0
            b = float((pd.Timestamp(p_end) - as_of).days)
            paused |= (mid > a) & (mid < b)
        until = np.minimum(grid[None, None, :], closed[None, :, None])
        cum = _ramp_integral(until - start[:, :, None], self.ramp_days)
        pieces = np.where(paused, 0.0, np.diff(cum, axis=2))
        pieces = np.where(np.isfinite(pieces), pieces, 0.0)
        first = np.searchsorted(grid, bounds[:-1])
        return np.add.reduceat(pieces, first, axis=2) if len(mid) else pieces

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
        n_post = len(_pymc.stacked(self._idata, next(iter(self._idata.posterior.data_vars))))
        if draws is not None:
            if draws < 1:
                raise InputError(f"draws must be >= 1, got {draws}")
            pick = resample_index(n_post, draws, rng)
        lam_open, population = self._site_rates(rng, pick)
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
        # closed_on is the first day without recruitment (as in the fit): day t counts if t < it
        weight = np.where(t < closed, weight, 0.0) * data.open_share[opened][:, None]
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
        # sites not open yet: activation per draw, rate from the population the data inform
        # (own country), declared pauses and planned closures applied (no caps)
        pending = ~opened
        if pending.any():
            start = self._activation(n_draws, rng)["start"]  # (draw, site) days after as_of
            lam_new = self._new_site_rates(population, sites.loc[pending, "country"], rng)
            share = float(np.mean(data.open_share[opened]))
            bounds = np.maximum((months - as_of).days.to_numpy(float) - 1, 0.0)
            bounds = np.r_[bounds, float((end_day - as_of).days)]
            ends = (sites.loc[pending, "closed_on"] - as_of).dt.days.to_numpy(float) - 1
            ends = np.where(np.isnan(ends), np.inf, ends)
            new_exposure = self._future_exposure(start, ends, bounds) * share
            new_rate = (lam_new[:, :, None] * new_exposure).sum(axis=1) * calendar
            enrolled = enrolled + rng.poisson(new_rate)
        self._pick = pick
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

    def _month_spans(self, months: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
        """Start (continuous days after the end of ``as_of``) and length in days of each
        forecast month; the first starts after ``as_of``, the last ends with the forecast."""
        as_of = self.data_.as_of
        starts = np.maximum((months - as_of).days.to_numpy(float) - 1, 0.0)
        ends = (months + pd.offsets.MonthEnd(0) - as_of).days.to_numpy(float)
        ends[-1] = min(ends[-1], float((self._end_day - as_of).days))
        return starts, ends - starts

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
            out[:] = np.datetime64(self._observed_target_day(), "ns")
            return xr.DataArray(out, dims="draw", name="time_to_target")
        reached = cum >= self.target
        hit = reached.any(axis=1)
        m = reached.argmax(axis=1)
        rows = np.arange(len(m))
        before = cum[rows, m] - enrolled[rows, m]
        frac = (self.target - before) / np.maximum(enrolled[rows, m], 1)
        starts, lengths = self._month_spans(months)
        day = starts[m] + frac * lengths[m]
        dates = np.datetime64(self.data_.as_of, "ns") + (day * 86400e9).astype("timedelta64[ns]")
        out[hit] = dates[hit]
        return xr.DataArray(out, dims="draw", name="time_to_target")

    def _observed_target_day(self) -> pd.Timestamp:
        """The day the data reached the target: the month whose count crosses it, with its
        patients spread evenly over the month's days up to ``as_of``."""
        data = self.data_
        per_month = data.counts.sum(axis=0)
        cum = np.cumsum(per_month)
        m = int(np.argmax(cum >= self.target))
        before = cum[m] - per_month[m]
        start = data.months[m]
        end = min(start + pd.offsets.MonthEnd(0), data.as_of) + pd.Timedelta(days=1)
        frac = (self.target - before) / max(per_month[m], 1)
        return (start + (end - start) * frac).normalize()

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
        starts, lengths = self._month_spans(months)
        x = float((by - as_of).days)
        m = min(int(np.searchsorted(starts + lengths, x)), len(months) - 1)
        enrolled = self._uncapped
        base = (
            fc.attrs["observed_enrolled"]
            + enrolled[:, :m].sum(axis=1)
            + enrolled[:, m] * (x - starts[m]) / lengths[m]
        )
        n = len(base)
        act = self._activation(n, rng)
        mu, sd = act["mu"][:, None], act["sd"][:, None]
        still = norm_sf(-mu / sd)  # delay > 0: planned for as_of, not open yet
        u = rng.random((n, max_sites))
        delay = mu + sd * norm_isf(np.maximum(u * still, 1e-300))
        never = rng.random((n, max_sites)) < act["p_never"][:, None]
        start = np.where(never, np.inf, np.maximum(delay, 0.0))
        opened = ~self.data_.sites["activated_on"].isna().to_numpy()
        share = float(np.mean(self.data_.open_share[opened]))
        exposure = self._future_exposure(start, np.full(max_sites, np.inf), np.array([0.0, x]))
        lam = self._new_site_rates(self._population, [country] * max_sites, rng)
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
