"""`arrears`: one command, one verb per stage (a module per group of verbs); `arrears demo` runs them all in order.

All state lives under ARREARS_HOME (default ./data). Every verb is safe to re-run.
"""

from __future__ import annotations

import sys

import typer

from arrears.cli import (
    audit,
    case,
    data,
    experiment,
    home,
    income,
    models,
    monitor,
    privacy,
    relay,
    schedule,
    serving,
    users,
)

app = typer.Typer(
    help="Arrears risk-scoring and prioritisation: feeds → ledger → Feast features → MLflow models → a BentoML "
    "worklist with SHAP reasons → Evidently reports. State lives under ARREARS_HOME (default ./data).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.callback()(home.main_options)
for verb in (data.simulate, data.ingest, models.train, models.promote, serving.forecast, serving.kpis, serving.serve,
             serving.worklist, relay.relay, home.info, home.demo):
    app.command()(verb)
app.add_typer(data.features_app, name="features")
app.add_typer(monitor.monitor_app, name="monitor")
app.add_typer(schedule.schedule_app, name="schedule")
app.add_typer(users.users_app, name="users")
app.add_typer(audit.audit_app, name="audit")
app.add_typer(case.case_app, name="case")
app.add_typer(experiment.experiment_app, name="experiment")
app.add_typer(privacy.privacy_app, name="privacy")
app.add_typer(income.income_app, name="income")


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
