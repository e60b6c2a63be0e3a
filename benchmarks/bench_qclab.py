"""capacity.release_days against a plain SimPy model of the same QC lab, in one process.

The bundled manual CAR-T process's release panel (7 assays, 8 tests a lot, 7 instrument
types, retest rates at their means 2-5%, sterility 14 days) with every uncertain value at its
mean, exponential hands-on time; 4 analysts on an 8-hour, 5-day roster, one instrument of each
type; 300 lots a year (Poisson) for two years per draw; no monitoring blocks. SimPy runs a
subset of draws (``--simpy-draws``) and its time is scaled per lot. The two are timed in
alternating rounds (``--rounds``: one release_days call, then a share of the SimPy draws), so
a machine that gets busier slows both alike; the pmcap time is the median call. Both print
the mean and P90 of days to release, which should agree within Monte Carlo error.
Needs ``pip install simpy`` (``pip install -e .[bench]``).

Run: ``python benchmarks/bench_qclab.py [--draws 1000] [--simpy-draws 40] [--rounds 4]``
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from capacity import QCLab, load_process, release_days

LOTS_PER_YEAR, YEARS = 300, 2
ANALYSTS, HOURS, DAYS, FIRST = 4, 8.0, 5, 8.0


def fixed_panel() -> dict:
    """The manual CAR-T template with every uncertain value at its mean."""
    spec = load_process("car-t-autologous-manual").to_dict()
    for assay in spec["qc"]:
        for key, value in assay.items():
            if isinstance(value, dict):
                kind, args = next(iter(value.items()))
                assay[key] = {"triangular": sum(args) / 3, "beta": args[0] / sum(args)}[kind]
    return spec


def simpy_draw(ready_days: np.ndarray, panel: dict, rng: np.random.Generator) -> np.ndarray:
    """Days from ready to release of each lot, simulated with SimPy in calendar hours."""
    import simpy

    def next_on_shift(t):
        while True:
            day = math.floor(t / 24)
            if day % 7 < DAYS:
                opens, closes = day * 24 + FIRST, day * 24 + FIRST + HOURS
                if t < opens:
                    return opens
                if t < closes:
                    return t
            t = (day + 1) * 24

    def finish(t, work):
        t = next_on_shift(t)
        while True:
            closes = math.floor(t / 24) * 24 + FIRST + HOURS
            if work <= closes - t:
                return t + work
            work -= closes - t
            t = next_on_shift(closes)

    env = simpy.Environment()
    analysts = simpy.Resource(env, ANALYSTS)
    instruments = {a["instrument"]: simpy.Resource(env, 1) for a in panel["qc"]}
    release = np.full(len(ready_days), -np.inf)

    def hold(resource, request, until):
        yield env.timeout(until - env.now)
        resource.release(request)

    def test(lot, assay):
        runs = 0
        while True:
            runs += 1
            got_analyst = analysts.request()
            yield got_analyst
            instrument = instruments[assay["instrument"]]
            got_instrument = instrument.request()
            yield got_instrument
            start = next_on_shift(env.now)
            analyst_done = finish(start, rng.exponential(assay["hands_on_hours"]))
            instrument_done = finish(start, assay["instrument_hours"])
            env.process(hold(analysts, got_analyst, analyst_done))
            env.process(hold(instrument, got_instrument, instrument_done))
            done = max(analyst_done, instrument_done) + 24 * assay["turnaround_days"]
            yield env.timeout(done - env.now)
            if runs >= 10 or rng.random() >= assay["retest_rate"]:
                break
        release[lot] = max(release[lot], env.now / 24)

    def lot_arrives(lot):
        yield env.timeout(24 * ready_days[lot])
        for assay in panel["qc"]:
            for _ in range(int(assay["tests_per_lot"])):
                env.process(test(lot, assay))

    for lot in range(len(ready_days)):
        env.process(lot_arrives(lot))
    env.run()
    return release - ready_days


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--simpy-draws", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    panel = fixed_panel()
    lab = QCLab(
        [panel],
        analysts=ANALYSTS,
        instruments={a["instrument"]: 1 for a in panel["qc"]},
        hours_per_day=HOURS,
        days_per_week=DAYS,
        shift_start_hour=FIRST,
        hands_on="exponential",
        monitoring_hours_per_month=0,
    )
    rng = np.random.default_rng(0)
    n_lots = rng.poisson(LOTS_PER_YEAR * YEARS, args.draws)
    width = int(n_lots.max())
    ready = np.full((args.draws, width), np.nan)
    for d, n in enumerate(n_lots):  # set-up only, not timed
        ready[d, :n] = np.sort(rng.uniform(0, 365 * YEARS, n))
    process = np.zeros(ready.shape, np.int64)
    keys = rng.integers(0, 2**63, args.draws).astype(np.uint64)
    release_days(ready[:2], process[:2], keys[:2], lab)  # compile (or load the cache)

    pmcap_times, simpy_time, simpy_days, simpy_lots = [], 0.0, [], 0
    per_round = max(1, args.simpy_draws // args.rounds)
    for r in range(args.rounds):
        start = time.perf_counter()
        result = release_days(ready, process, keys, lab)
        pmcap_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        for d in range(r * per_round, (r + 1) * per_round):
            sim_rng = np.random.default_rng([1, d])
            days = simpy_draw(ready[d, : n_lots[d]], panel, sim_rng)
            simpy_days.append(days)
            simpy_lots += len(days)
        simpy_time += time.perf_counter() - start
    pmcap_per_lot = float(np.median(pmcap_times)) / n_lots.sum()
    simpy_per_lot = simpy_time / simpy_lots
    qc = result.qc_days
    pooled = np.concatenate(simpy_days)
    print(f"lots: pmcap {n_lots.sum():,} in {args.draws} draws, SimPy {simpy_lots:,}")
    print(
        f"days to release, mean / P90: pmcap {np.nanmean(qc):.3f} / "
        f"{np.nanquantile(qc, 0.9):.3f}, SimPy {pooled.mean():.3f} / "
        f"{np.quantile(pooled, 0.9):.3f}"
    )
    print(
        f"time per lot: pmcap {pmcap_per_lot * 1e6:.2f} us, SimPy {simpy_per_lot * 1e6:.1f} us; "
        f"ratio {simpy_per_lot / pmcap_per_lot:.0f}x"
    )


if __name__ == "__main__":
    main()
