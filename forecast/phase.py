"""Probability and timing of approval: hierarchical phase-transition model plus phase durations.

Model (one benchmark table at a time; tables are views of the same transitions, so two are
never put in one likelihood)::

    successes[g, k] ~ Binomial(n[g, k], p[g, k])
    logit p[g, k]   = mu[k] + sigma[k] * z[g, k]         z ~ Normal(0, 1)   (non-centred)
    mu[k] ~ Normal(0, 1.5)        sigma[k] ~ HalfNormal(1)

for groups g of the table and steps k (phase1->phase2, phase2->phase3, phase3->filing,
filing->approval). A group not in the table is refused (a typo is not a new group) unless asked
for with ``new_group=True``: it then gets the population predictive (a new z per draw).

Time in each clinical phase k (phase I, II, III) is lognormal, drawn per draw: its *mean* is
the benchmark mean years of the duration group (``duration_group``, default the group; a group
of the table without durations of its own, or a new group, takes the all-indication means; any
other name is refused)::

    median[k] = mean[k] * exp(-s[k]**2 / 2) * exp(e[k]) * v
    e[k] ~ Normal(0, median_sd)              (0.1: the benchmark mean is precise over thousands
                                              of programs, a given program's phase is not)
    s[k] ~ LogNormal(log 0.4, dispersion_sd) (0.25; assumption: 90% of phases take 0.5x to
                                              1.9x their median)
    v    ~ LogNormal(-speed_sd**2 / 2, speed_sd)    one per program, shared by phases I-III

``v`` is the program's speed: a slow program is slow in every clinical phase (mean 1, so the
benchmark mean total is kept). ``speed_sd`` = 0.35 is chosen so that the years from phase I to
approval of approved programs spread as published: Q75/Q25 = 1.75 for novel therapeutics the
FDA approved in 2015-2022 without expedited programs (median 8.3 y, IQR 6.5-11.4 y; Mooghali et
al., JAMA Netw Open 2023;6(8):e2331753, Table 2). Independent phases gave 1.36; the model gives
1.71 (all indications, mean of four seeds of 60,000 programs; 1.75 while the speed also scaled
the review; still within the 1.61-1.88 of the paper's rows, so ``speed_sd`` is kept, 0.37 would
give 1.75). With it a single phase varies more (log-sd about 0.54: 90% of phases within
0.4x-2.4x the group's median). A program that fails leaves its phase at a time drawn the same
way.

The review (phase ``filing``: NDA/BLA submission to the FDA's decision) runs on the FDA's clock,
not the program's: no speed ``v``, no lognormal. In months, per draw::

    review = G - EARLY_ACTION_MONTHS * U + B * X
    G = 8 with probability q = priority_review (priority review), else 12 (standard)
    U ~ Uniform(0, 1)     B ~ Bernoulli(r = REVIEW_DELAY_SHARE)     X ~ Exponential(mean m)
    m = (12 * mean[filing] - (12 - 4 q - EARLY_ACTION_MONTHS / 2)) / r

``G``: the PDUFA V and VI goals for NME NDAs and original BLAs, to act within 6 (priority) or 10
(standard) months of the 60-day filing date, i.e. 8 or 12 months after submission (commitment
letters; ``data/SOURCES.md``; **assumption**: PDUFA VII keeps them). ``m`` makes the mean the
group's benchmark filing mean (CAR-T, from Oncology: 0.8 y = 9.6 months). So no review ends before 6
months (priority) or 10 months (standard); a delayed one (a refuse-to-file, a 3-month
major-amendment extension, a missed goal date, a complete response and resubmission) adds an
exponential delay to the date an on-time action would have had (Oncology: mean 3.9 months), so
a short delay can still end a little before the goal. **Assumptions**: an on-time action comes
up to ``EARLY_ACTION_MONTHS`` = 2 before its goal date (uniform; the CAR-T BLAs' on-time actions
came 0-1.4 months early); ``r`` = 4/9 and the default ``q`` = 7/9 are Laplace's rule on the seven
CAR-T BLAs approved in 2017-2024 (3 delayed, 6 priority;
``forecast/reference/car_t_bla_reviews.csv``): few products, and the benchmark mean of the area, not
theirs (10.5 months over the six with a known submission), sets the mean; delays are exponential. A
group whose filing mean is below the goals' on-time mean (``11 - 4 q`` months: 7.9 at the default
``q``) is refused. ``duration_dispersion=0`` fixes the review at its mean too. The review is drawn
independently of the program's clinical phases.

A modality with few approvals has no phase means of its own, only the years from phase I to
approval of its ``n`` approved products (durations rows ``phase = "phase1_to_approval"``, with
``n_programs`` and the group it borrows from, ``borrow_from``; bundled: CAR-T from Oncology,
gene therapy from All indications). Its phase I-III means are those of ``borrow_from`` times
``exp(d)``; the review (filing) keeps the area's mean (**assumption**: a modality's time is
spread over phases I-III as its area's is)::

    d ~ Normal(0, MODALITY_SD = 0.5)          (assumption: a modality's phases I-III take
                                               0.4x to 2.7x its area's, 95%)
    log(published median) ~ Normal(log q50(d), sqrt(pi / (2 n)) * sd_log(d))

(the sampling sd of the median of ``n`` programs) with ``q50(d)`` and ``sd_log(d)`` the median
and log-sd of the years from phase I to approval that the duration model above gives for shift
``d`` (Monte Carlo on a grid of ``d``; sources in ``data/SOURCES.md``). Each draw takes its
``d`` from this posterior, so six products move a modality most of the way from its area, and
``as_of`` conditioning updates ``d`` too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special

from forecast import _pymc
from forecast._dist import (
    binom_logpmf,
    norm_isf,
    norm_logpdf,
    norm_logsf,
    norm_ppf,
    norm_sf,
)
from forecast.data import phase_durations, phase_transitions
from forecast.errors import InputError

if TYPE_CHECKING:
    import pymc as pm

__all__ = ["PHASES", "STEPS", "PhaseTransitionModel", "duration_groups", "transition_counts"]

PHASES = ("phase1", "phase2", "phase3", "filing")
STEPS = ("phase1_to_phase2", "phase2_to_phase3", "phase3_to_filing", "filing_to_approval")
DAYS_PER_YEAR = 365.25
DAY_UNITS = "days since 1970-01-01 (NaN: never)"
ALL = "All indications"  # the durations of groups without their own
TOTAL = "phase1_to_approval"  # durations rows of a modality's total years (module docstring)
TOTAL_STATISTICS = ("median", "mean", "min", "max")
CLINICAL = np.array([1.0, 1.0, 1.0, 0.0])  # the phases a modality's shift applies to
FILING = PHASES.index("filing")  # the review: drawn on its own clock (module docstring)
PRIORITY_GOAL_MONTHS = 8.0  # PDUFA goal from submission: 60-day filing + 6 months (priority)
STANDARD_GOAL_MONTHS = 12.0  # and 60-day filing + 10 months (standard), module docstring
EARLY_ACTION_MONTHS = 2.0  # assumption: an on-time action comes up to this before the goal
REVIEW_DELAY_SHARE = 4 / 9  # reviews delayed past the goal: 3 of 7 CAR-T BLAs, Laplace's rule
PRIORITY_REVIEW = 7 / 9  # default share of priority reviews: 6 of 7 CAR-T BLAs, Laplace's rule
REVIEW_BISECTIONS = 40  # inverse-CDF steps: the bracket (< 1000 months) to < 1e-9 months
MODALITY_SD = 0.5  # prior sd of a modality's log shift from its area (assumption)
SHIFT_GRID = np.linspace(-3.0, 3.0, 241)  # log shifts at which its posterior is evaluated
SHIFT_DRAWS = 10_000  # Monte Carlo draws per grid point (common random numbers, fixed seed)
Z975 = norm_ppf(0.975)
SURVIVOR_POOL = 16  # as_of conditioning draws at most this many prior draws per output draw


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------
def transition_counts(
    frame: pd.DataFrame, table: str, source: str = "counts"
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Groups, trials ``n`` and successes of one table, each shaped (group, step).

    ``frame`` has columns ``table, group, transition`` and ``n_transitions`` with either
    ``successes`` or ``success_rate`` (then successes = round(rate x n), as the benchmark
    publishes rates, not counts). A cell the table lacks has n = 0 (no likelihood).
    """
    needed = {"table", "group", "transition", "n_transitions"}
    missing = needed - set(frame.columns)
    if missing or not {"successes", "success_rate"} & set(frame.columns):
        raise InputError(
            f"{source}: expected columns table, group, transition, n_transitions and "
            f"successes or success_rate; missing {sorted(missing) or ['successes']}"
        )
    tables = sorted(frame["table"].astype(str).unique())
    rows = frame[frame["table"].astype(str) == table]
    if rows.empty:
        raise InputError(f"{source}: no table {table!r}; tables are {tables}")
    for i, row in rows.iterrows():
        where = f"{source}: row {i + 2} ({row['group']}, {row['transition']})"
        if row["transition"] not in STEPS:
            raise InputError(f"{where}: unknown transition; expected one of {list(STEPS)}")
        n = row["n_transitions"]
        if not np.isfinite(n) or n != round(n) or n <= 0:
            raise InputError(f"{where}: n_transitions must be a whole number > 0, got {n}")
        if "successes" in rows.columns and pd.notna(row.get("successes")):
            s = row["successes"]
            if s != round(s) or s < 0 or s > n:
                raise InputError(f"{where}: successes must be a whole number in [0, n={n}]")
        else:
            rate = row["success_rate"]
            if not 0 <= rate <= 1:
                raise InputError(f"{where}: success_rate must be in [0, 1], got {rate}")
    if rows.duplicated(["group", "transition"]).any():
        dup = rows[rows.duplicated(["group", "transition"])].iloc[0]
        raise InputError(f"{source}: duplicate row for ({dup['group']}, {dup['transition']})")
    if "successes" in rows.columns and rows["successes"].notna().all():
        successes = rows["successes"].astype(float)
    else:
        successes = np.round(rows["success_rate"] * rows["n_transitions"])
    rows = rows.assign(successes=successes)
    groups = list(dict.fromkeys(rows["group"].astype(str)))
    n = rows.pivot(index="group", columns="transition", values="n_transitions")
    y = rows.pivot(index="group", columns="transition", values="successes")
    n = n.reindex(index=groups, columns=list(STEPS)).fillna(0).to_numpy(float)
    y = y.reindex(index=groups, columns=list(STEPS)).fillna(0).to_numpy(float)
    return groups, n, y


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


# --------------------------------------------------------------------------------------------
# the model class
# --------------------------------------------------------------------------------------------
class PhaseTransitionModel(_pymc.Fitted):
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
        Phase-duration priors (module docstring); ``duration_dispersion=0``, ``median_sd=0``
        and ``speed_sd=0`` make durations fixed at the benchmark means.
    priority_review
        Probability that the program's NDA/BLA gets priority review (PDUFA goal 8 months
        after submission instead of 12; module docstring). Default 7/9: six of the seven
        CAR-T BLAs approved in 2017-2024 had it.
    draws, tune, chains, seed, target_accept
        NUTS settings.

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
        priority_review: float = PRIORITY_REVIEW,
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 2,
        seed: int = 0,
        target_accept: float = 0.95,
    ):
        if min(duration_dispersion, dispersion_sd, median_sd, speed_sd) < 0:
            raise InputError("duration priors: dispersion and sds must be >= 0")
        if not 0 <= priority_review <= 1:
            raise InputError(f"priority_review must be a probability, got {priority_review}")
        self.table = table
        self.loa_evidence = dict(loa_evidence) if loa_evidence else None
        self.duration_dispersion = float(duration_dispersion)
        self.dispersion_sd = float(dispersion_sd)
        self.median_sd = float(median_sd)
        self.speed_sd = float(speed_sd)
        self.priority_review = float(priority_review)
        self.draws, self.tune, self.chains, self.seed = draws, tune, chains, seed
        self.target_accept = float(target_accept)
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

    # --- config and persistence ---------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "loa_evidence": self.loa_evidence,
            "duration_dispersion": self.duration_dispersion,
            "dispersion_sd": self.dispersion_sd,
            "median_sd": self.median_sd,
            "speed_sd": self.speed_sd,
            "priority_review": self.priority_review,
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
        durations = _durations_table(pd.DataFrame(config.pop("durations")))
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
        self.durations_ = _durations_table(phase_durations() if durations is None else durations)
        model = build_model(groups, n, y, self.loa_evidence)
        self._idata = _pymc.sample(
            model,
            draws=self.draws,
            tune=self.tune,
            chains=self.chains,
            seed=self.seed,
            target_accept=self.target_accept,
        )
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
        return _duration_groups(_durations_table(self.durations_))

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
                j = _step_index(step)
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
                p[:, _step_index(step)] = rng.beta(a, b, size=len(p))
        return xr.DataArray(
            p,
            dims=("draw", "step"),
            coords={"draw": np.arange(len(p)), "step": list(STEPS)},
            name="p",
            attrs={"group": group, "importance_ess": ess, "units": "probability"},
        )

    def likelihood_of_approval(self, group: str, from_phase: str = "phase1", **kw) -> xr.DataArray:
        """Draws of P(approval | program now in ``from_phase``) = product of remaining steps."""
        start = _phase_index(from_phase)
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
        min_years: Mapping[str, float | np.ndarray] | None = None,
    ) -> xr.Dataset:
        """Per draw: approved or not, and the month each phase ends, filing and approval.

        ``group`` and ``new_group`` as in :meth:`transition_probabilities`; ``duration_group``
        (default ``group``) picks the phase durations (module docstring).
        ``phase_start`` is when the program entered ``current_phase``. With ``as_of``, the
        program is known to have lasted in it until ``as_of``: the duration parameters are
        resampled in proportion to the probability of lasting that long (a program overdue is
        likely a slow one) and the time left is drawn given that (in the review: given that it
        has lasted that long; the review has no program-level parameters to resample). The
        effective number of parameter draws behind the resample is ``attrs["duration_ess"]``.
        ``duration_median_years`` and ``duration_sigma`` are the lognormal parameters of phases
        I-III; in the ``filing`` column, the review's mean years and NaN (module docstring).
        Events after ``horizon_end`` are NaT and ``approved`` means approved by then.
        ``ppq_lots`` run ``ppq_months_before_filing`` months before filing, in draws that file.
        ``min_years`` (phase -> years, a number or one per draw, from the phase's start): a
        phase the program passes lasts at least that long (its trial's planned enrollment):
        its duration is drawn given that (a draw already that long is unchanged, from a
        stream of its own so the other draws are too); a phase it fails may end sooner.
        """
        self._check_fitted()
        c = _phase_index(current_phase)
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
        rng = np.random.default_rng(seed)
        p_all = self.transition_probabilities(
            group, new_group=new_group, evidence=evidence, step_priors=step_priors, seed=seed
        ).values
        p = p_all[rng.integers(0, len(p_all), size=draws)]
        spec = self._durations_for(duration_group, group)
        elapsed = (as_of_ts - start).days / DAYS_PER_YEAR
        median, sigma, ess = self._survivor_params(spec, draws, rng, c, elapsed)

        t = np.full(draws, (start - _EPOCH).days, dtype=float)  # days since epoch
        alive = np.ones(draws, bool)
        ends = np.full((draws, len(PHASES)), np.nan)
        passed = np.zeros((draws, len(PHASES)), bool)
        floors = {} if min_years is None else dict(min_years)
        unknown = sorted(set(floors) - set(PHASES[:3]))
        if unknown:
            raise InputError(f"min_years: phases {unknown}; expected phase1, phase2 or phase3")
        minimum = np.zeros((draws, len(PHASES)))  # kept in the result: bands() draws with it
        for phase, value in floors.items():
            minimum[:, PHASES.index(phase)] = np.asarray(value, float)
        extra = np.random.default_rng([seed, 17])  # redraws given a minimum (docstring)
        for k in range(c, len(PHASES)):
            years = self._phase_years(
                k, median[:, k], sigma[:, k], rng, floor=elapsed if k == c else 0.0
            )
            success = rng.random(draws) < p[:, k]
            if PHASES[k] in floors:
                need = np.broadcast_to(np.asarray(floors[PHASES[k]], float), (draws,))
                short = alive & success & (years < need)
                if short.any():
                    floor = np.maximum(need[short], elapsed if k == c else 0.0)
                    years[short] = _lognormal(median[short, k], sigma[short, k], extra, floor)
            t = t + years * DAYS_PER_YEAR
            ends[alive, k] = t[alive]
            passed[:, k] = alive & success
            alive = passed[:, k]
        filing = np.where(passed[:, 2], ends[:, 2], np.nan)
        if c == 3:
            filing = np.full(draws, (start - _EPOCH).days, float)
        approval = np.where(passed[:, 3], ends[:, 3], np.nan)

        to_month = lambda days: _month(days, horizon)  # noqa: E731
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
                "duration_ess": ess,
                "config": json.dumps(self.config(), default=str),
            },
        )
        if ppq_lots:
            filing_m = to_month(filing)
            ppq = filing_m.astype("datetime64[M]") - np.timedelta64(ppq_months_before_filing, "M")
            ds["ppq_month"] = (
                "draw",
                np.where(np.isnat(filing_m), filing_m, ppq.astype("datetime64[ns]")),
            )
            ds["ppq_lots"] = ("draw", np.where(np.isnat(filing_m), 0, ppq_lots))
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
    ) -> dict[str, np.ndarray]:
        """One program's world per draw: step probabilities ``p`` (draw, step) and the
        lognormal phase-duration parameters ``median_years`` (the program's speed included)
        and ``sigma`` (draw, phase) of phases I-III; in the ``filing`` column, the mean years
        of the review, which :meth:`review_years` draws on its own clock, and NaN.

        The same draws :meth:`simulate` uses, for callers that time phases themselves (a
        registrational trial whose filing follows its own enrollment).
        """
        self._check_fitted()
        rng = np.random.default_rng(seed)
        p_all = self.transition_probabilities(
            group, new_group=new_group, evidence=evidence, step_priors=step_priors, seed=seed
        ).values
        p = p_all[rng.integers(0, len(p_all), size=draws)]
        spec = self._durations_for(duration_group, group)
        median, sigma = self._duration_params(spec, draws, rng)
        return {"p": p, "median_years": median, "sigma": sigma}

    def review_years(self, program: Mapping[str, np.ndarray], seed: int = 0) -> np.ndarray:
        """Years from filing to the approval decision per draw (the ``filing`` phase): PDUFA
        goal by review type plus delay, independent of the program's speed (module
        docstring)."""
        return self._review(program["median_years"][:, FILING], np.random.default_rng(seed))

    def _review(
        self, mean_years: np.ndarray, rng: np.random.Generator, floor: float = 0.0
    ) -> np.ndarray:
        """Review years per element of ``mean_years`` (module docstring), drawn given that the
        review lasts at least ``floor`` years (then by inverse CDF, one uniform each)."""
        mean_years = np.asarray(mean_years, float)
        if self.duration_dispersion == 0:  # fixed durations: the review takes its mean
            return np.maximum(mean_years, floor)
        mean, q, shape = 12 * mean_years, self.priority_review, mean_years.shape
        delay = _delay_mean(mean, q)
        earliest = PRIORITY_GOAL_MONTHS - EARLY_ACTION_MONTHS
        if 12 * floor <= earliest:  # no review ends before: nothing to condition on
            goal = np.where(rng.random(shape) < q, PRIORITY_GOAL_MONTHS, STANDARD_GOAL_MONTHS)
            on_time = goal - EARLY_ACTION_MONTHS * rng.random(shape)
            late = rng.random(shape) < REVIEW_DELAY_SHARE
            return (on_time + late * delay * rng.standard_exponential(shape)) / 12
        low = _review_cdf(np.full(shape, 12 * floor), mean, q)
        u = np.minimum(low + (1 - low) * rng.random(shape), 1 - 1e-12)
        # F(hi) >= u: past the standard goal and the floor, 1 - F falls as exp(-x / m) or faster
        lo = np.full(shape, 12 * floor)
        hi = np.maximum(lo, STANDARD_GOAL_MONTHS) + delay * -np.log1p(-u) + 1.0
        for _ in range(REVIEW_BISECTIONS):
            mid = (lo + hi) / 2
            below = _review_cdf(mid, mean, q) < u
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        return hi / 12

    def _phase_years(
        self,
        phase: int,
        median: np.ndarray,
        sigma: np.ndarray,
        rng: np.random.Generator,
        floor: float = 0.0,
    ) -> np.ndarray:
        """Years in ``phase`` given the draws' parameters: lognormal in phases I-III, the
        review on its own clock (``median`` holds its mean years)."""
        if phase == FILING:
            return self._review(median, rng, floor=floor)
        return _lognormal(median, sigma, rng, floor=floor)

    def _check_review(self, group: str, mean_years: float) -> None:
        """Refuse a filing mean the PDUFA goals cannot give on average (module docstring)."""
        on_time = _on_time_mean(self.priority_review)
        if 12 * mean_years < on_time - 1e-9 and self.duration_dispersion > 0:
            raise InputError(
                f"durations: the filing (review) mean of {group!r} is {12 * mean_years:.1f} "
                f"months, below the {on_time:.1f} months the PDUFA goals take on average with "
                f"priority_review={self.priority_review:g} (8 months from submission for a "
                "priority review, 12 for a standard one, less up to 2 months for an early "
                "action); raise the mean or priority_review"
            )

    def _durations_for(self, duration_group: str | None, group: str) -> _Durations:
        """Mean years per phase of ``duration_group`` (default: ``group``) and, for a modality
        known by its total years only, the posterior of its shift (module docstring)."""
        table = _durations_table(self.durations_)
        own = _duration_groups(table)
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
            means = _phase_means(table, name)
            self._check_review(name, means[FILING])
            return _Durations(means, None, None)
        row = total[total["statistic"] == "median"].iloc[0]
        area = _phase_means(table, str(row["borrow_from"]))
        self._check_review(name, area[FILING])
        key = (
            name,
            tuple(area),
            float(row["mean_years"]),
            int(row["n_programs"]),
            self.duration_dispersion,
            self.dispersion_sd,
            self.median_sd,
            self.speed_sd,
            self.priority_review,
        )
        if key not in self._shifts:
            self._shifts[key] = self._shift_posterior(
                area, float(row["mean_years"]), int(row["n_programs"])
            )
        return _Durations(area, *self._shifts[key])

    def _shift_posterior(
        self, area_years: np.ndarray, median_years: float, n_programs: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Grid posterior of a modality's log shift of phases I-III given the published median
        years from phase I to approval of its ``n_programs`` products."""
        rng = np.random.default_rng(0)  # fixed: the same posterior in every run
        median, sigma = self._duration_params(_Durations(area_years, None, None), SHIFT_DRAWS, rng)
        years = median * np.exp(sigma * rng.standard_normal(median.shape))
        clinical, review = years[:, :FILING].sum(axis=1), self._review(median[:, FILING], rng)
        log_total = np.log(np.exp(SHIFT_GRID)[:, None] * clinical + review)  # (grid, draw)
        centre, spread = np.median(log_total, axis=1), log_total.std(axis=1)
        se = np.sqrt(np.pi / 2 / n_programs) * np.maximum(spread, 1e-6)
        log_post = norm_logpdf(SHIFT_GRID, 0.0, MODALITY_SD) + norm_logpdf(
            np.log(median_years), centre, se
        )
        prob = np.exp(log_post - log_post.max())
        return SHIFT_GRID, prob / prob.sum()

    def _survivor_params(
        self,
        spec: _Durations,
        draws: int,
        rng: np.random.Generator,
        phase: int,
        elapsed_years: float,
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """Duration parameters given that phase ``phase`` has lasted ``elapsed_years``.

        Importance resampling: prior draws weighted by their probability of lasting that long,
        from a pool grown (up to ``SURVIVOR_POOL`` x ``draws``) until the effective sample
        size reaches ``draws``. Returns median years, sigma (draw, phase) and that size. The
        review has no program-level parameters: only its own draw is conditioned (``_review``).
        """
        if elapsed_years <= 0 or phase == FILING:
            return (*self._duration_params(spec, draws, rng), float(draws))
        pool = draws
        while True:
            median, sigma = self._duration_params(spec, pool, rng)
            log_w = _log_survival(elapsed_years, median[:, phase], sigma[:, phase])
            if not np.isfinite(log_w.max()):  # no draw lasts that long (fixed durations)
                return median[:draws], sigma[:draws], 0.0
            w = np.exp(log_w - log_w.max())
            ess = float(w.sum() ** 2 / np.sum(w**2))
            if ess >= draws or pool >= SURVIVOR_POOL * draws:
                break
            pool = min(4 * pool, SURVIVOR_POOL * draws)
        pick = rng.choice(pool, size=draws, p=w / w.sum())
        return median[pick], sigma[pick], ess

    def _duration_params(
        self, spec: _Durations, draws: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Prior draws of median years and sigma (draw, phase) of one program's phases."""
        mean_years = spec.mean_years
        if spec.shift_grid is not None:  # a modality: its shift of phases I-III, per draw
            step = spec.shift_grid[1] - spec.shift_grid[0]
            shift = rng.choice(spec.shift_grid, size=draws, p=spec.shift_prob)
            shift = shift + step * (rng.random(draws) - 0.5)
            mean_years = mean_years * np.exp(np.outer(shift, CLINICAL))
        shape = (draws, len(PHASES))
        if self.duration_dispersion > 0:
            sigma = self.duration_dispersion * np.exp(
                self.dispersion_sd * rng.standard_normal(shape)
            )
        else:
            sigma = np.zeros(shape)
        median = mean_years * np.exp(-(sigma**2) / 2 + self.median_sd * rng.standard_normal(shape))
        if self.speed_sd > 0:  # the program's speed, shared by phases I-III (mean 1)
            tau = self.speed_sd
            median = median * np.exp(tau * rng.standard_normal((draws, 1)) - tau**2 / 2)
        # the review runs on the FDA's clock (module docstring): its mean years, no sigma
        median[:, FILING] = np.broadcast_to(mean_years, shape)[:, FILING]
        sigma[:, FILING] = np.nan
        return median, sigma

    def probability_approved_by(self, date, simulation: xr.Dataset | None = None) -> float:
        """Share of draws approved on or before ``date`` (and by the simulation's horizon)."""
        sim = self._simulation(simulation)
        day = np.floor(np.nan_to_num(sim["approval_day"].values, nan=np.inf))
        return float((sim["approved"].values & (day <= _day(date))).mean())

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
        P(approved by month | parameters of a draw), where each draw's timing probability is
        estimated from ``replicates`` duration draws with that draw's parameters.
        """
        sim = self._simulation(simulation)
        if months is None:
            first = pd.Timestamp(sim.attrs["phase_start"]).to_period("M").to_timestamp()
            months = pd.date_range(first, periods=12 * 15, freq="MS")
        months = pd.DatetimeIndex(months)
        c = _phase_index(sim.attrs["current_phase"])
        rng = np.random.default_rng(int(sim.attrs["seed"]) + 1)
        median = sim["duration_median_years"].values[:, c:]
        sigma = sim["duration_sigma"].values[:, c:]
        elapsed = (pd.Timestamp(sim.attrs["as_of"]) - pd.Timestamp(sim.attrs["phase_start"])).days
        # an approved draw passed every phase: each lasted at least its minimum (simulate)
        minimum = sim["min_years"].values[:, c:] if "min_years" in sim else np.zeros_like(median)

        def floor(j: int) -> float | np.ndarray:
            base = elapsed / DAYS_PER_YEAR if j == 0 else 0.0
            if not minimum[:, j].any():
                return base
            return np.maximum(np.repeat(minimum[:, j : j + 1], replicates, 1), base)

        years = np.stack(
            [
                self._phase_years(
                    c + j,
                    np.repeat(median[:, j : j + 1], replicates, 1),
                    np.repeat(sigma[:, j : j + 1], replicates, 1),
                    rng,
                    floor=floor(j),
                )
                for j in range(median.shape[1])
            ],
            axis=-1,
        ).sum(-1)  # (draw, replicate) years to the approval decision
        approval_day = (
            pd.Timestamp(sim.attrs["phase_start"]) - _EPOCH
        ).days + years * DAYS_PER_YEAR
        loa = sim["p"].values[:, c:].prod(axis=1)
        ends = (months + pd.offsets.MonthEnd(0) - _EPOCH).days.to_numpy(float)
        horizon = sim.attrs.get("horizon_end")
        if horizon:  # a month's end, or the horizon's day in its month; nothing after it
            ends = np.minimum(ends, _day(horizon))
            ends = np.where(months > pd.Timestamp(horizon), -np.inf, ends)
        approval_day = np.floor(approval_day)
        by_month = (approval_day[:, :, None] <= ends[None, None, :]).mean(axis=1)  # (draw, month)
        conditional = loa[:, None] * by_month
        observed = sim["approval_month"].values
        mean = (observed[:, None] <= months.to_numpy("datetime64[ns]")[None, :]).mean(axis=0)
        frame = pd.DataFrame(
            {
                "month": months,
                "program": program or sim.attrs["group"],
                "metric": "probability_approved_by",
                "unit": "probability",
                "mean": mean,
            }
        )
        for q, values in zip(quantiles, np.quantile(conditional, quantiles, axis=0), strict=True):
            frame[f"p{100 * q:g}"] = values
        return frame

    def plot_approval(self, simulation: xr.Dataset | None = None, ax=None, **kw):
        """Cumulative probability of approval over time with its P10-P90 band."""
        import matplotlib.pyplot as plt

        frame = self.bands(simulation, **kw)
        if ax is None:
            _, ax = plt.subplots(figsize=(8, 3.5))
        ax.fill_between(frame["month"], frame["p10"], frame["p90"], alpha=0.3, label="P10-P90")
        ax.plot(frame["month"], frame["mean"], label="P(approved by month)")
        ax.set_ylim(0, 1)
        ax.set_ylabel("probability approved")
        ax.legend(loc="upper left", frameon=False)
        return ax


_EPOCH = pd.Timestamp("1970-01-01")


def _month(days: np.ndarray, horizon: pd.Timestamp | None) -> np.ndarray:
    """Days since epoch (NaN = never) -> first of month as datetime64[ns] (NaT = never/late)."""
    out = np.full(days.shape, np.datetime64("NaT"), dtype="datetime64[ns]")
    ok = np.isfinite(days)
    dates = np.datetime64("1970-01-01", "D") + np.floor(days[ok]).astype("int64").astype(
        "timedelta64[D]"
    )
    out[ok] = dates.astype("datetime64[M]").astype("datetime64[ns]")
    if horizon is not None:  # the dates themselves, not their months, against the horizon
        out[ok & (np.floor(np.where(ok, days, 0)) > _day(horizon))] = np.datetime64("NaT")
    return out


def _day(date) -> int:
    """Whole days since the epoch of ``date`` (its time of day dropped)."""
    return (pd.Timestamp(date).normalize() - _EPOCH).days


def _log_survival(years: float, median: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """log P(a Lognormal(log median, sigma) time exceeds ``years``); sigma 0: fixed time."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sigma > 0, np.log(years / median) / sigma, np.nan)
    fixed = np.where(median >= years, 0.0, -np.inf)
    return np.where(sigma > 0, norm_logsf(np.nan_to_num(z)), fixed)


def _lognormal(
    median: np.ndarray,
    sigma: np.ndarray,
    rng: np.random.Generator,
    floor: float | np.ndarray = 0.0,
) -> np.ndarray:
    """Lognormal(log median, sigma) years; with ``floor`` > 0 (a number, or one per element),
    drawn given it exceeds floor."""
    if np.all(np.asarray(floor) <= 0):
        return median * np.exp(sigma * rng.standard_normal(median.shape))
    with np.errstate(divide="ignore", invalid="ignore"):
        z_floor = np.where(sigma > 0, np.log(floor / median) / sigma, np.inf)
    # from the survival side: z = isf(sf(z_floor) * v), the same as ppf(cdf + (1 - cdf) u) with
    # v = 1 - u, but exact far in the tail, where cdf rounds to 1 (a floor many sigmas above
    # the median drew exactly the floor)
    upper = norm_sf(z_floor)
    v = 1 - rng.random(median.shape)  # (0, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(upper > 0, norm_isf(upper * v), z_floor)
    years = median * np.exp(sigma * np.where(np.isfinite(z), z, 0.0))
    return np.maximum(years, floor)


def _on_time_mean(priority: float) -> float:
    """Mean months from submission to an on-time action: goal less half the early window."""
    goal = priority * PRIORITY_GOAL_MONTHS + (1 - priority) * STANDARD_GOAL_MONTHS
    return goal - EARLY_ACTION_MONTHS / 2


def _delay_mean(mean_months: np.ndarray, priority: float) -> np.ndarray:
    """Mean months of a delayed review's delay, so the review's mean is ``mean_months``."""
    return np.maximum(mean_months - _on_time_mean(priority), 0.0) / REVIEW_DELAY_SHARE


def _review_cdf(months: np.ndarray, mean_months: np.ndarray, priority: float) -> np.ndarray:
    """P(review <= ``months``) (module docstring): a mixture over the two goals G of
    on-time ``A ~ Uniform(G - w, G)`` and, with probability r, ``A + Exponential(m)``."""
    w, r = EARLY_ACTION_MONTHS, REVIEW_DELAY_SHARE
    m = _delay_mean(mean_months, priority)
    safe = np.maximum(m, 1e-300)
    total = np.zeros(np.broadcast(months, mean_months).shape)
    for goal, weight in ((PRIORITY_GOAL_MONTHS, priority), (STANDARD_GOAL_MONTHS, 1 - priority)):
        on_time = np.clip((months - goal + w) / w, 0.0, 1.0)  # P(A <= x)
        # E[exp(-(x - A) / m); A <= x], the part of P(A <= x) a delay X > x - A takes away
        with np.errstate(over="ignore", invalid="ignore"):
            late = (safe / w) * (
                np.exp(-(months - np.minimum(months, goal)) / safe)
                - np.exp(-np.maximum(months - goal + w, 0.0) / safe)
            )
        late = np.where((m > 0) & (months > goal - w), late, 0.0)
        total = total + weight * (on_time - r * late)
    return total


class _Durations(NamedTuple):
    """Mean years per phase; for a modality, its grid posterior of the phase I-III shift."""

    mean_years: np.ndarray
    shift_grid: np.ndarray | None
    shift_prob: np.ndarray | None


def duration_groups(durations: pd.DataFrame | None = None) -> list[str]:
    """Groups with phase durations of their own in ``durations`` (default: the bundled table):
    the valid ``duration_group`` names besides the groups of the transition table."""
    return _duration_groups(_durations_table(phase_durations() if durations is None else durations))


def _duration_groups(table: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(table["group"].astype(str)))


def _phase_means(table: pd.DataFrame, group: str) -> np.ndarray:
    rows = table[(table["group"] == group) & (table["phase"] != TOTAL)]
    means = rows.set_index("phase")["mean_years"].reindex(list(PHASES))
    if means.isna().any():
        raise InputError(
            f"durations: group {group!r} lacks phases {list(means[means.isna()].index)}"
        )
    return means.to_numpy(float)


DURATION_COLUMNS = ["group", "phase", "mean_years", "statistic", "n_programs", "borrow_from"]


def _durations_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Phase means (``statistic`` mean; other statistics per phase are dropped) and the total
    years from phase I to approval of modalities (``phase1_to_approval``, module docstring)."""
    needed = {"group", "phase", "mean_years"}
    if missing := needed - set(frame.columns):
        raise InputError(f"durations: missing columns {sorted(missing)}")
    frame = frame.copy()
    for column, fill in (("statistic", "mean"), ("n_programs", 0), ("borrow_from", "")):
        frame[column] = frame[column].fillna(fill) if column in frame.columns else fill
    bad = frame[~frame["phase"].isin([*PHASES, TOTAL])]
    if len(bad):
        raise InputError(
            f"durations: unknown phase {bad['phase'].iloc[0]!r}; expected {[*PHASES, TOTAL]}"
        )
    if not (frame["mean_years"] > 0).all():
        raise InputError("durations: mean_years must be > 0")
    phases = frame[frame["phase"].isin(PHASES) & (frame["statistic"] == "mean")]
    totals = frame[frame["phase"] == TOTAL]
    with_means = set(phases["group"])
    for group, rows in totals.groupby("group", sort=False):
        where = f"durations: {group!r} {TOTAL}"
        if group in with_means:
            raise InputError(f"{where}: the group has phase means too; give one or the other")
        if not rows["statistic"].isin(TOTAL_STATISTICS).all():
            raise InputError(f"{where}: statistic must be one of {list(TOTAL_STATISTICS)}")
        median = rows[rows["statistic"] == "median"]
        if len(median) != 1:
            raise InputError(f"{where}: needs exactly one median row")
        n = median["n_programs"].iloc[0]
        if not (n >= 1 and n == round(n)):
            raise InputError(f"{where}: n_programs must be a whole number >= 1, got {n}")
        if median["borrow_from"].iloc[0] not in with_means:
            raise InputError(
                f"{where}: borrow_from {median['borrow_from'].iloc[0]!r} must be a group with "
                f"phase means: {sorted(with_means)}"
            )
    out = pd.concat([phases, totals])[DURATION_COLUMNS].reset_index(drop=True)
    return out.astype({"n_programs": int, "borrow_from": str, "statistic": str})


def _phase_index(phase: str) -> int:
    if phase not in PHASES:
        raise InputError(f"unknown phase {phase!r}; expected one of {list(PHASES)}")
    return PHASES.index(phase)


def _step_index(step: str) -> int:
    if step not in STEPS:
        raise InputError(f"unknown step {step!r}; expected one of {list(STEPS)}")
    return STEPS.index(step)
