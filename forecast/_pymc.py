"""The few places pmcap touches PyMC and ArviZ (their APIs churn; adapt here only).

Nothing here imports PyMC, PyTensor or ArviZ when the module is imported. Only building or
sampling a model imports PyMC (:func:`pymc`); forecasting from a saved posterior reads the
file with xarray (:func:`load_idata` returns a :class:`Draws`) and computes the sampler
diagnostics with NumPy (:func:`diagnostics`, the same numbers ``az.summary`` reports). ArviZ
is imported only when a fit returns an ``InferenceData``, when one is saved, or when a user
reads a loaded model's ``.idata`` (converted on first access, see :class:`Fitted`): the three
take seconds to import, which every ``pmcap run`` and sweep worker would otherwise pay
(``benchmarks/bench_startup.py`` measures the start-up). NUTS settings live in
:class:`forecast.sampling.SamplerConfig`.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import arviz as az
    import pymc as pm
    import xarray as xr


def pymc():
    """PyMC, imported on first use.

    PyMC sets the level of its logger when it is imported (INFO, unless logging is configured);
    a level set on ``logging.getLogger("pymc")`` before that (``pmcap run`` silences it) is
    kept.
    """
    log = logging.getLogger("pymc")
    level = log.level
    import pymc as pm

    if level != logging.NOTSET:
        log.setLevel(level)
    return pm


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
    pm = pymc()
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


class Draws:
    """The groups of a saved InferenceData read with xarray alone (ArviZ is not imported).

    Has what pmcap's models read (``posterior``, ``sample_stats``, ... as attributes,
    ``groups()``, ``attrs``); :func:`inference_data` turns it into an ``az.InferenceData``.
    """

    def __init__(self, groups: dict[str, xr.Dataset], attrs: dict[str, Any] | None = None):
        self._names = list(groups)
        for name, dataset in groups.items():
            setattr(self, name, dataset)
        self.attrs = dict(attrs or {})

    def groups(self) -> list[str]:
        return list(self._names)

    def __repr__(self) -> str:
        return f"Draws({', '.join(self._names)})"


def inference_data(idata):
    """``idata`` as an ``az.InferenceData`` (a :class:`Draws` is converted; ArviZ imported)."""
    if not isinstance(idata, Draws):
        return idata
    import arviz as az

    return az.InferenceData(
        attrs=idata.attrs, **{name: getattr(idata, name) for name in idata.groups()}
    )


class Fitted:
    """``.idata`` for the models: stored in ``_idata`` (an InferenceData or a :class:`Draws`
    after ``load``); reading ``.idata`` gives an ``az.InferenceData`` (converted once). The
    models read ``_idata`` themselves, so forecasting from a loaded posterior needs no ArviZ.
    """

    _idata = None

    @property
    def idata(self):
        if isinstance(self._idata, Draws):
            self._idata = inference_data(self._idata)
        return self._idata

    @idata.setter
    def idata(self, value) -> None:
        self._idata = value


def stacked(idata, name: str) -> np.ndarray:
    """Posterior draws of ``name`` with chain and draw flattened into the first axis."""
    values = idata.posterior[name].values
    return values.reshape(-1, *values.shape[2:])


def diagnostics(idata, var_names: list[str]) -> dict[str, Any]:
    """Max R-hat, min bulk ESS (as ``az.summary(kind="diagnostics")`` reports them, rounded
    to 2 and 0 decimals) and the number of divergences."""
    r_hats, esses = [], []
    for name in var_names:
        values = np.asarray(idata.posterior[name].values, dtype=float)
        values = values.reshape(values.shape[0], values.shape[1], -1)
        for k in range(values.shape[2]):
            r_hat, ess = _rhat_ess_bulk(values[:, :, k])
            r_hats.append(r_hat)
            esses.append(ess)
    divergences = int(idata.sample_stats["diverging"].values.sum())
    return {
        "r_hat_max": float(np.round(_nanmax(r_hats), 2)),
        "ess_bulk_min": float(np.round(_nanmin(esses), 0)),
        "divergences": divergences,
        "draws": int(idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"]),
    }


def _nanmax(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.nanmax(values)) if np.isfinite(values).any() else float("nan")


def _nanmin(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.nanmin(values)) if np.isfinite(values).any() else float("nan")


# --- R-hat and bulk ESS, as ArviZ 0.2x computes them (Vehtari et al. 2021) -----------------
# A port of ``arviz.stats.diagnostics._multichain_statistics`` (rank-normalised split R-hat:
# the larger of bulk and folded; bulk ESS with Geyer's initial monotone sequence) so that
# reading a posterior does not import ArviZ; tests/test_imports.py checks it
# against az.summary.
def _rhat_ess_bulk(ary: np.ndarray) -> tuple[float, float]:
    """(R-hat, bulk ESS) of one scalar's draws, shape (chain, draw)."""
    ary = np.atleast_2d(ary)
    if np.isnan(ary).any() or ary.shape[1] < 4:
        return float("nan"), float("nan")
    z_split = _z_scale(_split_chains(ary))
    if ary.shape[0] < 2:
        r_hat = float("nan")
    else:
        rhat_bulk = _rhat(z_split)
        folded = np.abs(ary - np.median(ary))
        rhat_tail = _rhat(_z_scale(_split_chains(folded)))
        r_hat = max(rhat_bulk, rhat_tail)  # as ArviZ: a NaN bulk R-hat stays NaN
    return float(r_hat), float(_ess(z_split))


def _split_chains(ary: np.ndarray) -> np.ndarray:
    half = ary.shape[1] // 2
    return np.vstack((ary[:, :half], ary[:, -half:]))


def _z_scale(ary: np.ndarray) -> np.ndarray:
    import pandas as pd

    from forecast._dist import norm_ppf

    # average ranks over all values, NaN kept (scipy.stats.rankdata, nan_policy="omit")
    rank = pd.Series(np.ravel(ary)).rank(method="average").to_numpy()
    rank = (rank - 3 / 8) / (rank.size - 2 * 3 / 8 + 1)  # Blom (1958)
    return norm_ppf(rank).reshape(ary.shape)


def _rhat(ary: np.ndarray) -> float:
    ary = np.asarray(ary, dtype=float)
    if np.isnan(ary).any():
        return float("nan")
    n = ary.shape[1]
    chain_mean = ary.mean(axis=1)
    chain_var = ary.var(axis=1, ddof=1)
    between = n * chain_mean.var(ddof=1)
    within = chain_var.mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.sqrt((between / within + n - 1) / n))


def _autocov(ary: np.ndarray) -> np.ndarray:
    from scipy.fftpack import next_fast_len  # the FFT length ArviZ uses

    n = ary.shape[1]
    m = next_fast_len(2 * n)
    ary = ary - ary.mean(axis=1, keepdims=True)
    f = np.fft.rfft(ary, n=m, axis=1)
    f *= np.conjugate(f)
    return np.fft.irfft(f, n=m, axis=1)[:, :n] / n


def _ess(ary: np.ndarray) -> float:
    ary = np.asarray(ary, dtype=float)
    if np.isnan(ary).any():
        return float("nan")
    if np.max(ary) - np.min(ary) < np.finfo(float).resolution:
        return float(ary.size)
    n_chain, n_draw = ary.shape
    acov = _autocov(ary)
    chain_mean = ary.mean(axis=1)
    mean_var = np.mean(acov[:, 0]) * n_draw / (n_draw - 1.0)
    var_plus = mean_var * (n_draw - 1.0) / n_draw
    if n_chain > 1:
        var_plus += chain_mean.var(ddof=1)
    rho = np.zeros(n_draw)
    rho_even = 1.0
    rho[0] = rho_even
    rho_odd = 1.0 - (mean_var - np.mean(acov[:, 1])) / var_plus
    rho[1] = rho_odd
    acov_mean = acov.mean(axis=0)
    t = 1  # Geyer's initial positive sequence
    while t < n_draw - 3 and rho_even + rho_odd > 0.0:
        rho_even = 1.0 - (mean_var - acov_mean[t + 1]) / var_plus
        rho_odd = 1.0 - (mean_var - acov_mean[t + 2]) / var_plus
        if rho_even + rho_odd >= 0:
            rho[t + 1] = rho_even
            rho[t + 2] = rho_odd
        t += 2
    max_t = t - 2
    if rho_even > 0:
        rho[max_t + 1] = rho_even
    t = 1  # Geyer's initial monotone sequence
    while t <= max_t - 2:
        if rho[t + 1] + rho[t + 2] > rho[t - 1] + rho[t]:
            rho[t + 1] = (rho[t - 1] + rho[t]) / 2.0
            rho[t + 2] = rho[t + 1]
        t += 2
    ess = n_chain * n_draw
    tau = -1.0 + 2.0 * np.sum(rho[: max_t + 1]) + np.sum(rho[max_t + 1 : max_t + 2])
    tau = max(tau, 1 / np.log10(ess))
    if np.isnan(rho).any():
        return float("nan")
    return float(ess / tau)


def save_idata(idata, path, config: dict[str, Any]) -> None:
    """``idata`` to ``path`` (h5netcdf) with ``config`` as JSON in the posterior's attrs.

    The tuning draws (``warmup_*`` groups, which nutpie keeps) are not saved: they are no
    part of the posterior and nothing reads them, and without them a cached enrollment fit
    loads in about half the time (:func:`load_idata`)."""
    import arviz as az

    idata = inference_data(idata)
    groups = {g: getattr(idata, g) for g in idata.groups() if not g.startswith("warmup_")}
    if len(groups) < len(idata.groups()):
        idata = az.InferenceData(attrs=getattr(idata, "attrs", None), **groups)
    idata.posterior.attrs["pmcap_config"] = json.dumps(config, sort_keys=True, default=str)
    idata.to_netcdf(str(path), engine="h5netcdf")


def load_idata(path) -> tuple[Draws, dict[str, Any]]:
    """Every group of an InferenceData file read into memory with xarray (no ArviZ) and the
    file closed (it can then be overwritten); the pmcap config from its attributes."""
    import h5netcdf
    import xarray as xr

    with h5netcdf.File(str(path), mode="r") as handle:
        names = list(handle.groups)
    groups = {}
    for name in names:
        with xr.open_dataset(str(path), group=f"/{name}", engine="h5netcdf") as dataset:
            groups[name] = dataset.load()
    with xr.open_dataset(str(path), engine="h5netcdf", group="/") as root:
        attrs = dict(root.load().attrs)
    draws = Draws(groups, attrs)
    return draws, json.loads(draws.posterior.attrs["pmcap_config"])
