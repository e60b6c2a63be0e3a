"""The optional ``[facility.qc_lab]`` table: checked at the door, built into a QCLab, and the
bands of ``qc_lab.csv`` (capacity.qc_lab_bands) by hand."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from capacity import QCLab, qc_lab_bands, release_days
from capacity.errors import InputError
from pmcap.scenario import example_scenario_path, load_scenario

LAB = """analysts = 6
instruments = {bact-alert = 1, qpcr = 2, endosafe-pts = 1, flow-cytometer = 2, cell-counter = 1, plate-reader = 1, ddpcr = 1}
"""  # noqa: E501


def with_lab(tmp_path: Path, table: str) -> Path:
    folder = tmp_path / "sc"
    shutil.copytree(example_scenario_path().parent, folder)
    path = folder / "scenario.toml"
    # the example's own twin and QC lab tables (its last section) give way to the test's
    text = path.read_text().split("\n# --- the facility twin")[0]
    path.write_text(text + "\n[facility.qc_lab]\n" + table)
    return path


def test_the_table_builds_the_lab_of_the_scenario_processes(tmp_path):
    section = load_scenario(with_lab(tmp_path, LAB + "turnaround_days = {sterility = 7}\n"))
    lab = section.facility.qc_lab.lab(["car-t-autologous-manual", "car-t-autologous-automated"])
    assert isinstance(lab, QCLab)
    assert lab.analysts == 6 and lab.instruments["qpcr"] == 2
    assert lab.turnaround_days == {"sterility": 7.0}
    assert (lab.hours_per_day, lab.days_per_week, lab.shift_start_hour) == (8.0, 5, 8.0)
    # the default monitoring load: the processes' mean qc_fixed_hours_per_month
    assert lab.monitoring_hours() == pytest.approx((80 + 240 + 480) / 3 * 2)


def test_an_instrument_the_lab_lacks_is_named_when_built(tmp_path):
    section = load_scenario(with_lab(tmp_path, "analysts = 2\ninstruments = {qpcr = 1}\n"))
    with pytest.raises(InputError, match=r"^facility\.qc_lab\.instruments: process "):
        section.facility.qc_lab.lab(["car-t-autologous-manual"])


BAD = [
    ("analysts = 0\ninstruments = {}", "facility.qc_lab.analysts"),
    ("analysts = 2\ninstruments = {qpcr = -1}", "facility.qc_lab.instruments"),
    ("analysts = 2\ninstruments = {}\nhours_per_day = 25", "facility.qc_lab.hours_per_day"),
    ("analysts = 2\ninstruments = {}\nshift_start_hour = 20", "shift must end by 24 h"),
    ("analysts = 2\ninstruments = {}\nhands_on = 'normal'", "facility.qc_lab.hands_on"),
    ("analysts = 2\ninstruments = {}\nanalyst = 2", "facility.qc_lab.analyst: unknown key"),
    ("instruments = {}", "facility.qc_lab.analysts"),
]


@pytest.mark.parametrize("table, message", BAD, ids=[b[1] for b in BAD])
def test_bad_qc_lab_keys_are_refused_naming_the_key(tmp_path, table, message):
    path = with_lab(tmp_path, table + "\n")
    with pytest.raises(InputError) as err:
        load_scenario(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value), str(err.value)


def test_bands_by_hand():
    # two draws, a 14-day pure delay, lots in month 0 (days 0-30) and month 1 (30-60);
    # draw 1 has no lot in month 1, so month 1's qc_days is draw 0's alone
    lab = QCLab(
        [{"name": "x", "culture_days": 8, "qc": [{"assay": "s", "hands_on_hours": 0,
                                                   "turnaround_days": 14}]}],
        analysts=1,
        instruments={},
        monitoring_hours_per_month=0,
        turnaround_days={},
    )  # fmt: skip
    ready = np.array([[1.0, 40.0], [2.0, np.nan]])
    out = release_days(
        ready,
        np.zeros((2, 2), np.int64),
        np.array([1, 2], np.uint64),
        lab,
        month_edges=np.array([0.0, 30.0, 60.0]),
    )
    months = pd.date_range("2027-01-01", periods=2, freq="MS")
    frame = qc_lab_bands(out, months, target_days=10, quantiles=(0.5,))
    rows = frame.set_index(["metric", "month"])
    assert rows.loc[("qc_lots", months[0]), "mean"] == 2 / 2 * 1  # one lot in each draw
    assert rows.loc[("qc_lots", months[1]), "mean"] == 0.5
    assert rows.loc[("qc_days", months[1]), "mean"] == 14
    assert rows.loc[("qc_late_share", months[0]), "p50"] == 1.0
    assert rows.loc[("qc_wait[analysts]", months[0]), "mean"] == 0
    assert list(frame.columns) == ["month", "program", "metric", "unit", "mean", "p50"]


def test_validate_builds_the_lab_of_the_programs_processes(tmp_path):
    from pmcap.commands import validate_scenario
    from pmcap.inputs import scenario_qc_lab

    path = with_lab(tmp_path, LAB)
    scenario = validate_scenario(path)  # an example whose processes the lab can test
    lab = scenario_qc_lab(scenario)
    # the example's programs use the manual, automated, manual processes: each once, in
    # order of first use
    assert [s.name for s in lab.processes] == [
        "car-t-autologous-manual",
        "car-t-autologous-automated",
    ]
    # the scenario's [process.NAME] changes reach the lab (the example gives the manual
    # process a bill of materials)
    assert lab.processes[0].materials is not None
