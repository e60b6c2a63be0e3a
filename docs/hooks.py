"""MkDocs hooks for docstrings written for Sphinx, shown by mkdocstrings.

* Sphinx roles (``:func:`capacity.requirements```, ``:class:`~forecast.UptakeModel```) would
  show as ``:func:`` before the name: the role and a leading ``~`` are dropped, the name stays
  as code.
* ``capacity.requirements`` documents optional dims as ``month[, program][, stream]``, which
  Markdown reads as a reference link to ``, stream``; the page shows it as written, but autorefs
  warns and ``mkdocs build --strict`` fails. That one warning is dropped; delete ``MISREAD``
  once the docstring writes it another way.
"""

from __future__ import annotations

import logging
import re

MISREAD = ("Could not find cross-reference target ', stream'",)
SPHINX_ROLE = re.compile(r":(?:func|meth|class|mod|data|attr|obj|exc):(<code>)~?")


class _DropMisread(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(text in record.getMessage() for text in MISREAD)


def on_pre_build(config) -> None:
    # the handlers of the "mkdocs" logger include the warning counter of --strict
    for handler in logging.getLogger("mkdocs").handlers:
        handler.addFilter(_DropMisread())


def on_page_content(html: str, **kwargs) -> str:
    return SPHINX_ROLE.sub(r"\1", html)
