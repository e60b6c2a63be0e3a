"""Rolling-origin backtests of the demand models against plug-in baselines run alongside."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from forecast.data import screening_log
from forecast.enrollment.model import EnrollmentModel

__all__ = [
    "backtest_summary",
    "crps_samples",
    "enrollment_backtest",
    "pit_coverage",
    "uptake_backtest",
    "uptake_summary",
]


def crps_samples(samples: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """CRPS of predictive samples (draw first) against observations: E|X - y| - E|X - X'| / 2."""
    x = np.sort(np.asarray(samples, float), axis=0)
    n = x.shape[0]
    term1 = np.abs(x - observed[None]).mean(axis=0)
    weights = (2 * np.arange(1, n + 1) - n - 1)[:, None]
    term2 = (weights * x.reshape(n, -1)).sum(axis=0).reshape(x.shape[1:]) / n**2
    return term1 - term2


def pit_coverage(samples: np.ndarray, observed: np.ndarray, level: float = 0.8) -> np.ndarray:
    """Expected coverage of the central ``level`` interval under the randomised PIT.

    For counts, P(q10 <= y <= q90) of a calibrated forecast exceeds 80% because the endpoints
    carry mass (Poisson(2): 0 to 4 holds 95%). The randomised PIT u ~ U(F(y - 1), F(y)) is
    uniform for a calibrated forecast; this returns P(u in [0.1, 0.9]) exactly, so a
    calibrated forecast scores 0.8 on average.
    """
    x = np.asarray(samples, float)
    below = (x < observed[None]).mean(axis=0)  # F(y - 1)
    upto = (x <= observed[None]).mean(axis=0)  # F(y)
    lo, hi = (1 - level) / 2, (1 + level) / 2
    width = upto - below
    overlap = np.clip(np.minimum(upto, hi) - np.maximum(below, lo), 0, None)
    inside = ((below >= lo) & (below <= hi)).astype(float)  # degenerate width: u = F(y)
    return np.where(width > 0, overlap / np.where(width > 0, width, 1), inside)


def _plugin_poisson(history: pd.DataFrame, days: np.ndarray, rng, n) -> np.ndarray:
    """Constant rate = enrolled / calendar days so far; Poisson per future month."""
    rate = history["enrolled"].sum() / history["days"].sum()
    return rng.poisson(rate * days[None, :], size=(n, len(days)))


def _plugin_negative_binomial(history: pd.DataFrame, days: np.ndarray, rng, n) -> np.ndarray:
    """Anisimov-Fedorov plug-in: gamma-distributed monthly rates fitted by moments, NB counts.

    With one site, the gamma spread of rates is estimated across past months (the only
    replication there is); the estimate is plugged in, its uncertainty ignored.
    """
    k, d = history["enrolled"].to_numpy(float), history["days"].to_numpy(float)
    mean = k.sum() / d.sum()
    # var of the rate between months beyond Poisson noise (method of moments)
    excess = np.sum((k - mean * d) ** 2 - mean * d) / np.sum(d**2)
    shape = mean**2 / excess if excess > 0 else 1e6
    rates = rng.gamma(shape, mean / shape, size=(n, len(days)))
    return rng.poisson(rates * days[None, :])


def enrollment_backtest(
    logs: tuple[str, ...] = ("grips", "pace"),
    *,
    every_months: int = 3,
    horizon_months: int = 6,
    first_origin_months: int = 6,
    draws: int = 500,
    tune: int = 500,
    seed: int = 0,
) -> pd.DataFrame:
    """Rolling-origin backtest on bundled single-site screening logs.

    At each origin (a month end, every ``every_months`` from ``first_origin_months`` months
    after the first day) pmcap's ``EnrollmentModel`` (one site, calendar effect, open days as
    exposure) and two plug-in baselines forecast the next ``horizon_months`` monthly enrolled
    counts. Returns one row per log, origin, month ahead and method with the observed count,
    the 80% interval (P10-P90 of the predictive), whether it covers (``covered``), its
    randomised-PIT coverage (``pit_covered``, see :func:`pit_coverage`) and the CRPS.
    """
    logging.getLogger("pymc").setLevel(logging.ERROR)
    rows = []
    rng = np.random.default_rng(seed)
    n = 2 * draws
    for name in logs:
        log = screening_log(name)
        monthly = log.set_index("date").resample("MS").agg({"enrolled": "sum"})
        monthly["days"] = log.set_index("date").resample("MS")["enrolled"].size()
        months = monthly.index
        for o in range(first_origin_months, len(months) - 1, every_months):
            origin = months[o] - pd.Timedelta(days=1)  # last day of the previous month
            future = monthly.iloc[o : o + horizon_months]
            days = future.index.days_in_month.to_numpy(float)
            # the last month of a log is partial: score it only on its logged days
            days = np.minimum(days, future["days"].to_numpy(float))
            history = monthly.iloc[:o]
            model = EnrollmentModel(calendar_effect=True, draws=draws, tune=tune, seed=seed + o)
            model.fit(counts=log[log["date"] <= origin], as_of=origin)
            fc = model.forecast(len(future))["enrolled"].values
            # the model forecasts whole months; scale the partial last month by its days
            full = future.index.days_in_month.to_numpy(float)
            fc = rng.binomial(fc, np.minimum(days / full, 1.0)[None, :])
            predictions = {
                "pmcap": fc,
                "plugin_poisson": _plugin_poisson(history, days, rng, n),
                "plugin_negative_binomial": _plugin_negative_binomial(history, days, rng, n),
            }
            observed = future["enrolled"].to_numpy(float)
            for method, samples in predictions.items():
                low, high = np.quantile(samples, [0.1, 0.9], axis=0)
                crps = crps_samples(samples, observed)
                pit = pit_coverage(samples, observed)
                for h in range(len(future)):
                    rows.append(
                        {
                            "log": name,
                            "origin": origin,
                            "month": future.index[h],
                            "months_ahead": h + 1,
                            "method": method,
                            "observed": observed[h],
                            "mean": samples[:, h].mean(),
                            "p10": low[h],
                            "p90": high[h],
                            "covered": bool(low[h] <= observed[h] <= high[h]),
                            "pit_covered": pit[h],
                            "crps": crps[h],
                        }
                    )
    return pd.DataFrame(rows)


def backtest_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Coverage of the 80% interval and mean CRPS per log and method (and overall)."""
    stats = {
        "forecasts": ("covered", "size"),
        "coverage_80": ("covered", "mean"),
        "pit_coverage_80": ("pit_covered", "mean"),
        "crps": ("crps", "mean"),
    }
    by_log = frame.groupby(["log", "method"]).agg(**stats)
    overall = frame.groupby("method").agg(**stats)
    overall.index = pd.MultiIndex.from_product([["all"], overall.index], names=["log", "method"])
    return pd.concat([by_log, overall]).reset_index()


# --------------------------------------------------------------------------------------------
# uptake
# --------------------------------------------------------------------------------------------
def _bass_least_squares(train: pd.DataFrame, test: pd.DataFrame, launch: pd.Timestamp, rng, n):
    """Per-product Bass (p, q, scale) by least squares on log patients; lognormal residuals."""
    from scipy.optimize import least_squares

    from forecast.uptake.curves import bass_integral, months_since_origin

    L = months_since_origin([launch])[0]

    def means(params, frame):
        p, q, scale = np.exp(params)
        out = []
        for row in frame.itertuples():
            total = 0.0
            for s, e in zip(row.starts, row.ends, strict=True):
                t0, t1 = months_since_origin([s, e])
                total += scale * (
                    bass_integral(t1 - L, p / 12, q / 12) - bass_integral(t0 - L, p / 12, q / 12)
                )
            out.append(max(total, 1e-6))
        return np.array(out)

    y = train["patients"].to_numpy(float)
    fit = least_squares(
        lambda x: np.log(means(x, train)) - np.log(y),
        x0=np.log([0.3, 0.5, max(y.mean() / 3, 1.0)]),
        bounds=([-8, -8, -5], [3, 3, 12]),
    )
    resid_sd = max(float(np.std(fit.fun, ddof=min(3, len(y) - 1))) if len(y) > 3 else 0.3, 0.05)
    centre = means(fit.x, test)
    return centre[None, :] * np.exp(resid_sd * rng.standard_normal((n, len(test))))


def _ets(train: pd.DataFrame, test: pd.DataFrame, rng, n):
    """statsmodels ETS (additive trend and error) on the patients-per-month of past periods."""
    import warnings

    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    def per_month(frame):
        months = frame.apply(
            lambda r: sum((e - s).days for s, e in zip(r.starts, r.ends, strict=True)), axis=1
        )
        return frame["patients"].to_numpy(float) / (
            months.to_numpy(float) / (365.25 / 12)
        ), months.to_numpy(float) / (365.25 / 12)

    train = train.sort_values("first_start")
    rate, _ = per_month(train)
    test_rate_months = per_month(test)[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = ETSModel(rate, error="add", trend="add" if len(rate) >= 5 else None).fit(
                disp=False
            )
            sims = model.simulate(
                len(test), repetitions=n, anchor="end", random_state=int(rng.integers(2**31))
            ).to_numpy()
            sims = sims.reshape(len(test), -1).T
        except Exception:  # too few points for ETS: a level with the spread of past rates
            sims = rate[-1] + np.std(rate) * rng.standard_normal((n, len(test)))
    return np.maximum(sims, 0.0) * test_rate_months[None, :]


def _score(rows, label, split, method, samples, observed, test):
    low, high = np.quantile(samples, [0.1, 0.9], axis=0)
    crps = crps_samples(samples, observed)
    for i, row in enumerate(test.itertuples()):
        rows.append(
            {
                "split": split,
                "product": "+".join(row.products),
                "period_start": row.first_start,
                "method": method,
                "observed": observed[i],
                "mean": samples[:, i].mean(),
                "p10": low[i],
                "p90": high[i],
                "covered": bool(low[i] <= observed[i] <= high[i]),
                "crps": crps[i],
                "case": label,
            }
        )


def uptake_backtest(
    *,
    split_date: str = "2023-01-01",
    first_periods: int = 4,
    draws: int = 500,
    tune: int = 500,
    seed: int = 0,
    leave_one_out: bool = True,
) -> pd.DataFrame:
    """Backtest of ``UptakeModel`` on the bundled CAR-T analogs against two baselines.

    (a) time split: fit on observations ending by ``split_date``, forecast those starting
    after it; (b) leave one product out: fit on the others plus its first ``first_periods``
    observations (partial pooling), forecast its later ones. Baselines on the same product's
    own observations: a Bass fit by least squares and statsmodels ETS. Lower bounds are not
    scored. One row per test observation and method: 80% interval, coverage, CRPS.
    """
    from forecast.uptake.data import analog_observations, analog_products
    from forecast.uptake.model import UptakeModel, observation_means

    logging.getLogger("pymc").setLevel(logging.ERROR)
    rng = np.random.default_rng(seed)
    obs = analog_observations()
    products = analog_products()
    launches = {p.name: p.launch for p in products}
    rows: list[dict] = []
    n = 2 * draws

    def run(split, train, test_sets):
        model = UptakeModel(draws=draws, tune=tune, seed=seed).fit(train, products)
        for label, test in test_sets:
            test = test[~test["lower_bound"]]
            if test.empty:
                continue
            mean = observation_means(model, test)
            phi = np.asarray(model.idata.posterior["phi"]).ravel()[:, None]
            pm_samples = rng.poisson(rng.gamma(phi, mean / phi))
            observed = test["patients"].to_numpy(float)
            _score(rows, label, split, "pmcap", pm_samples, observed, test)
            single = test["products"].apply(len) == 1
            for name in sorted({p[0] for p in test.loc[single, "products"]}):
                own_train = train[train["products"] == (name,)]
                own_test = test[test["products"] == (name,)]
                if len(own_train) < 3:
                    continue
                obs_own = own_test["patients"].to_numpy(float)
                _score(
                    rows,
                    label,
                    split,
                    "bass_least_squares",
                    _bass_least_squares(own_train, own_test, launches[name], rng, n),
                    obs_own,
                    own_test,
                )
                _score(
                    rows, label, split, "ets", _ets(own_train, own_test, rng, n), obs_own, own_test
                )

    cut = pd.Timestamp(split_date)
    train = obs[obs["last_end"] <= cut]
    test = obs[obs["first_start"] >= cut]
    run("time", train, [("all", test)])
    if leave_one_out:
        for prod in products:
            own = obs[obs["products"] == (prod.name,)].sort_values("first_start")
            others = obs[obs["products"].apply(lambda names, n=prod.name: n not in names)]
            first = own.iloc[:first_periods]
            later = own.iloc[first_periods:]
            run("leave_one_out", pd.concat([others, first]), [(prod.name, later)])
    return pd.DataFrame(rows)


def uptake_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Coverage of the 80% interval and mean CRPS by split and method, on observations all
    three methods scored (single-product ones)."""
    key = ["split", "case", "product", "period_start"]
    scored = frame.groupby(key)["method"].transform("nunique") == frame["method"].nunique()
    common = frame[scored]
    return (
        common.groupby(["split", "method"])
        .agg(forecasts=("covered", "size"), coverage_80=("covered", "mean"), crps=("crps", "mean"))
        .reset_index()
    )
