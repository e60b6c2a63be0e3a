"""What an installed pmcap carries, and what its command line says about itself.

The wheel itself is built and run from outside the checkout by ``.ci/run``; these checks are the
fast part: the build configuration ships every file the code reads, and the help reads well.
"""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from typer.testing import CliRunner

from forecast.data import DATA, data_path
from pmcap.cli import app

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def _shipped(package: str) -> set[Path]:
    """Files the wheel holds for ``package``, by its package-dir and package-data globs."""
    folder = ROOT / SETUPTOOLS.get("package-dir", {}).get(package, package.replace(".", "/"))
    return {p for g in SETUPTOOLS["package-data"].get(package, []) for p in folder.glob(g)}


def test_every_python_package_is_in_the_wheel():
    packages = set(SETUPTOOLS["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("capacity", "forecast", "pmcap")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert found <= packages, f"add {sorted(found - packages)} to [tool.setuptools] packages"


@pytest.mark.parametrize(
    ("package", "folder"),
    [
        ("forecast", "forecast/reference"),
        ("forecast", "forecast/posteriors"),
        ("capacity", "capacity/templates"),
        ("pmcap", "pmcap/templates"),
        ("pmcap.example", "data/examples/portfolio"),
    ],
)
def test_package_data_covers_every_file_the_code_reads(package, folder):
    files = {p for p in (ROOT / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert files, folder
    missing = files - _shipped(package)
    assert not missing, f"not shipped: {sorted(str(p.relative_to(ROOT)) for p in missing)}"


def test_reference_data_is_read_from_the_package_not_the_checkout_data_folder():
    assert DATA.parent.name == "forecast"
    for name in (
        "phase_transitions_bio2021.csv",
        "phase_durations_bio2021.csv",
        "enrollment/grips_daily_screening.csv",
        "enrollment/pace_daily_screening.csv",
        "uptake/cart_quarterly_sales.csv",
        "uptake/cart_annual_sales.csv",
        "uptake/cart_prices.csv",
    ):
        assert data_path(name).is_file()
    assert not list((ROOT / "data").glob("*.csv")), "reference tables belong in forecast/reference"


def test_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"pmcap {version('pmcap')}"


COMMANDS = ["capacity", "run", "validate", "init"]


@pytest.mark.parametrize("command", [[], *([c] for c in COMMANDS)], ids=["pmcap", *COMMANDS])
def test_help_fits_80_columns_without_placeholders(command):
    result = CliRunner().invoke(app, [*command, "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    text = result.output
    assert "<bool>" not in text
    assert not re.search(r"\{\w+\}", text), text
    assert max(map(len, text.splitlines())) <= 80, text
    usage = text.splitlines()[0]
    usage_form = r"Usage: \S+( \w+)? \[OPTIONS\]( \[?[A-Z_]+\]?| COMMAND \[ARGS\]\.\.\.)?"
    assert re.fullmatch(usage_form, usage), usage


@pytest.mark.parametrize(
    "command",
    [
        "capacity",
        "run",
        "validate",
        "init",
    ],
)
def test_command_summary_is_not_cut_mid_sentence(command):
    text = CliRunner().invoke(app, ["--help"], terminal_width=80).output
    line = next(x for x in text.splitlines() if x.strip().startswith(command + " "))
    assert not line.endswith("..."), line
