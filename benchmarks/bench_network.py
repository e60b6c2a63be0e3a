"""Time capacity.plan_network on the bundled example against plan_expansion, in one process.

The bundled example's demand (3 programs, 120 months) at ``--draws`` draws (1,000 by default)
is composed once (posteriors from the cache); then

* baseline: :func:`capacity.plan_expansion` of the facility's suites at its shortfall target
  (the greedy plan of ``pmcap run``);
* network: :func:`capacity.plan_network` on an ILLUSTRATIVE two-region network (the example's
  US plant with 12 suites, a candidate EU plant, one CDMO), quarterly periods, the MILP on
  ``--milp-draws`` draws and every plan evaluated on all draws, with the alternatives and the
  value of waiting 12 months;
* the same plan with the formulation before this change (every capacity row listing every usable
  commitment, no ``u`` variables; assignment LPs of 200 draws; no assignment block shared
  between plans) in the same process, unless
  ``--no-old``: CPU and wall seconds of both and their ratio;
* the network stage of ``pmcap run`` (the plan and :func:`pmcap.network.site_costs`) against
  the 30 s goal of issue 27, wall and CPU (wall is CPU plus waiting on a shared machine);
* with ``--operators N`` the US plant has ``N`` operators (hires 6 months ahead, 95,000 a
  year, 20,000 a hire; operator-hours per lot from the run's operator FTE over lots at 137.5
  hours an operator-month), so the MILP also chooses hires and every assignment has an
  operator-hours row (``--continuous-hires``: hires continuous in the MILP, rounded up);
* assignment alone: the batched assignment LP of all draws (:func:`capacity.assign_lots`)
  against one LP per draw (the same LP, ``chunk_draws=1``) on the first ``--loop-draws`` draws.

Run: ``python benchmarks/bench_network.py [--draws N] [--milp-draws M]``; prints the times and
their ratios, the plan and its alternatives.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def example_demand(draws: int):
    from capacity import facility
    from pmcap.fits import fit_models
    from pmcap.inputs import check_inputs, portfolio
    from pmcap.scenario import example_scenario_path, load_scenario

    scenario = load_scenario(example_scenario_path())
    scenario = scenario.model_copy(update={"run": scenario.run.model_copy(update={"draws": draws})})
    parsed = check_inputs(scenario)
    fits = fit_models(scenario, parsed, True)
    world = portfolio(scenario, fits.models, parsed).simulate()
    req = world.requirements(parsed["processes"], by_program=True)
    return scenario, world.demand, req, facility(req)


def network(req, programs, operators=None):
    import dataclasses

    from capacity import Lane, Network, Site
    from pmcap.network import operator_hours_per_lot

    # suite-days a lot occupies, per program: the ratio of the requirement sums
    per_lot = (
        req["suite_days"].sum(("draw", "month")) / req["lots"].sum(("draw", "month"))
    ).to_series()
    sites = [
        Site(
            "US plant",
            suites=12,
            module_suites=4,
            max_units=8,
            module_capital=60e6,
            module_cost_per_year=12e6,
            fixed_cost_per_year=20e6,
            cost_per_lot=40e3,
            lead_time_months=20,
            turnaround_days=16,
        ),
        Site(
            "EU plant",
            module_suites=4,
            max_units=6,
            module_capital=70e6,
            module_cost_per_year=12e6,
            fixed_cost_per_year=15e6,
            cost_per_lot=45e3,
            lead_time_months=24,
            turnaround_days=16,
        ),
        Site(
            "CDMO",
            kind="cdmo",
            max_units=12,
            slot_fee_per_month=150e3,
            cost_per_lot=120e3,
            lead_time_months=6,
            turnaround_days=18,
        ),
    ]
    lanes = [
        Lane("US", "US plant", 1, 3e3),
        Lane("US", "CDMO", 2, 4e3),
        Lane("EU", "EU plant", 1, 3e3),
        Lane("EU", "CDMO", 2, 5e3),
        Lane("EU", "US plant", 3, 12e3),
    ]
    hours = None
    if operators is not None:
        sites[0] = dataclasses.replace(
            sites[0],
            operators=float(operators),
            hire_lead_time_months=6,
            operator_cost_per_year=95e3,
            hire_cost=20e3,
            max_hires=200,
        )
        hours = operator_hours_per_lot(req, 137.5)
    return Network(
        operator_hours_per_lot=hours,
        sites=sites,
        lanes=lanes,
        region_shares={p: {"US": 0.7, "EU": 0.3} for p in programs},
        vein_to_vein_days={p: 24 for p in programs},
        suite_days_per_lot={p: float(per_lot[p]) for p in programs},
        cost_per_patient_unserved=2e6,
        discount_rate=0.08,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--milp-draws", type=int, default=100)
    parser.add_argument("--loop-draws", type=int, default=50)
    parser.add_argument("--no-old", action="store_true", help="skip the old formulation")
    parser.add_argument("--operators", type=int, default=None, help="operators at the US plant")
    parser.add_argument(
        "--continuous-hires", action="store_true", help="hires continuous in the MILP, rounded up"
    )
    args = parser.parse_args()

    from capacity import assign_lots, plan_expansion, plan_network

    t0 = time.perf_counter()
    scenario, demand, req, total = example_demand(args.draws)
    print(f"composing the example's demand ({args.draws} draws): {time.perf_counter() - t0:.1f} s")
    fac = scenario.facility

    t0 = time.perf_counter()
    greedy = plan_expansion(
        total,
        resource="suites",
        installed=12,
        unit_size=fac.module_suites,
        lead_time_months=fac.module_lead_time_months,
        target=fac.shortfall_target,
        cost_per_unit_year=fac.module_cost_per_year,
    )
    baseline = time.perf_counter() - t0
    print(f"baseline plan_expansion: {baseline:.2f} s, {len(greedy.commitments)} module(s)")

    net = network(req, [str(p) for p in demand["program"].values], args.operators)
    options = dict(
        milp_draws=args.milp_draws,
        seed=1,
        wait_months=[12],
        readout="2028-06-01",
        currency="USD",
        integer_hires=not args.continuous_hires,
    )
    t0, c0 = time.perf_counter(), time.process_time()
    plan = plan_network(demand, net, **options)
    planned, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(
        f"plan_network: {planned:.2f} s wall, {cpu:.2f} s CPU ({planned / baseline:.0f} x the "
        f"baseline)"
    )
    from pmcap.network import site_costs

    t0, c0 = time.perf_counter(), time.process_time()
    site_costs(plan, net, demand, seed=1)  # the rest of pmcap's network stage
    stage, stage_cpu = planned + time.perf_counter() - t0, cpu + time.process_time() - c0
    print(
        f"network stage (plan + site costs): {stage:.2f} s wall, {stage_cpu:.2f} s CPU; "
        f"goal 30 s: wall {stage / 30:.2f}, CPU {stage_cpu / 30:.2f} x the goal"
    )
    if not args.no_old:
        import functools

        import capacity.network.plan as module

        new_solve, new_evaluate = module._solve, module._evaluate
        module._solve = functools.partial(new_solve, cumulative=False)
        # without the memo: no blocks shared
        module._evaluate = lambda *a: new_evaluate(*a[:6], None, *a[7:])
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            old = plan_network(demand, net, chunk_draws=200, **options)
        finally:
            module._solve, module._evaluate = new_solve, new_evaluate
        old_wall, old_cpu = time.perf_counter() - t0, time.process_time() - c0
        print(
            f"old formulation: {old_wall:.2f} s wall, {old_cpu:.2f} s CPU; "
            f"old/new CPU {old_cpu / cpu:.2f}, wall {old_wall / planned:.2f}"
        )
        print("  old seconds per plan:", old.timings)
        print(
            "  expected cost new/old:",
            round(plan.summary["expected_cost"] / old.summary["expected_cost"], 5),
            "mip gap new, old:",
            round(plan.summary["mip_gap"], 5),
            round(old.summary["mip_gap"], 5),
        )
    optimum = plan.timings["optimum"]
    print(f"  the optimum alone (MILP + evaluation on all draws): {optimum:.2f} s")
    print("  seconds per plan:", plan.timings)
    print(plan)
    print(plan.alternatives.to_string(float_format=lambda v: f"{v:,.4g}"))
    print({k: round(v, 3) for k, v in plan.summary.items()})
    print("value of waiting:", plan.value_of_waiting)

    online = np.array([[s.suites for s in net.sites]] * 40)
    t0 = time.perf_counter()
    batched = assign_lots(demand, net, online)
    t_batched = time.perf_counter() - t0
    few = demand.isel(draw=slice(0, args.loop_draws))
    t0 = time.perf_counter()
    looped = assign_lots(few, net, online, chunk_draws=1)
    t_loop = (time.perf_counter() - t0) * demand.sizes["draw"] / args.loop_draws
    same = np.allclose(
        looped["assignment_cost"], batched["assignment_cost"][: args.loop_draws], rtol=1e-7
    )
    print(
        f"assignment of {demand.sizes['draw']} draws: batched {t_batched:.2f} s, one LP per draw "
        f"{t_loop:.2f} s (extrapolated from {args.loop_draws}); ratio {t_loop / t_batched:.1f}; "
        f"same costs: {same}"
    )


if __name__ == "__main__":
    main()
