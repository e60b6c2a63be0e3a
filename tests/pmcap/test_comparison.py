"""The sweep and sensitivity comparison page (sweep.html), on summaries built by hand: no
sweep is run."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from pmcap.sweep.comparison import display_label, identical_need, render_sweep

MONTHS = ["2027-01-01", "2027-02-01", "2027-03-01"]


def summary(need, installed=10, cost=None, service=None) -> dict:
    """A finished scenario's summary with P90 suite need ``need`` per month."""
    years = [
        {
            "year": 2027,
            "resource": r,
            "p50": 0.8 * max(need),
            "p90": float(max(need)) * (1 if r == "suites" else 7),
            "installed": installed,
            "short": max(need) > installed,
        }
        for r in ("suites", "operator_fte", "qc_fte", "qa_fte")
    ]
    return {
        "months": MONTHS,
        "monthly": {"suites_p90": list(need)},
        "installed_suites": [installed] * len(MONTHS),
        "years": years,
        "first_month_over_target": None,
        "service_suites_p50": service,
        "service_suites_p90": service,
        "modules_needed": 0,
        "first_module_commit": None,
        "added_module_cost": cost,
    }


def sweep(cases: dict[str, dict], keys: list[str]) -> SimpleNamespace:
    base = SimpleNamespace(path=Path("/abs/plan/scenario.toml"), shown_path=Path("scenario.toml"))
    return SimpleNamespace(
        title="t",
        base=base,
        keys=keys,
        cases=[
            SimpleNamespace(name=n, slug=n.replace(" ", "-"), changes=c, digest="0" * 64)
            for n, c in cases.items()
        ],
    )


def test_identical_need_groups_scenarios_whose_lines_coincide():
    summaries = {
        "a": summary([4.0, 5.0, 6.0], installed=8),
        "b": summary([4.0, 5.0, 6.0], installed=12),  # other installed, same need
        "c": summary([4.0, 5.0, 6.5]),
        "d": summary([4.0, 5.0, 6.0]),
        "e": summary([4.0, 5.0, 6.5]),
    }
    summaries["f"] = dict(summary([4.0, 5.0, 6.0]), months=["2028-01-01", *MONTHS[1:]])
    assert identical_need(["a", "b", "c", "d", "e", "f", "missing"], summaries) == [
        ["a", "b", "d"],
        ["c", "e"],
    ]
    assert identical_need(["a", "c"], summaries) == []  # no two alike


def test_display_label_rounds_for_reading():
    assert display_label(0.843448662699) == "0.8434"
    assert display_label(10.8340579025) == "10.83"
    assert display_label(1893.71828) == "1,894"
    assert display_label(12e6) == "12,000,000"
    assert display_label(20) == "20"  # whole numbers exactly
    assert display_label({"triangular": [6.123456, 7, 9.87654321]}) == "triangular(6.123, 7, 9.877)"
    assert (
        display_label({"lognormal": {"median": 3000.4, "p90": 4200}})
        == "lognormal(median=3,000, p90=4200)"
    )
    assert display_label("car-t-autologous-automated") == "car-t-autologous-automated"


def test_identical_scenarios_are_named_together_on_the_page():
    summaries = {
        "as planned": summary([4.0, 5.0, 6.0]),
        "bigger": summary([4.0, 5.0, 6.0], installed=14),
        "faster": summary([3.0, 4.0, 5.0]),
    }
    sw = sweep(
        {"as planned": {}, "bigger": {"facility.suites": 14}, "faster": {"x.y": 0.5}},
        ["facility.suites", "x.y"],
    )
    html = render_sweep(sw, summaries, {}, pd.DataFrame(), "v")
    note = html.split('id="identical"', 1)[1].split("</div>", 1)[0]
    assert "<li>as planned; bigger</li>" in note and "faster" not in note
    # the base scenario is named as the user wrote it
    assert "Base scenario scenario.toml" in html


def test_the_table_rounds_drops_empty_columns_and_scrolls_in_its_box():
    # six keys, each set by one scenario (a one-at-a-time sweep): one "Changes" column
    keys = [f"program.P.input_{i}" for i in range(6)]
    cases = {"base": {}}
    cases |= {f"swing {i}": {k: 0.123456789012 * (i + 1)} for i, k in enumerate(keys)}
    summaries = {n: summary([4.0, 5.0, 6.0], cost=None, service=None) for n in cases}
    html = render_sweep(sweep(cases, keys), summaries, {}, pd.DataFrame(), "v")
    table = html.split('id="decisions"', 1)[1].split("</table>", 1)[0]
    header = re.findall(r"<th[^>]*>([^<]*)</th>", table)
    assert header[:2] == ["Scenario", "Changes"]
    assert not any(k in header for k in keys)
    # no service level, no cost in any scenario: their columns are left out
    assert "Service-level suites" not in header and "Expected cost of added modules" not in header
    assert "Modules to add" in header and "Suites 2027" in header
    assert "program.P.input_0 = 0.1235" in table
    assert not re.search(r"\d\.\d{6,}", table), "a long number on the page"
    # every table scrolls inside its own box instead of widening the page
    assert html.count('<div class="scroll">') == html.count("<table")
    # a failed scenario spans the columns shown
    failed = render_sweep(
        sweep(cases, keys),
        {n: s for n, s in summaries.items() if n != "base"},
        {"base": "boom"},
        pd.DataFrame(),
        "v",
    )
    ncols = len(header) - 2
    assert f'colspan="{ncols}">failed: boom' in failed


def test_few_keys_keep_one_column_each_and_sensitivity_none():
    keys = ["facility.suites", "program.A.process"]
    cases = {
        "a, facility.suites=20": {"facility.suites": 20},
        "b, facility.suites=28": {"facility.suites": 28, "program.A.process": "auto"},
    }
    summaries = {n: summary([4.0, 5.0, 6.0], cost=1.5e8, service=9) for n in cases}
    html = render_sweep(sweep(cases, keys), summaries, {}, pd.DataFrame(), "v")
    header = re.findall(r"<th[^>]*>([^<]*)</th>", html.split('id="decisions"', 1)[1])
    assert header[:3] == ["Scenario", *keys]
    assert "150,000,000" in html and "Service-level suites" in header
    # a sensitivity page: the tornado first, the scenario names already say each change
    extra = {
        "tornado": '<img alt="tornado">',
        "changes_in_name": True,
        "swings": [],
        "year": 2027,
        "shown": 0,
    }
    html = render_sweep(sweep(cases, keys), summaries, {}, pd.DataFrame(), "v", extra=extra)
    header = re.findall(r"<th[^>]*>([^<]*)</th>", html.split('id="decisions"', 1)[1])
    assert header[1] == "Suites 2027"
    assert html.index('id="tornado"') < html.index('id="decisions"')


CHROMIUM = shutil.which("chromium")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_a_wide_sweep_fits_a_1280_px_screen_and_the_tornado_is_on_the_first(tmp_path):
    """Laid out by a real browser at 1280 x 900: the page is no wider than the window (wide
    tables scroll in their box) and a sensitivity page's tornado starts on the first screen."""
    import subprocess

    years = list(range(2027, 2041))  # 14 year columns
    keys = [f"program.A-LONG-PROGRAM-NAME.uptake.input_number_{i}" for i in range(5)]
    cases = {"base": {}}
    cases |= {
        f"A-LONG-PROGRAM-NAME.uptake.input_number_{i} = {0.1 * i:.4g} (P10)": {k: 0.1 * i}
        for i, k in enumerate(keys)
    }
    summaries = {}
    for n in cases:
        s = summary([4.0, 5.0, 6.0], cost=123456789.0, service=12)
        s["years"] = [dict(y, year=year) for year in years for y in s["years"]]
        summaries[n] = s
    pages = {
        "sweep": render_sweep(sweep(cases, keys), summaries, {}, pd.DataFrame(), "v"),
        "sensitivity": render_sweep(
            sweep(cases, keys),
            summaries,
            {},
            pd.DataFrame(),
            "v",
            extra={
                "tornado": '<div style="height: 600px; width: 1200px">tornado</div>',
                "changes_in_name": True,
                "swings": [],
                "year": 2030,
                "shown": 0,
            },
        ),
    }
    for kind, html in pages.items():
        page = tmp_path / f"{kind}.html"
        page.write_text(html)
        dom = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--window-size=1280,900",
                f"--user-data-dir={tmp_path / 'profile'}",
                "--dump-dom",
                page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert dom.returncode == 0, dom.stderr[-2000:]
        width = re.search(r'data-page-width="(\d+)"', dom.stdout)
        assert width, "the page's script did not run"
        assert int(width.group(1)) <= 1280, (kind, width.group(1))
        if kind == "sensitivity":
            top = int(re.search(r'data-tornado-top="(\d+)"', dom.stdout).group(1))
            assert 0 < top < 900


def test_the_chart_draws_one_line_per_distinct_need(monkeypatch):
    import pmcap.report
    from pmcap.sweep.comparison import suite_need_figure

    figures = []
    monkeypatch.setattr(pmcap.report, "inline_png", lambda fig, **kw: figures.append(fig) or "")
    summaries = {
        "a": summary([4.0, 5.0, 6.0], installed=8),
        "b": summary([4.0, 5.0, 6.0], installed=12),
        "c": summary([3.0, 4.0, 5.0], installed=8),
    }
    suite_need_figure(sweep({n: {} for n in summaries}, []), summaries)
    (ax,) = figures[0].axes
    need = [line for line in ax.lines if line.get_linestyle() == "-"]
    installed = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert [line.get_label() for line in need] == ["a; b (same need)", "c"]
    assert sorted(line.get_ydata()[0] for line in installed) == [8, 12]  # once each
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a; b (same need)", "c"]
