"""The network's inputs: sites (own plants and CDMOs), lanes and the network itself, checked.

The model they describe is in :mod:`capacity.network`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from capacity.errors import InputError

KINDS = ("own", "cdmo")
SERVICE_TOLERANCE = 1e-6  # patients: unmet below this in a draw counts as served


def _nonnegative(owner: str, **values: float) -> None:
    for name, value in values.items():
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise InputError(
                f"network: {owner}: {name} must be a finite number >= 0, got {value!r}"
            )


@dataclass(frozen=True)
class Site:
    """An own facility (``kind="own"``) or a CDMO (``kind="cdmo"``); costs in one currency.

    ``suites``: suites installed now (own); ``module_suites``: suites one module adds (own; a
    CDMO slot is one suite); ``max_units``: most modules or slots committed over the horizon;
    ``module_capital`` (per module, at commitment), ``module_cost_per_year`` (per module
    online); ``slot_fee_per_month`` (CDMO, per reserved slot); ``fixed_cost_per_year``;
    ``cost_per_lot`` (own: variable cost; CDMO: price per lot); ``lead_time_months``
    (commitment to use); ``turnaround_days`` (receipt of the apheresis to product shipped).

    Operators (own sites only; a CDMO brings its own staff): ``operators`` qualified now
    (``None``: operators are not modelled at the site, only its suites bind);
    ``hire_lead_time_months`` (requisition to qualified: a hire committed in month ``t``
    works from ``t + lead``, rounded up to whole periods as module lead times are);
    ``operator_cost_per_year`` (loaded cost of one operator: paid for the operators now over
    the whole horizon and for a hire from the month they are qualified, an assumption that
    recruiting and training are covered by ``hire_cost``); ``hire_cost`` (one-off per hire
    at commitment); ``max_hires`` (most operators hired over the horizon; default 20, an
    assumption). Hires stay for the rest of the horizon (no attrition, no lay-offs).
    """

    name: str
    kind: str = "own"
    suites: float = 0.0
    module_suites: float = 1.0
    max_units: int = 4
    module_capital: float = 0.0
    module_cost_per_year: float = 0.0
    slot_fee_per_month: float = 0.0
    fixed_cost_per_year: float = 0.0
    cost_per_lot: float = 0.0
    lead_time_months: int = 0
    turnaround_days: float = 0.0
    operators: float | None = None
    hire_lead_time_months: int = 0
    operator_cost_per_year: float = 0.0
    hire_cost: float = 0.0
    max_hires: int = 20

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InputError(f"network: site name must be a non-empty string, got {self.name!r}")
        if self.kind not in KINDS:
            raise InputError(
                f"network: site {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}"
            )
        _nonnegative(
            f"site {self.name!r}",
            suites=self.suites,
            max_units=self.max_units,
            module_capital=self.module_capital,
            module_cost_per_year=self.module_cost_per_year,
            slot_fee_per_month=self.slot_fee_per_month,
            fixed_cost_per_year=self.fixed_cost_per_year,
            cost_per_lot=self.cost_per_lot,
            lead_time_months=self.lead_time_months,
            turnaround_days=self.turnaround_days,
            hire_lead_time_months=self.hire_lead_time_months,
            operator_cost_per_year=self.operator_cost_per_year,
            hire_cost=self.hire_cost,
            max_hires=self.max_hires,
        )
        if self.operators is not None:
            _nonnegative(f"site {self.name!r}", operators=self.operators)
            if self.kind == "cdmo":
                raise InputError(
                    f"network: site {self.name!r}: a CDMO brings its own staff; "
                    "give operators only at own sites"
                )
        if (
            int(self.hire_lead_time_months) != self.hire_lead_time_months
            or int(self.max_hires) != self.max_hires
        ):
            raise InputError(
                f"network: site {self.name!r}: hire_lead_time_months and max_hires must be "
                "whole numbers"
            )
        if not (isinstance(self.module_suites, int | float) and self.module_suites > 0):
            raise InputError(
                f"network: site {self.name!r}: module_suites must be > 0, "
                f"got {self.module_suites!r}"
            )
        if (
            int(self.max_units) != self.max_units
            or int(self.lead_time_months) != self.lead_time_months
        ):
            raise InputError(
                f"network: site {self.name!r}: max_units and lead_time_months must be whole numbers"
            )
        if self.kind == "cdmo" and self.suites:
            raise InputError(
                f"network: site {self.name!r}: a CDMO has no suites of its own; reserve slots"
            )

    @property
    def unit_suites(self) -> float:
        """Suites one commitment adds: a module's suites (own) or one slot (CDMO)."""
        return float(self.module_suites) if self.kind == "own" else 1.0

    @property
    def crewed(self) -> bool:
        """Whether operators are modelled (and can bind) at the site."""
        return self.operators is not None

    @property
    def unit_cost_per_month(self) -> float:
        """Running cost of one module (own) or the fee of one reserved slot (CDMO) per month."""
        return self.module_cost_per_year / 12.0 if self.kind == "own" else self.slot_fee_per_month


@dataclass(frozen=True)
class Lane:
    """Transport from a region's treatment centres to a site (and back): one way in days."""

    region: str
    site: str
    transport_days: float
    cost_per_lot: float = 0.0

    def __post_init__(self) -> None:
        _nonnegative(
            f"lane {self.region!r} -> {self.site!r}",
            transport_days=self.transport_days,
            cost_per_lot=self.cost_per_lot,
        )


@dataclass(frozen=True)
class Network:
    """Sites, lanes, where each program's patients are, and the costs of not serving them.

    ``region_shares``: program -> region -> share of its patients (each program's shares sum
    to one); with ``share_concentration`` the shares of each draw are Dirichlet with mean
    ``region_shares`` and concentration ``share_concentration`` (larger: less uncertain).
    ``vein_to_vein_days``: program -> most days from apheresis to infusion;
    ``suite_days_per_lot``: program -> suite-days a lot occupies (culture + changeover over
    lots per suite). ``cost_per_patient_unserved``: penalty per patient not made in the
    period they start. ``discount_rate``: per year.

    ``operator_hours_per_lot``: program -> operator-hours a lot takes at an own site whose
    ``operators`` are given (needed when any site has them); ``operator_hours_per_month``:
    productive hours of one operator per month (default 137.5 = 1,650 h a year / 12, the
    default ``productive_hours_per_fte_year`` of a process; an assumption). A crewed site's
    lots in a period need ``sum(lots x operator_hours_per_lot) <= operators online x
    operator_hours_per_month x months in the period``.

    Backlog (``max_wait_months > 0``): a patient not made in the period they start may be made
    up to ``max_wait_months`` later (whole periods), at ``late_cost_per_patient_month`` per
    patient and month of delay, on a route whose ``2 x transport + turnaround`` plus the wait
    (30.44 days a month) stays within the program's ``vein_to_vein_days`` (the wait counts
    within vein-to-vein: the apheresis material waits, an assumption); later than that, or
    after the horizon's last period, the patient is not served. ``max_wait_months = 0``: no
    backlog, a patient not made in their period is not served.
    """

    sites: Sequence[Site]
    lanes: Sequence[Lane]
    region_shares: Mapping[str, Mapping[str, float]]
    vein_to_vein_days: Mapping[str, float]
    suite_days_per_lot: Mapping[str, float]
    cost_per_patient_unserved: float
    discount_rate: float = 0.0
    share_concentration: float | None = None
    operator_hours_per_lot: Mapping[str, float] | None = None
    operator_hours_per_month: float = 137.5
    max_wait_months: int = 0
    late_cost_per_patient_month: float = 0.0

    def __post_init__(self) -> None:
        names = [s.name for s in self.sites]
        if not names:
            raise InputError("network: give at least one site")
        if len(set(names)) != len(names):
            raise InputError(f"network: site names must be unique, got {names}")
        regions = sorted({r for shares in self.region_shares.values() for r in shares})
        seen = set()
        for lane in self.lanes:
            if lane.site not in names:
                raise InputError(
                    f"network: lane {lane.region!r} -> {lane.site!r}: unknown site {lane.site!r}; "
                    f"sites are {names}"
                )
            if lane.region not in regions:
                raise InputError(
                    f"network: lane {lane.region!r} -> {lane.site!r}: unknown region "
                    f"{lane.region!r}; regions are {regions}"
                )
            if (lane.region, lane.site) in seen:
                raise InputError(f"network: lane {lane.region!r} -> {lane.site!r} is given twice")
            seen.add((lane.region, lane.site))
        _nonnegative(
            "network",
            cost_per_patient_unserved=self.cost_per_patient_unserved,
            discount_rate=self.discount_rate,
            max_wait_months=self.max_wait_months,
            late_cost_per_patient_month=self.late_cost_per_patient_month,
        )
        if int(self.max_wait_months) != self.max_wait_months:
            raise InputError(
                f"network: max_wait_months must be a whole number, got {self.max_wait_months!r}"
            )
        if self.share_concentration is not None and not self.share_concentration > 0:
            raise InputError(
                f"network: share_concentration must be > 0, got {self.share_concentration!r}"
            )
        if not (
            isinstance(self.operator_hours_per_month, int | float)
            and math.isfinite(self.operator_hours_per_month)
            and self.operator_hours_per_month > 0
        ):
            raise InputError(
                "network: operator_hours_per_month must be a finite number > 0, "
                f"got {self.operator_hours_per_month!r}"
            )
        crewed = [s.name for s in self.sites if s.crewed]
        if crewed:
            hours = self.operator_hours_per_lot or {}
            for program in self.region_shares:
                value = hours.get(program)
                if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                    raise InputError(
                        f"network: operator_hours_per_lot[{program!r}] must be a finite number "
                        f"> 0 (sites {crewed} have operators), got {value!r}"
                    )
        site = {s.name: s for s in self.sites}
        for program, shares in self.region_shares.items():
            for region, share in shares.items():
                _nonnegative(f"region_shares[{program!r}]", **{region: share})
            total = sum(shares.values())
            if abs(total - 1.0) > 1e-9:
                raise InputError(
                    f"network: region_shares[{program!r}] must sum to one, "
                    f"got {total:g} ({dict(shares)})"
                )
            for table, what in (
                (self.vein_to_vein_days, "vein_to_vein_days"),
                (self.suite_days_per_lot, "suite_days_per_lot"),
            ):
                if program not in table:
                    raise InputError(f"network: {what} has no value for program {program!r}")
            limit = self.vein_to_vein_days[program]
            _nonnegative(f"vein_to_vein_days[{program!r}]", days=limit)
            if not self.suite_days_per_lot[program] > 0:
                raise InputError(
                    f"network: suite_days_per_lot[{program!r}] must be > 0, "
                    f"got {self.suite_days_per_lot[program]!r}"
                )
            for region, share in shares.items():
                if share == 0:
                    continue
                routes = [
                    2 * ln.transport_days + site[ln.site].turnaround_days
                    for ln in self.lanes
                    if ln.region == region
                ]
                if not routes:
                    raise InputError(
                        f"network: region {region!r} (program {program!r}) has no lane to any site"
                    )
                if min(routes) > limit:
                    raise InputError(
                        f"network: vein_to_vein_days[{program!r}] = {limit:g} is shorter than the "
                        "fastest route "
                        f"from region {region!r} ({min(routes):g} days: 2 x transport + turnaround)"
                    )

    @property
    def backlog(self) -> bool:
        """Whether unmet patients may wait for a later period (``max_wait_months > 0``)."""
        return self.max_wait_months > 0

    @property
    def programs(self) -> list[str]:
        return list(self.region_shares)

    @property
    def regions(self) -> list[str]:
        return sorted({r for shares in self.region_shares.values() for r in shares})
