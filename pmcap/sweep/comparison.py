"""The comparison of a sweep's scenarios: sweep.csv, sweep_monthly.csv and sweep.html."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pmcap._style import default_style
from pmcap.sweep.cases import Sweep, is_distribution, value_label
from pmcap.sweep.task import RESOURCES

__all__ = [
    "display_label",
    "identical_need",
    "monthly_table",
    "render_sweep",
    "suite_need_figure",
    "sweep_table",
]


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
            for y in s.get("twin_years", []):  # with [facility.twin]
                row[f"v2v_p50_{y['year']}"] = y["v2v_p50_p50"]
                row[f"v2v_over_target_{y['year']}"] = y["over_target"]
                row[f"binding_{y['year']}"] = y["binding"]
            if "network_expected_cost" in s:  # with [network]
                row["network_expected_cost"] = s["network_expected_cost"]
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


def display_label(value: Any) -> str:
    """A value as the comparison page shows it: numbers to 4 significant digits
    (``0.843448662699`` -> ``0.8434``), from 1,000 up whole and with thousands separators
    (``12e6`` -> ``12,000,000``), inside distributions too; sweep.csv keeps them exact
    (:func:`pmcap.sweep.cases.value_label`)."""
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    if isinstance(value, dict) and is_distribution(value):
        kind, args = next(iter(value.items()))
        if isinstance(args, dict):
            return f"{kind}(" + ", ".join(f"{k}={display_label(v)}" for k, v in args.items()) + ")"
        return f"{kind}(" + ", ".join(display_label(a) for a in args) + ")"
    if isinstance(value, list):
        return "[" + ", ".join(display_label(v) for v in value) + "]"
    return value_label(value)


def identical_need(names: Sequence[str], summaries: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Groups of two or more scenarios (in ``names`` order) whose P90 suite need is the same
    in every month: their lines on the chart coincide, so the page names them together
    instead of letting one line hide the others. Scenarios without a summary are left out."""
    groups: dict[tuple, list[str]] = {}
    for name in names:
        s = summaries.get(name)
        if s is None:
            continue
        key = (tuple(s["months"]), tuple(float(x) for x in s["monthly"]["suites_p90"]))
        groups.setdefault(key, []).append(name)
    return [g for g in groups.values() if len(g) > 1]


@default_style
def suite_need_figure(sweep: Sweep, summaries: dict[str, dict[str, Any]]) -> str:
    """One line per distinct P90 suite need (scenarios with the same need share a line and a
    label ``A; B (same need)``, the legend below the chart), each distinct installed line
    dashed grey."""
    from matplotlib.figure import Figure

    from pmcap.report import inline_png

    names = [c.name for c in sweep.cases]
    same = {n: g for g in identical_need(names, summaries) for n in g}
    fig = Figure(figsize=(10, 4))
    ax = fig.subplots()
    drawn: set[str] = set()
    installed: set[tuple] = set()
    for case in sweep.cases:
        s = summaries.get(case.name)
        if s is None:
            continue
        months = pd.to_datetime(s["months"])
        group = same.get(case.name, [case.name])
        if group[0] not in drawn:
            drawn.add(group[0])
            ax.plot(
                months,
                s["monthly"]["suites_p90"],
                drawstyle="steps-mid",
                label=f"{'; '.join(group)} (same need)" if len(group) > 1 else case.name,
            )
        key = tuple(float(x) for x in s["installed_suites"])
        if key not in installed:  # each distinct installed line once, in grey
            installed.add(key)
            ax.plot(months, s["installed_suites"], ls="--", lw=0.8, color="0.4")
    ax.set_title("P90 suite need per month (dashed grey: installed)")
    ax.set_ylabel("suites")
    if len(drawn) <= 12:
        ax.legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(0, -0.08))
    return inline_png(fig)


MAX_KEY_COLUMNS = 3  # more changed keys than this: one "Changes" column instead


def _columns(
    sweep: Sweep, summaries: dict[str, dict[str, Any]], years: list[int]
) -> tuple[list[str], list[dict[str, Any]]]:
    """The decision columns of the comparison (headers) and each scenario's cells; a column
    empty in every scenario is dropped."""
    last = years[-1] if years else ""
    headers = [f"Suites {y}" for y in years]
    headers += [f"Operators {last}", f"QC {last}", f"QA {last}"]
    headers += [
        "First month over target",
        "Service-level suites",
        "Modules to add",
        "Expected cost of added modules",
    ]
    rows: list[dict[str, Any]] = []
    for case in sweep.cases:
        s = summaries.get(case.name)
        if s is None:
            rows.append({})
            continue
        by = {(y["year"], y["resource"]): y for y in s["years"]}
        cells = []
        for year in years:
            y = by.get((year, "suites"))
            cells.append(
                {"text": ""}
                if y is None
                else {
                    "text": f"{y['p50']:.1f} / {y['p90']:.1f}",
                    "sub": f"{y['installed']:g} installed",
                    "short": y["short"],
                }
            )
        for r in ("operator_fte", "qc_fte", "qa_fte"):
            y = by.get((years[-1], r)) if years else None
            cells.append({"text": f"{y['p90']:.1f}" if y else ""})
        cells.append({"text": s["first_month_over_target"] or "none"})
        cells.append(
            {
                "text": ""
                if s["service_suites_p50"] is None
                else f"{s['service_suites_p50']} / {s['service_suites_p90']}"
            }
        )
        cells.append(
            {
                "text": f"{s['modules_needed']}"
                + (f" (commit {s['first_module_commit']})" if s["first_module_commit"] else "")
            }
        )
        cost = s["added_module_cost"]
        cells.append({"text": "" if cost is None else f"{cost:,.0f}"})
        rows.append({"cells": cells})
    keep = [
        i
        for i in range(len(headers))
        if any(r and r["cells"][i]["text"] for r in rows) or not any(rows)
    ]
    for r in rows:
        if r:
            r["cells"] = [r["cells"][i] for i in keep]
    return [headers[i] for i in keep], rows


def render_sweep(
    sweep: Sweep,
    summaries: dict[str, dict[str, Any]],
    failed: dict[str, str],
    rows: pd.DataFrame,
    version: str,
    extra: dict[str, Any] | None = None,
    out_root: Path | None = None,
) -> str:
    """sweep.html; ``out_root`` (the scenarios folder) links the scenarios with a report.

    The page fits a 1280-px screen: wide tables scroll inside their box. Values are shown to
    4 significant digits; the changed keys are one column each up to
    :data:`MAX_KEY_COLUMNS` keys, else one "Changes" column naming what each scenario sets
    (none when the scenario names already say it: ``extra["changes_in_name"]``); a decision
    column empty in every scenario is left out. Scenarios with the same P90 suite need every
    month are named together (:func:`identical_need`)."""
    from importlib import resources

    import jinja2

    extra = extra or {}
    years = sorted({y["year"] for s in summaries.values() for y in s["years"]})
    # keys set to one value in every scenario ([set]) are in sweep.csv, not in the table
    keys = [
        k
        for k in sweep.keys
        if len({value_label(c.changes.get(k, "")) for c in sweep.cases}) > 1
        or len(sweep.cases) == 1
    ]
    if extra.get("changes_in_name"):
        key_columns: list[str] = []
    elif len(keys) <= MAX_KEY_COLUMNS:
        key_columns = keys
    else:
        key_columns = ["Changes"]
    headers, cells = _columns(sweep, summaries, years)
    table = []
    for case, row in zip(sweep.cases, cells, strict=True):
        if key_columns == ["Changes"]:
            changes = [
                [f"{k} = {display_label(case.changes[k])}" for k in keys if k in case.changes]
            ]
        else:  # one cell per key, each a list of lines
            changes = [
                [display_label(case.changes[k])] if k in case.changes else [] for k in key_columns
            ]
        table.append(
            {
                "name": case.name,
                "folder": f"scenarios/{case.slug}",
                "changes": changes,
                "failed": failed.get(case.name),
                "cells": row.get("cells", []),
                "report": out_root is not None
                and case.name in summaries
                and (out_root / case.slug / "report.html").exists(),
            }
        )
    template = jinja2.Template(
        (resources.files("pmcap") / "templates" / "sweep.html").read_text(), autoescape=True
    )
    return template.render(
        title=sweep.title,
        base=str(sweep.base.shown_path or sweep.base.path),
        version=version,
        keys=key_columns,
        headers=headers,
        years=years,
        last_year=years[-1] if years else "",
        table=table,
        n_done=len(summaries),
        n_failed=len(failed),
        n=len(sweep.cases),
        figure=suite_need_figure(sweep, summaries) if summaries else "",
        identical=identical_need([c.name for c in sweep.cases], summaries),
        extra=extra,
    )
