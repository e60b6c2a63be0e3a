"""The report as one HTML page (``templates/report.html``): its title and every section's
context rendered with jinja2.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

from pmcap.report.facts import headline, key_facts
from pmcap.report.figures import report_figures
from pmcap.report.sections import materials_section, network_paragraph, twin_section
from pmcap.report.tables import (
    RESOURCES,
    decision_rows,
    demand_notes,
    plan_label,
    program_demand_rows,
)
from pmcap.run import DIAGNOSTIC_LIMITS, RunResult, diagnostics_pass
from pmcap.scenario import Scenario


def report_title(sc: Scenario, title: str | None = None) -> str:
    """The report's name: ``title`` (a sweep names its scenario), else the scenario's
    ``run.title``, else its file and folder (``my-plan/scenario.toml``)."""
    if title:
        return title
    if sc.run.title:
        return sc.run.title
    return sc.path.parent.name + "/" + sc.path.name if sc.path else "scenario"


def render_report(
    result: RunResult,
    scenario_text: str,
    version: str,
    overrides: str = "",
    title: str | None = None,
    figures: dict[str, str] | None = None,
) -> str:
    """The report of ``result`` as one HTML page. ``scenario_text`` is shown as run,
    ``version`` is pmcap's, ``overrides`` names command-line overrides (``draws=200``) and
    ``title`` names the run in the heading (default: :func:`report_title`). ``figures``: the
    charts already drawn (:func:`pmcap.runfolder.write_run` draws them in a child process),
    else drawn here."""
    import jinja2

    sc = result.scenario
    qs = sc.run.quantiles
    qlabels = [f"p{100 * q:g}" for q in qs]
    events = []
    for row in result.world.event_percentiles(qs).itertuples(index=False):
        row = row._asdict()
        if row["probability"] == 0:
            continue
        entry = {"program": row["program"], "event": row["event"].replace("_", " ")}
        entry["probability"] = f"{row['probability']:.2f}"
        for q in qlabels:
            entry[q] = "" if pd.isna(row[q]) else f"{row[q]:%Y-%m-%d}"
        events.append(entry)
    diagnostics = []
    failing = []
    for name, d in result.diagnostics.items():
        ok = diagnostics_pass(d)
        if not ok:
            failing.append(name)
        diagnostics.append(
            {
                "model": name,
                "source": result.fit_sources.get(name, ""),
                "r_hat": "closed form" if d.get("closed_form") else f"{d['r_hat_max']:.3f}",
                "ess": f"{d['ess_bulk_min']:.0f}",
                "div": d["divergences"],
                "status": "ok" if ok else "FAIL",
            }
        )
    drivers = [
        {"input": r.input, "rho": f"{r.spearman_rho:+.2f}"}
        for r in result.drivers.head(12).itertuples()
    ]
    months = pd.DatetimeIndex(result.total["month"].values)
    demand_programs, demand_rows = program_demand_rows(result)
    assumptions = [
        "Approval odds and phase durations: BIO/Informa/QLS, Clinical Development Success "
        f"Rates 2011-2020 (2021), table '{sc.models.phase_table}', pooled across its groups.",
        "Uptake: Bass adoption pooled across five US CAR-T launches (Kymriah, Yescarta, "
        "Tecartus, Breyanzi, Abecma) fitted to public quarterly and annual sales over US list "
        "prices; a new product draws p and q from that population.",
        "Enrollment: hierarchical Poisson-gamma site rates fitted to the trial's own data; "
        "sites not yet open activate after a learned delay or never (10% prior).",
        "Processes: "
        + "; ".join(
            sorted(
                {
                    f"{p.name} ({s.name})"
                    for p, s in zip(sc.program, result.processes.values(), strict=True)
                }
            )
        )
        + ". Every process parameter and its source is in the process file or template.",
        "Requirements: lots spread over the days they occupy a suite; binomial failures and "
        "re-runs; FTE from hands-on hours and the minimum crew per suite and shift.",
        "Lots in progress at the start (in_progress) are counted in the first months.",
    ]
    template = jinja2.Template(
        (resources.files("pmcap") / "templates" / "report.html").read_text(),
        autoescape=True,
    )
    return template.render(
        title=report_title(sc, title),
        as_of=sc.run.as_of,
        horizon=f"{months[0]:%Y-%m} to {months[-1]:%Y-%m}",
        draws=sc.run.draws,
        seed=sc.run.seed,
        version=version,
        diagnostics_ok=not failing,
        failing=failing,
        limits=DIAGNOSTIC_LIMITS,
        facts=key_facts(result),
        headline=headline(result),
        resources=[{"label": label} for _, label in RESOURCES],
        decision_rows=decision_rows(result),
        plan_label=plan_label(result),
        figures=report_figures(result) if figures is None else figures,
        demand_notes=demand_notes(result),
        demand_programs=demand_programs,
        demand_rows=demand_rows,
        qlabels=qlabels,
        events=events,
        drivers=drivers,
        diagnostics=diagnostics,
        assumptions=assumptions,
        scenario_text=scenario_text,
        target=sc.facility.shortfall_target,
        overrides=overrides,
        materials=materials_section(result),
        network=network_paragraph(result),
        twin=twin_section(result),
    )
