"""UptakeModel: Bass curve maths, the sales loader, and forecasts from a small fit."""

from __future__ import annotations

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
    observations_from_sales,
    period_patients,
    yearly_to_monthly,
)


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


def test_fit_and_analog_forecast(fitted):
    assert fitted.diagnostics()["r_hat_max"] < 1.1
    fc = fitted.forecast("Yescarta", horizon_months=24, start="2024-01-01", draws=1000)
    # 2024 observed WW patients (sales / US price): about 1,000-1,100 a quarter
    quarterly = fc.isel(month=slice(0, 12)).values.reshape(1000, 4, 3).sum(axis=2)
    assert 700 < np.median(quarterly) < 1500
    summary = fitted.summary()
    assert set(summary["product"]) == {p.name for p in analog_products()}


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


def test_save_and_load(tmp_path, fitted):
    path = fitted.save(tmp_path / "uptake.nc")
    loaded = UptakeModel.load(path)
    assert loaded.config() == fitted.config()
    a = fitted.forecast("Kymriah", horizon_months=12, start="2025-01-01", draws=200, seed=1)
    b = loaded.forecast("Kymriah", horizon_months=12, start="2025-01-01", draws=200, seed=1)
    np.testing.assert_array_equal(a.values, b.values)
