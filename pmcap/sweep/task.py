"""One scenario of a sweep, run as a dask task on a worker: its run folder and its summary."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["RESOURCES", "SUMMARY", "host_of", "run_case", "summarize"]


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
        from pmcap.run import input_columns

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


def host_of(address: str) -> str:
    """``tcp://10.0.0.5:40123`` -> ``10.0.0.5``."""
    return address.split("://")[-1].rsplit(":", 1)[0]


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


def run_case(payload: dict[str, Any], models: dict[str, Any]) -> dict[str, Any]:
    """Run one scenario and return its files as bytes and its summary (a dask task).

    Reads no input file: the checked inputs and the fitted models come with the task. With
    ``payload["folder"]`` (a worker of the LocalCluster the sweep started, on the sweep's own
    machine) the run folder is written there in place (atomically) and only the summary comes
    back, instead of every file (26 MB on the example) through the scheduler to be written
    again by the client.
    """
    from pmcap.output import atomic_folder
    from pmcap.run import Fits, run_scenario

    logging.getLogger("pymc").setLevel(logging.ERROR)
    _limit_threads(payload.get("host_threads"))
    t0 = time.perf_counter()
    fits = Fits(dict(models), payload["diagnostics"], payload["sources"])
    result = run_scenario(
        payload["scenario"],
        parsed=payload["parsed"],
        fits=fits,
        service_level=payload.get("service_level", True),
    )
    summary = summarize(
        result, ranking=payload.get("ranking", False), per_draw=payload.get("per_draw", False)
    )
    summary_bytes = (json.dumps(summary, sort_keys=True) + "\n").encode()
    if payload.get("folder"):
        with atomic_folder(Path(payload["folder"])) as folder:
            _write_case(folder, payload, result, summary_bytes)
        files = {SUMMARY: summary_bytes}
    else:
        with tempfile.TemporaryDirectory(prefix="pmcap-case-") as tmp:
            _write_case(Path(tmp), payload, result, summary_bytes)
            files = {p.name: p.read_bytes() for p in sorted(Path(tmp).iterdir())}
    return {
        "written": bool(payload.get("folder")),
        "files": files,
        "seconds": time.perf_counter() - t0,
        # wall-clock span on this worker (how the tasks were spread over the workers)
        "span": (time.time() - (time.perf_counter() - t0), time.time(), _worker_address()),
    }


def _write_case(folder: Path, payload: dict[str, Any], result, summary: bytes) -> None:
    """A scenario's run folder: every output of ``pmcap run`` (or, for a sensitivity swing,
    none), its summary, its scenario.toml and a manifest that lets a rerun skip it."""
    from pmcap import __version__
    from pmcap.runfolder import write_run

    if payload.get("full", True):
        write_run(
            folder,
            result,
            xlsx=payload.get("xlsx", False),
            version=__version__,
            t0=time.perf_counter(),
            scenario_text=payload["text"],
            provenance=payload["provenance"],
            title=payload.get("title"),
        )
    else:  # a light folder (sensitivity swings): still resumable
        (folder / "manifest.json").write_text(json.dumps(payload["manifest"], indent=2) + "\n")
    (folder / SUMMARY).write_bytes(summary)
    (folder / "scenario.toml").write_text(payload["text"])
