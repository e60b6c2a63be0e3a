"""Writing the tables: CSV cells (6 significant digits, rounding noise as 0), the draws as
NetCDF, and an Excel workbook.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from pmcap.export.tables import REPORTED


def csv_number(value: float) -> str:
    """A float as a CSV cell: 6 significant digits, but from a million up every digit of the
    whole number (``%.6g`` wrote a $123,456,789 plan cost as ``1.23457e+08``)."""
    return f"{value:.0f}" if abs(value) >= 999_999.5 else f"{value:.6g}"


# |x| below this is floating-point rounding of 0 (a mean of FTEs 9.7e-17), written as 0: no
# quantity pmcap writes (probabilities >= 1/draws, FTE, suites, hours, costs) is that small
ZERO_TOLERANCE = 1e-9


def clean_zeros(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose float cells within :data:`ZERO_TOLERANCE` of 0 (and ``-0.0``)
    are 0, so no file shows ``-1.47876e-18`` for nothing. NaN stays NaN."""
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_float_dtype(out[col]):
            values = out[col].to_numpy(float, copy=True)
            values[np.abs(values) < ZERO_TOLERANCE] = 0.0
            out[col] = values
    return out


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    frame = clean_zeros(frame)
    for col in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[col]):
            frame[col] = frame[col].dt.strftime("%Y-%m-%d")
    frame.to_csv(path, index=False, float_format=csv_number, lineterminator="\n")


def csv_text(frame: pd.DataFrame) -> str:
    """``frame`` as CSV text as the sweep and sensitivity tables write it (pandas' full
    precision), with values within rounding of 0 written as 0 (:func:`clean_zeros`)."""
    return clean_zeros(frame).to_csv(index=False, lineterminator="\n")


def write_draws(
    path: Path,
    world,
    req: xr.Dataset,
    total: xr.Dataset,
    *,
    complevel: int = 1,
    shuffle: bool = True,
) -> None:
    """Every draw: demand, requirements by program and total, events and sampled inputs.

    Numeric variables are deflated (zlib) at ``complevel`` (0: stored uncompressed) after
    HDF5's byte ``shuffle`` filter; ``benchmarks/bench_write_overlap.py`` prints the file
    size and time of each setting."""
    keep = [m for m in REPORTED if m in req]
    ds = xr.Dataset(
        {
            "patients": world.demand.astype(np.int32),
            **{f"{m}": req[m].astype(np.float32) for m in keep},
            **{f"total_{m}": total[m].astype(np.float32) for m in keep},
            **{f"event_{e}": world.events[e] for e in world.events.data_vars},
            **{f"input:{k}": v for k, v in world.inputs.data_vars.items()},
        }
    )
    for name in ds.data_vars:
        ds[name].attrs = {
            k: v for k, v in ds[name].attrs.items() if isinstance(v, str | int | float)
        }
    ds.attrs = {"seed": int(world.seed), "description": "pmcap run: all draws"}
    encoding = {
        name: (
            {"zlib": True, "complevel": complevel, "shuffle": shuffle}
            if complevel
            else {"zlib": False, "shuffle": shuffle}
        )
        for name in ds.data_vars
        if not np.issubdtype(ds[name].dtype, np.datetime64)
    }
    # what ds.to_netcdf(path, engine="h5netcdf", encoding=encoding) writes, minus its look-ups
    # of an active dask scheduler (to pick a file lock and whether to close the file between
    # writes), which import dask and distributed (0.4 s CPU) for a dataset with no dask
    # arrays. One writer of a new file: the lock that serialises HDF5 calls is all it needs.
    from xarray.backends import H5NetCDFStore
    from xarray.backends.locks import HDF5_LOCK

    store = H5NetCDFStore.open(str(path), mode="w", lock=HDF5_LOCK)
    try:
        ds.dump_to_store(store, encoding=encoding)
    finally:
        store.close()


def _as_csv_precision(values: np.ndarray) -> np.ndarray:
    """Floats rounded as :func:`csv_number` writes them (6 significant digits, whole numbers
    from a million up), so a sheet shows what the CSV holds."""
    out = values.astype(float, copy=True)
    ok = np.isfinite(out)
    out[ok] = [float(csv_number(v)) for v in out[ok]]
    return out


def write_xlsx(
    path: Path, sheets: dict[str, pd.DataFrame], notes: Sequence[tuple[str, str]] = ()
) -> None:
    """An Excel workbook: a ``notes`` sheet first (``notes``: (item, text) rows), then one
    sheet per table with a frozen, filtered header row, readable column widths, dates as
    dates (``period`` of a monthly finance sheet as a month, of an annual one as a year) and
    numbers as in the CSV files (6 significant digits, 0 for rounding noise)."""
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        if notes:
            frame = pd.DataFrame(list(notes), columns=["item", "note"])
            frame.to_excel(writer, sheet_name="notes", index=False)
            ws = writer.sheets["notes"]
            ws.column_dimensions["A"].width = 24
            ws.column_dimensions["B"].width = 110
            for row in ws.iter_rows(min_row=2):
                for cell in row:
                    cell.alignment = Alignment(wrap_text=True, vertical="top")
            for cell in ws[1]:
                cell.font = Font(bold=True)
        for name, frame in sheets.items():
            frame = clean_zeros(frame)
            formats: dict[str, str] = {}
            for col in frame.columns:
                if pd.api.types.is_datetime64_any_dtype(frame[col]):
                    formats[col] = "yyyy-mm-dd"
                elif pd.api.types.is_float_dtype(frame[col]):
                    frame[col] = _as_csv_precision(frame[col].to_numpy())
            if "period" in frame and "granularity" in frame and len(frame):
                if (frame["granularity"] == "month").all():
                    frame["period"] = pd.to_datetime(frame["period"], format="%Y-%m")
                    formats["period"] = "yyyy-mm"
                elif (frame["granularity"] == "year").all():
                    frame["period"] = frame["period"].astype(int)
            sheet = name[:31]
            frame.to_excel(writer, sheet_name=sheet, index=False)
            ws = writer.sheets[sheet]
            ws.freeze_panes = "A2"
            ws.auto_filter.ref = ws.dimensions
            for cell in ws[1]:
                cell.alignment = Alignment(wrap_text=True, vertical="top")
            for j, col in enumerate(frame.columns, start=1):
                letter = get_column_letter(j)
                if col in formats:
                    for (cell,) in ws.iter_rows(min_row=2, min_col=j, max_col=j):
                        cell.number_format = formats[col]
                # the longest value, or the header's longest word (the header wraps)
                values = frame[col].head(2000)
                longest = max(
                    [len(w) for w in str(col).split()]
                    + [10 if col in formats else len(str(v)) for v in values]
                )
                ws.column_dimensions[letter].width = min(max(longest + 2, 9), 40)
            ws.row_dimensions[1].height = 45
