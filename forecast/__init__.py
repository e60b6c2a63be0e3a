"""Demand side of pmcap: Bayesian models whose posterior draws follow the demand contract.

The demand contract (dims, units, checks) is defined in :mod:`capacity.demand`. Models follow
one pattern: configure in ``__init__``, ``fit(data) -> self`` (posterior in ``.idata``), then
``simulate``/``forecast`` returning xarray draws, plus ``summary()``/``bands()`` tidy frames.
"""

from forecast.enrollment.model import EnrollmentModel
from forecast.phase.data import PHASES, STEPS
from forecast.phase.model import PhaseTransitionModel
from forecast.portfolio import Portfolio, PortfolioDraws
from forecast.program import Program
from forecast.sampling import SamplerConfig
from forecast.uptake.model import UptakeModel

__all__ = [
    "PHASES",
    "STEPS",
    "EnrollmentModel",
    "PhaseTransitionModel",
    "Portfolio",
    "PortfolioDraws",
    "Program",
    "SamplerConfig",
    "UptakeModel",
]
