"""The self-contained HTML report of a run: inline PNG charts, no network access.

Sections (``templates/report.html``): the decisions (what to build or hire when, from the
module and hiring plans, with key facts), demand, capacity against installed, what drives
the P90 suite need, sampler diagnostics, and the assumptions and sources with the scenario as
written. Charts are drawn in matplotlib's default style on ``Figure`` objects (never pyplot),
so the caller's settings and backend are left alone.

Modules: ``tables`` (the decision and demand tables, amounts and probabilities as text),
``facts`` (the headline and key facts), ``figures`` (the charts), ``sections`` (materials,
network and twin blocks) and ``render`` (the page).
"""

from __future__ import annotations

from pmcap.report.facts import headline, key_facts, vector_facts
from pmcap.report.figures import date_axis, fixed_layout, inline_png, report_figures
from pmcap.report.render import render_report, report_title
from pmcap.report.sections import materials_section, network_paragraph, twin_section
from pmcap.report.tables import LABELS as LABELS
from pmcap.report.tables import RESOURCES as RESOURCES
from pmcap.report.tables import (
    decision_rows,
    decision_table,
    demand_notes,
    installed_series,
    money,
    percent,
    plan_label,
    plan_quantile,
    program_demand_rows,
    program_demand_table,
)

__all__ = [
    "decision_rows",
    "decision_table",
    "demand_notes",
    "inline_png",
    "installed_series",
    "key_facts",
    "program_demand_rows",
    "program_demand_table",
    "headline",
    "money",
    "render_report",
    "report_figures",
    "report_title",
    "date_axis",
    "fixed_layout",
    "materials_section",
    "network_paragraph",
    "percent",
    "plan_label",
    "plan_quantile",
    "twin_section",
    "vector_facts",
]
