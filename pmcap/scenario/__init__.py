"""Scenario files: one TOML file describing the portfolio, the facility and the run.

Validated with pydantic at the door: unknown keys, wrong types, missing files, dates in the
wrong order and bad CSV rows give one :class:`~capacity.errors.InputError` naming the file, the
key or row, and what was expected; a number written as text (``target = "120"``) is refused,
not read as the number. Paths are relative to the scenario file. Uncertain numbers
may be written as a number or a one-key distribution table: ``{beta = [a, b]}``,
``{triangular = [low, mode, high]}``, ``{uniform = [low, high]}`` or
``{lognormal = {median = m, p90 = x}}``. See ``pmcap init`` for a commented starter.

Modules, by section of the file: ``base`` (strict tables, numbers that refuse text, uncertain
numbers), ``settings`` (``[run]``, ``[models]``, ``[costs]``), ``programs``
(``[[program]]``), ``facility`` (``[facility]`` with its QC lab and twin, ``[workforce]``),
``network`` (``[network]``), ``model`` (:class:`Scenario`, the checks across sections),
``load`` (reading a file, its files, the bundled example) and ``errors`` (validation errors
as one line per problem).
"""

from __future__ import annotations

from pmcap.scenario.base import MAX_DRAWS as MAX_DRAWS
from pmcap.scenario.base import PHASE as PHASE
from pmcap.scenario.base import Float as Float
from pmcap.scenario.base import Int as Int
from pmcap.scenario.base import check_draws_option as check_draws_option
from pmcap.scenario.errors import describe_validation_error
from pmcap.scenario.facility import (
    FacilityConfig,
    QCLabSection,
    ServiceLevel,
    SuiteStep,
    TwinCrews,
    TwinDowntime,
    TwinSection,
    TwinVeinToVein,
    WorkforceSection,
)
from pmcap.scenario.load import (
    check_files,
    example_scenario_path,
    load_scenario,
    read_toml,
    scenario_from_tables,
)
from pmcap.scenario.model import Scenario
from pmcap.scenario.network import (
    NetworkFacility,
    NetworkLane,
    NetworkProgram,
    NetworkSection,
    NetworkSite,
)
from pmcap.scenario.programs import (
    EnrollmentConfig,
    Expansion,
    PhasePlan,
    PPQConfig,
    ProgramConfig,
    UptakeConfig,
)
from pmcap.scenario.settings import (
    CostsConfig,
    ModelsConfig,
    RunConfig,
)

# the scenario's names; the helpers of base (the strict number types, the phases, the
# draw limit and its check) are imported by other modules as pmcap.scenario.NAME
__all__ = [
    "Scenario",
    "check_files",
    "describe_validation_error",
    "example_scenario_path",
    "load_scenario",
    "read_toml",
    "scenario_from_tables",
    "CostsConfig",
    "EnrollmentConfig",
    "Expansion",
    "FacilityConfig",
    "ModelsConfig",
    "NetworkFacility",
    "NetworkLane",
    "NetworkProgram",
    "NetworkSection",
    "NetworkSite",
    "PPQConfig",
    "PhasePlan",
    "ProgramConfig",
    "QCLabSection",
    "RunConfig",
    "ServiceLevel",
    "SuiteStep",
    "TwinCrews",
    "TwinDowntime",
    "TwinSection",
    "TwinVeinToVein",
    "UptakeConfig",
    "WorkforceSection",
]
