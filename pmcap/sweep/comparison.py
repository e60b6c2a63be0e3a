"""The comparison of a sweep's scenarios: sweep.csv, sweep_monthly.csv and sweep.html."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from pmcap._style import default_style
from pmcap.sweep.cases import Sweep, value_label
from pmcap.sweep.task import RESOURCES

__all__ = ["monthly_table", "render_sweep", "suite_need_figure", "sweep_table"]


def sweep_table(
    sweep: Sweep, summaries: dict[str, dict[str, Any]], failed: dict[str, str]
) -> pd.DataFrame:
    """sweep.csv: one row per scenario: changed keys, decisions, P50/P90 need by year."""
    rows = []
    for case in sweep.cases:
        row: dict[str, Any] = {"scenario": case.name, "folder": f"scenarios/{case.slug}"}
        row["status"] = (
            "failed" if case.name in failed else ("done" if case.name in summaries else "not run")
        )
        for key in sweep.keys:
            row[key] = value_label(case.changes[key]) if key in case.changes else ""
        s = summaries.get(case.name)
        if s is not None:
            row["first_month_over_target"] = s["first_month_over_target"]
            for r in RESOURCES:
                row[f"first_month_over_target_{r}"] = s["first_month_over_target_by"][r]
            row["shortfall_target"] = s["shortfall_target"]
            row["service_suites_p50"] = s["service_suites_p50"]
            row["service_suites_p90"] = s["service_suites_p90"]
            row["modules_needed"] = s["modules_needed"]
            row["first_module_commit"] = s["first_module_commit"]
            row["added_module_cost"] = s["added_module_cost"]
            row["diagnostics_ok"] = s["diagnostics_ok"]
            for y in s["years"]:
                for stat in ("p50", "p90"):
                    row[f"{y['resource']}_{stat}_{y['year']}"] = y[stat]
        row["error"] = failed.get(case.name, "")
        row["digest"] = case.digest[:16]
        rows.append(row)
    frame = pd.DataFrame(rows)
    tail = ["error", "digest"]
    return frame[[c for c in frame.columns if c not in tail] + tail]


def monthly_table(sweep: Sweep, summaries: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """sweep_monthly.csv: scenario, month, installed suites, P50/P90 suites and operators."""
    frames = []
    for case in sweep.cases:
        s = summaries.get(case.name)
        if s is None:
            continue
        frames.append(
            pd.DataFrame(
                {
                    "scenario": case.name,
                    "month": s["months"],
                    "installed_suites": s["installed_suites"],
                    **s["monthly"],
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=["scenario", "month", "installed_suites"])
    return pd.concat(frames, ignore_index=True)


@default_style
def suite_need_figure(sweep: Sweep, summaries: dict[str, dict[str, Any]]) -> str:
    from matplotlib.figure import Figure

    from pmcap.report import inline_png

    fig = Figure(figsize=(10, 4))
    ax = fig.subplots()
    for case in sweep.cases:
        s = summaries.get(case.name)
        if s is None:
            continue
        months = pd.to_datetime(s["months"])
        (line,) = ax.plot(
            months, s["monthly"]["suites_p90"], drawstyle="steps-mid", label=case.name
        )
        ax.plot(months, s["installed_suites"], ls="--", lw=0.8, color=line.get_color())
    ax.set_title("P90 suite need per month (dashed: installed)")
    ax.set_ylabel("suites")
    if len(summaries) <= 12:
        ax.legend(frameon=False, fontsize=7, loc="upper left")
    return inline_png(fig)


def render_sweep(
    sweep: Sweep,
    summaries: dict[str, dict[str, Any]],
    failed: dict[str, str],
    rows: pd.DataFrame,
    version: str,
    extra: dict[str, Any] | None = None,
    out_root: Path | None = None,
) -> str:
    """sweep.html; ``out_root`` (the scenarios folder) links the scenarios with a report."""
    from importlib import resources

    import jinja2

    years = sorted({y["year"] for s in summaries.values() for y in s["years"]})
    # keys set to one value in every scenario ([set]) are in sweep.csv, not in the table
    keys = [
        k
        for k in sweep.keys
        if len({value_label(c.changes.get(k, "")) for c in sweep.cases}) > 1
        or len(sweep.cases) == 1
    ]
    table = []
    for case in sweep.cases:
        s = summaries.get(case.name)
        entry = {
            "name": case.name,
            "folder": f"scenarios/{case.slug}",
            "changes": [value_label(case.changes.get(k, "")) for k in keys],
            "failed": failed.get(case.name),
            "cells": [],
        }
        if s is not None:
            by = {(y["year"], y["resource"]): y for y in s["years"]}
            for year in years:
                y = by.get((year, "suites"))
                entry["cells"].append(
                    None
                    if y is None
                    else {
                        "p50": f"{y['p50']:.1f}",
                        "p90": f"{y['p90']:.1f}",
                        "installed": f"{y['installed']:g}",
                        "short": y["short"],
                    }
                )
            fte = [by.get((years[-1], r)) for r in ("operator_fte", "qc_fte", "qa_fte")]
            entry["fte"] = [f"{y['p90']:.1f}" if y else "" for y in fte]
            entry["first"] = s["first_month_over_target"] or "none"
            entry["service"] = (
                ""
                if s["service_suites_p50"] is None
                else f"{s['service_suites_p50']} / {s['service_suites_p90']}"
            )
            entry["report"] = (
                out_root is not None and (out_root / case.slug / "report.html").exists()
            )
            entry["modules"] = f"{s['modules_needed']}" + (
                f" (commit {s['first_module_commit']})" if s["first_module_commit"] else ""
            )
            cost = s["added_module_cost"]
            entry["cost"] = "" if cost is None else f"{cost:,.0f}"
        table.append(entry)
    template = jinja2.Template(
        (resources.files("pmcap") / "templates" / "sweep.html").read_text(), autoescape=True
    )
    return template.render(
        title=sweep.title,
        base=str(sweep.base.path),
        version=version,
        keys=keys,
        years=years,
        last_year=years[-1] if years else "",
        table=table,
        n_done=len(summaries),
        n_failed=len(failed),
        n=len(sweep.cases),
        figure=suite_need_figure(sweep, summaries) if summaries else "",
        extra=extra or {},
    )
