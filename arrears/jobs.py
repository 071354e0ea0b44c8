"""The scheduled jobs, by name: what `arrears schedule` runs and `arrears schedule run NAME` runs once.

Each takes the settings and the schedule (its alert thresholds) and returns a `monitoring.jobs.JobResult`: outputs
recorded with the run, and the breaches that become alerts. `refresh` and `retrain` wire stages of other packages
together (which is why they live here, in the composition root); the monitoring jobs live in `monitoring.jobs`.
"""

from __future__ import annotations

from arrears.decisions import hold_recorded, promote_recorded
from arrears.schedule import Schedule
from features.store.refresh import refresh as refresh_features
from monitoring import jobs as monitoring_jobs
from monitoring.experiment_reports import experiments_job
from monitoring.findings import Breach, JobResult
from serving.privacy.retention import apply_retention
from serving.runs.interventions import interventions
from serving.runs.record import record_run
from serving.settings import ServingSettings
from serving.treasury.forecast import forecast_now, record_forecast
from training.dataset import MissingFeatures
from training.promotion import TRAINED
from training.registry import NoChampion
from training.train import train_payment_model, train_risk_model


def refresh(settings: ServingSettings, schedule: Schedule) -> JobResult:
    """Nightly: bring features up to date with the ledger, then record a worklist run (the prediction log that
    monitoring judges later) and the day's cash forecast. Before a champion exists there is nothing to record,
    which is not a failure."""
    features = refresh_features(settings)
    outputs = {"features": features.mode, "tenancies": features.tenancies, "detail": features.detail}
    try:
        summary = record_run(settings)
    except NoChampion as exc:
        return JobResult(outputs | {"worklist_run": None, "note": str(exc)})
    outputs |= {"worklist_run": summary.run["run_id"], "as_of": str(summary.run["as_of"]),
                "recorded": summary.recorded, "states": summary.state_counts}
    try:  # the cash forecast's history: what the weekly performance job sets against the receipts
        forecast = forecast_now(settings)
    except NoChampion as exc:
        return JobResult(outputs | {"forecast": None, "forecast_note": str(exc)})
    outputs["forecast"], outputs["forecast_recorded"] = record_forecast(settings, forecast)
    return JobResult(outputs)


def drift(settings: ServingSettings, schedule: Schedule) -> JobResult:
    return monitoring_jobs.drift_job(settings, schedule.thresholds)


def bias(settings: ServingSettings, schedule: Schedule) -> JobResult:
    return monitoring_jobs.bias_job(settings, schedule.thresholds)


def performance(settings: ServingSettings, schedule: Schedule) -> JobResult:
    return monitoring_jobs.performance_job(settings, schedule.thresholds)


def experiments(settings: ServingSettings, schedule: Schedule) -> JobResult:
    """Weekly: each experiment's report written for the experiments page (its effect only from its fixed horizon)."""
    return experiments_job(settings)


def retrain(settings: ServingSettings, schedule: Schedule) -> JobResult:
    """Monthly: train challengers on the latest data and put each through its gates. A challenger that passes waits
    for a data scientist's approval (`arrears promote --approve`, or the models page); with ARREARS_RETRAIN_PROMOTES
    it is promoted at once. A refusal by the gates is an alert for a data scientist to read (the gates name why),
    not a failed job; a payment-date model that cannot be trained leaves the risk model's retraining standing."""
    outputs, breaches = {}, []
    risk = train_risk_model(settings, interventions=interventions(settings))
    outputs["arrears_risk"] = {"version": risk.version, "auc": risk.metrics.get("auc")}
    try:
        payment = train_payment_model(settings)
        outputs["payment_date"] = {"version": payment.version, "p50_mae_days": payment.metrics.get("p50_mae_days")}
    except (MissingFeatures, ValueError) as exc:
        outputs["payment_date"] = {"not_trained": str(exc)}
    promoted = False
    for model in TRAINED:
        if "version" not in outputs[model]:  # not trained this time: its champion stays as it is
            continue
        decide = promote_recorded if settings.retrain_promotes else hold_recorded
        decision = decide(settings, model, actor="scheduler", role="system")
        outputs[model] |= {"promoted": decision.promoted, "waiting_for_approval": decision.waiting,
                           "gates": "failed: " + "; ".join(decision.failed_gates) if decision.failed_gates
                           else "passed"}
        if decision.waiting:
            outputs[model]["next"] = (f"a data scientist approves or refuses it: arrears promote --model {model} "
                                      "--approve (or --refuse --reason WHY), or the models page")
        promoted |= decision.promoted
        if decision.failed_gates:
            breaches.append(Breach("promotion_refused", f"{model} version {decision.version} was not promoted: "
                                   + "; ".join(decision.failed_gates)))
    if promoted:
        outputs["worklist_run"] = record_run(settings).run["run_id"]
    return JobResult(outputs, breaches)


def retention(settings: ServingSettings, schedule: Schedule) -> JobResult:
    """Weekly: apply the retention schedule (serving/privacy/retention.yaml): ended tenancies past their time
    pseudonymised, old worklist runs, unsent drafts, access-log entries and log files deleted; the rows changed per
    store and table are the job's outputs and an entry in the audit trail."""
    return JobResult(apply_retention(settings))
