"""The demand contract: posterior draws of patients starting manufacture each month.

A DataArray named ``patients`` with dims ``("draw", "month", "program", "stream")``:
``month`` holds the first day of consecutive calendar months, ``stream`` is one of
``clinical``, ``commercial`` or ``ppq`` (qualification lots, which need a suite but are not
patients), values are non-negative integers. It may be stored as NetCDF (NetCDF-4/HDF5 or
classic NetCDF-3) or as a long CSV with columns ``draw,month,program,stream,patients``.

Months are plain dates: in a CSV written ``YYYY-MM-01`` (one format, no time of day, no
timezone); in an array, dates (``datetime64``, ``datetime.date``, naive ``Timestamp``) or text in
that same form, at midnight, in the years 1900-2199. Numbers or labels (``M1``) are refused, not
read as days since 1970. Patients are at most :data:`MAX_PATIENTS` per draw, month, program and
stream: anything larger is a unit or typing error, not a plan for an autologous therapy.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from capacity.errors import DemandError

__all__ = ["STREAMS", "as_demand", "read_demand", "write_demand", "demand_frame"]

STREAMS = ("clinical", "commercial", "ppq")
DIMS = ("draw", "month", "program", "stream")
CSV_COLUMNS = ["draw", "month", "program", "stream", "patients"]
MAX_PATIENTS = 1_000_000  # per draw, month, program and stream
YEARS = (1900, 2199)
_MONTH_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")
_MONTH_FORM = "a date written YYYY-MM-01 (the first day of the month; no time of day or timezone)"


def as_demand(demand: xr.DataArray, source: str = "demand", *, copy: bool = True) -> xr.DataArray:
    """Check a DataArray against the contract and return it in canonical form.

    A missing ``program`` dim becomes one program ``"all"``; a missing ``stream`` dim becomes
    ``"commercial"``. Errors name ``source`` and what was expected. Values are int64 (a copy).
    Demand backed by a dask array stays lazy: each chunk is checked and converted when it is
    computed. ``copy=False`` is for callers that only read the values and sum them in int64:
    int64 input is then shared, not copied, and the chunks of lazy integer input keep their
    dtype (checked, not converted: a uint8 chunk read from a file stays 8 times smaller).
    """
    if isinstance(demand, xr.Dataset):
        if "patients" not in demand:
            raise DemandError(f"{source}: expected a variable named 'patients'")
        demand = demand["patients"]
    if not isinstance(demand, xr.DataArray):
        raise DemandError(f"{source}: expected an xarray.DataArray, got {type(demand).__name__}")
    extra = [d for d in demand.dims if d not in DIMS]
    if extra:
        raise DemandError(f"{source}: unexpected dims {extra}; expected a subset of {list(DIMS)}")
    for required in ("draw", "month"):
        if required not in demand.dims:
            raise DemandError(
                f"{source}: dim '{required}' is missing; dims are {list(demand.dims)}"
            )
    if "program" not in demand.dims:
        demand = demand.expand_dims(program=["all"])
    if "stream" not in demand.dims:
        demand = demand.expand_dims(stream=["commercial"])
    demand = demand.transpose(*DIMS)

    bad_streams = sorted(set(map(str, demand["stream"].values)) - set(STREAMS))
    if bad_streams:
        raise DemandError(f"{source}: unknown stream {bad_streams}; expected {list(STREAMS)}")
    for dim in ("program", "stream"):
        labels = list(map(str, demand[dim].values))
        if len(set(labels)) != len(labels):
            raise DemandError(f"{source}: duplicate labels in '{dim}': {labels}")

    months = _months(demand.indexes.get("month", demand["month"].values), source)
    coords = {
        "draw": np.arange(demand.sizes["draw"]),
        "month": months,
        "program": [str(p) for p in demand["program"].values],
        "stream": [str(s) for s in demand["stream"].values],
    }
    if demand.size == 0:
        raise DemandError(f"{source}: no draws or months")
    dtype = demand.dtype
    if not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
        raise DemandError(f"{source}: patients must be numbers, got dtype {dtype}")
    draws = np.asarray(demand["draw"].values)
    labels = {
        "draw": None if np.array_equal(draws, coords["draw"]) else draws,  # None: the position
        "month": [str(m.date()) for m in months],
        "program": coords["program"],
        "stream": coords["stream"],
    }
    if demand.chunks is not None:  # dask-backed: every chunk is checked when it is computed
        keep = not copy and np.issubdtype(dtype, np.integer)
        values = demand.data.map_blocks(
            _checked_block,
            labels=labels,
            source=source,
            keep=keep,
            dtype=dtype if keep else np.dtype(np.int64),
        )
    else:
        values = _checked(np.asarray(demand.values), labels, (0, 0, 0, 0), source)
        if copy and np.shares_memory(values, demand.values):
            values = values.copy()
    return xr.DataArray(
        values,
        dims=DIMS,
        coords=coords,
        name="patients",
        attrs={**demand.attrs, "units": "patients/month"},
    )


def _checked_block(
    values: np.ndarray, labels: dict, source: str, keep: bool, block_info: dict | None = None
) -> np.ndarray:
    offset = tuple(start for start, _ in block_info[0]["array-location"]) if block_info else None
    return _checked(values, labels, offset or (0,) * values.ndim, source, keep)


def _checked(
    values: np.ndarray, labels: dict, offset: tuple[int, ...], source: str, keep: bool = False
) -> np.ndarray:
    """Patients as int64 after the checks of the contract; ``offset``: the block's position.

    ``keep``: integer values are returned in their own dtype.
    """

    def where(mask: np.ndarray) -> str:
        idx = [int(i[0]) + o for i, o in zip(np.nonzero(mask), offset, strict=True)]
        shown = {
            d: i if labels[d] is None else labels[d][i] for d, i in zip(DIMS, idx, strict=True)
        }
        return "first at " + ", ".join(f"{k}={v}" for k, v in shown.items())

    if np.issubdtype(values.dtype, np.integer):  # finite and whole: only the range to check
        if values.min() >= 0 and values.max() <= MAX_PATIENTS:
            return values if keep else values.astype(np.int64, copy=False)
    finite = np.isfinite(values)
    if not finite.all():
        raise DemandError(f"{source}: patients must be finite; {where(~finite)}")
    if (values < 0).any():
        raise DemandError(f"{source}: patients must be >= 0; {where(values < 0)}")
    if (values > MAX_PATIENTS).any():
        raise DemandError(
            f"{source}: patients must be at most {MAX_PATIENTS:,} a month per program and stream "
            f"(a unit or typing error?); {where(values > MAX_PATIENTS)}"
        )
    if np.issubdtype(values.dtype, np.floating):
        fractional = values != np.round(values)
        if fractional.any():
            raise DemandError(f"{source}: patients must be whole numbers; {where(fractional)}")
    return values.astype(np.int64, copy=False)


def _months(values: np.ndarray | pd.Index, source: str) -> pd.DatetimeIndex:
    if isinstance(values, pd.DatetimeIndex) and values.tz is not None:
        raise DemandError(
            f"{source}: month {values[0]} has a timezone ({values.tz}); give plain dates, "
            "the first day of each month"
        )
    values = np.asarray(values)
    if values.dtype.kind in "biufc":
        shown = ", ".join(map(str, values[:3].tolist())) + (", ..." if len(values) > 3 else "")
        raise DemandError(
            f"{source}: month holds numbers ({shown}), not dates; give the first day of each "
            "month, e.g. 2027-01-01 (numbers are not read as days or months since an epoch)"
        )
    if values.dtype.kind == "M":
        months = pd.DatetimeIndex(values)
    else:
        months = pd.DatetimeIndex([_month(v, i, source) for i, v in enumerate(values.tolist())])
    if months.isna().any():
        i = int(np.flatnonzero(months.isna())[0])
        raise DemandError(f"{source}: month at position {i} is missing (NaT)")
    timed = months != months.normalize()
    if timed.any():
        i = int(np.flatnonzero(timed)[0])
        raise DemandError(
            f"{source}: month {months[i]} (position {i}) has a time of day; give dates only, "
            "the first day of each month"
        )
    outside = (months.year < YEARS[0]) | (months.year > YEARS[1])
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise DemandError(
            f"{source}: month {months[i].date()} (position {i}) is outside the years "
            f"{YEARS[0]}-{YEARS[1]}"
        )
    not_first = months.day != 1
    if not_first.any():
        raise DemandError(
            f"{source}: month {months[not_first][0].date()} is not the first day of a month"
        )
    back = np.flatnonzero(np.diff(months.asi8) <= 0)
    if back.size:  # refused, not sorted: months out of order usually mean mislabelled data
        i = int(back[0]) + 1
        raise DemandError(
            f"{source}: months must be in increasing order: position {i} "
            f"({months[i].date()}) comes after {months[i - 1].date()}"
        )
    if len(months) > 1:
        expected = pd.date_range(months[0], periods=len(months), freq="MS")
        if not months.equals(expected):
            bad = next(i for i in range(len(months)) if months[i] != expected[i])
            raise DemandError(
                f"{source}: months must be consecutive: position {bad} should be "
                f"{expected[bad].date()}, got {months[bad].date()}"
            )
    return months.as_unit("ns")


def _month(value: object, i: int, source: str) -> pd.Timestamp:
    """One month label of an array: a plain date, or text written YYYY-MM-01."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        text = value.strip()
        if _MONTH_TEXT.fullmatch(text):
            try:
                return pd.Timestamp(text)
            except ValueError:
                pass
        raise DemandError(f"{source}: month {value!r} (position {i}) is not {_MONTH_FORM}")
    if isinstance(value, datetime.date | np.datetime64):  # datetime and Timestamp too
        stamp = pd.Timestamp(value)
        if stamp.tzinfo is not None:
            raise DemandError(
                f"{source}: month {stamp} (position {i}) has a timezone; give plain dates, "
                "the first day of each month"
            )
        return stamp
    raise DemandError(
        f"{source}: month {value!r} (position {i}) is a {type(value).__name__}, not a date; "
        "give the first day of each month, e.g. 2027-01-01"
    )


def read_demand(path: str | Path, chunks: int | None = None) -> xr.DataArray:
    """Read demand draws from NetCDF (``.nc``) or a long CSV; errors name the file and row.

    ``chunks`` (NetCDF only): draws per chunk; the file stays open and the values are read
    lazily, a chunk at a time, as a dask array chunked along ``draw`` (for demand larger than
    memory; see :func:`capacity.requirements`). Values are checked, and converted to int64,
    when a chunk is read. ``xr.open_dataset(path, chunks={"draw": n})`` handed straight to
    ``requirements`` skips that conversion (a file of small integers stays small in memory;
    the values are summed in int64 all the same).
    """
    path = Path(path)
    if chunks is not None and (
        isinstance(chunks, bool) or not isinstance(chunks, int | np.integer) or chunks < 1
    ):
        raise DemandError(f"{path}: chunks must be a whole number of draws >= 1, got {chunks!r}")
    if not path.exists():
        raise DemandError(f"{path}: no such demand file")
    if path.is_dir():
        raise DemandError(f"{path}: is a folder; expected a .nc or .csv demand file")
    suffix = path.suffix.lower()
    if suffix in (".nc", ".nc4", ".netcdf"):
        engine = _netcdf_engine(path)
        try:
            if chunks is not None:  # left open: read a chunk at a time when computed
                ds = xr.open_dataset(path, engine=engine, chunks={"draw": int(chunks)})
            else:
                with xr.open_dataset(path, engine=engine) as ds:
                    ds = ds.load()
        except Exception as exc:
            raise DemandError(f"{path}: cannot read as NetCDF ({exc})") from None
        return as_demand(ds, str(path))
    if suffix == ".csv":
        if chunks is not None:
            raise DemandError(f"{path}: chunks needs a NetCDF file; a CSV is read whole")
        return _read_csv(path)
    raise DemandError(f"{path}: expected a .nc or .csv demand file")


def _netcdf_engine(path: Path) -> str:
    """``scipy`` for classic NetCDF-3, ``h5netcdf`` for NetCDF-4 (HDF5), by the file signature."""
    try:
        with path.open("rb") as f:
            head = f.read(2056)
    except OSError as exc:
        raise DemandError(f"{path}: cannot read as NetCDF ({exc.strerror or exc})") from None
    if not head:
        raise DemandError(f"{path}: cannot read as NetCDF: the file is empty")
    if head[:4] in (b"CDF\x01", b"CDF\x02"):
        return "scipy"
    if head[:4] == b"CDF\x05":
        raise DemandError(
            f"{path}: cannot read as NetCDF: 64-bit-data NetCDF-3 (CDF-5) is not supported; "
            "save it as NetCDF-4 or classic NetCDF-3"
        )
    if any(head[o : o + 8] == b"\x89HDF\r\n\x1a\n" for o in (0, 512, 1024, 2048)):
        return "h5netcdf"
    raise DemandError(
        f"{path}: cannot read as NetCDF: not a NetCDF file (it has neither the NetCDF-3 nor the "
        "NetCDF-4/HDF5 signature)"
    )


def _read_csv(path: Path) -> xr.DataArray:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DemandError(f"{path}: cannot read as CSV ({exc})") from None
    missing = [c for c in CSV_COLUMNS if c not in frame.columns]
    if missing:
        raise DemandError(
            f"{path}: missing column(s) {missing}; expected columns {','.join(CSV_COLUMNS)}"
        )
    extra = [c for c in frame.columns if c not in CSV_COLUMNS]
    if extra:
        raise DemandError(f"{path}: unexpected column(s) {extra}; expected {','.join(CSV_COLUMNS)}")
    if frame.empty:
        raise DemandError(f"{path}: no rows")

    def fail(mask: np.ndarray, what: str) -> None:
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            row = frame.iloc[i].to_dict()
            raise DemandError(f"{path}: line {i + 2}: {what}; row is {row}")

    draw = pd.to_numeric(frame["draw"], errors="coerce").to_numpy(float)
    fail(~np.isfinite(draw) | (draw < 0) | (draw != np.round(draw)), "draw must be an integer >= 0")
    fail(draw >= len(frame), "draw numbers must run 0..N-1; this one exceeds the number of rows")
    text = frame["month"].str.strip()
    fail(~text.str.fullmatch(_MONTH_TEXT.pattern).to_numpy(bool), f"month must be {_MONTH_FORM}")
    month = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
    outside = (month.dt.year < YEARS[0]) | (month.dt.year > YEARS[1])
    fail(
        (month.isna() | outside).to_numpy(bool),
        f"month must be a date such as 2027-01-01 in the years {YEARS[0]}-{YEARS[1]}",
    )
    fail((month.dt.day != 1).to_numpy(), "month must be the first day of a month")
    fail((frame["program"].str.strip() == "").to_numpy(), "program is empty")
    fail(~frame["stream"].isin(STREAMS).to_numpy(), f"stream must be one of {list(STREAMS)}")
    patients = pd.to_numeric(frame["patients"], errors="coerce").to_numpy()
    fail(~np.isfinite(patients), "patients must be a number")
    fail(patients < 0, "patients must be >= 0")
    fail(patients != np.round(patients), "patients must be a whole number")
    fail(
        patients > MAX_PATIENTS,
        f"patients must be at most {MAX_PATIENTS:,} a month (a unit or typing error?)",
    )

    keys = pd.DataFrame(
        {
            "draw": draw.astype(np.int64),
            "month": month,
            "program": frame["program"],
            "stream": frame["stream"],
        }
    )
    fail(keys.duplicated().to_numpy(), "duplicate (draw, month, program, stream)")
    # rows may come in any grouping, but each series' months in increasing order: a month out
    # of order is a sign of a mixed-up file, so it is refused rather than sorted
    previous = keys.groupby(["draw", "program", "stream"], sort=False)["month"].shift()
    back = (keys["month"] <= previous).to_numpy()
    if back.any():
        i = int(np.flatnonzero(back)[0])
        fail(
            back,
            f"month {keys['month'].iloc[i].date()} comes after {previous.iloc[i].date()} in the "
            "rows of this draw, program and stream; give each series' months in increasing order",
        )

    codes, levels = [], []
    for col in DIMS:
        c, u = pd.factorize(keys[col], sort=True)
        codes.append(c)
        levels.append(u)
    shape = tuple(len(u) for u in levels)
    n_cells = int(np.prod(shape))
    if n_cells != len(frame):
        filled = np.zeros(n_cells, dtype=bool)
        filled[np.ravel_multi_index(codes, shape)] = True
        gap = np.unravel_index(int(np.flatnonzero(~filled)[0]), shape)
        example = ", ".join(f"{d}={_label(levels[k][gap[k]])}" for k, d in enumerate(DIMS))
        raise DemandError(
            f"{path}: {n_cells - len(frame)} (draw, month, program, stream) combinations have no "
            f"row (every draw needs every month, program and stream), e.g. {example}"
        )
    values = np.zeros(shape, dtype=np.int64)
    values[tuple(codes)] = patients.astype(np.int64)
    draws = np.asarray(levels[0])
    if not np.array_equal(draws, np.arange(len(draws))):
        raise DemandError(f"{path}: draws must be numbered 0..N-1, got {draws[:5].tolist()}...")
    da = xr.DataArray(
        values,
        dims=DIMS,
        coords={
            "draw": draws,
            "month": levels[1],
            "program": list(levels[2]),
            "stream": list(levels[3]),
        },
        name="patients",
    )
    return as_demand(da, str(path))


def _label(value: object) -> str:
    return str(pd.Timestamp(value).date()) if isinstance(value, pd.Timestamp) else str(value)


def demand_frame(demand: xr.DataArray) -> pd.DataFrame:
    """The long table ``draw,month,program,stream,patients`` (one row per cell)."""
    demand = as_demand(demand)
    frame = demand.to_dataframe().reset_index()[CSV_COLUMNS]
    frame["month"] = frame["month"].dt.strftime("%Y-%m-%d")
    return frame


def write_demand(demand: xr.DataArray, path: str | Path) -> Path:
    """Write demand draws as NetCDF (``.nc``) or long CSV (``.csv``)."""
    path = Path(path)
    demand = as_demand(demand)
    if path.suffix.lower() == ".csv":
        demand_frame(demand).to_csv(path, index=False)
    elif path.suffix.lower() in (".nc", ".nc4"):
        attrs = {k: v for k, v in demand.attrs.items() if isinstance(v, str | int | float)}
        out = demand.copy()
        out.attrs = attrs
        out.to_netcdf(path, engine="h5netcdf")
    else:
        raise DemandError(f"{path}: expected a .nc or .csv file name")
    return path
