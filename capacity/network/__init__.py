"""A manufacturing network planned across demand draws: sites, CDMOs, lanes, investments.

Model (one MILP, solved by HiGHS through :func:`scipy.optimize.milp`)
    * **Time.** The demand months are grouped into periods of ``period_months`` (3: quarters).
      A period's capacity is suite-days: suites online x calendar days of the period.
    * **Sites.** An own site has ``suites`` installed now and can add modules of
      ``module_suites`` suites; a module committed in period ``p`` is online from period
      ``p + ceil(lead_time_months / period_months)`` for the rest of the horizon. A CDMO adds
      reserved slots instead; a slot is one suite's capacity, paid ``slot_fee_per_month``
      every month from the month it is reserved (take-or-pay), usable after the CDMO's lead
      time. ``fixed_cost_per_year`` is paid by a site with suites now for the whole horizon,
      and by a new site from the first period it has capacity online.
    * **Operators and hires.** At an own site with ``operators`` (qualified now), a lot of
      program ``j`` also takes ``operator_hours_per_lot[j]`` operator-hours, and a period
      offers ``operators online x operator_hours_per_month x months`` of them: a second
      capacity row per site next to its suite-days. The plan may commit integer hires per
      site and decision period, qualified ``hire_lead_time_months`` later (rounded up to
      whole periods) for the rest of the horizon, paid ``hire_cost`` at commitment and
      ``operator_cost_per_year`` from qualification (the operators now: over the whole
      horizon). A CDMO brings its own staff: its slots are its only limit.
    * **Lanes and vein-to-vein.** Patients of a program start in regions (``region_shares``,
      fixed or Dirichlet per draw); a lane carries the apheresis material from a region to a
      site and the product back. A lot of program ``j`` from region ``r`` may be made at site
      ``s`` only if ``2 x transport_days(r, s) + turnaround_days(s) <= vein_to_vein_days(j)``
      (the same lane out and back, an assumption). A lot uses ``suite_days_per_lot[j]``
      suite-days at an own site or a CDMO alike.
    * **Recourse, per draw and period** (the assignment): lots served per allowed (program,
      region, site) and patients not served, at least cost: ``cost_per_lot`` of the site (a
      CDMO's price) + the lane's ``cost_per_lot`` per lot, ``cost_per_patient_unserved`` per
      patient not served in the period they start (by default no backlog: a patient not made
      in their period counts as not treated). Lots are continuous (an LP), so a draw's unmet
      patients can be fractional.
    * **Backlog** (``max_wait_months > 0``): a patient may instead be made up to that many
      months (whole periods) later, at ``late_cost_per_patient_month`` per month waited, on
      a route whose ``2 x transport + turnaround`` + the wait (30.44 days a month) fits the
      program's ``vein_to_vein_days``; later, or past the horizon, not treated. The periods
      of a draw are then coupled: the recourse is one LP per draw over its periods (in the
      MILP and in the evaluation), with no closed form and no blocks shared between plans.
    * **Investment (first stage).** Integer modules / slots and hires committed per site and
      period and a binary "site has capacity" per new site and period. Every commitment is
      the same in all draws (non-anticipative); hires may be committed in the same periods
      as modules. With ``wait_months`` the commitments before that month are forbidden
      and, with ``information_groups > 1``, later commitments may differ between
      groups of draws that look different at that month (quantile bins of the patients who
      started before it, known then), so the plan still uses only what is known when it
      commits.
    * **Objective.** Expected total discounted cost (sample average over ``milp_draws``
      draws): capital at commitment, module running and slot fees while online / reserved,
      hire costs and operators' loaded costs,
      fixed costs, lot and lane costs, and the penalty per patient not served. Discounting:
      a cost in the period starting ``m`` months after the first month is multiplied by
      ``(1 + discount_rate) ** (-m / 12)``.
    * **Service level.** By default it is priced, not constrained (the penalty formulation:
      the plan minimises cost including ``cost_per_patient_unserved`` and the share of draws
      that serve everyone is reported). With ``service_target`` it is also a chance constraint:
      a binary per draw ``z`` with ``sum(unmet patients of the draw) <= M z`` (``M`` = the
      draw's patients, the tightest valid big-M) and ``sum(z) <= floor(service_target x draws)``,
      so at most that share of draws may leave anyone unserved.

The plan is then evaluated on every draw (the assignment LP of all draws, batched into a few
block-diagonal HiGHS solves) for out-of-sample cost percentiles, P(service met), cost per
patient treated and the alternatives (no new capacity, in-house now, in-house after a
readout, CDMO only, in-house only, the optimum). References: the network structure (candidate
sites, lanes with transport times, a vein-to-vein cap) follows i-SHIPMENT, Triantafyllou et
al., Sci Rep 12:17365 (2022); sample average approximation: Shapiro, Dentcheva and
Ruszczynski, Lectures on Stochastic Programming (2009), ch. 5.
"""

from capacity.network.assign import assign_lots
from capacity.network.model import Lane, Network, Site
from capacity.network.plan import NetworkPlan, plan_network

__all__ = ["Lane", "Network", "NetworkPlan", "Site", "assign_lots", "plan_network"]
