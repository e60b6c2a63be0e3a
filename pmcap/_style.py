"""Charts in matplotlib's default style, whatever the caller's settings."""

from __future__ import annotations

import functools


def default_style(fn):
    """Draw the chart with matplotlib's default style whatever the caller's rcParams (a
    notebook's larger fonts or a seaborn theme would clip the fixed layouts and change the
    pictures); the caller's settings are back afterwards."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import matplotlib.style

        with matplotlib.style.context("default"):
            return fn(*args, **kwargs)

    return wrapper
