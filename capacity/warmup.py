"""Compile the facility kernels before a run needs them, in this process or in another one.

numba compiles a kernel the first time it is called and keeps the machine code in its on-disk
cache (``cache=True``), so only the first run after an install pays for it: on a 2-core
machine about 1.2 s of CPU for the lot draws of :func:`capacity.requirements`, 11 s for the
suite queue (:mod:`capacity._queue`), 10 s for the facility twin (:mod:`capacity._twin`) and
8 s for the QC laboratory (:mod:`capacity._qclab`), most of it numba's type inference, which
one Python process does on one core. A run compiles one signature of each kernel, and a small
call here compiles that same signature: ``tests/capacity/test_warmup.py`` checks that a run
after the twin's warm-up compiles no twin or QC-lab kernel, ``tests/pmcap/test_sweep.py``
that a run after the queue's (the sweep workers' preload) compiles no queue kernel.

:func:`start` compiles the parts a run will need in a child process (``python -m
capacity.warmup PART...``) while the run fits its models (and, with a twin, sizes its suites) on
the other core; the run calls :meth:`Warmup.wait` before the stage that needs them and then
loads them from the cache. With the kernels already cached it starts nothing.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: part -> (module, kernel entry points a run calls from Python) pairs
KERNELS = {
    "requirements": (
        ("capacity._binomial", ("binomial_rows",)),
        ("capacity._occupancy", ("lot_day_weights", "event_weights")),
    ),
    "queue": (("capacity._queue", ("_arrivals_chunk", "_job_processes_chunk", "_simulate_chunk")),),
    "twin": (("capacity._twin", ("_simulate_chunk", "summarise_chunk")),),
    "qclab": (("capacity._qclab", ("lab_draws",)),),
}


def cached(part: str) -> bool:
    """Whether numba's cache holds a compiled signature of every entry point of ``part`` for
    the current source (an index written for an older source is not read).

    Checked without importing the kernels' module, whose explicit signatures compile at import:
    numba's own cache lookup is given a stand-in function with each kernel's file, qualified
    name and first line (its first decorator's, as ``co_firstlineno``).
    """
    import ast
    import importlib.util

    from numba.core.caching import FunctionCache

    try:
        for module, names in KERNELS[part]:
            path = importlib.util.find_spec(module).origin
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read())
            first = {
                node.name: min([node.lineno, *(d.lineno for d in node.decorator_list)])
                for node in tree.body
                if isinstance(node, ast.FunctionDef)
            }
            for name in names:
                scope: dict = {}
                code = compile("\n" * (first[name] - 1) + f"def {name}(): pass", path, "exec")
                exec(code, scope)
                if not FunctionCache(scope[name])._cache_file._load_index():
                    return False
        return True
    except Exception:  # numba's private cache API moved: compile in the run as usual
        return True


def _demand(programs: list[str]):
    import xarray as xr

    return xr.DataArray(
        np.ones((2, 3, len(programs), 3), np.int64),
        dims=("draw", "month", "program", "stream"),
        coords={
            "draw": np.arange(2),
            "month": pd.date_range("2027-01-01", periods=3, freq="MS"),
            "program": programs,
            "stream": ["clinical", "commercial", "ppq"],
        },
    )


def warm_requirements() -> None:
    """Draw the lots of a two-draw, three-month demand."""
    from capacity import requirements

    requirements(_demand(["warm-up"]), "car-t-autologous-manual", seed=0)


def warm_queue() -> None:
    """Size a two-draw, three-month facility on two processes (the kernel that gives each lot
    its process compiles too)."""
    from capacity import facility, load_process, requirements, suites_for_service_level

    demand = _demand(["warm-up", "warm-up-2"])
    manual = load_process("car-t-autologous-manual")
    automated = load_process("car-t-autologous-automated")
    process = {"warm-up": manual, "warm-up-2": automated}
    peak = facility(requirements(demand, process, seed=0))["suites"].max("month").values
    suites_for_service_level(
        demand,
        process,
        max_wait_days=3.0,
        epsilon=0.1,
        seed=0,
        by_month=False,
        start=peak,
        params={s.name: s.sample(2, 0) for s in (manual, automated)},
    )


def warm_twin(qc_lab: bool = False) -> None:
    """Run the twin on two draws and three months, with a QC laboratory when ``qc_lab``."""
    from capacity import load_process
    from capacity.qclab import QCLab
    from capacity.twin import CrewConfig, QCLabStage, simulate_twin

    spec = load_process("car-t-autologous-manual")
    stage = None
    if qc_lab:
        lab = QCLab([spec], analysts=1, instruments={a.instrument: 1 for a in spec.qc})
        stage = QCLabStage(lab, seed=0)
    simulate_twin(
        _demand(["warm-up"]), spec, 2, operators=8.0, crews=CrewConfig(), qc_stage=stage, seed=0
    )


@dataclass
class Warmup:
    """A child process compiling ``parts`` into numba's cache (:meth:`start`)."""

    process: subprocess.Popen | None = None
    parts: tuple[str, ...] = ()

    def start(self, parts: list[str]) -> None:
        """Compile ``parts`` (keys of :data:`KERNELS`, compiled in that order; ``"qclab"``
        implies ``"twin"``), those not cached yet, in a child process. A run waits
        (:meth:`wait`) before the stage that needs ``queue``, ``twin`` or ``qclab``; one that
        reaches ``requirements`` first compiles them itself."""
        import os
        from pathlib import Path

        missing = [p for p in parts if not cached(p)]
        if not missing:
            return
        # the child imports this capacity package, wherever the parent found it
        here = str(Path(__file__).resolve().parents[1])
        path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "capacity.warmup", *missing],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": path},
        )
        self.parts = tuple(missing)

    def wait(self, part: str | None = None) -> None:
        """Wait for the child (when it compiles ``part``, if given): its kernels are then in
        the cache. A failed child changes nothing but time (the run compiles them itself)."""
        if self.process is not None and (part is None or part in self.parts):
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        """Stop the child (the run failed): numba writes each cache file whole (a temporary
        file renamed), so a stopped child leaves the cache as it was or with whole kernels."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait()
            self.process = None


def start(parts: list[str]) -> Warmup:
    """A :class:`Warmup` started on ``parts``."""
    warm = Warmup()
    warm.start(parts)
    return warm


def main(parts: list[str]) -> None:
    unknown = sorted(set(parts) - set(KERNELS))
    if unknown:
        raise SystemExit(f"capacity.warmup: unknown part(s) {unknown}; known: {list(KERNELS)}")
    if "requirements" in parts:
        warm_requirements()
    if "queue" in parts:
        warm_queue()
    if "twin" in parts or "qclab" in parts:
        warm_twin(qc_lab="qclab" in parts)


if __name__ == "__main__":
    main(sys.argv[1:])
