"""`pmcap init`'s starter scenario, `run.title`, and paths in messages as the user wrote them."""

from __future__ import annotations

import re
import tomllib
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from capacity.distributions import Param
from capacity.process import ProcessSpec, QCAssay
from forecast.data import phase_durations, phase_transitions
from forecast.phase import transition_counts
from pmcap import scenario as scenario_module
from pmcap.cli import app
from pmcap.report import report_title
from pmcap.scenario import ModelsConfig, ProgramConfig, Scenario, example_scenario_path

runner = CliRunner()
DISTRIBUTION_KEYS = {"beta", "triangular", "uniform", "lognormal", "median", "p90"}


@pytest.fixture
def starter(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["init", "my-plan"])
    assert result.exit_code == 0, result.output
    return Path("my-plan") / "scenario.toml"


def _models() -> list[type[BaseModel]]:
    """Every pydantic model of the scenario file, and of the processes it may change."""
    found = [ProcessSpec, QCAssay]
    for obj in vars(scenario_module).values():
        if isinstance(obj, type) and issubclass(obj, BaseModel) and obj.__module__.startswith("pm"):
            found.append(obj)
    return found


def _commented_keys(text: str) -> dict[str, list[str]]:
    """Each key written in ``text`` (also inside inline tables) -> the comments of its lines
    (empty where a line has none). A comment is what follows `#` outside a string."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        code, _, comment = line.partition("#")  # no '#' inside the starter's strings
        if code.strip().startswith("["):
            continue
        for key in re.findall(r"([A-Za-z_][A-Za-z0-9_-]*)\s*=", code):
            out.setdefault(key, []).append(comment.strip())
    return out


def test_init_writes_a_starter_that_validates_as_written(starter):
    result = runner.invoke(app, ["validate", str(starter)])
    assert result.exit_code == 0, result.output
    assert "3 programs" in result.output
    # placeholders, not the illustrative example verbatim
    text = starter.read_text()
    assert text != example_scenario_path().read_text()
    assert "PLACEHOLDER" in text and "CART-A" not in text
    names = sorted(p.name for p in starter.parent.iterdir())
    assert names == [
        "launched-patients.csv",
        "scenario.toml",
        "trial-patients.csv",
        "trial-sites.csv",
    ]


def test_every_key_of_the_starter_carries_a_comment(starter):
    text = starter.read_text()
    raw = tomllib.loads(text)
    fields = {name for model in _models() for name in model.model_fields}
    fields |= {"from"}  # SuiteStep.from_'s alias
    fields |= set(typing.get_args(scenario_module.PHASE))  # trial_plan.PHASE
    written = _commented_keys(text)
    used: set[str] = set()

    def walk(node, under_process=False):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in DISTRIBUTION_KEYS:
                    continue
                if not under_process or not isinstance(value, dict):
                    used.add(key)
                walk(value, under_process=key == "process" and isinstance(value, dict))
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(raw)
    # process names under [process.NAME] are not keys of a model
    used -= set(raw.get("process", {}))
    assert used <= fields, f"not a scenario or process key: {sorted(used - fields)}"
    # every key the starter writes as `key = value` has a comment on each of its lines;
    # the tables ([run], [[program]], ...) are headers, not keys written with `=`
    tables = {k for k in used if k not in written}
    assert tables <= {
        *("run", "models", "program", "enrollment", "uptake", "ppq", "trial_plan"),
        *("facility", "service_level", "costs", "process"),
    }
    missing = sorted(k for k in used & set(written) if not all(written[k]))
    assert not missing, f"keys without a comment: {missing}"
    assert len(used) >= 50  # every stage's keys, not a trimmed file


def _comment_of(text: str, key: str) -> str:
    """The comment of ``key = ...`` and the comment-only lines that continue it."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(rf"\s*{re.escape(key)}\s*=", line):
            parts = [line.partition("#")[2]]
            for nxt in lines[i + 1 :]:
                if not re.match(r"\s{8,}#", nxt):
                    break
                parts.append(nxt.strip().lstrip("#"))
            return " ".join(p.strip() for p in parts)
    raise AssertionError(key)


def _literal_values(model: type[BaseModel], name: str) -> list[str]:
    annotation = model.model_fields[name].annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    values = []
    for a in args:
        values += list(typing.get_args(a)) if typing.get_origin(a) is typing.Literal else []
    return values


def test_the_starter_comments_list_the_allowed_values(starter):
    text = starter.read_text()
    for key, model in (("stage", ProgramConfig), ("phase", ProgramConfig)):
        comment = _comment_of(text, key)
        for value in _literal_values(model, key):
            assert f'"{value}"' in comment, (key, value, comment)
    comment = _comment_of(text, "phase_table")
    for value in _literal_values(ModelsConfig, "phase_table"):
        assert f'"{value}"' in comment, (value, comment)
    # the group names of the starter's phase table, from the table itself
    groups, _, _ = transition_counts(phase_transitions(), "modality")
    comment = _comment_of(text, "group")
    assert all(g in comment for g in groups), comment
    durations = phase_durations()
    if "statistic" in durations:
        durations = durations[durations["statistic"] == "mean"]
    comment = _comment_of(text, "duration_group")
    assert all(g in comment for g in set(durations["group"].astype(str))), comment


def test_the_starter_shows_a_process_change_that_is_applied(starter):
    from pmcap.inputs import scenario_processes
    from pmcap.scenario import load_scenario

    sc = load_scenario(starter)
    assert sc.process, "the starter shows a [process.NAME] table"
    processes = scenario_processes(sc)
    (name, fields), *_ = sc.process.items()
    changed = [s for s in processes.values() if s.name == name]
    assert changed
    for spec in changed:
        for key, value in fields.items():
            assert getattr(spec, key) == Param.parse(value)


def test_run_title_names_the_report(starter):
    from pmcap.scenario import load_scenario

    sc = load_scenario(starter)
    assert sc.run.title == "PLACEHOLDER capacity plan"
    assert report_title(sc) == "PLACEHOLDER capacity plan"
    assert report_title(sc, "CASE (sweep: S)") == "CASE (sweep: S)"  # a sweep names its case
    starter.write_text(starter.read_text().replace('title = "PLACEHOLDER capacity plan"', ""))
    assert report_title(load_scenario(starter)) == "my-plan/scenario.toml"  # as before


def test_an_empty_title_is_refused(starter):
    starter.write_text(starter.read_text().replace('"PLACEHOLDER capacity plan"', '""'))
    result = runner.invoke(app, ["validate", str(starter)])
    assert result.exit_code == 2
    assert "run.title" in result.output


def test_scenario_models_are_all_known():
    # the walk above sees every model of the scenario file
    names = {m.__name__ for m in _models()}
    assert {"RunConfig", "ProgramConfig", "FacilityConfig", "ServiceLevel", "SuiteStep"} <= names
    assert Scenario.__name__ in names


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))


RELATIVE = [
    # (file, old, new, the message starts with)
    (
        "trial-patients.csv",
        "SITE-02,2026-05-11",
        "SITE-02,11-05-2026",
        "my-plan/trial-patients.csv: row 5",
    ),
    (
        "trial-patients.csv",
        "SITE-02,2026-06-08,enrolled,false",
        "SITE-02,2026-06-08,enrolled,maybe",
        "my-plan/trial-patients.csv: row 6: treated",
    ),
    ("trial-sites.csv", "cap\n", 'cap\n"unclosed\n', "my-plan/trial-sites.csv"),
    ("launched-patients.csv", "2025Q4,22", "2025Q9,22", "my-plan/launched-patients.csv: row 3"),
    (
        "scenario.toml",
        'sites = "trial-sites.csv"',
        'sites = "gone.csv"',
        "my-plan/scenario.toml: program[0] (TRIAL-PROGRAM): enrollment.sites: file "
        "my-plan/gone.csv not found",
    ),
    (
        "scenario.toml",
        'process = "car-t-autologous-automated"',
        'process = "mine.toml"',
        "my-plan/scenario.toml: program[1] (PIPELINE-PROGRAM): process: file "
        "my-plan/mine.toml not found",
    ),
    (
        "scenario.toml",
        'group = "CAR-T"             # phase-table group for',
        'group = "CART"  #',
        "my-plan/scenario.toml: program 'TRIAL-PROGRAM': group 'CART'",
    ),
    (
        "scenario.toml",
        "[process.car-t-autologous-manual]",
        "[process.other]",
        "my-plan/scenario.toml: process.other",
    ),
]


@pytest.mark.parametrize(("name", "old", "new", "start"), RELATIVE)
def test_messages_name_paths_as_the_user_wrote_them(starter, name, old, new, start):
    _edit(starter.parent / name, old, new)
    result = runner.invoke(app, ["validate", str(starter)])
    assert result.exit_code == 2, result.output
    message = result.output.removeprefix("pmcap: error: ").strip()
    assert message.startswith(start), message
    assert str(Path.cwd()) not in result.output  # relative stays relative


def test_a_bad_process_file_is_named_as_written(starter):
    (starter.parent / "mine.toml").write_text('name = "mine"\nculture_days = -1\n')
    _edit(starter, 'process = "car-t-autologous-automated"', 'process = "mine.toml"')
    result = runner.invoke(app, ["validate", str(starter)])
    assert result.exit_code == 2, result.output
    assert "my-plan/mine.toml" in result.output and str(Path.cwd()) not in result.output
