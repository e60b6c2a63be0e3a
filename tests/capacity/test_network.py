"""capacity.network against brute force, plan_expansion, hand-computed assignments and bad input."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linprog

from capacity import InputError, Lane, Network, Site, assign_lots, plan_expansion, plan_network
from tests.helpers import make_demand


# --- assignment on a case computed by hand ------------------------------------------------------
def test_assignment_fills_the_cheaper_site_first_then_leaves_patients_unserved():
    # 31-day month, 10 suite-days a lot: a suite makes 3.1 lots. Near: 2 suites (6.2 lots) at
    # 10 + 1 a lot; far: 1 suite (3.1 lots) at 20 + 2; 12 patients -> 2.7 not served.
    net = Network(
        sites=[Site("near", suites=2, cost_per_lot=10), Site("far", suites=1, cost_per_lot=20)],
        lanes=[Lane("R", "near", 1, 1.0), Lane("R", "far", 1, 2.0)],
        region_shares={"A": {"R": 1.0}},
        vein_to_vein_days={"A": 20},
        suite_days_per_lot={"A": 10},
        cost_per_patient_unserved=100,
    )
    demand = make_demand(np.array([[[12.0]]]), start="2027-01-01", programs=["A"])
    out = assign_lots(demand, net, np.array([[2.0, 1.0]]), period_months=1)
    assert out["lots"].values[0, 0] == pytest.approx([6.2, 3.1])
    assert out["unmet_patients"].values[0, 0] == pytest.approx(12 - 9.3)
    assert out["assignment_cost"].values[0] == pytest.approx(6.2 * 11 + 3.1 * 22 + 2.7 * 100)


def test_a_lane_over_the_vein_to_vein_limit_is_not_used():
    # far: 2 x 4 days + 12 = 20 > 18, so its free suite cannot serve; near is full
    net = Network(
        sites=[
            Site("near", suites=1, turnaround_days=12),
            Site("far", suites=5, turnaround_days=12),
        ],
        lanes=[Lane("R", "near", 2), Lane("R", "far", 4)],
        region_shares={"A": {"R": 1.0}},
        vein_to_vein_days={"A": 18},
        suite_days_per_lot={"A": 10},
        cost_per_patient_unserved=1,
    )
    demand = make_demand(np.array([[[5.0]]]), start="2027-01-01", programs=["A"])
    out = assign_lots(demand, net, np.array([[1.0, 5.0]]), period_months=1)
    assert out["lots"].values[0, 0] == pytest.approx([3.1, 0.0])
    assert out["unmet_patients"].values[0, 0] == pytest.approx(1.9)


# --- brute force over every plan ---------------------------------------------------------------
SMALL = Network(
    sites=[
        Site(
            "plant",
            suites=1,
            module_suites=1,
            max_units=2,
            module_capital=300.0,
            module_cost_per_year=400.0,
            fixed_cost_per_year=50.0,
            cost_per_lot=5.0,
            lead_time_months=3,
            turnaround_days=10,
        ),
        Site(
            "new-plant",
            max_units=1,
            module_suites=2,
            module_capital=500.0,
            module_cost_per_year=300.0,
            fixed_cost_per_year=600.0,
            cost_per_lot=4.0,
            turnaround_days=10,
        ),
        Site(
            "cdmo",
            kind="cdmo",
            max_units=2,
            slot_fee_per_month=60.0,
            cost_per_lot=25.0,
            turnaround_days=8,
        ),
    ],
    lanes=[
        Lane("east", "plant", 1, 1.0),
        Lane("east", "new-plant", 2, 2.0),
        Lane("east", "cdmo", 2, 3.0),
        Lane("west", "plant", 5, 6.0),  # 2 x 5 + 10 = 20 > 18 days: not allowed
        Lane("west", "new-plant", 1, 1.0),
        Lane("west", "cdmo", 3, 2.0),
    ],
    region_shares={"A": {"east": 0.6, "west": 0.4}},
    vein_to_vein_days={"A": 18},
    suite_days_per_lot={"A": 15},
    cost_per_patient_unserved=60.0,
    discount_rate=0.1,
)


def _brute_force_cost(
    units: dict, patients: np.ndarray, months: pd.DatetimeIndex, net: Network, hires=None
):
    """Expected cost of one plan, written out independently: commitments and hires by hand,
    and each (draw, period) assignment as its own small dense LP built from the lanes (with
    an operator-hours row per crewed site)."""
    period = 3
    starts = list(range(0, len(months), period))
    days = [sum(months[s : s + period].days_in_month) for s in starts]
    disc = [(1 + net.discount_rate) ** (-s / 12) for s in starts]
    first = 0.0
    online = np.zeros((len(starts), len(net.sites)))
    crew = np.zeros((len(starts), len(net.sites)))
    for i, site in enumerate(net.sites):
        if site.operators is None:
            continue
        lead = -(-site.hire_lead_time_months // period)
        crew[:, i] = site.operators
        for q in range(len(starts)):
            first += site.operators * site.operator_cost_per_year / 12 * period * disc[q]
        for p, h in enumerate((hires or {}).get(site.name, ())):
            first += h * site.hire_cost * disc[p]
            for q in range(p + lead, len(starts)):
                crew[q, i] += h
                first += h * site.operator_cost_per_year / 12 * period * disc[q]
    for i, site in enumerate(net.sites):
        lead = -(-site.lead_time_months // period)
        online[:, i] = site.suites
        for p, k in enumerate(units[site.name]):
            if not k:
                continue
            first += k * site.module_capital * disc[p]
            for q in range(len(starts)):
                usable = q >= p + lead
                if usable:
                    online[q, i] += k * site.unit_suites
                paid = q >= p if site.kind == "cdmo" else usable
                if paid:
                    first += k * site.unit_cost_per_month * period * disc[q]
        for q in range(len(starts)):
            if site.suites > 0 or online[q, i] > 0:
                first += site.fixed_cost_per_year / 12 * period * disc[q]
    recourse = []
    names = [s.name for s in net.sites]
    for draw in patients:
        total = 0.0
        for q, s in enumerate(starts):
            arcs, cost = [], []
            for lane in net.lanes:
                site = net.sites[names.index(lane.site)]
                if 2 * lane.transport_days + site.turnaround_days <= net.vein_to_vein_days["A"]:
                    arcs.append((lane.region, names.index(lane.site)))
                    cost.append((site.cost_per_lot + lane.cost_per_lot) * disc[q])
            regions = ["east", "west"]
            c = cost + [net.cost_per_patient_unserved * disc[q]] * 2
            a_eq = [
                [1.0 * (r == reg) for r, _ in arcs] + [1.0 * (g == reg) for g in regions]
                for reg in regions
            ]
            need = draw[s : s + period].sum()
            b_eq = [need * net.region_shares["A"][reg] for reg in regions]
            a_ub = [[15.0 * (i == j) for _, i in arcs] + [0, 0] for j in range(len(names))]
            b_ub = [online[q, j] * days[q] for j in range(len(names))]
            for j, site in enumerate(net.sites):
                if site.operators is not None:
                    hours = net.operator_hours_per_lot["A"]
                    a_ub.append([hours * (i == j) for _, i in arcs] + [0, 0])
                    b_ub.append(crew[q, j] * net.operator_hours_per_month * period)
            total += linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, method="highs").fun
        recourse.append(total)
    return first + float(np.mean(recourse))


def _plans_of(site: Site, periods: int):
    for k in itertools.product(range(site.max_units + 1), repeat=periods):
        if sum(k) <= site.max_units:
            yield k


def test_the_milp_optimum_equals_brute_force_over_every_plan():
    rng = np.random.default_rng(3)
    patients = rng.poisson(np.array([4, 4, 6, 8, 10, 12])[None, :] * rng.uniform(0.6, 1.4, (4, 1)))
    demand = make_demand(patients[:, :, None].astype(float), programs=["A"])
    months = pd.DatetimeIndex(demand["month"].values)
    best = None
    for plant, new, cdmo in itertools.product(*(_plans_of(s, 2) for s in SMALL.sites)):
        units = {"plant": plant, "new-plant": new, "cdmo": cdmo}
        cost = _brute_force_cost(units, patients.astype(float), months, SMALL)
        if best is None or cost < best[0]:
            best = (cost, units)
    plan = plan_network(
        demand, SMALL, decision_months=3, milp_draws=4, mip_rel_gap=1e-9, alternatives=False
    )
    assert plan.summary["in_sample_cost"] == pytest.approx(best[0], rel=1e-7)
    # all draws in the MILP: evaluating the plan on every draw gives its objective back
    assert plan.summary["expected_cost"] == pytest.approx(best[0], rel=1e-7)
    found = {s.name: [0, 0] for s in SMALL.sites}
    for row in plan.commitments.itertuples():
        found[row.site][(row.commit_month.month - 1) // 3] += row.units
    assert _brute_force_cost(
        {k: tuple(v) for k, v in found.items()}, patients.astype(float), months, SMALL
    ) == (pytest.approx(best[0], rel=1e-7))
    # the case is not trivial: the optimum commits something and leaves out something
    assert 0 < sum(map(sum, best[1].values())) < 5


# --- one site, no CDMO: the same plan as plan_expansion -----------------------------------------
def _single_site(demand_suites: np.ndarray, **site):
    months = pd.date_range("2027-01-01", periods=demand_suites.shape[1], freq="MS")
    patients = (
        demand_suites * np.asarray(months.days_in_month)[None, :] / 10.0
    )  # 10 suite-days a lot
    net = Network(
        sites=[Site("plant", **site)],
        lanes=[Lane("R", "plant", 0)],
        region_shares={"A": {"R": 1.0}},
        vein_to_vein_days={"A": 30},
        suite_days_per_lot={"A": 10},
        cost_per_patient_unserved=1e6,
    )
    return make_demand(patients[:, :, None], programs=["A"]), net


def test_deterministic_step_commits_when_plan_expansion_does():
    suites = np.tile(np.where(np.arange(48) < 24, 5.0, 9.0), (3, 1))
    demand, net = _single_site(
        suites,
        suites=6,
        module_suites=4,
        lead_time_months=18,
        module_cost_per_year=1.2e6,
        max_units=3,
    )
    ours = plan_network(demand, net, period_months=1, decision_months=1, alternatives=False)
    greedy = plan_expansion(
        demand.isel(program=0).rename("suites") * 0 + suites,
        installed=6,
        unit_size=4,
        lead_time_months=18,
        target=0.05,
    )
    assert ours.commitments["commit_month"].tolist() == greedy.commitments["commit_month"].tolist()
    assert ours.commitments["online_month"].tolist() == [pd.Timestamp("2029-01-01")]
    assert ours.summary["service_probability"] == 1.0
    # one module running 24 months at 1.2 M a year (no discounting)
    assert ours.summary["expected_cost"] == pytest.approx(2.4e6)


@pytest.mark.parametrize(("target", "modules"), [(0.05, 1), (0.2, 0)])
def test_chance_constraint_matches_plan_expansion_target(target, modules):
    # 7 suites needed in 10% of draws from month 30, 5 otherwise; 6 installed
    suites = np.full((100, 48), 5.0)
    suites[:10, 30:] = 7.0
    months = pd.date_range("2027-01-01", periods=48, freq="MS")
    patients = suites * np.asarray(months.days_in_month)[None, :] / 10.0
    net = Network(
        sites=[
            Site("plant", suites=6, module_suites=2, lead_time_months=6, module_cost_per_year=1e6)
        ],
        lanes=[Lane("R", "plant", 0)],
        region_shares={"A": {"R": 1.0}},
        vein_to_vein_days={"A": 30},
        suite_days_per_lot={"A": 10},
        cost_per_patient_unserved=1.0,  # served when there is room; too small to build for
    )
    demand = make_demand(patients[:, :, None], programs=["A"])
    ours = plan_network(
        demand, net, period_months=1, milp_draws=100, service_target=target, alternatives=False
    )
    need = demand.isel(program=0) * 0 + suites
    greedy = plan_expansion(
        need.rename("suites"), installed=6, unit_size=2, lead_time_months=6, target=target
    )
    assert len(ours.commitments) == len(greedy.commitments) == modules
    assert ours.commitments["commit_month"].tolist() == greedy.commitments["commit_month"].tolist()
    assert ours.summary["service_probability"] == pytest.approx(1.0 if modules else 0.9)


# --- an i-SHIPMENT-like network -----------------------------------------------------------------
# Regions and candidate sites on a line (positions in transport days from the west coast);
# transport days = distance, vein-to-vein cap 18 days, 12 days at a site, so a lane may be at
# most 3 days long. Inputs differ from Triantafyllou et al. (2022): 4 regions instead of their
# hospitals, one year as one period, costs chosen for the test.
REGIONS = {"west": (0.0, 0.4), "mid": (2.0, 0.3), "south": (4.0, 0.2), "east": (6.0, 0.1)}
CANDIDATES = {"S1": 1.0, "S2": 3.0, "S3": 5.0, "S4": 0.5, "S5": 6.5, "S6": 8.0}


def _ishipment(patients_per_year: float):
    sites = [
        Site(
            name,
            module_suites=4,
            max_units=8,
            module_capital=2e6,
            fixed_cost_per_year=4e6,
            cost_per_lot=50e3,
            turnaround_days=12,
        )
        for name in CANDIDATES
    ]
    lanes = [
        Lane(region, name, abs(x - pos), 5e3 * abs(x - pos))
        for region, (x, _) in REGIONS.items()
        for name, pos in CANDIDATES.items()
        if abs(x - pos) <= 6
    ]
    net = Network(
        sites=sites,
        lanes=lanes,
        region_shares={"A": {r: w for r, (_, w) in REGIONS.items()}},
        vein_to_vein_days={"A": 18},
        suite_days_per_lot={"A": 14},
        cost_per_patient_unserved=1e6,
    )
    demand = make_demand(np.full((1, 12, 1), patients_per_year / 12), programs=["A"])
    plan = plan_network(demand, net, period_months=12, alternatives=False, mip_rel_gap=1e-9)
    return set(plan.commitments["site"]), plan


def test_ishipment_like_sites_open_as_demand_grows_nearer_first():
    # Measured structure: 1 site up to 800 patients a year (a site's 8 modules make 834 lots),
    # 2 at 1,000, 3 at 2,000, 4 at 3,000; S4 (0.5 days from the largest region) is in every
    # multi-site answer; S5 and S6, nearest only to the smallest region, never open.
    demand_levels = (200, 800, 1000, 2000, 3000)
    opened = {n: _ishipment(n)[0] for n in demand_levels}
    assert [len(opened[n]) for n in demand_levels] == [1, 1, 2, 3, 4]
    # one site: S2, the only candidate within 3 days of every region
    assert opened[200] == opened[800] == {"S2"}
    assert all("S4" in opened[n] for n in (1000, 2000, 3000))
    assert not (opened[3000] & {"S5", "S6"})
    _, plan = _ishipment(3000)
    assert plan.summary["service_probability"] == 1.0


# --- bad input ----------------------------------------------------------------------------------
def _network(**changes):
    fields = dict(
        sites=[Site("plant", suites=1, turnaround_days=10)],
        lanes=[Lane("R", "plant", 2)],
        region_shares={"A": {"R": 1.0}},
        vein_to_vein_days={"A": 20},
        suite_days_per_lot={"A": 10},
        cost_per_patient_unserved=1.0,
    )
    fields.update(changes)
    return Network(**fields)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: _network(lanes=[Lane("R", "plant", 2), Lane("R", "nowhere", 1)]),
            "unknown site 'nowhere'",
        ),
        (lambda: Site("plant", cost_per_lot=-1.0), "cost_per_lot must be a finite number >= 0"),
        (lambda: Lane("R", "plant", 2, cost_per_lot=-5.0), "lane 'R' -> 'plant': cost_per_lot"),
        (
            lambda: _network(vein_to_vein_days={"A": 13}),
            "shorter than the fastest route from region 'R' (14",
        ),
        (lambda: _network(region_shares={"A": {"R": 0.7, "Q": 0.2}}), "must sum to one, got 0.9"),
        (lambda: _network(cost_per_patient_unserved=-1.0), "cost_per_patient_unserved"),
        (lambda: Site("x", kind="partner"), "kind must be one of"),
    ],
)
def test_bad_input_names_what_is_wrong(build, message):
    with pytest.raises(InputError, match=__import__("re").escape(message)):
        build()


def test_demand_without_a_network_program_is_rejected():
    demand = make_demand(np.ones((2, 3, 1)), programs=["B"])
    with pytest.raises(InputError, match="demand has no program 'A'"):
        plan_network(demand, _network(), alternatives=False)


def test_closed_form_assignment_equals_the_lp(monkeypatch):
    # 30 draws x 8 quarters, some congested, some not; three sites, two regions, two programs
    rng = np.random.default_rng(11)
    net = Network(
        sites=[
            Site("a", suites=2, cost_per_lot=3.0, turnaround_days=10),
            Site("b", suites=1, cost_per_lot=1.0, turnaround_days=10),
            Site("c", kind="cdmo", cost_per_lot=9.0, turnaround_days=10),
        ],
        lanes=[
            Lane("R", "a", 1, 1.0),
            Lane("R", "b", 2, 0.5),
            Lane("Q", "b", 1),
            Lane("Q", "c", 1, 2.0),
        ],
        region_shares={"A": {"R": 0.7, "Q": 0.3}, "B": {"R": 0.2, "Q": 0.8}},
        vein_to_vein_days={"A": 14, "B": 20},
        suite_days_per_lot={"A": 10, "B": 14},
        cost_per_patient_unserved=8.0,
        discount_rate=0.05,
    )
    demand = make_demand(
        rng.poisson(rng.uniform(2, 12, (30, 1, 2)), (30, 24, 2)).astype(float), programs=["A", "B"]
    )
    online = rng.integers(0, 9, (30, 8, 3)).astype(float)
    import capacity.network.assign as module

    columns = []

    def counted(c, **kw):
        columns.append(len(c))
        return linprog(c, **kw)

    monkeypatch.setattr(module, "linprog", counted)
    fast = assign_lots(demand, net, online)
    in_fast = sum(columns)
    slow = assign_lots(demand, net, online, closed_form=False)
    assert 0 < in_fast < sum(columns) - in_fast  # some blocks in closed form, the others by LP
    # batching: LPs of 10 draws by default; one LP of all 30 draws gives the same answer
    columns.clear()
    one = assign_lots(demand, net, online, closed_form=False, chunk_draws=30)
    assert len(columns) == 1
    np.testing.assert_allclose(one["assignment_cost"], slow["assignment_cost"], rtol=1e-9)
    np.testing.assert_allclose(fast["assignment_cost"], slow["assignment_cost"], rtol=1e-9)
    np.testing.assert_allclose(fast["unmet_patients"], slow["unmet_patients"], atol=1e-9)


def test_same_seed_same_plan_with_uncertain_shares():
    net = _network(
        region_shares={"A": {"R": 0.5, "Q": 0.5}},
        lanes=[Lane("R", "plant", 2), Lane("Q", "plant", 4)],
        vein_to_vein_days={"A": 20},
        share_concentration=20.0,
    )
    demand = make_demand(np.full((20, 6, 1), 3.0), programs=["A"])
    one = plan_network(demand, net, seed=5, alternatives=False)
    two = plan_network(demand, net, seed=5, alternatives=False)
    pd.testing.assert_frame_equal(one.draws, two.draws)


def test_value_of_waiting_for_information_by_hand():
    # Half the draws (H) need 3 suites from month 24, the others (L) 1; H shows itself by more
    # patients in the first year (0.9 suite against 0.5). A module (2 suites, 12 months' lead,
    # capital 2 M, 1 M a year running) committed at month 12 is online from month 24. Deciding
    # now (one plan for all draws) builds it everywhere: 2 M + 1 M for months 24-35. Waiting
    # 12 months, the plan builds it only in H: half of that. Value of waiting: 1.5 M.
    months = pd.date_range("2027-01-01", periods=36, freq="MS")
    suites = np.ones((10, 36))
    suites[:5, :12], suites[5:, :12] = 0.9, 0.5
    suites[:5, 24:] = 3.0
    patients = suites * np.asarray(months.days_in_month)[None, :] / 10.0
    net = Network(
        sites=[
            Site(
                "plant",
                suites=1,
                module_suites=2,
                lead_time_months=12,
                module_capital=2e6,
                module_cost_per_year=1e6,
            )
        ],
        lanes=[Lane("R", "plant", 0)],
        region_shares={"A": {"R": 1.0}},
        vein_to_vein_days={"A": 30},
        suite_days_per_lot={"A": 10},
        cost_per_patient_unserved=1e6,
    )
    demand = make_demand(patients[:, :, None], programs=["A"])
    plan = plan_network(demand, net, milp_draws=10, wait_months=[12], mip_rel_gap=1e-9)
    assert plan.commitments["commit_month"].tolist() == [pd.Timestamp("2028-01-01")]
    assert plan.summary["expected_cost"] == pytest.approx(3e6)
    assert plan.value_of_waiting[12] == pytest.approx(1.5e6)
    table = plan.alternatives.set_index("alternative")
    assert table.loc["wait 12 months", "modules"] == pytest.approx(0.5)  # built in half the draws
    assert table.loc["no new capacity", "service_probability"] == pytest.approx(0.5)
    # committed at month 0 only: online months 12-35, two years running
    assert table.loc["in-house now", "expected_cost"] == pytest.approx(2e6 + 2 * 1e6)


@pytest.mark.parametrize("crewed", [False, True])
def test_blocks_reused_between_plans_give_each_plan_its_own_costs(monkeypatch, crewed):
    # Every plan's per-draw costs with the shared memo equal a fresh evaluation without it,
    # including the waiting plan whose two groups of draws get different capacity (and, with
    # operators, plans that differ only in their hires).
    import capacity.network.plan as module

    rng = np.random.default_rng(4)
    patients = rng.poisson(np.linspace(3, 14, 24)[None, :] * rng.uniform(0.5, 1.5, (12, 1)))
    demand = make_demand(patients[:, :, None].astype(float), programs=["A"])
    fresh, reused, solved, split = [], [], [0, 0], []
    evaluate, assign_blocks = module._evaluate, module._assign_blocks

    def counted(lay, net, need_b, *args, **kw):
        solved[counting[0]] += len(need_b)
        return assign_blocks(lay, net, need_b, *args, **kw)

    counting = [0]

    def both(units, lay, net, need, groups, chunk_draws, memo=None, hires=None):
        counting[0] = 0
        fresh.append(evaluate(units, lay, net, need, groups, chunk_draws, hires=hires))
        counting[0] = 1
        reused.append(evaluate(units, lay, net, need, groups, chunk_draws, memo, hires))
        split.append(groups.max() > 0)
        return reused[-1]

    monkeypatch.setattr(module, "_evaluate", both)
    monkeypatch.setattr(module, "_assign_blocks", counted)
    net = CREWED_SMALL if crewed else SMALL
    plan_network(demand, net, milp_draws=12, wait_months=[6], readout="2027-10-01")
    assert len(fresh) == 7 and any(split)  # seven plans, some with two groups of draws
    assert solved[0] == 7 * 12 * 8  # every (draw, quarter) of every plan without the memo
    assert 12 * 8 <= solved[1] < solved[0]  # fewer with it
    for f, r in zip(fresh, reused, strict=True):
        np.testing.assert_allclose(r["total_cost"], f["total_cost"], rtol=1e-12)
        np.testing.assert_allclose(r["unmet_patients"], f["unmet_patients"], atol=1e-12)


# --- operators and hires ------------------------------------------------------------------------
def _crewed(operators=0.0, hire_cost=1.0, operator_cost_per_year=12.0, **network):
    """One own site with plenty of suites (10 suites x 31 days / 10 = 31 lots a month) and
    ``operators``: 100 operator-hours a lot, 160 hours an operator-month."""
    site = Site(
        "plant",
        suites=10,
        max_units=0,
        operators=operators,
        hire_lead_time_months=2,
        hire_cost=hire_cost,
        operator_cost_per_year=operator_cost_per_year,
        max_hires=20,
    )
    fields = dict(
        sites=[site],
        lanes=[Lane("R", "plant", 0)],
        region_shares={"A": {"R": 1.0}},
        vein_to_vein_days={"A": 30},
        suite_days_per_lot={"A": 10},
        cost_per_patient_unserved=1e6,
        operator_hours_per_lot={"A": 100.0},
        operator_hours_per_month=160.0,
    )
    fields.update(network)
    return Network(**fields)


def test_operators_bind_the_assignment_before_suites():
    # 5 operators x 160 h = 800 h = 8 lots of 100 h, though the suites could make 31
    net = _crewed(operators=5)
    demand = make_demand(np.array([[[10.0]]]), programs=["A"])
    out = assign_lots(demand, net, np.array([[10.0]]), period_months=1)
    assert out["lots"].values[0, 0] == pytest.approx([8.0])
    assert out["unmet_patients"].values[0, 0] == pytest.approx(2.0)
    more = assign_lots(
        demand, net, np.array([[10.0]]), operators_online=np.array([[7.0]]), period_months=1
    )
    assert more["unmet_patients"].values[0, 0] == pytest.approx(0.0)  # 1,120 h >= 1,000 h


@pytest.mark.parametrize("integer_hires", [True, False])
def test_the_plan_hires_ceil_need_over_rate_lead_months_before_demand(integer_hires):
    # 10 lots a month from month 3: 1,000 h / 160 h = 6.25 -> 7 operators, qualified in
    # month 3; with a 2-month lead and discounting the cheapest hire is in month 1
    # (continuous hires: 6.25 in the MILP, rounded up to the same 7)
    patients = np.array([0, 0, 0, 10, 10, 10], float)[None, :, None]
    demand = make_demand(patients, programs=["A"])
    net = _crewed(discount_rate=0.1)
    plan = plan_network(
        demand,
        net,
        period_months=1,
        decision_months=1,
        mip_rel_gap=1e-9,
        alternatives=False,
        integer_hires=integer_hires,
    )
    hires = plan.commitments[plan.commitments["kind"] == "hire"]
    assert hires["units"].tolist() == [7]
    assert hires["commit_month"].tolist() == [pd.Timestamp("2027-02-01")]
    assert hires["online_month"].tolist() == [pd.Timestamp("2027-04-01")]
    assert plan.summary["service_probability"] == 1.0
    disc = 1.1 ** (-np.arange(6) / 12)
    # 7 x (hire cost 1 in month 1 + 1 a month from month 3)
    assert plan.summary["expected_cost"] == pytest.approx(7 * (disc[1] + disc[3:].sum()))


def test_hiring_dearer_than_the_cdmo_leaves_the_lots_to_the_cdmo():
    # 10 lots a month for 6 months. The CDMO: 4 slots (3.1 lots a month each) at 100 a month
    # and 1 a lot, 410 a month. In house: 7 operators; at 12 a year (7 a month) they beat
    # the CDMO, at 2,400 a year (1,400 a month; 3 slots + 1 operator: 509) they do not.
    patients = np.full((1, 6, 1), 10.0)
    demand = make_demand(patients, programs=["A"])
    cdmo = Site("cdmo", kind="cdmo", max_units=4, slot_fee_per_month=100.0, cost_per_lot=1.0)

    def plan_with(cost_per_year):
        plant = _crewed(operator_cost_per_year=cost_per_year).sites[0]
        net = _crewed(
            sites=[dataclasses.replace(plant, hire_lead_time_months=0), cdmo],
            lanes=[Lane("R", "plant", 0), Lane("R", "cdmo", 0)],
        )
        return plan_network(
            demand, net, period_months=1, decision_months=1, mip_rel_gap=1e-9, alternatives=False
        )

    dear = plan_with(2400.0)
    hires = dear.commitments[dear.commitments["kind"] == "hire"]
    assert hires.empty
    assert dear.commitments[dear.commitments["kind"] == "cdmo"]["units"].sum() == 4
    assert dear.summary["expected_cost"] == pytest.approx(6 * 410.0)
    cheap = plan_with(12.0)
    assert cheap.commitments[cheap.commitments["kind"] == "hire"]["units"].tolist() == [7]
    assert cheap.commitments[cheap.commitments["kind"] == "cdmo"].empty
    assert cheap.summary["expected_cost"] == pytest.approx(7 * (1.0 + 6 * 1.0))


CREWED_SMALL = Network(
    sites=[
        Site(
            "plant",
            suites=1,
            max_units=1,
            module_capital=300.0,
            module_cost_per_year=400.0,
            cost_per_lot=5.0,
            lead_time_months=3,
            turnaround_days=10,
            operators=1,
            hire_lead_time_months=3,
            hire_cost=20.0,
            operator_cost_per_year=120.0,
            max_hires=2,
        ),
        Site(
            "cdmo",
            kind="cdmo",
            max_units=2,
            slot_fee_per_month=60.0,
            cost_per_lot=25.0,
            turnaround_days=8,
        ),
    ],
    lanes=[
        Lane("east", "plant", 1, 1.0),
        Lane("east", "cdmo", 2, 3.0),
        Lane("west", "cdmo", 3, 2.0),
    ],
    region_shares={"A": {"east": 0.6, "west": 0.4}},
    vein_to_vein_days={"A": 18},
    suite_days_per_lot={"A": 15},
    cost_per_patient_unserved=60.0,
    discount_rate=0.1,
    operator_hours_per_lot={"A": 100.0},
    operator_hours_per_month=100.0,  # an operator makes 3 lots a quarter, a suite 6
)


def test_the_milp_with_hires_equals_brute_force_over_every_plan():
    rng = np.random.default_rng(3)
    patients = rng.poisson(np.array([4, 4, 6, 8, 10, 12])[None, :] * rng.uniform(0.6, 1.4, (4, 1)))
    demand = make_demand(patients[:, :, None].astype(float), programs=["A"])
    months = pd.DatetimeIndex(demand["month"].values)
    best = None
    plant, cdmo = CREWED_SMALL.sites
    for modules, slots, hires in itertools.product(
        _plans_of(plant, 2), _plans_of(cdmo, 2), _plans_of(Site("h", max_units=2), 2)
    ):
        units = {"plant": modules, "cdmo": slots}
        cost = _brute_force_cost(
            units, patients.astype(float), months, CREWED_SMALL, {"plant": hires}
        )
        if best is None or cost < best[0]:
            best = (cost, units, hires)
    plan = plan_network(
        demand, CREWED_SMALL, decision_months=3, milp_draws=4, mip_rel_gap=1e-9, alternatives=False
    )
    assert plan.summary["in_sample_cost"] == pytest.approx(best[0], rel=1e-7)
    assert plan.summary["expected_cost"] == pytest.approx(best[0], rel=1e-7)
    found = [0, 0]
    for row in plan.commitments[plan.commitments["kind"] == "hire"].itertuples():
        found[(row.commit_month.month - 1) // 3] += row.units
    assert tuple(found) == best[2]
    assert sum(best[2]) > 0  # the case is not trivial: the optimum hires


def _three_crewed_plants():
    """A CDMO (first: its resource index is not its crew's) and three own plants with
    operators, each plant the only own site for its region; 100 operator-hours a lot, 160
    hours an operator-month, 10 suites a plant (31 lots a month: suites never bind)."""

    def plant(name, operators):
        return Site(name, suites=10, max_units=0, operators=operators, hire_cost=1.0,
                    operator_cost_per_year=12.0, max_hires=20)  # fmt: skip

    cdmo = Site("cdmo", kind="cdmo", max_units=4, slot_fee_per_month=1e4)
    plants = [plant("plant-a", 2), plant("plant-b", 0), plant("plant-c", 5)]
    lanes = [Lane(r, "cdmo", 0) for r in ("ra", "rb", "rc")]
    lanes += [Lane(r, p.name, 0) for r, p in zip(("ra", "rb", "rc"), plants, strict=True)]
    return Network(
        sites=[cdmo, *plants],
        lanes=lanes,
        region_shares={"A": {"ra": 0.5, "rb": 0.3, "rc": 0.2}},
        vein_to_vein_days={"A": 30},
        suite_days_per_lot={"A": 10},
        cost_per_patient_unserved=1e6,
        operator_hours_per_lot={"A": 100.0},
        operator_hours_per_month=160.0,
    )


def test_each_crewed_site_hires_against_its_own_operator_hours():
    # 20, 20, 30 patients a month, split 50/30/20: lots a month a 10, 10, 15; b 6, 6, 9;
    # c 4, 4, 6. Operators needed = ceil(lots x 100 / 160): a 7, 7, 10 (has 2: hires 5 in
    # month 0, 3 in month 2); b 4, 4, 6 (has 0: 4 then 2); c 3, 3, 4 (has 5: none). A hire
    # costs 1 plus 1 a month from qualification (no lead, no discount), so each is made the
    # month it is first needed; a CDMO slot (10,000 a month) never pays.
    net = _three_crewed_plants()
    demand = make_demand(np.array([20.0, 20.0, 30.0])[None, :, None], programs=["A"])
    plan = plan_network(
        demand, net, period_months=1, decision_months=1, mip_rel_gap=1e-9, alternatives=False
    )
    hires = plan.commitments[plan.commitments["kind"] == "hire"]
    got = {(r.site, r.commit_month.month - 1): r.units for r in hires.itertuples()}
    assert got == {("plant-a", 0): 5, ("plant-a", 2): 3, ("plant-b", 0): 4, ("plant-b", 2): 2}
    assert plan.commitments[plan.commitments["kind"] == "cdmo"].empty
    assert plan.summary["service_probability"] == 1.0
    # operators now 7 x 1 a month x 3 months; hires 5 x (1 + 3) + 3 x (1 + 1) at a and
    # 4 x (1 + 3) + 2 x (1 + 1) at b
    cost = 7 * 3 + 5 * 4 + 3 * 2 + 4 * 4 + 2 * 2
    assert plan.summary["expected_cost"] == pytest.approx(cost)
    assert plan.summary["in_sample_cost"] == pytest.approx(cost)

    # the plan's own numbers, site by site: the operators it qualifies make its lots (each
    # site's operator-hours row holds), at a and b with less than one operator to spare (the
    # row binds: one hire fewer leaves patients), at c with room (its row does not bind)
    operators = np.array([[0, 2, 0, 5]] * 3, float)
    for (site, month), units in got.items():
        operators[month:, [s.name for s in net.sites].index(site)] += units
    suites = np.array([[0.0, 10, 10, 10]] * 3)
    out = assign_lots(demand, net, suites, operators_online=operators, period_months=1)
    assert out["unmet_patients"].values.sum() == pytest.approx(0.0, abs=1e-9)
    lots = out["lots"].values[0]
    np.testing.assert_allclose(lots, [[0, 10, 6, 4], [0, 10, 6, 4], [0, 15, 9, 6]], atol=1e-9)
    hours, capacity = 100.0 * lots[:, 1:], 160.0 * operators[:, 1:]
    assert (hours <= capacity + 1e-9).all()
    np.testing.assert_array_less(capacity[:, :2] - 160.0, hours[:, :2])  # a, b: binding
    assert (capacity[:, 2] - hours[:, 2] >= 160.0).all()  # c: at least one operator spare
    for site in (1, 2):
        for month in (0, 2):
            fewer = operators.copy()
            fewer[month:, site] -= 1
            short = assign_lots(demand, net, suites, operators_online=fewer, period_months=1)
            assert short["unmet_patients"].values[0, month] > 0


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Site("p", operators=1, hire_cost=-1.0), "hire_cost must be a finite number >= 0"),
        (
            lambda: Site("p", operators=1, hire_lead_time_months=-1),
            "hire_lead_time_months must be a finite number >= 0",
        ),
        (lambda: Site("p", operators=-2), "operators must be a finite number >= 0"),
        (lambda: Site("c", kind="cdmo", operators=3), "a CDMO brings its own staff"),
        (
            lambda: _crewed(operator_hours_per_lot={"A": 0.0}),
            "operator_hours_per_lot['A'] must be a finite number > 0",
        ),
        (
            lambda: _crewed(operator_hours_per_month=0.0),
            "operator_hours_per_month must be a finite number > 0",
        ),
    ],
)
def test_bad_operator_input_names_the_field(build, message):
    with pytest.raises(InputError, match=__import__("re").escape(message)):
        build()


# --- backlog: patients wait for a later period ------------------------------------------------
def _backlogged(max_wait_months=1, vein_to_vein_days=60, **network):
    """One site making exactly 10 lots a month: 1 operator of 1,000 hours, 100 hours a lot
    (its suites allow 31); late cost 7 a patient-month, penalty 1,000."""
    site = Site("plant", suites=10, max_units=0, operators=1, max_hires=0)
    fields = dict(
        sites=[site],
        lanes=[Lane("R", "plant", 0)],
        region_shares={"A": {"R": 1.0}},
        vein_to_vein_days={"A": vein_to_vein_days},
        suite_days_per_lot={"A": 10},
        cost_per_patient_unserved=1000.0,
        operator_hours_per_lot={"A": 100.0},
        operator_hours_per_month=1000.0,
        max_wait_months=max_wait_months,
        late_cost_per_patient_month=7.0,
    )
    fields.update(network)
    return Network(**fields)


@pytest.mark.parametrize(
    ("patients", "net", "lots", "unmet", "cost"),
    [
        # 15 then 5: 5 carried one month, made in month 1 with its 5
        ([15, 5], _backlogged(), [10, 10], [0, 0], 5 * 7.0),
        # no backlog: 5 not served in month 0
        ([15, 5], _backlogged(max_wait_months=0), [10, 5], [5, 0], 5 * 1000.0),
        # 29 days left by the vein-to-vein limit: less than a month, no wait allowed
        ([15, 5], _backlogged(vein_to_vein_days=29), [10, 5], [5, 0], 5 * 1000.0),
        # 15 then 10: month 1 is full, so 5 are lost either way (not carried: waiting costs)
        ([15, 10], _backlogged(), [10, 10], [5, 0], 5 * 1000.0),
        # 15, 5, 5 with a 2-month wait allowed but 1 month left: 5 wait one month
        ([15, 5, 5], _backlogged(max_wait_months=2), [10, 10, 5], [0, 0, 0], 5 * 7.0),
        # 25, 0, 0, waits up to 2 months: 10 made at once, 10 a month late, 5 two months late
        (
            [25, 0, 0],
            _backlogged(max_wait_months=2, vein_to_vein_days=70),
            [10, 10, 5],
            [0, 0, 0],
            10 * 7.0 + 5 * 14.0,
        ),
    ],
)
def test_backlog_carries_unmet_lots_to_the_next_period(patients, net, lots, unmet, cost):
    demand = make_demand(np.array(patients, float)[None, :, None], programs=["A"])
    out = assign_lots(demand, net, np.full((len(patients), 1), 10.0), period_months=1)
    assert out["lots"].values[0, :, 0] == pytest.approx(lots)
    assert out["unmet_patients"].values[0] == pytest.approx(unmet)
    assert out["assignment_cost"].values[0] == pytest.approx(cost)


def test_backlog_plan_waits_instead_of_reserving_a_cdmo_slot():
    # 15 then 5 patients: without a backlog 5 are lost unless 2 CDMO slots (3.1 lots a month
    # each, 100 a month from reservation to the end, 1 a lot) are reserved in month 0:
    # 2 x 100 x 2 months + 5 lots = 405 < 5 x 1,000. With a backlog the 5 wait a month at 7
    # each = 35 < 405: no slot.
    demand = make_demand(np.array([[[15.0], [5.0]]]).reshape(1, 2, 1), programs=["A"])
    cdmo = Site("cdmo", kind="cdmo", max_units=2, slot_fee_per_month=100.0, cost_per_lot=1.0)
    lanes = [Lane("R", "plant", 0), Lane("R", "cdmo", 0)]
    options = dict(period_months=1, decision_months=1, mip_rel_gap=1e-9, alternatives=False)
    for wait, slots, cost, late in [(0, 2, 2 * 100.0 * 2 + 5.0, 0.0), (1, 0, 35.0, 5.0)]:
        base = _backlogged(max_wait_months=wait)
        net = _backlogged(max_wait_months=wait, sites=[base.sites[0], cdmo], lanes=lanes)
        plan = plan_network(demand, net, **options)
        found = plan.commitments[plan.commitments["kind"] == "cdmo"]["units"].sum()
        assert found == slots, wait
        assert plan.summary["expected_cost"] == pytest.approx(cost)
        assert plan.summary["in_sample_cost"] == pytest.approx(cost)
        assert plan.summary["late_patients"] == pytest.approx(late)


def test_bad_backlog_input_names_the_field():
    with pytest.raises(InputError, match="max_wait_months must be a finite number >= 0"):
        _backlogged(max_wait_months=-1)
    with pytest.raises(InputError, match="late_cost_per_patient_month must be a finite number"):
        _backlogged(late_cost_per_patient_month=-3.0)


def test_the_milp_with_a_backlog_equals_brute_force_over_every_plan():
    # monthly periods, one region: a plant (1 suite, a module of 1 online a month after
    # commitment) and a CDMO slot; patients may wait one month (60-day limit, 0-day routes)
    net = Network(
        sites=[
            Site(
                "plant",
                suites=1,
                max_units=1,
                module_capital=40.0,
                module_cost_per_year=120.0,
                cost_per_lot=2.0,
                lead_time_months=1,
            ),
            Site("cdmo", kind="cdmo", max_units=1, slot_fee_per_month=30.0, cost_per_lot=9.0),
        ],
        lanes=[Lane("R", "plant", 0, 1.0), Lane("R", "cdmo", 0, 1.0)],
        region_shares={"A": {"R": 1.0}},
        vein_to_vein_days={"A": 60},
        suite_days_per_lot={"A": 10},
        cost_per_patient_unserved=50.0,
        discount_rate=0.1,
        max_wait_months=1,
        late_cost_per_patient_month=4.0,
    )
    rng = np.random.default_rng(5)
    patients = rng.poisson([8.0, 5.0, 2.0], (3, 3)).astype(float)
    demand = make_demand(patients[:, :, None], programs=["A"])
    months = pd.DatetimeIndex(demand["month"].values)
    days = np.asarray(months.days_in_month, float)
    disc = 1.1 ** (-np.arange(3) / 12)

    def cost_of(plant, cdmo):  # written out: first stage by hand, one dense LP per draw
        first, suites = 0.0, np.array([[1.0, 0.0]] * 3)
        for p, k in enumerate(plant):
            first += k * 40.0 * disc[p] + sum(k * 10.0 * disc[q] for q in range(p + 1, 3))
            suites[p + 1 :, 0] += k
        for p, k in enumerate(cdmo):
            first += sum(k * 30.0 * disc[q] for q in range(p, 3))
            suites[p:, 1] += k
        cols = [(q, dd, s) for q in range(3) for dd in (0, 1) for s in (0, 1) if q + dd < 3]
        c = [((3.0, 10.0)[s] + 4.0 * dd) * disc[q + dd] for q, dd, s in cols]
        c += [50.0 * disc[q] for q in range(3)]
        a_eq = [
            [1.0 * (q == m) for q, _, _ in cols] + [1.0 * (m == j) for j in range(3)]
            for m in range(3)
        ]
        a_ub = [
            [10.0 * (q + dd == m and s == t) for q, dd, s in cols] + [0.0] * 3
            for m in range(3)
            for t in (0, 1)
        ]
        b_ub = [suites[m, t] * days[m] for m in range(3) for t in (0, 1)]
        out = [
            linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=d, method="highs").fun
            for d in patients
        ]
        return first + float(np.mean(out))

    options = [k for k in itertools.product((0, 1), repeat=3) if sum(k) <= 1]
    best = min((cost_of(p, c), p, c) for p in options for c in options)
    plan = plan_network(
        demand,
        net,
        period_months=1,
        decision_months=1,
        milp_draws=3,
        mip_rel_gap=1e-9,
        alternatives=False,
    )
    assert plan.summary["in_sample_cost"] == pytest.approx(best[0], rel=1e-7)
    assert plan.summary["expected_cost"] == pytest.approx(best[0], rel=1e-7)
    found = {"plant": [0, 0, 0], "cdmo": [0, 0, 0]}
    for row in plan.commitments.itertuples():
        found[row.site][row.commit_month.month - 1] += row.units
    assert (tuple(found["plant"]), tuple(found["cdmo"])) == best[1:]
    # not trivial: with the suites installed now some lots wait a month (lots made in a
    # month differ from the patients who started in it and were served), and the optimum
    # commits something
    out = assign_lots(demand, net, np.array([[1.0, 0.0]] * 3), period_months=1)
    served = out["patients"] - out["unmet_patients"]
    assert not np.allclose(out["lots"].sum("site").values, served.values)
    assert sum(best[1]) + sum(best[2]) > 0


def test_a_backlog_with_no_room_to_wait_is_the_plan_without_one():
    # SMALL's routes leave at most 6 days under the 18-day limit: no lot may wait a month, so
    # the per-draw backlog LPs must give exactly the per-period recourse's plan and costs
    rng = np.random.default_rng(3)
    patients = rng.poisson(np.array([4, 4, 6, 8, 10, 12])[None, :] * rng.uniform(0.6, 1.4, (4, 1)))
    demand = make_demand(patients[:, :, None].astype(float), programs=["A"])
    waiting = dataclasses.replace(SMALL, max_wait_months=3, late_cost_per_patient_month=1.0)
    options = dict(decision_months=3, milp_draws=4, mip_rel_gap=1e-9)
    plain, backlog = (
        plan_network(demand, SMALL, **options),
        plan_network(demand, waiting, **options),
    )
    pd.testing.assert_frame_equal(plain.commitments, backlog.commitments)
    np.testing.assert_allclose(
        backlog.alternatives["expected_cost"], plain.alternatives["expected_cost"], rtol=1e-9
    )
    assert backlog.summary["late_patients"] == 0.0
