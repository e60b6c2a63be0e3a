"""Summaries of draws: percentile bands, shortfall probabilities, metric names.

Every function takes requirements (:func:`capacity.requirements`) or demand draws and
returns a tidy ``pandas.DataFrame``. A *metric* is one series with dims ``draw``, ``month``
(and ``program``): a variable, or one label of its resource dim, named ``suites`` or
``qc_hours[sterility]`` (:func:`metric_series`). Statistics are over the draws: the mean
is their sum in draw order divided by their number, quantiles NumPy's linear interpolation
between order statistics, a probability a count of draws over the number of draws, so a
lazy (dask-backed) result gives exactly the numbers of the same draws in memory
(:mod:`capacity.chunked` spills it to disk to bring all draws of a month together).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from capacity.chunked import spilled
from capacity.errors import InputError
from capacity.resource_needs import facility

__all__ = ["bands", "metric_names", "metric_series", "shortfall_probability", "summarise"]


def metric_names(result: xr.Dataset | xr.DataArray) -> list[str]:
    """Names ``bands`` gives each series, e.g. ``suites`` or ``qc_hours[sterility]``."""
    return [name for name, _ in metric_series(_as_dataset(result))]


def _as_dataset(result: xr.Dataset | xr.DataArray) -> xr.Dataset:
    if isinstance(result, xr.DataArray):
        return result.to_dataset(name=result.name or "value")
    return result


def metric_series(ds: xr.Dataset):
    """Yield ``(metric, DataArray with dims draw, month[, program])`` for every series."""
    for name, var in ds.data_vars.items():
        if "draw" not in var.dims or "month" not in var.dims:
            continue
        extra = [d for d in var.dims if d not in ("draw", "month", "program")]
        if not extra:
            yield str(name), var
            continue
        stacked = var.stack(_metric=extra) if len(extra) > 1 else var.rename({extra[0]: "_metric"})
        for i in range(stacked.sizes["_metric"]):
            label = stacked["_metric"].values[i]
            label = ",".join(map(str, label)) if isinstance(label, tuple) else str(label)
            yield f"{name}[{label}]", stacked.isel(_metric=i, drop=True).assign_attrs(var.attrs)


def _quantile_label(q: float) -> str:
    return f"p{100 * q:g}"


def _check_quantiles(quantiles: Sequence[float]) -> list[float]:
    qs = [float(q) for q in quantiles]
    if not qs or any(not 0 <= q <= 1 for q in qs):
        raise InputError(f"quantiles must be numbers in [0, 1], got {list(quantiles)}")
    if len({_quantile_label(q) for q in qs}) != len(qs):
        raise InputError(f"quantiles must be distinct, got {list(quantiles)}")
    return qs


def _is_lazy(result: xr.Dataset | xr.DataArray) -> bool:
    """Whether any variable is a dask array (nothing computed yet)."""
    return any(v.chunks is not None for v in _as_dataset(result).data_vars.values())


def _band_series(result: xr.Dataset | xr.DataArray) -> list[tuple[str, xr.DataArray]]:
    """Every series of ``result`` with dims (draw, month, program)."""
    out = []
    for metric, var in metric_series(_as_dataset(result)):
        if "program" not in var.dims:
            var = var.expand_dims(program=["all"], axis=2)
        out.append((metric, var.transpose("draw", "month", "program")))
    if not out:
        raise InputError("bands: nothing to summarise (no variable with dims draw and month)")
    return out


def _stats(values: np.ndarray, qs: Sequence[float], axis: int) -> dict[str, np.ndarray]:
    """Mean and quantiles over the draws (``axis``), the same whatever the array's layout.

    The mean is the sum in draw order (a cumulative sum: no pairwise or blocked summation that
    would depend on the layout) over the number of draws; quantiles are NumPy's exact linear
    interpolation between order statistics.
    """
    n = values.shape[axis]
    stats = {"mean": np.take(np.cumsum(values, axis=axis), -1, axis=axis) / n}
    for q, v in zip(qs, np.quantile(values, qs, axis=axis), strict=True):
        stats[_quantile_label(q)] = v
    return stats


def _band_frame(metric: str, var: xr.DataArray, stats: Mapping[str, np.ndarray]) -> pd.DataFrame:
    n_m, n_p = var.sizes["month"], var.sizes["program"]
    return pd.DataFrame(
        {
            "month": np.repeat(pd.DatetimeIndex(var["month"].values), n_p),
            "program": np.tile(np.asarray(var["program"].values, str), n_m),
            "metric": metric,
            "unit": var.attrs.get("units", ""),
            **{k: v.reshape(-1) for k, v in stats.items()},
        }
    )


def _lazy_summaries(
    series: list[tuple[str, xr.DataArray]],
    qs: Sequence[float],
    counts: Sequence[Any],
    spill_dir: str | Path | None,
) -> tuple[list[pd.DataFrame], list[np.ndarray]]:
    """Bands of lazy series and any other dask arrays (``counts``) in one pass over the chunks.

    Every series is spilled, chunk by chunk, to a scratch file laid out month by month
    (:func:`capacity.chunked.spilled`); the files are then read a slab of months (all draws)
    at a time for the exact statistics.
    """
    with spilled([var for _, var in series], counts, spill_dir) as (spills, computed):
        frames = []
        for (metric, var), spill in zip(series, spills, strict=True):
            parts = [_stats(spill.read(m0, m1), qs, axis=-1) for m0, m1 in spill.slabs()]
            stats = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
            frames.append(_band_frame(metric, var, stats))
    return frames, computed


def bands(
    result: xr.Dataset | xr.DataArray,
    quantiles: Sequence[float] = (0.1, 0.5, 0.9),
    *,
    spill_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Tidy percentile bands: ``month, program, metric, unit, mean, p10, p50, p90``.

    Works on requirements and on demand draws alike. Variables with a resource dim (assay,
    role, instrument, stream) give one metric per label, ``qc_hours[sterility]``; without a
    ``program`` dim the program is ``"all"``. The mean is the sum over draws in draw order
    divided by their number; quantiles are exact (NumPy's linear interpolation).

    A lazy (dask-backed) result, e.g. :func:`capacity.requirements` of demand chunked along
    draw, gives exactly the numbers of the same draws in memory. It is computed once, chunk by
    chunk, and each series is written to a scratch file laid out month by month (in
    ``spill_dir``, default the system's temporary folder; removed afterwards), then read back a
    slab of months with all draws at a time. Memory: the chunks being computed (one per dask
    worker thread) plus a few copies of a slab of about ``capacity.chunked.SLAB_BYTES``
    (64 MiB); disk: the result's size, 8 bytes per draw, month and program of every series.
    Workers must share
    ``spill_dir`` (threads, or processes on one machine). To get bands and shortfall
    probabilities from one pass over a lazy result, use :func:`summarise`.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> da = xr.DataArray(np.arange(10.0)[:, None], dims=("draw", "month"),
    ...                   coords={"month": pd.date_range("2027-01-01", periods=1, freq="MS")},
    ...                   name="suites")
    >>> bands(da)[["metric", "p10", "p50", "p90"]].to_dict("records")
    [{'metric': 'suites', 'p10': 0.9, 'p50': 4.5, 'p90': 8.1}]
    """
    qs = _check_quantiles(quantiles)
    series = _band_series(result)
    if _is_lazy(result):
        frames, _ = _lazy_summaries(series, qs, [], spill_dir)
    else:
        frames = [
            _band_frame(metric, var, _stats(np.asarray(var.values, float), qs, axis=0))
            for metric, var in series
        ]
    return pd.concat(frames, ignore_index=True)


@dataclass
class _Shortfall:
    months: pd.DatetimeIndex
    metrics: list[str]
    caps: list[np.ndarray]
    counts: list[Any]  # draws short per month, per metric then "any" (NumPy or dask)
    n_draws: int

    def frame(self, counts: Sequence[np.ndarray]) -> pd.DataFrame:
        frames = [
            pd.DataFrame(
                {
                    "month": self.months,
                    "metric": metric,
                    "installed": cap,
                    "probability": np.asarray(count) / self.n_draws,
                }
            )
            for metric, cap, count in zip(
                [*self.metrics, "any"], [*self.caps, np.nan], counts, strict=True
            )
        ]
        return pd.concat(frames, ignore_index=True)


def _shortfall(
    req: xr.Dataset, installed: Mapping[str, float | Sequence[float] | pd.Series]
) -> _Shortfall:
    """Checks, then the counts of draws short per month (lazy for a lazy ``req``)."""
    if not installed:
        raise InputError("installed: give at least one resource, e.g. {'suites': 6}")
    req = facility(req)
    series = dict(metric_series(req))
    months = pd.DatetimeIndex(req["month"].values)
    caps, shorts = [], []
    for metric, capacity in installed.items():
        if metric not in series:
            raise InputError(
                f"installed: unknown metric {metric!r}; expected one of: {', '.join(series)}"
            )
        cap = _capacity_by_month(capacity, months, metric)
        need = series[metric].transpose("draw", "month").astype(float).data  # dask stays lazy
        shorts.append(need > cap[None, :] * (1 + 1e-12) + 1e-12)
        caps.append(cap)
    any_short = functools.reduce(np.logical_or, shorts)
    counts = [short.sum(axis=0) for short in [*shorts, any_short]]
    return _Shortfall(months, list(installed), caps, counts, req.sizes["draw"])


def shortfall_probability(
    req: xr.Dataset, installed: Mapping[str, float | Sequence[float] | pd.Series]
) -> pd.DataFrame:
    """Per month, the probability that need exceeds what is installed.

    ``installed`` maps a metric (``suites``, ``qc_fte``, ``operator_fte``, ``fte[qa]``,
    ``instrument_hours[qpcr]`` ...) to a number, a sequence with one value per month, or a
    Series indexed by month (capacity that changes when a module comes online). Returns
    ``month, metric, installed, probability``, plus metric ``any``: the chance that at least
    one of the listed resources falls short that month. The probability is the count of draws
    short over the number of draws; a lazy (dask-backed) ``req`` is computed once, chunk by
    chunk, with the same result (counts are exact).

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> req = xr.Dataset({"suites": (("draw", "month"), [[1.0], [3.0], [5.0], [7.0]])},
    ...                  coords={"month": pd.date_range("2027-01-01", periods=1, freq="MS")})
    >>> shortfall_probability(req, {"suites": 4})["probability"].tolist()
    [0.5, 0.5]
    """
    short = _shortfall(req, installed)
    counts = short.counts
    if _is_lazy(req):
        import dask

        counts = dask.compute(*counts)
    return short.frame(counts)


def summarise(
    req: xr.Dataset,
    quantiles: Sequence[float] = (0.1, 0.5, 0.9),
    installed: Mapping[str, float | Sequence[float] | pd.Series] | None = None,
    *,
    spill_dir: str | Path | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """``bands(req, quantiles)`` and ``shortfall_probability(req, installed)`` together.

    The same two tables (the second is None without ``installed``); a lazy result is computed
    only once for both, where calling the two functions computes it twice.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> req = xr.Dataset({"suites": (("draw", "month"), [[1.0], [3.0], [5.0], [7.0]])},
    ...                  coords={"month": pd.date_range("2027-01-01", periods=1, freq="MS")})
    >>> table, risk = summarise(req.chunk({"draw": 2}), [0.5], {"suites": 4})
    >>> table["p50"].tolist(), risk["probability"].tolist()
    ([4.0], [0.5, 0.5])
    """
    qs = _check_quantiles(quantiles)
    series = _band_series(req)
    short = None if installed is None else _shortfall(req, installed)
    if not _is_lazy(req):
        table = bands(req, qs)
        return table, None if short is None else short.frame(short.counts)
    frames, counts = _lazy_summaries(series, qs, [] if short is None else short.counts, spill_dir)
    table = pd.concat(frames, ignore_index=True)
    return table, None if short is None else short.frame(counts)


def _capacity_by_month(capacity: Any, months: pd.DatetimeIndex, metric: str) -> np.ndarray:
    if isinstance(capacity, pd.Series):
        index = pd.DatetimeIndex(pd.to_datetime(capacity.index))
        missing = months.difference(index)
        if len(missing):
            raise InputError(f"installed[{metric!r}]: no value for month {missing[0].date()}")
        cap = capacity.set_axis(index).reindex(months).to_numpy(float)
    else:
        cap = np.asarray(capacity, float)
        if cap.ndim == 0:
            cap = np.full(len(months), float(cap))
        elif cap.shape != (len(months),):
            raise InputError(
                f"installed[{metric!r}]: expected one number or {len(months)} monthly values, "
                f"got {cap.shape[0]}"
            )
    if not np.isfinite(cap).all() or (cap < 0).any():
        raise InputError(f"installed[{metric!r}]: capacity must be finite and >= 0")
    return cap
