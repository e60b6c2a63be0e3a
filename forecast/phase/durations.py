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

    review = G - EARLY_ACTION_MONTHS * U + B * (MIN_DELAY_MONTHS + X)
    G = 8 with probability q (priority review), else 12 (standard)
    U ~ Uniform(0, 1)     B ~ Bernoulli(r)     X ~ Exponential(mean m)
    m = (delay median - MIN_DELAY_MONTHS) / log 2

``G``: the PDUFA V and VI goals for NME NDAs and original BLAs, to act within 6 (priority) or 10
(standard) months of the 60-day filing date, i.e. 8 or 12 months after submission (commitment
letters; ``data/SOURCES.md``; **assumption**: PDUFA VII keeps them). A delayed review (a
refuse-to-file, a major amendment, a missed goal date, a complete response and resubmission)
ends ``MIN_DELAY_MONTHS + X`` after the date an on-time action would have had: at least 3
months, the shortest delay the PDUFA rules make common (a major amendment extends the goal by
3 months; a complete response is answered by a resubmission with a goal of 2 or 6 months, after
the sponsor's own time), then exponential with the group's median delay.

``q``, ``r`` and the median delay are the group's, from ``forecast/reference/review_times.csv``
(Laplace's rule on the counts: ``q = (k + 1) / (n + 2)``; sources in ``data/SOURCES.md``):

* **CAR-T**: the seven CAR-T BLAs approved in 2017-2024 (``car_t_bla_reviews.csv``): 6 priority
  (``q`` = 7/9), 3 past their first goal (``r`` = 4/9), 3.0, 4.3 and 5.7 months past it, a
  median delay of 5.3 months from an on-time action. The model's median review is 10.4 months
  (mean 10.7) against the six with a known submission date (6.6-13.7 months, median 11.4,
  mean 10.5); they sit at its percentiles 13-79.
* **All indications**: the 279 novel drugs the FDA approved in 2012-2018, 58% with priority
  review and 84% approved in their first cycle (``q`` = 0.58, ``r`` = 0.16, a delay being a
  review of more than one cycle); the 71 NME applications approved after a resubmission in
  2000-2012, a median 435 days (14.3 months) after the first action. The model's median
  review is 10.1 months (mean 11.8), P(review > 24 months) 0.078: below the 16% of approvals
  that needed a second cycle, as a one-cycle review ends by 15 months.
* **Every other group** (Oncology, Hematology, gene therapy, a new group): no review data of its
  own were found; it takes All indications'. A program's ``group`` picks the row, else its
  ``duration_group`` (a CAR-T program timed by Oncology's phases keeps the CAR-T review).
  The BIO phase-duration table's ``filing`` means (Oncology 0.8 y, Hematology 1.5 y, all
  1.3 y) are not used for the review: they give no split into review type and delay, and
  with CAR-T's shares they would put 18-22% of All indications' and Hematology's reviews
  past 24 months, above the 16% bound.

A program may set its own review type (``review``): ``"priority"`` (``q`` = 1), ``"standard"``
(``q`` = 0) or ``"breakthrough"`` (``q`` = 47/48: all 46 therapeutics with breakthrough therapy
designation the FDA approved in 2012-2017 had priority review, Puthumana et al., JAMA
2018;320(3):301-303; Laplace's rule); ``r`` and the delay stay the group's. **Assumptions**: an
on-time action comes up to ``EARLY_ACTION_MONTHS`` = 2 before its goal (uniform; the CAR-T BLAs'
on-time actions came 0-1.4 months early); a delay's excess over 3 months is exponential; the
first-cycle share counts a first cycle extended by a major amendment as on time (no published
share of those was found), so ``r`` of All indications is low by that share.
``duration_dispersion=0`` fixes the review at its mean. The review is drawn independently of the
program's clinical phases.

A modality with few approvals has no phase means of its own, only the years from phase I to
approval of its ``n`` approved products (durations rows ``phase = "phase1_to_approval"``, with
``n_programs`` and the group it borrows from, ``borrow_from``; bundled: CAR-T from Oncology,
gene therapy from All indications). Its phase I-III means are those of ``borrow_from`` times
``exp(d)`` (**assumption**: a modality's time is spread over phases I-III as its area's is;
the review is its own, above)::

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

Shukla, A. K. et al. (2021). Analysis of FDA novel drug approvals. Biomed Pharmacol J 14(1).

Sacks, L. V. et al. (2014). Scientific and regulatory reasons for delay and denial of FDA
approval of initial applications for new drugs, 2000-2012. JAMA 311(4), 378-384.

Puthumana, J., Wallach, J. D. and Ross, J. S. (2018). Clinical trial evidence supporting FDA
approval of drugs granted breakthrough therapy designation. JAMA 320(3), 301-303.

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
    "BREAKTHROUGH_PRIORITY",
    "CLINICAL",
    "EARLY_ACTION_MONTHS",
    "FILING",
    "MIN_DELAY_MONTHS",
    "MODALITY_SD",
    "PRIORITY_GOAL_MONTHS",
    "PRIORITY_REVIEW",
    "REVIEW_DELAY_SHARE",
    "REVIEW_TYPES",
    "STANDARD_GOAL_MONTHS",
    "DurationPriors",
    "DurationSpec",
    "ReviewSpec",
    "lognormal_years",
    "review_spec",
]

CLINICAL = np.array([1.0, 1.0, 1.0, 0.0])  # the phases a modality's shift applies to
FILING = PHASES.index("filing")  # the review: drawn on its own clock (module docstring)
PRIORITY_GOAL_MONTHS = 8.0  # PDUFA goal from submission: 60-day filing + 6 months (priority)
STANDARD_GOAL_MONTHS = 12.0  # and 60-day filing + 10 months (standard), module docstring
EARLY_ACTION_MONTHS = 2.0  # assumption: an on-time action comes up to this before the goal
MIN_DELAY_MONTHS = 3.0  # a delayed review: at least a major amendment's 3-month extension
REVIEW_DELAY_SHARE = 4 / 9  # CAR-T: reviews past their first goal, 3 of 7 BLAs, Laplace's rule
PRIORITY_REVIEW = 7 / 9  # CAR-T: priority reviews, 6 of 7 BLAs, Laplace's rule
CAR_T_DELAY_MEDIAN = 5.3  # CAR-T: median months of a delay past an on-time action
BREAKTHROUGH_PRIORITY = 47 / 48  # 46 of 46 breakthrough approvals 2012-2017 priority, Laplace
REVIEW_TYPES = ("priority", "standard", "breakthrough")  # a program's own review type
REVIEW_BISECTIONS = 40  # inverse-CDF steps: the bracket (< 1000 months) to < 1e-9 months
MODALITY_SD = 0.5  # prior sd of a modality's log shift from its area (assumption)
SHIFT_GRID = np.linspace(-3.0, 3.0, 241)  # log shifts at which its posterior is evaluated
SHIFT_DRAWS = 10_000  # Monte Carlo draws per grid point (common random numbers, fixed seed)
REVIEW_COLUMNS = ["group", "priority", "priority_n", "delayed", "delayed_n", "delay_median_months"]
ALL_INDICATIONS = "All indications"  # the review of a group without data of its own


class ReviewSpec(NamedTuple):
    """The FDA review of one program (module docstring): probability ``priority`` of a
    priority review, ``delay_share`` of a delayed one, and ``delay_months``, the mean of the
    exponential part ``X`` of a delay (past its 3-month minimum)."""

    priority: float
    delay_share: float
    delay_months: float

    @classmethod
    def from_median(cls, priority: float, delay_share: float, median: float) -> ReviewSpec:
        """The spec whose delayed reviews end a median ``median`` months after an on-time
        action would have."""
        return cls(priority, delay_share, float((median - MIN_DELAY_MONTHS) / np.log(2)))

    @property
    def mean_months(self) -> float:
        """Mean months from submission to the decision."""
        return _on_time_mean(self.priority) + self.delay_share * (
            MIN_DELAY_MONTHS + self.delay_months
        )


CAR_T_REVIEW = ReviewSpec.from_median(PRIORITY_REVIEW, REVIEW_DELAY_SHARE, CAR_T_DELAY_MEDIAN)


def review_spec(table, group: str, review: str | None = None) -> ReviewSpec:
    """The review of a program whose phase durations are ``group``'s (module docstring):
    that group's row of ``table`` (``forecast/reference/review_times.csv``), else All
    indications'; ``review`` (``"priority"``, ``"standard"``, ``"breakthrough"``) sets the
    program's own review type."""
    if review is not None and review not in REVIEW_TYPES:
        raise InputError(f"review {review!r}; expected one of {list(REVIEW_TYPES)} or none")
    missing = sorted(set(REVIEW_COLUMNS) - set(table.columns))
    if missing:
        raise InputError(f"review_times.csv: missing columns {missing}; expected {REVIEW_COLUMNS}")
    for i, row in table.iterrows():
        where = f"review_times.csv: row {i + 2} ({row['group']})"
        for k, n in (("priority", "priority_n"), ("delayed", "delayed_n")):
            if not (row[n] == round(row[n]) and row[k] == round(row[k]) and 0 <= row[k] <= row[n]):
                raise InputError(f"{where}: {k} must be a whole number in [0, {n}]")
        if not row["delay_median_months"] > MIN_DELAY_MONTHS:
            raise InputError(
                f"{where}: delay_median_months must exceed {MIN_DELAY_MONTHS:g} (the shortest "
                f"delay), got {row['delay_median_months']}"
            )
    rows = table[table["group"] == group]
    if rows.empty:
        rows = table[table["group"] == ALL_INDICATIONS]
    if len(rows) != 1:
        raise InputError(f"review_times.csv: expected one row for {group!r} or {ALL_INDICATIONS!r}")
    row = rows.iloc[0]
    q = (row["priority"] + 1) / (row["priority_n"] + 2)
    q = {"priority": 1.0, "standard": 0.0, "breakthrough": BREAKTHROUGH_PRIORITY}.get(review, q)
    r = (row["delayed"] + 1) / (row["delayed_n"] + 2)
    return ReviewSpec.from_median(float(q), float(r), float(row["delay_median_months"]))


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
    review
        The FDA review (:class:`ReviewSpec`; default CAR-T's, module docstring).

    ``duration_dispersion=0``, ``median_sd=0`` and ``speed_sd=0`` make durations fixed at
    the benchmark means.
    """

    duration_dispersion: float = 0.4
    dispersion_sd: float = 0.25
    median_sd: float = 0.1
    speed_sd: float = 0.35
    review: ReviewSpec = CAR_T_REVIEW

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
        median[:, FILING] = self.review.mean_months / 12
        sigma[:, FILING] = np.nan
        return median, sigma

    def review_years(
        self, mean_years: np.ndarray, rng: np.random.Generator, floor: float = 0.0
    ) -> np.ndarray:
        """Review years, one per element of ``mean_years`` (the review's mean years, used
        only with ``duration_dispersion=0``; module docstring), drawn given that the review
        lasts at least ``floor`` years (then by inverse CDF, one uniform each)."""
        mean_years = np.asarray(mean_years, float)
        if self.duration_dispersion == 0:  # fixed durations: the review takes its mean
            return np.maximum(mean_years, floor)
        q, r, m = self.review
        shape = mean_years.shape
        earliest = PRIORITY_GOAL_MONTHS - EARLY_ACTION_MONTHS
        if 12 * floor <= earliest:  # no review ends before: nothing to condition on
            goal = np.where(rng.random(shape) < q, PRIORITY_GOAL_MONTHS, STANDARD_GOAL_MONTHS)
            on_time = goal - EARLY_ACTION_MONTHS * rng.random(shape)
            late = rng.random(shape) < r
            delay = MIN_DELAY_MONTHS + m * rng.standard_exponential(shape)
            return (on_time + late * delay) / 12
        low = _review_cdf(np.full(shape, 12 * floor), self.review)
        u = np.minimum(low + (1 - low) * rng.random(shape), 1 - 1e-12)
        # F(hi) >= u: past the standard goal, the shortest delay and the floor, 1 - F falls
        # as exp(-x / m) or faster
        lo = np.full(shape, 12 * floor)
        top = STANDARD_GOAL_MONTHS + MIN_DELAY_MONTHS
        hi = np.maximum(lo, top) + m * -np.log1p(-u) + 1.0
        for _ in range(REVIEW_BISECTIONS):
            mid = (lo + hi) / 2
            below = _review_cdf(mid, self.review) < u
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


def _review_cdf(months: np.ndarray, review: ReviewSpec) -> np.ndarray:
    """P(review <= ``months``) (module docstring): a mixture over the two goals G of on-time
    ``A ~ Uniform(G - w, G)`` and, with probability r, ``A + c + Exponential(m)``."""
    w, c = EARLY_ACTION_MONTHS, MIN_DELAY_MONTHS
    q, r, m = review
    safe = max(m, 1e-300)
    total = np.zeros(np.shape(months))
    for goal, weight in ((PRIORITY_GOAL_MONTHS, q), (STANDARD_GOAL_MONTHS, 1 - q)):
        on_time = np.clip((months - goal + w) / w, 0.0, 1.0)  # P(A <= x)
        x = months - c  # a delayed review: A + X <= x
        before = np.clip((x - goal + w) / w, 0.0, 1.0)  # P(A <= x)
        # E[exp(-(x - A) / m); A <= x], the part of P(A <= x) an exponential X > x - A takes
        with np.errstate(over="ignore", invalid="ignore"):
            late = (safe / w) * (
                np.exp(-(x - np.minimum(x, goal)) / safe)
                - np.exp(-np.maximum(x - goal + w, 0.0) / safe)
            )
        late = np.where((m > 0) & (x > goal - w), late, 0.0)
        total = total + weight * ((1 - r) * on_time + r * (before - late))
    return total
