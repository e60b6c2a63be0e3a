"""Trial enrollment: hierarchical Poisson-gamma recruitment with site activation and dropout.

- :mod:`forecast.enrollment.data`: an EDC export or counts on a site x month grid;
- :mod:`forecast.enrollment.model`: the PyMC model and :class:`EnrollmentModel`;
- :mod:`forecast.enrollment.density`: the same density with its gradient, sampled with nutpie;
- :mod:`forecast.enrollment.simulate`: site rates, activation and exposure of the forecast;
- :mod:`forecast.enrollment.plot`: plots of a forecast.
"""

from forecast.enrollment.data import EnrollmentData, enrollment_data
from forecast.enrollment.density import EnrollmentDensity, sample_nutpie
from forecast.enrollment.model import (
    EnrollmentModel,
    build_model,
    negative_multinomial_logp,
    planning_prior,
)

__all__ = [
    "EnrollmentData",
    "EnrollmentDensity",
    "EnrollmentModel",
    "build_model",
    "enrollment_data",
    "negative_multinomial_logp",
    "planning_prior",
    "sample_nutpie",
]
