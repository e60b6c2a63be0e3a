"""Time the vector campaign plan of the bundled example against its requirements stage.

The example's draws (1,000 draws x 120 months; the posterior cache is used when warm) are
composed once; then, in this process, best of ``--repeat``:

* baseline: what the ``requirements`` stage of ``pmcap run`` computed before the vector plan
  (``world.requirements`` by program, ``facility`` totals, ``materials_by_process``);
* ``vector_by_process``: the greedy campaign plan and its re-simulation (what the vector adds
  to the stage);
* ``simulate_vector``: one pass of the chosen calendar over every draw, the unit of work the
  plan repeats in its probes.

Run: ``python benchmarks/bench_vector.py [--repeat R] [--draws N]``; prints the three times
and the ratios of the second to the first and of the second to the third.
"""

from __future__ import annotations

import argparse
import time


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    from capacity import facility
    from capacity.materials import materials_by_process
    from capacity.vector import simulate_vector, vector_by_process
    from pmcap.fits import fit_models
    from pmcap.inputs import check_inputs, portfolio
    from pmcap.scenario import example_scenario_path, load_scenario

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--draws", type=int, default=None, help="default: the scenario's")
    args = parser.parse_args()
    scenario = load_scenario(example_scenario_path()).apply(draws=args.draws)
    parsed = check_inputs(scenario)
    processes = parsed["processes"]
    world = portfolio(scenario, fit_models(scenario, parsed, True).models, parsed).simulate()
    seed, qs = scenario.run.seed, scenario.run.quantiles

    def baseline():
        req = world.requirements(processes, by_program=True)
        facility(req)
        materials_by_process(req["lots"], processes, seed=seed, quantiles=qs)
        return req

    req = baseline()
    plans = vector_by_process(req["lots"], processes, seed=seed, quantiles=qs)
    (name, plan), *_ = plans.items()
    programs = [p for p, s in processes.items() if s.name == name]
    own = req["lots"].sel(program=programs).sum("program")
    spec = processes[programs[0]].vector

    t_base = best_of(baseline, args.repeat)
    t_plan = best_of(
        lambda: vector_by_process(req["lots"], processes, seed=seed, quantiles=qs), args.repeat
    )
    t_sim = best_of(
        lambda: simulate_vector(own, spec, plan.starts, seed=seed, key=name), args.repeat
    )
    print(
        f"example: {own.sizes['draw']} draws x {own.sizes['month']} months, process {name}: "
        f"{len(plan.starts)} campaigns, reach {plan.reach_months} months"
    )
    print(f"requirements stage without the vector: {t_base:.3f} s (best of {args.repeat})")
    print(f"vector_by_process:                      {t_plan:.3f} s")
    print(f"simulate_vector (one pass):             {t_sim:.3f} s")
    print(f"ratio vector plan / requirements stage: {t_plan / t_base:.2f}")
    print(f"ratio vector plan / one simulation pass: {t_plan / t_sim:.1f}")


if __name__ == "__main__":
    main()
