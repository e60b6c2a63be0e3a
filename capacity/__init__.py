"""Supply side of pmcap: demand draws -> lots, suites, QC hours and FTEs, service levels, plans.

This package never imports PyMC: a user can hand it demand draws from anywhere (see
:mod:`capacity.demand` for the contract).
"""

from capacity.demand import STREAMS, as_demand, read_demand, write_demand
from capacity.errors import DemandError, InputError, ProcessSpecError
from capacity.facility import describe, simulate_facility, suites_for_service_level
from capacity.plan import ExpansionPlan, newsvendor, plan_expansion, plan_hiring
from capacity.process import ProcessSpec, QCAssay, load_process, process_templates
from capacity.requirements import bands, facility, metric_names, requirements, shortfall_probability

__all__ = [
    "STREAMS",
    "DemandError",
    "ExpansionPlan",
    "InputError",
    "ProcessSpec",
    "ProcessSpecError",
    "QCAssay",
    "as_demand",
    "bands",
    "describe",
    "facility",
    "load_process",
    "metric_names",
    "newsvendor",
    "plan_expansion",
    "plan_hiring",
    "process_templates",
    "read_demand",
    "requirements",
    "shortfall_probability",
    "simulate_facility",
    "suites_for_service_level",
    "write_demand",
]
