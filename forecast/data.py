"""Bundled reference data, shipped as package data in ``forecast/reference/``.

The sources are cited in ``data/SOURCES.md`` (in the source tree). The files are read through
:mod:`importlib.resources`, so they are found in an editable checkout and in an installed wheel
alike. Their bytes key the shipped posteriors (``pmcap/fits.py``): never rewrite them in place.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd

from forecast.errors import InputError

DATA = Path(str(resources.files("forecast").joinpath("reference")))


def data_path(name: str) -> Path:
    """The path of bundled file ``name``, e.g. ``"uptake/cart_prices.csv"``."""
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or ".." in parts:
        raise InputError(f"bundled data file {name!r}: expected a name such as 'uptake/x.csv'")
    path = DATA.joinpath(*parts)
    if not path.is_file():
        raise InputError(
            f"bundled data file {name!r} not found in {DATA}; the installed pmcap package "
            "is incomplete, reinstall it"
        )
    return path


def phase_transitions() -> pd.DataFrame:
    """BIO/Informa/QLS 2011-2020 phase-transition success rates and counts, all tables."""
    return pd.read_csv(data_path("phase_transitions_bio2021.csv"))


def phase_durations() -> pd.DataFrame:
    """Mean years per phase by group (BIO 2021) and median trial durations (Wong et al. 2019)."""
    return pd.read_csv(data_path("phase_durations_bio2021.csv"))


def screening_log(name: str) -> pd.DataFrame:
    """A bundled single-site daily screening log (``"grips"`` or ``"pace"``) as counts.

    Columns ``site, date, enrolled, screened, open``: ``screened`` is the log's prescreened
    count and ``open`` is 0 on days with no screening activity (one placeholder row with zero
    counts in the source), 1 otherwise.
    """
    if name not in ("grips", "pace"):
        raise InputError(f"screening log: unknown {name!r}; expected 'grips' or 'pace'")
    raw = pd.read_csv(data_path(f"enrollment/{name}_daily_screening.csv"))
    return pd.DataFrame(
        {
            "site": name.upper(),
            "date": pd.to_datetime(raw["Screening_Date"], format="%m/%d/%Y"),
            "enrolled": raw["Sum_Enrolled"].astype(int),
            "screened": raw["Sum_Prescreened"].astype(int),
            "open": ((raw["N Rows"] > 1) | (raw["Sum_Prescreened"] > 0)).astype(float),
        }
    )


def review_times() -> pd.DataFrame:
    """FDA review of a marketing application per group: priority and delayed counts, and the
    median delay of a delayed review (``data/SOURCES.md``)."""
    return pd.read_csv(data_path("review_times.csv"))
