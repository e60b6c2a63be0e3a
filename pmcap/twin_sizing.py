"""Qualified operators and QC analysts the facility twin needs per year at a vein-to-vein
service level (``pmcap run`` with ``[facility.twin] size = true``; ``twin_sizing.csv``).

Model. For a resource (qualified operators; with ``[facility.qc_lab]`` also QC analysts and
the instruments of each type the lab has) and
a year of apheresis, the count needed is the fewest count, held constant over the whole
horizon and in every draw, such that the share of the year's patients not infused within
``facility.twin.vein_to_vein.target_days`` of their first apheresis (lost patients and
patients not treated by the end count as over; pooled over the twin's draws, the report's
P(v2v > target)) is at most ``facility.twin.epsilon``. Every other resource stays as the run
has it: suites of :func:`pmcap.run.twin_suites`, operators of ``[workforce]`` or
``facility.operator_fte`` while analysts or instruments are sized, the lab's ``analysts`` and
instruments while operators are. Instruments are searched up to 4 times the lab's count (at
least 16); an instrument type that never binds is needed at 1.

Assumptions. A constant count: a year's answer is for a facility that has had that count
from the start (its earlier backlog included), not a hiring path. A year's share over target
does not rise with the count (the premise of :func:`capacity.size_operators`, checked there
against an exhaustive sweep).

Search. Every count is simulated with the run's seed, hence the same patients, lots and random
numbers (common random numbers, :mod:`capacity._twin`). Operators are searched over crews on
shift (the twin depends on the headcount only through :meth:`capacity.CrewConfig.crews_on_shift`)
and reported as the fewest operators giving the crew count found; analysts directly. One twin
run scores every year; the first count tried is the one the run has, then the search's cap
(years missing there are settled: no count meets), then each year's interval between the
largest count known to miss and the smallest known to meet is bisected, the next count being
that of the first unsettled year, so that the years share runs (about ``log2`` of the
interval, plus a few for years that differ).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["TWIN_SIZING_COLUMNS", "size_by_year", "size_twin", "sizing_sentence", "year_shares"]

TWIN_SIZING_COLUMNS = [
    "year",
    "resource",
    "needed",
    "available",
    "p_over_target_at_needed",
    "p_over_target_at_available",
    "target_days",
    "epsilon",
]


def year_shares(twin: xr.Dataset) -> pd.Series:
    """Per year of apheresis, the share of the year's patients not infused within the
    twin's target (``share_v2v_over_target`` weighted by ``patients``, pooled over draws and
    the year's months); years without patients are left out."""
    years = pd.DatetimeIndex(twin["month"].values).year.to_numpy()
    patients = np.nan_to_num(twin["patients"].transpose("draw", "month").values)
    over = np.nan_to_num(twin["share_v2v_over_target"].transpose("draw", "month").values)
    frame = pd.DataFrame(
        {"year": years, "patients": patients.sum(axis=0), "over": (over * patients).sum(axis=0)}
    )
    by_year = frame.groupby("year")[["patients", "over"]].sum()
    by_year = by_year[by_year["patients"] > 0]
    return (by_year["over"] / by_year["patients"]).rename("share_over_target")


def size_by_year(
    shares_at: Callable[[int], pd.Series],
    *,
    start: int,
    low: int,
    epsilon: float,
    cap: int,
) -> tuple[dict[int, int | None], dict[int, pd.Series]]:
    """Per year, the fewest count in ``[low, cap]`` whose share over target is at most
    ``epsilon``; ``None`` when even ``cap`` misses.

    ``shares_at(count)`` returns the share per year (:func:`year_shares` of a twin run at
    ``count``); it is called once per count tried, and those results are returned as the
    second value. It tries ``start`` first, then ``cap`` if some year misses at ``start``
    (years that miss even there are settled as ``None``), then bisects each year's interval
    between the largest count known to miss and the smallest known to meet, trying the
    midpoint of the first unsettled year. Assumes each year's share does not rise with the
    count.
    """
    tried: dict[int, pd.Series] = {}

    def share(count: int) -> pd.Series:
        if count not in tried:
            tried[count] = shares_at(count)
        return tried[count]

    first = share(max(low, min(start, cap)))
    years = [int(y) for y in first.index]
    lo = dict.fromkeys(years, low - 1)  # largest count known to miss (low - 1: none)
    hi: dict[int, int | None] = dict.fromkeys(years)  # smallest known to meet
    unmet: set[int] = set()
    count = max(low, min(start, cap))
    while True:
        values = share(count)
        for y in years:
            if values.get(y, 0.0) <= epsilon:
                hi[y] = count if hi[y] is None else min(hi[y], count)
            else:
                lo[y] = max(lo[y], count)
        todo = [y for y in years if y not in unmet and (hi[y] is None or hi[y] - lo[y] > 1)]
        if not todo:
            break
        y = todo[0]
        if cap not in tried and any(hi[t] is None for t in todo):
            count = cap  # one run settles every year no count meets
        elif hi[y] is None:  # it missed at cap
            unmet.add(y)
        else:
            count = (lo[y] + hi[y]) // 2
    return {y: (None if y in unmet else hi[y]) for y in years}, tried


def size_twin(
    scenario,
    twin: xr.Dataset,
    simulate: Callable[..., tuple[xr.Dataset, Any]],
    workforce=None,
    qc_workforce=None,
    *,
    cap_factor: int = 8,
) -> pd.DataFrame:
    """``twin_sizing.csv``: per year of apheresis and resource (``operators``, and
    ``analysts`` and each instrument type with ``[facility.qc_lab]``) the count needed
    (module docstring), the count available and P(v2v > target) at each.

    ``available``: operators, ``facility.operator_fte`` or with ``[workforce]`` the mean over
    the twin's draws and the year's months of the simulated qualified headcount; analysts,
    ``facility.qc_lab.analysts`` or, with ``qc_workforce`` (the QC analysts' plan), the same
    mean of its headcount. P(v2v > target) at available is that of the run's twin
    ``twin``, the report's figure. ``simulate(operators=..., analysts=...)`` runs the twin
    as the run did with those counts (:func:`pmcap.run.run_twin` on the run's inputs);
    ``workforce`` is the run's ``[workforce]`` plan (or ``None``). Counts are searched up to
    ``cap_factor`` times the available count (at least 64 crews or analysts); a year no count
    up to that meets has an empty ``needed`` and P at needed. ``attrs["twin_runs"]``: the
    twin runs each resource's search took.
    """
    from capacity.twin import _fewest_operators

    section = scenario.facility.twin
    epsilon = float(section.epsilon)
    crews, _, v2v = section.configs()
    at_available = year_shares(twin)
    years = pd.DatetimeIndex(twin["month"].values).year.to_numpy()
    n = twin.sizes["draw"]
    if workforce is not None:
        path = workforce.simulation["qualified"].isel(draw=slice(0, n))
        per_month = path.mean("draw").to_series()
        mean_by_year = per_month.groupby(pd.DatetimeIndex(per_month.index).year).mean()
        operators_available = {int(y): float(mean_by_year.get(y, np.nan)) for y in set(years)}
        start_operators = float(per_month.mean())
    else:
        operators_available = {int(y): float(scenario.facility.operator_fte) for y in set(years)}
        start_operators = float(scenario.facility.operator_fte)

    def on_shift(count: float) -> int:
        return int(crews.crews_on_shift(np.array([count]))[0])

    def operators_run(n_crews: int) -> pd.Series:
        count = _fewest_operators(crews, n_crews)
        return year_shares(simulate(operators=count)[0])

    frames = []
    start = max(1, on_shift(start_operators))
    needed, tried = size_by_year(
        operators_run, start=start, low=1, epsilon=epsilon, cap=max(64, cap_factor * start)
    )
    runs = {"operators": len(tried)}
    frames.append(
        _rows(
            "operators",
            needed,
            tried,
            operators_available,
            at_available,
            lambda k: _fewest_operators(crews, k),
        )  # fmt: skip
    )
    if scenario.facility.qc_lab is not None:
        analysts = int(scenario.facility.qc_lab.analysts)

        def analysts_run(count: int) -> pd.Series:
            path = xr.DataArray(
                np.full((n, 1), float(count)),
                dims=("draw", "month"),
                coords={"month": pd.DatetimeIndex(twin["month"].values[:1])},
            )
            return year_shares(simulate(analysts=path)[0])

        needed, tried = size_by_year(
            analysts_run, start=analysts, low=1, epsilon=epsilon, cap=max(64, cap_factor * analysts)
        )
        runs["analysts"] = len(tried)
        available = dict.fromkeys(operators_available, float(analysts))
        if qc_workforce is not None:  # the QC hiring plan's headcount, as for operators
            path = qc_workforce.simulation["qualified"].isel(draw=slice(0, n))
            per_month = path.mean("draw").to_series()
            by_year = per_month.groupby(pd.DatetimeIndex(per_month.index).year).mean()
            available = {y: float(by_year.get(y, np.nan)) for y in available}
        frames.append(_rows("analysts", needed, tried, available, at_available, int))
        for kind, count in scenario.facility.qc_lab.instruments.items():  # each type alone

            def instruments_run(count: int, kind: str = kind) -> pd.Series:
                return year_shares(simulate(instruments={kind: count})[0])

            count = int(count)
            needed, tried = size_by_year(
                instruments_run, start=count, low=1, epsilon=epsilon, cap=max(16, 4 * count)
            )
            runs[kind] = len(tried)
            available = dict.fromkeys(operators_available, float(count))
            frames.append(_rows(kind, needed, tried, available, at_available, int))
    table = pd.concat(frames, ignore_index=True)
    table["target_days"] = float(v2v.target_days)
    table["epsilon"] = epsilon
    table = table.sort_values(["year", "resource"], kind="stable").reset_index(drop=True)
    table = table[TWIN_SIZING_COLUMNS]
    table.attrs["twin_runs"] = runs  # twin runs of each search
    return table


def _rows(resource, needed, tried, available, at_available, count_of) -> pd.DataFrame:
    rows = []
    for year, level in needed.items():
        rows.append(
            {
                "year": year,
                "resource": resource,
                "needed": np.nan if level is None else count_of(level),
                "available": available.get(year, np.nan),
                "p_over_target_at_needed": (
                    np.nan if level is None else float(tried[level].get(year, np.nan))
                ),
                "p_over_target_at_available": float(at_available.get(year, np.nan)),
            }
        )
    return pd.DataFrame(rows)


_NAMES = {"operators": "qualified operators", "analysts": "QC analysts"}


def sizing_sentence(table: pd.DataFrame | None) -> str:
    """One clause per resource (operators first, then the instrument types that fall short)
    for the report: the first year no count
    meets the level, else the year whose need exceeds what is available by the most (else
    the year of the largest need), e.g. "2029: 34 qualified operators keep P(v2v > 35 d) at
    most 10%; the plan has 28"."""
    if table is None or table.empty:
        return ""
    parts = []
    for resource in [r for r in _NAMES if r in set(table["resource"])]:
        rows = table[table["resource"] == resource]
        target = f"{rows['target_days'].iloc[0]:g}"
        level = f"{rows['epsilon'].iloc[0]:.0%}"
        unmet = rows[rows["needed"].isna()]
        if len(unmet):
            parts.append(
                f"{int(unmet['year'].iloc[0])}: no count of {_NAMES[resource]} alone keeps "
                f"P(v2v > {target} d) at most {level} (another resource or the process binds)"
            )
            continue
        gap = rows["needed"] - rows["available"]
        row = rows.loc[gap.idxmax()] if (gap > 0).any() else rows.loc[rows["needed"].idxmax()]
        text = (
            f"{int(row['year'])}: {int(row['needed'])} {_NAMES[resource]} keep P(v2v > "
            f"{target} d) at most {level}; the plan has {row['available']:.0f}"
        )
        if not (gap > 0).any():
            text += " (enough in every year)"
        parts.append(text)
    short = []  # instrument types: the first year each alone needs more than the lab has
    for kind in dict.fromkeys(table["resource"]):
        if kind in _NAMES:
            continue
        rows = table[(table["resource"] == kind) & (table["needed"] > table["available"])]
        if len(rows):
            row = rows.iloc[0]
            short.append(
                f"{kind} {int(row['needed'])} from {int(row['year'])} "
                f"(the lab has {row['available']:.0f})"
            )
    if short:
        parts.append("QC instruments short: " + ", ".join(short))
    return "Sizing at the service level (twin_sizing.csv): " + "; ".join(parts) + "."
