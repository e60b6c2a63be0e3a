"""MkDocs hooks: docstring text that autorefs misreads as a cross-reference.

``capacity.requirements`` documents optional dims as ``month[, program][, stream]``, which
Markdown reads as a reference link to ``, stream``; the page shows it as written, but autorefs
warns and ``mkdocs build --strict`` fails. The warning is dropped here, and only that one:
delete this file (and ``hooks:`` in mkdocs.yml) once the docstring writes it another way.
"""

from __future__ import annotations

import logging

MISREAD = ("Could not find cross-reference target ', stream'",)


class _DropMisread(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(text in record.getMessage() for text in MISREAD)


def on_pre_build(config) -> None:
    # the handlers of the "mkdocs" logger include the warning counter of --strict
    for handler in logging.getLogger("mkdocs").handlers:
        handler.addFilter(_DropMisread())
