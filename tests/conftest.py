"""Shared fixtures; the builders they use live in :mod:`tests.helpers`."""

from __future__ import annotations

import pytest

from capacity import ProcessSpec
from tests.helpers import fixed_process


@pytest.fixture
def process() -> ProcessSpec:
    return fixed_process()
