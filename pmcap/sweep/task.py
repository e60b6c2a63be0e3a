"""One scenario of a sweep, run as a dask task on a worker: its run folder and its summary."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pmcap.sweep.cases import CaseOutputs
from pmcap.sweep.cluster import host_of

if TYPE_CHECKING:
    from pmcap.scenario import Scenario

__all__ = ["CaseAnswer", "CaseTask", "RESOURCES", "SUMMARY", "run_case", "summarize"]


SUMMARY = "summary.json"
RESOURCES = ("suites", "operator_fte", "qc_fte", "qa_fte")


def summarize(result, *, ranking: bool = False, per_draw: bool = False) -> dict[str, Any]:
    """The numbers a sweep compares, from one run (JSON-ready); with ``per_draw`` (implied by
    ``ranking``) each draw's peak suite and operator need per year, with ``ranking`` the
    inputs sampled per draw too."""
    from pmcap.report import decision_table

    sc = result.scenario
    fac = sc.facility
    table = decision_table(result, upper=0.9)  # a sweep compares P50/P90 whatever the target
    sf = result.shortfall
    over = sf[(sf["metric"] == "any") & (sf["probability"] > fac.shortfall_target)]  # any of
    plan = result.plans["suites"]
    commits = plan.commitments
    months = pd.DatetimeIndex(result.total["month"].values)
    monthly = {}
    for resource in ("suites", "operator_fte"):
        values = result.total[resource].values
        q = np.quantile(values, [0.5, 0.9], axis=0)
        monthly[f"{resource}_p50"] = [round(float(x), 6) for x in q[0]]
        monthly[f"{resource}_p90"] = [round(float(x), 6) for x in q[1]]
    installed = sc.suites_by_month(months)
    out: dict[str, Any] = {
        "years": [
            {
                **{k: v for k, v in r.items() if k != "plan"},
                "p50": round(r["p50"], 6),
                "p90": round(r["plan"], 6),
            }
            for r in table.to_dict("records")
        ],
        "first_month_over_target": "" if over.empty else f"{over['month'].min():%Y-%m}",
        "first_month_over_target_by": {
            r: _first_over(sf, r, fac.shortfall_target) for r in RESOURCES
        },
        "shortfall_target": fac.shortfall_target,
        "service_suites_p50": None if result.service is None else result.service["p50"],
        "service_suites_p90": None if result.service is None else result.service["p90"],
        "modules_needed": int(len(commits)),
        "first_module_commit": "" if commits.empty else f"{commits['commit_month'].min():%Y-%m}",
        # expected cost of the modules the plan adds (installed suites are not in it)
        "added_module_cost": float(plan.cost["total"]) if fac.module_cost_per_year else None,
        "hires": {
            role: int(len(result.plans[role].commitments))
            for role in ("operator_fte", "qc_fte", "qa_fte")
        },
        "months": [f"{m:%Y-%m}" for m in months],
        "installed_suites": [float(x) for x in installed.to_numpy()],
        "monthly": monthly,
        "diagnostics_ok": bool(result.diagnostics_ok),
        "draws": int(sc.run.draws),
    }
    twin = getattr(result, "twin", None)
    if twin is not None:
        from pmcap.twin_summary import twin_years

        out["twin_years"] = [
            {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
            for r in twin_years(twin).to_dict("records")
        ]
    network = getattr(result, "network", None)
    if network is not None:
        out["network_expected_cost"] = float(network.plan.summary["expected_cost"])
    if ranking or per_draw:
        years = sorted(set(months.year))
        peaks = {}
        for resource in ("suites", "operator_fte"):
            values = result.total[resource].values
            peaks[resource] = {
                str(y): values[:, months.year == y].max(axis=1).tolist() for y in years
            }
        out["per_draw"] = peaks
    if ranking:
        from pmcap.decisions import input_columns

        columns = input_columns(
            result.world, result.processes, result.total.sizes["draw"], sc.run.seed
        )
        # never-happening events rank last: a large finite number keeps the JSON standard
        out["inputs"] = {
            k: np.nan_to_num(np.asarray(v, float), nan=1e300, posinf=1e300).tolist()
            for k, v in columns.items()
        }
    return out


def _first_over(shortfall: pd.DataFrame, metric: str, target: float) -> str:
    rows = shortfall[(shortfall["metric"] == metric) & (shortfall["probability"] > target)]
    return "" if rows.empty else f"{rows['month'].min():%Y-%m}"


def _limit_threads(host_threads: dict[str, int] | None) -> None:
    """Share this machine's cores among the dask threads running on it: numba's thread count
    is per calling thread, so each task's kernels get cores / (dask threads on this host)."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return
    import numba

    on_host = (host_threads or {}).get(host_of(worker.address), worker.state.nthreads)
    numba.set_num_threads(max(1, min(numba.config.NUMBA_NUM_THREADS // max(on_host, 1), 64)))


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return ""


@dataclass(frozen=True)
class CaseTask:
    """One scenario of a sweep as a dask task: all a worker needs besides the fitted models.

    Pickled to the worker with the task; the worker reads no input file. The fitted models
    travel beside it (scattered once to every worker and shared by the scenarios).

    Attributes
    ----------
    scenario : Scenario
        The validated scenario.
    parsed : dict
        Its checked inputs (:func:`pmcap.run.check_inputs`).
    diagnostics : dict of str to dict
        Sampler diagnostics of each fitted model, by model label.
    sources : dict of str to str
        Where each fitted model came from (fitted, cache, shipped), by model label.
    text : str
        The scenario as a runnable TOML file: the folder's ``scenario.toml``.
    title : str
        Title of the scenario's report.
    provenance : dict
        The run manifest's ``scenario``, ``inputs`` and ``sweep_case`` entries.
    manifest : dict
        The manifest of a folder without a full run (``outputs.full_run`` False), which names
        the scenario's digest so that a rerun skips it.
    outputs : CaseOutputs, default CaseOutputs()
        What the scenario writes and keeps in its summary.
    folder : Path or None, default None
        Where the worker writes the run folder itself (atomically): a worker of the
        LocalCluster the sweep started, on the same machine. None: the files go back to the
        client, which writes them (a worker of another cluster may not see this disk).
    host_threads : dict of str to int, default {}
        Dask threads per machine (host -> threads): each task's compiled kernels get the
        machine's cores divided by that count. Empty: the worker's own thread count.
    xlsx : bool, default False
        Also write finance.xlsx (with ``outputs.full_run``).
    """

    scenario: Scenario
    parsed: dict[str, Any]
    diagnostics: dict[str, dict[str, Any]]
    sources: dict[str, str]
    text: str
    title: str
    provenance: dict[str, Any]
    manifest: dict[str, Any]
    outputs: CaseOutputs = CaseOutputs()
    folder: Path | None = None
    host_threads: dict[str, int] = field(default_factory=dict)
    xlsx: bool = False


@dataclass(frozen=True)
class CaseAnswer:
    """What a task sends back.

    Attributes
    ----------
    files : dict of str to bytes
        The run folder's files by name; only the summary when ``written``.
    written : bool
        The worker wrote the run folder itself (``CaseTask.folder``).
    seconds : float
        Wall time of the task on its worker.
    span : tuple of (float, float, str)
        Wall-clock start and end (seconds since the epoch) and the worker's address: how the
        tasks were spread over the workers.
    """

    files: dict[str, bytes]
    written: bool
    seconds: float
    span: tuple[float, float, str]


def run_case(task: CaseTask, models: dict[str, Any]) -> CaseAnswer:
    """Run one scenario and write its run folder (a dask task).

    With ``task.folder`` the worker writes the folder in place (atomically) and sends back
    only the summary, instead of every file through the scheduler to be written again by the
    client.
    """
    from pmcap.fits import Fits
    from pmcap.output import atomic_folder
    from pmcap.run import run_scenario

    logging.getLogger("pymc").setLevel(logging.ERROR)
    _limit_threads(task.host_threads)
    t0 = time.perf_counter()
    fits = Fits(dict(models), task.diagnostics, task.sources)
    result = run_scenario(
        task.scenario, parsed=task.parsed, fits=fits, service_level=task.outputs.full_run
    )
    summary = summarize(result, ranking=task.outputs.ranking, per_draw=task.outputs.per_draw)
    summary_bytes = (json.dumps(summary, sort_keys=True) + "\n").encode()
    if task.folder is not None:
        with atomic_folder(task.folder) as folder:
            _write_case(folder, task, result, summary_bytes)
        files = {SUMMARY: summary_bytes}
    else:
        with tempfile.TemporaryDirectory(prefix="pmcap-case-") as tmp:
            _write_case(Path(tmp), task, result, summary_bytes)
            files = {p.name: p.read_bytes() for p in sorted(Path(tmp).iterdir())}
    return CaseAnswer(
        files=files,
        written=task.folder is not None,
        seconds=time.perf_counter() - t0,
        span=(time.time() - (time.perf_counter() - t0), time.time(), _worker_address()),
    )


def _write_case(folder: Path, task: CaseTask, result, summary: bytes) -> None:
    """A scenario's run folder: every output of ``pmcap run`` (or, without a full run, none),
    its summary, its scenario.toml and a manifest that lets a rerun skip it."""
    from pmcap import __version__
    from pmcap.runfolder import write_run

    if task.outputs.full_run:
        write_run(
            folder,
            result,
            xlsx=task.xlsx,
            version=__version__,
            t0=time.perf_counter(),
            scenario_text=task.text,
            provenance=task.provenance,
            title=task.title,
        )
    else:  # a light folder (sensitivity swings): still resumable
        (folder / "manifest.json").write_text(json.dumps(task.manifest, indent=2) + "\n")
    (folder / SUMMARY).write_bytes(summary)
    (folder / "scenario.toml").write_text(task.text)
