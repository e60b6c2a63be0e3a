"""Enrollment data: an EDC export or aggregate counts, validated and put on a site x month grid.

Exposure is the days a site is open in each month, weighted by a linear ramp-up after its
activation (``ramp_days``), zero on declared pauses, on days the counts mark closed
(``open = 0``) and from its ``closed_on`` date (the first day it no longer recruits).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from forecast.errors import InputError

__all__ = ["EnrollmentData", "enrollment_data", "ramp_integral", "sum_by_month"]


@dataclass
class EnrollmentData:
    """Validated enrollment data on a month grid (site x month counts and exposures)."""

    sites: pd.DataFrame  # site, country, activated_on, planned_activation, closed_on, cap
    months: pd.DatetimeIndex  # observed months (first day), up to the month of as_of
    counts: np.ndarray  # (site, month) enrolled
    exposure: np.ndarray  # (site, month) weighted open days
    as_of: pd.Timestamp
    open_share: np.ndarray  # (site,) share of open days, used for future exposure
    monthly_open_share: np.ndarray  # trial-wide share of open days in each past month
    screened: int = 0
    screen_failed: int = 0
    treated: int = 0
    dropped: int = 0

    def to_json(self) -> dict[str, Any]:
        """The data as JSON-ready lists and strings (a saved model stores them)."""
        return {
            "sites": self.sites.astype(object)
            .where(self.sites.notna(), None)
            .astype(str)
            .to_dict("list"),
            "months": [str(m.date()) for m in self.months],
            "counts": self.counts.tolist(),
            "exposure": self.exposure.tolist(),
            "as_of": str(self.as_of.date()),
            "open_share": self.open_share.tolist(),
            "monthly_open_share": self.monthly_open_share.tolist(),
            "screened": self.screened,
            "screen_failed": self.screen_failed,
            "treated": self.treated,
            "dropped": self.dropped,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EnrollmentData:
        """The data :meth:`to_json` gave, rebuilt."""
        sites = pd.DataFrame(d["sites"]).replace({"None": None, "NaT": None, "nan": None})
        for col in ("activated_on", "planned_activation", "closed_on"):
            sites[col] = pd.to_datetime(sites[col])
        sites["cap"] = pd.to_numeric(sites["cap"])
        return cls(
            sites,
            pd.DatetimeIndex(d["months"]),
            np.array(d["counts"]),
            np.array(d["exposure"]),
            pd.Timestamp(d["as_of"]),
            np.array(d["open_share"]),
            np.array(d["monthly_open_share"]),
            d["screened"],
            d["screen_failed"],
            d["treated"],
            d["dropped"],
        )


def _dates(frame: pd.DataFrame, column: str, source: str, required: bool) -> pd.Series:
    if column not in frame.columns:
        if required:
            raise InputError(f"{source}: missing column {column!r}")
        return pd.Series(pd.NaT, index=frame.index)
    raw = frame[column]
    # ISO dates only: a day-first export (05/03/2026) would otherwise be read month-first
    # whenever the day is 12 or less, silently scrambling the dates
    parsed = pd.to_datetime(raw, errors="coerce", format="ISO8601")
    bad = parsed.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{source}: row {i + 2}: {column} {raw.iloc[i]!r} is not a date written YYYY-MM-DD"
        )
    if required and parsed.isna().any():
        i = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise InputError(f"{source}: row {i + 2}: {column} is empty")
    return parsed


def enrollment_data(
    patients: pd.DataFrame | None = None,
    sites: pd.DataFrame | None = None,
    *,
    counts: pd.DataFrame | None = None,
    as_of: str | pd.Timestamp,
    pauses: Sequence[tuple[str, str]] = (),
    ramp_days: float = 0.0,
) -> EnrollmentData:
    """Validate an EDC export (or aggregate counts) and put it on a site x month grid.

    ``patients``: one row per patient with ``site`` and ``enrolled_on``; optional ``outcome``
    (``enrolled``/``screen_failed``, then rows with ``screen_failed`` are screening-log rows)
    and ``treated`` (bool, empty if not yet known). ``counts``: aggregate rows ``site, date,
    enrolled`` with optional ``screened`` and ``open`` (1 on days the site recruited, 0 on
    pauses). ``sites``: ``site``, optional ``country``, ``activated_on`` (empty if not open),
    ``planned_activation``, ``closed_on`` (the first day it no longer recruits), ``cap``.
    Without ``sites``, every site in the data is
    taken as activated on its first day of data. ``pauses`` are trial-wide date ranges with no
    recruitment (inclusive). Errors name the table, the row and what was expected.
    """
    as_of = pd.Timestamp(as_of)
    if (patients is None) == (counts is None):
        raise InputError("enrollment data: give either patients or counts, not both or neither")
    if patients is not None:
        daily, extra = _from_patients(patients, as_of)
    else:
        daily, extra = _from_counts(counts, as_of)
    if daily.empty and sites is None:
        source = "patients" if patients is not None else "counts"
        raise InputError(
            f"{source}: no rows, and no sites table: no site to learn a rate from (give the "
            "sites table when open sites have enrolled nobody yet)"
        )
    site_table = _site_table(sites, daily, as_of)
    known = set(site_table["site"])
    unknown = daily.loc[~daily["site"].isin(known)]
    if len(unknown):
        raise InputError(
            f"{unknown['table'].iloc[0]}: row {unknown['row'].iloc[0]}: site "
            f"{unknown['site'].iloc[0]!r} is not in the sites table"
        )
    act = daily["site"].map(site_table.set_index("site")["activated_on"])
    early = daily["date"] < act
    if early.any():
        r = daily.loc[early].iloc[0]
        raise InputError(
            f"{r['table']}: row {r['row']}: enrollment on {r['date'].date()} at site "
            f"{r['site']!r} is before its activation on {act[early].iloc[0].date()}"
        )
    _check_against_sites(daily, site_table)
    return _grid(daily, site_table, as_of, pauses, ramp_days, extra)


def _from_patients(patients: pd.DataFrame, as_of: pd.Timestamp):
    source = "patients"
    if "site" not in patients.columns:
        raise InputError(f"{source}: missing column 'site'")
    frame = patients.reset_index(drop=True)
    enrolled_on = _dates(frame, "enrolled_on", source, required=False)
    outcome = (
        frame["outcome"] if "outcome" in frame.columns else pd.Series("enrolled", index=frame.index)
    )
    bad = ~outcome.isin(["enrolled", "screen_failed"])
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"{source}: row {i + 2}: outcome must be enrolled or screen_failed")
    is_enrolled = outcome == "enrolled"
    missing = is_enrolled & enrolled_on.isna()
    if missing.any():
        i = int(np.flatnonzero(missing.to_numpy())[0])
        raise InputError(f"{source}: row {i + 2}: enrolled_on is empty")
    late = enrolled_on > as_of
    if late.any():
        i = int(np.flatnonzero(late.to_numpy())[0])
        raise InputError(
            f"{source}: row {i + 2}: enrolled_on {enrolled_on[i].date()} is after as_of "
            f"{as_of.date()}"
        )
    extra = {
        "screened": int(len(frame)) if "outcome" in frame.columns else 0,
        "screen_failed": int((~is_enrolled).sum()),
    }
    if "treated" in frame.columns:
        known = frame["treated"].notna() & is_enrolled
        treated = frame.loc[known, "treated"].astype(bool)
        extra.update(treated=int(treated.sum()), dropped=int((~treated).sum()))
    daily = pd.DataFrame(
        {
            "site": frame.loc[is_enrolled, "site"].astype(str),
            "date": enrolled_on[is_enrolled],
            "enrolled": 1,
            "open": 1.0,
            "table": source,
            "row": frame.index[is_enrolled] + 2,
        }
    )
    return daily, extra


def _from_counts(counts: pd.DataFrame, as_of: pd.Timestamp):
    source = "counts"
    frame = counts.reset_index(drop=True)
    for col in ("site", "enrolled"):
        if col not in frame.columns:
            raise InputError(f"{source}: missing column {col!r}")
    date = _dates(frame, "date", source, required=True)
    values = pd.to_numeric(frame["enrolled"], errors="coerce")
    bad = values.isna() | (values < 0) | (values != np.round(values))
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{source}: row {i + 2}: enrolled must be a whole number >= 0, got "
            f"{frame['enrolled'].iloc[i]!r}"
        )
    late = date > as_of
    if late.any():
        i = int(np.flatnonzero(late.to_numpy())[0])
        raise InputError(
            f"{source}: row {i + 2}: date {date[i].date()} is after as_of {as_of.date()}"
        )
    extra = {}
    if "screened" in frame.columns:
        screened = pd.to_numeric(frame["screened"], errors="coerce")
        bad = screened.isna() | (screened < values)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"{source}: row {i + 2}: screened must be a number >= enrolled")
        extra = {"screened": int(screened.sum()), "screen_failed": int((screened - values).sum())}
    open_ = (
        frame["open"].astype(float)
        if "open" in frame.columns
        else pd.Series(1.0, index=frame.index)
    )
    daily = pd.DataFrame(
        {
            "site": frame["site"].astype(str),
            "date": date,
            "enrolled": values.astype(int),
            "open": open_,
            "table": source,
            "row": frame.index + 2,
        }
    )
    return daily, extra


def _site_table(
    sites: pd.DataFrame | None, daily: pd.DataFrame, as_of: pd.Timestamp
) -> pd.DataFrame:
    if sites is None:
        first = daily.groupby("site")["date"].min()
        return pd.DataFrame(
            {
                "site": first.index.astype(str),
                "country": "all",
                "activated_on": first.to_numpy(),
                "planned_activation": pd.NaT,
                "closed_on": pd.NaT,
                "cap": np.nan,
            }
        )
    source = "sites"
    frame = sites.reset_index(drop=True)
    if "site" not in frame.columns:
        raise InputError(f"{source}: missing column 'site'")
    dup = frame["site"].astype(str).duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise InputError(f"{source}: row {i + 2}: site {frame['site'].iloc[i]!r} appears twice")
    table = pd.DataFrame(
        {
            "site": frame["site"].astype(str),
            "country": frame["country"].astype(str) if "country" in frame.columns else "all",
            "activated_on": _dates(frame, "activated_on", source, required=False),
            "planned_activation": _dates(frame, "planned_activation", source, required=False),
            "closed_on": _dates(frame, "closed_on", source, required=False),
            "cap": _caps(frame, source) if "cap" in frame.columns else np.nan,
        }
    )
    _check_closing(table, source)
    late = table["activated_on"] > as_of
    if late.any():
        i = int(np.flatnonzero(late.to_numpy())[0])
        raise InputError(f"{source}: row {i + 2}: activated_on is after as_of {as_of.date()}")
    neither = table["activated_on"].isna() & table["planned_activation"].isna()
    if neither.any():
        i = int(np.flatnonzero(neither.to_numpy())[0])
        raise InputError(f"{source}: row {i + 2}: a site needs activated_on or planned_activation")
    return table


def _caps(frame: pd.DataFrame, source: str) -> pd.Series:
    """The ``cap`` column as numbers: empty is no cap; anything else must be a whole number
    >= 0 (text such as ``ten`` is refused, not read as no cap)."""
    raw = frame["cap"]
    parsed = pd.to_numeric(raw, errors="coerce")
    given = raw.notna() & (raw.astype(str).str.strip() != "")
    values = parsed.to_numpy(float)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(values) & (values >= 0) & (values == np.round(values))
    bad = given.to_numpy() & ~ok
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{source}: row {i + 2}: cap must be a whole number >= 0 (the most patients the "
            f"site enrolls) or empty for no cap, got {raw.iloc[i]!r}"
        )
    return parsed.where(given, np.nan).astype(float)


def _check_closing(table: pd.DataFrame, source: str) -> None:
    """A site closes (``closed_on``, its first day without recruitment) after it opens:
    after ``activated_on``, or after ``planned_activation`` for a site not open yet."""
    opens = table["activated_on"].fillna(table["planned_activation"])
    before = table["closed_on"].notna() & (table["closed_on"] < opens)
    if before.any():
        i = int(np.flatnonzero(before.to_numpy())[0])
        which = "activated_on" if pd.notna(table["activated_on"].iloc[i]) else "planned_activation"
        raise InputError(
            f"{source}: row {i + 2}: closed_on {table['closed_on'].iloc[i].date()} is before "
            f"{which} {opens.iloc[i].date()}; a site closes after it opens"
        )


def _check_against_sites(daily: pd.DataFrame, site_table: pd.DataFrame) -> None:
    """The data agree with the sites table: no patient enrolls at a site on or after its
    ``closed_on``, and no site has enrolled more patients than its ``cap``."""
    by_site = site_table.set_index("site")
    closed = daily["site"].map(by_site["closed_on"])
    late = (daily["enrolled"] > 0) & closed.notna() & (daily["date"] >= closed)
    if late.any():
        r = daily.loc[late].iloc[0]
        raise InputError(
            f"{r['table']}: row {r['row']}: enrollment on {r['date'].date()} at site "
            f"{r['site']!r} is on or after its closed_on {closed[late].iloc[0].date()} (the "
            "first day it no longer recruits, in the sites table)"
        )
    enrolled = daily.groupby("site")["enrolled"].sum()
    caps = site_table["cap"].to_numpy(float)
    have = site_table["site"].map(enrolled).fillna(0).to_numpy(float)
    with np.errstate(invalid="ignore"):
        over = ~np.isnan(caps) & (have > caps)
    if over.any():
        i = int(np.flatnonzero(over)[0])
        table = daily["table"].iloc[0]
        raise InputError(
            f"sites: row {i + 2}: cap {caps[i]:g} of site {site_table['site'].iloc[i]!r} is below "
            f"the {have[i]:g} patients the {table} table already enrolls there; a cap is the "
            "most patients the site enrolls in all"
        )


def ramp_integral(t: np.ndarray, ramp: float) -> np.ndarray:
    """Integral over [0, t] of min(1, max(0, u / ramp)) du (weighted open days by day t)."""
    t = np.maximum(t, 0.0)
    if ramp <= 0:
        return t
    inside = np.minimum(t, ramp)
    return inside**2 / (2 * ramp) + (t - inside)


def _grid(daily, site_table, as_of, pauses, ramp_days, extra) -> EnrollmentData:
    opened = site_table["activated_on"].dropna()
    first = min(
        opened.min() if len(opened) else as_of, daily["date"].min() if len(daily) else as_of
    )
    months = pd.date_range(
        first.to_period("M").to_timestamp(), as_of.to_period("M").to_timestamp(), freq="MS"
    )
    days = pd.date_range(months[0], as_of, freq="D")
    n_sites, n_days = len(site_table), len(days)
    site_index = {s: i for i, s in enumerate(site_table["site"])}
    day_of = (days - days[0]).days.to_numpy()
    # weighted open days per site and day: ramp x open flag x (activated <= day < closed)
    act = ((site_table["activated_on"] - days[0]).dt.days).to_numpy(float)  # NaN if not open
    closed = ((site_table["closed_on"] - days[0]).dt.days).to_numpy(float)
    closed = np.where(np.isnan(closed), np.inf, closed)
    t = day_of[None, :].astype(float)
    weight = ramp_integral(t + 1 - act[:, None], ramp_days) - ramp_integral(
        t - act[:, None], ramp_days
    )
    weight = np.where(np.isnan(act)[:, None], 0.0, weight)
    weight = np.where(t < closed[:, None], weight, 0.0)
    for start, end in pauses:
        paused = (days >= pd.Timestamp(start)) & (days <= pd.Timestamp(end))
        weight[:, paused] = 0.0
    open_flags = np.ones((n_sites, n_days))
    if len(daily) and (daily["open"] != 1).any():
        rows = daily["site"].map(site_index).to_numpy()
        cols = (daily["date"] - days[0]).dt.days.to_numpy()
        open_flags[rows, cols] = daily["open"].to_numpy(float)
    weight = weight * open_flags
    month_of_day = np.searchsorted(months, days, side="right") - 1
    exposure = sum_by_month(weight, month_of_day, len(months))
    counts = np.zeros((n_sites, len(months)))
    if len(daily):
        rows = daily["site"].map(site_index).to_numpy()
        cols = month_of_day[(daily["date"] - days[0]).dt.days.to_numpy()]
        np.add.at(counts, (rows, cols), daily["enrolled"].to_numpy(float))
    # site-days between activation and closure, and those of them with recruitment
    active = np.where(np.isnan(act)[:, None], 0, (t >= act[:, None]) & (t < closed[:, None]))
    active_open = active * open_flags
    active_days, open_days = active.sum(1), active_open.sum(1)
    share = np.where(active_days > 0, open_days / np.maximum(active_days, 1), 1.0)
    per_month_active = sum_by_month(active, month_of_day, len(months)).sum(0)
    per_month_open = sum_by_month(active_open, month_of_day, len(months)).sum(0)
    has = per_month_active > 0
    monthly_share = per_month_open[has] / per_month_active[has]
    return EnrollmentData(
        site_table.reset_index(drop=True),
        months,
        counts,
        exposure,
        as_of,
        share,
        monthly_share,
        **extra,
    )


def sum_by_month(values: np.ndarray, month_of_day: np.ndarray, n_months: int) -> np.ndarray:
    """Sum daily columns into months; days are sorted and every month has at least one."""
    starts = np.searchsorted(month_of_day, np.arange(n_months))
    return np.add.reduceat(np.asarray(values, float), starts, axis=1)
