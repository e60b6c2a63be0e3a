"""Time capacity.requirements against an independent bare-NumPy baseline, in one process.

4,000 draws x 120 months x 10 programs x 3 streams, the bundled manual CAR-T template for every
program. The baseline shares no code with ``capacity``: it reads the template TOML itself,
samples the process parameters with its own NumPy generator, draws failures and re-runs for
all programs at once, and spreads lots over months with its own arithmetic (cumulative starts
``R(t)`` and their integral ``Q(t)``, piecewise linear and quadratic in time, instead of the
per-start-month weights of ``capacity.requirements``). Because the random numbers differ,
the two agree in distribution, not draw by draw: ``agreement`` compares their means per month
with the Monte Carlo error of the paired difference (same demand draw on both sides).

Run: ``python benchmarks/bench_capacity.py [--draws N] [--repeat R]``; it prints both times,
their ratio and the largest |z| of the agreement check. Timings alternate between the two
(best of R each), in wall time and in CPU time; on a loaded machine the CPU-time ratio is the
steadier one.
"""

from __future__ import annotations

import argparse
import os
import time
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import ndtri

TEMPLATE = Path(__file__).resolve().parents[1] / "capacity" / "templates"
METRICS = ("suites", "operator_fte", "qc_fte", "qa_fte")
PATIENT_STREAMS = (0, 1)  # clinical, commercial; stream 2 is ppq (made once, never re-run)

# Defaults of optional process fields (as documented for the process TOML format).
DEFAULTS = {
    "changeover_days": 0.0,
    "failure_rate": 0.0,
    "operating_days_per_year": 365.0,
    "operator_hours_per_lot": 0.0,
    "qa_hours_per_lot": 0.0,
    "productive_hours_per_fte_year": 1650.0,
    "hours_per_shift": 8.0,
    "qc_fixed_hours_per_month": 0.0,
    "qc_hours_per_suite_month": 0.0,
    "qa_fixed_hours_per_month": 0.0,
    "qa_hours_per_suite_month": 0.0,
}
QC_DEFAULTS = {"tests_per_lot": 1.0, "retest_rate": 0.0}
INTEGERS = {
    "lots_per_suite": 1,
    "max_remanufacture": 0,
    "shifts_per_day": 1,
    "min_operators_per_suite_shift": 0,
}


def make_demand(draws: int, months: int, programs: int, seed: int = 0) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    rate = rng.gamma(4.0, 5.0, size=(draws, 1, programs, 3))
    values = rng.poisson(rate * np.ones((1, months, 1, 1)))
    return xr.DataArray(
        values,
        dims=("draw", "month", "program", "stream"),
        coords={
            "draw": np.arange(draws),
            "month": pd.date_range("2027-01-01", periods=months, freq="MS"),
            "program": [f"P{i:02d}" for i in range(programs)],
            "stream": ["clinical", "commercial", "ppq"],
        },
        name="patients",
    )


def read_template(name: str) -> dict:
    """The raw TOML mapping of a bundled process template."""
    with open(TEMPLATE / f"{name}.toml", "rb") as fh:
        return tomllib.load(fh)


# --------------------------------------------------------------------------------------------
# parameters: one value per draw, straight from the TOML values
# --------------------------------------------------------------------------------------------
def draw_value(value, draws: int, rng: np.random.Generator) -> np.ndarray:
    """A TOML value (number or one-key distribution table) -> ``draws`` samples."""
    if not isinstance(value, dict):
        return np.full(draws, float(value))
    ((kind, args),) = value.items()
    if kind == "triangular":
        return rng.triangular(*args, size=draws)
    if kind == "uniform":
        return rng.uniform(*args, size=draws)
    if kind == "beta":
        return rng.beta(*args, size=draws)
    if kind == "lognormal":  # median and 90th percentile -> log-mean and log-sd
        sigma = np.log(args["p90"] / args["median"]) / ndtri(0.9)
        return rng.lognormal(np.log(args["median"]), sigma, size=draws)
    raise ValueError(f"unknown distribution {kind!r}")


def sample_parameters(raw: dict, draws: int, rng: np.random.Generator) -> dict:
    """Per-draw arrays for the numeric fields, (draw, assay) arrays for the QC panel."""
    p = {"culture_days": draw_value(raw["culture_days"], draws, rng)}
    for field, default in DEFAULTS.items():
        p[field] = draw_value(raw.get(field, default), draws, rng)
    for field, default in INTEGERS.items():
        p[field] = int(raw.get(field, default))
    for field in ("tests_per_lot", "hands_on_hours", "turnaround_days", "retest_rate"):
        p[f"qc_{field}"] = np.stack(
            [draw_value(a.get(field, QC_DEFAULTS.get(field)), draws, rng) for a in raw["qc"]],
            axis=1,
        )
    return p


# --------------------------------------------------------------------------------------------
# spreading: cumulative starts R(t) (lots started before day t) and Q(t) = integral of R
# --------------------------------------------------------------------------------------------
class Starts:
    """Lots starting uniformly within each month, as functions of the day ``t``.

    Lots alive on day t with a slot of d days = R(t) - R(t - d); lot-days in [a, b) =
    Q(b) - Q(a) - Q(b - d) + Q(a - d); events (harvest, release) ``delay`` days after the start
    that fall in [a, b) = R(b - delay) - R(a - delay).
    """

    def __init__(self, lots: np.ndarray, edges: np.ndarray):
        self.edges = edges  # (M + 1,) days since the first month
        width = np.diff(edges)
        self.rate = lots / width  # lots per day, (draw, M)
        self.r_edge = np.concatenate([np.zeros((len(lots), 1)), np.cumsum(lots, axis=1)], axis=1)
        area = self.r_edge[:, :-1] * width + self.rate * width**2 / 2
        self.q_edge = np.concatenate([np.zeros((len(lots), 1)), np.cumsum(area, axis=1)], axis=1)

    def _locate(self, t: np.ndarray):
        j = np.clip(np.searchsorted(self.edges, t, side="right") - 1, 0, len(self.edges) - 2)
        return j, t - self.edges[j]

    def _at(self, table: np.ndarray, j: np.ndarray) -> np.ndarray:
        return np.take_along_axis(table, j, axis=1)

    def R(self, t: np.ndarray) -> np.ndarray:
        j, dt = self._locate(t)
        out = self._at(self.r_edge, j) + self._at(self.rate, j) * dt
        return np.where(t > 0, out, 0.0)

    def Q(self, t: np.ndarray) -> np.ndarray:
        j, dt = self._locate(t)
        out = self._at(self.q_edge, j) + self._at(self.r_edge, j) * dt
        out += self._at(self.rate, j) * dt * dt / 2
        return np.where(t > 0, out, 0.0)

    def lot_days(self, duration: np.ndarray) -> np.ndarray:
        """Days of lots occupying ``duration`` (per draw) days from their start, by month."""
        t = np.broadcast_to(self.edges, (len(duration), len(self.edges)))
        return np.diff(self.Q(t) - self.Q(t - duration[:, None]), axis=1)

    def events(self, delay: np.ndarray) -> np.ndarray:
        """Lots whose start + ``delay`` (per draw) days falls in each month."""
        return np.diff(self.R(self.edges[None, :] - delay[:, None]), axis=1)


def bare_numpy(values: np.ndarray, months: pd.DatetimeIndex, raw: dict, seed: int) -> dict:
    """Facility totals per draw and month, computed from the raw process mapping."""
    draws = values.shape[0]
    rng = np.random.default_rng(seed)
    p = sample_parameters(raw, draws, rng)

    patients = values[..., list(PATIENT_STREAMS)].sum(axis=-1)  # (draw, month, program)
    failure = p["failure_rate"][:, None, None]
    attempt, rerun = patients, np.zeros_like(patients)
    for _ in range(p["max_remanufacture"]):
        attempt = rng.binomial(attempt, failure)
        rerun += attempt
    lots = (patients + values[..., 2] + rerun).sum(axis=-1).astype(float)

    edges = np.r_[0.0, np.cumsum(months.days_in_month.to_numpy(float))]
    year_share = months.days_in_month.to_numpy(float) / np.where(months.is_leap_year, 366, 365)
    starts = Starts(lots, edges)
    culture = p["culture_days"]
    suite_days = starts.lot_days(culture + p["changeover_days"]) / p["lots_per_suite"]
    hands_on = starts.lot_days(culture) / culture[:, None] * p["operator_hours_per_lot"][:, None]
    crew = (
        suite_days
        * np.minimum(p["operating_days_per_year"][:, None] / 365.0, 1.0)  # staffed days
        * p["shifts_per_day"]
        * p["min_operators_per_suite_shift"]
        * p["hours_per_shift"][:, None]
    )
    qc_per_lot = (p["qc_tests_per_lot"] * p["qc_hands_on_hours"] * (1 + p["qc_retest_rate"])).sum(
        axis=1
    )
    harvested = starts.events(culture)
    released = starts.events(culture + p["qc_turnaround_days"].max(axis=1))
    hours_per_fte = p["productive_hours_per_fte_year"][:, None] * year_share
    days = months.days_in_month.to_numpy(float)
    suites = suite_days / days  # calendar occupancy
    # work that does not scale with lots: per suite in use and once for the (one) process,
    # stated per average month and prorated by the month's length
    per_month = days / (365.25 / 12)
    qc_other = (
        suites * p["qc_hours_per_suite_month"][:, None] + p["qc_fixed_hours_per_month"][:, None]
    ) * per_month
    qa_other = (
        suites * p["qa_hours_per_suite_month"][:, None] + p["qa_fixed_hours_per_month"][:, None]
    ) * per_month
    return {
        "suites": suites,
        "operator_fte": np.maximum(hands_on, crew) / hours_per_fte,
        "qc_fte": (harvested * qc_per_lot[:, None] + qc_other) / hours_per_fte,
        "qa_fte": (released * p["qa_hours_per_lot"][:, None] + qa_other) / hours_per_fte,
    }


def agreement(req: xr.Dataset, ref: dict, metrics=METRICS) -> dict[str, float]:
    """Largest |z| over months of mean(req - ref), with the SE of the paired difference.

    Both sides see the same demand draws, so pairing by draw removes demand noise; what is left
    is parameter and failure noise, independent between the two. Months with no spread (a
    difference identically 0) count as |z| = 0 if the means are equal.
    """
    out = {}
    for name in metrics:
        diff = req[name].transpose("draw", "month").values - ref[name]
        se = diff.std(axis=0, ddof=1) / np.sqrt(diff.shape[0])
        mean = diff.mean(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(se > 0, np.abs(mean) / se, np.where(np.abs(mean) < 1e-9, 0.0, np.inf))
        out[name] = float(z.max())
    return out


def best_of_pair(fn_a, fn_b, repeat: int, clock=time.perf_counter) -> tuple[float, float]:
    """Best times of two functions run alternately (a, b, a, b, ...): on a shared machine
    both see the same load, so their ratio is steadier than that of two separate series.
    ``clock=time.process_time`` gives CPU time (both are single-threaded NumPy), which
    other processes on the machine disturb less than wall time."""
    times_a, times_b = [], []
    for _ in range(repeat):
        for fn, times in ((fn_a, times_a), (fn_b, times_b)):
            t0 = clock()
            fn()
            times.append(clock() - t0)
    return min(times_a), min(times_b)


def main() -> None:
    from capacity import load_process, requirements

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--draws", type=int, default=4000)
    parser.add_argument("--months", type=int, default=120)
    parser.add_argument("--programs", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--memory",
        action="store_true",
        help="print peak memory above entry (tracemalloc) of requirements() + bands() and of "
        "the baseline, at 16k draws x 10 programs and 4k draws x 100 programs (120 months)",
    )
    args = parser.parse_args()
    if args.memory:
        memory()
        return
    demand = make_demand(args.draws, args.months, args.programs)
    name = "car-t-autologous-manual"
    spec, raw = load_process(name), read_template(name)
    months = pd.DatetimeIndex(demand["month"].values)
    values = demand.values

    req = requirements(demand, spec, seed=1)  # warm-up, and a check that both agree
    z = agreement(req, bare_numpy(values, months, raw, seed=1))
    # 4 metrics x 120 months: |z| < 5 everywhere has a false-alarm chance below 1e-3
    if max(z.values()) > 5:
        raise SystemExit(f"requirements() and the bare-NumPy baseline disagree: max |z| {z}")

    ours, bare = (
        lambda: requirements(demand, spec, seed=1),
        lambda: bare_numpy(values, months, raw, seed=1),
    )
    t_pmcap, t_numpy = best_of_pair(ours, bare, args.repeat)
    c_pmcap, c_numpy = best_of_pair(ours, bare, args.repeat, clock=time.process_time)
    cells = args.draws * args.months * args.programs * 3
    print(
        f"demand: {args.draws} draws x {args.months} months x {args.programs} programs x 3 "
        f"streams = {cells:,} cells"
    )
    print(
        "agreement (max |z| of monthly means): " + ", ".join(f"{k} {v:.2f}" for k, v in z.items())
    )
    print(f"requirements(): {t_pmcap:.3f} s (best of {args.repeat}, alternating with the baseline)")
    print(f"bare NumPy:     {t_numpy:.3f} s")
    print(f"ratio pmcap / bare NumPy: {t_pmcap / t_numpy:.2f} (goal <= 1.3)")
    print(
        f"CPU time: requirements() {c_pmcap:.3f} s, bare NumPy {c_numpy:.3f} s, "
        f"ratio {c_pmcap / c_numpy:.2f} (machine load {os.getloadavg()[0]:.1f})"
    )


def peak_mib(fn) -> float:
    """Peak traced memory while ``fn`` runs, above what was allocated when it started (MiB)."""
    import gc
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    result = fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del result
    return (peak - base) / 2**20


def memory() -> None:
    from capacity import bands, load_process, requirements

    name = "car-t-autologous-manual"
    spec, raw = load_process(name), read_template(name)
    for draws, programs in ((16_000, 10), (4_000, 100)):
        demand = make_demand(draws, 120, programs)
        months = pd.DatetimeIndex(demand["month"].values)
        values = demand.values
        ours = peak_mib(lambda: bands(requirements(demand, spec, seed=1)))  # noqa: B023
        bare = peak_mib(lambda: bare_numpy(values, months, raw, seed=1))  # noqa: B023
        print(
            f"{draws} draws x 120 months x {programs} programs: requirements()+bands() peak "
            f"{ours:,.0f} MiB above entry, bare NumPy {bare:,.0f} MiB, ratio {ours / bare:.2f} "
            f"(demand itself: {values.nbytes / 2**20:,.0f} MiB)"
        )


if __name__ == "__main__":
    main()
