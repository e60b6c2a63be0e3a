"""Two levers of a warm run's write stage, measured against the current code in one process
on the bundled example without its facility twin (``bench_goals.without_twin``):

* overlap: ``draws.nc`` (:func:`pmcap.export.write_draws`) written on a worker thread while
  the main thread renders ``report.html`` (:func:`pmcap.report.render_report`, its figures
  the costly part), against the two one after the other (what :func:`pmcap.runfolder.write_run`
  does). A thread pays only if h5py/HDF5 and matplotlib's Agg drawing release the GIL for
  long enough; rounds alternate the two, medians of wall and CPU seconds
  (``time.process_time``: every thread of the process) are printed with their ratio;
* compression of ``draws.nc``: ``write_draws``'s ``complevel`` (0 = no deflate) and
  ``shuffle``: file size and median wall/CPU seconds of each, against the current setting
  (complevel 1 with shuffle).

On a shared machine wall times measure the load as much as the code; the load average is
printed beside them. Run: ``python benchmarks/bench_write_overlap.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_goals import without_twin

from pmcap import export
from pmcap.report import render_report
from pmcap.run import run_scenario
from pmcap.scenario import load_scenario

SETTINGS = [(1, True), (0, True), (1, False), (4, True), (9, True)]  # (complevel, shuffle)


def timed(fn) -> tuple[float, float]:
    """Wall and CPU seconds of ``fn()`` (CPU of every thread of this process)."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        scenario = load_scenario(without_twin(tmp / "example"))
        result = run_scenario(scenario)
        text = scenario.path.read_text()

        def draws(complevel: int = 1, shuffle: bool = True, name: str = "draws.nc") -> None:
            export.write_draws(
                tmp / name,
                result.world,
                result.requirements,
                result.total,
                complevel=complevel,
                shuffle=shuffle,
            )

        def report() -> None:
            (tmp / "report.html").write_text(render_report(result, text, "bench", "", None))

        def serial() -> None:
            draws()
            report()

        def overlapped() -> None:
            with ThreadPoolExecutor(1) as pool:
                written = pool.submit(draws)
                report()
                written.result()

        serial()  # warm: imports, fonts, HDF5
        runs: dict[str, list[tuple[float, float]]] = {"serial": [], "thread": []}
        comp: dict[tuple[int, bool], list[tuple[float, float]]] = {s: [] for s in SETTINGS}
        loads = []
        for _ in range(args.rounds):
            runs["serial"].append(timed(serial))
            runs["thread"].append(timed(overlapped))
            for setting in SETTINGS:
                comp[setting].append(timed(lambda s=setting: draws(*s, name="c.nc")))
            loads.append(os.getloadavg()[0])
        sizes = {}
        for setting in SETTINGS:
            draws(*setting, name="c.nc")
            sizes[setting] = (tmp / "c.nc").stat().st_size

    def med(rows, i):
        return statistics.median(r[i] for r in rows)

    print(f"rounds {args.rounds}, load average {min(loads):.1f}-{max(loads):.1f}")
    print("write draws.nc and report.html: serial (current) vs draws.nc on a thread")
    for name, rows in runs.items():
        print(f"  {name:7s} wall {med(rows, 0):.3f} s  CPU {med(rows, 1):.3f} s")
    for i, what in enumerate(("wall", "CPU")):
        ratio = med(runs["thread"], i) / med(runs["serial"], i)
        per_round = [t[i] / s[i] for s, t in zip(runs["serial"], runs["thread"], strict=True)]
        print(f"  thread / serial, {what}: {ratio:.2f} (rounds {min(per_round):.2f}-"
              f"{max(per_round):.2f})")  # fmt: skip
    print("draws.nc compression: complevel, shuffle, size, wall, CPU (ratio to complevel 1)")
    ref = SETTINGS[0]
    for setting, rows in comp.items():
        print(
            f"  {setting[0]} {'shuffle' if setting[1] else 'no shuffle':10s} "
            f"{sizes[setting] / 1e6:6.2f} MB ({sizes[setting] / sizes[ref]:.2f})  "
            f"wall {med(rows, 0):.3f} s  CPU {med(rows, 1):.3f} s "
            f"({med(rows, 1) / med(comp[ref], 1):.2f})"
        )


if __name__ == "__main__":
    main()
