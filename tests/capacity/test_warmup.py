"""capacity.warmup: the cache check reads numba's own index without compiling anything, the
child process starts only when a kernel is missing, and a twin run after the warm-up compiles
none of the twin's or the QC lab's kernels (the warm-up compiled the signatures a run uses)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from capacity import warmup
from pmcap.scenario import example_scenario_path


def _python(code: str, numba_cache, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(numba_cache)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env, capture_output=True, text=True, check=True, **kw,
    )  # fmt: skip


def test_an_empty_cache_is_seen_without_importing_the_kernels(tmp_path):
    out = _python(
        """
        import sys
        from capacity import warmup
        print([warmup.cached(p) for p in warmup.KERNELS])
        print(sorted(m for m in sys.modules if m.startswith("capacity._")))
        """,
        tmp_path,
    ).stdout.splitlines()
    assert out[0] == "[False, False, False, False]"
    # importing capacity._twin would compile its explicit signatures (seconds of CPU)
    kernels = {m for pairs in warmup.KERNELS.values() for m, _ in pairs}
    assert len(kernels) == 5 and not kernels & set(eval(out[1]))


def test_the_child_starts_only_for_parts_not_cached(monkeypatch):
    started = []

    class Popen:
        def __init__(self, args, **kw):
            started.append(args)
            self.env = kw["env"]

        def wait(self):
            started.append("waited")

        def terminate(self):
            started.append("terminated")

    monkeypatch.setattr(warmup.subprocess, "Popen", Popen)
    monkeypatch.setattr(warmup, "cached", lambda part: part == "twin")
    warm = warmup.start(["queue", "twin", "qclab"])
    assert started == [[sys.executable, "-m", "capacity.warmup", "queue", "qclab"]]
    assert warm.parts == ("queue", "qclab")
    warm.wait("requirements")  # not compiled there: no wait
    assert started[1:] == []
    warm.wait("qclab")
    warm.wait()  # a second wait does not wait again
    assert started[1:] == ["waited"]
    monkeypatch.setattr(warmup, "cached", lambda part: True)
    assert warmup.start(["twin", "qclab"]).process is None and len(started) == 2
    # a run that fails stops its child: terminated, then reaped
    monkeypatch.setattr(warmup, "cached", lambda part: False)
    failing = warmup.start(["twin"])
    # the child finds this capacity package whatever the parent's sys.path
    here = str(Path(warmup.__file__).resolve().parents[1])
    assert failing.process.env["PYTHONPATH"].split(os.pathsep)[0] == here
    failing.stop()
    failing.stop()
    assert started[-3:] == [[sys.executable, "-m", "capacity.warmup", "twin"], "terminated",
                            "waited"]  # fmt: skip


def test_each_part_names_kernels_of_its_module():
    import importlib

    for pairs in warmup.KERNELS.values():
        for module, names in pairs:
            kernels = importlib.import_module(module)
            assert all(hasattr(getattr(kernels, n), "py_func") for n in names), (module, names)


def test_an_unknown_part_is_refused():
    with pytest.raises(SystemExit, match="unknown part"):
        warmup.main(["twin", "qc"])


@pytest.mark.slow
def test_a_twin_run_after_the_warm_up_compiles_no_twin_or_lab_kernel(tmp_path):
    numba_cache = tmp_path / "numba"
    numba_cache.mkdir()
    # the example with a QC lab and fewer draws, without the suite service level (the run's
    # own suite queue kernels are not the warm-up's)
    folder = tmp_path / "example"
    shutil.copytree(example_scenario_path().parent, folder)
    scenario = folder / "scenario.toml"
    text = scenario.read_text()
    assert "[facility.qc_lab]" in text and "\nservice_level = " in text
    scenario.write_text(
        "\n".join(x for x in text.splitlines() if not x.startswith("service_level = "))
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(numba_cache)}
    subprocess.run([sys.executable, "-m", "capacity.warmup", "twin", "qclab"], env=env, check=True)
    out = _python(
        f"""
        from numba.core import event
        from capacity import warmup
        print(warmup.cached("twin"), warmup.cached("qclab"))
        compiled = []
        class Listener(event.Listener):
            def on_start(self, ev):
                f = ev.data["dispatcher"].py_func
                compiled.append(f.__module__ + "." + f.__qualname__)
            def on_end(self, ev):
                pass
        event.register("numba:compile", Listener())
        from pmcap.cli import app
        try:
            app(["run", {str(scenario)!r}, "--draws", "20", "--out", {str(tmp_path / "run")!r},
                 "--quiet"])
        except SystemExit as exit:
            assert not exit.code, exit.code
        ours = ("capacity._twin", "capacity._qclab")
        print(sorted({{m for m in compiled if m.startswith(ours)}}))
        """,
        numba_cache,
        cwd=tmp_path,
    ).stdout.splitlines()
    assert out[0] == "True True"
    assert (tmp_path / "run" / "qc_lab.csv").exists()
    assert out[-1] == "[]", out[-1]


def test_a_run_that_fails_after_starting_the_child_stops_it(monkeypatch):
    import pmcap.run
    from pmcap.scenario import load_scenario

    events = []

    class Popen:
        def __init__(self, args, **kw):
            events.append(args[3:])

        def wait(self):
            events.append("waited")

        def terminate(self):
            events.append("terminated")

    def fit_fails(*args, **kw):
        raise RuntimeError("the fit failed")

    monkeypatch.setattr(warmup.subprocess, "Popen", Popen)
    monkeypatch.setattr(warmup, "cached", lambda part: False)
    monkeypatch.setattr(pmcap.run, "fit_models", fit_fails)
    scenario = load_scenario(example_scenario_path())
    with pytest.raises(RuntimeError, match="the fit failed"):
        pmcap.run.run_scenario(scenario, background_compile=True)
    # started after the inputs were checked, with the twin's parts; stopped and reaped
    assert events == [["requirements", "twin", "qclab"], "terminated", "waited"]


def test_cached_reads_the_index_numba_writes_for_a_decorated_kernel(tmp_path, monkeypatch):
    # a kernel whose decorator spans lines (numba names its cache files by the first one)
    package = tmp_path / "wpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    source = package / "kern.py"
    source.write_text("import numba\n\n\n@numba.njit(\n    cache=True,\n)\ndef double(x):\n"
                      "    return 2 * x\n")  # fmt: skip
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(warmup.KERNELS, "test", (("wpkg.kern", ("double",)),))
    assert not warmup.cached("test")  # never compiled
    code = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import wpkg.kern as k; k.double(2)"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert warmup.cached("test")  # compiled in another process: its index is read here
    assert "wpkg.kern" not in sys.modules  # without importing the kernel
    source.write_text(source.read_text() + "# an edit\n")
    assert not warmup.cached("test")  # an index of the older source is not read
