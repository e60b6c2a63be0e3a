"""Invariants that must hold for any demand (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from capacity import bands, requirements
from tests.conftest import fixed_process, make_demand

# Failure rate 0 so that results are deterministic in demand; every other parameter uncertain.
SPEC = fixed_process(
    name="uncertain",
    culture_days={"triangular": [6, 9, 14]},
    changeover_days={"uniform": [0, 2]},
    lots_per_suite=2,
    operator_hours_per_lot={"lognormal": {"median": 60, "p90": 90}},
    min_operators_per_suite_shift=1,
)
MONOTONE = [
    "lots",
    "suite_days",
    "suites",
    "qc_hours",
    "qc_fte",
    "operator_fte",
    "qa_fte",
    "fte",
    "instrument_hours",
]

counts = arrays(
    np.int64,
    st.tuples(st.integers(1, 4), st.integers(1, 8), st.just(2), st.just(3)),
    elements=st.integers(0, 40),
)


@settings(max_examples=40, deadline=None)
@given(base=counts, data=st.data())
def test_more_patients_never_need_less(base, data):
    extra = data.draw(arrays(np.int64, base.shape, elements=st.integers(0, 10)))
    low = requirements(make_demand(base), SPEC, seed=1)
    high = requirements(make_demand(base + extra), SPEC, seed=1)
    for name in MONOTONE:
        assert np.all(high[name].values >= low[name].values - 1e-9), name


@settings(max_examples=40, deadline=None)
@given(values=counts)
def test_per_program_requirements_sum_to_those_of_summed_demand(values):
    per_program = requirements(make_demand(values), SPEC, seed=2, by_program=True)
    summed = requirements(make_demand(values.sum(axis=2, keepdims=True)), SPEC, seed=2)
    for name in [
        "lots",
        "suite_days",
        "suites",
        "qc_hours",
        "qc_fte",
        "operator_hands_on_fte",
        "operator_crew_fte",
        "qa_fte",
        "instrument_hours",
    ]:
        np.testing.assert_allclose(
            per_program[name].sum("program"), summed[name], rtol=1e-9, atol=1e-9, err_msg=name
        )
    np.testing.assert_allclose(
        requirements(make_demand(values), SPEC, seed=2)["operator_fte"],
        summed["operator_fte"],
        rtol=1e-9,
        atol=1e-9,
    )


@settings(max_examples=30, deadline=None)
@given(values=counts, qs=st.lists(st.floats(0.01, 0.99), min_size=2, max_size=4, unique=True))
def test_bands_are_ordered(values, qs):
    qs = sorted(qs)
    frame = bands(requirements(make_demand(values), "car-t-autologous-manual", seed=3), qs)
    cols = [f"p{100 * q:g}" for q in qs]
    table = frame[cols].to_numpy()
    assert np.all(np.diff(table, axis=1) >= -1e-9)
