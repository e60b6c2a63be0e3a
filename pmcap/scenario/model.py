"""The :class:`Scenario`: every section, the checks across sections, and the scenario's
files, paths, command-line overrides and digest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import Field, model_validator

from capacity.errors import InputError
from pmcap.scenario.base import _Strict, check_draws_option
from pmcap.scenario.facility import FacilityConfig, WorkforceSection
from pmcap.scenario.network import NetworkSection
from pmcap.scenario.programs import ProgramConfig
from pmcap.scenario.settings import CostsConfig, ModelsConfig, RunConfig


class Scenario(_Strict):
    run: RunConfig
    models: ModelsConfig = ModelsConfig()
    program: list[ProgramConfig] = Field(min_length=1)
    facility: FacilityConfig
    costs: CostsConfig = CostsConfig()
    workforce: WorkforceSection | None = None
    network: NetworkSection | None = None  # [network]: capacity.plan_network
    # [process.NAME]: fields of the process named NAME (a template's name or the ``name`` in a
    # process file) replaced for this scenario, e.g. a shorter culture; checked against the
    # process specification when the processes are loaded
    process: dict[str, dict[str, Any]] = {}

    # set by scenario_from_tables (load_scenario), not part of the file: the file's absolute
    # path (to read), and its path as the user wrote it (to name it in messages)
    _path: Path | None = None
    _given: Path | None = None

    @model_validator(mode="after")
    def _cross(self) -> Scenario:
        names = [p.name for p in self.program]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"program names must be unique; repeated: {dup}")
        for p in self.program:
            if p.launch is not None and p.launch > self.run.as_of:
                raise ValueError(
                    f"program {p.name!r}: launch {p.launch} is after as_of {self.run.as_of}; "
                    "a future launch is modelled as a trial or pipeline program"
                )
        if isinstance(self.facility.suites, list):
            first = self.facility.suites[0].from_
            if first > self.run.start:
                raise ValueError(
                    f"facility.suites: the first step ({first}) must be on or before run.start "
                    f"({self.run.start})"
                )
        return self

    @property
    def folder(self) -> Path:
        return self._path.parent if self._path is not None else Path.cwd()

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def shown_path(self) -> Path | None:
        """The scenario file as the user wrote it (``my-plan/scenario.toml``): messages name
        it so; relative stays relative."""
        return self._given if self._given is not None else self._path

    def resolve(self, path: Path | None) -> Path | None:
        """A path of the scenario (relative to its file) as an absolute path, to read."""
        if path is None:
            return None
        return path if path.is_absolute() else (self.folder / path)

    def shown(self, path: Path | str | None) -> Path | None:
        """A path of the scenario as the user would write it from where pmcap was started:
        relative to the scenario file as it was given (``my-plan/patients.csv`` for
        ``patients = "patients.csv"`` in ``my-plan/scenario.toml``); an absolute one as
        written."""
        if path is None:
            return None
        path = Path(path)
        if path.is_absolute() or self._given is None:
            return self.resolve(path)
        return self._given.parent / path

    def input_files(self) -> list[Path]:
        """Every file the scenario reads (for hashes in the manifest and --out checks)."""
        files = [] if self._path is None else [self._path]
        for p in self.program:
            if p.enrollment is not None:
                files += [
                    self.resolve(x)
                    for x in (p.enrollment.patients, p.enrollment.counts, p.enrollment.sites)
                    if x
                ]
            if p.uptake is not None and p.uptake.patients is not None:
                files.append(self.resolve(p.uptake.patients))
            proc = self.resolve(Path(p.process))
            if p.process.endswith(".toml"):
                files.append(proc)
        return files

    def suites_by_month(self, months: pd.DatetimeIndex) -> pd.Series:
        """Installed suites per month of the horizon."""
        s = self.facility.suites
        if isinstance(s, int):
            return pd.Series(float(s), index=months)
        steps = pd.Series(
            [x.suites for x in s], index=pd.DatetimeIndex([pd.Timestamp(x.from_) for x in s])
        )
        return steps.reindex(steps.index.union(months)).ffill().reindex(months).astype(float)

    def apply(self, *, draws: int | None = None, seed: int | None = None) -> Scenario:
        """A copy with command-line overrides."""
        out = self.model_copy(deep=True)
        out._path, out._given = self._path, self._given
        if draws is not None:
            check_draws_option(draws)
            out.run.draws = draws
        if seed is not None:
            if seed < 0 or seed >= 2**32:
                raise InputError(f"--seed: expected a whole number in [0, 2^32), got {seed}")
            out.run.seed = seed
        return out

    def digest(self) -> str:
        """Hash of the scenario's content and of the bytes of every file it reads: the same
        for an equivalent scenario file (other comments or layout, a sweep's own copy)."""
        h = hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode())
        for f in self.input_files():
            if f != self._path:  # its content is in the dump above
                h.update(f.read_bytes())
        return h.hexdigest()
