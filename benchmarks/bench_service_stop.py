"""The service-level search with each failing queue run stopped once it is known to fail
(``capacity.simulation.run_queue``'s ``late_limit``, what ``suites_for_service_level(...,
by_month=False)`` does) against the same search with every run simulated to its end (the
baseline), in one process on the bundled example without its facility twin, as
:func:`pmcap.decisions.decide` calls it. Prints each draw's answers compared (they must be
identical), the queue runs, and the medians of CPU and wall seconds of alternated rounds.

Run: ``python benchmarks/bench_service_stop.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_goals import without_twin

import capacity.service_level as service_level
from capacity.simulation import run_queue
from pmcap.decisions import SERVICE_START_SHARE
from pmcap.run import run_scenario
from pmcap.scenario import load_scenario


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scenario = load_scenario(without_twin(Path(tmp) / "example"))
        result = run_scenario(scenario, service_level=False)
    fac, world = scenario.facility, result.world
    n = min(fac.service_level.draws, world.demand.sizes["draw"])
    all_draws = world.demand.sizes["draw"]
    peak = result.total["suites"].max("month").values
    specs = {s.name: s for s in result.processes.values()}.values()
    params = {s.name: s.sample(all_draws, world.seed).isel(draw=slice(0, n)) for s in specs}

    def search():
        return service_level.suites_for_service_level(
            world.demand.isel(draw=slice(0, n)),
            result.processes,
            max_wait_days=fac.service_level.max_wait_days,
            epsilon=fac.service_level.epsilon,
            seed=scenario.run.seed,
            opening=world.opening or None,
            by_month=False,
            start=SERVICE_START_SHARE * peak[:n],
            params=params,
        )

    def to_the_end(prep, online, idx=None, late_limit=None):
        return run_queue(prep, online, idx)

    def baseline():
        service_level.run_queue = to_the_end
        try:
            return search()
        finally:
            service_level.run_queue = run_queue

    times: dict[str, list[tuple[float, float]]] = {"baseline": [], "stop": []}
    out = {}
    baseline(), search()  # warm
    loads = []
    for _ in range(args.rounds):
        for name, fn in (("baseline", baseline), ("stop", search)):
            c0, t0 = time.process_time(), time.perf_counter()
            out[name] = fn()
            times[name].append((time.perf_counter() - t0, time.process_time() - c0))
        loads.append(os.getloadavg()[0])
    a, b = out["baseline"], out["stop"]
    same = np.array_equal(a["suites_needed"].values, b["suites_needed"].values)
    print(f"{n} draws, rounds {args.rounds}, load average {min(loads):.1f}-{max(loads):.1f}")
    print(f"every draw's answer identical: {same}; queue runs {a.attrs['queue_runs']} "
          f"(baseline) and {b.attrs['queue_runs']}")  # fmt: skip
    for i, what in enumerate(("wall", "CPU")):
        base = statistics.median(r[i] for r in times["baseline"])
        ours = statistics.median(r[i] for r in times["stop"])
        print(f"  {what}: baseline {base:.3f} s, stopping {ours:.3f} s, ratio {ours / base:.2f}")


if __name__ == "__main__":
    main()
