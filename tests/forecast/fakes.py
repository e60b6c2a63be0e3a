"""Fitted models with posteriors written by hand (no sampler): exact, fast plumbing tests."""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd

from forecast import PHASES, STEPS, EnrollmentModel, PhaseTransitionModel, UptakeModel


def phase_model(
    p=(0.5, 0.6, 0.7, 0.9),
    years=(1.5, 2.0, 2.5, 1.0),
    groups=("CAR-T",),
    dispersion=0.0,
    draws=200,
) -> PhaseTransitionModel:
    """Step probabilities fixed at ``p`` in every draw; phase durations fixed at ``years``
    (``dispersion=0``) for every group."""
    model = PhaseTransitionModel(
        "modality", duration_dispersion=dispersion, median_sd=0.0, draws=draws, chains=1
    )
    p_arr = np.broadcast_to(np.asarray(p, float), (1, draws, len(groups), 4)).copy()
    logit = np.log(p_arr / (1 - p_arr))
    model.idata = az.from_dict(
        posterior={
            "p": p_arr,
            "mu": logit[:, :, 0, :],
            "sigma": np.full((1, draws, 4), 1e-6),
        },
        coords={"group": list(groups), "step": list(STEPS)},
        dims={"p": ["group", "step"], "mu": ["step"], "sigma": ["step"]},
    )
    model.durations_ = pd.DataFrame(
        {"group": "All indications", "phase": list(PHASES), "mean_years": list(years)}
    )
    return model


def uptake_model(p_year=0.1, q_year=0.6, phi=1e6, draws=200) -> UptakeModel:
    """A population of new products with fixed p, q and (almost) Poisson noise."""
    model = UptakeModel(draws=draws, chains=1)
    post = {
        "mu_log_p": np.full((1, draws), np.log(p_year)),
        "mu_log_q": np.full((1, draws), np.log(q_year)),
        "sigma_log_p": np.full((1, draws), 1e-9),
        "sigma_log_q": np.full((1, draws), 1e-9),
        "phi": np.full((1, draws), phi),
    }
    model.idata = az.from_dict(posterior=post)
    model.products_ = []
    return model


def enrollment_model(
    target=60, rate_per_month=4.0, as_of="2026-12-31", months=12, seed=0
) -> EnrollmentModel:
    """One site open for ``months`` months before ``as_of``, enrolling at about the given
    rate (closed-form posterior: no sampler)."""
    end = pd.Timestamp(as_of)
    days = pd.date_range(end - pd.DateOffset(months=months) + pd.Timedelta(days=1), end)
    rng = np.random.default_rng(seed)
    counts = pd.DataFrame(
        {
            "site": "S1",
            "date": days,
            "enrolled": rng.poisson(rate_per_month / 30.4375, len(days)),
        }
    )
    return EnrollmentModel(target=target, draws=500, chains=2, seed=seed).fit(
        counts=counts, as_of=as_of
    )
