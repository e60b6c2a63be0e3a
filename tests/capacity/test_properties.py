"""Invariants that must hold for any demand (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from capacity import requirements
from tests.capacity.test_values import assert_bands_match
from tests.helpers import fixed_process, make_demand

# Failure rate 0 so that results are deterministic in demand; every other parameter uncertain.
SPEC = fixed_process(
    name="uncertain",
    culture_days={"triangular": [6, 9, 14]},
    changeover_days={"uniform": [0, 2]},
    lots_per_suite=2,
    operator_hours_per_lot={"lognormal": {"median": 60, "p90": 90}},
    min_operators_per_suite_shift=1,
)
# Linear in demand for given process parameters (operator_fte is the larger of two of them).
LINEAR = [
    "lots",
    "suite_days",
    "suites",
    "qc_hours",
    "qc_fte",
    "operator_hands_on_fte",
    "operator_crew_fte",
    "qa_fte",
    "instrument_hours",
]

counts = arrays(
    np.int64,
    st.tuples(st.integers(1, 4), st.integers(1, 8), st.just(2), st.just(3)),
    elements=st.integers(0, 40),
)


@settings(max_examples=40, deadline=None)
@given(base=counts, data=st.data())
def test_requirements_add_up_over_demand(base, data):
    # With the same parameter draws (same seed) and no failures, what base + extra patients
    # need is what base needs plus what extra needs: a value identity, where "more patients
    # never need less" would hold for any non-negative spreading.
    extra = data.draw(arrays(np.int64, base.shape, elements=st.integers(0, 10)))
    low = requirements(make_demand(base), SPEC, seed=1)
    more = requirements(make_demand(extra), SPEC, seed=1)
    high = requirements(make_demand(base + extra), SPEC, seed=1)
    for name in LINEAR:
        np.testing.assert_allclose(
            high[name], low[name] + more[name], rtol=1e-9, atol=1e-9, err_msg=name
        )
    np.testing.assert_array_equal(
        high["operator_fte"], np.maximum(high["operator_hands_on_fte"], high["operator_crew_fte"])
    )
    np.testing.assert_array_equal(high["lots"].values, (base + extra).sum(axis=(2, 3)))


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
# quantiles distinct as bands labels them (p1 and p1.0000000000000002 are one column)
@given(
    values=counts,
    qs=st.lists(st.floats(0.01, 0.99), min_size=1, max_size=4, unique_by=lambda q: f"{100 * q:g}"),
)
def test_bands_are_the_mean_and_quantiles_of_the_draws(values, qs):
    # (ordering of the percentiles is np.quantile's business; the values are bands')
    req = requirements(make_demand(values), "car-t-autologous-manual", seed=3, by_program=True)
    assert_bands_match(req, qs)
