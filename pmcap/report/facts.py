"""The report's sentences: the one-line answer it opens with (:func:`headline`), the key
facts of the decisions and the vector plan's fact.
"""

from __future__ import annotations

import pandas as pd

from pmcap.report.tables import LABELS, RESOURCES, money, percent
from pmcap.run import RunResult


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _upper(text: str) -> str:
    return text[:1].upper() + text[1:]


def headline(result: RunResult) -> dict:
    """The one-line answer the report opens with, from the decision tables: what runs short
    first and when (``shortfall.csv``: the first month whose shortfall probability with what
    is installed exceeds the target), what to commit now (the modules of ``plan.csv`` whose
    commit month is the month of ``run.as_of`` or earlier, with their capital and running
    cost), when to open the first requisition (the earliest hiring commit month) and how
    sure (the plans' target, and the highest monthly shortfall probability of the plan in the
    months before a new module or hire can be online). Returns the sentences (``answer``,
    ``lines``: (label, text) pairs) and the numbers behind them (``numbers``)."""
    sc = result.scenario
    fac, costs = sc.facility, sc.costs
    cur = costs.currency
    target = fac.shortfall_target
    now = pd.Timestamp(sc.run.as_of).to_period("M").to_timestamp()
    numbers: dict = {"target": target}
    sf = result.shortfall
    over = sf[(sf["probability"] > target) & (sf["metric"] != "any")]
    lines = []
    if len(over):
        first = over["month"].min()
        which = [
            m for m, _ in RESOURCES if ((over["metric"] == m) & (over["month"] == first)).any()
        ]
        numbers.update(first_short_month=f"{first:%Y-%m}", first_short=which)
        limit = (
            "Runs short first",
            f"{_and([LABELS[m] for m in which])} from {first:%Y-%m}: the chance that need "
            f"exceeds what is installed is over {100 * target:g}%.",
        )
        short_answer = f"{_upper(_and([LABELS[m] for m in which]))} run short from {first:%Y-%m}."
    else:
        numbers.update(first_short_month=None, first_short=[])
        limit = (
            "Runs short",
            f"nothing: no month has a chance of a shortfall over {100 * target:g}% with what "
            "is installed.",
        )
        short_answer = "What is installed covers the need."
    lines.append(limit)

    c = result.plans["suites"].commitments
    due = c[c["commit_month"] <= now]
    n_now = len(due)
    numbers.update(modules_now=n_now, modules_total=len(c))
    if n_now:
        online = due["online_month"].min()
        capital = n_now * costs.module_capital
        per_year = n_now * fac.module_cost_per_year
        numbers.update(online=f"{online:%Y-%m}", capital=capital, operating_per_year=per_year)
        cost = f"capital {money(capital, cur)}" if capital else "no capital cost given"
        run = f", then {money(per_year, cur)} a year to run" if per_year else ""
        commit = (
            "Commit now",
            f"{n_now} module{'s' * (n_now > 1)} ({n_now * fac.module_suites} suites), online "
            f"{online:%Y-%m}: {cost}{run}.",
        )
        commit_answer = f"Commit {n_now} module{'s' * (n_now > 1)} now ({cost})."
    elif len(c):
        nxt = c.iloc[0]
        numbers.update(next_commit=f"{nxt['commit_month']:%Y-%m}")
        commit = (
            "Commit now",
            f"nothing; the first module is due {nxt['commit_month']:%Y-%m} (online "
            f"{nxt['online_month']:%Y-%m}), capital {money(costs.module_capital, cur)}.",
        )
        commit_answer = f"No module to commit now (next: {nxt['commit_month']:%Y-%m})."
    else:
        commit = ("Commit now", "nothing: no new module is needed over the horizon.")
        commit_answer = "No new module is needed."
    lines.append(commit)

    hires = {r: result.plans[r].commitments for r, _ in RESOURCES[1:] if r in result.plans}
    firsts = {r: h["commit_month"].min() for r, h in hires.items() if len(h)}
    if firsts:
        when = min(firsts.values())
        roles = [r for r, m in firsts.items() if m == when]
        fte = {r: int((hires[r]["commit_month"] == when).sum()) for r in roles}
        staff = sum(fte[r] * costs.salary(r) for r in roles)
        numbers.update(first_requisition=f"{when:%Y-%m}", requisition_fte=fte, staff_cost=staff)
        is_now = " (now)" if when <= now else ""
        what = _and([f"{fte[r]} {LABELS[r]}" for r in roles])
        lines.append(
            (
                "First requisition",
                f"{when:%Y-%m}{is_now}: {what}, {money(staff, cur)} a year in loaded salaries.",
            )
        )
        hire_answer = f"Open the first requisition {when:%Y-%m}{is_now}."
    else:
        numbers.update(first_requisition=None)
        lines.append(("First requisition", "none: no hire is needed over the horizon."))
        hire_answer = "No hire is needed."

    # before a new unit can be online the plan cannot help: say how short it may be then
    worst, worst_month, worst_what = 0.0, None, None
    for resource, plan in result.plans.items():
        bm = plan.by_month
        early = bm[~bm["helpable"]]
        if len(early) and early["shortfall_probability"].max() > worst:
            i = early["shortfall_probability"].idxmax()
            worst = float(early.loc[i, "shortfall_probability"])
            worst_month, worst_what = early.loc[i, "month"], resource
    numbers.update(worst_before_online=worst)
    sure = (
        f"the plan keeps each resource's chance of running short under {100 * target:g}% in "
        f"every month it can reach, each on its own, not all at once ({sc.run.draws} draws)"
    )
    if worst > target:
        sure += (
            f"; before new capacity can be online it is up to {percent(worst)} "
            f"({LABELS[worst_what]}, {worst_month:%Y-%m})."
        )
    else:
        sure += "."
    joint = getattr(result, "joint_shortfall", None)  # the chance that any resource is short
    if joint is not None and joint["helpable"].any():
        reach = joint[joint["helpable"]]
        i = reach["probability"].idxmax()
        any_worst, any_month = float(reach.loc[i, "probability"]), reach.loc[i, "month"]
        numbers.update(any_short_worst=any_worst, any_short_month=f"{any_month:%Y-%m}")
        sure += (
            f" All resources at once: the chance that any of them runs short is up to "
            f"{percent(any_worst)} in a month every plan can reach ({any_month:%Y-%m})."
        )
    lines.append(("How sure", sure))
    sure_answer = (
        f"Each resource is planned for a {100 * (1 - target):g}% chance of enough each month."
    )
    answer = " ".join([short_answer, commit_answer, hire_answer, sure_answer])
    return {"answer": answer, "lines": lines, "numbers": numbers}


def key_facts(result: RunResult) -> list[str]:
    facts = []
    sf = result.shortfall
    target = result.scenario.facility.shortfall_target
    over = sf[sf["probability"] > target]
    first = over.groupby("metric")["month"].min()
    if "any" in first:
        detail = ", ".join(f"{LABELS[m]} {first[m]:%Y-%m}" for m, _ in RESOURCES if m in first)
        facts.append(
            f"First month with a shortfall probability over {100 * target:g}% with what is "
            f"installed: {first['any']:%Y-%m} ({detail})."
        )
    else:
        facts.append(
            f"No month has a shortfall probability over {100 * target:g}% with what is installed."
        )
    if result.service is not None:
        sl = result.service
        lvl = result.scenario.facility.service_level
        made_with = ", ".join(f"{p} {name}" for p, name in result.service_processes.items())
        facts.append(
            f"Service level: to keep {100 * (1 - lvl.epsilon):g}% of patients waiting under "
            f"{lvl.max_wait_days:g} days for a suite over the horizon you need {sl['p50']} "
            f"suites at P50 and {sl['p90']} at P90 (day-level simulation of {sl['draws']} "
            f"draws, lots made with each program's own process: {made_with})."
        )
    plan = result.plans["suites"]
    c = plan.commitments
    sc = result.scenario
    fac = sc.facility
    if len(c):
        commit, online = c["commit_month"].iloc[0], c["online_month"].iloc[0]
        decided = pd.Timestamp(result.scenario.run.as_of).to_period("M").to_timestamp()
        late = (
            " - that is now: the need arises before a module committed today can be online"
            if commit <= decided
            else ""
        )
        now = int((c["commit_month"] == commit).sum())
        cost = (
            f" Expected running cost of the added modules over the horizon: "
            f"{money(plan.cost['total'], sc.costs.currency)}."
            if fac.module_cost_per_year
            else ""
        )
        facts.append(
            f"Next module ({fac.module_suites} suites, {fac.module_lead_time_months} months lead "
            f"time): commit {now} module(s) {commit:%Y-%m} to be online {online:%Y-%m}{late}; "
            f"{len(c)} module(s) in all over the horizon to keep the monthly shortfall "
            f"probability under {plan.target:g}.{cost}"
        )
    else:
        facts.append("No new module is needed over the horizon at the shortfall target.")
    for role, label in RESOURCES[1:]:
        hires = result.plans[role].commitments
        if len(hires):
            facts.append(
                f"{label}: open the first requisition {hires['commit_month'].iloc[0]:%Y-%m} "
                f"({len(hires)} FTE to add by {hires['online_month'].iloc[-1]:%Y-%m}; staffing "
                "only the suites the module plan brings online, so it can differ from the "
                "shortfall dates above, which compare need with what is installed today)."
            )
    wf = result.workforce
    if wf is not None and (wf.by_month["requisitions"] > 0).any():
        first = wf.by_month.loc[wf.by_month["requisitions"] > 0].iloc[0]
        facts.append(
            f"With [workforce] (workforce.csv): open the first operator requisitions "
            f"{pd.Timestamp(first['month']):%Y-%m} ({first['requisitions']:g}), counting "
            "recruiting, training, mentoring and attrition. The operator lines above do not "
            "count them yet; where the two differ, plan hiring from workforce.csv."
        )
    facts += vector_facts(result)
    return facts


def vector_facts(result: RunResult) -> list[str]:
    """One key fact per process with a ``[vector]``: its campaign calendar, P(a lot waits
    for vector) and the doses that expire unused (from :func:`capacity.plan_vector`)."""
    facts = []
    currency = result.scenario.costs.currency
    for process, plan in (getattr(result, "vector", None) or {}).items():
        by_month = plan.by_month
        started = by_month.loc[by_month["campaigns_started"] > 0, "month"]
        planned = by_month[by_month["planned"]]
        totals = plan.totals.set_index("metric")
        when = (
            f"the first {pd.Timestamp(started.iloc[0]):%Y-%m}"
            + (f", the next {pd.Timestamp(started.iloc[1]):%Y-%m}" if len(started) > 1 else "")
            if len(started)
            else "none needed"
        )
        risk = (
            f"P(a lot waits for vector) is at most {percent(planned['wait_probability'].max())} "
            f"a month from {pd.Timestamp(planned['month'].iloc[0]):%Y-%m}, the first month a "
            f"campaign started now can reach (target {percent(plan.target)})"
            if len(planned)
            else "no month is within reach of a campaign started now"
        )
        cost = f"; campaigns cost {money(plan.cost, currency)}" if plan.cost else ""
        facts.append(
            f"Vector of {process} (vector.csv): start {len(plan.starts)} campaign(s), {when}; "
            f"{risk}. Over the horizon a draw releases {totals.loc['doses_made', 'p50']:,.0f} "
            f"doses at P50 and loses {totals.loc['doses_expired', 'p50']:,.0f} to expiry (P90 "
            f"{totals.loc['doses_expired', 'p90']:,.0f}){cost}."
        )
    return facts
