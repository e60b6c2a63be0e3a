"""The benchmark's bare-NumPy baseline must compute what requirements() computes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from capacity import load_process, requirements

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_capacity.py"


def test_bench_capacity_baseline_matches_requirements():
    spec_ = importlib.util.spec_from_file_location("bench_capacity", BENCH)
    bench = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(bench)
    demand = bench.make_demand(draws=50, months=18, programs=3)
    process = load_process("car-t-autologous-manual")
    req = requirements(demand, process, seed=4)
    ref = bench.bare_numpy(
        demand.values,
        pd.DatetimeIndex(demand["month"].values),
        list(demand["program"].values),
        process,
        seed=4,
    )
    for name in ("suites", "operator_fte", "qc_fte", "qa_fte"):
        np.testing.assert_allclose(req[name].values, ref[name], rtol=1e-10, err_msg=name)
