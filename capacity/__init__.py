"""Supply side of pmcap: demand draws -> lots, suites, QC hours and FTEs, service levels, plans.

This package never imports PyMC: a user can hand it demand draws from anywhere (see
:mod:`capacity.demand` for the contract). The public names below are loaded on first use, so
``import capacity.errors`` (the command line's start-up) does not import pandas, xarray or
numba, and numba is imported only when lots are drawn or a facility is simulated. Modules:

- ``demand``: the demand contract; read, write and check demand draws;
- ``process``, ``distributions``: a manufacturing process and its uncertain parameters;
- ``resource_needs``: :func:`requirements` (lots, suite-days, QC hours, FTEs per draw) and
  :func:`facility` totals, built on ``occupancy`` (how a lot's days fall into months) and
  ``workload`` (the arithmetic of a block of draws; lot failures drawn by the numba loop
  in ``_binomial``);
- ``chunked``: demand larger than memory (dask arrays chunked along draw);
- ``summary``: :func:`bands`, :func:`shortfall_probability`, :func:`summarise`;
- ``simulation`` (with the numba kernels in ``_queue``): the facility queue;
- ``service_level``: the fewest suites that meet a service level;
- ``plan``: expansion and hiring plans at least expected cost;
- ``network``: :func:`plan_network`, sites, CDMOs and lanes; a non-anticipative investment
  plan by sample average approximation (HiGHS), evaluated on every draw;
- ``workforce``: operators as a workforce (requisitions, hires, training, mentors,
  attrition) per draw and month, and a requisition plan at a service level;
- ``qclab`` (with the numba kernel in ``_qclab``): the QC laboratory as queues (analysts on
  a roster, instruments per type, retests, monitoring work) and its sizing at a service level;
- ``twin`` (with the numba kernel in ``_twin``): the facility twin, suites, qualified crews
  on shifts, downtime, remakes and vein-to-vein time per patient, with a wait decomposition;
- ``materials``: :func:`plan_materials`, a bill of materials per lot and a periodic-review
  order-up-to level per item sized on the joint draws of lots;
- ``vector``: :func:`plan_vector`, viral vector made in campaigns (doses per vector lot,
  release, shelf life, first expiry first out) and a campaign calendar at a wait target;
- ``plot``: fan charts and shortfall charts (matplotlib).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_PUBLIC = {
    "STREAMS": "demand",
    "as_demand": "demand",
    "read_demand": "demand",
    "write_demand": "demand",
    "DemandError": "errors",
    "InputError": "errors",
    "ProcessSpecError": "errors",
    "describe": "service_level",
    "simulate_facility": "simulation",
    "suites_for_service_level": "service_level",
    "ExpansionPlan": "plan",
    "joint_shortfall": "plan",
    "newsvendor": "plan",
    "plan_expansion": "plan",
    "plan_hiring": "plan",
    "Lane": "network",
    "Network": "network",
    "NetworkPlan": "network",
    "Site": "network",
    "assign_lots": "network",
    "plan_network": "network",
    "BillOfMaterials": "materials",
    "plan_materials": "materials",
    "VectorPlan": "vector",
    "VectorSpec": "vector",
    "plan_vector": "vector",
    "ProcessSpec": "process",
    "QCAssay": "process",
    "load_process": "process",
    "process_templates": "process",
    "facility": "resource_needs",
    "requirements": "resource_needs",
    "bands": "summary",
    "metric_names": "summary",
    "shortfall_probability": "summary",
    "summarise": "summary",
    "QCLab": "qclab",
    "QCLabResult": "qclab",
    "qc_lab_bands": "qclab",
    "qc_lab_dataset": "qclab",
    "release_days": "qclab",
    "size_lab": "qclab",
    "WorkforceConfig": "workforce",
    "WorkforcePlan": "workforce",
    "plan_requisitions": "workforce",
    "simulate_workforce": "workforce",
    "CrewConfig": "twin",
    "DowntimeConfig": "twin",
    "QCStageResult": "twin",
    "VeinToVeinConfig": "twin",
    "nominal_qc_stage": "twin",
    "QCLabStage": "twin",
    "simulate_twin": "twin",
    "size_operators": "twin",
    "twin_bands": "twin",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'capacity' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"capacity.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


if TYPE_CHECKING:  # for type checkers and IDEs
    from capacity.demand import STREAMS, as_demand, read_demand, write_demand  # noqa: F401
    from capacity.errors import DemandError, InputError, ProcessSpecError  # noqa: F401
    from capacity.materials import BillOfMaterials, plan_materials  # noqa: F401
    from capacity.network import (  # noqa: F401
        Lane,
        Network,
        NetworkPlan,
        Site,
        assign_lots,
        plan_network,
    )
    from capacity.plan import (  # noqa: F401
        ExpansionPlan,
        joint_shortfall,
        newsvendor,
        plan_expansion,
        plan_hiring,
    )
    from capacity.process import ProcessSpec, QCAssay, load_process, process_templates  # noqa: F401
    from capacity.qclab import (  # noqa: F401
        QCLab,
        QCLabResult,
        qc_lab_bands,
        qc_lab_dataset,
        release_days,
        size_lab,
    )
    from capacity.resource_needs import facility, requirements  # noqa: F401
    from capacity.service_level import describe, suites_for_service_level  # noqa: F401
    from capacity.simulation import simulate_facility  # noqa: F401
    from capacity.summary import bands, metric_names, shortfall_probability, summarise  # noqa: F401
    from capacity.twin import (  # noqa: F401
        CrewConfig,
        DowntimeConfig,
        QCLabStage,
        QCStageResult,
        VeinToVeinConfig,
        nominal_qc_stage,
        simulate_twin,
        size_operators,
        twin_bands,
    )
    from capacity.vector import VectorPlan, VectorSpec, plan_vector  # noqa: F401
    from capacity.workforce import (  # noqa: F401
        WorkforceConfig,
        WorkforcePlan,
        plan_requisitions,
        simulate_workforce,
    )
