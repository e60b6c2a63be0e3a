"""The QC laboratory as queues: when each lot's release panel is done, per draw.

Model (one pass after manufacturing, every draw in parallel; the compiled kernel is in
``capacity._qclab``):

* every assay of a lot's panel (the process spec's ``[[qc]]``) runs ``tests_per_lot`` tests;
  a test needs ``hands_on_hours`` of one analyst and ``instrument_hours`` on one instrument of
  its type, then waits ``turnaround_days`` (incubation, data review) as a pure delay that
  holds no analyst and no instrument;
* **the rule for two resources**: tests are served first come, first served in order of
  arrival; a test takes the analyst who is free first, then, holding that analyst, the
  instrument of its type that is free first, and starts when both are free; the analyst is
  released after the hands-on hours and the instrument after the instrument hours (both
  counted from the start);
* analysts work a roster: ``hours_per_day`` from ``shift_start_hour`` on the first
  ``days_per_week`` days of every 7-day week (day 0 is the first day). Work (hands-on and
  instrument time) advances only in roster hours, so work that does not finish in a shift
  resumes at the next one and a lot ready at night waits for the morning. With
  ``hours_per_year`` the productive year is spread evenly as a shorter day;
* out-of-specification or invalid results repeat the test: each run fails with the draw's
  ``retest_rate``, known when its result is (after the turnaround), and the repeat queues
  again; the number of runs is geometric, capped at ``max_runs`` (the last run is then
  released, an assumption that matters only for retest rates near 1);
* stability and environmental-monitoring work arrives every month as blocks of
  ``monitoring_block_hours`` analyst hours (and instrument-only blocks per instrument type),
  spread evenly over the month, and queues with the lots' tests;
* a lot is released when the last result of its panel is.

Causality: a draw's jobs are served in order of arrival (a lot's tests when it leaves
manufacture, a repeat when the failed result is known), and each takes the resources as they
are at that moment, so no assignment uses anything known later. Each random number belongs
to one lot, assay, test and run, so labs of different sizes see the same hands-on times and
the same retests (common random numbers): no lot is released earlier with finite resources
than with unlimited ones. :func:`size_lab`'s bisection assumes more units of a resource never
make more lots late, which first-come-first-served service makes likely but this module does
not prove.

Hands-on time per test is the draw's value of ``hands_on_hours`` (``hands_on="fixed"``) or
exponential with that mean (``"exponential"``); instrument time is the draw's value. Per-draw
values of the assay parameters come from :meth:`capacity.ProcessSpec.sample` (one value per
draw, as everywhere in pmcap). Defaults: sterility 14 days (USP <71>, compendial) as in the
process templates, or :data:`RAPID_STERILITY_DAYS` with a rapid method
(``turnaround_days={"sterility": 7}``); roster, monitoring block and run cap are assumptions
(``data/SOURCES.md``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from capacity.errors import InputError
from capacity.process import ProcessSpec, load_process

__all__ = [
    "ANALYSTS",
    "COMPENDIAL_STERILITY_DAYS",
    "RAPID_STERILITY_DAYS",
    "QCLab",
    "QCLabResult",
    "release_days",
    "qc_lab_bands",
    "qc_lab_dataset",
    "size_lab",
]

ANALYSTS = "analysts"  # the name of the analyst resource in results
COMPENDIAL_STERILITY_DAYS = 14.0  # USP <71> / Ph. Eur. 2.6.1 incubation
RAPID_STERILITY_DAYS = 7.0  # assumption: a rapid (automated growth-based) method
DAYS_PER_MONTH = 365.25 / 12  # default month length when no month edges are given
WEEKS_PER_YEAR = 365.25 / 7


def _whole(value: Any, what: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        if isinstance(value, float) and value == int(value):
            value = int(value)
        else:
            raise InputError(f"{what}: expected a whole number >= {low}, got {value!r}")
    if value < low:
        raise InputError(f"{what}: expected a whole number >= {low}, got {value}")
    return int(value)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise InputError(f"{what}: expected a number, got {value!r}")
    if not np.isfinite(value):
        raise InputError(f"{what}: expected a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class QCLab:
    """A QC laboratory: the release panels it runs, its instruments and its analysts' roster.

    Parameters
    ----------
    processes
        The processes whose lots it tests (specs or template names), in the order of the
        ``lot_process`` indices given to :func:`release_days`; each brings its ``[[qc]]``
        panel.
    analysts
        Qualified QC analysts (>= 1).
    instruments
        Instruments of each type, e.g. ``{"qpcr": 2, "flow-cytometer": 1}`` (each >= 1);
        every instrument an assay names must be here.
    hours_per_day, days_per_week, shift_start_hour
        The analysts' roster: ``hours_per_day`` (0 to 24) from ``shift_start_hour`` on the
        first ``days_per_week`` (1 to 7) days of each week. Default 8 h from 08:00, 5 days
        (**assumption**).
    hands_on
        ``"fixed"`` (each test takes the draw's hands-on hours) or ``"exponential"``.
    turnaround_days
        Turnaround per assay name replacing the process spec's, e.g. ``{"sterility": 7}``
        for a rapid sterility method.
    monitoring_hours_per_month
        Analyst hours of stability and environmental-monitoring work a month. ``None``: the
        sum over the processes of each draw's ``qc_fixed_hours_per_month`` (add suites' EM
        with ``release_days(monitoring_hours=...)``).
    monitoring_instrument_hours_per_month
        Instrument hours a month of that work per instrument type (instrument-only blocks).
    monitoring_block_hours
        Size of one block of monitoring work (default 4 h, **assumption**).
    max_runs
        Most runs of a test (first run and retests; default 10).
    hours_per_year
        Productive hours an analyst works a year, instead of every roster hour: spread
        evenly over the roster's days as a shorter day from the shift's start (leave,
        training and absence, an **assumption** about how they fall). ``None``: every roster
        hour.

    Examples
    --------
    >>> lab = QCLab(["car-t-autologous-manual"], analysts=4, instruments={"bact-alert": 1,
    ...     "qpcr": 1, "endosafe-pts": 1, "flow-cytometer": 1, "cell-counter": 1,
    ...     "plate-reader": 1, "ddpcr": 1})
    >>> lab.resources[:3]
    ('analysts', 'bact-alert', 'qpcr')
    """

    processes: Sequence[ProcessSpec | str]
    analysts: int
    instruments: Mapping[str, int]
    hours_per_day: float = 8.0
    days_per_week: int = 5
    shift_start_hour: float = 8.0
    hands_on: Literal["fixed", "exponential"] = "fixed"
    turnaround_days: Mapping[str, float] = field(default_factory=dict)
    monitoring_hours_per_month: float | None = None
    monitoring_instrument_hours_per_month: Mapping[str, float] = field(default_factory=dict)
    monitoring_block_hours: float = 4.0
    max_runs: int = 10
    hours_per_year: float | None = None

    def __post_init__(self) -> None:
        where = "qc_lab"
        if isinstance(self.processes, str | ProcessSpec):
            raise InputError(f"{where}.processes: expected a list of processes")
        specs = tuple(load_process(p) for p in self.processes)
        if not specs:
            raise InputError(f"{where}.processes: give at least one process")
        object.__setattr__(self, "processes", specs)
        object.__setattr__(self, "analysts", _whole(self.analysts, f"{where}.analysts", 1))
        if not isinstance(self.instruments, Mapping):
            raise InputError(f"{where}.instruments: expected a table of type = count")
        counts = {}
        for name, count in self.instruments.items():
            counts[str(name)] = _whole(count, f"{where}.instruments.{name}", 1)
        object.__setattr__(self, "instruments", counts)
        hours = _number(self.hours_per_day, f"{where}.hours_per_day")
        if not 0 < hours <= 24:
            raise InputError(f"{where}.hours_per_day: must be > 0 and <= 24 hours, got {hours:g}")
        start = _number(self.shift_start_hour, f"{where}.shift_start_hour")
        if not 0 <= start < 24 or start + hours > 24:
            raise InputError(
                f"{where}.shift_start_hour: the shift must start at >= 0 h and end by 24 h, "
                f"got a start at {start:g} h and {hours:g} h a day"
            )
        object.__setattr__(self, "hours_per_day", hours)
        object.__setattr__(self, "shift_start_hour", start)
        days = _whole(self.days_per_week, f"{where}.days_per_week", 1)
        if days > 7:
            raise InputError(f"{where}.days_per_week: must be at most 7, got {days}")
        object.__setattr__(self, "days_per_week", days)
        if self.hands_on not in ("fixed", "exponential"):
            raise InputError(
                f"{where}.hands_on: expected 'fixed' or 'exponential', got {self.hands_on!r}"
            )
        assays = {a.assay for spec in specs for a in spec.qc}
        turnaround = {}
        for name, days_ in dict(self.turnaround_days).items():
            if name not in assays:
                raise InputError(
                    f"{where}.turnaround_days: no assay named {name!r} in the processes' panels "
                    f"(assays: {', '.join(sorted(assays))})"
                )
            value = _number(days_, f"{where}.turnaround_days.{name}")
            if value < 0:
                raise InputError(f"{where}.turnaround_days.{name}: must be >= 0, got {value:g}")
            turnaround[name] = value
        object.__setattr__(self, "turnaround_days", turnaround)
        for spec in specs:
            for assay in spec.qc:
                if assay.instrument is not None and assay.instrument not in counts:
                    raise InputError(
                        f"{where}.instruments: process {spec.name!r}, assay {assay.assay!r} "
                        f"needs instrument {assay.instrument!r}, which the QC lab lacks "
                        f"(lab has: {', '.join(sorted(counts)) or 'none'})"
                    )
                if assay.tests_per_lot.kind != "fixed" or assay.tests_per_lot.args[0] != int(
                    assay.tests_per_lot.args[0]
                ):
                    raise InputError(
                        f"{where}: process {spec.name!r}, assay {assay.assay!r}: the QC lab "
                        f"needs a whole number of tests_per_lot, got {assay.tests_per_lot}"
                    )
        if self.monitoring_hours_per_month is not None:
            value = _number(self.monitoring_hours_per_month, f"{where}.monitoring_hours_per_month")
            if value < 0:
                raise InputError(f"{where}.monitoring_hours_per_month: must be >= 0, got {value:g}")
            object.__setattr__(self, "monitoring_hours_per_month", value)
        monitoring = {}
        for name, value in dict(self.monitoring_instrument_hours_per_month).items():
            what = f"{where}.monitoring_instrument_hours_per_month.{name}"
            if name not in counts:
                raise InputError(f"{what}: the QC lab has no instrument {name!r}")
            value = _number(value, what)
            if value < 0:
                raise InputError(f"{what}: must be >= 0, got {value:g}")
            monitoring[name] = value
        object.__setattr__(self, "monitoring_instrument_hours_per_month", monitoring)
        block = _number(self.monitoring_block_hours, f"{where}.monitoring_block_hours")
        if not block > 0:
            raise InputError(f"{where}.monitoring_block_hours: must be > 0, got {block:g}")
        object.__setattr__(self, "monitoring_block_hours", block)
        object.__setattr__(self, "max_runs", _whole(self.max_runs, f"{where}.max_runs", 1))
        if self.hours_per_year is not None:
            year = _number(self.hours_per_year, f"{where}.hours_per_year")
            most = hours * days * WEEKS_PER_YEAR
            if not 0 < year <= most:
                raise InputError(
                    f"{where}.hours_per_year: must be > 0 and at most the roster's "
                    f"{most:.0f} hours a year ({hours:g} h x {days} days x 52.18 weeks), "
                    f"got {year:g}"
                )
            object.__setattr__(self, "hours_per_year", year)

    @property
    def working_hours_per_day(self) -> float:
        """Hours an analyst works on a roster day: ``hours_per_day``, or with
        ``hours_per_year`` that year's hours spread evenly over the roster's days (leave,
        training and absence as a shorter day, from the shift's start)."""
        if self.hours_per_year is None:
            return self.hours_per_day
        return self.hours_per_year / (self.days_per_week * WEEKS_PER_YEAR)

    @property
    def resources(self) -> tuple[str, ...]:
        """Names of the lab's resources: ``"analysts"``, then each instrument type."""
        return (ANALYSTS, *self.instruments)

    def counts(self) -> np.ndarray:
        """Analysts, then instruments of each type (the order of :attr:`resources`)."""
        return np.array([self.analysts, *self.instruments.values()], np.int64)

    def monitoring_hours(self) -> float:
        """Analyst hours of monitoring work a month: the given value, or the sum of the
        processes' mean ``qc_fixed_hours_per_month`` (:func:`release_days` uses each draw's
        value)."""
        if self.monitoring_hours_per_month is not None:
            return self.monitoring_hours_per_month
        return float(sum(spec.qc_fixed_hours_per_month.mean for spec in self.processes))


@dataclass
class QCLabResult:
    """What :func:`release_days` returns.

    ``release`` (draw, lot): calendar day the lot's last assay result is released (NaN: no
    lot); ``wait`` (draw, lot, resource): days the lot waited for each resource along its
    critical assay (the test whose result came last, all its runs): for analysts (including
    waiting for the roster's next shift) and for that assay's instrument type;
    ``resources``: the names along the last axis; ``utilisation`` (draw, month, resource):
    busy hours (work started in the month) over the roster hours the resource offered in the
    month (NaN for an unlimited resource); ``month_edges``: calendar days bounding the months.
    """

    release: np.ndarray
    wait: np.ndarray
    resources: tuple[str, ...]
    utilisation: np.ndarray
    month_edges: np.ndarray
    lot_ready: np.ndarray

    @property
    def qc_days(self) -> np.ndarray:
        """Days from the end of manufacture to release, per draw and lot (NaN: no lot)."""
        return self.release - self.lot_ready

    def to_dataset(self) -> xr.Dataset:
        """The result as an ``xarray.Dataset`` (dims draw, lot, resource, month)."""
        return xr.Dataset(
            {
                "release_day": (("draw", "lot"), self.release, {"units": "days"}),
                "qc_days": (("draw", "lot"), self.qc_days, {"units": "days"}),
                "wait_days": (("draw", "lot", "resource"), self.wait, {"units": "days"}),
                "utilisation": (
                    ("draw", "month", "resource"),
                    self.utilisation,
                    {"units": "busy share of roster hours"},
                ),
            },
            coords={
                "resource": list(self.resources),
                "month_start_day": ("month", self.month_edges[:-1]),
            },
        )


@dataclass
class _Panels:
    """Per-draw assay arrays padded to (draw, process, assay)."""

    n_assays: np.ndarray
    instrument: np.ndarray
    tests: np.ndarray
    hands_on: np.ndarray
    instrument_hours: np.ndarray
    turnaround: np.ndarray
    retest_rate: np.ndarray


def _panels(lab: QCLab, draws: int, seed: int, params: Sequence[xr.Dataset] | None) -> _Panels:
    specs = lab.processes
    if params is None:
        params = [spec.sample(draws, seed) for spec in specs]
    if len(params) != len(specs):
        raise InputError(f"params: one Dataset per process ({len(specs)}), got {len(params)}")
    most = max(len(spec.qc) for spec in specs)
    types = list(lab.instruments)
    shape = (draws, len(specs), most)
    out = _Panels(
        n_assays=np.array([len(spec.qc) for spec in specs], np.int64),
        instrument=np.full((len(specs), most), -1, np.int64),
        tests=np.zeros(shape, np.int64),
        hands_on=np.zeros(shape),
        instrument_hours=np.zeros(shape),
        turnaround=np.zeros(shape),
        retest_rate=np.zeros(shape),
    )
    for p, (spec, ds) in enumerate(zip(specs, params, strict=True)):
        if ds.sizes.get("draw") != draws:
            raise InputError(f"params[{p}]: expected {draws} draws, got {ds.sizes.get('draw')}")
        for a, assay in enumerate(spec.qc):
            if assay.instrument is not None:
                out.instrument[p, a] = types.index(assay.instrument)
            out.tests[:, p, a] = int(assay.tests_per_lot.args[0])
            out.hands_on[:, p, a] = ds["qc_hands_on_hours"].values[:, a]
            out.instrument_hours[:, p, a] = ds["qc_instrument_hours"].values[:, a]
            out.turnaround[:, p, a] = (
                lab.turnaround_days[assay.assay]
                if assay.assay in lab.turnaround_days
                else ds["qc_turnaround_days"].values[:, a]
            )
            out.retest_rate[:, p, a] = ds["qc_retest_rate"].values[:, a]
    if (out.retest_rate >= 1).any():
        raise InputError("retest_rate: a retest rate of 1 never releases a lot; use < 1")
    return out


def _monitoring(
    lab: QCLab, edges: np.ndarray, hours: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Monitoring blocks: times, analyst hours (draw, block), instrument type, its hours."""
    draws, months = hours.shape
    times, per_draw, kinds, inst = [], [], [], []
    block = lab.monitoring_block_hours
    for m in range(months):  # months and instrument types, not draws
        length = edges[m + 1] - edges[m]
        n = int(np.ceil(hours[:, m].max() / block)) if hours[:, m].max() > 0 else 0
        for i in range(n):
            times.append(edges[m] + (i + 0.5) * length / n)
            per_draw.append(hours[:, m] / n)
            kinds.append(-1)
            inst.append(np.zeros(draws))
        for name, per_month in lab.monitoring_instrument_hours_per_month.items():
            n = int(np.ceil(per_month / block)) if per_month > 0 else 0
            for i in range(n):
                times.append(edges[m] + (i + 0.5) * length / n)
                per_draw.append(np.zeros(draws))
                kinds.append(list(lab.instruments).index(name))
                inst.append(np.full(draws, per_month / n))
    if not times:
        return np.zeros(0), np.zeros((draws, 0)), np.zeros(0, np.int64), np.zeros((draws, 0))
    return (
        np.array(times, float),
        np.stack(per_draw, axis=1),
        np.array(kinds, np.int64),
        np.stack(inst, axis=1),
    )


def _check_lots(lot_ready: Any, lot_process: Any, draw_keys: Any, n_processes: int):
    ready = np.asarray(lot_ready, float)
    if ready.ndim != 2:
        raise InputError(f"lot_ready: expected a (draw, lot) array, got shape {ready.shape}")
    if np.isinf(ready).any():
        raise InputError("lot_ready: expected finite days (NaN for no lot), got an infinity")
    process = np.asarray(lot_process)
    if process.shape != ready.shape:
        raise InputError(
            f"lot_process: expected the shape of lot_ready {ready.shape}, got {process.shape}"
        )
    if not np.issubdtype(process.dtype, np.integer):
        raise InputError(f"lot_process: expected whole process indices, got {process.dtype}")
    lots = ~np.isnan(ready)
    if lots.any() and (process[lots].min() < 0 or process[lots].max() >= n_processes):
        raise InputError(
            f"lot_process: process indices must be in 0..{n_processes - 1} (the lab's "
            f"processes), got {process[lots].min()}..{process[lots].max()}"
        )
    keys = np.asarray(draw_keys)
    if keys.shape != (ready.shape[0],):
        raise InputError(f"draw_keys: one key per draw ({ready.shape[0]}), got {keys.shape}")
    return ready, np.where(lots, process, 0).astype(np.int64), keys.astype(np.uint64)


def _default_edges(ready: np.ndarray) -> np.ndarray:
    if np.isnan(ready).all():
        return np.array([0.0, DAYS_PER_MONTH])
    first = np.floor(np.nanmin(ready) / DAYS_PER_MONTH)
    last = np.ceil(np.nanmax(ready) / DAYS_PER_MONTH) + 2  # room for turnarounds
    return np.arange(first, last + 1) * DAYS_PER_MONTH


def _analyst_path(value: Any, draws: int, months: int) -> np.ndarray:
    path = np.asarray(value, float)
    if path.ndim == 1 and path.shape[0] == months:
        path = np.broadcast_to(path, (draws, months))
    if path.shape != (draws, months):
        raise InputError(
            f"analysts_by_month: expected one headcount per month ({months}) or per draw and "
            f"month ({draws} x {months}), got shape {path.shape}"
        )
    if not np.isfinite(path).all() or (path < 0).any() or (path != np.round(path)).any():
        raise InputError("analysts_by_month: expected whole numbers of analysts >= 0")
    if (path[:, -1] < 1).any():
        bad = int(np.flatnonzero(path[:, -1] < 1)[0])
        raise InputError(
            f"analysts_by_month: draw {bad} has no analyst in the last month, so its lots "
            "would never be released"
        )
    return np.ascontiguousarray(path, np.int64)


def release_days(
    lot_ready: np.ndarray,
    lot_process: np.ndarray,
    draw_keys: np.ndarray,
    lab: QCLab,
    *,
    seed: int = 0,
    params: Sequence[xr.Dataset] | None = None,
    counts: np.ndarray | None = None,
    month_edges: np.ndarray | None = None,
    monitoring_hours: np.ndarray | float | None = None,
    analysts_by_month: np.ndarray | None = None,
) -> QCLabResult:
    """Release day of every lot through the QC lab, per draw (see the module docstring).

    Parameters
    ----------
    lot_ready
        float64 (draw, lot): calendar day each lot's manufacture ends (NaN: no lot).
    lot_process
        int64 (draw, lot): index into ``lab.processes`` of each lot's process (its panel).
    draw_keys
        uint64 (draw,): each draw's key for the counter-based random numbers.
    lab
        The :class:`QCLab`.
    seed
        Seed of the per-draw assay parameters (``ProcessSpec.sample``) when ``params`` is
        not given.
    params
        Per-process Datasets from ``ProcessSpec.sample`` (the draw's values of
        ``qc_hands_on_hours``, ``qc_instrument_hours``, ``qc_turnaround_days``,
        ``qc_retest_rate``), to share a run's draws.
    counts
        int (draw, resource) or (resource,): analysts then instruments per type, replacing
        the lab's (-1: unlimited, no queue).
    month_edges
        Calendar days bounding the months for monitoring work and utilisation; default
        months of 365.25/12 days from the earliest lot's month to two months after the
        latest lot. The default depends on the lots given, so pass the edges when draws are
        simulated in batches.
    monitoring_hours
        Analyst hours of monitoring work per month, scalar or (draw, month); default
        ``lab.monitoring_hours_per_month``, or if that is not set the sum of the processes'
        ``qc_fixed_hours_per_month`` in each draw (from ``params``).
    analysts_by_month
        Qualified analysts per draw and month of ``month_edges``, (draw, month) or (month,),
        whole numbers >= 0 with at least one in the last month (e.g. a workforce plan's
        simulated ``qualified`` headcount, rounded down), replacing the lab's ``analysts``.
        Analyst ``i`` (counting from 0) works in the months whose headcount exceeds ``i``:
        analysts who arrive in a month take work from its first roster hour, and one who
        leaves finishes the test in hand (an **assumption**). Before the first edge the first
        month's headcount applies, after the last edge the last month's.

    Examples
    --------
    >>> lab = QCLab([{"name": "x", "culture_days": 8, "qc": [{"assay": "sterility",
    ...     "hands_on_hours": 0, "turnaround_days": 14}]}], analysts=1, instruments={},
    ...     monitoring_hours_per_month=0)
    >>> release_days(np.array([[3.0]]), np.array([[0]]), np.array([7], np.uint64), lab).release
    array([[17.]])
    """
    from capacity._qclab import lab_draws

    if not isinstance(lab, QCLab):
        raise InputError(f"lab: expected a QCLab, got {type(lab).__name__}")
    ready, process, keys = _check_lots(lot_ready, lot_process, draw_keys, len(lab.processes))
    draws = ready.shape[0]
    n_res = len(lab.resources)
    if counts is None:
        res = np.broadcast_to(lab.counts(), (draws, n_res))
    else:
        res = np.asarray(counts)
        if res.ndim == 1:
            res = np.broadcast_to(res, (draws, n_res)) if res.shape == (n_res,) else res
        if res.shape != (draws, n_res):
            raise InputError(
                f"counts: expected ({draws}, {n_res}) for resources {lab.resources}, "
                f"got {res.shape}"
            )
        if not np.issubdtype(res.dtype, np.integer) or ((res == 0) | (res < -1)).any():
            raise InputError("counts: expected whole numbers >= 1 (or -1 for unlimited)")
    res = np.asarray(res, np.int64)
    edges = _default_edges(ready) if month_edges is None else np.asarray(month_edges, float)
    if edges.ndim != 1 or len(edges) < 2 or (np.diff(edges) <= 0).any():
        raise InputError("month_edges: expected increasing calendar days, at least two")
    months = len(edges) - 1
    if params is None:
        params = [spec.sample(draws, seed) for spec in lab.processes]
    if monitoring_hours is None and lab.monitoring_hours_per_month is None:
        # each draw's own value of the processes' qc_fixed_hours_per_month
        per_draw = sum(ds["qc_fixed_hours_per_month"].values for ds in params)
        monitoring_hours = np.repeat(np.asarray(per_draw, float)[:, None], months, axis=1)
    elif monitoring_hours is None:
        monitoring_hours = lab.monitoring_hours_per_month
    hours = np.asarray(monitoring_hours, float)
    hours = np.broadcast_to(hours, (draws, months)) if hours.ndim == 0 else hours
    if hours.shape != (draws, months) or not np.isfinite(hours).all() or (hours < 0).any():
        raise InputError(
            f"monitoring_hours: expected hours >= 0, a number or ({draws}, {months}), "
            f"got shape {hours.shape}"
        )
    path = np.zeros((draws, 0), np.int64)
    if analysts_by_month is not None:
        path = _analyst_path(analysts_by_month, draws, months)
        res = res.copy()
        res[:, 0] = np.maximum(path.max(axis=1), 1)
    panels = _panels(lab, draws, seed, params)
    m_time, m_hours, m_type, m_inst = _monitoring(lab, edges, hours)
    # lab_draws is compiled for one signature: C-contiguous, writable arrays. A read-only
    # view (np.broadcast_to of one draw's counts) or a Fortran-order array would be a
    # second signature, compiled again (13-16 s of CPU each)
    ready, process, keys, res, edges = (
        np.require(a, t, ("C", "W"))
        for a, t in ((ready, float), (process, np.int64), (keys, np.uint64), (res, np.int64),
                     (edges, float))
    )  # fmt: skip
    release, wait, busy = lab_draws(
        ready,
        process,
        keys,
        panels.n_assays,
        panels.instrument,
        panels.tests,
        panels.hands_on,
        panels.instrument_hours,
        panels.turnaround,
        panels.retest_rate,
        res,
        m_time,
        np.ascontiguousarray(m_hours),
        m_type,
        np.ascontiguousarray(m_inst),
        lab.working_hours_per_day,
        lab.days_per_week,
        lab.shift_start_hour,
        lab.hands_on == "exponential",
        lab.max_runs,
        edges,
        path,
    )
    offered = roster_hours(edges[1:], lab) - roster_hours(edges[:-1], lab)  # per unit
    with np.errstate(divide="ignore", invalid="ignore"):
        capacity = np.where(res > 0, res, np.nan)[:, None, :] * offered[None, :, None]
        if path.shape[1]:  # analysts at work in each month
            capacity[:, :, 0] = np.where(path > 0, path, np.nan) * offered[None, :]
        utilisation = busy / capacity
    return QCLabResult(release, wait, lab.resources, utilisation, edges, ready)


def roster_hours(days: np.ndarray | float, lab: QCLab) -> np.ndarray:
    """Roster hours one analyst works from calendar day 0 to each of ``days``."""
    t = np.asarray(days, float)
    week = np.floor(t / 7.0)
    day = np.floor(t - 7.0 * week)
    hours = lab.working_hours_per_day
    within = np.clip((t - 7.0 * week - day) * 24.0 - lab.shift_start_hour, 0, hours)
    within = np.where(day < lab.days_per_week, within, 0.0)
    return (week * lab.days_per_week + np.minimum(day, lab.days_per_week)) * hours + within


def _late_share(result: QCLabResult, target_days: float) -> np.ndarray:
    qc = result.qc_days
    lots = ~np.isnan(qc)
    late = (np.where(lots, qc, -np.inf) > target_days).sum(axis=1)
    n = lots.sum(axis=1)
    return np.where(n > 0, late / np.maximum(n, 1), 0.0)


def size_lab(
    lot_ready: np.ndarray,
    lot_process: np.ndarray,
    draw_keys: np.ndarray,
    lab: QCLab,
    *,
    target_days: float,
    epsilon: float = 0.05,
    max_count: int = 10_000,
    **release_kw,
) -> xr.Dataset:
    """Analysts and instruments of each type needed so that P(QC days > target) <= epsilon.

    Per draw and per resource: the fewest units of that resource such that at most a share
    ``epsilon`` of the draw's lots take more than ``target_days`` from the end of manufacture
    to release, with every other resource unlimited. Every size sees the same lots, tests and
    retests (common random numbers: each random number is tied to a lot, assay, test and run),
    so the search doubles from 1 until the level is met, then bisects, simulating only the
    draws still unsettled (as :func:`capacity.suites_for_service_level`). With all resources
    at their sizes together, waits for different resources add up, so the joint level can be
    missed: ``late_share_joint`` (draw) gives the share of late lots with every resource at
    its size. ``needed_together`` starts from those sizes and, in each draw that misses the
    level, adds one unit of the resource its late lots waited for longest (analysts include
    waiting for the roster's next shift) until the draw meets it: a lab that meets the level
    with all resources finite, not necessarily the cheapest one.

    Returns a Dataset with ``needed`` and ``needed_together`` (draw, resource) and
    ``late_share_joint`` (draw). Without ``month_edges`` the months are those covering all
    the lots (the same for every run of the search).
    Raises :class:`InputError` if some draw misses the level even with unlimited resources
    (the target is shorter than the panel's work and turnaround).
    """
    if not 0 < epsilon < 1:
        raise InputError(f"epsilon must be in (0, 1), got {epsilon}")
    target = _number(target_days, "target_days")
    ready, process, keys = _check_lots(lot_ready, lot_process, draw_keys, len(lab.processes))
    draws = ready.shape[0]
    n_res = len(lab.resources)
    seed = release_kw.pop("seed", 0)
    params = release_kw.pop("params", None)
    if params is None:  # sample once: every run sees the same draws
        params = [spec.sample(draws, seed) for spec in lab.processes]
    unknown = sorted(set(release_kw) - {"month_edges", "monitoring_hours"})
    if unknown:
        raise InputError(f"size_lab: unexpected arguments {unknown}")

    if release_kw.get("month_edges") is None:  # the same months whichever draws run
        release_kw["month_edges"] = _default_edges(ready)

    def simulate(counts: np.ndarray, rows: np.ndarray) -> QCLabResult:
        kw = dict(release_kw)
        hours = kw.get("monitoring_hours")
        if hours is not None and np.ndim(hours) == 2:
            kw["monitoring_hours"] = np.asarray(hours)[rows]
        sub = [ds.isel(draw=rows) for ds in params]
        return release_days(
            ready[rows], process[rows], keys[rows], lab, params=sub, counts=counts, **kw
        )

    def late(counts: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return _late_share(simulate(counts, rows), target)

    everything = np.arange(draws)
    free_share = late(np.full((draws, n_res), -1, np.int64), everything)
    if (free_share > epsilon).any():
        bad = np.flatnonzero(free_share > epsilon)
        raise InputError(
            f"target_days: {target:g} days is shorter than the QC panel's own work and "
            f"turnaround for more than {epsilon:g} of the lots in {len(bad)} draw(s) (first: "
            f"draw {bad[0]}, {free_share[bad[0]]:.0%} late with unlimited analysts and "
            "instruments); no lab size meets it"
        )
    needed = np.zeros((draws, n_res), np.int64)
    for k in range(n_res):
        lo = np.zeros(draws, np.int64)  # largest size known to miss (0: none)
        hi = np.full(draws, -1, np.int64)  # smallest size known to meet (-1: none yet)
        while True:
            todo = np.flatnonzero((hi < 0) | (hi - lo > 1))
            if not len(todo):
                break
            size = np.where(hi[todo] < 0, np.maximum(2 * lo[todo], 1), (lo[todo] + hi[todo]) // 2)
            if size.max() > max_count:
                raise InputError(
                    f"size_lab: no {lab.resources[k]} count up to {max_count} meets it"
                )
            counts = np.full((len(todo), n_res), -1, np.int64)
            counts[:, k] = size
            meets = late(counts, todo) <= epsilon
            lo[todo] = np.where(meets, lo[todo], size)
            hi[todo] = np.where(
                meets, np.where(hi[todo] < 0, size, np.minimum(hi[todo], size)), hi[todo]
            )
        needed[:, k] = hi
    joint = late(needed, everything)
    # together: from the sizes alone, add one unit of the resource the draw's late lots
    # waited for longest, until the draw meets the level
    together = needed.copy()
    todo = np.flatnonzero(joint > epsilon)
    while len(todo):
        result = simulate(together[todo], todo)
        qc = result.qc_days
        late_lot = np.where(np.isnan(qc), False, qc > target)
        share = late_lot.sum(axis=1) / np.maximum((~np.isnan(qc)).sum(axis=1), 1)
        short = share > epsilon
        todo, late_lot, waits = todo[short], late_lot[short], result.wait[short]
        if not len(todo):
            break
        blame = np.where(late_lot[:, :, None], waits, 0.0).sum(axis=1)
        together[todo, np.argmax(blame, axis=1)] += 1
        if together.max() > max_count:
            raise InputError(f"size_lab: no lab with up to {max_count} of a resource meets it")
    return xr.Dataset(
        {
            "needed": (("draw", "resource"), needed, {"units": "analysts or instruments"}),
            "late_share_joint": ("draw", joint, {"units": "share of lots"}),
            "needed_together": (
                ("draw", "resource"),
                together,
                {"units": "analysts or instruments"},
            ),
        },
        coords={"draw": np.arange(draws), "resource": list(lab.resources)},
        attrs={"target_days": target, "epsilon": epsilon},
    )


def qc_lab_dataset(
    result: QCLabResult, months: Any = None, *, target_days: float | None = None
) -> xr.Dataset:
    """Per draw and month (of the end of manufacture) what the QC lab did, for bands.

    Variables (dims draw, month; a resource dim where it belongs): ``qc_lots`` lots ready for
    QC; ``qc_days`` their mean days from the end of manufacture to release (NaN in a month
    without lots); ``qc_wait`` (resource) their mean days waited for each resource;
    ``qc_utilisation`` (resource) busy share of the roster hours; with ``target_days``,
    ``qc_late_share``, the share of the month's lots taking longer (NaN without lots).
    ``months``: labels of the months between ``result.month_edges`` (e.g. a
    ``pandas.DatetimeIndex``); default the months' first days.
    """
    edges = result.month_edges
    n_months = len(edges) - 1
    labels = edges[:-1] if months is None else months
    if len(labels) != n_months:
        raise InputError(
            f"months: expected {n_months} labels (the result's months), got {len(labels)}"
        )
    ready = result.lot_ready
    draws = ready.shape[0]
    month = np.searchsorted(edges, np.where(np.isnan(ready), -np.inf, ready), side="right") - 1
    inside = ~np.isnan(ready) & (month >= 0) & (month < n_months)
    cell = (np.arange(draws)[:, None] * n_months + month)[inside]

    def per_cell(values: np.ndarray) -> np.ndarray:
        total = np.bincount(cell, weights=values[inside], minlength=draws * n_months)
        return total.reshape(draws, n_months)

    lots = per_cell(np.ones(ready.shape))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = lambda values: per_cell(values) / lots  # noqa: E731 - NaN where no lots
        data = {
            "qc_lots": (("draw", "month"), lots, {"units": "lots"}),
            "qc_days": (("draw", "month"), mean(result.qc_days), {"units": "days"}),
            "qc_wait": (
                ("draw", "month", "resource"),
                np.stack([mean(result.wait[:, :, k]) for k in range(len(result.resources))], -1),
                {"units": "days"},
            ),
            "qc_utilisation": (
                ("draw", "month", "resource"),
                result.utilisation,
                {"units": "share"},
            ),
        }
        if target_days is not None:
            late = np.where(np.isnan(ready), 0.0, result.qc_days > target_days)
            data["qc_late_share"] = (("draw", "month"), mean(late), {"units": "share"})
    return xr.Dataset(
        data,
        coords={"draw": np.arange(draws), "month": labels, "resource": list(result.resources)},
        attrs={"target_days": np.nan if target_days is None else float(target_days)},
    )


def qc_lab_bands(
    result: QCLabResult,
    months: Any = None,
    *,
    target_days: float | None = None,
    quantiles: Sequence[float] = (0.1, 0.5, 0.9),
    program: str = "all",
) -> pd.DataFrame:
    """The QC lab's bands, the rows of ``qc_lab.csv``: ``month, program, metric, unit, mean,
    p10, p50, p90`` (one column per quantile).

    Metrics are the variables of :func:`qc_lab_dataset` (``qc_wait[analysts]``, one per
    resource label). A month in which a draw has no lot has no ``qc_days``, ``qc_wait`` or
    ``qc_late_share`` in that draw: their mean and quantiles are over the draws with lots
    (NaN if none has); ``qc_lots`` and ``qc_utilisation`` are over every draw.

    Examples
    --------
    >>> lab = QCLab([{"name": "x", "culture_days": 8, "qc": [{"assay": "sterility",
    ...     "hands_on_hours": 0, "turnaround_days": 14}]}], analysts=1, instruments={},
    ...     monitoring_hours_per_month=0)
    >>> out = release_days(np.array([[3.0], [5.0]]), np.zeros((2, 1), np.int64),
    ...     np.array([1, 2], np.uint64), lab, month_edges=np.array([0.0, 30.0]))
    >>> qc_lab_bands(out).query("metric == 'qc_days'")[["mean", "p50"]].values.tolist()
    [[14.0, 14.0]]
    """
    ds = qc_lab_dataset(result, months, target_days=target_days)
    q = np.asarray(quantiles, float)
    if q.ndim != 1 or not ((q > 0) & (q < 1)).all():
        raise InputError(f"quantiles: expected numbers strictly between 0 and 1, got {quantiles}")
    frames = []
    for name, var in ds.data_vars.items():
        labels = [None] if "resource" not in var.dims else list(ds["resource"].values)
        for label in labels:
            values = var.values if label is None else var.sel(resource=label).values
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN months
                mean = np.nanmean(values, axis=0)
                bands_ = np.nanquantile(values, q, axis=0)
            frame = pd.DataFrame(
                {
                    "month": ds["month"].values,
                    "program": program,
                    "metric": name if label is None else f"{name}[{label}]",
                    "unit": var.attrs["units"],
                    "mean": mean,
                }
            )
            for p, row in zip(q, bands_, strict=True):
                frame[f"p{100 * p:g}"] = row
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)
