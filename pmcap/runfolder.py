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
    in_child: bool = False,
) -> list[str]:
    """Every output file of a run into ``folder``; returns their names.

    ``in_child`` writes ``draws.nc`` and draws the report's charts in a forked child process,
    and ``finance.xlsx`` in another, while this one writes the tables and the report
    (:class:`pmcap.forked.InChild`): the same files, sooner on two cores.

    ``scenario_text`` (shown in the report) and ``provenance`` (the manifest's ``scenario``
    and ``inputs`` entries, plus any other fields) default to reading the scenario's files;
    a sweep passes them so that a worker reads no input file.
    """
    from pmcap import export
    from pmcap.forked import InChild
    from pmcap.report import report_figures

    children: list[InChild] = []

    def start(fn):
        """``fn`` started in a child (``in_child``) or not: call the result for its value."""
        if not in_child:
            return fn
        children.append(InChild(fn))
        return children[-1].result

    def draws_and_figures() -> dict[str, str]:
        export.write_draws(folder / "draws.nc", result.world, result.requirements, result.total)
        return report_figures(result)

    try:
        figures = start(draws_and_figures)
        return _write_run(
            folder, result, xlsx, version, t0, overrides, scenario_text, provenance, title,
            figures, start,
        )  # fmt: skip
    finally:
        for child in children:
            child.cancel()  # stops a child the run failed before collecting


def _write_run(
    folder, result, xlsx, version, t0, overrides, scenario_text, provenance, title, figures, start
) -> list[str]:
    from pmcap import costs, export
    from pmcap.output import file_sha256, write_manifest
    from pmcap.report import render_report

    sc = result.scenario
    qs = sc.run.quantiles
    launched = result.world.launched_by_month()
    rates = costs.rates(sc)
    months = result.world.demand["month"].values
    plan_cost = costs.plan_costs(result.plans, result.installed, rates, months)
    network = getattr(result, "network", None)  # [network]
    tables = {
        "requirements.csv": export.requirements_table(result.requirements, result.total, qs),
        "demand.csv": export.demand_table(result.world.demand, qs, launched),
        "finance.csv": export.finance_table(
            result.requirements,
            result.total,
            result.world.demand,
            qs,
            launched,
            rates=rates,
            plan=plan_cost,
            materials=result.materials,
            network_costs=network.costs if network is not None else None,
            workforce=getattr(result, "workforce", None),
            vector=getattr(result, "vector", None),
        ),
        "shortfall.csv": export.shortfall_table(result.shortfall),
        "plan.csv": export.plan_table(result.plans, rates),
        "events.csv": result.world.event_percentiles(qs),
        "drivers.csv": result.drivers,
    }
    if getattr(result, "workforce", None) is not None:  # [workforce]
        tables["workforce.csv"] = result.workforce.by_month
    if result.materials:  # only when a process has a bill of materials
        tables["materials.csv"] = export.materials_table(result.materials, rates.currency)
    if getattr(result, "vector", None):  # only when a process has a [vector]
        tables["vector.csv"] = export.vector_table(result.vector, rates.currency, qs)
        tables["vector_campaigns.csv"] = export.vector_campaigns_table(
            result.vector, rates.currency
        )
    if network is not None:
        from pmcap.network import network_table

        tables["network.csv"] = network_table(network)
    tables.update(twin_tables(result, qs))  # only with [facility.twin]
    names = list(tables)
    if xlsx:
        finance = tables["finance.csv"]
        book = start(
            lambda: export.write_xlsx(
                folder / "finance.xlsx",
                {
                    "annual": finance[finance["granularity"] == "year"],
                    "monthly": finance[finance["granularity"] == "month"],
                    "shortfall": tables["shortfall.csv"],
                    "plan": tables["plan.csv"],
                },
                notes=finance_notes(result, version, title)
                + network_notes(result)
                + workforce_notes(result),
            )
        )
        names.append("finance.xlsx")
    for name, frame in tables.items():
        export.write_csv(frame, folder / name)
    drawn = figures()  # draws.nc is written too
    text = scenario_text if scenario_text is not None else (sc.path.read_text() if sc.path else "")
    report = render_report(result, text, version, overrides, title, figures=drawn)
    (folder / "report.html").write_text(report)
    if xlsx:
        book()
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


def finance_notes(result, version: str, title: str | None = None) -> list[tuple[str, str]]:
    """The ``notes`` sheet of ``finance.xlsx``: what was run and how to read the columns."""
    from pmcap.costs import rates

    sc = result.scenario
    r = rates(sc)
    cur = r.currency
    import pandas as pd

    months = pd.DatetimeIndex(result.world.demand["month"].values)
    qs = ", ".join(f"P{100 * q:g}" for q in sc.run.quantiles)
    default = sc.costs.model_fields_set.isdisjoint({"operator_salary", "qc_salary", "qa_salary"})
    return [
        ("scenario", title or (str(sc.path) if sc.path else "scenario")),
        ("as of (data cut)", f"{sc.run.as_of:%Y-%m-%d}"),
        ("horizon", f"{months[0]:%Y-%m} to {months[-1]:%Y-%m}"),
        ("draws, seed", f"{sc.run.draws} draws, seed {sc.run.seed}"),
        ("pmcap version", version),
        ("currency", f"{cur}: every cost column"),
        (
            "P-columns",
            f"{qs}: percentiles across the {sc.run.draws} draws of each row's own total (flows: "
            "patients, lots, hours, costs, summed over the period) or average (stocks: suites, "
            "FTE) in that period, computed per program and for the total. Do not add P50s "
            "across programs or months: a sum of percentiles is not the percentile of the sum "
            "(use the total row, or the annual row). Means add up across programs, except "
            "operators and the staff and operating costs that include them (see total rows). "
            "Counts (patients, lots) take a value some draw took.",
        ),
        (
            "total rows",
            "program = total is the facility: the sum over programs in each draw (the operator "
            "crew floor is applied to the facility, so operators need not add up).",
        ),
        (
            "costs of the need",
            f"staff_cost = FTE x loaded salary per FTE-year / 12 a month (operators "
            f"{r.salary['operator_fte']:,.0f}, QC {r.salary['qc_fte']:,.0f}, QA "
            f"{r.salary['qa_fte']:,.0f} {cur}"
            + ("; pmcap's default salaries, an assumption: set [costs]" if default else "")
            + f"); suite_cost = suites x {r.suite_year:,.0f} {cur} a suite-year "
            "(facility.module_cost_per_year / module_suites) / 12; operating_cost = both.",
        ),
        (
            "costs of the plan",
            "plan_capital_cost and plan_operating_cost (total rows only): the recommended plan "
            f"(installed plus planned modules and hires). Capital: {r.module_capital:,.0f} "
            f"{cur} per module in its commit month (a commitment before the first month is "
            "counted in it). Operating: suites and staff online x the rates above.",
        ),
        ("sheets", "annual, monthly: finance.csv; shortfall: shortfall.csv; plan: plan.csv."),
    ] + materials_notes(result)


def materials_notes(result) -> list[tuple[str, str]]:
    """The ``finance.xlsx`` note on ``materials_spend`` (when a process has a bill)."""
    if not getattr(result, "materials", None):
        return []
    return [
        (
            "materials spend",
            "materials_spend: each draw's orders of bill-of-materials items x unit cost (a "
            "second supplier's at its premium) in the month each order is placed, the "
            "opening stock excluded; a program's share of an order is its share of the lots "
            "using the item over the months the order covers. Per item: materials.csv.",
        )
    ]


def network_notes(result) -> list[tuple[str, str]]:
    """The ``finance.xlsx`` note on the per-site network costs (with ``[network]``)."""
    if getattr(result, "network", None) is None:
        return []
    return [
        (
            "network costs",
            "network_capital_cost[SITE] and network_operating_cost[SITE] (total rows only): "
            "the [network] plan of network.csv per site, the mean over draws, undiscounted. "
            "Capital: module_capital per module in its commit month. Operating: module "
            "running cost from online (a CDMO slot's fee from reservation), fixed cost while "
            "the site has capacity, and cost_per_lot x the lots made there. Lane costs and "
            "the penalty for patients not served are in network.csv's expected_cost only.",
        )
    ]


def twin_tables(result, quantiles) -> dict:
    """``vein_to_vein.csv`` (:func:`capacity.twin_bands`) when the run simulated the facility
    twin, and ``qc_lab.csv`` (:func:`capacity.qc_lab_bands`, months of the end of manufacture
    from the horizon's first, with two months after it for the last lots) when its QC stage
    was the lab, and ``twin_sizing.csv`` (:func:`pmcap.twin_sizing.size_twin`) when it was
    sized."""
    import pandas as pd

    from capacity.qclab import qc_lab_bands
    from capacity.twin import twin_bands

    twin = getattr(result, "twin", None)
    if twin is None:
        return {}
    out = {"vein_to_vein.csv": twin_bands(twin, quantiles)}
    if getattr(result, "twin_sizing", None) is not None:  # [facility.twin] size = true
        out["twin_sizing.csv"] = result.twin_sizing
    lab = getattr(result, "qc_lab", None)
    if lab is not None:
        section = result.scenario.facility.qc_lab
        frame = qc_lab_bands(lab, lab.months, target_days=section.target_days, quantiles=quantiles)
        first = pd.Timestamp(twin["month"].values[0])  # months before the start: in_progress
        out["qc_lab.csv"] = frame[frame["month"] >= first].reset_index(drop=True)
    return out


def workforce_notes(result) -> list[tuple[str, str]]:
    """The ``finance.xlsx`` note on the ``[workforce]`` columns (when the scenario has it)."""
    if getattr(result, "workforce", None) is None:
        return []
    return [
        (
            "workforce",
            "workforce_headcount and workforce_salary_cost (total rows only): qualified "
            "operators plus trainees in each draw with the requisition plan of workforce.csv, "
            "and that headcount x costs.operator_salary / 12 a month (trainees are paid while "
            "they train).",
        )
    ]
