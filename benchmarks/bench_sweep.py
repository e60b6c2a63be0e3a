"""Benchmarks: scenario sweeps on dask.distributed, and out-of-core requirements.

``--part scale``: the largest ``requirements`` problem (draws x months x programs) whose peak
memory stays under ``--memory-gib`` (4 GiB), in memory vs chunked along draw. Each run is a
fresh subprocess that reports its own peak resident memory (``VmHWM`` in ``/proc/self/status``,
the high-water mark of the whole process: demand, outputs, temporaries, imports). Both compute
the same thing: ``requirements`` of every program on the bundled manual CAR-T template (seed
1), then ``bands`` and ``shortfall_probability``.

* in memory: demand generated in RAM as int64 (draw, month, program, stream), then
  ``requirements(demand)``, ``bands``, ``shortfall_probability``;
* chunked: demand written first (by another process) to a NetCDF file in a temporary folder,
  chunked along draw (uint8), then ``xr.open_dataset(path, chunks={"draw": N})`` (lazy),
  ``requirements`` (lazy) and
  ``summarise`` (bands and shortfall in one pass; scratch files in the same folder), with the
  dask scheduler given by ``--threads`` (1: synchronous).

The in-memory search fits peak = a + b x draws on two small runs, predicts the largest size and
confirms it (stepping down 5% while a run goes over the budget). The chunked run is made at
``--target`` (10) times that size and stops there ("at least"). Time per cell is compared at a
common size (the largest in-memory one), where the two tables must also be equal (a hash of
each is printed). Run: ``python benchmarks/bench_sweep.py --part scale`` (about 8 minutes on 2
cores; ``--quick`` for a small smoke run).

``--part sweep``: wall time of a sweep of 8 scenarios of the example portfolio (two installed
facility sizes x four variants, ``--sweep-draws`` draws each, full run folders) on a local
cluster of 1 and of 2 workers, and the speed-up (goal: at least 1.7x on 2 cores). Fits are
cached and numba compiled by a warm-up sweep first; each timing starts its own cluster.
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PROCESS = "car-t-autologous-manual"
STREAMS = ("clinical", "commercial", "ppq")
INSTALLED = {"suites": 150, "operator_fte": 900, "qc_fte": 200, "fte[qa]": 60}
GEN_BLOCK = 256  # draws per generated block of demand (its own random stream)


# --------------------------------------------------------------------------------------------
# demand: the same numbers in memory and on disk, generated a block of draws at a time
# --------------------------------------------------------------------------------------------
def demand_block(
    start: int, stop: int, months: int, programs: int, dtype: type = np.int64
) -> np.ndarray:
    """Patients (draw, month, program, stream) for draws [start, stop), any range.

    Each draw has a level per program and stream, 11 to 59; its months are uniform on
    [0, level) (mean about 17 a month). Cheap to draw (random bytes, scaled), so billions of
    cells take seconds; generated per GEN_BLOCK draws with the block's own stream, so a range
    gives the same numbers however the draws are cut.
    """
    shape = (GEN_BLOCK, months, programs, len(STREAMS))
    out = np.empty((stop - start, *shape[1:]), dtype)
    for k in range(start // GEN_BLOCK, (stop - 1) // GEN_BLOCK + 1):
        rng = np.random.default_rng([20260913, k])
        level = rng.integers(11, 60, size=(GEN_BLOCK, 1, programs, len(STREAMS)), dtype=np.uint16)
        raw = np.frombuffer(rng.bytes(int(np.prod(shape))), np.uint8).reshape(shape)
        values = (raw * level) >> 8
        a, b = max(start, k * GEN_BLOCK), min(stop, (k + 1) * GEN_BLOCK)
        out[a - start : b - start] = values[a - k * GEN_BLOCK : b - k * GEN_BLOCK]
    return out


def demand_coords(draws: int, months: int, programs: int) -> dict:
    import pandas as pd

    return {
        "draw": np.arange(draws),
        "month": pd.date_range("2027-01-01", periods=months, freq="MS"),
        "program": [f"P{i:02d}" for i in range(programs)],
        "stream": list(STREAMS),
    }


def write_demand_file(path: Path, draws: int, months: int, programs: int, chunk: int) -> None:
    """NetCDF-4 file of the demand, chunked along draw, written a chunk at a time (uint8)."""
    import dask
    import dask.array as da
    import xarray as xr

    shape = (draws, months, programs, len(STREAMS))

    def block(block_info=None):
        (a, b), *_ = block_info[None]["array-location"]
        return demand_block(a, b, months, programs, np.uint8)  # at most 58

    data = da.map_blocks(
        block,
        chunks=(
            (chunk,) * (draws // chunk) + ((draws % chunk,) if draws % chunk else ()),
            (months,),
            (programs,),
            (len(STREAMS),),
        ),
        dtype=np.uint8,
        meta=np.empty((0, 0, 0, 0), np.uint8),
    )
    ds = xr.Dataset(
        {"patients": (("draw", "month", "program", "stream"), data)},
        coords=demand_coords(draws, months, programs),
    )
    encoding = {"patients": {"chunksizes": (min(chunk, draws), months, programs, len(STREAMS))}}
    with dask.config.set(scheduler="synchronous"):
        ds.to_netcdf(path, engine="h5netcdf", encoding=encoding)
    del shape


# --------------------------------------------------------------------------------------------
# children: one measured run each
# --------------------------------------------------------------------------------------------
def peak_bytes() -> int:
    """High-water mark of this process's resident memory (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def table_hash(frame) -> str:
    import hashlib

    import pandas as pd

    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=True).values).hexdigest()[:16]


def child_in_memory(args) -> dict:
    import xarray as xr

    from capacity import bands, requirements, shortfall_probability

    values = np.empty((args.draws, args.months, args.programs, len(STREAMS)), np.int64)
    for a in range(0, args.draws, GEN_BLOCK):
        b = min(args.draws, a + GEN_BLOCK)
        values[a:b] = demand_block(a, b, args.months, args.programs)
    demand = xr.DataArray(
        values,
        dims=("draw", "month", "program", "stream"),
        coords=demand_coords(args.draws, args.months, args.programs),
        name="patients",
    )
    start, cpu = time.perf_counter(), time.process_time()
    req = requirements(demand, PROCESS, seed=1)
    table = bands(req)
    risk = shortfall_probability(req, INSTALLED)
    return {
        "seconds": time.perf_counter() - start,
        "cpu": time.process_time() - cpu,
        "bands": table_hash(table),
        "shortfall": table_hash(risk),
    }


def child_chunked(args) -> dict:
    import dask
    import xarray as xr

    from capacity import requirements, summarise

    if args.threads > 1:
        config = {"scheduler": "threads", "num_workers": args.threads}
    else:
        config = {"scheduler": "synchronous"}
    start, cpu = time.perf_counter(), time.process_time()
    with dask.config.set(config):
        demand = xr.open_dataset(args.file, chunks={"draw": args.chunk})  # lazy
        req = requirements(demand, PROCESS, seed=1)
        table, risk = summarise(req, installed=INSTALLED, spill_dir=Path(args.file).parent)
    return {
        "seconds": time.perf_counter() - start,
        "cpu": time.process_time() - cpu,
        "bands": table_hash(table),
        "shortfall": table_hash(risk),
    }


def run_child(kind: str, draws: int, args, **extra) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--draws",
        str(draws),
        "--months",
        str(args.months),
        "--programs",
        str(args.programs),
        "--threads",
        str(args.threads),
        "--chunk",
        str(args.chunk),
    ]
    for key, value in extra.items():
        cmd += [f"--{key}", str(value)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    wall = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} run with {draws} draws failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall"] = time.perf_counter() - wall
    result["draws"] = draws
    result["cells"] = draws * args.months * args.programs
    return result


# --------------------------------------------------------------------------------------------
# part scale
# --------------------------------------------------------------------------------------------
GIB = 2**30


def _show(label: str, r: dict) -> None:
    print(
        f"  {label:<10} {r['draws']:>9,} draws {r['cells']:>15,} cells  "
        f"peak {r['peak'] / GIB:6.2f} GiB  {r['seconds']:6.1f} s ({r['cpu']:6.1f} s CPU)  "
        f"{r['seconds'] / r['cells'] * 1e9:5.0f} ns/cell ({r['cpu'] / r['cells'] * 1e9:.0f} CPU)",
        flush=True,
    )


def _predict(runs: list[dict], budget: float) -> int:
    """Draws at which peak = a + b x draws, fitted on the two largest runs, meets the budget."""
    (d0, p0), (d1, p1) = sorted((r["draws"], r["peak"]) for r in runs)[-2:]
    slope = (p1 - p0) / (d1 - d0)
    draws = d1 + (budget - p1) / slope * 0.93  # small runs understate the slope a little
    print(
        f"  fit on {d0:,} and {d1:,} draws: {slope * GEN_BLOCK / 2**20:.1f} MiB per "
        f"{GEN_BLOCK} draws -> {_round(draws):,} draws",
        flush=True,
    )
    return _round(draws)


def _round(draws: float) -> int:
    return max(GEN_BLOCK, int(draws) // GEN_BLOCK * GEN_BLOCK)


def scale_part(args) -> dict:
    budget = args.memory_gib * GIB
    print(
        f"requirements + bands + shortfall_probability, {args.months} months x "
        f"{args.programs} programs x {len(STREAMS)} streams, process {PROCESS}, "
        f"peak memory budget {args.memory_gib:g} GiB",
        flush=True,
    )
    print(f"chunked: {args.chunk} draws per chunk, dask {_scheduler(args)}", flush=True)
    print("in memory:", flush=True)
    runs = [run_child("memory", d, args) for d in args.probe_draws]
    for r in runs:
        _show("probe", r)
    best = None
    draws = _predict(runs, budget)
    for _ in range(4):
        memory = run_child("memory", draws, args)
        _show("try", memory)
        if memory["peak"] > budget:  # over: scale down in proportion, with a margin
            draws = _round(draws * budget / memory["peak"] * 0.98)
            continue
        best = memory
        runs.append(memory)
        bigger = _predict(runs, budget)
        if memory["peak"] >= 0.95 * budget or bigger <= draws:
            break
        draws = bigger
    if best is None:
        raise RuntimeError("no in-memory run stayed under the memory budget")
    memory = best
    draws = memory["draws"]
    mem_draws = draws

    print("chunked:", flush=True)
    with tempfile.TemporaryDirectory(prefix="pmcap-bench-", dir=args.tmp) as tmp:
        common_file = Path(tmp) / "common.nc"
        write_demand_file(common_file, mem_draws, args.months, args.programs, args.chunk)
        common = run_child("chunked", mem_draws, args, file=common_file)
        _show("same size", common)
        common_file.unlink()
        same = common["bands"] == memory["bands"] and common["shortfall"] == memory["shortfall"]
        print(
            f"  tables equal to in memory at {mem_draws:,} draws: {same} "
            f"(bands {common['bands']} vs {memory['bands']}, "
            f"shortfall {common['shortfall']} vs {memory['shortfall']})",
            flush=True,
        )
        big_draws = _round(mem_draws * args.target) + GEN_BLOCK
        big_file = Path(tmp) / "big.nc"
        start = time.perf_counter()
        write_demand_file(big_file, big_draws, args.months, args.programs, args.chunk)
        print(
            f"  wrote {big_file.stat().st_size / GIB:.1f} GiB of demand in "
            f"{time.perf_counter() - start:.0f} s",
            flush=True,
        )
        big = run_child("chunked", big_draws, args, file=big_file)
        _show(f"{big_draws / mem_draws:.1f}x", big)

    mem_cells, big_cells = memory["cells"], big["cells"]

    def ratio(run: dict, clock: str) -> float:
        return (run[clock] / run["cells"]) / (memory[clock] / memory["cells"])

    per_cell, per_cell_big = ratio(common, "seconds"), ratio(big, "seconds")
    fits = big["peak"] <= budget
    print()
    print(f"largest in memory under {args.memory_gib:g} GiB: {mem_cells:,} cells")
    print(
        f"largest chunked under {args.memory_gib:g} GiB: "
        + (
            f"at least {big_cells:,} cells"
            if fits
            else f"NOT REACHED ({big_cells:,} cells went over)"
        )
        + f" (peak {big['peak'] / GIB:.2f} GiB)"
    )
    print(f"ratio chunked / in memory: {'at least ' if fits else ''}{big_cells / mem_cells:.1f}x")
    print(
        f"time per cell chunked / in memory at {mem_cells:,} cells: {per_cell:.2f} "
        f"(CPU time {ratio(common, 'cpu'):.2f})"
    )
    print(
        f"time per cell chunked at {big_cells:,} cells / in memory at {mem_cells:,}: "
        f"{per_cell_big:.2f} (CPU time {ratio(big, 'cpu'):.2f})"
    )
    print(f"chunked tables equal to in-memory tables at the common size: {same}")
    return {
        "memory_cells": mem_cells,
        "chunked_cells": big_cells,
        "chunked_fits": fits,
        "time_per_cell_ratio": per_cell,
        "time_per_cell_ratio_big": per_cell_big,
        "cpu_per_cell_ratio": ratio(common, "cpu"),
        "equal": same,
    }


def _scheduler(args) -> str:
    return "synchronous" if args.threads <= 1 else f"threads x {args.threads}"


# --------------------------------------------------------------------------------------------
# part sweep
# --------------------------------------------------------------------------------------------
SWEEP_BODY = """
[set]
"run.draws" = {draws}
"facility.service_level.draws" = {service_draws}

[grid]
"facility.suites" = [16, 24]

[[variant]]
name = "as planned"

[[variant]]
name = "all automated"
"program.CART-A.process" = "car-t-autologous-automated"
"program.CART-C.process" = "car-t-autologous-automated"

[[variant]]
name = "shorter manual culture"
"process.car-t-autologous-manual.culture_days" = {{triangular = [6, 7, 9]}}

[[variant]]
name = "peak share halves"
"program.CART-C.uptake.peak_share" = {{uniform = [0.075, 0.15]}}
"""


def sweep_part(args) -> dict:
    """Wall time of an 8-scenario sweep of the example portfolio with 1 and with 2 local
    workers (fits cached first; each timing a fresh output folder and a fresh cluster,
    cluster start-up included)."""
    import statistics

    draws, repeat = args.sweep_draws, args.repeat
    from pmcap.scenario import example_scenario_path
    from pmcap.sweep import load_sweep, run_sweep

    with tempfile.TemporaryDirectory(prefix="pmcap-bench-sweep-") as tmp:
        tmp = Path(tmp)
        path = tmp / "sweep.toml"
        path.write_text(
            f'[sweep]\nbase = "{example_scenario_path()}"\ntitle = "bench"\n'
            + SWEEP_BODY.format(draws=draws, service_draws=min(200, draws))
        )
        sweep = load_sweep(path)
        assert len(sweep.cases) == 8, len(sweep.cases)
        run_sweep(load_sweep(path), tmp / "warm", workers=2)  # fits cached, numba compiled
        times: dict[int, list[float]] = {1: [], 2: []}
        for i in range(repeat):
            for workers in (1, 2):
                t0 = time.perf_counter()
                result = run_sweep(sweep, tmp / f"w{workers}-{i}", workers=workers)
                times[workers].append(time.perf_counter() - t0)
                assert len(result.ran) == 8 and not result.failed
                t = result.timings
                spans = result.spans.values()
                first, last = min(a for a, _, _ in spans), max(b for _, b, _ in spans)
                busy: dict[str, float] = {}
                for a, b, w in spans:
                    busy[w] = busy.get(w, 0.0) + b - a
                print(
                    f"  {workers} worker(s): {times[workers][-1]:.1f} s wall; cluster start "
                    f"{t['cluster_start_s']:.1f} s, tasks {t['run_s']:.1f} s wall, "
                    f"{t['tasks_s']:.1f} s summed over tasks; first task started at "
                    f"{first:.1f} s, last ended at {last:.1f} s; busy per worker "
                    + ", ".join(f"{v:.1f}" for v in sorted(busy.values()))
                    + f" s; then comparison {t.get('compare_s', 0):.1f} s, waiting for the "
                    f"cluster to close {t.get('close_wait_s', 0):.1f} s",
                    flush=True,
                )
        one, two = statistics.median(times[1]), statistics.median(times[2])
        print(f"sweep of 8 scenarios ({draws} draws x 120 months x 3 programs each)")
        print(f"  1 worker : {one:7.1f} s  (runs: {', '.join(f'{t:.1f}' for t in times[1])})")
        print(f"  2 workers: {two:7.1f} s  (runs: {', '.join(f'{t:.1f}' for t in times[2])})")
        print(f"  speed-up 2 vs 1 workers: {one / two:.2f}x (goal >= 1.7x)")
        return {"one_worker_s": one, "two_workers_s": two, "speedup": one / two}


# --------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("scale", "sweep", "all"), default="all")
    parser.add_argument("--memory-gib", type=float, default=4.0)
    parser.add_argument("--months", type=int, default=240)
    parser.add_argument("--programs", type=int, default=40)
    parser.add_argument("--chunk", type=int, default=1024, help="draws per chunk (chunked)")
    parser.add_argument("--threads", type=int, default=1, help="dask threads (1: synchronous)")
    parser.add_argument("--target", type=float, default=10.0, help="chunked size / in-memory")
    parser.add_argument("--probe-draws", type=int, nargs=2, default=(1024, 4096))
    parser.add_argument("--tmp", default=None, help="folder for demand and scratch files")
    parser.add_argument("--quick", action="store_true", help="small smoke run (0.5 GiB, 2x)")
    parser.add_argument("--sweep-draws", type=int, default=1000, help="draws per scenario (sweep)")
    parser.add_argument("--repeat", type=int, default=1, help="timings per worker count (sweep)")
    parser.add_argument("--child", choices=("memory", "chunked"), help=argparse.SUPPRESS)
    parser.add_argument("--draws", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        result = child_in_memory(args) if args.child == "memory" else child_chunked(args)
        result["peak"] = peak_bytes()
        print(json.dumps(result))
        return
    if args.quick:
        args.memory_gib, args.target, args.months, args.programs = 0.5, 2.0, 60, 8
        args.probe_draws, args.chunk = (256, 1024), 512
    if args.part in ("scale", "all"):
        scale_part(args)
    if args.part in ("sweep", "all"):
        sweep_part(args)


if __name__ == "__main__":
    main()
