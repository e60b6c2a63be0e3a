"""NUTS settings shared by the three models: one :class:`SamplerConfig` per model.

:class:`~forecast.EnrollmentModel`, :class:`~forecast.PhaseTransitionModel` and
:class:`~forecast.UptakeModel` take ``draws``, ``tune``, ``chains`` and ``seed`` (the first two
also ``target_accept``; the uptake model samples with 0.95) as constructor keywords, keep them
in ``model.sampler`` and read them back as ``model.draws`` etc. (:class:`SamplerSettings`).
Sampling itself goes through :func:`forecast._pymc.sample` (chains one after another, no
progress bar, no convergence checks: :meth:`diagnostics` reports them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import arviz as az
    import pymc as pm

__all__ = ["SamplerConfig", "SamplerSettings"]


@dataclass(frozen=True)
class SamplerConfig:
    """NUTS settings of one fit.

    Parameters
    ----------
    draws, tune
        Kept draws and tuning steps per chain.
    chains
        Chains, run one after another.
    seed
        Random seed of the sampler (and of the models' own draws from it).
    target_accept
        NUTS target acceptance rate; higher takes smaller steps (fewer divergences in funnels).

    Examples
    --------
    >>> SamplerConfig(draws=500, chains=4).as_dict()
    {'draws': 500, 'tune': 1000, 'chains': 4, 'seed': 0, 'target_accept': 0.9}
    """

    draws: int = 1000
    tune: int = 1000
    chains: int = 2
    seed: int = 0
    target_accept: float = 0.9

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def sample(self, model: pm.Model) -> az.InferenceData:
        """Sample ``model`` with these settings (PyMC imported here)."""
        from forecast import _pymc

        return _pymc.sample(model, **self.as_dict())


def _setting(name: str) -> property:
    def get(self):
        return getattr(self.sampler, name)

    def set(self, value) -> None:
        self.sampler = replace(self.sampler, **{name: value})

    return property(get, set, doc=f"``sampler.{name}`` (setting it replaces ``sampler``).")


class SamplerSettings:
    """``draws``, ``tune``, ``chains``, ``seed`` and ``target_accept`` of a model, read from
    (and written to) its ``sampler``."""

    sampler: SamplerConfig
    draws = _setting("draws")
    tune = _setting("tune")
    chains = _setting("chains")
    seed = _setting("seed")
    target_accept = _setting("target_accept")
