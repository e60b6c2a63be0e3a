"""Out-of-core requirements: demand as a dask array chunked along draw.

Chunked requirements, bands and shortfall probabilities must be exactly those of the same
draws in memory, whatever the chunking, and nothing may be computed before the summaries.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from dask.callbacks import Callback

import capacity.chunked
import capacity.resource_needs
import capacity.workload
from capacity import (
    DemandError,
    bands,
    facility,
    metric_names,
    read_demand,
    requirements,
    shortfall_probability,
    summarise,
    write_demand,
)
from tests.helpers import fixed_process, make_demand

DRAWS = 600  # more than two blocks of RNG_BLOCK (256) draws, so chunks are realigned
INSTALLED = {"suites": 9, "operator_fte": 40, "fte[qa]": 2.5, "qc_hours[sterility]": 60}


@pytest.fixture(autouse=True)
def _synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


@pytest.fixture(scope="module")
def demand() -> xr.DataArray:
    rng = np.random.default_rng(8)
    return make_demand(rng.poisson(4, size=(DRAWS, 14, 2, 3)), programs=["A", "B"])


# two processes: A fixed with frequent failures and two re-runs, B the uncertain manual CAR-T
# template (parameters differ per draw, one re-run), so both the random streams and the
# per-draw parameters must follow the draws into their chunk
PROCESSES = {
    "A": fixed_process(failure_rate=0.2, max_remanufacture=2),
    "B": "car-t-autologous-manual",
}
OPENING = {"A": 3, "B": pd.Series([2, 5], index=pd.to_datetime(["2026-11-01", "2026-12-01"]))}


class _Tasks(Callback):
    """Counts dask tasks run (local schedulers)."""

    def __init__(self):
        super().__init__()
        self.n = 0

    def _posttask(self, key, result, dsk, state, worker_id):
        self.n += 1


def _assert_same(lazy: xr.Dataset, whole: xr.Dataset) -> None:
    assert all(isinstance(v.data, da.Array) for v in lazy.data_vars.values())
    computed = lazy.compute()
    xr.testing.assert_identical(computed, whole)
    for name in whole.data_vars:  # and bit for bit, not to a tolerance
        assert np.array_equal(computed[name].values, whole[name].values), name


@pytest.mark.parametrize("chunks", [1, 37, 256, 512, (300, 1, 299), (256, 256, 88)])
@pytest.mark.parametrize("opening", [None, OPENING], ids=["no-opening", "opening"])
@pytest.mark.parametrize("by_program", [False, True], ids=["total", "by-program"])
def test_chunked_requirements_equal_in_memory(demand, chunks, opening, by_program):
    whole = requirements(demand, PROCESSES, seed=5, by_program=by_program, opening=opening)
    assert whole["remanufactured_lots"].sum() > 0 and whole["patients_lost"].sum() > 0
    lazy = requirements(
        demand.chunk({"draw": chunks}), PROCESSES, seed=5, by_program=by_program, opening=opening
    )
    assert len(lazy["suites"].chunks[0]) > 1  # really in several chunks
    _assert_same(lazy, whole)


@pytest.mark.parametrize("chunks", [1, 3, (5, 1, 2, 4)])
def test_one_draw_per_chunk_with_one_stream_per_draw(monkeypatch, demand, chunks):
    # with RNG_BLOCK = 1 no chunk is realigned: each task really holds its own few draws
    monkeypatch.setattr(capacity.resource_needs, "RNG_BLOCK", 1)
    small = demand.isel(draw=slice(0, 12))
    whole = requirements(small, PROCESSES, seed=2, by_program=True, opening=OPENING)
    lazy = requirements(
        small.chunk({"draw": chunks}), PROCESSES, seed=2, by_program=True, opening=OPENING
    )
    expected = (chunks,) * (12 // chunks) if isinstance(chunks, int) else chunks
    assert lazy["lots"].chunks[0] == expected
    _assert_same(lazy, whole)


def test_in_memory_blocks_split_a_stream_block_without_changing_numbers(monkeypatch, demand):
    # blocks of 7 draws cut the 256-draw failure streams in the middle: a stream goes on in
    # the next block where it stopped
    whole = requirements(demand, PROCESSES, seed=3, opening=OPENING)
    monkeypatch.setattr(capacity.workload, "CHUNK_CELLS", 7 * 16 * 2)
    xr.testing.assert_identical(requirements(demand, PROCESSES, seed=3, opening=OPENING), whole)


@pytest.mark.parametrize("by_program", [False, True], ids=["total", "by-program"])
def test_bands_and_shortfall_of_chunked_equal_in_memory(demand, by_program, tmp_path):
    whole = requirements(demand, PROCESSES, seed=5, by_program=by_program, opening=OPENING)
    lazy = requirements(
        demand.chunk({"draw": 100}), PROCESSES, seed=5, by_program=by_program, opening=OPENING
    )
    qs = (0.05, 0.5, 0.9, 1.0)
    table = bands(whole, qs)
    pd.testing.assert_frame_equal(bands(lazy, qs, spill_dir=tmp_path), table, check_exact=True)
    assert list(tmp_path.iterdir()) == []  # the scratch files are gone
    risk = shortfall_probability(whole, INSTALLED)
    assert 0 < risk["probability"].max() and risk["probability"].min() < 1
    pd.testing.assert_frame_equal(shortfall_probability(lazy, INSTALLED), risk, check_exact=True)
    both = summarise(lazy, qs, INSTALLED, spill_dir=tmp_path)
    pd.testing.assert_frame_equal(both[0], table, check_exact=True)
    pd.testing.assert_frame_equal(both[1], risk, check_exact=True)
    # and summarise of an in-memory result is the two functions
    pd.testing.assert_frame_equal(summarise(whole, qs)[0], table, check_exact=True)
    assert summarise(whole, qs)[1] is None


def test_bands_of_lazy_demand_equal_in_memory(demand):
    pd.testing.assert_frame_equal(
        bands(demand.chunk({"draw": 70})), bands(demand), check_exact=True
    )


def test_facility_of_many_programs_stays_lazy_and_equal():
    # nine programs: a sum over programs long enough for NumPy's pairwise summation
    rng = np.random.default_rng(1)
    nine = make_demand(rng.poisson(2, size=(300, 5, 9, 1)), programs=[f"P{i}" for i in range(9)])
    whole = facility(requirements(nine, "car-t-autologous-manual", seed=1, by_program=True))
    lazy = facility(
        requirements(nine.chunk({"draw": 128}), "car-t-autologous-manual", seed=1, by_program=True)
    )
    _assert_same(lazy, whole)


def test_nothing_is_computed_before_the_summaries(monkeypatch, demand):
    calls = []
    packed = capacity.chunked.packed_block

    def counting(plan, values, start, params):
        calls.append(start)
        return packed(plan, values, start, params)

    monkeypatch.setattr(capacity.chunked, "packed_block", counting)
    tasks = _Tasks()
    with tasks:
        lazy = requirements(demand.chunk({"draw": 256}), PROCESSES, seed=5, by_program=True)
        total = facility(lazy)
        names = metric_names(total)
    assert tasks.n == 0 and calls == []
    assert "fte[qa]" in names
    assert all(dask.is_dask_collection(v) for v in total.data_vars.values())
    assert lazy["lots"].chunks[0] == (256, 256, 88)
    with tasks:
        summarise(lazy, installed={"suites": 9})
    # one pass: every chunk computed exactly once for both tables
    assert tasks.n > 0 and sorted(calls) == [0, 256, 512]
    calls.clear()
    with tasks:
        shortfall_probability(lazy, {"suites": 9})
    assert sorted(calls) == [0, 256, 512]


def test_identical_draws_get_different_failures_in_every_chunk():
    # the same demand and (fixed) parameters in every draw: only the failures differ, so a
    # chunk that reused the first chunk's random numbers would repeat its lots
    block = capacity.resource_needs.RNG_BLOCK
    same = make_demand(np.full((3 * block, 6, 1, 1), 20), programs=["A"], streams=["commercial"])
    spec = fixed_process(failure_rate=0.3, max_remanufacture=1)
    lazy = requirements(same.chunk({"draw": block}), spec, seed=1)
    lots = lazy["lots"].values
    chunks = [lots[i * block : (i + 1) * block] for i in range(3)]
    assert not np.array_equal(chunks[0], chunks[1])
    assert not np.array_equal(chunks[1], chunks[2])
    assert not np.array_equal(chunks[0], chunks[2])
    # and within a chunk, draws differ too (not one number per chunk)
    assert len(np.unique(lots[:block, 0])) > 5
    np.testing.assert_array_equal(lots, requirements(same, spec, seed=1)["lots"].values)
    # another seed, other failures
    assert not np.array_equal(lots, requirements(same, spec, seed=2)["lots"].values)


def test_netcdf_opened_lazily_end_to_end(tmp_path, demand):
    path = write_demand(demand, tmp_path / "demand.nc")
    eager = requirements(read_demand(path), PROCESSES, seed=5, opening=OPENING)
    expected = bands(eager)
    for opened in (
        xr.open_dataset(path, chunks={"draw": 150}),
        read_demand(path, chunks=150),
    ):
        lazy = requirements(opened, PROCESSES, seed=5, opening=OPENING)
        assert isinstance(lazy["suites"].data, da.Array)
        pd.testing.assert_frame_equal(bands(lazy), expected, check_exact=True)
    with pytest.raises(DemandError, match="chunks must be a whole number"):
        read_demand(path, chunks=0)


def test_a_bad_value_in_a_chunk_is_reported_with_its_draw_when_computed(demand):
    values = demand.values.copy()
    values[437, 3, 1, 0] = -1
    bad = demand.copy(data=values).chunk({"draw": 100})
    lazy = requirements(bad, PROCESSES, seed=5)  # nothing read yet
    with pytest.raises(DemandError, match="must be >= 0; first at draw=437, month=2027-04-01"):
        bands(lazy)
    with pytest.raises(DemandError, match="patients must be numbers"):
        requirements(bad.astype(complex), PROCESSES)
