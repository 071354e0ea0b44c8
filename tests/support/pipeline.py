"""One portfolio run through the real parts, shared by the service and e2e tiers: simulated feeds → ledger → Feast
repo (feast apply, online store) → LightGBM in the MLflow registry → a real `bentoml serve` process over HTTP.

The pipeline sees the portfolio only up to a cutoff 9 weeks before the simulation ends, so what really happened
to each ranked tenancy over the next 8 weeks is known, and the ranking can be judged on it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import httpx
import pandas as pd

from casework.policy import STATES
from features.ledger import open_ledger
from serving.api.process import fetch_worklist, running_server
from serving.settings import get_settings
from simulator import simulate_portfolio, write_portfolio
from simulator.suspense import income_feeds_as_of
from tests.support.cli import ok
from tests.support.homes import isolated_home

END = pd.Timestamp("2026-10-31")
CUTOFF = END - pd.Timedelta(weeks=9)


def truncate(portfolio, cutoff: pd.Timestamp):
    """The portfolio as a landlord would have exported it on `cutoff`."""
    tenancies = portfolio.tenancies
    start, end = pd.to_datetime(tenancies["start_date"]), pd.to_datetime(tenancies["end_date"])
    tenancies = tenancies[start <= cutoff].copy()
    tenancies.loc[end[start <= cutoff] > cutoff, "end_date"] = None  # a future move-out is not yet known
    tx = portfolio.transactions[pd.to_datetime(portfolio.transactions["posted_date"]) <= cutoff]
    events = portfolio.events[pd.to_datetime(portfolio.events["event_date"]) <= cutoff]
    # The housing system's own balance, reported on the cutoff day: all of it explained by what was exported.
    balance = tx.groupby("tenancy_id")["amount"].sum()
    tenancies["reported_balance"] = tenancies["tenancy_id"].map(balance).fillna(0.0).round(2).to_numpy()
    tenancies["reported_balance_date"] = cutoff
    return replace(portfolio, tenancies=tenancies, transactions=tx, events=events,
                   **income_feeds_as_of(portfolio, cutoff))


def build_pipeline(root: Path) -> dict:
    """Ingest, features, train, promote and one drift job with the CLI's verbs; then the worklist over HTTP, whole
    and for one patch, and the monitoring status."""
    home = root / "home"
    with isolated_home(home):
        full = simulate_portfolio(n_tenancies=800, years=2.0, seed=11, end_date=END.date())
        write_portfolio(truncate(full, CUTOFF), root / "delivery")
        write_portfolio(full, root / "full")
        for verb in (["ingest", str(root / "delivery")], ["features"], ["train"], ["promote"],
                     ["schedule", "run", "drift"]):
            ok(*verb)
        settings = get_settings()
        with running_server(settings) as url:
            payload = fetch_worklist(url, top=10_000)
            patch = payload["rows"][0]["patch"]
            patch_payload = fetch_worklist(url, top=10_000, patch=patch)
            everyone = fetch_worklist(url, top=10_000, states=list(STATES))
            changes = httpx.post(f"{url}/worklist_changes", json={}, timeout=60).json()
            monitoring = httpx.post(f"{url}/monitoring_status", json={"days": 30}, timeout=60).json()
            treasury = {name: httpx.post(f"{url}/{endpoint}", json=body, timeout=300) for name, endpoint, body in (
                ("forecast", "cash_forecast", {}), ("csv", "cash_forecast_csv", {"patch": patch, "weeks": 13}),
                ("unknown_patch", "cash_forecast", {"patch": "NoSuchPatch"}),
                ("too_far", "cash_forecast", {"weeks": 400}), ("kpis", "collection_kpis", {"months": 240}),
                ("kpis_csv", "collection_kpis_csv", {"months": 3, "patch": patch}),
                ("scenario", "cash_forecast", {"rent_change_pct": 10.0}))}
            treasury["openapi"] = httpx.get(f"{url}/docs.json", timeout=60)
        with open_ledger(settings.ledger, read_only=True) as ledger:  # what the answers were made from: later
            treasury["ledger_seq"] = ledger.last_delivery_seq()  # tests may post to it (an approved match)
    return {"root": root, "home": home, "settings": settings, "payload": payload, "patch": patch,
            "patch_payload": patch_payload, "everyone": everyone, "changes": changes, "portfolio": full,
            "monitoring": monitoring, "treasury": treasury}
