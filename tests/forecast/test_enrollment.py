"""EnrollmentModel: closed forms of the accrual planning prior, the hierarchical model, inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from capacity import as_demand
from forecast.enrollment import EnrollmentModel, enrollment_data, planning_prior
from forecast.errors import InputError
from tests.forecast import fakes

DAYS_PER_MONTH = 365.25 / 12


def one_site_counts(start, as_of, n, seed=0):
    """Daily counts at one site with ``n`` patients on random days in [start, as_of]."""
    days = pd.date_range(start, as_of, freq="D")
    rng = np.random.default_rng(seed)
    enrolled = np.bincount(rng.integers(0, len(days), n), minlength=len(days))
    return pd.DataFrame({"site": "A", "date": days, "enrolled": enrolled})


@pytest.fixture(scope="module")
def accrual_model():
    # accrual.n.inform(n=300, T=36, P=0.5, m=100, tm=10, Tp=36), months as calendar months:
    # T = 2020-01-01..2022-12-31 (1,096 days), tm = 2020-01..2020-10 (305 days).
    counts = one_site_counts("2020-01-01", "2020-10-31", 100)
    model = EnrollmentModel(target=300, planning=(300, 1096, 0.5), draws=40_000, chains=1, seed=3)
    return model.fit(counts=counts, as_of="2020-10-31")


def test_accrual_n_inform(accrual_model):
    assert accrual_model.diagnostics()["closed_form"]
    fc = accrual_model.forecast(until="2022-12-31")
    uncapped = EnrollmentModel(planning=(300, 1096, 0.5), draws=40_000, chains=1, seed=3)
    uncapped.fit(counts=one_site_counts("2020-01-01", "2020-10-31", 100), as_of="2020-10-31")
    total = uncapped.forecast(until="2022-12-31")["cumulative_enrolled"].values[:, -1]
    q = np.quantile(total, [0.025, 0.5, 0.975])
    # exact: 100 + NB(size 150 + 100, p = (548 + 305) / (548 + 305 + 791))
    exact = 100 + stats.nbinom.ppf([0.025, 0.5, 0.975], 250, 853 / (853 + 791))
    np.testing.assert_allclose(q, exact, atol=1.5)  # Monte Carlo error of 40,000 draws
    np.testing.assert_allclose(q, [292, 332, 375], atol=2)  # accrual, months of 30.4 days
    assert fc["cumulative_enrolled"].values.max() <= 300


def test_accrual_t_inform(accrual_model):
    accrual_model.forecast(until="2024-06-30")
    ttt = accrual_model.time_to_target().values
    months = (ttt - np.datetime64("2020-01-01", "ns")) / np.timedelta64(1, "D") / DAYS_PER_MONTH
    q = np.quantile(months, [0.025, 0.5, 0.975])
    # exact: 305 days + Gamma(200) / lambda, lambda ~ Gamma(250, 853), in months
    rng = np.random.default_rng(0)
    lam = rng.gamma(250, 1 / 853, 400_000)
    exact = np.quantile(
        (305 + rng.gamma(200, 1, 400_000) / lam) / DAYS_PER_MONTH, [0.025, 0.5, 0.975]
    )
    np.testing.assert_allclose(q, exact, atol=0.15)
    np.testing.assert_allclose(q, [28.58, 32.39, 36.96], atol=0.3)  # accrual.T.inform


def test_weekly_example_of_gajewski():
    # 22 weeks planned at 3/week, P = 0.5; weekly counts 1, 0, 0, 0, 3, 1
    a, b = planning_prior(66, 22 * 7, 0.5)
    prior = stats.nbinom.ppf([0.025, 0.975], a, b / (b + 22 * 7))
    np.testing.assert_allclose(prior, [41, 96], atol=2)
    weekly = [1, 0, 0, 0, 3, 1]
    start = pd.Timestamp("2021-01-04")
    daily = pd.DataFrame(
        {"site": "A", "date": pd.date_range(start, periods=42, freq="D"), "enrolled": 0}
    )
    for week, n in enumerate(weekly):
        daily.loc[week * 7 + 2, "enrolled"] = n
    end = start + pd.Timedelta(days=22 * 7 - 1)
    for weeks, median in ((1, 60), (2, 53), (4, 41)):
        as_of = start + pd.Timedelta(days=7 * weeks - 1)
        model = EnrollmentModel(planning=(66, 22 * 7, 0.5), draws=20_000, chains=1, seed=weeks)
        model.fit(counts=daily[daily["date"] <= as_of], as_of=as_of)
        final = model.forecast(until=end)["cumulative_enrolled"].values[:, -1]
        assert np.median(final) == pytest.approx(median, abs=2)


def simulate_trial(n_sites=30, days=360, alpha=1.4, mean_rate=0.02, seed=0, countries=("US",)):
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01")
    activation = start + pd.to_timedelta(rng.integers(0, 120, n_sites), unit="D")
    rates = rng.gamma(alpha, mean_rate / alpha, n_sites)
    rows = []
    for s in range(n_sites):
        open_days = pd.date_range(activation[s], start + pd.Timedelta(days=days - 1), freq="D")
        n = rng.poisson(rates[s] * len(open_days))
        for day in rng.choice(open_days, size=n):
            rows.append({"site": f"S{s:03d}", "enrolled_on": day})
    sites = pd.DataFrame(
        {
            "site": [f"S{s:03d}" for s in range(n_sites)],
            "country": [countries[s % len(countries)] for s in range(n_sites)],
            "activated_on": activation,
        }
    )
    return pd.DataFrame(rows), sites, start + pd.Timedelta(days=days - 1)


@pytest.fixture(scope="module")
def trial_model():
    patients, sites, as_of = simulate_trial()
    future = pd.DataFrame(
        {"site": ["N1", "N2"], "planned_activation": ["2025-03-01", "2025-06-01"]}
    )
    sites = pd.concat([sites, future], ignore_index=True)
    model = EnrollmentModel(target=400, draws=400, tune=400, seed=1)
    return model.fit(patients, sites, as_of=as_of)


def test_hierarchical_fit_and_forecast(trial_model):
    diag = trial_model.diagnostics()
    assert diag["divergences"] == 0 and diag["r_hat_max"] < 1.05
    mu = trial_model.idata.posterior["mu"].values.ravel()
    # the simulated mean rate 0.02 lies near this data set's posterior 2% quantile (0.0201 in
    # 4,000 draws of PyMC's NUTS, 0.0200 in nutpie's): check the 98% interval
    assert np.quantile(mu, 0.01) < 0.02 < np.quantile(mu, 0.99)
    fc = trial_model.forecast(36)
    assert fc["cumulative_enrolled"].values.max() <= 400
    assert (fc["treated"] <= fc["enrolled"]).all()
    assert np.all(np.diff(fc["cumulative_enrolled"].values, axis=1) >= 0)
    ttt = trial_model.time_to_target()
    assert trial_model.probability_by("2030-01-01") >= trial_model.probability_by("2026-01-01")
    assert (~np.isnat(ttt.values)).mean() > 0.5
    frame = trial_model.bands()
    assert {"enrolled", "treated", "cumulative_enrolled"} <= set(frame["metric"])
    demand = trial_model.to_demand("CART-201")
    assert as_demand(demand).dims == ("draw", "month", "program", "stream")
    # lots are made for enrolled patients (dropouts before infusion included), not "treated"
    np.testing.assert_array_equal(demand.values[:, :, 0, 0], fc["enrolled"].values)
    half = trial_model.to_demand("CART-201", manufactured_share=0.5).values[:, :, 0, 0]
    assert half.sum() == pytest.approx(0.5 * fc["enrolled"].values.sum(), rel=0.05)


def test_sites_needed_grows_with_the_required_probability(trial_model):
    trial_model.forecast(36)
    by = "2026-06-30"
    low = trial_model.sites_needed(by, probability=0.5, max_sites=200)
    high = trial_model.sites_needed(by, probability=0.9, max_sites=200)
    assert low is not None and high is not None and high >= low


@pytest.mark.slow
def test_site_not_yet_open_contributes_after_as_of():
    patients, sites, as_of = simulate_trial(n_sites=10, seed=2)
    only_future = pd.concat(
        [
            sites,
            pd.DataFrame({"site": ["N1"], "planned_activation": [as_of + pd.Timedelta(days=200)]}),
        ],
        ignore_index=True,
    )
    base = EnrollmentModel(draws=300, tune=300, seed=1, p_never=(1, 1e6)).fit(
        patients, sites, as_of=as_of
    )
    more = EnrollmentModel(draws=300, tune=300, seed=1, p_never=(1, 1e6)).fit(
        patients, only_future, as_of=as_of
    )
    a = base.forecast(12)["enrolled"].mean("draw").values
    b = more.forecast(12)["enrolled"].mean("draw").values
    assert b[:4].sum() == pytest.approx(a[:4].sum(), rel=0.15)  # delay: mostly not open yet
    assert b[-4:].sum() > a[-4:].sum()


def test_screen_failure_and_dropout_are_conjugate():
    rows = [
        {
            "site": "A",
            "enrolled_on": f"2024-0{1 + i % 6}-1{i % 9}",
            "outcome": "enrolled",
            "treated": i % 5 != 0,
        }
        for i in range(60)
    ]
    rows += [{"site": "A", "enrolled_on": None, "outcome": "screen_failed"}] * 40
    model = EnrollmentModel(draws=4000, chains=1, seed=2).fit(
        pd.DataFrame(rows), as_of="2024-06-30"
    )
    fc = model.forecast(6)
    ratio = float(fc["treated"].sum() / fc["enrolled"].sum())
    assert ratio == pytest.approx(49 / 62, abs=0.03)  # Beta(1 + 48, 1 + 12) mean
    screened = float(fc["screened"].sum() / fc["enrolled"].sum())
    assert screened == pytest.approx(100 / 60, rel=0.08)


@pytest.mark.parametrize(
    ("patients", "sites", "message"),
    [
        (
            {"site": ["A", "Z"], "enrolled_on": ["2024-02-01", "2024-02-02"]},
            None,
            "patients: row 3: site 'Z' is not in the sites table",
        ),
        (
            {"site": ["A"], "enrolled_on": ["2023-12-01"]},
            None,
            "patients: row 2: enrollment on 2023-12-01 at site 'A' is before its activation",
        ),
        (
            {"site": ["A"], "enrolled_on": ["2024-08-01"]},
            None,
            "patients: row 2: enrolled_on 2024-08-01 is after as_of",
        ),
        (
            {"site": ["A"], "enrolled_on": ["2024-02-01"]},
            {"site": ["A", "A"], "activated_on": ["2024-01-01", "2024-01-02"]},
            "sites: row 3: site 'A' appears twice",
        ),
    ],
)
def test_bad_patient_input(patients, sites, message):
    sites = sites or {"site": ["A"], "activated_on": ["2024-01-01"]}
    with pytest.raises(InputError) as err:
        enrollment_data(pd.DataFrame(patients), pd.DataFrame(sites), as_of="2024-06-30")
    assert message in str(err.value)


def test_bad_counts_input():
    counts = pd.DataFrame(
        {"site": ["A", "A"], "date": ["2024-01-01", "2024-01-02"], "enrolled": [1, -2]}
    )
    with pytest.raises(InputError, match="counts: row 3: enrolled must be a whole number >= 0"):
        enrollment_data(counts=counts, as_of="2024-06-30")


@pytest.mark.slow
def test_site_caps_stop_each_site():
    patients, sites, as_of = simulate_trial(n_sites=8, seed=5, mean_rate=0.05)
    seen = patients.groupby("site").size()
    capped = sites.assign(cap=[int(seen.get(s, 0)) + 2 for s in sites["site"]])
    model = EnrollmentModel(draws=300, tune=300, seed=1).fit(patients, capped, as_of=as_of)
    fc = model.forecast(24)
    # every site can add at most 2 more patients
    assert int(fc["enrolled"].sum("month").max()) <= 2 * len(sites)
    free = EnrollmentModel(draws=300, tune=300, seed=1).fit(patients, sites, as_of=as_of)
    assert float(free.forecast(24)["enrolled"].sum("month").mean()) > 2 * len(sites)


def test_save_and_load_give_the_same_forecast(tmp_path, trial_model, accrual_model):
    for i, model in enumerate((trial_model, accrual_model)):
        path = model.save(tmp_path / f"enrollment{i}.nc")
        loaded = EnrollmentModel.load(path)
        assert loaded.config() == model.config()
        a = model.forecast(12, seed=4)
        b = loaded.forecast(12, seed=4)
        np.testing.assert_array_equal(a["enrolled"].values, b["enrolled"].values)
        assert loaded.diagnostics().get("closed_form") == model.diagnostics().get("closed_form")
        # the tuning draws (nutpie's warmup_* groups) are not saved; everything else is, and
        # the diagnostics (from posterior and sample_stats) are the fitted model's
        groups = model.idata.groups()
        assert loaded.idata.groups() == [g for g in groups if not g.startswith("warmup_")]
        for group in loaded.idata.groups():
            for name, values in getattr(model.idata, group).data_vars.items():
                got = getattr(loaded.idata, group)[name].values
                np.testing.assert_array_equal(got, values.values, err_msg=f"{group}.{name}")
        assert loaded.diagnostics() == model.diagnostics()
    assert any(g.startswith("warmup_") for g in trial_model.idata.groups())  # nutpie keeps them


# --------------------------------------------------------------------------------------------
# sites not open yet, pauses, closures, sites_needed, and bad inputs
# --------------------------------------------------------------------------------------------
def pending_contribution(sites_with, sites_without, counts, as_of, months=12, **kw):
    """Mean enrolled per month that the sites only in ``sites_with`` add (same seeds: the
    open sites' draws are identical, so the difference is the pending sites' own)."""
    out = []
    for sites in (sites_with, sites_without):
        model = EnrollmentModel(draws=500, tune=300, chains=2, seed=1, **kw)
        model.fit(counts=counts, sites=sites, as_of=as_of)
        out.append(model.forecast(months, seed=5)["enrolled"].values)
    return (out[0] - out[1]).mean(axis=0), out[1].mean(axis=0)


# without a calendar effect one site's model is closed form; with it, two NUTS fits (slow)
@pytest.mark.parametrize("calendar_effect", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_pending_sites_draw_rates_informed_by_one_open_site(calendar_effect):
    # one site at about 0.46/month: a pending site's rate comes from that site (about the same
    # rate), not from the single-site prior (about 3 a month)
    counts = one_site_counts("2024-01-01", "2024-12-31", 6, seed=1)
    open_site = pd.DataFrame({"site": ["A"], "activated_on": ["2024-01-01"]})
    pending = pd.DataFrame({"site": ["B"], "planned_activation": ["2024-11-01"]})
    added, base = pending_contribution(
        pd.concat([open_site, pending], ignore_index=True),
        open_site,
        counts,
        "2024-12-31",
        calendar_effect=calendar_effect,
        p_never=(1, 1e6),
    )
    # the pending site opens within a few months; then it adds about what site A does
    assert added[6:].mean() == pytest.approx(base[6:].mean(), rel=0.35)
    assert added[6:].mean() < 1.0


def test_pending_sites_respect_declared_pauses():
    # a declared pause stops the sites not open yet too
    counts = one_site_counts("2024-01-01", "2024-12-31", 40, seed=2)
    sites = pd.DataFrame(
        {
            "site": ["A", "B"],
            "activated_on": ["2024-01-01", None],
            "planned_activation": [None, "2024-12-01"],
        }
    )
    model = EnrollmentModel(pauses=[("2025-05-01", "2025-06-30")], p_never=(1, 1e6), seed=1)
    fc = model.fit(counts=counts, sites=sites, as_of="2024-12-31").forecast(12)
    enrolled = fc["enrolled"].to_series().unstack("month")
    paused = [c for c in enrolled.columns if c.month in (5, 6)]
    assert enrolled[paused].to_numpy().sum() == 0
    assert enrolled.iloc[:, 7:].to_numpy().mean() > 0


def test_sites_needed_evaluates_enrollment_at_by_itself():
    # enrollment is evaluated at ``by`` itself, not at the end of its month: with no extra
    # site sites_needed agrees with probability_by, also for ``by`` on the first of a month
    model = fakes.enrollment_model(target=100, rate_per_month=4.0, as_of="2026-12-31")
    model.forecast(until="2028-12-31")
    for by in ("2027-06-01", "2027-07-01", "2027-08-01", "2027-09-01", "2027-09-15"):
        p = model.probability_by(by)
        for level in (0.2, 0.5, 0.8):
            assert (model.sites_needed(by, probability=level) == 0) == (p >= level), (by, level)


@pytest.mark.slow
def test_new_sites_use_their_own_country_rate():
    # a pending site in the fast country draws that country's rate, not the median of both
    rng = np.random.default_rng(3)
    start, as_of = pd.Timestamp("2024-01-01"), pd.Timestamp("2024-12-31")
    rows, table = [], []
    for s in range(24):
        country, rate = ("US", 0.06) if s % 2 == 0 else ("DE", 0.006)
        days = pd.date_range(start, as_of, freq="D")
        rows.append(pd.DataFrame({"site": f"S{s}", "date": days, "enrolled": 0}))
        rows[-1]["enrolled"] = rng.poisson(rng.gamma(4.0, rate / 4.0), len(days))
        table.append({"site": f"S{s}", "country": country, "activated_on": start})
    counts = pd.concat(rows, ignore_index=True)
    for row in table:
        row["planned_activation"] = row["activated_on"]  # opened on plan: short delays
    open_sites = pd.DataFrame(table)
    pending = pd.DataFrame(
        {"site": ["N"], "country": ["US"], "planned_activation": [as_of + pd.Timedelta(days=1)]}
    )
    added, _ = pending_contribution(
        pd.concat([open_sites, pending], ignore_index=True),
        open_sites,
        counts,
        as_of,
        p_never=(1, 1e6),
    )
    us = counts[counts["site"].isin([f"S{s}" for s in range(0, 24, 2)])]
    us_rate = us["enrolled"].sum() / (12 * 366) * DAYS_PER_MONTH  # per month
    assert added[3:].mean() == pytest.approx(us_rate, rel=0.25)  # not the median of both


def test_closed_on_is_the_first_day_without_recruitment_in_fit_and_forecast():
    # closed_on is the first day without recruitment in the forecast as in the fit
    counts = one_site_counts("2024-01-01", "2024-12-31", 3660, seed=4)  # 10 a day
    sites = pd.DataFrame(
        {"site": ["A"], "activated_on": ["2024-01-01"], "closed_on": ["2025-01-11"]}
    )
    model = EnrollmentModel(draws=2000, chains=1, seed=1).fit(
        counts=counts, sites=sites, as_of="2024-12-31"
    )
    january = model.forecast(3)["enrolled"].values[:, 0]
    rate = (1 + 3660) / (10 + 366)  # posterior mean a day: Gamma(1 + K, 10 + E)
    assert january.mean() == pytest.approx(10 * rate, rel=0.015)  # 1-10 January, not 11 days
    assert model.forecast(3)["enrolled"].values[:, 1:].sum() == 0


def test_p_never_learns_that_a_long_overdue_site_is_unlikely_to_open():
    # a site a year past its plan, while the others opened within a month, almost surely
    # never opens: p_never learns from it (prior Beta(1, 9), 90% odds of opening)
    counts = one_site_counts("2024-01-31", "2024-12-31", 170, seed=5)
    open_site = pd.DataFrame(
        {"site": ["A"], "planned_activation": ["2024-01-01"], "activated_on": ["2024-01-31"]}
    )
    overdue = pd.DataFrame({"site": ["B"], "planned_activation": ["2023-12-31"]})
    added, base = pending_contribution(
        pd.concat([open_site, overdue], ignore_index=True), open_site, counts, "2024-12-31"
    )
    assert added.sum() < 0.02 * base.sum()


def test_bad_model_inputs():
    # errors name the argument, before any work
    with pytest.raises(InputError, match="target"):
        EnrollmentModel(target=-5)
    with pytest.raises(InputError, match="target"):
        EnrollmentModel(target=2.5)
    with pytest.raises(InputError, match="patients: no rows"):
        EnrollmentModel(target=5).fit(
            pd.DataFrame(columns=["site", "enrolled_on"]), as_of="2026-01-01"
        )
    with pytest.raises(InputError, match="counts: no rows"):
        EnrollmentModel(target=5).fit(
            counts=pd.DataFrame(columns=["site", "date", "enrolled"]), as_of="2026-01-01"
        )
    # open sites that have enrolled nobody yet are data, not an error
    model = EnrollmentModel(target=5, draws=200, chains=1).fit(
        pd.DataFrame(columns=["site", "enrolled_on"]),
        pd.DataFrame({"site": ["A"], "activated_on": ["2025-06-01"]}),
        as_of="2026-01-01",
    )
    assert model.forecast(6)["enrolled"].values.sum() >= 0


def test_a_target_reached_in_the_data_is_dated_from_the_data():
    # a trial already at its target is dated from its data, not from as_of (4 patients a
    # month from January: the 20th by the end of May)
    days = pd.date_range("2026-01-01", "2026-11-30")
    enrolled = np.zeros(len(days), int)
    enrolled[(days.month <= 6) & (days.day == 10)] = [4, 4, 4, 4, 4, 4]  # 4 a month Jan-Jun
    counts = pd.DataFrame({"site": "S1", "date": days, "enrolled": enrolled})
    model = EnrollmentModel(target=20, draws=50, chains=1).fit(counts=counts, as_of="2026-11-30")
    model.forecast(6)
    done = pd.DatetimeIndex(model.time_to_target().values)
    # 16 by the end of April, 20 at the end of May (4 patients spread over May's 31 days)
    assert (done == pd.Timestamp("2026-06-01")).all()


def test_day_first_dates_are_refused_not_scrambled():
    # dates are ISO only: a day-first "05/03/2026" is an error naming the row, never 3 May
    patients = pd.DataFrame({"site": ["S1", "S1"], "enrolled_on": ["2026-03-01", "05/03/2026"]})
    with pytest.raises(InputError, match="row 3: enrolled_on '05/03/2026' is not a date written"):
        EnrollmentModel(target=5).fit(patients, as_of="2026-11-30")


def test_a_fit_short_of_the_diagnostic_margin_samples_twice_the_draws():
    """2 chains of 100 draws cannot reach a bulk ESS of TOP_UP_ESS (500): the fit samples again
    with 200 draws a chain, and its diagnostics are those of the second sample."""
    from forecast.enrollment.model import TOP_UP_ESS

    patients, sites, as_of = simulate_trial()
    model = EnrollmentModel(target=400, draws=100, tune=300, seed=2)
    model.fit(patients, sites, as_of=as_of)
    assert model.idata.posterior.sizes["draw"] == 200
    assert model.idata.posterior.sizes["chain"] == 2
    assert model.diagnostics()["draws"] == 400
    assert TOP_UP_ESS > 400  # a margin over the run's limit, not the limit itself
