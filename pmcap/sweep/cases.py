"""The scenarios of a sweep: a sweep file read, its keys resolved against the base scenario,
each variant crossed with the grid, and every scenario validated and its inputs checked."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import itertools
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from capacity.errors import InputError
from pmcap.scenario import (
    Scenario,
    check_draws_option,
    check_files,
    describe_validation_error,
    load_scenario,
    read_toml,
)

__all__ = [
    "Case",
    "CaseOutputs",
    "ExtraOutputs",
    "ExtraTables",
    "Sweep",
    "is_distribution",
    "load_sweep",
    "make_cases",
    "value_label",
]


DIST_KINDS = ("beta", "triangular", "uniform", "lognormal")
MAX_CASES = 10_000  # scenarios in one sweep
# progress(name, status, done, total), as run_sweep's
Progress = Callable[[str, str, int, int], None]
TOP = ("run", "models", "facility", "workforce", "network", "program", "process")
# keys under program.NAME whose value is a file path
FILE_KEYS = {("enrollment", "patients"), ("enrollment", "counts"), ("enrollment", "sites")}
FILE_KEYS |= {("uptake", "patients")}


@dataclass(frozen=True)
class CaseOutputs:
    """What a scenario of a sweep writes and keeps in its summary.

    Attributes
    ----------
    full_run : bool, default True
        Write every output of ``pmcap run`` (report, CSVs, draws.nc) and size the suites for
        the service level. False: the folder holds only the summary, the scenario.toml and a
        manifest (still resumed by a rerun), and the service-level sizing is skipped.
    per_draw : bool, default False
        Keep each draw's peak suite and operator need per year in the summary (``per_draw``).
    ranking : bool, default False
        Also keep every input sampled per draw (``inputs``), to rank them against the need;
        implies ``per_draw``.
    """

    full_run: bool = True
    per_draw: bool = False
    ranking: bool = False


@dataclass
class Case:
    """One scenario of a sweep: its name, the changes from the base and the checked inputs.

    Attributes
    ----------
    name : str
        The variant's name and the grid's values (``"automated, facility.suites=30"``).
    slug : str
        Its folder under ``scenarios/``.
    changes : dict
        Dotted key -> value as written in the sweep file.
    raw : dict
        The scenario as TOML data, file paths absolute.
    scenario : Scenario
        The validated scenario.
    parsed : dict
        Its checked inputs (:func:`pmcap.run.check_inputs`).
    digest : str
        Hash of the scenario, its input files, pmcap's version and source: a rerun skips a
        scenario whose folder has a summary with this digest.
    role : str, default "case"
        "base", "low" or "high" in a sensitivity sweep.
    outputs : CaseOutputs, default CaseOutputs()
        What it writes and keeps in its summary.
    """

    name: str
    slug: str
    changes: dict[str, Any]
    raw: dict[str, Any]
    scenario: Scenario
    parsed: dict[str, Any]
    digest: str
    role: str = "case"
    outputs: CaseOutputs = CaseOutputs()

    def text(self, title: str) -> str:
        """The scenario as a runnable TOML file (``pmcap run`` gives the same outputs)."""
        import tomli_w

        changes = "".join(f"#   {k} = {value_label(v)}\n" for k, v in self.changes.items())
        head = (
            f"# Scenario {self.name!r} of the sweep {title!r}, written by pmcap.\n"
            f"# The base scenario {self.scenario.path} with these changes:\n"
        ) + (changes or "#   (none)\n")
        return head + "\n" + tomli_w.dumps(self.raw)


@dataclass
class Sweep:
    """The scenarios of a sweep, checked, and how their comparison is written.

    Attributes
    ----------
    path : Path or None
        The sweep file (None for a sweep built in code, as pmcap sensitivity's).
    title : str
        Title of sweep.html.
    base : Scenario
        The base scenario the changes apply to.
    cases : list of Case
        The scenarios, in the order of the sweep file.
    keys : list of str
        Every changed key, in order of first appearance (the columns of sweep.csv).
    extra_tables : ExtraTables or None, default None
        Tables an analysis adds to the comparison (pmcap sensitivity's tornado and ranking).
    """

    path: Path | None
    title: str
    base: Scenario
    cases: list[Case]
    keys: list[str]
    extra_tables: ExtraTables | None = None


@dataclass(frozen=True)
class ExtraOutputs:
    """What an analysis adds to a sweep's comparison.

    Attributes
    ----------
    sections : dict
        Values for sweep.html's ``extra`` sections.
    files : dict of str to bytes
        Files written beside sweep.csv, by name.
    tables : dict
        The analysis's tables, handed back on ``SweepResult.sensitivity``.
    """

    sections: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    tables: dict[str, Any] = field(default_factory=dict)


class ExtraTables(Protocol):
    """An analysis of a sweep's finished scenarios (a picklable object, not a closure): called
    once all scenarios are done, with the summaries by scenario name."""

    def __call__(self, sweep: Sweep, summaries: dict[str, dict[str, Any]]) -> ExtraOutputs: ...


def is_distribution(value: Any) -> bool:
    """A value written as a distribution, e.g. ``{triangular = [6, 7, 9]}``."""
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


def value_label(value: Any) -> str:
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
            return f"{kind}(" + ", ".join(f"{k}={value_label(v)}" for k, v in args.items()) + ")"
        return f"{kind}(" + ", ".join(value_label(a) for a in args) + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={value_label(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(value_label(v) for v in value) + "]"
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
                "facility., workforce., network., program.NAME. or process.NAME."
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


def _entry_name(entry: Any) -> str | None:
    """The name a sweep key gives an entry of a list of tables: its ``name``, or for a
    ``[[network.lane]]`` ``REGION.SITE`` (``network.lane.US.CDMO.transport_days``)."""
    if not isinstance(entry, dict):
        return None
    if "name" in entry:
        return str(entry["name"])
    if "region" in entry and "site" in entry:
        return f"{entry['region']}.{entry['site']}"
    return None


def _apply(
    raw: dict, path: tuple[str, ...], value: Any, where: str, bills: dict | None = None
) -> None:
    """Set one dotted key in the scenario data ``raw``.

    A list of named tables (the items of ``process.NAME.materials``, the sites of
    ``[network]``) is addressed by name: ``process.NAME.materials.item.ITEM.FIELD`` (the
    longest item name that matches wins, so a name may hold dots); a lane of ``[network]`` by
    its region and site: ``network.lane.REGION.SITE.FIELD``. ``bills`` maps a process to its
    bill of materials as TOML data: a ``materials`` key of a process whose bill comes from its
    process file copies that bill into the scenario's ``[process.NAME]`` first (a
    ``materials`` table replaces the bill).
    """
    dotted = ".".join(path)
    if path[0] == "program":
        node = next(p for p in raw["program"] if p.get("name") == path[1])
        keys = path[2:]
    elif path[0] == "process":
        node = raw.setdefault("process", {}).setdefault(path[1], {})
        keys = path[2:]
        if keys[0] == "materials" and "materials" not in node and path[1] in (bills or {}):
            node["materials"] = copy.deepcopy(bills[path[1]])
    else:
        node, keys = raw, path
    i = 0
    while i < len(keys) - 1:
        k = keys[i]
        nxt = node.get(k)
        if isinstance(nxt, list) and nxt and all(_entry_name(e) is not None for e in nxt):
            names = [_entry_name(e) for e in nxt]
            for j in range(len(keys) - 1, i + 1, -1):
                if ".".join(keys[i + 1 : j]) in names:
                    node, i = nxt[names.index(".".join(keys[i + 1 : j]))], j
                    break
            else:
                raise InputError(
                    f"{where}: {dotted}: {'.'.join(path[: 2 + i + 1])} has no entry named "
                    f"{'.'.join(keys[i + 1 : -1])!r} (names: {', '.join(names)})"
                )
            continue
        if nxt is None:
            nxt = node[k] = {}
        elif not isinstance(nxt, dict) or is_distribution(nxt):
            raise InputError(f"{where}: {dotted}: {k!r} is a value, not a table, in the base")
        node = nxt
        i += 1
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
    progress: Progress | None = None,
) -> tuple[list[Case], list[str]]:
    """The scenarios of a sweep: each variant crossed with every combination of the grid.

    ``variants`` are ``(name, [(path, value), ...])``; paths are resolved against ``base``
    (see :class:`_Keys`). ``common`` changes apply to every scenario, ``roles`` (one per
    variant) set each scenario's :attr:`Case.role`. Every scenario is validated and its
    inputs checked here; returns the scenarios and every changed key in order of first
    appearance. A sweep of more than :data:`MAX_CASES` scenarios is refused before any is
    checked; ``progress(name, "checking", done, total)`` is called with ``done = 0`` before
    the first check (the sweep's size) and after each scenario is checked.
    """
    from pmcap import __version__
    from pmcap.inputs import check_inputs, scenario_processes

    base_raw = tomllib.loads(base.path.read_text())
    base_processes = scenario_processes(base).values()
    process_names = sorted({s.name for s in base_processes})
    bills = {s.name: s.materials.to_toml() for s in base_processes if s.materials is not None}
    keys = _Keys(base_raw, process_names, where)
    folder = folder or (base.path.parent if base.path else Path.cwd())
    grid = [(keys.resolve(p), list(v)) for p, v in grid]
    common = [(keys.resolve(p), v) for p, v in common]
    _no_overlap(common, "[set]", [(p, None) for p, _ in grid], "[grid]", where)
    combos = list(itertools.product(*[[(p, v) for v in values] for p, values in grid])) or [()]
    total = len(variants) * len(combos)
    if total > MAX_CASES:
        raise InputError(
            f"{where}: {total:,} scenarios ({len(variants)} variant"
            f"{'' if len(variants) == 1 else 's'} x {len(combos):,} grid combinations); a sweep "
            f"runs at most {MAX_CASES:,}"
        )
    progress = progress or (lambda name, status, done, total: None)
    progress("", "checking", 0, total)
    cases, seen_keys, taken = [], [], set()
    for i, (vname, changes) in enumerate(variants):
        vkeys = _Keys(base_raw, process_names, f"{where}: variant {vname!r}" if vname else where)
        changes = [(vkeys.resolve(p), v) for p, v in changes]
        _no_overlap(changes, f"variant {vname!r}", common, "[set]", where)
        _no_overlap(changes, f"variant {vname!r}", [(p, None) for p, _ in grid], "[grid]", where)
        for combo in combos:
            all_changes = [*common, *changes, *combo]
            label = [vname] if vname else []
            label += [f"{'.'.join(p)}={value_label(v)}" for p, v in combo]
            name = ", ".join(label) or "base"
            at = f"{where}: scenario {name!r}"
            raw = copy.deepcopy(base_raw)
            _absolute_paths(raw, base.path.parent)
            shown: dict[str, Any] = {}
            for path, value in all_changes:
                _apply(raw, path, _file_value(path, value, folder), at, bills)
                shown[".".join(path)] = value
                if ".".join(path) not in seen_keys:
                    seen_keys.append(".".join(path))
            _drop_unused_overrides(raw)
            try:
                scenario = Scenario.model_validate(raw)
            except ValidationError as exc:
                raise InputError(describe_validation_error(exc, at)) from None
            scenario._path, scenario._given = base.path, base.shown_path
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
            progress(name, "checking", len(cases), total)
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


def load_sweep(
    path: str | Path, *, draws: int | None = None, progress: Progress | None = None
) -> Sweep:
    """Read a sweep file, build every scenario and check it (nothing runs); ``progress`` is
    told the sweep's size before the first check and each scenario checked
    (:func:`make_cases`)."""
    check_draws_option(draws)
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
        common.append((("run", "draws"), draws))
    cases, keys = make_cases(
        base,
        variants,
        grid=grid,
        common=common,
        where=str(path),
        folder=path.parent,
        progress=progress,
    )
    title = str(head.get("title") or path.stem)
    return Sweep(path=path.resolve(), title=title, base=base, cases=cases, keys=keys)
