from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from capacity import DemandError, as_demand, read_demand, write_demand
from tests.helpers import make_demand


@pytest.fixture
def demand():
    return make_demand(np.random.default_rng(0).poisson(5, (3, 4, 2, 3)), programs=["A", "B"])


def test_missing_program_and_stream_dims_are_filled():
    out = as_demand(make_demand([[1, 2]]))
    assert out.dims == ("draw", "month", "program", "stream")
    assert out["program"].values.tolist() == ["all"]
    assert out["stream"].values.tolist() == ["commercial"]
    assert out.attrs["units"] == "patients/month"


@pytest.mark.parametrize("suffix", [".csv", ".nc"])
def test_round_trip(tmp_path, demand, suffix):
    path = write_demand(demand, tmp_path / f"d{suffix}")
    back = read_demand(path)
    np.testing.assert_array_equal(back.values, demand.values)
    assert back["month"].dtype == np.dtype("datetime64[ns]")
    assert pd.DatetimeIndex(back["month"].values).equals(pd.DatetimeIndex(demand["month"].values))
    assert back["program"].values.tolist() == ["A", "B"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (np.array([[1.0, -1.0]]), "patients must be >= 0; first at draw=0, month=2027-02-01"),
        (np.array([[1.5, 1.0]]), "whole numbers"),
        (np.array([[1.0, np.nan]]), "finite"),
    ],
)
def test_bad_values(values, message):
    with pytest.raises(DemandError, match=message):
        as_demand(make_demand(values))


def test_months_must_be_consecutive_firsts():
    da = make_demand([[1, 2, 3]])
    with pytest.raises(DemandError, match="consecutive"):
        as_demand(
            da.assign_coords(month=pd.to_datetime(["2027-01-01", "2027-02-01", "2027-04-01"]))
        )
    with pytest.raises(DemandError, match="not the first day"):
        as_demand(
            da.assign_coords(month=pd.to_datetime(["2027-01-01", "2027-02-15", "2027-03-01"]))
        )
    with pytest.raises(DemandError, match="unknown stream"):
        as_demand(make_demand(np.ones((1, 1, 1, 1)), streams=["trial"]))
    with pytest.raises(DemandError, match="unexpected dims"):
        as_demand(xr.DataArray(np.ones((1, 1, 1)), dims=("draw", "month", "site")))


def csv(tmp_path, rows, header="draw,month,program,stream,patients"):
    path = tmp_path / "demand.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


GOOD = [
    "0,2027-01-01,A,clinical,3",
    "0,2027-02-01,A,clinical,4",
    "1,2027-01-01,A,clinical,2",
    "1,2027-02-01,A,clinical,0",
]


def test_csv_reads(tmp_path):
    da = read_demand(csv(tmp_path, GOOD))
    assert da.values[:, :, 0, 0].tolist() == [[3, 4], [2, 0]]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("1,2027-02-01,A,clinical,-1", "line 5: patients must be >= 0"),
        ("1,2027-02-01,A,clinical,x", "line 5: patients must be a number"),
        ("1,2027-02-01,A,clinical,1.5", "line 5: patients must be a whole number"),
        ("1,2027-02-30,A,clinical,1", "line 5: month must be a date"),
        ("1,2027-02-03,A,clinical,1", "line 5: month must be the first day of a month"),
        ("1,2027-02-01,A,trial,1", "line 5: stream must be one of"),
        ("1,2027-01-01,A,clinical,1", r"line 5: duplicate \(draw, month, program, stream\)"),
        ("-1,2027-02-01,A,clinical,1", "line 5: draw must be an integer"),
    ],
)
def test_csv_bad_rows_named(tmp_path, row, message):
    path = csv(tmp_path, [*GOOD[:3], row])
    with pytest.raises(DemandError, match=message) as err:
        read_demand(path)
    assert str(path) in str(err.value)


def test_csv_structure_errors(tmp_path):
    with pytest.raises(DemandError, match=r"missing column\(s\) \['patients'\]"):
        read_demand(csv(tmp_path, ["0,2027-01-01,A,clinical"], "draw,month,program,stream"))
    with pytest.raises(
        DemandError, match="1 .* combinations have no row.*draw=1, month=2027-02-01"
    ):
        read_demand(csv(tmp_path, GOOD[:3]))
    with pytest.raises(DemandError, match="no such demand file"):
        read_demand(tmp_path / "nope.csv")
    with pytest.raises(DemandError, match="expected a .nc or .csv"):
        read_demand(csv(tmp_path, GOOD).rename(tmp_path / "demand.xlsx"))
    bad_nc = tmp_path / "bad.nc"
    bad_nc.write_text("not netcdf")
    with pytest.raises(DemandError, match="cannot read as NetCDF"):
        read_demand(bad_nc)


SHUFFLED_MONTHS = [
    pd.to_datetime(["2027-02-01", "2027-01-01", "2027-03-01"]),
    pd.to_datetime(["2027-03-01", "2027-02-01", "2027-01-01"]),
]


@pytest.mark.parametrize("months", SHUFFLED_MONTHS)
def test_months_out_of_order_are_refused_not_sorted(tmp_path, months):
    # values tied to the wrong month would shift demand in time: refuse, never reorder
    da = make_demand([[1, 2, 3]]).assign_coords(month=months)
    with pytest.raises(DemandError, match="months must be in increasing order"):
        as_demand(da)
    path = tmp_path / "shuffled.nc"
    da.to_netcdf(path, engine="h5netcdf")
    with pytest.raises(DemandError, match=f"{path}: months must be in increasing order"):
        read_demand(path)


def test_csv_rows_out_of_month_order_are_refused(tmp_path):
    # draw 1's February row comes before its January row
    rows = [GOOD[0], GOOD[1], GOOD[3], GOOD[2]]
    path = csv(tmp_path, rows)
    with pytest.raises(DemandError, match="line 5: month 2027-01-01 comes after 2027-02-01") as err:
        read_demand(path)
    assert str(path) in str(err.value)


def test_csv_rows_grouped_by_month_read_the_same(tmp_path):
    # row order across series is free (month-major, program-major ...); within a series the
    # months must increase, and the values land on their own month, draw and program
    rows = [
        "0,2027-01-01,B,clinical,5",
        "1,2027-01-01,A,clinical,2",
        "0,2027-01-01,A,clinical,3",
        "1,2027-01-01,B,clinical,7",
        "1,2027-02-01,A,clinical,0",
        "0,2027-02-01,B,clinical,6",
        "0,2027-02-01,A,clinical,4",
        "1,2027-02-01,B,clinical,8",
    ]
    da = read_demand(csv(tmp_path, rows))
    assert da["program"].values.tolist() == ["A", "B"]
    assert da.sel(program="A", stream="clinical").values.tolist() == [[3, 4], [2, 0]]
    assert da.sel(program="B", stream="clinical").values.tolist() == [[5, 6], [7, 8]]
