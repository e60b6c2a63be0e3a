"""The documentation against the code.

* ``docs/scenario.md`` lists exactly the keys of the scenario models (``pmcap.scenario``, with
  ``[process.NAME]`` taking the fields of ``capacity.ProcessSpec``), each with the default
  the code has;
* ``docs/outputs.md`` lists exactly the columns (metrics, variables, keys) the files of a real
  run and sensitivity sweep have, and every function it names can be imported;
* the README is at most 150 lines, holds the two set-up commands CI runs, and every relative
  link in it and in ``docs/`` leads to a file of the repository.

Tables are read by their header: a scenario key is the first cell of a row of a table headed
``Key``; an output's columns are the first cells of the tables headed ``Column`` (``Metric``,
``Variable``, ``Key``) in the section ``## `FILE``` of outputs.md. Upper-case placeholders in a
documented name (``STAT``, ``RESOURCE``, ``YEAR`` ...) stand for the values given per file in
:func:`placeholders`.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import tomllib
import typing
from pathlib import Path

import pandas as pd
import pytest
import tomli_w
import xarray as xr
from pydantic import BaseModel

from capacity import ProcessSpec
from pmcap.scenario import Scenario, example_scenario_path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
SCENARIO_DOC = DOCS / "scenario.md"
OUTPUTS_DOC = DOCS / "outputs.md"
SETUP_COMMANDS = (  # byte for byte as in the README and .ci/run
    "python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/pmcap run --out runs/example",  # noqa: E501
    'python3 -m venv .venv && .venv/bin/pip install -q -e ".[test]" && .venv/bin/pytest -m "slow or not slow"',  # noqa: E501
)
REQUIRED = "required"  # a key without a default


# --- reading the Markdown tables ----------------------------------------------------------------
def tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every pipe table of ``text``: (header cells, rows of cells); ``\\|`` is a literal bar."""
    lines = text.splitlines()
    found = []
    i = 0
    while i < len(lines) - 1:
        if lines[i].startswith("|") and re.fullmatch(r"\|[-| :]+\|", lines[i + 1].strip()):
            header = cells(lines[i])
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(cells(lines[i]))
                i += 1
            found.append((header, rows))
        else:
            i += 1
    return found


def cells(line: str) -> list[str]:
    parts = re.split(r"(?<!\\)\|", line.strip())[1:-1]
    return [p.strip().replace("\\|", "|") for p in parts]


def code(cell: str) -> str:
    """The name in a cell written as code: ``"`run.draws`"`` -> ``"run.draws"``."""
    match = re.fullmatch(r"`([^`]+)`", cell)
    assert match, f"expected a name in backticks, got {cell!r}"
    return match[1]


def sections(text: str) -> dict[str, str]:
    """``## `FILE` `` sections of outputs.md: file name -> its text."""
    out: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("## "):
            match = re.fullmatch(r"## `([^`]+\.[a-z]+)`", line.strip())
            current = match[1] if match else None
            if current:
                out[current] = ""
        elif current:
            out[current] += line + "\n"
    return out


# --- the scenario reference -----------------------------------------------------------------------
def _models(annotation: typing.Any) -> list[type[BaseModel]]:
    """The pydantic models in a field's type (``list[X]``, ``X | None``, ``Annotated[X, ...]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


def scenario_fields() -> dict[str, typing.Any]:
    """Every key of a scenario file (dotted, aliases as written: ``facility.suites.from``)
    -> its pydantic field. A table keyed by phase (``trial_plan``) has ``PHASE`` in its keys;
    ``[process.NAME]`` tables take the fields of :class:`capacity.ProcessSpec`."""
    out: dict[str, typing.Any] = {}

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            key = prefix + (field.alias or name)
            out[key] = field
            annotation = field.annotation
            if typing.get_origin(annotation) is dict:
                key_type, value_type = typing.get_args(annotation)
                slot = "PHASE" if typing.get_origin(key_type) is typing.Literal else "NAME"
                for model_ in _models(value_type):
                    walk(model_, f"{key}.{slot}.")
            else:
                for model_ in _models(annotation):
                    walk(model_, key + ".")

    walk(Scenario, "")
    assert "process" in out, "Scenario has no [process.NAME] overrides any more"
    walk(ProcessSpec, "process.NAME.")
    return out


def code_default(field) -> typing.Any:
    """A field's default as a scenario file writes it (a table of defaults: ``{}``)."""
    if field.is_required():
        return REQUIRED
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return {} if value == type(value).model_validate({}) else value.model_dump(mode="json")
    if hasattr(value, "to_toml"):  # an uncertain number (capacity.distributions.Param)
        return value.to_toml()
    if isinstance(value, tuple):
        return list(value)
    return value


def doc_default(cell: str) -> typing.Any:
    if cell in (REQUIRED, "none"):
        return None if cell == "none" else REQUIRED
    return tomllib.loads(f"value = {code(cell)}")["value"]


def scenario_doc_problems(text: str) -> list[str]:
    """What ``text`` (scenario.md) gets wrong: keys missing or unknown, defaults that differ."""
    documented: dict[str, list[str]] = {}
    for header, rows in tables(text):
        if header[:3] == ["Key", "Type", "Default"]:
            for row in rows:
                documented[code(row[0])] = row
    fields = scenario_fields()
    problems = [
        f"{k}: a key of the scenario, not in the doc" for k in fields if k not in documented
    ]
    problems += [
        f"{k}: in the doc, not a key of the scenario" for k in documented if k not in fields
    ]
    for key in documented.keys() & fields.keys():
        want, got = code_default(fields[key]), doc_default(documented[key][2])
        if want != got:
            problems.append(f"{key}: default {got!r} in the doc, {want!r} in the code")
    return problems


def test_the_scenario_reference_has_every_key_and_its_default():
    assert scenario_doc_problems(SCENARIO_DOC.read_text()) == []


def test_the_scenario_check_fails_on_a_key_left_out_made_up_or_mis_defaulted():
    text = SCENARIO_DOC.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| `run.draws` |"))
    assert scenario_doc_problems(text.replace(row + "\n", "")) == [
        "run.draws: a key of the scenario, not in the doc"
    ]
    made_up = row.replace("`run.draws`", "`run.colour`")
    assert scenario_doc_problems(text.replace(row, row + "\n" + made_up)) == [
        "run.colour: in the doc, not a key of the scenario"
    ]
    assert scenario_doc_problems(text.replace(row, row.replace("`1000`", "`999`"))) == [
        "run.draws: default 999 in the doc, 1000 in the code"
    ]
    process_row = next(
        line for line in text.splitlines() if line.startswith("| `process.NAME.qc.retest_rate` |")
    )
    assert scenario_doc_problems(text.replace(process_row + "\n", "")) == [
        "process.NAME.qc.retest_rate: a key of the scenario, not in the doc"
    ]


# --- the outputs reference ------------------------------------------------------------------------
def documented_names(text: str) -> dict[tuple[str, str], list[list[str]]]:
    """(file, table kind) -> rows, for the tables headed Column, Metric, Variable or Key."""
    out: dict[tuple[str, str], list[list[str]]] = {}
    for name, body in sections(text).items():
        for header, rows in tables(body):
            if header[0] in ("Column", "Metric", "Variable", "Key"):
                out.setdefault((name, header[0]), []).extend(rows)
    return out


def pattern(name: str, slots: dict[str, str]) -> re.Pattern[str]:
    """A documented name as a regex, each placeholder replaced by the alternatives given."""
    if not slots:
        return re.compile(re.escape(name))
    split = re.split(r"(?<![A-Z])(" + "|".join(slots) + r")(?![A-Z])", name)
    return re.compile("".join(f"(?:{slots[p]})" if p in slots else re.escape(p) for p in split))


def name_problems(where: str, documented: list[str], written: list[str], slots: dict) -> list[str]:
    """Written names no documented one matches, and documented ones matching none written."""
    patterns = {d: pattern(d, slots) for d in documented}
    problems = [
        f"{where}: {w!r} is written, not documented"
        for w in written
        if not any(p.fullmatch(w) for p in patterns.values())
    ]
    problems += [
        f"{where}: {d!r} is documented, not written"
        for d, p in patterns.items()
        if not any(p.fullmatch(w) for w in written)
    ]
    return problems


def alternatives(values) -> str:
    return "|".join(re.escape(str(v)) for v in sorted(set(values), key=str))


def placeholders(out: Path, kind: str, file: str, metrics: list[str]) -> dict[str, str]:
    """The placeholders of one file's documented names, from what the run wrote."""
    base = out / "scenarios" / "base"
    sweep = pd.read_csv(out / "sweep.csv")
    slots = {
        ("finance.csv", "Column"): {
            "STAT": "mean|p10|p50|p90",
            "CURRENCY": "[A-Z]{3}",
            "SITE": "facility|CDMO",
        },
        ("plan.csv", "Column"): {"CURRENCY": "[A-Z]{3}"},
        ("materials.csv", "Column"): {"CURRENCY": "[A-Z]{3}"},
        ("vector.csv", "Column"): {"CURRENCY": "[A-Z]{3}"},
        ("vector_campaigns.csv", "Column"): {"CURRENCY": "[A-Z]{3}"},
        ("requirements.csv", "Metric"): {"ASSAY": r"[^\]]+", "INSTRUMENT": r"[^\]]+"},
        ("draws.nc", "Variable"): {
            "METRIC": alternatives(m.split("[")[0] for m in metrics),
            "EVENT": alternatives(pd.read_csv(base / "events.csv")["event"]),
            "NAME": ".+",
        },
        ("sweep.csv", "Column"): {
            "KEY": alternatives(c for c in sweep.columns if "." in c),
            "RESOURCE": "suites|operator_fte|qc_fte|qa_fte",
            "YEAR": r"\d{4}",
        },
        ("sensitivity.csv", "Column"): {"RESOURCE": "suites|operator_fte"},
        ("vein_to_vein.csv", "Column"): {"Q": r"\d+(?:\.\d+)?"},
        ("vein_to_vein.csv", "Metric"): {"CAUSE": r"[^\]]+"},
        ("qc_lab.csv", "Column"): {"Q": r"\d+(?:\.\d+)?"},
        ("qc_lab.csv", "Metric"): {"RESOURCE": r"[^\]]+"},
    }
    return slots.get((file, kind), {})


def written_names(out: Path, file: str, kind: str) -> list[str]:
    """The names one file of the run ``out`` has: CSV columns, metrics, variables, keys."""
    base = out / "scenarios" / "base"
    path = base / file if (base / file).exists() else out / file
    if kind == "Column":
        return list(pd.read_csv(path, nrows=0).columns)
    if kind == "Metric":
        return list(pd.read_csv(path)["metric"].unique())
    if kind == "Variable":
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            return [str(v) for v in ds.data_vars]
    return list(json.loads(path.read_text()))


# instruments of the example's processes' release panels, for the docs run's [facility.qc_lab]
LAB_INSTRUMENTS = {
    name: 1
    for name in ("bact-alert", "qpcr", "endosafe-pts", "flow-cytometer", "cell-counter")
    + ("plate-reader", "ddpcr")
}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A real `pmcap sensitivity` (one input swung) of the example without its trial (no
    enrollment fit), 30 draws over 24 months, on an in-process dask cluster: its base run
    folder holds every file `pmcap run` writes, and the sweep's tables are beside it."""
    from distributed import Client, LocalCluster

    from pmcap.scenario import load_scenario
    from pmcap.sensitivity import run_sensitivity

    folder = tmp_path_factory.mktemp("docs-run")
    raw = tomllib.loads(example_scenario_path().read_text())
    raw["program"] = [p for p in raw["program"] if p["name"] != "CART-A"]
    raw["run"].update(draws=30, horizon_months=24)
    raw["facility"]["service_level"]["draws"] = 10
    raw["workforce"] = {"shortfall_target": 0.1}  # the optional table, for workforce.csv
    raw["network"] = {  # the optional table, for network.csv: one site, one CDMO, one region
        "region_shares": {"US": 1.0},
        "vein_to_vein_days": 30,
        "cost_per_patient_unserved": 1e6,
        "milp_draws": 4,
        "period_months": 12,
        "information_groups": 1,
        "site": [{"name": "CDMO", "kind": "cdmo", "slot_fee_per_month": 1e5}],
        "facility": {"operators": 50},  # for network_operators_cost[SITE]
        "lane": [
            {"region": "US", "site": "facility", "transport_days": 1},
            {"region": "US", "site": "CDMO", "transport_days": 2},
        ],
    }
    # the optional twin (sized) and QC lab, for vein_to_vein.csv, twin_sizing.csv, qc_lab.csv
    raw["facility"]["twin"] = {"draws": 10, "size": True}
    raw["facility"]["qc_lab"] = {"analysts": 4, "instruments": LAB_INSTRUMENTS, "target_days": 21}
    (folder / "scenario.toml").write_text(tomli_w.dumps(raw))
    sales = "cart-c-patients.csv"
    shutil.copyfile(example_scenario_path().parent / sales, folder / sales)
    mp = pytest.MonkeyPatch()
    mp.setenv("PMCAP_CACHE", str(tmp_path_factory.mktemp("cache")))
    try:
        with (
            LocalCluster(
                n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            run_sensitivity(
                load_scenario(folder / "scenario.toml"),
                folder / "out",
                only=["CART-C.uptake.peak_share"],
                client=client,
            )
    finally:
        mp.undo()
    return folder / "out"


def output_doc_problems(text: str, out: Path) -> list[str]:
    documented = documented_names(text)
    metrics = written_names(out, "requirements.csv", "Metric")
    problems = []
    for (file, kind), rows in documented.items():
        names = [code(row[0]) for row in rows]
        slots = placeholders(out, kind, file, metrics)
        problems += name_problems(f"{file} ({kind})", names, written_names(out, file, kind), slots)
    return problems


def test_the_outputs_reference_has_every_column_of_every_file(run):
    documented = documented_names(OUTPUTS_DOC.read_text())
    files = {file for file, _ in documented}
    written = {p.name for p in (run / "scenarios" / "base").iterdir()} | {
        p.name for p in run.iterdir()
    }
    # every table file a run or a sweep writes has its section
    assert {n for n in written if n.endswith((".csv", ".nc", ".json"))} - {"summary.json"} <= files
    assert output_doc_problems(OUTPUTS_DOC.read_text(), run) == []


def test_documented_metric_units_are_the_files_units(run):
    for file in ("requirements.csv", "demand.csv"):
        frame = pd.read_csv(run / "scenarios" / "base" / file)
        units = frame.groupby("metric")["unit"].unique()
        rows = documented_names(OUTPUTS_DOC.read_text())[file, "Metric"]
        for row in rows:
            regex = pattern(code(row[0]), {"ASSAY": r"[^\]]+", "INSTRUMENT": r"[^\]]+"})
            for metric, written in units.items():
                if regex.fullmatch(metric):
                    assert list(written) == [row[1]], (file, metric)


def test_the_outputs_check_fails_on_a_column_left_out_or_made_up(run):
    text = OUTPUTS_DOC.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| `spearman_rho` |"))
    assert output_doc_problems(text.replace(row + "\n", ""), run) == [
        "drivers.csv (Column): 'spearman_rho' is written, not documented"
    ]
    made_up = row.replace("`spearman_rho`", "`pearson_r`")
    assert output_doc_problems(text.replace(row, row + "\n" + made_up), run) == [
        "drivers.csv (Column): 'pearson_r' is documented, not written"
    ]
    # a pattern column stands for all its columns: one statistic fewer leaves some undocumented
    assert pattern("lots_STAT [lots per period]", {"STAT": "mean|p50"}).fullmatch(
        "lots_p50 [lots per period]"
    )


def test_pmcap_capacity_files_have_the_columns_of_pmcap_runs():
    from capacity import bands, requirements, shortfall_probability
    from pmcap.export import shortfall_table
    from tests.helpers import fixed_process, make_demand

    demand = make_demand([[[3], [4], [5]], [[5], [6], [7]]], programs=["A"])
    req = requirements(demand, fixed_process())
    documented = documented_names(OUTPUTS_DOC.read_text())
    for frame, file in (
        (bands(req), "requirements.csv"),
        (shortfall_table(shortfall_probability(req, {"suites": 1})), "shortfall.csv"),
    ):
        assert list(frame.columns) == [code(r[0]) for r in documented[file, "Column"]], file


def resolve(dotted: str) -> typing.Any:
    """The object at a dotted path: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        module_name = ".".join(parts[:i])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and not module_name.startswith(exc.name):
                raise
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def test_every_function_the_outputs_reference_names_exists():
    names = set()
    for rows in documented_names(OUTPUTS_DOC.read_text()).values():
        for row in rows:
            names.update(re.findall(r"`([a-z_]+(?:\.[A-Za-z_]+)+)`", row[-1]))
    assert len(names) > 20
    missing = []
    for name in sorted(names):
        try:
            resolve(name)
        except (ImportError, AttributeError):
            missing.append(name)
    assert missing == [], "docs/outputs.md names functions that are not there"


# --- README and links -----------------------------------------------------------------------------
def test_readme_is_short_and_holds_the_set_up_commands_ci_runs():
    lines = README.read_text().splitlines()
    assert len(lines) <= 150
    # .ci/run runs them with the interpreter it is given ($PY, python3 by default)
    ci = (ROOT / ".ci" / "run").read_text().replace("$PY -m", "python3 -m").splitlines()
    for command in SETUP_COMMANDS:
        assert command in lines, command
        assert command in ci, command


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def test_every_relative_link_leads_to_a_file_of_the_repository():
    broken = []
    for page in markdown_files():
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # not in code blocks
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a web address or an anchor of the same page
            path = (page.parent / target.split("#")[0]).resolve()
            if not (path.is_file() and ROOT in path.parents):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []


def test_no_page_mentions_a_folder_outside_the_repository():
    """A relative path written anywhere in a page (link or text) stays inside the repository
    (a user has only the repository), and no page names an absolute path of this machine."""
    outside = []
    for page in markdown_files():
        text = page.read_text()
        for path in re.findall(r"(?:\.\./)+[\w.-]+", text):
            if ROOT not in (page.parent / path).resolve().parents:
                outside.append(f"{page.relative_to(ROOT)}: {path}")
        if "/work/" in text:
            outside.append(f"{page.relative_to(ROOT)}: /work/")
    assert outside == []
