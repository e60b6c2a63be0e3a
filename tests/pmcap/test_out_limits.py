"""What ``--out`` never replaces, even with ``--force``; an output folder of one kind is not
reused by another command or another sweep; a full disk ends in one message.

Each refusal exits 2 with one line ``pmcap: error: ...`` naming the folder, before any work,
and leaves every file byte-identical. No test here samples: the commands are refused before
any fit, or run ``pmcap capacity`` (no model).
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pmcap import output
from pmcap.cli import app
from pmcap.scenario import example_scenario_path
from tests.pmcap.test_output_safety import inputs, refused, run, snapshot  # noqa: F401

runner = CliRunner()


# --- folders --force never replaces -------------------------------------------------------


def test_force_never_replaces_the_home_folder(tmp_path, inputs, monkeypatch):  # noqa: F811
    home = tmp_path / "home"
    (home / "Documents").mkdir(parents=True)
    (home / "Documents" / "thesis.tex").write_text("years of work\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(inputs)  # the current folder is not above home: only the home rule applies
    before = snapshot(tmp_path)
    message = refused(run(inputs, home, "--force"), f"--out {home}", "home folder", "--force")
    assert "version-control" in message  # the message says what --force never replaces
    # a folder above the home folder is refused too
    refused(run(inputs, tmp_path, "--force"), "home folder")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("vcs", [".git", ".hg", ".svn"])
@pytest.mark.parametrize("depth", ["top", "nested"])
def test_force_never_replaces_a_folder_holding_a_repository(tmp_path, inputs, vcs, depth):  # noqa: F811
    out = tmp_path / "project"
    where = out if depth == "top" else out / "src" / "lib"
    (where / vcs).mkdir(parents=True)
    (where / vcs / "HEAD").write_text("ref: refs/heads/main\n")
    (out / "notes.md").write_text("mine\n")
    before = snapshot(tmp_path)
    message = refused(run(inputs, out, "--force"), f"--out {out}", str(where / vcs))
    assert "--force never replaces" in message
    assert snapshot(tmp_path) == before


def test_force_never_replaces_the_current_folder_and_says_why(tmp_path, inputs, monkeypatch):  # noqa: F811
    here = tmp_path / "above" / "here"
    here.mkdir(parents=True)
    (here / "keep.txt").write_text("keep\n")
    monkeypatch.chdir(here)
    before = snapshot(tmp_path)
    refused(run(inputs, here, "--force"), "current folder", "--force never replaces")
    refused(run(inputs, here.parent, "--force"), "current folder", "--force never replaces")
    assert snapshot(tmp_path) == before


def test_out_that_is_a_link_to_the_root_names_the_link(tmp_path, inputs):  # noqa: F811
    link = tmp_path / "out"
    link.symlink_to("/")
    for extra in ([], ["--force"]):
        message = refused(run(inputs, link, *extra), f"--out {link}", "symbolic link to /")
        assert "input" not in message  # not refused as "holds the input"
    assert os.readlink(link) == "/"


def test_force_still_replaces_a_folder_of_ones_own(tmp_path, inputs, monkeypatch):  # noqa: F811
    # the home rule does not refuse a folder inside the home folder
    monkeypatch.setenv("HOME", str(tmp_path))
    out = tmp_path / "mine"
    out.mkdir()
    (out / "old.txt").write_text("x\n")
    result = run(inputs, out, "--force")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "requirements.csv"]


# --- an output folder of one kind is not reused by another --------------------------------


def test_run_at_a_capacity_output_needs_force(tmp_path, inputs):  # noqa: F811
    out = tmp_path / "out"
    assert run(inputs, out).exit_code == 0
    before = snapshot(tmp_path)
    result = runner.invoke(app, ["run", "--out", str(out), "--quiet"])
    refused(result, f"--out {out}", "pmcap capacity", "not of pmcap run", "--force")
    assert snapshot(tmp_path) == before


def fake_sweep_output(out: Path, command: str, origin: str) -> dict[str, bytes]:
    """A sweep's folder as pmcap writes it: manifest, comparison, one scenario folder."""
    (out / "scenarios" / "a").mkdir(parents=True)
    output.write_manifest(out, command=command, origin=origin, files=["sweep.csv", "scenarios"])
    (out / "sweep.csv").write_text("scenario\na\n")
    (out / "scenarios" / "a" / "summary.json").write_text("{}")
    return snapshot(out)


def write_sweep_file(folder: Path, name: str) -> Path:
    path = folder / name
    path.write_text(f'[sweep]\nbase = "{example_scenario_path()}"\ntitle = "{name}"\n')
    return path


def test_sensitivity_at_a_sweep_folder_is_refused_before_any_work(tmp_path, monkeypatch):
    import pmcap.sensitivity

    def never(*args, **kwargs):
        raise AssertionError("the swings were built before --out was checked")

    monkeypatch.setattr(pmcap.sensitivity, "sensitivity_sweep", never)
    out = tmp_path / "sweep-out"
    before = fake_sweep_output(out, "sweep", str(tmp_path / "other.toml"))
    result = runner.invoke(app, ["sensitivity", "--out", str(out), "--quiet"])
    refused(result, f"--out {out}", "pmcap sweep", "not of pmcap sensitivity", "--force")
    assert snapshot(out) == before


def test_another_sweep_at_a_sweep_folder_is_refused(tmp_path, monkeypatch):
    import pmcap.sweep

    def never(*args, **kwargs):
        raise AssertionError("the sweep was loaded before --out was checked")

    monkeypatch.setattr(pmcap.sweep, "load_sweep", never)
    first = write_sweep_file(tmp_path, "first.toml")
    second = write_sweep_file(tmp_path, "second.toml")
    out = tmp_path / "sweep-out"
    before = fake_sweep_output(out, "sweep", str(first.resolve()))
    result = runner.invoke(app, ["sweep", str(second), "--out", str(out), "--quiet"])
    refused(result, f"--out {out}", "another sweep file", str(first.resolve()), "--force")
    assert snapshot(out) == before
    # a sensitivity folder is not a sweep's either
    sens = tmp_path / "sens-out"
    before = fake_sweep_output(sens, "sensitivity", str(example_scenario_path()))
    result = runner.invoke(app, ["sweep", str(second), "--out", str(sens), "--quiet"])
    refused(result, "pmcap sensitivity", "not of pmcap sweep")
    assert snapshot(sens) == before


def test_the_same_sweep_resumes_and_force_starts_afresh(tmp_path):
    from pmcap.sweep.runner import _start_folder, check_sweep_out

    sweep = write_sweep_file(tmp_path, "first.toml")
    origin = str(sweep.resolve())
    out = tmp_path / "sweep-out"
    fake_sweep_output(out, "sweep", origin)
    check_sweep_out(out, [sweep], command="sweep", origin=origin)  # resumed: no error
    other = str((tmp_path / "second.toml").resolve())
    check_sweep_out(out, [sweep], command="sweep", origin=other, force=True)
    before = snapshot(out)
    created, aside = _start_folder(out, force=True)
    assert created == [out]  # made anew
    assert out.is_dir() and list(out.iterdir()) == []  # the earlier sweep's files set aside
    assert aside.parent == tmp_path and aside.name.startswith(".sweep-out.pmcap-")
    assert snapshot(aside) == before


def test_sweep_force_keeps_the_limits_of_run_force(tmp_path, monkeypatch):
    sweep = write_sweep_file(tmp_path, "first.toml")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "a.txt").write_text("a\n")
    result = runner.invoke(
        app, ["sweep", str(sweep), "--out", str(tmp_path / "home"), "--force", "--quiet"]
    )
    refused(result, "home folder")
    assert (tmp_path / "home" / "a.txt").read_text() == "a\n"


# --- a full disk ---------------------------------------------------------------------------


def test_a_full_disk_is_one_message_and_the_old_output_survives(tmp_path, inputs, monkeypatch):  # noqa: F811
    import pmcap.export

    out = tmp_path / "out"
    assert run(inputs, out, "--seed", 1).exit_code == 0
    before = snapshot(tmp_path)
    size = sum(len(b) for name, b in before.items() if name.startswith(".out."))
    real = pmcap.export.write_csv

    def full(frame, path, *args, **kwargs):
        real(frame, path, *args, **kwargs)  # some bytes reach the disk, then it is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(pmcap.export, "write_csv", full)
    result = run(inputs, out, "--seed", 2)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    line = lines[0]
    assert line.startswith(f"pmcap: error: --out {out}: no space left on the disk holding")
    assert str(tmp_path) in line and "free" in line
    # the size of the earlier output it replaces, by hand
    assert f"about {size / 1024:,.1f} KiB (the size of the earlier output)" in line
    assert "earlier output is as it was" in line
    assert snapshot(tmp_path) == before  # the old output, and nothing left beside it
    assert json.loads((out / "manifest.json").read_text())["seed"] == 1


def test_a_full_disk_anywhere_else_is_one_message(tmp_path, inputs, monkeypatch):  # noqa: F811
    import pmcap.commands

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/cache/posterior.nc")

    monkeypatch.setattr(pmcap.commands, "capacity_to_folder", full)
    result = run(inputs, tmp_path / "out")
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.output.strip() == (
        "pmcap: error: no space left on the disk writing /cache/posterior.nc: free space"
    )


# --- sweeps: a cluster that cannot be reached, the sweep's size and progress --------------


def no_cluster(monkeypatch) -> list:
    """No fit (no MCMC) and a scheduler that refuses the connection, as cluster_client says;
    returns the list of fits started."""
    from concurrent.futures import Future
    from contextlib import contextmanager

    import pmcap.sweep.runner as sweep_runner
    from capacity.errors import InputError

    started = []

    def no_fits(fn, *args):
        started.append(fn)
        future: Future = Future()
        future.set_result(({}, {}, {}))
        return future

    @contextmanager
    def unreachable(workers, scheduler, *args, **kwargs):
        raise InputError(f"--scheduler {scheduler}: cannot connect (Timed out)")
        yield

    monkeypatch.setattr(sweep_runner, "_in_background", no_fits)
    monkeypatch.setattr(sweep_runner, "cluster_client", unreachable)
    return started


def test_a_sweep_whose_scheduler_cannot_be_reached_leaves_nothing(tmp_path, monkeypatch):
    fits = no_cluster(monkeypatch)
    sweep = write_sweep_file(tmp_path, "first.toml")
    out = tmp_path / "new" / "sweep"
    args = ["sweep", str(sweep), "--scheduler", "tcp://127.0.0.1:9", "--quiet", "--out"]
    result = runner.invoke(app, [*args, str(out)])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "cannot connect" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.toml"]  # no folder, no parent
    # no fit was started: a given cluster is reached first, so the command exits at once
    assert fits == []
    # an earlier folder of the same sweep is left as it was
    before = fake_sweep_output(out, "sweep", str(sweep.resolve()))
    result = runner.invoke(app, [*args, str(out)])
    assert result.exit_code == 2 and snapshot(out) == before


def test_a_forced_sweep_refused_by_its_cluster_puts_the_old_folder_back(tmp_path, monkeypatch):
    no_cluster(monkeypatch)
    sweep = write_sweep_file(tmp_path, "second.toml")
    out = tmp_path / "sweep-out"
    before = fake_sweep_output(out, "sweep", str(tmp_path / "first.toml"))
    args = ["sweep", str(sweep), "--scheduler", "tcp://127.0.0.1:9", "--quiet", "--force"]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 2 and "cannot connect" in result.output, result.output
    assert snapshot(out) == before  # the other sweep's folder, as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["second.toml", "sweep-out"]


def grid_sweep(folder: Path, n: int, m: int = 1) -> Path:
    path = write_sweep_file(folder, "grid.toml")
    suites = ", ".join(str(8 + i) for i in range(n))
    cost = ", ".join(str(1e6 * (i + 1)) for i in range(m))
    with path.open("a") as fh:
        fh.write(f'\n[grid]\n"facility.suites" = [{suites}]\n')
        if m > 1:
            fh.write(f'"facility.module_cost_per_year" = [{cost}]\n')
    return path


def test_a_sweep_says_its_size_before_checking_and_then_its_progress(tmp_path, monkeypatch):
    import pmcap.inputs
    from pmcap.sweep import load_sweep

    events: list[tuple[str, int, int]] = []
    real = pmcap.inputs.check_inputs

    def counted(scenario):
        events.append(("check", 0, 0))
        return real(scenario)

    monkeypatch.setattr(pmcap.inputs, "check_inputs", counted)
    path = grid_sweep(tmp_path, 6)

    def note(name, status, done, total):
        events.append((status, done, total))

    sweep = load_sweep(path, progress=note)
    assert len(sweep.cases) == 6
    # the size before the first check, then a report after each check
    steps = [x for k in range(1, 7) for x in (("check", 0, 0), ("checking", k, 6))]
    assert events == [("checking", 0, 6), *steps]


def test_the_command_line_prints_the_size_and_the_checks(tmp_path, monkeypatch):
    import pmcap.sweep

    def stop(sweep, out, **kwargs):
        raise SystemExit(0)  # the checks are what is shown here; nothing runs

    monkeypatch.setattr(pmcap.sweep, "run_sweep", stop)
    path = grid_sweep(tmp_path, 4, 3)
    result = runner.invoke(app, ["sweep", str(path), "--out", str(tmp_path / "o")])
    lines = result.output.splitlines()
    assert lines[0].strip() == "12 scenarios: checking each one's inputs", result.output
    assert lines[-1].strip().startswith("checked 12/12 (")


def test_a_sweep_over_the_limit_is_refused_before_any_check(tmp_path, monkeypatch):
    import pmcap.inputs

    base_checked = []

    def never(scenario):
        base_checked.append(1)
        if len(base_checked) > 1:
            raise AssertionError("a scenario was checked before the size was")
        return real(scenario)

    real = pmcap.inputs.check_inputs
    monkeypatch.setattr(pmcap.inputs, "check_inputs", never)
    path = grid_sweep(tmp_path, 101, 100)
    result = runner.invoke(app, ["sweep", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert "10,100 scenarios (1 variant x 10,100 grid combinations)" in result.output
    assert "at most 10,000" in result.output
