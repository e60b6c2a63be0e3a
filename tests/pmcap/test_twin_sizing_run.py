"""Per-year sizing at the vein-to-vein service level (pmcap.twin_sizing): the search against an
exhaustive sweep of crew counts through capacity.simulate_twin, scored here from per-patient
outcomes by year of apheresis; size_twin with a QC lab whose flow cytometers bind, against
sweeps of each resource's count through the twin with that lab; and hand-made share tables
for the search itself."""

from __future__ import annotations

import functools
import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from capacity.twin import CrewConfig, VeinToVeinConfig, simulate_twin
from pmcap.twin_sizing import size_by_year, sizing_sentence, year_shares
from tests.helpers import fixed_process, make_demand

# two 12-hour shifts, crews of 2, everyone at work: crews on shift = floor(operators / 4)
CREWS = CrewConfig(crew_size=2, shifts_per_day=2, hours_per_shift=12, start_hours=12,
                   harvest_hours=12, attendance=1.0)  # fmt: skip
PER_CREW = 4
TARGET = 33.0  # days; with no wait a lot takes 31 days
SPEC = fixed_process(culture_days=9, changeover_days=1)
SUITES = 60  # suites never bind: crews do


@functools.cache
def demand():
    # 2027 about 25 patients a month, 2028 about 60: the second year needs more crews
    rng = np.random.default_rng(11)
    return make_demand(np.c_[rng.poisson(25, (6, 12)), rng.poisson(60, (6, 12))])


@functools.cache
def twin_at(n_crews: int):
    return simulate_twin(demand(), SPEC, SUITES, operators=n_crews * PER_CREW, crews=CREWS,
                         vein_to_vein=VeinToVeinConfig(target_days=TARGET), seed=3)  # fmt: skip


def scored(n_crews: int) -> dict[int, float]:
    """Share of each year's patients not infused within TARGET, from per-patient outcomes."""
    twin = twin_at(n_crews)
    day = twin["apheresis_day"].values
    patient = np.isfinite(day)
    year = np.where(day < 365, 2027, 2028)  # 2027 has 365 days from 2027-01-01
    treated = twin["outcome"].values == 0
    on_time = treated & (np.where(treated, twin["v2v_days"].values, np.inf) <= TARGET)
    return {
        y: float((patient & ~on_time & (year == y)).sum() / (patient & (year == y)).sum())
        for y in (2027, 2028)
    }


def test_year_shares_are_the_per_patient_shares_of_each_year():
    for k in (2, 4, 8):
        shares = year_shares(twin_at(k))
        expected = scored(k)
        assert list(shares.index) == [2027, 2028]
        for y in (2027, 2028):
            assert shares[y] == pytest.approx(expected[y], abs=1e-12)


# 0.005: 2 crews in 2027, 4 in 2028; 0.3: 1 and 3 (the sweep's shares, scored above)
@pytest.mark.parametrize("epsilon", [0.005, 0.3])
def test_each_year_gets_the_fewest_crews_that_meet_and_one_fewer_misses(epsilon):
    sweep = {k: scored(k) for k in range(1, 9)}
    calls = []

    def shares_at(k):
        calls.append(k)
        return year_shares(twin_at(k))

    needed, tried = size_by_year(shares_at, start=6, low=1, epsilon=epsilon, cap=64)
    assert calls[0] == 6 and len(calls) == len(set(calls))  # each count simulated once
    for y in (2027, 2028):
        k = needed[y]
        # the first count of the exhaustive sweep that meets the level in that year
        assert k == min(c for c, s in sweep.items() if s[y] <= epsilon), (y, sweep)
        assert sweep[k][y] <= epsilon
        assert k == 1 or sweep[k - 1][y] > epsilon  # same random numbers, one crew fewer
        assert tried[k][y] == pytest.approx(sweep[k][y], abs=1e-12)
    assert needed[2028] > needed[2027]  # more patients, more crews
    assert len(calls) <= 5  # shared bisection, not a sweep


# --- an instrument type binds: size_twin's per-type search against exhaustive sweeps -------
# Two assays: sterility (0.5 h on a BacT/ALERT, 14 days) and phenotype (2 tests of 24 h on a
# flow cytometer, 10% retested, 1 day). About 15 lots a month in 2027 and 40 in 2028, i.e.
# 15 x 2 x 24 x 1.1 / 730 ~ 1.1 and 2.9 cytometer-hours of work per hour: the cytometers bind,
# about 2 of them in 2027 and 4 in 2028 (the sweep below settles it). 60 suites, 40 operators
# (10 crews), 20 analysts on a 24/7 roster, 1 BacT/ALERT (0.5 h a lot, ~1% busy). No
# contamination (a level within reach), target 33 days (31 with no wait), 5% over target.
INSTRUMENT_PANEL = [
    {"assay": "sterility", "tests_per_lot": 1, "hands_on_hours": 1, "turnaround_days": 14,
     "instrument": "bact-alert", "instrument_hours": 0.5, "retest_rate": 0.0},
    {"assay": "phenotype", "tests_per_lot": 2, "hands_on_hours": 1, "turnaround_days": 1,
     "instrument": "flow-cytometer", "instrument_hours": 24, "retest_rate": 0.1},
]  # fmt: skip
INSTRUMENT_SPEC = fixed_process(culture_days=9, changeover_days=1, qc=INSTRUMENT_PANEL)
INSTRUMENT_EPSILON = 0.05
LAB_MONTHS = 24 + 2  # the twin's months and the two the lab adds for the last panels


def instrument_scenario(cytometers: int):
    """The scenario fields size_twin reads: [facility.twin], [facility.qc_lab] and
    facility.operator_fte (the real sections, so their configs are the run's)."""
    from types import SimpleNamespace

    from pmcap.scenario.facility import QCLabSection, TwinSection

    twin = TwinSection(
        size=True,
        epsilon=INSTRUMENT_EPSILON,
        crews={"crew_size": 2, "shifts_per_day": 2, "hours_per_shift": 12, "start_hours": 12,
               "harvest_hours": 12, "attendance": 1.0},
        downtime={"contamination_rate": 0.0, "contamination_remakes": 0},
        vein_to_vein={"target_days": TARGET},
    )  # fmt: skip
    lab = QCLabSection(
        analysts=20,
        instruments={"bact-alert": 1, "flow-cytometer": cytometers},
        hours_per_day=24,
        days_per_week=7,
        shift_start_hour=0,
        monitoring_hours_per_month=0,
    )
    return SimpleNamespace(facility=SimpleNamespace(twin=twin, qc_lab=lab, operator_fte=40.0))


@functools.cache
def instrument_demand():
    rng = np.random.default_rng(11)
    return make_demand(np.c_[rng.poisson(15, (6, 12)), rng.poisson(40, (6, 12))])


def lab_twin(cytometers: int, operators=None, analysts=None, instruments=None):
    """The twin of instrument_scenario(cytometers), counts replaced as pmcap.run.run_twin
    replaces them: the ``simulate`` size_twin is given."""
    import dataclasses

    from capacity.twin import QCLabStage

    facility = instrument_scenario(cytometers).facility
    crews, downtime, v2v = facility.twin.configs()
    lab = facility.qc_lab.lab([INSTRUMENT_SPEC])
    if instruments:
        lab = dataclasses.replace(lab, instruments={**lab.instruments, **instruments})
    stage = QCLabStage(lab, seed=3, analysts=analysts)
    twin = simulate_twin(instrument_demand(), INSTRUMENT_SPEC, 60,
                         operators=facility.operator_fte if operators is None else operators,
                         crews=crews, downtime=downtime, vein_to_vein=v2v, qc_stage=stage,
                         seed=3)  # fmt: skip
    return twin, stage.result


@functools.cache
def lab_scored(cytometers: int, resource: str, count: int) -> dict[int, float]:
    """Share of each year's patients not infused within TARGET, from per-patient outcomes,
    with ``count`` of ``resource`` (``crews``: 4 operators a crew) and the rest as
    instrument_scenario(cytometers) has it."""
    if resource == "crews":
        twin, _ = lab_twin(cytometers, operators=4 * count)
    elif resource == "analysts":
        twin, _ = lab_twin(cytometers, analysts=np.full((6, LAB_MONTHS), float(count)))
    else:
        twin, _ = lab_twin(cytometers, instruments={resource: count})
    day = twin["apheresis_day"].values
    patient = np.isfinite(day)
    year = np.where(day < 365, 2027, 2028)
    treated = twin["outcome"].values == 0
    on_time = treated & (np.where(treated, twin["v2v_days"].values, np.inf) <= TARGET)
    return {
        y: float((patient & ~on_time & (year == y)).sum() / (patient & (year == y)).sum())
        for y in (2027, 2028)
    }


# 3 cytometers: the lab is short in 2028 (it needs 4); 6: two to spare in every year
@pytest.mark.parametrize("cytometers", [3, 6])
def test_an_instrument_type_that_binds_is_sized_and_the_rest_are_not_inflated(cytometers):
    from pmcap.twin_sizing import size_twin

    calls = []

    def simulate(**counts):
        calls.append(counts)
        return lab_twin(cytometers, **counts)

    twin, _ = lab_twin(cytometers)
    table = size_twin(instrument_scenario(cytometers), twin, simulate)
    got = {(r.resource, r.year): r for r in table.itertuples()}
    assert set(got) == {(k, y) for k in ("operators", "analysts", "bact-alert", "flow-cytometer")
                        for y in (2027, 2028)}  # fmt: skip
    at_lab = lab_scored(cytometers, "flow-cytometer", cytometers)  # the run's twin, scored
    assert (at_lab[2028] > INSTRUMENT_EPSILON) == (cytometers == 3) and at_lab[2027] == 0
    available = {"operators": 40, "analysts": 20, "bact-alert": 1, "flow-cytometer": cytometers}
    for (resource, y), row in got.items():
        assert row.available == available[resource]
        assert row.p_over_target_at_available == pytest.approx(at_lab[y], abs=1e-12)

    # the cytometers: per year the fewest count of the exhaustive sweep 1..6 that meets the
    # level (the same random numbers at every count), and one fewer misses
    sweep = {k: lab_scored(cytometers, "flow-cytometer", k) for k in range(1, 7)}
    values = list(sweep.values())  # the search's premise holds in this case
    assert all(a[y] >= b[y] for a, b in zip(values, values[1:], strict=False) for y in a)
    flow = {y: min(k for k, s in sweep.items() if s[y] <= INSTRUMENT_EPSILON) for y in at_lab}
    assert flow == {2027: 2, 2028: 4}, sweep  # the case binds as designed, and by year
    for y, k in flow.items():
        row = got["flow-cytometer", y]
        assert row.needed == k
        assert sweep[k][y] <= INSTRUMENT_EPSILON < sweep[k - 1][y]
        assert row.p_over_target_at_needed == pytest.approx(sweep[k][y], abs=1e-12)

    # the resources that do not bind are not inflated: in a year the lab's cytometers meet
    # the level each is the fewest count of its own sweep (analysts and the BacT/ALERT: 1,
    # operators: 4 a crew); in a year they miss, no count alone meets, even the search's cap
    caps = {"crews": 80, "analysts": 160, "bact-alert": 16}  # 8 x 10 crews, 8 x 20, 16
    tops = {"crews": 10, "analysts": 4, "bact-alert": 4}  # the sweeps: up to what they need
    for resource, name, per in (("crews", "operators", 4), ("analysts", "analysts", 1),
                                ("bact-alert", "bact-alert", 1)):  # fmt: skip
        for y in (2027, 2028):
            row = got[name, y]
            if at_lab[y] > INSTRUMENT_EPSILON:
                assert cytometers < flow[y]
                assert np.isnan(row.needed) and np.isnan(row.p_over_target_at_needed)
                assert lab_scored(cytometers, resource, caps[resource])[y] > INSTRUMENT_EPSILON
                continue
            own = [lab_scored(cytometers, resource, k)[y] for k in range(1, tops[resource] + 1)]
            fewest = 1 + next(i for i, s in enumerate(own) if s <= INSTRUMENT_EPSILON)
            assert row.needed == per * fewest, (name, y, own)
            assert row.p_over_target_at_needed == pytest.approx(own[fewest - 1], abs=1e-12)
            if resource != "crews":
                assert fewest == 1

    # each instrument run changed the type being sized alone, once per count tried
    sized = [c["instruments"] for c in calls if "instruments" in c]
    assert all(len(c) == 1 for c in sized)
    runs = table.attrs["twin_runs"]
    assert runs["flow-cytometer"] == sum("flow-cytometer" in c for c in sized) <= 7
    # the report names the cytometers when the lab is short of them, and only then
    short = "QC instruments short: flow-cytometer 4 from 2028 (the lab has 3)"
    assert (short in sizing_sentence(table)) == (cytometers == 3)
    assert "bact-alert" not in sizing_sentence(table)


def table(shares: dict[int, list[float]]):
    """A share table: count -> share per year (2030, 2031), counts 1..len."""
    return lambda k: pd.Series({y: v[min(k, len(v)) - 1] for y, v in shares.items()})


def test_the_search_on_a_hand_made_table():
    # 2030 meets 0.1 from 3, 2031 from 7; 2032 never (the cap is 10)
    shares = {2030: [0.9, 0.5, 0.1, 0.05], 2031: [1, 1, 1, 1, 0.5, 0.2, 0.08, 0.0],
              2032: [1.0] * 10}  # fmt: skip
    needed, tried = size_by_year(table(shares), start=4, low=1, epsilon=0.1, cap=10)
    assert needed == {2030: 3, 2031: 7, 2032: None}
    assert list(tried)[:2] == [4, 10]  # the cap right after the start: 2032 settled at once
    # a year no count meets costs two runs: the start and the cap
    calls = []
    never = table({2032: [1.0] * 10})
    needed, _ = size_by_year(lambda k: calls.append(k) or never(k), start=4, low=1,
                             epsilon=0.1, cap=10)  # fmt: skip
    assert needed == {2032: None} and calls == [4, 10]
    # a start that already meets everywhere still finds the fewest
    needed, _ = size_by_year(table({2030: shares[2030]}), start=9, low=1, epsilon=0.1, cap=10)
    assert needed == {2030: 3}
    # a low that already meets is the answer
    needed, _ = size_by_year(table({2030: shares[2030]}), start=9, low=4, epsilon=0.1, cap=10)
    assert needed == {2030: 4}


def test_the_report_sentence_names_the_year_with_the_largest_gap():
    frame = pd.DataFrame(
        {
            "year": [2028, 2029, 2028, 2029],
            "resource": ["operators", "operators", "analysts", "analysts"],
            "needed": [30.0, 34.0, 8.0, 9.0],
            "available": [28.0, 28.0, 12.0, 12.0],
            "p_over_target_at_needed": [0.05, 0.09, 0.1, 0.1],
            "p_over_target_at_available": [0.2, 0.4, 0.05, 0.05],
            "target_days": 35.0,
            "epsilon": 0.1,
        }
    )
    text = sizing_sentence(frame)
    assert "2029: 34 qualified operators keep P(v2v > 35 d) at most 10%; the plan has 28" in text
    assert "2029: 9 QC analysts keep P(v2v > 35 d) at most 10%; the plan has 12 (enough" in text
    assert text.index("qualified operators") < text.index("QC analysts")
    frame.loc[3, ["needed", "p_over_target_at_needed"]] = np.nan  # 2029: analysts never meet
    assert "2029: no count of QC analysts alone keeps P(v2v > 35 d) at most 10%" in (
        sizing_sentence(frame)
    )
    assert sizing_sentence(None) == ""


LAB = """
[facility.qc_lab]
analysts = 20
instruments = {bact-alert = 8, qpcr = 8, endosafe-pts = 8, flow-cytometer = 8, cell-counter = 8, plate-reader = 8, ddpcr = 8}
"""  # noqa: E501
LAB_TYPES = ("bact-alert", "qpcr", "endosafe-pts", "flow-cytometer", "cell-counter")
LAB_TYPES += ("plate-reader", "ddpcr")


@pytest.fixture(scope="module")
def sized_run(tmp_path_factory):
    from pmcap.run import run_scenario
    from pmcap.scenario import load_scenario
    from tests.pmcap.test_twin_run import SAME_SLOTS, with_twin

    tmp = tmp_path_factory.mktemp("twin-sizing")
    section = "draws = 10\nsize = true\nepsilon = 0.2\nvein_to_vein = {target_days = 60}\n"
    path = with_twin(tmp, section, extra=SAME_SLOTS + LAB)
    # 36 months, 60 suites (rooms never bind), 16 operators (2 crews on shift: they bind from
    # 2027), 20 analysts (bind only when operators are many)
    text = path.read_text().replace("horizon_months = 120", "horizon_months = 36")
    text = re.sub(r"^suites = .*$", "suites = 60", text, count=1, flags=re.MULTILINE)
    path.write_text(text.replace("operator_fte = 160", "operator_fte = 16"))
    return run_scenario(load_scenario(path), service_level=False)


def test_the_run_writes_the_sizing_and_each_row_is_a_direct_twin_call(sized_run):
    from capacity.twin import CrewConfig
    from pmcap.report import render_report, twin_section
    from pmcap.run import run_twin
    from pmcap.runfolder import twin_tables

    result = sized_run
    table = result.twin_sizing
    assert "twin_sizing_s" in result.timings
    assert twin_tables(result, (0.1, 0.5, 0.9))["twin_sizing.csv"] is table

    def path(count):  # analysts: a constant (draw, month) headcount
        month = result.twin["month"].values[:1]
        return xr.DataArray(np.full((10, 1), float(count)), dims=("draw", "month"),
                            coords={"month": month})  # fmt: skip

    def direct(**counts):
        twin, _ = run_twin(result.scenario, result.world, result.processes, result.workforce,
                           result.plans, **counts)  # fmt: skip
        return year_shares(twin)

    crews = CrewConfig(crew_size=2, shifts_per_day=2, hours_per_shift=8)  # the example's
    at_available = year_shares(result.twin)
    checked = []
    for _, row in table.iterrows():
        y = int(row["year"])
        assert row["p_over_target_at_available"] == pytest.approx(at_available[y], abs=1e-12)
        assert row["available"] == {"operators": 16.0, "analysts": 20.0}.get(row["resource"], 8)
        if np.isnan(row["needed"]):  # the other resource binds: no count of this one meets
            assert np.isnan(row["p_over_target_at_needed"]) and at_available[y] > 0.2
            continue
        needed = int(row["needed"])
        if row["resource"] == "operators":
            fewer = needed - 1  # the fewest operators for its crews: one fewer is one crew fewer
            k = crews.crews_on_shift(np.array([needed, fewer]))
            assert k[0] == k[1] + 1
            at, below = direct(operators=needed), direct(operators=fewer)
        elif row["resource"] == "analysts":
            fewer = needed - 1
            at, below = (
                direct(analysts=path(needed)),
                direct(analysts=path(fewer)) if fewer else None,
            )
        else:  # an instrument type, the others as the lab has them
            kind, fewer = row["resource"], needed - 1
            at = direct(instruments={kind: needed})
            below = direct(instruments={kind: fewer}) if fewer else None
        assert at[y] == pytest.approx(row["p_over_target_at_needed"], abs=1e-12)
        assert at[y] <= 0.2
        if below is not None and needed > (8 if row["resource"] == "operators" else 1):
            assert below[y] > 0.2  # the same random numbers: one fewer misses
            checked.append(row["resource"])
    # operators bind from 2027 (rows checked both ways), analysts only in the years they do not
    assert checked.count("operators") >= 2 and "analysts" in checked, table
    # every instrument type of the lab is sized on its own
    assert set(table["resource"]) == {"operators", "analysts", *LAB_TYPES}
    sentence = twin_section(result)["sizing"]
    assert sentence.startswith("Sizing at the service level (twin_sizing.csv): ")
    # the operators' clause: the year whose need exceeds the 16 operators the most
    ops = table[table["resource"] == "operators"].dropna(subset=["needed"])
    worst = ops.loc[(ops["needed"] - ops["available"]).idxmax()]
    assert (
        f"{int(worst['year'])}: {int(worst['needed'])} qualified operators keep P(v2v > 60 d) "
        "at most 20%; the plan has 16"
    ) in sentence
    html = render_report(result, "", "test")
    assert html.index('id="twin-heading"') < html.index('id="twin-sizing"')


def test_the_qc_lab_follows_the_qc_hiring_plan(tmp_path):
    from capacity import plan_requisitions
    from pmcap.run import run_scenario, run_twin
    from pmcap.scenario import load_scenario
    from tests.pmcap.test_twin_run import ONE_ANALYST, SAME_SLOTS, with_twin

    # 6 analysts today against a QC FTE need of about 10-25 (P10-P90): the plan hires
    lab = ONE_ANALYST.replace("analysts = 1", "analysts = 6")
    path = with_twin(
        tmp_path, "draws = 10\n", extra=SAME_SLOTS + lab + "\n[workforce]\nqc = true\n"
    )
    path.write_text(path.read_text().replace("horizon_months = 120", "horizon_months = 36"))
    result = run_scenario(load_scenario(path), service_level=False)
    plan = result.qc_workforce
    section = result.scenario.workforce
    # the plan is the operators' planner on the qc_fte need, from the lab's one analyst
    need = result.total["qc_fte"].transpose("draw", "month")
    direct = plan_requisitions(need, config=section.config(), initial_qualified=6,
                               target=section.shortfall_target,
                               seed=result.scenario.run.seed + 1)  # fmt: skip
    np.testing.assert_array_equal(plan.simulation["qualified"].values,
                                  direct.simulation["qualified"].values)  # fmt: skip
    qualified = plan.simulation["qualified"].isel(draw=slice(0, 10)).clip(min=1)
    assert float(qualified.isel(month=-1).mean()) > 6  # hired beyond today's analysts
    assert result.twin.attrs["analysts"] == "workforce"
    # the run's twin is the twin given that headcount, and not the one-analyst lab's
    again = functools.partial(run_twin, result.scenario, result.world, result.processes,
                              result.workforce, result.plans)  # fmt: skip
    with_path, _ = again(analysts=qualified)
    np.testing.assert_array_equal(result.twin["v2v_days"].values, with_path["v2v_days"].values)
    fixed, _ = again()
    assert fixed.attrs["analysts"] == "facility.qc_lab"
    late = slice(-12, None)
    assert np.nanmean(fixed["v2v_p90_days"].values[:, late]) > np.nanmean(
        result.twin["v2v_p90_days"].values[:, late]
    )
