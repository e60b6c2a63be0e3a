"""The dask cluster a sweep runs on: a client of the caller's, of a running cluster, or of a
LocalCluster started here, and what its workers load before the first task."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from capacity.errors import InputError

__all__ = ["check_workers", "cluster_client", "host_of", "preload", "threads_per_host"]


# The workers of the LocalCluster a sweep starts keep glibc's own malloc tuning (even if this
# process has the variable, see _without_env). Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536
# in every worker's environment (to hand freed memory back to the OS at once); setting it at
# all also turns off glibc's adaptive mmap threshold, so every numpy temporary over 128 KiB
# becomes a fresh mmap whose pages the kernel faults in and zeroes: the facility kernels'
# large per-draw temporaries then run slower, more so with workers sharing the memory bus.
_WORKER_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


@contextmanager
def _without_env(name: str) -> Iterator[None]:
    """``name`` out of this process's environment while the workers are spawned (they inherit
    it), then put back: a dask cluster started earlier in this process (a notebook's) leaves
    MALLOC_TRIM_THRESHOLD_ there, as the nanny sets it in its own process before spawning."""
    value = os.environ.pop(name, None)
    try:
        yield
    finally:
        if value is not None:
            os.environ[name] = value


@contextmanager
def cluster_client(
    workers: int | None,
    scheduler: str | None,
    n_tasks: int,
    client: Any = None,
    closing: list[threading.Thread] | None = None,
) -> Iterator[Any]:
    """A client of the caller's, of the cluster at ``scheduler``, or of a new LocalCluster.

    A LocalCluster left without an error is closed in a thread appended to ``closing`` (the
    caller joins it), so that its shutdown overlaps writing the comparison.
    """
    import dask
    from distributed import Client, LocalCluster

    if client is not None:  # the caller's own client (a notebook's cluster): left open
        yield client
        return
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
        try:
            yield client
        finally:
            client.close()
        return
    n = workers or max(1, min(os.cpu_count() or 1, n_tasks))
    with dask.config.set(_WORKER_CONFIG), _without_env("MALLOC_TRIM_THRESHOLD_"):
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            # any free port, on this machine only: with None the scheduler still serves its
            # HTTP routes on 8787 (a warning whenever another cluster holds it), with ":0" on
            # every interface
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
        )
    client = Client(cluster)

    def close() -> None:
        try:
            client.close()
        finally:
            cluster.close()

    try:
        yield client
    except BaseException:
        close()
        raise
    if closing is None:
        close()
        return

    def close_noting_errors() -> None:
        try:
            close()
        except Exception as exc:  # reported by the caller after join(): results are written
            thread.error = exc  # type: ignore[attr-defined]

    thread = threading.Thread(target=close_noting_errors, name="pmcap-close", daemon=True)
    thread.error = None  # type: ignore[attr-defined]
    closing.append(thread)
    thread.start()


def _worker_version() -> str:
    from pmcap import __version__

    return __version__


def preload() -> None:
    """Import what a task needs and load the compiled facility kernels, so the first task on a
    worker does not pay for them: the preload runs while the client fits or reads the models
    and sends them, when the workers would otherwise wait."""
    import matplotlib.backends.backend_agg
    import matplotlib.figure  # noqa: F401

    import capacity.service_level
    import capacity.simulation  # noqa: F401
    import pmcap.export
    import pmcap.output
    import pmcap.report
    import pmcap.run
    import pmcap.runfolder  # noqa: F401
    from capacity.warmup import warm_queue

    warm_queue()


def host_of(address: str) -> str:
    """``tcp://10.0.0.5:40123`` -> ``10.0.0.5``."""
    return address.split("://")[-1].rsplit(":", 1)[0]


def threads_per_host(client: Any) -> dict[str, int]:
    """Dask threads per machine of the cluster (host -> threads)."""
    counts: dict[str, int] = {}
    for address, info in client.scheduler_info()["workers"].items():
        host = host_of(address)
        counts[host] = counts.get(host, 0) + int(info.get("nthreads", 1))
    return counts


def check_workers(client, scheduler: str | None) -> None:
    from pmcap import __version__

    scheduler = scheduler or "(the cluster)"

    try:
        versions = client.run(_worker_version)
    except Exception as exc:  # a worker without pmcap cannot unpickle the function
        raise InputError(
            f"--scheduler {scheduler}: a worker cannot run pmcap ({type(exc).__name__}: {exc}); "
            f"install pmcap {__version__} on every worker"
        ) from None
    if not versions:
        raise InputError(f"--scheduler {scheduler}: the cluster has no workers")
    wrong = {w: v for w, v in versions.items() if v != __version__}
    if wrong:
        worker, version = next(iter(wrong.items()))
        raise InputError(
            f"--scheduler {scheduler}: worker {worker} has pmcap {version}, this is "
            f"{__version__}; install the same version on every worker"
        )
