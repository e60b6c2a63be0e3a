"""The few places pmcap touches PyMC and ArviZ (their APIs churn; adapt here only)."""

from __future__ import annotations

import json
from typing import Any

import arviz as az
import numpy as np
import pymc as pm


def sample(
    model: pm.Model,
    *,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 2,
    seed: int = 0,
    target_accept: float = 0.9,
    progressbar: bool = False,
) -> az.InferenceData:
    """NUTS with pmcap's defaults; chains run one after another (2-core machines, no spawn)."""
    with model:
        return pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=1,
            random_seed=seed,
            target_accept=target_accept,
            progressbar=progressbar,
            compute_convergence_checks=False,
        )


def stacked(idata: az.InferenceData, name: str) -> np.ndarray:
    """Posterior draws of ``name`` with chain and draw flattened into the first axis."""
    values = idata.posterior[name].values
    return values.reshape(-1, *values.shape[2:])


def diagnostics(idata: az.InferenceData, var_names: list[str]) -> dict[str, Any]:
    """Max R-hat, min bulk ESS and the number of divergences."""
    summary = az.summary(idata, var_names=var_names, kind="diagnostics")
    divergences = int(idata.sample_stats["diverging"].values.sum())
    return {
        "r_hat_max": float(summary["r_hat"].max()),
        "ess_bulk_min": float(summary["ess_bulk"].min()),
        "divergences": divergences,
        "draws": int(idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"]),
    }


def save_idata(idata: az.InferenceData, path, config: dict[str, Any]) -> None:
    idata.posterior.attrs["pmcap_config"] = json.dumps(config, sort_keys=True, default=str)
    idata.to_netcdf(str(path), engine="h5netcdf")


def load_idata(path) -> tuple[az.InferenceData, dict[str, Any]]:
    """Read everything into memory and close the file (it can then be overwritten)."""
    idata = az.from_netcdf(str(path), engine="h5netcdf")
    for group in idata.groups():
        dataset = getattr(idata, group)
        dataset.load()
        dataset.close()
    return idata, json.loads(idata.posterior.attrs["pmcap_config"])
