"""Delivery receipts: what the landlord's sending system reports of a released message (`sent`, `failed`, `bounced`,
`returned`), kept once per message and status (a repeat is answered with the receipt already kept, and changes
nothing), each in the audit trail.

A receipt is a fact. A message that failed, bounced or came back was no contact: the case actions its release
recorded (the contact attempt, and the rent statement or warning it carried: `casework.cases.release_contacts`) are
marked `undelivered` and no longer count, and a `delivery_failed` action puts the case in `review`
(rule `contact_details_unverified`, docs/policy.md) until an officer records `contact_details_checked`: nobody writes
again to an address, number or email that did not work. The audit trail records the case's return with the reason.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd

from casework.audit import AuditLog
from casework.cases import TABLES as CASE_TABLES
from casework.cases import release_contacts
from features.db import Database, and_in

STATUSES = ("sent", "failed", "bounced", "returned")
#: Statuses that say the message never reached the tenant.
UNDELIVERED = ("failed", "bounced", "returned")
#: The case actions a release records (`casework.cases.release_contacts`), undone by an undelivered receipt.
RELEASED_KINDS = ("contact_attempted", "rent_statement_sent", "warning_sent")
TABLES = {"delivery_receipts": {"message_id": "TEXT", "status": "TEXT", "tenancy_id": "TEXT", "channel": "TEXT",
                                "reported_at": "TEXT", "received_at": "TEXT", "reason": "TEXT", "reported_by": "TEXT"}}
PRIMARY_KEYS = {"delivery_receipts": ("message_id", "status")}
INDEXES = ("CREATE INDEX IF NOT EXISTS delivery_receipts_tenancy ON delivery_receipts (tenancy_id)",)


def ensure_schema(db: Database) -> None:
    db.ensure_tables(TABLES, PRIMARY_KEYS, INDEXES)


def record(db: Database, log: AuditLog, message_id: str, status: str, actor: str, role: str,
           reported_at: datetime | None = None, reason: str | None = None, day: date | None = None) -> dict:
    """Keep a receipt for a released message, once: the stored receipt (`repeat` True when it was kept before).
    LookupError for a message the outbox does not hold."""
    if status not in STATUSES:
        raise ValueError(f"A receipt's status is one of {', '.join(STATUSES)}")
    with db.transaction():
        message = db.query("SELECT draft_id, tenancy_id, channel FROM outbox WHERE draft_id = ?", [message_id])
        if message.empty:
            raise LookupError("No such message in the outbox")
        kept = db.query("SELECT * FROM delivery_receipts WHERE message_id = ? AND status = ?", [message_id, status])
        if len(kept):
            return kept.iloc[0].to_dict() | {"repeat": True}
        found = message.iloc[0].to_dict()
        now = datetime.now(UTC).isoformat(timespec="seconds")
        row = {"message_id": message_id, "status": status, "tenancy_id": found["tenancy_id"],
               "channel": found["channel"], "reported_at": (reported_at or datetime.now(UTC)).isoformat(),
               "received_at": now, "reason": reason, "reported_by": actor}
        db.append("delivery_receipts", pd.DataFrame([row]), list(TABLES["delivery_receipts"]))
        if status in UNDELIVERED:
            _undelivered(db, found, day or date.today(), actor, status)
    log.append(actor, role, "delivery_receipt", found["tenancy_id"], {
        "message_id": message_id, "status": status, "channel": found["channel"], **({"reason": reason} if reason
                                                                                      else {})})
    if status in UNDELIVERED:
        log.append(actor, role, "case_returned", found["tenancy_id"], {
            "reason": f"message_{status}", "message_id": message_id, "channel": found["channel"]})
    return row | {"repeat": False}


def _undelivered(db: Database, message: dict, day: date, actor: str, status: str) -> None:
    """The release's contact and the steps it carried no longer count; the case waits for its contact details to
    be checked."""
    db.execute(*and_in("UPDATE case_actions SET settled_on = ?, settled_as = 'undelivered' WHERE draft_id = ? "
                       "AND settled_as IS NULL", [str(day), message["draft_id"]], "kind", RELEASED_KINDS))
    failed = release_contacts(message, day, actor, ())
    failed = failed.assign(kind="delivery_failed", reason=status)
    db.append("case_actions", failed, list(CASE_TABLES["case_actions"]))


def receipts(db: Database, tenancy_ids: list[str]) -> pd.DataFrame:
    """The receipts of the given tenancies' messages, oldest first."""
    sql, params = and_in("SELECT * FROM delivery_receipts WHERE 1 = 1", [], "tenancy_id", tenancy_ids)
    return db.query(sql + " ORDER BY received_at, status", params)
