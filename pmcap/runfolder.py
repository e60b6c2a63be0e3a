"""A run's folder: every output file of a :class:`~pmcap.run.RunResult` and its manifest.

Library code, shared by ``pmcap run`` and the sweep's workers; the caller provides the folder
(an :func:`pmcap.output.atomic_folder`, so nothing half-written is left behind).
"""

from __future__ import annotations

import time
from pathlib import Path


def write_run(
    folder: Path,
    result,
    *,
    xlsx: bool,
    version: str,
    t0: float,
    overrides: str = "",
    scenario_text: str | None = None,
    provenance: dict | None = None,
    title: str | None = None,
) -> list[str]:
    """Every output file of a run into ``folder``; returns their names.

    ``scenario_text`` (shown in the report) and ``provenance`` (the manifest's ``scenario``
    and ``inputs`` entries, plus any other fields) default to reading the scenario's files;
    a sweep passes them so that a worker reads no input file.
    """
    from pmcap import export
    from pmcap.output import file_sha256, write_manifest
    from pmcap.report import render_report

    sc = result.scenario
    qs = sc.run.quantiles
    launched = result.world.launched_by_month()
    tables = {
        "requirements.csv": export.requirements_table(result.requirements, result.total, qs),
        "demand.csv": export.demand_table(result.world.demand, qs, launched),
        "finance.csv": export.finance_table(
            result.requirements, result.total, result.world.demand, qs, launched
        ),
        "shortfall.csv": export.shortfall_table(result.shortfall),
        "plan.csv": export.plan_table(result.plans),
        "events.csv": result.world.event_percentiles(qs),
        "drivers.csv": result.drivers,
    }
    for name, frame in tables.items():
        export.write_csv(frame, folder / name)
    names = list(tables)
    if xlsx:
        finance = tables["finance.csv"]
        export.write_xlsx(
            folder / "finance.xlsx",
            {
                "annual": finance[finance["granularity"] == "year"],
                "monthly": finance[finance["granularity"] == "month"],
                "shortfall": tables["shortfall.csv"],
                "plan": tables["plan.csv"],
            },
        )
        names.append("finance.xlsx")
    export.write_draws(folder / "draws.nc", result.world, result.requirements, result.total)
    text = scenario_text if scenario_text is not None else (sc.path.read_text() if sc.path else "")
    (folder / "report.html").write_text(render_report(result, text, version, overrides, title))
    names += ["draws.nc", "report.html"]
    timings = dict(result.timings)
    timings["write_s"] = round(time.perf_counter() - t0, 3)
    if provenance is None:
        provenance = {
            # sha256: the file's bytes (what sha256sum prints); digest: the parsed scenario
            # and its input files' bytes (the same for an equivalent file)
            "scenario": {
                "path": str(sc.path),
                "sha256": file_sha256(sc.path) if sc.path else None,
                "digest": sc.digest(),
            },
            "inputs": [{"path": str(p), "sha256": file_sha256(p)} for p in sc.input_files()],
        }
    write_manifest(
        folder,
        command="run",
        **provenance,
        seed=sc.run.seed,
        draws=sc.run.draws,
        quantiles=qs,
        fits=result.fit_sources,
        diagnostics=result.diagnostics,
        diagnostics_ok=result.diagnostics_ok,
        timings=timings,
    )
    names.append("manifest.json")
    return names
