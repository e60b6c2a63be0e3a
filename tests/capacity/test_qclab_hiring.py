"""QC analysts that follow a headcount path by month (``release_days(analysts_by_month=...)``
and :class:`capacity.QCLabStage`'s ``analysts``), checked by hand.

The lab: one assay of 2 hands-on hours and no turnaround or instrument, analysts on a
7-day roster of 8 hours from 08:00, no monitoring work; months of 31, 28 and 31 days (edges
0, 31, 59, 90). A test starts at the later of its lot's ready time and the first roster hour
an analyst at work that month is free.
"""

from __future__ import annotations

import numpy as np
import pytest

from capacity import QCLab, release_days
from capacity.errors import InputError

EDGES = np.array([0.0, 31.0, 59.0, 90.0])
PROCESS = {
    "name": "x",
    "culture_days": 8,
    "qc": [{"assay": "panel", "hands_on_hours": 2, "turnaround_days": 0}],
}
LAB = QCLab([PROCESS], analysts=5, instruments={}, days_per_week=7, monitoring_hours_per_month=0)
H = 1 / 24


def release(ready, path):
    ready = np.asarray(ready, float)[None, :]
    result = release_days(
        ready, np.zeros(ready.shape, np.int64), np.array([11], np.uint64), LAB,
        month_edges=EDGES, analysts_by_month=np.asarray(path)[None, :],
    )  # fmt: skip
    return result.release[0], result.wait[0, :, 0]


def test_no_analysts_until_the_third_month_lots_wait_for_its_first_shift():
    # lots ready on days 5 and 40: nobody works until day 59, whose shift starts 08:00;
    # one analyst does the first lot 08:00-10:00 and the second 10:00-12:00
    done, wait = release([5.0, 40.0], [0, 0, 1])
    np.testing.assert_allclose(done, [59 + 10 * H, 59 + 12 * H], atol=1e-9)
    np.testing.assert_allclose(wait, [59 + 8 * H - 5, 59 + 10 * H - 40], atol=1e-9)


def test_with_an_analyst_from_the_start_nobody_waits_but_for_the_roster():
    done, wait = release([5.0, 40.0], [1, 1, 1])
    np.testing.assert_allclose(done, [5 + 10 * H, 40 + 10 * H], atol=1e-9)
    np.testing.assert_allclose(wait, [8 * H, 8 * H], atol=1e-9)


def test_an_analyst_who_leaves_stops_taking_work_and_one_who_returns_resumes():
    # one analyst in month 0, none in month 1, one again in month 2: a lot ready on day 40
    # waits for day 59's shift, a lot on day 10 is done that day
    done, _ = release([10.0, 40.0], [1, 0, 1])
    np.testing.assert_allclose(done, [10 + 10 * H, 59 + 10 * H], atol=1e-9)


def test_two_analysts_work_in_parallel_and_one_after_the_drop():
    # three lots ready at day 20 (month 0, two analysts): 08-10 twice, then 10-12;
    # three lots ready at day 35 (month 1, one analyst): 08-10, 10-12, 12-14
    done, _ = release([20.0] * 3 + [35.0] * 3, [2, 1, 1])
    expected = [20 + 10 * H, 20 + 10 * H, 20 + 12 * H, 35 + 10 * H, 35 + 12 * H, 35 + 14 * H]
    np.testing.assert_allclose(np.sort(done), expected, atol=1e-9)


def test_a_constant_path_equals_the_lab_with_that_many_analysts():
    # the month-by-month path with 3 analysts all along gives the heap-based lab's results
    rng = np.random.default_rng(4)
    ready = np.sort(rng.uniform(0, 85, size=(6, 40)), axis=1)
    process = np.zeros(ready.shape, np.int64)
    keys = np.arange(6, dtype=np.uint64)
    lab = QCLab([PROCESS], analysts=3, instruments={}, days_per_week=5,
                monitoring_hours_per_month=0)  # fmt: skip
    base = release_days(ready, process, keys, lab, month_edges=EDGES)
    path = release_days(
        ready, process, keys, lab, month_edges=EDGES, analysts_by_month=np.full((6, 3), 3)
    )
    assert np.nanmax(base.wait[..., 0]) > 0.3  # analysts bind
    np.testing.assert_allclose(path.release, base.release, atol=1e-9)
    np.testing.assert_allclose(path.wait, base.wait, atol=1e-9)


@pytest.mark.parametrize(
    "path, message",
    [([1, 1, 0], "no analyst in the last month"), ([1, -1, 1], ">= 0"),
     ([1, 1.5, 1], "whole"), ([1, 1], "one headcount per month")],
)  # fmt: skip
def test_bad_paths_are_refused(path, message):
    with pytest.raises(InputError, match=message):
        release([5.0], path)


def test_the_twins_qc_lab_follows_a_hiring_plans_headcount():
    # two patients in January; analysts (as a workforce simulation's
    # "qualified", per draw and month) 0 until March, 1 from March (day 59): every lot,
    # ready in January, is released on 59 at 10:00 or later, 2 hours apart
    import pandas as pd
    import xarray as xr

    from capacity.twin import CrewConfig, DowntimeConfig, QCLabStage, simulate_twin
    from tests.helpers import fixed_process, make_demand

    spec = fixed_process(
        culture_days=9, changeover_days=0, failure_rate=0.0,
        qc=[{"assay": "panel", "hands_on_hours": 2, "turnaround_days": 0, "retest_rate": 0}],
    )  # fmt: skip
    lab = QCLab([spec], analysts=5, instruments={}, days_per_week=7, monitoring_hours_per_month=0)
    months = pd.date_range("2027-01-01", periods=4, freq="MS")
    qualified = xr.DataArray(
        np.tile([0.0, 0.4, 1.7, 1.0], (3, 1)), dims=("draw", "month"),
        coords={"draw": range(3), "month": months},
    )  # fmt: skip
    crews = CrewConfig(crew_size=1, shifts_per_day=3, hours_per_shift=8, start_hours=0,
                       harvest_hours=0)  # fmt: skip
    none = DowntimeConfig(contamination_rate=0.0, contamination_remakes=0)
    demand = make_demand(np.tile([2, 0, 0, 0], (3, 1)))

    def run(analysts):
        stage = QCLabStage(lab, seed=1, analysts=analysts)
        simulate_twin(demand, spec, 10, operators=100, crews=crews, downtime=none,
                      qc_stage=stage, seed=1)  # fmt: skip
        return stage.result.release, stage.result.lot_ready

    release, ready = run(qualified)
    lots = np.isfinite(ready)
    assert lots.sum(axis=1).tolist() == [2, 2, 2] and (ready[lots] < 59).all()
    np.testing.assert_allclose(np.sort(release[lots].reshape(3, 2)),
                               np.tile([59 + 10 * H, 59 + 12 * H], (3, 1)), atol=1e-9)  # fmt: skip
    # the lab's own 5 analysts: each lot is done on its ready day (or the next shift)
    free, _ = run(None)
    assert (free[lots] < 59).all()


def test_an_analyst_off_the_roster_when_the_instrument_frees_is_not_used():
    # one assay of 2 hands-on hours and 240 hours on the one flow instrument; lots ready on
    # days 5 and 6. The second lot's test waits for the instrument until day 35 08:00, in the
    # second month. With an analyst every month it starts then; with none in the second
    # month it starts at the third month's first shift, day 59 08:00: 24 days later, all of
    # them waiting for an analyst, and no hands-on hour is booked in the second month.
    process = {
        "name": "x",
        "culture_days": 8,
        "qc": [{"assay": "panel", "hands_on_hours": 2, "turnaround_days": 0,
                "instrument": "flow", "instrument_hours": 240}],
    }  # fmt: skip
    lab = QCLab([process], analysts=5, instruments={"flow": 1}, days_per_week=7,
                monitoring_hours_per_month=0)  # fmt: skip
    ready = np.array([[5.0, 6.0]])

    def run(path):
        return release_days(
            ready, np.zeros(ready.shape, np.int64), np.array([11], np.uint64), lab,
            month_edges=EDGES, analysts_by_month=np.array([path]),
        )  # fmt: skip

    every, gap = run([1, 1, 1]), run([1, 0, 1])
    # 240 instrument hours are 30 roster days of 8 hours: from day 5 08:00 to day 34 16:00,
    # then from day 35 08:00 to day 64 16:00 (or from day 59 08:00 to day 88 16:00)
    assert every.release[0] == pytest.approx([34 + 16 * H, 64 + 16 * H])
    assert gap.release[0] == pytest.approx([34 + 16 * H, 88 + 16 * H])
    # waits (lot, resource): analysts grow by the 24 days, the instrument's are the same
    assert gap.wait[0, 1, 0] - every.wait[0, 1, 0] == pytest.approx(24.0)
    assert gap.wait[0, 1, 1] == pytest.approx(every.wait[0, 1, 1])
    assert not gap.utilisation[0, 1, 0] > 0  # no analyst hour in the month nobody works
