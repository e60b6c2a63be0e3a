"""Probability and timing of approval: hierarchical phase-transition model plus phase durations.

- :mod:`forecast.phase.data`: benchmark transition counts and phase-duration tables;
- :mod:`forecast.phase.model`: the hierarchical binomial model and
  :class:`PhaseTransitionModel`;
- :mod:`forecast.phase.durations`: phase durations, a program's speed and the FDA review;
- :mod:`forecast.phase.simulate`: a program's path through the phases, approval bands;
- :mod:`forecast.phase.plot`: plots of a simulation.
"""

from forecast.phase.data import PHASES, STEPS, duration_groups, transition_counts
from forecast.phase.durations import (
    CLINICAL,
    FILING,
    MODALITY_SD,
    PRIORITY_REVIEW,
    REVIEW_DELAY_SHARE,
    REVIEW_TYPES,
    DurationPriors,
    DurationSpec,
    ReviewSpec,
    review_spec,
)
from forecast.phase.model import PhaseTransitionModel, build_model

__all__ = [
    "CLINICAL",
    "FILING",
    "MODALITY_SD",
    "PHASES",
    "PRIORITY_REVIEW",
    "REVIEW_DELAY_SHARE",
    "REVIEW_TYPES",
    "STEPS",
    "DurationPriors",
    "DurationSpec",
    "PhaseTransitionModel",
    "ReviewSpec",
    "build_model",
    "duration_groups",
    "review_spec",
    "transition_counts",
]
