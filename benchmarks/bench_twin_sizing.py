"""Cost of sizing at the vein-to-vein service level (``[facility.twin] size = true``) on the
bundled example, against the twin stage of the same run, in one process.

Runs the bundled example (its ``[facility.twin]`` with ``size = true`` added; the service-level
suite simulation skipped, it does not change either stage) ``--rounds`` times after one
warm-up run that compiles or loads the kernels, and prints the median of the ``twin`` stage
(one twin run: the baseline) and of the ``twin_sizing`` stage, their ratio, and the twin runs
each resource's search took. ``--twin-draws`` overrides ``facility.twin.draws``.

Run from the repository root: ``python benchmarks/bench_twin_sizing.py [--rounds 1]``.
"""

from __future__ import annotations

import argparse
import statistics

from pmcap.run import run_scenario
from pmcap.scenario import example_scenario_path, read_toml, scenario_from_tables


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--twin-draws", type=int, default=None)
    args = parser.parse_args(argv)

    path = example_scenario_path()
    raw = read_toml(path, "scenario")
    raw["facility"]["twin"]["size"] = True
    if args.twin_draws:
        raw["facility"]["twin"]["draws"] = args.twin_draws
    scenario = scenario_from_tables(raw, path, str(path))

    twin_s, sizing_s = [], []
    for i in range(args.rounds + 1):
        result = run_scenario(scenario, service_level=False)
        if i:  # the first run compiles or loads the kernels
            twin_s.append(result.timings["twin_s"])
            sizing_s.append(result.timings["twin_sizing_s"])
    table = result.twin_sizing
    print(table.to_string(index=False))
    t, s = statistics.median(twin_s), statistics.median(sizing_s)
    print(f"twin draws: {result.twin.sizes['draw']}, twin runs per search: "
          f"{table.attrs['twin_runs']}")  # fmt: skip
    print(f"twin stage (one twin run): {t:.1f} s; twin_sizing stage: {s:.1f} s; ratio {s / t:.1f}")


if __name__ == "__main__":
    main()
