"""Normal and binomial functions on :mod:`scipy.special`, computed as :mod:`scipy.stats` does.

Importing ``scipy.stats`` builds every distribution object, which is slow and which every
process running pmcap (``pmcap run``, each worker of a sweep) would pay; ``scipy.special`` alone
is much cheaper. These are the formulas ``scipy.stats.norm`` and ``binom`` evaluate
(``tests/forecast/test_dist.py`` checks them against it bit for bit).
"""

from __future__ import annotations

import numpy as np
from scipy import special

__all__ = [
    "norm_cdf",
    "norm_ppf",
    "norm_sf",
    "norm_isf",
    "norm_logsf",
    "norm_logpdf",
    "binom_logpmf",
]

_LOG_SQRT_2PI = np.log(np.sqrt(2 * np.pi))


def norm_cdf(x):
    return special.ndtr(x)


def norm_ppf(q):
    return special.ndtri(q)


def norm_sf(x):
    return special.ndtr(-np.asarray(x, float))


def norm_isf(q):
    return -special.ndtri(q)


def norm_logsf(x):
    return special.log_ndtr(-np.asarray(x, float))


def norm_logpdf(x, loc=0.0, scale=1.0):
    z = (np.asarray(x, float) - loc) / scale
    return -(z**2) / 2.0 - _LOG_SQRT_2PI - np.log(scale)


def binom_logpmf(k, n, p):
    k = np.floor(k)
    combiln = special.gammaln(n + 1) - (special.gammaln(k + 1) + special.gammaln(n - k + 1))
    return combiln + special.xlogy(k, p) + special.xlog1py(n - k, -p)
