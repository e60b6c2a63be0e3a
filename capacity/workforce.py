"""Operators as a workforce: month-by-month headcount per draw, and a requisition plan.

Model (one month a step, every draw at once; headcounts are expected values given the draw's
rates, so they may be fractional):

* a requisition opened at month ``t`` becomes a hire at month ``t + L`` (recruiting lead time
  ``L``, whole months, drawn per draw and per opening month: one cohort);
* a hire trains for ``T`` months (gowning qualification included; drawn per draw and per
  cohort, rounded up to a whole month >= 1). A trainee is not productive and takes a mentor:
  a qualified operator supervises at most ``k`` trainees (``mentor_ratio``) and loses a share
  ``s`` of their hours per trainee (``mentor_share``, per draw). When trainees exceed
  ``k x qualified`` the mentors are shared: every trainee's training advances by
  ``k x qualified / trainees`` of a month, and the mentor load is ``s x k x qualified``;
* qualified operators leave at the draw's annual attrition rate ``a`` (a share of headcount a
  year), i.e. a monthly rate ``q = 1 - (1 - a) ** (1 / 12)``; trainees leave at the same rate
  (``trainee_attrition=True``, the default: a trainee can quit too) or not at all.

Within a month: that month's hires join the trainees; the month's headcounts are recorded
(qualified ``Q``, trainees ``N``, productive FTE ``Q - s x min(N, k Q)``); then attrition
thins qualified and trainees, and training advances (a trainee in their last month qualifies
and counts from the next month). So with ``H`` hires a month and ``T`` months of training in
steady state there are ``N = H x T`` trainees (Little's law), and with no trainee attrition the
qualified headcount tends to ``H / q`` (with it, ``H (1 - q) ** T / q``).

Assumptions: each operator is one FTE; the productive FTE is compared with pmcap's operator FTE
need (:func:`capacity.requirements`, ``operator_fte``); expected values given a draw's rates
leave out the binomial noise of individual departures (about ``sqrt(Q q)`` a month); the
priors of :class:`WorkforceConfig` are wide assumptions (no credible published number exists
for recruiting lead time, training time, mentor load or attrition of cell-therapy operators).

:func:`plan_requisitions` is non-anticipative: one number of requisitions per month, the same
in every draw, chosen greedily month by month (see its docstring).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from capacity.distributions import Param
from capacity.errors import InputError

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["WorkforceConfig", "WorkforcePlan", "simulate_workforce", "plan_requisitions"]


def _param(value, name: str) -> Param:
    try:
        return Param.parse(value)
    except ValueError as exc:
        raise InputError(f"workforce.{name}: {exc}") from None


@dataclass(frozen=True)
class WorkforceConfig:
    """Inputs of the workforce model; each uncertain value a number or a distribution table
    (as in a process file: ``{triangular = [low, mode, high]}``, ``{beta = [a, b]}`` ...).

    The defaults are wide **assumptions** (``data/SOURCES.md``): recruiting lead time
    triangular(1, 3, 6) months, training triangular(2, 4, 9) months, mentor ratio 2 trainees
    per qualified operator, mentor share uniform(0.1, 0.3) of hours per trainee, annual
    attrition beta(3, 17) (mean 15%, 90% interval about 4% to 30%).
    """

    lead_time_months: Param | float | dict = field(
        default_factory=lambda: Param.parse({"triangular": [1, 3, 6]})
    )
    training_months: Param | float | dict = field(
        default_factory=lambda: Param.parse({"triangular": [2, 4, 9]})
    )
    mentor_ratio: float = 2.0
    mentor_share: Param | float | dict = field(
        default_factory=lambda: Param.parse({"uniform": [0.1, 0.3]})
    )
    attrition_per_year: Param | float | dict = field(
        default_factory=lambda: Param.parse({"beta": [3, 17]})
    )
    trainee_attrition: bool = True

    def __post_init__(self) -> None:
        for name in ("lead_time_months", "training_months", "mentor_share", "attrition_per_year"):
            object.__setattr__(self, name, _param(getattr(self, name), name))
        low, high = self.lead_time_months.support
        if low < 0:
            raise InputError(f"workforce.lead_time_months: must be >= 0 months, got {low:g}")
        low, high = self.training_months.support
        if low < 0 or (low == 0 and self.training_months.kind not in ("lognormal", "beta")):
            raise InputError(
                f"workforce.training_months: must be > 0 months, got a value as low as {low:g}"
            )
        ratio = self.mentor_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not ratio > 0:
            raise InputError(
                f"workforce.mentor_ratio: trainees per mentor must be a number > 0, got {ratio!r}"
            )
        if not np.isfinite(ratio):
            raise InputError(f"workforce.mentor_ratio: must be finite, got {ratio!r}")
        low, high = self.mentor_share.support
        if low < 0 or high > 1:
            raise InputError(
                f"workforce.mentor_share: share of a mentor's hours per trainee must be in "
                f"[0, 1], got values from {low:g} to {high:g}"
            )
        low, high = self.attrition_per_year.support
        if low < 0 or high > 1 or low == 1:
            raise InputError(
                f"workforce.attrition_per_year: an annual share leaving must be in [0, 1), "
                f"got values from {low:g} to {high:g}"
            )


@dataclass
class _Draws:
    """Per-draw (and per-cohort) values of the uncertain inputs, from one seed."""

    lead: np.ndarray  # (draws, months) int: lead time of the cohort opened each month
    train: np.ndarray  # (draws, months) int >= 1: training months of that cohort
    share: np.ndarray  # (draws,) mentor share
    quit: np.ndarray  # (draws,) monthly attrition probability

    @classmethod
    def sample(cls, config: WorkforceConfig, draws: int, months: int, seed: int) -> _Draws:
        # one stream per input in a fixed order: the same seed gives the same draws whatever
        # the plan, so plans are compared on common random numbers
        rng = np.random.default_rng([int(seed), 2503])
        lead = config.lead_time_months.ppf(rng.random((draws, months)))
        train = config.training_months.ppf(rng.random((draws, months)))
        share = config.mentor_share.ppf(rng.random(draws))
        annual = config.attrition_per_year.ppf(rng.random(draws))
        # a hire arriving, or qualifying, after the horizon is the same at any later month:
        # clipping bounds the buffers when a distribution has a long tail (lognormal)
        return cls(
            lead=np.minimum(np.rint(lead), months).astype(np.int64),
            train=np.clip(np.ceil(train - 1e-9), 1, months + 1).astype(np.int64),
            share=np.asarray(share, float),
            quit=1.0 - (1.0 - np.asarray(annual, float)) ** (1.0 / 12.0),
        )


class _State:
    """Headcounts of every draw at the start of a month, and hires not yet arrived."""

    def __init__(self, draws: _Draws, initial: np.ndarray, months: int, config: WorkforceConfig):
        n = draws.share.shape[0]
        self.d = draws
        self.k = float(config.mentor_ratio)
        self.trainee_quit = config.trainee_attrition
        self.qualified = initial.astype(float).copy()
        self.width = int(draws.train.max()) + 1  # pipeline[:, r]: trainees with r months left
        self.pipeline = np.zeros((n, self.width))
        self.arrivals = np.zeros((n, months + int(draws.lead.max()) + 1, self.width))
        self.rows = np.arange(n)

    def probe(self) -> _State:
        """A copy to step forward in a what-if; it shares (and must not change) ``arrivals``."""
        new = object.__new__(_State)
        new.__dict__.update(self.__dict__)
        new.qualified = self.qualified.copy()
        new.pipeline = self.pipeline.copy()
        return new

    def open(self, month: int, number: float) -> None:
        """``number`` requisitions opened at ``month`` in every draw."""
        if number:
            arrive = month + self.d.lead[:, month]
            self.arrivals[self.rows, arrive, self.d.train[:, month]] += number

    def step(
        self, month: int, extra: tuple[int, float] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Advance one month; return that month's qualified, trainees and productive FTE.

        ``extra``: (opening month, number) of requisitions not in ``arrivals`` (a what-if).
        """
        self.pipeline += self.arrivals[:, month, :]
        if extra is not None and extra[1]:
            opened, number = extra
            here = self.rows[opened + self.d.lead[:, opened] == month]
            self.pipeline[here, self.d.train[here, opened]] += number
        qualified = self.qualified
        trainees = self.pipeline.sum(axis=1)
        capacity = self.k * qualified
        mentored = np.minimum(trainees, capacity)
        productive = qualified - self.d.share * mentored
        with np.errstate(divide="ignore", invalid="ignore"):
            pace = np.where(trainees > capacity, capacity / trainees, 1.0)[:, None]
        keep = 1.0 - self.d.quit
        self.qualified = qualified * keep
        if self.trainee_quit:
            self.pipeline *= keep[:, None]
        moving = self.pipeline[:, 1:] * pace
        self.qualified = self.qualified + moving[:, 0]
        self.pipeline[:, 1:] -= moving
        self.pipeline[:, 1:-1] += moving[:, 1:]
        return qualified, trainees, productive


def _initial(initial_qualified, draws: int) -> np.ndarray:
    value = np.asarray(initial_qualified, float)
    if value.ndim > 1 or value.size not in (1, draws):
        raise InputError(
            f"workforce.initial_qualified: expected one number or one per draw ({draws}), got "
            f"shape {value.shape}"
        )
    value = np.broadcast_to(value.reshape(-1), (draws,))
    if not np.isfinite(value).all() or (value < 0).any():
        raise InputError(
            f"workforce.initial_qualified: must be numbers >= 0 (one, or one per draw), "
            f"got {initial_qualified!r}"
        )
    return value


def _requisitions(requisitions, months: int) -> np.ndarray:
    value = np.asarray(requisitions, float)
    if value.ndim == 0:
        value = np.full(months, float(value))
    if value.shape != (months,):
        raise InputError(
            f"workforce.requisitions: expected one number per month ({months}), got shape "
            f"{value.shape}; a requisition is the same in every draw"
        )
    if not np.isfinite(value).all() or (value < 0).any():
        raise InputError("workforce.requisitions: must be finite numbers >= 0")
    return value


def _month_index(months) -> tuple[int, pd.DatetimeIndex]:
    if isinstance(months, int | np.integer):
        if months < 1:
            raise InputError(f"workforce.months: need at least one month, got {months}")
        return int(months), pd.date_range("2000-01-01", periods=int(months), freq="MS")
    index = pd.DatetimeIndex(months)
    return len(index), index


def _dataset(index, qualified, trainees, productive, hires) -> xr.Dataset:
    import xarray as xr

    dims = ("draw", "month")
    coords = {"draw": np.arange(qualified.shape[0]), "month": index}
    ds = xr.Dataset(
        {
            "qualified": (dims, qualified, {"units": "FTE"}),
            "trainees": (dims, trainees, {"units": "FTE"}),
            "productive_fte": (dims, productive, {"units": "FTE"}),
            "hires": (dims, hires, {"units": "FTE/month"}),
        },
        coords=coords,
    )
    return ds


def simulate_workforce(
    requisitions,
    *,
    months: int | pd.DatetimeIndex,
    draws: int,
    config: WorkforceConfig | None = None,
    initial_qualified: float | np.ndarray = 0.0,
    seed: int = 0,
) -> xr.Dataset:
    """Qualified operators, trainees and productive FTE per draw and month.

    ``requisitions``: the number opened each month (one per month, or one number for every
    month), the same in every draw. ``initial_qualified``: qualified operators at the start
    (one number, or one per draw). Returns ``qualified``, ``trainees``, ``productive_fte``
    (qualified minus mentor load) and ``hires`` (arrivals that month), dims draw x month.
    The model is in the module docstring; the same seed gives the same result.
    """
    config = config or WorkforceConfig()
    n_months, index = _month_index(months)
    if isinstance(draws, bool) or not isinstance(draws, int | np.integer) or draws < 1:
        raise InputError(f"workforce.draws: need a whole number >= 1, got {draws!r}")
    plan = _requisitions(requisitions, n_months)
    start = _initial(initial_qualified, int(draws))
    sampled = _Draws.sample(config, int(draws), n_months, seed)
    state = _State(sampled, start, n_months, config)
    for month in range(n_months):
        state.open(month, plan[month])
    out = [
        state.step(month) + (state.arrivals[:, month, :].sum(axis=1),) for month in range(n_months)
    ]
    q, n, p, h = (np.stack(col, axis=1) for col in zip(*out, strict=True))
    return _dataset(index, q, n, p, h)


@dataclass
class WorkforcePlan:
    """A requisition plan and the workforce it gives on the draws it was planned with."""

    requisitions: pd.DataFrame  # month, requisitions
    by_month: pd.DataFrame  # month, requisitions, shortfall_probability, need/productive bands
    simulation: xr.Dataset  # simulate_workforce with this plan on the planning draws
    reach_months: int  # a requisition opened at t is planned against month t + reach_months
    target: float

    def __str__(self) -> str:
        opened = self.requisitions[self.requisitions["requisitions"] > 0]
        lines = [f"operators: {int(opened['requisitions'].sum())} requisition(s)"]
        for row in opened.itertuples():
            lines.append(f"  open {row.month:%Y-%m}: {int(row.requisitions)}")
        return "\n".join(lines)


def _need_array(need) -> tuple[np.ndarray, pd.DatetimeIndex | int]:
    import xarray as xr

    if isinstance(need, xr.DataArray):
        if set(need.dims) != {"draw", "month"}:
            raise InputError(f"workforce.need: expected dims (draw, month), got {need.dims}")
        need = need.transpose("draw", "month")
        months = need["month"].values
        if np.issubdtype(months.dtype, np.datetime64):
            return np.asarray(need.values, float), pd.DatetimeIndex(months)
        return np.asarray(need.values, float), need.sizes["month"]
    array = np.asarray(need, float)
    if array.ndim != 2:
        raise InputError(f"workforce.need: expected a (draws, months) array, got {array.shape}")
    return array, array.shape[1]


def plan_requisitions(
    need,
    *,
    config: WorkforceConfig | None = None,
    initial_qualified: float | np.ndarray = 0.0,
    target: float = 0.1,
    seed: int = 0,
    max_per_month: int = 1000,
) -> WorkforcePlan:
    """How many requisitions to open each month so that P(productive FTE < need) <= target.

    ``need``: operator FTE need per draw and month (a DataArray with dims draw, month, e.g.
    ``capacity.requirements(...)["operator_fte"]``, or a (draws, months) array).

    The rule, greedy and non-anticipative (one number per month, the same in every draw): a
    requisition opened at month ``t`` has qualified, in at least ``1 - target`` of draws, by
    ``t + R`` where ``R`` (``reach_months``) is the ``1 - target`` quantile over draws of
    lead time plus training months. Walking forward, at month ``t`` the plan opens the fewest
    requisitions (found by bisection, at most ``max_per_month``) such that
    P(productive FTE < need) <= ``target`` at month ``t + R``, with the requisitions already
    decided and none after ``t``; the expected attrition of each draw is in the simulation.
    Months before ``R`` cannot be helped and their shortfall is reported, not hidden. Hires
    decided after ``t`` may still be training at ``t + R`` and their mentor load can lift that
    month's shortfall probability above what was planned, and those qualified by ``t + R``
    (in draws with a short lead time and training) lower it; the second effect dominates when
    need grows steadily, and the plan then errs on the safe side. ``by_month`` reports the
    probability with the whole plan. When no number of requisitions up to ``max_per_month``
    meets the target (too few mentors to train more), the month's plan is the number with the
    least risk among those tried. The bisection takes the shortfall probability as falling
    with more requisitions, which holds unless the extra trainees' mentor load outweighs them.
    """
    config = config or WorkforceConfig()
    values, months = _need_array(need)
    if not np.isfinite(values).all():
        raise InputError("workforce.need: must be finite numbers")
    if not 0 < target < 1:
        raise InputError(f"workforce.target: a probability in (0, 1), got {target!r}")
    draws, n_months = values.shape
    _, index = _month_index(months)
    start = _initial(initial_qualified, draws)
    sampled = _Draws.sample(config, draws, n_months, seed)
    reach = int(np.ceil(np.quantile(sampled.lead + sampled.train, 1 - target)))

    def short(state: _State, now: int, until: int, number: float = 0) -> float:
        """P(productive < need) at ``until`` with ``number`` more requisitions at ``now``."""
        probe = state.probe()
        for month in range(now, until):
            probe.step(month, (now, number))
        productive = probe.step(until, (now, number))[2]
        return float(np.mean(productive < values[:, until] - 1e-9))

    def fewest(state: _State, t: int, check: int) -> int:
        best = (short(state, t, check), 0)
        if best[0] <= target:
            return 0
        low, high = 0, 1
        while True:
            p = short(state, t, check, high)
            if p <= target:
                break
            if p > best[0] or high >= max_per_month:  # more would not help: least risk
                return best[1]  # (e.g. too few mentors to train more)
            best = min(best, (p, high))
            low, high = high, min(2 * high, max_per_month)
        while high - low > 1:
            mid = (low + high) // 2
            if short(state, t, check, mid) <= target:
                high = mid
            else:
                low = mid
        return high

    plan = np.zeros(n_months)
    state = _State(sampled, start, n_months, config)
    for t in range(n_months):
        if t + reach < n_months:
            plan[t] = fewest(state, t, t + reach)
            state.open(t, plan[t])
        state.step(t)
    sim = simulate_workforce(
        plan, months=index, draws=draws, config=config, initial_qualified=start, seed=seed
    )
    productive = sim["productive_fte"].values
    table = pd.DataFrame({"month": index, "requisitions": plan.astype(int)})
    by_month = table.assign(
        shortfall_probability=np.mean(productive < values - 1e-9, axis=0),
        need_p50=np.quantile(values, 0.5, axis=0),
        need_p90=np.quantile(values, 0.9, axis=0),
        productive_p10=np.quantile(productive, 0.1, axis=0),
        productive_p50=np.quantile(productive, 0.5, axis=0),
        qualified_p50=sim["qualified"].quantile(0.5, "draw").values,
        trainees_p50=sim["trainees"].quantile(0.5, "draw").values,
        planned=np.arange(n_months) >= reach,
    )
    return WorkforcePlan(table, by_month, sim, reach, float(target))
