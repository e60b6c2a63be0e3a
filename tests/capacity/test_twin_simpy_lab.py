"""The facility twin with its QC lab (``simulate_twin(..., qc_stage=QCLabStage(lab))``) against
an independent SimPy model of the whole chain.

``simpy_chain`` shares no code with ``capacity``: its own arrivals, culture times, hands-on
times and retests (NumPy), its own resources (SimPy) and its own shift and roster clocks. It
models, in days since the first month's first day:

* patients arriving uniformly within each month (Poisson counts), the starting material
  ``inbound`` days later joining one first-come-first-served queue to start;
* suites (a lot holds one from its start until its harvest ends plus the changeover);
* crews working a window of ``window`` hours from midnight: a step (start, harvest) begins
  only inside the window with its hours left in it, and a harvest waiting for a crew goes
  before any start; a lot's start takes a suite and a crew, its harvest a crew;
* the QC lab: every test of the panel (assays in order) takes the first free analyst, then,
  holding that analyst, the first free instrument of its type; its work (hands-on,
  exponential; instrument, fixed) advances only in the analysts' roster hours (``roster``
  hours from ``shift_start`` on the first ``days_per_week`` days of each 7-day week), then
  its result waits the assay's turnaround as a pure delay; a failed result (retest rate,
  known after the turnaround) queues the test again; a lot is released at its last result;
* vein-to-vein = release + outbound + release-to-infusion - apheresis.

The kernels' results must agree within Monte Carlo error (4 standard errors of the
draw-to-draw spread) on the per-draw mean, P50 and P90 of the release time (release minus the
end of manufacture) and of vein-to-vein.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from capacity.qclab import QCLab
from capacity.twin import CrewConfig, DowntimeConfig, QCLabStage, VeinToVeinConfig, simulate_twin
from tests.helpers import fixed_process, make_demand

MONTHS = 12
PER_MONTH = 25  # patients a month (Poisson)
CULTURE = (7.0, 8.0, 12.0)  # triangular (low, mode, high) days
CASE = dict(
    suites=12,
    crews=1,  # crews at work at any time of the window
    window=14.0,  # 2 shifts of 7 h from midnight
    start_hours=4.0,
    harvest_hours=6.0,
    changeover=1.0,
    inbound=1.0,
    outbound=1.0,
    infusion=2.0,
)
# name, hands-on mean hours (exponential), instrument, instrument hours, turnaround days,
# retest rate
ASSAYS = [
    ("sterility", 1.0, "bact-alert", 6.0, 4.0, 0.0),
    ("flow", 4.0, "cytometer", 3.0, 3.0, 0.3),
    ("count", 0.5, None, 0.0, 0.0, 0.0),
]
LAB = dict(analysts=2, instruments={"bact-alert": 2, "cytometer": 1})
ROSTER = dict(hours_per_day=8.0, days_per_week=5, shift_start_hour=8.0)
MAX_RUNS = 60


# ---- the SimPy model -----------------------------------------------------------------------


def _roster_open(t: float) -> float:
    """Earliest day >= t inside an analyst's shift."""
    hours, days, first = (
        ROSTER["hours_per_day"],
        ROSTER["days_per_week"],
        ROSTER["shift_start_hour"],
    )
    while True:
        day = math.floor(t)
        if day % 7 < days:
            opens, closes = day + first / 24, day + (first + hours) / 24
            if t < opens:
                return opens
            if t < closes:
                return t
        t = day + 1.0


def _roster_finish(t: float, work_hours: float) -> float:
    """Day when ``work_hours`` of roster time begun at day t are done."""
    hours, first = ROSTER["hours_per_day"], ROSTER["shift_start_hour"]
    t = _roster_open(t)
    while True:
        closes = math.floor(t) + (first + hours) / 24
        if work_hours / 24 <= closes - t + 1e-12:
            return t + work_hours / 24
        work_hours -= (closes - t) * 24
        t = _roster_open(closes)


def simpy_chain(counts, month_starts, month_days, rng):
    """One replication. Returns (apheresis day, end of manufacture, release day, v2v days)
    per patient, in order of apheresis."""
    import simpy

    c = CASE
    env = simpy.Environment()
    suite = simpy.Resource(env, capacity=c["suites"])
    crew = simpy.PriorityResource(env, capacity=c["crews"])
    head = simpy.Resource(env, capacity=1)  # first come, first served to the start
    analysts = simpy.Resource(env, capacity=LAB["analysts"])
    instruments = {k: simpy.Resource(env, capacity=n) for k, n in LAB["instruments"].items()}
    aph = np.sort(
        np.concatenate(
            [
                s + rng.random(n) * d
                for s, d, n in zip(month_starts, month_days, counts, strict=True)
            ]
        )
    )
    made = np.full(aph.size, np.nan)
    release = np.full(aph.size, -np.inf)

    def fits(hours):
        return (env.now - math.floor(env.now)) * 24 + hours <= c["window"] + 1e-9

    def take_crew(hours, rank):
        """A crew for a step of ``hours``: queue by ``rank`` (harvests before starts, then
        first come first served); a crew got when the step no longer fits in the window is
        handed on, and the step queues again when the next window opens."""
        while True:
            request = crew.request(priority=rank)
            yield request
            if fits(hours):
                return request
            crew.release(request)
            yield env.timeout(math.floor(env.now) + 1 - env.now)
            if rank[0] == 1:
                yield env.timeout(0)  # at the opening, waiting harvests ask first

    def hold(resource, request, until):
        yield env.timeout(until - env.now)
        resource.release(request)

    def test(i, assay):
        _, hands, kind, inst_hours, turnaround, retest = assay
        for run in range(MAX_RUNS):
            got_analyst = analysts.request()
            yield got_analyst
            if kind is not None:
                got_instrument = instruments[kind].request()
                yield got_instrument
            start = _roster_open(env.now)
            analyst_done = _roster_finish(start, rng.exponential(hands))
            env.process(hold(analysts, got_analyst, analyst_done))
            done = analyst_done
            if kind is not None:
                inst_done = _roster_finish(start, inst_hours)
                env.process(hold(instruments[kind], got_instrument, inst_done))
                done = max(done, inst_done)
            yield env.timeout(done + turnaround - env.now)
            if run == MAX_RUNS - 1 or rng.random() >= retest:
                break
        release[i] = max(release[i], env.now)

    def patient(i):
        yield env.timeout(aph[i] + c["inbound"])
        ready = env.now
        with head.request() as turn:
            yield turn
            room = suite.request()
            yield room
            team = yield from take_crew(c["start_hours"], (1, ready, i))
        yield env.timeout(c["start_hours"] / 24)
        crew.release(team)
        yield env.timeout(rng.triangular(*CULTURE))
        team = yield from take_crew(c["harvest_hours"], (0, env.now, i))
        yield env.timeout(c["harvest_hours"] / 24)
        crew.release(team)
        env.process(hold(suite, room, env.now + c["changeover"]))
        made[i] = env.now
        runs = [env.process(test(i, assay)) for assay in ASSAYS]
        yield simpy.AllOf(env, runs)

    for i in range(aph.size):
        env.process(patient(i))
    env.run()
    v2v = release + c["outbound"] + c["infusion"] - aph
    return aph, made, release, v2v


# ---- the kernels -----------------------------------------------------------------------------


def twin_chain(draws, seed):
    """The same case through simulate_twin with a QCLabStage: (apheresis, end of
    manufacture, release, v2v) per draw and patient (NaN: no patient)."""
    c = CASE
    rng = np.random.default_rng(seed)
    demand = make_demand(rng.poisson(PER_MONTH, size=(draws, MONTHS)))
    panel = [
        {
            "assay": name,
            "tests_per_lot": 1,
            "hands_on_hours": hands,
            "turnaround_days": turnaround,
            "instrument_hours": inst_hours,
            "retest_rate": retest,
            **({} if kind is None else {"instrument": kind}),
        }
        for name, hands, kind, inst_hours, turnaround, retest in ASSAYS
    ]
    spec = fixed_process(
        culture_days={"triangular": list(CULTURE)}, changeover_days=c["changeover"], qc=panel
    )
    lab = QCLab([spec], hands_on="exponential", monitoring_hours_per_month=0, max_runs=MAX_RUNS,
                **ROSTER, **LAB)  # fmt: skip
    # crews_on_shift = floor(operators x attendance / shifts / crew_size) = crews
    crews = CrewConfig(crew_size=2, shifts_per_day=2, hours_per_shift=c["window"] / 2,
                       start_hours=c["start_hours"], harvest_hours=c["harvest_hours"],
                       attendance=1.0)  # fmt: skip
    downtime = DowntimeConfig(contamination_rate=0.0, contamination_remakes=0)
    v2v = VeinToVeinConfig(inbound_days=c["inbound"], outbound_days=c["outbound"],
                           release_to_infusion_days=c["infusion"])  # fmt: skip
    stage = QCLabStage(lab, seed=seed)
    twin = simulate_twin(demand, spec, c["suites"], operators=4 * c["crews"], crews=crews,
                         downtime=downtime, vein_to_vein=v2v, qc_stage=stage,
                         seed=seed)  # fmt: skip
    assert (twin["crews_on_shift"].values == c["crews"]).all()
    aph = twin["apheresis_day"].values
    patients = np.isfinite(aph)
    assert (twin["outcome"].values[patients] == 0).all()  # no failures: everyone treated
    per_patient = stage.result.release.shape[1] // aph.shape[1]
    made = np.where(patients, stage.result.lot_ready[:, ::per_patient], np.nan)
    release = np.where(patients, stage.result.release[:, ::per_patient], np.nan)
    return aph, made, release, twin["v2v_days"].values


def _stats(values: np.ndarray) -> np.ndarray:
    """Per draw (row): mean, P50 and P90 of the finite values."""
    out = []
    for row in values:
        v = row[np.isfinite(row)]
        out.append([v.mean(), *np.quantile(v, [0.5, 0.9])])
    return np.array(out)


def test_twin_with_qc_lab_agrees_with_an_independent_simpy_model():
    t_aph, t_made, t_release, t_v2v = twin_chain(200, seed=31)
    rng = np.random.default_rng(17)
    months = pd.date_range("2027-01-01", periods=MONTHS, freq="MS")
    starts = (months - months[0]).days.to_numpy(float)
    days = months.days_in_month.to_numpy(float)
    runs = [simpy_chain(rng.poisson(PER_MONTH, MONTHS), starts, days, rng) for _ in range(60)]
    width = max(r[0].size for r in runs)

    def pad(k):
        return np.array(
            [np.pad(r[k], (0, width - r[k].size), constant_values=np.nan) for r in runs]
        )

    s_aph, s_made, s_release, s_v2v = (pad(k) for k in range(4))
    names = ("mean", "P50", "P90")
    for what, a_values, b_values in (
        ("release time", t_release - t_made, s_release - s_made),
        ("vein-to-vein", t_v2v, s_v2v),
    ):
        a, b = _stats(a_values), _stats(b_values)
        se = np.sqrt(a.var(axis=0, ddof=1) / len(a) + b.var(axis=0, ddof=1) / len(b))
        diff = a.mean(axis=0) - b.mean(axis=0)
        for k, name in enumerate(names):
            assert abs(diff[k]) < 4 * se[k], (what, name, a.mean(axis=0), b.mean(axis=0), se)
    # the case is loaded: suites and crews add waiting to the bare manufacturing chain, and
    # the lab's queues, roster and retests to the bare QC chain (mean hands-on hours)
    steps = (CASE["start_hours"] + CASE["harvest_hours"]) / 24
    bare_made = CASE["inbound"] + steps + sum(CULTURE) / 3
    bare_qc = max(max(hands, inst) / 24 + days for _, hands, _, inst, days, _ in ASSAYS)
    assert np.nanmean(t_made - t_aph) > bare_made + 1.0
    assert np.nanmean(t_release - t_made) > bare_qc + 2.0
