"""Forecasting from a saved posterior imports neither PyMC, PyTensor, ArviZ nor scipy.stats.

``import forecast``, loading the shipped posteriors (and a saved enrollment posterior), their
diagnostics and a small forecast run in a fresh interpreter, which then reports the modules
it loaded. The diagnostics computed without ArviZ are checked against ``az.summary``.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SHIPPED = Path(__file__).resolve().parents[1] / "forecast" / "posteriors"
HEAVY = ("pymc", "pytensor", "arviz", "scipy.stats")  # scipy.stats: about 1 s to import

SCRIPT = """
import json, sys
from pathlib import Path
import forecast
after_import = sorted(m for m in {heavy!r} if m in sys.modules)
shipped = Path({shipped!r})
phase = forecast.PhaseTransitionModel.load(next(shipped.glob("phase-*.nc")))
uptake = forecast.UptakeModel.load(next(shipped.glob("uptake-*.nc")))
sim = phase.simulate("phase2", "2025-01-01", draws=50, group="CAR-T", as_of="2026-01-01")
fc = uptake.forecast("Kymriah", "2027-01-01", horizon_months=24, draws=50)
enrollment = forecast.EnrollmentModel.load({enrollment!r})
trial = enrollment.forecast(horizon_months=12, draws=50)
out = {{
    "after_import": after_import,
    "after_forecast": sorted(m for m in {heavy!r} if m in sys.modules),
    "diagnostics": [phase.diagnostics(), uptake.diagnostics(), enrollment.diagnostics()],
    "approved": float(sim["approved"].mean()),
    "patients": float(fc.sum()),
    "enrolled": float(trial["enrolled"].sum()),
}}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def enrollment_file(tmp_path_factory) -> str:
    from tests.forecast.fakes import enrollment_model

    path = tmp_path_factory.mktemp("enrollment") / "enrollment.nc"
    enrollment_model(target=200).save(path)
    return str(path)


def test_forecast_from_saved_posteriors_imports_no_pymc(enrollment_file):
    script = SCRIPT.format(heavy=HEAVY, shipped=str(SHIPPED), enrollment=enrollment_file)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["after_import"] == []
    assert out["after_forecast"] == []
    phase, uptake, enrollment = out["diagnostics"]
    # the shipped posteriors' fit diagnostics (pmcap/fits.py: R-hat <= 1.01, ESS 912 and 1612)
    assert phase == {"r_hat_max": 1.01, "ess_bulk_min": 912.0, "divergences": 0, "draws": 4000}
    assert uptake == {"r_hat_max": 1.0, "ess_bulk_min": 1612.0, "divergences": 0, "draws": 4000}
    assert enrollment["closed_form"]
    assert 0 < out["approved"] < 1
    assert out["patients"] > 0
    assert out["enrolled"] > 0


@pytest.mark.parametrize("kind", ["phase", "uptake"])
def test_diagnostics_match_arviz_summary(kind):
    import arviz as az

    from forecast import PhaseTransitionModel, UptakeModel, _pymc

    cls = {"phase": PhaseTransitionModel, "uptake": UptakeModel}[kind]
    model = cls.load(next(SHIPPED.glob(f"{kind}-*.nc")))
    idata = model.idata  # converted to an InferenceData on first access
    assert isinstance(idata, az.InferenceData)
    names = list(idata.posterior.data_vars)
    summary = az.summary(idata, var_names=names, kind="diagnostics", round_to="none")
    for name in names:
        values = idata.posterior[name].values
        values = values.reshape(values.shape[0], values.shape[1], -1)
        rows = summary.loc[[i for i in summary.index if i == name or i.startswith(name + "[")]]
        for k in range(values.shape[2]):
            r_hat, ess = _pymc._rhat_ess_bulk(values[:, :, k])
            np.testing.assert_allclose(r_hat, rows["r_hat"].iloc[k], rtol=1e-12)
            np.testing.assert_allclose(ess, rows["ess_bulk"].iloc[k], rtol=1e-10)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # ArviZ on the constant and stuck cases
def test_diagnostics_match_arviz_on_edge_cases():
    import arviz as az

    from forecast import _pymc

    rng = np.random.default_rng(3)
    walk = np.cumsum(rng.normal(size=(3, 301)), axis=1)  # odd draws, strong autocorrelation
    cases = {
        "iid": rng.normal(size=(4, 500)),
        "walk": walk,
        "ar": np.stack([np.convolve(rng.normal(size=400), np.ones(8), "same") for _ in range(2)]),
        "constant": np.full((2, 100), 2.5),
        "one chain": rng.normal(size=(1, 200)),
        "ties": rng.integers(0, 3, size=(2, 200)).astype(float),
        "stuck chain": np.vstack([rng.normal(size=200), rng.normal(5, 1, size=200)]),
        "nan": np.where(rng.random((2, 100)) < 0.01, np.nan, rng.normal(size=(2, 100))),
    }
    for name, values in cases.items():
        idata = az.from_dict(posterior={"x": values})
        row = az.summary(idata, kind="diagnostics", round_to="none").loc["x"]
        r_hat, ess = _pymc._rhat_ess_bulk(values)
        np.testing.assert_allclose(r_hat, row["r_hat"], rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(ess, row["ess_bulk"], rtol=1e-10, err_msg=name)


def test_loaded_idata_is_the_arviz_file(tmp_path):
    """``.idata`` of a loaded model equals what ``az.from_netcdf`` reads; saving it again
    gives the same file contents."""
    import arviz as az

    from forecast import UptakeModel

    path = next(SHIPPED.glob("uptake-*.nc"))
    model = UptakeModel.load(path)
    reference = az.from_netcdf(str(path), engine="h5netcdf")
    assert model.idata.groups() == reference.groups()
    for group in reference.groups():
        assert getattr(model.idata, group).identical(getattr(reference, group))
    model.save(tmp_path / "again.nc")
    again = UptakeModel.load(tmp_path / "again.nc")
    assert again.idata.posterior.identical(reference.posterior)
    assert again.diagnostics() == model.diagnostics()


def test_pymc_logger_level_survives_a_lazy_import():
    """`pmcap run` silences PyMC's logger before anything imports PyMC; importing PyMC for a
    fit must not reset it to INFO."""
    script = (
        "import logging; logging.getLogger('pymc').setLevel(logging.ERROR)\n"
        "import sys; import forecast; from forecast import _pymc\n"
        "assert 'pymc' not in sys.modules\n"
        "_pymc.pymc(); print(logging.getLogger('pymc').level)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) == logging.ERROR
