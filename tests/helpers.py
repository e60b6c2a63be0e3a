"""Builders shared by the test modules: small demand arrays and a fully fixed process.

``make_demand`` builds the demand contract (``draw, month[, program[, stream]]``) from a plain
array; ``fixed_process`` is a process with every parameter fixed, so requirements can be
computed by hand.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from capacity import ProcessSpec


def make_demand(values, start: str = "2027-01-01", programs=None, streams=None) -> xr.DataArray:
    """Demand DataArray from an array shaped (draw, month[, program[, stream]])."""
    values = np.asarray(values)
    dims = ["draw", "month", "program", "stream"][: values.ndim]
    coords = {
        "draw": np.arange(values.shape[0]),
        "month": pd.date_range(start, periods=values.shape[1], freq="MS"),
    }
    if values.ndim > 2:
        coords["program"] = programs or [f"P{i}" for i in range(values.shape[2])]
    if values.ndim > 3:
        coords["stream"] = streams or ["clinical", "commercial", "ppq"][: values.shape[3]]
    return xr.DataArray(values, dims=dims, coords=coords, name="patients")


def fixed_process(**overrides) -> ProcessSpec:
    """A process with every parameter fixed, so results can be computed by hand."""
    raw = {
        "name": "fixed",
        "culture_days": 9,
        "changeover_days": 1,
        "lots_per_suite": 1,
        "failure_rate": 0.0,
        "max_remanufacture": 1,
        "operating_days_per_year": 365,
        "operator_hours_per_lot": 80,
        "qa_hours_per_lot": 8,
        "productive_hours_per_fte_year": 1650,
        "shifts_per_day": 2,
        "hours_per_shift": 8,
        "min_operators_per_suite_shift": 0,
        "qc": [
            {
                "assay": "sterility",
                "tests_per_lot": 1,
                "hands_on_hours": 1.5,
                "turnaround_days": 14,
                "instrument": "bact-alert",
                "instrument_hours": 0.5,
                "retest_rate": 0.02,
            }
        ],
    }
    raw.update(overrides)
    return ProcessSpec.from_mapping(raw)


def lots_of(values, programs=None) -> xr.DataArray:
    """Lots DataArray from an array shaped (draw, month[, program]), months from 2027-01."""
    values = np.asarray(values, float)
    dims = ("draw", "month", "program")[: values.ndim]
    coords = {
        "draw": np.arange(values.shape[0]),
        "month": pd.date_range("2027-01-01", periods=values.shape[1], freq="MS"),
    }
    if programs:
        coords["program"] = programs
    return xr.DataArray(values, dims=dims, coords=coords, name="lots")


def assert_occupancy_by_brute_force(w, months, delay, duration, samples: int = 20_000) -> None:
    """``w`` = ``occupancy_weights(months, delay, duration)`` against brute-force integration:
    for each draw and start month, the mean over ``samples`` evenly spaced starts of the days
    the lot ``[s + delay, s + delay + duration)`` spends in month ``m + k`` (0 past the
    horizon), to 1e-3 days."""
    import pytest

    n = len(months)
    edges = np.r_[0, np.cumsum(months.days_in_month)]
    for d in range(len(delay)):
        for m in range(n):
            starts = edges[m] + (np.arange(samples) + 0.5) * (edges[m + 1] - edges[m]) / samples
            lo, hi = starts + delay[d], starts + delay[d] + duration[d]
            for k in range(w.shape[2]):
                if m + k >= n:
                    assert w[d, m, k] == 0
                    continue
                a, b = edges[m + k], edges[m + k + 1]
                brute = np.clip(np.minimum(hi, b) - np.maximum(lo, a), 0, None).mean()
                assert w[d, m, k] == pytest.approx(brute, abs=1e-3)
