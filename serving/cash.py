"""The cash forecast for treasury: expected receipts per week for the next 13 weeks, with P10/P50/P90, portfolio-wide
and per patch, from the champion payment-date model and each tenant's usual amount and rhythm.

It is a batch job (`arrears forecast`): it reads the current snapshot of every live tenancy (the same features the
online store holds), so it can run on a schedule without the HTTP service.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from serving.settings import ServingSettings


@dataclass(frozen=True)
class CashForecast:
    table: pd.DataFrame
    as_of: pd.Timestamp
    model_version: str
    csv: Path
    json: Path
    plot: Path


def cash_forecast(settings: ServingSettings, weeks: int | None = None, simulations: int | None = None,
                  seed: int = 0) -> CashForecast:
    from features.store.offline import live_tenancies, load_ledger_slice
    from training import report
    from training.labels import PaymentLabelSpec, daily_receipts, qualifying_payment_days
    from training.payments import (
        forecast_from,
        load_champion,
        load_params,
            )

    params = load_params()
    weeks = weeks or params["cash"]["weeks"]
    simulations = simulations or params["cash"]["simulations"]
    booster, ref = load_champion(settings)
    live = live_tenancies(settings).reset_index(drop=True)
    as_of = pd.Timestamp(live["event_timestamp"].max())
    part = load_ledger_slice(settings)
    paid = qualifying_payment_days(part.tenancies, part.transactions, PaymentLabelSpec(**params["label"]))
    sims = forecast_from(booster, live, part.tenancies, paid, daily_receipts(part.transactions), as_of,
                         weeks, simulations, seed)
    from training.payment_date import summarise

    table = summarise(sims, live["patch"].astype(str).to_numpy(), as_of.tz_localize(None))
    table.insert(0, "as_of", as_of.date())
    out = settings.reports_dir
    out.mkdir(parents=True, exist_ok=True)
    csv, json_path = out / "cash_forecast.csv", out / "cash_forecast.json"
    table.round(2).to_csv(csv, index=False)
    table.round(2).to_json(json_path, orient="records", date_format="iso", indent=2)
    plot = report.forecast_plot(table, out / "cash_forecast.png",
                                title=f"Expected receipts by week from {as_of.date()} (P10–P90)")
    return CashForecast(table, as_of, ref.version, csv, json_path, plot)
