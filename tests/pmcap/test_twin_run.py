"""The optional ``[facility.twin]`` table: checked at the door (``pmcap validate``), run in
``pmcap run`` with ``[facility.qc_lab]`` as its QC stage, written to ``vein_to_vein.csv`` and
``qc_lab.csv``, and leading the report."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from capacity.errors import InputError
from pmcap.scenario import example_scenario_path, load_scenario

# the automated process as one lot a suite, so every process runs the same lots_per_suite
SAME_SLOTS = "\n[process.car-t-autologous-automated]\nlots_per_suite = 1\n"
ONE_ANALYST = """
[facility.qc_lab]
analysts = 1
instruments = {bact-alert = 2, qpcr = 2, endosafe-pts = 2, flow-cytometer = 2, cell-counter = 2, plate-reader = 2, ddpcr = 2}
target_days = 21
"""  # noqa: E501


def with_twin(tmp_path: Path, table: str, *, extra: str = SAME_SLOTS, draws: int = 30) -> Path:
    folder = tmp_path / "sc"
    shutil.copytree(example_scenario_path().parent, folder)
    path = folder / "scenario.toml"
    text = path.read_text()
    # the example's own twin and QC lab tables (its last section) give way to the test's
    assert text.count("\n# --- the facility twin") == 1
    text = text.split("\n# --- the facility twin")[0]
    assert text.count("draws = 1000\nseed") == 1
    text = text.replace("draws = 1000\nseed", f"draws = {draws}\nseed")
    path.write_text(text + "\n[facility.twin]\n" + table + extra)
    return path


BAD = [
    ("crews = {crew_size = 0}", "facility.twin.crews", "crew_size"),
    ("crews = {hours_per_shift = 25}", "facility.twin.crews", "hours_per_shift: at most 24"),
    ("crews = {shifts_per_day = 3, hours_per_shift = 9}", "facility.twin.crews", "at most 24"),
    ("crews = {attendance = 1.5}", "facility.twin.crews", "attendance"),
    ("downtime = {equipment_failures_per_suite_year = -1}", "facility.twin.downtime",
     "equipment_failures_per_suite_year"),
    ("downtime = {contamination_rate = {beta = [0, 3]}}", "facility.twin.downtime",
     "contamination_rate"),
    ("downtime = {contamination_rate = 1.5}", "facility.twin.downtime", "contamination_rate"),
    ("downtime = {shutdown_start = '13-40'}", "facility.twin.downtime", "shutdown_start"),
    ("vein_to_vein = {dropout_per_day = -0.1}", "facility.twin.vein_to_vein", "dropout_per_day"),
    ("vein_to_vein = {inbound_days = -1}", "facility.twin.vein_to_vein", "inbound_days"),
    ("vein_to_vein = {target_days = 0}", "facility.twin.vein_to_vein", "target_days"),
    ("draws = 5", "facility.twin.draws", "10"),
    ("crew = {crew_size = 2}", "facility.twin.crew", "unknown key"),
]  # fmt: skip


@pytest.mark.parametrize("line, where, message", BAD, ids=[b[0] for b in BAD])
def test_bad_twin_keys_are_refused_naming_the_key(tmp_path, line, where, message):
    path = with_twin(tmp_path, line + "\n")
    with pytest.raises(InputError) as err:
        load_scenario(path)
    text = str(err.value)
    assert text.startswith(f"{path}: {where}") and message in text, text
    assert text.count("\n") == 0  # one error, one line


def test_pmcap_validate_takes_mixed_lots_per_suite_and_refuses_a_bad_key_with_status_2(tmp_path):
    from pmcap.cli import app

    runner = CliRunner()
    # processes with different lots_per_suite (1 and 4) share the twin's suites
    mixed = with_twin(tmp_path / "a", "draws = 10\n", extra="")
    result = runner.invoke(app, ["validate", str(mixed)])
    assert result.exit_code == 0, result.output
    bad = with_twin(tmp_path / "b", "crews = {crew_size = 0}\n")
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2 and "facility.twin.crews" in result.output, result.output
    good = with_twin(tmp_path / "c", "draws = 10\n")
    assert runner.invoke(app, ["validate", str(good)]).exit_code == 0


def test_the_documented_snippet_parses_to_the_twin_configs(tmp_path):
    # the TOML block of docs/scenario.md's [facility.twin] section, as a user would paste it
    doc = (Path(__file__).parents[2] / "docs" / "scenario.md").read_text()
    section = doc[doc.index("### `[facility.twin]`") :]
    block = section[section.index("```toml\n") + 8 : section.index("```\n\n|")]
    path = with_twin(tmp_path, "", extra=SAME_SLOTS)
    path.write_text(path.read_text().replace("\n[facility.twin]\n", "\n" + block))
    crews, downtime, v2v = load_scenario(path).facility.twin.configs()
    assert (crews.crew_size, crews.shifts_per_day, crews.hours_per_shift) == (2, 2, 8.0)
    assert crews.attendance == 0.55  # unset: CrewConfig's default
    assert downtime.shutdown_days_per_year == 14
    assert downtime.contamination_rate.mean == pytest.approx(1 / 200)
    assert (v2v.target_days, v2v.dropout_per_day) == (30.0, 0.002)


@pytest.fixture(scope="module")
def twin_run(tmp_path_factory):
    from pmcap.run import run_scenario
    from pmcap.runfolder import twin_tables

    tmp = tmp_path_factory.mktemp("twin-run")
    path = with_twin(tmp, "draws = 10\n" + ONE_ANALYST)
    result = run_scenario(load_scenario(path), service_level=False)
    return result, twin_tables(result, (0.1, 0.5, 0.9))


def test_run_simulates_the_twin_on_the_demand_with_the_qc_lab(twin_run):
    result, tables = twin_run
    twin = result.twin
    assert "twin_s" in result.timings
    assert twin.sizes["draw"] == 10
    # suites: 12 installed at the start; by the end those installed (16 from 2028-07) plus
    # every module of the suite plan, which the twin brings online in its month
    assert twin.attrs["suites"] == 12
    plan = result.plans["suites"]
    added = int(plan.commitments["capacity_added"].sum()) if len(plan.commitments) else 0
    assert twin.attrs["suites_last"] == 16 + added
    # patients per month = the demand's patients (not PPQ) of the first 10 draws, summed
    demand = result.world.demand.isel(draw=slice(0, 10))
    patients = demand.sel(stream=[s for s in demand["stream"].values if s != "ppq"])
    expected = patients.sum(["program", "stream"]).transpose("draw", "month").values
    np.testing.assert_array_equal(twin["patients"].values, expected)
    # the QC lab is the stage: its resources are causes, and one analyst binds
    causes = list(twin["cause"].values)
    assert causes[:4] == ["suites", "crews", "downtime", "analysts"] and "qpcr" in causes
    late = twin["wait_share"].sel(cause="analysts").isel(month=slice(-12, None)).values
    assert np.nanmean(late) > 0.5
    assert result.qc_lab is not None and result.qc_lab.release.shape[0] == 10


def test_vein_to_vein_and_qc_lab_csv_are_the_bands_of_the_draws(twin_run):
    result, tables = twin_run
    twin = result.twin
    v2v = tables["vein_to_vein.csv"].set_index(["metric", "month"])
    months = pd.DatetimeIndex(twin["month"].values)
    for metric in ("patients", "v2v_p90_days", "wait_share[analysts]"):
        values = (
            twin[metric.split("[")[0]].sel(cause="analysts").values
            if "[" in metric
            else twin[metric].values
        )
        m = 30  # a month with patients in every draw
        assert np.isfinite(values[:, m]).all()
        row = v2v.loc[(metric, months[m])]
        assert row["mean"] == pytest.approx(values[:, m].mean())
        assert row["p90"] == pytest.approx(np.quantile(values[:, m], 0.9))
    assert tables["qc_lab.csv"]["month"].min() == months[0]
    assert list(tables["vein_to_vein.csv"].columns) == [
        "month", "program", "metric", "unit", "mean", "p10", "p50", "p90"
    ]  # fmt: skip
    qc = tables["qc_lab.csv"].set_index(["metric", "month"])
    # lots leaving manufacture in a month, mean over draws, counted from the lab's result
    ready = result.qc_lab.lot_ready
    edges = result.qc_lab.month_edges
    m = 30
    # the lab's months start before the horizon (lots in progress at the start)
    assert result.qc_lab.months[0] < months[0] and len(result.qc_lab.months) == len(edges) - 1
    k = list(result.qc_lab.months).index(months[m])
    count = ((ready >= edges[k]) & (ready < edges[k + 1])).sum(axis=1)
    assert qc.loc[("qc_lots", months[m]), "mean"] == pytest.approx(count.mean())
    assert qc.loc[("qc_utilisation[analysts]", months[m]), "p50"] > 0.9  # one analyst, busy


def test_the_report_leads_with_the_binding_constraint_and_v2v_bands(twin_run):
    from pmcap.report import render_report, twin_section

    result, _ = twin_run
    block = twin_section(result)
    twin = result.twin
    years = pd.DatetimeIndex(twin["month"].values).year
    last = max(r["year"] for r in block["rows"])
    row = next(r for r in block["rows"] if r["year"] == last)
    assert row["binding"] == "QC analysts"
    # its share by hand: the year's analyst waiting days over all waiting days, all draws
    sel = years == last
    days = (twin["wait_days"].values * twin["patients"].values[..., None])[:, sel]
    share = np.nansum(days[..., causes_index(twin, "analysts")]) / np.nansum(days)
    assert row["share"] == f"{100 * share:.3g}%"
    # P(v2v > target) by hand: patients not infused within target over the year's patients
    apheresis = twin["apheresis_day"].values
    start = (pd.Timestamp(f"{last}-01-01") - pd.Timestamp(twin["month"].values[0])).days
    end = (pd.Timestamp(f"{last + 1}-01-01") - pd.Timestamp(twin["month"].values[0])).days
    in_year = (apheresis >= start) & (apheresis < end)
    ok = np.nan_to_num(twin["v2v_days"].values, nan=np.inf) <= 30
    assert row["over"] == f"{100 * (in_year & ~ok).sum() / in_year.sum():.3g}%"
    html = render_report(result, "", "test")
    assert html.index('id="twin-lead"') < html.index('id="decisions-heading"')
    assert html.index('id="headline"') < html.index('id="twin-lead"')
    assert "QC analysts" in html


def causes_index(twin, cause):
    return list(twin["cause"].values).index(cause)


def test_workforce_headcount_drives_the_crews_and_finance_gains_its_salary_cost(tmp_path):
    import time

    from pmcap.run import run_scenario
    from pmcap.runfolder import write_run

    path = with_twin(tmp_path, "draws = 10\n", extra=SAME_SLOTS + "\n[workforce]\n")
    result = run_scenario(load_scenario(path), service_level=False)
    sim = result.workforce.simulation
    # crews at work = floor(qualified x attendance / shifts / crew size), draw by draw
    qualified = sim["qualified"].isel(draw=slice(0, 10)).transpose("draw", "month").values
    np.testing.assert_array_equal(
        result.twin["crews_on_shift"].values, np.floor(qualified * 0.55 / 2 / 2 + 1e-9)
    )
    assert result.twin.attrs["operators"] == "workforce"
    out = tmp_path / "out"
    out.mkdir()
    names = write_run(out, result, xlsx=False, version="t", t0=time.perf_counter())
    assert "vein_to_vein.csv" in names and "qc_lab.csv" not in names  # no [facility.qc_lab]
    finance = pd.read_csv(out / "finance.csv")
    annual = finance[(finance["granularity"] == "year") & (finance["program"] == "total")]
    head = (sim["qualified"] + sim["trainees"]).transpose("draw", "month")
    years = pd.DatetimeIndex(head["month"].values).year
    salary = result.scenario.costs.operator_salary
    for _, row in annual.iterrows():
        sel = years == int(row["period"])
        mean_head = head.values[:, sel].mean(axis=1)  # each draw's annual average
        cost = head.values[:, sel].sum(axis=1) * salary / 12  # each draw's annual total
        assert row["workforce_headcount_p90 [operators, average]"] == pytest.approx(
            np.quantile(mean_head, 0.9), rel=1e-5
        )
        assert row["workforce_salary_cost_p50 [USD per period]"] == pytest.approx(
            np.quantile(cost, 0.5), rel=1e-5
        )
        assert row["workforce_salary_cost_mean [USD per period]"] == pytest.approx(
            cost.mean(), rel=1e-5
        )
    programs = finance[(finance["program"] != "total")]
    assert programs["workforce_headcount_mean [operators, average]"].isna().all()


def test_a_sweep_can_vary_twin_keys(tmp_path):
    from pmcap.sweep.cases import make_cases

    base = load_scenario(with_twin(tmp_path, "draws = 10\n"))
    crew = ("facility", "twin", "crews", "crew_size")
    cases, keys = make_cases(
        base,
        [("base", []), ("rapid", [(("facility", "twin", "vein_to_vein", "target_days"), 21)])],
        grid=[(crew, [1, 3])],
        where="sweep.toml",
    )
    assert keys == ["facility.twin.crews.crew_size", "facility.twin.vein_to_vein.target_days"]
    got = {c.name: c.scenario.facility.twin for c in cases}
    crews, _, v2v = got["rapid, facility.twin.crews.crew_size=3"].configs()
    assert (crews.crew_size, v2v.target_days) == (3, 21.0)
    assert got["base, facility.twin.crews.crew_size=1"].configs()[2].target_days == 30.0
    with pytest.raises(InputError, match="facility.twin.crews"):
        make_cases(base, [("bad", [(crew, 0)])], where="sweep.toml")
