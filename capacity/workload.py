"""The arithmetic of requirements for a block of draws: lots, suite-days, QC hours and FTEs.

:func:`capacity.requirements` lays out a :class:`RequirementsJob` (programs, processes,
months, opening lots, resource labels) and hands it, with the demand of some draws and their
process parameters, to :func:`compute_draws`, which works through blocks of about
``CHUNK_CELLS`` draw-months. For every block:

1. lots per program: patients + PPQ lots + re-runs, the failures of each attempt binomial
   (:func:`_lots`), each program, attempt and block of ``job.rng_block`` draws on its own
   random stream (:class:`_FailureStreams`);
2. resources once per output unit (a program, or all programs sharing a process): lots are
   spread over months by the process's kernels (:mod:`capacity.occupancy`) into suite-days,
   QC hours at harvest, QA hours at release and operator hours over culture, and hours over
   productive hours per FTE give FTEs (:func:`_resources`). Resources are linear in lots for
   a given process, so summing the lots of a unit first gives the same totals.

The formulas and units are those listed in :func:`capacity.requirements`.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from capacity.occupancy import month_kernels, spread
from capacity.process import ProcessSpec

__all__ = ["CHUNK_CELLS", "FIXED_WORK", "RequirementsJob", "compute_draws"]

FIXED_WORK = "fixed_work"  # qc_hours label of QC work that does not scale with lots
CHUNK_CELLS = 2_000_000  # draw-months per block of requirements (a few MB per array)
_COMPUTED = (
    "lots",
    "suite_days",
    "suites",
    "qc_hours",
    "qc_fte",
    "operator_hands_on_fte",
    "operator_crew_fte",
    "qa_fte",
    "instrument_hours",
    "remanufactured_lots",
    "patients_lost",
)
_RESOURCE_DIMS = {"qc_hours": "assays", "instrument_hours": "instruments"}


@dataclass(eq=False)
class RequirementsJob:
    """Everything a block of draws needs besides its demand and parameters.

    Built once per call of :func:`capacity.requirements`; the same object is handed to every
    block (and, for dask-backed demand, to every chunk's task).
    """

    seed: int
    programs: list[str]
    specs: dict[str, ProcessSpec]
    units: dict[str, list[str]]  # output unit -> its programs
    by_program: bool
    months: pd.DatetimeIndex  # with the months of opening history first
    n_hist: int
    n_out: int
    history: np.ndarray  # (1, n_hist, program)
    assays: list[str]
    instruments: list[str]
    month_share: np.ndarray  # (month,) fraction of a year in each month
    month_days: np.ndarray  # (month,) calendar days in each month
    patient_idx: list[int]  # positions of the patient streams along demand's stream dim
    ppq_idx: list[int]  # position of the ppq stream (lots, never re-run)
    n_k: dict[str, dict[str, int]]  # process -> kernel -> month offsets (from all draws)
    rng_block: int

    def shape(self, name: str, rows: int) -> tuple[int, ...]:
        lead = (rows, self.n_out, len(self.units)) if self.by_program else (rows, self.n_out)
        extra = _RESOURCE_DIMS.get(name)
        return (*lead, len(getattr(self, extra))) if extra else lead

    def outputs(self, rows: int) -> dict[str, np.ndarray]:
        return {k: np.zeros(self.shape(k, rows)) for k in _COMPUTED}

    def fields(self) -> dict[str, slice]:
        """Where each output sits along the last axis of a packed block."""
        out, j = {}, 0
        for k in _COMPUTED:
            width = len(getattr(self, _RESOURCE_DIMS[k])) if k in _RESOURCE_DIMS else 1
            out[k] = slice(j, j + width)
            j += width
        return out

    def n_fields(self) -> int:
        """Length of the last axis of a packed block."""
        return max(where.stop for where in self.fields().values())

    def unpack(self, packed: Any) -> dict[str, Any]:
        """Each output's view into a packed block (draw, month, unit, field), NumPy or dask."""
        data = {}
        for k, where in self.fields().items():
            view = packed[..., where] if k in _RESOURCE_DIMS else packed[..., where.start]
            data[k] = view if self.by_program else view[:, :, 0]
        return data


class _FailureStreams:
    """Random streams of lot failures: one per program, attempt and block of draws.

    The failures of draws ``[k * block, (k + 1) * block)`` in attempt ``r`` of a program come
    from the ``k``-th spawned child of the seed sequence ``(seed, "failures", program,
    "attempt-r")``, drawn in draw order. A stream left part-way through its block is kept for
    the next call, so consecutive blocks of any size give the numbers of all draws at once;
    a chunk that starts on a multiple of ``block`` needs no other chunk's draws.
    """

    def __init__(self, seed: int, block: int):
        self.seed, self.block = seed, block
        self.live: dict[tuple[str, int, int], np.random.Generator] = {}

    def _stream(self, program: str, attempt: int, k: int) -> np.random.Generator:
        words = [zlib.crc32(w.encode()) for w in ("failures", program, f"attempt-{attempt}")]
        return np.random.default_rng(np.random.SeedSequence([self.seed, *words], spawn_key=(k,)))

    def binomial(
        self,
        program: str,
        attempt: int,
        start: int,
        n: np.ndarray,
        p: np.ndarray,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """``Binomial(n, p)`` for the rows of draws ``start, start + 1, ...``; ``n`` is
        (draw, month), ``p`` (draw,); into ``out`` (C-contiguous int64) if given."""
        if out is None:
            out = np.empty(n.shape, np.int64)
        i, rows = 0, n.shape[0]
        while i < rows:
            k, offset = divmod(start + i, self.block)
            stop = min(rows, i + self.block - offset)
            key = (program, attempt, k)
            rng = self.live.pop(key, None)
            if rng is None:
                rng = self._stream(program, attempt, k)
            _binomial(rng, n[i:stop], p[i:stop], out[i:stop])
            if offset + stop - i < self.block:  # the block goes on in the next call
                self.live[key] = rng
            i = stop
        return out


def _binomial(rng: np.random.Generator, n: np.ndarray, p: np.ndarray, out: np.ndarray) -> None:
    """``out[...] = rng.binomial(n, p[:, None])``, the same numbers and the same state of
    ``rng`` afterwards: a numba loop draws by inversion, and NumPy draws the cells from the
    first one that needs its other algorithm (BTPE) on (:mod:`capacity._binomial`)."""
    from capacity._binomial import binomial_rows  # numba: imported when lots are drawn

    # Generator.binomial's own checks (the loop would draw 0 or n from a bad rate)
    if not ((p >= 0) & (p <= 1)).all():
        raise ValueError(f"failure rate outside [0, 1] (or NaN): {p[~((p >= 0) & (p <= 1))][:3]}")
    if n.size and n.min() < 0:
        raise ValueError("negative number of lots")
    done = binomial_rows(rng, n, p, out)
    if done < n.size:
        rest = slice(done, None)
        out.reshape(-1)[rest] = rng.binomial(
            n.reshape(-1)[rest], np.broadcast_to(p[:, None], n.shape).reshape(-1)[rest]
        )


def _lots(
    job: RequirementsJob,
    values: np.ndarray,
    start: int,
    par: Mapping[str, xr.Dataset],
    failures: _FailureStreams,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lots started, re-runs and patients lost of every program, each (program, draw, month).

    Lots = patients + PPQ lots + re-runs. Re-run ``r`` follows the failures of attempt ``r``:
    ``F_r ~ Binomial(F_{r - 1}, failure_rate)``, ``F_0`` = patients, for ``r < max_remanufacture``;
    the failures of the last attempt are the patients lost. Each program and attempt draws
    from its own streams (:class:`_FailureStreams`).
    """
    patients, lots = _split_streams(values, job.patient_idx, job.ppq_idx)
    rerun = np.empty_like(patients)
    lost = np.empty_like(patients)
    for p_i, program in enumerate(job.programs):
        spec = job.specs[program]
        failure = par[spec.name]["failure_rate"].values
        attempt = patients[p_i]
        if spec.max_remanufacture == 0:
            rerun[p_i] = 0
        for r in range(spec.max_remanufacture):
            if r == 0:  # the first re-runs straight into their place
                attempt = failures.binomial(program, r, start, attempt, failure, out=rerun[p_i])
            else:
                attempt = failures.binomial(program, r, start, attempt, failure)
                rerun[p_i] += attempt
        failures.binomial(program, spec.max_remanufacture, start, attempt, failure, out=lost[p_i])
    lots += rerun
    return lots, rerun, lost


def compute_draws(
    job: RequirementsJob,
    values: np.ndarray,
    start: int,
    params: Mapping[str, xr.Dataset],
    data: Mapping[str, np.ndarray],
) -> None:
    """Requirements of the draws ``start, start + 1, ...`` (demand ``values``) into ``data``.

    Works through blocks of about CHUNK_CELLS draw-months; ``params`` are those of these
    draws. ``start`` must be a multiple of ``job.rng_block`` unless it is 0.
    """
    failures = _FailureStreams(job.seed, job.rng_block)
    n = values.shape[0]
    block = max(1, CHUNK_CELLS // max(1, len(job.months) * len(job.programs)))
    for a in range(0, n, block):
        rows = slice(a, min(n, a + block))
        par = {name: p.isel(draw=rows) for name, p in params.items()}
        _block(job, values[rows], start + a, par, failures, {k: v[rows] for k, v in data.items()})


def _block(
    job: RequirementsJob,
    values: np.ndarray,
    start: int,
    par: Mapping[str, xr.Dataset],
    failures: _FailureStreams,
    data: Mapping[str, np.ndarray],
) -> None:
    """Outputs of one block of draws (demand ``values``: draw, month, program, stream) into
    ``data`` (views of the outputs' rows of these draws, overwritten)."""
    n_rows, n_hist, n_months = values.shape[0], job.n_hist, len(job.months)
    specs, programs = job.specs, job.programs
    # lots of every program in the block first: a process's fixed QC/QA work is shared among
    # the programs made with it in proportion to their lots
    lots, rerun, lost = _lots(job, values, start, par, failures)

    def made(idx: list[int]) -> np.ndarray:
        """Lots started per month of the programs ``idx``, opening lots (months before the
        start: only the work still to come counts) first."""
        out = np.empty((n_rows, n_months))
        out[:, n_hist:] = _total(lots, idx)
        out[:, :n_hist] = job.history[:, :, idx].sum(axis=-1)
        return out

    kernels: dict[str, dict[str, np.ndarray]] = {}
    for u_i, members in enumerate(job.units.values()):
        spec = specs[members[0]]
        if spec.name not in kernels:
            kernels[spec.name] = month_kernels(job.months, par[spec.name], job.n_k[spec.name])
        idx = [programs.index(m) for m in members]
        sharing = [i for i, p in enumerate(programs) if specs[p].name == spec.name]
        unit_lots = made(idx)
        if len(idx) == len(sharing):  # the unit is the whole process: its share is 1
            share = 1.0
        else:
            process_lots = made(sharing)
            with np.errstate(invalid="ignore", divide="ignore"):
                share = np.where(
                    process_lots > 0, unit_lots / process_lots, len(members) / len(sharing)
                )
        result = _resources(
            unit_lots,
            spec,
            par[spec.name],
            kernels[spec.name],
            job.month_share,
            job.month_days,
            job.assays,
            job.instruments,
            share,
        )
        for k, v in result.items():
            target = data[k][:, :, u_i] if job.by_program else data[k]
            if job.by_program or u_i == 0:  # the first (or only) unit into this target
                target[...] = v[:, n_hist:]  # drop the months before the start
            else:  # facility totals of several processes: summed in unit order
                target += v[:, n_hist:]
        for k, v in (("remanufactured_lots", rerun), ("patients_lost", lost)):
            target = data[k][:, :, u_i] if job.by_program else data[k]
            if job.by_program or u_i == 0:
                target[...] = _total(v, idx)
            else:
                target += _total(v, idx)


def _split_streams(
    values: np.ndarray, patient_idx: list[int], ppq_idx: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Patients and patients + PPQ lots, int64 (program, draw, month), from demand ``values``
    (draw, month, program, stream): one strided read per stream, each program's months of
    a draw contiguous for the failure draws."""
    shape = (values.shape[2], values.shape[0], values.shape[1])
    patients = (np.empty if patient_idx else np.zeros)(shape, np.int64)
    by_draw = patients.transpose(1, 2, 0)  # (draw, month, program) view
    if len(patient_idx) == 1:
        np.copyto(by_draw, values[..., patient_idx[0]], casting="unsafe")
    elif len(patient_idx) > 1:
        first, second, *rest = patient_idx
        np.add(values[..., first], values[..., second], out=by_draw, dtype=np.int64)
        for i in rest:
            np.add(by_draw, values[..., i], out=by_draw, dtype=np.int64)
    if not ppq_idx:
        return patients, patients.copy()
    lots = np.empty(shape, np.int64)
    lots_by_draw = lots.transpose(1, 2, 0)
    np.add(by_draw, values[..., ppq_idx[0]], out=lots_by_draw, dtype=np.int64)
    for i in ppq_idx[1:]:
        np.add(lots_by_draw, values[..., i], out=lots_by_draw, dtype=np.int64)
    return patients, lots


def _total(per_program: np.ndarray, idx: list[int]) -> np.ndarray:
    """Sum over the programs ``idx`` of a (program, draw, month) array (exact: integers)."""
    if idx == list(range(idx[0], idx[-1] + 1)):
        return per_program[idx[0] : idx[-1] + 1].sum(axis=0)
    return per_program[idx].sum(axis=0)


def _resources(
    lots: np.ndarray,
    spec: ProcessSpec,
    par: xr.Dataset,
    kernels: dict[str, np.ndarray],
    month_share: np.ndarray,
    month_days: np.ndarray,
    assays: list[str],
    instruments: list[str],
    fixed_share: np.ndarray | float = 1.0,
) -> dict[str, np.ndarray]:
    """Resources for lots of one process (arrays of shape (draw, month[, assay|instrument]))."""
    col = lambda name: par[name].values[:, None]  # noqa: E731 - (draw, 1) for broadcasting
    lots = np.asarray(lots, float)
    suite_days = spread(lots, kernels["slot"]) / spec.lots_per_suite
    culture_days = spread(lots, kernels["culture"])
    harvested = spread(lots, kernels["harvest"])
    released = spread(lots, kernels["release"])
    # one calendar: lots hold suites on calendar days (culture does not stop), crews staff
    # the occupied suites on operating days (a share operating_days_per_year / 365, at most 1)
    operating_share = np.minimum(col("operating_days_per_year") / 365.0, 1.0)
    productive = col("productive_hours_per_fte_year") * month_share  # h per FTE in the month

    per_test = par["qc_tests_per_lot"] * (1 + par["qc_retest_rate"])  # (draw, assay)
    qc_factor = (per_test * par["qc_hands_on_hours"]).values  # hours per lot
    qc_hours = np.zeros((*lots.shape, len(assays)))
    where = [assays.index(a.assay) for a in spec.qc]
    if where and where == list(range(where[0], where[0] + len(where))):  # contiguous: no temporary
        np.multiply(
            harvested[:, :, None],
            qc_factor[:, None, :],
            out=qc_hours[:, :, where[0] : where[-1] + 1],
        )
    else:
        qc_hours[:, :, where] = harvested[:, :, None] * qc_factor[:, None, :]
    # work that does not scale with lots: per suite in use, and the process's fixed share
    suites = suite_days / month_days
    if FIXED_WORK in assays:
        qc_hours[:, :, assays.index(FIXED_WORK)] = (
            suites * col("qc_hours_per_suite_month") + fixed_share * col("qc_fixed_hours_per_month")
        ) * (month_days / (365.25 / 12))
    qa_other = (
        suites * col("qa_hours_per_suite_month") + fixed_share * col("qa_fixed_hours_per_month")
    ) * (month_days / (365.25 / 12))

    inst_factor = (per_test * par["qc_instrument_hours"]).values
    instrument_hours = np.zeros((*lots.shape, len(instruments)))
    for j, assay in enumerate(spec.qc):
        if assay.instrument:
            i = instruments.index(assay.instrument)
            instrument_hours[:, :, i] += harvested * inst_factor[:, None, j]

    hands_on_hours = culture_days / col("culture_days") * col("operator_hours_per_lot")
    crew_hours = (
        suite_days
        * operating_share
        * spec.shifts_per_day
        * spec.min_operators_per_suite_shift
        * col("hours_per_shift")
    )
    return {
        "lots": lots,
        "suite_days": suite_days,
        "suites": suites,
        "qc_hours": qc_hours,
        "qc_fte": qc_hours.sum(axis=-1) / productive,
        "operator_hands_on_fte": hands_on_hours / productive,
        "operator_crew_fte": crew_hours / productive,
        "qa_fte": (released * col("qa_hours_per_lot") + qa_other) / productive,
        "instrument_hours": instrument_hours,
    }
