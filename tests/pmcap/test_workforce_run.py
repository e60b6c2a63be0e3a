"""The optional ``[workforce]`` table: checked at the door, planned in ``pmcap run``, written
to ``workforce.csv``."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from capacity import plan_requisitions
from capacity.errors import InputError
from pmcap.scenario import example_scenario_path, load_scenario


def with_workforce(tmp_path: Path, table: str, draws: int = 40) -> Path:
    folder = tmp_path / "sc"
    shutil.copytree(example_scenario_path().parent, folder)
    path = folder / "scenario.toml"
    text = path.read_text()
    assert text.count("draws = 1000\nseed") == 1
    text = text.replace("draws = 1000\nseed", f"draws = {draws}\nseed")
    path.write_text(text + "\n[workforce]\n" + table)
    return path


BAD = [
    ("mentor_ratio = 0", "workforce.mentor_ratio: trainees per mentor must be a number > 0"),
    ("attrition_per_year = -0.1", "workforce.attrition_per_year: an annual share leaving"),
    ("training_months = 0", "workforce.training_months: must be > 0 months"),
    ("training_months = {uniform = [-1, 2]}", "workforce.training_months: must be > 0 months"),
    ("lead_time_months = -2", "workforce.lead_time_months: must be >= 0 months"),
    ("mentor_share = 2", "workforce.mentor_share: share of a mentor's hours"),
    ('mentor_ratio = "2"', "workforce.mentor_ratio: expected a number, got '2'"),
    ("shortfall_target = 1", "workforce.shortfall_target: must be < 1, got 1"),
    ("mentor_ration = 2", "workforce.mentor_ration: unknown key"),
]


@pytest.mark.parametrize("line, message", BAD, ids=[b[0] for b in BAD])
def test_bad_workforce_keys_are_refused_naming_the_key(tmp_path, line, message):
    path = with_workforce(tmp_path, line + "\n")
    with pytest.raises(InputError) as err:
        load_scenario(path)
    assert str(err.value).startswith(f"{path}: {message}"), str(err.value)


def test_run_plans_requisitions_and_writes_workforce_csv(tmp_path):
    from pmcap.run import run_scenario
    from pmcap.runfolder import write_run

    path = with_workforce(
        tmp_path, "training_months = {uniform = [3, 6]}\nmentor_ratio = 3\nshortfall_target = 0.2\n"
    )
    sc = load_scenario(path)
    result = run_scenario(sc, service_level=False)
    config = sc.workforce.config()
    assert config.mentor_ratio == 3 and config.training_months.args == (3.0, 6.0)
    # the plan is capacity.plan_requisitions on the facility's operator need, starting from
    # facility.operator_fte qualified operators, with the run's seed
    expected = plan_requisitions(
        result.total["operator_fte"].transpose("draw", "month"),
        config=config,
        initial_qualified=sc.facility.operator_fte,
        target=0.2,
        seed=sc.run.seed,
    )
    pd.testing.assert_frame_equal(result.workforce.by_month, expected.by_month)
    assert result.workforce.requisitions["requisitions"].sum() > 0
    assert "workforce_s" in result.timings
    out = tmp_path / "out"
    out.mkdir()
    names = write_run(out, result, xlsx=False, version="t", t0=time.perf_counter())
    assert "workforce.csv" in names
    written = pd.read_csv(out / "workforce.csv")
    assert list(written.columns) == list(expected.by_month.columns)
    np.testing.assert_array_equal(
        written["requisitions"], expected.requisitions["requisitions"].to_numpy()
    )
    np.testing.assert_allclose(
        written["shortfall_probability"], expected.by_month["shortfall_probability"], atol=1e-6
    )
    # the report names workforce.csv's first requisition month and count, so a planner does
    # not act on the operator hiring line (no training, no attrition) alone
    from pmcap.report import key_facts

    first = written[written["requisitions"] > 0].iloc[0]
    fact = [f for f in key_facts(result) if f.startswith("With [workforce]")]
    assert fact == [
        f"With [workforce] (workforce.csv): open the first operator requisitions "
        f"{first['month'][:7]} ({first['requisitions']:g}), counting recruiting, training, "
        "mentoring and attrition. The operator lines above do not count them yet; where the "
        "two differ, plan hiring from workforce.csv."
    ]


def test_without_the_table_nothing_is_planned(tmp_path):
    from pmcap.run import run_scenario

    folder = tmp_path / "sc"
    shutil.copytree(example_scenario_path().parent, folder)
    path = folder / "scenario.toml"
    path.write_text(path.read_text().replace("draws = 1000\nseed", "draws = 30\nseed"))
    sc = load_scenario(path)
    assert sc.workforce is None
    result = run_scenario(sc, service_level=False)
    assert result.workforce is None and "workforce_s" not in result.timings
    from pmcap.report import key_facts

    assert not [f for f in key_facts(result) if "workforce" in f]


def test_a_sweep_can_vary_and_add_workforce_keys():
    from pmcap.sweep.cases import make_cases

    base = load_scenario(example_scenario_path())
    assert base.workforce is None
    cases, keys = make_cases(
        base,
        [("base", []), ("low attrition", [(("workforce", "attrition_per_year"), 0.05)])],
        grid=[(("workforce", "mentor_ratio"), [1, 3])],
        where="sweep.toml",
    )
    assert keys == ["workforce.mentor_ratio", "workforce.attrition_per_year"]
    got = {c.name: c.scenario.workforce for c in cases}
    assert got["base, workforce.mentor_ratio=3"].mentor_ratio == 3
    assert got["base, workforce.mentor_ratio=3"].attrition_per_year == {"beta": [3, 17]}
    assert got["low attrition, workforce.mentor_ratio=1"].attrition_per_year == 0.05
    with pytest.raises(InputError, match="workforce.mentor_ratio"):
        make_cases(base, [("bad", [(("workforce", "mentor_ratio"), 0)])], where="sweep.toml")
