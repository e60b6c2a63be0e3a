"""Running a sweep: resuming a folder, fitting each model once, feeding the scenarios to the
cluster's workers, writing each finished scenario's folder and the comparison."""

from __future__ import annotations

import collections
import hashlib
import json
import os
import secrets
import shutil
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from capacity.errors import InputError
from pmcap.sweep.cases import Case, CaseOutputs, ExtraOutputs, Sweep, value_label
from pmcap.sweep.cluster import check_workers, cluster_client, preload, threads_per_host
from pmcap.sweep.comparison import monthly_table, render_sweep, sweep_table
from pmcap.sweep.task import SUMMARY, CaseTask, run_case

__all__ = ["SweepResult", "check_sweep_out", "run_sweep"]


@dataclass
class SweepResult:
    """What :func:`run_sweep` wrote and found.

    Attributes
    ----------
    out : Path
        The sweep's folder.
    rows : DataFrame
        sweep.csv: one row per scenario.
    summaries : dict of str to dict
        Summary of each finished scenario (run now or resumed), by scenario name.
    failed : dict of str to str
        Error of each failed scenario, by scenario name.
    skipped : list of str
        Scenarios finished by an earlier run into the same folder (resumed, not rerun).
    ran : list of str
        Scenarios run now, in the order they finished.
    timings : dict of str to float
        Wall time of the sweep's stages, in seconds (also in the manifest).
    sensitivity : dict
        The tables of the sweep's extra analysis (``Sweep.extra_tables``): pmcap
        sensitivity's ``year``, ``swings`` and ``ranking``; empty without one.
    spans : dict of str to (float, float, str)
        Each task's start and end, in seconds from the sweep's start, and its worker.
    """

    out: Path
    rows: pd.DataFrame
    summaries: dict[str, dict[str, Any]]
    failed: dict[str, str]
    skipped: list[str]
    ran: list[str]
    timings: dict[str, float] = field(default_factory=dict)
    sensitivity: dict[str, Any] = field(default_factory=dict)
    spans: dict[str, tuple[float, float, str]] = field(default_factory=dict)


def check_sweep_out(
    out: Path,
    inputs: list[Path],
    *,
    command: str = "sweep",
    origin: str | None = None,
    force: bool = False,
) -> None:
    """``out`` may be new, empty, or an earlier output of the same sweep (which is resumed):
    the same ``command`` (sweep or sensitivity) and ``origin`` (the sweep file, or the base
    scenario of a sensitivity run). Any other folder needs ``force`` (it is then replaced),
    and never one :func:`pmcap.output.check_out` refuses whatever ``force`` says."""
    from pmcap.output import check_out, read_manifest

    check_out(out, inputs=inputs, force=True)  # inputs, the current folder, files, links
    path = Path(out)
    if force or not path.is_dir() or not any(path.iterdir()):
        return
    manifest = read_manifest(path)
    earlier = manifest.get("command") if manifest else None
    if earlier not in ("sweep", "sensitivity") or "sweep_case" in manifest:
        raise InputError(
            f"--out {out}: the folder holds files that are not a pmcap sweep output; "
            "choose a new folder, or pass --force to replace it (a sweep folder is resumed "
            "only by the same sweep)"
        )
    if earlier != command:
        raise InputError(
            f"--out {out}: holds the output of pmcap {earlier}, not of pmcap {command}; choose "
            "a new folder, or pass --force to replace it"
        )
    was = manifest.get("origin")
    if origin is not None and was is not None and was != origin:
        what = "sweep file" if command == "sweep" else "base scenario"
        raise InputError(
            f"--out {out}: holds the output of pmcap {command} of another {what} ({was}, not "
            f"{origin}); its scenarios and comparison would be mixed with this one's: choose "
            "a new folder, or pass --force to replace it"
        )


def _start_folder(out: Path, force: bool) -> tuple[list[Path], Path | None]:
    """Create ``out``; with ``force`` an earlier folder there is first set aside beside it.

    Returns the folders created, outermost first, and the folder set aside (None if none):
    a sweep that stops before any scenario ran removes the first and puts the second back;
    one that finishes discards what was set aside."""
    aside = None
    if force and (out.is_symlink() or (out.is_dir() and any(out.iterdir()))):
        aside = out.with_name(f".{out.name}.pmcap-{os.getpid()}-{secrets.token_hex(4)}.old")
        os.rename(out, aside)
    created = []
    folder = Path(out)
    while not os.path.lexists(folder):
        created.insert(0, folder)
        folder = folder.parent
    out.mkdir(parents=True, exist_ok=True)
    return created, aside


def _done(folder: Path, digest: str) -> dict[str, Any] | None:
    """The summary of a finished scenario with this digest, or None."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        if manifest.get("sweep_case", {}).get("digest") != digest:
            return None
        return json.loads((folder / SUMMARY).read_text())
    except (OSError, ValueError, AttributeError):
        return None


def _in_background(fn: Callable, *args: Any) -> Future:
    """``fn(*args)`` in a daemon thread: if the sweep stops early (a refused cluster,
    Ctrl-C) the process exits without waiting for a fit still running."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # handed to whoever waits for the result
            future.set_exception(exc)

    threading.Thread(target=run, name="pmcap-fits", daemon=True).start()
    return future


def _fit_all(todo: list[Case], use_cache: bool, notify: Callable) -> tuple[dict, dict, dict]:
    """Fit or read every distinct model of the scenarios once: ``(jobs by case, fitted,
    broken)``; ``fitted[kind, key] = (model, diagnostics, source)``, ``broken[kind, key]``
    the error of a fit that failed (its scenarios fail, the others run). Bad input data
    raises :class:`InputError` (exit 2 before anything runs)."""
    from pmcap.fits import cached, fit_jobs

    jobs = {c.name: fit_jobs(c.scenario, c.parsed) for c in todo}
    fitted: dict[tuple[str, str], tuple[Any, dict, str]] = {}
    broken: dict[tuple[str, str], str] = {}
    for case_jobs in jobs.values():
        for job in case_jobs:
            if (job.kind, job.key) in fitted or (job.kind, job.key) in broken:
                continue
            notify(f"{job.label} model", "fitting", 0, len(todo))
            try:
                model, source = cached(job.kind, job.key, job.fit, job.load, use_cache=use_cache)
            except InputError:
                raise
            except Exception as exc:
                broken[job.kind, job.key] = f"{job.label}: fit failed: {_error_text(exc)}"
                continue
            fitted[job.kind, job.key] = (model, model.diagnostics(), source)
    # what the comparison report needs, imported while the client would wait for the tasks
    # (not after the last one, when nothing else runs)
    import jinja2  # noqa: F401
    import matplotlib.backends.backend_agg
    import matplotlib.figure  # noqa: F401

    return jobs, fitted, broken


def _write_bytes(path: Path, data: bytes) -> None:
    """Write a file whole or not at all (a temp file renamed over it), with the permissions
    of any other file this process writes: created 0o666 less the umask (mkstemp's are
    owner-only, unreadable to colleagues on a shared drive)."""
    tmp = path.parent / f".{path.name}.{os.getpid()}-{time.time_ns()}.tmp"
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run_sweep(
    sweep: Sweep,
    out: Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    use_cache: bool = True,
    xlsx: bool = False,
    progress: Callable[[str, str, int, int], None] | None = None,
    command: str = "sweep",
    client: Any = None,
    force: bool = False,
) -> SweepResult:
    """Run every scenario not already done in ``out`` and write the comparison outputs.

    The scenarios run on ``client`` (a ``distributed.Client`` the caller made and keeps),
    else on the cluster at ``scheduler``, else on a new ``LocalCluster`` of ``workers``
    processes with one thread each (default: one per core, at most one per scenario).
    What each scenario writes is its ``Case.outputs``; ``Sweep.extra_tables`` adds tables to
    the comparison. ``progress(name, status, done, total)`` is called as models are fitted
    (status "fitting") and as scenarios finish ("done", "failed"); ``command`` names the
    command in the manifests. ``out`` is resumed only by the same sweep (the same command and
    sweep file, or base scenario); ``force`` replaces any other folder. A sweep that stops
    before any scenario ran (a cluster that cannot be reached) leaves no folder it created.
    """
    from pmcap import __version__
    from pmcap.output import write_manifest

    out = Path(out)
    inputs = sorted({p for c in sweep.cases for p in c.scenario.input_files()})
    if sweep.path is not None:
        inputs.append(sweep.path)
    origin = str(Path(sweep.path or sweep.base.path).resolve())
    check_sweep_out(out, inputs, command=command, origin=origin, force=force)
    created, aside = _start_folder(out, force)
    if not (out / "manifest.json").exists():
        # marks the folder as a sweep's from the start, so a sweep stopped early (Ctrl-C, a
        # crash) is resumed by the next run; completed at the end
        write_manifest(
            out, command=command, origin=origin, status="running", files=["scenarios", "failed"]
        )
    (out / "scenarios").mkdir(exist_ok=True)
    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    state = _State()
    todo = []
    for case in sweep.cases:
        summary = _done(out / "scenarios" / case.slug, case.digest)
        if summary is not None:
            state.summaries[case.name] = summary
            state.skipped.append(case.name)
        else:
            todo.append(case)
    t_wall = time.time()
    closing: list[threading.Thread] = []  # the LocalCluster shutting down
    if todo:
        try:
            _run_cases(
                sweep,
                todo,
                out,
                state,
                timings,
                closing,
                workers=workers,
                scheduler=scheduler,
                client=client,
                use_cache=use_cache,
                xlsx=xlsx,
                command=command,
                notify=progress or (lambda name, status, done, total: None),
            )
        except BaseException:
            if created and not state.ran and not state.failed:
                # nothing ran (a cluster that cannot be reached, Ctrl-C while fitting):
                # leave no folder behind, and put back what --force set aside
                shutil.rmtree(created[0], ignore_errors=True)
                if aside is not None:
                    os.rename(aside, out)
            raise
    if aside is not None:
        from pmcap.output import _discard

        _discard(aside, out.name)
    t0 = time.perf_counter()
    try:  # while the cluster shuts down
        from pmcap.export import csv_text  # rounding noise written as 0

        rows = sweep_table(sweep, state.summaries, state.failed)
        _write_bytes(out / "sweep.csv", csv_text(rows).encode())
        _write_bytes(
            out / "sweep_monthly.csv", csv_text(monthly_table(sweep, state.summaries)).encode()
        )
        extra = (
            ExtraOutputs()
            if sweep.extra_tables is None
            else sweep.extra_tables(sweep, state.summaries)
        )
        for name, data in extra.files.items():
            _write_bytes(out / name, data)
        html = render_sweep(
            sweep,
            state.summaries,
            state.failed,
            rows,
            __version__,
            extra=extra.sections,
            out_root=out / "scenarios",
        )
        _write_bytes(out / "sweep.html", html.encode())
        timings["compare_s"] = round(time.perf_counter() - t0, 3)  # the comparison outputs
    finally:
        for thread in closing:
            thread.join()
    timings["close_wait_s"] = round(time.perf_counter() - t0 - timings.get("compare_s", 0), 3)
    for thread in closing:
        if thread.error is not None:  # type: ignore[attr-defined]
            warnings.warn(
                f"pmcap: closing the local cluster failed: {thread.error!r}", stacklevel=2
            )
    timings["total_s"] = round(time.perf_counter() - t_start, 3)
    write_manifest(
        out,
        command=command,
        origin=origin,
        sweep={"path": str(sweep.path) if sweep.path else None, "title": sweep.title},
        scenarios=[
            {
                "name": c.name,
                "folder": f"scenarios/{c.slug}",
                "digest": c.digest,
                "status": "failed"
                if c.name in state.failed
                else ("skipped" if c.name in state.skipped else "done"),
            }
            for c in sweep.cases
        ],
        timings=timings,
        files=[
            "sweep.csv",
            "sweep_monthly.csv",
            "sweep.html",
            "scenarios",
            "failed",
            *extra.files,
        ],
    )
    spans = {k: (a - t_wall, b - t_wall, w) for k, (a, b, w) in state.spans.items()}
    return SweepResult(
        out,
        rows,
        state.summaries,
        state.failed,
        state.skipped,
        state.ran,
        timings,
        sensitivity=extra.tables,
        spans=spans,
    )


@dataclass
class _State:
    """What a sweep has so far: finished scenarios (run now or resumed) and failed ones."""

    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)  # by scenario name
    failed: dict[str, str] = field(default_factory=dict)  # scenario name -> error
    skipped: list[str] = field(default_factory=list)  # done in an earlier run (resumed)
    ran: list[str] = field(default_factory=list)
    task_seconds: dict[str, float] = field(default_factory=dict)  # each task on its worker
    spans: dict[str, tuple[float, float, str]] = field(default_factory=dict)  # start, end, worker


def _run_cases(
    sweep: Sweep,
    todo: list[Case],
    out: Path,
    state: _State,
    timings: dict[str, float],
    closing: list[threading.Thread],
    *,
    workers: int | None,
    scheduler: str | None,
    client: Any,
    use_cache: bool,
    xlsx: bool,
    command: str,
    notify: Callable[[str, str, int, int], None],
) -> None:
    """Fit the models, start or reach the cluster, run the scenarios of ``todo`` there and
    write each finished one's folder; results and errors go to ``state``."""
    from pmcap.output import atomic_folder

    t0 = time.perf_counter()
    # each distinct model is fitted (or read from the cache) once, here, in a thread
    # while the cluster starts and its workers import pmcap.
    # dask and distributed are imported before the fit thread starts: two threads importing
    # dask at once (xarray and PyMC reach it too) can fail on its circular imports
    # ("partially initialized module 'dask.base'")
    import distributed  # noqa: F401

    own_cluster = client is None and not scheduler  # a LocalCluster started here
    # a cluster that exists already (--scheduler, the caller's client) is reached and its
    # workers checked first, at once: one that cannot be reached or runs another pmcap stops
    # the sweep before any fit, and the process exits at once (an interpreter exiting while
    # the daemon fit thread is still importing or loading can hang in its finalization)
    fitting = _in_background(_fit_all, todo, use_cache, notify) if own_cluster else None
    with cluster_client(workers, scheduler, len(todo), client, closing) as client:
        timings["cluster_start_s"] = round(time.perf_counter() - t0, 3)
        check_workers(client, scheduler)
        if fitting is None:
            fitting = _in_background(_fit_all, todo, use_cache, notify)
        # the workers import pmcap (and load its compiled kernels) while the models are
        # fitted or read
        warming = [
            client.submit(preload, key=f"pmcap-preload-{w}", workers=[w], pure=False)
            for w in client.scheduler_info()["workers"]
        ]
        t1 = time.perf_counter()
        jobs, fitted, broken = fitting.result()
        for case in list(todo):
            reasons = [broken[j.kind, j.key] for j in jobs[case.name] if (j.kind, j.key) in broken]
            if reasons:
                state.failed[case.name] = reasons[0]
                _write_failure(out, case, RuntimeError(reasons[0]), None)
                todo.remove(case)
        timings["fit_wait_s"] = round(time.perf_counter() - t1, 3)  # after the cluster
        t0 = time.perf_counter()
        # every worker gets each model once, up front: with the models on one worker only,
        # the scheduler's data locality sends most tasks to that worker
        shared = {
            k: client.scatter(m, hash=False, broadcast=True) for k, (m, _, _) in fitted.items()
        }
        host_threads = threads_per_host(client)
        tasks = {
            case.name: _case_task(
                case,
                sweep,
                jobs[case.name],
                fitted,
                command=command,
                outputs=case.outputs,
                # a worker of the LocalCluster started here writes the folder in place
                # (the folder itself not resolved: from an earlier run it is a link)
                folder=(out / "scenarios").resolve() / case.slug if own_cluster else None,
                host_threads=host_threads,
                xlsx=xlsx,
            )
            for case in todo
        }
        models = {c.name: {j.name: shared[j.kind, j.key] for j in jobs[c.name]} for c in todo}
        finished = _as_finished(client, todo, tasks, models, own_cluster)
        for done, (case, future) in enumerate(finished, start=1):
            try:
                answer = future.result()
            except Exception as exc:
                state.failed[case.name] = _error_text(exc)
                _write_failure(out, case, exc, future)
                notify(case.name, "failed", done, len(todo))
                continue
            files = answer.files
            if not answer.written:  # the worker may not see this disk: written here
                with atomic_folder(out / "scenarios" / case.slug) as folder:
                    for name, data in files.items():
                        (folder / name).write_bytes(data)
            (out / "failed" / f"{case.slug}.txt").unlink(missing_ok=True)
            state.summaries[case.name] = json.loads(files[SUMMARY])
            state.ran.append(case.name)
            state.task_seconds[case.name] = round(answer.seconds, 3)
            state.spans[case.name] = answer.span
            notify(case.name, "done", done, len(todo))
        timings["run_s"] = round(time.perf_counter() - t0, 3)
        del warming
        timings["tasks_s"] = round(sum(state.task_seconds.values()), 3)


def _as_finished(
    client: Any,
    todo: list[Case],
    tasks: dict[str, CaseTask],
    models: dict[str, dict[str, Any]],
    own_cluster: bool,
) -> Iterator[tuple[Case, Any]]:
    """Submit the scenarios' tasks and yield each ``(case, future)`` as it finishes.

    On the LocalCluster started here, a scenario is handed to a worker thread only when the
    thread is free (one task in flight per thread), pinned to that worker: tasks submitted
    all at once are placed up front by the scheduler, and one worker can sit idle while
    another has a queue until work stealing moves them. A cluster of the caller's
    (--scheduler, client=) gets every task at once: it may scale with the backlog (adaptive)
    and its size is its own. A task pinned to a worker that dies runs on another.
    """
    from distributed import as_completed

    waiting = list(todo)
    running: dict[Any, tuple[Case, str]] = {}  # future -> (scenario, worker given)

    def submit(case: Case, worker: str) -> Any:
        future = client.submit(
            run_case,
            tasks[case.name],
            models[case.name],
            # one key prefix for every scenario: the scheduler learns their duration
            key=("pmcap-case", f"{case.slug}-{case.digest[:12]}-{time.time_ns()}"),
            pure=False,
            workers=[worker] if worker else None,
            allow_other_workers=bool(worker),  # a worker that dies hands it on
        )
        running[future] = (case, worker)
        return future

    def fill() -> list[Any]:
        """Submit waiting scenarios to the free worker threads (all of them at once to a
        cluster of the caller's)."""
        new = []
        if waiting and own_cluster:
            busy = collections.Counter(worker for _, worker in running.values())
            for address, threads in client.nthreads().items():
                while waiting and busy[address] < threads:
                    new.append(submit(waiting.pop(0), address))
                    busy[address] += 1
        # a caller's cluster, or no worker left: the scheduler holds the rest
        if waiting and (not own_cluster or not running):
            new += [submit(waiting.pop(0), "") for _ in list(waiting)]
        return new

    pending = as_completed(fill())
    for future in pending:
        case, _ = running.pop(future)
        for new in fill():
            pending.add(new)
        yield case, future


def _case_task(
    case: Case,
    sweep: Sweep,
    case_jobs: list,
    fitted: dict[tuple[str, str], tuple[Any, dict, str]],
    *,
    command: str,
    outputs: CaseOutputs,
    folder: Path | None,
    host_threads: dict[str, int],
    xlsx: bool,
) -> CaseTask:
    """The task of one scenario: its checked inputs, the diagnostics and sources of the models
    it uses (``case_jobs``, fitted in ``fitted``), its scenario.toml and manifest entries."""
    from pmcap.output import file_sha256

    text = case.text(sweep.title)
    sweep_case = _sweep_case(case, sweep)
    return CaseTask(
        scenario=case.scenario,
        parsed=case.parsed,
        diagnostics={j.label: fitted[j.kind, j.key][1] for j in case_jobs},
        sources={j.label: fitted[j.kind, j.key][2] for j in case_jobs},
        text=text,
        title=f"{case.name} (sweep: {sweep.title})",
        provenance={
            # this folder's own scenario.toml, which pmcap run reproduces
            "scenario": {
                "path": "scenario.toml",
                "sha256": hashlib.sha256(text.encode()).hexdigest(),
                # as pmcap run's: the parsed scenario and its input files
                "digest": case.scenario.digest(),
                "base": str(case.scenario.path),
            },
            "inputs": [
                {"path": str(p), "sha256": file_sha256(p)} for p in case.scenario.input_files()
            ],
            "sweep_case": sweep_case,
        },
        manifest={"command": command, "pmcap_output": 1, "sweep_case": sweep_case},
        outputs=outputs,
        folder=folder,
        host_threads=host_threads,
        xlsx=xlsx,
    )


def _sweep_case(case: Case, sweep: Sweep) -> dict[str, Any]:
    """A scenario's ``sweep_case`` entry in its manifest (its digest: resumed by a rerun)."""
    return {
        "name": case.name,
        "digest": case.digest,
        "changes": {k: value_label(v) for k, v in case.changes.items()},
        "sweep": str(sweep.path) if sweep.path else None,
    }


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, InputError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _write_failure(out: Path, case: Case, exc: BaseException, future) -> None:
    (out / "failed").mkdir(exist_ok=True)
    try:
        tb = "" if future is None else "".join(traceback.format_tb(future.traceback()))
    except Exception:
        tb = ""
    _write_bytes(
        out / "failed" / f"{case.slug}.txt",
        f"scenario: {case.name}\nerror: {_error_text(exc)}\n\n{tb}".encode(),
    )
