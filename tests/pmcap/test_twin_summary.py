"""``pmcap.twin_summary.twin_years``: the twin's yearly numbers the report and sweeps share,
against a two-draw case computed by hand."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pmcap.twin_summary import twin_years


def hand_twin() -> xr.Dataset:
    months = pd.date_range("2027-01-01", periods=24, freq="MS")
    causes = ["suites", "crews", "analysts"]
    patients = np.zeros((2, 24))
    patients[0, 0], patients[1, 0], patients[0, 14] = 1, 3, 1  # Jan 2027 (both), Mar 2028
    wait = np.zeros((2, 24, 3))  # mean days waited per patient of the month, by cause
    wait[0, 0] = [2, 0, 6]
    wait[1, 0] = [1, 0, 0]
    over = np.zeros((2, 24))
    over[0, 0], over[1, 0] = 1.0, 1 / 3
    nan = np.nan
    march_2028 = float((months[14] - months[0]).days) + 3
    apheresis = np.array([[5.0, march_2028, nan], [1.0, 2.0, 3.0]])
    v2v = np.array([[40.0, 25.0, nan], [20.0, 30.0, 40.0]])
    return xr.Dataset(
        {
            "patients": (("draw", "month"), patients),
            "wait_days": (("draw", "month", "cause"), wait),
            "share_v2v_over_target": (("draw", "month"), over, {"target_days": 35}),
            "apheresis_day": (("draw", "patient"), apheresis),
            "v2v_days": (("draw", "patient"), v2v),
        },
        coords={"month": months, "cause": causes},
    )


def test_yearly_numbers_by_hand():
    rows = twin_years(hand_twin()).set_index("year")
    y = rows.loc[2027]
    # waiting days: suites 2x1 + 1x3 = 5, analysts 6x1 = 6 -> analysts bind, 6/11
    assert y["binding"] == "analysts"
    assert y["binding_share"] == pytest.approx(6 / 11)
    assert y["suites_share"] == pytest.approx(5 / 11)
    assert y["patients"] == 2  # median of 1 and 3
    # mean wait per patient: draw 0 8/1, draw 1 3/3 -> P50 4.5, P90 1 + 0.9 x 7
    assert (y["wait_p50"], y["wait_p90"]) == pytest.approx((4.5, 7.3))
    # per-draw median v2v 40 and 30 -> P50 35, P90 39
    assert (y["v2v_p50_p50"], y["v2v_p50_p90"]) == pytest.approx((35, 39))
    # per-draw 90th percentile: 40 and 38 -> P50 39, P90 39.8
    assert (y["v2v_p90_p50"], y["v2v_p90_p90"]) == pytest.approx((39, 39.8))
    assert y["over_target"] == pytest.approx(2 / 4)  # 1 of 1 and 1 of 3 patients
    y = rows.loc[2028]  # one patient, draw 0, no waiting
    assert y["binding"] == "" and np.isnan(y["binding_share"])
    assert (y["v2v_p50_p50"], y["over_target"], y["wait_p90"]) == (25, 0, 0)
