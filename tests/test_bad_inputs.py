"""Every bad input: one clear error naming the field, exit 2, no traceback, nothing touched.

One table, CLI and API alike. A case builds its inputs in a fresh work folder and
returns either the command-line arguments (``OUT`` stands for an existing output folder of an
earlier run) or a function to call. The test then checks:

* CLI: exit status 2, no ``Traceback``, exactly one error line, and every expected word;
* API: an :class:`InputError` whose message holds every expected word;
* both: every file and folder (the inputs and the earlier output) is byte-identical after.

A new command or input joins by adding rows to :data:`CASES`. Inputs pmcap chose to accept
(docs/models.md, "The demand contract") are in :data:`ACCEPTED`.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from typer.testing import CliRunner

from capacity import (
    InputError,
    as_demand,
    bands,
    load_process,
    read_demand,
    requirements,
    shortfall_probability,
    simulate_facility,
    suites_for_service_level,
)
from pmcap.cli import app
from pmcap.scenario import example_scenario_path
from tests.helpers import make_demand
from tests.pmcap.test_contradictions import CONTRADICTIONS, CONTRADICTORY_ROWS
from tests.pmcap.test_run import BAD as BAD_SCENARIOS
from tests.pmcap.test_run import BAD_ROWS as BAD_SCENARIO_ROWS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = example_scenario_path()
PROCESS = ROOT / "data" / "examples" / "process.toml"
TEMPLATE = "car-t-autologous-manual"
OUT = "<OUT>"  # replaced by the path of an earlier run's output folder

runner = CliRunner()

BASE_CSV = """draw,month,program,stream,patients
0,2027-01-01,A,commercial,3
0,2027-02-01,A,commercial,4
1,2027-01-01,A,commercial,2
1,2027-02-01,A,commercial,5
"""
# lines of BASE_CSV, to name in expected words (the header is line 1)
L2, L3, L4 = "0,2027-01-01,A,commercial,3", "0,2027-02-01,A,commercial,4", "1,2027-01-01,A,"


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[Path], list[str] | Callable[[], Any]]
    words: tuple[str, ...]
    xfail: str = ""


CASES: list[Case] = []


def case(id: str, build, *words: str, xfail: str = "") -> None:
    CASES.append(Case(id, build, words, xfail))


# --- inputs ---------------------------------------------------------------------------------


def edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def csv_file(work: Path, old: str = "", new: str = "", name: str = "demand.csv") -> Path:
    path = work / name
    path.write_text(edit(BASE_CSV, old, new) if old else BASE_CSV)
    return path


def demand_array(months=None, values=None, **kw) -> xr.DataArray:
    values = np.arange(12).reshape(2, 6) if values is None else np.asarray(values)
    da = make_demand(values, **kw)
    return da if months is None else da.assign_coords(month=months)


def nc_file(work: Path, data, name: str = "demand.nc", engine: str = "h5netcdf") -> Path:
    path = work / name
    data.to_netcdf(path, engine=engine)
    return path


def raw_file(work: Path, name: str, content: bytes | str) -> Path:
    path = work / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def process_file(work: Path, old: str = "", new: str = "", name: str = "process.toml") -> Path:
    text = PROCESS.read_text()
    path = work / name
    path.write_text(edit(text, old, new) if old else text)
    return path


def capacity_args(demand: Path | str, *extra: str, process: str = TEMPLATE) -> list[str]:
    return ["capacity", str(demand), "--process", process, "--out", OUT, *extra]


def scenario_file(work: Path, old: str = "", new: str = "") -> Path:
    folder = work / "sc"
    shutil.copytree(EXAMPLE.parent, folder)
    path = folder / "scenario.toml"
    if old:
        path.write_text(edit(path.read_text(), old, new))
    return path


def good_demand() -> xr.DataArray:
    return make_demand(np.full((3, 4), 2))


# --- demand files: CSV, both through the CLI and read_demand --------------------------------


def demand_csv(id: str, old: str, new: str, *words: str, xfail: str = "") -> None:
    case(
        f"cli-demand-csv-{id}",
        lambda w: capacity_args(csv_file(w, old, new)),
        *words,
        xfail=xfail,
    )
    case(
        f"api-read_demand-csv-{id}",
        lambda w: partial(read_demand, csv_file(w, old, new)),
        *words,
        xfail=xfail,
    )


MONTH = "0,2027-01-01,"
demand_csv("month-time", MONTH, "0,2027-01-01 12:00,", "line 2", "month", "2027-01-01 12:00")
demand_csv("month-midnight", MONTH, "0,2027-01-01 00:00:00,", "line 2", "month", "00:00:00")
demand_csv("month-iso-time", MONTH, "0,2027-01-01T00:00,", "line 2", "month", "T00:00")
demand_csv("month-utc-z", MONTH, "0,2027-01-01T00:00:00Z,", "line 2", "month", "00Z")
demand_csv("month-plus-offset", MONTH, "0,2027-01-01+05:00,", "line 2", "month", "+05:00")
demand_csv("month-minus-offset", MONTH, "0,2027-01-01T00:00-05:00,", "line 2", "month", "-05:00")
demand_csv("month-us-format", MONTH, "0,01/01/2027,", "line 2", "month", "01/01/2027")
demand_csv("month-day-first", MONTH, "0,01.01.2027,", "line 2", "month", "01.01.2027")
demand_csv("month-words", MONTH, "0,Jan 2027,", "line 2", "month", "Jan 2027")
demand_csv("month-year-month", MONTH, "0,2027-01,", "line 2", "month", "YYYY-MM-01")
demand_csv("month-compact", MONTH, "0,20270101,", "line 2", "month", "20270101")
demand_csv("month-empty", MONTH, "0,,", "line 2", "month")
demand_csv("month-not-a-date", "0,2027-02-01,", "0,2027-02-30,", "line 3", "month must be a date")
demand_csv("month-13", "0,2027-02-01,", "0,2027-13-01,", "line 3", "month must be a date")
demand_csv("month-not-first", "0,2027-02-01,", "0,2027-02-03,", "line 3", "first day of a month")
demand_csv("month-year-3027", MONTH, "0,3027-01-01,", "line 2", "month", "1900")
demand_csv("month-out-of-order", L2 + "\n" + L3, L3 + "\n" + L2, "line 3", "comes after")
demand_csv(
    "months-not-consecutive",
    "0,2027-02-01,A,commercial,4\n1,2027-01-01,A,commercial,2\n1,2027-02-01",
    "0,2027-03-01,A,commercial,4\n1,2027-01-01,A,commercial,2\n1,2027-03-01",
    "consecutive",
    "2027-02-01",
)
demand_csv("patients-1e12", L2, "0,2027-01-01,A,commercial,1e12", "line 2", "patients", "at most")
demand_csv("patients-1e19", L2, "0,2027-01-01,A,commercial,1e19", "line 2", "patients", "at most")
demand_csv("patients-huge-int", L2, f"0,2027-01-01,A,commercial,{2**63}", "line 2", "patients")
demand_csv("patients-negative", L2, "0,2027-01-01,A,commercial,-1", "line 2", "patients", ">= 0")
demand_csv("patients-fraction", L2, "0,2027-01-01,A,commercial,1.5", "line 2", "whole number")
demand_csv("patients-text", L2, "0,2027-01-01,A,commercial,three", "line 2", "patients")
demand_csv("patients-empty", L2, "0,2027-01-01,A,commercial,", "line 2", "patients")
demand_csv("patients-nan", L2, "0,2027-01-01,A,commercial,nan", "line 2", "patients")
demand_csv("patients-inf", L2, "0,2027-01-01,A,commercial,inf", "line 2", "patients")
demand_csv("patients-bool", L2, "0,2027-01-01,A,commercial,True", "line 2", "patients")
demand_csv("draw-negative", L2, "-1,2027-01-01,A,commercial,3", "line 2", "draw")
demand_csv("draw-fraction", L2, "0.5,2027-01-01,A,commercial,3", "line 2", "draw")
demand_csv("draw-text", L2, "first,2027-01-01,A,commercial,3", "line 2", "draw")
demand_csv("draw-1e19", L2, "1e19,2027-01-01,A,commercial,3", "line 2", "draw")
demand_csv(
    "draws-not-from-0", BASE_CSV, BASE_CSV.replace("\n1,", "\n2,").replace("\n0,", "\n1,"), "draw"
)
demand_csv("program-empty", L2, "0,2027-01-01,,commercial,3", "line 2", "program")
demand_csv("stream-capital", L2, "0,2027-01-01,A,Commercial,3", "line 2", "stream")
demand_csv("stream-unknown", L2, "0,2027-01-01,A,trial,3", "line 2", "stream", "clinical")
demand_csv("row-duplicate", L3, L3 + "\n" + L3, "line 4", "duplicate")
demand_csv("row-missing", L3 + "\n", "", "no row", "draw=0", "2027-02-01")
demand_csv("column-missing", ",patients\n", ",count\n", "missing column", "patients")
demand_csv("column-extra", ",patients\n", ",patients,site\n", "unexpected column", "site")
demand_csv("column-twice", ",patients\n", ",patients,patients\n", "column", "patients")
demand_csv("header-only", BASE_CSV[BASE_CSV.index("\n") + 1 :], "", "no rows")
demand_csv("empty-file", BASE_CSV, "", "cannot read")
demand_csv("not-csv", BASE_CSV, '"unterminated\n"x,y', "demand.csv")
demand_csv("semicolons", BASE_CSV, BASE_CSV.replace(",", ";"), "missing column")

case(
    "cli-demand-not-utf8",
    lambda w: capacity_args(raw_file(w, "demand.csv", b"draw,month\n\xff\xfe\x00\x81\n")),
    "demand.csv",
    "cannot read",
)
case(
    "api-read_demand-not-utf8",
    lambda w: partial(read_demand, raw_file(w, "demand.csv", b"draw,month\n\xff\xfe\x00\x81\n")),
    "demand.csv",
    "cannot read",
)


# --- demand files: paths --------------------------------------------------------------------


def folder(work: Path, name: str) -> Path:
    path = work / name
    path.mkdir()
    (path / "inside.txt").write_text("x\n")
    return path


for _name in ("demand.csv", "demand.nc", "draws"):
    case(
        f"cli-demand-path-is-a-folder-{_name}",
        lambda w, n=_name: capacity_args(folder(w, n)),
        _name,
        "folder",
    )
    case(
        f"api-read_demand-path-is-a-folder-{_name}",
        lambda w, n=_name: partial(read_demand, folder(w, n)),
        _name,
        "folder",
    )
case("cli-demand-missing", lambda w: capacity_args(w / "nope.csv"), "nope.csv", "no such")
case("api-read_demand-missing", lambda w: lambda: read_demand(w / "nope.csv"), "no such")
case(
    "cli-demand-xlsx",
    lambda w: capacity_args(raw_file(w, "demand.xlsx", "x")),
    "demand.xlsx",
    ".csv",
)
case(
    "cli-demand-no-suffix",
    lambda w: capacity_args(raw_file(w, "demand", BASE_CSV)),
    "demand",
    ".csv",
)


# --- demand files: NetCDF, both through the CLI and read_demand -----------------------------


def demand_nc(id: str, make: Callable[[Path], Path], *words: str, xfail: str = "") -> None:
    case(f"cli-demand-nc-{id}", lambda w: capacity_args(make(w)), "demand.nc", *words, xfail=xfail)
    case(
        f"api-read_demand-nc-{id}",
        lambda w: partial(read_demand, make(w)),
        *words,
        xfail=xfail,
    )


MONTHS6 = pd.date_range("2027-01-01", periods=6, freq="MS")
demand_nc("month-integers", lambda w: nc_file(w, demand_array(np.arange(6))), "month", "numbers")
demand_nc(
    "month-floats", lambda w: nc_file(w, demand_array(np.arange(6.0) + 0.5)), "month", "numbers"
)
demand_nc(
    "month-labels",
    lambda w: nc_file(w, demand_array([f"M{i}" for i in range(1, 7)])),
    "month",
    "'M1'",
)
demand_nc(
    "month-text-with-time",
    lambda w: nc_file(w, demand_array([f"{m:%Y-%m-%d} 12:00" for m in MONTHS6])),
    "month",
    "2027-01-01 12:00",
)
demand_nc(
    "month-text-with-offset",
    lambda w: nc_file(w, demand_array([f"{m:%Y-%m-%d}T00:00+05:00" for m in MONTHS6])),
    "month",
    "+05:00",
)
demand_nc(
    "month-time-of-day",
    lambda w: nc_file(w, demand_array(MONTHS6 + pd.Timedelta(hours=12))),
    "month",
    "time of day",
)
demand_nc(
    "month-mid-month",
    lambda w: nc_file(w, demand_array(MONTHS6 + pd.Timedelta(days=14))),
    "not the first day",
)
demand_nc(
    "months-gap",
    lambda w: nc_file(w, demand_array(MONTHS6.delete(2).append(pd.DatetimeIndex(["2027-08-01"])))),
    "consecutive",
    "2027-03-01",
)
demand_nc("months-backwards", lambda w: nc_file(w, demand_array(MONTHS6[::-1])), "increasing order")
demand_nc(
    "no-patients-variable",
    lambda w: nc_file(w, demand_array().rename("count").to_dataset()),
    "patients",
)
demand_nc(
    "extra-dim",
    lambda w: nc_file(w, demand_array(values=np.ones((2, 6, 1), int)).rename(program="site")),
    "unexpected dims",
    "site",
)
demand_nc(
    "no-draw-dim",
    lambda w: nc_file(w, demand_array().isel(draw=0, drop=True)),
    "draw",
    "missing",
)
demand_nc(
    "negative",
    lambda w: nc_file(w, demand_array(values=-np.ones((2, 6), int))),
    ">= 0",
    "draw=0",
)
demand_nc(
    "nan",
    lambda w: nc_file(w, demand_array(values=np.full((2, 6), np.nan))),
    "finite",
)
demand_nc(
    "fraction",
    lambda w: nc_file(w, demand_array(values=np.full((2, 6), 0.5))),
    "whole numbers",
)
demand_nc(
    "1e12",
    lambda w: nc_file(w, demand_array(values=np.full((2, 6), 1e12))),
    "patients",
    "at most",
)
demand_nc(
    "text-values",
    lambda w: nc_file(w, demand_array(values=np.full((2, 6), "x"))),
    "numbers",
)
demand_nc("text-file", lambda w: raw_file(w, "demand.nc", "draw,month\n"), "NetCDF")
demand_nc("empty-file", lambda w: raw_file(w, "demand.nc", b""), "NetCDF", "empty")
demand_nc(
    "truncated-netcdf3",
    lambda w: raw_file(w, "demand.nc", b"CDF\x01\x00\x00\x00"),
    "cannot read as NetCDF",
)
demand_nc(
    "truncated-hdf5",
    lambda w: raw_file(w, "demand.nc", b"\x89HDF\r\n\x1a\n\x00\x00"),
    "cannot read as NetCDF",
)


# --- process TOML: through the CLI (--process FILE) and load_process ------------------------


def process(id: str, old: str, new: str, *words: str, xfail: str = "") -> None:
    case(
        f"cli-process-{id}",
        lambda w: capacity_args(csv_file(w), process=str(process_file(w, old, new))),
        "process.toml",
        *words,
        xfail=xfail,
    )
    case(
        f"api-load_process-{id}",
        lambda w: partial(load_process, process_file(w, old, new)),
        "process.toml",
        *words,
        xfail=xfail,
    )


SHIFTS = "shifts_per_day = 2 "
HOURS = "hours_per_shift = 8 "
process("shift-hours-26", HOURS, "hours_per_shift = 13", "hours_per_shift", "shifts_per_day", "24")
process("shift-hours-32", SHIFTS, "shifts_per_day = 4", "hours_per_shift", "shifts_per_day", "24")
process(
    "shift-hours-triangular",
    HOURS,
    "hours_per_shift = {triangular = [8, 10, 13]}",
    "hours_per_shift",
    "24",
)
process("shift-hours-25", HOURS, "hours_per_shift = 25", "hours_per_shift", "24")
process("shifts-5", SHIFTS, "shifts_per_day = 5", "shifts_per_day")
process("shifts-0", SHIFTS, "shifts_per_day = 0", "shifts_per_day")
process("shifts-fraction", SHIFTS, "shifts_per_day = 1.5", "shifts_per_day", "whole number")
process("hours-0", HOURS, "hours_per_shift = 0", "hours_per_shift", "> 0")
process("hours-text", HOURS, 'hours_per_shift = "eight"', "hours_per_shift")
process("culture-negative", "culture_days = {", "culture_days = -3 #{", "culture_days")
process("culture-zero", "culture_days = {", "culture_days = 0 #{", "culture_days", "> 0")
process("culture-gamma", "{triangular = [7, 8, 12]}", "{gamma = [7, 8]}", "culture_days")
process(
    "culture-triangular-order",
    "{triangular = [7, 8, 12]}",
    "{triangular = [12, 8, 7]}",
    "culture_days",
)
process("culture-missing", "culture_days = {", "# culture_days = {", "culture_days", "missing")
process("failure-rate-1.5", "failure_rate = {beta", "failure_rate = 1.5 #{beta", "failure_rate")
process(
    "failure-rate-negative",
    "failure_rate = {beta = [4, 76]}",
    "failure_rate = -0.1",
    "failure_rate",
)
process("lots-0", "lots_per_suite = 1", "lots_per_suite = 0", "lots_per_suite")
process("lots-fraction", "lots_per_suite = 1", "lots_per_suite = 1.5", "lots_per_suite")
process("remanufacture-9", "max_remanufacture = 1", "max_remanufacture = 9", "max_remanufacture")
process(
    "operating-days-400",
    "operating_days_per_year = 360",
    "operating_days_per_year = 400",
    "operating_days_per_year",
    "366",
)
process("unknown-field", 'modality = "car-t"', 'modality = "car-t"\ncolour = 3', "colour")
process("name-empty", 'name = "example-car-t"', 'name = ""', "name")
process("name-missing", 'name = "example-car-t"', "", "name", "missing")
process("assay-duplicate", 'assay = "mycoplasma"', 'assay = "sterility"', "unique", "sterility")
process("assay-retest-2", "retest_rate = {beta = [1, 49]}", "retest_rate = 2", "qc[0].retest_rate")
process(
    "assay-unknown-field", "tests_per_lot = 1\n", "tests_per_lot = 1\ncolour = 3\n", "qc[0].colour"
)
process(
    "assay-no-hours",
    "hands_on_hours = {triangular = [1, 1.5, 3]}",
    "",
    "qc[0].hands_on_hours",
    "missing",
)
process("no-qc", "[[qc]]", "[[qc_panel]]", "qc")
process("not-toml", "name = ", "name == ", "not valid TOML")
process("key-twice", "lots_per_suite = 1", "lots_per_suite = 1\nlots_per_suite = 2", "TOML")

case(
    "cli-process-is-a-folder",
    lambda w: capacity_args(csv_file(w), process=str(folder(w, "process.toml"))),
    "process.toml",
    "folder",
)
case(
    "api-load_process-is-a-folder",
    lambda w: partial(load_process, folder(w, "process.toml")),
    "process.toml",
    "folder",
)
case(
    "cli-process-not-utf8",
    lambda w: capacity_args(csv_file(w), process=str(raw_file(w, "process.toml", b"\xff\xfe"))),
    "process.toml",
    "cannot read",
)
case(
    "cli-process-missing-file",
    lambda w: capacity_args(csv_file(w), process=str(w / "nope.toml")),
    "nope.toml",
    "no such process file",
)
case(
    "cli-process-unknown-template",
    lambda w: capacity_args(csv_file(w), process="car-t-automatic"),
    "car-t-automatic",
    "template",
)
case(
    "api-load_process-unknown-template",
    lambda w: partial(load_process, "car-t-automatic"),
    "car-t-automatic",
    "template",
)
case(
    "api-load_process-mapping-unknown-field",
    lambda w: partial(load_process, {"name": "x", "culture_days": 8, "qc": [], "colour": 1}),
    "colour",
)


# --- --process mappings ---------------------------------------------------------------------


def process_args(*specs: str) -> Callable[[Path], list[str]]:
    def build(w: Path) -> list[str]:
        args = capacity_args(csv_file(w), process=specs[0])
        for spec in specs[1:]:
            args += ["--process", spec]
        return args

    return build


case(
    "cli-process-program-twice",
    process_args(f"A={TEMPLATE}", "A=aav-vector"),
    "--process",
    "'A'",
    "twice",
)
case(
    "cli-process-program-twice-same",
    process_args(f"A={TEMPLATE}", f"A={TEMPLATE}"),
    "--process",
    "'A'",
    "twice",
)
case(
    "cli-process-default-twice",
    process_args(f"*={TEMPLATE}", "*=aav-vector"),
    "--process",
    "'*'",
    "twice",
)
case("cli-process-pair-no-spec", process_args("A="), "--process", "'A='")
case("cli-process-pair-no-program", process_args(f"={TEMPLATE}"), "--process")
case("cli-process-name-and-pair", process_args(TEMPLATE, f"A={TEMPLATE}"), "--process", "PROGRAM")
case("cli-process-unknown-program", process_args(f"Z={TEMPLATE}"), "'Z'", "not in the demand")
case("cli-process-missing-option", lambda w: ["capacity", str(csv_file(w))], "--process")


# --- --installed, --quantiles, --seed, other options ----------------------------------------


def option(*extra: str) -> Callable[[Path], list[str]]:
    return lambda w: capacity_args(csv_file(w), *extra)


for _id, _value, _words in [
    ("key-twice", "suites=6,suites=8", ("--installed", "suites", "twice")),
    ("key-twice-spaced", "suites=6, suites =8", ("--installed", "suites", "twice")),
    ("empty", "", ("--installed", "empty")),
    ("blank", "  ", ("--installed", "empty")),
    ("trailing-comma", "suites=6,", ("--installed",)),
    ("no-value", "suites=", ("--installed", "suites=")),
    ("no-name", "=6", ("--installed", "=6")),
    ("no-equals", "suites", ("--installed", "suites")),
    ("text-value", "suites=six", ("--installed", "suites=six")),
    ("negative", "suites=-1", ("suites", ">= 0")),
    ("nan", "suites=nan", ("--installed", "suites")),
    ("inf", "suites=inf", ("--installed", "suites")),
    ("unknown-metric", "rooms=3", ("rooms", "unknown metric")),
    ("semicolons", "suites=6;qc_fte=2", ("--installed",)),
]:
    case(f"cli-installed-{_id}", option("--installed", _value), *_words)

for _id, _value, _words in [
    ("twice", "0.1,0.1", ("--quantiles", "0.1", "twice")),
    ("twice-spelled-differently", "0.5,0.50,0.9", ("--quantiles", "twice")),
    ("zero", "0,0.5", ("--quantiles", "between 0 and 1")),
    ("one", "0.5,1", ("--quantiles", "between 0 and 1")),
    ("percent", "10,50,90", ("--quantiles", "between 0 and 1")),
    ("negative", "-0.1,0.5", ("--quantiles",)),
    ("nan", "nan", ("--quantiles",)),
    ("text", "low,high", ("--quantiles", "low,high")),
    ("empty", "", ("--quantiles",)),
    ("empty-item", "0.1,,0.9", ("--quantiles",)),
]:
    case(f"cli-quantiles-{_id}", option("--quantiles", _value), *_words)

case("cli-capacity-seed-negative", option("--seed", "-1"), "seed", ">= 0")
case("cli-capacity-seed-text", option("--seed", "one"), "--seed")
case("cli-capacity-seed-fraction", option("--seed", "1.5"), "--seed")
case("cli-capacity-unknown-option", option("--suites", "6"), "--suites")
case("cli-capacity-no-demand", lambda w: ["capacity", "--process", TEMPLATE], "DEMAND")
case(
    "cli-capacity-out-is-the-demand",
    lambda w: ["capacity", str(csv_file(w)), "--process", TEMPLATE, "--out", str(w / "demand.csv")],
    "--out",
)
case(
    "cli-capacity-out-is-the-inputs-folder",
    lambda w: ["capacity", str(csv_file(w)), "--process", TEMPLATE, "--out", str(w)],
    "--out",
)
case("cli-unknown-command", lambda w: ["simulate"], "simulate")


# --- scenarios: pmcap run and pmcap validate ------------------------------------------------

for _old, _new, _words in BAD_SCENARIOS + CONTRADICTIONS:
    for _command in ("validate", "run"):
        case(
            f"cli-{_command}-{_new[:40]}",
            lambda w, o=_old, n=_new, c=_command: [
                c,
                str(scenario_file(w, o, n)),
                *(["--out", OUT, "--quiet"] if c == "run" else []),
            ],
            *_words,
        )


def scenario_with_workforce(line: str) -> Callable[[Path], Path]:
    """The example with an optional ``[workforce]`` table holding ``line``."""

    def build(w: Path) -> Path:
        path = scenario_file(w)
        path.write_text(path.read_text() + "\n[workforce]\n" + line + "\n")
        return path

    return build


for _line, _words in [
    ("mentor_ratio = 0", ("workforce.mentor_ratio", "> 0")),
    ("attrition_per_year = -0.05", ("workforce.attrition_per_year", "[0, 1)")),
    ("training_months = 0", ("workforce.training_months", "> 0")),
    ("training_months = {triangular = [-1, 2, 4]}", ("workforce.training_months", "> 0")),
]:
    for _command in ("validate", "run"):
        case(
            f"cli-{_command}-workforce-{_line[:40]}",
            lambda w, ln=_line, c=_command: [
                c,
                str(scenario_with_workforce(ln)(w)),
                *(["--out", OUT, "--quiet"] if c == "run" else []),
            ],
            *_words,
        )


def scenario_with_qc_lab(table: str) -> Callable[[Path], Path]:
    """The example with its ``[facility.qc_lab]`` table replaced by one holding ``table``."""

    def build(w: Path) -> Path:
        path = scenario_file(w)
        text = re.sub(r"(?ms)^\[facility\.qc_lab\].*?(?=^\[|\Z)", "", path.read_text())
        path.write_text(text + "\n[facility.qc_lab]\n" + table + "\n")
        return path

    return build


_INSTRUMENTS = (
    "instruments = {bact-alert = 1, qpcr = 1, endosafe-pts = 1, flow-cytometer = 1, "
    "cell-counter = 1, plate-reader = 1, ddpcr = 1}"
)
for _table, _words in [
    ("analysts = 2\ninstruments = {qpcr = 1}", ("facility.qc_lab.instruments", "'bact-alert'")),
    ("analysts = 0\n" + _INSTRUMENTS, ("facility.qc_lab.analysts", ">= 1")),
    ("analysts = 2\nhours_per_day = 25\n" + _INSTRUMENTS, ("facility.qc_lab.hours_per_day",)),
    ("analysts = 2\ninstruments = {qpcr = -1}", ("facility.qc_lab.instruments", ">= 1")),
]:
    case(
        f"cli-validate-qc-lab-{_table[:40]}",
        lambda w, t=_table: ["validate", str(scenario_with_qc_lab(t)(w))],
        *_words,
    )


def scenario_with_twin(line: str) -> Callable[[Path], Path]:
    """The example with its ``[facility.twin]`` table replaced by one holding ``line``."""

    def build(w: Path) -> Path:
        path = scenario_file(w)
        text = re.sub(r"(?ms)^\[facility\.twin(\.[a-z_]+)?\].*?(?=^\[|\Z)", "", path.read_text())
        path.write_text(text + "\n[facility.twin]\n" + line + "\n")
        return path

    return build


for _line, _words in [
    ("crews = {hours_per_shift = 25}", ("facility.twin.crews", "hours_per_shift", "24")),
    ("crews = {shifts_per_day = 3, hours_per_shift = 9}", ("facility.twin.crews", "24")),
]:
    for _command in ("validate", "run"):
        case(
            f"cli-{_command}-twin-{_line[:40]}",
            lambda w, ln=_line, c=_command: [
                c,
                str(scenario_with_twin(ln)(w)),
                *(["--out", OUT, "--quiet"] if c == "run" else []),
            ],
            *_words,
        )


def _api(make: Callable[[], Any]) -> Callable[[Path], Callable[[], Any]]:
    return lambda w: make


def _lab_missing_instrument():
    from capacity import QCLab

    return QCLab([TEMPLATE], analysts=2, instruments={"qpcr": 1})


def _workforce(**kw):
    from capacity import WorkforceConfig

    return WorkforceConfig(**kw)


def _crews(**kw):
    from capacity import CrewConfig

    return CrewConfig(**kw)


case("api-workforce-mentor-ratio-0", _api(partial(_workforce, mentor_ratio=0)),
     "mentor_ratio", "> 0")  # fmt: skip
case("api-workforce-attrition-negative", _api(partial(_workforce, attrition_per_year=-0.05)),
     "attrition_per_year", "[0, 1)")  # fmt: skip
case("api-qc-lab-missing-instrument", _api(_lab_missing_instrument), "instruments",
     "'bact-alert'")  # fmt: skip
case("api-twin-crews-shift-25-hours", _api(partial(_crews, hours_per_shift=25)),
     "crews.hours_per_shift", "24")  # fmt: skip
case("api-twin-crews-day-27-hours", _api(partial(_crews, shifts_per_day=3, hours_per_shift=9)),
     "crews", "24")  # fmt: skip


def scenario_with_row(name: str, old: str, new: str) -> Callable[[Path], Path]:
    def build(w: Path) -> Path:
        path = scenario_file(w)
        table = path.parent / name
        table.write_text(edit(table.read_text(), old, new))
        return path

    return build


for _name, _old, _new, _words in BAD_SCENARIO_ROWS + CONTRADICTORY_ROWS:
    for _command in ("validate", "run"):
        case(
            f"cli-{_command}-{_name}-{_new[:30]}",
            lambda w, n=_name, o=_old, new=_new, c=_command: [
                c,
                str(scenario_with_row(n, o, new)(w)),
                *(["--out", OUT, "--quiet"] if c == "run" else []),
            ],
            *_words,
        )

for _command in ("validate", "run"):
    _extra = ["--out", OUT, "--quiet"] if _command == "run" else []
    case(
        f"cli-{_command}-scenario-missing",
        lambda w, c=_command, e=_extra: [c, str(w / "nope.toml"), *e],
        "nope.toml",
    )
    case(
        f"cli-{_command}-scenario-is-a-folder",
        lambda w, c=_command, e=_extra: [c, str(folder(w, "scenario.toml")), *e],
        "scenario.toml",
    )
    case(
        f"cli-{_command}-scenario-empty-file",
        lambda w, c=_command, e=_extra: [c, str(raw_file(w, "scenario.toml", "")), *e],
        "scenario.toml",
    )
    case(
        f"cli-{_command}-scenario-not-toml",
        lambda w, c=_command, e=_extra: [c, str(raw_file(w, "scenario.toml", "[run\n")), *e],
        "scenario.toml",
        "TOML",
    )
    case(
        f"cli-{_command}-scenario-not-utf8",
        lambda w, c=_command, e=_extra: [c, str(raw_file(w, "scenario.toml", b"\xff\xfe")), *e],
        "scenario.toml",
    )


def run_args(*extra: str) -> Callable[[Path], list[str]]:
    return lambda w: ["run", str(scenario_file(w)), "--out", OUT, "--quiet", *extra]


case("cli-run-draws-0", run_args("--draws", "0"), "--draws")
case("cli-run-draws-negative", run_args("--draws", "-5"), "--draws")
case("cli-run-draws-text", run_args("--draws", "many"), "--draws")
# the scenario file's limit (run.draws <= 1,000,000) holds on the command line too
case("cli-run-draws-10000000", run_args("--draws", "10000000"), "--draws", "1,000,000")
case(
    "cli-sweep-draws-10000000",
    lambda w: ["sweep", str(raw_file(w, "sweep.toml", "[sweep]\n")), "--draws", "10000000"],
    "--draws",
    "1,000,000",
)
case(
    "cli-sensitivity-draws-10000000",
    lambda w: ["sensitivity", str(scenario_file(w)), "--draws", "10000000", "--quiet"],
    "--draws",
    "1,000,000",
)


def link_to_root(w: Path) -> Path:
    link = w / "out-link"
    link.symlink_to("/")
    return link


case(
    "cli-capacity-out-link-to-root-force",
    lambda w: [
        *("capacity", str(csv_file(w)), "--process", TEMPLATE),
        *("--out", str(link_to_root(w)), "--force"),
    ],
    "out-link",
    "symbolic link to /",
)
case(
    "cli-run-out-link-to-root",
    lambda w: ["run", str(scenario_file(w)), "--out", str(link_to_root(w)), "--quiet"],
    "out-link",
    "symbolic link to /",
)
case("cli-run-seed-negative", run_args("--seed", "-1"), "--seed")
case("cli-run-seed-2-32", run_args("--seed", str(2**32)), "--seed")
case(
    "cli-run-out-is-the-scenario",
    lambda w: ["run", str(p := scenario_file(w)), "--out", str(p), "--quiet"],
    "--out",
)
case(
    "cli-run-out-is-the-scenario-folder",
    lambda w: ["run", str(p := scenario_file(w)), "--out", str(p.parent), "--quiet"],
    "--out",
)
case(
    "cli-init-into-a-folder-with-files",
    lambda w: ["init", str(folder(w, "mine"))],
    "mine",
    "not an empty folder",
)
case(
    "cli-init-into-a-file",
    lambda w: ["init", str(raw_file(w, "notes.txt", "x"))],
    "notes.txt",
)


# --- API arguments --------------------------------------------------------------------------


def api(id: str, call: Callable[[], Any], *words: str, xfail: str = "") -> None:
    case(f"api-{id}", lambda w: call, *words, xfail=xfail)


api(
    "simulate_facility-max_wait_days-negative",
    lambda: simulate_facility(good_demand(), TEMPLATE, 2, max_wait_days=-5),
    "max_wait_days",
    ">= 0",
)
api(
    "simulate_facility-wait_threshold_days-negative",
    lambda: simulate_facility(good_demand(), TEMPLATE, 2, wait_threshold_days=-1),
    "wait_threshold_days",
    ">= 0",
)
api(
    "simulate_facility-suites-negative",
    lambda: simulate_facility(good_demand(), TEMPLATE, -1),
    "suites",
)
api(
    "simulate_facility-suites-zero",
    lambda: simulate_facility(good_demand(), TEMPLATE, 0),
    "suites",
)
api(
    "suites_for_service_level-max_wait_days-negative",
    lambda: suites_for_service_level(good_demand(), TEMPLATE, max_wait_days=-1),
    "max_wait_days",
    ">= 0",
)
api(
    "suites_for_service_level-epsilon-1",
    lambda: suites_for_service_level(good_demand(), TEMPLATE, epsilon=1),
    "epsilon",
)
api(
    "requirements-seed-negative",
    lambda: requirements(good_demand(), TEMPLATE, seed=-1),
    "seed",
    ">= 0",
)
api(
    "requirements-seed-fraction",
    lambda: requirements(good_demand(), TEMPLATE, seed=1.5),
    "seed",
)
api(
    "requirements-unknown-program",
    lambda: requirements(good_demand(), {"Z": TEMPLATE}),
    "'Z'",
    "not in the demand",
)
api(
    "requirements-unknown-template",
    lambda: requirements(good_demand(), "car-t-automatic"),
    "car-t-automatic",
)
api(
    "bands-quantile-1.5",
    lambda: bands(good_demand(), [0.5, 1.5]),
    "quantiles",
)
api(
    "bands-quantiles-twice",
    lambda: bands(good_demand(), [0.1, 0.1]),
    "quantiles",
)
api(
    "shortfall_probability-negative",
    lambda: shortfall_probability(requirements(good_demand(), TEMPLATE), {"suites": -1}),
    "suites",
    ">= 0",
)
api(
    "shortfall_probability-unknown-metric",
    lambda: shortfall_probability(requirements(good_demand(), TEMPLATE), {"rooms": 1}),
    "rooms",
)
api(
    "shortfall_probability-empty",
    lambda: shortfall_probability(requirements(good_demand(), TEMPLATE), {}),
    "installed",
)
api(
    "as_demand-not-a-dataarray",
    lambda: as_demand(np.ones((2, 3))),
    "DataArray",
)
api(
    "as_demand-month-integers",
    lambda: as_demand(demand_array(np.arange(6))),
    "month",
    "numbers",
)
api(
    "as_demand-month-labels",
    lambda: as_demand(demand_array([f"M{i}" for i in range(1, 7)])),
    "month",
    "'M1'",
)
api(
    "as_demand-month-timezone",
    lambda: as_demand(demand_array(list(MONTHS6.tz_localize("UTC")))),
    "month",
    "timezone",
)
api(
    "as_demand-month-mixed-timezones",
    lambda: as_demand(
        demand_array([f"{m:%Y-%m-%d}T00:00{'Z' if m.month % 2 else '+05:00'}" for m in MONTHS6])
    ),
    "month",
    "2027-01-01T00:00Z",
)
api(
    "as_demand-month-time-of-day",
    lambda: as_demand(demand_array(MONTHS6 + pd.Timedelta(hours=6))),
    "month",
    "time of day",
)
api(
    "as_demand-patients-1e19",
    lambda: as_demand(demand_array(values=np.full((2, 6), 1e19))),
    "patients",
    "at most",
)
api(
    "as_demand-patients-int-2e9",
    lambda: as_demand(demand_array(values=np.full((2, 6), 2_000_000_000, dtype=np.int64))),
    "patients",
    "at most",
)


def _enrollment(**kw):
    from forecast import EnrollmentModel

    return EnrollmentModel(**kw)


def _negative_observation():
    from forecast import UptakeModel
    from forecast.uptake import analog_observations

    obs = analog_observations().copy()
    obs.loc[0, "patients"] = -5
    return UptakeModel(draws=10, tune=10, chains=1).fit(obs)


api(
    "EnrollmentModel-target-negative",
    lambda: _enrollment(target=-5),
    "target",
)
api(
    "EnrollmentModel-fit-empty-patients",
    lambda: _enrollment(target=5).fit(
        pd.DataFrame(columns=["site", "enrolled_on"]), as_of="2026-01-01"
    ),
    "patients",
)
api(
    "EnrollmentModel-fit-empty-counts",
    lambda: _enrollment(target=5).fit(
        counts=pd.DataFrame(columns=["site", "date", "enrolled"]), as_of="2026-01-01"
    ),
    "counts",
)
api(
    "EnrollmentModel-fit-no-columns",
    lambda: _enrollment(target=5).fit(pd.DataFrame(), as_of="2026-01-01"),
    "site",
)
api("UptakeModel-fit-negative-observation", _negative_observation, "patients", ">= 0")
api(
    "PhaseTransitionModel-unknown-table",
    lambda: __import__("forecast").PhaseTransitionModel("nope").fit(),
    "nope",
)
api(
    "screening_log-unknown",
    lambda: __import__("forecast.data").data.screening_log("nope"),
    "nope",
)
api(
    "data_path-outside",
    lambda: __import__("forecast.data").data.data_path("../pyproject.toml"),
    "../pyproject.toml",
)


# --- the test -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def earlier_output(tmp_path_factory) -> Path:
    """A real folder of an earlier ``pmcap capacity`` run (a plain folder, as older pmcap wrote)."""
    work = tmp_path_factory.mktemp("earlier")
    demand = csv_file(work)
    out = work / "out"
    result = runner.invoke(app, ["capacity", str(demand), "--process", TEMPLATE, "--out", str(out)])
    assert result.exit_code == 0, result.output
    plain = work / "plain"
    shutil.copytree(out.resolve(), plain)
    return plain


def snapshot(root: Path) -> dict[str, Any]:
    """Every entry under ``root``: folders, links (their targets) and files (their bytes)."""
    out: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                out[key] = ("link", os.readlink(path))
            elif path.is_dir():
                out[key] = ("folder",)
            else:
                out[key] = ("file", path.read_bytes())
    return out


# Ids of cases known to fail (strict xfail: fixing one makes the test say so); none left.
OPEN: frozenset[str] = frozenset()


def _params(cases: list[Case]) -> list:
    return [
        pytest.param(c, id=c.id, marks=pytest.mark.xfail(strict=True, reason=c.xfail or "open"))
        if c.xfail or c.id in OPEN
        else pytest.param(c, id=c.id)
        for c in cases
    ]


def test_the_table_is_big_and_its_ids_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert len(CASES) >= 150


@pytest.mark.parametrize("case", _params(CASES))
def test_bad_input(case: Case, tmp_path, earlier_output, monkeypatch, tmp_path_factory):
    monkeypatch.setenv("PMCAP_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    work = tmp_path / "work"
    work.mkdir()
    out = tmp_path / "out"
    shutil.copytree(earlier_output, out)
    what = case.build(work)
    if isinstance(what, list) and what[:1] == ["run"]:
        # the earlier output is one of the same command (another command's needs --force)
        manifest = out / "manifest.json"
        manifest.write_text(manifest.read_text().replace('"capacity"', '"run"'))
    before = snapshot(tmp_path)

    if isinstance(what, list):
        result = runner.invoke(app, [str(out) if a == OUT else a for a in what])
        message = result.output
        assert result.exit_code == 2, message
        assert "Traceback" not in message
        errors = [x for x in message.splitlines() if x.startswith(("pmcap: error:", "Error:"))]
        assert len(errors) == 1, message
    else:
        with pytest.raises(InputError) as err:
            what()
        message = str(err.value)
    for word in case.words:
        assert word in message, (word, message)
    assert snapshot(tmp_path) == before, "an input or the earlier output changed"


# --- inputs pmcap accepts (docs/models.md, "The demand contract") ---------------------------

ACCEPTED = [
    pytest.param(
        lambda w: capacity_args(nc_file(w, demand_array(MONTHS6), engine="scipy")),
        id="netcdf3-classic",
    ),
    pytest.param(
        lambda w: capacity_args(nc_file(w, demand_array([f"{m:%Y-%m-%d}" for m in MONTHS6]))),
        id="netcdf-month-as-text",
    ),
    pytest.param(lambda w: capacity_args(csv_file(w, name="DEMAND.CSV")), id="csv-upper-suffix"),
    pytest.param(
        lambda w: capacity_args(csv_file(w, L2, "0, 2027-01-01 ,A,commercial,3.0")),
        id="csv-month-spaces-and-whole-float",
    ),
    pytest.param(
        lambda w: capacity_args(csv_file(w, L2, "0,2027-01-01,A,commercial,1e3")),
        id="csv-patients-exponent",
    ),
    pytest.param(
        lambda w: capacity_args(csv_file(w), "--installed", " suites = 6 , qc_fte=2"),
        id="installed-spaces",
    ),
    pytest.param(
        lambda w: capacity_args(csv_file(w), "--quantiles", "0.9,0.1,0.5"),
        id="quantiles-any-order",
    ),
]


@pytest.mark.parametrize("build", ACCEPTED)
def test_accepted_input(build, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    out = tmp_path / "out"
    result = runner.invoke(app, [str(out) if a == OUT else a for a in build(work)])
    assert result.exit_code == 0, result.output
    assert (out / "requirements.csv").is_file()
