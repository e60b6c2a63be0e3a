"""``--out`` never destroys or hides a user's files.

Refusals exit 2 with one line ``pmcap: error: ...`` and leave every file byte-identical; a
previous pmcap output is replaced; a killed run leaves ``out`` as the complete old or the
complete new output, and the next run clears what the killed one left behind.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from capacity import InputError, write_demand
from pmcap import output
from pmcap.cli import app
from tests.helpers import make_demand

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


def test_out_under_a_read_only_folder_is_refused(tmp_path, inputs):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.access(locked, os.W_OK):  # root (see the monkeypatched test below)
        locked.chmod(0o755)
        pytest.skip("this user may write into read-only folders")
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


def test_out_replaced_by_a_file_during_the_run_is_left_alone(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(InputError, match="is a file"), output.atomic_folder(out) as folder:
        output.write_manifest(folder, command="test")
        out.write_text("written by someone else meanwhile\n")
    assert out.read_text() == "written by someone else meanwhile\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# --- the API the commands call ---------------------------------------------------------------


def test_check_out_api(tmp_path, inputs, monkeypatch):
    monkeypatch.chdir(inputs)
    output.check_out(Path("new-out"), inputs=[Path("demand.csv")])
    with pytest.raises(InputError, match="holds the input demand.csv"):
        output.check_out(Path("."), inputs=[Path("demand.csv")], force=True)
    with pytest.raises(InputError, match="holds the current folder"):
        output.check_out(tmp_path, force=True)
    with pytest.raises(InputError, match="is the input"):
        output.check_out(inputs / "process.toml", inputs=[Path("process.toml")], force=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to("elsewhere")
    with pytest.raises(InputError, match="symbolic link to elsewhere that pmcap did not make"):
        output.check_out(tmp_path / "link", force=True)
    with pytest.raises(InputError, match="pmcap keeps beside an output"):
        output.check_out(tmp_path / ".out.pmcap-12-0123abcd", force=True)
    assert sorted(os.listdir(tmp_path)) == ["elsewhere", "link", "work"]


def test_atomic_folder_keeps_its_old_signature(tmp_path):
    out = tmp_path / "out"
    for tag in ("a", "b"):
        with output.atomic_folder(out) as folder:
            (folder / "x.txt").write_text(tag)
            output.write_manifest(folder, command="test")
    assert (out / "x.txt").read_text() == "b"
    with pytest.raises(RuntimeError), output.atomic_folder(out) as folder:
        (folder / "x.txt").write_text("c")
        raise RuntimeError
    assert (out / "x.txt").read_text() == "b"
    assert litter(out) == []


@pytest.mark.parametrize("exchange", [True, False])
def test_filesystem_without_symlinks_gets_a_real_folder(tmp_path, monkeypatch, exchange):
    def refuse(target, path):
        raise OSError(errno.EPERM, "Operation not permitted", str(path))

    monkeypatch.setattr(output, "_symlink", refuse)
    if not exchange:
        monkeypatch.setattr(output, "_renameat2", None)
    out = tmp_path / "out"
    for tag in ("a", "b"):
        with output.atomic_folder(out) as folder:
            (folder / "x.txt").write_text(tag)
            output.write_manifest(folder, command="test")
        assert out.is_dir() and not out.is_symlink()
        assert (out / "x.txt").read_text() == tag
        assert litter(out) == []


# --- leftovers of killed runs ----------------------------------------------------------------


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_next_run_removes_what_killed_runs_left(tmp_path, inputs):
    out = tmp_path / "out"
    assert run(inputs, out).exit_code == 0
    pid, alive = dead_pid(), os.getppid()
    for name in (
        f".out.pmcap-{pid}-0123abcd",  # a killed run's folder
        f".out.pmcap-{pid}-4567abcd.link",  # ... and the old output it swapped out
        ".out.ab_c1234.tmp",  # an older pmcap's temp folder
        f".out.old-{pid}",  # ... and its old output
        f".out.pmcap-{alive}-89abcdef",  # a run still going on: kept
        ".outer",  # not ours: kept
        ".out.notes",  # not ours: kept
    ):
        (tmp_path / name).mkdir()
        (tmp_path / name / "f.txt").write_text("x")
    os.symlink(f".out.pmcap-{pid}-0123abcd", tmp_path / f".out.pmcap-{pid}-cdef0123.link")

    assert run(inputs, out).exit_code == 0
    assert litter(out) == [".out.notes", f".out.pmcap-{alive}-89abcdef", ".outer"]


@pytest.mark.parametrize("aside", ["{name}.pmcap-{pid}-0123abcd.old", "{name}.old-{pid}"])
def test_next_run_puts_back_an_output_left_aside(tmp_path, aside):
    out = tmp_path / "out"
    with output.atomic_folder(out) as folder:
        (folder / "x.txt").write_text("old")
        output.write_manifest(folder, command="test")
    real = tmp_path / os.readlink(out)
    out.unlink()  # as a run killed between its two renames leaves it
    real.rename(tmp_path / aside.format(name=".out", pid=dead_pid()))
    with pytest.raises(RuntimeError), output.atomic_folder(out):
        raise RuntimeError
    assert (out / "x.txt").read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["out"]


# --- kills ---------------------------------------------------------------------------------

STEPS = ("_mkdir", "_symlink", "_rename", "_rename_new", "_replace", "_exchange", "_unlink")
STEPS += ("_rmtree",)


def write_killed_at(out: Path, kill_at: int, tag: str) -> bool:
    """Write a small output to ``out`` in a forked process that SIGKILLs itself before its
    ``kill_at``-th filesystem step; True if it was killed, False if it finished."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            steps = itertools.count()

            def step():
                if next(steps) == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)

            def hooked(original):
                def call(*args, **kwargs):
                    step()
                    return original(*args, **kwargs)

                return call

            for name in STEPS:
                setattr(output, name, hooked(getattr(output, name)))
            with output.atomic_folder(out) as folder:
                for i in range(3):
                    step()
                    (folder / f"part{i}.txt").write_text(tag * 100)
                step()
                output.write_manifest(folder, command="test", tag=tag)
            step()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return True
    assert os.WEXITSTATUS(status) == 0
    return False


def tag_of(out: Path) -> str | None:
    """None if there is no ``out``; else the tag of the complete output there (or fail)."""
    if not os.path.lexists(out):
        return None
    assert sorted(os.listdir(out)) == ["manifest.json", "part0.txt", "part1.txt", "part2.txt"]
    tag = json.loads((out / "manifest.json").read_text())["tag"]
    assert all((out / f"part{i}.txt").read_text() == tag * 100 for i in range(3))
    return tag


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "no-exchange"])
@pytest.mark.parametrize("before", ["none", "older-pmcap", "pmcap"])
def test_kill_between_any_two_steps_leaves_old_or_new(tmp_path, monkeypatch, before, exchange):
    if not exchange:
        monkeypatch.setattr(output, "_renameat2", None)
    for kill_at in itertools.count():
        assert kill_at < 60, "the run never finished"
        out = tmp_path / str(kill_at) / "out"
        out.parent.mkdir()
        old = None if before == "none" else "old"
        if before == "older-pmcap":  # a real folder, as older pmcap versions wrote
            out.mkdir()
            for i in range(3):
                (out / f"part{i}.txt").write_text("old" * 100)
            (out / "manifest.json").write_text(
                json.dumps({"command": "t", "versions": {}, "tag": old})
            )
        elif before == "pmcap":
            assert not write_killed_at(out, -1, "old")

        killed = write_killed_at(out, kill_at, "new")
        if exchange or before != "older-pmcap":
            assert tag_of(out) in (old, "new"), kill_at
        with pytest.raises(RuntimeError), output.atomic_folder(out):  # the next run ...
            raise RuntimeError  # ... fails, yet puts back an output a kill left aside
        assert tag_of(out) in (old, "new"), kill_at
        assert not write_killed_at(out, -1, "final")
        assert tag_of(out) == "final"
        assert litter(out) == [], kill_at
        if not killed:
            break
    print(f"{before}, exchange={exchange}: killed before each of {kill_at} steps")


def test_sigkill_at_random_points_leaves_old_or_new_output(tmp_path, inputs):
    out = tmp_path / "out"

    def command(seed: int, where: Path = out) -> list[str]:
        return [sys.executable, "-m", "pmcap.cli", "capacity", str(inputs / "demand.csv")] + [
            "--process",
            str(inputs / "process.toml"),
            "--out",
            str(where),
            "--seed",
            str(seed),
        ]

    start = time.perf_counter()
    subprocess.run(command(1), check=True, capture_output=True)
    duration = time.perf_counter() - start  # only to spread the kills over a run
    subprocess.run(command(2, tmp_path / "ref" / "out"), check=True, capture_output=True)
    expected = {1: (out / "requirements.csv").read_bytes()}
    expected[2] = (tmp_path / "ref" / "out" / "requirements.csv").read_bytes()

    def seed_of(out: Path) -> int:
        assert sorted(os.listdir(out)) == ["manifest.json", "requirements.csv"]
        seed = json.loads((out / "manifest.json").read_text())["seed"]
        assert (out / "requirements.csv").read_bytes() == expected[seed]
        return seed

    rng = np.random.default_rng(12)
    current = 1
    for i in range(8):
        seed = 3 - current  # the other one, so old and new differ
        proc = subprocess.Popen(command(seed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.6, 1.2) * duration)
        proc.kill()
        proc.wait()
        now = seed_of(out)
        assert now in (current, seed), i
        current = now
    subprocess.run(command(3 - current), check=True, capture_output=True)
    assert seed_of(out) == 3 - current
    assert litter(out) == []
