"""The first run after a new install and the cold run, against the PyMC fit they replaced.

Each measurement runs in a fresh process with its own caches:

* the example trial's enrollment fit (``fit`` stage alone, imports included), the way
  ``pmcap run`` fits it now (nutpie on :mod:`forecast.enrollment.density`) and the baseline
  (PyMC's NUTS on :func:`forecast.enrollment.build_model`, as before), each with empty
  compile caches (a new install: numba's ``NUMBA_CACHE_DIR`` and PyTensor's ``compiledir``)
  and again with those caches filled (a cold run: only the posterior cache is empty);
* ``pmcap run`` on the bundled example: a new install (posterior, numba and PyTensor caches
  all empty) and a cold run (posterior cache empty, compiled code cached), wall time from
  process start to exit and the manifest's stage timings, against issue 28's goals.

Run: ``python benchmarks/bench_first_run.py [--repeat 3] [--skip-runs]``; medians over the
repeats. The machine is often shared: compare the ratio, which a busy machine slows alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOALS = {"new install": 30.0, "cold": 20.0}  # issue 28, seconds on a 2-core machine

FIT = r"""
import json, logging, os, sys, time, warnings
t0 = time.perf_counter()
warnings.filterwarnings("ignore")
logging.getLogger("pymc").setLevel(logging.ERROR)
import numpy as np
import pandas as pd
from pmcap.scenario import example_scenario_path, load_scenario
from pmcap.inputs import check_inputs, enrollment_settings
from forecast.enrollment import EnrollmentModel, enrollment_data
scenario = load_scenario(example_scenario_path())
program = next(p for p in scenario.program if p.enrollment is not None)
frames = check_inputs(scenario)["enrollment"][program.name]
model = EnrollmentModel(**enrollment_settings(scenario, program))
t1, c1 = time.perf_counter(), os.times()
if sys.argv[1] == "nutpie":
    model.fit(frames["patients"], frames["sites"], counts=frames["counts"],
              as_of=pd.Timestamp(scenario.run.as_of))
    d = model.diagnostics()
else:
    from forecast import _pymc
    data = enrollment_data(frames["patients"], frames["sites"], counts=frames["counts"],
                           as_of=pd.Timestamp(scenario.run.as_of))
    opened = ~data.sites["activated_on"].isna().to_numpy()
    pm_model = model.build_model(data.counts[opened], data.exposure[opened],
                                 data.sites.loc[opened, "country"].to_numpy())
    idata = model.sampler.sample(pm_model)
    d = _pymc.diagnostics(idata, ["alpha", "log_mu", "mu", "sigma_country"])
c2 = os.times()
cpu = sum(c2[:4]) - sum(c1[:4])  # this process's threads and its children (the C compiler)
print(json.dumps({"fit_s": time.perf_counter() - t1, "cpu_s": cpu, "setup_s": t1 - t0, **d}))
"""


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "NUMBA_CACHE_DIR": str(tmp / "numba"),
        "PYTENSOR_FLAGS": f"compiledir={tmp / 'pytensor'}",
        **extra,
    }


def fit(backend: str, tmp: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", FIT, backend],
        env=_env(tmp),
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(tmp: Path, out: Path, cache: Path) -> dict:
    cmd = [sys.executable, "-m", "pmcap.cli", "run", "--out", str(out), "--quiet"]
    t0, c0 = time.perf_counter(), os.times()
    subprocess.run(cmd, env=_env(tmp, PMCAP_CACHE=str(cache)), check=True, cwd=ROOT)
    wall, c1 = time.perf_counter() - t0, os.times()
    cpu = c1.children_user + c1.children_system - c0.children_user - c0.children_system
    timings = json.loads((out / "manifest.json").read_text())["timings"]
    return {"wall_s": wall, "cpu_s": cpu, **timings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--skip-runs", action="store_true", help="time the fits only")
    args = parser.parse_args()
    fits: dict[tuple[str, str], list[dict]] = {}
    runs: dict[str, list[dict]] = {}
    for _ in range(args.repeat):
        for backend in ("pymc", "nutpie"):  # alternate, so load drifts hit both
            with tempfile.TemporaryDirectory() as tmp:
                tmp = Path(tmp)
                fits.setdefault((backend, "empty caches"), []).append(fit(backend, tmp))
                fits.setdefault((backend, "compiled code cached"), []).append(fit(backend, tmp))
        if not args.skip_runs:
            with tempfile.TemporaryDirectory() as tmp:
                tmp = Path(tmp)
                runs.setdefault("new install", []).append(run(tmp, tmp / "a", tmp / "c1"))
                runs.setdefault("cold", []).append(run(tmp, tmp / "b", tmp / "c2"))

    def median(rows, key):
        return statistics.median(r[key] for r in rows)

    print(f"enrollment fit of the example (median of {args.repeat}; seconds, wall and CPU)")
    for caches in ("empty caches", "compiled code cached"):
        for key in ("fit_s", "cpu_s"):
            old = median(fits[("pymc", caches)], key)
            new = median(fits[("nutpie", caches)], key)
            print(
                f"  {caches:22s} {key[:-2]:4s} PyMC NUTS {old:6.1f}   nutpie {new:6.1f}   "
                f"nutpie / PyMC {new / old:.2f}"
            )
    for backend in ("pymc", "nutpie"):
        d = fits[(backend, "empty caches")][-1]
        print(
            f"  diagnostics {backend:7s} r_hat_max {d['r_hat_max']}  ess_bulk_min "
            f"{d['ess_bulk_min']:.0f}  divergences {d['divergences']}"
        )
    if runs:
        print(f"pmcap run on the example (median of {args.repeat}, seconds)")
        for name, rows in runs.items():
            wall, cpu = median(rows, "wall_s"), median(rows, "cpu_s")
            stages = "  ".join(
                f"{k[:-2]} {median(rows, k):.1f}"
                for k in rows[0]
                if k.endswith("_s") and k not in ("wall_s", "cpu_s")
            )
            print(
                f"  {name:12s} wall {wall:6.1f}  CPU {cpu:6.1f}  goal {GOALS[name]:.0f}  ({stages})"
            )


if __name__ == "__main__":
    main()
