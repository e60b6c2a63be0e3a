"""Fitted posteriors, cached by a hash of their data and config.

The reference posteriors (phase transitions per table, CAR-T uptake analogs) are fitted with
fixed, well-tuned NUTS settings (:data:`REFERENCE_NUTS`), not the scenario's ``[models]``
settings, which apply to the fits of the user's own data (enrollment). Rebuild the shipped
ones with ``python -m pmcap.fits`` after changing the reference data or a model.

A rerun that changes only the facility or a process refits nothing. The phase-transition and
uptake-analog posteriors depend only on reference data bundled with the package; they are
looked up first among the posteriors shipped in ``forecast/posteriors/`` (same key: same
data, same config, same model code version), then in the user cache (``$PMCAP_CACHE``, else
``~/.cache/pmcap``), and fitted (then cached) only when neither has them.

:func:`fit_jobs` lists the models a scenario needs, each with its cache key, and
:func:`fit_models` gets them: a sweep fits each distinct key once for all its scenarios.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SHIPPED = Path(__file__).resolve().parents[1] / "forecast" / "posteriors"
# bump when a model's code changes what a fit returns, so stale posteriors are not reused
MODEL_VERSIONS = {"enrollment": 2, "phase": 1, "uptake": 1}


REFERENCE_NUTS = {"draws": 2000, "tune": 2000, "chains": 2, "seed": 0}
# the hierarchical phase model has a funnel in small groups: smaller steps, no divergences
PHASE_NUTS = {**REFERENCE_NUTS, "target_accept": 0.99}
SHIPPED_TABLES = ("modality",)  # the default table; others are fitted on first use
UPTAKE_FILES = (
    "uptake/cart_quarterly_sales.csv",
    "uptake/cart_annual_sales.csv",
    "uptake/cart_prices.csv",
)


def phase_key(table: str) -> str:
    from forecast.data import data_path

    return fit_key(
        "phase",
        {"table": table, **PHASE_NUTS},
        data_path("phase_transitions_bio2021.csv").read_bytes(),
        data_path("phase_durations_bio2021.csv").read_bytes(),
    )


def uptake_key() -> str:
    from forecast.data import data_path

    return fit_key("uptake", REFERENCE_NUTS, *(data_path(n).read_bytes() for n in UPTAKE_FILES))


def build_shipped(tables=SHIPPED_TABLES) -> list[Path]:
    """Fit the reference posteriors and write them to ``forecast/posteriors/``."""
    from forecast import PhaseTransitionModel, UptakeModel

    SHIPPED.mkdir(parents=True, exist_ok=True)
    for old in SHIPPED.glob("*.nc"):
        old.unlink()
    written = []
    for table in tables:
        path = SHIPPED / f"phase-{phase_key(table)}.nc"
        _slim(PhaseTransitionModel(table, **PHASE_NUTS).fit()).save(path)
        written.append(path)
    path = SHIPPED / f"uptake-{uptake_key()}.nc"
    _slim(UptakeModel(**REFERENCE_NUTS).fit()).save(path)
    written.append(path)
    return written


def _slim(model):
    """Keep of the sampler statistics only what the diagnostics read (a smaller file)."""
    model.idata.sample_stats = model.idata.sample_stats[["diverging"]]
    return model


def cache_dir() -> Path:
    root = os.environ.get("PMCAP_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "pmcap"


def fit_key(kind: str, config: dict[str, Any], *data: bytes) -> str:
    """A short hash of the model kind, its code version, its config and its data."""
    h = hashlib.sha256(kind.encode())
    h.update(str(MODEL_VERSIONS[kind]).encode())
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    for blob in data:
        h.update(hashlib.sha256(blob).digest())
    return h.hexdigest()[:20]


def cached(
    kind: str,
    key: str,
    fit: Callable[[], Any],
    load: Callable[[Path], Any],
    *,
    use_cache: bool = True,
) -> tuple[Any, str]:
    """The fitted model for ``key``: shipped, cached, or fitted now. Returns (model, source)."""
    name = f"{kind}-{key}.nc"
    folders = [(SHIPPED, "shipped"), (cache_dir(), "cache")]
    if os.environ.get("PMCAP_SHIPPED") == "0":  # benchmarks and checks of the shipped files
        folders = folders[1:]
    for folder, source in folders:
        path = folder / name
        if use_cache and path.exists():
            try:
                return load(path), source
            except Exception:  # a corrupt or foreign file: refit rather than fail
                pass
    model = fit()
    if use_cache:
        try:
            folder = cache_dir()
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
            os.close(fd)
            model.save(tmp)
            os.replace(tmp, folder / name)  # readers never see a half-written posterior
        except OSError:
            pass  # no writable cache: the run still works, it just refits next time
    return model, "fitted"


def reference_phase_model(table: str = "modality"):
    """The phase-transition model of a BIO 2021 table: shipped, cached or fitted now."""
    from forecast import PhaseTransitionModel

    model, _ = cached(
        "phase",
        phase_key(table),
        lambda: PhaseTransitionModel(table, **PHASE_NUTS).fit(),
        PhaseTransitionModel.load,
    )
    return model


def reference_uptake_model():
    """The uptake model pooled over the bundled CAR-T analogs: shipped, cached or fitted."""
    from forecast import UptakeModel

    model, _ = cached(
        "uptake", uptake_key(), lambda: UptakeModel(**REFERENCE_NUTS).fit(), UptakeModel.load
    )
    return model


@dataclass(frozen=True)
class FitJob:
    """One fitted model a scenario needs: where it goes, its cache key and how to get it."""

    name: str  # key in the models dict ("enrollment:CART-A", "phase", "uptake")
    label: str  # key in diagnostics and sources ("enrollment (CART-A)")
    kind: str  # cache kind
    key: str  # cache key: a hash of data, settings and model version
    fit: Callable[[], Any] = field(compare=False, repr=False)
    load: Callable[[Path], Any] = field(compare=False, repr=False)


def fit_jobs(scenario, parsed: dict[str, Any]) -> list[FitJob]:
    """The models ``scenario`` needs, each with its cache key (no fitting here).

    One enrollment model per trial program (its data and ``[models]`` settings), the
    phase-transition model of ``models.phase_table`` if a program must pass phases or file,
    the uptake model if a program has ``[program.uptake]``. ``parsed``: from
    :func:`pmcap.inputs.check_inputs`. Two scenarios that need a model with the same
    ``(kind, key)`` share one fit: a sweep fits each distinct key once.
    """
    import pandas as pd

    from capacity.errors import InputError
    from forecast import EnrollmentModel, PhaseTransitionModel, UptakeModel
    from pmcap.inputs import enrollment_input_error, enrollment_settings

    jobs = []
    for p in scenario.program:
        if p.enrollment is None:
            continue
        frames = parsed["enrollment"][p.name]
        kw = enrollment_settings(scenario, p)
        blobs = [
            b"" if f is None else f.to_csv(index=False).encode()
            for f in (frames["patients"], frames["counts"], frames["sites"])
        ]
        key = fit_key("enrollment", {**kw, "as_of": str(scenario.run.as_of)}, *blobs)

        def fit(kw=kw, frames=frames, p=p):
            try:
                return EnrollmentModel(**kw).fit(
                    frames["patients"],
                    frames["sites"],
                    counts=frames["counts"],
                    as_of=pd.Timestamp(scenario.run.as_of),
                )
            except InputError as exc:
                raise enrollment_input_error(exc, scenario, p) from None

        jobs.append(
            FitJob(
                f"enrollment:{p.name}",
                f"enrollment ({p.name})",
                "enrollment",
                key,
                fit,
                EnrollmentModel.load,
            )
        )
    if any(p.stage == "pipeline" or p.registrational for p in scenario.program):
        table = scenario.models.phase_table
        jobs.append(
            FitJob(
                "phase",
                "phase transitions",
                "phase",
                phase_key(table),
                lambda: PhaseTransitionModel(table, **PHASE_NUTS).fit(),
                PhaseTransitionModel.load,
            )
        )
    if any(p.uptake is not None for p in scenario.program):
        jobs.append(
            FitJob(
                "uptake",
                "uptake analogs",
                "uptake",
                uptake_key(),
                lambda: UptakeModel(**REFERENCE_NUTS).fit(),
                UptakeModel.load,
            )
        )
    return jobs


@dataclass
class Fits:
    """Fitted models of one scenario, their diagnostics and where each came from."""

    models: dict[str, Any]  # FitJob.name -> fitted model
    diagnostics: dict[str, dict[str, Any]]  # FitJob.label -> model.diagnostics()
    sources: dict[str, str]  # FitJob.label -> "shipped", "cache" or "fitted"


def fit_models(scenario, parsed: dict[str, Any], use_cache: bool = True) -> Fits:
    """Every model ``scenario`` needs: shipped, cached or fitted now (then cached)."""
    fits = Fits({}, {}, {})
    for job in fit_jobs(scenario, parsed):
        model, source = cached(job.kind, job.key, job.fit, job.load, use_cache=use_cache)
        fits.models[job.name] = model
        fits.diagnostics[job.label] = model.diagnostics()
        fits.sources[job.label] = source
    return fits


if __name__ == "__main__":
    for written in build_shipped():
        print(written)
