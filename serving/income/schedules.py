"""The DWP's payment schedules read from the ledger: `read_schedule_books` (the schedule lines, benefit postings and
register the reconciliation reads) and `reconcile_now` (the ledger as it stands, for `arrears income reconcile`).
The reconciliation itself is pure and lives in `features.schedules` (the training backtest uses it too); its names
are importable from here as well.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from features.ledger import Ledger, open_ledger
from features.schedules import FLAGS, as_days, expected_schedule_lines, flagged, reconcile, settlements
from serving.settings import ServingSettings

__all__ = ["FLAGS", "ScheduleBooks", "expected_schedule_lines", "flagged", "read_schedule_books", "reconcile",
           "reconcile_now", "settlements"]


@dataclass(frozen=True)
class ScheduleBooks:
    """What reconciliation reads from the ledger: the schedule lines, the benefit postings, the register."""

    schedules: pd.DataFrame
    transactions: pd.DataFrame
    tenancies: pd.DataFrame


def read_schedule_books(ledger: Ledger) -> ScheduleBooks:
    """The ledger's schedule lines, every benefit posting (tenancy_id, posted_date, amount_pence) and the register's
    tenancy_id, end_date and benefit_type."""
    schedules = ledger.read_table("dwp_schedules")
    transactions = ledger.query("SELECT tenancy_id, posted_date, amount_pence FROM transactions "
                                "WHERE type = 'benefit'")
    transactions["posted_date"] = as_days(transactions["posted_date"])
    tenancies = ledger.query("SELECT tenancy_id, end_date, benefit_type FROM tenancy_register")
    tenancies["end_date"] = as_days(tenancies["end_date"])
    return ScheduleBooks(schedules, transactions, tenancies)


def reconcile_now(settings: ServingSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ledger's DWP schedules reconciled as it stands: (`reconcile`'s lines, `settlements`). LookupError when
    it holds no schedule lines."""
    with open_ledger(settings.ledger, read_only=True) as ledger:
        if not ledger.columns_of("dwp_schedules"):
            raise LookupError("The ledger has no DWP schedules yet: ingest a delivery with dwp_schedules.csv "
                              "(docs/feeds.md)")
        books = read_schedule_books(ledger)
    if books.schedules.empty:
        raise LookupError("The ledger has no DWP schedule lines yet: ingest a delivery with dwp_schedules.csv "
                          "(docs/feeds.md)")
    reconciled = reconcile(books.schedules, books.transactions, books.tenancies)
    return reconciled, settlements(reconciled)
