"""Experiment verbs: `experiment plan NAME` (how many weeks this portfolio needs) and `experiment report NAME` (the
effect of working the list, or, before the fixed horizon, accrual and balance only). docs/experiments.md."""

from __future__ import annotations

from typing import Annotated

import typer

from arrears.render import console, fail, out, print_json, table
from monitoring.experiment_reports import measure, plan_experiment, write_report
from monitoring.experiments import ExperimentReport
from serving.runs.experiments import ExperimentConfigError
from serving.runs.store import NoRun
from serving.settings import get_settings

experiment_app = typer.Typer(
    help="Randomised holdouts (configured in the experiments file, ARREARS_EXPERIMENTS): plan one, or report its "
    "effect with a 95% interval once its fixed horizon has passed (docs/experiments.md).", no_args_is_help=True)


@experiment_app.command("plan")
def plan_verb(
    name: Annotated[str, typer.Argument(help="The experiment's name in the experiments file.")],
    entrants_per_week: Annotated[float | None, typer.Option(
        help="Eligible (ready) cases entering per week. Default: measured, from the experiment's assignments or "
        "the recorded runs.")] = None,
    sd: Annotated[float | None, typer.Option(
        help="The outcome's standard deviation. Default: measured on the ready cases of a past run.")] = None,
    r2: Annotated[float | None, typer.Option(
        help="The share of the outcome's variance the pre-period covariates explain (0 for no adjustment). "
        "Default: measured with the standard deviation.")] = None,
    mde: Annotated[float | None, typer.Option(
        help="The effect to detect, in the outcome's unit. Default: the experiment's minimum_detectable_effect.")]
        = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """How many weeks of enrolment this portfolio needs to detect the experiment's minimum detectable effect with
    its power (80% by default) at its two-sided alpha (0.05), after the covariates' variance reduction."""
    try:
        figures = plan_experiment(get_settings(), name, entrants_per_week=entrants_per_week, sd=sd, r2=r2, mde=mde)
    except (LookupError, ValueError, ExperimentConfigError, NoRun) as exc:
        fail(str(exc))
    if as_json:
        print_json({"experiment": name, **figures.to_dict()})
        return
    p = figures.plan
    table(f"Plan for {name}", ["input", "value", "from"], [
        ["minimum detectable effect", f"{p.mde:g}", figures.sources["mde"]],
        ["outcome standard deviation", f"{p.sd:.4g}", figures.sources["sd"]],
        ["variance explained by covariates (R²)", f"{p.r_squared:.3f}", figures.sources["r_squared"]],
        ["holdout share", f"{p.holdout_share:g}", "the experiment"],
        ["eligible entrants per week", f"{p.entrants_per_week:,.1f}", figures.sources["entrants_per_week"]],
        ["in at the start (or so far)", f"{p.already:,}", figures.sources["entrants_per_week"]],
        ["power, alpha (two-sided)", f"{p.power:g}, {p.alpha:g}", "the experiment"]])
    out.print(f"Needs {p.n_total:,} tenancies ({p.n_holdout:,} held out, {p.n_treatment:,} treated): "
              f"{p.weeks} week{'s' * (p.weeks != 1)} of enrolment; the effect is readable from {figures.readable_on} "
              "(the start, the weeks, then the outcome window: the fixed horizon).", highlight=False)


@experiment_app.command("report")
def report_verb(
    name: Annotated[str, typer.Argument(help="The experiment's name in the experiments file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON (what the experiments page "
                                          "shows).")] = False,
) -> None:
    """The experiment as of the ledger's last posting: accrual by arm and stratum and balance on pre-period
    features always; per-arm means, the effect with its interval (adjusted and unadjusted) and by stratum only once
    the fixed horizon (end date plus the outcome window) has passed. Also written for the experiments page."""
    settings = get_settings()
    try:
        report = measure(settings, name)
    except (LookupError, ValueError, ExperimentConfigError) as exc:
        fail(str(exc))
    path = write_report(settings, report)
    if as_json:
        print_json(report.to_dict())
        return
    show_report(report)
    console.print(f"Written for the experiments page: {path}", highlight=False)


def _number(value: float, unit: str) -> str:
    """An effect: pounds, or a difference in shares as percentage points."""
    return f"{value * 100:+.1f} points" if unit != "pounds" else f"{value:+,.2f} pounds"


def _level(value: float, unit: str) -> str:
    """A mean: pounds, or a share as a percentage."""
    return f"{value:.1%}" if unit != "pounds" else f"£{value:,.2f}"


def show_report(report: ExperimentReport) -> None:
    d = report.definition
    out.print(f"[bold]{d.name}[/]: {d.start} to {d.end}, holdout share {d.holdout_share:g}, outcome "
              f"{d.outcome.kind} over {d.outcome.days} days ({d.outcome.unit}); data to {report.data_end}")
    out.print(f"[bold]{report.status}[/]", highlight=False)
    table("Accrual", ["stratum", "treatment", "holdout", "total", "holdout share"],
          [[str(r["stratum"]), f"{r['treatment']:,}", f"{r['holdout']:,}", f"{r['total']:,}",
            "–" if r["total"] == 0 else f"{r['holdout_share']:.1%}"] for r in report.accrual.to_dict("records")],
          right=("treatment", "holdout", "total", "holdout share"))
    table("Balance on pre-period features (standardised difference; flagged at |d| >= 0.1)",
          ["feature", "treatment mean", "holdout mean", "d", "flagged"],
          [[r["feature"], f"{r['mean_treatment']:,.3f}", f"{r['mean_holdout']:,.3f}", f"{r['smd']:+.3f}",
            "yes" if r["flagged"] else ""] for r in report.balance.to_dict("records")],
          right=("treatment mean", "holdout mean", "d"))
    if report.effect is not None:
        _show_effect(report)
    for problem in report.problems:
        console.print(f"[bold yellow]note:[/] {problem}", highlight=False)


def _show_effect(report: ExperimentReport) -> None:
    e, unit, level = report.effect, report.definition.outcome.unit, f"{report.effect.level:.0%}"
    raw_low, raw_high = e.unadjusted_interval
    out.print(f"Treatment mean {_level(e.mean_treatment, unit)} (n={e.n_treatment:,}), holdout mean "
              f"{_level(e.mean_holdout, unit)} (n={e.n_holdout:,})", highlight=False)
    out.print(f"[bold]Effect (treatment minus holdout): {_number(e.effect, unit)}, {level} interval "
              f"{_number(e.low, unit)} to {_number(e.high, unit)}[/] ({e.method}; covariates "
              f"{', '.join(e.covariates) or 'none'})", highlight=False)
    out.print(f"Unadjusted: {_number(e.unadjusted_effect, unit)}, {level} interval {_number(raw_low, unit)} to "
              f"{_number(raw_high, unit)}; the covariates removed {e.variance_reduction:.0%} of the variance",
              highlight=False)
    strata = report.by_stratum
    rows = [[name, f"{strata.weights[name]:.1%}", f"{s.n_treatment:,}", f"{s.n_holdout:,}", _number(s.effect, unit),
             f"{_number(s.low, unit)} to {_number(s.high, unit)}", s.method.split(",")[0]]
            for name, s in strata.strata.items()]
    o = strata.overall
    rows.append(["overall (size-weighted)", "100%", f"{o.n_treatment:,}", f"{o.n_holdout:,}", _number(o.effect, unit),
                 f"{_number(o.low, unit)} to {_number(o.high, unit)}", ""])
    table("By stratum", ["stratum", "weight", "treatment", "holdout", "effect", "interval", "method"], rows,
          right=("weight", "treatment", "holdout", "effect"))
    for name, size in strata.skipped.items():
        console.print(f"[bold yellow]note:[/] stratum {name} ({size} tenancies) has fewer than 2 in an arm: no "
                      "estimate, left out of the overall", highlight=False)


@experiment_app.command("simulate")
def simulate_verb(
    seeds: Annotated[int, typer.Option(help="Simulated portfolios (each a seed); intervals are over them.")] = 5,
    weeks: Annotated[int, typer.Option(help="Weeks each policy works the list.")] = 12,
    tenancies: Annotated[int, typer.Option(help="Tenancies in each simulated portfolio.")] = 6000,
    capacity: Annotated[int, typer.Option(help="Contacts a patch's officers make a week (every policy the same).")]
        = 15,
    pilots: Annotated[int, typer.Option(help="Randomised pilots (other portfolios) the uplift model learns from.")]
        = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The policy simulator: risk top-k, expected-gain top-k (the uplift model), balance-first and random, at the
    same capacity, each working the list for the same weeks in a causal world (simulator/causal.py) that knows
    what a contact does; pounds collected beyond contacting nobody, arrangements agreed and contacts made, with 95%
    intervals over seeds, and the ceiling (ranking by the true effect). A simulation, not this portfolio: it says
    how the orders compare when contacts work as the world assumes (docs/experiments.md)."""
    # Lazy on purpose: the simulator, LightGBM and the replay load only for this verb, not for every command.
    from arrears.impact import policy_study, policy_summary, train_uplift

    with console.status(f"Training the uplift model on {pilots} randomised pilot(s)…"):
        uplift = train_uplift(tuple(1001 + k for k in range(pilots)), tenancies=min(tenancies, 4000))
    with console.status(f"Replaying {seeds} portfolio(s) × 5 orders × {weeks} weeks…"):
        study = policy_study(range(seeds), uplift, tenancies=tenancies, weeks=weeks, capacity=capacity)
    summary = policy_summary(study)
    if as_json:
        print_json({"seeds": seeds, "weeks": weeks, "capacity": capacity, "tenancies": tenancies,
                    "policies": summary.to_dict(orient="records")})
        return
    def pounds(value: float) -> str:
        return f"{'-' if value < 0 else ''}£{abs(value):,.0f}"

    table("Pounds collected beyond contacting nobody, at equal capacity",
          ["order", "£", "95% interval", "vs risk", "95% interval vs risk", "arrangements", "contacts"],
          [[r.policy, pounds(r.incremental_pounds), f"{pounds(r.low)} to {pounds(r.high)}", pounds(r.vs_risk),
            "" if r.policy == "risk" else f"{pounds(r.vs_risk_low)} to {pounds(r.vs_risk_high)}",
            f"{r.arrangements:,.0f}", f"{r.contacts:,.0f}"] for r in summary.itertuples()],
          right=("£", "vs risk", "arrangements", "contacts"))
    out.print(f"{seeds} simulated portfolios of {tenancies:,} tenancies, {capacity} contacts a patch a week for "
              f"{weeks} weeks; 'ceiling' ranks by the true effect no model can see.", highlight=False)


@experiment_app.command("uplift")
def uplift_verb(
    name: Annotated[str, typer.Argument(help="The experiment whose arms the uplift model learns from.")],
    days: Annotated[int, typer.Option(help="Days after assignment whose payments are the outcome.")] = 28,
    capacity: Annotated[float, typer.Option(help="The share of judged rows a week's capacity contacts (the gates "
                                            "compare orders there).")] = 0.15,
) -> None:
    """Train the uplift model (what a contact brings in, per tenancy) on an experiment's randomised arms: features
    as of each first assignment (the risk model's FeatureService), pounds paid in the next DAYS (only windows
    already closed), judged on a quarter of the tenancies, registered as the `contact_uplift` challenger. Then
    `arrears promote --model contact_uplift` runs its gates; once champion, runs predict each ready case's expected
    gain and `arrears worklist --order gain` lists by it."""
    # Lazy on purpose: LightGBM, MLflow and the feature store load only for this verb.
    from serving.runs.experiments import assignments
    from training.uplift_rows import train_uplift_from_experiment

    settings = get_settings()
    units = assignments(settings, name)
    if units.empty:
        fail(f"No tenancy has been assigned to {name!r} yet: enable it in the experiments file and record runs "
             "(`arrears worklist --refresh`) while it is on")
    try:
        with console.status(f"Training the uplift model on {len(units):,} assignments of {name}…"):
            ref, metrics = train_uplift_from_experiment(settings, units, name, days=days, capacity=capacity)
    except ValueError as exc:
        fail(str(exc))
    table(f"contact_uplift version {ref.version} (challenger), judged on held-out tenancies of {name}",
          ["measure", "model", "risk order", "random"],
          [["Qini coefficient (£ per treated tenancy)", f"{metrics['qini_coefficient']:,.2f}", "",
            f"{metrics['qini_coefficient_random']:,.2f}"],
           ["incremental £ at capacity", f"{metrics['incremental_at_capacity']:,.0f}",
            f"{metrics['incremental_at_capacity_risk_order']:,.0f}",
            f"{metrics['incremental_at_capacity_random']:,.0f}"]])
    out.print("Next: `arrears promote --model contact_uplift` (its gates decide), then `arrears worklist --refresh`.",
              highlight=False)
