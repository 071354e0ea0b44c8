"""A simulated portfolio ingested into the current home's ledger with its features built: the starting point of
the model tier."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.feeds.ingest import ingest_delivery
from features.ledger import open_ledger
from features.store.refresh import refresh
from simulator import simulate_portfolio, write_portfolio

END = pd.Timestamp("2026-10-31")


def featurised_portfolio(settings, folder: Path, n_tenancies: int, seed: int, years: float = 2.0) -> None:
    """Simulate (ending END), write the delivery under `folder`, ingest it and bring the features up to date."""
    write_portfolio(simulate_portfolio(n_tenancies=n_tenancies, years=years, seed=seed, end_date=END.date()),
                    folder / "feeds")
    with open_ledger(settings.ledger) as ledger:
        ingest_delivery(ledger, folder / "feeds", folder / "quarantine")
    refresh(settings)
