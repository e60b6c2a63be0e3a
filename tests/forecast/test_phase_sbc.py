"""Simulation-based calibration of the phase-transition model (slow tier).

Counts are simulated from the prior on a table of 8 groups with 20-200 transitions per cell,
the model is refitted (the same compiled model, new data), and the rank of each true mu_k and
sigma_k among 99 thinned posterior draws is recorded. Over 100 replicates the ranks, in 10
bins, must look uniform: chi-square p > 0.01 for each of the 8 parameters (Talts et al. 2018).
"""

from __future__ import annotations

import logging

import numpy as np
import pymc as pm
import pytest
from scipy import special, stats

from forecast import _pymc
from forecast.phase import build_model

REPLICATES, GROUPS, THIN_TO, BINS = 100, 8, 99, 10


@pytest.mark.slow
def test_simulation_based_calibration():
    logging.getLogger("pymc").setLevel(logging.ERROR)
    rng = np.random.default_rng(2026)
    n = rng.integers(20, 200, size=(GROUPS, 4)).astype(float)
    model = build_model([f"g{i}" for i in range(GROUPS)], n, np.zeros((GROUPS, 4)))
    ranks = {"mu": [], "sigma": []}
    for r in range(REPLICATES):
        mu = rng.normal(0, 1.5, size=4)
        sigma = np.abs(rng.normal(0, 1.0, size=4))
        z = rng.normal(size=(GROUPS, 4))
        y = rng.binomial(n.astype(int), special.expit(mu + sigma * z))
        pm.set_data({"successes_observed": y}, model=model)
        idata = _pymc.sample(model, draws=495, tune=600, chains=1, seed=r, target_accept=0.95)
        for name, truth in (("mu", mu), ("sigma", sigma)):
            draws = _pymc.stacked(idata, name)[::5][:THIN_TO]
            ranks[name].append((draws < truth).sum(axis=0))
    for name, values in ranks.items():
        values = np.asarray(values)  # (replicate, step), ranks in 0..THIN_TO
        for k in range(4):
            counts = np.bincount(values[:, k] * BINS // (THIN_TO + 1), minlength=BINS)
            p_value = stats.chisquare(counts).pvalue
            assert p_value > 0.01, (
                f"{name}[{k}] ranks not uniform: {counts.tolist()}, p={p_value:.4f}"
            )
