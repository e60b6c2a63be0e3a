"""Uncertain numeric parameters: a fixed number or a distribution, sampled once per draw.

A parameter in a process TOML file is written as a plain number or as a one-key table::

    culture_days = 9
    failure_rate = {beta = [4, 96]}                 # Beta(a, b)
    changeover_days = {triangular = [0.5, 1, 2]}    # low, mode, high
    qa_hours_per_lot = {uniform = [4, 12]}          # low, high
    operator_hours_per_lot = {lognormal = {median = 80, p90 = 110}}

Sampling once per draw (not per lot) is what makes parameter uncertainty show up in the
percentile bands: in one draw the failure rate *is* 6%, in another 3%.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from capacity.errors import InputError

# Standard normal 0.9 quantile: p90 = median * exp(Z90 * sigma) for a lognormal.
Z90 = 1.2815515655446004

_KINDS = ("beta", "triangular", "uniform", "lognormal")


@dataclass(frozen=True)
class Param:
    """A fixed number or a named distribution with its arguments.

    Examples
    --------
    >>> Param.parse({"triangular": [7, 8, 12]}).mean
    9.0
    """

    kind: str  # "fixed" or one of _KINDS
    args: tuple[float, ...]

    # --- construction -------------------------------------------------------------------
    @classmethod
    def fixed(cls, value: float) -> Param:
        return cls("fixed", (float(value),))

    @classmethod
    def parse(cls, raw: Any) -> Param:
        """Parse a TOML value; raise ``ValueError`` with what was expected."""
        if isinstance(raw, Param):
            return raw
        if isinstance(raw, bool):
            raise ValueError(f"expected a number or a distribution, got {raw!r}")
        if isinstance(raw, int | float):
            if not np.isfinite(raw):
                raise ValueError(f"expected a finite number, got {raw!r}")
            return cls.fixed(raw)
        if not isinstance(raw, dict) or len(raw) != 1:
            raise ValueError(
                "expected a number or a one-key distribution table such as {beta = [a, b]}, "
                "{triangular = [low, mode, high]}, {uniform = [low, high]} or "
                f"{{lognormal = {{median = m, p90 = x}}}}; got {raw!r}"
            )
        ((kind, value),) = raw.items()
        if kind not in _KINDS:
            raise ValueError(f"unknown distribution {kind!r}; expected one of {', '.join(_KINDS)}")
        if kind == "lognormal":
            if not isinstance(value, dict) or set(value) != {"median", "p90"}:
                raise ValueError(f"lognormal expects {{median = m, p90 = x}}, got {value!r}")
            args = (_number(value["median"], "median"), _number(value["p90"], "p90"))
            if not 0 < args[0] < args[1]:
                raise ValueError(f"lognormal needs 0 < median < p90, got {value!r}")
            return cls(kind, args)
        n_args = {"beta": 2, "triangular": 3, "uniform": 2}[kind]
        if not isinstance(value, list | tuple) or len(value) != n_args:
            raise ValueError(f"{kind} expects a list of {n_args} numbers, got {value!r}")
        args = tuple(_number(v, kind) for v in value)
        if kind == "beta" and not (args[0] > 0 and args[1] > 0):
            raise ValueError(f"beta needs a > 0 and b > 0, got {list(args)}")
        if kind == "triangular" and not (args[0] <= args[1] <= args[2] and args[0] < args[2]):
            raise ValueError(
                f"triangular needs low <= mode <= high and low < high, got {list(args)}"
            )
        if kind == "uniform" and not args[0] < args[1]:
            raise ValueError(f"uniform needs low < high, got {list(args)}")
        return cls(kind, args)

    # --- properties ---------------------------------------------------------------------
    @property
    def support(self) -> tuple[float, float]:
        """Smallest and largest value a draw can take."""
        if self.kind == "fixed":
            return self.args[0], self.args[0]
        if self.kind == "beta":
            return 0.0, 1.0
        if self.kind == "triangular":
            return self.args[0], self.args[2]
        if self.kind == "uniform":
            return self.args[0], self.args[1]
        return 0.0, float("inf")  # lognormal

    @property
    def mean(self) -> float:
        if self.kind == "fixed":
            return self.args[0]
        if self.kind == "beta":
            a, b = self.args
            return a / (a + b)
        if self.kind == "triangular":
            return sum(self.args) / 3.0
        if self.kind == "uniform":
            return (self.args[0] + self.args[1]) / 2.0
        median, p90 = self.args
        sigma = np.log(p90 / median) / Z90
        return float(median * np.exp(sigma**2 / 2))

    def sample(self, draws: int, rng: np.random.Generator) -> np.ndarray:
        """``draws`` values as a float array (a fixed value is repeated)."""
        if self.kind == "fixed":
            return np.full(draws, self.args[0])
        if self.kind == "beta":
            return rng.beta(*self.args, size=draws)
        if self.kind == "triangular":
            low, mode, high = self.args
            return rng.triangular(low, mode, high, size=draws)
        if self.kind == "uniform":
            return rng.uniform(*self.args, size=draws)
        median, p90 = self.args
        return rng.lognormal(np.log(median), np.log(p90 / median) / Z90, size=draws)

    def ppf(self, u: np.ndarray | float) -> np.ndarray:
        """The inverse CDF at ``u`` in [0, 1] (a fixed value for every ``u``).

        Examples
        --------
        >>> Param.parse({"uniform": [10, 20]}).ppf([0.1, 0.9]).tolist()
        [11.0, 19.0]
        """
        from scipy import special

        u = np.asarray(u, float)
        if self.kind == "fixed":
            return np.full(u.shape, self.args[0])
        if self.kind == "beta":
            return special.betaincinv(*self.args, u)
        if self.kind == "triangular":
            low, mode, high = self.args
            cut = (mode - low) / (high - low)
            left = low + np.sqrt(u * (high - low) * (mode - low))
            right = high - np.sqrt((1 - u) * (high - low) * (high - mode))
            return np.where(u < cut, left, right)
        if self.kind == "uniform":
            low, high = self.args
            return low + u * (high - low)
        median, p90 = self.args
        return median * np.exp(np.log(p90 / median) / Z90 * special.ndtri(u))

    def sample_per_draw(self, draws: int, rng: np.random.Generator) -> np.ndarray:
        """``draws`` values by the inverse CDF of one uniform per draw.

        The stream always advances by ``draws`` numbers, whatever the kind, so replacing one
        parameter by a number (a sensitivity swing) leaves the draws of every parameter
        sampled after it unchanged: scenarios that differ in one input share the random
        numbers of all the others (common random numbers).
        """
        return self.ppf(rng.random(draws))

    def to_toml(self) -> Any:
        """The TOML/JSON value this parameter was parsed from."""
        if self.kind == "fixed":
            return self.args[0]
        if self.kind == "lognormal":
            return {"lognormal": {"median": self.args[0], "p90": self.args[1]}}
        return {self.kind: list(self.args)}

    def __str__(self) -> str:
        return str(self.to_toml())


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise ValueError(f"{what}: expected a finite number, got {value!r}")
    return float(value)


def check_seed(seed: Any, what: str = "seed") -> int:
    """A seed as a whole number >= 0, or InputError naming ``what``."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        if isinstance(seed, float) and seed == int(seed):
            seed = int(seed)
        else:
            raise InputError(f"{what}: expected a whole number >= 0, got {seed!r}")
    if seed < 0:
        raise InputError(f"{what}: expected a whole number >= 0, got {seed}")
    return int(seed)


def stream_rng(seed: int | None, *key: str) -> np.random.Generator:
    """An independent random stream for ``seed`` and a text key (order of use does not matter)."""
    words = [zlib.crc32(k.encode()) for k in key]
    return np.random.default_rng(np.random.SeedSequence([0 if seed is None else seed, *words]))
