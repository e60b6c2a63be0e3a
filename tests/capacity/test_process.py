from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from capacity import ProcessSpec, ProcessSpecError, load_process, process_templates
from capacity.distributions import Z90, Param
from tests.helpers import fixed_process

GOOD = """
name = "p"
culture_days = 9
failure_rate = {beta = [4, 96]}
[[qc]]
assay = "sterility"
hands_on_hours = 1.5
turnaround_days = 14
"""


def write(tmp_path, text):
    path = tmp_path / "proc.toml"
    path.write_text(text)
    return path


def test_templates_load_and_roundtrip():
    assert process_templates() == [
        "aav-vector",
        "car-t-autologous-automated",
        "car-t-autologous-manual",
    ]
    for name in process_templates():
        spec = load_process(name)
        assert spec.name == name
        assert load_process(spec.to_dict()) == spec


def test_automated_template_packs_several_lots_with_fewer_hands_on_hours():
    manual = load_process("car-t-autologous-manual")
    automated = load_process("car-t-autologous-automated")
    assert automated.lots_per_suite > 1 == manual.lots_per_suite
    assert automated.operator_hours_per_lot.mean < manual.operator_hours_per_lot.mean


def test_file_loads(tmp_path):
    spec = load_process(write(tmp_path, GOOD))
    assert spec.failure_rate == Param("beta", (4.0, 96.0))
    assert spec.qc[0].retest_rate == Param.fixed(0)


@pytest.mark.parametrize(
    ("change", "field", "expected"),
    [
        ("culture_days = 9\ncolour = 3", "colour", "unknown field"),
        ('culture_days = "nine"', "culture_days", "expected a number or a one-key"),
        ("culture_days = -2", "culture_days", "must be > 0"),
        ("culture_days = {uniform = [-1, 3]}", "culture_days", "must be > 0"),
        ("culture_days = 9\nchangeover_days = -1", "changeover_days", "must be >= 0"),
        ("culture_days = 9\nlots_per_suite = 2.5", "lots_per_suite", "whole number"),
        ("culture_days = {gamma = [1, 2]}", "culture_days", "unknown distribution 'gamma'"),
        ("culture_days = {triangular = [3, 2, 1]}", "culture_days", "low <= mode <= high"),
    ],
)
def test_bad_fields_name_file_and_field(tmp_path, change, field, expected):
    path = write(tmp_path, GOOD.replace("culture_days = 9", change))
    with pytest.raises(ProcessSpecError) as err:
        load_process(path)
    message = str(err.value)
    assert str(path) in message
    assert f"field '{field}'" in message
    assert expected in message


@pytest.mark.parametrize(
    "rate", ["1.2", "-0.1", "{uniform = [0.5, 1.5]}", "{triangular = [0, 1, 2]}"]
)
def test_rates_outside_unit_interval_rejected(tmp_path, rate):
    path = write(tmp_path, GOOD.replace("{beta = [4, 96]}", rate))
    with pytest.raises(ProcessSpecError, match=r"field 'failure_rate': must be a rate in \[0, 1\]"):
        load_process(path)


def test_qc_field_errors_name_the_assay_index(tmp_path):
    path = write(tmp_path, GOOD.replace("turnaround_days = 14", "turnaround_days = 14\nretest = 1"))
    with pytest.raises(ProcessSpecError, match=r"field 'qc\[0\]\.retest': unknown field"):
        load_process(path)
    path = write(tmp_path, GOOD.replace("turnaround_days = 14", "turnaround_days = -14"))
    with pytest.raises(ProcessSpecError, match=r"field 'qc\[0\]\.turnaround_days': must be >= 0"):
        load_process(path)


def test_empty_and_missing_qc_panel(tmp_path):
    head = GOOD.split("[[qc]]")[0]
    with pytest.raises(ProcessSpecError, match="field 'qc': required field is missing"):
        load_process(write(tmp_path, head))
    with pytest.raises(ProcessSpecError, match="field 'qc': the QC panel is empty"):
        load_process(write(tmp_path, head + "qc = []\n"))


def test_several_problems_in_one_message(tmp_path):
    path = write(tmp_path, GOOD.replace("culture_days = 9", "culture_days = -1\nshifts = 2"))
    with pytest.raises(ProcessSpecError) as err:
        load_process(path)
    assert str(err.value).startswith("2 problems:")


def test_unknown_template_and_bad_toml(tmp_path):
    with pytest.raises(ProcessSpecError, match="not a bundled template"):
        load_process("car-t-magic")
    with pytest.raises(ProcessSpecError, match="not valid TOML"):
        load_process(write(tmp_path, "name = "))


def test_distributions_sample_their_closed_form_moments():
    rng = np.random.default_rng(1)
    n = 200_000
    cases = {
        "beta": (Param.parse({"beta": [4, 96]}), 0.04, np.sqrt(4 * 96 / (100**2 * 101))),
        "triangular": (
            Param.parse({"triangular": [7, 8, 12]}),
            9.0,
            np.sqrt((49 + 64 + 144 - 56 - 84 - 96) / 18),
        ),
        "uniform": (Param.parse({"uniform": [4, 12]}), 8.0, 8 / np.sqrt(12)),
    }
    for name, (param, mean, sd) in cases.items():
        x = param.sample(n, rng)
        assert param.mean == pytest.approx(mean), name
        assert abs(x.mean() - mean) < 5 * sd / np.sqrt(n), name
    logn = Param.parse({"lognormal": {"median": 80, "p90": 110}})
    x = logn.sample(n, rng)
    assert np.median(x) == pytest.approx(80, rel=0.01)
    assert np.quantile(x, 0.9) == pytest.approx(110, rel=0.01)
    assert logn.mean == pytest.approx(80 * np.exp((np.log(110 / 80) / Z90) ** 2 / 2))


def test_sampling_is_per_draw_and_reproducible():
    spec = load_process("car-t-autologous-manual")
    a, b = spec.sample(100, seed=3), spec.sample(100, seed=3)
    assert a.identical(b)
    assert not a.identical(spec.sample(100, seed=4))
    assert a["failure_rate"].std() > 0  # a distribution varies across draws
    assert "lots_per_suite" not in a  # whole-number plant settings are not sampled
    fixed = fixed_process().sample(5, seed=0)
    np.testing.assert_array_equal(fixed["culture_days"], 9.0)
    assert fixed["qc_hands_on_hours"].dims == ("draw", "assay")


# --- per-draw sampling by inverse CDF (common random numbers across sensitivity swings) ---
@pytest.mark.parametrize(
    ("raw", "dist"),
    [
        ({"beta": [4, 76]}, stats.beta(4, 76)),
        ({"triangular": [7, 8, 12]}, stats.triang((8 - 7) / (12 - 7), loc=7, scale=5)),
        ({"uniform": [0.5, 2]}, stats.uniform(0.5, 1.5)),
        (
            {"lognormal": {"median": 80, "p90": 110}},
            stats.lognorm(np.log(110 / 80) / Z90, scale=80),
        ),
    ],
)
def test_ppf_is_scipys_inverse_cdf(raw, dist):
    u = np.array([0.0001, 0.1, 0.35, 0.5, 0.77, 0.9, 0.9999])
    np.testing.assert_allclose(Param.parse(raw).ppf(u), dist.ppf(u), rtol=1e-9)


def test_fixing_one_field_leaves_the_other_draws_unchanged():
    """A swing that fixes culture_days must not reshuffle failure_rate (sampled after it)."""
    base = load_process("car-t-autologous-manual")
    fixed = ProcessSpec.from_mapping({**base.to_dict(), "culture_days": 9})
    a, b = base.sample(500, seed=3), fixed.sample(500, seed=3)
    assert (b["culture_days"].values == 9).all()
    assert not (a["culture_days"].values == 9).all()
    for name in ("failure_rate", "changeover_days", "qa_hours_per_lot", "qc_hands_on_hours"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
