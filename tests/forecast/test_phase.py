"""PhaseTransitionModel: benchmark reproduction, shrinkage, timing, evidence, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast import PhaseTransitionModel
from forecast.data import phase_transitions
from forecast.errors import InputError
from forecast.phase import duration_groups, transition_counts

STEPS = ["phase1_to_phase2", "phase2_to_phase3", "phase3_to_filing", "filing_to_approval"]


@pytest.fixture(scope="module")
def all_model():
    return PhaseTransitionModel("all", seed=1).fit()


@pytest.fixture(scope="module")
def area_model():
    return PhaseTransitionModel("area", seed=1).fit()


@pytest.fixture(scope="module")
def modality_model():
    return PhaseTransitionModel("modality", seed=1).fit()


def published(table, group):
    rows = phase_transitions().query("table == @table and group == @group")
    return rows.set_index("transition").loc[STEPS, "success_rate"].to_numpy()


def test_all_indications_reproduce_the_benchmark(all_model):
    assert all_model.diagnostics()["divergences"] == 0
    assert all_model.diagnostics()["r_hat_max"] < 1.01
    p = all_model.transition_probabilities("All indications")
    means = p.mean("draw").values
    np.testing.assert_allclose(means, published("all", "All indications"), atol=0.01)
    assert np.prod(means) == pytest.approx(0.079, abs=0.005)  # published LOA 7.9%


@pytest.mark.slow
def test_oncology_reproduces_the_benchmark(area_model):
    means = area_model.transition_probabilities("Oncology").mean("draw").values
    diff = np.abs(means - published("area", "Oncology"))
    # Oncology has the lowest phase III rate of all 15 areas (0.477 vs about 0.6): partial
    # pooling moves it up by about 0.012 even with 495 transitions, so that step is held to
    # 0.015 and the others to 0.01.
    assert np.all(diff[[0, 1, 3]] < 0.01)
    assert diff[2] < 0.015
    assert np.prod(means) == pytest.approx(0.053, abs=0.005)  # published LOA 5.3%


def test_car_t_shrinks_toward_other_modalities(modality_model):
    loa = modality_model.likelihood_of_approval("CAR-T").values
    low, median, high = np.quantile(loa, [0.05, 0.5, 0.95])
    raw = np.prod(published("modality", "CAR-T"))  # 17.3%, from 3 and 4 late-phase transitions
    assert 0.10 <= median <= 0.20
    assert median < raw
    # 90% interval about 8 pp wide (7.3%-15.4% at seed 1): the modalities' rates differ
    # little, so CAR-T's few transitions are pooled hard.
    assert high - low > 0.06
    # a modality not in the table gets the population predictive: far wider than a modality
    # with thousands of transitions
    new = modality_model.likelihood_of_approval("Cell therapy (new)", new_group=True).values
    big = modality_model.likelihood_of_approval("Small molecule").values
    width = lambda x: np.subtract(*np.quantile(x, [0.95, 0.05]))  # noqa: E731
    assert width(new) > 3 * width(big)


@pytest.mark.slow
def test_loa_evidence_pulls_toward_the_published_estimate(modality_model):
    evidence = {"group": "CAR-T", "estimate": 0.136, "ci95": (0.073, 0.239), "weight": 1.0}
    informed = PhaseTransitionModel("modality", loa_evidence=evidence, seed=1).fit()
    before = np.median(modality_model.likelihood_of_approval("CAR-T").values)
    after = np.median(informed.likelihood_of_approval("CAR-T").values)
    assert before < after < 0.136 + 0.02


def test_fixed_durations_give_start_plus_sum(all_model):
    fixed = all_model.with_durations(duration_dispersion=0, median_sd=0, speed_sd=0)
    sim = fixed.simulate("phase1", "2027-01-01", draws=500, seed=3, group="All indications")
    approved = sim["approval_month"].values[sim["approved"].values]
    assert len(approved) > 10
    # phases I-III at their BIO means, the review at its own mean (11.8 months: All
    # indications' review, forecast/phase/durations.py)
    review = all_model.review_for("All indications").mean_months / 12
    years = 2.3 + 3.6 + 3.3 + review
    expected = (pd.Timestamp("2027-01-01") + pd.Timedelta(days=years * 365.25)).to_period("M")
    assert set(pd.DatetimeIndex(approved).to_period("M")) == {expected}
    filing = pd.Timestamp("2027-01-01") + pd.Timedelta(days=(2.3 + 3.6 + 3.3) * 365.25)
    filed = sim["filing_month"].values[~np.isnat(sim["filing_month"].values)]
    assert set(pd.DatetimeIndex(filed).to_period("M")) == {filing.to_period("M")}


def test_mean_time_to_approval_matches_published_total(all_model):
    sim = all_model.simulate("phase1", "2027-01-01", draws=20_000, seed=4, group="All indications")
    approved = sim["approval_month"].values[sim["approved"].values]
    years = (approved - np.datetime64("2027-01-01", "ns")) / np.timedelta64(1, "D") / 365.25
    assert years.mean() == pytest.approx(10.5, abs=0.5)
    assert sim["approved"].mean() == pytest.approx(0.079, abs=0.01)


def test_as_of_horizon_and_ppq(modality_model):
    sim = modality_model.simulate(
        "phase2",
        "2024-01-01",
        draws=2000,
        seed=5,
        group="CAR-T",
        as_of="2027-01-01",
        horizon_end="2034-12-01",
        ppq_lots=3,
        ppq_months_before_filing=6,
    )
    phase2_end = sim["phase_end"].sel(phase="phase2").values
    assert np.all(phase2_end[~np.isnat(phase2_end)] >= np.datetime64("2027-01-01"))
    assert np.all(np.isnat(sim["phase_end"].sel(phase="phase1").values))
    approvals = sim["approval_month"].values[sim["approved"].values]
    assert np.all(approvals <= np.datetime64("2034-12-01"))
    # PPQ is committed 6 months before the filing planned had phase III passed, never before
    # phase III starts, in every draw that has not failed phase III in a month before it
    # (whether it files or not); months after the horizon are NaT
    to_m = lambda days: (  # noqa: E731
        np.datetime64("1970-01-01", "D") + np.floor(np.nan_to_num(days)).astype("timedelta64[D]")
    ).astype("datetime64[M]")
    ends = sim["phase_end_day"].values
    reached = np.isfinite(ends[:, 2])
    planned = np.maximum(
        to_m(sim["end_if_passed_day"].values[:, 2]) - np.timedelta64(6, "M"), to_m(ends[:, 1])
    )
    failed = reached & np.isnan(sim["filing_day"].values)
    runs = reached & ~(failed & (to_m(ends[:, 2]) < planned))
    runs &= planned <= np.datetime64("2034-12", "M")
    filed = ~np.isnat(sim["filing_month"].values)
    assert (runs & filed).any() and (runs & ~filed).any() and (reached & ~runs).any()
    np.testing.assert_array_equal(sim["ppq_lots"].values, np.where(runs, 3, 0))
    np.testing.assert_array_equal(
        sim["ppq_month"].values[runs].astype("datetime64[M]"), planned[runs]
    )
    assert np.isnat(sim["ppq_month"].values[~runs]).all()
    gap = sim["filing_month"].values[filed].astype("datetime64[M]") - sim["ppq_month"].values[
        filed
    ].astype("datetime64[M]")
    assert (gap <= np.timedelta64(6, "M")).all() and (gap == np.timedelta64(6, "M")).mean() > 0.9
    by_2030 = modality_model.probability_approved_by("2030-12-31", sim)
    assert (
        by_2030
        <= modality_model.probability_approved_by("2034-12-01", sim)
        <= sim["approved"].mean()
    )


def test_program_evidence_and_step_priors(modality_model):
    base = modality_model.transition_probabilities("CAR-T")
    seen = modality_model.transition_probabilities("CAR-T", evidence={"phase3_to_filing": (9, 10)})
    assert seen.sel(step="phase3_to_filing").mean() > base.sel(step="phase3_to_filing").mean()
    np.testing.assert_allclose(
        seen.sel(step="phase1_to_phase2").mean(),
        base.sel(step="phase1_to_phase2").mean(),
        atol=0.02,
    )
    for bad in ((2.5, 10), (9, 10.5), (11, 10), (0, 0)):  # whole numbers, k <= n, n > 0
        with pytest.raises(InputError, match="whole numbers"):
            modality_model.transition_probabilities("CAR-T", evidence={"phase3_to_filing": bad})
    own = modality_model.transition_probabilities("CAR-T", step_priors={"phase2_to_phase3": (8, 2)})
    assert float(own.sel(step="phase2_to_phase3").mean()) == pytest.approx(0.8, abs=0.01)


def test_bands_curve(modality_model):
    sim = modality_model.simulate("phase3", "2026-01-01", draws=2000, seed=6, group="CAR-T")
    frame = modality_model.bands(sim)
    assert list(frame.columns) == [
        "month",
        "program",
        "metric",
        "unit",
        "mean",
        "p10",
        "p50",
        "p90",
    ]
    assert np.all(np.diff(frame["mean"]) >= 0)
    assert (frame["p10"] <= frame["p50"]).all() and (frame["p50"] <= frame["p90"]).all()
    loa = modality_model.likelihood_of_approval("CAR-T", "phase3").values.mean()
    assert frame["mean"].iloc[-1] == pytest.approx(loa, abs=0.03)


def test_same_seed_same_simulation(modality_model):
    a = modality_model.simulate("phase1", "2027-01-01", draws=300, seed=9, group="CAR-T")
    b = modality_model.simulate("phase1", "2027-01-01", draws=300, seed=9, group="CAR-T")
    assert a.identical(b)


def test_save_and_load(tmp_path, modality_model):
    path = modality_model.save(tmp_path / "phase.nc")
    loaded = PhaseTransitionModel.load(path)
    assert loaded.config() == modality_model.config()
    a = modality_model.simulate("phase1", "2027-01-01", draws=300, seed=2, group="CAR-T")
    b = loaded.simulate("phase1", "2027-01-01", draws=300, seed=2, group="CAR-T")
    np.testing.assert_array_equal(a["approval_month"].values, b["approval_month"].values)


def test_bad_input(modality_model):
    with pytest.raises(InputError, match="unknown phase 'phase4'"):
        modality_model.simulate("phase4", "2027-01-01", group="CAR-T")
    with pytest.raises(InputError, match="after horizon_end"):
        modality_model.simulate("phase1", "2031-01-01", horizon_end="2030-01-01", group="CAR-T")
    frame = phase_transitions()
    zero = frame.copy()
    zero.loc[zero.index[0], "n_transitions"] = 0
    with pytest.raises(InputError, match=r"row 2 \(Hematology, phase1_to_phase2\): n_transitions"):
        transition_counts(zero, "area")
    over = frame.assign(successes=frame["n_transitions"] + 1)
    with pytest.raises(InputError, match="successes must be a whole number in"):
        transition_counts(over, "area")
    typo = frame.copy()
    typo.loc[typo.index[0], "transition"] = "phase1_to_phase3"
    with pytest.raises(InputError, match="unknown transition"):
        transition_counts(typo, "area")
    with pytest.raises(InputError, match="no table 'modalities'"):
        transition_counts(frame, "modalities")


def test_horizon_compares_dates_not_months(all_model):
    # every draw is approved on the same day (fixed durations: phases I-III at their BIO
    # means, 9.2 y, and the review at its mean); a horizon the day before must not count it,
    # although both fall in the same month
    fixed = all_model.with_durations(duration_dispersion=0, median_sd=0, speed_sd=0)
    years = 2.3 + 3.6 + 3.3 + fixed.review_for("All indications").mean_months / 12
    start = pd.Timestamp("2027-01-01")
    approval = (start + pd.Timedelta(days=years * 365.25)).normalize()
    day_before = approval - pd.Timedelta(days=1)
    assert approval.to_period("M") == day_before.to_period("M")
    kw = {"draws": 500, "seed": 3, "group": "All indications"}
    late = fixed.simulate("phase1", start, horizon_end=day_before, **kw)
    assert not late["approved"].any()
    assert np.isnat(late["approval_month"].values).all()
    assert fixed.probability_approved_by(day_before, late) == 0
    months = pd.date_range(approval.to_period("M").to_timestamp(), periods=3, freq="MS")
    curve = fixed.bands(late, months=months - pd.offsets.MonthBegin(1))
    assert (curve[["mean", "p10", "p50", "p90"]].to_numpy() == 0).all()
    # on the day itself it counts (horizon and dates are inclusive)
    on_day = fixed.simulate("phase1", start, horizon_end=approval, **kw)
    loa = float(on_day["approved"].mean())
    assert 0.04 < loa < 0.13
    assert fixed.probability_approved_by(approval, on_day) == loa
    # without a horizon: not approved by the day before, approved by the day itself
    free = fixed.simulate("phase1", start, **kw)
    assert fixed.probability_approved_by(day_before, free) == 0
    assert fixed.probability_approved_by(approval, free) == loa


@pytest.mark.parametrize("typo", ["CAR T", "Oncolgy"])
def test_unknown_group_raises_and_lists_the_known_ones(modality_model, typo):
    # a name not in the table is an error, never silently the population predictive
    known = r"known groups: .*CAR-T.*Small molecule.*new_group=True"
    with pytest.raises(InputError, match=rf"unknown group {typo!r} .*{known}"):
        modality_model.transition_probabilities(typo)
    with pytest.raises(InputError, match=known):
        modality_model.likelihood_of_approval(typo)
    with pytest.raises(InputError, match=known):
        modality_model.simulate("phase1", "2027-01-01", group=typo)
    with pytest.raises(InputError, match=known):
        modality_model.program_draws(typo, 10)


def test_unknown_duration_group_raises(modality_model):
    # a duration_group not in the durations table is an error, not "All indications"
    match = r"unknown duration_group 'Oncolgy'.*Oncology.*Hematology"
    with pytest.raises(InputError, match=match):
        modality_model.simulate("phase1", "2027-01-01", group="CAR-T", duration_group="Oncolgy")
    with pytest.raises(InputError, match=match):
        modality_model.program_draws("CAR-T", 10, duration_group="Oncolgy")
    # a group of the table without durations of its own takes the all-indication means
    small = modality_model.program_draws("Small molecule", 10, seed=1)
    everyone = modality_model.program_draws(
        "Small molecule", 10, seed=1, duration_group="All indications"
    )
    np.testing.assert_array_equal(small["median_years"], everyone["median_years"])


def test_a_new_group_is_asked_for_explicitly(modality_model):
    new = modality_model.transition_probabilities("Cell therapy (new)", new_group=True)
    assert new.sizes["draw"] == len(modality_model.likelihood_of_approval("CAR-T"))
    sim = modality_model.simulate(
        "phase1", "2027-01-01", draws=200, group="Cell therapy (new)", new_group=True
    )
    assert sim.attrs["group"] == "Cell therapy (new)"
    with pytest.raises(InputError, match="'CAR-T' is a group of table 'modality'"):
        modality_model.transition_probabilities("CAR-T", new_group=True)


def test_as_of_reweights_parameter_draws_by_survival(modality_model):
    # seven years into phase III (oncology mean 3.1 y) the program is likely a slow one. Brute
    # force: draw parameters and phase times from the prior, keep the programs whose phase III
    # lasts past as_of. simulate(as_of=...) must give the same remaining time.
    start, as_of = pd.Timestamp("2020-01-01"), pd.Timestamp("2027-01-01")
    elapsed = (as_of - start).days / 365.25
    kw = {"duration_group": "Oncology"}
    prior = modality_model.program_draws("CAR-T", 400_000, seed=11, **kw)
    rng = np.random.default_rng(12)
    years = prior["median_years"] * np.exp(prior["sigma"] * rng.standard_normal((400_000, 4)))
    kept = years[:, 2] > elapsed
    assert kept.sum() > 5000
    left = years[kept, 2] - elapsed  # rest of phase III
    to_decision = left + modality_model.review_years(prior, seed=14)[kept]  # and the review
    sim = modality_model.simulate(
        "phase3", start, draws=20_000, seed=13, group="CAR-T", as_of=as_of, **kw
    )
    as_of_day = (as_of - pd.Timestamp("1970-01-01")).days
    ends = (sim["phase_end_day"].values - as_of_day) / 365.25
    got, got_decision = ends[:, 2], ends[:, 3][np.isfinite(ends[:, 3])]
    assert got.mean() == pytest.approx(left.mean(), rel=0.05)
    assert np.quantile(got, 0.9) == pytest.approx(np.quantile(left, 0.9), rel=0.05)
    assert got_decision.mean() == pytest.approx(to_decision.mean(), rel=0.05)
    assert np.quantile(got_decision, 0.9) == pytest.approx(np.quantile(to_decision, 0.9), rel=0.05)


def test_program_speed_spreads_approval_dates_as_published(all_model):
    # a slow program is slow in every phase. Published spread of IND to approval, novel
    # therapeutics approved by the FDA 2015-2022 without expedited programs: median 8.3 y, IQR
    # 6.5-11.4 y, so Q75/Q25 = 1.75 (Mooghali et al., JAMA Netw Open 2023, Table 2; 1.61 to
    # 1.88 across its BLA, NDA, cancer and expedited rows). This draw gives 1.69 (four seeds
    # 1.71); independent phases (speed_sd=0) give 1.36, outside the published range.
    start = pd.Timestamp("2027-01-01")
    sim = all_model.simulate("phase1", start, draws=60_000, seed=8, group="All indications")
    start_day = (start - pd.Timestamp("1970-01-01")).days
    approved = sim["approved"].values
    years = (sim["approval_day"].values[approved] - start_day) / 365.25
    q25, q75 = np.quantile(years, [0.25, 0.75])
    assert 1.6 < q75 / q25 < 1.9
    assert years.mean() == pytest.approx(10.5, abs=0.5)  # the benchmark mean total is kept
    # the phases of one program are positively correlated (a shared speed factor)
    ends = sim["phase_end_day"].values
    reached = np.isfinite(ends[:, 2])
    phase1 = np.log(ends[reached, 0] - start_day)
    phase3 = np.log(ends[reached, 2] - ends[reached, 1])
    assert np.corrcoef(phase1, phase3)[0, 1] > 0.25


def years_to_approval(model, group, draws=40_000, seed=21, **kw):
    """Years from entering phase I (2027-01-01) to approval, approved draws only."""
    start = pd.Timestamp("2027-01-01")
    sim = model.simulate("phase1", start, draws=draws, seed=seed, group=group, **kw)
    days = sim["approval_day"].values[sim["approved"].values]
    return (days - (start - pd.Timestamp("1970-01-01")).days) / 365.25


def test_cell_and_gene_therapies_are_timed_from_their_own_approvals(modality_model):
    # Parexel's analysis of FDA data: the six CAR-T the FDA approved in 2017-2022 took
    # 4.2-8.4 y from IND or first-in-human to market (median 4.8 y), the six gene therapies
    # 5.8-17.5 y (median 9.6 y). The all-indication means would give CAR-T a median of 10.2 y.
    car_t = years_to_approval(modality_model, "CAR-T")
    assert 4.5 < np.median(car_t) < 6.0
    assert np.mean((car_t >= 4.2) & (car_t <= 8.4)) > 0.45  # oncology durations: 0.36
    oncology = years_to_approval(modality_model, "CAR-T", duration_group="Oncology")
    assert np.median(car_t) < 0.7 * np.median(oncology)
    gene = years_to_approval(modality_model, "Gene therapy")
    assert 8.0 < np.median(gene) < 11.0
    assert {"CAR-T", "Gene therapy"} <= set(modality_model.duration_groups)
    assert duration_groups() == modality_model.duration_groups  # the bundled table's
    assert "All indications (per trial)" not in duration_groups()  # per-trial medians: unused


def with_car_t_total(model, **changes):
    """A copy of ``model`` whose CAR-T median total years row is changed."""
    copy = model.with_durations(duration_dispersion=0.4, median_sd=0.1)
    table = copy.durations_.copy()
    row = (table["group"] == "CAR-T") & (table["statistic"] == "median")
    for column, value in changes.items():
        table.loc[row, column] = value
    copy.durations_ = table
    return copy


def test_a_modality_borrows_from_its_area_by_its_number_of_programs(modality_model):
    # the shift of phases I-III is a posterior: few products leave the modality near its area,
    # many pin its median years to the published one
    oncology = np.median(years_to_approval(modality_model, "CAR-T", duration_group="Oncology"))
    one = np.median(years_to_approval(with_car_t_total(modality_model, n_programs=1), "CAR-T"))
    six = np.median(years_to_approval(modality_model, "CAR-T"))
    many = with_car_t_total(modality_model, n_programs=600, mean_years=6.0)
    assert six < one < oncology
    assert np.median(years_to_approval(many, "CAR-T")) == pytest.approx(6.0, rel=0.04)
    # the review (filing) is the modality's own (tests/forecast/test_review.py); phases I-III
    # share one shift
    draws = modality_model.program_draws("CAR-T", 20_000, seed=4)["median_years"]
    area = modality_model.program_draws("CAR-T", 20_000, seed=4, duration_group="Oncology")
    ratio = np.median(draws, axis=0) / np.median(area["median_years"], axis=0)
    review = modality_model.review_for("CAR-T").mean_months / 12  # a CAR-T BLA's, both
    assert draws[:, 3] == pytest.approx(review)
    assert area["median_years"][:, 3] == pytest.approx(review)
    np.testing.assert_allclose(ratio[:3], ratio[0], rtol=0.05)
    assert 0.4 < ratio[0] < 0.7


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"borrow_from": "Oncolgy"}, "borrow_from 'Oncolgy' must be a group with phase means"),
        ({"n_programs": 0}, "n_programs must be a whole number >= 1"),
        ({"statistic": "p90"}, "statistic must be one of"),
    ],
)
def test_bad_modality_durations(modality_model, changes, match):
    bad = with_car_t_total(modality_model, **changes)
    with pytest.raises(InputError, match=match):
        bad.simulate("phase1", "2027-01-01", draws=10, group="CAR-T")
