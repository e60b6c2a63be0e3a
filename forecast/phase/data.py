"""Phase-transition data: benchmark counts per group and step, and phase durations per group.

Two tables, validated at the door (errors name the file, row and what was expected):

* transitions: rows ``table, group, transition, n_transitions`` with ``successes`` or
  ``success_rate`` (BIO/Informa/QLS 2011-2020, bundled; or the user's own counts);
* durations: rows ``group, phase, mean_years`` (optional ``statistic``, ``n_programs``,
  ``borrow_from``): the mean years of each phase of a group, or, for a modality with few
  approvals, the median years from phase I to approval of its ``n_programs`` products
  (``phase = "phase1_to_approval"``) and the group whose phase means it borrows from.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecast.data import phase_durations
from forecast.errors import InputError

__all__ = [
    "ALL",
    "DURATION_COLUMNS",
    "PHASES",
    "STEPS",
    "TOTAL",
    "duration_groups",
    "durations_table",
    "phase_index",
    "phase_means",
    "step_index",
    "transition_counts",
]

PHASES = ("phase1", "phase2", "phase3", "filing")
STEPS = ("phase1_to_phase2", "phase2_to_phase3", "phase3_to_filing", "filing_to_approval")
ALL = "All indications"  # the durations of groups without their own
TOTAL = "phase1_to_approval"  # durations rows of a modality's total years
TOTAL_STATISTICS = ("median", "mean", "min", "max")
DURATION_COLUMNS = ["group", "phase", "mean_years", "statistic", "n_programs", "borrow_from"]


def transition_counts(
    frame: pd.DataFrame, table: str, source: str = "counts"
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Groups, trials ``n`` and successes of one table, each shaped (group, step).

    ``frame`` has columns ``table, group, transition`` and ``n_transitions`` with either
    ``successes`` or ``success_rate`` (then successes = round(rate x n), as the benchmark
    publishes rates, not counts). A cell the table lacks has n = 0 (no likelihood).
    """
    needed = {"table", "group", "transition", "n_transitions"}
    missing = needed - set(frame.columns)
    if missing or not {"successes", "success_rate"} & set(frame.columns):
        raise InputError(
            f"{source}: expected columns table, group, transition, n_transitions and "
            f"successes or success_rate; missing {sorted(missing) or ['successes']}"
        )
    tables = sorted(frame["table"].astype(str).unique())
    rows = frame[frame["table"].astype(str) == table]
    if rows.empty:
        raise InputError(f"{source}: no table {table!r}; tables are {tables}")
    for i, row in rows.iterrows():
        where = f"{source}: row {i + 2} ({row['group']}, {row['transition']})"
        if row["transition"] not in STEPS:
            raise InputError(f"{where}: unknown transition; expected one of {list(STEPS)}")
        n = row["n_transitions"]
        if not np.isfinite(n) or n != round(n) or n <= 0:
            raise InputError(f"{where}: n_transitions must be a whole number > 0, got {n}")
        if "successes" in rows.columns and pd.notna(row.get("successes")):
            s = row["successes"]
            if s != round(s) or s < 0 or s > n:
                raise InputError(f"{where}: successes must be a whole number in [0, n={n}]")
        else:
            rate = row["success_rate"]
            if not 0 <= rate <= 1:
                raise InputError(f"{where}: success_rate must be in [0, 1], got {rate}")
    if rows.duplicated(["group", "transition"]).any():
        dup = rows[rows.duplicated(["group", "transition"])].iloc[0]
        raise InputError(f"{source}: duplicate row for ({dup['group']}, {dup['transition']})")
    if "successes" in rows.columns and rows["successes"].notna().all():
        successes = rows["successes"].astype(float)
    else:
        successes = np.round(rows["success_rate"] * rows["n_transitions"])
    rows = rows.assign(successes=successes)
    groups = list(dict.fromkeys(rows["group"].astype(str)))
    n = rows.pivot(index="group", columns="transition", values="n_transitions")
    y = rows.pivot(index="group", columns="transition", values="successes")
    n = n.reindex(index=groups, columns=list(STEPS)).fillna(0).to_numpy(float)
    y = y.reindex(index=groups, columns=list(STEPS)).fillna(0).to_numpy(float)
    return groups, n, y


def duration_groups(durations: pd.DataFrame | None = None) -> list[str]:
    """Groups with phase durations of their own in ``durations`` (default: the bundled table):
    the valid ``duration_group`` names besides the groups of the transition table."""
    return _duration_groups(durations_table(phase_durations() if durations is None else durations))


def _duration_groups(table: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(table["group"].astype(str)))


def phase_means(table: pd.DataFrame, group: str) -> np.ndarray:
    """Mean years of each phase of ``PHASES`` for ``group`` of a :func:`durations_table`."""
    rows = table[(table["group"] == group) & (table["phase"] != TOTAL)]
    means = rows.set_index("phase")["mean_years"].reindex(list(PHASES))
    if means.isna().any():
        raise InputError(
            f"durations: group {group!r} lacks phases {list(means[means.isna()].index)}"
        )
    return means.to_numpy(float)


def durations_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Phase means (``statistic`` mean; other statistics per phase are dropped) and the total
    years from phase I to approval of modalities (``phase1_to_approval``), validated."""
    needed = {"group", "phase", "mean_years"}
    if missing := needed - set(frame.columns):
        raise InputError(f"durations: missing columns {sorted(missing)}")
    frame = frame.copy()
    for column, fill in (("statistic", "mean"), ("n_programs", 0), ("borrow_from", "")):
        frame[column] = frame[column].fillna(fill) if column in frame.columns else fill
    bad = frame[~frame["phase"].isin([*PHASES, TOTAL])]
    if len(bad):
        raise InputError(
            f"durations: unknown phase {bad['phase'].iloc[0]!r}; expected {[*PHASES, TOTAL]}"
        )
    if not (frame["mean_years"] > 0).all():
        raise InputError("durations: mean_years must be > 0")
    phases = frame[frame["phase"].isin(PHASES) & (frame["statistic"] == "mean")]
    totals = frame[frame["phase"] == TOTAL]
    with_means = set(phases["group"])
    for group, rows in totals.groupby("group", sort=False):
        where = f"durations: {group!r} {TOTAL}"
        if group in with_means:
            raise InputError(f"{where}: the group has phase means too; give one or the other")
        if not rows["statistic"].isin(TOTAL_STATISTICS).all():
            raise InputError(f"{where}: statistic must be one of {list(TOTAL_STATISTICS)}")
        median = rows[rows["statistic"] == "median"]
        if len(median) != 1:
            raise InputError(f"{where}: needs exactly one median row")
        n = median["n_programs"].iloc[0]
        if not (n >= 1 and n == round(n)):
            raise InputError(f"{where}: n_programs must be a whole number >= 1, got {n}")
        if median["borrow_from"].iloc[0] not in with_means:
            raise InputError(
                f"{where}: borrow_from {median['borrow_from'].iloc[0]!r} must be a group with "
                f"phase means: {sorted(with_means)}"
            )
    out = pd.concat([phases, totals])[DURATION_COLUMNS].reset_index(drop=True)
    return out.astype({"n_programs": int, "borrow_from": str, "statistic": str})


def phase_index(phase: str) -> int:
    """Position of ``phase`` in :data:`PHASES`; an unknown name is an :class:`InputError`."""
    if phase not in PHASES:
        raise InputError(f"unknown phase {phase!r}; expected one of {list(PHASES)}")
    return PHASES.index(phase)


def step_index(step: str) -> int:
    """Position of ``step`` in :data:`STEPS`; an unknown name is an :class:`InputError`."""
    if step not in STEPS:
        raise InputError(f"unknown step {step!r}; expected one of {list(STEPS)}")
    return STEPS.index(step)
