"""Post-approval uptake: Bass adoption of a flow of eligible patients, pooled across analogs.

Model (PyMC), analogs a with launch L_a and expansions e at dates L_ae, months since
:data:`~forecast.uptake.curves.ORIGIN`; the curve maths are in :mod:`forecast.uptake.curves`::

    log p_a = mu_p + sigma_p z_pa,  log q_a = mu_q + sigma_q z_qa     (yearly, non-centred)
    mu_p ~ Normal(log 0.05, 1)      mu_q ~ Normal(log 0.5, 1)
    sigma_p, sigma_q ~ HalfNormal(0.5)      z ~ Normal(0, 1)
    scale_a = patients/month at full adoption of the first label ~ LogNormal(log 100, 2)
    ratio_ae = added eligible flow of expansion e / first label ~ LogNormal(0, 1)
    y_i ~ NegativeBinomial(mean_i, phi),  phi ~ LogNormal(log 20, 1)   (y = sales / price)

with ``mean_i`` the patients the curves give over observation i's periods (every label of
every product it covers); an observation that is only a lower bound (``>700``, or supply
constrained) enters as P(y >= y_i). log p and log q are pooled (not time to peak and
first-year share) because F is a function of them directly and their population is close to
normal on the log scale in the Bass literature; ``summary()`` reports time to peak and the
first-year share planners read. Forecasting (noise, conditioning on a product's own early
sales) is described in :mod:`forecast.uptake.simulate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from forecast import _pymc
from forecast.errors import InputError
from forecast.sampling import SamplerConfig, SamplerSettings
from forecast.uptake.curves import (
    DAYS_PER_MONTH,
    ORIGIN,
    bass_cdf,
    mean_patients,
    months_since_origin,
    pt_bass_integral,
    time_to_peak_years,
)
from forecast.uptake.data import (
    Product,
    analog_observations,
    analog_products,
    checked_observations,
)
from forecast.uptake.simulate import (
    expansion_months,
    input_draws,
    launch_months,
    monthly_patients,
    observation_pieces,
)

if TYPE_CHECKING:
    import pymc as pm

__all__ = ["UptakeModel", "build_model", "observation_means"]

TARGET_ACCEPT = 0.95  # NUTS target acceptance rate of every uptake fit


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


def build_model(observations: pd.DataFrame, products: Sequence[Product]) -> pm.Model:
    """The pooled Bass model as a plain ``pm.Model`` (module docstring).

    ``observations``: the output of :func:`~forecast.uptake.data.observations_from_sales`,
    validated; ``products``: every product they name.
    """
    obs_i, prod_k, seg_j, t0, t1, seg_prod, seg_launch, seg_base = _pieces(observations, products)
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
            * (pt_bass_integral(t1 - launch, p_m, q_m) - pt_bass_integral(t0 - launch, p_m, q_m))
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


class UptakeModel(SamplerSettings, _pymc.Fitted):
    """Bass adoption pooled across analog launches; forecasts patients per month.

    Parameters
    ----------
    draws, tune, chains, seed
        NUTS settings, kept in ``sampler`` (:class:`~forecast.sampling.SamplerConfig`) with
        ``target_accept`` :data:`TARGET_ACCEPT`.
    """

    def __init__(self, *, draws: int = 1000, tune: int = 1000, chains: int = 2, seed: int = 0):
        self.sampler = SamplerConfig(draws, tune, chains, seed, target_accept=TARGET_ACCEPT)
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
        """The PyMC model of ``observations`` (see :func:`build_model`)."""
        return build_model(observations, products)

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
        observations = checked_observations(
            observations, [p.name for p in products], "observations"
        )
        if observations.empty:
            raise InputError("observations: no rows; nothing to fit")
        self.products_, self.observations_ = list(products), observations
        model = self.build_model(self.observations_, self.products_)
        self._idata = self.sampler.sample(model)
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
            obs = checked_observations(condition_on, [name], "condition_on", only=name)
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
            share = input_draws(peak_share, draws, rng)
            eligible = input_draws(eligible_per_year, draws, rng)
            flows = [eligible / 12.0 * share] + [
                input_draws(a, draws, rng) / 12.0 * share for _, a in expansions
            ]
            flows = np.column_stack(flows)
            dates = [None] + [w for w, _ in expansions]
            shift = 0.0
        launch_t = launch_months(launch, draws)
        seg_t = np.column_stack(
            [launch_t] + [expansion_months(w, launch_t, shift) for w in dates[1:]]
        )
        if start is None:
            finite = launch_t[np.isfinite(launch_t)]
            first = ORIGIN + pd.Timedelta(
                days=float(finite.min() if len(finite) else 0) * DAYS_PER_MONTH
            )
            start = first.to_period("M").to_timestamp()
        months = pd.date_range(pd.Timestamp(start), periods=horizon_months + 1, freq="MS")
        counts, idx, ess = monthly_patients(
            months,
            seg_t,
            flows,
            launch_t,
            backlog,
            p_y,
            q_y,
            phi,
            rng,
            observations=obs,
            product=name,
        )
        attrs = {}
        if ess is not None:
            self.importance_ess_ = ess
            attrs["importance_ess"] = ess
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
        own = checked_observations(observations, [product.name], "observations", only=product.name)
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
        """Fitted monthly patients of analog ``product`` (P10-P90) with its observations
        (:func:`forecast.uptake.plot.plot_fit`)."""
        from forecast.uptake.plot import plot_fit

        return plot_fit(self, product, ax=ax)


def observation_means(model: UptakeModel, obs: pd.DataFrame) -> np.ndarray:
    """Posterior draws (draw, observation) of the modelled patients of each observation."""
    model._check()
    out = np.zeros((model.draws * model.chains, len(obs)))
    t0, t1, onehot = observation_pieces(obs)
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
