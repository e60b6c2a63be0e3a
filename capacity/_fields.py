"""Constants shared by the compiled facility kernels in ``capacity._queue`` and their callers
(importable without numba): positions of the monthly outputs and lot-distribution codes."""

COUNT, WAIT_SUM, SERVED, OVER, LOST, RELEASED, RELEASE_SUM, QC_WAIT_SUM, BUSY, P95 = range(10)
N_MONTHLY = 10

# lot-to-lot culture and changeover: capacity.distributions.Param kinds, or the service mode
FIXED, UNIFORM, TRIANGULAR, LOGNORMAL, BETA, EXPONENTIAL = range(6)
