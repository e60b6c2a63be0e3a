"""The facility twin (capacity.twin) against hand-computed delay chains, the suite queue of
capacity._queue, Erlang C, and an independent SimPy model of suites, crews and contamination.

``simpy_twin`` below shares no code with ``capacity``: its own arrivals, lot times and
random numbers (NumPy), its own resources (SimPy), so agreement within Monte Carlo error is
a check of the kernel's rules, not of a shared bug. ``benchmarks/bench_twin.py`` times it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from capacity import simulate_facility
from capacity.errors import InputError
from capacity.simulation import erlang_c_wait_probability
from capacity.twin import CrewConfig, DowntimeConfig, VeinToVeinConfig, simulate_twin
from tests.helpers import fixed_process, make_demand

MONTHS = pd.date_range("2027-01-01", periods=24, freq="MS")
NO_DOWNTIME = DowntimeConfig(contamination_rate=0.0, contamination_remakes=0)
ROUND_THE_CLOCK = CrewConfig(
    crew_size=1, shifts_per_day=3, hours_per_shift=8, start_hours=0, harvest_hours=0
)


def poisson_demand(per_month, draws, months=24, seed=0):
    rng = np.random.default_rng(seed)
    return make_demand(rng.poisson(per_month, size=(draws, months)))


def test_pure_delay_chain_is_the_sum_of_the_delays():
    # plenty of suites and crews: every patient's vein-to-vein time is exactly inbound +
    # start step + culture + harvest step + QC turnaround + outbound + release to infusion
    spec = fixed_process(culture_days=9, changeover_days=1)
    crews = CrewConfig(crew_size=2, shifts_per_day=3, hours_per_shift=8, start_hours=4,
                       harvest_hours=6, attendance=1.0)  # fmt: skip
    v2v = VeinToVeinConfig(inbound_days=1.5, outbound_days=2, release_to_infusion_days=3)
    twin = simulate_twin(
        poisson_demand(5, 20), spec, 200, operators=600, crews=crews,
        downtime=NO_DOWNTIME, vein_to_vein=v2v, seed=4,
    )  # fmt: skip
    days = twin["v2v_days"].values
    patients = np.isfinite(twin["apheresis_day"].values)
    assert patients.sum() > 1000
    expected = 1.5 + 4 / 24 + 9 + 6 / 24 + 14 + 2 + 3
    np.testing.assert_allclose(days[patients], expected, rtol=0, atol=1e-9)
    assert np.nanmax(twin["patient_wait_days"].values) == 0
    assert (twin["outcome"].values[patients] == 0).all()
    assert (twin["crews_on_shift"].values == 600 * 1.0 / 3 // 2).all()


def test_suites_only_reproduces_the_suite_queue_kernel():
    # no transport, no hands-on hours, unlimited crews: the twin's wait for a suite is the
    # suite queue's wait, patient by patient (same arrivals and lot times)
    spec = fixed_process(culture_days={"triangular": [7, 9, 14]}, changeover_days=1)
    demand = poisson_demand(14, 30, seed=2)
    v2v = VeinToVeinConfig(inbound_days=0, outbound_days=0, release_to_infusion_days=0)
    twin = simulate_twin(
        demand, spec, 5, operators=1000, crews=ROUND_THE_CLOCK, downtime=NO_DOWNTIME,
        vein_to_vein=v2v, seed=7,
    )  # fmt: skip
    queue = simulate_facility(demand, spec, 5, cryopreserved=True, seed=7)
    ours = twin["patient_wait_days"].values
    theirs = queue["patient_wait_days"].values
    assert np.nanmean(theirs) > 1  # the suites do bind
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9)
    share = twin["wait_share"].sel(cause="suites").values
    assert np.nanmin(share[np.isfinite(share)]) == 1.0


def test_suites_by_month_come_online_as_in_the_suite_queue_kernel():
    # 3 suites, 2 more from month 6 and 1 more from month 12 (modules): the twin's waits are
    # the suite queue's patient by patient, and the waits fall once the modules are online
    spec = fixed_process(culture_days={"triangular": [7, 9, 14]}, changeover_days=1)
    demand = poisson_demand(12, 30, seed=3)
    months = pd.DatetimeIndex(demand["month"].values)
    suites = pd.Series([3] * 6 + [5] * 6 + [6] * 12, index=months)
    v2v = VeinToVeinConfig(inbound_days=0, outbound_days=0, release_to_infusion_days=0)
    twin = simulate_twin(
        demand, spec, suites, operators=1000, crews=ROUND_THE_CLOCK, downtime=NO_DOWNTIME,
        vein_to_vein=v2v, seed=5,
    )  # fmt: skip
    queue = simulate_facility(demand, spec, suites, cryopreserved=True, seed=5)
    ours = twin["patient_wait_days"].values
    np.testing.assert_allclose(ours, queue["patient_wait_days"].values, rtol=0, atol=1e-9)
    arrival = twin["apheresis_day"].values
    early, late = ours[arrival < 150], ours[arrival > 400]
    assert np.nanmean(early) > 5 * np.nanmean(late)  # 3 suites bind; 6 barely do
    # suites busy never exceed those installed: 3, then 5 from month 6 (day 181), then 6
    busy = twin["suites_busy"].values
    assert busy[:, :6].max() <= 3 + 1e-9 and busy[:, 6:12].max() <= 5 + 1e-9
    assert busy[:, 6:12].max() > 3  # the new suites are used in the month they come online


def test_processes_with_different_lots_per_suite_share_suites_as_in_the_suite_queue():
    # a one-lot-a-room process and a four-lots-a-room one (closed devices) on 4 suites, 2 more
    # from month 9: a lot holds 1 or 1/4 of a suite, and the twin's waits are the suite queue
    # kernel's patient by patient; suites busy stay within those installed
    room = fixed_process(name="room", culture_days={"triangular": [7, 9, 14]}, changeover_days=1)
    closed = fixed_process(
        name="closed", culture_days={"uniform": [8, 12]}, changeover_days=0.5, lots_per_suite=4
    )
    rng = np.random.default_rng(4)
    demand = make_demand(rng.poisson([8, 20], size=(20, 24, 2)), programs=["A", "B"])
    months = pd.DatetimeIndex(demand["month"].values)
    suites = pd.Series([4] * 9 + [6] * 15, index=months)
    processes = {"A": room, "B": closed}
    v2v = VeinToVeinConfig(inbound_days=0, outbound_days=0, release_to_infusion_days=0)
    twin = simulate_twin(
        demand, processes, suites, operators=1000, crews=ROUND_THE_CLOCK,
        downtime=NO_DOWNTIME, vein_to_vein=v2v, seed=9,
    )  # fmt: skip
    queue = simulate_facility(demand, processes, suites, cryopreserved=True, seed=9)
    ours = twin["patient_wait_days"].values
    assert np.nanmean(ours) > 1  # the suites bind
    np.testing.assert_allclose(ours, queue["patient_wait_days"].values, rtol=0, atol=1e-9)
    busy = twin["suites_busy"].values
    assert busy[:, :9].max() <= 4 + 1e-9 and busy.max() <= 6 + 1e-9
    # a closed lot holds a quarter of a suite: busy suites are the suite queue's busy slots
    # (4 a suite: a room lot holds all 4, a closed lot 1) over 4
    np.testing.assert_allclose(busy, queue["slots_busy"].values / 4, rtol=1e-9, atol=1e-9)


def test_exponential_culture_matches_erlang_c():
    # M/M/c: 8 suites, 7-day exponential culture, 200 patients a year (Erlang C, Kleinrock
    # 1975 sec. 3.5): P(wait > 2 days) per draw after a 90-day warm-up, within 4 SE
    spec = fixed_process(culture_days=7, changeover_days=0)
    rng = np.random.default_rng(0)
    days = pd.date_range("2027-01-01", periods=36, freq="MS").days_in_month.to_numpy()
    demand = make_demand(rng.poisson(200 / 365 * days[None, :], size=(300, 36)))
    v2v = VeinToVeinConfig(inbound_days=0)
    twin = simulate_twin(
        demand, spec, 8, operators=1000, crews=ROUND_THE_CLOCK, downtime=NO_DOWNTIME,
        vein_to_vein=v2v, service="exponential", seed=3,
    )  # fmt: skip
    waits = twin["patient_wait_days"].values
    keep = twin["apheresis_day"].values > 90
    per_draw = np.array([(w[k] > 2).mean() for w, k in zip(waits, keep, strict=True)])
    se = per_draw.std(ddof=1) / np.sqrt(len(per_draw))
    expected = erlang_c_wait_probability(200 / 365, 7, 8, 2.0)
    assert abs(per_draw.mean() - expected) < 4 * se + 0.001, (per_draw.mean(), expected, se)


def test_crews_bind_and_the_decomposition_says_crews():
    # 30 suites (need about 8), one crew round the clock (4 operators x 0.5 attendance / 1
    # shift / crews of 2), 12 h start + 12 h harvest: a lot takes a crew-day, and 25 lots a
    # month keep one crew 82% busy
    spec = fixed_process(culture_days=9, changeover_days=1)
    crews = CrewConfig(crew_size=2, shifts_per_day=1, hours_per_shift=24, start_hours=12,
                       harvest_hours=12, attendance=0.5)  # fmt: skip
    twin = simulate_twin(
        poisson_demand(25, 40, seed=5), spec, 30, operators=4, crews=crews,
        downtime=NO_DOWNTIME, seed=1,
    )  # fmt: skip
    assert (twin["crews_on_shift"].values == 1).all()
    waits = twin["wait_days"].sum("month").sum("draw")
    share = waits / waits.sum()
    assert share.sel(cause="crews") > 0.99, share.values
    assert share.sel(cause="suites") < 0.01
    assert twin["wait_days"].sel(cause="crews").mean() > 1.0  # days per patient
    # and with 4 crews the wait for crews nearly vanishes
    more = simulate_twin(
        poisson_demand(25, 40, seed=5), spec, 30, operators=16, crews=crews,
        downtime=NO_DOWNTIME, seed=1,
    )  # fmt: skip
    assert (
        more["wait_days"].sel(cause="crews").mean()
        < 0.2 * twin["wait_days"].sel(cause="crews").mean()
    )


def test_a_step_waits_for_the_working_window():
    # one 8-hour shift a day from midnight; 6-hour steps start only before 02:00, else the
    # next midnight; no contention, so the v2v time of every patient follows by hand
    spec = fixed_process(culture_days=9, changeover_days=1)
    crews = CrewConfig(crew_size=1, shifts_per_day=1, hours_per_shift=8, start_hours=6,
                       harvest_hours=6, attendance=1.0)  # fmt: skip
    v2v = VeinToVeinConfig(inbound_days=0.3, outbound_days=0, release_to_infusion_days=0)
    twin = simulate_twin(
        poisson_demand(3, 20, seed=9), spec, 100, operators=300, crews=crews,
        downtime=NO_DOWNTIME, vein_to_vein=v2v, seed=2,
    )  # fmt: skip
    aph = twin["apheresis_day"].values
    keep = np.isfinite(aph)

    def open_at(t):
        return np.where((t - np.floor(t)) * 24 + 6 <= 8 + 1e-9, t, np.floor(t) + 1)

    start = open_at(aph + 0.3)
    harvest = open_at(start + 6 / 24 + 9)
    expected = harvest + 6 / 24 + 14 - aph
    assert (start > aph + 0.3).any() and (start == aph + 0.3).any()
    np.testing.assert_allclose(twin["v2v_days"].values[keep], expected[keep], atol=1e-9)
    crew_wait = twin["patient_wait_days"].values[keep]
    np.testing.assert_allclose(crew_wait, (start - aph - 0.3 + harvest - start - 6 / 24 - 9)[keep],
                               atol=1e-9)  # fmt: skip


def test_planned_shutdown_holds_starts_that_would_run_into_it():
    # 14 days from 20 December (the one begun in December 2026 too): a lot whose 10 days in
    # the suite would reach into it starts when it ends (3 January); no contention otherwise
    spec = fixed_process(culture_days=10, changeover_days=0)
    v2v = VeinToVeinConfig(inbound_days=0, outbound_days=0, release_to_infusion_days=0)
    downtime = DowntimeConfig(shutdown_days_per_year=14, shutdown_start="12-20",
                              contamination_rate=0.0)  # fmt: skip
    twin = simulate_twin(
        poisson_demand(4, 30, seed=3), spec, 100, operators=1000, crews=ROUND_THE_CLOCK,
        downtime=downtime, vein_to_vein=v2v, seed=5,
    )  # fmt: skip
    aph = twin["apheresis_day"].values
    keep = np.isfinite(aph)
    starts = np.array([(pd.Timestamp(f"{y}-12-20") - MONTHS[0]).days for y in (2026, 2027, 2028)])
    start = aph.copy()
    for s in starts:
        held = (aph + 10 > s) & (aph < s + 14)
        start = np.where(held, s + 14, start)
    np.testing.assert_allclose(twin["v2v_days"].values[keep], (start + 10 + 14 - aph)[keep])
    held = np.nansum(twin["patient_wait_days"].values)
    assert held == pytest.approx(np.nansum(start - aph), rel=1e-9) and held > 0
    share = twin["wait_share"].sel(cause="downtime").values
    assert (share[np.isfinite(share)] == 1).all()  # all of it is downtime


def test_contamination_remakes_from_a_new_apheresis():
    # contamination 30% fixed, one remake from a new apheresis 14 days after the harvest:
    # a treated patient's v2v is the plain chain or the chain + (in-suite time + 14 + 1);
    # P(lost) = 0.3^2 = 0.09
    spec = fixed_process(culture_days=9, changeover_days=1)
    downtime = DowntimeConfig(contamination_rate=0.3, contamination_remakes=1,
                              decontamination_days=5)  # fmt: skip
    v2v = VeinToVeinConfig(inbound_days=1, outbound_days=1, release_to_infusion_days=0,
                           reapheresis_days=14)  # fmt: skip
    twin = simulate_twin(
        poisson_demand(6, 60, seed=8), spec, 300, operators=1000, crews=ROUND_THE_CLOCK,
        downtime=downtime, vein_to_vein=v2v, seed=6,
    )  # fmt: skip
    outcome = twin["outcome"].values
    patients = outcome >= 0
    lost = (outcome[patients] == 2).mean()
    n = patients.sum()
    assert abs(lost - 0.09) < 4 * np.sqrt(0.09 * 0.91 / n)
    days = twin["v2v_days"].values[outcome == 0]
    plain = 1 + 9 + 14 + 1
    remade = plain + 9 + 14 + 1
    assert np.isin(np.round(days, 9), [plain, remade]).all()
    share_remade = (np.abs(days - remade) < 1e-9).mean()  # 0.3 x 0.7 / (1 - 0.09)
    assert abs(share_remade - 0.21 / 0.91) < 4 * np.sqrt(0.23 * 0.77 / days.size)


def test_dropout_hazard_loses_waiting_patients_at_its_rate():
    # one suite, heavy queue: every patient who would wait w days is lost with probability
    # 1 - exp(-h w); with h = 0 nobody is lost, with h > 0 some are, and fewer wait
    spec = fixed_process(culture_days=9, changeover_days=1)
    demand = poisson_demand(4, 20, seed=1, months=12)
    base = dict(operators=1000, crews=ROUND_THE_CLOCK, downtime=NO_DOWNTIME, seed=2)
    none = simulate_twin(demand, spec, 2, **base)
    some = simulate_twin(demand, spec, 2, vein_to_vein=VeinToVeinConfig(dropout_per_day=0.02),
                         **base)  # fmt: skip
    assert none["patients_lost_waiting"].sum() == 0
    assert some["patients_lost_waiting"].sum() > 0
    assert some["lots_waiting"].mean() < none["lots_waiting"].mean()


def test_same_seed_same_results_and_a_new_seed_differs():
    spec = fixed_process(culture_days={"triangular": [7, 9, 14]}, failure_rate=0.1)
    demand = poisson_demand(10, 10, seed=4, months=12)
    kw = dict(operators=8, downtime=DowntimeConfig(equipment_failures_per_suite_year=5),
              vein_to_vein=VeinToVeinConfig(dropout_per_day=0.01))  # fmt: skip
    a = simulate_twin(demand, spec, 4, seed=11, **kw)
    b = simulate_twin(demand, spec, 4, seed=11, **kw)
    c = simulate_twin(demand, spec, 4, seed=12, **kw)
    np.testing.assert_array_equal(a["v2v_days"].values, b["v2v_days"].values)
    np.testing.assert_array_equal(a["wait_days"].values, b["wait_days"].values)
    assert not np.array_equal(a["v2v_days"].values, c["v2v_days"].values, equal_nan=True)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: CrewConfig(crew_size=0), "crew_size"),
        (lambda: CrewConfig(hours_per_shift=25, shifts_per_day=1), "at most 24"),
        (lambda: CrewConfig(shifts_per_day=3, hours_per_shift=10), "24 hours a day"),
        (lambda: CrewConfig(shifts_per_day=1, start_hours=9), "fit in the working day"),
        (lambda: CrewConfig(attendance=0), "attendance"),
        (lambda: DowntimeConfig(contamination_rate=-0.1), "contamination_rate"),
        (lambda: DowntimeConfig(equipment_failures_per_suite_year=-1), "equipment_failures"),
        (lambda: DowntimeConfig(shutdown_start="13-40"), "shutdown_start"),
        (lambda: DowntimeConfig(contamination_remakes=1.5), "contamination_remakes"),
        (lambda: VeinToVeinConfig(dropout_per_day=-0.1), "dropout_per_day"),
        (lambda: VeinToVeinConfig(inbound_days={"uniform": [-1, 2]}), "inbound_days"),
        (lambda: VeinToVeinConfig(target_days=0), "target_days"),
    ],
)
def test_bad_config_names_the_field(make, message):
    with pytest.raises(InputError, match=message):
        make()


def test_bad_operators_and_suites_name_the_argument():
    demand = poisson_demand(2, 3, months=4)
    spec = fixed_process()
    with pytest.raises(InputError, match="operators"):
        simulate_twin(demand, spec, 2, operators=-1)
    with pytest.raises(InputError, match="operators: expected one number"):
        simulate_twin(demand, spec, 2, operators=np.ones(7))
    with pytest.raises(InputError, match="suites"):
        simulate_twin(demand, spec, 0, operators=5)


# ---- an independent SimPy model ------------------------------------------------------------


def simpy_twin(counts, month_starts, month_days, rng, *, suites, crews, culture, changeover,
               start_hours, harvest_hours, contamination, decontamination, remakes,
               reapheresis, inbound, outbound, turnaround):  # fmt: skip
    """Suites, crews (round the clock, harvests first), contamination and remakes in SimPy.

    ``counts`` patients per month arrive uniformly within it; ``culture`` is (low, mode,
    high) of a triangular distribution. Returns (apheresis day, v2v days or NaN if lost,
    wait to start of the first lot) per patient.
    """
    import simpy

    env = simpy.Environment()
    suite = simpy.Resource(env, capacity=suites)
    crew = simpy.PriorityResource(env, capacity=crews)
    head = simpy.Resource(env, capacity=1)  # first come, first served to the start
    aph = np.concatenate(
        [s + rng.random(n) * d for s, d, n in zip(month_starts, month_days, counts, strict=True)]
    )
    v2v = np.full(aph.size, np.nan)
    first_wait = np.full(aph.size, np.nan)

    def free_after(request, days):
        yield env.timeout(days)
        suite.release(request)

    def lot(i, ready_at, attempt):
        yield env.timeout(ready_at - env.now)
        ready = env.now
        with head.request() as turn:
            yield turn
            room = suite.request()
            yield room
            team = crew.request(priority=1)
            yield team
        if attempt == 0:
            first_wait[i] = env.now - ready
        yield env.timeout(start_hours / 24)
        crew.release(team)
        yield env.timeout(rng.triangular(*culture))
        team = crew.request(priority=0)
        yield team
        yield env.timeout(harvest_hours / 24)
        crew.release(team)
        if rng.random() < contamination:
            env.process(free_after(room, decontamination))
            if attempt < remakes:
                env.process(lot(i, env.now + reapheresis + inbound, attempt + 1))
            return
        env.process(free_after(room, changeover))
        v2v[i] = env.now + turnaround + outbound - aph[i]

    for i in np.argsort(aph, kind="stable"):
        env.process(lot(i, aph[i] + inbound, 0))
    env.run()
    return aph, v2v, first_wait


SIMPY_CASE = dict(suites=5, crews=1, culture=(7.0, 8.0, 12.0), changeover=1.0, start_hours=10,
                  harvest_hours=8, contamination=0.1, decontamination=5.0, remakes=1,
                  reapheresis=14.0, inbound=1.0, outbound=1.0, turnaround=7.0)  # fmt: skip
SIMPY_PER_MONTH = 11


def twin_case(draws, seed):
    """The SIMPY_CASE facility in the twin (one crew of one operator round the clock)."""
    c = SIMPY_CASE
    spec = fixed_process(
        culture_days={"triangular": list(c["culture"])},
        changeover_days=c["changeover"],
        qc=[{"assay": "sterility", "hands_on_hours": 1, "turnaround_days": c["turnaround"]}],
    )
    crews = CrewConfig(crew_size=1, shifts_per_day=1, hours_per_shift=24, attendance=1.0,
                       start_hours=c["start_hours"], harvest_hours=c["harvest_hours"])  # fmt: skip
    downtime = DowntimeConfig(contamination_rate=c["contamination"],
                              contamination_remakes=c["remakes"],
                              decontamination_days=c["decontamination"])  # fmt: skip
    v2v = VeinToVeinConfig(
        inbound_days=c["inbound"],
        outbound_days=c["outbound"],
        release_to_infusion_days=0,
        reapheresis_days=c["reapheresis"],
    )
    demand = poisson_demand(SIMPY_PER_MONTH, draws, seed=seed)
    return lambda: simulate_twin(
        demand, spec, c["suites"], operators=c["crews"], crews=crews, downtime=downtime,
        vein_to_vein=v2v, seed=seed,
    )  # fmt: skip


def _per_draw(aph, values, stat):
    keep = (aph > 90) & np.isfinite(values)
    return np.array([stat(v[k]) for v, k in zip(values, keep, strict=True)])


def test_twin_agrees_with_an_independent_simpy_model():
    twin = twin_case(400, seed=21)()
    rng = np.random.default_rng(5)
    starts = (MONTHS - MONTHS[0]).days.to_numpy(float)
    days = MONTHS.days_in_month.to_numpy(float)
    runs = [
        simpy_twin(rng.poisson(SIMPY_PER_MONTH, len(MONTHS)), starts, days, rng, **SIMPY_CASE)
        for _ in range(150)
    ]
    width = max(r[0].size for r in runs)

    def pad(k):
        return np.array(
            [np.pad(r[k], (0, width - r[k].size), constant_values=np.nan) for r in runs]
        )

    s_aph, s_v2v = pad(0), pad(1)
    t_aph = twin["apheresis_day"].values
    t_v2v = twin["v2v_days"].values
    outcome = twin["outcome"].values
    # per-draw mean, P90 and P50 of v2v (patients after a 90-day warm-up), and the share
    # lost (contaminated twice)
    for stat in (np.mean, lambda v: np.quantile(v, 0.9), lambda v: np.quantile(v, 0.5)):
        a = _per_draw(t_aph, t_v2v, stat)
        b = _per_draw(s_aph, s_v2v, stat)
        se = np.hypot(a.std(ddof=1) / np.sqrt(a.size), b.std(ddof=1) / np.sqrt(b.size))
        assert abs(a.mean() - b.mean()) < 4 * se, (a.mean(), b.mean(), se)
    chain = 1 + 10 / 24 + 9 + 8 / 24 + 7 + 1  # mean v2v with no queue and no remake
    assert np.nanmean(t_v2v) > chain + 3  # the queue (and remakes) do bind
    lost_twin = (outcome == 2).sum() / (outcome >= 0).sum()
    lost_simpy = np.isnan(s_v2v[np.isfinite(s_aph)]).mean()
    se = np.sqrt(0.01 * 0.99 * (1 / (outcome >= 0).sum() + 1 / np.isfinite(s_aph).sum()))
    assert abs(lost_twin - lost_simpy) < 4 * se


def test_compiled_summary_matches_numpy_by_hand():
    # the summary kernel on hand-made lots: 3 draws of 40 jobs over 4 months (month ends
    # 10, 20, 30, 40), PPQ lots, padding, every outcome, a treated lot released at NaN and a
    # month with nobody treated. Each monthly number is recomputed here with NumPy
    # (np.nanquantile, boolean masks), v2v = release of the final lot + after - apheresis.
    from capacity import _twin

    rng = np.random.default_rng(0)
    draws, jobs, lots, months = 3, 40, 80, 4
    arrivals = np.sort(rng.uniform(0, 45, (draws, jobs)), axis=1)
    arrivals[:, -3:] = np.inf  # padding
    arrivals[1, (arrivals[1] >= 20) & (arrivals[1] < 30)] += 10  # draw 1: month 2 empty
    arrivals = np.sort(arrivals, axis=1)
    is_ppq = rng.random((draws, jobs)) < 0.15
    outcome = rng.choice([0, 0, 0, 1, 2, 3], (draws, jobs))
    outcome[is_ppq] = 4
    outcome[~np.isfinite(arrivals)] = -1
    final_lot = np.where(outcome == 0, rng.integers(0, lots, (draws, jobs)), -1)
    after = rng.uniform(1, 3, (draws, jobs))
    wait = rng.exponential(2.0, (draws, jobs, 3))
    release = arrivals.max(where=np.isfinite(arrivals), initial=0) + rng.uniform(
        5, 40, (draws, lots)
    )
    release[0, final_lot[0][outcome[0] == 0][0]] = np.nan  # a treated lot without a day
    qc_wait = rng.exponential(1.0, (draws, lots, 2))
    ends = np.array([10.0, 20.0, 30.0, 40.0])
    target = 45.0
    out = [np.zeros((draws, months)) for _ in range(5)]
    wait_sum = np.zeros((draws, months, 5))
    p50, p90 = np.empty((draws, months)), np.empty((draws, months))
    v2v, waited, day = (np.empty((draws, jobs)) for _ in range(3))
    _twin.summarise_chunk(arrivals, is_ppq, outcome, final_lot, after, wait, release, qc_wait,
                          ends, target, 0, draws, *out, wait_sum, p50, p90, v2v, waited,
                          day)  # fmt: skip
    count, lost_w, lost, over, treated_by_month = out
    rows = np.arange(draws)[:, None]
    treated = outcome == 0
    lot = np.maximum(final_lot, 0)
    aph = np.where(np.isfinite(arrivals), arrivals, np.nan)
    infusion = np.where(treated, release[rows, lot], np.nan) + after
    np.testing.assert_array_equal(v2v, infusion - aph)
    patient = np.isfinite(arrivals) & ~is_ppq
    np.testing.assert_array_equal(waited, np.where(patient, wait.sum(axis=2), np.nan))
    np.testing.assert_array_equal(day, np.where(patient, arrivals, np.nan))
    month = np.searchsorted(ends, np.nan_to_num(aph, nan=99.0), "right")
    at = np.searchsorted(ends, np.nan_to_num(infusion, nan=np.inf), "right")
    waits = np.concatenate([wait, np.where(treated[..., None], qc_wait[rows, lot], 0.0)], 2)
    for d in range(draws):
        for m in range(months):
            mine = patient[d] & (month[d] == m)
            assert count[d, m] == mine.sum() > 0 or (d, m) == (1, 2)
            assert lost_w[d, m] == (mine & (outcome[d] == 1)).sum()
            assert lost[d, m] == (mine & ((outcome[d] == 1) | (outcome[d] == 2))).sum()
            assert over[d, m] == (mine & ~(treated[d] & (v2v[d] <= target))).sum()
            assert treated_by_month[d, m] == (patient[d] & treated[d] & (at[d] == m)).sum()
            np.testing.assert_allclose(wait_sum[d, m], waits[d][mine].sum(axis=0), rtol=1e-12)
            got = v2v[d][mine & treated[d]]
            if np.isfinite(got).any():
                want = np.nanquantile(got, [0.5, 0.9])
            else:
                want = [np.nan, np.nan]
            np.testing.assert_allclose([p50[d, m], p90[d, m]], want, rtol=1e-12)
    assert np.isnan(p50[1, 2]) and count[1, 2] == 0
    assert np.isnan(v2v[0][treated[0]]).sum() >= 1  # the NaN release is skipped, not a value


def test_a_qc_stage_plugs_in_and_its_waits_join_the_decomposition():
    # a QC stage that releases every lot 3 days after the nominal turnaround, all of it
    # waiting for a flow cytometer: v2v grows by exactly 3 days, and the decomposition has a
    # "flow-cytometer" cause of 3 days per patient
    from capacity.twin import QCStageResult

    spec = fixed_process(culture_days=9, changeover_days=1)

    def stage(lot_ready, lot_process, draw_keys):
        assert lot_ready.shape == lot_process.shape and draw_keys.shape == (lot_ready.shape[0],)
        wait = np.where(np.isfinite(lot_ready), 3.0, np.nan)[..., None]
        return QCStageResult(lot_ready + 14 + 3, wait, ("flow-cytometer",))

    kw = dict(operators=1000, crews=ROUND_THE_CLOCK, downtime=NO_DOWNTIME, seed=3)
    demand = poisson_demand(4, 10, months=6)
    plain = simulate_twin(demand, spec, 100, **kw)
    lab = simulate_twin(demand, spec, 100, qc_stage=stage, **kw)
    np.testing.assert_allclose(lab["v2v_days"], plain["v2v_days"] + 3)
    assert list(lab["cause"].values) == ["suites", "crews", "downtime", "flow-cytometer"]
    per_patient = lab["wait_days"].sel(cause="flow-cytometer").values
    np.testing.assert_allclose(per_patient[np.isfinite(per_patient)], 3.0)


def test_a_qc_lab_with_one_analyst_binds_and_the_decomposition_names_analysts():
    # rooms and crews plentiful, one QC analyst (8 h x 5 days) with 12 hands-on hours per
    # lot against ~20 lots a month: the analyst binds. Release is the lab's result exactly
    # (v2v = release of the patient's lot - apheresis, no transport), the waits of the
    # decomposition are the lab's waits per patient, and they are all the analyst's.
    from capacity.qclab import QCLab
    from capacity.twin import QCLabStage

    panel = [{"assay": "sterility", "tests_per_lot": 1, "hands_on_hours": 12,
              "turnaround_days": 14, "instrument": "bact-alert", "instrument_hours": 0.5,
              "retest_rate": 0.0}]  # fmt: skip
    spec = fixed_process(culture_days=9, changeover_days=1, qc=panel)
    v2v = VeinToVeinConfig(inbound_days=0, outbound_days=0, release_to_infusion_days=0)
    kw = dict(operators=1000, crews=ROUND_THE_CLOCK, downtime=NO_DOWNTIME, vein_to_vein=v2v)
    demand = poisson_demand(20, 6, months=4, seed=5)

    def lab(analysts):
        return QCLab([spec], analysts=analysts, instruments={"bact-alert": 1},
                     monitoring_hours_per_month=0)  # fmt: skip

    stage = QCLabStage(lab(1), seed=9)
    twin = simulate_twin(demand, spec, 100, qc_stage=stage, seed=9, **kw)
    result = stage.result
    assert list(twin["cause"].values) == ["suites", "crews", "downtime", "analysts", "bact-alert"]
    # release = the lab's result: each patient's only lot is lot i * lots-per-patient
    per_patient = result.release.shape[1] // twin.sizes["patient"]
    apheresis = twin["apheresis_day"].values
    patients = np.isfinite(apheresis)
    release = result.release[:, ::per_patient]
    np.testing.assert_allclose(
        twin["v2v_days"].values[patients], (release - apheresis)[patients], rtol=0, atol=1e-9
    )
    # the analyst binds: lots wait days for it, and every day of waiting is the analyst's
    waited = result.wait[:, ::per_patient, 0]
    assert np.nanmean(waited[patients]) > 5
    share = twin["wait_share"].values
    has = np.isfinite(share[..., 0])
    np.testing.assert_allclose(share[..., 3][has], 1.0)
    np.testing.assert_allclose(share[..., [0, 1, 2, 4]][has], 0.0)
    # wait_days[analysts] = the mean of the lab's analyst wait over the month's patients
    months = np.searchsorted(
        (pd.DatetimeIndex(twin["month"].values) - MONTHS[0]).days.to_numpy(float),
        apheresis, side="right") - 1  # fmt: skip
    for d in range(6):
        for m in range(4):
            mine = patients[d] & (months[d] == m)
            got = twin["wait_days"].sel(cause="analysts").values[d, m]
            np.testing.assert_allclose(got, waited[d, mine].mean(), rtol=1e-12)
    # ten analysts: nobody waits for one, and patients are infused sooner
    roomy = QCLabStage(lab(10), seed=9)
    more = simulate_twin(demand, spec, 100, qc_stage=roomy, seed=9, **kw)
    assert np.nanmax(roomy.result.wait[..., 0]) < 3.5  # at most a weekend, not a queue
    assert np.nanmean(more["v2v_days"].values) < np.nanmean(twin["v2v_days"].values) - 5


def test_monthly_v2v_percentiles_with_ppq_lots_among_the_patients():
    # PPQ lots are jobs between the patients (sorted arrivals) but not patients: each
    # month's v2v P50/P90 is np.nanquantile of that month's patients' v2v days (a month's
    # rank among its jobs, not among its patients, indexes the padded array)
    rng = np.random.default_rng(3)
    values = np.stack(
        [rng.poisson(6, (8, 5)), rng.poisson(4, (8, 5)), rng.poisson(3, (8, 5))], axis=-1
    )[:, :, None, :]
    demand = make_demand(values)  # streams clinical, commercial, ppq
    spec = fixed_process(culture_days={"triangular": [7, 9, 14]}, changeover_days=1)
    twin = simulate_twin(demand, spec, 3, operators=1000, crews=ROUND_THE_CLOCK,
                         downtime=NO_DOWNTIME, seed=2)  # fmt: skip
    assert (twin["outcome"].values == 4).sum() == values[..., 2].sum()  # the PPQ lots
    edges = (pd.date_range("2027-01-01", periods=6, freq="MS") - MONTHS[0]).days.to_numpy()
    day, v2v = twin["apheresis_day"].values, twin["v2v_days"].values
    for d in range(8):
        for m in range(5):
            mine = v2v[d][(day[d] >= edges[m]) & (day[d] < edges[m + 1])]
            assert len(mine) == values[d, m, 0, :2].sum()
            want = np.quantile(mine[np.isfinite(mine)], [0.5, 0.9])
            got = [twin[k].values[d, m] for k in ("v2v_p50_days", "v2v_p90_days")]
            np.testing.assert_allclose(got, want, rtol=1e-12)


def test_qc_lab_stage_months_follow_the_twins_calendar_with_an_opening_state():
    # with lots in progress at the start the twin simulates months before it: the lab's
    # month edges are those calendar months (day 0 = the first of them) and two more; its
    # lots include the history's, each released no earlier than the panel's 14 days
    from capacity.qclab import QCLab
    from capacity.twin import QCLabStage

    spec = fixed_process(culture_days=9, changeover_days=1)
    lab = QCLab([spec], analysts=3, instruments={"bact-alert": 1}, monitoring_hours_per_month=0)
    stage = QCLabStage(lab, seed=1)
    demand = poisson_demand(5, 4, months=3)
    twin = simulate_twin(demand, spec, 20, operators=1000, crews=ROUND_THE_CLOCK,
                         downtime=NO_DOWNTIME, qc_stage=stage, seed=1, opening=6)  # fmt: skip
    first = pd.Timestamp(twin["month"].values[0])
    history = (first.year - stage.months[0].year) * 12 + first.month - stage.months[0].month
    assert history >= 1 and len(stage.months) == history + 3 + 2
    edges = stage.result.month_edges
    np.testing.assert_array_equal(
        edges, np.r_[0, (stage.months.shift(1, freq="MS") - stage.months[0]).days]
    )
    ready = stage.result.lot_ready
    assert (ready < edges[history]).sum() > 0  # the opening lots leave manufacture before
    qc_days = stage.result.release - ready
    assert np.nanmin(qc_days) >= 14
    # a lab given no calendar (called on its own) keeps release_days' default edges
    alone = QCLabStage(lab, seed=1)
    alone(ready, np.zeros(ready.shape, np.int64), np.arange(4, dtype=np.uint64))
    assert alone.months is None


def test_results_do_not_depend_on_threads_or_chunks(monkeypatch):
    # every feature on (remakes for both causes, equipment, shutdowns, a short working day,
    # dropout, random transport, per-month crews, per-draw suites): the kernel run as one
    # chunk on one thread and as 12 chunks on 3 threads gives the same numbers, bit for bit
    from capacity import _twin

    kernel = _twin.simulate_twin
    runs = []

    def both(*args):
        one = kernel(*args, threads=1)
        three = kernel(*args, threads=3)
        runs.append((one, three))
        return one

    monkeypatch.setattr(_twin, "simulate_twin", both)
    spec = fixed_process(culture_days={"lognormal": {"median": 9, "p90": 12}},
                         changeover_days={"uniform": [0.5, 1.5]}, failure_rate=0.15,
                         max_remanufacture=2)  # fmt: skip
    downtime = DowntimeConfig(shutdown_days_per_year=10, shutdown_start="07-01",
                              contamination_rate={"beta": [2, 40]}, contamination_remakes=2,
                              equipment_failures_per_suite_year=3)  # fmt: skip
    v2v = VeinToVeinConfig(inbound_days={"triangular": [0.5, 1, 3]},
                           release_to_infusion_days={"uniform": [3, 7]}, new_apheresis=False,
                           dropout_per_day=0.005)  # fmt: skip
    crews = CrewConfig(crew_size=2, shifts_per_day=1, hours_per_shift=10, attendance=0.8)
    simulate_twin(
        poisson_demand(12, 25, seed=3, months=18), spec, np.arange(25) % 4 + 4,
        operators=np.linspace(4, 12, 18), crews=crews, downtime=downtime, vein_to_vein=v2v,
        seed=5,
    )  # fmt: skip
    ((one, three),) = runs
    outcome = one[3]
    assert {0, 1, 2} <= set(np.unique(outcome))  # treated, lost waiting, lost after failures
    for a, b in zip(one, three, strict=True):
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


def test_kernel_casts_its_arguments_to_its_one_signature(monkeypatch):
    # the kernel is compiled once for one signature (C-contiguous, writable, fixed dtypes);
    # the wrapper casts Fortran-order, read-only and narrower-dtype arguments to it, so they
    # give the same numbers instead of a TypeError or a second compile
    from capacity import _twin

    kernel = _twin.simulate_twin
    calls = []
    monkeypatch.setattr(_twin, "simulate_twin", lambda *a: calls.append(a) or kernel(*a))
    simulate_twin(poisson_demand(6, 5, months=6), fixed_process(), 2, operators=6, seed=2)
    (args,) = calls
    odd = list(args)
    odd[0] = np.asfortranarray(args[0])  # apheresis
    odd[3] = args[3].copy()
    odd[3].flags.writeable = False  # keys
    odd[4] = args[4].astype(np.int32)  # culture_kind
    odd[26] = args[26].astype(np.int32)  # n_suites
    odd[14] = np.int32(args[14])  # contamination_remakes
    for a, b in zip(kernel(*args), kernel(*odd), strict=True):
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    assert len(_twin._simulate_chunk.signatures) == 1
