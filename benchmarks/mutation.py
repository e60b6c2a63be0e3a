"""Mutation testing of the capacity maths and the forecast modules against the fast test tier.

Each mutant is one small change to one module's syntax tree (Python's ``ast``, no extra
dependency); the module's own tests run on it in a fresh ``pytest`` process. A mutant the tests
fail on is *killed*; one they pass is a *survivor*: either a missing test or an *equivalent*
mutant (a change no test could see, e.g. ``<`` -> ``<=`` where the two sides never tie), which a
human judges from the survivor list. Not part of CI (minutes per module); run it before closing
work that touches the maths. Team goal: at least 85% of non-equivalent mutants killed in
capacity/requirements.py, facility.py, _queue.py and plan.py, at least 70% in forecast/.

Operators: ``compare`` (< <=, > >=, == != swapped), ``arith`` (+ -, * / swapped, also in
``+=`` etc.), ``int+1``/``int-1`` (integer constants off by one), ``bool`` (and/or swapped,
``not`` dropped, True/False swapped), ``drop-term`` (one term of a + or - dropped),
``swap-args`` (two neighbouring positional arguments of a call swapped; not for max/min) and
``max-min`` (max/min, maximum/minimum, argmax/argmin... swapped). Not mutated: annotations,
decorators, f-strings, ``raise`` statements, string concatenation and lines marked
``# pragma: no mutate``.

The repository is never touched: the tree of ``--commit`` (default HEAD) is exported with
``git archive`` into a temporary folder, mutants are written there one at a time, and tests run
with that folder first on PYTHONPATH (it shadows the editable install), bytecode writing off,
``-p no:cacheprovider`` and a fixed ``--hypothesis-seed``. Modules using numba get a fresh
NUMBA_CACHE_DIR per mutant so a mutant of the ``cache=True`` kernel is compiled anew (their
timeout includes that compile); other mutants share a warm cache of the unmutated kernel.

Before the mutants, the unmutated tests run once per test set: they must pass, their time sets
the per-mutant timeout (``--timeout-factor`` x that time + 30 s), and a line tracer records
which lines of the module they execute. A sampled mutant on a line never executed is reported
as survived (``uncovered``) without running it (``--no-coverage`` runs it anyway); numba
modules are never traced (their compiled lines would look unexecuted).

Outcomes: ``killed`` (a test failed, or collection failed), ``survived``, ``timeout`` and
``error`` (the test process crashed or pytest itself failed: rc 3/4/5 or a signal, e.g. a
segfault of a mutated numba kernel). Kill rate = (killed + timeout + error) / mutants: a lower
bound of the rate over non-equivalent mutants.

Run (from the repository root, with the project's venv)::

    python benchmarks/mutation.py --list                       # all mutants, no tests run
    python benchmarks/mutation.py --modules capacity/plan.py --max-mutants-per-module 20
    python benchmarks/mutation.py --modules capacity forecast/portfolio.py forecast/draws.py \\
        --max-mutants-per-module 20 forecast/=10 --seed 1      # about half an hour
    python benchmarks/mutation.py --modules capacity --max-mutants-per-module 20 --seed 1 \\
        --commit 671eafe --json before.json                    # the tests of an older commit
    python benchmarks/mutation.py --mutant capacity/plan.py#57  # re-run one mutant

A run with ``--commit`` mutates that commit's code with that commit's tests; with the same
``--seed`` and sample size the before/after rates are comparable estimates (the mutants are
drawn from each commit's own code, so they are not the same mutants when the code changed).
Tests per module are in ``TESTS`` below (test files missing at a commit are left out).
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# module -> test files, in the order pytest runs them (it stops at the first failure). The
# table of refused inputs (test_bad_inputs.py, ~15 s) comes last: it checks the API refusals.
VALUES = "tests/capacity/test_values.py"
BAD = "tests/test_bad_inputs.py"
REQUIREMENTS = [
    "tests/capacity/test_requirements.py",
    VALUES,
    "tests/capacity/test_properties.py",
    "tests/capacity/test_chunked.py",
    "tests/test_benchmarks.py",
    BAD,
]
TESTS: dict[str, list[str]] = {
    "capacity/requirements.py": [
        "tests/capacity/test_requirements.py",
        VALUES,
        "tests/capacity/test_properties.py",
        "tests/test_benchmarks.py",
        BAD,
    ],
    "capacity/facility.py": ["tests/capacity/test_facility.py", VALUES, BAD],
    # the same modules after their rename (issue 14): a commit has one name or the other
    "capacity/engine.py": [
        "tests/capacity/test_requirements.py",
        VALUES,
        "tests/capacity/test_properties.py",
        "tests/test_benchmarks.py",
        BAD,
    ],
    # the modules that hold capacity/engine.py's code at newer commits
    "capacity/resource_needs.py": REQUIREMENTS,
    "capacity/occupancy.py": ["tests/capacity/test_occupancy_kernels.py", *REQUIREMENTS],
    "capacity/workload.py": ["tests/capacity/test_requirements_reference.py", *REQUIREMENTS],
    "capacity/chunked.py": REQUIREMENTS,
    "capacity/summary.py": REQUIREMENTS,
    "capacity/simulation.py": ["tests/capacity/test_facility.py", VALUES, BAD],
    "capacity/service_level.py": [
        "tests/capacity/test_facility.py",
        "tests/capacity/test_facility_kernel.py",
        VALUES,
        BAD,
    ],
    "capacity/_queue.py": [
        "tests/capacity/test_facility.py",
        "tests/capacity/test_facility_kernel.py",
        VALUES,
    ],
    "capacity/plan.py": ["tests/capacity/test_plan.py", VALUES, BAD],
    "capacity/demand.py": ["tests/capacity/test_demand.py", VALUES, BAD],
    "capacity/process.py": ["tests/capacity/test_process.py", VALUES, BAD],
    "capacity/distributions.py": ["tests/capacity/test_process.py", VALUES, BAD],
    "forecast/_dist.py": ["tests/forecast/test_dist.py", "tests/forecast/test_phase.py"],
}
FORECAST_SHARED = [
    "tests/forecast/test_portfolio.py",
    "tests/forecast/test_non_anticipation.py",
    BAD,
]
# the uptake noise and conditioning have their own test file besides test_uptake.py
TESTS["forecast/uptake/simulate.py"] = [
    "tests/forecast/test_uptake.py",
    "tests/forecast/test_uptake_noise.py",
    *FORECAST_SHARED,
]
# the phase simulation and review have their own test files besides test_phase.py
for _module in (
    "forecast/phase/model.py",
    "forecast/phase/durations.py",
    "forecast/phase/simulate.py",
):
    TESTS[_module] = [
        "tests/forecast/test_phase.py",
        "tests/forecast/test_phase_seams.py",
        "tests/forecast/test_review.py",
        *FORECAST_SHARED,
    ]
TESTS["capacity/workforce.py"] = ["tests/capacity/test_workforce.py", BAD]
TESTS["capacity/materials.py"] = [
    "tests/capacity/test_materials.py",
    "tests/capacity/test_materials_supply.py",
    BAD,
]
TESTS["capacity/vector.py"] = ["tests/capacity/test_vector.py", "tests/pmcap/test_vector_run.py"]
TESTS["capacity/network.py"] = ["tests/capacity/test_network.py"]
for _part in ("model", "layout", "assign", "milp", "plan"):  # the package since the split
    TESTS[f"capacity/network/{_part}.py"] = TESTS["capacity/network.py"]
TESTS["capacity/qclab.py"] = ["tests/capacity/test_qclab.py", "tests/capacity/test_qclab_hiring.py"]
TESTS["capacity/_qclab.py"] = TESTS["capacity/qclab.py"]
TESTS["capacity/twin.py"] = [
    "tests/capacity/test_twin.py",
    "tests/capacity/test_twin_sizing.py",
    "tests/capacity/test_twin_simpy_lab.py",
]
TESTS["capacity/_twin.py"] = TESTS["capacity/twin.py"]
TESTS["capacity/_binomial.py"] = ["tests/capacity/test_binomial.py", *REQUIREMENTS]
TESTS["capacity/_occupancy.py"] = ["tests/capacity/test_occupancy_kernels.py", *REQUIREMENTS]
TESTS["capacity/warmup.py"] = ["tests/capacity/test_warmup.py"]
TESTS["pmcap/forked.py"] = ["tests/pmcap/test_forked.py", "tests/pmcap/test_write_speed.py"]
TESTS["pmcap/twin_sizing.py"] = ["tests/pmcap/test_twin_sizing_run.py"]
TESTS["forecast/enrollment/density.py"] = [
    "tests/forecast/test_enrollment_density.py",
    "tests/forecast/test_enrollment.py",
]
DEFAULT_MODULES = [
    "capacity/requirements.py",  # capacity/engine.py since the rename
    "capacity/engine.py",
    "capacity/resource_needs.py",  # these five: capacity/engine.py at newer commits
    "capacity/occupancy.py",
    "capacity/workload.py",
    "capacity/chunked.py",
    "capacity/summary.py",
    "capacity/facility.py",  # capacity/simulation.py since the rename
    "capacity/simulation.py",
    "capacity/service_level.py",
    "capacity/_queue.py",
    "capacity/plan.py",
    "capacity/workforce.py",
    "capacity/materials.py",
    "capacity/vector.py",
    "capacity/network.py",  # capacity/network/*.py since the split
    "capacity/network/model.py",
    "capacity/network/layout.py",
    "capacity/network/assign.py",
    "capacity/network/milp.py",
    "capacity/network/plan.py",
    "capacity/qclab.py",
    "capacity/_qclab.py",
    "capacity/twin.py",
    "capacity/_twin.py",
    "capacity/demand.py",
    "capacity/process.py",
    "capacity/distributions.py",
    "forecast/portfolio.py",
    "forecast/draws.py",
    "forecast/enrollment.py",
    "forecast/phase.py",
    "forecast/uptake.py",
    # the same models as subpackages: a commit has the module or the package
    "forecast/enrollment/data.py",
    "forecast/enrollment/density.py",
    "forecast/enrollment/model.py",
    "forecast/enrollment/simulate.py",
    "forecast/phase/data.py",
    "forecast/phase/model.py",
    "forecast/phase/durations.py",
    "forecast/phase/simulate.py",
    "forecast/uptake/curves.py",
    "forecast/uptake/data.py",
    "forecast/uptake/model.py",
    "forecast/uptake/simulate.py",
    "forecast/backtest.py",
    "forecast/data.py",
]
PYTEST_ARGS = ["-x", "-q", "-o", "addopts=", "-m", "not slow", "-p", "no:cacheprovider"]
NO_MUTATE = "pragma: no mutate"


def tests_for(module: str, root: Path) -> list[str]:
    """The test files of ``module`` that exist in the tree at ``root``."""
    if module in TESTS:
        files = TESTS[module]
    elif module.startswith("forecast/"):
        # forecast/phase.py and the modules of forecast/phase/ are tested by test_phase.py
        name = Path(module).with_suffix("").parts[1]
        files = [f"tests/forecast/test_{name}.py", *FORECAST_SHARED]
    else:
        files = [f"tests/{Path(module).parent}/test_{Path(module).stem}.py"]
    return [f for f in dict.fromkeys(files) if (root / f).is_file()]


def normalise_module(name: str) -> list[str]:
    """``capacity/plan.py``, ``capacity.plan`` or a package (``forecast``) -> module paths."""
    name = name.strip().rstrip("/")
    if name.endswith(".py"):
        return [name]
    if "." in name:
        return [name.replace(".", "/") + ".py"]
    return [m for m in DEFAULT_MODULES if m.startswith(name + "/")] or [name + ".py"]


# --------------------------------------------------------------------------- mutants


@dataclass
class Mutant:
    module: str
    index: int  # position among all mutants of the module (stable for a given source)
    line: int
    end_line: int
    col: int
    operator: str
    original: str
    mutated: str
    outcome: str = ""  # killed / survived / timeout / error ("" until run)
    note: str = ""  # uncovered, collection error, rc...
    seconds: float = 0.0

    @property
    def id(self) -> str:
        return f"{self.module}#{self.index}"


@dataclass
class _Site:
    operator: str
    target: ast.AST  # node replaced in the tree
    new: ast.AST  # what replaces it (checked against the parsed mutant)
    edits: list[tuple[ast.AST, str]]  # source spans replaced by text
    shown: str  # the mutated code, for the report


COMPARE_SWAP = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
}
ARITH_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}
MAX_MIN = {
    "max": "min",
    "min": "max",
    "maximum": "minimum",
    "minimum": "maximum",
    "nanmax": "nanmin",
    "nanmin": "nanmax",
    "argmax": "argmin",
    "argmin": "argmax",
    "fmax": "fmin",
    "fmin": "fmax",
    "idxmax": "idxmin",
    "idxmin": "idxmax",
    "cummax": "cummin",
    "cummin": "cummax",
}
COMMUTATIVE_CALLS = {"max", "min", "maximum", "minimum", "fmax", "fmin", "add", "multiply"}


def _is_str(node: ast.AST) -> bool:
    return isinstance(node, ast.JoinedStr) or (
        isinstance(node, ast.Constant) and isinstance(node.value, str | bytes)
    )


def _call_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def _skipped_nodes(tree: ast.AST) -> set[int]:
    """ids of nodes never mutated: annotations, decorators, f-strings, raise statements."""
    roots: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
            roots.append(node.annotation)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            roots.extend(node.decorator_list)  # compiler options (numba's cache=, parallel=)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns:
            roots.append(node.returns)
        elif isinstance(node, ast.JoinedStr | ast.Raise):
            roots.append(node)
    return {id(sub) for root in roots for sub in ast.walk(root)}


def _paren(node: ast.AST) -> str:
    return "(" + ast.unparse(node) + ")"


def _expr_site(op: str, target: ast.AST, new: ast.AST) -> _Site:
    new = ast.fix_missing_locations(new)
    text = _paren(new)
    return _Site(op, target, ast.parse(text, mode="eval").body, [(target, text)], ast.unparse(new))


def _sites(tree: ast.AST, source_lines: list[str]) -> Iterator[_Site]:
    skipped = _skipped_nodes(tree)
    for node in ast.walk(tree):
        if id(node) in skipped or not hasattr(node, "lineno"):
            continue
        if any(NO_MUTATE in source_lines[i - 1] for i in range(node.lineno, node.end_lineno + 1)):
            continue
        yield from _node_sites(node)


def _node_sites(node: ast.AST) -> Iterator[_Site]:
    if isinstance(node, ast.Compare):
        for i, cmp in enumerate(node.ops):
            if type(cmp) in COMPARE_SWAP:
                new = copy.deepcopy(node)
                new.ops[i] = COMPARE_SWAP[type(cmp)]()
                yield _expr_site("compare", node, new)
    elif isinstance(node, ast.BinOp) and not (_is_str(node.left) or _is_str(node.right)):
        if type(node.op) in ARITH_SWAP:
            new = copy.deepcopy(node)
            new.op = ARITH_SWAP[type(node.op)]()
            yield _expr_site("arith", node, new)
        if isinstance(node.op, ast.Add | ast.Sub):
            yield _expr_site("drop-term", node, copy.deepcopy(node.left))
            left_is_term = not (
                isinstance(node.left, ast.BinOp) and isinstance(node.left.op, ast.Add | ast.Sub)
            )
            if left_is_term:
                right = copy.deepcopy(node.right)
                if isinstance(node.op, ast.Sub):
                    right = ast.UnaryOp(ast.USub(), right)
                yield _expr_site("drop-term", node, right)
    elif isinstance(node, ast.AugAssign) and type(node.op) in ARITH_SWAP:
        if not _is_str(node.value):
            new = copy.deepcopy(node)
            new.op = ARITH_SWAP[type(node.op)]()
            text = ast.unparse(new)
            yield _Site("arith", node, ast.parse(text).body[0], [(node, text)], text)
    elif isinstance(node, ast.Constant):
        if type(node.value) is int:
            for delta, op in ((1, "int+1"), (-1, "int-1")):
                yield _expr_site(op, node, ast.Constant(node.value + delta))
        elif type(node.value) is bool:
            yield _expr_site("bool", node, ast.Constant(not node.value))
    elif isinstance(node, ast.BoolOp):
        new = copy.deepcopy(node)
        new.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        yield _expr_site("bool", node, new)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield _expr_site("bool", node, copy.deepcopy(node.operand))
    elif isinstance(node, ast.Call):
        name = _call_name(node)
        if name in MAX_MIN:
            new = copy.deepcopy(node)
            if isinstance(new.func, ast.Name):
                new.func.id = MAX_MIN[name]
            else:
                new.func.attr = MAX_MIN[name]
            yield _expr_site("max-min", node, new)
        if name not in COMMUTATIVE_CALLS and not any(isinstance(a, ast.Starred) for a in node.args):
            for i in range(len(node.args) - 1):
                a, b = node.args[i], node.args[i + 1]
                if ast.dump(a) == ast.dump(b):
                    continue
                new = copy.deepcopy(node)
                new.args[i], new.args[i + 1] = new.args[i + 1], new.args[i]
                yield _Site("swap-args", node, new, [(a, ""), (b, "")], "")


def _offsets(source: str) -> list[int]:
    """Byte offset of the start of each line (ast columns are UTF-8 byte offsets)."""
    starts, pos = [0], 0
    for line in source.encode().splitlines(keepends=True):
        pos += len(line)
        starts.append(pos)
    return starts


def _span(node: ast.AST, starts: list[int]) -> tuple[int, int]:
    return (
        starts[node.lineno - 1] + node.col_offset,
        starts[node.end_lineno - 1] + node.end_col_offset,
    )


def _replace(tree: ast.AST, target: ast.AST, new: ast.AST) -> ast.AST:
    class Replace(ast.NodeTransformer):
        def visit(self, node: ast.AST) -> ast.AST:
            return new if node is target else self.generic_visit(node)

    return Replace().visit(tree)


def _apply(source: str, starts: list[int], site: _Site) -> str:
    data = source.encode()
    spans = [(*_span(node, starts), text) for node, text in site.edits]
    if site.operator == "swap-args":  # each argument gets the other's source text
        (a0, a1, _), (b0, b1, _) = spans
        spans = [(a0, a1, data[b0:b1].decode()), (b0, b1, data[a0:a1].decode())]
    for start, end, text in sorted(spans, reverse=True):
        data = data[:start] + text.encode() + data[end:]
    return data.decode()


def _one_line(text: str, width: int = 110) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def enumerate_mutants(module: str, source: str) -> tuple[list[Mutant], list[_Site]]:
    """Every mutant of ``source``, ordered by position, and the edit behind each."""
    tree = ast.parse(source)
    lines = source.splitlines()
    sites = sorted(
        _sites(tree, lines),
        key=lambda s: (s.target.lineno, s.target.col_offset),  # stable: walk order within
    )
    mutants = []
    for index, site in enumerate(sites):
        original = ast.get_source_segment(source, site.target) or ast.unparse(site.target)
        if site.operator == "swap-args":  # show the callee and the two arguments only
            (a, _), (b, _) = site.edits
            call = site.target
            i = call.args.index(a)
            head = ast.get_source_segment(source, call.func) + "("
            head += "..., " if i else ""
            tail = ", ...)" if i + 2 < len(call.args) or call.keywords else ")"
            seg_a, seg_b = (ast.get_source_segment(source, x) for x in (a, b))
            original = f"{head}{seg_a}, {seg_b}{tail}"
            site.shown = f"{head}{seg_b}, {seg_a}{tail}"
        elif len(original) < 25 and site.target.lineno == site.target.end_lineno:
            # a short node (a constant, ``not x``): show its whole line for context
            line = lines[site.target.lineno - 1].encode()
            col, end = site.target.col_offset, site.target.end_col_offset
            original = line.decode().strip()
            site.shown = (line[:col] + site.shown.encode() + line[end:]).decode().strip()
        mutants.append(
            Mutant(
                module=module,
                index=index,
                line=site.target.lineno,
                end_line=site.target.end_lineno,
                col=site.target.col_offset,
                operator=site.operator,
                original=_one_line(original),
                mutated=_one_line(site.shown),
            )
        )
    return mutants, sites


def mutated_source(source: str, site: _Site) -> str | None:
    """The source with ``site`` applied, or None if the text edit does not give the intended
    tree (checked by parsing it: the mutant is then left out)."""
    text = _apply(source, _offsets(source), site)
    tree = ast.parse(source)
    expected = _replace(tree, _find(tree, site.target), site.new)
    try:
        return text if ast.dump(ast.parse(text)) == ast.dump(expected) else None
    except SyntaxError:
        return None


def _find(tree: ast.AST, like: ast.AST) -> ast.AST:
    """The node of a fresh parse at the same position and of the same type as ``like``."""
    for node in ast.walk(tree):
        if (
            type(node) is type(like)
            and getattr(node, "lineno", None) == like.lineno
            and node.col_offset == like.col_offset
            and node.end_lineno == like.end_lineno
            and node.end_col_offset == like.end_col_offset
        ):
            return node
    raise LookupError(like)


def sample_size(module: str, sizes: list[str]) -> int | None:
    """N from ``--max-mutants-per-module``: the longest matching PREFIX=N, else a plain N."""
    plain = [int(s) for s in sizes if "=" not in s]
    prefixed = sorted(
        (s.split("=") for s in sizes if "=" in s), key=lambda kv: len(kv[0]), reverse=True
    )
    for prefix, n in prefixed:
        if module.startswith(prefix):
            return int(n)
    return plain[-1] if plain else None


def sample(mutants: list[Mutant], n: int | None, seed: int, module: str) -> list[Mutant]:
    if n is None or n >= len(mutants):
        return list(mutants)
    rng = random.Random(f"{seed}:{module}")  # str seeds are hashed deterministically
    return sorted(rng.sample(mutants, n), key=lambda m: m.index)


# --------------------------------------------------------------------------- running

TRACER = '''
"""pytest plugin: record the lines of MUTATION_TRACE_FILES executed during the run."""
import json, os, sys, threading

_targets = {os.path.realpath(p): set() for p in json.loads(os.environ["MUTATION_TRACE_FILES"])}
_seen = {}

def _local(frame, event, arg):
    if event == "line":
        _seen[frame.f_code.co_filename].add(frame.f_lineno)
    return _local

def _global(frame, event, arg):
    name = frame.f_code.co_filename
    if name not in _seen:
        _seen[name] = _targets.get(os.path.realpath(name))
    lines = _seen[name]
    if lines is None:
        return None
    lines.add(frame.f_lineno)
    return _local

sys.settrace(_global)
threading.settrace(_global)

def pytest_unconfigure(config):
    sys.settrace(None)
    with open(os.environ["MUTATION_TRACE_OUT"], "w") as out:
        json.dump({k: sorted(v) for k, v in _targets.items()}, out)
'''


def _uses_numba(source: str) -> bool:
    return "numba" in source and ("njit" in source or "numba.jit" in source)


@dataclass
class Baseline:
    seconds: float
    executed: dict[str, set[int]] | None = None  # module -> lines, None: not traced


@dataclass
class Runner:
    root: Path
    work: Path
    python: str
    seed: int
    timeout_factor: float
    warm_cache: Path  # NUMBA_CACHE_DIR of runs that leave the numba kernel as it is

    def env(self, numba_cache: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("PYTEST_ADDOPTS", None)
        env.update(
            PYTHONPATH=os.pathsep.join([str(self.root), str(self.work / "plugins")]),
            PYTHONDONTWRITEBYTECODE="1",
            NUMBA_CACHE_DIR=str(numba_cache),
            MPLBACKEND="Agg",
            PYTHONHASHSEED="0",
        )
        env.update(extra or {})
        return env

    def pytest(
        self,
        tests: list[str],
        env: dict[str, str],
        timeout: float | None,
        log: Path,
        plugins: tuple[str, ...] = (),
    ) -> tuple[int | None, float]:
        """Run pytest in a new process group; rc None means it timed out (and was killed)."""
        shutil.rmtree(self.root / ".hypothesis", ignore_errors=True)  # no replayed examples
        args = [self.python, "-m", "pytest", *PYTEST_ARGS, f"--hypothesis-seed={self.seed}"]
        for plugin in plugins:
            args += ["-p", plugin]
        start = time.monotonic()
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [*args, *tests],
                cwd=self.root,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                rc = None
            except BaseException:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise
            if rc is None:
                # the pytest process started here, with its children (same session)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        return rc, time.monotonic() - start

    def baseline(self, tests: list[str], modules: list[str], jit: bool) -> Baseline:
        """The unmutated run: must pass; traced (lines executed) unless ``jit``."""
        log = self.work / f"baseline-{len(list(self.work.glob('baseline-*')))}.log"
        executed = None
        if jit:  # a cold numba cache, as every mutant of a numba module will see
            cache = Path(tempfile.mkdtemp(prefix="numba-", dir=self.work))
            rc, seconds = self.pytest(tests, self.env(cache), None, log)
            shutil.rmtree(cache, ignore_errors=True)
        else:
            out = self.work / "trace.json"
            paths = [str(self.root / m) for m in modules]
            extra = {"MUTATION_TRACE_FILES": json.dumps(paths), "MUTATION_TRACE_OUT": str(out)}
            env = self.env(self.warm_cache, extra)
            rc, seconds = self.pytest(tests, env, None, log, plugins=("_mutation_trace",))
            if rc == 0:
                data = json.loads(out.read_text())
                executed = {m: set(data[os.path.realpath(self.root / m)]) for m in modules}
        if rc != 0:
            tail = "\n".join(log.read_text().splitlines()[-30:])
            raise RuntimeError(f"unmutated tests fail (rc {rc}): {' '.join(tests)}\n{tail}")
        return Baseline(seconds, executed)

    def run(self, mutant: Mutant, text: str, tests: list[str], base: Baseline, jit: bool) -> None:
        path = self.root / mutant.module
        original, stat = path.read_bytes(), path.stat()
        cache = Path(tempfile.mkdtemp(prefix="numba-", dir=self.work)) if jit else None
        log = self.work / f"mutant-{self.root.name}.log"
        try:
            path.write_text(text)
            timeout = self.timeout_factor * base.seconds + 30
            env = self.env(cache or self.warm_cache)
            rc, mutant.seconds = self.pytest(tests, env, timeout, log)
        finally:
            path.write_bytes(original)
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # keeps the warm cache valid
            if cache is not None:
                shutil.rmtree(cache, ignore_errors=True)
        if rc is None:
            mutant.outcome = "timeout"
        elif rc == 0:
            mutant.outcome = "survived"
        elif rc in (1, 2):
            mutant.outcome = "killed"
            if rc == 2:
                mutant.note = "collection error"
        else:
            mutant.outcome = "error"
            mutant.note = f"rc {rc}" + (f" (signal {-rc})" if rc < 0 else "")
            lines = log.read_text(errors="replace").splitlines()
            fatal = [line for line in lines if line.startswith(("Fatal Python error", "E   "))]
            mutant.note += ": " + _one_line(" | ".join(fatal[:1] or lines[-2:]), 120)


def export(rev: str, dest: Path) -> str:
    """The tree of ``rev`` into ``dest`` (git archive: the repository is only read)."""
    sha = subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    dest.mkdir(parents=True)
    archive = subprocess.Popen(["git", "archive", sha], cwd=REPO, stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise RuntimeError(f"git archive {sha} failed")
    return sha


# --------------------------------------------------------------------------- report

DETECTED = ("killed", "timeout", "error")


def table(results: dict[str, list[Mutant]]) -> str:
    head = f"{'module':<28}{'mutants':>8}{'killed':>8}{'survived':>9}{'(uncov)':>8}"
    head += f"{'timeout':>8}{'error':>6}{'kill rate':>10}"
    rows = [head, "-" * len(head)]
    for module, mutants in results.items():
        count = {o: sum(m.outcome == o for m in mutants) for o in (*DETECTED, "survived")}
        uncovered = sum(m.note == "uncovered" for m in mutants)
        rate = sum(count[o] for o in DETECTED) / len(mutants) if mutants else float("nan")
        rows.append(
            f"{module:<28}{len(mutants):>8}{count['killed']:>8}{count['survived']:>9}"
            f"{uncovered:>8}{count['timeout']:>8}{count['error']:>6}{rate:>10.0%}"
        )
    return "\n".join(rows)


def survivors(results: dict[str, list[Mutant]]) -> str:
    lines = []
    for module, mutants in results.items():
        for m in mutants:
            if m.outcome == "survived":
                note = f"  [{m.note}]" if m.note else ""
                lines.append(f"{m.id:<32} {module}:{m.line} {m.operator}{note}")
                lines.append(f"    {m.original}  ->  {m.mutated}")
    return "\n".join(lines) or "(none)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--modules", nargs="+", default=DEFAULT_MODULES, metavar="MODULE")
    parser.add_argument(
        "--max-mutants-per-module",
        nargs="+",
        default=[],
        metavar="N",
        help="a seeded random sample of N mutants per module; PREFIX=N for the modules\n"
        "starting with PREFIX (e.g. 20 forecast/=10)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--commit", default="HEAD", metavar="REV")
    parser.add_argument("--jobs", type=int, default=1, help="parallel copies (default 1)")
    parser.add_argument("--list", action="store_true", help="print the mutants, run nothing")
    parser.add_argument("--mutant", nargs="+", default=None, metavar="ID", help="module#index")
    parser.add_argument("--timeout-factor", type=float, default=3.0)
    parser.add_argument("--no-coverage", action="store_true", help="run uncovered mutants too")
    parser.add_argument("--json", type=Path, default=None, help="write every result here")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)

    modules = list(dict.fromkeys(m for name in args.modules for m in normalise_module(name)))
    if args.mutant:
        modules = list(dict.fromkeys(i.split("#")[0] for i in args.mutant))
    work = Path(tempfile.mkdtemp(prefix="pmcap-mutation-"))
    started = time.monotonic()
    try:
        return _main(args, modules, work, started)
    finally:
        if args.keep:
            print(f"temporary folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _main(args: argparse.Namespace, modules: list[str], work: Path, started: float) -> int:
    roots = [work / f"tree-{i}" for i in range(max(1, args.jobs))]
    sha = export(args.commit, roots[0])
    for root in roots[1:]:
        shutil.copytree(roots[0], root, symlinks=True)
    print(f"commit {sha} ({args.commit}) exported to {roots[0]}; seed {args.seed}")

    plan: dict[str, tuple[list[Mutant], dict[int, str], list[str], bool]] = {}
    for module in modules:
        path = roots[0] / module
        if not path.is_file():
            print(f"{module}: not in this commit, skipped")
            continue
        source = path.read_text()
        mutants, sites = enumerate_mutants(module, source)
        tests = tests_for(module, roots[0])
        if args.mutant:
            wanted = {int(i.split("#")[1]) for i in args.mutant if i.split("#")[0] == module}
            chosen = [m for m in mutants if m.index in wanted]
        else:
            chosen = sample(
                mutants, sample_size(module, args.max_mutants_per_module), args.seed, module
            )
        texts = {}
        for m in list(chosen):
            text = mutated_source(source, sites[m.index])
            if text is None:
                print(f"  {m.id} ({m.operator}, line {m.line}) left out: the edit fails its check")
                chosen.remove(m)
            else:
                texts[m.index] = text
        print(
            f"{module}: {len(mutants)} mutants, {len(chosen)} chosen; "
            f"tests: {' '.join(tests) or '(none)'}"
        )
        if not tests:
            continue
        plan[module] = (chosen, texts, tests, _uses_numba(source))

    if args.list:
        for module, (chosen, *_rest) in plan.items():
            for m in chosen:
                print(
                    f"{m.id:<32} {module}:{m.line:<5} {m.operator:<10} "
                    f"{m.original}  ->  {m.mutated}"
                )
        return 0

    plugins = work / "plugins"
    plugins.mkdir()
    (plugins / "_mutation_trace.py").write_text(textwrap.dedent(TRACER))
    runners = [
        Runner(root, work, args.python, args.seed, args.timeout_factor, work / f"numba-{i}")
        for i, root in enumerate(roots)
    ]

    # one unmutated run per (test set, numba or not); traced for the modules it covers
    baselines: dict[tuple[tuple[str, ...], bool], Baseline] = {}
    groups: dict[tuple[tuple[str, ...], bool], list[str]] = {}
    for module, (_chosen, _texts, tests, jit) in plan.items():
        groups.setdefault((tuple(tests), jit), []).append(module)
    for (tests, jit), members in groups.items():
        try:
            base = runners[0].baseline(list(tests), members, jit)
        except RuntimeError as error:  # nothing to measure: leave these modules out
            print(f"{' '.join(members)} left out: {error}")
            for module in members:
                del plan[module]
            continue
        baselines[tests, jit] = base
        kind = "cold numba cache" if jit else "traced"
        print(f"baseline ({kind}) {base.seconds:.0f} s: {' '.join(tests)}", flush=True)

    jobs = []
    for module, (chosen, texts, tests, jit) in plan.items():
        base = baselines[tuple(tests), jit]
        for m in chosen:
            lines = set(range(m.line, m.end_line + 1))
            if base.executed is not None and not args.no_coverage:
                if not lines & base.executed[module]:
                    m.outcome, m.note = "survived", "uncovered"
                    continue
            jobs.append((m, texts[m.index], tests, base, jit))
    print(f"{len(jobs)} mutants to run, {args.jobs} job(s)\n", flush=True)

    done = [0]

    def report(m: Mutant) -> None:
        done[0] += 1
        note = f" ({m.note})" if m.note else ""
        print(
            f"[{done[0]}/{len(jobs)}] {m.module}:{m.line} {m.operator} "
            f"{m.original!r} -> {m.mutated!r}: {m.outcome}{note} {m.seconds:.0f} s",
            flush=True,
        )

    if args.jobs <= 1:
        for m, text, tests, base, jit in jobs:
            runners[0].run(m, text, tests, base, jit)
            report(m)
    else:
        import queue
        import threading

        todo: queue.Queue = queue.Queue()
        for job in jobs:
            todo.put(job)
        lock = threading.Lock()

        def worker(runner: Runner) -> None:
            while True:
                try:
                    m, text, tests, base, jit = todo.get_nowait()
                except queue.Empty:
                    return
                runner.run(m, text, tests, base, jit)
                with lock:
                    report(m)

        threads = [threading.Thread(target=worker, args=(r,)) for r in runners]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    results = {module: chosen for module, (chosen, *_rest) in plan.items()}
    elapsed = time.monotonic() - started
    print(f"\ncommit {sha}, seed {args.seed}, {elapsed / 60:.1f} min")
    print(table(results))
    print("\nSurvivors (judge: equivalent, or a missing test):")
    print(survivors(results))
    if args.json:
        payload = {
            "commit": sha,
            "seed": args.seed,
            "minutes": elapsed / 60,
            "baselines": {" ".join(k[0]): v.seconds for k, v in baselines.items()},
            "mutants": [asdict(m) | {"id": m.id} for ms in results.values() for m in ms],
        }
        args.json.write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
