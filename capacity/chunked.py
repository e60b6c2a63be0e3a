"""Demand larger than memory: requirements and summaries of dask arrays chunked along draw.

Two halves, both exact (the numbers equal those of the same draws in memory):

* requirements (:func:`lazy_outputs`): one dask task per chunk of draws computes every output
  of its draws into one packed array (:func:`packed_block`), from its demand chunk and its
  draws' process parameters. Chunks are realigned, when needed, to start on multiples of
  the failure streams' block of draws (``job.rng_block``), so that no chunk needs another
  chunk's random numbers.
* summaries (:func:`spilled`): quantiles need all draws of a month together, while a chunk
  holds some draws of every month. Each series is written, chunk by chunk, to a scratch file
  laid out month by month (:class:`SpillFile`), then read back a slab of months with all
  draws at a time (about ``SLAB_BYTES``). Memory: the chunks being computed plus a few
  copies of a slab; disk: 8 bytes per draw, month and program of every series.

dask is imported only when a lazy result is built or computed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from capacity.workload import RequirementsJob, compute_draws

__all__ = ["SLAB_BYTES", "SpillFile", "lazy_outputs", "packed_block", "spilled"]


def _aligned_chunks(chunks: Sequence[int], block: int) -> tuple[int, ...]:
    """Chunks along draw whose boundaries fall on multiples of ``block`` (about as large)."""
    chunks = tuple(int(c) for c in chunks)
    if all(b % block == 0 for b in np.cumsum(chunks)[:-1]):
        return chunks
    size = block * max(1, round(max(chunks) / block))
    total = sum(chunks)
    return (size,) * (total // size) + ((total % size,) if total % size else ())


def packed_block(
    job: RequirementsJob, values: np.ndarray, start: int, params: Mapping[str, xr.Dataset]
) -> np.ndarray:
    """One dask chunk: every output of its draws in one array (draw, month, unit, field)."""
    packed = np.empty((values.shape[0], job.n_out, len(job.units), job.n_fields()))
    compute_draws(job, values, start, params, job.unpack(packed))
    return packed


def lazy_outputs(
    job: RequirementsJob, demand: Any, params: Mapping[str, xr.Dataset]
) -> dict[str, Any]:
    """Outputs as dask arrays chunked along draw: one task per chunk, nothing computed yet.

    Chunks are realigned, when needed, so that each starts on a multiple of
    ``job.rng_block`` (the failure streams of :mod:`capacity.workload`); each task gets its
    demand chunk and its draws' process parameters.
    """
    import dask
    import dask.array as da

    chunks = _aligned_chunks(demand.chunks[0], job.rng_block)
    demand = demand.rechunk((chunks, -1, -1, -1))
    n_fields = job.n_fields()
    job_key = dask.delayed(job, pure=False)
    pieces = demand.to_delayed().reshape(-1)  # one per chunk, its own key (no copy)
    blocks, start = [], 0
    for i, rows in enumerate(chunks):
        par = {name: p.isel(draw=slice(start, start + rows)) for name, p in params.items()}
        task = dask.delayed(packed_block, pure=True)(job_key, pieces[i], start, par)
        shape = (rows, job.n_out, len(job.units), n_fields)
        blocks.append(da.from_delayed(task, shape=shape, dtype=float))
        start += rows
    return job.unpack(da.concatenate(blocks, axis=0))


SLAB_BYTES = 64 * 2**20  # months of all draws read at once by bands of a lazy result


class SpillFile:
    """A float64 array (month, program, draw) in a scratch file, written block by block.

    Plain reads and writes (no memory map), so the pages sit in the system's file cache, not
    in the process. Holds only its path: tasks on other processes of the same machine can
    write to it too.
    """

    def __init__(self, path: Path, shape: tuple[int, int, int]):
        self.path, self.shape = str(path), tuple(int(n) for n in shape)
        with open(self.path, "wb") as fh:
            fh.truncate(int(np.prod(self.shape)) * 8)

    def __dask_tokenize__(self) -> tuple:
        return ("pmcap-spill", self.path, self.shape)

    def write(self, block: np.ndarray, location: Sequence[tuple[int, int]]) -> None:
        """Write ``block`` (month, program, draw) at dask's ``array-location`` of it."""
        (m0, m1), (p0, p1), (d0, _) = location
        _, n_p, n_d = self.shape
        block = np.ascontiguousarray(block, dtype=float)
        fd = os.open(self.path, os.O_WRONLY)
        try:
            for i in range(m1 - m0):
                for j in range(p1 - p0):
                    row = block[i, j]
                    offset = (((m0 + i) * n_p + p0 + j) * n_d + d0) * 8
                    if os.pwrite(fd, row, offset) != row.nbytes:
                        raise OSError(f"{self.path}: short write")
        finally:
            os.close(fd)

    def slabs(self) -> list[tuple[int, int]]:
        """Month ranges ``(m0, m1)`` of about ``SLAB_BYTES`` each (at least one month)."""
        n_m, n_p, n_d = self.shape
        width = max(1, SLAB_BYTES // max(1, n_p * n_d * 8))
        return [(m, min(n_m, m + width)) for m in range(0, n_m, width)]

    def read(self, m0: int, m1: int) -> np.ndarray:
        """Months ``m0`` to ``m1 - 1`` of every program and draw, shape (month, program, draw)."""
        _, n_p, n_d = self.shape
        out = np.empty((m1 - m0, n_p, n_d))
        view = memoryview(out).cast("B")
        with open(self.path, "rb", buffering=0) as fh:
            fh.seek(m0 * n_p * n_d * 8)
            done = 0
            while done < len(view):
                got = fh.readinto(view[done:])
                if not got:
                    raise OSError(f"{self.path}: file ends early")
                done += got
        return out


def _spill_block(block: np.ndarray, spill: SpillFile, block_info: dict | None = None) -> np.ndarray:
    spill.write(block, block_info[0]["array-location"])
    return np.zeros((1,) * block.ndim)


@contextlib.contextmanager
def spilled(
    series: Sequence[xr.DataArray], counts: Sequence[Any], spill_dir: str | Path | None
) -> Iterator[tuple[list[SpillFile], list[np.ndarray]]]:
    """Lazy series and other dask arrays (``counts``) computed in one pass over the chunks.

    Each series (dims draw, month, program) is written to its own :class:`SpillFile` in a
    temporary folder inside ``spill_dir`` (default: the system's temporary folder), removed
    when the ``with`` block ends. Yields the files, in the order of ``series``, and the
    computed ``counts``.
    """
    import dask
    import dask.array as da

    with tempfile.TemporaryDirectory(prefix="pmcap-bands-", dir=spill_dir) as tmp:
        spills, writes = [], []
        for i, var in enumerate(series):
            data = da.asarray(var.data).astype(float).transpose(1, 2, 0)  # month, program, draw
            spill = SpillFile(Path(tmp) / f"{i}.f8", data.shape)
            done = tuple((1,) * len(c) for c in data.chunks)
            writes.append(data.map_blocks(_spill_block, spill=spill, chunks=done, dtype=float))
            spills.append(spill)
        computed = dask.compute(*writes, *counts)
        yield spills, list(computed[len(writes) :])
