"""`pmcap run`: scenario -> fitted models -> portfolio draws -> requirements -> decisions.

Stages (timed; the CLI shows them as progress): ``fit`` (enrollment per trial, phase
transitions, uptake analogs; cached), ``compose`` (the portfolio's draws), ``requirements``,
``decisions`` (shortfall, module and hiring plans, service-level suites, drivers).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from capacity.errors import InputError
from pmcap.scenario import ProgramConfig, Scenario

__all__ = [
    "RunResult",
    "run_scenario",
    "check_inputs",
    "fit_jobs",
    "fit_models",
    "Fits",
    "DIAGNOSTIC_LIMITS",
]

# a fit "fails" its diagnostics beyond these (R-hat, divergences, bulk ESS)
DIAGNOSTIC_LIMITS = {"r_hat_max": 1.01, "divergences": 0, "ess_bulk_min": 400}
ROLES = ("operator_fte", "qc_fte", "qa_fte")


@dataclass
class RunResult:
    scenario: Scenario
    world: Any  # forecast.PortfolioDraws
    requirements: xr.Dataset  # by program
    total: xr.Dataset  # facility totals
    installed: dict[str, Any]
    shortfall: pd.DataFrame
    plans: dict[str, Any]
    service: dict[str, Any] | None
    service_process: str
    drivers: pd.DataFrame
    diagnostics: dict[str, dict[str, Any]]
    fit_sources: dict[str, str]
    processes: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def diagnostics_ok(self) -> bool:
        return all(diagnostics_pass(d) for d in self.diagnostics.values())


def diagnostics_pass(d: dict[str, Any]) -> bool:
    if d.get("closed_form"):
        return True
    return (
        d["r_hat_max"] <= DIAGNOSTIC_LIMITS["r_hat_max"]
        and d["divergences"] <= DIAGNOSTIC_LIMITS["divergences"]
        and d["ess_bulk_min"] >= DIAGNOSTIC_LIMITS["ess_bulk_min"]
    )


Stage = Callable[[str], contextlib.AbstractContextManager]


@contextlib.contextmanager
def _no_progress(name: str) -> Iterator[None]:
    yield


# ------------------------------------------------------------------------------------------
# inputs (shared with `pmcap validate`: everything but sampling)
# ------------------------------------------------------------------------------------------
def _read_csv(path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False).replace({"": None})
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None


def _enrollment_frames(scenario: Scenario, p: ProgramConfig) -> dict[str, Any]:
    e = p.enrollment
    frames = {}
    for key in ("patients", "counts", "sites"):
        path = getattr(e, key)
        frames[key] = None if path is None else _read_csv(scenario.resolve(path))
    if frames["patients"] is not None and "treated" in frames["patients"].columns:
        treated = frames["patients"]["treated"].str.strip().str.lower()
        bad = treated.notna() & ~treated.isin(["true", "false", "1", "0", "yes", "no"])
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(
                f"{scenario.resolve(e.patients)}: row {i + 2}: treated must be true, false or "
                f"empty, got {frames['patients']['treated'].iloc[i]!r}"
            )
        frames["patients"]["treated"] = treated.map(
            {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
        )
    if frames["counts"] is not None:
        for col in ("enrolled", "screened", "open"):
            if col in frames["counts"].columns:
                frames["counts"][col] = pd.to_numeric(frames["counts"][col], errors="coerce")
    if frames["sites"] is not None and "cap" in frames["sites"].columns:
        frames["sites"]["cap"] = pd.to_numeric(frames["sites"]["cap"], errors="coerce")
    return frames


def _rename_tables(exc: InputError, scenario: Scenario, p: ProgramConfig) -> InputError:
    """Enrollment errors name their table ('patients: row 3'); name the file instead."""
    msg = str(exc)
    for key in ("patients", "counts", "sites"):
        path = getattr(p.enrollment, key)
        if path is not None and msg.startswith(f"{key}:"):
            return InputError(f"{scenario.resolve(path)}:{msg[len(key) + 1 :]}")
    return InputError(f"program {p.name!r}: {msg}")


def _own_observations(scenario: Scenario, p: ProgramConfig) -> pd.DataFrame | None:
    """A launched product's own patients per period -> uptake observations."""
    from forecast.uptake import period_bounds

    if p.uptake is None or p.uptake.patients is None:
        return None
    path = scenario.resolve(p.uptake.patients)
    frame = _read_csv(path)
    missing = {"period", "patients"} - set(frame.columns)
    if missing:
        raise InputError(f"{path}: missing columns {sorted(missing)}; expected period,patients")
    rows = []
    seen: list[tuple[int, tuple[pd.Timestamp, pd.Timestamp]]] = []  # row, [start, end)
    for i, row in frame.iterrows():
        try:
            start, end = period_bounds(row["period"])
        except InputError:
            raise InputError(
                f"{path}: row {i + 2}: period {row['period']!r} not understood; expected "
                "2025Q3, FY2025, H1-2025 or 9M-2025"
            ) from None
        value = pd.to_numeric(row["patients"], errors="coerce")
        if not np.isfinite(value) or value < 0 or value != round(value):
            raise InputError(
                f"{path}: row {i + 2}: patients must be a whole number >= 0, got "
                f"{row['patients']!r}"
            )
        if end > pd.Timestamp(scenario.run.as_of) + pd.Timedelta(days=1):
            raise InputError(f"{path}: row {i + 2}: period {row['period']} ends after as_of")
        if start < pd.Timestamp(p.launch).to_period("M").to_timestamp():
            raise InputError(f"{path}: row {i + 2}: period {row['period']} is before launch")
        for j, other in seen:
            if start < other[1] and other[0] < end:
                raise InputError(
                    f"{path}: rows {j + 2} and {i + 2}: periods {frame['period'][j]} and "
                    f"{row['period']} overlap (their patients would count twice); give each "
                    "period once (cumulative figures such as 9M or FY: subtract the earlier "
                    "periods to get the quarter's own)"
                )
        seen.append((i, (start, end)))
        rows.append(
            {
                "products": (p.name,),
                "starts": (start,),
                "ends": (end,),
                "patients": float(value),
                "lower_bound": False,
                "first_start": start,
                "last_end": end,
            }
        )
    return pd.DataFrame(rows)


def scenario_processes(scenario: Scenario) -> dict[str, Any]:
    """Each program's process, with the scenario's ``[process.NAME]`` overrides applied."""
    from capacity import load_process
    from capacity.process import ProcessSpec

    out = {}
    for p in scenario.program:
        spec = p.process
        target = scenario.resolve(Path(spec)) if spec.endswith(".toml") else spec
        try:
            out[p.name] = load_process(target)
        except InputError as exc:
            raise InputError(f"program {p.name!r}: process: {exc}") from None
    names = sorted({s.name for s in out.values()})
    for name, fields in scenario.process.items():
        if name not in names:
            raise InputError(
                f"{scenario.path}: process.{name}: no program uses a process named {name!r}; "
                f"processes in this scenario: {', '.join(names)}"
            )
        if "name" in fields:
            raise InputError(f"{scenario.path}: process.{name}: the name cannot be changed")
        base = next(s for s in out.values() if s.name == name)
        spec = ProcessSpec.from_mapping(
            {**base.to_dict(), **fields}, f"{scenario.path}: process.{name}"
        )
        for program, s in out.items():
            if s.name == name:
                out[program] = spec
    return out


def _check_groups(scenario: Scenario) -> None:
    from forecast.data import phase_durations, phase_transitions
    from forecast.phase import transition_counts

    groups, _, _ = transition_counts(phase_transitions(), scenario.models.phase_table)
    durations = phase_durations()
    if "statistic" in durations.columns:
        durations = durations[durations["statistic"] == "mean"]
    duration_groups = sorted(set(durations["group"].astype(str)))
    for p in scenario.program:
        for key, value, known, where in (
            ("group", p.group, groups, f"table {scenario.models.phase_table!r}"),
            ("duration_group", p.duration_group, duration_groups, "the phase-duration table"),
        ):
            if value is not None and value not in known:
                raise InputError(
                    f"{scenario.path}: program {p.name!r}: {key} {value!r} is not a group of "
                    f"{where}; known groups: {', '.join(known)}"
                )


def check_inputs(scenario: Scenario) -> dict[str, Any]:
    """Every check short of sampling: processes, groups, CSV rows. Returns parsed inputs."""
    from forecast.enrollment import enrollment_data

    processes = scenario_processes(scenario)
    _check_groups(scenario)
    parsed: dict[str, Any] = {"processes": processes, "enrollment": {}, "observations": {}}
    for p in scenario.program:
        if p.enrollment is not None:
            frames = _enrollment_frames(scenario, p)
            try:
                enrollment_data(
                    frames["patients"],
                    frames["sites"],
                    counts=frames["counts"],
                    as_of=pd.Timestamp(scenario.run.as_of),
                    pauses=[(str(a), str(b)) for a, b in p.enrollment.pauses],
                    ramp_days=p.enrollment.ramp_days,
                )
            except InputError as exc:
                raise _rename_tables(exc, scenario, p) from None
            parsed["enrollment"][p.name] = frames
        obs = _own_observations(scenario, p)
        if obs is not None:
            parsed["observations"][p.name] = obs
    return parsed


# ------------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FitJob:
    """One fitted model a scenario needs: where it goes, its cache key and how to get it."""

    name: str  # key in the models dict ("enrollment:CART-A", "phase", "uptake")
    label: str  # key in diagnostics and sources ("enrollment (CART-A)")
    kind: str  # cache kind
    key: str  # cache key: a hash of data, settings and model version
    fit: Callable[[], Any] = field(compare=False, repr=False)
    load: Callable[[Path], Any] = field(compare=False, repr=False)


def fit_jobs(scenario: Scenario, parsed) -> list[FitJob]:
    """The models ``scenario`` needs, each with its cache key (no fitting here).

    Two scenarios that need a model with the same ``(kind, key)`` share one fit: a sweep
    fits each distinct key once.
    """
    from forecast import EnrollmentModel, PhaseTransitionModel, UptakeModel
    from pmcap.fits import PHASE_NUTS, REFERENCE_NUTS, fit_key, phase_key, uptake_key

    cfg = scenario.models
    nuts = {"draws": cfg.draws, "tune": cfg.tune, "chains": cfg.chains, "seed": cfg.seed}
    jobs = []
    for p in scenario.program:
        if p.enrollment is None:
            continue
        e, frames = p.enrollment, parsed["enrollment"][p.name]
        kw = {
            "target_accept": cfg.target_accept,
            "target": e.target,
            "calendar_effect": e.calendar_effect,
            "ramp_days": e.ramp_days,
            "pauses": [(str(a), str(b)) for a, b in e.pauses],
            **nuts,
        }
        blobs = [
            b"" if f is None else f.to_csv(index=False).encode()
            for f in (frames["patients"], frames["counts"], frames["sites"])
        ]
        key = fit_key("enrollment", {**kw, "as_of": str(scenario.run.as_of)}, *blobs)

        def fit(kw=kw, frames=frames, p=p):
            try:
                return EnrollmentModel(**kw).fit(
                    frames["patients"],
                    frames["sites"],
                    counts=frames["counts"],
                    as_of=pd.Timestamp(scenario.run.as_of),
                )
            except InputError as exc:
                raise _rename_tables(exc, scenario, p) from None

        jobs.append(
            FitJob(
                f"enrollment:{p.name}",
                f"enrollment ({p.name})",
                "enrollment",
                key,
                fit,
                EnrollmentModel.load,
            )
        )
    if any(p.stage == "pipeline" or p.registrational for p in scenario.program):
        table = cfg.phase_table
        jobs.append(
            FitJob(
                "phase",
                "phase transitions",
                "phase",
                phase_key(table),
                lambda: PhaseTransitionModel(table, **PHASE_NUTS).fit(),
                PhaseTransitionModel.load,
            )
        )
    if any(p.uptake is not None for p in scenario.program):
        jobs.append(
            FitJob(
                "uptake",
                "uptake analogs",
                "uptake",
                uptake_key(),
                lambda: UptakeModel(**REFERENCE_NUTS).fit(),
                UptakeModel.load,
            )
        )
    return jobs


@dataclass
class Fits:
    """Fitted models of one scenario, their diagnostics and where each came from."""

    models: dict[str, Any]
    diagnostics: dict[str, dict[str, Any]]
    sources: dict[str, str]


def fit_models(scenario: Scenario, parsed, use_cache: bool = True) -> Fits:
    """Every model ``scenario`` needs: shipped, cached or fitted now (then cached)."""
    from pmcap.fits import cached

    fits = Fits({}, {}, {})
    for job in fit_jobs(scenario, parsed):
        model, source = cached(job.kind, job.key, job.fit, job.load, use_cache=use_cache)
        fits.models[job.name] = model
        fits.diagnostics[job.label] = model.diagnostics()
        fits.sources[job.label] = source
    return fits


def _portfolio(scenario: Scenario, models: dict, parsed) -> Any:
    from forecast import Portfolio, Program

    run = scenario.run
    pf = Portfolio(
        start=pd.Timestamp(run.start),
        horizon_months=run.horizon_months,
        draws=run.draws,
        seed=run.seed,
        as_of=pd.Timestamp(run.as_of),
        phase_model=models.get("phase"),
        uptake_model=models.get("uptake"),
    )
    for p in scenario.program:
        kw: dict[str, Any] = {
            "group": p.group,
            "duration_group": p.duration_group,
            "in_progress": p.in_progress or None,
            "ppq_lots": p.ppq.lots,
            "ppq_window_months": p.ppq.window_months,
            "manufactured_share": p.manufactured_share,
            "lag_days": p.lag_days,
        }
        if p.enrollment is not None:
            e = p.enrollment
            kw.update(
                enrollment=models[f"enrollment:{p.name}"],
                registrational=p.registrational,
                follow_up_months=e.follow_up_months,
                filing_prep_months=e.filing_prep_months,
                pivotal_success=e.pivotal_success,
                manufactured_share=e.manufactured_share,
                lag_days=e.lag_days,
            )
        if p.stage == "pipeline":
            kw.update(
                phase=p.phase,
                phase_start=pd.Timestamp(p.phase_start),
                trial_plan={
                    k: {
                        "patients": v.patients,
                        **(
                            {}
                            if v.enrollment_months is None
                            else {"enrollment_months": v.enrollment_months}
                        ),
                    }
                    for k, v in p.trial_plan.items()
                },
            )
        if p.launch is not None:
            kw["launch"] = pd.Timestamp(p.launch)
        if p.uptake is not None:
            u = p.uptake
            kw.update(
                eligible_per_year=u.eligible_per_year,
                peak_share=u.peak_share,
                launch_lag_months=u.launch_lag_months,
                expansions=[(x.when, x.eligible_per_year) for x in u.expansions],
                backlog=u.backlog,
                sales=parsed["observations"].get(p.name),
            )
        try:
            pf.add(Program(p.name, p.stage, **kw))
        except InputError as exc:
            raise InputError(f"{scenario.path}: {exc}") from None
    return pf


def input_columns(world, processes: dict, draws: int, seed: int) -> dict[str, np.ndarray]:
    """Every input sampled per draw: the portfolio's (``CART-A.peak_share``, approval years
    ...) and each process's (``car-t-autologous-manual.failure_rate``), aligned by draw with
    the requirements (the same streams as :func:`capacity.requirements` with ``seed``)."""
    columns: dict[str, np.ndarray] = {}
    for name, var in world.inputs.data_vars.items():
        # an event that never happens ranks last (latest), not as missing
        columns[name] = np.where(np.isnan(var.values), np.inf, var.values)
    seen = set()
    for spec in processes.values():
        if spec.name in seen:
            continue
        seen.add(spec.name)
        par = spec.sample(draws, seed)
        for name, var in par.data_vars.items():
            if "assay" in var.dims:
                for assay in var["assay"].values:
                    columns[f"{spec.name}.{name}[{assay}]"] = var.sel(assay=assay).values
            else:
                columns[f"{spec.name}.{name}"] = var.values
    return columns


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho: the Pearson correlation of average ranks (ties share their mean
    rank), as ``scipy.stats.spearmanr`` (not imported: about 1 s)."""
    rx = pd.Series(x).rank(method="average").to_numpy()
    ry = pd.Series(y).rank(method="average").to_numpy()
    return float(np.corrcoef(rx, ry)[0, 1])


def rank_drivers(columns: dict[str, np.ndarray], target: np.ndarray) -> pd.DataFrame:
    """Spearman rank correlation of each input that varies with ``target`` (one value per
    draw), largest absolute correlation first: ``input, spearman_rho``."""
    rows = []
    for name, values in columns.items():
        values = np.asarray(values, float)
        finite = values[np.isfinite(values)]
        if len(np.unique(values)) < 2 or (
            len(finite) and finite.min() == finite.max() and np.isfinite(values).all()
        ):
            continue
        rho = spearman(np.nan_to_num(values, nan=np.inf, posinf=1e300), target)
        if np.isfinite(rho):
            rows.append({"input": name, "spearman_rho": float(rho)})
    frame = pd.DataFrame(rows, columns=["input", "spearman_rho"])
    if len(frame):
        frame = frame.reindex(frame["spearman_rho"].abs().sort_values(ascending=False).index)
    return frame.reset_index(drop=True)


def _drivers(result_total: xr.Dataset, world, processes: dict, seed: int) -> pd.DataFrame:
    """Spearman rank correlation of every sampled input with each draw's peak suite need."""
    peak = result_total["suites"].max("month").values
    return rank_drivers(input_columns(world, processes, len(peak), seed), peak)


def service_level_suites(
    demand: xr.DataArray,
    process,
    *,
    quantiles=(0.5, 0.9),
    max_wait_days: float,
    epsilon: float,
    seed: int,
    opening=None,
    start: np.ndarray | None = None,
    params=None,
) -> dict[str, Any]:
    """Percentiles across draws of the fewest suites keeping P(wait > max_wait_days) <= epsilon.

    Each draw's own answer is found by :func:`capacity.suites_for_service_level` over the
    horizon (more suites never make a wait longer, and every size sees the same patients),
    searching from ``start`` (one guess per draw: its peak suite need) and simulating only
    the draws still unsettled; percentiles are values a draw takes (inverted CDF).
    ``params``: the process's per-draw parameters of these draws (those requirements used).
    ``queue_runs`` is the number of draw-simulations made (a draw simulated at one size
    counts 1).
    """
    from capacity import suites_for_service_level

    need = suites_for_service_level(
        demand,
        process,
        max_wait_days=max_wait_days,
        epsilon=epsilon,
        seed=seed,
        opening=opening,
        by_month=False,
        start=start,
        params=params,
    )
    per_draw = need["suites_needed"].values
    out: dict[str, Any] = {
        f"p{100 * q:g}": int(np.quantile(per_draw, q, method="inverted_cdf")) for q in quantiles
    }
    out.update(
        draws=int(demand.sizes["draw"]),
        queue_runs=int(need.attrs["queue_runs"]),
        queue_runs_per_draw=int(need.attrs["queue_runs_per_draw"]),
    )
    return out


def run_scenario(
    scenario: Scenario,
    *,
    stage: Stage = _no_progress,
    use_cache: bool = True,
    parsed: dict[str, Any] | None = None,
    fits: Fits | None = None,
    service_level: bool = True,
) -> RunResult:
    """Run a validated scenario end to end; every stage is timed in ``timings``.

    ``parsed`` (from :func:`check_inputs`) and ``fits`` (from :func:`fit_models`) skip those
    stages when given: a sweep checks and fits once per distinct input and runs each scenario
    where its input files may not be (a worker of a remote cluster). ``service_level=False``
    skips the day-level simulation that sizes the facility for the service level (the
    sensitivity swings, which compare the P90 need only).
    """
    from capacity import (
        facility,
        plan_expansion,
        plan_hiring,
        shortfall_probability,
    )

    timings: dict[str, float] = {}

    @contextlib.contextmanager
    def timed(name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        with stage(name):
            yield
        timings[f"{name}_s"] = round(time.perf_counter() - t0, 3)

    with timed("check"):
        if parsed is None:
            parsed = check_inputs(scenario)
        processes = parsed["processes"]
    with timed("fit"):
        if fits is None:
            fits = fit_models(scenario, parsed, use_cache)
        models, diagnostics, sources = fits.models, fits.diagnostics, fits.sources
    with timed("compose"):
        world = _portfolio(scenario, models, parsed).simulate()
    with timed("requirements"):
        req = world.requirements(processes, by_program=True)
        total = facility(req)
    with timed("decisions"):
        months = pd.DatetimeIndex(total["month"].values)
        fac = scenario.facility
        suites = scenario.suites_by_month(months)
        installed = {
            "suites": suites,
            "operator_fte": fac.operator_fte,
            "qc_fte": fac.qc_fte,
            "qa_fte": fac.qa_fte,
        }
        shortfall = shortfall_probability(total, installed)
        plans = {
            "suites": plan_expansion(
                total,
                resource="suites",
                installed=suites,
                unit_size=fac.module_suites,
                lead_time_months=fac.module_lead_time_months,
                target=fac.shortfall_target,
                cost_per_unit_year=fac.module_cost_per_year,
                as_of=pd.Timestamp(scenario.run.as_of),
            )
        }
        for role in ROLES:
            plans[role] = plan_hiring(
                total,
                role=role,
                installed=getattr(fac, role),
                hiring_months=fac.hiring_lead_months,
                training_months=0,
                target=fac.shortfall_target,
                suites=plans["suites"],  # staff the suites the module plan brings online
                as_of=pd.Timestamp(scenario.run.as_of),
            )
        lots = req["lots"].sum(("draw", "month")).to_series()
        by_process: dict[str, float] = {}
        for program, n in lots.items():
            name = processes[str(program)].name
            by_process[name] = by_process.get(name, 0.0) + float(n)
        main_process = max(by_process, key=by_process.get)
        spec = next(s for s in processes.values() if s.name == main_process)
        sub = world.demand.isel(
            draw=slice(0, min(fac.service_level.draws, world.demand.sizes["draw"]))
        )
        peaks = total["suites"].isel(draw=slice(0, sub.sizes["draw"])).max("month").values
        service = (
            None
            if not service_level
            else service_level_suites(
                sub,
                spec,
                quantiles=(0.5, 0.9),
                max_wait_days=fac.service_level.max_wait_days,
                epsilon=fac.service_level.epsilon,
                seed=scenario.run.seed,
                opening=world.opening or None,
                start=peaks,
                # draw i keeps the process parameters requirements drew for it
                params=spec.sample(world.demand.sizes["draw"], world.seed).isel(
                    draw=slice(0, sub.sizes["draw"])
                ),
            )
        )
        drivers = _drivers(total, world, processes, scenario.run.seed)
    return RunResult(
        scenario=scenario,
        world=world,
        requirements=req,
        total=total,
        installed=installed,
        shortfall=shortfall,
        plans=plans,
        service=service,
        service_process=main_process,
        drivers=drivers,
        diagnostics=diagnostics,
        fit_sources=sources,
        processes=processes,
        timings=timings,
    )
