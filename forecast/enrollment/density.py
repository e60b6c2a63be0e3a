"""The enrollment model's posterior density and its gradient in NumPy, sampled with nutpie.

The density is the one :func:`forecast.enrollment.model.build_model` writes in PyMC (site rates
marginalised: negative multinomial likelihood; same priors), on the unconstrained space PyMC
samples: ``log alpha``, ``log_mu`` (or ``log mu`` under a planning prior), ``log
sigma_country`` and ``z_country`` (more than one country), ``log sigma_calendar`` and
``z_calendar`` (calendar effect), with the log-Jacobians of the log transforms. With one open
site and a calendar effect only the calendar parameters are free (alpha and beta fixed).

Writing the gradient by hand (chain rule below) lets nutpie's NUTS (Rust, Stan's
adaptation; Seyboldt et al.) sample it with no PyTensor compilation and without importing
PyMC: the compilation was most of the cost of a first fit. ``tests/forecast/
test_enrollment_density.py`` checks the density and gradient against PyMC's compiled
``logp``/``dlogp`` of the same model and the posterior against PyMC's NUTS.

Chain rule (``A`` = alpha, ``l_s = log A - log mu_c(s)`` = log beta_s, ``B_s = e^l_s``,
``E_s = sum_t X_st eps_t``, ``D_s = B_s + E_s``, ``K_s`` site totals, ``k_t`` month totals)::

    L      = sum_s [lgamma(A + K_s) - lgamma(A) + A l_s - (A + K_s) log D_s] + sum_t k_t log eps_t
    dL/dA  = sum_s [digamma(A + K_s) - digamma(A) + l_s - log D_s]      (l_s held fixed)
    dL/dl_s = A - (A + K_s) B_s / D_s = g_s

evaluated as ``A l_s - (A + K_s) log D_s = -A log1p(E_s / B_s) - K_s log D_s`` and the gamma
ratios as sums over the K_s patients, so that a large alpha (a nearly Poisson population,
where the two lgammas and ``A l_s`` and ``A log D_s`` are huge and nearly cancel) is exact:
without this, NUTS found a spurious mode at alpha ~ 1e18.
    dL/dlog eps_t = eps_t sum_s X_st (-(A + K_s) / D_s) + k_t

References
----------
Seyboldt, A. et al. nutpie: a fast NUTS sampler for PyMC and Stan models (software,
github.com/pymc-devs/nutpie).

Hoffman, M. D. and Gelman, A. (2014). The No-U-Turn sampler. JMLR 15, 1593-1623.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numba
import numpy as np

from forecast.enrollment.simulate import ALPHA_PRIOR, planning_prior

__all__ = ["EnrollmentDensity", "sample_nutpie"]

LOG_MU_PRIOR = (np.log(0.01), 2.0)  # Normal prior of log mu without a planning prior
SIGMA_SCALE = 0.5  # HalfNormal scale of sigma_country and sigma_calendar


class EnrollmentDensity:
    """Log posterior density (up to a constant) and gradient of the enrollment model.

    Parameters as :func:`forecast.enrollment.model.build_model`: ``counts``, ``exposure``
    (open site, month), ``countries`` per open site, ``calendar_effect``, ``planning`` and
    ``single_site_prior``. :attr:`names` and :attr:`slices` lay the free parameters out in
    the unconstrained vector; :meth:`expand` gives the posterior variables PyMC records.
    """

    def __init__(
        self,
        counts: np.ndarray,
        exposure: np.ndarray,
        countries: Sequence[str],
        *,
        calendar_effect: bool = False,
        planning: tuple[float, float, float] | None = None,
        single_site_prior: tuple[float, float] = (1.0, 10.0),
    ):
        self.counts = np.asarray(counts, dtype=float)
        self.exposure = np.asarray(exposure, dtype=float)
        n_sites, n_months = self.counts.shape
        self.country_names = sorted(set(countries))
        self.country_idx = np.array([self.country_names.index(c) for c in countries])
        self.calendar = bool(calendar_effect)
        self.single = n_sites == 1
        self.planning = planning
        self.site_totals = self.counts.sum(axis=1)
        self.month_totals = self.counts.sum(axis=0)
        self.n_months = n_months
        if self.single:
            a, b = planning_prior(*planning) if planning is not None else single_site_prior
            self.fixed = (float(a), float(b))
        else:
            self.fixed = None
            if planning is not None:
                a, b = planning_prior(*planning)
                self.mu_prior = (float(a), float(b) * n_sites)  # Gamma(shape, rate)
        sizes: list[tuple[str, int]] = []
        if not self.single:
            sizes += [("log_alpha", 1), ("log_mu", 1)]
            if len(self.country_names) > 1:
                sizes += [("log_sigma_country", 1), ("z_country", len(self.country_names))]
        if self.calendar:
            sizes += [("log_sigma_calendar", 1), ("z_calendar", n_months)]
        self.slices: dict[str, slice] = {}
        start = 0
        for name, size in sizes:
            self.slices[name] = slice(start, start + size)
            start += size
        self.ndim = start
        a, r = self.mu_prior if (planning is not None and not self.single) else (0.0, 0.0)
        fixed = self.fixed or (0.0, 0.0)
        self._args = (
            self.site_totals,
            self.month_totals,
            self.exposure,
            self.country_idx.astype(np.int64),
            len(self.country_names) if "z_country" in self.slices else 0,
            not self.single,
            planning is not None,
            a,
            r,
            self.calendar,
            fixed[0],
            fixed[1],
        )

    # --- the density -------------------------------------------------------------------
    def logp_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """(log density, gradient) at the unconstrained point ``x`` (:func:`_logp_grad`);
        -inf where it over- or underflows (far out in a tail: NUTS rejects the step and
        records a divergence)."""
        grad = np.empty(self.ndim)
        lp = _logp_grad(np.asarray(x, dtype=float), grad, *self._args)
        if not (np.isfinite(lp) and np.isfinite(grad).all()):
            return -np.inf, np.zeros(self.ndim)
        return lp, grad

    # --- what the posterior records --------------------------------------------------------
    def expand(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The posterior variables :func:`build_model` records, at the point ``x``."""
        sl = self.slices
        out: dict[str, np.ndarray] = {}
        if self.calendar:
            s_cal = float(np.exp(x[sl["log_sigma_calendar"]][0]))
            z_cal = np.array(x[sl["z_calendar"]], dtype=float)
            out["sigma_calendar"] = np.array(s_cal)
            out["z_calendar"] = z_cal
            out["eps"] = np.exp(s_cal * z_cal - 0.5 * s_cal**2)
        if not self.single:
            out["alpha"] = np.array(np.exp(x[sl["log_alpha"]][0]))
            log_mu = float(x[sl["log_mu"]][0])
            if self.planning is None:
                out["log_mu"] = np.array(log_mu)
            out["mu"] = np.array(np.exp(log_mu))
            if "z_country" in sl:
                s_c = float(np.exp(x[sl["log_sigma_country"]][0]))
                z_c = np.array(x[sl["z_country"]], dtype=float)
                out["sigma_country"] = np.array(s_c)
                out["z_country"] = z_c
                out["mu_country"] = np.exp(log_mu + s_c * z_c)
            else:
                out["mu_country"] = np.array([np.exp(log_mu)])
        return out

    def variables(self) -> tuple[list[str], list[tuple[int, ...]], dict[str, tuple[str, ...]]]:
        """Names, shapes and dims of :meth:`expand`'s variables."""
        dims = {
            "z_calendar": ("month",),
            "eps": ("month",),
            "z_country": ("country",),
            "mu_country": ("country",),
        }
        shapes = {
            "z_calendar": (self.n_months,),
            "eps": (self.n_months,),
            "z_country": (len(self.country_names),),
            "mu_country": (len(self.country_names),),
        }
        names = list(self.expand(self.initial_point()))
        return names, [shapes.get(n, ()) for n in names], {n: dims[n] for n in names if n in dims}

    def initial_point(self) -> np.ndarray:
        """PyMC's initial point: the priors' means (``alpha = exp(log 2 + 1/2)``, ``mu`` at
        the planning prior's mean, ``sigma`` at the HalfNormal scale) and locations (``log
        mu``, z = 0)."""
        x = np.zeros(self.ndim)
        sl = self.slices
        if not self.single:
            x[sl["log_alpha"]] = ALPHA_PRIOR[0] + 0.5 * ALPHA_PRIOR[1] ** 2
            if self.planning is not None:
                a, r = self.mu_prior
                x[sl["log_mu"]] = np.log(a / r)
            else:
                x[sl["log_mu"]] = LOG_MU_PRIOR[0]
            if "z_country" in sl:
                x[sl["log_sigma_country"]] = np.log(SIGMA_SCALE)
        if self.calendar:
            x[sl["log_sigma_calendar"]] = np.log(SIGMA_SCALE)
        return x


@numba.njit(cache=True)
def _digamma(x):
    """Digamma for x > 0: recurrence to x >= 10, then the asymptotic series (error < 1e-12)."""
    shift = 0.0
    while x < 10.0:
        shift -= 1.0 / x
        x += 1.0
    f = 1.0 / (x * x)
    series = f * (
        -1.0 / 12 + f * (1.0 / 120 + f * (-1.0 / 252 + f * (1.0 / 240 + f * (-1.0 / 132))))
    )
    return shift + math.log(x) - 0.5 / x + series


@numba.njit(cache=True, error_model="numpy")
def _gamma_ratio(a, k):
    """(lgamma(a + k) - lgamma(a), digamma(a + k) - digamma(a)) for a > 0, k >= 0: sums of
    log(a + j) and 1 / (a + j) over j < k for a whole k up to 10,000 (no cancellation
    between two large lgammas), the functions themselves otherwise."""
    n = int(k)
    if n == k and n <= 10_000:
        lg = 0.0
        dg = 0.0
        for j in range(n):
            lg += math.log(a + j)
            dg += 1.0 / (a + j)
        return lg, dg
    return math.lgamma(a + k) - math.lgamma(a), _digamma(a + k) - _digamma(a)


@numba.njit(cache=True, error_model="numpy")
def _logp_grad(
    x,
    grad,
    site_totals,
    month_totals,
    exposure,
    country_idx,
    n_country,
    hierarchical,
    planning,
    mu_shape,
    mu_rate,
    calendar,
    fixed_alpha,
    fixed_beta,
):
    """Log density (up to a constant) at ``x``; the gradient written to ``grad``.

    Layout of ``x``: hierarchical: ``log alpha, log mu[, log sigma_country, z_country
    (n_country)]``; then with ``calendar``: ``log sigma_calendar, z_calendar (month)``.
    """
    n_sites, n_months = exposure.shape
    for i in range(x.shape[0]):
        grad[i] = 0.0
    lp = 0.0
    site_exposure = np.zeros(n_sites)
    eps = np.ones(n_months)
    k = 0
    if hierarchical:
        k = 2 + (1 + n_country if n_country > 0 else 0)
    if calendar:
        s_cal = math.exp(x[k])
        for t in range(n_months):
            z = x[k + 1 + t]
            eps[t] = math.exp(s_cal * z - 0.5 * s_cal * s_cal)
            lp += -0.5 * z * z + month_totals[t] * (s_cal * z - 0.5 * s_cal * s_cal)
            grad[k + 1 + t] = -z
        lp += -0.5 * (s_cal / SIGMA_SCALE) ** 2 + x[k]
        grad[k] = 1.0 - (s_cal / SIGMA_SCALE) ** 2
    for s in range(n_sites):
        total = 0.0
        for t in range(n_months):
            total += exposure[s, t] * eps[t]
        site_exposure[s] = total
    log_mu_c = np.empty(max(n_country, 1))
    if hierarchical:
        u_alpha = x[0]
        alpha = math.exp(u_alpha)
        lp += -0.5 * ((u_alpha - ALPHA_PRIOR[0]) / ALPHA_PRIOR[1]) ** 2
        grad[0] = -(u_alpha - ALPHA_PRIOR[0]) / ALPHA_PRIOR[1] ** 2
        log_mu = x[1]
        if planning:  # mu ~ Gamma(shape, rate), log-transformed
            lp += mu_shape * log_mu - mu_rate * math.exp(log_mu)
            grad[1] = mu_shape - mu_rate * math.exp(log_mu)
        else:
            lp += -0.5 * ((log_mu - LOG_MU_PRIOR[0]) / LOG_MU_PRIOR[1]) ** 2
            grad[1] = -(log_mu - LOG_MU_PRIOR[0]) / LOG_MU_PRIOR[1] ** 2
        if n_country > 0:
            s_c = math.exp(x[2])
            lp += -0.5 * (s_c / SIGMA_SCALE) ** 2 + x[2]
            grad[2] = 1.0 - (s_c / SIGMA_SCALE) ** 2
            for c in range(n_country):
                z = x[3 + c]
                log_mu_c[c] = log_mu + s_c * z
                lp += -0.5 * z * z
                grad[3 + c] = -z
        else:
            log_mu_c[0] = log_mu
    else:
        alpha = fixed_alpha
    g_alpha = 0.0
    h = np.zeros(max(n_country, 1))  # dL/dlog mu_c
    for s in range(n_sites):
        if hierarchical:
            c = country_idx[s] if n_country > 0 else 0
            log_beta = u_alpha - log_mu_c[c]
        else:
            log_beta = math.log(fixed_beta)
        beta = math.exp(log_beta)
        total = site_totals[s]
        ratio = site_exposure[s] / beta  # E_s / B_s: D_s = B_s (1 + ratio)
        log_d = log_beta + math.log1p(ratio)
        # lgamma(A + K) - lgamma(A) and its derivative as sums over the K patients: exact
        # for whole counts and stable when alpha is large (where the NB tends to a Poisson)
        lg, dg = _gamma_ratio(alpha, total)
        # A log B - (A + K) log D = -A log1p(E / B) - K log D
        lp += lg - alpha * math.log1p(ratio) - total * log_d
        if calendar:
            f = -(alpha + total) / (beta + site_exposure[s])  # dL/dE_s
            for t in range(n_months):
                grad[k + 1 + t] += s_cal * eps[t] * f * exposure[s, t]
                grad[k] += s_cal * eps[t] * f * exposure[s, t] * (x[k + 1 + t] - s_cal)
        if hierarchical:
            g_site = (alpha * ratio - total) / (1.0 + ratio)  # dL/dlog beta_s
            g_alpha += dg - math.log1p(ratio)
            grad[0] += g_site
            h[c] -= g_site
    if calendar:
        for t in range(n_months):
            grad[k + 1 + t] += s_cal * month_totals[t]
            grad[k] += s_cal * month_totals[t] * (x[k + 1 + t] - s_cal)
    if hierarchical:
        grad[0] += alpha * g_alpha
        for c in range(h.shape[0]):
            grad[1] += h[c]
            if n_country > 0:
                grad[3 + c] += s_c * h[c]
                grad[2] += s_c * h[c] * x[3 + c]
    return lp


def sample_nutpie(density: EnrollmentDensity, sampler, *, progressbar: bool = False) -> Any:
    """NUTS draws of ``density`` with nutpie: ``sampler`` a
    :class:`~forecast.sampling.SamplerConfig` (draws, tune, chains one after another, seed,
    target acceptance). Starts from :meth:`EnrollmentDensity.initial_point` jittered by
    U(-1, 1) per coordinate, as PyMC's ``jitter+adapt_diag``. Returns an ``InferenceData``
    (posterior with ``chain``, ``draw``, ``country``, ``month``; sample stats with
    ``diverging``)."""
    import nutpie
    from nutpie.compiled_pyfunc import from_pyfunc

    names, shapes, dims = density.variables()
    start = density.initial_point()

    def make_logp():
        def logp(x, **_):
            return density.logp_grad(x)

        return logp

    def make_expand(_seed1, _seed2, _chain):
        def expand(x, **_):
            return density.expand(x)

        return expand

    def initial(seed):
        rng = np.random.default_rng(seed)
        return start + rng.uniform(-1.0, 1.0, density.ndim)

    compiled = from_pyfunc(
        density.ndim,
        make_logp,
        make_expand,
        [np.dtype("float64")] * len(names),
        shapes,
        names,
        coords={"country": density.country_names, "month": np.arange(density.n_months)},
        dims=dims,
        make_initial_point_fn=initial,
    )
    return nutpie.sample(
        compiled,
        draws=sampler.draws,
        tune=sampler.tune,
        chains=sampler.chains,
        cores=1,
        seed=sampler.seed,
        target_accept=sampler.target_accept,
        progress_bar=progressbar,
    )
