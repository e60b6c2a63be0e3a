"""The repository's commit-msg hook: subject of at most 72 characters, a blank line after it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

HOOK = Path(__file__).resolve().parents[1] / ".githooks" / "commit-msg"


def _check(tmp_path: Path, message: str) -> int:
    path = tmp_path / "COMMIT_EDITMSG"
    path.write_text(message)
    return subprocess.run(["bash", str(HOOK), str(path)], capture_output=True).returncode


@pytest.mark.parametrize(
    ("message", "accepted"),
    [
        ("Split the sweep module by job\n\nThe body with numbers.\n", True),
        ("x" * 72 + "\n", True),
        ("x" * 73 + "\n", False),
        ("Subject\nbody without a blank line\n", False),
        ("# a comment git strips\nSubject\n\nbody\n", True),
    ],
)
def test_commit_msg_hook(tmp_path, message, accepted):
    assert (_check(tmp_path, message) == 0) is accepted
