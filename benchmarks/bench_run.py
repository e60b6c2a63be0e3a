"""Stage timings of `pmcap run` on the bundled example, cold and warm, each in a fresh process.

* new install: empty posterior cache and empty numba cache (``NUMBA_CACHE_DIR``: the facility
  simulation's kernels are compiled, as on the first run after installing);
* cold: empty posterior cache (the shipped reference posteriors are used), kernels compiled;
* cold, nothing shipped: also refits the phase-transition and uptake-analog posteriors
  (``PMCAP_SHIPPED=0``), what a run would cost without the shipped posteriors;
* warm: the same cache again (every fit is a cache hit).

Run: ``python benchmarks/bench_run.py [--draws N] [--skip-unshipped]``. Prints the wall time of
each run (process start to exit, imports included) and the stage timings from its manifest.

``--warm-against REV [--repeat N]``: the warm run only, of this checkout and of revision ``REV``
(its files from ``git archive``, first on ``PYTHONPATH``), alternately in fresh processes on
one shared cache filled by a first run of each; prints the median wall time and stages of
each, their ratio, and the warm-run goal (5 s).
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
import time
from pathlib import Path

PMCAP = Path(sys.executable).with_name("pmcap")
ROOT = Path(__file__).resolve().parents[1]
WARM_GOAL_S = 5.0


def run(
    out: Path,
    cache: Path,
    draws: int | None,
    shipped: bool,
    numba_cache: Path | None = None,
    root: Path | None = None,
) -> dict:
    env = {**os.environ, "PMCAP_CACHE": str(cache), "PMCAP_SHIPPED": "1" if shipped else "0"}
    if root is not None:  # run this source tree's code
        env["PYTHONPATH"] = str(root)
    if numba_cache is not None:
        env["NUMBA_CACHE_DIR"] = str(numba_cache)
    cmd = [str(PMCAP), "run", "--out", str(out), "--quiet", "--force"]
    if draws:
        cmd += ["--draws", str(draws)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    wall = time.perf_counter() - t0
    timings = json.loads((out / "manifest.json").read_text())["timings"]
    return {"wall_s": round(wall, 2), **timings}


def source_tree(rev: str, into: Path) -> Path:
    """``rev``'s files under ``into``, with the bundled example where a checkout has it."""
    blob = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev], check=True, capture_output=True
    ).stdout
    into.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    return into


def warm_against(rev: str, draws: int | None, repeat: int) -> None:
    """Median warm run of this checkout and of ``rev``, alternating, on one filled cache."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        roots = {rev: source_tree(rev, tmp / "before"), "this checkout": ROOT}
        cache = tmp / "cache"
        for i, root in enumerate(roots.values()):  # fill the cache; compile bytecode
            run(tmp / f"fill{i}", cache, draws, shipped=True, root=root)
        rows: dict[str, list[dict]] = {name: [] for name in roots}
        for _ in range(repeat):
            for i, (name, root) in enumerate(roots.items()):
                rows[name].append(run(tmp / f"warm{i}", cache, draws, shipped=True, root=root))
    stages = list(rows[rev][0])
    median = {n: {s: statistics.median(r[s] for r in rs) for s in stages} for n, rs in rows.items()}
    print(f"warm run, median of {repeat} fresh processes each, alternating (s)")
    print(f"{'':16s}" + "".join(f"{s:>15s}" for s in stages))
    for name, row in median.items():
        print(f"{name[:16]:16s}" + "".join(f"{row[s]:15.2f}" for s in stages))
    before, after = median[rev]["wall_s"], median["this checkout"]["wall_s"]
    print(f"warm wall time: {before:.2f} s at {rev}, {after:.2f} s now ({before / after:.2f}x)")
    print(f"goal {WARM_GOAL_S:.0f} s: now / goal = {after / WARM_GOAL_S:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--draws", type=int, default=None, help="default: the scenario's")
    parser.add_argument("--skip-unshipped", action="store_true")
    parser.add_argument("--warm-against", metavar="REV", default=None)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if args.warm_against:
        warm_against(args.warm_against, args.draws, args.repeat)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = {}
        rows["new install"] = run(
            tmp / "new", tmp / "cache0", args.draws, shipped=True, numba_cache=tmp / "numba"
        )
        rows["cold"] = run(tmp / "cold", tmp / "cache", args.draws, shipped=True)
        rows["warm"] = run(tmp / "warm", tmp / "cache", args.draws, shipped=True)
        if not args.skip_unshipped:
            rows["cold, nothing shipped"] = run(
                tmp / "unshipped", tmp / "cache2", args.draws, shipped=False
            )
    stages = list(rows["new install"])
    print(f"{'':24s}" + "".join(f"{s:>15s}" for s in stages))
    for name, row in rows.items():
        print(f"{name:24s}" + "".join(f"{row.get(s, float('nan')):15.1f}" for s in stages))
    print(f"warm / cold wall time: {rows['warm']['wall_s'] / rows['cold']['wall_s']:.2f}")
    print("bar (2-core machine): cold < 120 s, warm < 20 s; goal 60 s / 10 s")


if __name__ == "__main__":
    main()
