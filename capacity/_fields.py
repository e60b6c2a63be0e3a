"""Positions of the monthly outputs of the facility queue (shared by the compiled kernel in
``capacity._queue`` and its callers, without importing numba)."""

COUNT, WAIT_SUM, SERVED, OVER, LOST, RELEASED, RELEASE_SUM, QC_WAIT_SUM, BUSY, P95 = range(10)
N_MONTHLY = 10
