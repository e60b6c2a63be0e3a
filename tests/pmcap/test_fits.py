"""Shipped reference posteriors: present for today's data and settings, and equal (within Monte
Carlo error) to a fresh fit."""

from __future__ import annotations

import numpy as np
import pytest

from pmcap import fits


def test_shipped_posteriors_match_todays_data_and_settings():
    # a change to the bundled reference data, REFERENCE_NUTS or a model version changes the
    # key: this fails until `python -m pmcap.fits` has rebuilt the shipped files
    names = {p.name for p in fits.SHIPPED.glob("*.nc")}
    expected = {f"phase-{fits.phase_key(t)}.nc" for t in fits.SHIPPED_TABLES}
    expected.add(f"uptake-{fits.uptake_key()}.nc")
    assert names == expected


def test_cache_is_used_and_written(tmp_path, monkeypatch):
    monkeypatch.setenv("PMCAP_CACHE", str(tmp_path))
    monkeypatch.setenv("PMCAP_SHIPPED", "0")
    calls = []

    class Fake:
        def __init__(self, value):
            self.value = value

        def save(self, path):
            with open(path, "w") as fh:
                fh.write(str(self.value))

    def fit():
        calls.append(1)
        return Fake(42)

    def load(path):
        return Fake(int(open(path).read()))

    model, source = fits.cached("phase", "k1", fit, load)
    assert (model.value, source, len(calls)) == (42, "fitted", 1)
    model, source = fits.cached("phase", "k1", fit, load)
    assert (model.value, source, len(calls)) == (42, "cache", 1)
    _, source = fits.cached("phase", "k2", fit, load)  # another key: another fit
    assert source == "fitted" and len(calls) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["phase-k1.nc", "phase-k2.nc"]
    assert fits.fit_key("phase", {"a": 1}, b"x") != fits.fit_key("phase", {"a": 1}, b"y")
    assert fits.fit_key("phase", {"a": 1}, b"x") != fits.fit_key("phase", {"a": 2}, b"x")


# The fresh fit takes half the reference draws and tuning (1,000 + 1,000 per chain; the
# shipped fits took 176 and 204 s of sampling at 2,000 + 2,000): the z-scores below use both
# fits' ESS-based standard errors, so the 4.5 bound keeps its false-alarm rate, and a stale
# posterior (a model or data change) moves the means by many standard errors.
FRESH = {"draws": 1000, "tune": 1000, "seed": 7}


def _agree(shipped: np.ndarray, fresh: np.ndarray) -> np.ndarray:
    """|difference of means| in Monte Carlo standard errors (ESS-based, both fits)."""
    import arviz as az

    def se(x):
        flat = x.reshape(x.shape[0] * x.shape[1], -1)
        cells = x.reshape(x.shape[0], x.shape[1], -1)
        ess = az.ess(az.convert_to_dataset(cells))["x"].values.reshape(-1)
        return flat.std(axis=0) / np.sqrt(ess)

    diff = np.abs(
        shipped.reshape(shipped.shape[0] * shipped.shape[1], -1).mean(0)
        - fresh.reshape(fresh.shape[0] * fresh.shape[1], -1).mean(0)
    )
    return diff / np.sqrt(se(shipped) ** 2 + se(fresh) ** 2)


@pytest.mark.slow
def test_shipped_phase_posterior_matches_a_fresh_fit(monkeypatch, tmp_path):
    from forecast import PhaseTransitionModel

    shipped = fits.reference_phase_model("modality")
    fresh = PhaseTransitionModel("modality", **{**fits.PHASE_NUTS, **FRESH}).fit()
    z = _agree(shipped.idata.posterior["p"].values, fresh.idata.posterior["p"].values)
    assert z.max() < 4.5, z.max()  # 40 cells: max of |z| under 4.5 unless they differ


@pytest.mark.slow
def test_shipped_uptake_posterior_matches_a_fresh_fit():
    from forecast import UptakeModel

    shipped = fits.reference_uptake_model()
    fresh = UptakeModel(**{**fits.REFERENCE_NUTS, **FRESH}).fit()
    for name in ("mu_log_p", "mu_log_q", "p_year", "q_year", "phi"):
        z = _agree(shipped.idata.posterior[name].values, fresh.idata.posterior[name].values)
        assert z.max() < 4.5, (name, z.max())
