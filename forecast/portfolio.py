"""A portfolio: programs at any stage composed into one demand, in causal order in every draw.

This is the one place where the models' draws meet. Draw ``i`` of every model (enrollment,
phase transitions, uptake) and of the process parameters belongs to one world: one seed drives
everything, every model gives the same number of draws (posterior draws are resampled where a
model has fewer), and every event of a program is derived from the events before it in the
same draw:

* **trial** (a trial with data, ``EnrollmentModel``): clinical lots for enrolled patients who
  reach apheresis (``manufactured_share``, ``lag_days`` after enrollment). A
  **registrational** (pivotal) trial reads out ``follow_up_months`` after that draw's
  enrollment completion; it is positive with the ``phase3_to_filing`` probability of its
  group (a pivotal phase II counts the same; override with ``pivotal_success``); filing
  follows ``filing_prep_months`` later; approval follows with the ``filing_to_approval``
  probability after a review time drawn like the ``filing`` phase of
  :class:`~forecast.PhaseTransitionModel`. Filing therefore never precedes enrollment
  completion.
* **pipeline** (phase I/II/III without trial data): phase ends, filing and approval from
  :meth:`PhaseTransitionModel.simulate`, with the program's pivotal phase (phase III, or a
  single-arm pivotal phase II then the filing); each phase's planned trial patients are
  spread uniformly over the phase's enrollment window in that draw (its first
  ``enrollment_months``, or the whole phase). A phase the program passes reads out no sooner
  than its last patient is in: it lasts the longer of its enrollment window and its calibrated
  time, which includes enrollment (:mod:`forecast.phase.simulate`); a phase it fails may end
  sooner, having enrolled the share of its patients that its window had reached (binomial),
  so a program that fails stops generating demand when the phase it fails in ends. A program
  already in its phase at ``as_of`` has its world (enrollment windows included) drawn given
  that.
* **launched**: commercial patients from :class:`~forecast.UptakeModel` from a known launch,
  optionally reweighted by the product's own sales.
* **commercial stream**: uptake from each draw's launch = approval + ``launch_lag_months``;
  zero in draws without approval; label expansions (dated, or months after launch) add
  patients only after that draw's launch.
* **ppq**: ``ppq_lots`` spread evenly over the months from ``ppq_window_months[0]`` to
  ``ppq_window_months[1]`` before the filing the draw would make if every readout still ahead
  were positive (its planned filing: the draw's enrollment completion + follow-up + filing
  preparation, or its pivotal phase's end had the phase passed). The campaign is committed at
  its first month, never before the event its plan is dated from (enrollment completion of the
  pivotal trial; the start of the pivotal phase), and runs in full in every draw that has not
  learned of a failure (a negative readout, a failed phase) in a month before it, whether or not the
  draw files later (non-anticipation: :func:`forecast.draws.at_risk_start`). A lot planned
  before that event runs in its month.

* **opening state**: lots already in manufacture when the horizon starts (``in_progress``:
  patients started per month before the start, a number or a Series by month) are handed to
  :func:`capacity.requirements` and :func:`capacity.simulate_facility` (``opening=``) so the
  first months are not understated.

Non-anticipation: what a draw commits to at month t depends only on that draw's history up to
t (its events so far and its plan: the durations drawn for it), never on the outcome of a
readout still ahead. PPQ is the only commitment made here before the event that justifies it;
clinical lots follow enrollment, commercial lots follow launch.

Uncertain inputs may be numbers or distribution tables (``{"beta": [a, b]}``, ``{"triangular":
[low, mode, high]}``, ``{"uniform": [low, high]}``, ``{"lognormal": {"median": m, "p90": x}}``),
drawn once per draw and recorded in :attr:`PortfolioDraws.inputs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from forecast.draws import (
    DAYS_PER_MONTH,
    EPOCH,
    at_risk_start,
    derive_seed,
    manufacture_starts,
    month_number,
    param_draws,
    spread_over_windows,
)
from forecast.errors import InputError
from forecast.program import EVENTS, STAGES, TRIAL_PHASES, Program

__all__ = ["Program", "Portfolio", "PortfolioDraws", "STAGES", "EVENTS"]

DAYS_PER_YEAR = 365.25


@dataclass
class PortfolioDraws:
    """The composed world: demand draws plus, per draw and program, the events and inputs."""

    demand: xr.DataArray  # the demand contract (draw, month, program, stream)
    events: xr.Dataset  # (draw, program): enrollment_complete, filing, approval, launch
    inputs: xr.Dataset  # (draw): every sampled input, named "program.input"
    opening: dict[str, Any]  # program -> patients started per month before the start
    seed: int

    def probability_approved_by(self, program: str, date) -> float:
        """Share of draws in which ``program`` is approved on or before ``date``."""
        approval = self.events["approval"].sel(program=program).values
        return float((approval <= np.datetime64(pd.Timestamp(date), "ns")).mean())

    def event_percentiles(self, quantiles: Sequence[float] = (0.1, 0.5, 0.9)) -> pd.DataFrame:
        """Per program and event: probability it happens (in the simulated world) and the
        percentiles of its date among the draws where it happens."""
        rows = []
        for program in map(str, self.events["program"].values):
            for event in EVENTS:
                values = self.events[event].sel(program=program).values
                ok = ~np.isnat(values)
                row = {"program": program, "event": event, "probability": ok.mean()}
                for q in quantiles:
                    row[f"p{100 * q:g}"] = (
                        pd.Timestamp(
                            np.quantile(values[ok].astype("int64"), q).astype("int64")
                        ).normalize()
                        if ok.any()
                        else pd.NaT
                    )
                rows.append(row)
        return pd.DataFrame(rows)

    def launched_by_month(self) -> xr.DataArray:
        """Per draw, month and program: whether the program has launched by the end of the
        month (its ``launch`` event falls in the month or before it; never where the draw has
        no launch). Commercial patients start from the launch month, so a draw with
        commercial patients in a month has launched by then.

        Its mean over draws is P(launched by the month), the share of draws whose launch is
        at or before the month: a program launched in fewer than 1 - q of the draws has a
        ``q`` percentile of commercial patients of 0 however large its mean.

        Examples
        --------
        >>> world.launched_by_month().mean("draw").sel(program="CART-B")  # doctest: +SKIP
        """
        months = pd.DatetimeIndex(self.demand["month"].values)
        ends = (months + pd.offsets.MonthBegin(1)).to_numpy("datetime64[ns]")
        launch = self.events["launch"].transpose("draw", "program").values
        # NaT (no launch in the draw) compares False
        launched = launch[:, None, :] < ends[None, :, None]
        return xr.DataArray(
            launched,
            dims=("draw", "month", "program"),
            coords={
                "draw": self.events["draw"].values,
                "month": self.demand["month"].values,
                "program": self.events["program"].values,
            },
            name="launched",
            attrs={"units": "probability"},
        )

    def patients_by_year(self, quantiles: Sequence[float] = (0.1, 0.5, 0.9)) -> pd.DataFrame:
        """Per program, stream and calendar year: mean and percentiles of each draw's total,
        and ``p_launched``, the probability that the program has launched by the year's last
        month in the horizon (:meth:`launched_by_month`), which says how many draws the
        commercial percentiles rest on."""
        years = self.demand["month"].dt.year
        annual = self.demand.groupby(years).sum("month")  # (draw, year, program, stream)
        frames = []
        for stat, values in [("mean", annual.mean("draw"))] + [
            (f"p{100 * q:g}", annual.quantile(q, dim="draw").drop_vars("quantile"))
            for q in quantiles
        ]:
            frames.append(values.rename(stat).to_dataframe()[stat])
        table = pd.concat(frames, axis=1).reset_index()
        by_year_end = self.launched_by_month().mean("draw").groupby(years).last()
        p_launched = by_year_end.rename("p_launched").to_dataframe()["p_launched"]
        return table.join(p_launched, on=["year", "program"])

    def requirements(self, process, **kw) -> xr.Dataset:
        """:func:`capacity.requirements` of this demand, with the opening state and seed."""
        from capacity import requirements

        return requirements(self.demand, process, seed=self.seed, opening=self.opening, **kw)


class Portfolio:
    """Programs composed into one demand (see the module docstring).

    Parameters
    ----------
    programs
        :class:`Program` objects (or add them with :meth:`add`).
    start, horizon_months
        First month of the demand and its length.
    draws, seed
        Number of draws every model gives, and the one seed that drives all of them.
    as_of
        The date the forecast is made (default: the day before ``start``).
    phase_model, uptake_model
        Fitted :class:`~forecast.PhaseTransitionModel` (needed by pipeline programs and
        registrational trials) and :class:`~forecast.UptakeModel` (needed by every program
        with a commercial stream).

    Examples
    --------
    >>> pf = Portfolio(start="2027-01-01", horizon_months=120, draws=2000, seed=1,
    ...                phase_model=phase, uptake_model=uptake)          # doctest: +SKIP
    >>> pf.add(Program("CART-B", "pipeline", group="CAR-T", phase="phase1",
    ...                phase_start="2026-06-01",
    ...                trial_plan={"phase1": {"patients": 30, "enrollment_months": 18}}))
    >>> world = pf.simulate()                                            # doctest: +SKIP
    >>> world.requirements("car-t-autologous-manual")                    # doctest: +SKIP
    """

    def __init__(
        self,
        programs: Sequence[Program] = (),
        *,
        start,
        horizon_months: int,
        draws: int = 2000,
        seed: int = 0,
        as_of=None,
        phase_model=None,
        uptake_model=None,
    ):
        self.start = pd.Timestamp(start)
        if self.start != self.start.to_period("M").to_timestamp():
            raise InputError(f"start: {self.start.date()} is not the first day of a month")
        if int(horizon_months) != horizon_months or horizon_months < 1:
            raise InputError(f"horizon_months must be a whole number >= 1, got {horizon_months}")
        if int(draws) != draws or draws < 1:
            raise InputError(f"draws must be a whole number >= 1, got {draws}")
        if int(seed) != seed or seed < 0:
            raise InputError(f"seed must be a whole number >= 0, got {seed}")
        self.horizon_months, self.draws, self.seed = int(horizon_months), int(draws), int(seed)
        self.as_of = self.start - pd.Timedelta(days=1) if as_of is None else pd.Timestamp(as_of)
        if self.as_of >= self.start + pd.DateOffset(months=self.horizon_months):
            raise InputError(f"as_of {self.as_of.date()} is after the horizon")
        self.phase_model, self.uptake_model = phase_model, uptake_model
        self.programs: list[Program] = []
        for program in programs:
            self.add(program)

    @property
    def months(self) -> pd.DatetimeIndex:
        return pd.date_range(self.start, periods=self.horizon_months, freq="MS")

    def add(self, program: Program) -> Portfolio:
        if any(p.name == program.name for p in self.programs):
            raise InputError(f"program {program.name!r} is already in the portfolio")
        self.programs.append(program)
        return self

    def seed_for(self, program: str, part: str) -> int:
        """The seed a part (``enrollment``, ``approval``, ``uptake``, ...) of a program uses."""
        return derive_seed(self.seed, "portfolio", program, part)

    # --- composition ----------------------------------------------------------------------
    def simulate(self) -> PortfolioDraws:
        """Draws of demand, events and inputs for every program, aligned by draw."""
        if not self.programs:
            raise InputError("portfolio: no programs")
        months = self.months
        n, m = self.draws, len(months)
        streams = np.zeros((n, m, len(self.programs), 3), np.int64)
        events = {e: np.full((n, len(self.programs)), np.nan) for e in EVENTS}
        inputs: dict[str, np.ndarray] = {}
        opening: dict[str, Any] = {}
        for j, program in enumerate(self.programs):
            out = self._program(program)
            streams[:, :, j, 0] = out["clinical"]
            streams[:, :, j, 1] = out["commercial"]
            streams[:, :, j, 2] = out["ppq"]
            for e in EVENTS:
                events[e][:, j] = out["events"].get(e, np.nan)
            inputs.update({f"{program.name}.{k}": v for k, v in out["inputs"].items()})
            if program.in_progress is not None:
                opening[program.name] = program.in_progress
        names = [p.name for p in self.programs]
        demand = xr.DataArray(
            streams,
            dims=("draw", "month", "program", "stream"),
            coords={
                "draw": np.arange(n),
                "month": months,
                "program": names,
                "stream": ["clinical", "commercial", "ppq"],
            },
            name="patients",
            attrs={
                "units": "patients/month",
                "seed": self.seed,
                "as_of": str(self.as_of.date()),
                "provenance": _provenance(self.programs),
            },
        )
        ev = xr.Dataset(
            {e: (("draw", "program"), _to_dates(v)) for e, v in events.items()},
            coords={"draw": np.arange(n), "program": names},
        )
        inp = xr.Dataset({k: ("draw", v) for k, v in inputs.items()}, coords={"draw": np.arange(n)})
        return PortfolioDraws(demand, ev, inp, opening, self.seed)

    def demand(self) -> xr.DataArray:
        """Only the demand draws of :meth:`simulate`."""
        return self.simulate().demand

    def _rng(self, program: str, part: str) -> np.random.Generator:
        return np.random.default_rng(self.seed_for(program, part))

    def _program(self, prog: Program) -> dict[str, Any]:
        n, months = self.draws, self.months
        zeros = np.zeros((n, len(months)), np.int64)
        out = {"clinical": zeros, "commercial": zeros, "ppq": zeros, "events": {}, "inputs": {}}
        rng = self._rng(prog.name, "inputs")
        approval = filing = None
        if prog.stage == "trial":
            out["clinical"], completion = self._trial(prog, out["inputs"])
            out["events"]["enrollment_complete"] = completion
            if prog.registrational:
                filing, approval, plan = self._registrational(prog, completion, rng, out["inputs"])
        elif prog.stage == "pipeline":
            out["clinical"], filing, approval, plan = self._pipeline(prog, out["inputs"])
        if filing is not None:
            out["events"]["filing"] = filing
            out["events"]["approval"] = approval
            out["ppq"] = self._ppq(prog, *plan)
        if prog.stage == "launched":
            launch = np.full(n, float((pd.Timestamp(prog.launch) - EPOCH).days))
            out["events"]["approval"] = launch
        elif approval is not None:
            lag = param_draws(prog.launch_lag_months, n, rng, f"{prog.name}: launch_lag_months")
            if (lag < 0).any():
                raise InputError(f"program {prog.name!r}: launch_lag_months must be >= 0")
            launch = approval + lag * DAYS_PER_MONTH
        else:
            launch = np.full(n, np.nan)
        out["events"]["launch"] = launch
        if prog.has_commercial:
            out["commercial"] = self._commercial(prog, launch, out["inputs"])
        return out

    def _trial(self, prog: Program, inputs: dict) -> tuple[np.ndarray, np.ndarray]:
        model = prog.enrollment
        months = self.months
        end = months[-1] + pd.offsets.MonthEnd(0)
        if model.data_.as_of >= end:
            raise InputError(f"program {prog.name!r}: enrollment data end after the horizon")
        fc = model.forecast(
            until=end, seed=self.seed_for(prog.name, "enrollment"), draws=self.draws
        )
        fc_months = pd.DatetimeIndex(fc["month"].values)
        rng = self._rng(prog.name, "manufacture")
        share = param_draws(prog.manufactured_share, self.draws, rng, "manufactured_share")
        lag = param_draws(prog.lag_days, self.draws, rng, "lag_days")
        inputs.update(manufactured_share=share, lag_days=lag)
        enrolled = fc["enrolled"].values
        partial = None
        if (model.data_.as_of + pd.Timedelta(days=1)).day != 1:
            # the first forecast month holds only the days after the cut: its patients are
            # placed by day (below), not as if spread over the whole month
            partial = enrolled[:, 0].copy()
            enrolled = enrolled.copy()
            enrolled[:, 0] = 0
        starts = manufacture_starts(enrolled, share, lag, fc_months, rng)
        clinical = (
            xr.DataArray(starts, dims=("draw", "month"), coords={"month": fc_months})
            .reindex(month=months, fill_value=0)
            .values
        )
        clinical = clinical + self._starts_by_day(prog, model.data_, share, lag, partial)
        completion = np.full(self.draws, np.nan)
        if model.target is not None:
            ttt = model.time_to_target().values
            ok = ~np.isnat(ttt)
            completion[ok] = (ttt[ok] - np.datetime64(EPOCH, "ns")) / np.timedelta64(1, "D")
        inputs["enrollment_complete_days"] = completion - (self.as_of - EPOCH).days
        return clinical.astype(np.int64), completion

    def _starts_by_day(self, prog: Program, data, share, lag, partial) -> np.ndarray:
        """Lots started inside the horizon by patients placed by day: those enrolled before
        the data cut, and (``partial``, per draw) those of a forecast month that begins after
        the cut.

        A patient enrolled on day ``e`` starts manufacture on ``e + lag`` (the draw's lag and
        manufactured share, as for forecast patients). The observed counts of a month are
        spread uniformly over its observed days, a partial month's over its days after the
        cut. Starts before the horizon's first day are not demand (lots already in
        manufacture: ``in_progress``); a horizon that begins before the cut counts observed
        patients' starts from its first day. (draw, month) int64; its own random stream, so
        no other draw changes.
        """
        n = self.draws
        out = np.zeros((n, len(self.months)), np.int64)
        cut = float((data.as_of - EPOCH).days) + 1  # the first day after the data
        floor = min(cut, float((self.start - EPOCH).days))  # earlier starts: not in the horizon
        counts = np.asarray(data.counts).sum(axis=0).astype(np.int64)
        first = (data.months - EPOCH).days.to_numpy(float)
        nxt = (data.months + pd.offsets.MonthBegin(1) - EPOCH).days.to_numpy(float)
        end = np.minimum(nxt, cut)
        windows = [
            (a, b, np.full(n, k))
            for a, b, k in zip(first, end, counts, strict=True)
            if k > 0 and b + lag.max() > floor
        ]
        if partial is not None:
            month_end = float((data.as_of + pd.offsets.MonthBegin(1) - EPOCH).days)
            windows.append((cut, month_end, np.asarray(partial, np.int64)))
        if not windows:
            return out
        rng = self._rng(prog.name, "manufacture-before-cut")
        for a, b, k in windows:
            made = rng.binomial(k, share)  # per draw
            s, e = a + lag, b + lag  # the window's starts: uniform on [s, e)
            lo = np.maximum(s, floor)
            kept = rng.binomial(made, np.clip((e - lo) / (e - s), 0, 1))
            out += spread_over_windows(kept, lo, e, self.months, rng)
        return out

    def _phase_model(self, prog: Program):
        if self.phase_model is None:
            raise InputError(
                f"program {prog.name!r}: needs a fitted PhaseTransitionModel (phase_model)"
            )
        return self.phase_model

    def _registrational(self, prog, completion, rng, inputs):
        model = self._phase_model(prog)
        n = self.draws
        world = model.program_draws(
            prog.group,
            n,
            self.seed_for(prog.name, "approval"),
            duration_group=prog.duration_group,
            review=prog.review,
        )
        follow = param_draws(prog.follow_up_months, n, rng, "follow_up_months")
        prep = param_draws(prog.filing_prep_months, n, rng, "filing_prep_months")
        if (follow < 0).any() or (prep < 0).any():
            raise InputError(f"program {prog.name!r}: follow-up and filing months must be >= 0")
        if prog.pivotal_success is None:
            p_pivotal = world["p"][:, 2]
        else:
            p_pivotal = param_draws(prog.pivotal_success, n, rng, "pivotal_success")
            if ((p_pivotal < 0) | (p_pivotal > 1)).any():
                raise InputError(f"program {prog.name!r}: pivotal_success must lie in [0, 1]")
        positive = rng.random(n) < p_pivotal
        planned = completion + (follow + prep) * DAYS_PER_MONTH  # filed if it is positive
        filing = np.where(positive, planned, np.nan)
        readout = completion + follow * DAYS_PER_MONTH
        review = model.review_years(world, self.seed_for(prog.name, "review")) * DAYS_PER_YEAR
        approved = rng.random(n) < world["p"][:, 3]
        approval = np.where(approved, filing + review, np.nan)
        inputs.update(
            follow_up_months=follow,
            filing_prep_months=prep,
            p_pivotal=p_pivotal,
            p_approval=world["p"][:, 3],
            review_years=review / DAYS_PER_YEAR,
        )
        # the PPQ plan: dated from enrollment completion; a negative readout stops it
        return filing, approval, (planned, completion, np.where(positive, np.nan, readout))

    def _pipeline(self, prog: Program, inputs: dict):
        model = self._phase_model(prog)
        start = pd.Timestamp(prog.phase_start)
        as_of = max(self.as_of, start)
        # each phase's enrollment window, a sampler: the phase model draws the windows with
        # the rest of the program's world, given it is still in its phase at as_of
        samplers = {}
        for phase in TRIAL_PHASES[TRIAL_PHASES.index(prog.phase) :]:
            plan = prog.trial_plan.get(phase, {})
            if "enrollment_months" in plan:
                samplers[phase] = _window_sampler(plan["enrollment_months"])
        sim = model.simulate(
            prog.phase,
            start,
            draws=self.draws,
            seed=self.seed_for(prog.name, "approval"),
            group=prog.group,
            as_of=as_of,
            duration_group=prog.duration_group,
            review=prog.review,
            min_years=samplers,
            pivotal=prog.pivotal,
        )
        window = {ph: 12 * sim["min_years"].sel(phase=ph).values for ph in samplers}
        ends = sim["phase_end_day"].values  # (draw, phase) days since epoch, NaN: not reached
        rng = self._rng(prog.name, "trial-plan")
        clinical = np.zeros((self.draws, len(self.months)), np.int64)
        c = TRIAL_PHASES.index(prog.phase)
        for k in range(c, len(TRIAL_PHASES)):
            phase = TRIAL_PHASES[k]
            if phase not in prog.trial_plan:
                continue
            plan = prog.trial_plan[phase]
            patients = param_draws(plan["patients"], self.draws, rng, f"trial_plan.{phase}")
            if (patients < 0).any():
                raise InputError(f"program {prog.name!r}: trial_plan.{phase} patients must be >= 0")
            patients = np.round(patients).astype(np.int64)
            # the current phase's plan counts from the phase start: patients enrolled before
            # the horizon (in the current phase, or a later one when as_of precedes the start)
            # are spread over the months before it too, so that those whose lot starts after
            # the lag, inside the horizon, are counted; earlier starts are dropped
            begin = np.full(self.draws, float((start - EPOCH).days)) if k == c else ends[:, k - 1]
            begin = np.where(np.isfinite(ends[:, k]), begin, np.nan)  # phase never reached
            stop = ends[:, k]
            enrolling = patients
            if phase in window:
                # a passed phase enrolls its plan in full (it lasts the window); a failed one
                # stops enrolling when it ends: the share of its window it had enrolled
                planned = window[phase] * DAYS_PER_MONTH
                with np.errstate(invalid="ignore", divide="ignore"):
                    done = np.clip((stop - begin) / planned, 0, 1)
                done = np.where(np.isfinite(done), done, 0.0)
                enrolling = rng.binomial(patients, done)
                stop = np.minimum(stop, begin + planned)
            share = param_draws(prog.manufactured_share, self.draws, rng, "manufactured_share")
            lag = param_draws(prog.lag_days, self.draws, rng, "lag_days")
            before = int(np.ceil(max(lag.max(), 0) / DAYS_PER_MONTH)) + 1
            grid = pd.date_range(
                self.start - pd.DateOffset(months=before),
                periods=before + len(self.months),
                freq="MS",
            )
            enrolled = spread_over_windows(enrolling, begin, stop, grid, rng)
            clinical += manufacture_starts(enrolled, share, lag, grid, rng)[:, before:]
            inputs[f"{phase}_patients"] = patients.astype(float)
        inputs["approval_years"] = (sim["approval_day"].values - (self.as_of - EPOCH).days) / (
            DAYS_PER_YEAR
        )
        inputs["p_approval"] = sim["p"].values[:, c:].prod(axis=1)
        filing = sim["filing_day"].values
        # the PPQ plan: the pivotal phase's end had it passed, dated from its start; a failed
        # pivotal phase stops it when it ends
        k = TRIAL_PHASES.index(prog.pivotal)
        pivotal_start = (
            np.full(self.draws, float((start - EPOCH).days)) if c == k else ends[:, k - 1]
        )
        failed = np.where(np.isfinite(filing), np.nan, ends[:, k])
        plan = (sim["end_if_passed_day"].values[:, k], pivotal_start, failed)
        return clinical, filing, sim["approval_day"].values, plan

    def _ppq(
        self, prog: Program, planned: np.ndarray, known: np.ndarray, failed: np.ndarray
    ) -> np.ndarray:
        """PPQ lots per (draw, month): the program's lots spread over its window before the
        planned filing (``planned``, days since epoch), committed at the window's first month
        (never before the month of ``known``) in every draw without a failure (``failed``,
        NaN: none) in a month before it (:func:`forecast.draws.at_risk_start`)."""
        n, m = self.draws, len(self.months)
        out = np.zeros((n, m), np.int64)
        if not prog.ppq_lots:
            return out
        early, late = (int(x) for x in prog.ppq_window_months)
        width = early - late + 1
        first = month_number(np.array([(self.start - EPOCH).days], float))[0]
        start = at_risk_start(planned, known, failed, early)  # months since 1970-01
        runs = np.isfinite(start)
        begin = month_number(planned[runs]) - early - first  # the window, from the horizon
        commit = start[runs] - first
        rows = np.flatnonzero(runs)
        per = np.full(width, prog.ppq_lots // width)
        per[: prog.ppq_lots % width] += 1  # the earliest months take the remainder
        for j in range(width):  # a few months of the window, not draws
            idx = np.maximum(begin + j, commit).astype(np.int64)  # none before the commitment
            ok = (idx >= 0) & (idx < m)
            np.add.at(out, (rows[ok], idx[ok]), per[j])
        return out

    def _commercial(self, prog: Program, launch: np.ndarray, inputs: dict) -> np.ndarray:
        from forecast.uptake.data import Product

        if self.uptake_model is None:
            raise InputError(f"program {prog.name!r}: needs a fitted UptakeModel (uptake_model)")
        analogs = [p.name for p in self.uptake_model.products_]
        if prog.name in analogs:
            raise InputError(
                f"program {prog.name!r} has the name of a fitted uptake analog, whose own "
                f"posterior would replace the program's inputs; rename the program "
                f"(analogs: {', '.join(analogs)})"
            )
        if prog.stage == "launched":
            launch_arg = pd.Timestamp(prog.launch)
            product = Product(prog.name, launch_arg)
        else:
            launch_arg = _to_dates(launch)
            product = prog.name
        fc = self.uptake_model.forecast(
            product,
            launch_arg,
            horizon_months=self.horizon_months,
            draws=self.draws,
            start=self.start,
            eligible_per_year=prog.eligible_per_year,
            peak_share=prog.peak_share,
            expansions=list(prog.expansions),
            backlog=prog.backlog,
            condition_on=prog.sales,
            seed=self.seed_for(prog.name, "uptake"),
        )
        for name in ("peak_share", "eligible_per_year"):
            if name in fc.coords:
                inputs[name] = np.asarray(fc[name].values, float)
        inputs["launch_months_from_start"] = (launch - (self.start - EPOCH).days) / DAYS_PER_MONTH
        if "importance_ess" in fc.attrs:
            inputs["importance_ess"] = np.full(self.draws, fc.attrs["importance_ess"])
        return np.asarray(fc.values, np.int64)


def _window_sampler(months: Any):
    """Enrollment windows in years from a plan's months: a number as it is, a distribution
    table as a sampler ``f(n, rng)`` of ``n`` windows; a negative one refused."""
    if isinstance(months, int | float):
        if months < 0:
            raise InputError(f"trial_plan enrollment_months must be >= 0, got {months}")
        return months / 12

    def draw(n: int, rng: np.random.Generator) -> np.ndarray:
        values = param_draws(months, n, rng, "enrollment")
        if (values < 0).any():
            raise InputError(f"trial_plan enrollment_months must be >= 0, got {months}")
        return values / 12

    return draw


def _to_dates(days: np.ndarray) -> np.ndarray:
    """Days since epoch (NaN: never) -> datetime64[ns] (NaT: never)."""
    days = np.asarray(days, float)
    out = np.full(days.shape, np.datetime64("NaT"), dtype="datetime64[ns]")
    ok = np.isfinite(days)
    out[ok] = np.datetime64("1970-01-01", "ns") + (days[ok] * 86400e9).astype("timedelta64[ns]")
    return out


def _provenance(programs: Sequence[Program]) -> str:
    import json

    return json.dumps(
        {
            p.name: {"stage": p.stage, "group": p.group, "registrational": p.registrational}
            for p in programs
        },
        sort_keys=True,
    )
