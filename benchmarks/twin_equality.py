"""Bit-for-bit check of the facility twin across a change of its kernel.

``python benchmarks/twin_equality.py --save before.npz`` on the old code, then
``python benchmarks/twin_equality.py --check before.npz`` on the new: every output of the
compiled kernel (``capacity._twin.simulate_twin``) and every variable of the
``capacity.simulate_twin`` dataset, on set-ups that switch the kernel's features on and off,
must be ``np.array_equal`` (NaN equal to NaN). A speed-up of the kernel must not change a
single number for a fixed seed.

Set-ups: the bench case of ``bench_twin.py`` (contamination with remakes, one crew); the twin
with a QC lab; two processes with different ``lots_per_suite`` with crews round the clock and
with a short working day, downtime (shutdowns, equipment failures, contamination) and
dropout; suites by month and per draw; random transport and per-month crews; PPQ lots.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from capacity import _twin
from capacity.twin import CrewConfig, DowntimeConfig, VeinToVeinConfig, simulate_twin
from tests.capacity.test_twin import ROUND_THE_CLOCK, poisson_demand, twin_case
from tests.helpers import fixed_process, make_demand


def _mixed(crews, downtime, v2v, seed):
    room = fixed_process(name="room", culture_days={"triangular": [7, 9, 14]}, changeover_days=1,
                         failure_rate=0.1)  # fmt: skip
    closed = fixed_process(name="closed", culture_days={"uniform": [8, 12]},
                           changeover_days={"uniform": [0.5, 1.5]}, lots_per_suite=4)  # fmt: skip
    rng = np.random.default_rng(seed)
    demand = make_demand(rng.poisson([8, 20], size=(20, 24, 2)), programs=["A", "B"])
    months = pd.DatetimeIndex(demand["month"].values)
    suites = pd.Series([4] * 9 + [6] * 15, index=months)
    return lambda: simulate_twin(
        demand, {"A": room, "B": closed}, suites, operators=np.linspace(6, 14, 24), crews=crews,
        downtime=downtime, vein_to_vein=v2v, seed=seed,
    )  # fmt: skip


def _lab():
    from capacity.qclab import QCLab
    from capacity.twin import QCLabStage

    panel = [{"assay": "sterility", "tests_per_lot": 1, "hands_on_hours": 12,
              "turnaround_days": 14, "instrument": "bact-alert", "instrument_hours": 0.5,
              "retest_rate": 0.1}]  # fmt: skip
    spec = fixed_process(culture_days={"triangular": [7, 9, 14]}, changeover_days=1, qc=panel)
    lab = QCLab([spec], analysts=2, instruments={"bact-alert": 1}, monitoring_hours_per_month=4)
    demand = poisson_demand(12, 20, months=12, seed=5)
    return lambda: simulate_twin(demand, spec, 4, operators=8, qc_stage=QCLabStage(lab, seed=9),
                                 seed=9)  # fmt: skip


def _ppq():
    rng = np.random.default_rng(3)
    values = np.stack(
        [rng.poisson(6, (8, 12)), rng.poisson(4, (8, 12)), rng.poisson(3, (8, 12))], axis=-1
    )[:, :, None, :]
    spec = fixed_process(culture_days={"triangular": [7, 9, 14]}, changeover_days=1)
    return lambda: simulate_twin(make_demand(values), spec, 3, operators=1000,
                                 crews=ROUND_THE_CLOCK, seed=2)  # fmt: skip


def setups():
    short = CrewConfig(crew_size=2, shifts_per_day=1, hours_per_shift=10, attendance=0.8)
    downtime = DowntimeConfig(shutdown_days_per_year=10, shutdown_start="07-01",
                              contamination_rate={"beta": [2, 40]}, contamination_remakes=2,
                              equipment_failures_per_suite_year=3)  # fmt: skip
    none = DowntimeConfig(contamination_rate=0.0, contamination_remakes=0)
    v2v = VeinToVeinConfig(inbound_days={"triangular": [0.5, 1, 3]},
                           release_to_infusion_days={"uniform": [3, 7]}, new_apheresis=False,
                           dropout_per_day=0.005)  # fmt: skip
    plain = VeinToVeinConfig(inbound_days=0, outbound_days=0, release_to_infusion_days=0)
    spec = fixed_process(culture_days={"lognormal": {"median": 9, "p90": 12}},
                         changeover_days={"uniform": [0.5, 1.5]}, failure_rate=0.15,
                         max_remanufacture=2)  # fmt: skip
    every = poisson_demand(12, 25, seed=3, months=18)
    return {
        "bench": twin_case(200, seed=1),
        "lab": _lab(),
        "mixed_round_the_clock": _mixed(ROUND_THE_CLOCK, none, plain, 4),
        "mixed_short_day_downtime_dropout": _mixed(short, downtime, v2v, 6),
        "every_feature_suites_per_draw": lambda: simulate_twin(
            every,
            spec,
            np.arange(25) % 4 + 4,
            operators=np.linspace(4, 12, 18),
            crews=short,
            downtime=downtime,
            vein_to_vein=v2v,
            seed=5,
        ),
        "ppq": _ppq(),
    }


def collect() -> dict[str, np.ndarray]:
    kernel = _twin.simulate_twin
    out: dict[str, np.ndarray] = {}
    for name, run in setups().items():
        calls = []
        _twin.simulate_twin = lambda *a, _c=calls, **k: _c.append(kernel(*a, **k)) or _c[-1]
        try:
            twin = run()
        finally:
            _twin.simulate_twin = kernel
        for c, arrays in enumerate(calls):
            for i, a in enumerate(arrays):
                out[f"{name}/kernel{c}/{i}"] = a
        for var in twin.data_vars:
            out[f"{name}/{var}"] = twin[var].values
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--save", help="write the outputs to this .npz")
    what.add_argument("--check", help="compare the outputs with this .npz")
    args = parser.parse_args(argv)
    out = collect()
    if args.save:
        np.savez_compressed(args.save, **out)
        print(f"saved {len(out)} arrays to {args.save}")
        return
    saved = np.load(args.check)
    bad = sorted(set(saved.files) ^ set(out))
    for k in sorted(set(saved.files) & set(out)):
        a, b = saved[k], out[k]
        if a.dtype != b.dtype or not np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"):
            bad.append(k)
    print(f"{len(out)} arrays compared, {len(bad)} differ" + (f": {bad}" if bad else ""))
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    main()
