"""Generate the inputs of the example portfolio in data/examples/portfolio/: ILLUSTRATIVE data.

Made-up programs, simulated with a fixed seed so the example is reproducible (the numbers are
plausible for autologous CAR-T, not any company's):

* ``cart-a-patients.csv`` / ``cart-a-sites.csv``: a pivotal CAR-T trial (target 120 enrolled)
  as an EDC export: 20 sites in the US, Germany and Spain; 14 activated between 2025-09 and
  2026-09, 6 planned for 2026-12 to 2027-04. Site rates are Gamma(shape 2, mean 0.45 patients
  per month); one screening-log row per screened patient (``outcome`` enrolled or
  screen_failed, about 25% screen failure); ``treated`` known for patients enrolled more than
  two months before the data cut (about 8% drop out before infusion).
* ``cart-c-patients.csv``: a CAR-T launched on 2025-07-15: patients treated per quarter.

Run: ``python data/examples/make_portfolio.py`` (the scenario file is written by hand).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SEED = 20261130
AS_OF = pd.Timestamp("2026-11-30")
HERE = Path(__file__).resolve().parent / "portfolio"


def sites(rng: np.random.Generator) -> pd.DataFrame:
    countries = ["US"] * 12 + ["DE"] * 4 + ["ES"] * 4
    opened = pd.to_datetime(
        np.sort(rng.integers(0, 390, 14)), unit="D", origin=pd.Timestamp("2025-09-01")
    )
    planned = pd.date_range("2026-12-15", "2027-04-15", periods=6).normalize()
    rows = []
    for i, country in enumerate(countries):
        rows.append(
            {
                "site": f"{country}-{i + 1:02d}",
                "country": country,
                "activated_on": opened[i].date() if i < 14 else "",
                "planned_activation": (
                    (opened[i] - pd.Timedelta(days=int(rng.integers(20, 90)))).date()
                    if i < 14
                    else planned[i - 14].date()
                ),
                "closed_on": "",
                "cap": "",
            }
        )
    return pd.DataFrame(rows)


def patients(rng: np.random.Generator, site_table: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for site in site_table.itertuples():
        if not site.activated_on:
            continue
        start = pd.Timestamp(site.activated_on)
        rate = rng.gamma(2.0, 0.45 / 2.0) / 30.4375  # patients per day
        days = (AS_OF - start).days
        n = rng.poisson(rate * days)
        for day in np.sort(rng.integers(0, days + 1, n)):
            when = start + pd.Timedelta(days=int(day))
            for _ in range(rng.geometric(0.75) - 1):  # screen failures before an enrollment
                rows.append((site.site, when.date(), "screen_failed", ""))
            infused = "" if (AS_OF - when).days < 60 else bool(rng.random() > 0.08)
            rows.append((site.site, when.date(), "enrolled", infused))
    frame = pd.DataFrame(rows, columns=["site", "enrolled_on", "outcome", "treated"])
    return frame.sort_values(["enrolled_on", "site"], kind="stable").reset_index(drop=True)


def launched_quarters(rng: np.random.Generator) -> pd.DataFrame:
    quarters = ["2025Q3", "2025Q4", "2026Q1", "2026Q2", "2026Q3"]
    mean = np.array([9, 28, 46, 63, 78])
    return pd.DataFrame({"period": quarters, "patients": rng.poisson(mean)})


def main() -> None:
    rng = np.random.default_rng(SEED)
    HERE.mkdir(parents=True, exist_ok=True)
    site_table = sites(rng)
    site_table.to_csv(HERE / "cart-a-sites.csv", index=False)
    patients(rng, site_table).to_csv(HERE / "cart-a-patients.csv", index=False)
    launched_quarters(rng).to_csv(HERE / "cart-c-patients.csv", index=False)


if __name__ == "__main__":
    main()
