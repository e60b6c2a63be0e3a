"""Probability and timing of approval: hierarchical phase-transition model plus phase durations.

Model (one benchmark table at a time; tables are views of the same transitions, so two are
never put in one likelihood)::

    successes[g, k] ~ Binomial(n[g, k], p[g, k])
    logit p[g, k]   = mu[k] + sigma[k] * z[g, k]         z ~ Normal(0, 1)   (non-centred)
    mu[k] ~ Normal(0, 1.5)        sigma[k] ~ HalfNormal(1)

for groups g of the table and steps k (phase1->phase2, phase2->phase3, phase3->filing,
filing->approval). A table with one group has no population to shrink toward: its p[k] is
invlogit(mu[k]). A group not in the table is refused (a typo is not a new group) unless asked
for with ``new_group=True``: it then gets the population predictive (a new z per draw). An
external estimate of one group's likelihood of approval (``loa_evidence``, an estimate with a
95% interval) adds a soft constraint ``weight * log Normal(logit LoA | c, s)`` on
LoA = prod_k p[g, k], with c and s the logit of the estimate and the logit interval's half
width / 1.96.

The phase durations and the FDA review are in :mod:`forecast.phase.durations`; simulating a
program in :mod:`forecast.phase.simulate`.

References
----------
Biotechnology Innovation Organization, Informa Pharma Intelligence and QLS Advisors (2021).
Clinical Development Success Rates and Contributing Factors 2011-2020 (the bundled counts;
``data/SOURCES.md``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special

from forecast import _pymc
from forecast._dist import binom_logpmf, norm_ppf
from forecast.data import phase_durations, phase_transitions, review_times
from forecast.errors import InputError
from forecast.phase.data import (
    ALL,
    PHASES,
    STEPS,
    TOTAL,
    duration_groups,
    durations_table,
    phase_index,
    phase_means,
    step_index,
    transition_counts,
)
from forecast.phase.durations import (
    FILING,
    DurationPriors,
    DurationSpec,
    ReviewSpec,
    review_spec,
)
from forecast.phase.simulate import (
    DAY_UNITS,
    DAYS_PER_YEAR,
    EPOCH,
    PIVOTAL_PHASES,
    approval_bands,
    epoch_day,
    minimum_years,
    month_starts,
    pass_probabilities,
    phase_end_days,
    ppq_days,
    survivors,
)
from forecast.sampling import SamplerConfig, SamplerSettings

if TYPE_CHECKING:
    import pymc as pm

__all__ = ["PhaseTransitionModel", "build_model"]

Z975 = norm_ppf(0.975)


def build_model(
    groups: Sequence[str],
    n: np.ndarray,
    y: np.ndarray,
    loa_evidence: Mapping[str, Any] | None = None,
) -> pm.Model:
    """The hierarchical binomial model as a plain ``pm.Model`` (see module docstring)."""
    pm = _pymc.pymc()
    coords = {"group": list(groups), "step": list(STEPS)}
    with pm.Model(coords=coords) as model:
        trials = pm.Data("n", n, dims=("group", "step"))
        mu = pm.Normal("mu", 0.0, 1.5, dims="step")
        if len(groups) > 1:
            sigma = pm.HalfNormal("sigma", 1.0, dims="step")
            z = pm.Normal("z", 0.0, 1.0, dims=("group", "step"))
            logit_p = mu + sigma * z
        else:  # one group (the "all" table): no population to shrink toward, sigma unidentified
            logit_p = pm.math.ones((1, 1)) * mu
        p = pm.Deterministic("p", pm.math.invlogit(logit_p), dims=("group", "step"))
        observed = pm.Data("successes_observed", y, dims=("group", "step"))
        pm.Binomial("successes", n=trials, p=p, observed=observed, dims=("group", "step"))
        if loa_evidence:
            g = list(groups).index(loa_evidence["group"])
            centre, scale = _logit_normal(loa_evidence)
            loa = pm.math.prod(p[g])
            logit_loa = pm.math.logit(loa)
            pm.Potential(
                "loa_evidence",
                float(loa_evidence.get("weight", 1.0))
                * pm.logp(pm.Normal.dist(centre, scale), logit_loa),
            )
    return model


def _logit_normal(evidence: Mapping[str, Any]) -> tuple[float, float]:
    """Centre and scale on the logit scale of an estimate with a 95% interval."""
    low, high = evidence["ci95"]
    estimate = evidence["estimate"]
    if not 0 < low < estimate < high < 1:
        raise InputError(
            f"loa_evidence: need 0 < low < estimate < high < 1, got {estimate} ({low}, {high})"
        )
    return float(special.logit(estimate)), float(
        (special.logit(high) - special.logit(low)) / (2 * Z975)
    )


class PhaseTransitionModel(SamplerSettings, _pymc.Fitted):
    """Draws of whether and when a program is approved.

    Parameters
    ----------
    table
        Benchmark table: ``"all"``, ``"area"``, ``"modality"``, ``"oncology_subtype"`` or
        ``"population"`` (or a table of the user's own counts given to :meth:`fit`).
    loa_evidence
        Optional external estimate of one group's likelihood of approval from phase I, e.g.
        ``{"group": "CAR-T", "estimate": 0.136, "ci95": (0.073, 0.239), "weight": 1.0}``; it
        enters as a logit-normal soft constraint scaled by ``weight``.
    duration_dispersion, dispersion_sd, median_sd, speed_sd
        Phase-duration priors (:mod:`forecast.phase.durations`); ``duration_dispersion=0``,
        ``median_sd=0`` and ``speed_sd=0`` make durations fixed at the benchmark means.
    draws, tune, chains, seed, target_accept
        NUTS settings, kept in ``sampler`` (:class:`~forecast.sampling.SamplerConfig`).

    Examples
    --------
    >>> model = PhaseTransitionModel(table="modality").fit()          # doctest: +SKIP
    >>> model.likelihood_of_approval("CAR-T").median()                # doctest: +SKIP
    """

    def __init__(
        self,
        table: str = "modality",
        *,
        loa_evidence: Mapping[str, Any] | None = None,
        duration_dispersion: float = 0.4,
        dispersion_sd: float = 0.25,
        median_sd: float = 0.1,
        speed_sd: float = 0.35,
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 2,
        seed: int = 0,
        target_accept: float = 0.95,
    ):
        if min(duration_dispersion, dispersion_sd, median_sd, speed_sd) < 0:
            raise InputError("duration priors: dispersion and sds must be >= 0")
        self.table = table
        self.loa_evidence = dict(loa_evidence) if loa_evidence else None
        self.duration_dispersion = float(duration_dispersion)
        self.dispersion_sd = float(dispersion_sd)
        self.median_sd = float(median_sd)
        self.speed_sd = float(speed_sd)
        self.sampler = SamplerConfig(draws, tune, chains, seed, float(target_accept))
        self._idata = None
        self.durations_: pd.DataFrame | None = None
        self.simulation_: xr.Dataset | None = None
        self._shifts: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def with_durations(
        self,
        *,
        duration_dispersion: float,
        median_sd: float,
        dispersion_sd: float | None = None,
        speed_sd: float | None = None,
    ) -> PhaseTransitionModel:
        """A copy sharing this posterior with other phase-duration priors (no refit)."""
        copy = type(self)(
            **{
                **self.config(),
                "duration_dispersion": duration_dispersion,
                "median_sd": median_sd,
                "dispersion_sd": self.dispersion_sd if dispersion_sd is None else dispersion_sd,
                "speed_sd": self.speed_sd if speed_sd is None else speed_sd,
            }
        )
        copy._idata, copy.durations_ = self._idata, self.durations_
        return copy

    @property
    def duration_priors(self) -> DurationPriors:
        """The phase-duration priors of this model (its current settings)."""
        return DurationPriors(
            self.duration_dispersion,
            self.dispersion_sd,
            self.median_sd,
            self.speed_sd,
        )

    # --- config and persistence ---------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "loa_evidence": self.loa_evidence,
            "duration_dispersion": self.duration_dispersion,
            "dispersion_sd": self.dispersion_sd,
            "median_sd": self.median_sd,
            "speed_sd": self.speed_sd,
            "draws": self.draws,
            "tune": self.tune,
            "chains": self.chains,
            "seed": self.seed,
            "target_accept": self.target_accept,
        }

    def save(self, path: str | Path) -> Path:
        """Posterior, data and config (JSON attrs) to NetCDF."""
        self._check_fitted()
        path = Path(path)
        config = {**self.config(), "durations": self.durations_.to_dict("records")}
        _pymc.save_idata(self._idata, path, config)
        return path

    @classmethod
    def load(cls, path: str | Path) -> PhaseTransitionModel:
        idata, config = _pymc.load_idata(path)
        # the review is drawn per group at simulation time (forecast.phase.durations), not
        # fitted: a model-wide priority share saved by an earlier version is not a setting
        config.pop("priority_review", None)
        durations = durations_table(pd.DataFrame(config.pop("durations")))
        model = cls(**config)
        model.idata, model.durations_ = idata, durations
        return model

    # --- fitting --------------------------------------------------------------------------
    def fit(
        self, counts: pd.DataFrame | None = None, durations: pd.DataFrame | None = None
    ) -> PhaseTransitionModel:
        """Sample the posterior for the model's table (bundled BIO 2021 data by default)."""
        source = "counts" if counts is not None else "phase_transitions_bio2021.csv"
        frame = phase_transitions() if counts is None else counts
        groups, n, y = transition_counts(frame, self.table, source)
        if self.loa_evidence and self.loa_evidence.get("group") not in groups:
            raise InputError(
                f"loa_evidence: group {self.loa_evidence.get('group')!r} is not in table "
                f"{self.table!r}; known groups: {', '.join(groups)}"
            )
        self.durations_ = durations_table(phase_durations() if durations is None else durations)
        model = build_model(groups, n, y, self.loa_evidence)
        self._idata = self.sampler.sample(model)
        self._idata.posterior.attrs["pmcap_config"] = json.dumps(self.config(), default=str)
        return self

    def diagnostics(self) -> dict[str, Any]:
        self._check_fitted()
        names = [v for v in ("mu", "sigma", "z") if v in self._idata.posterior]
        return _pymc.diagnostics(self._idata, names)

    @property
    def groups(self) -> list[str]:
        self._check_fitted()
        return [str(g) for g in self._idata.posterior["group"].values]

    @property
    def duration_groups(self) -> list[str]:
        """Groups with phase durations of their own (phase means, or a modality's total years
        from phase I to approval); other groups of the table use "All indications"."""
        self._check_fitted()
        return duration_groups(self.durations_)

    def _check_fitted(self) -> None:
        if self._idata is None:
            raise RuntimeError("call fit() first")

    def _check_group(self, group: str, new_group: bool) -> None:
        known = self.groups
        if new_group and group in known:
            raise InputError(
                f"group {group!r} is a group of table {self.table!r}: drop new_group=True to use "
                "its posterior"
            )
        if not new_group and group not in known:
            raise InputError(
                f"unknown group {group!r} for table {self.table!r}; known groups: "
                f"{', '.join(known)}. To predict a group not in the table (population "
                "predictive), pass new_group=True"
            )

    # --- posterior quantities -----------------------------------------------------------
    def transition_probabilities(
        self,
        group: str,
        *,
        new_group: bool = False,
        evidence: Mapping[str, tuple[int, int]] | None = None,
        step_priors: Mapping[str, tuple[float, float]] | None = None,
        seed: int = 0,
    ) -> xr.DataArray:
        """Posterior draws of the four step probabilities of ``group`` (dims draw, step).

        ``group`` must be a group of the table (:attr:`groups`); with ``new_group=True`` it
        must not be, and gets the population predictive. ``evidence`` maps a step to the
        program's own ``(successes, trials)`` and reweights the draws (importance resampling);
        ``step_priors`` maps a step to a Beta(a, b) that replaces it outright.
        """
        self._check_fitted()
        self._check_group(group, new_group)
        rng = np.random.default_rng(seed)
        if not new_group:
            p = _pymc.stacked(self._idata, "p")[:, self.groups.index(group), :]
        elif "sigma" not in self._idata.posterior:
            raise InputError(
                f"group {group!r} is not in table {self.table!r}, whose single group gives no "
                "population to predict a new group from; use a table with several groups"
            )
        else:
            mu, sigma = _pymc.stacked(self._idata, "mu"), _pymc.stacked(self._idata, "sigma")
            p = special.expit(mu + sigma * rng.standard_normal(mu.shape))
        ess = float(len(p))
        if evidence:
            logw = np.zeros(len(p))
            for step, (k, n) in evidence.items():
                j = step_index(step)
                if not 0 <= k <= n or n <= 0 or k != int(k) or n != int(n):
                    raise InputError(
                        f"evidence[{step!r}]: need whole numbers 0 <= successes <= trials, "
                        f"trials > 0; got ({k}, {n})"
                    )
                logw += binom_logpmf(k, n, p[:, j])
            w = np.exp(logw - logw.max())
            w /= w.sum()
            ess = float(1.0 / np.sum(w**2))
            p = p[rng.choice(len(p), size=len(p), p=w)]
        if step_priors:
            p = p.copy()
            for step, (a, b) in step_priors.items():
                if not (a > 0 and b > 0):
                    raise InputError(f"step_priors[{step!r}]: Beta needs a > 0 and b > 0")
                p[:, step_index(step)] = rng.beta(a, b, size=len(p))
        return xr.DataArray(
            p,
            dims=("draw", "step"),
            coords={"draw": np.arange(len(p)), "step": list(STEPS)},
            name="p",
            attrs={"group": group, "importance_ess": ess, "units": "probability"},
        )

    def likelihood_of_approval(self, group: str, from_phase: str = "phase1", **kw) -> xr.DataArray:
        """Draws of P(approval | program now in ``from_phase``) = product of remaining steps."""
        start = phase_index(from_phase)
        p = self.transition_probabilities(group, **kw)
        return p.isel(step=slice(start, None)).prod("step").rename("loa")

    def summary(self, groups: Sequence[str] | None = None) -> pd.DataFrame:
        """Benchmark vs posterior per group and step, plus ``loa`` (from phase I)."""
        self._check_fitted()
        for group in groups or []:
            self._check_group(group, new_group=False)
        n = self._idata.constant_data["n"].values
        y = self._idata.observed_data["successes"].values
        p = _pymc.stacked(self._idata, "p")
        rows = []
        for g, group in enumerate(self.groups):
            if groups is not None and group not in groups:
                continue
            with np.errstate(invalid="ignore", divide="ignore"):
                rate = y[g] / n[g]
            for k, step in enumerate([*STEPS, "loa"]):
                draws = p[:, g, k] if k < 4 else p[:, g, :].prod(axis=1)
                bench = rate[k] if k < 4 else float(np.prod(rate))
                rows.append(
                    {
                        "group": group,
                        "step": step,
                        "n": n[g, k] if k < 4 else np.nan,
                        "benchmark": bench,
                        "mean": draws.mean(),
                        "sd": draws.std(),
                        "p5": np.quantile(draws, 0.05),
                        "p50": np.median(draws),
                        "p95": np.quantile(draws, 0.95),
                    }
                )
        return pd.DataFrame(rows)

    # --- simulation -----------------------------------------------------------------------
    def simulate(
        self,
        current_phase: str,
        phase_start: str | pd.Timestamp,
        draws: int = 1000,
        seed: int = 0,
        horizon_end: str | pd.Timestamp | None = None,
        *,
        group: str,
        new_group: bool = False,
        as_of: str | pd.Timestamp | None = None,
        duration_group: str | None = None,
        evidence: Mapping[str, tuple[int, int]] | None = None,
        step_priors: Mapping[str, tuple[float, float]] | None = None,
        ppq_lots: int = 0,
        ppq_months_before_filing: int = 0,
        min_years: Mapping[str, float | np.ndarray | Callable] | None = None,
        review: str | None = None,
        pivotal: str = "phase3",
    ) -> xr.Dataset:
        """Per draw: approved or not, and the month each phase ends, filing and approval.

        ``group`` and ``new_group`` as in :meth:`transition_probabilities`; ``duration_group``
        (default ``group``) picks the phase durations (:mod:`forecast.phase.durations`).
        ``phase_start`` is when the program entered ``current_phase``. With ``as_of``, the
        program is known to be still in it at ``as_of``: its parameters, enrollment windows,
        outcome and time in the phase are drawn given that, exactly, by rejection
        (:func:`forecast.phase.simulate.survivors`: a program overdue is likely a slow one and,
        while its enrollment is under way, likely to pass); in the review, its time given that
        it has lasted that long (the review has no program-level parameters).
        ``attrs["duration_ess"]`` is the number of draws drawn exactly (all but those whose
        survival is under 1 in 2000). ``duration_median_years`` and ``duration_sigma`` are the
        lognormal parameters of phases
        I-III; in the ``filing`` column, the review's mean years and NaN
        (:mod:`forecast.phase.durations`).
        Events after ``horizon_end`` are NaT and ``approved`` means approved by then.
        ``ppq_lots`` (``ppq_month``, ``ppq_lots``) are committed at risk
        ``ppq_months_before_filing`` months before the filing the draw would make if phase III
        passed (``end_if_passed_day``), no earlier than phase III starts, and run in every draw
        that has not failed phase III in a month before then, whether or not it files later
        (non-anticipation: :func:`forecast.draws.at_risk_start`); a month after
        ``horizon_end`` is NaT, with no lots.
        ``end_if_passed_day`` (draw, phase) is the day each phase the program entered would
        end if it passed: ``phase_end_day`` except in a draw that fails a phase sooner than
        its enrollment window.
        ``min_years`` (phase -> the trial's enrollment window in years from the phase's start:
        a number, one per draw, or a sampler ``f(n, rng)`` of ``n`` windows, conditioned with
        the rest on ``as_of``; the windows used are ``min_years`` in the result): a phase the
        program passes lasts ``max(window, D)`` with ``D`` its calibrated time, a phase it
        fails ``D`` (:mod:`forecast.phase.simulate`). ``pivotal`` (``"phase3"`` or
        ``"phase2"``): a pivotal phase II files with ``p[phase2_to_phase3] *
        p[phase3_to_filing]`` after its phase II plus phase III time, with no phase III.
        ``review`` (``"priority"``, ``"standard"``, ``"breakthrough"``; default: the
        group's share) is the program's own review type (:meth:`review_for`); the review's
        parameters are ``attrs["review"]``.
        """
        self._check_fitted()
        c = phase_index(current_phase)
        start = pd.Timestamp(phase_start)
        as_of_ts = start if as_of is None else pd.Timestamp(as_of)
        horizon = None if horizon_end is None else pd.Timestamp(horizon_end)
        if horizon is not None and start > horizon:
            raise InputError(
                f"phase_start {start.date()} is after horizon_end {horizon.date()}: nothing "
                "would happen inside the horizon"
            )
        if as_of_ts < start:
            raise InputError(f"as_of {as_of_ts.date()} is before phase_start {start.date()}")
        if draws <= 0 or ppq_lots < 0 or ppq_months_before_filing < 0:
            raise InputError("draws must be > 0 and the PPQ numbers >= 0")
        if pivotal not in PIVOTAL_PHASES:
            raise InputError(f"pivotal: {pivotal!r}; expected one of {list(PIVOTAL_PHASES)}")
        piv = phase_index(pivotal)
        if c == 2 and piv == 1:
            raise InputError("a program in phase III has phase III as its pivotal phase")
        rng = np.random.default_rng(seed)
        p_all = self.transition_probabilities(
            group, new_group=new_group, evidence=evidence, step_priors=step_priors, seed=seed
        ).values
        spec = self._durations_for(duration_group, group)
        priors = self._priors_for(group, duration_group, review)

        def propose(slots: np.ndarray, gen: np.random.Generator) -> dict[str, np.ndarray]:
            p = p_all[gen.integers(0, len(p_all), size=len(slots))]
            median, sigma = priors.duration_params(spec, len(slots), gen)
            minimum = minimum_years(min_years, slots, gen, piv)
            q = pass_probabilities(p, piv)
            return {"p": p, "q": q, "median": median, "sigma": sigma, "minimum": minimum}

        elapsed = (as_of_ts - start).days / DAYS_PER_YEAR
        if elapsed > 0 and c < FILING:
            world, ess = survivors(propose, draws, c, elapsed, priors, rng, piv)
        else:
            world, ess = propose(np.arange(draws), rng), draws
        p, median, sigma, minimum = world["p"], world["median"], world["sigma"], world["minimum"]
        ends, passed, if_passed = phase_end_days(
            c, (start - EPOCH).days, world, priors, rng, pivotal=piv, elapsed_years=elapsed
        )
        filing = np.where(passed[:, 2], ends[:, 2], np.nan)
        if c == 3:
            filing = np.full(draws, (start - EPOCH).days, float)
        approval = np.where(passed[:, 3], ends[:, 3], np.nan)

        to_month = lambda days: month_starts(days, horizon)  # noqa: E731
        ds = xr.Dataset(
            {
                "approved": ("draw", ~np.isnat(to_month(approval))),
                "approval_month": ("draw", to_month(approval)),
                "filing_month": ("draw", to_month(filing)),
                "phase_end": (("draw", "phase"), to_month(ends)),
                "p": (("draw", "step"), p),
                "duration_median_years": (("draw", "phase"), median),
                "duration_sigma": (("draw", "phase"), sigma),
                "min_years": (("draw", "phase"), minimum),
                "phase_end_day": (("draw", "phase"), ends, {"units": DAY_UNITS}),
                "end_if_passed_day": (("draw", "phase"), if_passed, {"units": DAY_UNITS}),
                "filing_day": ("draw", filing, {"units": DAY_UNITS}),
                "approval_day": ("draw", approval, {"units": DAY_UNITS}),
            },
            coords={"draw": np.arange(draws), "phase": list(PHASES), "step": list(STEPS)},
            attrs={
                "group": group,
                "current_phase": current_phase,
                "phase_start": str(start.date()),
                "as_of": str(as_of_ts.date()),
                "seed": seed,
                "horizon_end": "" if horizon is None else str(horizon.date()),
                "duration_ess": float(ess),
                "review": json.dumps(list(priors.review)),
                "pivotal": pivotal,
                "config": json.dumps(self.config(), default=str),
            },
        )
        if ppq_lots:
            ppq_day = ppq_days(c, start, ends, passed, if_passed, ppq_months_before_filing, piv)
            ppq_m = to_month(ppq_day)
            ds["ppq_month"] = ("draw", ppq_m)
            ds["ppq_lots"] = ("draw", np.where(np.isnat(ppq_m), 0, ppq_lots))
        self.simulation_ = ds
        return ds

    def program_draws(
        self,
        group: str,
        draws: int,
        seed: int = 0,
        *,
        duration_group: str | None = None,
        new_group: bool = False,
        evidence: Mapping[str, tuple[int, int]] | None = None,
        step_priors: Mapping[str, tuple[float, float]] | None = None,
        review: str | None = None,
    ) -> dict[str, Any]:
        """One program's world per draw: step probabilities ``p`` (draw, step) and the
        lognormal phase-duration parameters ``median_years`` (the program's speed included)
        and ``sigma`` (draw, phase) of phases I-III; in the ``filing`` column, the mean years
        of the review, which :meth:`review_years` draws on its own clock, and NaN; ``review``,
        the program's :class:`~forecast.phase.durations.ReviewSpec` (``review`` as in
        :meth:`simulate`).

        The same draws :meth:`simulate` uses, for callers that time phases themselves (a
        registrational trial whose filing follows its own enrollment).
        """
        self._check_fitted()
        rng = np.random.default_rng(seed)
        priors = self._priors_for(group, duration_group, review)
        p, spec = self._program(
            group, draws, rng, seed, duration_group, new_group, evidence, step_priors
        )
        median, sigma = priors.duration_params(spec, draws, rng)
        return {"p": p, "median_years": median, "sigma": sigma, "review": priors.review}

    def _program(
        self,
        group: str,
        draws: int,
        rng: np.random.Generator,
        seed: int,
        duration_group: str | None,
        new_group: bool,
        evidence: Mapping[str, tuple[int, int]] | None,
        step_priors: Mapping[str, tuple[float, float]] | None,
    ) -> tuple[np.ndarray, DurationSpec]:
        """``draws`` step probabilities (draw, step) of one program of ``group``, drawn with
        ``rng`` from :meth:`transition_probabilities`, and its phase-duration spec."""
        p_all = self.transition_probabilities(
            group, new_group=new_group, evidence=evidence, step_priors=step_priors, seed=seed
        ).values
        p = p_all[rng.integers(0, len(p_all), size=draws)]
        return p, self._durations_for(duration_group, group)

    def review_years(self, program: Mapping[str, Any], seed: int = 0) -> np.ndarray:
        """Years from filing to the approval decision per draw (the ``filing`` phase) of a
        :meth:`program_draws` world: PDUFA goal by review type plus delay, independent of the
        program's speed (:mod:`forecast.phase.durations`)."""
        priors = replace(self.duration_priors, review=ReviewSpec(*program["review"]))
        return priors.review_years(program["median_years"][:, FILING], np.random.default_rng(seed))

    def review_for(
        self, group: str, duration_group: str | None = None, review: str | None = None
    ) -> ReviewSpec:
        """The review of a program of ``group`` with its own ``review`` type (``"priority"``,
        ``"standard"``, ``"breakthrough"``), if any: the row of
        ``forecast/reference/review_times.csv`` of ``group``, else of ``duration_group``, else
        All indications' (:func:`~forecast.phase.durations.review_spec`)."""
        table = review_times()
        known = set(table["group"].astype(str))
        name = group if group in known or duration_group is None else duration_group
        return review_spec(table, name, review)

    def _priors_for(
        self, group: str, duration_group: str | None, review: str | None
    ) -> DurationPriors:
        return replace(self.duration_priors, review=self.review_for(group, duration_group, review))

    def _durations_for(self, duration_group: str | None, group: str) -> DurationSpec:
        """Mean years per phase of ``duration_group`` (default: ``group``) and, for a modality
        known by its total years only, the posterior of its shift
        (:meth:`DurationPriors.shift_posterior`), given the group's own review (the review mix
        its published products had), whatever a program's own review type."""
        table = durations_table(self.durations_)
        own = duration_groups(table)
        name = group if duration_group is None else duration_group
        if duration_group is not None and name not in own and name not in self.groups:
            raise InputError(
                f"unknown duration_group {name!r}; groups with durations: {', '.join(own)}; "
                f"any group of table {self.table!r} ({', '.join(self.groups)}) takes "
                f"{ALL!r}"
            )
        if name not in own:  # a group of the table without durations, or a new group
            name = ALL
        total = table[(table["group"] == name) & (table["phase"] == TOTAL)]
        if total.empty:
            return DurationSpec(phase_means(table, name), None, None)
        row = total[total["statistic"] == "median"].iloc[0]
        area = phase_means(table, str(row["borrow_from"]))
        priors = self._priors_for(group, duration_group, None)
        key = (
            name,
            tuple(area),
            float(row["mean_years"]),
            int(row["n_programs"]),
            self.duration_dispersion,
            self.dispersion_sd,
            self.median_sd,
            self.speed_sd,
            tuple(priors.review),
        )
        if key not in self._shifts:
            self._shifts[key] = priors.shift_posterior(
                area, float(row["mean_years"]), int(row["n_programs"])
            )
        return DurationSpec(area, *self._shifts[key])

    def probability_approved_by(self, date, simulation: xr.Dataset | None = None) -> float:
        """Share of draws approved on or before ``date`` (and by the simulation's horizon)."""
        sim = self._simulation(simulation)
        day = np.floor(np.nan_to_num(sim["approval_day"].values, nan=np.inf))
        return float((sim["approved"].values & (day <= epoch_day(date))).mean())

    def _simulation(self, simulation: xr.Dataset | None) -> xr.Dataset:
        sim = simulation if simulation is not None else self.simulation_
        if sim is None:
            raise RuntimeError("call simulate() first or pass a simulation")
        return sim

    def bands(
        self,
        simulation: xr.Dataset | None = None,
        months: Sequence | pd.DatetimeIndex | None = None,
        quantiles: Sequence[float] = (0.1, 0.5, 0.9),
        replicates: int = 64,
        program: str | None = None,
    ) -> pd.DataFrame:
        """Cumulative probability of approval by month, with bands over parameter uncertainty.

        ``mean`` is the share of draws approved by the month; the percentiles are those of
        P(approved by month | parameters of a draw), where each draw's timing probability (and,
        for a program still in its phase at ``as_of``, its probability of passing that phase
        given so) is estimated from ``replicates`` duration draws with that draw's parameters.
        """
        sim = self._simulation(simulation)
        priors = self.duration_priors
        if "review" in sim.attrs:
            priors = replace(priors, review=ReviewSpec(*json.loads(sim.attrs["review"])))
        return approval_bands(
            sim,
            priors,
            months,
            quantiles,
            replicates,
            program,
        )

    def plot_approval(self, simulation: xr.Dataset | None = None, ax=None, **kw):
        """Cumulative probability of approval over time with its P10-P90 band
        (:func:`forecast.phase.plot.plot_approval`)."""
        from forecast.phase.plot import plot_approval

        return plot_approval(self, simulation, ax=ax, **kw)
