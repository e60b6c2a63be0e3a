"""Work that overlaps the rest of a run in a forked child process (Linux).

matplotlib's drawing and HDF5's writing hold the GIL, so a thread does not overlap them with
the run's other writing; a forked child does, on another core. It shares the parent's memory
copy-on-write (nothing is pickled on the way in) and sends back only its function's return
value, pickled, through a pipe.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any


class InChild:
    """``fn()`` in a forked child process; :meth:`result` gives its return value.

    The child writes nothing to the parent's standard output or error (its ``sys.stdout`` and
    ``sys.stderr`` are the null device, warnings ignored), runs ``fn``, sends its return value
    through a pipe and leaves with ``os._exit`` (no atexit handlers, no flush of the parent's
    buffers). Where ``fork`` is not available (not Linux) or fails, when the child fails, or
    when it has not sent its result ``timeout_s`` after :meth:`result` starts waiting (it is
    then killed), :meth:`result` runs ``fn`` in this process instead, so ``fn`` must give the
    same result and leave the same files when run again; ``from_child`` tells which happened.
    :meth:`cancel` stops a child whose result is not wanted (the run failed first).
    """

    def __init__(self, fn: Callable[[], Any], timeout_s: float = 600.0):
        self._fn, self._timeout_s = fn, timeout_s
        self.pid, self._read_end, self.from_child = 0, None, False
        if not sys.platform.startswith("linux"):
            return
        read_end, write_end = os.pipe()
        try:
            with warnings.catch_warnings():  # Python 3.12+: fork of a process with threads
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
        except OSError:  # no process to spare (EAGAIN, ENOMEM): the work is done here
            os.close(read_end)
            os.close(write_end)
            return
        if pid == 0:  # the child
            status = 1
            try:
                os.close(read_end)
                warnings.simplefilter("ignore")
                # fresh streams: the parent's may have been locked by another thread at fork
                sys.stdout = sys.stderr = open(os.devnull, "w")
                data = pickle.dumps(fn())
                with os.fdopen(write_end, "wb") as pipe:
                    pipe.write(data)
                status = 0
            finally:
                os._exit(status)
        os.close(write_end)
        self.pid, self._read_end = pid, read_end

    def result(self) -> Any:
        """``fn()``'s return value: the child's, else from running ``fn`` here."""
        if not self.pid:
            return self._fn()
        chunks: list[bytes] = []
        try:
            poller = select.poll()
            poller.register(self._read_end, select.POLLIN)
            deadline = time.monotonic() + self._timeout_s
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not poller.poll(left * 1000):  # a stuck child
                    os.kill(self.pid, signal.SIGKILL)
                    chunks = []
                    break
                chunk = os.read(self._read_end, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
            _, status = os.waitpid(self.pid, 0)
        except BaseException:  # interrupted (Ctrl-C): stop the child, then give way
            self.cancel()
            raise
        self.pid = 0
        self._close()
        if status == 0 and chunks:
            self.from_child = True
            return pickle.loads(b"".join(chunks))
        return self._fn()

    def cancel(self) -> None:
        """Stop the child, if it still runs unwaited; safe to call more than once."""
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            self.pid = 0
        self._close()

    def _close(self) -> None:
        if self._read_end is not None:
            os.close(self._read_end)
            self._read_end = None
