"""The facility twin kernel against the independent SimPy model of its tests, in one process.

The case of ``tests/capacity/test_twin.py`` (``SIMPY_CASE``): 5 suites, one crew round the
clock (10-hour start, 8-hour harvest steps, harvests first), triangular(7, 8, 12) culture,
1 day changeover, contamination 10% with one remake from a new apheresis and 5 days of
decontamination, 11 patients a month for 24 months. pmcap runs ``--draws`` draws per call
(median of ``--rounds`` calls, after one warm-up call that compiles or loads the kernel); SimPy
runs ``--simpy-draws`` draws, timed in the same rounds so a machine that gets busier slows
both alike. Prints seconds per simulated patient of each and their ratio, for the whole
``simulate_twin`` call (demand preparation, kernel, QC stage and the Python summary) and for
the compiled kernel alone (``capacity._twin.simulate_twin``, timed inside the same calls).

Run from the repository root: ``python benchmarks/bench_twin.py [--draws 2000]``.
Needs ``pip install simpy``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from capacity import _twin
from tests.capacity.test_twin import MONTHS, SIMPY_CASE, SIMPY_PER_MONTH, simpy_twin, twin_case


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--simpy-draws", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    kernel = _twin.simulate_twin
    kernel_times = []

    def timed(*a, **k):
        t0 = time.perf_counter()
        out = kernel(*a, **k)
        kernel_times.append(time.perf_counter() - t0)
        return out

    _twin.simulate_twin = timed
    run = twin_case(args.draws, seed=1)
    run()  # compile (or load the cached kernel) outside the timing
    kernel_times.clear()
    rng = np.random.default_rng(0)
    starts = (MONTHS - MONTHS[0]).days.to_numpy(float)
    days = MONTHS.days_in_month.to_numpy(float)
    ours, theirs = [], []
    n_ours = n_theirs = 0
    per_round = max(args.simpy_draws // args.rounds, 1)
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        twin = run()
        ours.append(time.perf_counter() - t0)
        n_ours = int((twin["outcome"].values >= 0).sum())
        t0 = time.perf_counter()
        for _ in range(per_round):
            counts = rng.poisson(SIMPY_PER_MONTH, len(MONTHS))
            aph, _, _ = simpy_twin(counts, starts, days, rng, **SIMPY_CASE)
            n_theirs += aph.size
        theirs.append(time.perf_counter() - t0)
    per_ours = float(np.median(ours)) / n_ours
    per_theirs = sum(theirs) / n_theirs
    print(f"pmcap twin: {n_ours} patients per call, median {np.median(ours):.3f} s, "
          f"{per_ours * 1e6:.2f} us per patient")  # fmt: skip
    print(f"SimPy:      {n_theirs} patients, {sum(theirs):.3f} s, "
          f"{per_theirs * 1e6:.2f} us per patient")  # fmt: skip
    per_kernel = float(np.median(kernel_times)) / n_ours
    print(f"ratio (SimPy / pmcap per patient): {per_theirs / per_ours:.0f}x")
    print(f"kernel alone: median {np.median(kernel_times):.3f} s, {per_kernel * 1e6:.2f} us per "
          f"patient, ratio {per_theirs / per_kernel:.0f}x")  # fmt: skip


if __name__ == "__main__":
    main()
