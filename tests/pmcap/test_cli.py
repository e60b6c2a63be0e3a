from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from capacity import write_demand
from pmcap.cli import app
from tests.conftest import make_demand

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture
def demand_file(tmp_path):
    values = np.random.default_rng(0).poisson(6, (40, 6, 2, 3))
    return write_demand(make_demand(values, programs=["A", "B"]), tmp_path / "demand.csv")


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_capacity_writes_bands_shortfall_and_manifest(tmp_path, demand_file):
    out = tmp_path / "out"
    result = run(
        "capacity",
        demand_file,
        "--process",
        "car-t-autologous-manual",
        "--out",
        out,
        "--installed",
        "suites=6,qc_fte=1.5",
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        "requirements.csv",
        "shortfall.csv",
    ]
    header = (out / "requirements.csv").read_text().splitlines()[0]
    assert header == "month,program,metric,unit,mean,p10,p50,p90"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 0 and manifest["draws"] == 40
    assert len(manifest["demand"]["sha256"]) == 64
    assert "numpy" in manifest["versions"]


def test_same_seed_identical_files(tmp_path, demand_file):
    outs = []
    for name, seed in (("a", 4), ("b", 4), ("c", 5)):
        out = tmp_path / name
        assert (
            run(
                "capacity",
                demand_file,
                "--process",
                "car-t-autologous-manual",
                "--out",
                out,
                "--seed",
                seed,
            ).exit_code
            == 0
        )
        outs.append((out / "requirements.csv").read_bytes())
    assert outs[0] == outs[1] != outs[2]


def test_process_per_program(tmp_path, demand_file):
    out = tmp_path / "o"
    result = run(
        "capacity",
        demand_file,
        "--process",
        "A=car-t-autologous-manual",
        "--process",
        "*=car-t-autologous-automated",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--process", "car-t-unknown"], "not a bundled template"),
        (["--process", "car-t-autologous-manual", "--installed", "suites"], "--installed"),
        (
            ["--process", "car-t-autologous-manual", "--installed", "suits=3"],
            "unknown metric 'suits'",
        ),
        (["--process", "car-t-autologous-manual", "--quantiles", "0.1,2"], "--quantiles"),
        (["--process", "C=car-t-autologous-manual"], "programs ['C'] are not in the demand"),
    ],
)
def test_bad_input_exits_2_and_leaves_nothing(tmp_path, demand_file, args, message):
    out = tmp_path / "out"
    result = run("capacity", demand_file, "--out", out, *args)
    assert result.exit_code == 2
    assert message in result.output
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["demand.csv"]


def test_bad_demand_row_exit_2(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("draw,month,program,stream,patients\n0,2027-01-01,A,clinical,-3\n")
    result = run("capacity", path, "--process", "car-t-autologous-manual", "--out", tmp_path / "o")
    assert result.exit_code == 2
    assert f"{path}: line 2: patients must be >= 0" in result.output


def test_failed_rerun_keeps_previous_output(tmp_path, demand_file):
    out = tmp_path / "out"
    assert (
        run("capacity", demand_file, "--process", "car-t-autologous-manual", "--out", out).exit_code
        == 0
    )
    before = (out / "requirements.csv").read_bytes()
    assert run("capacity", demand_file, "--process", "nope", "--out", out).exit_code == 2
    assert (out / "requirements.csv").read_bytes() == before


def test_bundled_example_runs(tmp_path):
    out = tmp_path / "example"
    result = run(
        "capacity",
        ROOT / "data/examples/demand.csv",
        "--process",
        ROOT / "data/examples/process.toml",
        "--out",
        out,
        "--installed",
        "suites=16",
    )
    assert result.exit_code == 0, result.output
    assert (out / "shortfall.csv").exists()
