"""Shared fixtures; the builders they use live in :mod:`tests.helpers`."""

from __future__ import annotations

import pytest

from capacity import ProcessSpec
from tests.helpers import fixed_process


@pytest.fixture
def process() -> ProcessSpec:
    return fixed_process()


@pytest.fixture(scope="session")
def pmcap_cache(tmp_path_factory):
    """One fit cache (``PMCAP_CACHE``) for the test session: the example trial's enrollment
    model is fitted once, by the first test that runs it, and loaded from here by the others
    (fresh for every session, so the first fit is always tested)."""
    return tmp_path_factory.mktemp("pmcap-cache")
