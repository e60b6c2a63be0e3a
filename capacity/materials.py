"""Materials: a bill of materials per lot and a periodic-review order-up-to policy per item.

Model (per item, per draw ``d`` and month ``t``; months are review periods):

* **Consumption** ``c[d, t] = lots[d, t] x q[d]``: every lot started in month ``t`` (patient
  lots, re-runs of failed lots and PPQ lots, as counted by :func:`capacity.requirements`)
  uses ``quantity_per_lot`` of the item. An uncertain quantity is sampled once per draw, like
  the process parameters.
* **Lead time** ``L[d]``: the supplier lead time in months, sampled once per draw (the
  uncertainty is about the supplier, not month-to-month noise, so orders never cross) and
  rounded *up* to whole months: an order placed at the review at the start of month ``t``
  is on hand from the start of month ``t + L``.
* **Policy**: at the start of each month the inventory position (on hand + on order -
  backorders) is raised to the order-up-to level ``S[t]``: the order ``S[t] - position``, if
  positive, rounded up to a whole number of packs and to at least the minimum order. Unmet
  consumption is backordered (a lot that lacks a material waits for the next delivery).
* **Sizing on the joint draws**: the stock on hand at the end of month ``t + L`` is at least
  ``S[t] - D[d, t]``, with ``D[d, t] = c[d, t] + ... + c[d, t + L[d]]`` the demand over the
  protection interval of ``L + 1`` months (orders placed after ``t`` arrive after ``t + L``).
  So a stock-out at the end of that cycle has probability at most ``P(D[t] > S[t])``, and
  ``S[t]`` is the empirical ``1 - target`` quantile of ``D[:, t]`` over draws (the smallest
  value whose empirical CDF reaches ``1 - target``, ``numpy.quantile(method="inverted_cdf")``).
  Because the draws carry the joint uncertainty of launch, uptake, failures and the
  item's own parameters, no distribution shape is assumed; ``method="normal"`` gives the
  textbook ``mean + z sd`` of the same draws for comparison, which under-sizes a bimodal
  demand (a launch that may not happen). With i.i.d. Poisson lots and a fixed quantity and
  lead time, ``S`` tends to the Poisson quantile of the ``L + 1``-month demand, the classical
  base-stock level (Zipkin 2000, *Foundations of Inventory Management*, ch. 6; Snyder and
  Shen 2019, *Fundamentals of Supply Chain Theory*, ch. 4).
* **Horizon**: a window that runs past the last month is truncated (demand after the horizon
  is unknown), so the levels of the last ``L`` months cover only the months left.
* **Opening stock**: on hand at the start, by default ``S[0]`` of each item (bought before the
  horizon; not in the monthly spend), so the first cycle is covered like the others.

* **Supplier disruption** (optional, per item): spells in which the supplier cannot supply
  start as a Poisson process (``spells_per_year``) and last ``duration_months`` (whole
  months); an order placed in a spell waits for its end (:func:`supplier_down`,
  :func:`arrival_months`). A **second supplier** (optional) takes every order placed in a
  spell, and ``share_of_orders`` of the others, with its own lead time, at a premium. The
  protection interval of review ``t`` then runs until every order up to review ``t + 1`` can
  have arrived (``t + L`` without spells), so ``S[t]`` covers each draw's spells too.

Expected stock (on hand at the end of the month, backorders counting 0), orders and spend
(orders x ``unit_cost``, in the month the order is placed) are means over draws, and
P(stock-out) in a month is the share of draws with a backorder at its end; lots at risk are
the lots waiting for the item at the end of the month (:func:`lots_waiting`). Re-simulating
the levels on *fresh* draws (``fresh_lots``) checks them out of sample.

Not modelled here: vector campaigns, shelf life and expiry (FEFO).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
from scipy import special

from capacity.distributions import Param, check_seed, stream_rng
from capacity.errors import InputError

__all__ = [
    "BillOfMaterials",
    "Disruption",
    "MaterialItem",
    "SecondSupplier",
    "arrival_months",
    "consumption",
    "lead_times",
    "lots_waiting",
    "materials_by_process",
    "order_up_to",
    "plan_materials",
    "simulate_policy",
    "spend_by_program",
    "supplier_down",
]

_FIELDS = (
    "name",
    "unit",
    "quantity_per_lot",
    "unit_cost",
    "lead_time_months",
    "pack_size",
    "min_order",
    "disruption",
    "second_supplier",
)
_REQUIRED = ("name", "unit", "quantity_per_lot", "unit_cost", "lead_time_months")


@dataclass(frozen=True)
class Disruption:
    """Spells in which the item's (first) supplier cannot supply.

    Spells start as a Poisson process of ``spells_per_year`` over the horizon (each in a
    month drawn uniformly) and last ``duration_months`` (a number or a distribution,
    rounded up to whole months); the supplier is up at the start of the horizon.
    """

    spells_per_year: float
    duration_months: Param

    @classmethod
    def from_mapping(cls, raw: Any, where: str) -> Disruption:
        where = f"{where}: field 'disruption'"
        if not isinstance(raw, Mapping):
            raise InputError(
                f"{where}: expected a table {{spells_per_year = ..., duration_months = ...}}"
            )
        unknown = sorted(set(raw) - {"spells_per_year", "duration_months"})
        if unknown:
            raise InputError(
                f"{where}: unknown fields {unknown} (expected: spells_per_year, duration_months)"
            )
        for field in ("spells_per_year", "duration_months"):
            if field not in raw:
                raise InputError(f"{where}: missing field '{field}'")
        rate = _number(raw["spells_per_year"], where, "spells_per_year", low=0.0)
        try:
            duration = Param.parse(raw["duration_months"])
        except ValueError as exc:
            raise InputError(f"{where}: field 'duration_months': {exc}") from None
        if duration.support[0] <= 0:
            raise InputError(f"{where}: field 'duration_months': must be > 0, got {duration}")
        return cls(rate, duration)

    def to_toml(self) -> dict[str, Any]:
        return {
            "spells_per_year": self.spells_per_year,
            "duration_months": self.duration_months.to_toml(),
        }


@dataclass(frozen=True)
class SecondSupplier:
    """A qualified second supplier that takes every order placed while the first is down.

    It has its own ``lead_time_months`` (sampled once per draw, rounded up like the first's),
    its price is ``unit_cost x (1 + unit_cost_premium)``, and it is never disrupted itself.
    With ``share_of_orders`` > 0 (dual sourcing) it also fills that share of every order
    placed while the first supplier is up.
    """

    lead_time_months: Param
    unit_cost_premium: float = 0.0
    share_of_orders: float = 0.0

    @classmethod
    def from_mapping(cls, raw: Any, where: str) -> SecondSupplier:
        where = f"{where}: field 'second_supplier'"
        if not isinstance(raw, Mapping):
            raise InputError(
                f"{where}: expected a table {{lead_time_months = ..., unit_cost_premium = ...}}"
            )
        unknown = sorted(set(raw) - {"lead_time_months", "unit_cost_premium", "share_of_orders"})
        if unknown:
            raise InputError(
                f"{where}: unknown fields {unknown} "
                "(expected: lead_time_months, unit_cost_premium, share_of_orders)"
            )
        if "lead_time_months" not in raw:
            raise InputError(f"{where}: missing field 'lead_time_months'")
        try:
            lead = Param.parse(raw["lead_time_months"])
        except ValueError as exc:
            raise InputError(f"{where}: field 'lead_time_months': {exc}") from None
        if lead.support[0] < 0:
            raise InputError(f"{where}: field 'lead_time_months': must be >= 0, got {lead}")
        premium = _number(raw.get("unit_cost_premium", 0.0), where, "unit_cost_premium", low=0.0)
        share = _number(raw.get("share_of_orders", 0.0), where, "share_of_orders", low=0.0)
        if share > 1:
            raise InputError(f"{where}: field 'share_of_orders': must be <= 1, got {share!r}")
        return cls(lead, premium, share)

    def to_toml(self) -> dict[str, Any]:
        return {
            "lead_time_months": self.lead_time_months.to_toml(),
            "unit_cost_premium": self.unit_cost_premium,
            "share_of_orders": self.share_of_orders,
        }


@dataclass(frozen=True)
class MaterialItem:
    """One item of the bill: how much a lot uses and how it is bought.

    ``quantity_per_lot`` (in ``unit``) and ``lead_time_months`` may be a number or a
    distribution (see :mod:`capacity.distributions`); ``unit_cost`` is per ``unit``; orders
    are whole multiples of ``pack_size`` and at least ``min_order`` (both in ``unit``).
    ``disruption`` (optional) gives the first supplier's spells of unavailability and
    ``second_supplier`` (optional, needs a disruption) the supplier that takes over in them.
    """

    name: str
    unit: str
    quantity_per_lot: Param
    unit_cost: float
    lead_time_months: Param
    pack_size: float = 1.0
    min_order: float = 0.0
    disruption: Disruption | None = None
    second_supplier: SecondSupplier | None = None

    @classmethod
    def from_mapping(
        cls, raw: Mapping[str, Any], source: str = "bill of materials"
    ) -> MaterialItem:
        """Validate one item; an :class:`InputError` names ``source``, the item and the field."""
        if not isinstance(raw, Mapping):
            raise InputError(f"{source}: each item must be a table of fields, got {raw!r}")
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"{source}: an item has no name (field 'name': a non-empty text)")
        where = f"{source}: item {name!r}"
        unknown = sorted(set(raw) - set(_FIELDS))
        if unknown:
            raise InputError(f"{where}: unknown fields {unknown} (expected: {', '.join(_FIELDS)})")
        missing = [f for f in _REQUIRED if f not in raw]
        if missing:
            raise InputError(f"{where}: missing field '{missing[0]}'")
        unit = raw["unit"]
        if not isinstance(unit, str) or not unit.strip():
            raise InputError(f"{where}: field 'unit': expected a unit such as 'mL', got {unit!r}")
        params = {}
        for field in ("quantity_per_lot", "lead_time_months"):
            try:
                param = Param.parse(raw[field])
            except ValueError as exc:
                raise InputError(f"{where}: field '{field}': {exc}") from None
            if param.support[0] < 0:
                raise InputError(f"{where}: field '{field}': must be >= 0, got {param}")
            params[field] = param
        numbers = {
            "unit_cost": _number(raw["unit_cost"], where, "unit_cost", low=0.0),
            "pack_size": _number(raw.get("pack_size", 1.0), where, "pack_size", low=0.0),
            "min_order": _number(raw.get("min_order", 0.0), where, "min_order", low=0.0),
        }
        if numbers["pack_size"] == 0:
            raise InputError(f"{where}: field 'pack_size': must be > 0, got 0")
        disruption = second = None
        if raw.get("disruption") is not None:
            disruption = Disruption.from_mapping(raw["disruption"], where)
        if raw.get("second_supplier") is not None:
            if disruption is None:
                raise InputError(
                    f"{where}: field 'second_supplier': it takes over during a disruption; "
                    "give the item a disruption too"
                )
            second = SecondSupplier.from_mapping(raw["second_supplier"], where)
        return cls(
            name=name,
            unit=unit,
            **params,
            **numbers,
            disruption=disruption,
            second_supplier=second,
        )

    def to_toml(self) -> dict[str, Any]:
        """The TOML/JSON table :meth:`from_mapping` reads back unchanged."""
        return {
            "name": self.name,
            "unit": self.unit,
            "quantity_per_lot": self.quantity_per_lot.to_toml(),
            "unit_cost": self.unit_cost,
            "lead_time_months": self.lead_time_months.to_toml(),
            "pack_size": self.pack_size,
            "min_order": self.min_order,
            **({"disruption": self.disruption.to_toml()} if self.disruption else {}),
            **({"second_supplier": self.second_supplier.to_toml()} if self.second_supplier else {}),
        }


@dataclass(frozen=True)
class BillOfMaterials:
    """The items a lot uses, by name, and the stock-out target their levels are set at.

    In a process TOML file (all items of one process)::

        [materials]
        stockout_target = 0.05          # P(stock-out in a review cycle); default 0.05
        [[materials.item]]
        name = "media"
        unit = "L"
        quantity_per_lot = {triangular = [15, 20, 30]}
        unit_cost = 150
        lead_time_months = {uniform = [1, 3]}
        pack_size = 10                  # optional, default 1
        min_order = 0                   # optional, default 0

    Examples
    --------
    >>> bill = BillOfMaterials.from_records([{"name": "media", "unit": "L",
    ...     "quantity_per_lot": 20, "unit_cost": 150, "lead_time_months": 2, "pack_size": 10}])
    >>> bill.names
    ['media']
    """

    items: tuple[MaterialItem, ...]
    stockout_target: float = 0.05

    @classmethod
    def from_records(
        cls,
        records: Sequence[Mapping[str, Any]],
        source: str = "bill of materials",
        stockout_target: float = 0.05,
    ) -> BillOfMaterials:
        """Validate a list of item tables (as ``[[materials.item]]`` in TOML reads)."""
        if isinstance(records, Mapping | str) or not isinstance(records, Sequence):
            raise InputError(f"{source}: expected a list of item tables, got {records!r}")
        if not records:
            raise InputError(f"{source}: the bill has no items")
        try:
            _check_target(stockout_target)
        except InputError as exc:
            raise InputError(f"{source}: field 'stockout_target': {exc}") from None
        items = tuple(MaterialItem.from_mapping(r, source) for r in records)
        seen: set[str] = set()
        for item in items:
            if item.name in seen:
                raise InputError(f"{source}: item {item.name!r} is listed twice")
            seen.add(item.name)
        return cls(items, float(stockout_target))

    @classmethod
    def from_mapping(cls, raw: Any, source: str = "materials") -> BillOfMaterials:
        """Validate a ``[materials]`` table: ``item`` (a list of items), ``stockout_target``."""
        if isinstance(raw, BillOfMaterials):
            return raw
        if not isinstance(raw, Mapping):
            raise InputError(f"{source}: expected a table with [[materials.item]] entries")
        unknown = sorted(set(raw) - {"item", "stockout_target"})
        if unknown:
            raise InputError(
                f"{source}: unknown fields {unknown} (expected: item, stockout_target)"
            )
        if "item" not in raw:
            raise InputError(f"{source}: missing field 'item' (one [[materials.item]] per item)")
        return cls.from_records(raw["item"], source, raw.get("stockout_target", 0.05))

    def to_toml(self) -> dict[str, Any]:
        """The ``[materials]`` table :meth:`from_mapping` reads back unchanged."""
        return {"stockout_target": self.stockout_target, "item": [i.to_toml() for i in self.items]}

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.items]

    def check_names(self, names: Sequence[str], where: str) -> None:
        """InputError if ``where`` (e.g. a process) names an item the bill lacks."""
        missing = [n for n in names if n not in self.names]
        if missing:
            raise InputError(
                f"{where}: item {missing[0]!r} is not in the bill of materials "
                f"(items: {', '.join(self.names)})"
            )


def consumption(
    lots: xr.DataArray,
    bill: BillOfMaterials,
    *,
    seed: int = 0,
    uses: Mapping[str, Sequence[str]] | None = None,
) -> xr.DataArray:
    """Consumption per draw, month and item (in each item's unit).

    Parameters
    ----------
    lots
        Lots started per draw and month (dims ``draw``, ``month``, optionally ``program``),
        e.g. ``requirements(demand, process, by_program=True)["lots"]``: patient lots, re-runs
        and PPQ lots.
    bill
        The bill of materials.
    seed
        Seed of the per-draw quantities; each item has its own stream (key: its name).
    uses
        ``program -> item names`` the program's process uses (default: every item for
        every program); a name the bill lacks is an :class:`InputError`.
    """
    seed = check_seed(seed)
    lots = _check_lots(lots)
    if "program" in lots.dims:
        programs = [str(p) for p in lots["program"].values]
        share = np.ones((len(programs), len(bill.items)))
        if uses is not None:
            unknown = sorted(set(map(str, uses)) - set(programs))
            if unknown:
                raise InputError(f"uses: programs {unknown} are not in the lots {programs}")
            for k, program in enumerate(programs):
                if program in uses:
                    bill.check_names(list(uses[program]), f"uses[{program!r}]")
                    share[k] = [n in uses[program] for n in bill.names]
        base = lots.transpose("draw", "month", "program").values @ share  # (draw, month, item)
    else:
        if uses is not None:
            raise InputError("uses: lots have no program dim; give lots by program")
        base = lots.transpose("draw", "month").values[:, :, None] * np.ones(len(bill.items))
    q = _quantities(bill, lots.sizes["draw"], seed)
    return xr.DataArray(
        base * q[:, None, :],
        dims=("draw", "month", "item"),
        coords={"draw": lots["draw"].values, "month": lots["month"].values, "item": bill.names},
        name="consumption",
        attrs={"units": "item units/month", "seed": seed},
    )


def lead_times(
    bill: BillOfMaterials, draws: int, seed: int = 0, *, second: bool = False
) -> np.ndarray:
    """Lead time per draw and item in whole months (rounded up), shape (draws, items).

    ``second=True``: the second supplier's lead times (``-1`` for an item without one).
    """
    seed = check_seed(seed)
    cols = []
    for i in bill.items:
        if not second:
            cols.append(
                _whole_months(i.lead_time_months.sample_per_draw(draws, _rng(seed, i, "lead")))
            )
        elif i.second_supplier is None:
            cols.append(np.full(draws, -1, np.int64))
        else:
            raw = i.second_supplier.lead_time_months.sample_per_draw(
                draws, _rng(seed, i, "second lead")
            )
            cols.append(_whole_months(raw))
    return np.stack(cols, axis=1) if cols else np.zeros((draws, 0), np.int64)


def supplier_down(bill: BillOfMaterials, draws: int, months: int, seed: int = 0) -> np.ndarray:
    """True where an item's first supplier is in a disruption spell, shape (draws, months, items).

    Per draw and item, the number of spells in the horizon is Poisson with mean
    ``spells_per_year x months / 12``, each starts in a month drawn uniformly and lasts
    ``duration_months`` rounded up to whole months (at least one); overlapping spells merge.
    Each item has its own random stream (key: its name), so adding an item leaves the others'
    spells unchanged. Vectorised over draws and spells; the loop is over items.
    """
    seed = check_seed(seed)
    down = np.zeros((draws, months, len(bill.items)), bool)
    for k, item in enumerate(bill.items):
        spell = item.disruption
        if spell is None or spell.spells_per_year == 0 or months == 0 or draws == 0:
            continue
        rng = _rng(seed, item, "disruption")
        count = rng.poisson(spell.spells_per_year * months / 12, draws)
        most = int(count.max())
        start = np.floor(rng.random((draws, most)) * months).astype(np.int64)
        length = _whole_months(spell.duration_months.sample_per_draw(draws * most, rng))
        length = length.reshape(draws, most).clip(min=1)
        real = np.arange(most)[None, :] < count[:, None]
        rows = np.broadcast_to(np.arange(draws)[:, None], start.shape)[real]
        edges = np.zeros((draws, months + 1), np.int64)
        np.add.at(edges, (rows, start[real]), 1)
        np.add.at(edges, (rows, np.minimum(start + length, months)[real]), -1)
        down[:, :, k] = np.cumsum(edges[:, :months], axis=1) > 0
    return down


def arrival_months(
    lead: np.ndarray,
    down: np.ndarray | None = None,
    second_lead: np.ndarray | None = None,
    second_share: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """When each review's order arrives, from each supplier, and the second supplier's share.

    An order placed at the start of month ``t`` (draw ``d``, item ``i``) with the first
    supplier arrives at the start of month ``u + L``, with ``u`` the first month from ``t`` on
    in which it is up (the order waits out a spell; ``u`` is the horizon's end if the spell
    outlasts it). With a second supplier (``second_lead[d, i] >= 0``) an order placed in a
    spell goes to it instead, and ``second_share[i]`` (default 0) of an order placed while
    the first is up; its part arrives at ``t + L2``. Shapes: ``lead`` and ``second_lead``
    (draws, items), ``down`` (draws, months, items). Returns three arrays of ``down``'s shape:
    the first supplier's part's arrival month, the second's (the first's where there is no
    second supplier) and the share of the order placed with the second supplier.
    """
    n_draw, n_month, n_item = down.shape
    t = np.arange(n_month)[None, :, None]
    up_at = np.where(down, n_month, t)
    first_up = np.minimum.accumulate(up_at[:, ::-1], axis=1)[:, ::-1]
    first = first_up + lead[:, None, :]
    if second_lead is None:
        return first, first, np.zeros(down.shape)
    has = second_lead[:, None, :] >= 0
    second = np.where(has, t + second_lead[:, None, :], first)
    usual = np.zeros(n_item) if second_share is None else np.asarray(second_share, float)
    share = np.where(has, np.where(down, 1.0, usual), 0.0)
    return first, second, share


def order_up_to(
    cons: xr.DataArray,
    lead: np.ndarray,
    *,
    target: float = 0.05,
    method: str = "empirical",
    down: np.ndarray | None = None,
    second_lead: np.ndarray | None = None,
    second_share: np.ndarray | None = None,
    _cycle: np.ndarray | None = None,
) -> xr.DataArray:
    """Order-up-to level per month and item with P(stock-out in a cycle) <= ``target``.

    ``S[t]`` is the empirical ``1 - target`` quantile over draws of the consumption over
    months ``t .. e[d, t]`` (see the module docstring): ``e = t + L[d]`` without disruption;
    with ``down`` (:func:`supplier_down`), ``second_lead`` and ``second_share`` the cycle runs
    to the month before every part of the next review's order can have arrived
    (:func:`arrival_months`), so a spell that delays it lengthens the draw's protection
    interval. ``method="normal"`` gives
    ``mean + z sd`` of the same draws (``z`` the standard normal ``1 - target`` quantile),
    for comparison.
    """
    _check_target(target)
    if method not in ("empirical", "normal"):
        raise InputError(f"method: expected 'empirical' or 'normal', got {method!r}")
    c = cons.transpose("draw", "month", "item").values
    lead = _check_lead(lead, cons)
    if _cycle is None:  # plan_materials passes it, computed once
        arrivals = arrival_months(lead, _check_down(down, c.shape), second_lead, second_share)
        _cycle = _cycle_end(lead, arrivals)
    window = _window_demand(c, _cycle)
    if method == "empirical":
        level = np.quantile(window, 1 - target, axis=0, method="inverted_cdf")
    else:
        z = float(special.ndtri(1 - target))
        level = window.mean(axis=0) + z * window.std(axis=0, ddof=1)
    return xr.DataArray(
        level,
        dims=("month", "item"),
        coords={"month": cons["month"].values, "item": cons["item"].values},
        name="order_up_to",
        attrs={"target": target, "method": method},
    )


def simulate_policy(
    cons: xr.DataArray,
    lead: np.ndarray,
    levels: xr.DataArray,
    bill: BillOfMaterials,
    *,
    opening: Mapping[str, float] | None = None,
    down: np.ndarray | None = None,
    second_lead: np.ndarray | None = None,
    _arrivals: tuple[np.ndarray, np.ndarray] | None = None,
) -> xr.Dataset:
    """Run the order-up-to policy on each draw: stock, orders and spend per draw and month.

    Returns a Dataset (dims ``draw``, ``month``, ``item``) with ``stock`` (net stock at the
    end of the month; negative is a backorder), ``orders`` (placed at the start of the month,
    in item units), ``spend`` (orders x unit cost, x ``1 + unit_cost_premium`` for an order
    the second supplier fills) and ``premium`` (the second supplier's extra cost in it).
    ``down`` and ``second_lead`` give disruption spells and second suppliers
    (:func:`arrival_months`; each item's ``share_of_orders`` from ``bill``); without them
    every order arrives ``lead`` months later.
    Vectorised over draws and items; the loop is over months only (each month's orders
    depend on the last).
    """
    c = cons.transpose("draw", "month", "item").values
    lead = _check_lead(lead, cons)
    if list(levels["item"].values) != bill.names or list(cons["item"].values) != bill.names:
        raise InputError("levels and consumption must list the bill's items in order")
    s = levels.transpose("month", "item").values
    n_draw, n_month, n_item = c.shape
    if _arrivals is None:  # plan_materials passes them, computed once
        _arrivals = arrival_months(lead, _check_down(down, c.shape), second_lead, _shares(bill))
    first, second, part = _arrivals
    pack = np.array([i.pack_size for i in bill.items])
    moq = np.array([i.min_order for i in bill.items])
    cost = np.array([i.unit_cost for i in bill.items])
    extra = np.array(
        [i.second_supplier.unit_cost_premium if i.second_supplier else 0.0 for i in bill.items]
    )
    start = s[0].copy() if n_month else np.zeros(n_item)
    for name, value in (opening or {}).items():
        if name not in bill.names:
            bill.check_names([name], "opening")
        start[bill.names.index(name)] = _number(value, "opening", name, low=0.0)
    on_hand = np.broadcast_to(start, (n_draw, n_item)).astype(float)
    pipeline = np.zeros((n_draw, n_item))  # ordered, not yet arrived
    last = max(int(first.max(initial=0)), int(second.max(initial=0)))
    arrivals = np.zeros((n_draw, last + 1, n_item))
    rows, cols = np.indices((n_draw, n_item))
    stock = np.empty_like(c)
    orders = np.empty_like(c)
    split = part.any(axis=(0, 2))  # months in which some draw orders from the second supplier
    for t in range(n_month):
        need = s[t] - (on_hand + pipeline)  # the position counts what is on order
        q = np.where(need > 1e-9, np.maximum(need, moq), 0.0)
        q = np.ceil(q / pack - 1e-9) * pack
        if split[t]:
            arrivals[rows, first[:, t], cols] += q * (1 - part[:, t])
            arrivals[rows, second[:, t], cols] += q * part[:, t]
        else:  # the first supplier alone this month, in every draw
            arrivals[rows, first[:, t], cols] += q
        pipeline = pipeline + q - arrivals[:, t]  # receive (a 0-month lead time: at once)
        on_hand = on_hand + arrivals[:, t] - c[:, t]
        stock[:, t] = on_hand
        orders[:, t] = q
    coords = {"draw": cons["draw"].values, "month": cons["month"].values, "item": bill.names}
    dims = ("draw", "month", "item")
    premium = orders * cost * extra * part
    return xr.Dataset(
        {
            "stock": (dims, stock, {"units": "item units"}),
            "orders": (dims, orders, {"units": "item units/month"}),
            "spend": (dims, orders * cost + premium, {"units": "currency/month"}),
            "premium": (dims, premium, {"units": "currency/month"}),
        },
        coords=coords,
    )


def lots_waiting(stock: xr.DataArray, quantity: np.ndarray) -> xr.DataArray:
    """Lots waiting for an item at the end of the month: ``ceil(backorder / quantity_per_lot)``.

    ``stock`` (draw, month, item) from :func:`simulate_policy`; ``quantity`` the draw's
    quantity per lot (draws, items). An item a lot uses none of holds no lot back.
    """
    backlog = (-stock).clip(min=0).transpose("draw", "month", "item").values
    q = np.asarray(quantity, float)[:, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        waiting = np.where(q > 0, np.ceil(backlog / np.where(q > 0, q, 1.0) - 1e-9), 0.0)
    return xr.DataArray(waiting.clip(min=0), dims=("draw", "month", "item"), coords=stock.coords)


def plan_materials(
    lots: xr.DataArray,
    bill: BillOfMaterials,
    *,
    target: float | None = None,
    seed: int = 0,
    uses: Mapping[str, Sequence[str]] | None = None,
    method: str = "empirical",
    fresh_lots: xr.DataArray | None = None,
    quantiles: Sequence[float] = (0.1, 0.5, 0.9),
) -> xr.Dataset:
    """Size and run the order-up-to policy of every item; summaries per month and item.

    Returns a Dataset (dims ``month``, ``item``): ``consumption_pQ`` for each of ``quantiles``
    (percentiles over draws: ``consumption_p10``, ...), ``order_up_to``,
    ``expected_stock`` (on hand at the end of the month), ``expected_orders``,
    ``expected_spend``, ``stockout_probability`` and ``expected_lots_at_risk`` (lots waiting
    for the item at the end of the month, :func:`lots_waiting`) on the draws the levels were
    sized on. When an item has a disruption: ``supplier_down_probability`` (share of draws
    whose first supplier is down in the month); when one has a second supplier:
    ``stockout_probability_single_source`` and ``expected_lots_at_risk_single_source`` (the
    same levels and spells without the second supplier) and ``expected_second_supplier_premium``
    (what its premium adds to the spend); NaN for items without. With ``fresh_lots`` (other
    draws of the same model, e.g. ``requirements`` with another seed) also
    ``stockout_probability_fresh``: the same levels re-simulated on those draws with fresh
    quantities, lead times and spells (seed ``seed + 1``). When ``lots`` has a ``program``
    dim, ``spend_by_program`` (draw, month, program) splits each draw's spend
    (:func:`spend_by_program`). ``attrs`` hold ``target``, ``method`` and ``seed``;
    ``item.attrs["units"]`` maps each item to its unit. ``target`` (P(stock-out in a review
    cycle)) defaults to the bill's ``stockout_target``.
    """
    seed = check_seed(seed)
    target = bill.stockout_target if target is None else target
    cons = consumption(lots, bill, seed=seed, uses=uses)
    n_draw, n_month = cons.sizes["draw"], cons.sizes["month"]
    lead = lead_times(bill, n_draw, seed)
    down = supplier_down(bill, n_draw, n_month, seed)
    second = lead_times(bill, n_draw, seed, second=True)
    has_second = np.array([i.second_supplier is not None for i in bill.items])
    arrivals = arrival_months(lead, down, second, _shares(bill))
    end = _cycle_end(lead, arrivals)
    levels = order_up_to(cons, lead, target=target, method=method, _cycle=end)
    sim = simulate_policy(cons, lead, levels, bill, _arrivals=arrivals)
    quantity = _quantities(bill, n_draw, seed)
    # percentiles over draws (linear interpolation, as DataArray.quantile, without its
    # per-column loop)
    bands = np.quantile(cons.transpose("draw", "month", "item").values, list(quantiles), axis=0)
    out = xr.Dataset(
        {
            **{
                f"consumption_p{100 * q:g}": (("month", "item"), band)
                for q, band in zip(quantiles, bands, strict=True)
            },
            "order_up_to": levels,
            "expected_stock": sim["stock"].clip(min=0).mean("draw"),
            "expected_orders": sim["orders"].mean("draw"),
            "expected_spend": sim["spend"].mean("draw"),
            "stockout_probability": (sim["stock"] < -1e-9).mean("draw"),
            "expected_lots_at_risk": lots_waiting(sim["stock"], quantity).mean("draw"),
        }
    )
    if any(i.disruption is not None for i in bill.items):
        out["supplier_down_probability"] = (("month", "item"), down.mean(axis=0))
    if has_second.any():
        # the same levels and spells without the second supplier, for the items that have one
        which = np.flatnonzero(has_second)
        names = [bill.names[k] for k in which]
        alone = simulate_policy(
            cons.sel(item=names),
            lead[:, which],
            levels.sel(item=names),
            BillOfMaterials(tuple(bill.items[k] for k in which), bill.stockout_target),
            down=down[:, :, which],
        )
        nan = xr.DataArray(np.where(has_second, 0.0, np.nan), dims="item")
        p_alone = (alone["stock"] < -1e-9).mean("draw")
        at_risk = lots_waiting(alone["stock"], quantity[:, which]).mean("draw")
        out["stockout_probability_single_source"] = p_alone.reindex(item=bill.names)
        out["expected_lots_at_risk_single_source"] = at_risk.reindex(item=bill.names)
        out["expected_second_supplier_premium"] = sim["premium"].mean("draw") + nan
    if fresh_lots is not None:
        fresh = consumption(fresh_lots, bill, seed=seed + 1, uses=uses)
        n_fresh = fresh.sizes["draw"]
        fresh_lead = lead_times(bill, n_fresh, seed + 1)
        fresh_arrivals = arrival_months(
            fresh_lead,
            supplier_down(bill, n_fresh, fresh.sizes["month"], seed + 1),
            lead_times(bill, n_fresh, seed + 1, second=True),
            _shares(bill),
        )
        redo = simulate_policy(fresh, fresh_lead, levels, bill, _arrivals=fresh_arrivals)
        out["stockout_probability_fresh"] = (redo["stock"] < -1e-9).mean("draw")
    if "program" in lots.dims:
        out["spend_by_program"] = spend_by_program(lots, bill, sim["spend"], end, uses=uses)
    out.attrs = {"target": target, "method": method, "seed": seed}
    out["item"].attrs["units"] = {i.name: i.unit for i in bill.items}
    return out


def spend_by_program(
    lots: xr.DataArray,
    bill: BillOfMaterials,
    spend: xr.DataArray,
    cycle_end: np.ndarray,
    *,
    uses: Mapping[str, Sequence[str]] | None = None,
) -> xr.DataArray:
    """Each draw's materials spend per month split across programs, summed over items.

    The spend on an item in month ``t`` of draw ``d`` (an order placed at that review) is
    split in proportion to each program's lots that use the item over the months the order
    protects, ``t .. cycle_end[d, t] - 1`` (:func:`order_up_to`'s cycle); if the draw has
    no such lot in that cycle, in proportion to its lots over the whole horizon, and if it
    has none at all, equally among the programs that use the item. The shares of a month sum
    to 1, so the programs' spend adds up to the spend. Units: currency per month.
    """
    lots = lots.transpose("draw", "month", "program")
    programs = [str(p) for p in lots["program"].values]
    share = np.ones((len(programs), len(bill.items)))
    for k, program in enumerate(programs):
        if uses is not None and program in uses:
            share[k] = [n in uses[program] for n in bill.names]
    per = lots.values[:, :, :, None] * share[None, None, :, :]  # (draw, month, program, item)
    n_draw, n_month = per.shape[:2]
    total = np.concatenate([np.zeros((n_draw, 1, *per.shape[2:])), np.cumsum(per, axis=1)], 1)
    index = np.asarray(cycle_end)[:, :, None, :]
    window = np.take_along_axis(total, index, axis=1) - total[:, :n_month]
    in_cycle = window.sum(axis=2)  # (draw, month, item): lots using the item in the cycle
    horizon = total[:, -1]  # (draw, program, item)
    in_horizon = horizon.sum(axis=1)  # (draw, item)
    values = spend.transpose("draw", "month", "item").values
    # three cases per draw, month and item: lots in the cycle; none there but some in the
    # horizon; none at all (an even split among the programs that use the item)
    by_cycle = in_cycle > 0
    by_horizon = ~by_cycle & (in_horizon[:, None, :] > 0)
    rate = np.where(by_cycle, values / np.where(by_cycle, in_cycle, 1.0), 0.0)
    split = np.einsum("dmpi,dmi->dmp", window, rate, optimize=True)
    rate = np.where(by_horizon, values / np.where(in_horizon > 0, in_horizon, 1.0)[:, None], 0.0)
    split += np.einsum("dpi,dmi->dmp", horizon, rate, optimize=True)
    even = share / share.sum(axis=0).clip(min=1)
    split += np.where(by_cycle | by_horizon, 0.0, values) @ even.T
    return xr.DataArray(
        split,
        dims=("draw", "month", "program"),
        coords={"draw": lots["draw"].values, "month": lots["month"].values, "program": programs},
        name="spend_by_program",
        attrs={"units": "currency/month"},
    )


def materials_by_process(
    lots: xr.DataArray,
    processes: Mapping[str, Any],
    *,
    seed: int = 0,
    quantiles: Sequence[float] = (0.1, 0.5, 0.9),
) -> dict[str, xr.Dataset]:
    """:func:`plan_materials` for each process that has a bill of materials.

    ``lots`` has a ``program`` dim (``requirements(..., by_program=True)["lots"]``);
    ``processes`` maps each program to its :class:`capacity.ProcessSpec`. The lots of the
    programs made with one process are summed and sized with that process's bill (its own
    stock of each item) at its ``stockout_target``; each result's ``spend_by_program`` splits
    the spend across those programs. Processes without a bill are left out.
    """
    out: dict[str, xr.Dataset] = {}
    for spec in {s.name: s for s in processes.values()}.values():
        if spec.materials is None:
            continue
        programs = [p for p, s in processes.items() if s.name == spec.name]
        own = lots.sel(program=programs)
        out[spec.name] = plan_materials(own, spec.materials, seed=seed, quantiles=quantiles)
    return out


# --- helpers ------------------------------------------------------------------------------
def _whole_months(raw: np.ndarray) -> np.ndarray:
    # a hair of tolerance so 2.0000000001 from a ppf is still 2 months
    return np.ceil(np.asarray(raw, float) - 1e-9).clip(0).astype(np.int64)


def _shares(bill: BillOfMaterials) -> np.ndarray:
    """Each item's second supplier's share of the orders placed while the first is up."""
    return np.array(
        [i.second_supplier.share_of_orders if i.second_supplier else 0.0 for i in bill.items]
    )


def _quantities(bill: BillOfMaterials, draws: int, seed: int) -> np.ndarray:
    """Quantity per lot per draw and item, shape (draws, items)."""
    cols = [
        i.quantity_per_lot.sample_per_draw(draws, _rng(seed, i, "quantity")) for i in bill.items
    ]
    return np.stack(cols, axis=1) if cols else np.zeros((draws, 0))


def _cycle_end(lead: np.ndarray, arrivals: tuple[np.ndarray, ...]) -> np.ndarray:
    """First month after review ``t``'s protection interval (truncated at the horizon).

    Review ``t`` covers the months from when every order placed up to ``t`` has arrived to
    the month before every order up to ``t + 1`` has: ``max_{s <= t+1} arrival[s]`` (orders
    can cross when a second supplier is faster or slower), after the horizon the first
    supplier is up. Without spells this is ``t + L + 1``.
    """
    first, second, part = arrivals  # an order is in once both its parts are
    arrive = np.where(part >= 1, second, np.where(part <= 0, first, np.maximum(first, second)))
    n_month = arrive.shape[1]
    reach = np.maximum.accumulate(arrive, axis=1)
    after = np.maximum(reach[:, -1:], n_month + lead[:, None, :])
    return np.minimum(np.concatenate([reach[:, 1:], after], axis=1), n_month)


def _window_demand(c: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Consumption over months t .. end[d, t] - 1, shape of ``c``."""
    n_draw, n_month, n_item = c.shape
    total = np.concatenate([np.zeros((n_draw, 1, n_item)), np.cumsum(c, axis=1)], axis=1)
    return np.take_along_axis(total, end, axis=1) - total[:, :n_month, :]


def _check_down(down: Any, shape: tuple[int, ...]) -> np.ndarray:
    if down is None:
        return np.zeros(shape, bool)
    down = np.asarray(down)
    if down.shape != shape or down.dtype != bool:
        raise InputError(f"down: expected True/False per draw, month and item, shape {shape}")
    return down


def _check_lots(lots: Any) -> xr.DataArray:
    if not isinstance(lots, xr.DataArray):
        raise InputError(f"lots: expected an xarray DataArray, got {type(lots).__name__}")
    extra = sorted(set(lots.dims) - {"draw", "month", "program"})
    if extra or not {"draw", "month"} <= set(lots.dims):
        raise InputError(f"lots: expected dims draw, month (and program), got {lots.dims}")
    values = np.asarray(lots.values, float)
    if not np.isfinite(values).all() or (values < 0).any():
        raise InputError("lots: expected finite numbers >= 0 of lots per month")
    return lots


def _check_lead(lead: Any, cons: xr.DataArray) -> np.ndarray:
    lead = np.asarray(lead)
    shape = (cons.sizes["draw"], cons.sizes["item"])
    if lead.shape != shape or lead.dtype.kind not in "iu" or (lead < 0).any():
        raise InputError(f"lead: expected whole months >= 0, shape {shape}, got {lead.shape}")
    return lead


def _check_target(target: Any) -> None:
    if isinstance(target, bool) or not isinstance(target, int | float) or not 0 < target < 1:
        raise InputError(f"target: expected a probability of stock-out in (0, 1), got {target!r}")


def _number(value: Any, where: str, field: str, *, low: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise InputError(f"{where}: field '{field}': expected a number, got {value!r}")
    if value < low:
        raise InputError(f"{where}: field '{field}': must be >= {low:g}, got {value!r}")
    return float(value)


def _rng(seed: int, item: MaterialItem, what: str) -> np.random.Generator:
    return stream_rng(seed, "materials", item.name, what)
