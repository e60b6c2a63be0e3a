"""The enrollment density sampled with nutpie is the PyMC model's, and so is its posterior."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from forecast import _pymc
from forecast.enrollment.density import EnrollmentDensity, _digamma, sample_nutpie
from forecast.enrollment.model import build_model
from forecast.sampling import SamplerConfig

# PyMC's names of the free (transformed) variables -> the density's layout
VALUE_VARS = {
    "alpha_log__": "log_alpha",
    "log_mu": "log_mu",
    "mu_log__": "log_mu",
    "sigma_country_log__": "log_sigma_country",
    "z_country": "z_country",
    "sigma_calendar_log__": "log_sigma_calendar",
    "z_calendar": "z_calendar",
}


def trial(seed=0, n_sites=9, months=8):
    rng = np.random.default_rng(seed)
    exposure = np.full((n_sites, months), 30.4)
    exposure[:, 0] = rng.uniform(0, 30.4, n_sites)
    exposure[: n_sites // 3, :3] = 0.0  # sites opened later
    rates = rng.gamma(1.5, 0.02 / 1.5, n_sites)
    counts = rng.poisson(rates[:, None] * exposure).astype(float)
    countries = np.array(["US", "DE", "ES"])[np.arange(n_sites) % 3]
    return counts, exposure, countries


CASES = {
    "countries": ({}, slice(None), True),
    "one country": ({}, slice(None), False),
    "calendar": ({"calendar_effect": True}, slice(None), True),
    "planning": ({"planning": (60, 365, 0.5)}, slice(None), False),
    "planning, calendar, countries": (
        {"planning": (60, 365, 0.5), "calendar_effect": True},
        slice(None),
        True,
    ),
    "one site, calendar": ({"calendar_effect": True}, slice(0, 1), False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_density_and_gradient_are_pymcs(case):
    """Differences of log density between points and the gradient equal PyMC's compiled
    logp/dlogp of build_model (a wrong prior, Jacobian or chain-rule term shows here)."""
    kw, rows, many_countries = CASES[case]
    counts, exposure, countries = trial()
    counts, exposure, countries = counts[rows], exposure[rows], countries[rows]
    if not many_countries:
        countries = np.array(["US"] * len(countries))
    model = build_model(counts, exposure, countries, **kw)
    density = EnrollmentDensity(counts, exposure, countries, **kw)
    logp, dlogp = model.compile_logp(), model.compile_dlogp()
    start = model.initial_point()
    names = [v.name for v in model.value_vars]
    assert sorted(VALUE_VARS[n] for n in names) == sorted(density.slices)
    # PyMC's initial point is the density's
    ours = density.initial_point()
    for n in names:
        np.testing.assert_allclose(ours[density.slices[VALUE_VARS[n]]], start[n], rtol=1e-6)
    rng = np.random.default_rng(1)
    offsets = []
    for _ in range(4):
        x = ours + rng.normal(0.0, 0.7, density.ndim)
        point = {n: x[density.slices[VALUE_VARS[n]]].reshape(np.shape(start[n])) for n in names}
        reference = dlogp(point)
        expected = np.concatenate(
            [reference[_offsets(names, start)[n]] for n in _layout(names, density)]
        )
        lp, grad = density.logp_grad(x)
        offsets.append(logp(point) - lp)
        # PyMC keeps float32 constants of the planning prior: agreement to ~1e-6
        np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-5)
    assert np.ptp(offsets) < 1e-5 * max(1.0, abs(offsets[0]))


def _offsets(names, start):
    out, k = {}, 0
    for n in names:
        size = int(np.size(start[n]))
        out[n] = slice(k, k + size)
        k += size
    return out


def _layout(names, density):
    """PyMC's value variables in the order of the density's vector."""
    return sorted(names, key=lambda n: density.slices[VALUE_VARS[n]].start)


def test_digamma_against_scipy():
    from scipy import special

    x = np.array([1e-3, 0.1, 0.5, 1.0, 2.5, 5.9, 6.0, 17.3, 250.0, 1e5])
    np.testing.assert_allclose([_digamma(v) for v in x], special.digamma(x), rtol=1e-13, atol=1e-13)


def test_expand_gives_the_variables_pymc_records():
    counts, exposure, countries = trial()
    density = EnrollmentDensity(counts, exposure, countries, calendar_effect=True)
    x = density.initial_point() + 0.3
    out = density.expand(x)
    model = build_model(counts, exposure, countries, calendar_effect=True)
    recorded = {v.name for v in model.free_RVs} | {v.name for v in model.deterministics}
    assert set(out) == recorded
    s_c, z_c = np.exp(x[density.slices["log_sigma_country"]][0]), x[density.slices["z_country"]]
    np.testing.assert_allclose(out["mu_country"], np.exp(x[1] + s_c * z_c))
    np.testing.assert_allclose(out["alpha"], np.exp(x[0]))
    s = np.exp(x[density.slices["log_sigma_calendar"]][0])
    z = x[density.slices["z_calendar"]]
    np.testing.assert_allclose(out["eps"], np.exp(s * z - s**2 / 2))


def test_same_seed_same_draws():
    counts, exposure, countries = trial()
    density = EnrollmentDensity(counts, exposure, countries)
    config = SamplerConfig(draws=100, tune=100, chains=2, seed=5, target_accept=0.9)
    first = sample_nutpie(density, config).posterior["alpha"].values
    again = sample_nutpie(density, config).posterior["alpha"].values
    np.testing.assert_array_equal(first, again)
    assert first.shape == (2, 100)


@pytest.mark.slow
def test_nutpie_posterior_agrees_with_pymc_nuts():
    """Posterior means and 10/50/90% quantiles of nutpie's draws and PyMC's NUTS on the same
    model agree within Monte Carlo error (4 x the standard error of the difference from the
    two runs' ESS), and both pass the run's diagnostic limits."""
    from pmcap.run import DIAGNOSTIC_LIMITS

    logging.getLogger("pymc").setLevel(logging.ERROR)
    counts, exposure, countries = trial(seed=3, n_sites=20, months=15)
    config = SamplerConfig(draws=2000, tune=1000, chains=2, seed=11, target_accept=0.99)
    ours = sample_nutpie(EnrollmentDensity(counts, exposure, countries), config)
    theirs = config.sample(build_model(counts, exposure, countries))
    names = ["alpha", "log_mu", "sigma_country"]
    for idata in (ours, theirs):
        d = _pymc.diagnostics(idata, names)
        assert d["r_hat_max"] <= DIAGNOSTIC_LIMITS["r_hat_max"]
        assert d["divergences"] <= DIAGNOSTIC_LIMITS["divergences"]
        assert d["ess_bulk_min"] >= DIAGNOSTIC_LIMITS["ess_bulk_min"]
    for name in [*names, "mu_country"]:
        a = _pymc.stacked(ours, name).reshape(len(_pymc.stacked(ours, name)), -1)
        b = _pymc.stacked(theirs, name).reshape(len(_pymc.stacked(theirs, name)), -1)
        for k in range(a.shape[1]):
            ess = min(_ess(ours, name, k), _ess(theirs, name, k))
            se = np.sqrt(a[:, k].var() / ess + b[:, k].var() / ess)
            assert abs(a[:, k].mean() - b[:, k].mean()) < 4 * se, (name, k)
            for q in (0.1, 0.5, 0.9):
                # quantile standard error ~ sqrt(q(1-q)/ESS) / density, density from the draws
                qa, qb = np.quantile(a[:, k], q), np.quantile(b[:, k], q)
                width = np.quantile(b[:, k], min(q + 0.05, 0.99)) - np.quantile(
                    b[:, k], max(q - 0.05, 0.01)
                )
                dens = 0.1 / width
                se_q = np.sqrt(2 * q * (1 - q) / ess) / dens
                assert abs(qa - qb) < 4 * se_q, (name, k, q)


def _ess(idata, name, k):
    values = np.asarray(idata.posterior[name].values, dtype=float)
    values = values.reshape(values.shape[0], values.shape[1], -1)[:, :, k]
    return _pymc._rhat_ess_bulk(values)[1]


@pytest.mark.parametrize("log_alpha", [20.0, 40.0])
def test_a_large_alpha_gives_the_poisson_limit(log_alpha):
    """As alpha -> infinity every site's rate is mu: the likelihood tends to the Poisson one,
    sum_s K_s log mu - mu E_s (the density drops sum k log E, constant). Evaluated naively
    (two huge lgammas) it came out near 0 and NUTS got stuck at a spurious mode around
    alpha = 1e18."""
    from forecast.enrollment.density import LOG_MU_PRIOR
    from forecast.enrollment.simulate import ALPHA_PRIOR

    counts, exposure, _ = trial()
    countries = np.array(["US"] * len(counts))
    density = EnrollmentDensity(counts, exposure, countries)
    log_mu = np.log(0.015)
    lp, _ = density.logp_grad(np.array([log_alpha, log_mu]))
    prior = -0.5 * ((log_alpha - ALPHA_PRIOR[0]) / ALPHA_PRIOR[1]) ** 2
    prior -= 0.5 * ((log_mu - LOG_MU_PRIOR[0]) / LOG_MU_PRIOR[1]) ** 2
    poisson = float(np.sum(counts.sum(axis=1) * log_mu - np.exp(log_mu) * exposure.sum(axis=1)))
    assert lp - prior == pytest.approx(poisson, rel=1e-6)
