"""Viral vector as campaigns: doses per vector lot, release, shelf life, FEFO, a campaign plan.

Model (per draw ``d``; months are whole periods, indexed from the first month of the lots):

* **Campaigns.** A campaign started at the start of month ``s`` makes ``lots_per_campaign``
  vector lots. Each vector lot yields ``doses_per_lot`` patient doses, sampled once per draw
  (the uncertainty is about the vector process's yield) and rounded down to whole doses; a
  dose is what one patient lot uses. The campaign's manufacturing lead time ``L`` and its
  release testing time ``R`` (in-house or at a CDMO: only the time differs) are sampled per
  draw *and* campaign (each campaign has its own slot and testing) and rounded up to whole
  months. Its doses are usable by lots started in months ``a = s + L + R`` (released) up to
  ``e - 1``, where ``e = s + L + floor(shelf_life_months)``: the shelf life runs from the end
  of manufacture, so release testing uses part of it. A draw whose release outlasts the
  shelf life (possible only with an unbounded release distribution) loses the campaign: its
  doses expire in the month they are released.
* **Opening stock.** ``initial_doses`` on hand at the start of the first month, usable until
  ``initial_expiry_months`` months later (default: the whole shelf life).
* **Use, first expiry first out (FEFO).** Each month, first the doses whose shelf life has
  ended expire (``doses_expired``), then the month's lots (patient lots, re-runs of failed
  lots and PPQ lots, as counted by :func:`capacity.requirements`), behind any lots already
  waiting, take one dose each from the released campaigns in order of expiry (ties: the
  earlier campaign). A lot that finds no dose waits (``lots_waiting``, at the end of the
  month) and goes first the next month. P(a lot waits) in a month is the share of draws with
  a lot waiting at the end of it. Draws are arrays throughout: Python loops run over months
  (and, in the plan's look-ahead, over the expiry months that hold stock), never over draws.

Campaign plan (:func:`plan_vector`): one calendar of campaign starts, the same in every draw,
chosen greedily forward in time as :func:`capacity.plan_expansion` and
:func:`capacity.plan_requisitions` do. Let ``reach`` be the ``1 - wait_target`` quantile over
draws of ``L + R`` (whole months): a campaign started at ``t`` is released by ``t + reach``
in at least ``1 - wait_target`` of draws. At each month ``t`` with ``t + reach`` inside the
horizon, the plan starts the fewest campaigns (at most ``max_per_month``) such that
P(a lot waits at ``t + reach``) <= ``wait_target``, given the campaigns already decided and
none after ``t``; when no number does, the one with the least risk. So the decision at ``t``
uses the lots of months up to ``t + reach`` only, as a distribution over draws (the forecast
known when the plan is made), never one draw's own later path; changing any draw's lots
after ``t + reach`` leaves every start up to ``t`` unchanged. Months before ``reach`` cannot
be helped by a new campaign; their risk is reported (``planned`` false), not hidden. Starting
as late as the target allows is what keeps expiry low: a campaign started earlier would
protect more months but lose more doses to shelf life.

Assumptions (see ``data/SOURCES.md``): one dose per patient lot; shelf life counted from the
end of manufacture; waiting lots are not lost. The facility simulation does not take the
waits (they are reported as lots at risk).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from capacity.distributions import Param, check_seed, stream_rng
from capacity.errors import InputError

__all__ = ["VectorPlan", "VectorSpec", "plan_vector", "simulate_vector", "vector_by_process"]

_FIELDS = (
    "doses_per_lot",
    "lots_per_campaign",
    "campaign_lead_time_months",
    "release_months",
    "shelf_life_months",
    "wait_target",
    "initial_doses",
    "initial_expiry_months",
    "cost_per_campaign",
    "max_per_month",
)
_REQUIRED = ("doses_per_lot", "campaign_lead_time_months", "release_months", "shelf_life_months")
_EPS = 1e-9


@dataclass(frozen=True)
class VectorSpec:
    """The viral vector of a process, made in campaigns (see the module docstring).

    In a process TOML file (or ``[process.NAME.vector]`` in a scenario)::

        [vector]
        doses_per_lot = {triangular = [150, 250, 350]}   # patient doses per vector lot
        lots_per_campaign = 2                           # vector lots per campaign; default 1
        campaign_lead_time_months = {uniform = [3, 5]}  # start to end of manufacture
        release_months = {triangular = [1, 2, 3]}       # release testing
        shelf_life_months = 24                          # from the end of manufacture
        wait_target = 0.05                              # P(a lot waits), default 0.05
        initial_doses = 300                             # on hand at the start; default 0
        initial_expiry_months = 12                      # default: shelf_life_months
        cost_per_campaign = 1.5e6                       # in costs.currency; default 0
        max_per_month = 4                               # campaigns one month may start

    Examples
    --------
    >>> spec = VectorSpec.from_mapping({"doses_per_lot": 200, "campaign_lead_time_months": 4,
    ...     "release_months": 2, "shelf_life_months": 24})
    >>> spec.usable_months_max
    22
    """

    doses_per_lot: Param
    campaign_lead_time_months: Param
    release_months: Param
    shelf_life_months: float
    lots_per_campaign: int = 1
    wait_target: float = 0.05
    initial_doses: float = 0.0
    initial_expiry_months: float | None = None
    cost_per_campaign: float = 0.0
    max_per_month: int = 4

    @classmethod
    def from_mapping(cls, raw: Any, source: str = "vector") -> VectorSpec:
        """Validate a ``[vector]`` table; an :class:`InputError` names ``source`` and the field."""
        if isinstance(raw, VectorSpec):
            return raw
        if not isinstance(raw, Mapping):
            raise InputError(f"{source}: expected a table of fields, got {raw!r}")
        unknown = sorted(set(raw) - set(_FIELDS))
        if unknown:
            raise InputError(f"{source}: unknown fields {unknown} (expected: {', '.join(_FIELDS)})")
        missing = [f for f in _REQUIRED if f not in raw]
        if missing:
            raise InputError(f"{source}: missing field '{missing[0]}'")
        params = {}
        for name in ("doses_per_lot", "campaign_lead_time_months", "release_months"):
            try:
                param = Param.parse(raw[name])
            except ValueError as exc:
                raise InputError(f"{source}: field '{name}': {exc}") from None
            if param.support[0] < 0:
                raise InputError(f"{source}: field '{name}': must be >= 0, got {param}")
            params[name] = param
        if params["doses_per_lot"].support[1] < 1:
            raise InputError(
                f"{source}: field 'doses_per_lot': a vector lot must yield at least one dose, "
                f"got {params['doses_per_lot']}"
            )
        shelf = _number(raw["shelf_life_months"], source, "shelf_life_months", low=0.0)
        target = raw.get("wait_target", 0.05)
        if isinstance(target, bool) or not isinstance(target, int | float) or not 0 < target < 1:
            raise InputError(
                f"{source}: field 'wait_target': expected a probability in (0, 1), got {target!r}"
            )
        expiry = raw.get("initial_expiry_months")
        spec = cls(
            **params,
            shelf_life_months=shelf,
            lots_per_campaign=_whole(raw.get("lots_per_campaign", 1), source, "lots_per_campaign"),
            wait_target=float(target),
            initial_doses=_number(raw.get("initial_doses", 0.0), source, "initial_doses", low=0),
            initial_expiry_months=None
            if expiry is None
            else _number(expiry, source, "initial_expiry_months", low=0.0),
            cost_per_campaign=_number(
                raw.get("cost_per_campaign", 0.0), source, "cost_per_campaign", low=0.0
            ),
            max_per_month=_whole(raw.get("max_per_month", 4), source, "max_per_month"),
        )
        release = _longest(spec.release_months)
        if spec.usable_months_max < 1:
            raise InputError(
                f"{source}: field 'shelf_life_months': the vector expires before it is released: "
                f"a shelf life of {shelf:g} months (whole months: {int(np.floor(shelf + _EPS))}) "
                f"must be longer than the release time ({_what_longest(spec.release_months)}"
                f"{release:g} months, rounded up to {int(np.ceil(release - _EPS))})"
            )
        return spec

    @property
    def usable_months_max(self) -> int:
        """Whole months a campaign's doses can be used: shelf life less the longest release
        (a lognormal release: its P90 stands in for its longest value)."""
        shelf = int(np.floor(self.shelf_life_months + _EPS))
        return shelf - int(np.ceil(_longest(self.release_months) - _EPS))

    def to_toml(self) -> dict[str, Any]:
        """The TOML/JSON table :meth:`from_mapping` reads back unchanged."""
        out: dict[str, Any] = {
            "doses_per_lot": self.doses_per_lot.to_toml(),
            "lots_per_campaign": self.lots_per_campaign,
            "campaign_lead_time_months": self.campaign_lead_time_months.to_toml(),
            "release_months": self.release_months.to_toml(),
            "shelf_life_months": self.shelf_life_months,
            "wait_target": self.wait_target,
            "initial_doses": self.initial_doses,
            "cost_per_campaign": self.cost_per_campaign,
            "max_per_month": self.max_per_month,
        }
        if self.initial_expiry_months is not None:
            out["initial_expiry_months"] = self.initial_expiry_months
        return out


class _Campaigns:
    """The per-draw numbers of campaign slots, sampled lazily and keyed by slot: the ``k``-th
    campaign of a calendar gets the same lead time and release in every calendar (common
    random numbers between plans), whatever the other slots."""

    def __init__(self, spec: VectorSpec, draws: int, seed: int, key: str) -> None:
        self.spec, self.draws, self.seed, self.key = spec, draws, seed, key
        doses = spec.doses_per_lot.sample_per_draw(draws, self._rng("doses"))
        self.doses = np.floor(doses + _EPS) * spec.lots_per_campaign  # per campaign, per draw
        self.shelf = int(np.floor(spec.shelf_life_months + _EPS))
        self._lead: list[np.ndarray] = []
        self._release: list[np.ndarray] = []

    def _rng(self, *what: str) -> np.random.Generator:
        return stream_rng(self.seed, "vector", self.key, *what)

    def slot(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Whole months of lead time and release of slot ``k``, per draw."""
        while len(self._lead) <= k:
            j = str(len(self._lead))
            lead = self.spec.campaign_lead_time_months.sample_per_draw(
                self.draws, self._rng("lead", j)
            )
            release = self.spec.release_months.sample_per_draw(self.draws, self._rng("release", j))
            self._lead.append(np.ceil(lead - _EPS).clip(0).astype(np.int64))
            self._release.append(np.ceil(release - _EPS).clip(0).astype(np.int64))
        return self._lead[k], self._release[k]

    def window(self, k: int, start: int) -> tuple[np.ndarray, np.ndarray]:
        """Release month ``a`` and expiry month ``e`` (first month not usable) of slot ``k``
        started at ``start``; a release after the expiry expires at release."""
        lead, release = self.slot(k)
        released = start + lead + release
        return released, np.maximum(start + lead + self.shelf, released)


class _Books:
    """Doses left per draw and campaign (column 0: the opening stock) for a whole calendar,
    the columns of each draw sorted once by expiry (ties: the earlier campaign), so that FEFO
    is a cumulative sum along them; :meth:`by_campaign` puts the columns back in slot order."""

    def __init__(self, spec: VectorSpec, camp: _Campaigns, starts: np.ndarray) -> None:
        n = camp.draws
        expiry = spec.initial_expiry_months
        expiry = camp.shelf if expiry is None else int(np.floor(expiry + _EPS))
        windows = [camp.window(k, int(s)) for k, s in enumerate(starts)]
        released = np.column_stack([np.zeros(n, np.int64), *[w[0] for w in windows]])
        expiries = np.column_stack([np.full(n, expiry, np.int64), *[w[1] for w in windows]])
        left = np.column_stack([np.full(n, float(spec.initial_doses))] + [camp.doses] * len(starts))
        self.order = np.argsort(expiries, axis=1, kind="stable")
        self.released = np.take_along_axis(released, self.order, axis=1)
        self.expiry = np.take_along_axis(expiries, self.order, axis=1)
        self.left = np.take_along_axis(left, self.order, axis=1)
        self.used = np.zeros_like(self.left)
        self.expired = np.zeros_like(self.left)
        self.waiting = np.zeros(n)

    def step(self, t: int, lots: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Month ``t``: expiry, then FEFO use by the waiting and the month's lots; returns
        doses used, expired and on hand (released, unexpired) per draw."""
        expired = np.where(self.expiry <= t, self.left, 0.0)
        self.left -= expired
        self.expired += expired
        usable = np.where(self.released <= t, self.left, 0.0)
        need = self.waiting + lots
        before = np.cumsum(usable, axis=1)
        before -= usable
        take = np.clip(need[:, None] - before, 0.0, usable)
        self.left -= take
        self.used += take
        used = take.sum(axis=1)
        self.waiting = need - used
        on_hand = usable.sum(axis=1) - used
        return used, expired.sum(axis=1), on_hand

    def by_campaign(self, sorted_values: np.ndarray) -> np.ndarray:
        out = np.empty_like(sorted_values)
        np.put_along_axis(out, self.order, sorted_values, axis=1)
        return out


class _Buckets:
    """The plan's fast state: doses left per expiry month and draw (``stock[e, :]``; expiries
    at or after the horizon's end share the last bucket, which never expires inside it),
    campaigns not yet released in every draw, lots waiting per draw. Same months, same FEFO
    and the same waits as :class:`_Books` (tested), without per-campaign books: using the
    earliest expiry bucket first is FEFO, and which campaign of a bucket a dose came from
    changes no total."""

    def __init__(self, spec: VectorSpec, camp: _Campaigns, n_month: int) -> None:
        n = camp.draws
        expiry = spec.initial_expiry_months
        expiry = camp.shelf if expiry is None else int(np.floor(expiry + _EPS))
        self.camp, self.n_month, self.campaigns = camp, n_month, 0
        self.draws = np.arange(n)
        self.stock = np.zeros((n_month + 1, n))
        self.pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.top = 0  # the highest bucket that may hold doses
        self._add(np.zeros(n, np.int64), np.full(n, expiry), np.full(n, spec.initial_doses))
        self.waiting = np.zeros(n)

    def _add(self, released: np.ndarray, expiry: np.ndarray, doses: np.ndarray) -> None:
        expiry = np.minimum(expiry, self.n_month)
        self.pending.append((released, expiry, doses))
        self.top = max(self.top, int(expiry.max(initial=0)))

    def copy(self) -> _Buckets:
        out = object.__new__(_Buckets)
        out.__dict__.update(self.__dict__)
        out.stock, out.waiting = self.stock.copy(), self.waiting.copy()
        out.pending = list(self.pending)
        return out

    def start(self, month: int, number: int) -> None:
        for _ in range(number):
            released, expiry = self.camp.window(self.campaigns, month)
            self._add(released, expiry, self.camp.doses)
            self.campaigns += 1

    def step(self, t: int, lots: np.ndarray) -> None:
        keep = []
        for released, expiry, doses in self.pending:
            now = released == t
            if now.any():
                np.add.at(self.stock, (expiry[now], self.draws[now]), doses[now])
            if released.max() > t:
                keep.append((released, expiry, doses))
        self.pending = keep
        self.stock[t] = 0.0  # expired
        window = self.stock[t + 1 : self.top + 1]
        need = self.waiting + lots
        served = np.minimum(need, window.sum(axis=0))
        self.waiting = need - served
        for row in np.flatnonzero(window.max(axis=1, initial=0.0) > 0):  # earliest expiry first
            if not served.any():  # most months the first bucket or two serve every draw
                break
            bucket = window[row]
            take = np.minimum(served, bucket)
            bucket -= take
            served = served - take


def simulate_vector(
    lots: xr.DataArray | np.ndarray,
    spec: VectorSpec,
    starts: Sequence[int] | np.ndarray,
    *,
    seed: int = 0,
    key: str = "vector",
    months: Sequence | None = None,
) -> xr.Dataset:
    """Run a campaign calendar on each draw: doses released, used, expired, on hand, waits.

    Parameters
    ----------
    lots
        Lots started per draw and month (dims ``draw``, ``month``; a (draws, months) array),
        each using one dose: patient lots, re-runs and PPQ lots.
    spec
        The vector.
    starts
        Campaign start months as indices into the months (one entry per campaign; a month
        may appear several times), the same in every draw.
    seed, key
        The random streams of the yields, lead times and release times (``key``: e.g. the
        process name); slot ``k`` (the ``k``-th start in time order) has its own stream.
    months
        Month labels when ``lots`` is an array (default: monthly from 2000-01).

    Returns
    -------
    xarray.Dataset
        Dims ``draw``, ``month`` and ``campaign``. Per draw and month: ``doses_released``,
        ``doses_used``, ``doses_expired`` (by FEFO), ``doses_on_hand`` (released, unexpired,
        at the end of the month), ``lots_waiting`` (at the end of the month). Per draw and
        campaign: ``campaign_doses``, ``campaign_used``, ``campaign_expired`` (within the
        horizon), ``campaign_released`` and ``campaign_expiry`` (month indices); the
        coordinate ``start``. The opening stock's ``opening_used`` and ``opening_expired``.
    """
    seed = check_seed(seed)
    values, months = _lots_array(lots, months)
    n_draw, n_month = values.shape
    starts = np.sort(np.asarray(starts, np.int64).reshape(-1), kind="stable")
    if starts.size and (starts.min() < 0 or starts.max() >= n_month):
        raise InputError(f"starts: campaign start months must be in 0..{n_month - 1}")
    camp = _Campaigns(spec, n_draw, seed, key)
    books = _Books(spec, camp, starts)
    used = np.zeros((n_draw, n_month))
    expired = np.zeros((n_draw, n_month))
    on_hand = np.zeros((n_draw, n_month))
    waiting = np.zeros((n_draw, n_month))
    for t in range(n_month):
        used[:, t], expired[:, t], on_hand[:, t] = books.step(t, values[:, t])
        waiting[:, t] = books.waiting
    used_by, expired_by = books.by_campaign(books.used), books.by_campaign(books.expired)
    released = books.by_campaign(books.released)[:, 1:]
    expiry = books.by_campaign(books.expiry)[:, 1:]
    doses = np.broadcast_to(camp.doses[:, None], released.shape)
    released_per_month = np.zeros((n_draw, n_month + 1))
    rows = np.broadcast_to(np.arange(n_draw)[:, None], released.shape)
    np.add.at(released_per_month, (rows, np.minimum(released, n_month)), doses)
    dims = ("draw", "month")
    coords = {"draw": np.arange(n_draw), "month": months, "start": ("campaign", starts)}
    return xr.Dataset(
        {
            "doses_released": (dims, released_per_month[:, :n_month], {"units": "doses/month"}),
            "doses_used": (dims, used, {"units": "doses/month"}),
            "doses_expired": (dims, expired, {"units": "doses/month"}),
            "doses_on_hand": (dims, on_hand, {"units": "doses"}),
            "lots_waiting": (dims, waiting, {"units": "lots"}),
            "campaign_doses": (("draw", "campaign"), np.array(doses, float), {"units": "doses"}),
            "campaign_used": (("draw", "campaign"), used_by[:, 1:], {"units": "doses"}),
            "campaign_expired": (("draw", "campaign"), expired_by[:, 1:], {"units": "doses"}),
            "campaign_released": (("draw", "campaign"), released, {"units": "month index"}),
            "campaign_expiry": (
                ("draw", "campaign"),
                expiry,
                {"units": "month index"},
            ),
            "opening_used": ("draw", used_by[:, 0], {"units": "doses"}),
            "opening_expired": ("draw", expired_by[:, 0], {"units": "doses"}),
        },
        coords=coords,
        attrs={"seed": seed, "initial_doses": spec.initial_doses},
    )


@dataclass
class VectorPlan:
    """A campaign calendar, its per-draw simulation and its summaries (see :func:`plan_vector`).

    ``campaigns``: one row per campaign (start month, release month and doses percentiles,
    doses used and expired unused within the horizon, P50 and mean over draws, cost);
    ``by_month``: per month the campaigns started and their cost, percentiles of doses
    released, used, expired, on hand and lots waiting, ``wait_probability`` and ``planned``;
    ``totals``: percentiles over draws of each draw's horizon total of doses made (released),
    used and expired unused; ``sim``: the :func:`simulate_vector` Dataset.
    """

    target: float
    reach_months: int
    starts: np.ndarray
    campaigns: pd.DataFrame
    by_month: pd.DataFrame
    totals: pd.DataFrame
    sim: xr.Dataset
    cost: float
    fresh_wait_probability: np.ndarray | None = field(default=None)

    def __str__(self) -> str:
        lines = [
            f"vector: {len(self.starts)} campaign(s) at P(a lot waits) <= {self.target:g} "
            f"(reach {self.reach_months} months)"
        ]
        for month, n in self.by_month.loc[
            self.by_month["campaigns_started"] > 0, ["month", "campaigns_started"]
        ].itertuples(index=False):
            lines.append(f"  start {pd.Timestamp(month):%Y-%m}" + (f" x{n}" if n > 1 else ""))
        return "\n".join(lines)


def plan_vector(
    lots: xr.DataArray | np.ndarray,
    spec: VectorSpec,
    *,
    target: float | None = None,
    seed: int = 0,
    key: str = "vector",
    months: Sequence | None = None,
    fresh_lots: xr.DataArray | np.ndarray | None = None,
    quantiles: Sequence[float] = (0.1, 0.5, 0.9),
) -> VectorPlan:
    """When to start each vector campaign so that P(a lot waits for vector) <= ``target``.

    The greedy rule and its non-anticipation are in the module docstring. ``target``
    defaults to ``spec.wait_target``. ``fresh_lots`` (other draws of the same model) are
    run with the chosen calendar and fresh yields, lead and release times (seed ``seed + 1``):
    ``fresh_wait_probability`` per month, and the column ``wait_probability_fresh`` of
    ``by_month``.

    Examples
    --------
    >>> spec = VectorSpec.from_mapping({"doses_per_lot": 10, "campaign_lead_time_months": 1,
    ...     "release_months": 1, "shelf_life_months": 12})
    >>> plan = plan_vector(np.full((5, 8), 2.0), spec)
    >>> plan.reach_months, plan.starts.tolist()
    (2, [0, 3])
    """
    seed = check_seed(seed)
    target = spec.wait_target if target is None else target
    if isinstance(target, bool) or not isinstance(target, int | float) or not 0 < target < 1:
        raise InputError(f"vector: wait_target: expected a probability in (0, 1), got {target!r}")
    values, months = _lots_array(lots, months)
    n_draw, n_month = values.shape
    camp = _Campaigns(spec, n_draw, seed, key)
    lead, release = camp.slot(0)
    reach = int(np.quantile(lead + release, 1 - target, method="inverted_cdf"))

    def probe(state: _Buckets, t: int, check: int, number: int) -> tuple[float, _Buckets]:
        """P(a lot waits at ``check``) with ``number`` more campaigns at ``t``, and the
        state projected to the end of ``check``."""
        ahead = state.copy()
        ahead.start(t, number)
        for month in range(t, check + 1):
            ahead.step(month, values[:, month])
        return float(np.mean(ahead.waiting > _EPS)), ahead

    starts: list[int] = []
    state = _Buckets(spec, camp, n_month)
    ahead = None  # the projection of the calendar so far to the end of month t - 1 + reach
    for t in range(n_month - reach):
        check = t + reach
        if ahead is None:
            best = (*probe(state, t, check, 0), 0)
        else:  # no campaign after t - 1: the projection one month further is the 0 probe
            ahead.step(check, values[:, check])
            best = (float(np.mean(ahead.waiting > _EPS)), ahead, 0)
        number = 0
        while best[0] > target and number < spec.max_per_month:
            number += 1
            p, projected = probe(state, t, check, number)
            if p < best[0]:
                best = (p, projected, number)
        _, ahead, chosen = best
        state.start(t, chosen)
        starts += [t] * chosen
        state.step(t, values[:, t])
    starts_arr = np.asarray(starts, np.int64)
    sim = simulate_vector(values, spec, starts_arr, seed=seed, key=key, months=months)
    fresh = None
    if fresh_lots is not None:
        fresh_values, _ = _lots_array(fresh_lots, months)
        redo = simulate_vector(
            fresh_values, spec, starts_arr, seed=seed + 1, key=key, months=months
        )
        fresh = (redo["lots_waiting"].values > _EPS).mean(axis=0)
    return _summarise(sim, spec, target, reach, starts_arr, months, quantiles, fresh)


def vector_by_process(
    lots: xr.DataArray,
    processes: Mapping[str, Any],
    *,
    seed: int = 0,
    quantiles: Sequence[float] = (0.1, 0.5, 0.9),
) -> dict[str, VectorPlan]:
    """:func:`plan_vector` for each process with a ``vector``.

    ``lots`` has a ``program`` dim (``requirements(..., by_program=True)["lots"]``);
    ``processes`` maps each program to its :class:`capacity.ProcessSpec`. The lots of the
    programs made with one process are summed and share that process's vector stock.
    """
    out: dict[str, VectorPlan] = {}
    for spec in {s.name: s for s in processes.values()}.values():
        if getattr(spec, "vector", None) is None:
            continue
        programs = [p for p, s in processes.items() if s.name == spec.name]
        own = lots.sel(program=programs).sum("program")
        out[spec.name] = plan_vector(
            own, spec.vector, seed=seed, key=spec.name, quantiles=quantiles
        )
    return out


# --- helpers ------------------------------------------------------------------------------
def _summarise(
    sim: xr.Dataset,
    spec: VectorSpec,
    target: float,
    reach: int,
    starts: np.ndarray,
    months: np.ndarray,
    quantiles: Sequence[float],
    fresh: np.ndarray | None,
) -> VectorPlan:
    qs = list(quantiles)
    n_month = len(months)
    counts = np.bincount(starts, minlength=n_month)
    by_month = pd.DataFrame(
        {
            "month": months,
            "campaigns_started": counts,
            "campaign_cost": counts * spec.cost_per_campaign,
        }
    )
    for name in ("doses_released", "doses_used", "doses_expired", "doses_on_hand", "lots_waiting"):
        bands = np.quantile(sim[name].values, qs, axis=0)
        for q, band in zip(qs, bands, strict=True):
            by_month[f"{name}_p{100 * q:g}"] = band
    by_month["wait_probability"] = (sim["lots_waiting"].values > _EPS).mean(axis=0)
    if fresh is not None:
        by_month["wait_probability_fresh"] = fresh
    by_month["planned"] = np.arange(n_month) >= reach
    made = sim["doses_released"].values.sum(axis=1)
    used = sim["doses_used"].values.sum(axis=1)
    expired = sim["doses_expired"].values.sum(axis=1)
    rows = {
        "doses_made": made,
        "doses_used": used,
        "doses_expired": expired,
        "doses_on_hand_at_end": sim["doses_on_hand"].values[:, -1] if n_month else made * 0,
        "lot_months_waiting": sim["lots_waiting"].values.sum(axis=1),
    }
    totals = pd.DataFrame(
        [
            {"metric": k, "mean": v.mean(), **{f"p{100 * q:g}": np.quantile(v, q) for q in qs}}
            for k, v in rows.items()
        ]
    )
    released = sim["campaign_released"].values
    campaigns = pd.DataFrame({"campaign": np.arange(1, len(starts) + 1)})
    campaigns["start_month"] = months[starts] if len(starts) else np.array([], months.dtype)
    for q in qs:
        index = np.quantile(released, q, axis=0, method="inverted_cdf").astype(int)
        campaigns[f"release_month_p{100 * q:g}"] = [_month_at(months, i) for i in index]
    for q in qs:
        campaigns[f"doses_p{100 * q:g}"] = np.quantile(sim["campaign_doses"].values, q, axis=0)
    campaigns["doses_used_p50"] = np.quantile(sim["campaign_used"].values, 0.5, axis=0)
    campaigns["doses_expired_p50"] = np.quantile(sim["campaign_expired"].values, 0.5, axis=0)
    campaigns["doses_used_mean"] = sim["campaign_used"].values.mean(axis=0)
    campaigns["doses_expired_mean"] = sim["campaign_expired"].values.mean(axis=0)
    campaigns["cost"] = spec.cost_per_campaign
    return VectorPlan(
        target=float(target),
        reach_months=reach,
        starts=starts,
        campaigns=campaigns,
        by_month=by_month,
        totals=totals,
        sim=sim,
        cost=float(len(starts) * spec.cost_per_campaign),
        fresh_wait_probability=fresh,
    )


def _month_at(months: np.ndarray, index: int) -> pd.Timestamp:
    """The month at ``index``, extrapolated monthly past the horizon."""
    first = pd.Timestamp(months[0])
    return first + pd.DateOffset(months=int(index))


def _lots_array(lots: Any, months: Sequence | None) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(lots, xr.DataArray):
        extra = sorted(set(lots.dims) - {"draw", "month"})
        if extra or set(lots.dims) != {"draw", "month"}:
            raise InputError(f"lots: expected dims draw, month, got {lots.dims}")
        values = np.asarray(lots.transpose("draw", "month").values, float)
        months = lots["month"].values if months is None else months
    else:
        values = np.asarray(lots, float)
        if values.ndim != 2:
            raise InputError(f"lots: expected a (draws, months) array, got shape {values.shape}")
    if not np.isfinite(values).all() or (values < 0).any():
        raise InputError("lots: expected finite numbers >= 0 of lots per month")
    if months is None:
        months = pd.date_range("2000-01-01", periods=values.shape[1], freq="MS").values
    months = np.asarray(months)
    if months.shape != (values.shape[1],):
        raise InputError(f"months: expected {values.shape[1]} months, got {months.shape}")
    return values, months


def _longest(p: Param) -> float:
    return p.args[1] if p.kind == "lognormal" else p.support[1]


def _what_longest(p: Param) -> str:
    return "P90 " if p.kind == "lognormal" else "longest "


def _whole(value: Any, where: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{where}: field '{name}': expected a whole number >= 1, got {value!r}")
    return int(value)


def _number(value: Any, where: str, name: str, *, low: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise InputError(f"{where}: field '{name}': expected a number, got {value!r}")
    if value < low:
        raise InputError(f"{where}: field '{name}': must be >= {low:g}, got {value!r}")
    return float(value)
