"""The main job, end to end on the embedded default: the CLI's verbs in order, with progress, ending in a served
worklist, models in the registry, a cash forecast and a drift report. Safe to run again: the same simulated
delivery re-ingests as duplicates, features are brought up to date, and a new model version is trained and gated.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from arrears.decisions import promote_recorded
from arrears.render import console
from arrears.schedule import run_job, schedule_settings
from features.feeds.ingest import clock_for, ingest_delivery
from features.ledger import open_ledger
from features.store.refresh import refresh
from serving.access.principals import open_principals
from serving.api.process import fetch_worklist, running_server
from serving.income.schedules import FLAGS, flagged, reconcile_now
from serving.income.store import suspense_queue
from serving.runs.record import RunSummary, record_run
from serving.runs.schemas import WorklistResponse
from serving.runs.worklist import write_worklist
from serving.settings import ServingSettings
from serving.treasury.forecast import forecast_now, record_forecast, write_forecast
from serving.treasury.kpis import kpis_now
from simulator import simulate_portfolio, write_portfolio
from training.promotion import TRAINED
from training.train import train_payment_model, train_risk_model

Result = TypeVar("Result")


def step(name: str, status: str, work: Callable[[], Result], said: Callable[[Result], str]) -> Result:
    """One stage: a rule with its name, a spinner while it works, then what it did and how long it took."""
    console.rule(f"[bold]{name}")
    started = time.monotonic()
    with console.status(status):
        result = work()
    console.print(f"  {said(result)}  [dim]({time.monotonic() - started:.1f}s)[/]")
    return result


def _ingested(summary) -> str:
    return ", ".join(f"{f.feed}: {f.accepted:,} accepted, {f.duplicate:,} duplicate, {f.quarantined:,} quarantined"
                     for f in summary.feeds.values())


def _trained(results) -> str:
    risk, payment = results
    m, p = risk.metrics, payment.metrics
    return (f"arrears_risk v{risk.version}: AUC {m['auc']:.3f}, precision@capacity {m['precision_at_capacity']:.3f} "
            f"(highest balance {m['precision_at_capacity_balance_baseline']:.3f}, stage list "
            f"{m['precision_at_capacity_rule_baseline']:.3f}, FIFO {m['precision_at_capacity_fifo_baseline']:.3f}; "
            f"ceiling {m['ceiling_precision_at_capacity']:.3f}: "
            f"{m['ceiling_share_of_lift_precision_at_capacity']:.0%} of the achievable lift), its 3 reasons carry "
            f"{m['reason_share_top3_concepts']:.0%} of a score (3 single features: "
            f"{m['reason_share_top3_features']:.0%}); payment_date v{payment.version}: MAE {p['mae_days']:.1f} days "
            f"(own habit {p['mae_days_naive_baseline']:.1f}, ceiling {p['ceiling_mae_days']:.1f}), P10–P90 coverage "
            f"{p['p10_p90_coverage']:.0%}")


def _promote_all(settings: ServingSettings) -> list:
    decisions = [promote_recorded(settings, model) for model in TRAINED]
    refused = [d for d in decisions if not d.promoted]
    if refused:
        raise RuntimeError("; ".join(f"{d.model} v{d.version} failed its gates: {'; '.join(d.failed_gates)}"
                                     for d in refused))
    return decisions


def _monitor(settings: ServingSettings) -> dict[str, dict]:
    """The weekly monitoring jobs once, as the schedule runs them (recorded; `arrears monitor status` lists them)."""
    _, schedule = schedule_settings()
    return {name: run_job(settings, schedule, name) for name in ("drift", "bias", "performance")}


def _monitored(records: dict[str, dict]) -> str:
    failed = [name for name, record in records.items() if record["status"] != "succeeded"]
    if failed:
        return f"{', '.join(failed)} failed: see `arrears monitor status`"
    drift, bias = records["drift"]["outputs"], records["bias"]["outputs"]
    return (f"drift like with like: {drift['drifted_share']:.0%} of features, score PSI {drift['score_psi']:.3f}; "
            f"bias and performance: served shares and estimates (outcomes mature 8 weeks after a run); "
            f"{sum(len(r['alerts']) for r in records.values())} alerts; {len(bias['flags'])} group findings")


def _recorded(summary: RunSummary) -> str:
    counts = summary.state_counts
    ready = counts.get("ready", 0)
    others = ", ".join(f"{state} {n:,}" for state, n in sorted(counts.items(), key=lambda x: -x[1]) if state != "ready")
    return f"run {summary.run['run_id']}: {ready:,} ready to work; not to be chased now: {others}"


def _forecast_said(forecast) -> str:
    table = forecast.table
    week1 = table[(table["scope"] == "portfolio") & (table["week"] == 1)].iloc[0]
    return (f"13 weeks from {forecast.as_of.date()}; week 1 P50 £{week1['p50']:,.0f} (P10 £{week1['p10']:,.0f} – "
            f"P90 £{week1['p90']:,.0f})")


def _income(settings: ServingSettings) -> dict[str, object]:
    """The income team's morning: the suspense queue (matches proposed or queued) and the DWP's schedules
    reconciled, each written to reports/ (no payer text: it may name a person)."""
    with open_ledger(settings.ledger, read_only=True) as ledger:
        queue = suspense_queue(settings, ledger)
    receipts = queue.receipts.drop(columns=["payer"], errors="ignore")
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    queue_csv = settings.reports_dir / "suspense_queue.csv"
    receipts.to_csv(queue_csv, index=False)
    try:
        lines, _ = reconcile_now(settings)
    except LookupError:
        lines = None
    shown = flagged(lines) if lines is not None else None
    flags_csv = settings.reports_dir / "schedule_flags.csv"
    if shown is not None:
        shown.drop(columns=["payer"], errors="ignore").to_csv(flags_csv, index=False)
    return {"receipts": receipts, "flags": shown, "queue_csv": queue_csv, "flags_csv": flags_csv}


def _income_said(found: dict[str, object]) -> str:
    receipts, flags = found["receipts"], found["flags"]
    proposed = int((receipts["decision"] == "proposed").sum()) if len(receipts) else 0
    said = (f"{len(receipts):,} receipts in suspense: {proposed:,} matches proposed for approval, "
            f"{len(receipts) - proposed:,} queued")
    if flags is not None:
        counts = ", ".join(f"{f} {int(flags[f].sum()):,}" for f in FLAGS if f in flags and flags[f].any())
        said += f"; DWP schedule lines flagged: {len(flags):,} ({counts or 'none'})"
    return said


def _served_worklist(settings: ServingSettings, top: int) -> tuple[WorklistResponse, str]:
    """Start a real `bentoml serve`, ask it for the ready list over HTTP, stop it."""
    with running_server(settings) as url:
        return WorklistResponse(**fetch_worklist(url, top=top)), url


def run_demo(settings: ServingSettings, tenancies: int, years: float, seed: int, top: int) -> dict[str, Path | str]:
    delivery = settings.feeds_dir / "simulated"
    step("simulate", f"Simulating {tenancies:,} tenancies over {years:g} years…",
         lambda: write_portfolio(simulate_portfolio(n_tenancies=tenancies, years=years, seed=seed), delivery),
         lambda _: f"feeds written to {delivery}")
    truth = delivery.with_name(f"{delivery.name}_truth")  # what the simulator knows: the ceiling's input
    with open_ledger(settings.ledger) as ledger:
        step("ingest", "Ingesting…",
             lambda: ingest_delivery(ledger, delivery, settings.quarantine_dir, clock_for(settings),
                                     settings.ingest_memory), _ingested)
    step("features", "Building snapshots, feast apply, filling the online store…", lambda: refresh(settings),
         lambda built: f"{built.mode}: {built.detail}")
    step("train", "Training through the arrears_risk_v1 and payment_date_v1 FeatureServices…",
         lambda: (train_risk_model(settings, truth=truth), train_payment_model(settings, truth=truth)), _trained)
    decisions = step("promote", "Checking the gates…", lambda: _promote_all(settings),
                     lambda done: ", ".join(f"{d.model} v{d.version}" for d in done) + " are champions")
    step("worklist", "Scoring every live tenancy, judging readiness, explaining what can be listed…",
         lambda: record_run(settings), _recorded)
    income = step("income", "Matching receipts in suspense, reconciling the DWP's schedules…",
                  lambda: _income(settings), _income_said)
    forecast = step("forecast", "Simulating receipts…", lambda: forecast_now(settings), _forecast_said)
    forecast_files = write_forecast(forecast, settings.reports_dir)
    record_forecast(settings, forecast)
    kpis = settings.reports_dir / "collection_kpis.csv"
    kpis_now(settings).round(4).to_csv(kpis, index=False)
    response, _ = step("serve", "Starting bentoml serve and fetching the worklist over HTTP…",
                         lambda: _served_worklist(settings, top),
                         lambda served: f"{len(served[0].rows)} ready cases, ranked and explained, from "
                                        f"{served[1]}/worklist")
    worklist_files = write_worklist(response, settings.reports_dir)
    monitored = step("monitor", "Drift (like with like), bias and performance, as the schedule runs them…",
                     lambda: _monitor(settings), _monitored)
    reports = {name: record.get("outputs", {}) for name, record in monitored.items()}
    return {
        "data as of": str(response.as_of)[:10],
        "worklist (CSV)": worklist_files.csv,
        "worklist (JSON)": worklist_files.json,
        "MLflow store": settings.tracking_uri,
        "champion": ", ".join(f"models:/{d.model}@champion (version {d.version})" for d in decisions),
        "cash forecast": forecast_files.csv,
        "expected payments": forecast_files.per_tenancy,
        "collection KPIs": kpis,
        "suspense queue": income["queue_csv"],
        "DWP schedule flags": income["flags_csv"],
        "drift report": reports["drift"].get("html", "not written: see `arrears monitor status`"),
        "bias report": reports["bias"].get("served_html", "not written: see `arrears monitor status`"),
        "performance report": reports["performance"].get("html", "not written: see `arrears monitor status`"),
        "ledger": settings.ledger,
        "quarantine": settings.quarantine_dir,
        "ui": f"uv run mlflow ui --backend-store-uri {settings.tracking_uri}",
    }


#: The demo's sign-ins: one principal per role (officer and supervisor on the first patches).
DEMO_USERS = (("demo-officer", "officer", 1), ("demo-supervisor", "supervisor", 2), ("demo-treasury", "treasury", 0),
              ("demo-data-scientist", "data_scientist", 0), ("demo-admin", "admin", 0))


def demo_sign_ins(settings: ServingSettings) -> list[list[str]]:
    """A fresh token for each demo role (an earlier demo's are revoked): role, name, patches, token. A simulated
    portfolio's sign-ins, printed so a person can try each role's pages; real principals are made with
    `arrears users add`."""
    with open_ledger(settings.ledger, read_only=True) as ledger:
        patches = sorted(ledger.read_table("tenancy_register")["patch"].astype(str).unique())
    rows = []
    with open_principals(settings) as store:
        for name, role, n in DEMO_USERS:
            store.revoke(name)
            mine = patches[:n]
            rows.append([role, name, ", ".join(mine) or "all (aggregates)", store.add(name, role, mine)])
    return rows
