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
    assert out["pid"] == pid
    assert out["data"] == list(range(100_000)) and job.pid == 0


def test_a_child_that_dies_leaves_the_work_to_the_parent():
    parent = os.getpid()
    job = InChild(lambda: os._exit(3) if os.getpid() != parent else "here")
    assert job.pid and job.result() == "here"


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
