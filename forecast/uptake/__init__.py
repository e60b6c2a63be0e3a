"""Post-approval uptake: Bass adoption of a flow of eligible patients, pooled across analogs.

- :mod:`forecast.uptake.curves`: the Bass curve maths (NumPy, one PyTensor twin);
- :mod:`forecast.uptake.data`: products, and sales turned into patient observations;
- :mod:`forecast.uptake.model`: the pooled PyMC model and :class:`UptakeModel`;
- :mod:`forecast.uptake.simulate`: the forecast's noise and conditioning on early sales;
- :mod:`forecast.uptake.plot`: plots of a fitted model.
"""

from forecast.uptake.curves import (
    bass_cdf,
    bass_integral,
    mean_patients,
    months_since_origin,
    period_patients,
    time_to_peak_years,
    yearly_to_monthly,
)
from forecast.uptake.data import (
    Product,
    analog_observations,
    analog_products,
    observations_from_sales,
    period_bounds,
)
from forecast.uptake.model import UptakeModel, build_model, observation_means
from forecast.uptake.simulate import ImportanceWarning, observation_loglik

__all__ = [
    "ImportanceWarning",
    "Product",
    "UptakeModel",
    "analog_observations",
    "analog_products",
    "bass_cdf",
    "bass_integral",
    "build_model",
    "mean_patients",
    "months_since_origin",
    "observation_loglik",
    "observation_means",
    "observations_from_sales",
    "period_bounds",
    "period_patients",
    "time_to_peak_years",
    "yearly_to_monthly",
]
