"""The benchmark's bare-NumPy baseline must compute what requirements() computes.

The baseline shares no code with ``capacity`` (its own parameter sampling, failures and month
spreading), so it is a second implementation: exact on a fixed process, and equal in
distribution (means within Monte Carlo error) on the uncertain template.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from capacity import load_process, requirements
from tests.helpers import fixed_process

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_capacity.py"


@pytest.fixture(scope="module")
def bench():
    spec_ = importlib.util.spec_from_file_location("bench_capacity", BENCH)
    module = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(module)
    return module


def test_bench_capacity_baseline_shares_no_code_with_capacity():
    source = BENCH.read_text()
    header, _, body = source.partition("def main(")
    assert "capacity" not in [
        line.split()[1].split(".")[0]
        for line in header.splitlines()
        if line.startswith(("import ", "from "))
    ]
    assert "from capacity import load_process, requirements" in body  # only to time it


def test_bench_capacity_baseline_is_exact_on_a_fixed_process(bench):
    # every parameter fixed and no failures: both are deterministic, so they must agree to
    # rounding; 30 months from 2027 cross a leap February; the long assay is not the first
    spec = fixed_process(
        changeover_days=1.5,
        lots_per_suite=2,
        operating_days_per_year=330,
        operator_hours_per_lot=80,
        qa_hours_per_lot=8,
        min_operators_per_suite_shift=1,
        qc=[
            {"assay": "endotoxin", "hands_on_hours": 1, "turnaround_days": 1},
            {"assay": "sterility", "hands_on_hours": 1.5, "turnaround_days": 14},
        ],
    )
    demand = bench.make_demand(draws=6, months=30, programs=3)
    req = requirements(demand, spec, seed=0)
    ref = bench.bare_numpy(
        demand.values, pd.DatetimeIndex(demand["month"].values), spec.to_dict(), seed=0
    )
    for name in bench.METRICS:
        np.testing.assert_allclose(req[name].values, ref[name], rtol=1e-9, err_msg=name)


def test_bench_capacity_baseline_agrees_in_distribution(bench):
    demand = bench.make_demand(draws=4000, months=12, programs=2)
    process = load_process("car-t-autologous-manual")
    req = requirements(demand, process, seed=4)
    ref = bench.bare_numpy(
        demand.values,
        pd.DatetimeIndex(demand["month"].values),
        bench.read_template("car-t-autologous-manual"),
        seed=4,
    )
    z = bench.agreement(req, ref)
    assert max(z.values()) < 5, z
    # and the check has the power to see a 3% slip in any metric
    for name in bench.METRICS:
        slipped = {**ref, name: ref[name] * 1.03}
        assert bench.agreement(req, slipped)[name] > 5, name
