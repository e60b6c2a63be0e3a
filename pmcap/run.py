"""A run: scenario -> fitted models -> portfolio draws -> requirements -> decisions.

:func:`run_scenario` runs the stages in order, each timed (the CLI shows them as progress):

* ``check``: every input short of sampling (:func:`pmcap.inputs.check_inputs`);
* ``fit``: enrollment per trial, phase transitions, uptake analogs, shipped, cached or fitted
  now (:func:`pmcap.fits.fit_models`);
* ``compose``: the portfolio's draws, events in causal order per draw
  (:func:`pmcap.inputs.portfolio`, :meth:`forecast.Portfolio.simulate`);
* ``requirements``: lots, suites, QC hours and FTEs per program and for the facility, and
  the materials plan of each process with a bill of materials
  (:func:`capacity.materials.materials_by_process`), and the vector campaign plan of each
  process with a ``[vector]`` (:func:`capacity.vector.vector_by_process`);
* ``decisions``: shortfall, module and hiring plans, service-level suites, drivers
  (:func:`pmcap.decisions.decide`);
* ``workforce`` (with ``[workforce]`` only): the requisition plan for operators
  (:func:`capacity.plan_requisitions`, from ``facility.operator_fte`` qualified today) and,
  with ``qc = true``, the same planner on the QC FTE need from ``facility.qc_lab.analysts``
  (else ``facility.qc_fte``) qualified today, whose headcount the twin's QC lab follows;
* ``network`` (with ``[network]`` only): the network investment plan across the draws
  (:func:`pmcap.network.plan_scenario_network`, :func:`capacity.plan_network`);
* ``twin`` (with ``[facility.twin]`` only): the facility twin (:func:`run_twin`);
* ``twin_sizing`` (with ``[facility.twin] size = true`` only): operators and analysts needed
  per year at the vein-to-vein service level (:func:`pmcap.twin_sizing.size_twin`).

Writing the run's folder is :func:`pmcap.runfolder.write_run`'s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import xarray as xr

from pmcap.fits import Fits, fit_models
from pmcap.inputs import check_inputs
from pmcap.scenario import Scenario

__all__ = [
    "DIAGNOSTIC_LIMITS",
    "RunResult",
    "Stage",
    "diagnostics_pass",
    "no_progress",
    "run_scenario",
]

# a fit "fails" its diagnostics beyond these (R-hat, divergences, bulk ESS)
DIAGNOSTIC_LIMITS = {"r_hat_max": 1.01, "divergences": 0, "ess_bulk_min": 400}


@dataclass
class RunResult:
    """Everything a run computed; :func:`pmcap.runfolder.write_run` writes it to a folder."""

    scenario: Scenario
    world: Any  # forecast.PortfolioDraws
    requirements: xr.Dataset  # by program
    total: xr.Dataset  # facility totals
    installed: dict[str, Any]
    shortfall: pd.DataFrame
    plans: dict[str, Any]
    service: dict[str, Any] | None
    service_processes: dict[str, str]  # program -> process the service level sizes it with
    drivers: pd.DataFrame
    diagnostics: dict[str, dict[str, Any]]
    fit_sources: dict[str, str]
    processes: dict[str, Any]
    # process -> capacity.plan_materials result, for each process with a bill of materials
    materials: dict[str, xr.Dataset] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    workforce: Any = None  # capacity.WorkforcePlan when the scenario has [workforce]
    # process -> capacity.VectorPlan, for each process with a [vector]
    vector: dict[str, Any] = field(default_factory=dict)
    network: Any = None  # pmcap.network.NetworkRun when the scenario has [network]
    twin: Any = None  # capacity.simulate_twin's Dataset when the scenario has [facility.twin]
    qc_lab: Any = None  # capacity.QCLabResult of the twin's QC stage with [facility.qc_lab]
    twin_sizing: Any = None  # pmcap.twin_sizing.size_twin's table with [facility.twin] size
    qc_workforce: Any = None  # capacity.WorkforcePlan of QC analysts with [workforce] qc

    @property
    def joint_shortfall(self) -> pd.DataFrame:
        """P(any resource short in a month) with every recommended plan in place
        (:func:`capacity.joint_shortfall`)."""
        from capacity import joint_shortfall

        return joint_shortfall(self.total, self.plans)

    @property
    def diagnostics_ok(self) -> bool:
        return all(diagnostics_pass(d) for d in self.diagnostics.values())


def diagnostics_pass(d: dict[str, Any]) -> bool:
    """A fit's diagnostics within :data:`DIAGNOSTIC_LIMITS` (a closed-form posterior always)."""
    if d.get("closed_form"):
        return True
    return (
        d["r_hat_max"] <= DIAGNOSTIC_LIMITS["r_hat_max"]
        and d["divergences"] <= DIAGNOSTIC_LIMITS["divergences"]
        and d["ess_bulk_min"] >= DIAGNOSTIC_LIMITS["ess_bulk_min"]
    )


Stage = Callable[[str], contextlib.AbstractContextManager]


@contextlib.contextmanager
def no_progress(name: str) -> Iterator[None]:
    """A stage display that shows nothing."""
    yield


def run_scenario(
    scenario: Scenario,
    *,
    stage: Stage = no_progress,
    use_cache: bool = True,
    parsed: dict[str, Any] | None = None,
    fits: Fits | None = None,
    service_level: bool = True,
    background_compile: bool = False,
) -> RunResult:
    """Run a validated scenario end to end; every stage is timed in ``timings``.

    ``parsed`` (from :func:`check_inputs`) and ``fits`` (from :func:`fit_models`) skip those
    stages when given: a sweep checks and fits once per distinct input and runs each scenario
    where its input files may not be (a worker of a remote cluster). ``service_level=False``
    skips the day-level simulation that sizes the facility for the service level (the
    sensitivity swings, which compare the P90 need only). ``background_compile`` compiles kernels
    in a child process while the earlier stages run, when numba's cache does not hold them yet
    (:func:`capacity.warmup.start`; the first run after an install): the lot draws, and the
    twin's (with ``[facility.twin]``) or else the suite queue's.
    """
    from capacity.warmup import Warmup

    warm = Warmup()
    try:
        return _run_stages(
            scenario, stage, use_cache, parsed, fits, service_level, background_compile, warm
        )
    except BaseException:
        warm.stop()
        raise
    finally:
        warm.wait()  # a child whose kernels no stage waited for (after stop: nothing)


def _run_stages(
    scenario, stage, use_cache, parsed, fits, service_level, background_compile, warm
) -> RunResult:
    from capacity import facility
    from capacity.materials import materials_by_process
    from capacity.vector import vector_by_process
    from pmcap.decisions import decide
    from pmcap.inputs import portfolio

    timings: dict[str, float] = {}

    @contextlib.contextmanager
    def timed(name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        with stage(name):
            yield
        timings[f"{name}_s"] = round(time.perf_counter() - t0, 3)

    with timed("check"):
        parsed = check_inputs(scenario) if parsed is None else parsed
        processes = parsed["processes"]
    if background_compile:
        # with a twin the child compiles the twin while this process compiles the suite
        # queue (whose lot layout the twin's uses: the child finds it cached by then); without
        # one, the child compiles the queue, waited for before the decisions
        parts = ["requirements"]
        if scenario.facility.twin is not None:
            parts += ["twin", *(["qclab"] if scenario.facility.qc_lab else [])]
        elif service_level:
            parts.append("queue")
        warm.start(parts)
    with timed("fit"):
        fits = fit_models(scenario, parsed, use_cache) if fits is None else fits
    with timed("compose"):
        world = portfolio(scenario, fits.models, parsed).simulate()
    with timed("requirements"):
        req = world.requirements(processes, by_program=True)
        total = facility(req)
        materials = materials_by_process(
            req["lots"], processes, seed=scenario.run.seed, quantiles=scenario.run.quantiles
        )
        vector = vector_by_process(
            req["lots"], processes, seed=scenario.run.seed, quantiles=scenario.run.quantiles
        )
    with timed("decisions"):
        warm.wait("queue")
        decided = decide(scenario, world, req, total, processes, service_level=service_level)
    workforce = qc_workforce = None
    if scenario.workforce is not None:
        from capacity import plan_requisitions

        with timed("workforce"):
            section = scenario.workforce
            workforce = plan_requisitions(
                total["operator_fte"].transpose("draw", "month"),
                config=section.config(),
                initial_qualified=scenario.facility.operator_fte,
                target=section.shortfall_target,
                seed=scenario.run.seed,
            )
            if section.qc:  # the same planner on the QC analysts' need (the twin's lab follows)
                lab = scenario.facility.qc_lab
                qc_workforce = plan_requisitions(
                    total["qc_fte"].transpose("draw", "month"),
                    config=section.config(),
                    initial_qualified=lab.analysts if lab else scenario.facility.qc_fte,
                    target=section.shortfall_target,
                    seed=scenario.run.seed + 1,
                )
    network = None
    if scenario.network is not None:
        from pmcap.network import plan_scenario_network

        with timed("network"):
            network = plan_scenario_network(scenario, world.demand, req)
    twin = qc_lab = twin_sizing = None
    if scenario.facility.twin is not None:
        with timed("twin"):
            warm.wait()
            twin, qc_lab = run_twin(
                scenario, world, processes, workforce, decided.plans, qc_workforce=qc_workforce
            )
        if scenario.facility.twin.size:
            from pmcap.twin_sizing import size_twin

            with timed("twin_sizing"):
                again = functools.partial(
                    run_twin, scenario, world, processes, workforce, decided.plans,
                    qc_workforce=qc_workforce,
                )  # fmt: skip
                twin_sizing = size_twin(scenario, twin, again, workforce, qc_workforce)
    return RunResult(
        scenario=scenario,
        world=world,
        requirements=req,
        total=total,
        installed=decided.installed,
        shortfall=decided.shortfall,
        plans=decided.plans,
        service=decided.service,
        service_processes=decided.service_processes,
        drivers=decided.drivers,
        diagnostics=fits.diagnostics,
        fit_sources=fits.sources,
        processes=processes,
        materials=materials,
        timings=timings,
        workforce=workforce,
        vector=vector,
        network=network,
        twin=twin,
        qc_lab=qc_lab,
        twin_sizing=twin_sizing,
        qc_workforce=qc_workforce,
    )


def twin_suites(
    scenario: Scenario, months: pd.DatetimeIndex, plans: dict[str, Any] | None = None
) -> pd.Series:
    """The suites the twin runs with, by month: those installed (``facility.suites``) plus the
    recommended suite plan's modules from the month each comes online (its CDMO slots are
    not the facility's), so that the twin shows the facility with the plan in place.

    A month before any suite is installed takes the first month's with one: the twin needs a
    suite from its first day.
    """
    from capacity.errors import InputError

    if plans and "suites" in plans:
        by_month = plans["suites"].by_month.set_index("month")
        own = by_month["capacity"] - by_month.get("cdmo", 0.0)
        installed = own.reindex(months).astype(float)
    else:
        installed = scenario.suites_by_month(months).astype(float)
    installed = installed.fillna(0.0).round()
    positive = installed[installed > 0]
    if positive.empty:
        raise InputError(
            f"{scenario.shown_path}: facility.twin: the twin needs at least one installed suite "
            "in the horizon (facility.suites)"
        )
    return installed.clip(lower=positive.iloc[0]).cummax().astype(int)


def run_twin(
    scenario: Scenario,
    world,
    processes: dict[str, Any],
    workforce=None,
    plans: dict[str, Any] | None = None,
    *,
    operators: Any = None,
    analysts: Any = None,
    instruments: dict[str, int] | None = None,
    qc_workforce=None,
):
    """The facility twin of ``[facility.twin]`` on the first ``draws`` draws.

    Suites: :func:`twin_suites` (installed plus the suite plan's modules). Qualified operators:
    the ``[workforce]`` plan's simulated ``qualified`` headcount per draw and month when the
    scenario has ``[workforce]``, else ``facility.operator_fte`` every month. QC:
    ``[facility.qc_lab]`` as a :class:`capacity.QCLabStage` when given (month edges: the
    calendar months simulated and two more for the last lots' panels, as ``months`` on its
    result), else the panels' turnaround with no queue. Each draw keeps the process parameters
    the requirements drew for it; lots started before the start (``in_progress``) are simulated
    from the months before it, as for the service level. Returns the twin's Dataset and the QC
    lab's :class:`capacity.QCLabResult` (``None`` without a lab). ``operators`` (qualified
    operators, as :func:`capacity.simulate_twin` takes them) and ``analysts`` (as
    :class:`capacity.QCLabStage` takes them) replace the run's, for
    :func:`pmcap.twin_sizing.size_twin`, as does ``instruments`` (type -> count) for the
    lab's instruments of those types. ``qc_workforce`` (``[workforce] qc = true``): the
    QC analysts' plan, whose simulated ``qualified`` headcount per draw and month the lab
    follows (:class:`capacity.QCLabStage`'s ``analysts``, rounded down, at least one) when
    ``analysts`` is not given.
    """
    from capacity.twin import QCLabStage, simulate_twin
    from pmcap.inputs import scenario_qc_lab

    section = scenario.facility.twin
    demand = world.demand
    n = min(section.draws, demand.sizes["draw"])
    demand = demand.isel(draw=slice(0, n))
    months = pd.DatetimeIndex(demand["month"].values)
    programs = [str(p) for p in demand["program"].values]
    used = list({processes[p].name: processes[p] for p in programs}.values())
    all_draws = world.demand.sizes["draw"]
    params = {spec.name: spec.sample(all_draws, world.seed).isel(draw=slice(0, n)) for spec in used}
    if operators is None and workforce is not None:
        operators = workforce.simulation["qualified"].isel(draw=slice(0, n))
    elif operators is None:
        operators = float(scenario.facility.operator_fte)
    crews, downtime, v2v = section.configs()
    suites = twin_suites(scenario, months, plans)
    stage = None
    if scenario.facility.qc_lab is not None:
        lab = scenario_qc_lab(scenario, {spec.name: spec for spec in used})
        if instruments:
            lab = dataclasses.replace(lab, instruments={**lab.instruments, **instruments})
        if analysts is None and qc_workforce is not None:
            # the plan's headcount is an expected count: at least one analyst stays (assumption)
            analysts = qc_workforce.simulation["qualified"].isel(draw=slice(0, n)).clip(min=1)
        stage = QCLabStage(lab, seed=scenario.run.seed, params=params, analysts=analysts)
    twin = simulate_twin(
        demand,
        {p: processes[p] for p in programs},
        suites,
        operators=operators,
        crews=crews,
        downtime=downtime,
        vein_to_vein=v2v,
        qc_stage=stage,
        seed=scenario.run.seed,
        opening=world.opening or None,
        params=params,
    )
    if stage is not None:
        stage.result.months = stage.months  # the calendar months of its month edges
    twin.attrs["suites"] = int(suites.iloc[0])
    twin.attrs["suites_last"] = int(suites.iloc[-1])
    twin.attrs["draws"] = int(n)
    twin.attrs["operators"] = "workforce" if workforce is not None else "facility.operator_fte"
    twin.attrs["analysts"] = "workforce" if qc_workforce is not None else "facility.qc_lab"
    return twin, None if stage is None else stage.result
