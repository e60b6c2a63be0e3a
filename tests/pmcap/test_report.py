"""The report's one-line answer (pmcap.report.headline) on hand-made decision tables."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pandas as pd

from pmcap.report import headline, money
from pmcap.scenario import CostsConfig

MONTHS = pd.date_range("2027-01-01", periods=6, freq="MS")


def _plan(commits, onlines, short, helpable):
    commitments = pd.DataFrame(
        {"commit_month": pd.to_datetime(commits), "online_month": pd.to_datetime(onlines)}
    )
    by_month = pd.DataFrame({"month": MONTHS, "shortfall_probability": short, "helpable": helpable})
    return SimpleNamespace(commitments=commitments, by_month=by_month)


def _result(plans, shortfall):
    scenario = SimpleNamespace(
        facility=SimpleNamespace(shortfall_target=0.1, module_suites=4, module_cost_per_year=8e6),
        costs=CostsConfig(currency="EUR", module_capital=40e6),
        run=SimpleNamespace(as_of=dt.date(2026, 12, 15), draws=100),
    )
    return SimpleNamespace(scenario=scenario, plans=plans, shortfall=shortfall)


def _shortfall(**per_metric):
    return pd.DataFrame(
        [
            {"month": m, "metric": metric, "probability": p}
            for metric, probs in per_metric.items()
            for m, p in zip(MONTHS, probs, strict=True)
        ]
    )


def test_headline_by_hand_with_nothing_to_commit_now():
    # suites and QC go over 10% first in 2027-03 (operators later); the first module is due
    # 2027-02, after the data cut's month (2026-12); two operators are due now, a QC analyst
    # 2027-01; before a module can be online the suites' chance of running short reaches 30%
    helpable = [False] * 4 + [True] * 2
    plans = {
        "suites": _plan(["2027-02-01"], ["2027-06-01"], [0, 0.05, 0.2, 0.3, 0.1, 0.05], helpable),
        "operator_fte": _plan(
            ["2026-12-01", "2026-12-01"], ["2027-06-01"] * 2, [0] * 6, [True] * 6
        ),
        "qc_fte": _plan(["2027-01-01"], ["2027-07-01"], [0] * 6, [True] * 6),
        "qa_fte": _plan([], [], [0] * 6, [True] * 6),
    }
    shortfall = _shortfall(
        suites=[0, 0.05, 0.2, 0.3, 0.3, 0.3],
        operator_fte=[0, 0, 0, 0, 0.5, 0.5],
        qc_fte=[0, 0, 0.11, 0, 0, 0],
        qa_fte=[0.1] * 6,  # at the target, not over it
        any=[0.5] * 6,  # "any" is not a resource: never named as running short
    )
    got = headline(_result(plans, shortfall))
    assert got["answer"] == (
        "Suites and QC analysts run short from 2027-03. No module to commit now (next: "
        "2027-02). Open the first requisition 2026-12 (now). Each resource is planned for a "
        "90% chance of enough each month."
    )
    assert got["lines"][0] == (
        "Runs short first",
        "suites and QC analysts from 2027-03: the chance that need exceeds what is installed "
        "is over 10%.",
    )
    assert got["lines"][1] == (
        "Commit now",
        "nothing; the first module is due 2027-02 (online 2027-06), capital EUR 40 million.",
    )
    assert got["lines"][2] == (
        "First requisition",
        "2026-12 (now): 2 operators, EUR 190,000 a year in loaded salaries.",
    )
    assert got["lines"][3][0] == "How sure"
    assert got["lines"][3][1].endswith("it is up to 30% (suites, 2027-04).")
    numbers = got["numbers"]
    assert numbers["first_short_month"] == "2027-03"
    assert numbers["first_short"] == ["suites", "qc_fte"]
    assert numbers["modules_now"] == 0 and numbers["next_commit"] == "2027-02"
    assert numbers["requisition_fte"] == {"operator_fte": 2}
    assert numbers["staff_cost"] == 2 * 95_000
    assert numbers["worst_before_online"] == 0.3


def test_headline_when_nothing_is_short_or_planned():
    flat = [False] * 6
    plans = {r: _plan([], [], [0] * 6, flat) for r in ("suites", "operator_fte", "qc_fte")}
    got = headline(_result(plans, _shortfall(suites=[0.05] * 6, any=[0.05] * 6)))
    assert got["answer"] == (
        "What is installed covers the need. No new module is needed. No hire is needed. "
        "Each resource is planned for a 90% chance of enough each month."
    )
    assert got["lines"][-1][1].endswith("(100 draws).")


def test_money_reads_as_a_person_writes_it():
    assert money(120e6, "USD") == "USD 120 million"
    assert money(1.25e6, "EUR") == "EUR 1.25 million"
    assert money(24e6, "USD") == "USD 24 million"
    assert money(460_000, "GBP") == "GBP 460,000"
    assert money(2.5e9, "USD") == "USD 2.5 billion"
    assert money(999.9e6, "USD") == "USD 1 billion"  # rounds up to the next word
    assert money(12_345e9, "USD") == "USD 12,345 billion"


def test_headline_gives_the_chance_that_any_resource_is_short_with_the_plans():
    """Each plan holds its own resource under the target; the joint chance (capacity's
    joint_shortfall) is reported at its worst month among those every plan can reach,
    not in months before (here the 60% of 2027-02 is before any plan can act)."""
    plans = {
        "suites": _plan([], [], [0.05] * 6, [False, False, True, True, True, True]),
        "operator_fte": _plan([], [], [0.08] * 6, [True] * 6),
    }
    result = _result(plans, _shortfall(suites=[0.05] * 6, any=[0.05] * 6))
    result.joint_shortfall = pd.DataFrame(
        {
            "month": MONTHS,
            "probability": [0.3, 0.6, 0.12, 0.17, 0.11, 0.09],
            "helpable": [False, False, True, True, True, True],
        }
    )
    got = headline(result)
    assert got["numbers"]["any_short_worst"] == 0.17
    assert got["numbers"]["any_short_month"] == "2027-04"
    assert got["lines"][3][1].endswith(
        "All resources at once: the chance that any of them runs short is up to 17% in a month "
        "every plan can reach (2027-04)."
    )
    del result.joint_shortfall  # a result without it: the sentence is left out
    assert "All resources at once" not in headline(result)["lines"][3][1]
