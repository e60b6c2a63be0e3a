"""The vector plan in a run: the report's fact (pmcap.report.vector_facts) and sweep keys."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from capacity.vector import VectorSpec, plan_vector
from pmcap.report import vector_facts


def test_vector_fact_names_the_calendar_the_risk_and_the_expiry():
    # the hand case of tests/capacity/test_vector.py::test_plan_by_hand: starts in months 0
    # and 3 of 8 (from 2000-01), reach 2, 20 doses made, 16 used, none expired
    spec = VectorSpec.from_mapping(
        {
            "doses_per_lot": 10,
            "campaign_lead_time_months": 1,
            "release_months": 1,
            "shelf_life_months": 12,
            "cost_per_campaign": 1.5e6,
        }
    )
    plan = plan_vector(np.full((5, 8), 2.0), spec)
    result = SimpleNamespace(
        scenario=SimpleNamespace(costs=SimpleNamespace(currency="EUR")), vector={"proc": plan}
    )
    (fact,) = vector_facts(result)
    assert fact == (
        "Vector of proc (vector.csv): start 2 campaign(s), the first 2000-01, the next "
        "2000-04; P(a lot waits for vector) is at most 0% a month from 2000-03, the first "
        "month a campaign started now can reach (target 5%). Over the horizon a draw releases "
        "20 doses at P50 and loses 0 to expiry (P90 0); campaigns cost EUR 3 million."
    )
    assert vector_facts(SimpleNamespace(scenario=result.scenario, vector={})) == []


def test_a_sweep_varies_the_vector_fields():
    # process.NAME.vector.* keys of a sweep change the example's [process.NAME.vector] field
    # by field; each scenario's checked process carries the changed vector
    from pmcap.scenario import example_scenario_path, load_scenario
    from pmcap.sweep.cases import make_cases

    base = load_scenario(example_scenario_path())
    key = "process.car-t-autologous-manual.vector"
    cases, changed = make_cases(
        base,
        [("base", [])],
        grid=[
            ((*key.split("."), "shelf_life_months"), [12, 36]),
            ((*key.split("."), "doses_per_lot"), [{"uniform": [100, 200]}]),
        ],
        where="sweep.toml",
    )
    assert changed == [f"{key}.shelf_life_months", f"{key}.doses_per_lot"]
    vectors = [c.parsed["processes"]["CART-C"].vector for c in cases]
    assert [v.shelf_life_months for v in vectors] == [12, 36]
    assert {v.doses_per_lot.to_toml()["uniform"][1] for v in vectors} == {200}
    assert {v.initial_doses for v in vectors} == {600}  # the other fields as in the base


def test_finance_counts_each_campaign_cost_in_its_start_month():
    # the hand plan above starts campaigns in months 0 and 3 (2000-01, 2000-04) at 1.5e6 each;
    # two processes with that calendar cost twice as much; a month outside it costs nothing
    import pandas as pd

    from pmcap.export import _vector_cost_by_month

    spec = VectorSpec.from_mapping(
        {
            "doses_per_lot": 10,
            "campaign_lead_time_months": 1,
            "release_months": 1,
            "shelf_life_months": 12,
            "cost_per_campaign": 1.5e6,
        }
    )
    plan = plan_vector(np.full((5, 8), 2.0), spec)
    months = pd.date_range("1999-12-01", periods=10, freq="MS")
    per = _vector_cost_by_month({"a": plan, "b": plan}, months)
    expected = np.zeros(10)
    expected[[1, 4]] = 3e6
    np.testing.assert_array_equal(per, expected)
