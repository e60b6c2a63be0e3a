"""Post-approval uptake: Bass adoption of a flow of eligible patients, pooled across analogs.

Curve maths (pure functions, months). Bass cumulative adoption, read as the share of treating
centres that have adopted::

    F(t) = (1 - exp(-(p + q) t)) / (1 + (q / p) exp(-(p + q) t)),   t >= 0

Patients treated in [t0, t1) from a constant eligible flow ``f`` (patients/month) that adopts
with peak share ``s`` from launch L are ``f s (G(t1 - L) - G(t0 - L))`` with the exact integral
``G(T) = T - ln((1 + q/p) / (1 + (q/p) exp(-(p + q) T))) / q`` (0 for T <= 0), so monthly
increments add up to quarterly ones exactly. A label expansion is a second flow with its own
curve from its own date; a backlog B at launch adds ``B (F(t1 - L) - F(t0 - L))``. p and q are
stated per year and converted exactly: F(t years; p, q) = F(12 t months; p / 12, q / 12).

Model (PyMC), analogs a with launch L_a and expansions e at dates L_ae::

    log p_a = mu_p + sigma_p z_pa,  log q_a = mu_q + sigma_q z_qa     (yearly, non-centred)
    scale_a = patients/month at full adoption of the first label ~ LogNormal(log 100, 2)
    ratio_ae = added eligible flow of expansion e / first label ~ LogNormal(0, 1)
    y_i ~ NegativeBinomial(mean_i, phi)  (y = patients = sales / price), lower bounds censored

log p and log q are pooled (not time to peak and first-year share) because F is a function of
them directly and their population is close to normal on the log scale in the Bass
literature; ``summary()`` reports time to peak and the first-year share planners read.

Forecast (modelling choices):

* Means. :func:`mean_patients` is the one function giving the modelled patients of any set of
  periods (flows of every label plus ``backlog x dF``); the monthly forecast, the importance
  weights of ``condition_on`` and :func:`observation_means` all call it, so what is weighed
  is what is forecast.
* Noise. phi is fitted on totals of quarters, half-years, nine months and years, each
  NB(mean, phi): an excess variance of mean^2 / phi *whatever the period length*. Independent
  monthly NB draws would give a year only a twelfth of that (phi = 20, 1,200 patients a year:
  an SD of 85 instead of 270). The forecast therefore draws one factor
  G_y ~ Gamma(phi, phi) per calendar year, shared by the months of that year, and patients per
  month ~ Poisson(mean x G_y). Every period inside one calendar year (a month, a quarter,
  H1, 9M, the year: every period the fit sees) then totals NB(mean, phi) exactly. Stated
  correlation: the months of one calendar year share their factor (a good year is good
  throughout), calendar years are independent. The fit treats observations of one year as
  independent; no noise model matches one phi at every period length with that
  independence, and the bands planners read are monthly, quarterly and annual totals.
* Conditioning. ``condition_on`` weights each draw by the likelihood of the observations
  under the same noise: exact observations within one calendar year share G_y (jointly
  negative multinomial), and that year's factor is then drawn from its posterior
  Gamma(phi + observed, phi + modelled); lower bounds and observations spanning two years
  count as independent NB and leave the factors alone. The weights are then resampled. Few
  effective draws (importance ESS below 10% of the draws, :data:`MIN_ESS_SHARE`) raise an
  :class:`ImportanceWarning`: the forecast then repeats each kept draw ten times or more and
  its bands rest on a few curves. The refit path, :meth:`UptakeModel.with_product`, fits the
  product as one more analog instead; use it once a product has about a year of its own
  quarterly sales or whenever the warning appears.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import gammaln

from capacity.distributions import Param
from forecast import _pymc
from forecast.data import data_path
from forecast.draws import param_draws
from forecast.errors import InputError

if TYPE_CHECKING:
    import pymc as pm

__all__ = [
    "ImportanceWarning",
    "bass_cdf",
    "bass_integral",
    "mean_patients",
    "period_patients",
    "yearly_to_monthly",
    "UptakeModel",
    "Product",
    "analog_products",
    "analog_observations",
    "observations_from_sales",
]

ORIGIN = pd.Timestamp("2015-01-01")
DAYS_PER_MONTH = 365.25 / 12


# --------------------------------------------------------------------------------------------
# curve maths (NumPy; the same formulas in PyTensor below)
# --------------------------------------------------------------------------------------------
def bass_cdf(t, p, q):
    """Bass cumulative adoption F(t) (0 for t <= 0); t in the units of 1 / p."""
    t = np.maximum(np.asarray(t, float), 0.0)
    e = np.exp(-(p + q) * t)
    return (1 - e) / (1 + (q / p) * e)


def bass_integral(t, p, q):
    """G(T) = integral of F over [0, T] (0 for T <= 0), exact."""
    t = np.maximum(np.asarray(t, float), 0.0)
    c = q / p
    return t - np.log((1 + c) / (1 + c * np.exp(-(p + q) * t))) / q


def period_patients(t0, t1, launch, flow, share, p, q, backlog=0.0):
    """Patients treated in [t0, t1) (months) from a flow adopting from ``launch``."""
    steady = flow * share * (bass_integral(t1 - launch, p, q) - bass_integral(t0 - launch, p, q))
    return steady + backlog * (bass_cdf(t1 - launch, p, q) - bass_cdf(t0 - launch, p, q))


def yearly_to_monthly(p_year, q_year):
    """Exact: F(t years; p, q) = F(12 t months; p / 12, q / 12)."""
    return np.asarray(p_year) / 12.0, np.asarray(q_year) / 12.0


def time_to_peak_years(p_year, q_year):
    """Years until the adoption rate F'(t) peaks: ln(q / p) / (p + q) (0 if q <= p)."""
    p_year, q_year = np.asarray(p_year), np.asarray(q_year)
    return np.where(
        q_year > p_year, np.log(q_year / np.maximum(p_year, 1e-12)) / (p_year + q_year), 0.0
    )


def _pt_integral(t, p, q):
    import pytensor.tensor as pt

    t = pt.maximum(t, 0.0)
    c = q / p
    return t - pt.log((1 + c) / (1 + c * pt.exp(-(p + q) * t))) / q


def months_since_origin(dates) -> np.ndarray:
    return ((pd.DatetimeIndex(pd.to_datetime(dates)) - ORIGIN).days / DAYS_PER_MONTH).to_numpy(
        float
    )


def mean_patients(t0, t1, seg_t, flows, launch_t, backlog, p_m, q_m) -> np.ndarray:
    """Modelled mean patients (draw, period) treated in [t0, t1) (months since origin).

    The one function the forecast's means come from: the monthly forecast and the importance
    weights of observations both call it. ``seg_t`` (draw, segment): month each label's flow
    starts adopting (inf: never); ``flows`` (draw, segment): patients/month at full adoption
    of that label; ``backlog`` adopts from ``launch_t`` (draw,); ``p_m``, ``q_m`` (draw,)
    per month.
    """
    t0 = np.asarray(t0, float)[None, :]
    t1 = np.asarray(t1, float)[None, :]
    p, q = np.asarray(p_m, float)[:, None], np.asarray(q_m, float)[:, None]
    mean = np.zeros((p.shape[0], t0.shape[1]))
    for j in range(seg_t.shape[1]):  # a base label and a few expansions
        s = seg_t[:, j : j + 1]
        inc = bass_integral(t1 - s, p, q) - bass_integral(t0 - s, p, q)
        mean += flows[:, j : j + 1] * np.where(np.isfinite(inc), inc, 0.0)
    if backlog:
        s = np.asarray(launch_t, float)[:, None]
        inc = bass_cdf(t1 - s, p, q) - bass_cdf(t0 - s, p, q)
        mean += backlog * np.where(np.isfinite(inc), inc, 0.0)
    return np.maximum(mean, 0.0)


def _observation_pieces(obs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start and end (months since origin) of every period of every observation, and the
    observation each belongs to (one-hot, period x observation)."""
    t0, t1, owner = [], [], []
    for i, row in enumerate(obs.itertuples()):
        for start, end in zip(row.starts, row.ends, strict=True):
            a, b = months_since_origin([start, end])
            t0.append(a)
            t1.append(b)
            owner.append(i)
    onehot = np.zeros((len(owner), len(obs)))
    onehot[np.arange(len(owner)), owner] = 1.0
    return np.array(t0), np.array(t1), onehot


def _calendar_years(obs: pd.DataFrame) -> np.ndarray:
    """The calendar year all periods of an observation fall in (-1 if they span years)."""
    out = []
    for row in obs.itertuples():
        years = {pd.Timestamp(s).year for s in row.starts}
        years |= {(pd.Timestamp(e) - pd.Timedelta(days=1)).year for e in row.ends}
        out.append(years.pop() if len(years) == 1 else -1)
    return np.array(out, int)


def observation_loglik(obs: pd.DataFrame, means: np.ndarray, phi: np.ndarray):
    """log p(observations | means, phi) per draw under the forecast's noise.

    ``means`` (draw, observation). Exact observations within one calendar year share that
    year's factor G ~ Gamma(phi, phi): jointly negative multinomial; returns also, per such
    year, ``(Y, M)`` (observed and modelled totals, M per draw), so the year's factor given the
    observations is Gamma(phi + Y, phi + M). Lower bounds and observations spanning two years
    enter as independent negative binomials and leave the factors alone.
    """
    y = np.round(obs["patients"].to_numpy(float))
    lower = obs["lower_bound"].to_numpy(bool)
    years = _calendar_years(obs)
    means = np.maximum(np.nan_to_num(means), 1e-6)
    phi = np.asarray(phi, float)
    logp = np.zeros(means.shape[0])
    factors: dict[int, tuple[float, np.ndarray]] = {}
    exact = ~lower & (years >= 0)
    for year in np.unique(years[exact]):
        k = exact & (years == year)
        total, m = float(y[k].sum()), means[:, k].sum(axis=1)
        logp += (
            gammaln(phi + total)
            - gammaln(phi)
            + phi * np.log(phi)
            - (phi + total) * np.log(phi + m)
            + (y[k] * np.log(means[:, k])).sum(axis=1)
            - gammaln(y[k] + 1).sum()
        )
        factors[int(year)] = (total, m)
    inexact = np.flatnonzero(~exact)
    if len(inexact):  # scipy.stats takes about 1 s to import: only when it is needed
        from scipy import stats
    for i in inexact:
        prob = phi / (phi + means[:, i])
        if lower[i]:
            logp += stats.nbinom.logsf(y[i] - 1, phi, prob)
        else:
            logp += stats.nbinom.logpmf(y[i], phi, prob)
    return logp, factors


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------
@dataclass
class Product:
    """An analog or new product: launch date and dated label expansions."""

    name: str
    launch: pd.Timestamp
    expansions: list[pd.Timestamp] = field(default_factory=list)


def analog_products() -> list[Product]:
    """The bundled US CAR-T analogs with approval and label-expansion dates (shared/README)."""
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
    """'2021Q3', 'FY2019', 'H1-2025', '9M-2018' -> [start, end) dates."""
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
        if re.fullmatch(r"9M-\d{4}", label):
            y = int(label[3:])
            return pd.Timestamp(y, 1, 1), pd.Timestamp(y, 10, 1)
    except ValueError:
        pass
    raise InputError(
        f"sales: period {label!r} not understood; expected 2021Q3, FY2019, H1-2025 or 9M-2018"
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
    ``FY2019``, ``H1-2025``, ``9M-2018``; the bundled quarterly CSV names it ``quarter``,
    accepted too), ``region`` and ``net_sales_musd`` (``>700`` is a lower bound), optional
    ``constrained`` (supply-constrained: true demand was at least this).
    An aggregate whose quarters are partly reported elsewhere keeps only the unreported rest
    (a residual over the remaining quarters), and is dropped when all are reported. Patients =
    sales / US list price at the period start: WW sales over the US price understate ex-US
    patients (ex-US prices are lower). Returns one row per observation with ``products``,
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


# --------------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------------
OBSERVATION_COLUMNS = ("products", "starts", "ends", "patients", "lower_bound")
MIN_ESS_SHARE = 0.10  # importance ESS below this share of the draws: warn (see forecast)


class ImportanceWarning(UserWarning):
    """Conditioning on early observations left few effective draws (see ``forecast``)."""


def _checked_observations(
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


def _pieces(obs: pd.DataFrame, products: Sequence[Product]):
    """Flatten observations into (obs, product, segment, t0, t1) pieces, times in months."""
    names = [p.name for p in products]
    seg_product, seg_launch, seg_is_base = [], [], []
    first_segment = {}
    for k, prod in enumerate(products):
        first_segment[prod.name] = len(seg_product)
        for j, date in enumerate([prod.launch, *prod.expansions]):
            seg_product.append(k)
            seg_launch.append(months_since_origin([date])[0])
            seg_is_base.append(j == 0)
    rows = []
    for i, row in enumerate(obs.itertuples()):
        for name in row.products:
            if name not in names:
                raise InputError(f"observations: product {name!r} is not among the products")
            k = names.index(name)
            n_seg = 1 + len(products[k].expansions)
            for start, end in zip(row.starts, row.ends, strict=True):
                if end <= start:
                    raise InputError(f"observations: row {i}: period ends before it starts")
                t0, t1 = months_since_origin([start, end])
                for j in range(n_seg):
                    rows.append((i, k, first_segment[name] + j, t0, t1))
    arr = np.array(rows, dtype=float).reshape(-1, 5)
    return (
        arr[:, 0].astype(int),
        arr[:, 1].astype(int),
        arr[:, 2].astype(int),
        arr[:, 3],
        arr[:, 4],
        np.array(seg_product),
        np.array(seg_launch),
        np.array(seg_is_base),
    )


class UptakeModel(_pymc.Fitted):
    """Bass adoption pooled across analog launches; forecasts patients per month.

    Parameters
    ----------
    draws, tune, chains, seed
        NUTS settings.
    """

    def __init__(self, *, draws: int = 1000, tune: int = 1000, chains: int = 2, seed: int = 0):
        self.draws, self.tune, self.chains, self.seed = draws, tune, chains, seed
        self._idata = None
        self.products_: list[Product] = []
        self.observations_: pd.DataFrame | None = None

    def config(self) -> dict[str, Any]:
        return {"draws": self.draws, "tune": self.tune, "chains": self.chains, "seed": self.seed}

    def save(self, path):
        """Posterior, analogs, observations and config (JSON attrs) to one NetCDF file."""
        self._check()
        obs = self.observations_
        saved = {
            "config": self.config(),
            "products": [
                {
                    "name": p.name,
                    "launch": str(p.launch.date()),
                    "expansions": [str(d.date()) for d in p.expansions],
                }
                for p in self.products_
            ],
            "observations": [
                {
                    "products": list(r.products),
                    "starts": [str(d) for d in r.starts],
                    "ends": [str(d) for d in r.ends],
                    "patients": float(r.patients),
                    "lower_bound": bool(r.lower_bound),
                }
                for r in obs.itertuples()
            ],
        }
        _pymc.save_idata(self._idata, path, saved)
        return path

    @classmethod
    def load(cls, path) -> UptakeModel:
        idata, saved = _pymc.load_idata(path)
        model = cls(**saved["config"])
        model.products_ = [
            Product(
                p["name"], pd.Timestamp(p["launch"]), [pd.Timestamp(d) for d in p["expansions"]]
            )
            for p in saved["products"]
        ]
        rows = []
        for r in saved["observations"]:
            starts = tuple(pd.Timestamp(d) for d in r["starts"])
            ends = tuple(pd.Timestamp(d) for d in r["ends"])
            rows.append(
                {
                    "products": tuple(r["products"]),
                    "starts": starts,
                    "ends": ends,
                    "patients": r["patients"],
                    "lower_bound": r["lower_bound"],
                    "first_start": min(starts),
                    "last_end": max(ends),
                }
            )
        model.observations_ = pd.DataFrame(rows)
        model.idata = idata
        return model

    def build_model(self, observations: pd.DataFrame, products: Sequence[Product]) -> pm.Model:
        obs_i, prod_k, seg_j, t0, t1, seg_prod, seg_launch, seg_base = _pieces(
            observations, products
        )
        import pytensor.tensor as pt

        pm = _pymc.pymc()
        n_obs, n_seg = len(observations), len(seg_prod)
        patients = observations["patients"].to_numpy(float)
        lower = observations["lower_bound"].to_numpy(bool)
        y = np.round(patients)
        coords = {"product": [p.name for p in products], "segment": np.arange(n_seg)}
        with pm.Model(coords=coords) as model:
            mu_p = pm.Normal("mu_log_p", np.log(0.05), 1.0)
            mu_q = pm.Normal("mu_log_q", np.log(0.5), 1.0)
            sigma_p = pm.HalfNormal("sigma_log_p", 0.5)
            sigma_q = pm.HalfNormal("sigma_log_q", 0.5)
            z_p = pm.Normal("z_p", 0.0, 1.0, dims="product")
            z_q = pm.Normal("z_q", 0.0, 1.0, dims="product")
            p_year = pm.Deterministic("p_year", pt.exp(mu_p + sigma_p * z_p), dims="product")
            q_year = pm.Deterministic("q_year", pt.exp(mu_q + sigma_q * z_q), dims="product")
            log_scale = pm.Normal("log_scale", np.log(100.0), 2.0, dims="product")
            scale = pm.Deterministic("scale", pt.exp(log_scale), dims="product")
            n_exp = int((~seg_base).sum())
            log_ratio = pm.Normal("log_ratio", 0.0, 1.0, shape=n_exp)
            ratio = pt.ones(n_seg)
            if n_exp:
                ratio = pt.set_subtensor(ratio[np.flatnonzero(~seg_base)], pt.exp(log_ratio))
            phi = pm.LogNormal("phi", np.log(20.0), 1.0)
            p_m, q_m = p_year[prod_k] / 12.0, q_year[prod_k] / 12.0
            launch = seg_launch[seg_j]
            piece = (
                scale[prod_k]
                * ratio[seg_j]
                * (_pt_integral(t1 - launch, p_m, q_m) - _pt_integral(t0 - launch, p_m, q_m))
            )
            mean = pt.zeros(n_obs)
            mean = pt.inc_subtensor(mean[obs_i], piece)
            mean = pt.maximum(mean, 1e-6)
            dist = pm.NegativeBinomial.dist(mu=mean, alpha=phi)
            exact = ~lower
            if exact.any():
                pm.Potential("observed", pt.sum(pm.logp(dist, y)[np.flatnonzero(exact)]))
            if lower.any():
                idx = np.flatnonzero(lower)
                cdf = pm.logcdf(pm.NegativeBinomial.dist(mu=mean[idx], alpha=phi), y[idx] - 1)
                pm.Potential("lower_bounds", pt.sum(pt.log1mexp(cdf)))
        return model

    def fit(
        self, observations: pd.DataFrame | None = None, products: Sequence[Product] | None = None
    ) -> UptakeModel:
        """Fit to analog observations (bundled CAR-T analogs by default).

        ``observations``: the output of :func:`observations_from_sales` (patients >= 0);
        ``products``: every product they name, with launch and expansion dates. Bad inputs
        raise :class:`InputError` before the sampler starts.
        """
        observations = analog_observations() if observations is None else observations
        products = analog_products() if products is None else list(products)
        if not products or not all(isinstance(p, Product) for p in products):
            raise InputError("products: expected a non-empty list of Product")
        observations = _checked_observations(
            observations, [p.name for p in products], "observations"
        )
        if observations.empty:
            raise InputError("observations: no rows; nothing to fit")
        self.products_, self.observations_ = list(products), observations
        model = self.build_model(self.observations_, self.products_)
        self._idata = _pymc.sample(
            model,
            draws=self.draws,
            tune=self.tune,
            chains=self.chains,
            seed=self.seed,
            target_accept=0.95,
        )
        return self

    def diagnostics(self) -> dict[str, Any]:
        return _pymc.diagnostics(
            self._idata, ["mu_log_p", "mu_log_q", "sigma_log_p", "sigma_log_q", "log_scale", "phi"]
        )

    def _check(self):
        if self._idata is None:
            raise RuntimeError("call fit() first")

    def _analog(self, name: str) -> dict[str, np.ndarray]:
        names = [p.name for p in self.products_]
        k = names.index(name)
        post = {v: _pymc.stacked(self._idata, v) for v in ("p_year", "q_year", "scale", "phi")}
        _, _, _, _, _, seg_prod, _, seg_base = _pieces(self.observations_.iloc[:0], self.products_)
        ratios = np.ones((len(post["phi"]), len(seg_prod)))
        if (~seg_base).any():
            ratios[:, ~seg_base] = np.exp(_pymc.stacked(self._idata, "log_ratio"))
        return {
            "p_year": post["p_year"][:, k],
            "q_year": post["q_year"][:, k],
            "scale": post["scale"][:, k],
            "phi": post["phi"],
            "ratios": ratios[:, seg_prod == k],
        }

    def population(self, n: int, seed: int = 0) -> dict[str, np.ndarray]:
        """Population predictive p and q (yearly) for a product not among the analogs."""
        self._check()
        rng = np.random.default_rng(seed)
        pick = rng.integers(0, self.draws * self.chains, n)
        s = {
            v: _pymc.stacked(self._idata, v)[pick]
            for v in ("mu_log_p", "mu_log_q", "sigma_log_p", "sigma_log_q", "phi")
        }
        return {
            "p_year": np.exp(s["mu_log_p"] + s["sigma_log_p"] * rng.standard_normal(n)),
            "q_year": np.exp(s["mu_log_q"] + s["sigma_log_q"] * rng.standard_normal(n)),
            "phi": s["phi"],
        }

    def forecast(
        self,
        product: str | Product,
        launch=None,
        horizon_months: int = 60,
        draws: int = 2000,
        *,
        start: str | pd.Timestamp | None = None,
        eligible_per_year=None,
        peak_share=None,
        expansions: Sequence[tuple[str, float]] = (),
        backlog: float = 0.0,
        condition_on: pd.DataFrame | None = None,
        seed: int = 0,
    ) -> xr.DataArray:
        """Patients per month (draw, month), zero before launch.

        For a fitted analog (by name) its own posterior is used. For a new product give
        ``eligible_per_year`` (incidence x eligible share x access share: a number, or an
        array of draws) and ``peak_share`` (a number, a ``(low, high)`` uniform range or draws);
        p and q come from the analogs' population predictive, so no refit is needed.
        ``launch`` is one date or one per draw (NaT: never launches); for a ``Product`` it
        defaults to the product's own launch date. ``expansions`` are ``(when, added eligible
        per year)`` with ``when`` a date or a number of months after each draw's launch; an
        expansion adds patients only in draws that launch and never before launch (a dated
        expansion that precedes a late launch starts with it). ``backlog``: patients waiting
        at launch, treated as centres adopt (``backlog x dF``).

        ``condition_on``: this product's own early observations, the frame
        :func:`observations_from_sales` returns (one row per observation: ``products`` =
        ``(name,)``, ``starts`` and ``ends`` = tuples of the dates bounding its periods,
        ``patients`` >= 0, ``lower_bound``), built from sales rows whose period column is
        ``period`` or, as in the bundled quarterly CSV, ``quarter``. It reweights the draws by
        the likelihood of the observations under the forecast's own means and noise and
        resamples them (partial pooling without refitting); the importance effective sample
        size is in ``attrs["importance_ess"]``. Below 10% of ``draws`` an
        :class:`ImportanceWarning` says the result rests on few distinct draws: then refit
        with :meth:`with_product`.
        """
        self._check()
        rng = np.random.default_rng(seed)
        name = product.name if isinstance(product, Product) else str(product)
        obs = None
        if condition_on is not None and len(condition_on):
            obs = _checked_observations(condition_on, [name], "condition_on", only=name)
        analogs = {p.name: p for p in self.products_}
        if name in analogs:
            post = self._analog(name)
            pick = rng.integers(0, len(post["phi"]), draws)
            p_y, q_y, phi = post["p_year"][pick], post["q_year"][pick], post["phi"][pick]
            base = post["scale"][pick]
            dates = [analogs[name].launch, *analogs[name].expansions]
            flows = np.column_stack([base[:, None] * post["ratios"][pick]])
            launch = analogs[name].launch if launch is None else launch
            shift = (
                months_since_origin([launch])[0] - months_since_origin([dates[0]])[0]
                if np.ndim(launch) == 0
                else 0.0
            )
        else:
            if eligible_per_year is None or peak_share is None:
                raise InputError(
                    f"forecast: {name!r} is not a fitted analog; give "
                    "eligible_per_year and peak_share"
                )
            if launch is None and isinstance(product, Product):
                launch = product.launch
            if launch is None:
                raise InputError(f"forecast: product {name!r} has no launch date")
            pop = self.population(draws, seed)
            p_y, q_y, phi = pop["p_year"], pop["q_year"], pop["phi"]
            share = _draws_of(peak_share, draws, rng)
            eligible = _draws_of(eligible_per_year, draws, rng)
            flows = [eligible / 12.0 * share] + [
                _draws_of(a, draws, rng) / 12.0 * share for _, a in expansions
            ]
            flows = np.column_stack(flows)
            dates = [None] + [w for w, _ in expansions]
            shift = 0.0
        launch_t = _launch_months(launch, draws)
        seg_t = np.column_stack(
            [launch_t] + [_expansion_months(w, launch_t, shift) for w in dates[1:]]
        )
        if start is None:
            finite = launch_t[np.isfinite(launch_t)]
            first = ORIGIN + pd.Timedelta(
                days=float(finite.min() if len(finite) else 0) * DAYS_PER_MONTH
            )
            start = first.to_period("M").to_timestamp()
        months = pd.date_range(pd.Timestamp(start), periods=horizon_months + 1, freq="MS")
        edges = months_since_origin(months)
        p_m, q_m = p_y / 12.0, q_y / 12.0
        mean = mean_patients(edges[:-1], edges[1:], seg_t, flows, launch_t, backlog, p_m, q_m)
        # noise: one gamma factor per calendar year, shared by its months (module docstring)
        years, year_of_month = np.unique(months[:-1].year, return_inverse=True)
        shape = np.repeat(phi[:, None], len(years), axis=1)
        rate = shape.copy()
        idx = slice(None)
        attrs = {}
        if obs is not None:
            t0, t1, onehot = _observation_pieces(obs)
            obs_mean = mean_patients(t0, t1, seg_t, flows, launch_t, backlog, p_m, q_m) @ onehot
            logw, factors = observation_loglik(obs, obs_mean, phi)
            if not np.isfinite(logw).any():
                raise InputError(
                    f"condition_on: no draw of {name!r} can produce these observations "
                    "(patients before launch?)"
                )
            w = np.exp(logw - logw.max())
            w = np.where(np.isfinite(w), w, 0.0)
            ess = float(w.sum() ** 2 / (w**2).sum())
            self.importance_ess_ = ess
            attrs["importance_ess"] = ess
            if ess < MIN_ESS_SHARE * draws:
                warnings.warn(
                    f"{name}: importance ESS {ess:.0f} of {draws} draws "
                    f"({ess / draws:.1%}, below {MIN_ESS_SHARE:.0%}): the conditioned forecast "
                    "rests on a few distinct draws; refit with the product as one more analog "
                    "(UptakeModel.with_product)",
                    ImportanceWarning,
                    stacklevel=2,
                )
            idx = rng.choice(draws, size=draws, p=w / w.sum())
            mean, phi, shape, rate = mean[idx], phi[idx], shape[idx], rate[idx]
            for year, (total, m) in factors.items():
                if year in years:  # this year's factor given its observations
                    k = int(np.searchsorted(years, year))
                    shape[:, k] = phi + total
                    rate[:, k] = phi + m[idx]
        factor = rng.gamma(shape, 1.0 / rate)
        counts = rng.poisson(mean * factor[:, year_of_month])
        coords = {"draw": np.arange(draws), "month": months[:-1]}
        if name not in analogs:  # the sampled inputs of each draw, for sensitivity rankings
            coords["peak_share"] = ("draw", share[idx])
            coords["eligible_per_year"] = ("draw", eligible[idx])
        return xr.DataArray(
            counts,
            dims=("draw", "month"),
            coords=coords,
            name="patients",
            attrs={"units": "patients/month", "product": name, "seed": seed, **attrs},
        )

    def with_product(self, product: Product, observations: pd.DataFrame) -> UptakeModel:
        """A new model fitted on the analogs plus ``product`` as one more analog.

        The refit path when conditioning degenerates (:class:`ImportanceWarning`, importance
        ESS below 10% of the draws; with CAR-T-like noise typically after a year or more of
        quarterly sales): the product's own sales then say more than the eligible x peak-share
        inputs and the analogs' spread, and few prior draws come near them. The refit learns
        the product's own p, q and scale (patients/month at full adoption) and pools them
        with the analogs; ``forecast(product.name, ...)`` then uses that posterior and ignores
        ``eligible_per_year``, ``peak_share`` and ``expansions`` (give dated expansions in
        ``product.expansions``; one without data has only its prior ratio). It costs one NUTS
        run with this model's settings (minutes). ``observations`` are the product's own (the
        output of :func:`observations_from_sales`).
        """
        self._check()
        if not isinstance(product, Product):
            raise InputError(f"product: expected a Product, got {type(product).__name__}")
        if product.name in {p.name for p in self.products_}:
            raise InputError(f"product: {product.name!r} is already an analog of this model")
        own = _checked_observations(observations, [product.name], "observations", only=product.name)
        if own.empty:
            raise InputError(f"observations: no rows of {product.name!r}")
        model = UptakeModel(draws=self.draws, tune=self.tune, chains=self.chains, seed=self.seed)
        return model.fit(
            pd.concat([self.observations_, own], ignore_index=True),
            [*self.products_, product],
        )

    def summary(self) -> pd.DataFrame:
        """p, q (per year), time to peak (years) and peak patients per month, per analog."""
        self._check()
        rows = []
        for prod in self.products_:
            post = self._analog(prod.name)
            ttp = time_to_peak_years(post["p_year"], post["q_year"])
            first_year = bass_cdf(1.0, post["p_year"], post["q_year"])
            peak = post["scale"] * post["ratios"].sum(axis=1)
            for metric, values in (
                ("p_per_year", post["p_year"]),
                ("q_per_year", post["q_year"]),
                ("time_to_peak_years", ttp),
                ("adopted_after_one_year", first_year),
                ("peak_patients_per_month", peak),
            ):
                rows.append(
                    {
                        "product": prod.name,
                        "metric": metric,
                        "mean": values.mean(),
                        "p10": np.quantile(values, 0.1),
                        "p50": np.median(values),
                        "p90": np.quantile(values, 0.9),
                    }
                )
        return pd.DataFrame(rows)

    def bands(self, forecast: xr.DataArray, quantiles=(0.1, 0.5, 0.9)) -> pd.DataFrame:
        from capacity import bands

        frame = bands(forecast.rename("patients"), quantiles)
        frame["program"] = forecast.attrs.get("product", "new")
        return frame

    @staticmethod
    def to_demand(
        forecast: xr.DataArray, program: str | None = None, stream: str = "commercial"
    ) -> xr.DataArray:
        """A :meth:`forecast` as demand draws (the contract), program and stream named."""
        from capacity import as_demand

        name = program or str(forecast.attrs.get("product", "new"))
        da = forecast.expand_dims(program=[name], stream=[stream], axis=(2, 3))
        return as_demand(da.rename("patients"))

    def plot_fit(self, product: str, ax=None):
        """Fitted monthly patients (P10-P90) with the observations as monthly averages."""
        import matplotlib.pyplot as plt

        analog = {p.name: p for p in self.products_}[product]
        fc = self.forecast(
            product,
            horizon_months=int((pd.Timestamp("2026-07-01") - analog.launch).days / 30.4) + 2,
            start=analog.launch.to_period("M").to_timestamp(),
        )
        if ax is None:
            _, ax = plt.subplots(figsize=(8, 3))
        q = np.quantile(fc.values, [0.1, 0.5, 0.9], axis=0)
        ax.fill_between(fc["month"].values, q[0], q[2], alpha=0.3, label="P10-P90")
        ax.plot(fc["month"].values, q[1], label="P50")
        obs = self.observations_
        for row in obs[obs["products"].apply(lambda n: n == (product,))].itertuples():
            months = (
                sum((e - s).days for s, e in zip(row.starts, row.ends, strict=True))
                / DAYS_PER_MONTH
            )
            for s, e in zip(row.starts, row.ends, strict=True):
                ax.hlines(
                    row.patients / months,
                    s,
                    e,
                    color="k",
                    linestyle=":" if row.lower_bound else "-",
                )
        ax.set_title(product)
        ax.set_ylabel("patients per month")
        return ax


def _draws_of(value, n, rng) -> np.ndarray:
    if isinstance(value, tuple) and len(value) == 2:
        return rng.uniform(value[0], value[1], n)
    if isinstance(value, dict | Param):  # a distribution table such as {"beta": [a, b]}
        return param_draws(value, n, rng, "uptake input")
    arr = np.asarray(value, float)
    if arr.ndim == 0:
        # a number takes its uniforms too, so the inputs drawn after it keep their draws
        # when a sensitivity swing fixes this one (common random numbers)
        return param_draws(float(arr), n, rng, "uptake input")
    return np.resize(arr, n)


def _expansion_months(when, launch_t: np.ndarray, shift: float) -> np.ndarray:
    """Months since origin an expansion starts per draw: never before launch, inf if the
    product never launches. ``when``: a date, or a number of months after launch."""
    if isinstance(when, int | float | np.integer | np.floating) and not isinstance(when, bool):
        if when < 0:
            raise InputError(f"expansion: months after launch must be >= 0, got {when}")
        return launch_t + float(when)
    try:
        t = months_since_origin([pd.Timestamp(when)])[0] + shift
    except (TypeError, ValueError):
        raise InputError(
            f"expansion: expected a date or months after launch, got {when!r}"
        ) from None
    return np.maximum(t, launch_t)


def _launch_months(launch, n) -> np.ndarray:
    if np.ndim(launch) == 0 and not isinstance(launch, (list, tuple, np.ndarray, pd.Index)):
        ts = pd.Timestamp(launch)
        return np.full(n, months_since_origin([ts])[0])
    values = pd.DatetimeIndex(pd.to_datetime(np.asarray(launch)))
    if len(values) != n:
        raise InputError(f"forecast: {len(values)} launch months for {n} draws")
    out = np.full(n, np.inf)
    ok = ~values.isna()
    out[ok] = months_since_origin(values[ok])
    return out


def observation_means(model: UptakeModel, obs: pd.DataFrame) -> np.ndarray:
    """Posterior draws (draw, observation) of the modelled patients of each observation."""
    model._check()
    out = np.zeros((model.draws * model.chains, len(obs)))
    t0, t1, onehot = _observation_pieces(obs)
    for prod in model.products_:
        rows = np.array([prod.name in names for names in obs["products"]], bool)
        if not rows.any():
            continue
        post = model._analog(prod.name)
        n = len(post["phi"])
        seg = months_since_origin([prod.launch, *prod.expansions])
        pieces = onehot[:, rows].any(axis=1)
        out[:, rows] += (
            mean_patients(
                t0[pieces],
                t1[pieces],
                np.broadcast_to(seg, (n, len(seg))),
                post["scale"][:, None] * post["ratios"],
                np.full(n, seg[0]),
                0.0,
                post["p_year"] / 12,
                post["q_year"] / 12,
            )
            @ onehot[np.ix_(pieces, rows)]
        )
    return out
