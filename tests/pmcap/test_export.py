"""The tables of pmcap/export.py on small hand-made inputs: exact columns and values."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pmcap import export

MONTHS = pd.date_range("2027-01-01", periods=2, freq="MS")


def test_shortfall_table_of_pmcap_run_keeps_its_units():
    # the resources `pmcap run` checks; their units unchanged since shortfall_table took units
    # from the requirements' metrics (for `pmcap capacity`'s fte[qa], qc_hours[...])
    metrics = ["suites", "operator_fte", "qc_fte", "qa_fte", "any"]
    raw = pd.DataFrame(
        {
            "month": np.tile(MONTHS, len(metrics)),
            "metric": np.repeat(metrics, 2),
            "installed": [12, 12, 160, 160, 12, 12, 6, 6, np.nan, np.nan],
            "probability": [0.1, 0.2, 0, 0, 0, 0.05, 0, 0, 0.1, 0.25],
        }
    )
    table = export.shortfall_table(raw)
    assert list(table.columns) == ["month", "metric", "unit", "installed", "probability"]
    assert table["metric"].tolist()[::2] == [
        "suites",
        "operator_fte",
        "qc_fte",
        "qa_fte",
        "any of suites/operator_fte/qc_fte/qa_fte",
    ]
    assert table["unit"].tolist()[::2] == [
        "suites",
        "FTE",
        "FTE",
        "FTE",
        "(no installed value: at least one resource short)",
    ]
    pd.testing.assert_series_equal(table["probability"], raw["probability"])
