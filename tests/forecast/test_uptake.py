"""UptakeModel: Bass curve maths, the sales loader, and forecasts from a small fit."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import integrate

from forecast.errors import InputError
from forecast.uptake import (
    Product,
    UptakeModel,
    analog_observations,
    analog_products,
    bass_cdf,
    bass_integral,
    months_since_origin,
    observations_from_sales,
    period_patients,
    yearly_to_monthly,
)
from tests.forecast import fakes


def test_bass_cdf_closed_form_and_integral():
    p, q = 0.03, 0.4
    t = np.linspace(0, 30, 61)
    expected = (1 - np.exp(-(p + q) * t)) / (1 + q / p * np.exp(-(p + q) * t))
    np.testing.assert_allclose(bass_cdf(t, p, q), expected, rtol=1e-12)
    assert bass_cdf(-1.0, p, q) == 0 and bass_integral(-1.0, p, q) == 0
    for T in (0.5, 3.0, 17.0):
        numeric, _ = integrate.quad(lambda u: bass_cdf(u, p, q), 0, T)
        assert bass_integral(T, p, q) == pytest.approx(numeric, rel=1e-10)


def test_monthly_increments_add_up_to_the_quarter_exactly():
    p, q = yearly_to_monthly(0.3, 0.6)
    months = [period_patients(m, m + 1, 1.4, 50.0, 0.2, p, q, backlog=30) for m in range(3, 6)]
    quarter = period_patients(3, 6, 1.4, 50.0, 0.2, p, q, backlog=30)
    assert sum(months) == pytest.approx(quarter, rel=1e-13)


def test_yearly_to_monthly_is_exact():
    p_m, q_m = yearly_to_monthly(0.3, 0.6)
    t_years = np.array([0.25, 1.0, 2.5, 7.0])
    np.testing.assert_allclose(
        bass_cdf(12 * t_years, p_m, q_m), bass_cdf(t_years, 0.3, 0.6), rtol=1e-14
    )


def test_analog_loader_uses_each_number_once():
    obs = analog_observations()
    yescarta_2018 = obs[
        (obs["products"] == ("Yescarta",))
        & (obs["first_start"] >= "2018-01-01")
        & (obs["last_end"] <= "2019-01-01")
    ]
    # FY2018 = 264 = the four reported quarters: the annual figure adds no observation
    assert yescarta_2018["sales_musd"].sum() == pytest.approx(40 + 68 + 75 + 81)
    fy2019 = obs[(obs["products"] == ("Yescarta",)) & (obs["first_start"] == "2019-01-01")]
    assert fy2019["sales_musd"].tolist() == [456 - 118] and len(fy2019["starts"].iloc[0]) == 3
    lower = obs[obs["lower_bound"]]
    assert lower["products"].tolist() == [("Breyanzi",)]  # FY2024 "> 700" less its quarters
    assert lower["sales_musd"].iloc[0] == pytest.approx(700 - 153 - 224)
    combined = obs[obs["products"].apply(len) == 2]
    assert pd.Timestamp("2021-07-01") not in set(combined["first_start"])  # both reported


def sales(rows):
    return pd.DataFrame(rows, columns=["product", "period", "region", "net_sales_musd"])


PRICES = pd.DataFrame({"product": ["A"], "date": ["2020-01-01"], "us_list_price_usd": [400000]})
PRODUCTS = [Product("A", pd.Timestamp("2020-01-01"))]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([["A", "2020Q1", "WW", "-5"]], "sales: row 2: net sales must be >= 0"),
        ([["B", "2020Q1", "WW", "5"]], "sales: row 2: product 'B' has no launch date"),
        ([["A", "2019Q4", "WW", "5"]], "prices: no price for A"),
        ([["A", "20Q1", "WW", "5"]], "period '20Q1' not understood"),
    ],
)
def test_bad_sales_input(rows, message):
    products = PRODUCTS if rows[0][1] != "2019Q4" else [Product("A", pd.Timestamp("2019-10-01"))]
    with pytest.raises(InputError, match=message):
        observations_from_sales(sales(rows), PRICES, products)


def test_patients_are_sales_over_price():
    obs = observations_from_sales(sales([["A", "2020Q2", "WW", "8"]]), PRICES, PRODUCTS)
    assert obs["patients"].iloc[0] == pytest.approx(20.0)


@pytest.fixture(scope="module")
def fitted():
    return UptakeModel(draws=200, tune=300, seed=2).fit()


@pytest.mark.slow
def test_fit_and_analog_forecast(fitted):
    assert fitted.diagnostics()["r_hat_max"] < 1.1
    fc = fitted.forecast("Yescarta", horizon_months=24, start="2024-01-01", draws=1000)
    # 2024 observed WW patients (sales / US price): about 1,000-1,100 a quarter
    quarterly = fc.isel(month=slice(0, 12)).values.reshape(1000, 4, 3).sum(axis=2)
    assert 700 < np.median(quarterly) < 1500
    summary = fitted.summary()
    assert set(summary["product"]) == {p.name for p in analog_products()}


@pytest.mark.slow
def test_new_launch_forecast_is_zero_before_launch_and_uses_the_population(fitted):
    launch = pd.to_datetime(["2028-03-01"] * 500 + [pd.NaT] * 500)
    fc = fitted.forecast(
        "NEW-CAR-T",
        launch=launch,
        horizon_months=48,
        draws=1000,
        start="2027-01-01",
        eligible_per_year=2000,
        peak_share=(0.1, 0.3),
    )
    months = pd.DatetimeIndex(fc["month"].values)
    assert fc.values[:, months < "2028-03-01"].sum() == 0
    assert fc.values[500:].sum() == 0  # never launched
    late = fc.values[:500, -12:].mean()
    assert 0 < late < 2000 / 12 * 0.3 * 1.5  # below the eligible flow x peak share (plus noise)
    with pytest.raises(InputError, match="give eligible_per_year and peak_share"):
        fitted.forecast("NEW-CAR-T", launch="2028-01-01")


@pytest.mark.slow
def test_early_observations_update_a_new_product(fitted):
    kwargs = dict(
        launch="2028-01-01",
        horizon_months=36,
        draws=4000,
        start="2028-01-01",
        eligible_per_year=3000,
        peak_share=(0.05, 0.4),
        seed=3,
    )
    prior = fitted.forecast("NEW", **kwargs)
    early = pd.DataFrame(
        {
            "products": [("NEW",)],
            "starts": [(pd.Timestamp("2028-04-01"),)],
            "ends": [(pd.Timestamp("2028-07-01"),)],
            "patients": [200.0],
            "lower_bound": [False],
        }
    )
    updated = fitted.forecast("NEW", condition_on=early, **kwargs)
    q2 = lambda fc: fc.values[:, 3:6].sum(axis=1)  # noqa: E731
    assert abs(np.median(q2(updated)) - 200) < abs(np.median(q2(prior)) - 200)
    near = lambda x: np.mean(np.abs(x - 200) < 60)  # noqa: E731
    assert near(q2(updated)) > near(q2(prior))


@pytest.mark.slow
def test_save_and_load(tmp_path, fitted):
    path = fitted.save(tmp_path / "uptake.nc")
    loaded = UptakeModel.load(path)
    assert loaded.config() == fitted.config()
    a = fitted.forecast("Kymriah", horizon_months=12, start="2025-01-01", draws=200, seed=1)
    b = loaded.forecast("Kymriah", horizon_months=12, start="2025-01-01", draws=200, seed=1)
    np.testing.assert_array_equal(a.values, b.values)


# --------------------------------------------------------------------------------------------
# conditioning and noise on a hand-written posterior (fixed p, q; no sampler)
# --------------------------------------------------------------------------------------------
LAUNCH = pd.Timestamp("2028-01-01")


def expected_patients(start, end, share, eligible, backlog, p_year=0.3, q_year=0.6):
    t0, t1, launch = months_since_origin([start, end, LAUNCH])
    p, q = yearly_to_monthly(p_year, q_year)
    return period_patients(t0, t1, launch, eligible / 12, share, p, q, backlog)


def quarters_observed(n, share, eligible, backlog, rng=None, phi=None):
    """The first ``n`` quarters after launch, exact expected values (or NB draws)."""
    edges = pd.date_range(LAUNCH, periods=n + 1, freq="QS")
    rows = []
    for s, e in zip(edges[:-1], edges[1:], strict=True):
        mean = expected_patients(s, e, share, eligible, backlog)
        y = round(mean) if rng is None else rng.negative_binomial(phi, phi / (phi + mean))
        rows.append(
            {
                "products": ("NEW",),
                "starts": (s,),
                "ends": (e,),
                "patients": float(y),
                "lower_bound": False,
            }
        )
    return pd.DataFrame(rows)


def test_conditioning_weights_include_the_backlog():
    # the forecast adds backlog x dF: the importance weights compare with the same means
    model = fakes.uptake_model(p_year=0.3, q_year=0.6, phi=1e6, draws=500)
    share, eligible, backlog = 0.5, 2400, 300
    early = quarters_observed(2, share, eligible, backlog)
    fc = model.forecast(
        "NEW",
        launch=LAUNCH,
        horizon_months=36,
        draws=4000,
        start=LAUNCH,
        eligible_per_year=eligible,
        peak_share=(0.1, 0.9),
        backlog=backlog,
        condition_on=early,
        seed=1,
    )
    assert float(fc["peak_share"].mean()) == pytest.approx(share, abs=0.04)
    first_half = fc.values[:, :6].sum(axis=1).mean()
    assert first_half == pytest.approx(early["patients"].sum(), rel=0.05)
    month24 = expected_patients(
        pd.Timestamp("2029-12-01"), pd.Timestamp("2030-01-01"), share, eligible, backlog
    )
    assert fc.values[:, 23].mean() == pytest.approx(month24, rel=0.08)


def test_degenerate_importance_weights_warn():
    # eight informative quarters leave few effective draws: an ImportanceWarning says so
    model = fakes.uptake_model(p_year=0.3, q_year=0.6, phi=300.0, draws=500)
    kwargs = dict(
        launch=LAUNCH,
        horizon_months=36,
        draws=2000,
        start=LAUNCH,
        eligible_per_year=3000,
        peak_share=(0.02, 0.9),
        seed=3,
    )
    rng = np.random.default_rng(0)
    many = quarters_observed(8, 0.25, 3000, 0.0, rng=rng, phi=300.0)
    with pytest.warns(UserWarning, match="importance ESS"):
        fc = model.forecast("NEW", condition_on=many, **kwargs)
    assert fc.attrs["importance_ess"] < 0.1 * 2000
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fc = model.forecast("NEW", condition_on=many.iloc[:1], **kwargs)
    assert fc.attrs["importance_ess"] >= 0.1 * 2000


def test_condition_on_is_an_observation_frame():
    model = fakes.uptake_model()
    kwargs = dict(launch=LAUNCH, draws=100, eligible_per_year=1000, peak_share=0.2)
    raw = sales([["NEW", "2028Q2", "WW", "8"]]).rename(columns={"period": "quarter"})
    with pytest.raises(InputError, match="condition_on: .*observations_from_sales"):
        model.forecast("NEW", condition_on=raw, **kwargs)
    other = quarters_observed(1, 0.2, 1000, 0.0).assign(products=[("OTHER",)])
    with pytest.raises(InputError, match="condition_on: row 0: products"):
        model.forecast("NEW", condition_on=other, **kwargs)
    # the bundled quarterly CSV names its period column ``quarter``: accepted
    prices = PRICES.assign(product="NEW")
    obs = observations_from_sales(raw, prices, [Product("NEW", pd.Timestamp("2028-01-01"))])
    fc = model.forecast("NEW", condition_on=obs, **kwargs)
    assert "importance_ess" in fc.attrs


def test_fit_refuses_bad_observations_before_sampling(monkeypatch):
    # a negative count is an InputError before the model is built, not a sampler failure
    def no_work(*args, **kwargs):
        raise AssertionError("sampling started")

    monkeypatch.setattr(UptakeModel, "build_model", no_work)
    obs = quarters_observed(2, 0.2, 1000, 0.0)
    products = [Product("NEW", LAUNCH)]
    bad = obs.assign(patients=[10.0, -3.0])
    with pytest.raises(InputError, match="observations: row 1: patients must be >= 0"):
        UptakeModel().fit(bad, products)
    with pytest.raises(InputError, match="observations: missing column 'patients'"):
        UptakeModel().fit(obs.drop(columns="patients"), products)
    with pytest.raises(InputError, match="observations: row 0: product 'OTHER'"):
        UptakeModel().fit(obs.assign(products=[("OTHER",), ("NEW",)]), products)


def test_sales_with_period_and_quarter_columns_together():
    rows = pd.DataFrame(
        {
            "product": ["A", "A"],
            "quarter": ["2020Q2", None],
            "period": [None, "FY2021"],
            "region": "WW",
            "net_sales_musd": ["8", "40"],
        }
    )
    obs = observations_from_sales(rows, PRICES, PRODUCTS)
    assert obs["patients"].tolist() == pytest.approx([20.0, 100.0])
    with pytest.raises(InputError, match="sales: missing column 'period' \\(or 'quarter'\\)"):
        observations_from_sales(rows.drop(columns=["quarter", "period"]), PRICES, PRODUCTS)


def test_with_product_refuses_bad_inputs_before_fitting():
    model = fakes.uptake_model()
    model.observations_ = quarters_observed(1, 0.2, 1000, 0.0).iloc[:0]
    with pytest.raises(InputError, match="product: expected a Product"):
        model.with_product("NEW", quarters_observed(2, 0.2, 1000, 0.0))
    with pytest.raises(InputError, match="observations: row 0: products"):
        model.with_product(
            Product("NEW", LAUNCH),
            quarters_observed(2, 0.2, 1000, 0.0).assign(products=[("X",), ("NEW",)]),
        )
