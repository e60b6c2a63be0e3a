"""Simulation-based calibration of the phase-transition model (slow tier).

Counts are simulated from the prior on a table of 8 groups with 20-200 transitions per cell,
the model is refitted (the same compiled model, new data), and the rank of each true mu_k and
sigma_k among 99 thinned posterior draws is recorded. Over 100 replicates the ranks, in 10
bins, must look uniform: chi-square p > 0.01 for each of the 8 parameters (Talts et al. 2018).
The posterior is sampled with nutpie's NUTS on the model as :func:`build_model` writes it
(compiled once; each replicate swaps the data): about 0.3 s a replicate against 6 s with
PyMC's own NUTS, which the fits use. The calibration checked is the model's (priors,
likelihood and their parametrisation, under NUTS at the fits' ``target_accept``); the fits
with PyMC's sampler are checked against the published BIO 2021 rates in ``test_phase.py``.
The same check on the grid posterior of a modality's duration shift follows.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy import special, stats

from forecast import _pymc
from forecast.phase.model import build_model

REPLICATES, GROUPS, THIN_TO, BINS = 100, 8, 99, 10


@pytest.mark.slow
def test_simulation_based_calibration():
    import nutpie

    logging.getLogger("pymc").setLevel(logging.ERROR)
    rng = np.random.default_rng(2026)
    n = rng.integers(20, 200, size=(GROUPS, 4)).astype(float)
    model = build_model([f"g{i}" for i in range(GROUPS)], n, np.zeros((GROUPS, 4)))
    compiled = nutpie.compile_pymc_model(model)
    ranks = {"mu": [], "sigma": []}
    divergent = 0
    for r in range(REPLICATES):
        mu = rng.normal(0, 1.5, size=4)
        sigma = np.abs(rng.normal(0, 1.0, size=4))
        z = rng.normal(size=(GROUPS, 4))
        y = rng.binomial(n.astype(int), special.expit(mu + sigma * z))
        idata = nutpie.sample(
            compiled.with_data(successes_observed=y.astype(float)),
            draws=495, tune=600, chains=1, seed=r, target_accept=0.95, progress_bar=False,
        )  # fmt: skip
        divergent += int(idata.sample_stats["diverging"].sum())
        for name, truth in (("mu", mu), ("sigma", sigma)):
            draws = _pymc.stacked(idata, name)[::5][:THIN_TO]
            ranks[name].append((draws < truth).sum(axis=0))
    assert divergent <= REPLICATES * 495 * 0.01, divergent  # at most 1% of the draws
    for name, values in ranks.items():
        values = np.asarray(values)  # (replicate, step), ranks in 0..THIN_TO
        for k in range(4):
            counts = np.bincount(values[:, k] * BINS // (THIN_TO + 1), minlength=BINS)
            p_value = stats.chisquare(counts).pvalue
            assert p_value > 0.01, (
                f"{name}[{k}] ranks not uniform: {counts.tolist()}, p={p_value:.4f}"
            )


@pytest.mark.slow
def test_modality_shift_calibration():
    """The grid posterior of a modality's phase I-III shift (module docstring of
    forecast.phase.durations): shifts drawn from its prior, six programs' years from phase I to
    approval simulated from the duration model, the posterior computed from their median;
    over 200 replicates the rank of the true shift among 99 posterior draws must look uniform
    (chi-square p > 0.01 over 10 bins)."""
    from forecast import PhaseTransitionModel
    from forecast.phase.durations import CLINICAL, FILING, MODALITY_SD, DurationSpec

    priors = PhaseTransitionModel("modality").duration_priors
    area = np.array([2.7, 3.7, 3.1, 0.8])  # oncology means, as CAR-T borrows them
    rng = np.random.default_rng(7)
    ranks = []
    for _ in range(200):
        shift = rng.normal(0.0, MODALITY_SD)
        spec = DurationSpec(area * np.exp(shift * CLINICAL), None, None)
        median, sigma = priors.duration_params(spec, 6, rng)
        clinical = median[:, :FILING] * np.exp(sigma[:, :FILING] * rng.standard_normal((6, 3)))
        years = clinical.sum(axis=1) + priors.review_years(median[:, FILING], rng)
        grid, prob = priors.shift_posterior(area, float(np.median(years)), 6)
        step = grid[1] - grid[0]
        draws = rng.choice(grid, size=THIN_TO, p=prob) + step * (rng.random(THIN_TO) - 0.5)
        ranks.append((draws < shift).sum())
    counts = np.bincount(np.asarray(ranks) * BINS // (THIN_TO + 1), minlength=BINS)
    p_value = stats.chisquare(counts).pvalue
    assert p_value > 0.01, f"shift ranks not uniform: {counts.tolist()}, p={p_value:.4f}"
