"""What cash application reads and keeps: the ledger's books as matching wants them (`read_books`), and the income
team's decisions on the suspense queue (approved and rejected matches) in the serving database, beside the
recorded runs.

A matcher is trained on the ledger's own history (receipts cleared at source) and kept for the process while the
ledger has had no new delivery (`suspense_queue`): the queue page and the worklist run ask for it, and it changes
only when a delivery comes in.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.db import Database, open_store
from features.feeds.contract import RECEIPT_TYPES
from features.ledger import Ledger, open_ledger
from serving.income import matching
from serving.settings import ServingSettings

TABLES = {"suspense_decisions": {
    "receipt_id": "TEXT", "tenancy_id": "TEXT", "decision": "TEXT", "decided_by": "TEXT", "role": "TEXT",
    "decided_at": "TIMESTAMP", "probability": "DOUBLE PRECISION", "delivery_seq": "BIGINT"}}
PRIMARY_KEYS = {"suspense_decisions": ("receipt_id", "tenancy_id", "decision")}
DECISIONS = ("approved", "rejected")
SUSPENSE_COLUMNS = ("receipt_id", "received_date", "amount_pence", "reference", "payer", "source",
                    "cleared_tenancy_id", "cleared_date")
SCHEDULE_COLUMNS = ("settlement_number", "line_reference", "payment_date", "amount_pence", "tenancy_reference")


class Decisions:
    """The income team's decisions. Use `open_decisions(settings)`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def ensure_schema(self) -> None:
        self.db.ensure_tables(TABLES, PRIMARY_KEYS)

    def record(self, receipt_id: str, tenancy_id: str, decision: str, decided_by: str, role: str,
               probability: float | None, delivery_seq: int | None = None) -> bool:
        """Keep one decision; False (and nothing written) if the same decision on the same match is kept."""
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {', '.join(DECISIONS)}")
        if not self.of(receipt_id, tenancy_id, decision).empty:
            return False
        self.db.insert("suspense_decisions", {
            "receipt_id": receipt_id, "tenancy_id": tenancy_id, "decision": decision, "decided_by": decided_by,
            "role": role, "decided_at": pd.Timestamp.now(tz="UTC").tz_localize(None).to_pydatetime(),
            "probability": None if probability is None else float(probability), "delivery_seq": delivery_seq})
        return True

    def of(self, receipt_id: str, tenancy_id: str | None = None, decision: str | None = None) -> pd.DataFrame:
        sql, params = "SELECT * FROM suspense_decisions WHERE receipt_id = ?", [receipt_id]
        for column, value in (("tenancy_id", tenancy_id), ("decision", decision)):
            if value is not None:
                sql, params = sql + f" AND {column} = ?", [*params, value]
        return self.db.query(sql + " ORDER BY decided_at", params)

    def rejected(self) -> pd.DataFrame:
        return self.db.query("SELECT DISTINCT receipt_id, tenancy_id FROM suspense_decisions WHERE decision = ?",
                             ["rejected"])


@contextmanager
def open_decisions(settings: ServingSettings) -> Iterator[Decisions]:
    with open_store(settings.runs_database, Decisions, once=True) as store:
        yield store


def read_books(ledger: Ledger) -> matching.Books:
    """The ledger as matching reads it: every tenancy, its receipts (money received, positive), the receipts in
    suspense as last delivered and the DWP's schedule lines."""
    ids = ledger.query("SELECT DISTINCT tenancy_id FROM tenancy_register ORDER BY tenancy_id")["tenancy_id"]
    marks = ", ".join("?" for _ in RECEIPT_TYPES)
    payments = ledger.query(f"SELECT tenancy_id, posted_date, -amount_pence AS amount_pence FROM transactions "
                            f"WHERE type IN ({marks}) AND amount_pence < 0", list(RECEIPT_TYPES))
    suspense = _read(ledger, "suspense_register", SUSPENSE_COLUMNS)
    schedules = _read(ledger, "dwp_schedules", SCHEDULE_COLUMNS)
    for frame, columns in ((payments, ("posted_date",)), (suspense, ("received_date", "cleared_date")),
                           (schedules, ("payment_date",))):
        for column in columns:
            frame[column] = pd.to_datetime(frame[column])
    return matching.Books(ids.to_numpy(), payments, suspense, schedules)


def open_receipts(ledger: Ledger) -> int:
    """How many receipts are in suspense, not yet cleared to a tenancy."""
    if not ledger.view_exists("suspense_register"):
        return 0
    found = ledger.query("SELECT COUNT(*) AS n FROM suspense_register WHERE cleared_tenancy_id IS NULL")
    return int(found["n"].iloc[0])


def _read(ledger: Ledger, table: str, columns: tuple[str, ...]) -> pd.DataFrame:
    if not ledger.columns_of(table) and not ledger.view_exists(table):
        return pd.DataFrame(columns=list(columns))
    return ledger.query(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {columns[0]}")


@dataclass(frozen=True)
class SuspenseQueue:
    """The suspense queue as of a ledger delivery: one row per open receipt (`matching.decide`), the candidates
    shown for each (rejected matches left out), and the matcher that scored them (None: too little history; then
    every receipt is queued without candidates and `why` says so)."""

    ledger_seq: int
    receipts: pd.DataFrame
    candidates: pd.DataFrame
    matcher: matching.Matcher | None
    why: str | None = None

    def held(self, queue_at: float) -> pd.DataFrame:
        return matching.held(self.receipts, queue_at)


_CACHE: dict[tuple[str, int, str, float], SuspenseQueue] = {}
_LOCK = threading.Lock()


def suspense_queue(settings: ServingSettings, ledger: Ledger, rejected: pd.DataFrame | None = None) -> SuspenseQueue:
    """The suspense queue of the ledger as it is (cached for this process until the next delivery or decision)."""
    seq = ledger.last_delivery_seq()
    gone = rejected if rejected is not None else pd.DataFrame(columns=["receipt_id", "tenancy_id"])
    key = (ledger.url, seq, f"{len(gone)}", settings.suspense_propose_at)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        found = _compute(settings, ledger, seq, gone)
        _CACHE.clear()
        _CACHE[key] = found
        return found


def _compute(settings: ServingSettings, ledger: Ledger, seq: int, rejected: pd.DataFrame) -> SuspenseQueue:
    books = read_books(ledger)
    open_receipts = books.open.drop(columns=["cleared_tenancy_id", "cleared_date"])
    try:
        matcher = matching.fit_matcher(matching.labelled_pairs(books), settings.suspense_matcher,
                                       len(books.cleared))
    except matching.NotEnoughHistory as exc:
        empty = matching.decide(open_receipts, pd.DataFrame(columns=["receipt_id", "tenancy_id", "probability",
                                                                     "rank"]), 1.0)
        return SuspenseQueue(seq, empty, pd.DataFrame(columns=["receipt_id", "rank", "tenancy_id", "probability",
                                                               "reasons"]), None, str(exc))
    receipts, shown = matching.queue(books, matcher, settings.suspense_propose_at, rejected)
    return SuspenseQueue(seq, receipts, shown, matcher)


def queue_now(settings: ServingSettings) -> SuspenseQueue:
    """The suspense queue of the ledger as it is now, without the matches the income team rejected."""
    with open_decisions(settings) as decisions:
        rejected = decisions.rejected()
    with open_ledger(settings.ledger, read_only=True) as ledger:
        return suspense_queue(settings, ledger, rejected)


def held_by_suspense(settings: ServingSettings, ledger: Ledger) -> pd.DataFrame:
    """For the readiness policy: each open receipt's most likely tenancy at the queue threshold or above."""
    if not open_receipts(ledger):
        return pd.DataFrame(columns=["receipt_id", "tenancy_id", "received_date", "amount_pence"])
    with open_decisions(settings) as decisions:
        rejected = decisions.rejected()
    found = suspense_queue(settings, ledger, rejected)
    return found.held(settings.suspense_queue_at).assign(
        received_date=lambda f: pd.to_datetime(f["received_date"]),
        amount_pence=lambda f: f["amount_pence"].astype(np.int64))
