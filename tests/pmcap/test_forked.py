"""pmcap.forked.InChild: the child's result when it succeeds; the function run in this process
when the child dies, hangs or cannot be forked; a cancelled child is reaped."""

from __future__ import annotations

import os
import sys
import time

import pytest

from pmcap.forked import InChild


def test_the_result_comes_from_the_child():
    parent = os.getpid()
    job = InChild(lambda: {"pid": os.getpid(), "data": list(range(100_000))})
    pid = job.pid
    assert pid and pid != parent
    out = job.result()  # larger than a pipe's buffer: read while the child writes
    assert out["pid"] == pid and job.from_child
    assert out["data"] == list(range(100_000)) and job.pid == 0


def test_a_child_that_dies_leaves_the_work_to_the_parent():
    parent = os.getpid()
    job = InChild(lambda: os._exit(3) if os.getpid() != parent else "here")
    assert job.pid and job.result() == "here" and not job.from_child


def test_a_child_that_raises_leaves_the_work_to_the_parent():
    parent = os.getpid()

    def fn():
        if os.getpid() != parent:
            raise RuntimeError("in the child")
        return "here"

    assert InChild(fn).result() == "here"


def test_a_stuck_child_is_killed_after_the_timeout():
    parent = os.getpid()
    job = InChild(lambda: time.sleep(60) if os.getpid() != parent else "here", timeout_s=0.5)
    pid = job.pid
    assert job.result() == "here"
    with pytest.raises(ChildProcessError):  # killed and reaped
        os.waitpid(pid, 0)


def test_an_interrupted_wait_stops_the_child_and_cancel_stays_safe(monkeypatch):
    job = InChild(lambda: "done")
    pid = job.pid

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "read", interrupted)  # Ctrl-C while the parent reads
    with pytest.raises(KeyboardInterrupt):
        job.result()
    monkeypatch.undo()
    assert job.pid == 0 and job._read_end is None  # reaped and closed by result()
    job.cancel()  # the run's clean-up after the interruption: nothing left to do
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, 0)


def test_a_failed_fork_leaves_the_work_here(monkeypatch):
    def no_fork():
        raise BlockingIOError(11, "Resource temporarily unavailable")

    before = len(os.listdir("/proc/self/fd"))
    monkeypatch.setattr(os, "fork", no_fork)
    job = InChild(lambda: "here")
    assert job.pid == 0 and job.result() == "here" and not job.from_child
    assert len(os.listdir("/proc/self/fd")) == before  # the pipe was closed


def test_the_child_writes_nothing_to_the_parents_streams(capfd):
    import warnings

    def noisy():
        print("to stdout")
        print("to stderr", file=sys.stderr)
        warnings.warn("a warning", stacklevel=1)
        return 1

    job = InChild(noisy)
    assert job.result() == 1 and job.from_child
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_cancel_reaps_the_child():
    job = InChild(lambda: time.sleep(60))
    pid = job.pid
    job.cancel()
    job.cancel()  # once only
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, 0)


def test_without_fork_the_function_runs_here(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    job = InChild(lambda: os.getpid())
    assert job.pid == 0 and job.result() == os.getpid()
