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
import sys
import warnings
from collections.abc import Callable
from typing import Any


class InChild:
    """``fn()`` in a forked child process; :meth:`result` gives its return value.

    The child runs ``fn``, sends its return value through a pipe and leaves with
    ``os._exit`` (no atexit handlers, no flush of the parent's buffers). Where ``fork`` is
    not available (not Linux), when the child fails, or when it sends nothing for
    ``timeout_s`` (it is then killed), :meth:`result` runs ``fn`` in this process instead, so
    ``fn`` must give the same result and leave the same files when run again. :meth:`cancel`
    stops a child whose result is not wanted (the run failed first).
    """

    def __init__(self, fn: Callable[[], Any], timeout_s: float = 300.0):
        self._fn, self._timeout_s, self.pid = fn, timeout_s, 0
        if not sys.platform.startswith("linux"):
            return
        read_end, write_end = os.pipe()
        with warnings.catch_warnings():  # Python 3.12+: fork of a process with threads
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child
            status = 1
            try:
                os.close(read_end)
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
        chunks = []
        with os.fdopen(self._read_end, "rb", buffering=0) as pipe:
            while select.select([pipe], [], [], self._timeout_s)[0]:
                chunk = pipe.read(1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
            else:  # nothing for timeout_s: a stuck child
                os.kill(self.pid, 9)
        _, status = os.waitpid(self.pid, 0)
        self.pid = 0
        if status == 0 and chunks:
            return pickle.loads(b"".join(chunks))
        return self._fn()

    def cancel(self) -> None:
        """Stop the child, if it still runs unwaited."""
        if self.pid:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
            os.close(self._read_end)
            self.pid = 0
