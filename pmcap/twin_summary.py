"""The facility twin's numbers per year of apheresis, computed once for the report and sweeps.

:func:`twin_years` turns the twin's Dataset (:func:`capacity.simulate_twin` as run by
:func:`pmcap.run.run_twin`) into one row per year of apheresis: the binding constraint and
its share of waiting days, the days waited per patient, the vein-to-vein bands and P(v2v >
target). The report's twin block formats these rows; ``sweep.csv`` takes them as columns, so a
sweep over QC analysts or crews compares the same numbers the report shows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["twin_years"]


def twin_years(twin: xr.Dataset) -> pd.DataFrame:
    """One row per year of apheresis with patients (numbers, NaN where undefined).

    * ``patients``: median over draws of the year's patients;
    * ``binding``: the cause with the largest share of the year's waiting days (days lots
      waited for suites, crews, downtime and each QC resource, summed over the year's
      patients and over draws; empty when no lot waited), ``binding_share`` that share and
      ``suites_share`` the share of suites;
    * ``wait_p50``, ``wait_p90``: across draws, of each draw's mean days waited per patient;
    * ``v2v_p50_p50``, ``v2v_p50_p90`` (and ``v2v_p90_*``): the P50 and P90 across draws of
      each draw's median (90th percentile) vein-to-vein days of the year's treated patients;
    * ``over_target``: the share of the year's patients not infused within the target (lost
      patients count as over), pooled over draws.
    """
    months = pd.DatetimeIndex(twin["month"].values)
    years = months.year.to_numpy()
    patients = np.nan_to_num(twin["patients"].values)  # (draw, month)
    waits = np.nan_to_num(twin["wait_days"].transpose("draw", "month", "cause").values)
    total = waits * patients[..., None]  # waiting days (draw, month, cause)
    causes = [str(c) for c in twin["cause"].values]
    over = np.nan_to_num(twin["share_v2v_over_target"].values) * patients
    # per patient: year of apheresis, v2v days
    day = twin["apheresis_day"].values
    starts = (months - months[0]).days.to_numpy(float)
    has = np.isfinite(day)
    month_of = np.clip(np.searchsorted(starts, np.where(has, day, 0.0), "right") - 1, 0, None)
    frame = pd.DataFrame(
        {
            "draw": np.broadcast_to(np.arange(day.shape[0])[:, None], day.shape)[has],
            "year": years[month_of[has]],
            "v2v": twin["v2v_days"].values[has],
        }
    )
    per_draw = frame.groupby(["year", "draw"])["v2v"].quantile([0.5, 0.9]).unstack()
    rows = []
    for year in sorted(set(years.tolist())):
        sel = years == year
        n = patients[:, sel].sum(axis=1)  # patients per draw in the year
        if n.sum() == 0:
            continue
        by_cause = total[:, sel].sum(axis=(0, 1))
        waited = by_cause.sum()
        mean_wait = np.where(n > 0, total[:, sel].sum(axis=(1, 2)) / np.maximum(n, 1), np.nan)
        row = {"year": int(year), "patients": float(np.median(n))}
        if waited > 0:
            k = int(np.argmax(by_cause))
            row["binding"] = causes[k]
            row["binding_share"] = float(by_cause[k] / waited)
            row["suites_share"] = float(by_cause[causes.index("suites")] / waited)
        else:
            row["binding"], row["binding_share"], row["suites_share"] = "", np.nan, np.nan
        row["wait_p50"], row["wait_p90"] = (float(x) for x in np.nanquantile(mean_wait, [0.5, 0.9]))
        for key, level in (("v2v_p50", 0.5), ("v2v_p90", 0.9)):
            if year in per_draw.index.get_level_values(0):
                lo, hi = np.nanquantile(per_draw.loc[year][level], [0.5, 0.9])
            else:  # no patient treated in the year
                lo = hi = np.nan
            row[f"{key}_p50"], row[f"{key}_p90"] = float(lo), float(hi)
        row["over_target"] = float(over[:, sel].sum() / n.sum())
        rows.append(row)
    columns = ["year", "patients", "binding", "binding_share", "suites_share", "wait_p50",
               "wait_p90", "v2v_p50_p50", "v2v_p50_p90", "v2v_p90_p50", "v2v_p90_p90",
               "over_target"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)
