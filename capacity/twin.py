"""The facility twin: suites, qualified crews, downtime and vein-to-vein time, per draw.

Model (one event-driven simulation per demand draw, draws in parallel in ``capacity._twin``):

* **Patients.** Apheresis days are the facility simulation's arrivals (uniform within each
  month given its count; :func:`capacity.simulation.prepare_facility`). The starting material
  travels ``inbound_days`` to the facility, where its lot joins one first-come-first-served
  queue (a later lot never starts before an earlier one).
* **Suites.** A suite holds ``lots_per_suite`` lots of a process at once (processes may
  differ: a lot holds ``1 / lots_per_suite`` of a suite, as in the suite queue); a lot holds
  its share from its start until its harvest ends plus the changeover (or plus the
  decontamination, below, which closes that share of the suite). Suites given by
  month come online on the first day of the month they are added (a module).
* **Crews.** A lot needs a crew of ``crew_size`` qualified operators for a start step of
  ``start_hours`` (at the start) and a harvest step of ``harvest_hours`` (when its culture
  ends). Operators work ``shifts_per_day`` shifts of ``hours_per_shift`` hours back to back
  from the start of each day (the working window; ``shifts_per_day x hours_per_shift = 24``
  is a 24/7 roster); a step starts only inside the window with its hours left in it. In month
  ``m`` the crews at work at any time of the window are
  ``floor(qualified[m] x attendance / shifts_per_day / crew_size)``, ``qualified`` a
  headcount path per draw (e.g. :func:`capacity.simulate_workforce`'s ``qualified``) and
  ``attendance`` the share of operators at work on a given day. A harvest waiting for a crew
  goes before any start (a grown culture cannot wait); the lot stays in its suite meanwhile.
* **Downtime.** Facility-wide planned shutdowns of ``shutdown_days_per_year`` from
  ``shutdown_start`` (month-day) every year: no lot starts whose planned time in the suite
  (start step + culture + harvest step) would reach into a shutdown. A lot is contaminated
  with the draw's rate (beta per draw and process); this is found at harvest, the lot is lost,
  its suite closes ``decontamination_days`` and the patient's lot is remade (from a new
  apheresis ``reapheresis_days`` later and a new inbound journey when the process needs one)
  up to ``contamination_remakes`` times. Equipment fails during a lot with probability
  ``1 - exp(-rate x culture days)`` (``equipment_failures_per_suite_year / 365``); the lot
  is held in its suite for ``repair_days``.
* **Release.** A lot fails release (out of specification) with the process's
  ``failure_rate`` in the draw; that is known the panel's longest turnaround after harvest
  and the lot is remade up to ``max_remanufacture`` times. The release day of each lot comes
  from the QC stage, a single call ``qc_stage(lot_ready, lot_process, draw_keys)``: by
  default :func:`nominal_qc_stage` (harvest + the panel's longest turnaround, no queue); a QC
  laboratory simulation that returns release days and waits per QC resource plugs in there.
* **Vein-to-vein** = first apheresis to infusion = release of the released lot + outbound
  transport + ``release_to_infusion_days`` - apheresis. With ``dropout_per_day`` > 0 a
  patient waiting to start leaves at that hazard per day of waiting (lost while waiting).

**Wait decomposition.** The queue's head is held by one cause at a time: downtime (a shutdown
ahead, or no suite free while one is closed for decontamination), suites (none free), or
crews (none free, or off shift); a lot's wait to start is split by the causes that held the
head while it waited (everything behind the head waits for the same reason). A harvest's wait
for a crew counts as crews, an equipment repair as downtime, and the QC stage's waits per
resource as themselves.

Assumptions (``data/SOURCES.md``): every operator counts for one FTE; crews form whole from the
operators at work; contamination is found at harvest; one equipment failure at most per lot;
a shutdown closes every suite; processes of a multi-process facility share the crews and the
downtime settings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from capacity.demand import as_demand
from capacity.distributions import Param, stream_rng
from capacity.errors import InputError
from capacity.process import ProcessSpec

__all__ = [
    "CrewConfig",
    "DowntimeConfig",
    "QCStageResult",
    "VeinToVeinConfig",
    "QCLabStage",
    "nominal_qc_stage",
    "simulate_twin",
    "size_operators",
    "twin_bands",
]


def _param(value: Any, name: str) -> Param:
    try:
        return Param.parse(value)
    except ValueError as exc:
        raise InputError(f"{name}: {exc}") from None


def _number(value: Any, name: str, *, low: float = 0.0, strict: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)
    if not ok or value < low or (strict and value == low):
        sign = ">" if strict else ">="
        raise InputError(f"{name}: expected a finite number {sign} {low:g}, got {value!r}")
    return float(value)


def _whole(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise InputError(f"{name}: expected a whole number >= {low}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class CrewConfig:
    """Qualified operators as crews on a shift pattern (see the module docstring).

    Defaults are **assumptions** (``data/SOURCES.md``): crews of 2 (two operators per
    processing step, Lopes et al. 2018), two 8-hour shifts, a 6-hour start step
    (activation/transduction) and a 6-hour harvest step (harvest, formulation, fill), and an
    attendance of 0.55 (1,600 productive hours a year / (365 days x 8 hours)).
    """

    crew_size: int = 2
    shifts_per_day: int = 2
    hours_per_shift: float = 8.0
    start_hours: float = 6.0
    harvest_hours: float = 6.0
    attendance: float = 0.55

    def __post_init__(self) -> None:
        _whole(self.crew_size, "crews.crew_size (operators per crew)", 1)
        _whole(self.shifts_per_day, "crews.shifts_per_day", 1)
        hours = _number(self.hours_per_shift, "crews.hours_per_shift", strict=True)
        if hours > 24:
            raise InputError(f"crews.hours_per_shift: at most 24 hours, got {hours:g}")
        if hours * self.shifts_per_day > 24 + 1e-9:
            raise InputError(
                f"crews: shifts_per_day x hours_per_shift must be at most 24 hours a day, got "
                f"{self.shifts_per_day} x {hours:g} = {self.shifts_per_day * hours:g}"
            )
        for name in ("start_hours", "harvest_hours"):
            value = _number(getattr(self, name), f"crews.{name}")
            if value > self.window_hours:
                raise InputError(
                    f"crews.{name}: a step must fit in the working day of "
                    f"{self.window_hours:g} hours, got {value:g}"
                )
        share = _number(self.attendance, "crews.attendance", strict=True)
        if share > 1:
            raise InputError(f"crews.attendance: a share in (0, 1], got {share:g}")

    @property
    def window_hours(self) -> float:
        """Hours a day operators are at work (24 = round the clock)."""
        return min(24.0, self.shifts_per_day * self.hours_per_shift)

    def crews_on_shift(self, qualified: np.ndarray) -> np.ndarray:
        """Crews at work at any time of the working window, from qualified headcount."""
        per_shift = np.asarray(qualified, float) * self.attendance / self.shifts_per_day
        return np.floor(per_shift / self.crew_size + 1e-9).astype(np.int64)


@dataclass(frozen=True)
class DowntimeConfig:
    """Planned shutdowns, contamination and equipment failures (module docstring).

    Defaults: no planned shutdown or equipment failure; contamination beta(1, 199) per draw
    (mean 0.5%, an **assumption**), 14 days of decontamination (**assumption**), one remake.
    """

    shutdown_days_per_year: float = 0.0
    shutdown_start: str = "12-20"
    contamination_rate: Param | float | dict = field(
        default_factory=lambda: Param.parse({"beta": [1, 199]})
    )
    decontamination_days: float = 14.0
    contamination_remakes: int = 1
    equipment_failures_per_suite_year: float = 0.0
    repair_days: float = 2.0

    def __post_init__(self) -> None:
        days = _number(self.shutdown_days_per_year, "downtime.shutdown_days_per_year")
        if days >= 365:
            raise InputError(f"downtime.shutdown_days_per_year: below 365, got {days:g}")
        try:
            pd.Timestamp(f"2001-{self.shutdown_start}")
        except (ValueError, TypeError):
            raise InputError(
                f"downtime.shutdown_start: expected a month-day like '12-20', got "
                f"{self.shutdown_start!r}"
            ) from None
        rate = _param(self.contamination_rate, "downtime.contamination_rate")
        low, high = rate.support
        if low < 0 or high > 1:
            raise InputError(f"downtime.contamination_rate: a share of lots in [0, 1], got {rate}")
        object.__setattr__(self, "contamination_rate", rate)
        _number(self.decontamination_days, "downtime.decontamination_days")
        _whole(self.contamination_remakes, "downtime.contamination_remakes", 0)
        _number(
            self.equipment_failures_per_suite_year, "downtime.equipment_failures_per_suite_year"
        )
        _number(self.repair_days, "downtime.repair_days")

    def shutdowns(self, first_day: pd.Timestamp, years: int) -> tuple[np.ndarray, np.ndarray]:
        """Start and end days (since ``first_day``) of the shutdowns of ``years`` years."""
        if self.shutdown_days_per_year <= 0:
            return np.zeros(0), np.zeros(0)
        starts = [
            (pd.Timestamp(f"{first_day.year + y - 1}-{self.shutdown_start}") - first_day).days
            for y in range(years + 2)
        ]
        start = np.array(starts, float)
        end = start + self.shutdown_days_per_year
        keep = end > 0
        return start[keep], end[keep]


@dataclass(frozen=True)
class VeinToVeinConfig:
    """Transport, re-collection, dropout and the vein-to-vein target (module docstring).

    Defaults are **assumptions**: 1 day each way (courier, often cryopreserved), 5 days from
    release to infusion (scheduling and lymphodepletion), 14 days to re-collect, a new
    apheresis for every remake, no dropout, a 30-day target.
    """

    inbound_days: Param | float | dict = 1.0
    outbound_days: Param | float | dict = 1.0
    release_to_infusion_days: Param | float | dict = 5.0
    reapheresis_days: float = 14.0
    new_apheresis: bool = True
    dropout_per_day: float = 0.0
    target_days: float = 30.0

    def __post_init__(self) -> None:
        for name in ("inbound_days", "outbound_days", "release_to_infusion_days"):
            value = _param(getattr(self, name), f"vein_to_vein.{name}")
            if value.support[0] < 0:
                raise InputError(f"vein_to_vein.{name}: days must be >= 0, got {value}")
            object.__setattr__(self, name, value)
        _number(self.reapheresis_days, "vein_to_vein.reapheresis_days")
        _number(self.dropout_per_day, "vein_to_vein.dropout_per_day")
        _number(self.target_days, "vein_to_vein.target_days", strict=True)
        if not isinstance(self.new_apheresis, bool):
            raise InputError(
                f"vein_to_vein.new_apheresis: expected true or false, got {self.new_apheresis!r}"
            )


@dataclass
class QCStageResult:
    """What a QC stage returns: ``release`` (draw, lot) day each lot is released (NaN = no
    lot), ``wait`` (draw, lot, resource) days each lot waited for each QC resource, and the
    resources' names."""

    release: np.ndarray
    wait: np.ndarray
    resources: tuple[str, ...] = ()


def nominal_qc_stage(turnaround_days: np.ndarray) -> Callable[..., QCStageResult]:
    """The QC stage with no queue: release = manufacture end + the panel's longest
    turnaround of the lot's process in the draw (``turnaround_days``: draw x process)."""
    turnaround_days = np.asarray(turnaround_days, float)

    def stage(lot_ready: np.ndarray, lot_process: np.ndarray, draw_keys: np.ndarray):
        if turnaround_days.shape[1] == 1:  # one process: every lot's is the draw's
            release = lot_ready + turnaround_days
        else:
            rows = np.arange(lot_ready.shape[0])[:, None]
            release = lot_ready + turnaround_days[rows, lot_process]
        return QCStageResult(release, np.zeros((*lot_ready.shape, 0)))

    return stage


class QCLabStage:
    """A QC laboratory (:class:`capacity.QCLab`) as the twin's QC stage.

    Calling it runs :func:`capacity.release_days` on the twin's lots and returns their
    release days and waits per lab resource (``"analysts"`` and each instrument type, which
    become causes of the twin's wait decomposition); the full
    :class:`capacity.QCLabResult` is kept in :attr:`result` (for :func:`capacity.qc_lab_bands`).

    The lab's ``processes`` must be the twin's processes in the twin's order (each process
    once, in order of first use by the demand's programs). Each draw's assay parameters are
    sampled as the twin samples its processes (``params`` when given, else
    ``spec.sample(draws, stream_rng(seed, "facility-process", name))``), so a draw's QC
    turnaround is the same in the lab and in the twin's release-failure timing.
    ``month_edges``: days since the twin's first simulated month bounding the months of
    monitoring work and utilisation; default (``None``) the calendar months
    :func:`simulate_twin` simulates (with ``opening``, the months before the start too) and
    ``extra_months`` after them for the last lots' panels, whose first days are then
    :attr:`months` after the call.
    ``analysts``: qualified analysts per draw and month instead of the lab's ``analysts``
    (:func:`capacity.release_days`' ``analysts_by_month``): a ``(draw, month)`` DataArray,
    e.g. ``simulate_workforce(...)["qualified"]`` of a QC hiring plan, read at the calendar
    months of the month edges (months before its first: its first month's headcount, after
    its last: its last month's; rounded down to whole analysts), or a ``(draw, month)``
    array with one column per month of the edges.
    """

    def __init__(
        self,
        lab: Any,
        *,
        seed: int = 0,
        params: Any = None,
        month_edges: np.ndarray | None = None,
        monitoring_hours: Any = None,
        extra_months: int = 2,
        analysts: Any = None,
    ) -> None:
        from capacity.qclab import QCLab

        if not isinstance(lab, QCLab):
            raise InputError(f"qc_stage: expected a QCLab, got {type(lab).__name__}")
        self.lab = lab
        self.seed = seed
        self.params = params
        self.month_edges = month_edges
        self.monitoring_hours = monitoring_hours
        self.extra_months = _whole(extra_months, "extra_months", 0)
        if analysts is not None and not isinstance(analysts, xr.DataArray | np.ndarray):
            raise InputError(
                f"analysts: expected a (draw, month) DataArray or array, got "
                f"{type(analysts).__name__}"
            )
        self.analysts = analysts
        self.result = None
        self.months: pd.DatetimeIndex | None = None  # the months of the calendar edges
        self._calendar: np.ndarray | None = None

    def use_calendar(self, months: pd.DatetimeIndex) -> None:
        """Month edges from the twin's simulated calendar months (when none were given)."""
        if self.month_edges is not None:
            return
        self.months = pd.date_range(months[0], periods=len(months) + self.extra_months, freq="MS")
        ends = self.months.shift(1, freq="MS")
        self._calendar = np.r_[0.0, (ends - months[0]).days.to_numpy(float)]

    def _params(self, draws: int) -> list[xr.Dataset]:
        if self.params is None:
            return [
                spec.sample(draws, stream_rng(self.seed, "facility-process", spec.name))
                for spec in self.lab.processes
            ]
        if isinstance(self.params, xr.Dataset):
            return [self.params] * len(self.lab.processes)
        if isinstance(self.params, dict):
            missing = [s.name for s in self.lab.processes if s.name not in self.params]
            if missing:
                raise InputError(f"params: no parameters for process {missing[0]!r}")
            return [self.params[s.name] for s in self.lab.processes]
        return list(self.params)

    def _analysts(self, draws: int) -> np.ndarray | None:
        """Analysts per draw and month of the edges (None: the lab's ``analysts``)."""
        if self.analysts is None or isinstance(self.analysts, np.ndarray):
            return self.analysts
        path = self.analysts
        if set(path.dims) != {"draw", "month"} or path.sizes["draw"] < draws:
            raise InputError(
                f"analysts: expected dims (draw, month) with at least {draws} draws, got "
                f"{dict(path.sizes)}"
            )
        if self.months is None:
            raise InputError("analysts: a DataArray needs the twin's calendar (no month_edges)")
        have = pd.DatetimeIndex(path["month"].values)
        # the headcount of the latest given month at or before each calendar month
        at = np.clip(have.searchsorted(self.months, side="right") - 1, 0, len(have) - 1)
        values = path.transpose("draw", "month").values[:draws]
        return np.floor(values[:, at] + 1e-9)

    def __call__(
        self, lot_ready: np.ndarray, lot_process: np.ndarray, draw_keys: np.ndarray
    ) -> QCStageResult:
        from capacity.qclab import release_days

        self.result = release_days(
            lot_ready,
            lot_process,
            draw_keys,
            self.lab,
            seed=self.seed,
            params=self._params(lot_ready.shape[0]),
            month_edges=self._calendar if self.month_edges is None else self.month_edges,
            monitoring_hours=self.monitoring_hours,
            analysts_by_month=self._analysts(lot_ready.shape[0]),
        )
        return QCStageResult(self.result.release, self.result.wait, self.result.resources)


def _headcount(operators, draws: int, months: pd.DatetimeIndex, n_hist: int) -> np.ndarray:
    """Qualified operators per draw and month (months before the start: the first month's)."""
    if isinstance(operators, xr.DataArray):
        if set(operators.dims) != {"draw", "month"}:
            raise InputError(
                f"operators: expected dims (draw, month) as simulate_workforce returns, got "
                f"{operators.dims}"
            )
        wanted = months[n_hist:]
        have = pd.DatetimeIndex(operators["month"].values)
        missing = wanted.difference(have)
        if len(missing):
            raise InputError(f"operators: no headcount for month {missing[0].date()}")
        operators = operators.sel(month=wanted).transpose("draw", "month").values
    value = np.asarray(operators, float)
    n = len(months) - n_hist
    if value.ndim == 0:
        value = np.full((draws, n), float(value))
    elif value.ndim == 1 and value.shape[0] == n:
        value = np.broadcast_to(value, (draws, n))
    elif value.shape != (draws, n):
        raise InputError(
            f"operators: expected one number, one per month ({n}) or one per draw and month "
            f"({draws} x {n}), got shape {value.shape}"
        )
    if not np.isfinite(value).all() or (value < 0).any():
        raise InputError("operators: qualified headcounts must be finite numbers >= 0")
    if n_hist:
        value = np.concatenate([np.repeat(value[:, :1], n_hist, axis=1), value], axis=1)
    return np.ascontiguousarray(value)


def _suites(suites, draws: int) -> np.ndarray:
    value = np.asarray(suites)
    if value.ndim == 0:
        value = np.full(draws, value)
    if value.shape != (draws,) or (value < 1).any() or (value != np.round(value)).any():
        raise InputError(
            f"suites: expected a whole number >= 1 (or one per draw, {draws}), got {suites!r}"
        )
    return value.astype(np.int64)


def simulate_twin(
    demand: xr.DataArray,
    process: ProcessSpec | str | dict,
    suites: int | Sequence[int] | np.ndarray | pd.Series,
    *,
    operators: float | np.ndarray | xr.DataArray,
    crews: CrewConfig | None = None,
    downtime: DowntimeConfig | None = None,
    vein_to_vein: VeinToVeinConfig | None = None,
    qc_stage: Callable[..., QCStageResult] | None = None,
    service: str = "process",
    seed: int | None = None,
    opening: Any = None,
    params: xr.Dataset | None = None,
) -> xr.Dataset:
    """Simulate the facility twin (module docstring) for every demand draw.

    Parameters
    ----------
    demand
        Demand draws (the demand contract); ``ppq`` lots use suites and crews but have no
        patient.
    process
        A process, or a mapping program -> process, as :func:`capacity.simulate_facility`.
        Processes may hold different numbers of lots a suite (``lots_per_suite``): a lot
        holds ``1 / lots_per_suite`` of a suite, as in the suite queue.
    suites
        Suites installed: one number, one per draw, or a Series by month (the demand's
        months) that only grows: suites added in a month come online on its first day (a
        module), as in :func:`capacity.simulate_facility`.
    operators
        Qualified operators: a number, one per month, one per draw and month, or a
        ``(draw, month)`` DataArray (``simulate_workforce(...)["qualified"]``).
    crews, downtime, vein_to_vein
        :class:`CrewConfig`, :class:`DowntimeConfig`, :class:`VeinToVeinConfig` (defaults
        when ``None``).
    qc_stage
        ``qc_stage(lot_ready, lot_process, draw_keys) -> QCStageResult``;
        :func:`nominal_qc_stage` of the panel's turnaround by default.
    service, seed, opening, params
        As in :func:`capacity.simulate_facility`.

    Returns
    -------
    xarray.Dataset
        Per draw and month of apheresis: ``patients``, ``v2v_p50_days``, ``v2v_p90_days``
        (patients treated), ``share_v2v_over_target`` (patients not infused within the
        target: lost patients count as over), ``patients_lost`` and
        ``patients_lost_waiting``, ``wait_days`` (mean per patient, by ``cause``) and
        ``wait_share`` (share of the month's waiting by cause); per draw and calendar month:
        ``patients_treated`` (by month of infusion), ``lots_waiting`` (average lots waiting
        to start or for a harvest crew), ``suites_busy`` (average suites occupied or
        closed), ``crews_on_shift``; per draw and patient: ``v2v_days``, ``patient_wait_days``
        (days waited for suites, crews and downtime, all the patient's lots, harvests and
        repairs included), ``apheresis_day``,
        ``outcome`` (0 treated, 1 lost waiting, 2 lost after failed lots, 3 not started by
        the end, 4 a PPQ lot, -1 padding).

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> months = pd.date_range("2027-01-01", periods=3, freq="MS")
    >>> demand = xr.DataArray(np.full((2, 3, 1, 1), 4), dims=("draw", "month", "program",
    ...     "stream"), coords={"draw": [0, 1], "month": months, "program": ["a"],
    ...     "stream": ["commercial"]}, name="patients")
    >>> twin = simulate_twin(demand, "car-t-autologous-manual", 4, operators=20, seed=1)
    >>> bool((twin["v2v_days"] > 20).sum() > 0)
    True
    """
    from capacity import _twin
    from capacity.simulation import prepare_facility

    crews = CrewConfig() if crews is None else crews
    downtime = DowntimeConfig() if downtime is None else downtime
    v2v = VeinToVeinConfig() if vein_to_vein is None else vein_to_vein
    for value, kind, name in (
        (crews, CrewConfig, "crews"),
        (downtime, DowntimeConfig, "downtime"),
        (v2v, VeinToVeinConfig, "vein_to_vein"),
    ):
        if not isinstance(value, kind):
            raise InputError(f"{name}: expected a {kind.__name__}, got {type(value).__name__}")
    demand = as_demand(demand)
    prep = prepare_facility(
        demand,
        process,
        qc_fte=None,
        max_wait_days=None,
        cryopreserved=True,
        wait_threshold_days=0.0,
        service=service,
        seed=seed,
        opening=opening,
        params=params,
    )
    draws = prep.draws
    per_suite = int(prep.slots_per_suite)  # slots of a suite: a lot holds width[p] of them
    if isinstance(suites, pd.Series):  # suites per month: modules come online on their day
        from capacity.simulation import extend_suites, slot_online_days

        if prep.n_hist:
            suites = extend_suites(suites, pd.DatetimeIndex(demand["month"].values), prep.n_hist)
        online = slot_online_days(suites, prep.months, 1)
        first = int((online <= 0).sum())
        if first < 1:
            raise InputError("suites: expected at least one suite installed in the first month")
        n_suites = np.full(draws, first * per_suite, np.int64)
        later = np.repeat(online[first:][np.isfinite(online[first:])], per_suite)
        suite_online = np.tile(later, (draws, 1))
    else:
        n_suites = _suites(suites, draws) * per_suite
        suite_online = np.zeros((draws, 0))
    qualified = _headcount(operators, draws, prep.months, prep.n_hist)
    crews_on_shift = np.ascontiguousarray(crews.crews_on_shift(qualified))
    n_proc = len(prep.processes)
    contamination = np.stack(
        [
            downtime.contamination_rate.sample_per_draw(
                draws, stream_rng(prep.seed, "twin-contamination", s.name)
            )
            for s in prep.processes
        ],
        axis=1,
    )
    transport_kind = np.zeros(3, np.int64)
    transport_args = np.zeros((3, 3))
    transport_mean = np.zeros((draws, 3))
    from capacity.simulation import lot_distribution

    for i, par in enumerate((v2v.inbound_days, v2v.outbound_days, v2v.release_to_infusion_days)):
        (transport_kind[i], transport_args[i]), transport_mean[:, i] = lot_distribution(
            par, np.full(draws, par.mean)
        )
    years = len(prep.months) // 12 + 2
    shut_start, shut_end = downtime.shutdowns(prep.months[0], years)
    starts = prep.starts
    ends = prep.starts + prep.days
    per_proc = np.ones(n_proc)
    lot_ready, lot_released, patient_wait, outcome, final_lot, after_release, monthly = (
        _twin.simulate_twin(
            np.ascontiguousarray(prep.arrivals),
            np.ascontiguousarray(prep.is_ppq),
            np.ascontiguousarray(prep.job_process),
            prep.keys,
            prep.culture[0],
            prep.culture[1],
            np.ascontiguousarray(prep.culture_mean),
            prep.changeover[0],
            prep.changeover[1],
            np.ascontiguousarray(prep.changeover_mean),
            np.ascontiguousarray(prep.failure_rate),
            np.ascontiguousarray(prep.turnaround),
            prep.attempts - 1,
            np.ascontiguousarray(contamination),
            int(downtime.contamination_remakes),
            per_proc * downtime.decontamination_days,
            per_proc * downtime.equipment_failures_per_suite_year / 365.0,
            per_proc * downtime.repair_days,
            np.full(n_proc, v2v.new_apheresis),
            float(v2v.reapheresis_days),
            per_proc * crews.start_hours,
            per_proc * crews.harvest_hours,
            transport_kind,
            transport_args,
            transport_mean,
            float(v2v.dropout_per_day),
            n_suites,
            suite_online,
            prep.width,
            crews_on_shift,
            float(crews.window_hours),
            shut_start,
            shut_end,
            starts,
            ends,
        )
    )
    most = lot_ready.shape[1] // max(prep.arrivals.shape[1], 1)
    if len(prep.processes) == 1:
        lot_process = np.zeros(lot_ready.shape, np.int64)
    else:
        lot_process = np.repeat(prep.job_process, most, axis=1)
    stage = nominal_qc_stage(prep.turnaround) if qc_stage is None else qc_stage
    if isinstance(stage, QCLabStage):
        stage.use_calendar(prep.months)
    qc = stage(lot_ready, lot_process, prep.keys)
    return _summarise(
        prep,
        v2v,
        qc,
        lot_ready,
        patient_wait,
        outcome,
        final_lot,
        after_release,
        monthly,
        crews_on_shift,
    )


def _summarise(
    prep,
    v2v,
    qc,
    lot_ready,
    patient_wait,
    outcome,
    final_lot,
    after_release,
    monthly,
    crews_on_shift,
) -> xr.Dataset:
    from capacity import _twin

    draws, n_patients = prep.arrivals.shape
    months = prep.months
    n_months = len(months)
    ends = np.ascontiguousarray(prep.starts + prep.days, float)
    qc_names = tuple(qc.resources) if qc.wait.shape[-1] else ()
    causes = ["suites", "crews", "downtime", *qc_names]
    # one compiled pass over each draw's patients (``_twin.summarise_chunk``), draws in
    # chunks on the kernel's threads
    count, lost_w, lost, over, treated_by_month = (np.zeros((draws, n_months)) for _ in range(5))
    wait_sum = np.zeros((draws, n_months, len(causes)))
    p50 = np.empty((draws, n_months))
    p90 = np.empty((draws, n_months))
    v2v_days, wait_days, apheresis = (np.empty((draws, n_patients)) for _ in range(3))
    arrivals = np.ascontiguousarray(prep.arrivals, float)
    _twin.in_chunks(
        _twin.summarise_chunk,
        (
            arrivals,
            np.ascontiguousarray(prep.is_ppq, np.bool_),
            outcome,
            final_lot,
            after_release,
            patient_wait,
            np.ascontiguousarray(qc.release, float),
            np.ascontiguousarray(qc.wait, float),
            ends,
            float(v2v.target_days),
        ),
        (count, lost_w, lost, over, treated_by_month, wait_sum, p50, p90, v2v_days, wait_days,
         apheresis),
        draws,
    )  # fmt: skip
    with np.errstate(invalid="ignore", divide="ignore"):
        share_over = over / count
        wait_mean = wait_sum / count[..., None]
        wait_share = wait_sum / wait_sum.sum(axis=2, keepdims=True)
    dims = ("draw", "month")
    result = xr.Dataset(
        {
            "patients": (dims, count, {"units": "patients/month"}),
            "patients_treated": (dims, treated_by_month, {"units": "patients/month"}),
            "patients_lost": (dims, lost, {"units": "patients/month"}),
            "patients_lost_waiting": (dims, lost_w, {"units": "patients/month"}),
            "v2v_p50_days": (dims, p50, {"units": "days"}),
            "v2v_p90_days": (dims, p90, {"units": "days"}),
            "share_v2v_over_target": (
                dims,
                share_over,
                {"units": "fraction", "target_days": v2v.target_days},
            ),
            "lots_waiting": (dims, monthly[..., _twin.LOTS_WAITING] / prep.days, {"units": "lots"}),
            "suites_busy": (
                dims,
                monthly[..., _twin.SUITES_BUSY] / prep.days / prep.slots_per_suite,
                {"units": "suites"},
            ),
            "crews_on_shift": (dims, crews_on_shift.astype(float), {"units": "crews"}),
            "wait_days": ((*dims, "cause"), wait_mean, {"units": "days per patient"}),
            "wait_share": ((*dims, "cause"), wait_share, {"units": "fraction"}),
            "v2v_days": (("draw", "patient"), v2v_days, {"units": "days"}),
            "patient_wait_days": (
                ("draw", "patient"),
                wait_days,
                {"units": "days"},
            ),
            "apheresis_day": (
                ("draw", "patient"),
                apheresis,
                {"units": "days since the first month"},
            ),
            "outcome": (("draw", "patient"), outcome),
        },
        coords={"draw": np.arange(draws), "month": months, "cause": causes},
        attrs={"seed": prep.seed, "process": ", ".join(s.name for s in prep.processes)},
    )
    if prep.n_hist:
        result = result.isel(month=slice(prep.n_hist, None))
    return result


# per draw and month metrics of twin_bands, in the order of vein_to_vein.csv
BAND_METRICS = (
    "patients",
    "patients_treated",
    "patients_lost_waiting",
    "v2v_p50_days",
    "v2v_p90_days",
    "share_v2v_over_target",
    "lots_waiting",
    "wait_share",
)


def twin_bands(
    twin: xr.Dataset, quantiles: Sequence[float] = (0.1, 0.5, 0.9), *, program: str = "all"
) -> pd.DataFrame:
    """The twin's bands per month, the rows of ``vein_to_vein.csv``: ``month, program,
    metric, unit, mean`` and one column per quantile (``p10, p50, p90``).

    Metrics: :data:`BAND_METRICS` of :func:`simulate_twin` (``wait_share[cause]`` one per
    cause). A month in which a draw has no patient (or nobody waited) has no
    ``v2v_p50_days``, ``v2v_p90_days``, ``share_v2v_over_target`` or ``wait_share`` in that
    draw: their mean and quantiles are over the draws that have one (NaN if none has).

    Examples
    --------
    >>> months = pd.date_range("2027-01-01", periods=1, freq="MS")
    >>> twin = xr.Dataset({"patients": (("draw", "month"), [[1.0], [3.0]])},
    ...     coords={"month": months})
    >>> twin_bands(twin, (0.5,))[["metric", "mean", "p50"]].values.tolist()
    [['patients', 2.0, 2.0]]
    """
    import warnings

    q = np.asarray(quantiles, float)
    if q.ndim != 1 or not ((q > 0) & (q < 1)).all():
        raise InputError(f"quantiles: expected numbers strictly between 0 and 1, got {quantiles}")
    frames = []
    for name in BAND_METRICS:
        if name not in twin:
            continue
        var = twin[name].transpose("draw", "month", ...)
        labels = [None] if "cause" not in var.dims else list(var["cause"].values)
        for label in labels:
            values = var.values if label is None else var.sel(cause=label).values
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN months
                mean = np.nanmean(values, axis=0)
                bands = np.nanquantile(values, q, axis=0)
            frame = pd.DataFrame(
                {
                    "month": pd.DatetimeIndex(twin["month"].values),
                    "program": program,
                    "metric": name if label is None else f"{name}[{label}]",
                    "unit": var.attrs.get("units", ""),
                    "mean": mean,
                }
            )
            for p, row in zip(q, bands, strict=True):
                frame[f"p{100 * p:g}"] = row
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _fewest_operators(crews: CrewConfig, n_crews: int) -> int:
    """The fewest qualified operators whose :meth:`CrewConfig.crews_on_shift` is ``n_crews``
    or more (the rounding of ``crews_on_shift`` decides, not the closed form alone)."""

    def on_shift(count: int) -> int:
        return int(crews.crews_on_shift(np.array([count]))[0])

    count = max(
        0, int(np.ceil(n_crews * crews.crew_size * crews.shifts_per_day / crews.attendance))
    )
    while count > 0 and on_shift(count - 1) >= n_crews:
        count -= 1
    while on_shift(count) < n_crews:
        count += 1
    return count


def size_operators(
    demand: xr.DataArray,
    process: ProcessSpec | str | dict,
    suites: int | Sequence[int] | np.ndarray | pd.Series,
    *,
    crews: CrewConfig | None = None,
    downtime: DowntimeConfig | None = None,
    vein_to_vein: VeinToVeinConfig | None = None,
    target_days: float | None = None,
    epsilon: float = 0.05,
    qc_stage: Callable[..., QCStageResult] | None = None,
    seed: int = 0,
    service: str = "process",
    opening: Any = None,
    params: xr.Dataset | None = None,
    low: int | None = None,
    high: int = 10_000,
) -> xr.Dataset:
    """The fewest qualified operators so that P(vein-to-vein > ``target_days``) <= ``epsilon``.

    One headcount for the whole horizon and every draw (the twin's ``operators`` as one
    number): the fewest count in ``[low, high]`` such that, pooled over all draws and months
    of apheresis, the share of patients not infused within ``target_days`` of their first
    apheresis (lost patients and patients not treated by the end count as over, as in
    :func:`simulate_twin`'s ``share_v2v_over_target``) is at most ``epsilon``.

    The twin's outcome depends on the headcount only through the crews on shift
    (:meth:`CrewConfig.crews_on_shift`), so the search runs over crew counts and returns,
    for the crew count found, the fewest operators that give it (never below ``low``).
    Every count is simulated with the same seed, hence the same patients, lots and random
    numbers (the kernel draws each number from a hash of the draw, purpose and lot, not from
    the crews: :mod:`capacity._twin`), so the counts are compared on common random numbers.
    The search first checks ``high`` (an :class:`InputError` if even it misses the level),
    then ``low``, then bisects between them: about ``log2(crews at high)`` twin runs. It
    assumes the share over target does not rise with more crews; with first-come-first-served
    starts and harvests served before starts that holds in the cases tested, but it is not
    proved for every setting (e.g. an earlier start moved next to a shutdown).

    Parameters
    ----------
    demand, process, suites, crews, downtime, vein_to_vein, qc_stage, service, opening, params
        As in :func:`simulate_twin` (``suites`` fixed while operators are sized).
    target_days
        Vein-to-vein target in days; default ``vein_to_vein.target_days``.
    epsilon
        Largest share of patients over the target, in (0, 1).
    seed
        Seed of every run (the same for every count: common random numbers).
    low, high
        Operator counts the search may return; ``low`` defaults to the fewest that give one
        crew on shift.

    Returns
    -------
    xarray.Dataset
        Scalars ``operators_needed``, ``crews_on_shift`` (at that count) and
        ``share_over_target`` (at that count); per count simulated (dim ``tried``, sorted):
        ``tried_crews`` and ``tried_share_over_target``.
    """
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float) or not 0 < epsilon < 1:
        raise InputError(f"epsilon: expected a share in (0, 1), got {epsilon!r}")
    crews = CrewConfig() if crews is None else crews
    if not isinstance(crews, CrewConfig):
        raise InputError(f"crews: expected a CrewConfig, got {type(crews).__name__}")
    v2v = VeinToVeinConfig() if vein_to_vein is None else vein_to_vein
    if not isinstance(v2v, VeinToVeinConfig):
        raise InputError(f"vein_to_vein: expected a VeinToVeinConfig, got {type(v2v).__name__}")
    target = v2v.target_days if target_days is None else target_days
    target = _number(target, "target_days", strict=True)
    v2v = replace(v2v, target_days=target)
    high = _whole(high, "high (operators)", 0)
    low = _fewest_operators(crews, 1) if low is None else _whole(low, "low (operators)", 0)
    if low > high:
        raise InputError(f"low: expected at most high ({high}) operators, got {low}")

    tried: dict[int, tuple[int, float]] = {}  # operators -> (crews, share over target)

    def share(n_crews: int) -> float:
        count = max(low, _fewest_operators(crews, n_crews))
        if count not in tried:
            twin = simulate_twin(
                demand,
                process,
                suites,
                operators=count,
                crews=crews,
                downtime=downtime,
                vein_to_vein=v2v,
                qc_stage=qc_stage,
                service=service,
                seed=seed,
                opening=opening,
                params=params,
            )
            patients = twin["patients"].values
            over = np.nansum(twin["share_v2v_over_target"].values * patients)
            total = patients.sum()
            tried[count] = (n_crews, float(over / total) if total > 0 else 0.0)
        return tried[count][1]

    def on_shift(count: int) -> int:
        return int(crews.crews_on_shift(np.array([count]))[0])

    k_lo, k_hi = on_shift(low), on_shift(high)
    at_high = share(k_hi)
    if at_high > epsilon:
        raise InputError(
            f"high: {high} operators ({k_hi} crews on shift) leave {at_high:.1%} of "
            f"patients over {target:g} days vein-to-vein, more than epsilon = {epsilon:g}; "
            "raise high (or add suites)"
        )
    if share(k_lo) <= epsilon:
        k_hi = k_lo
    while k_hi - k_lo > 1:  # k_lo misses, k_hi meets
        mid = (k_lo + k_hi) // 2
        if share(mid) <= epsilon:
            k_hi = mid
        else:
            k_lo = mid
    needed = max(low, _fewest_operators(crews, k_hi))
    counts = sorted(tried)
    return xr.Dataset(
        {
            "operators_needed": ((), needed, {"units": "qualified operators"}),
            "crews_on_shift": ((), tried[needed][0], {"units": "crews"}),
            "share_over_target": ((), tried[needed][1], {"units": "fraction"}),
            "tried_crews": ("tried", [tried[c][0] for c in counts], {"units": "crews"}),
            "tried_share_over_target": (
                "tried",
                [tried[c][1] for c in counts],
                {"units": "fraction"},
            ),
        },
        coords={"tried": counts},
        attrs={"target_days": target, "epsilon": epsilon, "seed": seed},
    )
