"""The main job, end to end on the embedded default: the CLI's verbs in order, with progress, ending in a served
worklist, a model in the registry and a drift report. Safe to run again: the same simulated delivery re-ingests as
duplicates, the features are rebuilt, and a new model version is trained and gated.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.console import Console

from features.settings import Settings


def run_demo(settings: Settings, tenancies: int, years: float, seed: int, top: int, console: Console) -> dict[str, Path | str]:
    from features.feeds.ingest import ingest_delivery
    from features.ledger import open_ledger
    from features.simulate import simulate_portfolio, write_portfolio
    from features.store import refresh
    from monitoring.jobs import feature_drift
    from serving.server import fetch_worklist, running_server
    from serving.worklist import worklist_frame
    from training.risk import promote, train_risk_model

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
    with console.status("Training through the arrears_risk_v1 FeatureService…"):
        trained = train_risk_model(settings)
    m = trained.metrics
    done("train", f"version {trained.version}: AUC {m['auc']:.3f} (balance-first {m['auc_balance_baseline']:.3f}), "
                  f"precision@capacity {m['precision_at_capacity']:.3f} "
                  f"(balance-first {m['precision_at_capacity_balance_baseline']:.3f})")

    step("promote")
    decision = promote(settings)
    if not decision.promoted:
        raise RuntimeError(f"version {decision.version} failed its gates: {'; '.join(decision.failed_gates)}")
    done("promote", f"arrears_risk version {decision.version} is champion")

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
        "champion": f"models:/arrears_risk@champion (version {decision.version})",
        "drift report": drift.html,
        "ledger": settings.ledger,
        "quarantine": settings.quarantine_dir,
        "ui": f"uv run mlflow ui --backend-store-uri {settings.tracking_uri}",
    }
