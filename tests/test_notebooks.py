"""The committed notebooks: a reader browsing the repository sees their outputs, and they use
only pmcap's public names (a private one can change or vanish without notice).

CI executes the notebooks themselves (``pytest --nbmake``, against the committed copies);
``scripts/execute_notebooks.py`` writes their outputs back.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PROJECT = ("pmcap", "forecast", "capacity")
MAX_TOTAL_MB = 3.0  # every notebook together, outputs included
MAX_OUTPUT_KB = 300  # one output (a figure or a table)


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _code(path: Path) -> str:
    """The notebook's code cells as one Python source, IPython magics and shell lines left out."""
    lines = []
    for cell in _cells(path):
        if cell["cell_type"] == "code":
            source = "".join(cell["source"])
            lines += [x for x in source.splitlines() if not x.lstrip().startswith(("%", "!"))]
    return "\n".join(lines)


def _private(module: str, name: str | None = None) -> bool:
    parts = module.split(".") + ([name] if name else [])
    return any(p.startswith("_") and not p.startswith("__") for p in parts)


def private_names(source: str) -> list[str]:
    """The private names of pmcap, forecast or capacity that ``source`` imports or reads:
    ``from pmcap.run import _own_observations``, ``import pmcap._style``, or an attribute
    ``_x`` read from a module or name imported from them (``run._own_observations``)."""
    tree = ast.parse(source)
    found: list[str] = []
    imported: dict[str, str] = {}  # local name -> what it is
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PROJECT:
            for alias in node.names:
                if _private(node.module, alias.name):
                    found.append(f"{node.module}.{alias.name}")
                imported[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] not in PROJECT:
                    continue
                if _private(alias.name):
                    found.append(alias.name)
                local = alias.asname or alias.name.split(".")[0]
                imported[local] = alias.name if alias.asname else local
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            root = node.value
            chain = [node.attr]
            while isinstance(root, ast.Attribute):
                chain.insert(0, root.attr)
                root = root.value
            if isinstance(root, ast.Name) and root.id in imported:
                found.append(".".join([imported[root.id], *chain]))
    return found


def test_private_names_are_found():
    assert private_names("from pmcap.run import _own_observations") == [
        "pmcap.run._own_observations"
    ]
    assert private_names("import pmcap._style as s") == ["pmcap._style"]
    assert private_names("from pmcap import run\nrun._own_observations(1)") == [
        "pmcap.run._own_observations"
    ]
    assert private_names("import pmcap.run\npmcap.run._x") == ["pmcap.run._x"]
    assert private_names("from forecast import phase as p\np.model._cache") == [
        "forecast.phase.model._cache"
    ]
    # public names, dunders, other packages' private names and the notebook's own variables
    assert not private_names(
        "from pmcap.inputs import own_observations\n"
        "import pandas as pd\npd._libs\n"
        "from capacity import load_process\nload_process.__doc__\n"
        "x = load_process('a')\nx._fields"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_notebook_uses_a_private_name(path):
    assert not private_names(_code(path)), f"{path.name}: make it public or use a public one"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_each_committed_notebook_carries_its_outputs(path):
    """Every code cell was run, top to bottom in one kernel (execution counts 1, 2, 3, ...),
    and the notebook shows something; regenerate with scripts/execute_notebooks.py."""
    code = [c for c in _cells(path) if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    counts = [c["execution_count"] for c in code]
    assert counts == list(range(1, len(code) + 1)), f"{path.name}: not executed in order"
    assert sum(len(c["outputs"]) for c in code) > 0, f"{path.name}: no outputs"
    errors = [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors, f"{path.name}: an error was committed"


def test_notebook_outputs_stay_small():
    total = sum(p.stat().st_size for p in NOTEBOOKS) / 1e6
    assert total < MAX_TOTAL_MB, f"notebooks hold {total:.1f} MB"
    for path in NOTEBOOKS:
        for cell in _cells(path):
            for output in cell.get("outputs", []):
                size = len(json.dumps(output)) / 1e3
                assert size < MAX_OUTPUT_KB, f"{path.name}: an output of {size:.0f} kB"
