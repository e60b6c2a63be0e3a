"""Start-up cost of the demand side at two revisions: ``import forecast`` and forecasting from
saved posteriors, where PyMC, PyTensor and ArviZ should not be imported at all.

Each measurement is a fresh interpreter (``sys.executable``, the same venv) run in a copy of
one commit's tree (``git archive``, nothing in the checkout is touched) with that copy first on
``PYTHONPATH``, so the two versions differ only in their code. Runs alternate between the two
trees and the medians are compared, so a busy machine slows both alike.

* ``import forecast``: the import alone, timed inside the process (interpreter start excluded);
* ``forecast from saved``: ``import forecast``, load the shipped phase and uptake posteriors,
  their diagnostics and a small forecast of each (what ``pmcap run`` does with cached fits);
* which of pymc / pytensor / arviz / numba / matplotlib the second one loaded.

Run: ``python benchmarks/bench_startup.py [--before REV] [--after REV|worktree] [--repeat N]``.
``--before`` defaults to 894d99e, a revision that imports PyMC, PyTensor and ArviZ with
``forecast``; ``--after`` to the working tree.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "894d99e"
HEAVY = ("pymc", "pytensor", "arviz", "numba", "matplotlib")

IMPORT = """
import time
t0 = time.perf_counter()
import forecast
t1 = time.perf_counter()
import json
print(json.dumps({"seconds": t1 - t0, "file": forecast.__file__}))
"""

FROM_SAVED = """
import time
t0 = time.perf_counter()
import sys
from pathlib import Path
import forecast
shipped = Path(forecast.__file__).parent / "posteriors"
phase = forecast.PhaseTransitionModel.load(next(shipped.glob("phase-*.nc")))
uptake = forecast.UptakeModel.load(next(shipped.glob("uptake-*.nc")))
phase.diagnostics(), uptake.diagnostics()
phase.simulate("phase2", "2025-01-01", draws=200, group="CAR-T", as_of="2026-01-01")
uptake.forecast("Kymriah", "2027-01-01", horizon_months=36, draws=200)
t1 = time.perf_counter()
import json
print(json.dumps({"seconds": t1 - t0, "loaded": [m for m in HEAVY if m in sys.modules]}))
""".replace("HEAVY", repr(HEAVY))


def tree(rev: str, into: Path) -> Path:
    """``rev``'s files under ``into`` (``worktree``: the checkout itself)."""
    if rev == "worktree":
        return ROOT
    blob = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev],
        check=True,
        capture_output=True,
    ).stdout
    into.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    return into


def measure(root: Path, script: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "0"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", default=BEFORE)
    parser.add_argument("--after", default="worktree")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        roots = {
            "before": tree(args.before, Path(tmp) / "before"),
            "after": tree(args.after, Path(tmp) / "after"),
        }
        for name, root in roots.items():  # the right code is imported; bytecode compiled
            found = Path(measure(root, IMPORT)["file"]).resolve()
            if not found.is_relative_to(root.resolve()):
                raise RuntimeError(f"{name}: imported {found}, not the tree under {root}")
            measure(root, FROM_SAVED)
        times = {(n, s): [] for n in roots for s in ("import", "saved")}
        loaded = {}
        for _ in range(args.repeat):
            for name, root in roots.items():
                times[name, "import"].append(measure(root, IMPORT)["seconds"])
                out = measure(root, FROM_SAVED)
                times[name, "saved"].append(out["seconds"])
                loaded[name] = out["loaded"]
    print(f"before = {args.before}, after = {args.after}; median of {args.repeat} fresh processes")
    print(f"{'':28s}{'before s':>10s}{'after s':>10s}{'before/after':>14s}")
    for step, label in (("import", "import forecast"), ("saved", "forecast from saved")):
        b = statistics.median(times["before", step])
        a = statistics.median(times["after", step])
        print(f"{label:28s}{b:10.2f}{a:10.2f}{b / a:14.2f}")
    for name in roots:
        found = ", ".join(loaded[name]) or "none"
        print(f"{name}: of {', '.join(HEAVY)}, forecast from saved loaded {found}")


if __name__ == "__main__":
    main()
