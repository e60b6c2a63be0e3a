"""The bundled process templates carry their own sources: an installed pmcap ships the
templates but not the repository's data/ folder or docs, so a template citing a file there
would cite something its reader does not have."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from capacity import load_process
from capacity.process import process_templates

TEMPLATES = sorted(process_templates())


def _text(name: str) -> str:
    return (resources.files("capacity") / "templates" / f"{name}.toml").read_text()


def _sources(text: str) -> dict[str, str]:
    """The header's ``#   SHORT NAME: full reference`` entries."""
    return dict(re.findall(r"^#   ([^:\n]+): (.+)$", text, flags=re.M))


def _value_comments(text: str) -> str:
    """The comments after the values (what cites the short names)."""
    return "\n".join(
        line.partition("#")[2] for line in text.splitlines() if not line.startswith("#")
    )


@pytest.mark.parametrize("name", TEMPLATES)
def test_a_template_cites_no_file_outside_the_installed_package(name):
    text = _text(name)
    assert not re.search(r"SOURCES|process_parameters|\bdata/|docs/|\.md\b", text), name
    load_process(name)  # and it still loads


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_short_citation_of_a_template_is_in_its_own_sources(name):
    text = _text(name)
    own = _sources(text)
    assert own, f"{name}: no Sources block"
    every = {short for t in TEMPLATES for short in _sources(_text(t))}
    body = _value_comments(text)
    used = {short for short in every if short in body}
    assert used, f"{name}: its values cite nothing"
    assert used <= set(own), f"{name}: cites {sorted(used - set(own))} without a reference"
    # each entry is a full reference (a journal, a standard or a publisher with a year)
    for short, full in own.items():
        assert re.search(r"\d{4}|USP|PDA|CRB", full), (short, full)
