"""What cash application reads and keeps: the ledger's books as matching wants them (`read_books`), the income
team's decisions on the suspense queue (approved and rejected matches), and the scored candidates of each ledger
delivery, in the serving database beside the recorded runs.

Scoring a delivery's receipts in suspense trains a matcher on the ledger's own history (receipts cleared at source):
seconds of work, the same for every process that asks until the next delivery. So the first to ask (the nightly
run, the service, a command) keeps every open receipt's ranked candidates with their reasons under the delivery's
sequence (`suspense_candidates`, one header row in `suspense_scorings`), and the rest read them. What changes
without a delivery is applied when read: the matches a person rejected leave their receipt's candidates, and the
proposal threshold is the service's setting. Receipts' reference and payer text are never kept there: they are read
from the ledger each time (erasure blanks them in one place).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
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

TABLES = {
    "suspense_decisions": {
        "receipt_id": "TEXT", "tenancy_id": "TEXT", "decision": "TEXT", "decided_by": "TEXT", "role": "TEXT",
        "decided_at": "TIMESTAMP", "probability": "DOUBLE PRECISION", "delivery_seq": "BIGINT"},
    # one row per ledger delivery scored (and matcher kind): who scored it, with what, how long it took
    "suspense_scorings": {
        "ledger_seq": "BIGINT", "matcher": "TEXT", "trained_on": "BIGINT", "why": "TEXT", "token": "TEXT",
        "scored_at": "TIMESTAMP", "seconds": "DOUBLE PRECISION"},
    # every open receipt's candidates as scored then (candidate_key: seq:matcher:receipt:rank, never the tenancy)
    "suspense_candidates": {
        "candidate_key": "TEXT", "ledger_seq": "BIGINT", "matcher": "TEXT", "receipt_id": "TEXT",
        "tenancy_id": "TEXT", "candidate_rank": "BIGINT", "probability": "DOUBLE PRECISION", "reasons": "TEXT"}}
PRIMARY_KEYS = {"suspense_decisions": ("receipt_id", "tenancy_id", "decision"),
                "suspense_scorings": ("ledger_seq", "matcher"), "suspense_candidates": ("candidate_key",)}
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

    # -- each delivery's scoring, kept --------------------------------------------------------------------------
    def scoring(self, seq: int, kind: str) -> Scoring | None:
        """The scoring kept for ledger delivery `seq` by a matcher of `kind`, or None."""
        head = self.db.query("SELECT matcher, trained_on, why FROM suspense_scorings WHERE ledger_seq = ? "
                             "AND matcher = ?", [seq, kind])
        if head.empty:
            return None
        rows = self.db.query("SELECT receipt_id, tenancy_id, candidate_rank AS rank, probability, reasons FROM "
                             "suspense_candidates WHERE ledger_seq = ? AND matcher = ? ORDER BY receipt_id, "
                             "candidate_rank", [seq, kind])
        rows = rows.assign(rank=rows["rank"].astype(int), probability=rows["probability"].astype(float),
                           reasons=[json.loads(r) for r in rows["reasons"]])
        why = head["why"].iloc[0]
        return Scoring(seq, kind, int(head["trained_on"].iloc[0]), None if why is None or pd.isna(why) else str(why),
                       rows)

    def keep(self, made: Scoring, seconds: float) -> bool:
        """Keep a delivery's scoring (and forget the other deliveries'); False if another process kept it first."""
        kind, token = made.kind, uuid.uuid4().hex
        with self.db.transaction():
            self.db.execute("INSERT INTO suspense_scorings (ledger_seq, matcher, trained_on, why, token, scored_at, "
                            "seconds) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (ledger_seq, matcher) DO NOTHING",
                            [made.ledger_seq, kind, made.trained_on, made.why, token,
                             pd.Timestamp.now(tz="UTC").tz_localize(None).to_pydatetime(), round(seconds, 3)])
            won = self.db.query("SELECT token FROM suspense_scorings WHERE ledger_seq = ? AND matcher = ?",
                                [made.ledger_seq, kind])["token"].iloc[0] == token
            if not won:
                return False
            for table in ("suspense_candidates", "suspense_scorings"):
                self.db.execute(f"DELETE FROM {table} WHERE ledger_seq <> ?", [made.ledger_seq])
            rows = made.ranked.assign(
                ledger_seq=made.ledger_seq, matcher=kind, candidate_rank=made.ranked["rank"],
                candidate_key=[f"{made.ledger_seq}:{kind}:{r}:{k}" for r, k in
                               zip(made.ranked["receipt_id"], made.ranked["rank"], strict=True)],
                reasons=[json.dumps(list(r)) for r in made.ranked["reasons"]])
            self.db.append("suspense_candidates", rows, list(TABLES["suspense_candidates"]))
        return True


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
    shown for each (rejected matches left out), the matcher kind that scored them and how many cleared receipts it
    learnt from (None and 0: too little history; then every receipt is queued without candidates and `why` says
    so)."""

    ledger_seq: int
    receipts: pd.DataFrame
    candidates: pd.DataFrame
    matcher: str | None
    trained_on: int = 0
    why: str | None = None

    def held(self, queue_at: float) -> pd.DataFrame:
        return matching.held(self.receipts, queue_at)


@dataclass(frozen=True)
class Scoring:
    """A delivery's open receipts scored once: every candidate ranked, with probability and reasons."""

    ledger_seq: int
    kind: str  #: the matcher asked for (`ServingSettings.suspense_matcher`)
    trained_on: int  #: cleared receipts it learnt from (0: too little history, and `why` says so)
    why: str | None
    ranked: pd.DataFrame  #: receipt_id, tenancy_id, rank, probability, reasons (a list of strings)

    @property
    def matcher(self) -> str | None:
        return None if self.why else self.kind

    def queue(self, receipts: pd.DataFrame, propose_at: float, rejected: pd.DataFrame, top: int) -> SuspenseQueue:
        """The queue of the open `receipts`: the rejected matches left out and the rest ranked again."""
        ranked = self.ranked
        if len(rejected) and len(ranked):
            gone = pd.MultiIndex.from_frame(rejected[["receipt_id", "tenancy_id"]].astype(str))
            ranked = ranked[~pd.MultiIndex.from_frame(ranked[["receipt_id", "tenancy_id"]]).isin(gone)]
            ranked = ranked.assign(rank=ranked.groupby("receipt_id").cumcount() + 1)
        ranked = ranked[ranked["receipt_id"].isin(set(receipts["receipt_id"]))]
        shown = ranked[ranked["rank"] <= top].reset_index(drop=True)
        return SuspenseQueue(self.ledger_seq, matching.decide(receipts, ranked, propose_at),
                             shown[["receipt_id", "rank", "tenancy_id", "probability", "reasons"]], self.matcher,
                             self.trained_on, self.why)


#: Candidates shown for each receipt.
SHOWN = 5
_CACHE: dict[tuple[str, int, str], Scoring] = {}
_LOCK = threading.Lock()


def suspense_queue(settings: ServingSettings, ledger: Ledger, rejected: pd.DataFrame | None = None) -> SuspenseQueue:
    """The suspense queue of the ledger as it is: its delivery's scoring (kept in this process and in the serving
    database until the next delivery), without the `rejected` matches, decided at the service's threshold."""
    seq = ledger.last_delivery_seq()
    key = (ledger.url, seq, settings.suspense_matcher)
    with _LOCK:
        found = _CACHE.get(key)
        if found is None:
            found = _scoring(settings, ledger, seq)
            _CACHE.clear()
            _CACHE[key] = found
    gone = rejected if rejected is not None else pd.DataFrame(columns=["receipt_id", "tenancy_id"])
    receipts = _read(ledger, "suspense_register", SUSPENSE_COLUMNS)
    receipts = receipts[receipts["cleared_tenancy_id"].isna()].drop(columns=["cleared_tenancy_id", "cleared_date"])
    return found.queue(receipts.assign(received_date=pd.to_datetime(receipts["received_date"])),
                       settings.suspense_propose_at, gone, SHOWN)


def _scoring(settings: ServingSettings, ledger: Ledger, seq: int) -> Scoring:
    """The delivery's scoring as kept in the serving database, or made now and kept (by the first process to
    finish it: one that finds another's kept meanwhile keeps its own to itself)."""
    kind = settings.suspense_matcher
    with open_decisions(settings) as store:
        kept = store.scoring(seq, kind)
    if kept is not None:
        return kept
    started = time.perf_counter()
    made = _score(ledger, seq, kind)
    with open_decisions(settings) as store:
        store.keep(made, time.perf_counter() - started)
    return made


def _score(ledger: Ledger, seq: int, kind: str) -> Scoring:
    books = read_books(ledger)
    try:
        matcher = matching.fit_matcher(matching.labelled_pairs(books), kind, len(books.cleared))
    except matching.NotEnoughHistory as exc:
        return Scoring(seq, kind, 0, str(exc), pd.DataFrame(columns=[*CANDIDATE_COLUMNS, "reasons"]))
    _, every = matching.queue(books, matcher, 1.0, top=np.iinfo(np.int32).max)
    return Scoring(seq, kind, matcher.receipts, None, every[[*CANDIDATE_COLUMNS, "reasons"]])


CANDIDATE_COLUMNS = ["receipt_id", "tenancy_id", "rank", "probability"]


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
