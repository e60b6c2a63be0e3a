"""Reading a scenario file: TOML, validation with one InputError naming the file and key,
the files it names, and the bundled example.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from capacity.errors import InputError
from pmcap.scenario.errors import describe_validation_error
from pmcap.scenario.model import Scenario


def example_scenario_path() -> Path:
    """The bundled example portfolio: ``pmcap/example/`` in an installed wheel,
    ``data/examples/portfolio/`` in a source checkout."""
    from importlib import resources

    shipped = resources.files("pmcap").joinpath("example", "scenario.toml")
    if shipped.is_file():
        return Path(str(shipped))
    here = Path(__file__).resolve().parents[2] / "data" / "examples" / "portfolio" / "scenario.toml"
    if not here.exists():
        raise InputError(
            f"{here}: the bundled example is not found; run pmcap from a source checkout "
            "(pip install -e .) or give a scenario file"
        )
    return here


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """A TOML file's tables, or one InputError naming the file (``what``: "scenario")."""
    if not path.exists():
        raise InputError(f"{path}: no such {what} file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; expected a {what} .toml file")
    try:
        return tomllib.loads(path.read_text())
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file; expected a {what} .toml file") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file, including that every file it names exists."""
    path = Path(path)
    return scenario_from_tables(read_toml(path, "scenario"), path, str(path))


def scenario_from_tables(raw: dict[str, Any], path: Path, where: str) -> Scenario:
    """Validate a scenario's tables (``raw``, as read from TOML) located at ``path``: its
    relative file paths are relative to ``path``'s folder, and every file it names must
    exist. Errors name ``where`` (the file, or a sweep's scenario) and the key."""
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        raise InputError(describe_validation_error(exc, where, raw)) from None
    scenario._path = Path(path).resolve()
    scenario._given = Path(path)
    check_files(scenario, where)
    return scenario


def check_files(scenario: Scenario, where: str) -> None:
    """Every file the scenario names exists (InputError naming ``where`` and the key)."""
    for i, p in enumerate(scenario.program):
        at = f"{where}: program[{i}] ({p.name})"
        files = []
        if p.enrollment is not None:
            files += [
                ("enrollment." + k, getattr(p.enrollment, k))
                for k in ("patients", "counts", "sites")
            ]
        if p.uptake is not None:
            files.append(("uptake.patients", p.uptake.patients))
        for key, f in files:
            if f is None:
                continue
            if not scenario.resolve(f).is_file():
                raise InputError(f"{at}: {key}: file {scenario.shown(f)} not found")
        if p.process.endswith(".toml") and not scenario.resolve(Path(p.process)).is_file():
            raise InputError(f"{at}: process: file {scenario.shown(p.process)} not found")
