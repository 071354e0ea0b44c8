"""The main job, end to end on the embedded default: the CLI's verbs in order, with progress, ending in a served
worklist, a model in the registry and a drift report. Safe to run again: the same simulated delivery re-ingests as
duplicates, the features are rebuilt, and a new model version is trained and gated.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.console import Console

from serving.settings import ServingSettings


def run_demo(settings: ServingSettings, tenancies: int, years: float, seed: int, top: int, console: Console) -> dict[str, Path | str]:
    from features.feeds.ingest import ingest_delivery
    from features.ledger import open_ledger
    from simulator import simulate_portfolio, write_portfolio
    from features.store.refresh import refresh
    from monitoring.jobs import feature_drift
    from serving.server import fetch_worklist, running_server
    from serving.worklist import worklist_frame
    from serving.cash_forecast import forecast_now, write_forecast
    from training.promotion import GATES, promote
    from training.train import train_payment_model, train_risk_model

    timings: dict[str, float] = {}

    def step(name: str):
        console.rule(f"[bold]{name}")
        timings[name] = time.monotonic()

    def done(name: str, message: str) -> None:
        timings[name] = time.monotonic() - timings[name]
        console.print(f"  {message}  [dim]({timings[name]:.1f}s)[/]")

    delivery = settings.feeds_dir / "simulated"
    step("simulate")
    with console.status(f"Simulating {tenancies:,} tenancies over {years:g} years…"):
        write_portfolio(simulate_portfolio(n_tenancies=tenancies, years=years, seed=seed), delivery)
    done("simulate", f"feeds written to {delivery}")

    step("ingest")
    with open_ledger(settings.ledger) as ledger, console.status("Ingesting…"):
        summary = ingest_delivery(ledger, delivery, settings.quarantine_dir)
    done("ingest", ", ".join(f"{f.feed}: {f.accepted:,} accepted, {f.duplicate:,} duplicate, "
                             f"{f.quarantined:,} quarantined" for f in summary.feeds.values()))

    step("features")
    with console.status("Building snapshots, feast apply, filling the online store…"):
        built = refresh(settings)
    done("features", f"{built.mode}: {built.detail}")

    step("train")
    with console.status("Training through the arrears_risk_v1 and payment_date_v1 FeatureServices…"):
        trained = train_risk_model(settings)
        paid = train_payment_model(settings)
    m, p = trained.metrics, paid.metrics
    done("train", f"arrears_risk v{trained.version}: AUC {m['auc']:.3f}, precision@capacity "
                  f"{m['precision_at_capacity']:.3f} (highest balance {m['precision_at_capacity_balance_baseline']:.3f}, "
                  f"stage list {m['precision_at_capacity_rule_baseline']:.3f}, FIFO "
                  f"{m['precision_at_capacity_fifo_baseline']:.3f}); payment_date v{paid.version}: MAE "
                  f"{p['mae_days']:.1f} days (own habit {p['mae_days_naive_baseline']:.1f}), P10–P90 coverage "
                  f"{p['p10_p90_coverage']:.0%}")

    step("promote")
    decisions = [promote(settings, model) for model in GATES]
    refused = [d for d in decisions if not d.promoted]
    if refused:
        raise RuntimeError("; ".join(f"{d.model} v{d.version} failed its gates: {'; '.join(d.failed_gates)}"
                                     for d in refused))
    decision = decisions[0]
    done("promote", ", ".join(f"{d.model} v{d.version}" for d in decisions) + " are champions")

    step("forecast")
    cash = forecast_now(settings)
    cash_files = write_forecast(cash, settings.reports_dir)
    week1 = cash.table[(cash.table["scope"] == "portfolio") & (cash.table["week"] == 1)].iloc[0]
    done("forecast", f"13 weeks from {cash.as_of.date()}; week 1 P50 £{week1['p50']:,.0f} "
                     f"(P10 £{week1['p10']:,.0f} – P90 £{week1['p90']:,.0f})")

    step("serve")
    with console.status("Starting bentoml serve and fetching the worklist over HTTP…"):
        with running_server(settings) as url:
            payload = fetch_worklist(url, top=top)
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = settings.reports_dir / "worklist.json", settings.reports_dir / "worklist.csv"
    json_path.write_text(json.dumps(payload, indent=2))
    from serving.worklist import WorklistRow

    worklist_frame([WorklistRow(**row) for row in payload["rows"]]).to_csv(csv_path, index=False)
    done("serve", f"{len(payload['rows'])} ranked cases from {url}/worklist")

    step("monitor")
    drift = feature_drift(settings)
    done("monitor", f"drifted share {drift.drifted_share:.0%}")

    return {
        "worklist (CSV)": csv_path,
        "worklist (JSON)": json_path,
        "MLflow store": settings.tracking_uri,
        "champion": f"models:/arrears_risk@champion (version {decision.version}), "
                    f"models:/payment_date@champion (version {decisions[1].version})",
        "cash forecast": cash_files.csv,
        "drift report": drift.html,
        "ledger": settings.ledger,
        "quarantine": settings.quarantine_dir,
        "ui": f"uv run mlflow ui --backend-store-uri {settings.tracking_uri}",
    }
