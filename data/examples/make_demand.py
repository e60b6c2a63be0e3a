"""Generate data/examples/demand.csv: ILLUSTRATIVE demand draws, not a forecast.

Two made-up programs over 2027-2029, 200 draws, seed 20270101:

* CART-101: a CAR-T in its pivotal trial (3 patients/month) with launch in 2027-07 plus a
  delay of 0 to 6 months (uniform); after launch, commercial patients follow a logistic ramp
  to a peak drawn from lognormal(median 40/month, log-sd 0.4), reaching half of peak after
  9 to 18 months; 3 PPQ lots in each of 2027-01 and 2027-02.
* CART-201: a phase II CAR-T trial enrolling at Gamma(shape 4, mean 4/month) patients per
  month, ramping in over its first 6 months, stopping at 60 patients.

Counts are Poisson around each draw's rate. Run: ``python data/examples/make_demand.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from capacity import write_demand

SEED = 20270101
DRAWS = 200
MONTHS = pd.date_range("2027-01-01", "2029-12-01", freq="MS")


def make_demand(draws: int = DRAWS, seed: int = SEED) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    t = np.arange(len(MONTHS))[None, :]  # months since 2027-01
    out = np.zeros((draws, len(MONTHS), 2, 3), dtype=np.int64)  # program, stream

    # CART-101
    launch = 6 + rng.integers(0, 7, size=(draws, 1))
    peak = rng.lognormal(np.log(40), 0.4, size=(draws, 1))
    half = rng.uniform(9, 18, size=(draws, 1))
    since = t - launch
    ramp = np.where(since >= 0, 1 / (1 + np.exp(-(since - half) / (half / 4))), 0.0)
    out[:, :, 0, 1] = rng.poisson(peak * ramp)
    out[:, :, 0, 0] = rng.poisson(np.where(since < 0, 3.0, 0.0))
    out[:, :2, 0, 2] = 3

    # CART-201: enrollment stops once 60 patients are in
    rate = rng.gamma(4.0, 1.0, size=(draws, 1)) * np.minimum(1.0, (t + 1) / 6)
    enrolled = rng.poisson(rate * np.ones_like(t, dtype=float))
    before = np.cumsum(enrolled, axis=1) - enrolled
    out[:, :, 1, 0] = np.clip(60 - before, 0, enrolled)

    return xr.DataArray(
        out,
        dims=("draw", "month", "program", "stream"),
        coords={
            "draw": np.arange(draws),
            "month": MONTHS,
            "program": ["CART-101", "CART-201"],
            "stream": ["clinical", "commercial", "ppq"],
        },
        name="patients",
        attrs={"units": "patients/month", "seed": seed, "source": "illustrative, make_demand.py"},
    )


if __name__ == "__main__":
    path = write_demand(make_demand(), Path(__file__).with_name("demand.csv"))
    print(f"wrote {path}")
