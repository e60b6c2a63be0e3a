"""A scenario's inputs: read and checked, then turned into what the models take.

:func:`check_inputs` makes every check short of sampling (``pmcap validate`` runs it): each
program's process with the scenario's ``[process.NAME]`` overrides, the phase-table groups
the programs name, and every row of the enrollment and own-sales CSV files. It returns the
parsed inputs as a dict: ``processes`` (program -> :class:`capacity.ProcessSpec`),
``enrollment`` (program -> its ``patients``/``counts``/``sites`` frames) and
``observations`` (program -> its own patients per period, as uptake observations).

Each scenario section then builds its own model inputs:

* ``[models]`` and ``[program.enrollment]``: the settings of a
  :class:`forecast.EnrollmentModel` (:func:`enrollment_settings`);
* ``[program]`` and its ``[program.enrollment]``, ``trial_plan``, ``launch`` and
  ``[program.uptake]``: those of a :class:`forecast.Program` (:func:`program_settings`);
* ``[run]``: the :class:`forecast.Portfolio` that composes the programs (:func:`portfolio`).

Errors a user can cause raise :class:`~capacity.errors.InputError` naming the file (not the
internal table), the row and what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from capacity.errors import InputError
from pmcap.scenario import EnrollmentConfig, ProgramConfig, Scenario, UptakeConfig

__all__ = [
    "check_inputs",
    "enrollment_input_error",
    "enrollment_settings",
    "own_observations",
    "portfolio",
    "program_settings",
    "scenario_network",
    "scenario_processes",
]

TRUE_FALSE = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


# ------------------------------------------------------------------------------------------
# reading and checking
# ------------------------------------------------------------------------------------------
def _read_csv(path: Path, shown: Path | None = None) -> pd.DataFrame:
    """A CSV file as text columns, empty cells as None; errors name it as ``shown``."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False).replace({"": None})
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        first = str(exc).splitlines()[0]
        raise InputError(f"{shown or path}: not a readable CSV ({first})") from None


def _enrollment_frames(scenario: Scenario, p: ProgramConfig) -> dict[str, Any]:
    """A trial's ``patients``, ``counts`` and ``sites`` files (None where not given), with
    ``treated`` as booleans and the count columns as numbers (the sites table's ``cap`` is
    read, and checked, by :func:`forecast.enrollment.enrollment_data`)."""
    e = p.enrollment
    frames = {}
    for key in ("patients", "counts", "sites"):
        path = getattr(e, key)
        frames[key] = (
            None if path is None else _read_csv(scenario.resolve(path), scenario.shown(path))
        )
    if frames["patients"] is not None and "treated" in frames["patients"].columns:
        treated = frames["patients"]["treated"].str.strip().str.lower()
        bad = treated.notna() & ~treated.isin(list(TRUE_FALSE))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(
                f"{scenario.shown(e.patients)}: row {i + 2}: treated must be true, false or "
                f"empty, got {frames['patients']['treated'].iloc[i]!r}"
            )
        frames["patients"]["treated"] = treated.map(TRUE_FALSE)
    if frames["counts"] is not None:
        for col in ("enrolled", "screened", "open"):
            if col in frames["counts"].columns:
                frames["counts"][col] = pd.to_numeric(frames["counts"][col], errors="coerce")
    return frames


def enrollment_input_error(exc: InputError, scenario: Scenario, p: ProgramConfig) -> InputError:
    """The enrollment model's error naming the file of the table it names (``patients: row
    3`` -> ``.../patients.csv: row 3``), else the program."""
    msg = str(exc)
    for key in ("patients", "counts", "sites"):
        path = getattr(p.enrollment, key)
        if path is not None and msg.startswith(f"{key}:"):
            return InputError(f"{scenario.shown(path)}:{msg[len(key) + 1 :]}")
    return InputError(f"program {p.name!r}: {msg}")


def own_observations(scenario: Scenario, p: ProgramConfig) -> pd.DataFrame | None:
    """A launched product's own patients per period (``uptake.patients``, columns
    ``period,patients``) as uptake observations; None when the program has none.

    Each period (``2025Q3``, ``FY2025``, ``H1-2025``, ``H2-2025``, ``9M-2025``) ends by
    ``run.as_of``, starts no earlier than the launch month and overlaps no other period.
    """
    from forecast.uptake import period_bounds

    if p.uptake is None or p.uptake.patients is None:
        return None
    path = scenario.shown(p.uptake.patients)  # as the user wrote it, in messages
    frame = _read_csv(scenario.resolve(p.uptake.patients), path)
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
                "2025Q3, FY2025, H1-2025, H2-2025 or 9M-2025"
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
        # read from where pmcap was started, as written, so messages name it so
        target = scenario.shown(spec) if spec.endswith(".toml") else spec
        try:
            out[p.name] = load_process(target)
        except InputError as exc:
            raise InputError(f"program {p.name!r}: process: {exc}") from None
    names = sorted({s.name for s in out.values()})
    for name, fields in scenario.process.items():
        if name not in names:
            raise InputError(
                f"{scenario.shown_path}: process.{name}: no program uses a process named {name!r}; "
                f"processes in this scenario: {', '.join(names)}"
            )
        if "name" in fields:
            raise InputError(f"{scenario.shown_path}: process.{name}: the name cannot be changed")
        base = next(s for s in out.values() if s.name == name)
        spec = ProcessSpec.from_mapping(
            {**base.to_dict(), **fields}, f"{scenario.shown_path}: process.{name}"
        )
        for program, s in out.items():
            if s.name == name:
                out[program] = spec
    return out


def _check_groups(scenario: Scenario) -> None:
    """Every ``group`` is a group of the scenario's phase table, every ``duration_group`` one
    of the phase-duration table."""
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
                    f"{scenario.shown_path}: program {p.name!r}: {key} {value!r} is not a group of "
                    f"{where}; known groups: {', '.join(known)}"
                )


def _check_target(scenario: Scenario, p: ProgramConfig, enrolled: int) -> None:
    """A trial's enrollment ``target`` is at least the patients its data already enrolled
    (equal: enrollment is complete)."""
    e = p.enrollment
    if e.target < enrolled:
        source = scenario.resolve(e.patients if e.patients is not None else e.counts)
        raise InputError(
            f"{scenario.path}: program {p.name!r}: enrollment.target {e.target} is below the "
            f"{enrolled} patients {source} already enrolled by as_of {scenario.run.as_of}; "
            "give the target of the whole trial"
        )


def check_inputs(scenario: Scenario) -> dict[str, Any]:
    """Every check short of sampling: processes, groups, CSV rows. Returns parsed inputs."""
    from forecast.enrollment import enrollment_data

    processes = scenario_processes(scenario)
    _check_groups(scenario)
    parsed: dict[str, Any] = {"processes": processes, "enrollment": {}, "observations": {}}
    parsed["qc_lab"] = scenario_qc_lab(scenario, processes)
    if scenario.network is not None:
        parsed["network"] = scenario_network(scenario)
    for p in scenario.program:
        if p.enrollment is not None:
            frames = _enrollment_frames(scenario, p)
            try:
                data = enrollment_data(
                    frames["patients"],
                    frames["sites"],
                    counts=frames["counts"],
                    as_of=pd.Timestamp(scenario.run.as_of),
                    pauses=_pauses(p.enrollment),
                    ramp_days=p.enrollment.ramp_days,
                )
            except InputError as exc:
                raise enrollment_input_error(exc, scenario, p) from None
            _check_target(scenario, p, int(data.counts.sum()))
            parsed["enrollment"][p.name] = frames
        obs = own_observations(scenario, p)
        if obs is not None:
            parsed["observations"][p.name] = obs
    return parsed


def scenario_qc_lab(scenario: Scenario, processes: dict[str, Any] | None = None):
    """The ``[facility.qc_lab]`` table as a :class:`capacity.QCLab` of the scenario's
    processes (each once, in order of first use by a program: the lots' process indices),
    or ``None`` without the table. An assay's instrument the lab lacks is an InputError
    naming the scenario file and ``facility.qc_lab.instruments``."""
    if scenario.facility.qc_lab is None:
        return None
    if processes is None:
        processes = scenario_processes(scenario)
    distinct = list({spec.name: spec for spec in processes.values()}.values())
    try:
        return scenario.facility.qc_lab.lab(distinct)
    except InputError as exc:
        raise InputError(f"{scenario.shown_path}: {exc}") from None


def scenario_network(
    scenario: Scenario,
    suite_days_per_lot: dict[str, float] | None = None,
    operator_hours_per_lot: dict[str, float] | None = None,
):
    """The ``[network]`` table as a :class:`capacity.Network` over the scenario's programs.

    The ``[facility]``'s suites at ``run.start`` are the first own site (named
    ``network.facility.name``) unless ``network.facility.include = false``: its modules are
    ``facility.module_suites`` suites costing ``costs.module_capital`` and
    ``facility.module_cost_per_year``, online ``facility.module_lead_time_months`` after
    commitment. ``suite_days_per_lot``: program -> suite-days a lot occupies (the run's
    requirements; 1 when only checking, which no check depends on); operator-hours a lot
    takes at a site with ``operators``: ``[network.program.NAME]``'s, else
    ``network.operator_hours_per_lot``, else ``operator_hours_per_lot`` (the run's
    requirements), else 1 when only checking. A site's ``operator_cost_per_year`` defaults
    to ``costs.operator_salary``. An inconsistency (a
    lane to an unknown site, shares not summing to one, a vein-to-vein limit shorter than
    the fastest route, a ``[network.program.NAME]`` that is not a program) is one
    InputError naming the scenario file and ``network``.
    """
    from capacity.network import Lane, Network, Site

    net, where = scenario.network, scenario.shown_path
    names = [p.name for p in scenario.program]
    unknown = sorted(set(net.program) - set(names))
    if unknown:
        raise InputError(
            f"{where}: network.program: {unknown} are not programs of the scenario; "
            f"programs are {names}"
        )
    if net.readout is not None:
        first = pd.Timestamp(scenario.run.start).to_period("M")
        month = (pd.Timestamp(net.readout).to_period("M") - first).n
        if not 0 <= month < scenario.run.horizon_months:
            raise InputError(
                f"{where}: network.readout: {net.readout} is outside the horizon "
                f"({first} and the {scenario.run.horizon_months} months after it)"
            )
    sites = []
    if net.facility.include:
        fac = net.facility
        installed = scenario.suites_by_month(pd.DatetimeIndex([pd.Timestamp(scenario.run.start)]))
        sites.append(
            Site(
                fac.name,
                suites=float(installed.iloc[0]),
                module_suites=float(scenario.facility.module_suites),
                max_units=fac.max_units,
                module_capital=scenario.costs.module_capital,
                module_cost_per_year=scenario.facility.module_cost_per_year,
                fixed_cost_per_year=fac.fixed_cost_per_year,
                cost_per_lot=fac.cost_per_lot,
                lead_time_months=scenario.facility.module_lead_time_months,
                turnaround_days=fac.turnaround_days,
                **_crew(fac, scenario),
            )
        )
    shares, limits, hours = {}, {}, {}
    for name in names:
        own = net.program.get(name)
        hours[name] = (
            own.operator_hours_per_lot
            if own and own.operator_hours_per_lot is not None
            else net.operator_hours_per_lot
            if net.operator_hours_per_lot is not None
            else (operator_hours_per_lot or {}).get(name, 1.0)
        )
        shares[name] = dict(
            own.region_shares if own and own.region_shares is not None else net.region_shares
        )
        limits[name] = (
            own.vein_to_vein_days
            if own and own.vein_to_vein_days is not None
            else net.vein_to_vein_days
        )
    try:
        sites += [Site(**{**s.model_dump(), **_crew(s, scenario)}) for s in net.site]
        return Network(
            sites=sites,
            lanes=[Lane(**ln.model_dump()) for ln in net.lane],
            region_shares=shares,
            vein_to_vein_days=limits,
            suite_days_per_lot=suite_days_per_lot or dict.fromkeys(names, 1.0),
            cost_per_patient_unserved=net.cost_per_patient_unserved,
            discount_rate=net.discount_rate,
            share_concentration=net.share_concentration,
            operator_hours_per_lot=hours,
            operator_hours_per_month=net.operator_hours_per_month,
            max_wait_months=net.max_wait_months,
            late_cost_per_patient_month=net.late_cost_per_patient_month,
        )
    except InputError as exc:
        text = str(exc).removeprefix("network: ")
        raise InputError(f"{where}: network: {text}") from None


def _crew(site, scenario: Scenario) -> dict:
    """A ``[network]`` site's operator keys for :class:`capacity.Site` (the loaded cost
    defaults to ``costs.operator_salary``)."""
    cost = site.operator_cost_per_year
    return {
        "operators": site.operators,
        "hire_lead_time_months": site.hire_lead_time_months,
        "operator_cost_per_year": scenario.costs.operator_salary if cost is None else cost,
        "hire_cost": site.hire_cost,
        "max_hires": site.max_hires,
    }


# ------------------------------------------------------------------------------------------
# model inputs, section by section
# ------------------------------------------------------------------------------------------
def _pauses(e: EnrollmentConfig) -> list[tuple[str, str]]:
    return [(str(a), str(b)) for a, b in e.pauses]


def enrollment_settings(scenario: Scenario, p: ProgramConfig) -> dict[str, Any]:
    """Keyword arguments of :class:`forecast.EnrollmentModel` for a trial program: its
    ``[program.enrollment]`` settings with the sampler settings of ``[models]``."""
    cfg, e = scenario.models, p.enrollment
    return {
        "target_accept": cfg.target_accept,
        "target": e.target,
        "calendar_effect": e.calendar_effect,
        "ramp_days": e.ramp_days,
        "pauses": _pauses(e),
        "draws": cfg.draws,
        "tune": cfg.tune,
        "chains": cfg.chains,
        "seed": cfg.seed,
    }


def _trial_settings(e: EnrollmentConfig, enrollment: Any, registrational: bool) -> dict:
    """A trial program's ``[program.enrollment]``: its fitted enrollment model, what follows
    the last patient (follow-up, filing preparation, pivotal success) and its patients'
    manufacturing share and lag."""
    return {
        "enrollment": enrollment,
        "registrational": registrational,
        "follow_up_months": e.follow_up_months,
        "filing_prep_months": e.filing_prep_months,
        "pivotal_success": e.pivotal_success,
        "manufactured_share": e.manufactured_share,
        "lag_days": e.lag_days,
    }


def _pipeline_settings(p: ProgramConfig) -> dict[str, Any]:
    """A pipeline program's current phase, its start, each phase's trial plan (patients
    and, where given, enrollment months) and its pivotal phase."""
    plan = {}
    for phase, v in p.trial_plan.items():
        plan[phase] = {"patients": v.patients}
        if v.enrollment_months is not None:
            plan[phase]["enrollment_months"] = v.enrollment_months
    return {
        "phase": p.phase,
        "phase_start": pd.Timestamp(p.phase_start),
        "trial_plan": plan,
        "pivotal": p.pivotal,
    }


def _uptake_settings(u: UptakeConfig, sales: pd.DataFrame | None) -> dict[str, Any]:
    """``[program.uptake]``: the eligible population, peak share, launch lag, label
    expansions, backlog and the product's own sales (:func:`own_observations`)."""
    return {
        "eligible_per_year": u.eligible_per_year,
        "peak_share": u.peak_share,
        "launch_lag_months": u.launch_lag_months,
        "expansions": [(x.when, x.eligible_per_year) for x in u.expansions],
        "backlog": u.backlog,
        "sales": sales,
    }


def program_settings(
    p: ProgramConfig, models: dict[str, Any], parsed: dict[str, Any]
) -> dict[str, Any]:
    """Keyword arguments of :class:`forecast.Program` (after name and stage) for a program:
    its own fields, then those of each section it has. ``models``: the fitted models by
    name (``"enrollment:NAME"``); ``parsed``: from :func:`check_inputs`."""
    kw: dict[str, Any] = {
        "group": p.group,
        "duration_group": p.duration_group,
        "review": p.review,
        "in_progress": p.in_progress or None,
        "ppq_lots": p.ppq.lots,
        "ppq_window_months": p.ppq.window_months,
        "manufactured_share": p.manufactured_share,
        "lag_days": p.lag_days,
    }
    if p.enrollment is not None:
        kw.update(_trial_settings(p.enrollment, models[f"enrollment:{p.name}"], p.registrational))
    if p.stage == "pipeline":
        kw.update(_pipeline_settings(p))
    if p.launch is not None:
        kw["launch"] = pd.Timestamp(p.launch)
    if p.uptake is not None:
        kw.update(_uptake_settings(p.uptake, parsed["observations"].get(p.name)))
    return kw


def portfolio(scenario: Scenario, models: dict[str, Any], parsed: dict[str, Any]) -> Any:
    """The scenario's :class:`forecast.Portfolio`: ``[run]``'s horizon, draws and seed, the
    fitted phase and uptake models, and one :class:`forecast.Program` per ``[[program]]``."""
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
        try:
            pf.add(Program(p.name, p.stage, **program_settings(p, models, parsed)))
        except InputError as exc:
            raise InputError(f"{scenario.shown_path}: {exc}") from None
    return pf
