"""`pmcap run`, `validate` and `init` end to end on the bundled example, with small draws."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from pytest import approx
from typer.testing import CliRunner

from pmcap.cli import app
from pmcap.scenario import example_scenario_path, load_scenario

EXAMPLE = example_scenario_path()
runner = CliRunner()
DRAWS = 60


@pytest.fixture(scope="module")
def cache(pmcap_cache):
    return pmcap_cache


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, cache):
    out = tmp_path_factory.mktemp("runs") / "example"
    mp = pytest.MonkeyPatch()
    mp.setenv("PMCAP_CACHE", str(cache))
    result = runner.invoke(
        app, ["run", "--out", str(out), "--draws", str(DRAWS), "--quiet", "--xlsx"]
    )
    mp.undo()
    assert result.exit_code == 0, result.output
    return out


def read(out: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(out / name, dtype={"period": str})


def test_run_writes_every_file(first_run):
    names = {p.name for p in first_run.iterdir()}
    assert {
        "report.html",
        "requirements.csv",
        "demand.csv",
        "finance.csv",
        "finance.xlsx",
        "shortfall.csv",
        "plan.csv",
        "events.csv",
        "drivers.csv",
        "draws.nc",
        "manifest.json",
    } <= names
    manifest = json.loads((first_run / "manifest.json").read_text())
    assert manifest["draws"] == DRAWS and manifest["command"] == "run"
    assert {"check_s", "fit_s", "compose_s", "requirements_s", "decisions_s", "write_s"} <= set(
        manifest["timings"]
    )
    assert {i["path"].rsplit("/", 1)[-1] for i in manifest["inputs"]} >= {
        "scenario.toml",
        "cart-a-patients.csv",
        "cart-a-sites.csv",
        "cart-c-patients.csv",
    }
    # sha256 is the scenario file's bytes (what sha256sum prints); digest is the parsed
    # scenario and its input files, a different hash
    scenario = manifest["scenario"]
    assert scenario["sha256"] == hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()
    assert scenario["digest"] == load_scenario(EXAMPLE).apply(draws=DRAWS).digest()
    assert scenario["digest"] != scenario["sha256"]


def test_csv_values_agree_with_the_draws(first_run):
    draws = xr.open_dataset(first_run / "draws.nc", engine="h5netcdf").load()
    req = read(first_run, "requirements.csv")
    # total suites, month 7: mean and P90 over the draws in draws.nc
    month = str(draws["month"].values[6])[:10]  # noqa: F841 (used in the query)
    row = req.query("program == 'total' and metric == 'suites' and month == @month")
    suites = draws["total_suites"].values[:, 6].astype(float)
    assert row["mean"].item() == pytest.approx(suites.mean(), rel=1e-5)
    assert row["p90"].item() == pytest.approx(np.quantile(suites, 0.9), rel=1e-5)
    # lots of one program: whole-number percentiles that some draw took
    lots = req.query("program == 'CART-C' and metric == 'lots'")
    assert (lots[["p10", "p50", "p90"]] == np.round(lots[["p10", "p50", "p90"]])).all().all()
    # annual finance rows: percentiles of each draw's annual total (flows) / average (stocks)
    fin = read(first_run, "finance.csv")
    year = int(pd.Timestamp(draws["month"].values[13]).year)
    period = str(year)  # noqa: F841 (used in the query)
    annual = fin.query("granularity == 'year' and period == @period and program == 'total'")
    in_year = pd.DatetimeIndex(draws["month"].values).year == year
    lots_year = draws["total_lots"].values[:, in_year].sum(axis=1)
    assert annual["lots_p50 [lots per period]"].item() == pytest.approx(
        np.quantile(lots_year, 0.5, method="inverted_cdf"), rel=1e-5
    )
    suites_year = draws["total_suites"].values[:, in_year].mean(axis=1)
    assert annual["suites_p90 [suites, average]"].item() == pytest.approx(
        np.quantile(suites_year, 0.9), rel=1e-5
    )
    # never the sum of monthly percentiles
    monthly = fin.query("granularity == 'month' and program == 'total'")
    monthly = monthly[monthly["period"].str.startswith(str(year))]
    assert monthly["lots_p90 [lots per period]"].sum() != pytest.approx(
        annual["lots_p90 [lots per period]"].item(), rel=1e-3
    )
    # per-program patients sum to the total in every draw (demand.csv means add up; the
    # launched rows are probabilities, per program only)
    dem = read(first_run, "demand.csv")
    first = dem[(dem["month"] == dem["month"].min()) & (dem["unit"] != "probability")]
    by_program = first[first["program"] != "total"].groupby("metric")["mean"].sum()
    total = first[first["program"] == "total"].set_index("metric")["mean"]
    pd.testing.assert_series_equal(by_program.sort_index(), total.sort_index(), check_names=False)


def test_no_metric_twice_and_units_everywhere(first_run):
    req = read(first_run, "requirements.csv")
    metrics = set(req["metric"])
    assert not any(m.startswith("fte[") for m in metrics)
    assert not {"operator_crew_fte", "operator_hands_on_fte"} & metrics
    assert {"lots", "suites", "operator_fte", "qc_fte", "qa_fte"} <= metrics
    assert req["unit"].notna().all()
    fin = read(first_run, "finance.csv")
    value_columns = [
        c for c in fin.columns if c not in ("granularity", "period", "program", "months_in_period")
    ]
    assert all("[" in c and c.endswith("]") for c in value_columns)
    assert fin["granularity"].isin(["year", "month"]).all()
    shortfall = read(first_run, "shortfall.csv")
    assert shortfall["unit"].notna().all()
    xlsx = pd.read_excel(first_run / "finance.xlsx", sheet_name=None)
    assert {"annual", "monthly", "shortfall", "plan"} <= set(xlsx)
    assert len(xlsx["annual"]) == (fin["granularity"] == "year").sum()


def test_finance_xlsx_opens_with_notes_and_no_file_shows_rounding_noise(first_run):
    import openpyxl

    sc = load_scenario(EXAMPLE)
    book = openpyxl.load_workbook(first_run / "finance.xlsx")
    assert book.sheetnames[0] == "notes"
    notes = {r[0]: r[1] for r in book["notes"].iter_rows(min_row=2, values_only=True)}
    assert notes["as of (data cut)"] == f"{sc.run.as_of:%Y-%m-%d}"
    assert notes["draws, seed"] == f"{DRAWS} draws, seed {sc.run.seed}"
    manifest = json.loads((first_run / "manifest.json").read_text())
    assert notes["pmcap version"] == manifest["versions"]["pmcap"]
    assert "Do not add P50s across programs" in notes["P-columns"]
    assert notes["currency"].startswith(sc.costs.currency)
    for name in book.sheetnames[1:]:
        ws = book[name]
        assert ws.freeze_panes == "A2" and ws.auto_filter.ref == ws.dimensions
        for row in ws.iter_rows(min_row=2, values_only=True):
            tiny = [v for v in row if isinstance(v, float) and 0 < abs(v) < 1e-9]
            assert not tiny, (name, row)
    for csv in sorted(first_run.glob("*.csv")):
        values = read(first_run, csv.name).select_dtypes("number").to_numpy(float)
        assert not ((np.abs(values) < 1e-9) & (values != 0)).any(), csv.name


def test_report_first_screen_has_the_decisions(first_run):
    html = (first_run / "report.html").read_text()
    assert 'id="decisions"' in html and "First month with" in html
    assert "Service level" in html and "Next module" in html or "No new module" in html
    assert "http://" not in html and "https://" not in html  # self-contained
    years = sorted(
        {str(pd.Timestamp(m).year) for m in read(first_run, "demand.csv")["month"].unique()}
    )
    for year in years:
        assert f'<td class="l">{year}' in html


def test_same_seed_gives_byte_identical_csvs(first_run, cache, tmp_path, monkeypatch):
    monkeypatch.setenv("PMCAP_CACHE", str(cache))
    out = tmp_path / "again"
    result = runner.invoke(app, ["run", "--out", str(out), "--draws", str(DRAWS), "--quiet"])
    assert result.exit_code == 0, result.output
    for csv in sorted(first_run.glob("*.csv")):
        assert (out / csv.name).read_bytes() == csv.read_bytes(), csv.name
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["fits"]["enrollment (CART-A)"] == "cache"  # nothing refitted
    other = tmp_path / "seed"
    result = runner.invoke(
        app, ["run", "--out", str(other), "--draws", str(DRAWS), "--quiet", "--seed", "7"]
    )
    assert result.exit_code == 0
    assert (other / "demand.csv").read_bytes() != (first_run / "demand.csv").read_bytes()


def test_interrupted_run_leaves_no_folder(cache, tmp_path, monkeypatch):
    import pmcap.runfolder

    monkeypatch.setenv("PMCAP_CACHE", str(cache))

    def boom(folder, *args, **kwargs):
        (folder / "report.html").write_text("half")
        raise KeyboardInterrupt

    monkeypatch.setattr(pmcap.runfolder, "write_run", boom)
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", "--out", str(out), "--draws", "30", "--quiet"])
    assert result.exit_code != 0
    assert not out.exists() and not out.is_symlink()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_strict_exits_3_and_writes_nothing_when_diagnostics_fail(cache, tmp_path, monkeypatch):
    import pmcap.run

    monkeypatch.setenv("PMCAP_CACHE", str(cache))
    monkeypatch.setitem(pmcap.run.DIAGNOSTIC_LIMITS, "ess_bulk_min", 10**9)
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", "--out", str(out), "--draws", "30", "--quiet", "--strict"])
    assert result.exit_code == 3
    assert "diagnostics fail" in result.output
    assert not out.exists()
    # without --strict the report shows the failure on its first screen
    result = runner.invoke(app, ["run", "--out", str(out), "--draws", "30", "--quiet"])
    assert result.exit_code == 0
    html = (out / "report.html").read_text()
    assert html.index("Sampler diagnostics fail") < html.index('id="decisions"')


def test_validate_and_init(tmp_path):
    result = runner.invoke(app, ["validate", str(EXAMPLE)])
    assert result.exit_code == 0 and "3 programs" in result.output
    target = tmp_path / "mine"
    result = runner.invoke(app, ["init", str(target)])
    assert result.exit_code == 0
    assert "PLACEHOLDER" in (target / "scenario.toml").read_text()  # the starter (test_starter)
    assert runner.invoke(app, ["validate", str(target / "scenario.toml")]).exit_code == 0
    again = runner.invoke(app, ["init", str(target)])
    assert again.exit_code == 2 and "not an empty folder" in again.output


def test_scenario_overrides_and_suites_by_month():
    sc = load_scenario(EXAMPLE).apply(draws=100, seed=5)
    assert (sc.run.draws, sc.run.seed) == (100, 5)
    months = pd.date_range("2026-12-01", periods=24, freq="MS")
    suites = sc.suites_by_month(months)
    assert suites["2028-06-01"] == 12 and suites["2028-07-01"] == 16


# --- bad scenario files: one clear error, exit 2, nothing written ----------------------------
def edited(tmp_path: Path, old: str, new: str) -> Path:
    folder = tmp_path / "sc"
    shutil.copytree(EXAMPLE.parent, folder)
    path = folder / "scenario.toml"
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))
    return path


BAD = [
    ("horizon_months = 120", "horizon_months = 120\ncolour = 3", ["run.colour", "unknown key"]),
    ("horizon_months = 120", 'horizon_months = "ten"', ["run.horizon_months", "whole number"]),
    ("start = 2026-12-01", "start = 2026-12-15", ["run.start", "first day of a month"]),
    ("start = 2026-12-01", "start = 2026-01-01", ["start", "before the month of as_of"]),
    ("draws = 1000\nseed", "draws = 5\nseed", ["run.draws", "must be >= 20, got 5"]),
    ("quantiles = [0.1, 0.5, 0.9]", "quantiles = [0.1, 0.1]", ["quantiles", "distinct"]),
    ("quantiles = [0.1, 0.5, 0.9]", "quantiles = [0.1, 1.5]", ["quantiles", "between 0 and 1"]),
    ('patients = "cart-a-patients.csv"', 'patients = "missing.csv"', ["missing.csv", "not found"]),
    ('stage = "pipeline"', 'stage = "preclinical"', ["program[1] (CART-B).stage", "trial"]),
    ('phase = "phase1"', 'phase = "phase4"', ["program[1] (CART-B).phase"]),
    (
        'phase = "phase1"',
        'phase = "phase1"\nreview = "fast"',
        ["program[1] (CART-B).review", "'priority', 'standard' or 'breakthrough'"],
    ),
    (
        'stage = "launched"',
        'stage = "launched"\nreview = "priority"',
        ["program[2] (CART-C)", "'review' is for programs that file"],
    ),
    (
        'group = "CAR-T"                  ',
        'group = "CAR T"                  ',
        ["CAR T", "known groups"],
    ),
    ("target = 120", "target = -5", ["enrollment.target", "must be > 0, got -5"]),
    (
        "manufactured_share = {beta = [45, 5]}",
        "manufactured_share = {gamma = [45, 5]}",
        ["manufactured_share", "unknown distribution"],
    ),
    (
        "peak_share = {uniform = [0.08, 0.18]}",
        "peak_share = {uniform = [0.18, 0.08]}",
        ["peak_share", "low < high"],
    ),
    ("launch = 2025-07-15", "launch = 2027-07-15", ["launch", "after as_of"]),
    (
        'process = "car-t-autologous-automated"',
        'process = "car-t-automatic"',
        ["program 'CART-B'", "not a bundled template"],
    ),
    (
        'process = "car-t-autologous-automated"',
        'process = "my-process.toml"',
        ["my-process.toml", "not found"],
    ),
    ("window_months = [12, 6]", "window_months = [6, 12]", ["window_months", "early >= late"]),
    ('name = "CART-B"', 'name = "CART-A"', ["unique", "CART-A"]),
    ("operator_fte = 160", "operator_fte = -1", ["facility.operator_fte"]),
    (
        "suites = [{from = 2026-12-01, suites = 12}, {from = 2028-07-01, suites = 16}]",
        "suites = [{from = 2026-12-01, suites = 16}, {from = 2028-07-01, suites = 12}]",
        ["facility.suites", "only grow"],
    ),
    ("in_progress = 25", "in_progress = 2.5", ["in_progress", "whole number"]),
    (
        "follow_up_months = {uniform = [9, 15]}",
        "follow_up_months = {uniform = [9]}",
        ["follow_up_months", "uniform expects"],
    ),
    (
        "[program.trial_plan]",
        "[program.trial_plan]\nphase4 = {patients = 3}",
        ["trial_plan.phase4"],
    ),
    ("horizon_months = 120", "horizon_months = 120\nhorizon_months = 12", ["not valid TOML"]),
    # values that would otherwise give wrong demand silently: a percentage for a share, a
    # share above 1, a negative backlog, patient count or lag, commercial demand for a trial
    # that never files
    (
        "peak_share = {uniform = [0.08, 0.18]}",
        "peak_share = {uniform = [8, 18]}",
        ["peak_share", "fraction"],
    ),
    (
        "median = 5000, p90 = 8000",
        "median = 5000, p90 = 8000}}\nbacklog = -1 #",
        ["backlog", "must be >= 0, got -1"],
    ),
    ("registrational = true", "registrational = false", ["not registrational"]),
    ("phase1 = {patients = 24,", "phase1 = {patients = -24,", ["patients", ">= 0"]),
    ("manufactured_share = 0.95", "manufactured_share = 1.5", ["manufactured_share", "[0, 1]"]),
    ("launch_lag_months = 2", "launch_lag_months = -2", ["launch_lag_months", ">= 0"]),
    # a bad step of a suites schedule gives one message naming the step, not one per form
    # the field may take (a number or a list of steps)
    (
        "{from = 2028-07-01, suites = 16}]",
        "{from = 2028-07-01, suites = -16}]",
        ["facility.suites[1].suites: must be >= 0, got -16"],
    ),
    (
        "{from = 2028-07-01, suites = 16}]",
        "{from = 2028-07-01, suites = 16.5}]",
        ["facility.suites[1].suites: expected a whole number, got 16.5"],
    ),
    (
        "suites = [{from = 2026-12-01, suites = 12}, {from = 2028-07-01, suites = 16}]",
        'suites = "twelve"',
        ["facility.suites: expected a whole number or a list of tables, got 'twelve'"],
    ),
    # the example's vector ([process.car-t-autologous-manual.vector])
    (
        "shelf_life_months = 24",
        "shelf_life_months = 3",
        ["field 'vector': field 'shelf_life_months'", "expires before it is released"],
    ),
    (
        "doses_per_lot = {triangular = [150, 300, 500]}",
        "doses_per_lot = 0",
        ["field 'vector': field 'doses_per_lot'", "at least one dose"],
    ),
    # the example's bill of materials ([process.car-t-autologous-manual.materials])
    (
        'unit = "kit"',
        'unit = ""',
        ["process.car-t-autologous-manual: field 'materials'", "'single-use process kit'", "unit"],
    ),
    (
        "pack_size = 10",
        "pack_size = 0",
        ["field 'materials': item 'single-use process kit': field 'pack_size': must be > 0"],
    ),
    (
        "lead_time_months = {triangular = [1, 2, 4]}",
        "lead_time_months = -1",
        ["item 'activation reagent': field 'lead_time_months': must be >= 0"],
    ),
    (
        "disruption = {spells_per_year = 0.5,",
        "disruption = {spells_per_year = -0.5,",
        [
            "field 'materials': item 'single-use process kit': field 'disruption': "
            "field 'spells_per_year': must be >= 0"
        ],
    ),
    (
        "duration_months = {triangular = [1, 2, 4]}}",
        "duration_months = 0}",
        ["item 'single-use process kit': field 'disruption': field 'duration_months': must be > 0"],
    ),
]


@pytest.mark.parametrize("old, new, words", BAD, ids=[b[1][:40] for b in BAD])
def test_bad_scenarios_exit_2_with_one_clear_message(tmp_path, old, new, words):
    path = edited(tmp_path, old, new)
    for args in (["validate", str(path)], ["run", str(path), "--out", str(tmp_path / "o")]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        for word in words:
            assert word in result.output, (word, result.output)
        assert not (tmp_path / "o").exists()


BAD_ROWS = [
    (
        "cart-a-patients.csv",
        "US-04,2026-03-01,enrolled,True",
        "US-04,2026-13-01,enrolled,True",
        ["cart-a-patients.csv", "row 2"],
    ),
    (
        "cart-a-patients.csv",
        "US-04,2026-03-01,enrolled,True",
        "XX-99,2026-03-01,enrolled,True",
        ["cart-a-patients.csv", "row 2", "not in the sites table"],
    ),
    (
        "cart-a-patients.csv",
        "US-04,2026-03-01,enrolled,True",
        "US-04,2026-03-01,enrolled,maybe",
        ["cart-a-patients.csv", "row 2", "treated"],
    ),
    (
        "cart-a-patients.csv",
        "US-04,2026-03-01,enrolled,True",
        "US-04,2026-03-01,lost,True",
        ["cart-a-patients.csv", "row 2", "outcome"],
    ),
    (
        "cart-a-sites.csv",
        "US-01,US,2025-09-02",
        "US-01,US,2027-09-02",
        ["cart-a-sites.csv", "row 2", "after as_of"],
    ),
    ("cart-c-patients.csv", "2025Q3,", "2025Q5,", ["cart-c-patients.csv", "row 2", "period"]),
    (
        "cart-c-patients.csv",
        "2025Q4,26",
        "2025Q4,-3",
        ["cart-c-patients.csv", "row 3", "whole number"],
    ),
    ("cart-c-patients.csv", "2025Q3,", "2024Q3,", ["cart-c-patients.csv", "before launch"]),
    # a period given twice or overlapping another is refused: its patients would count twice
    (
        "cart-c-patients.csv",
        "2025Q4,26",
        "2026Q2,26",
        ["cart-c-patients.csv", "rows 3 and 5", "periods 2026Q2 and 2026Q2 overlap"],
    ),
    (
        "cart-c-patients.csv",
        "2026Q1,50",
        "H1-2026,50",
        ["cart-c-patients.csv", "rows 4 and 5", "periods H1-2026 and 2026Q2 overlap"],
    ),
]


@pytest.mark.parametrize("name, old, new, words", BAD_ROWS, ids=[b[2][:30] for b in BAD_ROWS])
def test_bad_csv_rows_are_named(tmp_path, name, old, new, words):
    path = edited(tmp_path, "horizon_months = 120", "horizon_months = 120")
    csv = path.parent / name
    text = csv.read_text()
    assert old in text, (old, name)
    csv.write_text(text.replace(old, new, 1))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    for word in words:
        assert word in result.output, (word, result.output)


CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_report_renders_in_a_real_browser(first_run, tmp_path):
    import subprocess

    from matplotlib import image

    url = (first_run / "report.html").resolve().as_uri()
    common = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(
        [*common, "--enable-logging=stderr", "--v=1", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert not console, console  # no console errors (nor messages at all)
    # the layout self-check ran: the headline, then the whole decision table, inside
    # the first screen (1280 x 900)
    import re

    top = re.search(r'data-decisions-top="(\d+)"', dom.stdout)
    assert top, "the report's script did not run"
    assert 0 < int(top.group(1)) <= 900
    bottom = re.search(r'data-headline-bottom="(\d+)"', dom.stdout)
    assert bottom and 0 < int(bottom.group(1)) < int(top.group(1))
    shot = tmp_path / "first-screen.png"
    done = subprocess.run(
        [*common, f"--screenshot={shot}", url], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    pixels = (image.imread(shot)[..., :3] * 255).round().astype(int)
    assert pixels.shape[:2] == (900, 1280)
    # the table header background (#f3f5f8) is painted on the first screen
    header = np.all(pixels == [0xF3, 0xF5, 0xF8], axis=-1)
    assert header.sum() > 2000
    # and so is the headline's box (#eef5fb), above the table
    answer = np.all(pixels == [0xEE, 0xF5, 0xFB], axis=-1)
    assert answer.sum() > 50_000
    rows = np.flatnonzero(answer.any(axis=1))
    assert rows.max() < np.flatnonzero(header.any(axis=1)).min()


def test_headline_numbers_equal_the_decision_tables(first_run):
    # recomputed here from plan.csv, shortfall.csv and the scenario, not from pmcap.report
    import html
    import re

    from pmcap.report import money

    sc = load_scenario(EXAMPLE)
    target = sc.facility.shortfall_target
    text = (first_run / "report.html").read_text()
    numbers = json.loads(
        html.unescape(re.search(r'id="headline-numbers">(.*?)</script>', text).group(1))
    )
    shown = re.sub(r"<[^>]+>", " ", re.search(r'<div class="answer".*?</div>', text, re.S)[0])
    shown = " ".join(html.unescape(shown).split())
    now = pd.Timestamp(sc.run.as_of).to_period("M").to_timestamp()

    sf = pd.read_csv(first_run / "shortfall.csv", parse_dates=["month"])
    resources = ["suites", "operator_fte", "qc_fte", "qa_fte"]
    over = sf[sf["metric"].isin(resources) & (sf["probability"] > target)]
    first = over["month"].min()
    assert numbers["first_short_month"] == f"{first:%Y-%m}"
    at_first = set(over.loc[over["month"] == first, "metric"])
    assert numbers["first_short"] == [r for r in resources if r in at_first]
    assert f"from {first:%Y-%m}" in shown

    plan = pd.read_csv(first_run / "plan.csv", parse_dates=["commit_month", "online_month"])
    modules = plan[plan["resource"] == "suites"]
    due = modules[modules["commit_month"] <= now]
    assert numbers["modules_now"] == len(due) > 0
    assert numbers["modules_total"] == len(modules)
    capital = due["capital_cost [USD]"].sum()
    per_year = due["operating_cost_per_year [USD per year]"].sum()
    assert numbers["capital"] == capital == len(due) * sc.costs.module_capital
    assert numbers["operating_per_year"] == per_year
    assert numbers["online"] == f"{due['online_month'].min():%Y-%m}"
    assert f"Commit now: {len(due)} modules" in shown
    assert f"capital {money(capital, 'USD')}" in shown and "USD" in shown

    hires = plan[plan["resource"] != "suites"]
    when = hires["commit_month"].min()
    firsts = hires[hires["commit_month"] == when]
    assert numbers["first_requisition"] == f"{when:%Y-%m}"
    assert numbers["requisition_fte"] == firsts.groupby("resource").size().to_dict()
    staff = firsts["operating_cost_per_year [USD per year]"].sum()
    assert numbers["staff_cost"] == approx(staff)
    assert f"First requisition: {when:%Y-%m}" in shown
    assert money(staff, "USD") in shown
    assert "operator_fte" not in shown and "qc_fte" not in shown  # names a person reads


def test_service_level_bisection_equals_brute_force():
    from capacity import suites_for_service_level
    from pmcap.decisions import service_level_suites
    from tests.helpers import fixed_process, make_demand

    rng = np.random.default_rng(3)
    demand = make_demand(rng.poisson(rng.uniform(20, 60, size=(60, 1)), size=(60, 12)))
    process = fixed_process(changeover_days=1)
    kw = {"max_wait_days": 2.0, "epsilon": 0.05, "seed": 1}
    full = suites_for_service_level(demand, process, candidates=range(1, 40), **kw)
    need = full["suites_needed"].values
    assert not np.isnan(need).any()
    for start in (None, np.full(60, 3), need * 3):  # the guesses only set where it starts
        got = service_level_suites(demand, process, quantiles=(0.1, 0.5, 0.9), start=start, **kw)
        for q in (0.1, 0.5, 0.9):
            assert got[f"p{100 * q:g}"] == np.quantile(need, q, method="inverted_cdf")
        # a search per draw, not one simulation per candidate size
        assert got["queue_runs_per_draw"] < 15 and got["queue_runs"] < 60 * 10


def test_duration_group_is_checked_against_the_duration_table(tmp_path):
    ok = edited(tmp_path, 'phase = "phase1"', 'phase = "phase1"\nduration_group = "Oncology"')
    assert runner.invoke(app, ["validate", str(ok)]).exit_code == 0
    bad = edited(tmp_path / "b", 'phase = "phase1"', 'phase = "phase1"\nduration_group = "Onco"')
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2 and "duration_group 'Onco'" in result.output
    assert "Oncology" in result.output  # the known groups are listed


def test_decision_table_shades_a_gap_before_a_mid_year_module():
    # need 14 suites all year, 12 installed until July then 16: the year is shaded short
    # (six months are), though the year-end 16 covers the need
    from types import SimpleNamespace

    from capacity import shortfall_probability
    from pmcap.report import decision_rows

    months = pd.date_range("2027-01-01", periods=12, freq="MS")
    total = xr.Dataset(
        {
            name: (("draw", "month"), np.full((10, 12), v))
            for name, v in (
                ("suites", 14.0),
                ("operator_fte", 10.0),
                ("qc_fte", 1.0),
                ("qa_fte", 1.0),
            )
        },
        coords={"month": months},
    )
    installed = {
        "suites": pd.Series(np.r_[np.full(6, 12.0), np.full(6, 16.0)], index=months),
        "operator_fte": 20.0,
        "qc_fte": 2.0,
        "qa_fte": 2.0,
    }
    result = SimpleNamespace(
        total=total,
        installed=installed,
        shortfall=shortfall_probability(total, installed),
        scenario=SimpleNamespace(facility=SimpleNamespace(shortfall_target=0.1)),
    )
    (row,) = decision_rows(result)
    suites = row["cells"][0]
    assert suites["short"] and suites["installed"] == "12"
    assert not any(c["short"] for c in row["cells"][1:])


@pytest.mark.slow
def test_service_level_simulation_uses_the_process_draws_of_requirements(tmp_path, monkeypatch):
    # the day-level simulation that sizes the facility for the service level simulates
    # draw i with the culture time and failure rate requirements drew for draw i (the first
    # service_level.draws draws), not with parameters of its own random stream
    import capacity.service_level as service_level
    from pmcap.run import run_scenario
    from pmcap.scenario import load_scenario

    seen = []
    real = service_level.run_queue

    def spy(prep, online, idx=None, **kw):
        names = [s.name for s in prep.processes]
        seen.append((names, prep.failure_rate.copy(), prep.culture_mean.copy()))
        return real(prep, online, idx, **kw)

    monkeypatch.setattr(service_level, "run_queue", spy)
    path = edited(tmp_path, "draws = 1000\nseed", "draws = 150\nseed")
    result = run_scenario(load_scenario(path))
    n = min(result.scenario.facility.service_level.draws, 150)
    names, failure, culture = seen[0]
    # every program's own process is simulated, each with the draws requirements drew
    assert sorted(names) == sorted({s.name for s in result.processes.values()})
    assert result.service_processes == {p: s.name for p, s in result.processes.items()}
    assert failure.shape == (n, len(names))
    for p, name in enumerate(names):
        spec = next(s for s in result.processes.values() if s.name == name)
        par = spec.sample(150, result.world.seed)  # what requirements drew for every draw
        np.testing.assert_array_equal(failure[:, p], par["failure_rate"].values[:n])
        np.testing.assert_allclose(culture[:, p], par["culture_days"].values[:n])


@pytest.mark.slow
def test_writing_a_report_leaves_the_users_matplotlib_backend_alone(tmp_path):
    import subprocess
    import sys

    # writing a run leaves the caller's matplotlib backend as it was and opens no pyplot
    # figure (charts are Figure objects outside pyplot), so a notebook keeps showing its
    # charts inline after a run
    script = f"""
import matplotlib
matplotlib.use("svg")  # stands for a notebook's inline backend
import time
from pathlib import Path
from pmcap.runfolder import write_run
from pmcap.run import run_scenario
from pmcap.scenario import load_scenario
path = Path({str(edited(tmp_path, "draws = 1000", "draws = 40"))!r})
result = run_scenario(load_scenario(path), service_level=False)
(Path({str(tmp_path)!r}) / "out").mkdir()
write_run(Path({str(tmp_path)!r}) / "out", result, xlsx=False, version="t", t0=time.perf_counter())
import matplotlib.pyplot as plt
print(matplotlib.get_backend(), len(plt.get_fignums()))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-2:] == ["svg", "0"]


def test_a_rare_launch_shows_its_mean_and_p_launched(first_run):
    # CART-B launches in about 1 draw in 10: its commercial P90 is 0 in months where its mean
    # is not; demand.csv, finance.csv and the report give the mean and P(launched) there
    draws = xr.open_dataset(first_run / "draws.nc", engine="h5netcdf").load()
    months = pd.DatetimeIndex(draws["month"].values)
    commercial = draws["patients"].sel(program="CART-B", stream="commercial").values
    launch = draws["event_launch"].sel(program="CART-B").values
    # by hand: launched by a month = launch before the first day of the next month
    next_month = (months + pd.offsets.MonthBegin(1)).to_numpy("datetime64[ns]")
    p_launched = (launch[:, None] < next_month[None, :]).mean(axis=0)
    p90 = np.quantile(commercial, 0.9, axis=0, method="inverted_cdf")
    hidden = (p90 == 0) & (commercial.mean(axis=0) > 0)
    assert hidden.sum() >= 3, "CART-B's commercial P90 should be 0 where its mean is not"
    dem = read(first_run, "demand.csv")
    rows = dem.query("program == 'CART-B' and metric == 'patients[commercial]'")
    np.testing.assert_allclose(rows["mean"], commercial.mean(axis=0), rtol=1e-5)
    launched = dem.query("program == 'CART-B' and metric == 'launched'")
    assert list(launched["month"]) == list(months.strftime("%Y-%m-%d"))
    assert (launched["unit"] == "probability").all()
    np.testing.assert_allclose(launched["mean"], p_launched, rtol=1e-5)
    assert (p_launched[hidden] > 0).all() and (p_launched[hidden] <= 0.1).all()
    # finance.csv: the year's patients (clinical + commercial) beside P(launched) by its end
    fin = read(first_run, "finance.csv")
    year = months[hidden][-1].year
    last = np.flatnonzero(months.year == year)[-1]
    row = fin.query(f"granularity == 'year' and period == '{year}' and program == 'CART-B'")
    column = "launched_mean [probability, by end of period]"
    assert row[column].item() == pytest.approx(p_launched[last], rel=1e-5)
    # the report: the horizon's P(launched) and the mean of the commercial patients
    html = (first_run / "report.html").read_text()
    by_end = f"{100 * p_launched[-1]:.3g}%"
    assert 'id="program-demand"' in html
    assert by_end in html.split('id="program-demand"', 1)[1]
    note = next(line for line in html.splitlines() if "CART-B" in line and "dashed" in line)
    in_year = months.year == year
    annual_mean = commercial[:, in_year].sum(axis=1).mean()
    assert f"{annual_mean:.1f}" in note and by_end in note
