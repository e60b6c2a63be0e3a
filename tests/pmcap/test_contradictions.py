"""Scenarios and input tables that contradict themselves or each other are refused.

A launched product with a phase or a registrational trial, a pipeline program whose trial
plan plans a phase it has run, an enrollment target below the patients already enrolled, a
sites table whose site closes before it opens or before a patient enrolls there, a cap that
is not a whole number >= 0 or below the patients a site has enrolled, a number that is not
finite: each is one message naming the file, row or key (exit 2) before any fit. The edge
each rule allows (a cap or target equal to the patients enrolled) is accepted.
``tests/test_bad_inputs.py`` runs every case through ``pmcap run`` too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pmcap.cli import app
from pmcap.scenario import example_scenario_path, load_scenario

EXAMPLE = example_scenario_path()
runner = CliRunner()

# (old, new, words) edits of the example's scenario.toml
CONTRADICTIONS = [
    (
        "launch = 2025-07-15",
        'launch = 2025-07-15\nphase = "phase3"\nphase_start = 2024-01-01',
        ["program[2] (CART-C)", "phase and phase_start contradict stage = 'launched'"],
    ),
    (
        "launch = 2025-07-15",
        "launch = 2025-07-15\nregistrational = true",
        ["program[2] (CART-C)", "registrational = true contradicts stage = 'launched'"],
    ),
    (
        'phase = "phase1"',
        'phase = "phase2"',
        ["program[1] (CART-B)", "trial_plan.phase1", "at phase2", "run phase1 already"],
    ),
    # the example's EDC export holds 44 enrolled patients (the count by hand: `grep -c
    # ",enrolled," cart-a-patients.csv`)
    (
        "target = 120",
        "target = 30",
        ["CART-A", "enrollment.target 30", "below the 44 patients", "cart-a-patients.csv"],
    ),
    ("operator_fte = 160", "operator_fte = inf", ["facility.operator_fte", "finite", "inf"]),
    ("module_cost_per_year = 12e6", "module_cost_per_year = inf", ["module_cost_per_year"]),
]

# (file, old, new, words) edits of the example's input tables; the sites table's rows are
# 2 (US-01) to 21, US-01 enrolls its second patient on row 5 of the export (2026-03-08),
# US-06 has enrolled 5 patients
CONTRADICTORY_ROWS = [
    (
        "cart-a-sites.csv",
        "US-02,US,2026-01-04,2025-10-29,,",
        "US-02,US,2026-01-04,2025-10-29,2025-12-01,",
        ["cart-a-sites.csv", "row 3", "closed_on 2025-12-01 is before activated_on 2026-01-04"],
    ),
    (
        "cart-a-sites.csv",
        "ES-17,ES,,2027-02-01,,",
        "ES-17,ES,,2027-02-01,2027-01-01,",
        ["cart-a-sites.csv", "row 18", "closed_on 2027-01-01 is before planned_activation"],
    ),
    (
        "cart-a-sites.csv",
        "US-01,US,2025-09-02,2025-06-12,,",
        "US-01,US,2025-09-02,2025-06-12,2026-03-06,",
        ["cart-a-patients.csv", "row 5", "2026-03-08", "'US-01'", "closed_on 2026-03-06"],
    ),
    (
        "cart-a-sites.csv",
        "US-03,US,2026-01-29,2025-12-07,,",
        "US-03,US,2026-01-29,2025-12-07,,ten",
        ["cart-a-sites.csv", "row 4", "cap", "'ten'"],
    ),
    (
        "cart-a-sites.csv",
        "US-04,US,2026-02-18,2025-12-04,,",
        "US-04,US,2026-02-18,2025-12-04,,-1",
        ["cart-a-sites.csv", "row 5", "cap", "'-1'"],
    ),
    (
        "cart-a-sites.csv",
        "US-05,US,2026-02-19,2025-12-24,,",
        "US-05,US,2026-02-19,2025-12-24,,2.5",
        ["cart-a-sites.csv", "row 6", "cap", "'2.5'"],
    ),
    (
        "cart-a-sites.csv",
        "US-06,US,2026-02-28,2025-12-07,,",
        "US-06,US,2026-02-28,2025-12-07,,3",
        ["cart-a-sites.csv", "row 7", "cap 3 of site 'US-06'", "below the 5 patients"],
    ),
]


def copied(tmp_path: Path) -> Path:
    folder = tmp_path / "sc"
    shutil.copytree(EXAMPLE.parent, folder)
    return folder / "scenario.toml"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (old, path.name)
    path.write_text(text.replace(old, new, 1))


def refused(path: Path, words: list[str]) -> None:
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    for word in words:
        assert word in result.output, (word, result.output)


@pytest.mark.parametrize("old, new, words", CONTRADICTIONS, ids=[c[1] for c in CONTRADICTIONS])
def test_contradictory_scenarios_are_refused(tmp_path, old, new, words):
    path = copied(tmp_path)
    edit(path, old, new)
    refused(path, words)


@pytest.mark.parametrize(
    "name, old, new, words", CONTRADICTORY_ROWS, ids=[c[2] for c in CONTRADICTORY_ROWS]
)
def test_contradictory_tables_are_refused(tmp_path, name, old, new, words):
    path = copied(tmp_path)
    edit(path.parent / name, old, new)
    refused(path, words)


def test_the_edges_the_rules_allow_are_accepted(tmp_path):
    # a target equal to the 44 patients enrolled (enrollment complete), a cap equal to the
    # 5 patients US-06 enrolled, US-01 closing the day after its last patient (2026-08-02)
    path = copied(tmp_path)
    edit(path, "target = 120", "target = 44")
    edit(
        path.parent / "cart-a-sites.csv",
        "US-06,US,2026-02-28,2025-12-07,,",
        "US-06,US,2026-02-28,2025-12-07,,5",
    )
    last = (
        pd.read_csv(path.parent / "cart-a-patients.csv")
        .query("site == 'US-01' and outcome == 'enrolled'")["enrolled_on"]
        .max()
    )
    day_after = (pd.Timestamp(last) + pd.Timedelta(days=1)).date()
    edit(
        path.parent / "cart-a-sites.csv",
        "US-01,US,2025-09-02,2025-06-12,,",
        f"US-01,US,2025-09-02,2025-06-12,{day_after},",
    )
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "period, start, end",
    [
        ("H1-2026", "2026-01-01", "2026-07-01"),
        ("H2-2025", "2025-07-01", "2026-01-01"),
        ("H2-2026", "2026-07-01", "2027-01-01"),
    ],
)
def test_half_year_periods_both_halves(period, start, end):
    from forecast.uptake.data import period_bounds

    assert period_bounds(period) == (pd.Timestamp(start), pd.Timestamp(end))


def test_own_sales_by_half_year_are_read(tmp_path):
    from pmcap.inputs import own_observations

    path = copied(tmp_path)
    # the example's quarters, as two half years (2025Q3 + 2025Q4 = 11 + 26; 2026Q1 + 2026Q2)
    (path.parent / "cart-c-patients.csv").write_text("period,patients\nH2-2025,37\nH1-2026,104\n")
    sc = load_scenario(path)
    obs = own_observations(sc, next(p for p in sc.program if p.name == "CART-C"))
    assert list(obs["patients"]) == [37.0, 104.0]
    assert [s[0] for s in obs["starts"]] == [pd.Timestamp("2025-07-01"), pd.Timestamp("2026-01-01")]
    assert [e[0] for e in obs["ends"]] == [pd.Timestamp("2026-01-01"), pd.Timestamp("2026-07-01")]
    assert runner.invoke(app, ["validate", str(path)]).exit_code == 0
