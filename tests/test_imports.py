"""What the packages' imports load, and how their modules depend on each other.

* Forecasting from a saved posterior imports neither PyMC, PyTensor, ArviZ nor scipy.stats:
  ``import forecast``, loading the shipped posteriors (and a saved enrollment posterior),
  their diagnostics and a small forecast run in a fresh interpreter, which then reports the
  modules it loaded. The diagnostics computed without ArviZ are checked against
  ``az.summary``.
* The import graph of capacity's, forecast's and pmcap's modules, read from the source with
  :mod:`ast` (module-level and function-local imports), has no cycle, and no library module
  imports the command line (:mod:`pmcap.cli`).
"""

from __future__ import annotations

import ast
import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "forecast" / "posteriors"
HEAVY = ("pymc", "pytensor", "arviz", "scipy.stats")  # scipy.stats: about 1 s to import

SCRIPT = """
import json, sys
from pathlib import Path
import forecast
after_import = sorted(m for m in {heavy!r} if m in sys.modules)
shipped = Path({shipped!r})
phase = forecast.PhaseTransitionModel.load(next(shipped.glob("phase-*.nc")))
uptake = forecast.UptakeModel.load(next(shipped.glob("uptake-*.nc")))
sim = phase.simulate("phase2", "2025-01-01", draws=50, group="CAR-T", as_of="2026-01-01")
fc = uptake.forecast("Kymriah", "2027-01-01", horizon_months=24, draws=50)
enrollment = forecast.EnrollmentModel.load({enrollment!r})
trial = enrollment.forecast(horizon_months=12, draws=50)
out = {{
    "after_import": after_import,
    "after_forecast": sorted(m for m in {heavy!r} if m in sys.modules),
    "diagnostics": [phase.diagnostics(), uptake.diagnostics(), enrollment.diagnostics()],
    "approved": float(sim["approved"].mean()),
    "patients": float(fc.sum()),
    "enrolled": float(trial["enrolled"].sum()),
}}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def enrollment_file(tmp_path_factory) -> str:
    from tests.forecast.fakes import enrollment_model

    path = tmp_path_factory.mktemp("enrollment") / "enrollment.nc"
    enrollment_model(target=200).save(path)
    return str(path)


def test_forecast_from_saved_posteriors_imports_no_pymc(enrollment_file):
    script = SCRIPT.format(heavy=HEAVY, shipped=str(SHIPPED), enrollment=enrollment_file)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["after_import"] == []
    assert out["after_forecast"] == []
    phase, uptake, enrollment = out["diagnostics"]
    # the shipped posteriors' fit diagnostics (pmcap/fits.py: R-hat <= 1.01, ESS 912 and 1612)
    assert phase == {"r_hat_max": 1.01, "ess_bulk_min": 912.0, "divergences": 0, "draws": 4000}
    assert uptake == {"r_hat_max": 1.0, "ess_bulk_min": 1612.0, "divergences": 0, "draws": 4000}
    assert enrollment["closed_form"]
    assert 0 < out["approved"] < 1
    assert out["patients"] > 0
    assert out["enrolled"] > 0


@pytest.mark.parametrize("kind", ["phase", "uptake"])
def test_diagnostics_match_arviz_summary(kind):
    import arviz as az

    from forecast import PhaseTransitionModel, UptakeModel, _pymc

    cls = {"phase": PhaseTransitionModel, "uptake": UptakeModel}[kind]
    model = cls.load(next(SHIPPED.glob(f"{kind}-*.nc")))
    idata = model.idata  # converted to an InferenceData on first access
    assert isinstance(idata, az.InferenceData)
    names = list(idata.posterior.data_vars)
    summary = az.summary(idata, var_names=names, kind="diagnostics", round_to="none")
    for name in names:
        values = idata.posterior[name].values
        values = values.reshape(values.shape[0], values.shape[1], -1)
        rows = summary.loc[[i for i in summary.index if i == name or i.startswith(name + "[")]]
        for k in range(values.shape[2]):
            r_hat, ess = _pymc._rhat_ess_bulk(values[:, :, k])
            np.testing.assert_allclose(r_hat, rows["r_hat"].iloc[k], rtol=1e-12)
            np.testing.assert_allclose(ess, rows["ess_bulk"].iloc[k], rtol=1e-10)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # ArviZ on the constant and stuck cases
def test_diagnostics_match_arviz_on_edge_cases():
    import arviz as az

    from forecast import _pymc

    rng = np.random.default_rng(3)
    walk = np.cumsum(rng.normal(size=(3, 301)), axis=1)  # odd draws, strong autocorrelation
    cases = {
        "iid": rng.normal(size=(4, 500)),
        "walk": walk,
        "ar": np.stack([np.convolve(rng.normal(size=400), np.ones(8), "same") for _ in range(2)]),
        "constant": np.full((2, 100), 2.5),
        "one chain": rng.normal(size=(1, 200)),
        "ties": rng.integers(0, 3, size=(2, 200)).astype(float),
        "stuck chain": np.vstack([rng.normal(size=200), rng.normal(5, 1, size=200)]),
        "nan": np.where(rng.random((2, 100)) < 0.01, np.nan, rng.normal(size=(2, 100))),
    }
    for name, values in cases.items():
        idata = az.from_dict(posterior={"x": values})
        row = az.summary(idata, kind="diagnostics", round_to="none").loc["x"]
        r_hat, ess = _pymc._rhat_ess_bulk(values)
        np.testing.assert_allclose(r_hat, row["r_hat"], rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(ess, row["ess_bulk"], rtol=1e-10, err_msg=name)


def test_loaded_idata_is_the_arviz_file(tmp_path):
    """``.idata`` of a loaded model equals what ``az.from_netcdf`` reads; saving it again
    gives the same file contents."""
    import arviz as az

    from forecast import UptakeModel

    path = next(SHIPPED.glob("uptake-*.nc"))
    model = UptakeModel.load(path)
    reference = az.from_netcdf(str(path), engine="h5netcdf")
    assert model.idata.groups() == reference.groups()
    for group in reference.groups():
        assert getattr(model.idata, group).identical(getattr(reference, group))
    model.save(tmp_path / "again.nc")
    again = UptakeModel.load(tmp_path / "again.nc")
    assert again.idata.posterior.identical(reference.posterior)
    assert again.diagnostics() == model.diagnostics()


def test_pymc_logger_level_survives_a_lazy_import():
    """`pmcap run` silences PyMC's logger before anything imports PyMC; importing PyMC for a
    fit must not reset it to INFO."""
    script = (
        "import logging; logging.getLogger('pymc').setLevel(logging.ERROR)\n"
        "import sys; import forecast; from forecast import _pymc\n"
        "assert 'pymc' not in sys.modules\n"
        "_pymc.pymc(); print(logging.getLogger('pymc').level)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) == logging.ERROR


# ------------------------------------------------------------------------------------------
# the import graph of pmcap's, capacity's and forecast's modules has no cycle
# ------------------------------------------------------------------------------------------
PACKAGES = ("capacity", "forecast", "pmcap")


def module_files(root: Path, packages=PACKAGES) -> dict[str, Path]:
    """Dotted module name -> source file, for every ``.py`` file under ``packages`` (a
    package's ``__init__.py`` is the package itself; symlinked folders are not followed)."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if "__pycache__" in parts or any(
                (root / Path(*parts[:i])).is_symlink() for i in range(1, len(parts))
            ):
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _is_package(modules: dict[str, Path], name: str) -> bool:
    return modules[name].name == "__init__.py"


def _absolute(modules: dict[str, Path], module: str, node: ast.ImportFrom) -> str:
    """The absolute module name an ``ImportFrom`` names (``from ..x import y`` included)."""
    if not node.level:
        return node.module or ""
    package = module if _is_package(modules, module) else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _reexports(modules: dict[str, Path], package: str) -> dict[str, str]:
    """Names a package's ``__init__`` takes from its own modules -> the module each is from:
    ``from pkg.mod import name`` anywhere in it (under ``if TYPE_CHECKING:`` as well), and a
    dict of ``{"name": "mod"}`` literals that a lazy ``__getattr__`` looks names up in."""
    tree = ast.parse(modules[package].read_text())
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _absolute(modules, package, node)
            if source.startswith(package + ".") and source in modules:
                for alias in node.names:
                    names[alias.asname or alias.name] = source
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if (
                    isinstance(key, ast.Constant)
                    and isinstance(value, ast.Constant)
                    and isinstance(key.value, str)
                    and f"{package}.{value.value}" in modules
                ):
                    names.setdefault(key.value, f"{package}.{value.value}")
    return names


def _typing_only(tree: ast.Module) -> set[int]:
    """Ids of the import statements under ``if TYPE_CHECKING:`` (never run, so no edge)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        test = getattr(node, "test", None)
        if isinstance(node, ast.If) and (
            (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
        ):
            inside |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return inside


def import_graph(root: Path, packages=PACKAGES) -> dict[str, set[str]]:
    """Module -> the modules of ``packages`` it imports, at module level or inside a function.

    ``import a.b`` and ``from a import b`` (``b`` a module) point to ``a.b``; ``from a import
    name`` points to the module ``a``'s ``__init__`` takes ``name`` from (a re-export), else
    to ``a``. A package's imports of its own modules (its re-exports) are left out: importing
    ``a.b`` runs ``a/__init__.py`` first, which would make every module of a package that
    re-exports one part of a cycle. Imports under ``if TYPE_CHECKING:`` are for type checkers
    only and never run: they are left out too.
    """
    modules = module_files(root, packages)
    reexports = {m: _reexports(modules, m) for m in modules if _is_package(modules, m)}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        targets: set[str] = set()
        tree = ast.parse(path.read_text(), str(path))
        typing_only = _typing_only(tree)
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    name = alias.name
                    while name and name not in modules:
                        name = name.rpartition(".")[0]
                    if name:
                        targets.add(name)
            elif isinstance(node, ast.ImportFrom):
                source = _absolute(modules, module, node)
                if source not in modules:
                    continue
                for alias in node.names:
                    if f"{source}.{alias.name}" in modules:
                        targets.add(f"{source}.{alias.name}")
                    else:
                        targets.add(reexports.get(source, {}).get(alias.name, source))
        if _is_package(modules, module):
            targets = {t for t in targets if not t.startswith(module + ".")}
        graph[module] = targets - {module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_among_the_packages_modules():
    """No module of capacity, forecast or pmcap imports itself through other modules."""
    graph = import_graph(ROOT)
    assert {"pmcap.cli", "capacity.resource_needs", "forecast.portfolio"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_library_module_imports_the_command_line():
    """The command line is imported by nothing in the packages (it imports the library)."""
    graph = import_graph(ROOT)
    importers = sorted(m for m, targets in graph.items() if "pmcap.cli" in targets)
    assert importers == [], importers


def _write_package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_import_graph_finds_a_cycle_through_a_function_local_import(tmp_path):
    """A planted cycle a -> b -> sub.c -> a, closed by an import inside a function and a
    relative import of a re-exported name, is found and printed in order."""
    _write_package(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import run\n",
            "pkg/a.py": "from pkg import b\n\ndef run():\n    return b.helper()\n",
            "pkg/b.py": "def helper():\n    from pkg.sub.c import value\n    return value\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/c.py": "from .. import run as value\n",
        },
    )
    graph = import_graph(tmp_path, ["pkg"])
    # `from pkg import b` is the module pkg.b; `from .. import run` is the re-exported pkg.a
    assert graph == {
        "pkg": set(),
        "pkg.a": {"pkg.b"},
        "pkg.b": {"pkg.sub.c"},
        "pkg.sub": set(),
        "pkg.sub.c": {"pkg.a"},
    }
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"]


def test_import_graph_sets_package_reexports_aside(tmp_path):
    """A package whose ``__init__`` re-exports its modules' names, imported by those
    modules, is no cycle; a re-exported name points to the module that defines it."""
    _write_package(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import run\nfrom pkg.b import helper\n",
            "pkg/a.py": "from pkg import helper\n\ndef run():\n    return helper()\n",
            "pkg/b.py": "def helper():\n    import pkg\n\n    return pkg\n",
        },
    )
    graph = import_graph(tmp_path, ["pkg"])
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg"}}
    assert find_cycle(graph) is None


def test_import_graph_leaves_out_imports_for_type_checkers(tmp_path):
    """A module that imports its caller only under ``if TYPE_CHECKING:`` (for annotations)
    makes no edge, so no cycle; the same import at run time does."""
    typed = "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from pkg.model import M\n"
    files = {
        "pkg/__init__.py": "",
        "pkg/model.py": "def plot(m):\n    from pkg.plot import draw\n    return draw(m)\n",
        "pkg/plot.py": typed + "\ndef draw(m: M):\n    return m\n",
    }
    _write_package(tmp_path, files)
    graph = import_graph(tmp_path, ["pkg"])
    assert graph == {"pkg": set(), "pkg.model": {"pkg.plot"}, "pkg.plot": set()}
    _write_package(tmp_path, {"pkg/plot.py": "from pkg.model import plot\n"})
    assert find_cycle(import_graph(tmp_path, ["pkg"])) == ["pkg.model", "pkg.plot", "pkg.model"]
