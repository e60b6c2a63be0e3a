"""The optional ``[network]`` table: checked at the door, planned in ``pmcap run``
(``network.csv``, per-site costs in ``finance.csv``), varied by sweeps."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from capacity.errors import InputError
from capacity.network import assign_lots, plan_network
from pmcap.scenario import example_scenario_path, load_scenario

# small on purpose: yearly periods, few MILP draws, no waiting: the stage runs in seconds
NETWORK = """
[network]
region_shares = {US = 0.7, EU = 0.3}
vein_to_vein_days = 24
cost_per_patient_unserved = 2e6
discount_rate = 0.08
milp_draws = 6
period_months = 12
decision_months = 12
information_groups = 1

[network.facility]
name = "US plant"
fixed_cost_per_year = 20e6
cost_per_lot = 40e3
turnaround_days = 16
operators = 120                   # fewer than the example needs later: the plan hires
hire_lead_time_months = 6
hire_cost = 20e3
max_hires = 100

[[network.site]]
name = "EU plant"
module_suites = 4
max_units = 2
module_capital = 70e6
module_cost_per_year = 12e6
fixed_cost_per_year = 15e6
cost_per_lot = 45e3
lead_time_months = 24
turnaround_days = 16

[[network.site]]
name = "CDMO"
kind = "cdmo"
max_units = 8
slot_fee_per_month = 150e3
cost_per_lot = 120e3
lead_time_months = 6
turnaround_days = 18

[[network.lane]]
region = "US"
site = "US plant"
transport_days = 1
[[network.lane]]
region = "US"
site = "CDMO"
transport_days = 2
[[network.lane]]
region = "EU"
site = "EU plant"
transport_days = 1
[[network.lane]]
region = "EU"
site = "CDMO"
transport_days = 2
"""


def with_network(tmp_path: Path, table: str = NETWORK, draws: int = 40) -> Path:
    folder = tmp_path / "sc"
    shutil.copytree(example_scenario_path().parent, folder)
    path = folder / "scenario.toml"
    text = path.read_text()
    assert text.count("draws = 1000\nseed") == 1
    text = text.replace("draws = 1000\nseed", f"draws = {draws}\nseed")
    path.write_text(text + table)
    return path


BAD = [
    (
        ('site = "EU plant"\ntransport_days = 1', 'site = "EU plnt"\ntransport_days = 1'),
        "network: lane 'EU' -> 'EU plnt': unknown site 'EU plnt'; sites are "
        "['US plant', 'EU plant', 'CDMO']",
    ),
    (
        ("cost_per_lot = 120e3", "cost_per_lot = -1"),
        "network.site[1].cost_per_lot: must be >= 0, got -1",
    ),
    (
        ("vein_to_vein_days = 24", "vein_to_vein_days = 17"),
        "network: vein_to_vein_days['CART-A'] = 17 is shorter than the fastest route from "
        "region 'US' (18 days: 2 x transport + turnaround)",
    ),
    (
        ("{US = 0.7, EU = 0.3}", "{US = 0.7, EU = 0.2}"),
        "network: region_shares['CART-A'] must sum to one, got 0.9",
    ),
    (
        ("milp_draws = 6", "milp_draws = 6\nprogram = {CART-Z = {vein_to_vein_days = 30}}"),
        "network.program: ['CART-Z'] are not programs of the scenario",
    ),
    (
        ("decision_months = 12", "decision_months = 18"),
        "network: decision_months (18) must be a multiple of period_months (12)",
    ),
    (("discount_rate = 0.08", "discount_rate = 0.08\nrate = 1"), "network.rate: unknown key"),
    (("hire_cost = 20e3", "hire_cost = -1"), "network.facility.hire_cost: must be >= 0, got -1"),
    (
        ("hire_lead_time_months = 6", "hire_lead_time_months = -2"),
        "network.facility.hire_lead_time_months: must be >= 0, got -2",
    ),
    (
        ("discount_rate = 0.08", "discount_rate = 0.08\noperator_hours_per_lot = 0"),
        "network.operator_hours_per_lot: must be > 0, got 0",
    ),
    (
        ("discount_rate = 0.08", "discount_rate = 0.08\nmax_wait_months = -1"),
        "network.max_wait_months: must be >= 0, got -1",
    ),
    (
        ("discount_rate = 0.08", "discount_rate = 0.08\nlate_cost_per_patient_month = -5"),
        "network.late_cost_per_patient_month: must be >= 0, got -5",
    ),
    (
        ("slot_fee_per_month = 150e3", "slot_fee_per_month = 150e3\noperators = 5"),
        "network: site 'CDMO': a CDMO brings its own staff",
    ),
    (
        ("discount_rate = 0.08", "discount_rate = 0.08\nreadout = 2040-01-01"),
        "network.readout: 2040-01-01 is outside the horizon",
    ),
]


@pytest.mark.parametrize("edit, message", BAD, ids=[b[1][:40] for b in BAD])
def test_bad_network_input_is_one_error_naming_the_field(tmp_path, edit, message):
    from pmcap.inputs import check_inputs

    old, new = edit
    assert NETWORK.count(old) == 1, old
    path = with_network(tmp_path, NETWORK.replace(old, new))
    with pytest.raises(InputError) as err:
        check_inputs(load_scenario(path))
    assert str(err.value).startswith(f"{path}: {message}"), str(err.value)


def test_pmcap_validate_exits_2_on_a_bad_network(tmp_path):
    from typer.testing import CliRunner

    from pmcap.cli import app

    path = with_network(tmp_path, NETWORK.replace("{US = 0.7, EU = 0.3}", "{US = 0.5, EU = 0.3}"))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert "region_shares['CART-A'] must sum to one, got 0.8" in result.output


def test_backlog_and_operator_keys_reach_the_network(tmp_path):
    from pmcap.inputs import scenario_network

    table = NETWORK.replace(
        "discount_rate = 0.08",
        "discount_rate = 0.08\nmax_wait_months = 3\nlate_cost_per_patient_month = 5e4\n"
        "operator_hours_per_lot = 90\noperator_hours_per_month = 140",
    )
    net = scenario_network(load_scenario(with_network(tmp_path, table)))
    assert (net.max_wait_months, net.late_cost_per_patient_month) == (3, 5e4)
    assert set(net.operator_hours_per_lot.values()) == {90.0}
    assert net.operator_hours_per_month == 140
    plant = net.sites[0]
    assert (plant.operators, plant.hire_lead_time_months, plant.hire_cost) == (120, 6, 20e3)
    assert plant.max_hires == 100 and net.sites[2].operators is None


def test_the_facility_is_the_first_own_site(tmp_path):
    from pmcap.inputs import scenario_network

    sc = load_scenario(with_network(tmp_path))
    net = scenario_network(sc)
    first = net.sites[0]
    installed = sc.suites_by_month(pd.DatetimeIndex([pd.Timestamp(sc.run.start)])).iloc[0]
    assert [s.name for s in net.sites] == ["US plant", "EU plant", "CDMO"]
    assert (first.suites, first.module_suites) == (installed, sc.facility.module_suites)
    assert first.lead_time_months == sc.facility.module_lead_time_months
    assert first.module_capital == sc.costs.module_capital
    assert (first.cost_per_lot, first.turnaround_days) == (40e3, 16)
    off = NETWORK.replace('name = "US plant"', "include = false")
    assert "include = false" in off
    sc2 = load_scenario(with_network(tmp_path / "off", off.replace('"US plant"', '"EU plant"')))
    assert [s.name for s in scenario_network(sc2).sites] == ["EU plant", "CDMO"]


@pytest.fixture(scope="module")
def network_run(tmp_path_factory):
    from pmcap.run import run_scenario
    from pmcap.runfolder import write_run

    tmp = tmp_path_factory.mktemp("netrun")
    sc = load_scenario(with_network(tmp))
    result = run_scenario(sc, service_level=False)
    out = tmp / "out"
    out.mkdir()
    names = write_run(out, result, xlsx=True, version="test", t0=0.0)
    return sc, result, out, names


def test_network_csv_is_plan_network_called_directly(network_run):
    from pmcap.inputs import scenario_network
    from pmcap.network import operator_hours_per_lot, suite_days_per_lot

    sc, result, out, names = network_run
    assert "network.csv" in names and "network_s" in result.timings
    per_lot = suite_days_per_lot(result.requirements)
    # the independent value: suite-days over lots of one program, summed by hand
    req = result.requirements.sel(program="CART-C")
    assert per_lot["CART-C"] == pytest.approx(
        float(req["suite_days"].values.sum() / req["lots"].values.sum())
    )
    hours = operator_hours_per_lot(result.requirements, 137.5)
    assert hours["CART-C"] == pytest.approx(
        float(req["operator_fte"].values.sum() * 137.5 / req["lots"].values.sum())
    )
    net = scenario_network(sc, per_lot, hours)
    assert net.sites[0].operators == 120 and net.sites[0].operator_cost_per_year == 95e3
    direct = plan_network(
        result.world.demand,
        net,
        period_months=12,
        decision_months=12,
        milp_draws=6,
        seed=sc.run.seed,
        information_groups=1,
        currency="USD",
    )
    table = pd.read_csv(out / "network.csv")
    plan = table[table["section"] == "plan"].iloc[0]
    for key in ("expected_cost", "cost_p10", "cost_p50", "cost_p90", "service_probability"):
        assert plan[key] == pytest.approx(direct.summary[key], rel=1e-9), key
    got = table[table["section"] == "commitment"]
    assert list(got["site"]) == list(direct.commitments["site"])
    assert list(got["units"]) == list(direct.commitments["units"])
    assert list(got["commit_month"]) == [f"{m:%Y-%m}" for m in direct.commitments["commit_month"]]
    assert list(got["kind"]) == list(direct.commitments["kind"])
    assert (got["kind"] == "hire").any()  # 120 operators do not last: the plan hires
    alts = table[table["section"] == "alternative"].set_index("name")
    want = direct.alternatives.set_index("alternative")
    assert list(alts.index) == list(want.index)
    assert np.allclose(alts["expected_cost"], want["expected_cost"], rtol=1e-9)
    assert (table["currency"] == "USD").all()


def test_finance_site_costs_sum_to_the_plans_expected_cost(network_run):
    """Discounted at each period's start, the sites' capital and operating costs plus the
    penalty for the patients not served are the plan's expected cost (no lane costs here)."""
    sc, result, out, _ = network_run
    run = result.network
    costs = run.costs
    months = pd.DatetimeIndex(result.world.demand["month"].values)
    m = np.arange(len(months))
    discount = (1 + 0.08) ** (-(m // 12 * 12) / 12)
    site_total = float((costs.to_numpy() * discount[:, None]).sum())
    assert (costs.to_numpy() > 0).any()
    from pmcap.network import online_operators, online_suites

    online = online_suites(run.plan, run.network, months, 12)
    crew = online_operators(run.plan, run.network, months, 12)
    assigned = assign_lots(
        result.world.demand, run.network, online, operators_online=crew, period_months=12, seed=0
    )
    unmet = assigned["unmet_patients"].values  # (draw, period)
    period_discount = (1 + 0.08) ** (-np.arange(unmet.shape[1]))
    penalty = float((unmet * period_discount).sum(axis=1).mean() * 2e6)
    assert site_total + penalty == pytest.approx(run.plan.summary["expected_cost"], rel=1e-6)
    # finance.csv: the same costs, by year, on the total rows
    fin = pd.read_csv(out / "finance.csv")
    yearly = fin[(fin["granularity"] == "year") & (fin["program"] == "total")]
    for (kind, site), values in costs.items():
        col = f"network_{kind}_cost[{site}] [USD per period]"
        by_year = values.groupby(values.index.year).sum()
        assert np.allclose(yearly[col].to_numpy(), by_year.to_numpy()), col
        assert fin.loc[fin["program"] != "total", col].isna().all()
    notes = pd.read_excel(out / "finance.xlsx", sheet_name="notes", header=None)
    assert notes.iloc[:, 0].astype(str).str.contains("network costs").any()
    # capital lands in the commitment month: module_capital x units
    eu = run.plan.commitments[run.plan.commitments["site"] == "EU plant"]
    assert costs[("capital", "EU plant")].sum() == pytest.approx(70e6 * eu["units"].sum())
    # operators: 120 now at 95,000 a year, each hire 20,000 once and 95,000 a year qualified
    staff = costs[("operators", "US plant")]
    hires = run.plan.commitments[run.plan.commitments["kind"] == "hire"]
    want = np.full(len(months), 120 * 95e3 / 12)
    for h in hires.itertuples():
        want[months == h.commit_month] += 20e3 * h.units
        want[months >= h.online_month] += 95e3 / 12 * h.units
    assert np.allclose(staff.to_numpy(), want)


def test_report_names_the_commitments_and_the_cost(network_run):
    sc, result, out, _ = network_run
    html = (out / "report.html").read_text()
    assert 'id="network"' in html
    s = result.network.plan.summary
    assert f"Expected cost {s['expected_cost'] / 1e6:,.1f}M USD" in html
    commitments = result.network.plan.commitments
    assert len(commitments)
    for c in commitments.itertuples():
        assert (
            f"at {c.site} committed {c.commit_month:%Y-%m} (online {c.online_month:%Y-%m})" in html
        )
    hired = int(commitments.loc[commitments["kind"] == "hire", "units"].sum())
    staff = result.network.costs[("operators", "US plant")].sum()
    assert f"Operators: {hired} hired over the horizon; operators cost {staff / 1e6:,.1f}M" in html


def test_no_network_stage_without_the_table(tmp_path):
    sc = load_scenario(example_scenario_path())
    assert sc.network is None  # the bundled example stays fast


def test_a_sweep_varies_a_network_cost(tmp_path):
    from pmcap.sweep.cases import make_cases

    sc = load_scenario(with_network(tmp_path))
    cases, keys = make_cases(
        sc,
        [("", [])],
        grid=[
            (("network", "site", "CDMO", "cost_per_lot"), [90e3, 150e3]),
            (("network", "cost_per_patient_unserved"), [1e6]),
        ],
        where="sweep.toml",
    )
    assert keys == ["network.site.CDMO.cost_per_lot", "network.cost_per_patient_unserved"]
    got = [
        (c.scenario.network.site[1].cost_per_lot, c.scenario.network.cost_per_patient_unserved)
        for c in cases
    ]
    assert got == [(90e3, 1e6), (150e3, 1e6)]
    assert all(c.scenario.network.site[0].cost_per_lot == 45e3 for c in cases)  # EU plant
    with pytest.raises(InputError, match="has no entry named 'CMO'"):
        make_cases(
            sc,
            [("", [])],
            grid=[(("network", "site", "CMO", "cost_per_lot"), [1.0])],
            where="sweep.toml",
        )


def test_the_example_network_file_checks(tmp_path):
    from pmcap.inputs import check_inputs

    root = Path(__file__).resolve().parents[2]
    text = (root / "data" / "examples" / "network.toml").read_text()
    parsed = check_inputs(load_scenario(with_network(tmp_path, "\n" + text)))
    net = parsed["network"]
    assert [s.name for s in net.sites] == ["US plant", "EU plant", "CDMO"]
    assert net.sites[0].suites == 12  # the example's facility
    assert net.region_shares["CART-A"] == {"US": 0.7, "EU": 0.3}
    # its commented operator keys, switched on, check too
    on = text.replace("# operators = 150", "operators = 150").replace("# hire_", "hire_")
    assert on != text
    crewed = check_inputs(load_scenario(with_network(tmp_path / "on", "\n" + on)))["network"]
    plant = crewed.sites[0]
    assert (plant.operators, plant.hire_lead_time_months, plant.hire_cost) == (150, 6, 20e3)


def test_a_sweep_varies_one_lane_by_region_and_site(tmp_path):
    from pmcap.sweep.cases import make_cases

    sc = load_scenario(with_network(tmp_path))
    cases, keys = make_cases(
        sc,
        [("", [])],
        grid=[(("network", "lane", "EU", "CDMO", "transport_days"), [3, 5])],
        where="sweep.toml",
    )
    assert keys == ["network.lane.EU.CDMO.transport_days"]
    for case, days in zip(cases, [3, 5], strict=True):
        lanes = {
            (lane.region, lane.site): lane.transport_days for lane in case.scenario.network.lane
        }
        # only the EU -> CDMO lane moves; US -> CDMO keeps its 2 days
        assert lanes == {("US", "US plant"): 1, ("US", "CDMO"): 2, ("EU", "EU plant"): 1,
                         ("EU", "CDMO"): days}  # fmt: skip
    with pytest.raises(InputError, match="has no entry named 'EU.US plant'"):
        make_cases(
            sc,
            [("", [])],
            grid=[(("network", "lane", "EU", "US plant", "transport_days"), [1])],
            where="sweep.toml",
        )
