"""What the web app's pages show, gathered from the stores the API answers from (no Starlette here): a tenancy's
statement, events and run history; the treasury's forecast, per-patch table and KPIs; the models' champion and
challenger against their baselines (and whether the challenger waits for a person's approval), the promotion
decisions (MLflow's and the audit trail's) and the monitoring jobs' reports and alerts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from casework import audit
from casework.store import open_audit
from features.ledger import open_ledger
from features.settings import load_settings
from relay.observe import alerts_firing, delivery_stats
from relay.settings import RelaySettings
from relay.store import open_relay_store
from serving.runs.experiments import load_experiments
from serving.runs.store import open_runs
from serving.settings import ServingSettings
from serving.web.charts import effect_words, level_words
from training import approval, registry

#: Each registered model's measures as the models page lists them: (label, metric, better) and its baselines
#: (column label, metric suffix). `better` says which way is good, for the words beside a figure.
MEASURES: dict[str, dict] = {
    "arrears_risk": {
        "title": "Arrears risk",
        "rows": [("AUC", "auc", "higher"), ("Precision at capacity", "precision_at_capacity", "higher"),
                 ("Captured at capacity", "captured_at_capacity", "higher"), ("PR AUC", "pr_auc", "higher"),
                 ("Brier score", "brier", "lower"), ("Calibration error", "calibration_error", "lower")],
        "baselines": [("Balance baseline", "_balance_baseline"), ("Rule baseline", "_rule_baseline")],
    },
    "payment_date": {
        "title": "Payment date",
        "rows": [("Mean error (days)", "mae_days", "lower"), ("P10–P90 coverage", "p10_p90_coverage", "near 80%"),
                 ("Cash forecast P10–P90 coverage", "cash_p10_p90_coverage", "near 80%")],
        "baselines": [("Tenant's own habit", "_naive_baseline")],
    },
}
#: Monitoring jobs whose reports the page links, in order.
REPORT_JOBS = ("drift", "bias", "performance", "refresh")
STATEMENT_MONTHS = 12


@dataclass
class ModelView:
    name: str
    title: str
    versions: dict[str, dict] = field(default_factory=dict)  #: alias → {version, run_id, promotion, metrics}
    rows: list[dict] = field(default_factory=list)  #: label, better, champion, challenger, baselines
    baselines: list[str] = field(default_factory=list)


def models_view(settings: ServingSettings) -> list[ModelView]:
    """Each registered model's champion and challenger (when there are) with their test metrics and the baselines
    measured on the same test weeks (those of the champion)."""
    client = registry.configure(settings)
    views = []
    for name, spec in MEASURES.items():
        view = ModelView(name, spec["title"], baselines=[label for label, _ in spec["baselines"]])
        for alias in (registry.CHAMPION, registry.CHALLENGER):
            try:
                ref = registry.model_by_alias(settings, name, alias)
            except registry.NoChampion:
                continue
            view.versions[alias] = {"version": ref.version, "run_id": ref.run_id,
                                    "promotion": ref.tags.get("promotion", ""),
                                    "metrics": dict(client.get_run(ref.run_id).data.metrics),
                                    # the champion is read first: a challenger waits for a person, offered Approve
                                    "waiting": alias == registry.CHALLENGER and approval.is_waiting(
                                        ref, view.versions.get(registry.CHAMPION, {}).get("version"))}
        champion, challenger = (view.versions.get(a, {}).get("version") for a in (registry.CHAMPION,
                                                                                     registry.CHALLENGER))
        if champion is not None and champion == challenger:  # no newer version waits: one column says it
            view.versions[registry.CHAMPION]["also"] = "also the challenger: no newer version is waiting"
            del view.versions[registry.CHALLENGER]
        measured = view.versions.get(registry.CHAMPION) or view.versions.get(registry.CHALLENGER)
        for label, metric, better in spec["rows"]:
            values = {alias: v["metrics"].get(metric) for alias, v in view.versions.items()}
            if all(value is None for value in values.values()):
                continue
            baselines = [measured["metrics"].get(metric + suffix) for _, suffix in spec["baselines"]]
            view.rows.append({"label": label, "better": better, **values, "baselines": baselines})
        views.append(view)
    return views


def promotions(settings: ServingSettings, limit: int = 20) -> list[dict]:
    """The latest promotion decisions, newest first (the `promotions` experiment in MLflow)."""
    client = registry.configure(settings)
    runs = client.search_runs([registry.experiment(settings, registry.PROMOTIONS)], max_results=limit,
                              order_by=["attributes.start_time DESC"])
    return [{"when": pd.Timestamp(run.info.start_time, unit="ms").strftime("%Y-%m-%d %H:%M"),
             "model": run.data.tags.get("model", ""), "version": run.data.tags.get("version", ""),
             "decision": run.data.tags.get("decision", ""), "previous": run.data.tags.get("previous_champion", ""),
             "decided_by": run.data.tags.get("decided_by", ""), "failed": run.data.tags.get("failed_gates", "")}
            for run in runs]


def model_decisions(settings: ServingSettings, limit: int = 20) -> list[dict]:
    """The latest decisions on models in the audit trail, newest first: who (and in which role) promoted, approved
    or refused which version, and why."""
    with open_audit(settings) as log:
        found = log.db.query(f"SELECT seq, at, actor, role, action, detail FROM {audit.TABLE} WHERE action IN (?, ?) "
                             f"ORDER BY seq DESC LIMIT {int(limit)}", ["model_promoted", "promotion_refused"])
    decisions = []
    for row in found.to_dict("records"):
        detail = json.loads(row["detail"])
        person = detail.get("approved_by_person") or detail.get("refused_by_person")
        decision = {"model_promoted": "approved, promoted" if person else "promoted",
                    "promotion_refused": "refused" if detail.get("refused_by_person") else
                    "approved, refused by its gates" if person else "refused by its gates"}[row["action"]]
        decisions.append({"seq": int(row["seq"]), "when": str(row["at"])[:16].replace("T", " "),
                          "actor": row["actor"], "role": row["role"], "model": detail.get("model", ""),
                          "version": detail.get("version", ""), "decision": decision,
                          "reason": detail.get("reason") or "; ".join(detail.get("failed_gates") or [])})
    return decisions


def reports(latest_runs) -> list[dict]:
    """The HTML reports the monitoring jobs' latest runs wrote: job, name, and the file (for the report page)."""
    found = []
    for run in sorted(latest_runs, key=lambda r: REPORT_JOBS.index(r.job) if r.job in REPORT_JOBS else 99):
        for key, value in sorted(run.outputs.items()):
            if isinstance(value, str) and value.endswith(".html"):
                found.append({"job": run.job, "name": key, "as_of": run.outputs.get("as_of", ""),
                              "finished_at": run.finished_at})
    return found


def report_file(settings: ServingSettings, latest_runs, job: str, name: str) -> Path | None:
    """The report file a job's latest run recorded under `name`, if it is an HTML file under the reports folder."""
    for run in latest_runs:
        value = run.outputs.get(name) if run.job == job else None
        if isinstance(value, str) and value.endswith(".html"):
            path = Path(value).resolve()
            if path.is_file() and path.is_relative_to(Path(settings.reports_dir).resolve()):
                return path
    return None


@dataclass
class CaseHistory:
    """What the case page shows beside the score."""

    transactions: pd.DataFrame  #: posted_date, type, amount_pence
    events: pd.DataFrame  #: event_date, type, amount_pence
    history: pd.DataFrame  #: one row per recorded run holding the tenancy, newest first
    start: pd.Timestamp
    end: pd.Timestamp


def case_history(settings: ServingSettings, tenancy_id: str, as_of: pd.Timestamp) -> CaseHistory:
    """The tenancy's ledger rows (its statement and events; the last `STATEMENT_MONTHS` are charted) and its history
    in the recorded worklist runs."""
    with open_ledger(settings.ledger, read_only=True) as ledger:
        transactions = ledger.read_for_tenancies("transactions", [tenancy_id])
        events = ledger.read_for_tenancies("events", [tenancy_id])
    with open_runs(settings) as runs:
        history = runs.history(tenancy_id)
    end = pd.Timestamp(as_of).normalize()
    return CaseHistory(transactions[["posted_date", "type", "amount_pence"]].sort_values("posted_date"),
                    events[["event_date", "type", "amount_pence"]].sort_values("event_date", ascending=False),
                    history, end - pd.DateOffset(months=STATEMENT_MONTHS), end)


def treasury_view(rows: pd.DataFrame, kpis: pd.DataFrame) -> dict:
    """The treasury page's tables: per scope the forecast's total expected receipts and the first week's band; the
    latest month's KPIs per scope."""
    per_scope = rows.groupby("scope", sort=False).agg(total=("mean", "sum"), week1_p10=("p10", "first"),
                                                      week1_p50=("p50", "first"), week1_p90=("p90", "first"))
    latest = kpis[kpis["month"] == kpis["month"].max()] if len(kpis) else kpis
    return {"scopes_table": per_scope.reset_index().to_dict("records"), "kpis": latest.to_dict("records"),
            "kpi_month": str(kpis["month"].max()) if len(kpis) else None}


def delivery(settings: ServingSettings) -> dict:
    """The relay's destinations (what waits, the oldest waiting, deliveries, failures, dead letters) and the alerts
    they fire (docs/delivery.md): an operator's view beside the monitoring jobs'."""
    with open_relay_store(settings) as db:
        stats = delivery_stats(db)
    return {"destinations": stats.to_dict("records"), "alerts": alerts_firing(stats, load_settings(RelaySettings))}


def experiment_reports(settings: ServingSettings) -> dict[str, dict]:
    """Each experiment's latest report, by name, as `monitoring.experiment_reports` wrote it (JSON, read by name);
    a file that cannot be read is left out."""
    found = {}
    folder = settings.experiment_reports_dir
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            found[path.stem] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return found


def _estimate_row(label: str, estimate: dict, unit: str, overall: bool = False, weight: float | None = None) -> dict:
    return {"label": label, "effect": estimate["effect"], "low": estimate["low"], "high": estimate["high"],
            "overall": overall, "weight": weight, "n_treatment": estimate["n_treatment"],
            "n_holdout": estimate["n_holdout"], "method": estimate["method"],
            "effect_text": effect_words(estimate["effect"], unit),
            "interval_text": f"{effect_words(estimate['low'], unit)} to {effect_words(estimate['high'], unit)}"}


def _effect_view(report: dict) -> dict:
    """What the page shows of a final report's effect: per-arm means, the effect and the unadjusted difference with
    their intervals, and each stratum with the size-weighted overall last (the chart's rows too)."""
    unit, effect = report["outcome"]["unit"], report["effect"]
    strata = report["by_stratum"] or {"strata": [], "overall": None, "skipped": []}
    rows = [_estimate_row(s["stratum"], s, unit, weight=s["weight"]) for s in strata["strata"]]
    if strata["overall"]:
        rows.append(_estimate_row("Overall (size-weighted)", strata["overall"], unit, overall=True, weight=1.0))
    return {
        "mean_treatment": level_words(effect["mean_treatment"], unit),
        "mean_holdout": level_words(effect["mean_holdout"], unit), "n_treatment": effect["n_treatment"],
        "n_holdout": effect["n_holdout"], "level": f"{report.get('level', 0.95):.0%}",
        "main": _estimate_row("All assigned tenancies", effect, unit),
        "unadjusted": {"effect_text": effect_words(effect["unadjusted_effect"], unit),
                       "interval_text": f"{effect_words(effect['unadjusted_low'], unit)} to "
                                        f"{effect_words(effect['unadjusted_high'], unit)}"},
        "variance_reduction": effect["variance_reduction"], "method": effect["method"],
        "covariates": effect["covariates"], "strata": rows, "skipped": strata["skipped"],
    }


def experiments_view(settings: ServingSettings) -> list[dict]:
    """Each configured experiment beside its latest report, then any report of an experiment no longer configured.
    The effect is shown only from a final report whose data reach its horizon (the fixed horizon, checked again
    here): before, accrual and balance only, and the words saying until when the effect is withheld."""
    configured = {e.name: e for e in load_experiments(settings)}
    reports = experiment_reports(settings)
    views = []
    for name in [*configured, *(n for n in reports if n not in configured)]:
        experiment, report = configured.get(name), reports.get(name)
        final = bool(report and report.get("final") and report.get("effect")
                     and str(report["data_end"]) >= str(report["horizon"]))
        views.append({
            "name": name, "configured": experiment is not None,
            "enabled": bool(experiment and experiment.enabled),
            "description": experiment.description if experiment else "",
            "held_out_action": experiment.held_out_action if experiment else None,
            "start": str(experiment.start if experiment else report["start"]),
            "end": str(experiment.end if experiment else report["end"]),
            "holdout_share": experiment.holdout_share if experiment else report["holdout_share"],
            "outcome": (f"{experiment.outcome.kind}, {experiment.outcome.days} days" if experiment else
                        f"{report['outcome']['kind']}, {report['outcome']['days']} days"),
            "mde": experiment.minimum_detectable_effect if experiment else report["minimum_detectable_effect"],
            "report": report, "final": final, "effect": _effect_view(report) if final else None,
            "unit": report["outcome"]["unit"] if report else None})
    return views
