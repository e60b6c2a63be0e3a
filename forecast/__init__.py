"""Demand side of pmcap: Bayesian models whose posterior draws follow the demand contract.

The demand contract (dims, units, checks) is defined in :mod:`capacity.demand`. Models follow
one pattern: configure in ``__init__``, ``fit(data) -> self`` (posterior in ``.idata``), then
``simulate``/``forecast`` returning xarray draws, plus ``summary()``/``bands()`` tidy frames.
"""

from forecast.enrollment import EnrollmentModel
from forecast.phase import PHASES, STEPS, PhaseTransitionModel
from forecast.portfolio import Portfolio, PortfolioDraws, Program
from forecast.uptake import UptakeModel

__all__ = [
    "PHASES",
    "STEPS",
    "EnrollmentModel",
    "PhaseTransitionModel",
    "Portfolio",
    "PortfolioDraws",
    "Program",
    "UptakeModel",
]
