"""simulate_facility against a plain SimPy model of the same facility, in one process.

1,000 draws x 36 months at 500 patients a year (Poisson), 16 slots, the bundled manual CAR-T
process with fixed parameters except lot-to-lot culture time triangular(7, 8, 12) and
changeover uniform(0.5, 2), failure rate 5% with one re-run queued at manufacture end +
14 days. Both report the mean wait, the share of patients waiting over 2 days and the mean
number of busy slots; SimPy runs on a subset of draws (``--simpy-draws``) and its time is
scaled per draw. The two are timed in alternating rounds (``--rounds``: one simulate_facility
call, then a share of the SimPy draws), so a machine that gets busier slows both alike; the
pmcap time is the median call. ``--threads`` sets numba's threads (default: all cores).
Needs ``pip install simpy`` (``pip install -e .[bench]``).

Run: ``python benchmarks/bench_facility.py [--draws 1000] [--simpy-draws 100] [--threads 1]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import xarray as xr

from capacity import ProcessSpec, simulate_facility

SLOTS = 16
PER_YEAR = 500
MONTHS = pd.date_range("2027-01-01", periods=36, freq="MS")
PROCESS = ProcessSpec.from_mapping(
    {
        "name": "bench",
        "culture_days": {"triangular": [7, 8, 12]},
        "changeover_days": {"uniform": [0.5, 2]},
        "failure_rate": 0.05,
        "max_remanufacture": 1,
        "qc": [{"assay": "sterility", "hands_on_hours": 1.5, "turnaround_days": 14}],
    }
)


def make_demand(draws: int, seed: int = 0) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    days = MONTHS.days_in_month.to_numpy()
    values = rng.poisson(PER_YEAR / 365 * days[None, :], size=(draws, len(MONTHS)))
    return xr.DataArray(values, dims=("draw", "month"), coords={"month": MONTHS}, name="patients")


def simpy_draw(counts: np.ndarray, rng: np.random.Generator) -> tuple[list[float], float]:
    """One draw in SimPy: patient waits (first attempt) and busy slot-days in the horizon."""
    import simpy

    env = simpy.Environment()
    slots = simpy.Resource(env, capacity=SLOTS)
    starts = (MONTHS - MONTHS[0]).days.to_numpy(float)
    days = MONTHS.days_in_month.to_numpy(float)
    horizon = starts[-1] + days[-1]
    waits: list[float] = []
    busy = [0.0]

    def lot(arrival_delay: float, attempt: int):
        yield env.timeout(arrival_delay)
        arrived = env.now
        with slots.request() as request:
            yield request
            if attempt == 0:
                waits.append(env.now - arrived)
            culture = rng.triangular(7, 8, 12)
            hold = culture + rng.uniform(0.5, 2)
            busy[0] += max(0.0, min(env.now + hold, horizon) - min(env.now, horizon))
            start = env.now
            yield env.timeout(hold)
        if attempt == 0 and rng.random() < 0.05:
            env.process(lot(start + culture + 14 - env.now, 1))

    for m, n in enumerate(counts):
        for t in np.sort(starts[m] + rng.random(n) * days[m]):
            env.process(lot(t, 0))
    env.run()
    return waits, busy[0] / horizon


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--simpy-draws", type=int, default=100)
    parser.add_argument("--sizing-draws", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        import numba

        numba.set_num_threads(args.threads)
    demand = make_demand(args.draws)

    simulate_facility(demand.isel(draw=slice(0, 10)), PROCESS, SLOTS, seed=1)  # warm-up
    rng = np.random.default_rng(2)
    calls, t_simpy, simpy_stats = [], 0.0, []
    for r in range(args.rounds):
        t0 = time.perf_counter()
        sim = simulate_facility(demand, PROCESS, SLOTS, seed=1)
        calls.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for d in range(
            r * args.simpy_draws // args.rounds, (r + 1) * args.simpy_draws // args.rounds
        ):
            w, b = simpy_draw(demand.values[d], rng)
            simpy_stats.append((np.mean(w), np.mean(np.asarray(w) > 2), b))
        t_simpy += time.perf_counter() - t0
    t_pmcap = float(np.median(calls))
    waits = sim["patient_wait_days"].values
    per_draw_mean = np.nanmean(waits, axis=1)
    per_draw_over = np.nanmean(np.where(np.isnan(waits), np.nan, waits > 2), axis=1)
    horizon_days = float(MONTHS.days_in_month.to_numpy().sum())
    busy = (sim["slots_busy"] * MONTHS.days_in_month.to_numpy()).sum("month").values / horizon_days

    s_mean, s_over, s_busy = np.asarray(simpy_stats).T

    def row(name, ours, theirs):
        se = np.hypot(ours.std() / np.sqrt(len(ours)), theirs.std() / np.sqrt(len(theirs)))
        diff = ours.mean() - theirs.mean()
        print(
            f"{name:<26} pmcap {ours.mean():8.4f}   simpy {theirs.mean():8.4f}   "
            f"diff {diff:+.4f} ({diff / se:+.1f} SE)"
        )

    print(f"{args.draws} draws x {len(MONTHS)} months, {PER_YEAR} patients/year, {SLOTS} slots")
    row("mean wait (days)", per_draw_mean, s_mean)
    row("share waiting > 2 days", per_draw_over, s_over)
    row("mean busy slots", busy, s_busy)
    per_draw_simpy = t_simpy / args.simpy_draws
    threads = f"{args.threads} thread(s)" if args.threads else "all threads"
    print(
        f"pmcap: {t_pmcap:.3f} s for {args.draws} draws ({1e3 * t_pmcap / args.draws:.3f} "
        f"ms/draw; median of {args.rounds} calls, {threads})"
    )
    print(
        f"simpy: {t_simpy:.2f} s for {args.simpy_draws} draws ({1e3 * per_draw_simpy:.2f} ms/draw)"
    )
    print(f"ratio simpy / pmcap per draw: {per_draw_simpy * args.draws / t_pmcap:.1f}x")
    print(
        f"  (first call {calls[0]:.3f} s: ratio {per_draw_simpy * args.draws / calls[0]:.1f}x; "
        f"slowest {max(calls):.3f} s: {per_draw_simpy * args.draws / max(calls):.1f}x)"
    )
    sizing(args.sizing_draws)


def sizing(draws: int) -> None:
    """suites_for_service_level (doubling + bisection per draw) against simulating every
    size from 1 to the largest answer, on a 10-year portfolio-like demand that grows from 3
    to 45 lots a month (draws differ by up to 2x); both must give the same answers."""
    from capacity import suites_for_service_level

    rng = np.random.default_rng(5)
    months = pd.date_range("2027-01-01", periods=120, freq="MS")
    rate = np.linspace(3, 45, 120)[None, :] * rng.uniform(0.6, 1.2, (draws, 1))
    demand = xr.DataArray(
        rng.poisson(rate), dims=("draw", "month"), coords={"month": months}, name="patients"
    )
    kw = {"max_wait_days": 3.0, "epsilon": 0.05, "seed": 1}
    t0 = time.perf_counter()
    fast = suites_for_service_level(demand, PROCESS, **kw)
    t_fast = time.perf_counter() - t0
    top = int(fast["suites_needed_by_month"].max()) + 1
    t0 = time.perf_counter()
    horizon = np.full(draws, np.nan)
    for c in range(1, top + 1):  # the exhaustive search the old code ran
        sim = simulate_facility(
            demand,
            PROCESS,
            c,
            max_wait_days=None,
            cryopreserved=True,
            wait_threshold_days=3.0,
            seed=1,
        )
        waits = sim["patient_wait_days"].values
        meets = np.nansum(waits > 3.0, axis=1) <= 0.05 * np.isfinite(waits).sum(axis=1)
        horizon[np.isnan(horizon) & meets] = c
    t_all = time.perf_counter() - t0
    same = np.array_equal(horizon, fast["suites_needed"].values)
    print(
        f"sizing {draws} draws x 120 months: bisection {t_fast:.2f} s "
        f"({fast.attrs['queue_runs_per_draw']} queue runs per draw at most, horizon and every "
        f"month), every size 1..{top} {t_all:.2f} s (horizon only); ratio {t_all / t_fast:.1f}x; "
        f"same horizon answers: {same}"
    )
    horizon_only(demand, kw, fast["suites_needed"].values)


def global_bisection(demand, kw, quantiles=(0.5, 0.9)) -> tuple[dict, int]:
    """The percentiles as ``pmcap run`` found them before (one bisection over a size common
    to all draws per percentile, every draw simulated at each step): the baseline."""
    from capacity import load_process
    from capacity.demand import as_demand
    from capacity.simulation import prepare_facility, run_queue

    spec = load_process(PROCESS)
    prep = prepare_facility(
        as_demand(demand),
        spec,
        qc_fte=None,
        max_wait_days=None,
        cryopreserved=True,
        wait_threshold_days=kw["max_wait_days"],
        service="process",
        seed=kw["seed"],
        opening=None,
    )
    counted = np.isfinite(prep.arrivals) & ~prep.is_ppq
    meets: dict[int, np.ndarray] = {}

    def share(c: int) -> float:
        if c not in meets:
            _, waits = run_queue(prep, np.zeros((prep.draws, c * spec.lots_per_suite)))
            late = np.where(counted, waits > kw["max_wait_days"], False).sum(axis=1)
            meets[c] = late <= kw["epsilon"] * counted.sum(axis=1)
        return float(meets[c].mean())

    out = {}
    for q in quantiles:
        hi = 1
        while share(hi) < q:
            hi *= 2
        lo = hi // 2
        while hi - lo > 1:
            mid = (lo + hi) // 2
            hi, lo = (mid, lo) if share(mid) >= q else (hi, mid)
        out[f"p{100 * q:g}"] = hi
    return out, len(meets) * prep.draws


def horizon_only(demand, kw, horizon: np.ndarray, rounds: int = 5) -> None:
    """P50/P90 of the horizon sizing as pmcap run needs it: each draw's own search from its
    peak suite need (``by_month=False``, ``start``) against the old global bisection,
    alternating rounds (the guess's requirements are not timed)."""
    from capacity import requirements, suites_for_service_level

    # each draw's guess: its peak suite need (as pmcap run passes it)
    peaks = requirements(demand, PROCESS, seed=1)["suites"].max("month").values
    new_t, old_t = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        got = suites_for_service_level(demand, PROCESS, by_month=False, start=peaks, **kw)
        new_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        old, old_runs = global_bisection(demand, kw)
        old_t.append(time.perf_counter() - t0)
    need = got["suites_needed"].values
    new = {f"p{100 * q:g}": np.quantile(need, q, method="inverted_cdf") for q in (0.5, 0.9)}
    same = np.array_equal(need, horizon) and all(new[k] == old[k] for k in old)
    t_new, t_old = float(np.median(new_t)), float(np.median(old_t))
    print(
        f"P50/P90 of the horizon sizing: per-draw search {t_new:.2f} s "
        f"({got.attrs['queue_runs']} draw-runs), global bisection {t_old:.2f} s ({old_runs} "
        f"draw-runs); ratio {t_old / t_new:.1f}x (median of {rounds}); same answers: {same}"
    )


if __name__ == "__main__":
    main()
