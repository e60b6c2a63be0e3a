"""Scenario sweeps on dask.distributed: many variants of one scenario, compared.

A sweep file (TOML) names a base scenario and the changes to apply::

    [sweep]
    base = "portfolio/scenario.toml"      # relative to the sweep file
    title = "Facility and process options"

    [set]                                 # applied to every scenario
    "run.draws" = 400

    [grid]                                # every combination of these values
    "facility.suites" = [12, 16]

    [[variant]]                           # named variants (each crossed with the grid)
    name = "as planned"

    [[variant]]
    name = "all automated"
    "program.CART-A.process" = "car-t-autologous-automated"
    "process.car-t-autologous-automated.culture_days" = {triangular = [6, 7, 9]}

Keys are dotted paths into the scenario: ``run.*``, ``models.*``, ``facility.*``,
``program.NAME.*`` (the program with that name) and ``process.NAME.*`` (fields of the process
named NAME, as in a scenario's ``[process.NAME]`` table). Keys may also be written as nested
tables (``[grid.facility] suites = [12, 16]``). Paths to files given in the sweep file are
relative to the sweep file. Every scenario is checked before anything runs: a bad key or
value exits with status 2 naming the sweep file, the scenario and the key.

Execution: each scenario is one task on a dask.distributed cluster: a ``LocalCluster``
(processes, one thread each) by default, or any running cluster by address. The scenario's
input files are read and checked, and its models fitted (or taken from the cache), once
per distinct input in this process; the fitted posteriors are scattered to the workers once
and shared by every scenario that needs them. A worker needs pmcap (same version) and its
dependencies installed, not the input files. Each finished scenario's run folder is written
(atomically) as soon as it arrives, so an interrupted sweep keeps what finished; a rerun skips
scenarios whose folder holds a summary for the same scenario hash (scenario content, input
files, pmcap's version and source). A failed scenario is reported with its error and does not
stop the others.

What a scenario writes is data on its :class:`Case` (``outputs``, a :class:`CaseOutputs`: a
full run folder, per-draw peaks, the inputs sampled per draw); tables an analysis adds to the
comparison are a :class:`Sweep`'s ``extra_tables`` (pmcap sensitivity's tornado and ranking).

The modules, by job: :mod:`pmcap.sweep.cases` (sweep file -> checked scenarios),
:mod:`pmcap.sweep.task` (one scenario as a dask task), :mod:`pmcap.sweep.cluster` (the dask
cluster and its workers), :mod:`pmcap.sweep.runner` (:func:`run_sweep`: resuming, fitting,
feeding the tasks) and :mod:`pmcap.sweep.comparison` (sweep.csv, sweep_monthly.csv,
sweep.html).
"""

from pmcap.sweep.cases import (
    Case,
    CaseOutputs,
    ExtraOutputs,
    ExtraTables,
    Sweep,
    is_distribution,
    load_sweep,
    make_cases,
)
from pmcap.sweep.runner import SweepResult, run_sweep
from pmcap.sweep.task import SUMMARY, summarize

__all__ = [
    "Case",
    "CaseOutputs",
    "ExtraOutputs",
    "ExtraTables",
    "Sweep",
    "SweepResult",
    "is_distribution",
    "load_sweep",
    "make_cases",
    "run_sweep",
    "summarize",
    "SUMMARY",
]
