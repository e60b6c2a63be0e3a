"""Files for finance and for other tools: tidy bands, the finance table, draws, plans.

Rules every file follows: one name per metric (no metric appears twice under two names, so a
pivot never double-counts), units in a column or in the header, counts (lots, patients) as
whole numbers (their percentiles are values some draw took), annual percentiles taken over each
draw's annual total (flows: lots, patients, QC hours) or annual average (stocks: suites, FTE),
never by adding monthly percentiles.

Modules: ``tables`` (requirements, demand, shortfall, plan, materials and vector tables),
``finance`` (the finance table and its sources) and ``files`` (CSV, NetCDF and Excel
writers).
"""

from __future__ import annotations

from pmcap.export.files import ZERO_TOLERANCE as ZERO_TOLERANCE
from pmcap.export.files import clean_zeros, csv_number, csv_text, write_csv, write_draws, write_xlsx
from pmcap.export.finance import FLOWS as FLOWS
from pmcap.export.finance import LAUNCHED_COLUMN as LAUNCHED_COLUMN
from pmcap.export.finance import _vector_cost_by_month as _vector_cost_by_month
from pmcap.export.finance import finance_sources, finance_table, materials_spend, workforce_costs
from pmcap.export.tables import COUNTS as COUNTS
from pmcap.export.tables import PLAN_UNITS as PLAN_UNITS
from pmcap.export.tables import (
    REPORTED,
    demand_table,
    materials_table,
    plan_cost_columns,
    plan_table,
    quantile_label,
    requirements_table,
    shortfall_table,
    vector_campaigns_table,
    vector_table,
)

__all__ = [
    "REPORTED",
    "requirements_table",
    "demand_table",
    "finance_table",
    "materials_spend",
    "materials_table",
    "shortfall_table",
    "plan_table",
    "write_csv",
    "write_draws",
    "write_xlsx",
    "clean_zeros",
    "csv_number",
    "csv_text",
    "finance_sources",
    "plan_cost_columns",
    "quantile_label",
    "vector_campaigns_table",
    "vector_table",
    "workforce_costs",
]
