"""The twin's median vein-to-vein time against the published real-world medians.

Published medians (EHA 2023 meta-analysis of 40 studies, PMC10431072, median of study
medians): axi-cel 30.4 days, liso-cel 35.9, tisa-cel 48.4. The abstract also gives groups of
studies: axi-cel 25.5 (clinical trials), 30.9 (real world), 27.0 (US-only), 38.0
(Europe-only); tisa-cel 52.0 (trials), 48.0 (real world), 42.7 (US-only), 50.5 (Europe-only);
liso-cel only from 3 trials (35.9). Each configuration is compared with the group whose
setting its inputs describe (US turnaround -> US-only studies, EU turnaround -> Europe-only,
TRANSCEND inputs -> trials), within a band of +/- 4.65 days: half the narrowest spread between
groups that the meta-analysis reports (tisa-cel, 52.0 - 42.7 = 9.3 days). The meta-analysis
gives no interval for its medians; the spread between groups of studies is how far two
honest settings differ, so a model of one setting cannot be held closer than that.

Each product is configured from what its maker or the literature publishes, never from the
vein-to-vein median (``data/SOURCES.md``, "Facility twin: published vein-to-vein"):

* **leukapheresis to release** (turnaround, the whole manufacture + QC block): axi-cel US
  median 16 days before the January 2024 change (Kite/Gilead, FDA approval 30 Jan 2024), Kite
  EU median 19 days (2,432 patients 2020-22); liso-cel a 24-day target turnaround (BMS,
  BioProcess International, 25 Feb 2021); tisa-cel 24 to 28 days from collection to release by
  Novartis, local cryopreservation and shipping included (Dana-Farber patient information).
  The sources give only the total, so the test splits it as 1 day inbound (assumption) +
  culture + a 7-day QC stage (assumption); without queues the split does not change the
  vein-to-vein time, only the total does.
* **release to infusion** = outbound courier (1-2 days, assumption) + lymphodepletion start
  to infusion: axi-cel 5 days (cyclophosphamide/fludarabine on days -5 to -3, Yescarta
  prescribing information), liso-cel 5 to 10 days (3 days of fludarabine/cyclophosphamide
  completed 2-7 days before infusion, TRANSCEND protocol, PMC8953336 Table 2), tisa-cel 6 days
  (CIBMTR real-world median, IQR 6-7). Lymphodepletion is assumed to start when the product
  arrives (no scheduling slack: none is published).
* **manufacturing failure** (remade from a new apheresis 14 days later, the twin's default):
  axi-cel 1% (1/111), liso-cel 0.6% (2/344), tisa-cel 7% (12/165), pivotal trials
  (PMC8427697 Table 2). Contamination off (no per-product figure).

The facility is uncongested (400 suites, round-the-clock crews far beyond need), so the
model median is the sum of the components' medians, a closed form each test checks first.

Result: axi-cel (US, 22.5 days against 27.0) and liso-cel (33.0 against 35.9) are in their
bands, both on the short side; axi-cel (EU, 25.5 against 38.0) and tisa-cel (33.6 against
42.7) are not. All four fall short of the published medians because what is published is the
manufacturer's turnaround and the label's lymphodepletion schedule, while real-world
vein-to-vein also holds the wait for a manufacturing slot and an infusion slot, bridging
therapy and, for tisa-cel, cryopreserved apheresis collected before the order (a practice
Novartis reports, Blood 2022;140(Suppl 1):12790). Those delays are not in the twin, and the
test does not invent them: it asserts the gap, so adding such a delay later makes it fail
and the documented table (docs/published-v2v.md) must be updated.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from capacity.twin import CrewConfig, DowntimeConfig, VeinToVeinConfig, simulate_twin
from tests.helpers import fixed_process, make_demand

INBOUND = 1.0  # assumption: overnight courier (or local cryopreservation + courier)
QC_DAYS = 7.0  # assumption: QC stage inside the published turnaround
OUTBOUND = {"uniform": [1, 2]}  # assumption: cryopreserved product by courier

BAND = 4.65  # half the narrowest between-group spread (tisa-cel 52.0 - 42.7)

# product -> (turnaround apheresis-to-release, LD start to infusion, failure rate,
#             closed-form model median, published median of the matching study group)
PRODUCTS = {
    "axi-cel (US)": (16.0, 5.0, 0.01, 16 + 1.5 + 5, 27.0),
    "axi-cel (EU)": (19.0, 5.0, 0.01, 19 + 1.5 + 5, 38.0),
    "liso-cel": (24.0, {"uniform": [5, 10]}, 0.006, 24 + 1.5 + 7.5, 35.9),
    "tisa-cel": ({"uniform": [24, 28]}, 6.0, 0.07, 26 + 1.5 + 6, 42.7),
}
# which configurations the published inputs reproduce (within the band); the others fall short
MATCHED = {"axi-cel (US)", "liso-cel"}


def _culture(turnaround):
    if isinstance(turnaround, dict):
        low, high = turnaround["uniform"]
        return {"uniform": [low - INBOUND - QC_DAYS, high - INBOUND - QC_DAYS]}
    return turnaround - INBOUND - QC_DAYS


@functools.cache
def model_median(name: str, draws: int = 20, seed: int = 3) -> float:
    """Median vein-to-vein (days) of treated patients, uncongested facility."""
    turnaround, ld_to_infusion, failure, *_ = PRODUCTS[name]
    spec = fixed_process(
        name=name.split()[0],
        culture_days=_culture(turnaround),
        changeover_days=0.5,
        failure_rate=failure,
        max_remanufacture=1,
        qc=[
            {"assay": "release-panel", "tests_per_lot": 1, "hands_on_hours": 0,
             "turnaround_days": QC_DAYS, "instrument_hours": 0, "retest_rate": 0}
        ],
    )  # fmt: skip
    crews = CrewConfig(
        crew_size=1, shifts_per_day=3, hours_per_shift=8, start_hours=0, harvest_hours=0
    )
    v2v = VeinToVeinConfig(
        inbound_days=INBOUND,
        outbound_days=OUTBOUND,
        release_to_infusion_days=ld_to_infusion,
        target_days=30,
    )
    rng = np.random.default_rng(seed)
    demand = make_demand(rng.poisson(6, size=(draws, 12)))
    twin = simulate_twin(
        demand, spec, 400, operators=2000, crews=crews,
        downtime=DowntimeConfig(contamination_rate=0.0, contamination_remakes=0),
        vein_to_vein=v2v, seed=seed,
    )  # fmt: skip
    treated = twin["outcome"].values == 0
    assert np.nanmax(twin["patient_wait_days"].values) == 0  # uncongested: nobody waits
    return float(np.median(twin["v2v_days"].values[treated]))


@pytest.mark.parametrize("name", list(PRODUCTS))
def test_model_median_is_the_sum_of_the_published_components(name):
    # no queue: the median is turnaround + outbound + LD-to-infusion (each symmetric, so the
    # median of the sum is the sum of the medians); failures (<= 7%, remade from a new
    # apheresis) move it by well under half a day
    closed_form = PRODUCTS[name][3]
    assert model_median(name) == pytest.approx(closed_form, abs=0.5)


@pytest.mark.parametrize("name", list(PRODUCTS))
def test_model_median_against_the_published_median(name):
    published = PRODUCTS[name][4]
    median = model_median(name)
    assert median < published  # every configuration is short of its study group
    if name in MATCHED:
        assert published - BAND <= median
    else:
        # documented gap: the model, holding only the published process and logistics,
        # falls short of every group of studies (missing slot waits and scheduling, see the
        # module docstring); a later model that adds them should land in the band and move
        # the product to MATCHED
        assert median < published - BAND
