"""What materials cost a warm ``pmcap run`` of the bundled example, in one process.

The example's stages up to ``requirements`` run once (cache hits for the fits); then, each
``--repeat`` times, the baseline is the requirements stage without materials
(``requirements`` by program and ``facility``), and materials are everything a run adds for
its bills: :func:`capacity.materials.materials_by_process`, ``materials.csv``, the
``materials_spend`` columns of ``finance.csv`` and the report's materials section. Prints the
best time of each, their ratio and the materials time in seconds (the budget is 2 s).

Run: ``python benchmarks/bench_materials.py [--repeat R] [--draws N]`` (from a checkout, with
``PYTHONPATH`` at it).
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace


def best(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--draws", type=int, default=None, help="default: the scenario's")
    args = parser.parse_args()

    from capacity import facility
    from capacity.materials import materials_by_process
    from pmcap import export
    from pmcap.fits import fit_models
    from pmcap.inputs import check_inputs, portfolio
    from pmcap.scenario import example_scenario_path, load_scenario

    scenario = load_scenario(example_scenario_path())
    if args.draws:
        scenario.run.draws = args.draws
    parsed = check_inputs(scenario)
    processes = parsed["processes"]
    fits = fit_models(scenario, parsed, True)
    world = portfolio(scenario, fits.models, parsed).simulate()

    def requirements_stage():
        req = world.requirements(processes, by_program=True)
        return req, facility(req)

    base_s, (req, total) = best(requirements_stage, args.repeat)
    qs = scenario.run.quantiles

    def materials_stage():
        plans = materials_by_process(req["lots"], processes, seed=scenario.run.seed, quantiles=qs)
        export.materials_table(plans, "USD")
        spend = export.materials_spend(plans, req["lots"])
        try:  # the report's section (absent before the report had one)
            from pmcap.report import materials_section
        except ImportError:
            return plans, spend
        run = SimpleNamespace(materials=plans, requirements=req, scenario=scenario)
        materials_section(run)
        return plans, spend

    try:
        export.materials_spend  # noqa: B018
    except AttributeError:  # before finance.csv had materials: plans and materials.csv only

        def materials_stage():
            plans = materials_by_process(
                req["lots"], processes, seed=scenario.run.seed, quantiles=qs
            )
            export.materials_table(plans, "USD")
            return plans, None

    plan_s, _ = best(
        lambda: materials_by_process(req["lots"], processes, seed=scenario.run.seed, quantiles=qs),
        args.repeat,
    )
    mat_s, (plans, _) = best(materials_stage, args.repeat)
    sizes = dict(req["lots"].sizes)
    items = sum(p.sizes["item"] for p in plans.values())
    print(f"example: {sizes}, {len(plans)} process(es) with a bill, {items} items")
    print(f"requirements without materials: {base_s:.3f} s (best of {args.repeat})")
    print(f"materials plans alone (materials_by_process): {plan_s:.3f} s")
    print(f"materials (plan, materials.csv, finance spend, report): {mat_s:.3f} s")
    print(f"ratio materials / requirements: {mat_s / base_s:.2f}")


if __name__ == "__main__":
    main()
