"""Scenario files: a number written as text is refused with the usual one-line message."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from capacity.errors import InputError
from pmcap.scenario import example_scenario_path, load_scenario

EXAMPLE = example_scenario_path()
ROOT = Path(__file__).resolve().parents[2]


def edited(tmp_path: Path, old: str, new: str) -> Path:
    folder = tmp_path / "sc"
    shutil.copytree(EXAMPLE.parent, folder)
    path = folder / "scenario.toml"
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))
    return path


# numbers written as text are refused (pydantic's lax mode would read target = "120" as 120)
TEXT = [
    (
        "target = 120",
        'target = "120"',
        "program[0] (CART-A).enrollment.target: expected a whole number, got '120'",
    ),
    (
        "horizon_months = 120",
        'horizon_months = "120"',
        "run.horizon_months: expected a whole number, got '120'",
    ),
    (
        "quantiles = [0.1, 0.5, 0.9]",
        'quantiles = ["0.1", 0.5, 0.9]',
        "run.quantiles[0]: expected a number, got '0.1'",
    ),
    ("chains = 2", 'chains = "2"', "models.chains: expected a whole number, got '2'"),
    (
        "module_cost_per_year = 12e6",
        'module_cost_per_year = "12e6"',
        "facility.module_cost_per_year: expected a number, got '12e6'",
    ),
    (
        "operator_fte = 160",
        'operator_fte = "160"',
        "facility.operator_fte: expected a number, got '160'",
    ),
    (
        "window_months = [12, 6]",
        'window_months = ["12", 6]',
        "program[0] (CART-A).ppq.window_months[0]: expected a whole number, got '12'",
    ),
    (
        "months_after_launch = 30",
        'months_after_launch = "30"',
        "program[0] (CART-A).uptake.expansions[0].months_after_launch: expected a number, got '30'",
    ),
    (
        "in_progress = 25",
        'in_progress = "25"',
        "program[2] (CART-C).in_progress: expected a number, got '25'",
    ),
    (
        "max_wait_days = 3",
        'max_wait_days = "3"',
        "facility.service_level.max_wait_days: expected a number, got '3'",
    ),
    (
        "{from = 2028-07-01, suites = 16}",
        '{from = 2028-07-01, suites = "16"}',
        "facility.suites[1].suites: expected a whole number, got '16'",
    ),
    (
        "suites = [{from = 2026-12-01, suites = 12}, {from = 2028-07-01, suites = 16}]",
        'suites = "16"',
        "facility.suites: expected a whole number or a list of tables, got '16'",
    ),
    # a boolean is no number either (lax mode read true as 1)
    ("chains = 2", "chains = true", "models.chains: expected a whole number, got True"),
    (
        "operator_fte = 160",
        "operator_fte = false",
        "facility.operator_fte: expected a number, got False",
    ),
]


@pytest.mark.parametrize("old, new, message", TEXT, ids=[t[1][:40] for t in TEXT])
def test_a_number_written_as_text_is_refused(tmp_path, old, new, message):
    path = edited(tmp_path, old, new)
    with pytest.raises(InputError) as err:
        load_scenario(path)
    assert str(err.value) == f"{path}: {message}"


def test_two_numbers_as_text_are_two_lines(tmp_path):
    path = edited(tmp_path, "qc_fte = 12\nqa_fte = 6", 'qc_fte = "12"\nqa_fte = "6"')
    with pytest.raises(InputError) as err:
        load_scenario(path)
    assert str(err.value).splitlines() == [
        "2 problems:",
        f"{path}: facility.qc_fte: expected a number, got '12'",
        f"{path}: facility.qa_fte: expected a number, got '6'",
    ]


def test_whole_numbers_are_still_read_where_a_number_is_expected(tmp_path):
    path = edited(tmp_path, "peak_share = {uniform = [0.05, 0.15]}", "peak_share = 1")
    sc = load_scenario(path)
    assert sc.program[1].uptake.peak_share == 1
    fac = sc.facility
    # written as whole numbers in the example: operator_fte = 160, max_wait_days = 3
    assert (fac.operator_fte, fac.qc_fte, fac.qa_fte) == (160.0, 12.0, 6.0)
    assert type(fac.operator_fte) is float and type(fac.service_level.max_wait_days) is float
    assert fac.service_level.max_wait_days == 3.0
    assert fac.module_cost_per_year == 12e6
    assert sc.program[0].enrollment.target == 120
    assert sc.program[2].in_progress == 25.0


def test_bundled_example_and_sweep_still_load():
    from pmcap.sweep import load_sweep

    sc = load_scenario(ROOT / "data/examples/portfolio/scenario.toml")
    assert [p.name for p in sc.program] == ["CART-A", "CART-B", "CART-C"]
    assert sc.run.quantiles == [0.1, 0.5, 0.9]
    assert [s.suites for s in sc.facility.suites] == [12, 16]
    sweep = load_sweep(ROOT / "data/examples/sweep.toml")
    assert len(sweep.cases) == 6


def test_digest_is_of_the_content_and_the_data_files_not_the_scenario_files_bytes(tmp_path):
    """An equivalent file (other comments, a sweep's own copy) has the run's digest; a changed
    value or a changed data file does not."""
    base = edited(tmp_path / "a", "peak_share = {uniform = [0.05, 0.15]}", "peak_share = 0.1")
    digest = load_scenario(base).digest()
    base.write_text("# a note for the finance team\n" + base.read_text().replace("\n\n", "\n"))
    assert load_scenario(base).digest() == digest
    other = edited(tmp_path / "b", "peak_share = {uniform = [0.05, 0.15]}", "peak_share = 0.2")
    assert load_scenario(other).digest() != digest
    data = base.parent / "cart-c-patients.csv"
    data.write_text(data.read_text() + "\n")
    assert load_scenario(base).digest() != digest


COSTS = [
    (
        'currency = "USD"',
        'currency = "usd"',
        "costs.currency: expected a three-letter currency code such as USD or EUR, got 'usd'",
    ),
    (
        'currency = "USD"',
        'currency = "US$"',
        "costs.currency: expected a three-letter currency code such as USD or EUR, got 'US$'",
    ),
    ("qc_salary = 110e3", "qc_salary = -1", "costs.qc_salary: must be >= 0, got -1"),
    ("qc_salary = 110e3", "qc_salary = inf", "costs.qc_salary: expected a finite number, got inf"),
    (
        "module_capital = 60e6",
        'module_capital = "60e6"',
        "costs.module_capital: expected a number, got '60e6'",
    ),
    ("qa_salary = 120e3", "qa_salry = 120e3", "costs.qa_salry: unknown key"),
]


@pytest.mark.parametrize("old, new, message", COSTS, ids=[c[1] for c in COSTS])
def test_bad_costs_are_refused_naming_the_key(tmp_path, old, new, message):
    path = edited(tmp_path, old, new)
    with pytest.raises(InputError) as err:
        load_scenario(path)
    assert str(err.value) == f"{path}: {message}"


def test_costs_default_to_the_documented_assumptions():
    from pmcap.scenario import CostsConfig

    costs = CostsConfig()
    assert costs.currency == "USD" and costs.module_capital == 0
    assert [costs.salary(r) for r in ("operator_fte", "qc_fte", "qa_fte")] == [95e3, 110e3, 120e3]


@pytest.mark.parametrize(
    "old, new, message",
    [
        (
            "phase2 = {patients = {triangular = [60, 80, 110]}, enrollment_months = 15}",
            "phase3 = {patients = 250, enrollment_months = 30}",
            "pivotal = 'phase2' has no phase III",
        ),
        ('pivotal = "phase2"', 'pivotal = "phase4"', "program[1] (CART-B).pivotal"),
        ("in_progress = 25", 'in_progress = 25\npivotal = "phase2"', "'pivotal' is for pipeline"),
    ],
)
def test_a_pivotal_phase_the_program_cannot_have_is_refused(tmp_path, old, new, message):
    """pivotal = "phase2" with a phase III plan, an unknown phase, or on a launched product:
    one InputError naming the program."""
    path = edited(tmp_path, old, new)
    with pytest.raises(InputError) as err:
        load_scenario(path)
    assert message in str(err.value)
