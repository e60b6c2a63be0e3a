"""Time capacity.requirements against bare NumPy doing the same arithmetic, in one process.

4,000 draws x 120 months x 10 programs x 3 streams, the bundled manual CAR-T template for every
program. The baseline is the same computation written as plain NumPy with no xarray, no
validation and no per-program bookkeeping (one process, sampled once). It prints both times
and their ratio; run ``python benchmarks/bench_capacity.py [--draws N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import xarray as xr

from capacity import load_process, requirements
from capacity.process import stream_rng
from capacity.requirements import _occupancy_weights, _spread


def make_demand(draws: int, months: int, programs: int, seed: int = 0) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    rate = rng.gamma(4.0, 5.0, size=(draws, 1, programs, 3))
    values = rng.poisson(rate * np.ones((1, months, 1, 1)))
    return xr.DataArray(
        values,
        dims=("draw", "month", "program", "stream"),
        coords={
            "draw": np.arange(draws),
            "month": pd.date_range("2027-01-01", periods=months, freq="MS"),
            "program": [f"P{i:02d}" for i in range(programs)],
            "stream": ["clinical", "commercial", "ppq"],
        },
        name="patients",
    )


def bare_numpy(values: np.ndarray, months: pd.DatetimeIndex, programs, spec, seed: int) -> dict:
    """The same arithmetic as requirements() (facility totals), written directly.

    Like requirements(), it draws failures per program and spreads the summed lots of the one
    process once: resources are linear in lots for a given process.
    """
    draws = values.shape[0]
    par = spec.sample(draws, seed)
    p = {k: v.values for k, v in par.data_vars.items()}
    share = months.days_in_month.to_numpy() / np.where(months.is_leap_year, 366.0, 365.0)
    zero = np.zeros(draws)
    turnaround = p["qc_turnaround_days"].max(axis=1)
    fail = p["failure_rate"][:, None]
    lots = np.zeros(values.shape[:2])
    for i in range(values.shape[2]):
        patients = values[:, :, i, :2].sum(axis=-1)
        rng = stream_rng(seed, "failures", programs[i])
        attempt, rerun = patients, np.zeros_like(patients)
        for _ in range(spec.max_remanufacture):
            attempt = rng.binomial(attempt, fail)
            rerun += attempt
        rng.binomial(attempt, fail)
        lots += patients + values[:, :, i, 2] + rerun

    def spread(delay, duration):
        return _spread(lots, _occupancy_weights(months, delay, duration))

    suite_days = spread(zero, p["culture_days"] + p["changeover_days"]) / spec.lots_per_suite
    hands_on = (
        spread(zero, p["culture_days"])
        / p["culture_days"][:, None]
        * p["operator_hours_per_lot"][:, None]
    )
    crew = suite_days * (
        spec.shifts_per_day * spec.min_operators_per_suite_shift * p["hours_per_shift"][:, None]
    )
    qc_factor = p["qc_tests_per_lot"] * p["qc_hands_on_hours"] * (1 + p["qc_retest_rate"])
    qc = spread(p["culture_days"], zero)[:, :, None] * qc_factor[:, None, :]
    qa = spread(p["culture_days"] + turnaround, zero) * p["qa_hours_per_lot"][:, None]
    productive = p["productive_hours_per_fte_year"][:, None] * share
    return {
        "suites": suite_days / (p["operating_days_per_year"][:, None] * share),
        "operator_fte": np.maximum(hands_on, crew) / productive,
        "qc_fte": qc.sum(axis=-1) / productive,
        "qa_fte": qa / productive,
    }


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--draws", type=int, default=4000)
    parser.add_argument("--months", type=int, default=120)
    parser.add_argument("--programs", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    demand = make_demand(args.draws, args.months, args.programs)
    spec = load_process("car-t-autologous-manual")
    months = pd.DatetimeIndex(demand["month"].values)
    values = demand.values
    programs = list(demand["program"].values)

    req = requirements(demand, spec, seed=1)  # warm-up, and a check that both agree
    ref = bare_numpy(values, months, programs, spec, seed=1)
    np.testing.assert_allclose(req["suites"].values, ref["suites"], rtol=1e-10)
    for name in ("qc_fte", "qa_fte", "operator_fte"):
        np.testing.assert_allclose(req[name].values, ref[name], rtol=1e-10)

    t_pmcap = best_of(lambda: requirements(demand, spec, seed=1), args.repeat)
    t_numpy = best_of(lambda: bare_numpy(values, months, programs, spec, seed=1), args.repeat)
    cells = args.draws * args.months * args.programs * 3
    print(
        f"demand: {args.draws} draws x {args.months} months x {args.programs} programs x 3 "
        f"streams = {cells:,} cells"
    )
    print(f"requirements(): {t_pmcap:.3f} s (best of {args.repeat})")
    print(f"bare NumPy:     {t_numpy:.3f} s")
    print(f"ratio pmcap / bare NumPy: {t_pmcap / t_numpy:.2f}")


if __name__ == "__main__":
    main()
