"""Scenario sweeps on dask.distributed: many variants of one scenario, compared.

A sweep file (TOML) names a base scenario and the changes to apply::

    [sweep]
    base = "portfolio/scenario.toml"      # relative to the sweep file
    title = "Facility and process options"

    [set]                                 # applied to every scenario
    "run.draws" = 400

    [grid]                                # every combination of these values
    "facility.suites" = [12, 16]

    [[variant]]                           # named variants (each crossed with the grid)
    name = "as planned"

    [[variant]]
    name = "all automated"
    "program.CART-A.process" = "car-t-autologous-automated"
    "process.car-t-autologous-automated.culture_days" = {triangular = [6, 7, 9]}

Keys are dotted paths into the scenario: ``run.*``, ``models.*``, ``facility.*``,
``program.NAME.*`` (the program with that name) and ``process.NAME.*`` (fields of the process
named NAME, as in a scenario's ``[process.NAME]`` table). Keys may also be written as nested
tables (``[grid.facility] suites = [12, 16]``). Paths to files given in the sweep file are
relative to the sweep file. Every scenario is checked before anything runs: a bad key or
value exits with status 2 naming the sweep file, the scenario and the key.

Execution: each scenario is one task on a dask.distributed cluster: a ``LocalCluster``
(processes, one thread each) by default, or any running cluster by address. The scenario's
input files are read and checked, and its models fitted (or taken from the cache), once
per distinct input in this process; the fitted posteriors are scattered to the workers once
and shared by every scenario that needs them. A worker needs pmcap (same version) and its
dependencies installed, not the input files. Each finished scenario's run folder is written
(atomically) as soon as it arrives, so an interrupted sweep keeps what finished; a rerun skips
scenarios whose folder holds a summary for the same scenario hash (scenario content, input
files and pmcap version). A failed scenario is reported with its error and does not stop the
others.
"""

from __future__ import annotations

import collections
import copy
import datetime as dt
import hashlib
import itertools
import json
import logging
import os
import re
import tempfile
import threading
import time
import tomllib
import traceback
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from capacity.errors import InputError
from pmcap._style import default_style
from pmcap.scenario import (
    Scenario,
    check_files,
    describe_validation_error,
    load_scenario,
    read_toml,
)

__all__ = [
    "Case",
    "Sweep",
    "SweepResult",
    "load_sweep",
    "make_cases",
    "run_sweep",
    "summarize",
    "SUMMARY",
]

DIST_KINDS = ("beta", "triangular", "uniform", "lognormal")
TOP = ("run", "models", "facility", "program", "process")
# keys under program.NAME whose value is a file path
FILE_KEYS = {("enrollment", "patients"), ("enrollment", "counts"), ("enrollment", "sites")}
FILE_KEYS |= {("uptake", "patients")}
SUMMARY = "summary.json"
RESOURCES = ("suites", "operator_fte", "qc_fte", "qa_fte")


# ------------------------------------------------------------------------------------------
# cases: the scenarios of a sweep
# ------------------------------------------------------------------------------------------
@dataclass
class Case:
    """One scenario of a sweep: its name, the changes from the base and the checked inputs."""

    name: str
    slug: str  # its folder under scenarios/
    changes: dict[str, Any]  # dotted key -> value as written in the sweep file
    raw: dict[str, Any]  # the scenario as TOML data, file paths absolute
    scenario: Scenario
    parsed: dict[str, Any]  # check_inputs(scenario)
    digest: str  # hash of the scenario, its input files and the pmcap version
    role: str = "case"  # "base", "low", "high" in a sensitivity sweep

    def text(self, title: str) -> str:
        """The scenario as a runnable TOML file (``pmcap run`` gives the same outputs)."""
        import tomli_w

        changes = "".join(f"#   {k} = {_show(v)}\n" for k, v in self.changes.items())
        head = (
            f"# Scenario {self.name!r} of the sweep {title!r}, written by pmcap.\n"
            f"# The base scenario {self.scenario.path} with these changes:\n"
        ) + (changes or "#   (none)\n")
        return head + "\n" + tomli_w.dumps(self.raw)


@dataclass
class Sweep:
    path: Path | None
    title: str
    base: Scenario
    cases: list[Case]
    keys: list[str]  # every changed key, in order of first appearance


def is_distribution(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in DIST_KINDS


def _leaves(table: dict, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Nested tables -> (path, value) pairs; a distribution table is a value, not a table."""
    out = []
    for key, value in table.items():
        path = prefix + tuple(str(key).split("."))
        if isinstance(value, dict) and value and not is_distribution(value):
            out += _leaves(value, path)
        else:
            out.append((path, value))
    return out


def _show(value: Any) -> str:
    """A short label for a value: 12, triangular(6, 7, 9), car-t-autologous-automated."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)  # exactly: seeds and costs are distinct in full
    if isinstance(value, float):
        return f"{value:.12g}"
    if isinstance(value, dt.date):
        return value.isoformat()
    if is_distribution(value):
        kind, args = next(iter(value.items()))
        if isinstance(args, dict):
            return f"{kind}(" + ", ".join(f"{k}={_show(v)}" for k, v in args.items()) + ")"
        return f"{kind}(" + ", ".join(_show(a) for a in args) + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


_CODE: list[str] = []


def code_digest() -> str:
    """Hash of pmcap's own source (capacity, forecast, pmcap) and shipped data: a sweep folder
    made by other code is rerun, not resumed, even when the version number is the same."""
    if not _CODE:
        import capacity
        import forecast
        import pmcap

        h = hashlib.sha256()
        for package in (capacity, forecast, pmcap):
            root = Path(package.__file__).parent
            for f in sorted(root.rglob("*")):
                if f.suffix in (".py", ".toml", ".csv", ".html") and f.is_file():
                    h.update(str(f.relative_to(root)).encode())
                    h.update(f.read_bytes())
        _CODE.append(h.hexdigest())
    return _CODE[0]


def _slug(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60].strip("-") or "scenario"
    slug, i = base, 2
    while slug in taken:
        slug, i = f"{base}-{i}", i + 1
    taken.add(slug)
    return slug


class _Keys:
    """Resolves dotted keys against the base scenario (program and process names may hold
    dots: the longest known name wins)."""

    def __init__(self, raw: dict, process_names: list[str], where: str):
        self.programs = [str(p.get("name")) for p in raw.get("program", [])]
        self.processes = process_names
        self.where = where

    def resolve(self, path: tuple[str, ...]) -> tuple[str, ...]:
        dotted = ".".join(path)
        head = path[0]
        if head not in TOP:
            raise InputError(
                f"{self.where}: {dotted}: unknown key; keys start with run., models., "
                "facility., program.NAME. or process.NAME."
            )
        if head in ("program", "process"):
            known = self.programs if head == "program" else self.processes
            for k in range(len(path), 1, -1):
                name = ".".join(path[1:k])
                if name in known:
                    rest = path[k:]
                    if not rest:
                        raise InputError(
                            f"{self.where}: {dotted}: give a key of the {head}, e.g. "
                            f"{head}.{name}.{'process' if head == 'program' else 'culture_days'}"
                        )
                    if head == "program" and rest == ("name",):
                        raise InputError(f"{self.where}: {dotted}: a program cannot be renamed")
                    return (head, name, *rest)
            raise InputError(
                f"{self.where}: {dotted}: the base scenario has no {head} named "
                f"{'.'.join(path[1:2])!r}; {head}s: {', '.join(known) or 'none'}"
            )
        if len(path) < 2:
            raise InputError(f"{self.where}: {dotted}: give a key inside [{head}]")
        return path


def _apply(raw: dict, path: tuple[str, ...], value: Any, where: str) -> None:
    dotted = ".".join(path)
    if path[0] == "program":
        node = next(p for p in raw["program"] if p.get("name") == path[1])
        keys = path[2:]
    elif path[0] == "process":
        node = raw.setdefault("process", {}).setdefault(path[1], {})
        keys = path[2:]
    else:
        node, keys = raw, path
    for k in keys[:-1]:
        nxt = node.get(k)
        if nxt is None:
            nxt = node[k] = {}
        elif not isinstance(nxt, dict) or is_distribution(nxt):
            raise InputError(f"{where}: {dotted}: {k!r} is a value, not a table, in the base")
        node = nxt
    node[keys[-1]] = copy.deepcopy(value)


def _absolute_paths(raw: dict, folder: Path) -> None:
    """Make every file path of the scenario data absolute (relative to ``folder``)."""
    for program in raw.get("program", []):
        proc = program.get("process")
        if isinstance(proc, str) and proc.endswith(".toml") and not Path(proc).is_absolute():
            program["process"] = str((folder / proc).resolve())
        for table, key in FILE_KEYS:
            sub = program.get(table)
            if isinstance(sub, dict) and isinstance(sub.get(key), str):
                if not Path(sub[key]).is_absolute():
                    sub[key] = str((folder / sub[key]).resolve())


def _file_value(path: tuple[str, ...], value: Any, folder: Path) -> Any:
    """A file path set by the sweep file, relative to the sweep file's folder."""
    if not isinstance(value, str) or Path(value).is_absolute() or path[0] != "program":
        return value
    rest = tuple(path[2:])
    if rest in FILE_KEYS or (rest == ("process",) and value.endswith(".toml")):
        return str((folder / value).resolve())
    return value


def make_cases(
    base: Scenario,
    variants: list[tuple[str, list[tuple[tuple[str, ...], Any]]]],
    *,
    grid: list[tuple[tuple[str, ...], list[Any]]] = (),
    common: list[tuple[tuple[str, ...], Any]] = (),
    where: str,
    folder: Path | None = None,
    roles: list[str] | None = None,
) -> tuple[list[Case], list[str]]:
    """The scenarios of a sweep: each variant crossed with every combination of the grid.

    ``variants`` are ``(name, [(path, value), ...])``; paths are resolved against ``base``
    (see :class:`_Keys`). Every scenario is validated and its inputs checked here.
    """
    from pmcap import __version__
    from pmcap.run import check_inputs, scenario_processes

    base_raw = tomllib.loads(base.path.read_text())
    process_names = sorted({s.name for s in scenario_processes(base).values()})
    keys = _Keys(base_raw, process_names, where)
    folder = folder or (base.path.parent if base.path else Path.cwd())
    grid = [(keys.resolve(p), list(v)) for p, v in grid]
    common = [(keys.resolve(p), v) for p, v in common]
    _no_overlap(common, "[set]", [(p, None) for p, _ in grid], "[grid]", where)
    combos = list(itertools.product(*[[(p, v) for v in values] for p, values in grid])) or [()]
    cases, seen_keys, taken = [], [], set()
    for i, (vname, changes) in enumerate(variants):
        vkeys = _Keys(base_raw, process_names, f"{where}: variant {vname!r}" if vname else where)
        changes = [(vkeys.resolve(p), v) for p, v in changes]
        _no_overlap(changes, f"variant {vname!r}", common, "[set]", where)
        _no_overlap(changes, f"variant {vname!r}", [(p, None) for p, _ in grid], "[grid]", where)
        for combo in combos:
            all_changes = [*common, *changes, *combo]
            label = [vname] if vname else []
            label += [f"{'.'.join(p)}={_show(v)}" for p, v in combo]
            name = ", ".join(label) or "base"
            at = f"{where}: scenario {name!r}"
            raw = copy.deepcopy(base_raw)
            _absolute_paths(raw, base.path.parent)
            shown: dict[str, Any] = {}
            for path, value in all_changes:
                _apply(raw, path, _file_value(path, value, folder), at)
                shown[".".join(path)] = value
                if ".".join(path) not in seen_keys:
                    seen_keys.append(".".join(path))
            _drop_unused_overrides(raw)
            try:
                scenario = Scenario.model_validate(raw)
            except ValidationError as exc:
                raise InputError(describe_validation_error(exc, at)) from None
            scenario._path = base.path
            check_files(scenario, at)
            try:
                parsed = check_inputs(scenario)
            except InputError as exc:
                raise InputError(f"{at}: {exc}") from None
            digest = hashlib.sha256(
                f"{scenario.digest()}|pmcap {__version__}|{code_digest()}".encode()
            ).hexdigest()
            if any(c.name == name for c in cases):
                raise InputError(f"{at}: two scenarios have this name; give variants other names")
            cases.append(
                Case(
                    name=name,
                    slug=_slug(name, taken),
                    changes=shown,
                    raw=raw,
                    scenario=scenario,
                    parsed=parsed,
                    digest=digest,
                    role=roles[i] if roles else "case",
                )
            )
    return cases, seen_keys


def _no_overlap(a: list, a_name: str, b: list, b_name: str, where: str) -> None:
    both = sorted({".".join(p) for p, _ in a} & {".".join(p) for p, _ in b})
    if both:
        raise InputError(
            f"{where}: {both[0]} is set in both {a_name} and {b_name}; set each key in one place"
        )


def _drop_unused_overrides(raw: dict) -> None:
    """A [process.NAME] override checked against the base but used by no program of this
    scenario (a variant moved them all to another process) does not apply here."""
    overrides = raw.get("process")
    if not overrides:
        return
    from capacity import load_process

    used = set()
    for program in raw.get("program", []):
        try:
            used.add(load_process(program.get("process", "")).name)
        except InputError:
            return  # reported with its scenario by check_inputs
    for name in [n for n in overrides if n not in used]:
        del overrides[name]
    if not overrides:
        del raw["process"]


def load_sweep(path: str | Path, *, draws: int | None = None) -> Sweep:
    """Read a sweep file, build every scenario and check it (nothing runs)."""
    path = Path(path)
    raw = read_toml(path, "sweep")
    unknown = sorted(set(raw) - {"sweep", "set", "grid", "variant"})
    if unknown:
        raise InputError(
            f"{path}: unknown table {unknown[0]!r}; a sweep file has [sweep], [set], [grid] "
            "and [[variant]]"
        )
    for table, kind in (("sweep", dict), ("set", dict), ("grid", dict), ("variant", list)):
        if table in raw and not isinstance(raw[table], kind):
            shape = f"[{table}] table" if kind is dict else "list of [[variant]] tables"
            raise InputError(f"{path}: {table}: expected a {shape}")
    head = raw.get("sweep")
    if not isinstance(head, dict) or "base" not in head:
        raise InputError(f'{path}: [sweep]: give base = "scenario.toml" (the base scenario)')
    extra = sorted(set(head) - {"base", "title"})
    if extra:
        raise InputError(f"{path}: sweep.{extra[0]}: unknown key; expected base and title")
    base_path = Path(str(head["base"]))
    base_path = base_path if base_path.is_absolute() else path.parent / base_path
    try:
        base = load_scenario(base_path)
    except InputError as exc:
        raise InputError(f"{path}: sweep.base: {exc}") from None
    grid = []
    for p, values in _leaves(raw.get("grid", {})):
        if not isinstance(values, list) or not values:
            raise InputError(
                f"{path}: grid.{'.'.join(p)}: expected a non-empty list of values to try, got "
                f"{values!r}"
            )
        grid.append((p, values))
    variants = []
    names = set()
    items = raw.get("variant", [])
    if not isinstance(items, list):
        raise InputError(f"{path}: variant: write each variant as a [[variant]] table")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise InputError(f"{path}: variant[{i}]: expected a [[variant]] table")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise InputError(f'{path}: variant[{i}]: give it a name = "..."')
        if name in names:
            raise InputError(f"{path}: variant[{i}]: the name {name!r} is used twice")
        names.add(name)
        variants.append((name, _leaves({k: v for k, v in item.items() if k != "name"})))
    if not variants:
        variants = [("", [])]
    common = _leaves(raw.get("set", {}))
    if draws is not None:
        if draws < 20:
            raise InputError(f"--draws: expected at least 20, got {draws}")
        common.append((("run", "draws"), draws))
    cases, keys = make_cases(
        base, variants, grid=grid, common=common, where=str(path), folder=path.parent
    )
    if len(cases) > 10_000:
        raise InputError(f"{path}: {len(cases)} scenarios; a sweep runs at most 10,000")
    title = str(head.get("title") or path.stem)
    return Sweep(path=path.resolve(), title=title, base=base, cases=cases, keys=keys)


# ------------------------------------------------------------------------------------------
# one scenario (runs on a worker)
# ------------------------------------------------------------------------------------------
def summarize(result, *, ranking: bool = False, per_draw: bool = False) -> dict[str, Any]:
    """The numbers a sweep compares, from one run (JSON-ready); with ``per_draw`` (implied by
    ``ranking``) each draw's peak suite and operator need per year, with ``ranking`` the
    inputs sampled per draw too."""
    from pmcap.report import decision_table

    sc = result.scenario
    fac = sc.facility
    table = decision_table(result, upper=0.9)  # a sweep compares P50/P90 whatever the target
    sf = result.shortfall
    over = sf[(sf["metric"] == "any") & (sf["probability"] > fac.shortfall_target)]  # any of
    plan = result.plans["suites"]
    commits = plan.commitments
    months = pd.DatetimeIndex(result.total["month"].values)
    monthly = {}
    for resource in ("suites", "operator_fte"):
        values = result.total[resource].values
        q = np.quantile(values, [0.5, 0.9], axis=0)
        monthly[f"{resource}_p50"] = [round(float(x), 6) for x in q[0]]
        monthly[f"{resource}_p90"] = [round(float(x), 6) for x in q[1]]
    installed = sc.suites_by_month(months)
    out: dict[str, Any] = {
        "years": [
            {
                **{k: v for k, v in r.items() if k != "plan"},
                "p50": round(r["p50"], 6),
                "p90": round(r["plan"], 6),
            }
            for r in table.to_dict("records")
        ],
        "first_month_over_target": "" if over.empty else f"{over['month'].min():%Y-%m}",
        "first_month_over_target_by": {
            r: _first_over(sf, r, fac.shortfall_target) for r in RESOURCES
        },
        "shortfall_target": fac.shortfall_target,
        "service_suites_p50": None if result.service is None else result.service["p50"],
        "service_suites_p90": None if result.service is None else result.service["p90"],
        "modules_needed": int(len(commits)),
        "first_module_commit": "" if commits.empty else f"{commits['commit_month'].min():%Y-%m}",
        # expected cost of the modules the plan adds (installed suites are not in it)
        "added_module_cost": float(plan.cost["total"]) if fac.module_cost_per_year else None,
        "hires": {
            role: int(len(result.plans[role].commitments))
            for role in ("operator_fte", "qc_fte", "qa_fte")
        },
        "months": [f"{m:%Y-%m}" for m in months],
        "installed_suites": [float(x) for x in installed.to_numpy()],
        "monthly": monthly,
        "diagnostics_ok": bool(result.diagnostics_ok),
        "draws": int(sc.run.draws),
    }
    if ranking or per_draw:
        years = sorted(set(months.year))
        peaks = {}
        for resource in ("suites", "operator_fte"):
            values = result.total[resource].values
            peaks[resource] = {
                str(y): values[:, months.year == y].max(axis=1).tolist() for y in years
            }
        out["per_draw"] = peaks
    if ranking:
        from pmcap.run import input_columns

        columns = input_columns(
            result.world, result.processes, result.total.sizes["draw"], sc.run.seed
        )
        # never-happening events rank last: a large finite number keeps the JSON standard
        out["inputs"] = {
            k: np.nan_to_num(np.asarray(v, float), nan=1e300, posinf=1e300).tolist()
            for k, v in columns.items()
        }
    return out


def _first_over(shortfall: pd.DataFrame, metric: str, target: float) -> str:
    rows = shortfall[(shortfall["metric"] == metric) & (shortfall["probability"] > target)]
    return "" if rows.empty else f"{rows['month'].min():%Y-%m}"


def _host(address: str) -> str:
    """``tcp://10.0.0.5:40123`` -> ``10.0.0.5``."""
    return address.split("://")[-1].rsplit(":", 1)[0]


def _limit_threads(host_threads: dict[str, int] | None) -> None:
    """Share this machine's cores among the dask threads running on it: numba's thread count
    is per calling thread, so each task's kernels get cores / (dask threads on this host)."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return
    import numba

    on_host = (host_threads or {}).get(_host(worker.address), worker.state.nthreads)
    numba.set_num_threads(max(1, min(numba.config.NUMBA_NUM_THREADS // max(on_host, 1), 64)))


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return ""


def run_case(payload: dict[str, Any], models: dict[str, Any]) -> dict[str, Any]:
    """Run one scenario and return its files as bytes and its summary (a dask task).

    Reads no input file: the checked inputs and the fitted models come with the task. With
    ``payload["folder"]`` (a worker of the LocalCluster the sweep started, on the sweep's own
    machine) the run folder is written there in place (atomically) and only the summary comes
    back, instead of every file (26 MB on the example) through the scheduler to be written
    again by the client.
    """
    from pmcap.output import atomic_folder
    from pmcap.run import Fits, run_scenario

    logging.getLogger("pymc").setLevel(logging.ERROR)
    _limit_threads(payload.get("host_threads"))
    t0 = time.perf_counter()
    fits = Fits(dict(models), payload["diagnostics"], payload["sources"])
    result = run_scenario(
        payload["scenario"],
        parsed=payload["parsed"],
        fits=fits,
        service_level=payload.get("service_level", True),
    )
    summary = summarize(
        result, ranking=payload.get("ranking", False), per_draw=payload.get("per_draw", False)
    )
    summary_bytes = (json.dumps(summary, sort_keys=True) + "\n").encode()
    if payload.get("folder"):
        with atomic_folder(Path(payload["folder"])) as folder:
            _write_case(folder, payload, result, summary_bytes)
        files = {SUMMARY: summary_bytes}
    else:
        with tempfile.TemporaryDirectory(prefix="pmcap-case-") as tmp:
            _write_case(Path(tmp), payload, result, summary_bytes)
            files = {p.name: p.read_bytes() for p in sorted(Path(tmp).iterdir())}
    return {
        "written": bool(payload.get("folder")),
        "files": files,
        "seconds": time.perf_counter() - t0,
        # wall-clock span on this worker (how the tasks were spread over the workers)
        "span": (time.time() - (time.perf_counter() - t0), time.time(), _worker_address()),
    }


def _write_case(folder: Path, payload: dict[str, Any], result, summary: bytes) -> None:
    """A scenario's run folder: every output of ``pmcap run`` (or, for a sensitivity swing,
    none), its summary, its scenario.toml and a manifest that lets a rerun skip it."""
    from pmcap import __version__
    from pmcap.runfolder import write_run

    if payload.get("full", True):
        write_run(
            folder,
            result,
            xlsx=payload.get("xlsx", False),
            version=__version__,
            t0=time.perf_counter(),
            scenario_text=payload["text"],
            provenance=payload["provenance"],
            title=payload.get("title"),
        )
    else:  # a light folder (sensitivity swings): still resumable
        (folder / "manifest.json").write_text(json.dumps(payload["manifest"], indent=2) + "\n")
    (folder / SUMMARY).write_bytes(summary)
    (folder / "scenario.toml").write_text(payload["text"])


# ------------------------------------------------------------------------------------------
# the sweep (runs on the client)
# ------------------------------------------------------------------------------------------
@dataclass
class SweepResult:
    out: Path
    rows: pd.DataFrame  # sweep.csv
    summaries: dict[str, dict[str, Any]]  # case name -> summary (finished cases)
    failed: dict[str, str]  # case name -> error
    skipped: list[str]  # finished in an earlier run (resumed)
    ran: list[str]
    timings: dict[str, float] = field(default_factory=dict)
    sensitivity: dict[str, Any] = field(default_factory=dict)  # pmcap sensitivity's tables
    # each task's (start, end) in seconds from the sweep's start, and its worker
    spans: dict[str, tuple[float, float, str]] = field(default_factory=dict)


def check_sweep_out(out: Path, inputs: list[Path]) -> None:
    """``out`` may be new, empty, or an earlier output of a sweep (which is resumed)."""
    from pmcap.output import check_out, read_manifest

    check_out(out, inputs=inputs, force=True)  # inputs, the current folder, files, links
    path = Path(out)
    if path.is_dir() and any(path.iterdir()):
        manifest = read_manifest(path)
        if manifest is None or manifest.get("command") not in ("sweep", "sensitivity"):
            raise InputError(
                f"--out {out}: the folder holds files that are not a pmcap sweep output; "
                "choose a new folder (a sweep folder is resumed, never replaced)"
            )


def _done(folder: Path, digest: str) -> dict[str, Any] | None:
    """The summary of a finished scenario with this digest, or None."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        if manifest.get("sweep_case", {}).get("digest") != digest:
            return None
        return json.loads((folder / SUMMARY).read_text())
    except (OSError, ValueError, AttributeError):
        return None


# The workers of the LocalCluster a sweep starts keep glibc's own malloc tuning (even if this
# process has the variable, see _without_env). Dask's nanny
# sets MALLOC_TRIM_THRESHOLD_=65536 in every worker's environment (to hand freed memory back to
# the OS at once); setting it at all also turns off glibc's adaptive mmap threshold, so every
# numpy temporary over 128 KiB is a fresh mmap whose pages the kernel faults in and zeroes.
# On this project's tasks that cost 15-17% (a scenario of the example: 5.5-5.7 s without it,
# 6.3-6.7 s with it, in one process) and more with two workers sharing the memory bus.
_WORKER_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


@contextmanager
def _without_env(name: str) -> Iterator[None]:
    """``name`` out of this process's environment while the workers are spawned (they inherit
    it), then put back: a dask cluster started earlier in this process (a notebook's) leaves
    MALLOC_TRIM_THRESHOLD_ there, as the nanny sets it in its own process before spawning."""
    value = os.environ.pop(name, None)
    try:
        yield
    finally:
        if value is not None:
            os.environ[name] = value


@contextmanager
def _client(
    workers: int | None,
    scheduler: str | None,
    n_tasks: int,
    client: Any = None,
    closing: list[threading.Thread] | None = None,
) -> Iterator[Any]:
    """A client of the caller's, of the cluster at ``scheduler``, or of a new LocalCluster.

    A LocalCluster left without an error is closed in a thread appended to ``closing`` (the
    caller joins it), so that its half second of shutdown overlaps writing the comparison.
    """
    import dask
    from distributed import Client, LocalCluster

    if client is not None:  # the caller's own client (a notebook's cluster): left open
        yield client
        return
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
        try:
            yield client
        finally:
            client.close()
        return
    n = workers or max(1, min(os.cpu_count() or 1, n_tasks))
    with dask.config.set(_WORKER_CONFIG), _without_env("MALLOC_TRIM_THRESHOLD_"):
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            # any free port of this machine only: None still served the scheduler's HTTP
            # routes on 8787 (a warning whenever another cluster held it), ":0" on every
            # interface
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
        )
    client = Client(cluster)

    def close() -> None:
        try:
            client.close()
        finally:
            cluster.close()

    try:
        yield client
    except BaseException:
        close()
        raise
    if closing is None:
        close()
        return

    def close_noting_errors() -> None:
        try:
            close()
        except Exception as exc:  # reported by the caller after join(): results are written
            thread.error = exc  # type: ignore[attr-defined]

    thread = threading.Thread(target=close_noting_errors, name="pmcap-close", daemon=True)
    thread.error = None  # type: ignore[attr-defined]
    closing.append(thread)
    thread.start()


def _worker_version() -> str:
    from pmcap import __version__

    return __version__


def _preload() -> None:
    """Import what a task needs and load the compiled facility kernels, so the first task on a
    worker does not pay for them (it runs while the client reads the models and sends them:
    the first two scenarios of bench_sweep took 8.2-8.7 s on two workers, the others 4-7 s)."""
    import matplotlib.backends.backend_agg
    import matplotlib.figure  # noqa: F401

    import capacity.simulation  # noqa: F401
    import pmcap.commands
    import pmcap.report
    import pmcap.run  # noqa: F401

    _warm_kernels()


def _warm_kernels() -> None:
    """Size a two-draw, three-month facility: numba loads the kernels from its cache (about
    0.7 s) with the argument types of a real run, so the run compiles nothing new."""
    import xarray as xr

    from capacity import facility, load_process, requirements, suites_for_service_level

    demand = xr.DataArray(
        np.ones((2, 3, 1, 3), np.int64),
        dims=("draw", "month", "program", "stream"),
        coords={
            "draw": np.arange(2),
            "month": pd.date_range("2027-01-01", periods=3, freq="MS"),
            "program": ["warm-up"],
            "stream": ["clinical", "commercial", "ppq"],
        },
    )
    process = load_process("car-t-autologous-manual")
    peak = facility(requirements(demand, process, seed=0))["suites"].max("month").values
    suites_for_service_level(
        demand,
        process,
        max_wait_days=3.0,
        epsilon=0.1,
        seed=0,
        by_month=False,
        start=peak,
        params=process.sample(2, 0),
    )


def _check_workers(client, scheduler: str | None) -> None:
    from pmcap import __version__

    scheduler = scheduler or "(the cluster)"

    try:
        versions = client.run(_worker_version)
    except Exception as exc:  # a worker without pmcap cannot unpickle the function
        raise InputError(
            f"--scheduler {scheduler}: a worker cannot run pmcap ({type(exc).__name__}: {exc}); "
            f"install pmcap {__version__} on every worker"
        ) from None
    if not versions:
        raise InputError(f"--scheduler {scheduler}: the cluster has no workers")
    wrong = {w: v for w, v in versions.items() if v != __version__}
    if wrong:
        worker, version = next(iter(wrong.items()))
        raise InputError(
            f"--scheduler {scheduler}: worker {worker} has pmcap {version}, this is "
            f"{__version__}; install the same version on every worker"
        )


def _in_background(fn: Callable, *args: Any) -> Future:
    """``fn(*args)`` in a daemon thread: if the sweep stops early (a refused cluster,
    Ctrl-C) the process exits without waiting for a fit still running."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # handed to whoever waits for the result
            future.set_exception(exc)

    threading.Thread(target=run, name="pmcap-fits", daemon=True).start()
    return future


def _fit_all(todo: list[Case], use_cache: bool, notify: Callable) -> tuple[dict, dict, dict]:
    """Fit or read every distinct model of the scenarios once: ``(jobs by case, fitted,
    broken)``; ``fitted[kind, key] = (model, diagnostics, source)``, ``broken[kind, key]``
    the error of a fit that failed (its scenarios fail, the others run). Bad input data
    raises :class:`InputError` (exit 2 before anything runs)."""
    from pmcap.fits import cached
    from pmcap.run import fit_jobs

    jobs = {c.name: fit_jobs(c.scenario, c.parsed) for c in todo}
    fitted: dict[tuple[str, str], tuple[Any, dict, str]] = {}
    broken: dict[tuple[str, str], str] = {}
    for case_jobs in jobs.values():
        for job in case_jobs:
            if (job.kind, job.key) in fitted or (job.kind, job.key) in broken:
                continue
            notify(f"{job.label} model", "fitting", 0, len(todo))
            try:
                model, source = cached(job.kind, job.key, job.fit, job.load, use_cache=use_cache)
            except InputError:
                raise
            except Exception as exc:
                broken[job.kind, job.key] = f"{job.label}: fit failed: {_error_text(exc)}"
                continue
            fitted[job.kind, job.key] = (model, model.diagnostics(), source)
    # what the comparison report needs, imported while the client would wait for the tasks
    # (not after the last one, when nothing else runs)
    import jinja2  # noqa: F401
    import matplotlib.backends.backend_agg
    import matplotlib.figure  # noqa: F401

    return jobs, fitted, broken


def _write_bytes(path: Path, data: bytes) -> None:
    """Write a file whole or not at all (a temp file renamed over it), with the permissions
    of any other file this process writes: created 0o666 less the umask (mkstemp's own are
    owner-only, so colleagues could not read a sweep's tables on a shared drive)."""
    tmp = path.parent / f".{path.name}.{os.getpid()}-{time.time_ns()}.tmp"
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run_sweep(
    sweep: Sweep,
    out: Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    use_cache: bool = True,
    xlsx: bool = False,
    full: Callable[[Case], bool] = lambda case: True,
    ranking: Callable[[Case], bool] = lambda case: False,
    per_draw: Callable[[Case], bool] = lambda case: False,
    progress: Callable[[str, str, int, int], None] | None = None,
    command: str = "sweep",
    extra: Callable[[dict], tuple[dict[str, Any], dict[str, bytes]]] | None = None,
    client: Any = None,
) -> SweepResult:
    """Run every scenario not already done in ``out`` and write the comparison outputs.

    The scenarios run on ``client`` (a ``distributed.Client`` the caller made and keeps),
    else on the cluster at ``scheduler``, else on a new ``LocalCluster`` of ``workers``
    processes with one thread each (default: one per core, at most one per scenario).
    """
    from pmcap import __version__
    from pmcap.output import atomic_folder, file_sha256, write_manifest

    out = Path(out)
    inputs = sorted({p for c in sweep.cases for p in c.scenario.input_files()})
    if sweep.path is not None:
        inputs.append(sweep.path)
    check_sweep_out(out, inputs)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "manifest.json").exists():
        # marks the folder as a sweep's from the start, so a sweep stopped early (Ctrl-C, a
        # crash, a refused cluster) is resumed by the next run; completed at the end
        write_manifest(out, command=command, status="running", files=["scenarios", "failed"])
    (out / "scenarios").mkdir(exist_ok=True)
    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    summaries: dict[str, dict[str, Any]] = {}
    skipped, todo = [], []
    for case in sweep.cases:
        summary = _done(out / "scenarios" / case.slug, case.digest)
        if summary is not None:
            summaries[case.name] = summary
            skipped.append(case.name)
        else:
            todo.append(case)
    failed: dict[str, str] = {}
    ran: list[str] = []
    task_seconds: dict[str, float] = {}  # wall time of each task on its worker
    spans: dict[str, tuple[float, float, str]] = {}  # each task's (start, end, worker)
    t_wall = time.time()
    closing: list[threading.Thread] = []  # the LocalCluster shutting down
    notify = progress or (lambda name, status, done, total: None)
    if todo:
        t0 = time.perf_counter()
        # each distinct model is fitted (or read from the cache) once, here, in a thread
        # while the cluster starts and its workers import pmcap
        # dask and distributed are imported here, before the fit thread starts: the two
        # threads importing dask at once (xarray and PyMC reach it too) failed on its
        # circular imports ("partially initialized module 'dask.base'")
        import distributed  # noqa: F401

        fitting = _in_background(_fit_all, todo, use_cache, notify)
        own_cluster = client is None and not scheduler  # a LocalCluster started here
        with _client(workers, scheduler, len(todo), client, closing) as client:
            from distributed import as_completed

            timings["cluster_start_s"] = round(time.perf_counter() - t0, 3)
            _check_workers(client, scheduler)
            # the workers import pmcap (and load its compiled kernels) while the models are
            # fitted or read
            warming = [
                client.submit(_preload, key=f"pmcap-preload-{w}", workers=[w], pure=False)
                for w in client.scheduler_info()["workers"]
            ]
            t1 = time.perf_counter()
            jobs, fitted, broken = fitting.result()
            for case in list(todo):
                reasons = [
                    broken[j.kind, j.key] for j in jobs[case.name] if (j.kind, j.key) in broken
                ]
                if reasons:
                    failed[case.name] = reasons[0]
                    _write_failure(out, case, RuntimeError(reasons[0]), None)
                    todo.remove(case)
            timings["fit_wait_s"] = round(time.perf_counter() - t1, 3)  # after the cluster
            t0 = time.perf_counter()
            # every worker gets each model once, up front: with the models on one worker only,
            # the scheduler sent most tasks to it (busy 23 s vs 37 s in bench_sweep)
            shared = {
                k: client.scatter(m, hash=False, broadcast=True) for k, (m, _, _) in fitted.items()
            }
            host_threads: dict[str, int] = {}  # dask threads per machine
            for address, info in client.scheduler_info()["workers"].items():
                host = _host(address)
                host_threads[host] = host_threads.get(host, 0) + int(info.get("nthreads", 1))
            payloads: dict[str, dict[str, Any]] = {}
            for case in todo:
                case_jobs = jobs[case.name]
                payloads[case.name] = {
                    "scenario": case.scenario,
                    "parsed": case.parsed,
                    "diagnostics": {j.label: fitted[j.kind, j.key][1] for j in case_jobs},
                    "sources": {j.label: fitted[j.kind, j.key][2] for j in case_jobs},
                    "text": (text := case.text(sweep.title)),
                    "title": f"{case.name} (sweep: {sweep.title})",
                    "provenance": {
                        # this folder's own scenario.toml, which pmcap run reproduces
                        "scenario": {
                            "path": "scenario.toml",
                            "sha256": hashlib.sha256(text.encode()).hexdigest(),
                            # as pmcap run's: the parsed scenario and its input files
                            "digest": case.scenario.digest(),
                            "base": str(case.scenario.path),
                        },
                        "inputs": [
                            {"path": str(p), "sha256": file_sha256(p)}
                            for p in case.scenario.input_files()
                        ],
                        "sweep_case": payload_case(case, sweep),
                    },
                    "host_threads": host_threads,
                    # a worker of the LocalCluster started here writes the folder in place
                    # (the folder itself not resolved: from an earlier run it is a link)
                    "folder": str((out / "scenarios").resolve() / case.slug)
                    if own_cluster
                    else None,
                    "manifest": {
                        "command": command,
                        "pmcap_output": 1,
                        "sweep_case": payload_case(case, sweep),
                    },
                    "full": full(case),
                    # without a run folder (sensitivity swings) only the need is compared
                    "service_level": full(case),
                    "ranking": ranking(case),
                    "per_draw": per_draw(case),
                    "xlsx": xlsx,
                }
            # On the LocalCluster started here, a scenario is handed to a worker thread only
            # when the thread is free (one task in flight per thread): submitted all at once,
            # the scheduler placed the tasks up front and one worker sat idle for 7 s while the
            # other had a queue (bench_sweep); work stealing came late. A cluster of the
            # caller's (--scheduler, client=) gets every task at once: it may scale with the
            # backlog (adaptive) and its size is its own.
            waiting = list(todo)
            running: dict[Any, tuple[Case, str]] = {}  # future -> (scenario, worker given)

            def submit(case: Case, worker: str) -> Any:
                future = client.submit(
                    run_case,
                    payloads[case.name],
                    {j.name: shared[j.kind, j.key] for j in jobs[case.name]},
                    # one key prefix for every scenario: the scheduler learns their duration
                    key=("pmcap-case", f"{case.slug}-{case.digest[:12]}-{time.time_ns()}"),
                    pure=False,
                    workers=[worker] if worker else None,
                    allow_other_workers=bool(worker),  # a worker that dies hands it on
                )
                running[future] = (case, worker)
                return future

            def fill() -> list[Any]:
                """Submit waiting scenarios to the free worker threads (all of them at once
                to a cluster of the caller's)."""
                new = []
                if waiting and own_cluster:
                    busy = collections.Counter(worker for _, worker in running.values())
                    for address, threads in client.nthreads().items():
                        while waiting and busy[address] < threads:
                            new.append(submit(waiting.pop(0), address))
                            busy[address] += 1
                # a caller's cluster, or no worker left: the scheduler holds the rest
                if waiting and (not own_cluster or not running):
                    new += [submit(waiting.pop(0), "") for _ in list(waiting)]
                return new

            done = 0
            pending = as_completed(fill())
            for future in pending:
                case, _ = running.pop(future)
                for new in fill():
                    pending.add(new)
                done += 1
                try:
                    answer = future.result()
                except Exception as exc:
                    failed[case.name] = _error_text(exc)
                    _write_failure(out, case, exc, future)
                    notify(case.name, "failed", done, len(todo))
                    continue
                files = answer["files"]
                if not answer["written"]:  # the worker may not see this disk: written here
                    with atomic_folder(out / "scenarios" / case.slug) as folder:
                        for name, data in files.items():
                            (folder / name).write_bytes(data)
                (out / "failed" / f"{case.slug}.txt").unlink(missing_ok=True)
                summaries[case.name] = json.loads(files[SUMMARY])
                ran.append(case.name)
                task_seconds[case.name] = round(answer["seconds"], 3)
                spans[case.name] = answer["span"]
                notify(case.name, "done", done, len(todo))
            timings["run_s"] = round(time.perf_counter() - t0, 3)
            del warming
            timings["tasks_s"] = round(sum(task_seconds.values()), 3)
    t0 = time.perf_counter()
    try:  # while the cluster shuts down
        rows = sweep_table(sweep, summaries, failed)
        _write_bytes(out / "sweep.csv", rows.to_csv(index=False, lineterminator="\n").encode())
        _write_bytes(
            out / "sweep_monthly.csv",
            monthly_table(sweep, summaries).to_csv(index=False, lineterminator="\n").encode(),
        )
        sections, files = extra(summaries) if extra is not None else ({}, {})
        for name, data in files.items():
            _write_bytes(out / name, data)
        html = render_sweep(
            sweep, summaries, failed, rows, __version__, extra=sections, out_root=out / "scenarios"
        )
        _write_bytes(out / "sweep.html", html.encode())
        timings["compare_s"] = round(time.perf_counter() - t0, 3)  # the comparison outputs
    finally:
        for thread in closing:
            thread.join()
    timings["close_wait_s"] = round(time.perf_counter() - t0 - timings.get("compare_s", 0), 3)
    for thread in closing:
        if thread.error is not None:  # type: ignore[attr-defined]
            warnings.warn(
                f"pmcap: closing the local cluster failed: {thread.error!r}", stacklevel=2
            )
    timings["total_s"] = round(time.perf_counter() - t_start, 3)
    write_manifest(
        out,
        command=command,
        sweep={"path": str(sweep.path) if sweep.path else None, "title": sweep.title},
        scenarios=[
            {
                "name": c.name,
                "folder": f"scenarios/{c.slug}",
                "digest": c.digest,
                "status": "failed"
                if c.name in failed
                else ("skipped" if c.name in skipped else "done"),
            }
            for c in sweep.cases
        ],
        timings=timings,
        files=["sweep.csv", "sweep_monthly.csv", "sweep.html", "scenarios", "failed", *files],
    )
    spans = {k: (a - t_wall, b - t_wall, w) for k, (a, b, w) in spans.items()}
    return SweepResult(out, rows, summaries, failed, skipped, ran, timings, spans=spans)


def payload_case(case: Case, sweep: Sweep) -> dict[str, Any]:
    return {
        "name": case.name,
        "digest": case.digest,
        "changes": {k: _show(v) for k, v in case.changes.items()},
        "sweep": str(sweep.path) if sweep.path else None,
    }


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, InputError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _write_failure(out: Path, case: Case, exc: BaseException, future) -> None:
    (out / "failed").mkdir(exist_ok=True)
    try:
        tb = "" if future is None else "".join(traceback.format_tb(future.traceback()))
    except Exception:
        tb = ""
    _write_bytes(
        out / "failed" / f"{case.slug}.txt",
        f"scenario: {case.name}\nerror: {_error_text(exc)}\n\n{tb}".encode(),
    )


# ------------------------------------------------------------------------------------------
# comparison outputs
# ------------------------------------------------------------------------------------------
def sweep_table(
    sweep: Sweep, summaries: dict[str, dict[str, Any]], failed: dict[str, str]
) -> pd.DataFrame:
    """sweep.csv: one row per scenario: changed keys, decisions, P50/P90 need by year."""
    rows = []
    for case in sweep.cases:
        row: dict[str, Any] = {"scenario": case.name, "folder": f"scenarios/{case.slug}"}
        row["status"] = (
            "failed" if case.name in failed else ("done" if case.name in summaries else "not run")
        )
        for key in sweep.keys:
            row[key] = _show(case.changes[key]) if key in case.changes else ""
        s = summaries.get(case.name)
        if s is not None:
            row["first_month_over_target"] = s["first_month_over_target"]
            for r in RESOURCES:
                row[f"first_month_over_target_{r}"] = s["first_month_over_target_by"][r]
            row["shortfall_target"] = s["shortfall_target"]
            row["service_suites_p50"] = s["service_suites_p50"]
            row["service_suites_p90"] = s["service_suites_p90"]
            row["modules_needed"] = s["modules_needed"]
            row["first_module_commit"] = s["first_module_commit"]
            row["added_module_cost"] = s["added_module_cost"]
            row["diagnostics_ok"] = s["diagnostics_ok"]
            for y in s["years"]:
                for stat in ("p50", "p90"):
                    row[f"{y['resource']}_{stat}_{y['year']}"] = y[stat]
        row["error"] = failed.get(case.name, "")
        row["digest"] = case.digest[:16]
        rows.append(row)
    frame = pd.DataFrame(rows)
    tail = ["error", "digest"]
    return frame[[c for c in frame.columns if c not in tail] + tail]


def monthly_table(sweep: Sweep, summaries: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """sweep_monthly.csv: scenario, month, installed suites, P50/P90 suites and operators."""
    frames = []
    for case in sweep.cases:
        s = summaries.get(case.name)
        if s is None:
            continue
        frames.append(
            pd.DataFrame(
                {
                    "scenario": case.name,
                    "month": s["months"],
                    "installed_suites": s["installed_suites"],
                    **s["monthly"],
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=["scenario", "month", "installed_suites"])
    return pd.concat(frames, ignore_index=True)


@default_style
def suite_need_figure(sweep: Sweep, summaries: dict[str, dict[str, Any]]) -> str:
    from matplotlib.figure import Figure

    from pmcap.report import inline_png

    fig = Figure(figsize=(10, 4))
    ax = fig.subplots()
    for case in sweep.cases:
        s = summaries.get(case.name)
        if s is None:
            continue
        months = pd.to_datetime(s["months"])
        (line,) = ax.plot(
            months, s["monthly"]["suites_p90"], drawstyle="steps-mid", label=case.name
        )
        ax.plot(months, s["installed_suites"], ls="--", lw=0.8, color=line.get_color())
    ax.set_title("P90 suite need per month (dashed: installed)")
    ax.set_ylabel("suites")
    if len(summaries) <= 12:
        ax.legend(frameon=False, fontsize=7, loc="upper left")
    return inline_png(fig)


def render_sweep(
    sweep: Sweep,
    summaries: dict[str, dict[str, Any]],
    failed: dict[str, str],
    rows: pd.DataFrame,
    version: str,
    extra: dict[str, Any] | None = None,
    out_root: Path | None = None,
) -> str:
    """sweep.html; ``out_root`` (the scenarios folder) links the scenarios with a report."""
    from importlib import resources

    import jinja2

    years = sorted({y["year"] for s in summaries.values() for y in s["years"]})
    # keys set to one value in every scenario ([set]) are in sweep.csv, not in the table
    keys = [
        k
        for k in sweep.keys
        if len({_show(c.changes.get(k, "")) for c in sweep.cases}) > 1 or len(sweep.cases) == 1
    ]
    table = []
    for case in sweep.cases:
        s = summaries.get(case.name)
        entry = {
            "name": case.name,
            "folder": f"scenarios/{case.slug}",
            "changes": [_show(case.changes.get(k, "")) for k in keys],
            "failed": failed.get(case.name),
            "cells": [],
        }
        if s is not None:
            by = {(y["year"], y["resource"]): y for y in s["years"]}
            for year in years:
                y = by.get((year, "suites"))
                entry["cells"].append(
                    None
                    if y is None
                    else {
                        "p50": f"{y['p50']:.1f}",
                        "p90": f"{y['p90']:.1f}",
                        "installed": f"{y['installed']:g}",
                        "short": y["short"],
                    }
                )
            fte = [by.get((years[-1], r)) for r in ("operator_fte", "qc_fte", "qa_fte")]
            entry["fte"] = [f"{y['p90']:.1f}" if y else "" for y in fte]
            entry["first"] = s["first_month_over_target"] or "none"
            entry["service"] = (
                ""
                if s["service_suites_p50"] is None
                else f"{s['service_suites_p50']} / {s['service_suites_p90']}"
            )
            entry["report"] = (
                out_root is not None and (out_root / case.slug / "report.html").exists()
            )
            entry["modules"] = f"{s['modules_needed']}" + (
                f" (commit {s['first_module_commit']})" if s["first_module_commit"] else ""
            )
            cost = s["added_module_cost"]
            entry["cost"] = "" if cost is None else f"{cost:,.0f}"
        table.append(entry)
    template = jinja2.Template(
        (resources.files("pmcap") / "templates" / "sweep.html").read_text(), autoescape=True
    )
    return template.render(
        title=sweep.title,
        base=str(sweep.base.path),
        version=version,
        keys=keys,
        years=years,
        last_year=years[-1] if years else "",
        table=table,
        n_done=len(summaries),
        n_failed=len(failed),
        n=len(sweep.cases),
        figure=suite_need_figure(sweep, summaries) if summaries else "",
        extra=extra or {},
    )
