"""The cash forecast for treasury, now: expected receipts per week for the next 13 weeks with P10/P50/P90,
portfolio-wide and per patch, from the champion payment-date model and each live tenancy's current features and
habits. An adapter over `training.cash` (the same simulation the training backtest judges), reading the current
snapshot of every live tenancy, so it runs on a schedule without the HTTP service (`arrears forecast`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from features.store.offline import live_tenancies, load_ledger_slice
from serving.settings import ServingSettings
from training import cash, evidence, registry
from training.config import load_params
from training.labels import PaymentLabelSpec, daily_receipts, qualifying_payment_days


@dataclass(frozen=True)
class CashForecast:
    table: pd.DataFrame  #: as_of, scope (portfolio or a patch), week, week_start, mean, p10, p50, p90 (pounds)
    as_of: pd.Timestamp
    model_version: str


@dataclass(frozen=True)
class ForecastFiles:
    csv: Path
    json: Path
    plot: Path


def forecast_now(settings: ServingSettings, weeks: int | None = None, simulations: int | None = None,
                 seed: int = 0) -> CashForecast:
    """Simulate receipts from the ledger's latest date with the champion payment-date model."""
    params = load_params("payment_date")
    weeks = weeks or params["cash"]["weeks"]
    simulations = simulations or params["cash"]["simulations"]
    champion = registry.load_champion(settings, registry.PAYMENT_MODEL)
    live = live_tenancies(settings).reset_index(drop=True)
    as_of = pd.Timestamp(live["event_timestamp"].max())
    part = load_ledger_slice(settings)
    paid = qualifying_payment_days(part.tenancies, part.transactions, PaymentLabelSpec(**params["label"]))
    sims = cash.forecast_receipts(champion.booster, live, part.tenancies, paid, daily_receipts(part.transactions),
                                  as_of, weeks, simulations, seed)
    table = cash.summarise(sims, live["patch"].astype(str).to_numpy(), as_of.tz_localize(None))
    table.insert(0, "as_of", as_of.date())
    return CashForecast(table, as_of, champion.ref.version)


def write_forecast(forecast: CashForecast, out_dir: Path) -> ForecastFiles:
    """The forecast as CSV and JSON (pounds to the penny) and a fan chart (PNG) a person can open."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = ForecastFiles(out_dir / "cash_forecast.csv", out_dir / "cash_forecast.json", out_dir / "cash_forecast.png")
    forecast.table.round(2).to_csv(files.csv, index=False)
    forecast.table.round(2).to_json(files.json, orient="records", date_format="iso", indent=2)
    evidence.forecast_plot(forecast.table, files.plot,
                           title=f"Expected receipts by week from {forecast.as_of.date()} (P10–P90)")
    return files
