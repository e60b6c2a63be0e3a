"""``write_run``'s parts drawn or computed for speed still get it right: the report charts
(drawn once with a fixed layout, not ``bbox_inches="tight"``) are whole and deterministic, the
vectorised finance and decision tables agree with the draws, and draws.nc holds exact
values."""

from __future__ import annotations

import base64
import io
import re
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pmcap import export, report
from pmcap.scenario import example_scenario_path, load_scenario

DRAWS = 50


@pytest.fixture(scope="module")
def result(pmcap_cache):
    from pmcap.run import run_scenario

    mp = pytest.MonkeyPatch()
    mp.setenv("PMCAP_CACHE", str(pmcap_cache))
    try:
        sc = load_scenario(example_scenario_path()).apply(draws=DRAWS, seed=11)
        return run_scenario(sc, service_level=False)
    finally:
        mp.undo()


def _pixels(img_tag: str) -> np.ndarray:
    data = re.search(r'src="data:image/png;base64,([^"]+)"', img_tag).group(1)
    return plt.imread(io.BytesIO(base64.b64decode(data)), format="png")


def _ink(pixels: np.ndarray) -> np.ndarray:
    """True where a pixel is not (near) white."""
    return (pixels[..., :3] < 0.9).any(axis=-1)


def test_report_charts_are_drawn_whole_inside_the_canvas(result):
    # every chart has its title, tick labels and some ink inside the image and nothing at
    # its edges: a margin too small would clip them, a chart drawn off the canvas is blank
    figures = report.report_figures(result)
    assert set(figures) == {"demand", "approval", "capacity", "shortfall"}
    for name, tag in figures.items():
        ink = _ink(_pixels(tag))
        height, width = ink.shape
        assert width >= 500 and height >= 200, name
        assert 0.02 < ink.mean() < 0.6, name  # lines, bands and text, not blank or solid
        edge = np.r_[ink[0], ink[-1], ink[:, 0], ink[:, -1]]
        assert not edge.any(), f"{name}: something is cut off at the edge of the image"
        assert ink[: height // 10].any(), f"{name}: no title at the top"
        assert ink[:, : width // 20].any(), f"{name}: no y tick labels at the left"
        assert ink[-height // 10 :].any(), f"{name}: no x tick labels at the bottom"


def test_report_charts_are_deterministic(result):
    assert report.report_figures(result) == report.report_figures(result)


def test_report_charts_ignore_the_callers_matplotlib_style(result):
    # the charts are the same under a caller's larger fonts or theme (the fixed layouts assume
    # matplotlib's default 10 pt text), and the caller's settings are left as they were
    from pmcap.report import report_figures

    plain = report_figures(result)
    with matplotlib.rc_context({"font.size": 18, "lines.linewidth": 4, "axes.grid": True}):
        themed = report_figures(result)
        assert matplotlib.rcParams["font.size"] == 18
    assert themed == plain


def test_fixed_layout_makes_room_for_long_tick_labels():
    # y values in the tens of thousands (a large facility) need a wider left margin
    months = pd.date_range("2027-01-01", periods=120, freq="MS")
    x = mdates.date2num(months.to_numpy())
    fig, axes = plt.subplots(2, 2, figsize=(10.6, 5.25), sharex=True)
    for ax in axes.ravel():
        ax.plot(x, np.linspace(-1500, 250_000, len(x)), label="P50")
        ax.set_title("Operators (FTE)", y=1.0)
    report.date_axis(axes[0, 0], x, report.fixed_layout(fig, axes.ravel(), 2, 2))
    ink = _ink(_pixels(report.inline_png(fig, tight=False)))
    assert not np.r_[ink[:, 0], ink[0], ink[-1], ink[:, -1]].any()
    assert ink[:, :40].any()  # the labels are there, inside the image


@pytest.mark.parametrize(
    ("periods", "width", "fmt", "most"),
    [(120, 3.0, "%Y", 7), (120, 6.0, "%Y", 13), (20, 4.6, "%Y-%m", 8)],
)
def test_date_ticks_fit_the_axis(periods, width, fmt, most):
    # no more tick labels than fit the panel's width (a label on every year of a 3-inch
    # panel would overlap)
    months = pd.date_range("2026-12-01", periods=periods, freq="MS")
    x = mdates.date2num(months.to_numpy())
    fig, ax = plt.subplots()
    ax.plot(x, np.arange(periods))
    report.date_axis(ax, x, width)
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.xaxis.get_major_locator()() if lo <= t <= hi]
    labels = ax.xaxis.get_major_formatter().format_ticks(ticks)
    plt.close(fig)
    assert 2 <= len(ticks) <= most
    assert list(labels) == [mdates.num2date(t).strftime(fmt) for t in ticks]


def test_finance_table_equals_a_per_program_reference(result):
    # the annual rows group months into years by slices of the month axis: a wrong slice,
    # axis or program order (the facility total last) changes the numbers
    req, total, demand = result.requirements, result.total, result.world.demand
    qs = result.scenario.run.quantiles
    table = export.finance_table(req, total, demand, qs)
    months = pd.DatetimeIndex(req["month"].values)
    programs = [*map(str, req["program"].values), "total"]
    for metric, flow, method in (
        ("lots", True, "inverted_cdf"),
        ("suites", False, "linear"),
        ("qc_fte", False, "linear"),
    ):
        unit = {"lots": "lots", "suites": "suites", "qc_fte": "FTE"}[metric]
        label = f"{unit} per period" if flow else f"{unit}, average"
        for program in programs:
            source = total[metric] if program == "total" else req[metric].sel(program=program)
            values = source.transpose("draw", "month").values.astype(float)
            for year in sorted(set(months.year)):
                in_year = values[:, months.year == year]
                per_draw = in_year.sum(axis=1) if flow else in_year.mean(axis=1)
                row = table.query(
                    "granularity == 'year' and program == @program and period == @year_s",
                    local_dict={"program": program, "year_s": str(year)},
                )
                assert len(row) == 1
                assert row["months_in_period"].item() == in_year.shape[1]
                assert row[f"{metric}_mean [{label}]"].item() == pytest.approx(
                    per_draw.mean(), rel=1e-12, abs=1e-12
                )
                expected = np.quantile(per_draw, qs, method=method)
                got = [row[f"{metric}_{export.quantile_label(q)} [{label}]"].item() for q in qs]
                np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
            monthly = table[(table["granularity"] == "month") & (table["program"] == program)]
            np.testing.assert_array_equal(
                monthly[f"{metric}_{export.quantile_label(qs[-1])} [{label}]"].to_numpy(),
                np.quantile(values, qs[-1], axis=0, method=method),
            )


def test_decision_table_equals_a_per_year_reference(result):
    table = report.decision_table(result)
    months = pd.DatetimeIndex(result.total["month"].values)
    sf = result.shortfall
    assert len(table) == len(set(months.year)) * len(report.RESOURCES)
    for row in table.itertuples():
        in_year = months.year == row.year
        peak = result.total[row.resource].values[:, in_year].max(axis=1)
        assert (row.p50, row.plan) == tuple(np.quantile(peak, [0.5, 0.9]))  # target 0.1
        risk = sf[(sf["metric"] == row.resource) & (sf["month"].dt.year == row.year)]
        assert row.max_shortfall_probability == risk["probability"].max()
        assert row.months == in_year.sum()


def test_draws_nc_round_trips_the_exact_values(result, tmp_path):
    path = tmp_path / "draws.nc"
    export.write_draws(path, result.world, result.requirements, result.total)
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        ds = ds.load()
    keep = [m for m in export.REPORTED if m in result.requirements]
    expected = {
        "patients": result.world.demand.astype(np.int32),
        **{m: result.requirements[m].astype(np.float32) for m in keep},
        **{f"total_{m}": result.total[m].astype(np.float32) for m in keep},
        **{f"event_{e}": result.world.events[e] for e in result.world.events.data_vars},
        **{f"input:{k}": v for k, v in result.world.inputs.data_vars.items()},
    }
    assert list(ds.data_vars) == list(expected)
    for name, want in expected.items():
        got = ds[name]
        assert got.dtype == want.dtype and got.dims == want.dims, name
        a, b = got.values, want.values
        if a.dtype.kind == "M":
            a, b = a.view("i8"), b.view("i8")
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_decision_table_shows_the_quantile_the_plans_size_to(result):
    # the column beside the median is the quantile the plans size to and the shading
    # compares with: P95 with a 5% shortfall target
    import dataclasses
    import re

    fac = result.scenario.facility.model_copy(update={"shortfall_target": 0.05})
    strict = dataclasses.replace(
        result, scenario=result.scenario.model_copy(update={"facility": fac})
    )
    table = report.decision_table(strict)
    months = pd.DatetimeIndex(result.total["month"].values)
    row = table[table["resource"] == "suites"].iloc[0]
    peak = result.total["suites"].values[:, months.year == row.year].max(axis=1)
    assert row.plan == np.quantile(peak, 0.95) != np.quantile(peak, 0.9)
    html = report.render_report(strict, "", "test", "", None)
    head = re.search(r'<table id="decisions">(.*?)</thead>', html, re.S).group(1)
    assert head.count("<th>P95</th>") == len(report.RESOURCES) and "P90" not in head
    first = re.search(
        r'<tbody>\s*<tr><td class="l">[^<]*</td><td>[^<]*</td><td[^>]*>([^<]*)<', html
    )
    assert first.group(1) == f"{row.plan:.1f}"
    # the default target (10%) keeps the P90 column
    assert "<th>P90</th>" in report.render_report(result, "", "test", "", None)


def test_a_sweep_compares_p90_whatever_the_shortfall_target(result):
    import dataclasses

    from pmcap.sweep import summarize

    fac = result.scenario.facility.model_copy(update={"shortfall_target": 0.05})
    strict = dataclasses.replace(
        result, scenario=result.scenario.model_copy(update={"facility": fac})
    )
    months = pd.DatetimeIndex(result.total["month"].values)
    for y in summarize(strict)["years"]:
        assert set(y) == {*report.decision_table(result).columns, "p90"} - {"plan"}
        peak = result.total[y["resource"]].values[:, months.year == y["year"]].max(axis=1)
        assert y["p90"] == round(np.quantile(peak, 0.9), 6)


def test_draws_nc_is_what_to_netcdf_writes(result, tmp_path):
    # write_draws skips xarray's to_netcdf (whose dask-scheduler look-up imports dask): the
    # file must read back identical to to_netcdf's, with the same compression per variable
    import h5py

    ours, theirs = tmp_path / "ours.nc", tmp_path / "theirs.nc"
    export.write_draws(ours, result.world, result.requirements, result.total)
    with xr.open_dataset(ours, engine="h5netcdf") as ds:
        ds = ds.load()
        encoding = {
            name: {"zlib": True, "complevel": 1, "shuffle": True}
            for name in ds.data_vars
            if not np.issubdtype(ds[name].dtype, np.datetime64)
        }
        ds.to_netcdf(theirs, engine="h5netcdf", encoding=encoding)
    with xr.open_dataset(ours, engine="h5netcdf") as a, xr.open_dataset(theirs) as b:
        xr.testing.assert_identical(a.load(), b.load())
    with h5py.File(ours) as a, h5py.File(theirs) as b:
        assert sorted(a) == sorted(b)
        for name in a:
            got, want = a[name], b[name]
            assert (got.dtype, got.shape, got.compression, got.compression_opts, got.shuffle) == (
                want.dtype,
                want.shape,
                want.compression,
                want.compression_opts,
                want.shuffle,
            ), name
        assert all(a[name].compression == "gzip" for name in encoding)


def test_draws_nc_compression_settings_change_the_filters_not_the_values(result, tmp_path):
    # write_draws' complevel and shuffle reach HDF5's filters (complevel 0: no deflate) and
    # every setting reads back the same values; the default is complevel 1 with shuffle
    import h5py

    read = {}
    for complevel, shuffle in [(1, True), (0, True), (4, False)]:
        path = tmp_path / f"{complevel}-{shuffle}.nc"
        export.write_draws(
            path, result.world, result.requirements, result.total,
            complevel=complevel, shuffle=shuffle,
        )  # fmt: skip
        with h5py.File(path) as f:
            patients = f["patients"]
            want = "gzip" if complevel else None
            assert (patients.compression, patients.shuffle) == (want, shuffle)
            if complevel:
                assert patients.compression_opts == complevel
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            read[(complevel, shuffle)] = ds.load()
        read[(complevel, shuffle, "size")] = path.stat().st_size
    xr.testing.assert_identical(read[(1, True)], read[(0, True)])
    xr.testing.assert_identical(read[(1, True)], read[(4, False)])
    assert read[(0, True, "size")] > read[(1, True, "size")]  # deflate does shrink it
    default = tmp_path / "default.nc"
    export.write_draws(default, result.world, result.requirements, result.total)
    with h5py.File(default) as f:
        assert (f["patients"].compression_opts, f["patients"].shuffle) == (1, True)


def test_files_written_in_children_are_the_same_files(result, tmp_path, monkeypatch):
    from pmcap import forked
    from pmcap.runfolder import write_run

    started = []

    class Recorded(forked.InChild):
        def __init__(self, fn, *args, **kw):
            super().__init__(fn, *args, **kw)
            started.append(self)

    monkeypatch.setattr(forked, "InChild", Recorded)
    files, books = {}, {}
    for child in (False, True):
        out = tmp_path / str(child)
        out.mkdir()
        names = write_run(out, result, xlsx=True, version="t", t0=time.perf_counter(),
                          in_child=child)  # fmt: skip
        # a workbook's bytes hold the time it was saved: its sheets are compared instead
        books[child] = pd.read_excel(out / "finance.xlsx", sheet_name=None)
        keep = set(names) - {"manifest.json", "finance.xlsx"}
        files[child] = {n: (out / n).read_bytes() for n in keep}
    # two children (draws.nc and the charts; the workbook), each result from the child itself
    assert len(started) == 2 and all(c.from_child for c in started)
    assert {"draws.nc", "report.html", "finance.csv"} <= set(files[True])
    assert files[True] == files[False]
    assert books[True].keys() == books[False].keys() == {"notes", "annual", "monthly",
                                                        "shortfall", "plan"}  # fmt: skip
    for sheet, frame in books[True].items():
        pd.testing.assert_frame_equal(frame, books[False][sheet])
