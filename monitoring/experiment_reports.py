"""An experiment measured from the stores (I/O at the edge of `monitoring.experiments`, which is pure): its
definition and its arms from the runs room (`serving.runs.experiments`: the experiments file and the first
assignments kept with each run), outcomes and pre-period covariates from the ledger, and the report written as
JSON where the experiments page reads it (`ServingSettings.experiment_reports_dir`, `<name>.json`).

The fixed horizon holds here too: before the data reach the experiment's end plus its outcome window, the ledger's
rows after each assignment are not even read, only those up to it (the pre-period covariates).

`plan_experiment` sizes an experiment from this portfolio's own history: the outcome's standard deviation and the
share of it the covariates explain, measured on the ready cases of the latest recorded run old enough for its
outcomes to be known (as if that run had been an experiment's first), and the eligible entrants per week, from the
experiment's own assignments once it runs, else from the recorded runs (tenancies newly ready, per week).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from features.ledger import open_ledger
from monitoring.experiments import (
    Definition,
    ExperimentReport,
    Outcome,
    Plan,
    effect_readable,
    experiment_report,
    first_assignments,
    outcome_values,
    plan,
    pre_period,
    r_squared,
)
from monitoring.findings import JobResult
from monitoring.outcomes import ledger_end
from serving.runs.experiments import Experiment, assignments, load_experiments
from serving.runs.store import open_runs
from serving.settings import ServingSettings

#: How far back the recorded runs are read to count tenancies newly ready each week.
ENTRANTS_WEEKS = 13


def definition_of(experiment: Experiment) -> Definition:
    """What the report needs of a configured experiment."""
    found = experiment.outcome
    return Definition(experiment.name, experiment.start, experiment.end, experiment.holdout_share,
                      Outcome(found.kind, int(found.days), found.winsorise), experiment.minimum_detectable_effect,
                      experiment.alpha, experiment.power)


def find_experiment(settings: ServingSettings, name: str) -> Experiment:
    """The configured experiment called `name` (LookupError names the ones there are)."""
    experiments = load_experiments(settings)
    for experiment in experiments:
        if experiment.name == name:
            return experiment
    raise LookupError(f"No experiment {name!r} is configured; the experiments file declares "
                      f"{', '.join(e.name for e in experiments) or 'none'} (docs/experiments.md)")


def _ledger_rows(settings: ServingSettings, tenancy_ids: list[str], until: date | None) -> pd.DataFrame:
    """The transactions of some tenancies, posted on or before `until` (all when None)."""
    with open_ledger(settings.ledger, read_only=True) as ledger:
        rows = ledger.read_for_tenancies("transactions", tenancy_ids)
    return rows if until is None else rows[rows["posted_date"] <= pd.Timestamp(until)]


def measured_units(settings: ServingSettings, definition: Definition,
                   with_outcomes: bool) -> tuple[pd.DataFrame, list[str]]:
    """One row per tenancy the experiment assigned within its window (its first assignment), with the pre-period
    covariates and, `with_outcomes`, the outcome; and the problems found in the assignments."""
    arms = assignments(settings, definition.name)
    inside = arms["assigned_on"].between(definition.start, definition.end)
    problems = [f"{int((~inside).sum())} assignments dated outside {definition.start}..{definition.end} are left "
                "out"] if (~inside).any() else []
    units, found = first_assignments(arms[inside])
    problems += found
    if units.empty:
        return units.assign(**{c: pd.Series(dtype=float) for c in ("pre_balance", "pre_change_56d",
                                                                    "pre_receipts_28d")}), problems
    last_assigned = max(units["assigned_on"])
    rows = _ledger_rows(settings, units["tenancy_id"].astype(str).tolist(), None if with_outcomes else last_assigned)
    units = units.join(pre_period(units, rows))
    if with_outcomes:
        units["outcome"] = outcome_values(units, rows, definition.outcome)
    return units, problems


def measure(settings: ServingSettings, name: str, data_end: date | None = None) -> ExperimentReport:
    """The experiment's report as of the ledger's last posting (or `data_end`): accrual and balance always, the
    effect only from the fixed horizon on."""
    definition = definition_of(find_experiment(settings, name))
    data_end = data_end or ledger_end(settings)
    final = effect_readable(definition.end, definition.outcome.days, data_end)
    units, problems = measured_units(settings, definition, with_outcomes=final)
    return experiment_report(definition, units, data_end, problems)


def report_path(settings: ServingSettings, name: str) -> Path:
    return settings.experiment_reports_dir / f"{name}.json"


def write_report(settings: ServingSettings, report: ExperimentReport) -> Path:
    """The report as JSON where the experiments page reads it, replaced whole (never half-written)."""
    path = report_path(settings, report.definition.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(report.to_dict() | {"written_at": pd.Timestamp.now(tz="UTC").isoformat()},
                                  indent=1))
    os.replace(partial, path)
    return path


def experiments_job(settings: ServingSettings) -> JobResult:
    """Weekly: every enabled experiment (and every one whose horizon has not long passed) measured and written for
    the experiments page. Nothing is an alert: balance flags and interim accrual are read on the page."""
    outputs = {}
    data_end = ledger_end(settings)
    for experiment in load_experiments(settings):
        definition = definition_of(experiment)
        if not experiment.enabled and data_end > definition.horizon + timedelta(days=91):
            continue
        report = measure(settings, experiment.name, data_end)
        outputs[experiment.name] = {"status": report.status, "final": report.final,
                                    "assigned": int(report.accrual.iloc[-1]["total"]) if len(report.accrual) else 0,
                                    "report": str(write_report(settings, report))}
    return JobResult(outputs or {"note": "no experiment is configured"})


# -- planning ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlanFigures:
    """A plan and where each of its inputs came from, in words."""

    plan: Plan
    sources: dict[str, str] = field(default_factory=dict)
    readable_on: date | None = None  #: the start, plus the weeks, plus the outcome window

    def to_dict(self) -> dict:
        return self.plan.to_dict() | {"sources": self.sources,
                                      "readable_on": None if self.readable_on is None else str(self.readable_on)}


def history_cohort(settings: ServingSettings, outcome: Outcome, data_end: date) -> tuple[pd.DataFrame, str]:
    """Units (tenancy_id, assigned_on) as if an experiment had started on a past day whose outcomes are known: the
    ready cases of the latest recorded run at least the outcome window old, else the tenancies owing on that day."""
    latest_day = data_end - timedelta(days=outcome.days)
    with open_runs(settings) as store:
        runs = store.runs()
        old = runs[pd.to_datetime(runs["as_of"]).dt.date <= latest_day] if len(runs) else runs
        if len(old):
            run = old.iloc[-1]
            ready = store.rows(run["run_id"], states=["ready"], columns=["tenancy_id"])
            day = pd.Timestamp(run["as_of"]).date()
            return (pd.DataFrame({"tenancy_id": ready["tenancy_id"].astype(str), "assigned_on": day}),
                    f"the ready cases of run {run['run_id']} ({day})")
    with open_ledger(settings.ledger, read_only=True) as ledger:
        owing = ledger.query("SELECT tenancy_id FROM transactions WHERE posted_date <= ? GROUP BY tenancy_id "
                             "HAVING SUM(amount_pence) > 0", [latest_day])
    return (pd.DataFrame({"tenancy_id": owing["tenancy_id"].astype(str), "assigned_on": latest_day}),
            f"the tenancies owing on {latest_day} (no recorded run is that old)")


def outcome_spread(settings: ServingSettings, outcome: Outcome, data_end: date) -> tuple[float, float, str]:
    """The outcome's standard deviation and the R² of the pre-period covariates, on `history_cohort`."""
    cohort, said = history_cohort(settings, outcome, data_end)
    if len(cohort) < 10:
        raise LookupError(f"too few cases to measure the outcome's spread on ({len(cohort)}: {said}); give --sd")
    rows = _ledger_rows(settings, cohort["tenancy_id"].tolist(), None)
    units = cohort.join(pre_period(cohort, rows)).assign(outcome=outcome_values(cohort, rows, outcome))
    return float(units["outcome"].std(ddof=1)), r_squared(units, "outcome"), f"{said}, {len(units)} tenancies"


def entrants(settings: ServingSettings, name: str) -> tuple[float, int, str]:
    """Eligible entrants per week and how many are in already: from the experiment's own assignments after its
    first day when they span a week, else from the tenancies newly ready in the recorded runs of the last
    `ENTRANTS_WEEKS` weeks, with the latest run's ready cases as the first run's cohort."""
    arms = assignments(settings, name)
    if len(arms):
        first = min(arms["assigned_on"])
        later = arms[arms["assigned_on"] > first]
        span = (max(arms["assigned_on"]) - first).days
        if span >= 7:
            return len(later) / (span / 7), len(arms), f"the experiment's {len(arms)} assignments over {span} days"
    with open_runs(settings) as store:
        runs = store.runs()
        if runs.empty:
            raise LookupError("no worklist run is recorded yet to count entrants from; give --entrants-per-week")
        days = pd.to_datetime(runs["as_of"])
        recent = runs[days >= days.max() - pd.Timedelta(weeks=ENTRANTS_WEEKS)]
        ready = {row["as_of"]: set(store.rows(row["run_id"], states=["ready"], columns=["tenancy_id"])["tenancy_id"])
                 for _, row in recent.iterrows()}
    ordered = sorted(ready, key=pd.Timestamp)
    span = (pd.Timestamp(ordered[-1]) - pd.Timestamp(ordered[0])).days
    if span < 7:
        raise LookupError("the recorded runs span less than a week: give --entrants-per-week")
    seen, new = set(ready[ordered[0]]), 0
    for day in ordered[1:]:
        new += len(ready[day] - seen)
        seen |= ready[day]
    return new / (span / 7), len(ready[ordered[-1]]), (f"tenancies newly ready over {len(ordered)} recorded runs "
                                                       f"spanning {span} days")


def plan_experiment(settings: ServingSettings, name: str, *, entrants_per_week: float | None = None,
                    sd: float | None = None, r2: float | None = None, mde: float | None = None) -> PlanFigures:
    """`monitoring.experiments.plan` for a configured experiment, each input given or measured on this
    portfolio (the module's docstring)."""
    experiment = find_experiment(settings, name)
    definition = definition_of(experiment)
    sources = {"mde": "given" if mde is not None else "the experiment's minimum_detectable_effect"}
    if sd is None or r2 is None:
        measured_sd, measured_r2, said = outcome_spread(settings, definition.outcome, ledger_end(settings))
        sources |= {"sd": said if sd is None else "given", "r_squared": said if r2 is None else "given"}
        sd = measured_sd if sd is None else sd
        r2 = min(measured_r2, 0.99) if r2 is None else r2
    else:
        sources |= {"sd": "given", "r_squared": "given"}
    already = 0
    if entrants_per_week is None:
        entrants_per_week, already, sources["entrants_per_week"] = entrants(settings, name)
    else:
        sources["entrants_per_week"] = "given"
    found = plan(mde or definition.minimum_detectable_effect, sd, definition.holdout_share, entrants_per_week, r2,
                 power=definition.power, alpha=definition.alpha, already=already)
    readable = definition.start + timedelta(weeks=found.weeks, days=definition.outcome.days)
    return PlanFigures(found, sources, readable)
