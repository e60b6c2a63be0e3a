"""Stage timings of `pmcap run` on the bundled example, cold and warm, each in a fresh process.

* new install: empty posterior cache and empty numba cache (``NUMBA_CACHE_DIR``: the facility
  simulation's kernels are compiled, as on the first run after installing);
* cold: empty posterior cache (the shipped reference posteriors are used), kernels compiled;
* cold, nothing shipped: also refits the phase-transition and uptake-analog posteriors
  (``PMCAP_SHIPPED=0``), what a run would cost without the shipped posteriors;
* warm: the same cache again (every fit is a cache hit).

Run: ``python benchmarks/bench_run.py [--draws N] [--skip-unshipped]``. Prints the wall time of
each run (process start to exit, imports included) and the stage timings from its manifest.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PMCAP = Path(sys.executable).with_name("pmcap")


def run(
    out: Path, cache: Path, draws: int | None, shipped: bool, numba_cache: Path | None = None
) -> dict:
    env = {**os.environ, "PMCAP_CACHE": str(cache), "PMCAP_SHIPPED": "1" if shipped else "0"}
    if numba_cache is not None:
        env["NUMBA_CACHE_DIR"] = str(numba_cache)
    cmd = [str(PMCAP), "run", "--out", str(out), "--quiet"]
    if draws:
        cmd += ["--draws", str(draws)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    wall = time.perf_counter() - t0
    timings = json.loads((out / "manifest.json").read_text())["timings"]
    return {"wall_s": round(wall, 1), **timings}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--draws", type=int, default=None, help="default: the scenario's")
    parser.add_argument("--skip-unshipped", action="store_true")
    args = parser.parse_args()
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
