"""Builders of the portfolios the tests simulate: programs and a Portfolio holding them.

Each builder fills in only the stage and the keywords every program of that stage names the
same way in these tests (a pipeline program's ``group`` is ``"CAR-T"``); every other value
is the test's own, so a test reads as the programs it simulates.
"""

from __future__ import annotations

from forecast import Portfolio, Program

START = "2027-01-01"  # the horizon start of most tests


def portfolio(*programs: Program, start=START, **kw) -> Portfolio:
    """A :class:`Portfolio` from ``start`` holding ``programs`` (added in this order); ``kw``
    as for :class:`Portfolio` (``horizon_months``, ``draws``, ``seed``, ``as_of``, models)."""
    return Portfolio(programs, start=start, **kw)


def pipeline(phase: str, phase_start: str, *, name="PIPE", group="CAR-T", **kw) -> Program:
    """A pipeline program of ``group`` in ``phase`` since ``phase_start``."""
    return Program(name, "pipeline", group=group, phase=phase, phase_start=phase_start, **kw)


def trial(name: str, enrollment, **kw) -> Program:
    """A trial program whose enrollment is the fitted model ``enrollment``."""
    return Program(name, "trial", enrollment=enrollment, **kw)


def launched(name: str, launch: str, **kw) -> Program:
    """A product launched on ``launch``."""
    return Program(name, "launched", launch=launch, **kw)
