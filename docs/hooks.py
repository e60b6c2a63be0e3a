"""MkDocs hooks for docstrings written for Sphinx, shown by mkdocstrings.

* Sphinx roles (``:func:`capacity.requirements```, ``:class:`~forecast.UptakeModel```) would
  show as ``:func:`` before the name: the role and a leading ``~`` are dropped, the name stays
  as code.
"""

from __future__ import annotations

import re

SPHINX_ROLE = re.compile(r":(?:func|meth|class|mod|data|attr|obj|exc):(<code>)~?")


def on_page_content(html: str, **kwargs) -> str:
    return SPHINX_ROLE.sub(r"\1", html)
