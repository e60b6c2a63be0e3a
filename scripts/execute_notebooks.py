"""Execute the notebooks in place, so the committed copies carry their outputs.

    python scripts/execute_notebooks.py                 # every notebooks/*.ipynb, one at a time
    python scripts/execute_notebooks.py notebooks/uptake.ipynb

Each notebook runs top to bottom in a fresh ``python3`` kernel started in ``notebooks/`` (as
``pytest --nbmake`` runs it in CI), and is written back with its outputs. Run it after changing
a notebook or what it shows, and commit the result: a reader browsing the repository sees the
charts and tables without running anything; CI executes the committed notebooks again with
nbmake. Execution metadata (timestamps) is dropped so a rerun changes only what the notebook
shows. A notebook that fails is left as it was and the script exits with status 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 1800  # per cell


def strip_timing(nb) -> None:
    """Drop what changes on every run without changing what the notebook shows."""
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nb.metadata.pop("widgets", None)


def execute(path: Path) -> float:
    """Run ``path`` in place; returns the seconds it took."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    t0 = time.perf_counter()
    where = {"metadata": {"path": str(path.parent)}}
    NotebookClient(nb, timeout=TIMEOUT_S, kernel_name="python3", resources=where).execute()
    strip_timing(nb)
    nbformat.write(nb, path)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    failed = []
    for path in paths:
        try:
            seconds = execute(path.resolve())
        except Exception as exc:  # a failing cell: report it, keep the notebook as it was
            failed.append(path)
            last = str(exc).strip().splitlines()[-1:] or [repr(exc)]
            print(f"{path}: failed: {last[0]}")
            continue
        size = path.stat().st_size / 1e6
        print(f"{path}: executed in {seconds:.0f} s, {size:.2f} MB")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
