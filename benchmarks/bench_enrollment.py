"""Marginalised enrollment model vs a naive one that samples every site rate, in one process.

Simulated trials of 200 and 2,000 sites x 24 months (alpha = 1.4, mean rate 0.01/day). For
each model: build time, total fit time, NUTS sampling time (from PyMC's own record), ESS of
alpha and ESS/s of sampling; then the cost of a second fit in the same process (compiled
code cached). Run: ``python benchmarks/bench_enrollment.py [--draws 1000]``.
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings

import arviz as az
import numpy as np
import pymc as pm

from forecast import _pymc
from forecast.enrollment import EnrollmentModel


def simulate(n_sites: int, months: int = 24, seed: int = 0):
    rng = np.random.default_rng(seed)
    exposure = np.full((n_sites, months), 30.4)
    exposure[:, 0] = rng.uniform(0, 30.4, n_sites)  # sites open during the first month
    rates = rng.gamma(1.4, 0.01 / 1.4, n_sites)
    return rng.poisson(rates[:, None] * exposure).astype(float), exposure


def naive_model(counts, exposure) -> pm.Model:
    """Every site rate is a parameter: lambda_s ~ Gamma(alpha, alpha / mu), Poisson counts."""
    with pm.Model() as model:
        alpha = pm.LogNormal("alpha", np.log(2.0), 1.0)
        log_mu = pm.Normal("log_mu", np.log(0.01), 2.0)
        beta = alpha / pm.math.exp(log_mu)
        lam = pm.Gamma("site_rate", alpha=alpha, beta=beta, shape=counts.shape[0])
        pm.Poisson("enrolled", mu=lam[:, None] * exposure, observed=counts)
    return model


def run(name, build, build_args, draws, seed):
    t0 = time.perf_counter()
    model = build(*build_args)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    idata = _pymc.sample(model, draws=draws, tune=draws, chains=2, seed=seed)
    t_fit = time.perf_counter() - t0
    t_sampling = float(idata.sample_stats.attrs["sampling_time"])
    ess = float(az.ess(idata, var_names=["alpha"])["alpha"])
    divergences = int(idata.sample_stats["diverging"].sum())
    return {
        "name": name,
        "build_s": t_build,
        "fit_s": t_fit,
        "sampling_s": t_sampling,
        "compile_and_init_s": t_fit - t_sampling,
        "ess_alpha": ess,
        "ess_per_s": ess / t_sampling,
        "divergences": divergences,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--sites", type=int, nargs="+", default=[200, 2000])
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("pymc").setLevel(logging.ERROR)
    for n_sites in args.sites:
        counts, exposure = simulate(n_sites)
        countries = np.array(["all"] * n_sites)
        marginal = EnrollmentModel(seed=1)
        results = []
        for attempt in ("first", "second"):
            results.append(
                run(
                    f"marginalised ({attempt} fit)",
                    marginal.build_model,
                    (counts, exposure, countries),
                    args.draws,
                    1,
                )
            )
            results.append(
                run(f"naive ({attempt} fit)", naive_model, (counts, exposure), args.draws, 1)
            )
        print(f"\n{n_sites} sites x 24 months, {args.draws} draws + {args.draws} tune x 2 chains")
        print(
            f"{'model':<28}{'build s':>9}{'fit s':>8}{'sample s':>10}{'compile s':>11}"
            f"{'ESS alpha':>11}{'ESS/s':>9}{'div':>5}"
        )
        for r in results:
            print(
                f"{r['name']:<28}{r['build_s']:>9.2f}{r['fit_s']:>8.2f}{r['sampling_s']:>10.2f}"
                f"{r['compile_and_init_s']:>11.2f}{r['ess_alpha']:>11.0f}{r['ess_per_s']:>9.1f}"
                f"{r['divergences']:>5}"
            )
        m2, n2 = results[2], results[3]
        print(
            f"ESS/s of alpha, marginalised / naive (second fits): "
            f"{m2['ess_per_s'] / n2['ess_per_s']:.1f}x"
        )


if __name__ == "__main__":
    main()
