"""capacity.requirements against a plain reference implementation, draw by draw.

The reference uses the same parameter draws (``ProcessSpec.sample``) and the documented failure
streams (one per program, attempt and block of ``RNG_BLOCK`` draws, drawn in draw order over
every month, zeros included), but none of the vectorised arithmetic: lots are spread over
months by integrating each lot's overlap with the month over its start day, piecewise linear
between breakpoints (exact by the trapezoid rule), one draw and month at a time. It catches a
refactor of the block arithmetic that changes numbers: a failure stream consumed in another
order, a kernel weight or an output summed into the wrong month, assay or unit.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import pytest

from capacity import facility, load_process, requirements
from capacity.resource_needs import RNG_BLOCK
from tests.helpers import fixed_process, make_demand


def close(actual, desired):
    """Equal to 1e-12 relative; lot-days of a month without lots come out as +-1e-14."""
    np.testing.assert_allclose(actual, desired, rtol=1e-12, atol=1e-9)


def failures(seed, program, attempt, n, p):
    """Binomial(n, p) of draws 0, 1, ... from the documented streams, every cell drawn."""
    words = [zlib.crc32(w.encode()) for w in ("failures", program, f"attempt-{attempt}")]
    out = np.empty_like(n)
    for k in range(0, n.shape[0], RNG_BLOCK):
        rng = np.random.default_rng(
            np.random.SeedSequence([seed, *words], spawn_key=(k // RNG_BLOCK,))
        )
        rows = slice(k, k + RNG_BLOCK)
        out[rows] = rng.binomial(n[rows], p[rows, None])
    return out


def mean_overlap(t0, t1, a, b, delay, duration):
    """Mean over starts s in [t0, t1) of the days of [s + delay, s + delay + duration) in
    [a, b); with duration 0, the share of starts whose day s + delay falls in [a, b)."""
    if duration == 0:
        return max(0.0, min(t1, b - delay) - max(t0, a - delay)) / (t1 - t0)

    def overlap(s):
        return max(0.0, min(b, s + delay + duration) - max(a, s + delay))

    knots = [a - delay - duration, b - delay - duration, a - delay, b - delay]
    s = np.unique(np.clip([t0, t1, *knots], t0, t1))
    y = np.array([overlap(x) for x in s])
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(s))) / (t1 - t0)


def spread(lots, months, delay, duration):
    """Lots started per month (one draw) -> lot-days (or events) per month."""
    edges = np.r_[0.0, np.cumsum(months.days_in_month.to_numpy(float))]
    out = np.zeros(len(months))
    for m in np.flatnonzero(lots):
        for j in range(m, len(months)):
            w = mean_overlap(edges[m], edges[m + 1], edges[j], edges[j + 1], delay, duration)
            out[j] += lots[m] * w
    return out


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(11)
    draws, n_months = 300, 9  # 300 > RNG_BLOCK: two failure streams per attempt
    values = rng.poisson(3.0, size=(draws, n_months, 2, 3))
    values[rng.random((draws, n_months, 2)) < 0.4] = 0  # many empty months: Binomial(0, p)
    demand = make_demand(values)
    spec = load_process("car-t-autologous-manual")
    return values, demand, spec


def test_lots_reruns_and_losses_equal_the_documented_streams(case):
    values, demand, spec = case
    seed = 4
    req = requirements(demand, spec, seed=seed, by_program=True)
    p = spec.sample(values.shape[0], seed)["failure_rate"].values
    for i, program in enumerate(["P0", "P1"]):
        patients = values[:, :, i, 0] + values[:, :, i, 1]
        rerun = failures(seed, program, 0, patients, p)  # max_remanufacture = 1
        lost = failures(seed, program, 1, rerun, p)
        got = req.sel(program=program)
        np.testing.assert_array_equal(got["remanufactured_lots"].values, rerun)
        np.testing.assert_array_equal(got["patients_lost"].values, lost)
        np.testing.assert_array_equal(got["lots"].values, patients + values[:, :, i, 2] + rerun)


def test_two_reruns_in_facility_totals_equal_the_documented_streams(case):
    values, demand, _ = case
    spec = fixed_process(failure_rate={"beta": [5, 45]}, max_remanufacture=2)
    seed = 6
    req = requirements(demand, spec, seed=seed)  # totals over both programs
    p = spec.sample(values.shape[0], seed)["failure_rate"].values
    lots = rerun = lost = 0
    for i, program in enumerate(["P0", "P1"]):
        patients = values[:, :, i, 0] + values[:, :, i, 1]
        first = failures(seed, program, 0, patients, p)
        second = failures(seed, program, 1, first, p)  # re-runs of failed re-runs
        rerun = rerun + first + second
        lost = lost + failures(seed, program, 2, second, p)
        lots = lots + patients + values[:, :, i, 2] + first + second
    assert rerun.sum() > lost.sum() > 0
    np.testing.assert_array_equal(req["remanufactured_lots"].values, rerun)
    np.testing.assert_array_equal(req["patients_lost"].values, lost)
    np.testing.assert_array_equal(req["lots"].values, lots)


def test_resources_equal_a_draw_by_draw_reference(case):
    values, demand, spec = case
    seed = 4
    req = requirements(demand, spec, seed=seed, by_program=True)
    total = facility(req)
    par = spec.sample(values.shape[0], seed)
    months = pd.DatetimeIndex(demand["month"].values)
    days = months.days_in_month.to_numpy(float)
    per_month = days / (365.25 / 12)
    productive_share = days / np.where(months.is_leap_year, 366.0, 365.0)
    lots = req["lots"].sum("program").values
    assays = [a.assay for a in spec.qc]
    for d in range(0, values.shape[0], 37):  # every 37th draw: a reference loop is slow
        q = {k: par[k].values[d] for k in par.data_vars}
        culture, turnaround = q["culture_days"], q["qc_turnaround_days"].max()
        suite_days = spread(lots[d], months, 0.0, culture + q["changeover_days"])
        harvested = spread(lots[d], months, culture, 0.0)
        released = spread(lots[d], months, culture + turnaround, 0.0)
        on_culture = spread(lots[d], months, 0.0, culture)
        suites = suite_days / days
        productive = q["productive_hours_per_fte_year"] * productive_share
        close(total["suite_days"].values[d], suite_days)
        per_test = q["qc_tests_per_lot"] * (1 + q["qc_retest_rate"])
        qc = harvested[:, None] * (per_test * q["qc_hands_on_hours"])[None, :]
        fixed = (suites * q["qc_hours_per_suite_month"] + q["qc_fixed_hours_per_month"]) * (
            per_month
        )
        got_qc = total["qc_hours"].sel(assay=assays).values[d]
        close(got_qc, qc)
        close(total["qc_hours"].sel(assay="fixed_work").values[d], fixed)
        for j, a in enumerate(spec.qc):
            close(
                total["instrument_hours"].sel(instrument=a.instrument).values[d],
                harvested * per_test[j] * q["qc_instrument_hours"][j],
            )
        qa = (
            released * q["qa_hours_per_lot"]
            + (suites * q["qa_hours_per_suite_month"] + q["qa_fixed_hours_per_month"]) * per_month
        )
        close(total["qa_fte"].values[d], qa / productive)
        hands_on = on_culture / culture * q["operator_hours_per_lot"]
        crew = suite_days * min(q["operating_days_per_year"] / 365, 1.0) * 2 * 2 * 8.0
        close(total["operator_fte"].values[d], np.maximum(hands_on, crew) / productive)
        # each program: its own suites, and a share of the process's fixed QC work in
        # proportion to its lots (half each in a month without lots)
        for i in range(2):
            lots_i = req["lots"].values[d, :, i]
            suites_i = spread(lots_i, months, 0.0, culture + q["changeover_days"]) / days
            share_i = np.where(lots[d] > 0, lots_i / np.where(lots[d] > 0, lots[d], 1), 0.5)
            close(
                req["qc_hours"].sel(assay="fixed_work").values[d, :, i],
                (suites_i * q["qc_hours_per_suite_month"] + share_i * q["qc_fixed_hours_per_month"])
                * per_month,
            )
