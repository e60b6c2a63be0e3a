"""Portfolio: causal order in every draw, draw alignment, exact reproductions, opening state."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from capacity import facility, requirements, simulate_facility
from forecast import Portfolio, Program
from forecast.draws import DAYS_PER_MONTH, manufacture_starts, spread_over_windows
from forecast.errors import InputError
from forecast.uptake import Product
from tests.forecast import builders, fakes
from tests.helpers import fixed_process, make_demand

P = (0.5, 0.6, 0.7, 0.9)  # phase1->2, 2->3, 3->filing, filing->approval in the fake model


@pytest.fixture(scope="module")
def models():
    return {
        "phase": fakes.phase_model(P, dispersion=0.4),
        "uptake": fakes.uptake_model(),
        "enrollment": fakes.enrollment_model(target=100),
    }


def three_programs(models, draws=800, seed=3, **kw) -> Portfolio:
    """A registrational trial, a phase I program and a launched product, from 2027-01."""
    pivotal = builders.trial(
        "PIVOTAL",
        models["enrollment"],
        group="CAR-T",
        registrational=True,
        follow_up_months={"uniform": [9, 15]},
        filing_prep_months=3,
        manufactured_share={"beta": [18, 2]},
        lag_days=20,
        eligible_per_year=2000,
        peak_share=(0.1, 0.2),
        # dated before most launches, and one relative to launch
        expansions=[("2028-01-01", 800), (24, 1000)],
        ppq_lots=3,
        ppq_window_months=(8, 6),
        **kw,
    )
    pipe = builders.pipeline(
        "phase1",
        "2026-06-01",
        trial_plan={
            "phase1": {"patients": 30, "enrollment_months": 18},
            "phase2": {"patients": 60},
            "phase3": {"patients": 200, "enrollment_months": 24},
        },
        eligible_per_year=3000,
        peak_share=0.1,
        ppq_lots=4,
    )
    launched = builders.launched(
        "LAUNCHED",
        "2025-03-15",
        eligible_per_year=1500,
        peak_share={"beta": [4, 16]},
        in_progress=10,
    )
    return builders.portfolio(
        pivotal,
        pipe,
        launched,
        horizon_months=120,
        draws=draws,
        seed=seed,
        phase_model=models["phase"],
        uptake_model=models["uptake"],
    )


@pytest.fixture(scope="module")
def world(models):
    return three_programs(models).simulate()


def first_month_with(values: np.ndarray, months: np.ndarray) -> np.ndarray:
    """First month with a positive value per draw (NaT if none)."""
    has = values.sum(axis=1) > 0
    return np.where(has, months[np.argmax(values > 0, axis=1)], np.datetime64("NaT"))


def month_of(dates: np.ndarray) -> np.ndarray:
    return dates.astype("datetime64[M]").astype("datetime64[ns]")


# --- causal order --------------------------------------------------------------------------
@pytest.mark.parametrize("program", ["PIVOTAL", "PIPE", "LAUNCHED"])
def test_no_commercial_patient_before_launch_or_without_one(world, program):
    commercial = world.demand.sel(program=program, stream="commercial").values
    launch = world.events["launch"].sel(program=program).values
    first = first_month_with(commercial, world.demand["month"].values)
    sold = ~np.isnat(first)
    assert not (sold & np.isnat(launch)).any(), "commercial patients in a draw with no launch"
    assert (first[sold] >= month_of(launch[sold])).all()
    if program != "LAUNCHED":  # launch (approval) is uncertain: both kinds of draws exist
        assert 0.2 < np.isnat(launch).mean() < 0.9


def test_expansions_only_after_launch_in_the_portfolio(world, models):
    # with the expansions removed, draws where launch is after 2028-01 must have the same
    # commercial patients before launch: none. Checked directly on the uptake model below.
    launch = world.events["launch"].sel(program="PIVOTAL").values
    commercial = world.demand.sel(program="PIVOTAL", stream="commercial")
    never = np.isnat(launch)
    assert commercial.values[never].sum() == 0


def test_filing_never_precedes_enrollment_completion(world):
    done = world.events["enrollment_complete"].sel(program="PIVOTAL").values
    filing = world.events["filing"].sel(program="PIVOTAL").values
    approval = world.events["approval"].sel(program="PIVOTAL").values
    filed = ~np.isnat(filing)
    assert filed.any() and (~np.isnat(done[filed])).all()
    gap = (filing[filed] - done[filed]) / np.timedelta64(1, "D")
    # follow-up uniform 9-15 months + 3 months of preparation, exactly
    assert gap.min() >= 12 * DAYS_PER_MONTH - 1e-6
    assert gap.max() <= 18 * DAYS_PER_MONTH + 1e-6
    approved = ~np.isnat(approval)
    assert (approval[approved] > filing[approved]).all()
    assert not (approved & ~filed).any()


def test_ppq_inside_the_window_before_filing_and_at_risk_before_the_readout(world):
    for program, lots, (early, late) in (("PIVOTAL", 3, (8, 6)), ("PIPE", 4, (12, 4))):
        ppq = world.demand.sel(program=program, stream="ppq").values
        filing = world.events["filing"].sel(program=program).values
        months = world.demand["month"].values
        filed = ~np.isnat(filing)
        assert (ppq.sum(axis=1) <= lots).all()
        if program == "PIVOTAL":
            # the campaign starts 8 months before a filing 12-18 months after completion,
            # before the readout (9-15 months after): it runs in every draw whose window
            # ends inside the horizon, filing or not (non-anticipation)
            done = world.events["enrollment_complete"].sel(program=program).values
            # (18 months of days after completion can fall in the 19th calendar month)
            end = month_of(done).astype("datetime64[M]") + np.timedelta64(19 - late, "M")
            whole = ~np.isnat(done) & (end.astype("datetime64[ns]") <= months[-1])
            assert (whole & ~filed).sum() > 50
            np.testing.assert_array_equal(ppq[whole].sum(axis=1), lots)
        else:
            # a phase III that fails after the campaign's start runs it too (the rule is
            # checked draw by draw in test_non_anticipation.py)
            assert ppq[~filed].sum() > 0
        # draws whose whole window is inside the horizon get every lot
        window_start = month_of(filing).astype("datetime64[M]") - np.timedelta64(early, "M")
        inside = filed & (window_start.astype("datetime64[ns]") >= months[0])
        inside &= month_of(filing) <= months[-1]
        assert inside.any()
        np.testing.assert_array_equal(ppq[inside].sum(axis=1), lots)
        for d in np.flatnonzero(inside)[:50]:
            used = months[ppq[d] > 0].astype("datetime64[M]")
            f = filing[d].astype("datetime64[M]")
            assert (used >= f - np.timedelta64(early, "M")).all()
            assert (used <= f - np.timedelta64(late, "M")).all()
            assert len(used) == min(lots, early - late + 1)  # spread, not all in one month


def test_no_trial_patient_after_the_phase_the_program_failed_in(models):
    pf = three_programs(models, draws=600, seed=11)
    sim_world = pf.simulate()
    clinical = sim_world.demand.sel(program="PIPE", stream="clinical").values
    months = sim_world.demand["month"].values
    # re-simulate the phase model with the portfolio's seed to read the phase ends (a phase
    # passed lasts at least its planned enrollment: 18 and 24 months in PIPE's plan)
    sim = models["phase"].simulate(
        "phase1",
        "2026-06-01",
        draws=600,
        seed=pf.seed_for("PIPE", "approval"),
        group="CAR-T",
        as_of=pf.as_of,
        min_years={"phase1": 18 / 12, "phase3": 24 / 12},
    )
    ends = sim["phase_end_day"].values
    last_end = np.nanmax(ends[:, :3], axis=1)  # end of the last trial phase reached
    last_end_date = np.datetime64("1970-01-01", "ns") + (last_end * 86400e9).astype(
        "timedelta64[ns]"
    )
    has = clinical.sum(axis=1) > 0
    assert has.mean() > 0.5  # most draws enroll trial patients inside the horizon
    last = months[len(months) - 1 - np.argmax(clinical[:, ::-1] > 0, axis=1)]
    assert (last[has] <= month_of(last_end_date[has])).all()
    failed_in_phase1 = np.isnan(ends[:, 1])
    assert failed_in_phase1.mean() == pytest.approx(0.5, abs=0.07)
    # failed in phase I: only the 30 phase I patients (some may fall outside the horizon)
    assert clinical[failed_in_phase1].sum(axis=1).max() <= 30


# --- draw alignment and closed forms -------------------------------------------------------
def test_approval_of_draw_i_shifts_demand_of_draw_i(models):
    fast = fakes.uptake_model(p_year=50.0, q_year=0.1)  # adoption is immediate
    pipe = builders.pipeline(
        "phase2", "2026-01-01", eligible_per_year=12_000, peak_share=0.5, launch_lag_months=2
    )
    w = builders.portfolio(
        pipe, horizon_months=120, draws=400, seed=5, phase_model=models["phase"], uptake_model=fast
    ).simulate()
    commercial = w.demand.sel(program="PIPE", stream="commercial").values
    launch = w.events["launch"].sel(program="PIPE").values
    approval = w.events["approval"].sel(program="PIPE").values
    first = first_month_with(commercial, w.demand["month"].values)
    ok = ~np.isnat(launch) & (month_of(launch) <= w.demand["month"].values[-1])
    assert ok.sum() > 50
    # 500 patients a month from launch: the first commercial month is the launch month (or
    # the next one when launch falls on the last day or so of a month)
    next_month = (month_of(launch[ok]).astype("datetime64[M]") + 1).astype("datetime64[ns]")
    assert ((first[ok] == month_of(launch[ok])) | (first[ok] == next_month)).all()
    assert (first[ok] == month_of(launch[ok])).mean() > 0.95
    lag = (launch[ok] - approval[ok]) / np.timedelta64(1, "D")
    np.testing.assert_allclose(lag, 2 * DAYS_PER_MONTH, atol=1e-3)
    # shuffling draws would break this: a different draw's launch almost never matches
    assert (first[ok] != np.roll(month_of(launch[ok]), 1)).mean() > 0.5


def test_approval_probabilities_match_the_product_of_steps(models):
    pf = three_programs(models, draws=4000, seed=7)
    w = pf.simulate()
    se = np.sqrt(0.25 / 4000)
    horizon = "2100-01-01"
    # pipeline from phase I: all four steps
    assert w.probability_approved_by("PIPE", horizon) == pytest.approx(np.prod(P), abs=4 * se)
    # registrational trial: pivotal readout (phase3->filing) then review
    assert w.probability_approved_by("PIVOTAL", horizon) == pytest.approx(P[2] * P[3], abs=4 * se)
    filed = (~np.isnat(w.events["filing"].sel(program="PIVOTAL").values)).mean()
    assert filed == pytest.approx(P[2], abs=4 * se)


def test_the_review_after_filing_keeps_its_pdufa_floor_and_mean(models):
    # a registrational trial's review (filing -> approval) is a PDUFA goal (8 or 12 months
    # after submission) less up to 2 months, plus a delay in some draws: CAR-T's review (mean
    # 10.7 months, forecast/phase/durations.py), not a lognormal phase scaled by the speed
    w = three_programs(models, draws=4000, seed=11).simulate()
    months = 12 * w.inputs["PIVOTAL.review_years"].values
    assert months.min() >= 6.0  # the earliest on-time action: 8 months less 2
    assert months.mean() == pytest.approx(10.7, abs=0.3)  # standard error 0.05
    filing = w.events["filing"].sel(program="PIVOTAL").values
    approval = w.events["approval"].sel(program="PIVOTAL").values
    approved = ~np.isnat(approval)
    assert approved.mean() > 0.5
    gap = (approval[approved] - filing[approved]) / np.timedelta64(1, "D") / DAYS_PER_MONTH
    assert gap.min() >= 6.0 - 1e-6


@pytest.mark.parametrize(("review", "goal"), [("priority", 8.0), ("standard", 12.0)])
def test_a_programs_review_type_reaches_its_review(models, review, goal):
    # Program(review=...): CAR-T's delays (r = 4/9) after the program's own goal; more than
    # half of the reviews are on time, so the median is goal - 2 + 2 * 0.5 / (1 - r)
    w = three_programs(models, draws=4000, seed=11, review=review).simulate()
    months = 12 * w.inputs["PIVOTAL.review_years"].values
    assert np.median(months) == pytest.approx(goal - 2 + 2 * 0.5 / (5 / 9), abs=0.1)
    assert ((months >= goal - 2) & (months <= goal)).mean() == pytest.approx(5 / 9, abs=0.03)


def test_every_model_gives_the_same_number_of_draws(models, world):
    assert world.demand.sizes["draw"] == 800
    assert world.events.sizes["draw"] == 800
    assert all(v.sizes["draw"] == 800 for v in world.inputs.data_vars.values())
    fc = models["enrollment"].forecast(12, draws=333)
    assert fc.sizes["draw"] == 333


def test_same_seed_same_world_and_sums_over_programs(models, world):
    again = three_programs(models).simulate()
    xr.testing.assert_identical(world.demand, again.demand)
    xr.testing.assert_identical(world.events, again.events)
    process = fixed_process(failure_rate=0.1)
    by_program = world.requirements(process, by_program=True)
    total = world.requirements(process)
    for name in ("lots", "suites", "qc_hours", "qa_fte", "operator_fte"):
        np.testing.assert_allclose(facility(by_program)[name].values, total[name].values)
    # patients by year: each draw's annual total, then percentiles
    table = world.patients_by_year()
    row = table.query("year == 2030 and program == 'LAUNCHED' and stream == 'commercial'")
    annual = (
        world.demand.sel(program="LAUNCHED", stream="commercial")
        .sel(month=slice("2030-01-01", "2030-12-01"))
        .sum("month")
        .values
    )
    assert row["p50"].item() == pytest.approx(np.quantile(annual, 0.5))
    assert row["mean"].item() == pytest.approx(annual.mean())


def test_one_launched_product_reproduces_the_uptake_forecast_exactly(models):
    launched = builders.launched(
        "LAUNCHED",
        "2025-03-15",
        eligible_per_year=1500,
        peak_share={"beta": [4, 16]},
        expansions=[(12, 400)],
    )
    pf = builders.portfolio(
        launched, horizon_months=60, draws=500, seed=9, uptake_model=models["uptake"]
    )
    got = pf.demand().sel(program="LAUNCHED", stream="commercial")
    direct = models["uptake"].forecast(
        Product("LAUNCHED", pd.Timestamp("2025-03-15")),
        horizon_months=60,
        draws=500,
        start="2027-01-01",
        eligible_per_year=1500,
        peak_share={"beta": [4, 16]},
        expansions=[(12, 400)],
        seed=pf.seed_for("LAUNCHED", "uptake"),
    )
    np.testing.assert_array_equal(got.values, direct.values)
    assert got.values.sum() > 0


# --- uptake seams: expansions follow the launch, a Product's own launch date --------------
def test_uptake_expansion_adds_nothing_without_or_before_launch(models):
    launch = np.array(["NaT", "2030-01-01"], dtype="datetime64[ns]")
    fc = models["uptake"].forecast(
        "NEW",
        launch,
        horizon_months=96,
        draws=2,
        start="2027-01-01",
        eligible_per_year=1000,
        peak_share=0.5,
        expansions=[("2028-01-01", 5000)],
        seed=1,
    )
    assert fc.values[0].sum() == 0  # never launched: no expansion patients
    before = fc.sel(month=slice(None, "2029-12-01")).values[1]
    assert before.sum() == 0  # an expansion dated before launch starts with the launch


def test_uptake_new_product_uses_its_own_launch_date(models):
    fc = models["uptake"].forecast(
        Product("NEW", pd.Timestamp("2028-07-01")),
        horizon_months=36,
        draws=50,
        start="2027-01-01",
        eligible_per_year=1000,
        peak_share=0.5,
    )
    assert fc.sel(month=slice(None, "2028-06-01")).values.sum() == 0
    assert fc.sel(month=slice("2028-07-01", None)).values.sum() > 0


# --- the building blocks, by hand ----------------------------------------------------------
def test_manufacture_starts_share_and_lag_by_hand():
    rng = np.random.default_rng(0)
    months = pd.date_range("2027-01-01", periods=6, freq="MS")
    enrolled = np.tile([1000, 0, 0, 0, 0, 0], (400, 1))
    # lag 0 and share 1: identity
    same = manufacture_starts(enrolled, 1.0, 0.0, months, rng)
    np.testing.assert_array_equal(same, enrolled)
    # 1.25 months: a quarter of the month's patients two months later, the rest one month
    out = manufacture_starts(enrolled, 0.8, 1.25 * DAYS_PER_MONTH, months, rng)
    assert out[:, 0].sum() == 0 and out[:, 3:].sum() == 0
    made = out.sum(axis=1)
    assert made.mean() == pytest.approx(800, abs=4 * np.sqrt(1000 * 0.16 / 400))
    share_late = out[:, 2].sum() / made.sum()
    assert share_late == pytest.approx(0.25, abs=0.005)


def test_spread_over_windows_is_uniform_and_drops_outside():
    rng = np.random.default_rng(1)
    months = pd.date_range("2027-01-01", periods=3, freq="MS")
    epoch = pd.Timestamp("1970-01-01")
    start = (pd.Timestamp("2027-01-16") - epoch).days  # half of January
    end = (pd.Timestamp("2027-05-01") - epoch).days  # beyond the last month (March)
    n = np.full(2000, 100)
    out = spread_over_windows(n, np.full(2000, start), np.full(2000, end), months, rng)
    total_days = end - start
    expected = np.array([16, 28, 31]) / total_days * 100
    np.testing.assert_allclose(out.mean(axis=0), expected, rtol=0.03)
    # no window (NaN): nothing
    none = spread_over_windows(n[:3], np.full(3, np.nan), np.full(3, end), months, rng)
    assert none.sum() == 0


# --- opening state -------------------------------------------------------------------------
def test_opening_state_fills_the_first_month():
    process = fixed_process(changeover_days=1)  # a lot holds a suite 10 days
    demand = make_demand(np.full((50, 12), 31))
    cold = requirements(demand, process)["suites"].mean("draw").values
    warm = requirements(demand, process, opening=31)["suites"].mean("draw").values
    # 31 lots a month x 10 days in a 31-day January: 10 suites at steady state
    assert warm[0] == pytest.approx(10.0, rel=1e-9)
    assert cold[0] < 0.9 * warm[0]  # starting empty understates the first month
    np.testing.assert_allclose(warm[1:], cold[1:])  # later months are unchanged
    qc = requirements(demand, process, opening=31)["qc_hours"].sum("assay").mean("draw")
    np.testing.assert_allclose(qc.values[0], 31 * 1.5 * 1.02, rtol=1e-9)  # lots harvested


def test_opening_state_fills_the_facility_simulation():
    process = fixed_process(changeover_days=1)
    demand = make_demand(np.full((200, 6), 31))
    cold = simulate_facility(demand, process, 20, seed=1)["slots_busy"].mean("draw").values
    warm = simulate_facility(demand, process, 20, seed=1, opening=31)
    busy = warm["slots_busy"].mean("draw").values
    steady = busy[2:].mean()
    assert busy[0] == pytest.approx(steady, rel=0.05)
    assert cold[0] < 0.9 * steady
    assert np.nanmin(warm["patient_arrival_day"].values) >= 0
    assert warm.sizes["month"] == 6


def test_portfolio_hands_its_opening_state_to_requirements(world):
    process = fixed_process(changeover_days=1)
    with_opening = world.requirements(process)
    without = requirements(world.demand, process, seed=world.seed)
    extra = with_opening["suites"].values[:, 0] - without["suites"].values[:, 0]
    # LAUNCHED: 10 lots a month started in December (31 days), each holding a suite 10 days:
    # those started in its last 10 days spill (10 / 31) x 10^2 / 2 suite-days into January
    np.testing.assert_allclose(extra, (10 / 31) * 10**2 / 2 / 31)


# --- bad input -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"stage": "preclinical"}, "stage"),
        ({"stage": "pipeline", "phase": "phase4", "phase_start": "2026-01-01"}, "phase"),
        ({"stage": "pipeline", "phase": "phase1", "group": "CAR-T"}, "phase_start"),
        ({"stage": "launched"}, "launch date"),
        ({"stage": "launched", "launch": "2025-01-01", "eligible_per_year": 10}, "peak_share"),
        ({"stage": "trial"}, "EnrollmentModel"),
        (
            {
                "stage": "pipeline",
                "phase": "phase1",
                "phase_start": "2026-01-01",
                "group": "CAR-T",
                "trial_plan": {"phase1": {"n": 3}},
            },
            "patients",
        ),
        (
            {
                "stage": "pipeline",
                "phase": "phase1",
                "phase_start": "2026-01-01",
                "group": "CAR-T",
                "ppq_window_months": (3, 6),
            },
            "ppq_window_months",
        ),
    ],
)
def test_bad_programs_are_refused(kwargs, message):
    with pytest.raises(InputError, match=message):
        Program("X", **kwargs)


def test_bad_portfolios_are_refused(models):
    with pytest.raises(InputError, match="first day"):
        Portfolio(start="2027-01-15", horizon_months=12)
    pf = Portfolio(start="2027-01-01", horizon_months=12)
    pf.add(Program("A", "launched", launch="2025-01-01", eligible_per_year=10, peak_share=0.1))
    with pytest.raises(InputError, match="already"):
        pf.add(Program("A", "launched", launch="2025-01-01", eligible_per_year=1, peak_share=0.1))
    with pytest.raises(InputError, match="UptakeModel"):
        pf.simulate()
    with pytest.raises(InputError, match="opening"):
        requirements(make_demand(np.ones((2, 3, 2), int)), fixed_process(), opening=3)


def test_current_phase_patients_count_from_the_phase_start(models):
    # 24 patients over 18 months from 2026-03-01; the horizon starts 2026-12-01: about 9 of
    # the 18 months (12 patients) are left, not all 24
    pipe = builders.pipeline(
        "phase1", "2026-03-01", trial_plan={"phase1": {"patients": 24, "enrollment_months": 18}}
    )
    pf = builders.portfolio(
        pipe,
        start="2026-12-01",
        horizon_months=36,
        draws=400,
        seed=2,
        phase_model=fakes.phase_model(P, years=(5.0, 2.0, 2.5, 1.0)),
    )
    clinical = pf.simulate().demand.sel(program="PIPE", stream="clinical")
    per_draw = clinical.sum("month").values
    days_left = (pd.Timestamp("2027-09-01") - pd.Timestamp("2026-12-01")).days
    total_days = (pd.Timestamp("2027-09-01") - pd.Timestamp("2026-03-01")).days
    assert per_draw.mean() == pytest.approx(24 * days_left / total_days, rel=0.05)
    assert clinical.sel(month=slice("2027-09-01", None)).values.sum() == 0


def test_sales_and_analog_names_are_refused_where_they_break_the_world(models):
    with pytest.raises(InputError, match="launched products"):
        Program(
            "X",
            "pipeline",
            group="CAR-T",
            phase="phase1",
            phase_start="2026-01-01",
            eligible_per_year=10,
            peak_share=0.1,
            sales=pd.DataFrame({"patients": [1]}),
        )
    uptake = fakes.uptake_model()
    uptake.products_ = [Product("Breyanzi", pd.Timestamp("2021-02-05"))]
    breyanzi = builders.launched("Breyanzi", "2025-01-01", eligible_per_year=10, peak_share=0.1)
    pf = builders.portfolio(breyanzi, horizon_months=12, draws=10, uptake_model=uptake)
    with pytest.raises(InputError, match="name of a fitted uptake analog"):
        pf.simulate()


def test_fixing_an_uptake_input_keeps_the_draws_of_the_others():
    """A sensitivity swing fixes peak_share at a number: eligible patients (drawn after it)
    must keep their draws, or the swing would mix in noise from re-drawn inputs."""
    from forecast.uptake.simulate import input_draws

    def draw(share):
        rng = np.random.default_rng(5)
        return input_draws(share, 300, rng), input_draws({"uniform": [1000, 3000]}, 300, rng)

    share_a, eligible_a = draw({"uniform": [0.05, 0.15]})
    share_b, eligible_b = draw(0.1)
    assert (share_b == 0.1).all() and share_a.std() > 0.02
    np.testing.assert_array_equal(eligible_a, eligible_b)


# --- patients enrolled before the data cut -------------------------------------------------
def _trial_world(lag_days, *, as_of="2026-12-31", start="2027-01-01", draws=2000, rate=30.0):
    model = fakes.enrollment_model(target=100_000, rate_per_month=rate, as_of=as_of, months=12)
    trial = builders.trial("T", model, manufactured_share=1.0, lag_days=lag_days)
    pf = builders.portfolio(trial, start=start, horizon_months=6, draws=draws, seed=5, as_of=as_of)
    return model, pf.simulate().demand.sel(program="T", stream="clinical").values


@pytest.mark.parametrize("lag_days", [20, 45, {"uniform": [2, 40]}])
def test_patients_enrolled_before_the_cut_start_manufacture_after_it(lag_days):
    # patients enrolled within lag_days before the cut start manufacture after it (with a
    # 20-day lag about 35% of a steady month): at a steady rate every month starts about the
    # same number of lots, the first ones included
    model, clinical = _trial_world(lag_days)
    per_month = clinical.mean(axis=0)
    steady = per_month[3:].mean()  # months whose patients all enrolled after the cut
    assert per_month[0] == pytest.approx(steady, rel=0.08)
    assert per_month[1] == pytest.approx(steady, rel=0.08)
    # the history part is the observed counts, spread uniformly over their month: with a
    # 45-day lag, January holds the patients enrolled Nov 17 - Dec 17 (all observed)
    counts = model.data_.counts.sum(axis=0)
    # an uncertain lag: draws whose lag puts a month's starts wholly before the cut keep none
    if lag_days == 45:
        # January's starts were enrolled Nov 17 - Dec 17: 14 of November's 30 observed days
        # and 17 of December's 31 (all observed: only the lag is drawn here)
        nov, dec = counts[-2], counts[-1]
        assert per_month[0] == pytest.approx(nov * 14 / 30 + dec * 17 / 31, rel=0.03)


def test_without_a_lag_no_patient_of_the_history_is_added():
    # a patient enrolled before the cut with no lag started before it: nothing is added, so
    # the first month holds the forecast only (days after the cut)
    model, clinical = _trial_world(0.0)
    fc = model.forecast(until="2027-06-30", draws=2000, seed=1)["enrolled"].values
    assert clinical[:, 0].mean() == pytest.approx(fc[:, 0].mean(), rel=0.05)


def test_a_pipeline_phase_under_way_keeps_its_lag_crossing_patients():
    # the same for a program in phase I under way at the start: the plan's patients enrolled
    # before the horizon whose lag moves them into it are counted. 600 patients over 60
    # months from 2025-01 is a steady 10 a month; with a 25-day lag every month of 2027
    # starts about 10 lots.
    pipe = builders.pipeline(
        "phase1",
        "2025-01-01",
        trial_plan={"phase1": {"patients": 600, "enrollment_months": 60}},
        manufactured_share=1.0,
        lag_days=25,
        eligible_per_year=1000,
        peak_share=0.1,
    )
    pf = builders.portfolio(
        pipe,
        horizon_months=12,
        draws=2000,
        seed=2,
        phase_model=fakes.phase_model(P, dispersion=0.4),
        uptake_model=fakes.uptake_model(),
    )
    clinical = pf.simulate().demand.sel(program="PIPE", stream="clinical").values
    # draws whose phase I goes on after July enroll at their own steady rate Jan-Jun (a
    # draw whose phase ends earlier spreads the 600 over a shorter window, then stops)
    running = clinical[:, 7:].sum(axis=1) > 0
    assert running.mean() > 0.2
    per_month = clinical[running].mean(axis=0)
    assert per_month[0] == pytest.approx(per_month[1:6].mean(), rel=0.08)


@pytest.mark.parametrize("lag_days", [10, 45])
def test_a_cut_in_mid_month_counts_every_patient_once(lag_days):
    # with the data cut on Jan 15 the forecast's first month holds only Jan 16-31: its
    # patients are shifted by day, not as if spread over all of January, so none is counted
    # twice or missed. At a steady rate every month of the horizon starts the same number.
    _, clinical = _trial_world(lag_days, as_of="2027-01-15", start="2027-02-01", rate=32.0)
    per_month = clinical.mean(axis=0)
    steady = per_month[3:].mean()
    np.testing.assert_allclose(per_month[:3], steady, rtol=0.06)


def test_a_horizon_starting_before_the_cut_keeps_the_observed_starts():
    # with the horizon starting Jan 1 and the data cut on Jan 15, the lots of patients
    # observed Jan 1-15 (no lag) start inside the horizon and are counted: January starts
    # as many as a steady month
    _, clinical = _trial_world(0.0, as_of="2027-01-15", start="2027-01-01", rate=32.0)
    per_month = clinical.mean(axis=0)
    assert per_month[0] == pytest.approx(per_month[2:].mean(), rel=0.06)


# --- bounds of pivotal_success, a phase without patients -----------------------------------
def _pivotal_world(models, pivotal_success):
    pivotal = builders.trial(
        "PIV",
        models["enrollment"],
        group="CAR-T",
        registrational=True,
        follow_up_months=12,
        filing_prep_months=3,
        pivotal_success=pivotal_success,
    )
    return builders.portfolio(
        pivotal, horizon_months=60, draws=200, seed=3, phase_model=models["phase"]
    ).simulate()


@pytest.mark.parametrize("p", [-0.01, 1.01])
def test_pivotal_success_just_outside_0_1_is_refused(models, p):
    with pytest.raises(InputError, match=r"'PIV': pivotal_success must lie in \[0, 1\]"):
        _pivotal_world(models, p)


def test_pivotal_success_of_exactly_0_or_1_is_accepted(models):
    # the bounds themselves are probabilities: 0 never files, 1 files in every draw that
    # completes enrollment, 12 + 3 months after completion
    never = _pivotal_world(models, 0.0)
    always = _pivotal_world(models, 1.0)
    np.testing.assert_array_equal(never.inputs["PIV.p_pivotal"].values, 0.0)
    np.testing.assert_array_equal(always.inputs["PIV.p_pivotal"].values, 1.0)
    assert np.isnat(never.events["filing"].sel(program="PIV").values).all()
    assert np.isnat(never.events["approval"].sel(program="PIV").values).all()
    done = always.events["enrollment_complete"].sel(program="PIV").values
    filing = always.events["filing"].sel(program="PIV").values
    assert not np.isnat(done).any()  # the fake trial reaches its target in every draw
    assert not np.isnat(filing).any()
    gap_days = (filing - done) / np.timedelta64(1, "D")
    np.testing.assert_allclose(gap_days, 15 * DAYS_PER_MONTH, atol=1e-6)
    # approval then follows with the review step's probability (0.9)
    approved = ~np.isnat(always.events["approval"].sel(program="PIV").values)
    assert approved.mean() == pytest.approx(P[3], abs=4 * np.sqrt(0.09 / 200))


def test_a_pipeline_phase_with_no_patients_adds_no_demand(models):
    # a plan phase of 0 patients is valid (only a negative count is refused). Phases I and III
    # plan none, phase II 40 over its first 12 months (all made, no lag): every
    # draw that reaches phase II starts exactly 40 lots, all inside that window; the others
    # none. The plan does not move the events: the same world with patients in I and III has
    # the same filing and approval dates.
    def world(p1, p3):
        plan = {
            "phase1": {"patients": p1},
            "phase2": {"patients": 40, "enrollment_months": 12},
            "phase3": {"patients": p3},
        }
        pipe = builders.pipeline(
            "phase1", "2027-01-01", trial_plan=plan, manufactured_share=1.0, lag_days=0
        )
        pf = builders.portfolio(
            pipe,
            horizon_months=96,
            draws=400,
            seed=4,
            phase_model=fakes.phase_model(P, years=(1.0, 2.0, 2.5, 1.0)),
        )
        return pf, pf.simulate()

    pf, w = world(0, 0)
    np.testing.assert_array_equal(w.inputs["PIPE.phase1_patients"].values, 0.0)
    np.testing.assert_array_equal(w.inputs["PIPE.phase3_patients"].values, 0.0)
    clinical = w.demand.sel(program="PIPE", stream="clinical").values
    months = w.demand["month"].values
    sim = fakes.phase_model(P, years=(1.0, 2.0, 2.5, 1.0)).simulate(
        "phase1",
        "2027-01-01",
        draws=400,
        seed=pf.seed_for("PIPE", "approval"),
        group="CAR-T",
        as_of="2027-01-01",
        min_years={"phase2": 1.0},  # the plan's 12 months of enrollment
    )
    ends = sim["phase_end_day"].values

    def to_month(days):
        return np.datetime64("1970-01-01", "D") + np.floor(days).astype("timedelta64[D]")

    reached = np.isfinite(ends[:, 1])
    assert 0.4 < reached.mean() < 0.6  # phase I -> II with probability 0.5
    np.testing.assert_array_equal(clinical[~reached], 0)  # failed in phase I: nothing
    first = to_month(ends[reached, 0]).astype("datetime64[M]")
    last = to_month(np.minimum(ends[reached, 1], ends[reached, 0] + 12 * DAYS_PER_MONTH))
    assert (last.astype("datetime64[M]") <= months[-1].astype("datetime64[M]")).all()
    # a draw that passes phase II enrolls all 40; one that fails it after its 12 months too;
    # one that fails it sooner enrolled only part of them
    passed = np.isfinite(ends[:, 2])
    long = reached & (ends[:, 1] - ends[:, 0] >= 12 * DAYS_PER_MONTH)
    assert passed[reached].any() and (reached & ~passed & ~long).any()
    np.testing.assert_array_equal(clinical[passed | long].sum(axis=1), 40)
    assert (clinical[reached].sum(axis=1) <= 40).all()
    month = months.astype("datetime64[M]")
    outside = (month[None, :] < first[:, None]) | (
        month[None, :] > last.astype("datetime64[M]")[:, None]
    )
    np.testing.assert_array_equal(clinical[reached][outside], 0)
    # filing (after phase III, which planned no patients) comes after every lot of phase II
    filing = w.events["filing"].sel(program="PIPE").values
    filed = ~np.isnat(filing)
    assert filed.any() and not (filed & ~reached).any()
    last_lot = months[len(months) - 1 - np.argmax(clinical[:, ::-1] > 0, axis=1)]
    assert (last_lot[filed] <= month_of(filing[filed])).all()
    _, staffed = world(30, 50)
    xr.testing.assert_identical(w.events, staffed.events)
    assert staffed.demand.sel(program="PIPE", stream="clinical").values.sum() > clinical.sum()


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_an_array_of_draws_with_a_non_finite_value_is_refused(models, bad):
    # a NaN or inf draw is refused, naming the draw ((p < 0) | (p > 1) is False for NaN, so
    # a range check alone would let those draws silently never file)
    p = np.ones(200)
    p[7] = bad
    with pytest.raises(InputError, match=r"pivotal_success: draw 7 is (nan|inf); expected"):
        _pivotal_world(models, p)


def test_a_passed_phase_lasts_the_longer_of_its_enrollment_and_its_calibrated_time():
    """min_years: a phase the program passes lasts max(enrollment window, D), D the draw it
    has without a plan (the same random numbers: a number as the window draws none); a phase
    it fails lasts D; every later event moves with the phase."""
    model = fakes.phase_model(P, years=(1.0, 1.5, 2.0, 1.0), dispersion=0.4)
    kw = dict(draws=6000, seed=3, group="CAR-T", as_of="2027-01-01")
    free = model.simulate("phase3", "2027-01-01", **kw)
    held = model.simulate("phase3", "2027-01-01", min_years={"phase3": 2.5}, **kw)
    start = (pd.Timestamp("2027-01-01") - pd.Timestamp("1970-01-01")).days
    years = {
        k: (s["phase_end_day"].values[:, 2] - start) / 365.25
        for k, s in (("free", free), ("held", held))
    }
    passed = np.isfinite(held["filing_day"].values)
    np.testing.assert_array_equal(passed, np.isfinite(free["filing_day"].values))
    assert passed.mean() == pytest.approx(0.7, abs=0.03)
    np.testing.assert_allclose(years["held"][passed], np.maximum(2.5, years["free"][passed]))
    np.testing.assert_array_equal(years["held"][~passed], years["free"][~passed])
    assert (passed & (years["free"] < 2.5)).sum() > 1000  # the plan binds in most passed draws
    shift = held["phase_end_day"].values[:, 2] - free["phase_end_day"].values[:, 2]
    approved = np.isfinite(held["approval_day"].values)
    np.testing.assert_allclose(
        (held["approval_day"].values - free["approval_day"].values)[approved], shift[approved]
    )
    # its plan (the day it would end had it passed) is max(2.5, D) in every draw
    plan = (held["end_if_passed_day"].values[:, 2] - start) / 365.25
    np.testing.assert_allclose(plan, np.maximum(2.5, years["free"]), rtol=1e-12)


def test_no_pipeline_filing_before_its_pivotal_trial_has_enrolled_as_planned():
    """Phase III plans 100 patients over 30 months from 2027-01 (mean phase III: 2 years):
    every draw that files does so 30 months or more after the phase began, and every such draw
    enrolled all 100; a draw that failed before 30 months enrolled fewer."""
    pipe = builders.pipeline(
        "phase3",
        "2027-01-01",
        trial_plan={"phase3": {"patients": 100, "enrollment_months": 30}},
        manufactured_share=1.0,
        lag_days=0,
    )
    w = builders.portfolio(
        pipe,
        horizon_months=120,
        draws=800,
        seed=6,
        phase_model=fakes.phase_model(P, years=(1.0, 1.5, 2.0, 1.0), dispersion=0.4),
    ).simulate()
    filing = w.events["filing"].sel(program="PIPE").values
    filed = ~np.isnat(filing)
    assert filed.mean() == pytest.approx(0.7, abs=0.05)
    assert (filing[filed] >= np.datetime64("2029-07-01")).all()
    clinical = w.demand.sel(program="PIPE", stream="clinical").values
    np.testing.assert_array_equal(clinical[filed].sum(axis=1), 100)
    # a trial that failed before its 30 months enrolled fewer: about the share reached
    assert clinical[~filed].sum(axis=1).mean() < 100


def test_approval_bands_draw_with_the_phases_minimums():
    """bands() redraws each draw's durations with the phase minimums kept in the simulation:
    with fixed durations, its conditional P(approved by month) is 0 in every percentile before
    the first month any draw can be approved, like the share approved."""
    model = fakes.phase_model(P, years=(1.0, 1.5, 2.0, 1.0))  # fixed durations
    sim = model.simulate(
        "phase3", "2027-01-01", draws=400, seed=2, group="CAR-T", min_years={"phase3": 3.0}
    )
    np.testing.assert_array_equal(sim["min_years"].sel(phase="phase3").values, 3.0)
    bands = model.bands(sim, quantiles=(0.5, 0.9))
    first_mean = bands.loc[bands["mean"] > 0, "month"].min()
    first_p90 = bands.loc[bands["p90"] > 0, "month"].min()
    assert first_mean == first_p90 >= pd.Timestamp("2030-01-01")  # 3 y + the review


def test_a_floor_far_above_the_median_keeps_the_truncated_mean():
    """Truncated lognormal far in the tail (floor 2.5 y, median 0.2 y, sigma 0.3: z = 8.4):
    the draws' mean given X >= floor is the quadrature value, 2.590, to 0.2% (every draw at
    the floor would give 2.500), and the draws spread above the floor."""
    from scipy import integrate, stats

    from forecast.phase.durations import lognormal_years

    m, s, a = 0.2, 0.3, 2.5
    x = lognormal_years(np.full(200_000, m), np.full(200_000, s), np.random.default_rng(1), a)
    dist = stats.lognorm(s, scale=m)
    exact = integrate.quad(lambda t: t * dist.pdf(t), a, np.inf)[0] / dist.sf(a)
    assert x.min() >= a and x.std() > 0.05
    assert x.mean() == pytest.approx(exact, rel=2e-3)
