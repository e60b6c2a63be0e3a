"""Uptake data: products and their label expansions, and sales turned into patient observations.

An observation is patients treated by one product (or a combined figure of several) over a set
of calendar periods: net sales divided by the US list price at the period's middle. The frame
:func:`observations_from_sales` returns (one row per observation: ``products``, ``starts``,
``ends``, ``patients``, ``lower_bound``) is what :class:`~forecast.uptake.UptakeModel` fits and
conditions on; :func:`checked_observations` validates one at the door.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from forecast.data import data_path
from forecast.errors import InputError

__all__ = [
    "OBSERVATION_COLUMNS",
    "Product",
    "analog_observations",
    "analog_products",
    "checked_observations",
    "observations_from_sales",
    "period_bounds",
]

OBSERVATION_COLUMNS = ("products", "starts", "ends", "patients", "lower_bound")


@dataclass
class Product:
    """An analog or new product: launch date and dated label expansions."""

    name: str
    launch: pd.Timestamp
    expansions: list[pd.Timestamp] = field(default_factory=list)


def analog_products() -> list[Product]:
    """The five bundled US CAR-T analogs with their FDA approval and label-expansion dates."""
    return [
        Product(
            "Kymriah",
            pd.Timestamp("2017-08-30"),
            [pd.Timestamp("2018-05-01"), pd.Timestamp("2022-05-27")],
        ),
        Product("Yescarta", pd.Timestamp("2017-10-18"), [pd.Timestamp("2022-04-01")]),
        Product("Tecartus", pd.Timestamp("2020-07-24"), []),
        Product(
            "Breyanzi",
            pd.Timestamp("2021-02-05"),
            [pd.Timestamp("2022-06-24"), pd.Timestamp("2024-03-14"), pd.Timestamp("2024-05-15")],
        ),
        Product("Abecma", pd.Timestamp("2021-03-26"), [pd.Timestamp("2024-04-01")]),
    ]


def period_bounds(label: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """'2021Q3', 'FY2019', 'H1-2025', 'H2-2025', '9M-2018' -> [start, end) dates (a half
    year H1 is January to June, H2 July to December)."""
    label = str(label).strip()
    try:
        match = re.fullmatch(r"(\d{4})Q([1-4])", label)
        if match:
            q = pd.Period(year=int(match[1]), quarter=int(match[2]), freq="Q")
            return q.start_time.normalize(), (q + 1).start_time.normalize()
        if re.fullmatch(r"FY\d{4}", label):
            y = int(label[2:])
            return pd.Timestamp(y, 1, 1), pd.Timestamp(y + 1, 1, 1)
        if re.fullmatch(r"H1-\d{4}", label):
            y = int(label[3:])
            return pd.Timestamp(y, 1, 1), pd.Timestamp(y, 7, 1)
        if re.fullmatch(r"H2-\d{4}", label):
            y = int(label[3:])
            return pd.Timestamp(y, 7, 1), pd.Timestamp(y + 1, 1, 1)
        if re.fullmatch(r"9M-\d{4}", label):
            y = int(label[3:])
            return pd.Timestamp(y, 1, 1), pd.Timestamp(y, 10, 1)
    except ValueError:
        pass
    raise InputError(
        f"sales: period {label!r} not understood; expected 2021Q3, FY2019, H1-2025, H2-2025 or "
        "9M-2018"
    )


def _prices(prices: pd.DataFrame) -> pd.DataFrame:
    frame = prices.copy()
    frame["date"] = pd.to_datetime(
        frame["date"].astype(str).str.extract(r"(\d{4}(?:-\d{2}-\d{2})?)")[0],
        errors="coerce",
        format="mixed",
    )
    if frame["date"].isna().any():
        i = int(np.flatnonzero(frame["date"].isna().to_numpy())[0])
        raise InputError(f"prices: row {i + 2}: date not understood")
    return frame.sort_values(["product", "date"])


def _price_at(prices: pd.DataFrame, product: str, when: pd.Timestamp, backfill: bool) -> float:
    rows = prices[prices["product"] == product]
    before = rows[rows["date"] <= when]
    if len(before):
        return float(before["us_list_price_usd"].iloc[-1])
    if backfill and len(rows):
        return float(rows["us_list_price_usd"].iloc[0])
    raise InputError(
        f"prices: no price for {product} on {when.date()} (earliest: "
        f"{rows['date'].min().date() if len(rows) else 'none'})"
    )


def observations_from_sales(
    sales: pd.DataFrame,
    prices: pd.DataFrame,
    products: Sequence[Product],
    *,
    region: str = "WW",
    backfill_prices: Sequence[str] = (),
) -> pd.DataFrame:
    """Sales rows -> patient observations over sets of periods, without counting twice.

    ``sales`` has ``product`` (``A+B`` for a combined figure), ``period`` (``2021Q3``,
    ``FY2019``, ``H1-2025``, ``H2-2025``, ``9M-2018``; the bundled quarterly CSV names it
    ``quarter``, accepted too), ``region`` and ``net_sales_musd`` (``>700`` is a lower bound),
    optional ``constrained`` (supply-constrained: true demand was at least this).
    An aggregate whose quarters are partly reported elsewhere keeps only the unreported rest
    (a residual over the remaining quarters), and is dropped when all are reported. Patients =
    sales / US list price at the period's middle (or at launch, if later; averaged over the
    products of a combined figure): WW sales over the US price understate ex-US patients
    (ex-US prices are lower). Returns one row per observation with ``products``,
    ``starts``, ``ends`` (tuples of dates), ``patients`` and ``lower_bound``.
    """
    launch = {p.name: p.launch for p in products}
    for col in ("product", "region", "net_sales_musd"):
        if col not in sales.columns:
            raise InputError(f"sales: missing column {col!r}")
    if "period" not in sales.columns and "quarter" not in sales.columns:
        raise InputError("sales: missing column 'period' (or 'quarter')")
    prices = _prices(prices)
    rows = []
    frame = sales[sales["region"] == region].reset_index(drop=True)
    for i, row in frame.iterrows():
        names = str(row["product"]).split("+")
        unknown = [n for n in names if n not in launch]
        if unknown:
            raise InputError(f"sales: row {i + 2}: product {unknown[0]!r} has no launch date")
        raw = str(row["net_sales_musd"]).strip()
        lower = raw.startswith(">")
        try:
            value = float(raw.lstrip(">"))
        except ValueError:
            raise InputError(
                f"sales: row {i + 2}: net_sales_musd {raw!r} is not a number"
            ) from None
        if value < 0:
            raise InputError(f"sales: row {i + 2}: net sales must be >= 0, got {value}")
        period = row.get("period")
        if (period is None or pd.isna(period)) and "quarter" in frame.columns:
            period = row["quarter"]  # the bundled quarterly CSV's name, or a concat of both
        start, end = period_bounds(period)
        if end <= start:
            raise InputError(f"sales: row {i + 2}: period ends before it starts")
        constrained = (
            bool(row.get("constrained", False)) if "constrained" in frame.columns else False
        )
        rows.append(
            {
                "names": tuple(names),
                "start": start,
                "end": end,
                "sales": value,
                "lower_bound": lower or constrained,
                "row": i + 2,
            }
        )
    # Shortest periods first: an aggregate keeps only what is not already reported for the
    # same product set (its quarters minus those covered, its sales minus theirs).
    rows.sort(key=lambda r: (r["end"] - r["start"]).days)
    accepted: list[dict] = []
    for r in rows:
        quarters = set(
            pd.date_range(
                r["start"].to_period("Q").start_time, r["end"], freq="QS", inclusive="left"
            )
        )
        residual = r["sales"]
        for a in accepted:
            if a["names"] == r["names"] and a["quarters"] <= quarters and a["quarters"]:
                residual -= a["sales"]
                quarters -= a["quarters"]
        if not quarters:
            continue  # every part reported on its own
        if residual < 0 and not r["lower_bound"]:
            raise InputError(f"sales: row {r['row']}: the parts reported exceed the total")
        accepted.append(
            {
                **r,
                "quarters": quarters,
                "sales": max(residual, 0.0),
                "all_quarters": quarters.copy(),
            }
        )
    out = []
    for a in accepted:
        # a combined figure (A+B) whose every product is reported for the same quarter: drop
        if len(a["names"]) > 1 and all(
            any(b["names"] == (n,) and b["all_quarters"] == a["all_quarters"] for b in accepted)
            for n in a["names"]
        ):
            continue
        subs = sorted(a["quarters"])
        first_launch = min(launch[n] for n in a["names"])
        starts = tuple(max(q, a["start"], first_launch) for q in subs)
        ends = tuple(min(q + pd.offsets.QuarterBegin(1, startingMonth=1), a["end"]) for q in subs)
        mid = a["start"] + (a["end"] - a["start"]) / 2
        price = np.mean(
            [_price_at(prices, n, max(mid, launch[n]), n in backfill_prices) for n in a["names"]]
        )
        out.append(
            {
                "products": a["names"],
                "starts": starts,
                "ends": ends,
                "sales_musd": a["sales"],
                "patients": a["sales"] * 1e6 / price,
                "lower_bound": a["lower_bound"],
                "first_start": min(starts),
                "last_end": max(ends),
            }
        )
    return pd.DataFrame(out)


def analog_observations() -> pd.DataFrame:
    """Bundled quarterly and annual WW sales of the five CAR-T analogs as observations.

    Breyanzi's price table starts in 2024 (no launch price bundled): that price is used back
    to launch, an assumption that understates its earlier patients if the launch price was
    lower (documented in data/SOURCES.md).
    """
    quarterly = pd.read_csv(data_path("uptake/cart_quarterly_sales.csv")).rename(
        columns={"quarter": "period"}
    )
    annual = pd.read_csv(data_path("uptake/cart_annual_sales.csv"), dtype={"net_sales_musd": str})
    sales = pd.concat(
        [
            quarterly[["product", "period", "region", "net_sales_musd"]],
            annual[["product", "period", "region", "net_sales_musd"]],
        ],
        ignore_index=True,
    )
    prices = pd.read_csv(data_path("uptake/cart_prices.csv"))
    return observations_from_sales(sales, prices, analog_products(), backfill_prices=("Breyanzi",))


def checked_observations(
    obs, names: Sequence[str], where: str, *, only: str | None = None
) -> pd.DataFrame:
    """Validate an observation frame (the output of :func:`observations_from_sales`).

    ``names``: the products the rows may name; ``only``: every row must be that one product
    alone (conditioning a forecast on its own observations). Errors name ``where`` and the row.
    """
    if not isinstance(obs, pd.DataFrame):
        raise InputError(
            f"{where}: expected a DataFrame of observations (the output of "
            f"observations_from_sales), got {type(obs).__name__}"
        )
    for col in OBSERVATION_COLUMNS:
        if col not in obs.columns:
            hint = (
                "; this looks like a sales table: convert it with "
                "observations_from_sales(sales, prices, products)"
                if {"net_sales_musd", "period", "quarter"} & set(obs.columns)
                else ""
            )
            raise InputError(
                f"{where}: missing column {col!r}; expected the output of "
                f"observations_from_sales ({', '.join(OBSERVATION_COLUMNS)}){hint}"
            )
    obs = obs.reset_index(drop=True)
    for i, row in enumerate(obs.itertuples()):
        products = tuple(row.products) if isinstance(row.products, list | tuple) else None
        if not products:
            raise InputError(f"{where}: row {i}: products must be a tuple of product names")
        if only is not None and products != (only,):
            raise InputError(
                f"{where}: row {i}: products {products} are not this product {only!r} alone"
            )
        unknown = [n for n in products if n not in names]
        if unknown:
            raise InputError(f"{where}: row {i}: product {unknown[0]!r} is not among the products")
        try:
            starts = [pd.Timestamp(d) for d in row.starts]
            ends = [pd.Timestamp(d) for d in row.ends]
        except (TypeError, ValueError):
            raise InputError(f"{where}: row {i}: starts and ends must be tuples of dates") from None
        if not starts or len(starts) != len(ends):
            raise InputError(f"{where}: row {i}: starts and ends must pair up (one or more)")
        if any(e <= s for s, e in zip(starts, ends, strict=True)):
            raise InputError(f"{where}: row {i}: period ends before it starts")
        value = pd.to_numeric(pd.Series([row.patients]), errors="coerce").iloc[0]
        if not np.isfinite(value) or value < 0:
            raise InputError(f"{where}: row {i}: patients must be >= 0, got {row.patients!r}")
    return obs
