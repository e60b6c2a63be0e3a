"""``--out`` never destroys or hides a user's files (issue 12, part 1).

Refusals exit 2 with one line ``pmcap: error: ...`` and leave every file byte-identical; a
previous pmcap output is replaced; a killed run leaves ``out`` as the complete old or the
complete new output, and the next run clears what the killed one left behind.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from capacity import write_demand
from pmcap.cli import app
from tests.conftest import make_demand

ROOT = Path(__file__).resolve().parents[2]
PROCESS = ROOT / "data/examples/process.toml"
runner = CliRunner()


@pytest.fixture
def inputs(tmp_path):
    """A user's folder: demand.csv, process.toml and an unrelated notes.txt."""
    folder = tmp_path / "work"
    folder.mkdir()
    values = np.random.default_rng(0).poisson(4, (20, 4, 2, 3))
    write_demand(make_demand(values, programs=["A", "B"]), folder / "demand.csv")
    shutil.copy(PROCESS, folder / "process.toml")
    (folder / "notes.txt").write_text("my notes\n")
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) and its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def run(inputs: Path, out: Path | str, *args):
    return runner.invoke(
        app,
        [
            "capacity",
            str(inputs / "demand.csv"),
            "--process",
            str(inputs / "process.toml"),
            "--out",
            str(out),
            *map(str, args),
        ],
    )


def refused(result, *words: str) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("pmcap: error: "), result.output
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def litter(out: Path) -> list[str]:
    """Hidden entries next to ``out`` other than the folder ``out`` links to."""
    target = os.readlink(out) if out.is_symlink() else None
    return sorted(
        p.name for p in out.parent.iterdir() if p.name.startswith(".") and p.name != target
    )


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize("force", [False, True])
def test_out_at_the_inputs_folder_is_refused(tmp_path, inputs, force):
    before = snapshot(tmp_path)
    message = refused(run(inputs, inputs, *(["--force"] if force else [])), "input", "demand.csv")
    assert str(inputs) in message
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]


@pytest.mark.parametrize("force", [False, True])
def test_out_at_an_input_file_is_refused(tmp_path, inputs, force):
    before = snapshot(tmp_path)
    refused(run(inputs, inputs / "demand.csv", *(["--force"] if force else [])), "input")
    assert (inputs / "demand.csv").is_file()
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("force", [False, True])
def test_out_at_an_existing_file_is_refused(tmp_path, inputs, force):
    before = snapshot(tmp_path)
    refused(run(inputs, inputs / "notes.txt", *(["--force"] if force else [])), "file")
    assert (inputs / "notes.txt").is_file()
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in inputs.iterdir()) == ["demand.csv", "notes.txt", "process.toml"]


def test_out_at_a_folder_above_the_inputs_is_refused_even_with_force(tmp_path, inputs):
    before = snapshot(tmp_path)
    refused(run(inputs, tmp_path, "--force"), "input")
    assert snapshot(tmp_path) == before


def test_out_inside_an_input_file_is_refused(tmp_path, inputs):
    before = snapshot(tmp_path)
    refused(run(inputs, inputs / "demand.csv" / "out"), "demand.csv")
    assert snapshot(tmp_path) == before


def test_out_at_a_folder_with_other_content_needs_force(tmp_path, inputs):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "report.docx").write_bytes(b"\x00precious")
    before = snapshot(tmp_path)
    refused(run(inputs, out), "report.docx", "--force")
    assert snapshot(tmp_path) == before

    assert run(inputs, out, "--force").exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "requirements.csv"]
    assert litter(out) == []


def test_out_under_a_file_is_refused(tmp_path, inputs):
    before = snapshot(tmp_path)
    refused(run(inputs, inputs / "notes.txt" / "sub" / "out"), "notes.txt", "file")
    assert snapshot(tmp_path) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_out_under_a_read_only_folder_is_refused(tmp_path, inputs):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        refused(run(inputs, locked / "out"), str(locked), "writ")
    finally:
        locked.chmod(0o755)
    assert list(locked.iterdir()) == []


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (errno.EACCES, "Permission denied"),
        (errno.EROFS, "Read-only file system"),
        (errno.ENOTDIR, "Not a directory"),
        (errno.EEXIST, "File exists"),
    ],
)
def test_os_errors_while_creating_become_one_line(tmp_path, inputs, monkeypatch, code, reason):
    import pmcap.output

    def fail(path, *args, **kwargs):
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(pmcap.output, "_mkdir", fail)
    out = tmp_path / "out"
    refused(run(inputs, out), str(out), reason)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]


# --- replacing pmcap's own output ----------------------------------------------------------


def test_rerun_replaces_previous_output_and_readers_can_cd_into_it(tmp_path, inputs, monkeypatch):
    out = tmp_path / "out"
    assert run(inputs, out, "--seed", 1).exit_code == 0
    first = (out / "requirements.csv").read_bytes()
    result = run(inputs, out, "--seed", 2)
    assert result.exit_code == 0, result.output
    assert (out / "requirements.csv").read_bytes() != first
    assert json.loads((out / "manifest.json").read_text())["seed"] == 2
    assert litter(out) == []
    monkeypatch.chdir(out)
    assert sorted(os.listdir(".")) == ["manifest.json", "requirements.csv"]
    assert Path("requirements.csv").read_text().startswith("month,program,metric")


def test_empty_folder_is_replaced(tmp_path, inputs):
    out = tmp_path / "out"
    out.mkdir()
    assert run(inputs, out).exit_code == 0
    assert (out / "manifest.json").is_file()
    assert litter(out) == []


def test_output_of_an_older_pmcap_is_replaced(tmp_path, inputs):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"command": "capacity", "versions": {}}))
    (out / "requirements.csv").write_text("old\n")
    result = run(inputs, out)
    assert result.exit_code == 0, result.output
    assert (out / "requirements.csv").read_text().startswith("month,")
    assert litter(out) == []


def test_a_user_file_added_to_a_pmcap_output_needs_force(tmp_path, inputs):
    out = tmp_path / "out"
    assert run(inputs, out).exit_code == 0
    (out / "my-analysis.xlsx").write_bytes(b"mine")
    before = snapshot(tmp_path)
    refused(run(inputs, out, "--seed", 3), "my-analysis.xlsx", "--force")
    assert snapshot(tmp_path) == before
    assert run(inputs, out, "--seed", 3, "--force").exit_code == 0
    assert not (out / "my-analysis.xlsx").exists()


def test_manifest_marks_pmcap_output(tmp_path, inputs):
    out = tmp_path / "out"
    assert run(inputs, out).exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["pmcap_output"] == 1
    assert manifest["files"] == ["requirements.csv"]
