"""The facility twin against the independent SimPy model of its tests, in one process; and
the twin stage's share of the bundled example's run.

The case of ``tests/capacity/test_twin.py`` (``SIMPY_CASE``): 5 suites, one crew round the
clock (10-hour start, 8-hour harvest steps, harvests first), triangular(7, 8, 12) culture,
1 day changeover, contamination 10% with one remake from a new apheresis and 5 days of
decontamination, 11 patients a month for 24 months. pmcap runs ``--draws`` draws per call
(``--rounds`` calls, after one warm-up call that compiles or loads the kernels); SimPy runs
``--simpy-draws`` draws, timed in the same rounds so a machine that gets busier slows both
alike. Prints, per simulated patient, the CPU time (``time.process_time``: every thread of
the process, so the twin's threads all count) and the wall time of each, and their ratios:
for the whole ``simulate_twin`` call (demand preparation, kernel, QC stage and the summary)
and for the compiled kernel alone (``capacity._twin.simulate_twin``, timed inside the same
calls). CPU time is the figure to compare on a shared machine; wall time also credits the
twin's threads.

Then (unless ``--no-example``) it runs the bundled example scenario twice (the first run
loads or compiles the kernels) and prints the second run's stage timings and the ``twin``
stage's wall and CPU time and its share of the run.

Run from the repository root: ``python benchmarks/bench_twin.py [--draws 2000]``.
Needs ``pip install simpy``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from capacity import _twin
from tests.capacity.test_twin import MONTHS, SIMPY_CASE, SIMPY_PER_MONTH, simpy_twin, twin_case


class Clock:
    """Wall and CPU seconds of a block, added to ``wall`` and ``cpu`` lists."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def __enter__(self) -> Clock:
        self._t, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall.append(time.perf_counter() - self._t)
        self.cpu.append(time.process_time() - self._c)


def twin_against_simpy(draws: int, simpy_draws: int, rounds: int) -> None:
    kernel = _twin.simulate_twin
    inner = Clock()

    def timed(*a, **k):
        with inner:
            return kernel(*a, **k)

    _twin.simulate_twin = timed
    try:
        run = twin_case(draws, seed=1)
        run()  # compile (or load the cached kernels) outside the timing
        inner.wall.clear()
        inner.cpu.clear()
        rng = np.random.default_rng(0)
        starts = (MONTHS - MONTHS[0]).days.to_numpy(float)
        days = MONTHS.days_in_month.to_numpy(float)
        ours, theirs = Clock(), Clock()
        n_ours = n_theirs = 0
        per_round = max(simpy_draws // rounds, 1)
        for _ in range(rounds):
            with ours:
                twin = run()
            n_ours += int((twin["outcome"].values >= 0).sum())
            with theirs:
                for _ in range(per_round):
                    counts = rng.poisson(SIMPY_PER_MONTH, len(MONTHS))
                    aph, _, _ = simpy_twin(counts, starts, days, rng, **SIMPY_CASE)
                    n_theirs += aph.size
    finally:
        _twin.simulate_twin = kernel
    us = 1e6
    for clock in ("cpu", "wall"):
        whole = sum(getattr(ours, clock)) / n_ours
        alone = sum(getattr(inner, clock)) / n_ours
        simpy = sum(getattr(theirs, clock)) / n_theirs
        print(
            f"{clock:4s} per patient: SimPy {simpy * us:.2f} us, pmcap whole call "
            f"{whole * us:.2f} us (ratio {simpy / whole:.0f}x), kernel alone {alone * us:.2f} us "
            f"(ratio {simpy / alone:.0f}x)"
        )
    print(
        f"  ({n_ours} twin patients in {rounds} calls of {draws} draws, {n_theirs} SimPy "
        f"patients in {rounds * per_round} draws)"
    )


def example_share() -> None:
    import pmcap.run as run_module
    from pmcap.scenario import example_scenario_path, load_scenario

    real = run_module.run_twin
    twin_cpu: list[float] = []

    def timed(*a, **k):
        start = time.process_time()
        try:
            return real(*a, **k)
        finally:
            twin_cpu.append(time.process_time() - start)

    run_module.run_twin = timed
    try:
        scenario = load_scenario(example_scenario_path())
        run_module.run_scenario(scenario)  # loads or compiles the kernels
        with Clock() as whole:
            result = run_module.run_scenario(scenario)
    finally:
        run_module.run_twin = real
    t = result.timings
    total = sum(t.values())
    stages = ", ".join(f"{k[:-2]} {v:.2f}" for k, v in t.items())
    print(f"example run (warm, wall s): {stages}; total {total:.2f}")
    print(
        f"twin stage: {t['twin_s']:.2f} s wall ({t['twin_s'] / total:.0%} of the stages), "
        f"{twin_cpu[-1]:.2f} s CPU ({twin_cpu[-1] / whole.cpu[-1]:.0%} of the run's "
        f"{whole.cpu[-1]:.2f} s CPU)"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--simpy-draws", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-example", action="store_true", help="skip the example run")
    args = parser.parse_args(argv)
    twin_against_simpy(args.draws, args.simpy_draws, args.rounds)
    if not args.no_example:
        example_share()


if __name__ == "__main__":
    main()
