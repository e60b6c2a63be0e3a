"""The scenario models' building blocks: strict tables, numbers that refuse text, uncertain
numbers and the bounds of their draws.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AllowInfNan, BaseModel, BeforeValidator, ConfigDict

from capacity.distributions import Param
from capacity.errors import InputError

PHASE = Literal["phase1", "phase2", "phase3"]


def _not_text(expected: str) -> BeforeValidator:
    """Refuse a number written as text (``target = "120"``) or as a boolean (``suites =
    true``), which pydantic's lax mode reads as the number (1); everything else as lax mode
    has it (an int where a float is expected)."""

    def check(value: Any) -> Any:
        if isinstance(value, str | bytes | bool):
            raise ValueError(f"expected {expected}, got {value!r}")
        return value

    return BeforeValidator(check)


Int = Annotated[int, _not_text("a whole number")]
# a finite number: ``operator_fte = inf`` or ``nan`` is refused where it is read, naming the key
Float = Annotated[float, _not_text("a number"), AllowInfNan(False)]
# the most draws a run takes, in the scenario file and on the command line alike
MAX_DRAWS = 1_000_000


def check_draws_option(draws: int | None) -> None:
    """``--draws``: a whole number in [20, MAX_DRAWS], as ``run.draws`` (InputError)."""
    if draws is not None and not 20 <= draws <= MAX_DRAWS:
        raise InputError(f"--draws: expected a whole number in [20, {MAX_DRAWS:,}], got {draws}")


def _param(value: Any) -> Any:
    """Validate an uncertain number (kept as written, so the scenario round-trips)."""
    try:
        Param.parse(value)
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    return value


def _within(value: Any, low: float, high: float, what: str) -> None:
    """An uncertain number whose every draw lies in [low, high] (ValueError otherwise)."""
    if value is None:
        return
    lo, hi = Param.parse(value).support
    if lo < low or hi > high:
        span = f"in [{low:g}, {high:g}]" if np.isfinite(high) else f">= {low:g}"
        raise ValueError(f"{what} must be {span} in every draw; {value!r} allows [{lo:g}, {hi:g}]")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)
