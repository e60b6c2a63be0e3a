"""The report's optional blocks: materials (a bill of materials), the network plan
(``[network]``) and the facility twin (``[facility.twin]``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pmcap.report.tables import money, percent
from pmcap.run import RunResult


def materials_section(result: RunResult, top: int = 8) -> dict | None:
    """The report's materials block: the items most at risk and the spend per year.

    ``rows``: the ``top`` items of every process's bill by P(stock-out) averaged over the
    months of the horizon (then its worst month's), with the worst month and its value, the
    expected lots waiting for the item at the end of that month, the expected spend over the
    horizon and, for an item with a second supplier, the average P(stock-out) and the lots
    waiting in the worst month without it, and the premium it costs. The average ranks: the
    last months' levels cover only the months left in the horizon, so their P(stock-out)
    can exceed the target. ``spend``: per year, the mean and percentiles of each draw's
    materials spend in the year (all processes, as ``finance.csv``). None when no process
    has a bill of materials.
    """
    if not result.materials:
        return None
    from pmcap.export import materials_spend

    sc = result.scenario
    currency = sc.costs.currency
    rows = []
    for process, plan in result.materials.items():
        months = pd.DatetimeIndex(plan["month"].values)
        for item in map(str, plan["item"].values):
            one = plan.sel(item=item)
            p = one["stockout_probability"].values
            worst = int(np.argmax(p))
            row = {
                "process": process,
                "item": item,
                "p": float(p.mean()),
                "p_text": percent(float(p.mean())),
                "worst": float(p[worst]),
                "worst_text": percent(float(p[worst])),
                "month": f"{months[worst]:%Y-%m}",
                "lots": float(one["expected_lots_at_risk"].values[worst]),
                "spend": money(float(one["expected_spend"].values.sum()), currency),
                "single": "",
                "single_lots": "",
                "premium": "",
            }
            row["lots_text"] = f"{row['lots']:.1f}"
            if "stockout_probability_single_source" in one:
                alone = one["stockout_probability_single_source"].values
                if np.isfinite(alone).all():
                    row["single"] = percent(float(alone.mean()))
                    lots = one["expected_lots_at_risk_single_source"].values[worst]
                    row["single_lots"] = f"{float(lots):.1f}"
                    premium = float(one["expected_second_supplier_premium"].values.sum())
                    row["premium"] = money(premium, currency)
            rows.append(row)
    rows.sort(key=lambda r: (-r["p"], -r["worst"], r["process"], r["item"]))
    spend = materials_spend(result.materials, result.requirements["lots"]).sum("program")
    spend = spend.transpose("draw", "month").values
    years = pd.DatetimeIndex(result.requirements["month"].values).year.to_numpy()
    qs = sc.run.quantiles
    spend_rows = []
    for year in np.unique(years):
        each = spend[:, years == year].sum(axis=1)  # each draw's spend in the year
        cells = [money(float(v), currency) for v in np.quantile(each, qs)]
        spend_rows.append(
            {"year": int(year), "mean": money(float(each.mean()), currency), "cells": cells}
        )
    return {
        "rows": rows[:top],
        "more": max(len(rows) - top, 0),
        "second": any(r["single"] for r in rows[:top]),
        "spend": spend_rows,
        "target": percent(min(float(p.attrs["target"]) for p in result.materials.values())),
    }


def network_paragraph(result: RunResult) -> str | None:
    """The report's ``[network]`` paragraph (``None`` without it): the recommended
    commitments with dates, the expected discounted cost with its P10/P90, P(service met)
    and the value of waiting (:func:`capacity.plan_network`, ``network.csv``)."""
    run = getattr(result, "network", None)
    if run is None:
        return None
    plan, cur = run.plan, run.currency
    s = plan.summary

    def money(x: float) -> str:
        return f"{x / 1e6:,.1f}M {cur}".rstrip()

    label = {"own": "module(s)", "cdmo": "CDMO slot(s)", "hire": "operator hire(s)"}
    commits = [
        f"{c.units} {label[c.kind]} at {c.site} "
        f"committed {c.commit_month:%Y-%m} (online {c.online_month:%Y-%m})"
        for c in plan.commitments.itertuples()
    ]
    text = (
        "Network plan (network.csv): "
        + ("; ".join(commits) if commits else "no new capacity")
        + f". Expected cost {money(s['expected_cost'])} discounted at "
        f"{result.scenario.network.discount_rate:g} a year (P10 {money(s['cost_p10'])}, "
        f"P90 {money(s['cost_p90'])}), P(every patient served) {s['service_probability']:.2f}, "
        f"cost per patient treated P50 {money(s['cost_per_patient_p50'])}."
    )
    staff = [k for k in run.costs.columns if k[0] == "operators"]
    if staff:  # sites with operators: the hires and their cost (site_costs, finance.csv)
        hires = plan.commitments.loc[plan.commitments["kind"] == "hire", "units"].sum()
        text += (
            f" Operators: {int(hires)} hired over the horizon; operators cost "
            f"{money(float(run.costs[staff].to_numpy().sum()))} undiscounted "
            "(finance.csv, network_operators_cost)."
        )
    for months, value in plan.value_of_waiting.items():
        verdict = "worth it" if value > 0 else "not worth it"
        text += (
            f" Waiting {months} months before committing changes the expected cost by "
            f"{money(-value)} (value of waiting {money(value)}: {verdict})."
        )
    return text


def _cause_label(cause: str) -> str:
    named = {"suites": "rooms (suites)", "crews": "operators (crews)", "downtime": "downtime"}
    if cause in named:
        return named[cause]
    return "QC analysts" if cause == "analysts" else f"QC instrument {cause}"


def twin_section(result: RunResult) -> dict | None:
    """The facility twin's block of the report (``[facility.twin]`` only): per year of
    apheresis the binding constraint and the vein-to-vein bands.

    * binding constraint: the cause with the largest share of the year's waiting days (days
      lots waited for suites, crews, downtime and each QC resource, summed over the year's
      patients and over draws), with that share and the share of suites; the P50 and P90
      across draws of each draw's mean days waited per patient in the year;
    * vein-to-vein: P50 and P90 across draws of each draw's median and 90th percentile of
      the year's treated patients' vein-to-vein days, and P(v2v > target): the share of the
      year's patients not infused within the target (lost patients count as over), pooled
      over draws.
    """
    from pmcap.twin_sizing import sizing_sentence
    from pmcap.twin_summary import twin_years

    twin = getattr(result, "twin", None)
    if twin is None:
        return None
    target = float(twin["share_v2v_over_target"].attrs.get("target_days", np.nan))
    causes = [str(c) for c in twin["cause"].values]
    rows = []
    for y in twin_years(twin).to_dict("records"):
        row = {"year": y["year"], "patients": f"{y['patients']:.0f}"}
        if y["binding"]:
            row["binding"] = _cause_label(y["binding"])
            row["share"] = percent(y["binding_share"])
            row["suites_share"] = percent(y["suites_share"])
        else:
            row["binding"], row["share"], row["suites_share"] = "none (no waiting)", "", ""
        row["wait"] = f"{y['wait_p50']:.1f} / {y['wait_p90']:.1f}"
        for key in ("v2v_p50", "v2v_p90"):
            lo, hi = y[f"{key}_p50"], y[f"{key}_p90"]
            row[key] = "no patient treated" if np.isnan(lo) else f"{lo:.0f} / {hi:.0f}"
        row["over"] = percent(y["over_target"])
        rows.append(row)
    binding = [r for r in rows if r["share"]]
    worst = max(binding, key=lambda r: float(r["wait"].split(" / ")[1]), default=None)
    if worst is None:
        lead = "In the facility twin no lot waited: neither rooms, operators nor QC bind."
    else:
        lead = (
            f"In {worst['year']} (the year with the longest P90 wait) the waiting comes from "
            f"{worst['binding']} ({worst['share']} of waiting days)"
            + (
                "."
                if worst["binding"] == "rooms (suites)"
                else f", not rooms (rooms: {worst['suites_share']})."
            )
        )
    return {
        "lead": lead,
        "rows": rows,
        "target": f"{target:g}",
        "draws": int(twin.sizes["draw"]),
        "suites": twin.attrs.get("suites"),
        "suites_last": twin.attrs.get("suites_last", twin.attrs.get("suites")),
        "operators": twin.attrs.get("operators", ""),
        "sizing": sizing_sentence(getattr(result, "twin_sizing", None)),
        "qc": (
            "the QC lab of [facility.qc_lab] (its instruments throughout, its analysts from "
            "the [workforce] QC hiring plan)"
            if twin.attrs.get("analysts") == "workforce"
            else "the QC lab of [facility.qc_lab] (its analysts and instruments throughout)"
            if "analysts" in causes
            else "each QC panel's turnaround (no QC queue)"
        ),
    }
