"""Phase durations: lognormal clinical phases with a program speed; the review on its own clock.

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
benchmark mean total is kept). ``speed_sd`` is the log-sd of that speed; its value, 0.35, makes
the years from phase I to approval of approved programs spread as published: Q75/Q25 = 1.75
for novel therapeutics the FDA approved in 2015-2022 without expedited programs (median 8.3 y,
IQR 6.5-11.4 y; 1.61-1.88 across the paper's rows; Mooghali et al., JAMA Netw Open
2023;6(8):e2331753, Table 2). The model gives 1.71 (all indications, mean of four seeds of
60,000 programs), within the published range; with independent phases (``speed_sd=0``) it gives
1.36. With the speed a single phase varies more (log-sd about 0.54: 90% of phases within
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

References
----------
Biotechnology Innovation Organization, Informa Pharma Intelligence and QLS Advisors (2021).
Clinical Development Success Rates and Contributing Factors 2011-2020 (mean years per phase).

Mooghali, M. et al. (2023). JAMA Network Open 6(8), e2331753, Table 2 (years from IND to
approval of novel therapeutics, 2015-2022).

U.S. Food and Drug Administration. PDUFA V and VI commitment letters (review goals).

Sources of every number, and the modality totals: ``data/SOURCES.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from forecast._dist import norm_isf, norm_logpdf, norm_sf
from forecast.errors import InputError
from forecast.phase.data import PHASES

__all__ = [
    "CLINICAL",
    "EARLY_ACTION_MONTHS",
    "FILING",
    "MODALITY_SD",
    "PRIORITY_GOAL_MONTHS",
    "PRIORITY_REVIEW",
    "REVIEW_DELAY_SHARE",
    "STANDARD_GOAL_MONTHS",
    "DurationPriors",
    "DurationSpec",
    "lognormal_years",
]

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


class DurationSpec(NamedTuple):
    """Mean years per phase; for a modality, its grid posterior of the phase I-III shift."""

    mean_years: np.ndarray
    shift_grid: np.ndarray | None
    shift_prob: np.ndarray | None


@dataclass(frozen=True)
class DurationPriors:
    """The phase-duration priors of a :class:`~forecast.phase.model.PhaseTransitionModel`
    (module docstring) and the draws they give.

    Parameters
    ----------
    duration_dispersion
        Median log-sd ``sigma`` of a phase's lognormal duration (0.4: 90% of phases within
        0.5x-1.9x their median; an assumption).
    dispersion_sd
        Log-sd of that ``sigma`` across draws (0.25).
    median_sd
        Log-sd of a phase's median around the benchmark mean (0.1).
    speed_sd
        Log-sd of the program's speed shared by phases I-III (0.35; basis in the module
        docstring).
    priority_review
        Probability of a priority review (8 months to the PDUFA goal instead of 12).

    ``duration_dispersion=0``, ``median_sd=0`` and ``speed_sd=0`` make durations fixed at
    the benchmark means.
    """

    duration_dispersion: float = 0.4
    dispersion_sd: float = 0.25
    median_sd: float = 0.1
    speed_sd: float = 0.35
    priority_review: float = PRIORITY_REVIEW

    def duration_params(
        self, spec: DurationSpec, draws: int, rng: np.random.Generator
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

    def review_years(
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

    def phase_years(
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
            return self.review_years(median, rng, floor=floor)
        return lognormal_years(median, sigma, rng, floor=floor)

    def check_review(self, group: str, mean_years: float) -> None:
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

    def shift_posterior(
        self, area_years: np.ndarray, median_years: float, n_programs: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Grid posterior of a modality's log shift of phases I-III given the published median
        years from phase I to approval of its ``n_programs`` products."""
        rng = np.random.default_rng(0)  # fixed: the same posterior in every run
        median, sigma = self.duration_params(DurationSpec(area_years, None, None), SHIFT_DRAWS, rng)
        years = median * np.exp(sigma * rng.standard_normal(median.shape))
        clinical, review = years[:, :FILING].sum(axis=1), self.review_years(median[:, FILING], rng)
        log_total = np.log(np.exp(SHIFT_GRID)[:, None] * clinical + review)  # (grid, draw)
        centre, spread = np.median(log_total, axis=1), log_total.std(axis=1)
        se = np.sqrt(np.pi / 2 / n_programs) * np.maximum(spread, 1e-6)
        log_post = norm_logpdf(SHIFT_GRID, 0.0, MODALITY_SD) + norm_logpdf(
            np.log(median_years), centre, se
        )
        prob = np.exp(log_post - log_post.max())
        return SHIFT_GRID, prob / prob.sum()


def lognormal_years(
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
    # v = 1 - u, but exact far in the tail, where cdf rounds to 1 and the ppf side would
    # return the floor itself
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
