"""Demand side of pmcap: Bayesian models whose posterior draws follow the demand contract.

The enrollment, phase-transition and uptake models arrive with their own issues; the demand
contract they must produce is defined and checked in :mod:`capacity.demand`.
"""
