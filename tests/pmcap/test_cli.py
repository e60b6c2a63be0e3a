from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from capacity import load_process, read_demand, requirements, write_demand
from pmcap.cli import app
from tests.helpers import make_demand

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture
def demand_file(tmp_path):
    values = np.random.default_rng(0).poisson(6, (40, 6, 2, 3))
    return write_demand(make_demand(values, programs=["A", "B"]), tmp_path / "demand.csv")


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def check_bands_csv(path, req, quantiles=(0.1, 0.5, 0.9)):
    """Every row of a written requirements.csv against draws of ``req`` (6 significant digits)."""
    table = pd.read_csv(path, parse_dates=["month"])
    expected = {}
    for name, var in req.data_vars.items():
        extra = [d for d in var.dims if d not in ("draw", "month", "program")]
        labels = [None] if not extra else list(var[extra[0]].values)
        for label in labels:
            series = var if label is None else var.sel({extra[0]: label})
            expected[name if label is None else f"{name}[{label}]"] = series
    assert set(table["metric"]) == set(expected)
    programs = list(req["program"].values) if "program" in req.dims else ["all"]
    assert len(table) == len(expected) * req.sizes["month"] * len(programs)
    assert not table.duplicated(["month", "program", "metric"]).any()
    for row in table.itertuples():
        series = expected[row.metric]
        if "program" in series.dims:
            series = series.sel(program=row.program)
        else:
            assert row.program == "all"
        x = series.sel(month=row.month).values
        assert row.unit == req[row.metric.split("[")[0]].attrs["units"]
        got = [row.mean, *(getattr(row, f"p{100 * q:g}") for q in quantiles)]
        want = [x.mean(), *np.quantile(x, quantiles)]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-12, err_msg=row.metric)


def test_capacity_writes_bands_shortfall_and_manifest(tmp_path, demand_file):
    out = tmp_path / "out"
    req = requirements(read_demand(demand_file), "car-t-autologous-manual", seed=0)
    # installed QC inside the band of need, so the shortfall check below can fail
    qc_level = round(float(np.median(req["qc_fte"].values)), 2)
    result = run(
        "capacity",
        demand_file,
        "--process",
        "car-t-autologous-manual",
        "--out",
        out,
        "--installed",
        f"suites=13,qc_fte={qc_level}",
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        "requirements.csv",
        "shortfall.csv",
    ]
    header = (out / "requirements.csv").read_text().splitlines()[0]
    assert header == "month,program,metric,unit,mean,p10,p50,p90"
    check_bands_csv(out / "requirements.csv", req)
    # the layout of `pmcap run`'s shortfall.csv: each resource's unit, and what "any" means
    header = (out / "shortfall.csv").read_text().splitlines()[0]
    assert header == "month,metric,unit,installed,probability"
    short = pd.read_csv(out / "shortfall.csv", parse_dates=["month"])
    any_of = "any of suites/qc_fte"
    assert short.groupby("metric", sort=False)["unit"].unique().map(list).to_dict() == {
        "suites": ["suites"],
        "qc_fte": ["FTE"],
        any_of: ["(no installed value: at least one resource short)"],
    }
    need = {"suites": req["suites"].values > 13, "qc_fte": req["qc_fte"].values > qc_level}
    need[any_of] = need["suites"] | need["qc_fte"]
    assert short["metric"].value_counts().to_dict() == {"suites": 6, "qc_fte": 6, any_of: 6}
    for metric, over in need.items():
        rows = short[short["metric"] == metric].sort_values("month")
        assert rows["month"].tolist() == list(pd.DatetimeIndex(req["month"].values))
        np.testing.assert_allclose(rows["probability"], over.mean(axis=0), rtol=1e-5)
    np.testing.assert_array_equal(short.set_index("metric").loc["suites", "installed"], 13.0)
    for over in need.values():  # installed levels inside the bands: the check can fail
        assert 0.2 < over.mean() < 0.9
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 0 and manifest["draws"] == 40
    assert len(manifest["demand"]["sha256"]) == 64
    assert "numpy" in manifest["versions"]


def test_capacity_shortfall_units_are_those_of_requirements(tmp_path, demand_file):
    # labelled metrics (fte[qa], qc_hours[sterility]) take their unit from their base metric
    out = tmp_path / "out"
    installed = "fte[qa]=2,qc_hours[sterility]=50,instrument_hours[qpcr]=10,suite_days=100"
    result = run(
        "capacity",
        demand_file,
        "--process",
        "car-t-autologous-manual",
        "--out",
        out,
        "--installed",
        installed,
    )
    assert result.exit_code == 0, result.output
    short = pd.read_csv(out / "shortfall.csv")
    units = short.groupby("metric", sort=False)["unit"].unique().map(list).to_dict()
    assert units == {
        "fte[qa]": ["FTE"],
        "qc_hours[sterility]": ["hours/month"],
        "instrument_hours[qpcr]": ["hours/month"],
        "suite_days": ["suite-days/month"],
        "any of fte[qa]/qc_hours[sterility]/instrument_hours[qpcr]/suite_days": [
            "(no installed value: at least one resource short)"
        ],
    }
    bands = pd.read_csv(out / "requirements.csv")
    for metric, unit in list(units.items())[:-1]:
        assert set(bands.loc[bands["metric"] == metric, "unit"]) == set(unit), metric


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
    demand = read_demand(demand_file)
    for name, seed in (("a", 4), ("c", 5)):
        req = requirements(demand, "car-t-autologous-manual", seed=seed)
        check_bands_csv(tmp_path / name / "requirements.csv", req)


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
    mapping = {"A": "car-t-autologous-manual", "*": "car-t-autologous-automated"}
    req = requirements(read_demand(demand_file), mapping, seed=0)
    check_bands_csv(out / "requirements.csv", req)
    # B really used the automated process, not the manual one
    swapped = requirements(read_demand(demand_file), "car-t-autologous-manual", seed=0)
    assert not np.allclose(req["suite_days"], swapped["suite_days"])


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
    req = requirements(
        read_demand(ROOT / "data/examples/demand.csv"),
        load_process(ROOT / "data/examples/process.toml"),
        seed=0,
    )
    short = pd.read_csv(out / "shortfall.csv", parse_dates=["month"])
    assert set(short["unit"]) == {"suites", "(no installed value: at least one resource short)"}
    suites = short[short["metric"] == "suites"].sort_values("month")
    assert suites["month"].tolist() == list(pd.DatetimeIndex(req["month"].values))
    expected = (req["suites"].values > 16).mean(axis=0)
    np.testing.assert_allclose(suites["probability"], expected, rtol=1e-5)
    assert expected.max() > 0  # the example does run short at some point
    check_bands_csv(out / "requirements.csv", req)
