"""The audit trail: every decision about a case or a model, appended to a hash-chained log that cannot be edited
without it showing.

Each entry holds its position (`seq`, from 1 with no gaps), when, who (a staff name and role, never a tenant's
name), what (`action`, one of `ACTIONS`), which tenancy (an id) and a detail object of ids, figures and reasons,
plus `prev_hash` (the entry before's hash) and `hash` = SHA-256 of `prev_hash` and the entry's canonical JSON. The
tenancy enters the hash only as its `subject`, a keyed pseudonym (`casework.subjects`): erasure may overwrite the id
beside it with that pseudonym, the one change the table allows, and the chain still holds (entries written before
subjects existed hash the id itself, and keep it; docs/privacy.md). So an
entry edited, deleted, inserted or moved breaks the chain at or after it, and `verify` names the first entry that
does not hold. The chain cannot tell a forged entry appended by someone who recomputes the hashes from a real
one, nor a cut-off tail: the head (`head()`, printed by `arrears audit head`) kept elsewhere is the anchor for that
(`verify(head=...)`).

The log's table refuses UPDATE and DELETE by trigger, in SQLite (the embedded default) and Postgres (where TRUNCATE
is refused too): a role that can drop the trigger can still tamper, and the chain shows it. Details are checked for
personal data on the way in: no key may name a personal or protected-characteristic column.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from casework.subjects import pseudonym
from features.db import Database
from features.feeds.contract import MONITORING_ONLY_COLUMNS, PERSONAL_COLUMNS

#: Every kind of decision the trail records.
ACTIONS = ("case_assigned", "case_reassigned", "action_recorded", "draft_generated", "draft_edited", "draft_approved",
           "draft_rejected", "draft_released", "draft_suppressed", "case_returned", "model_promoted",
           "promotion_refused", "policy_changed", "delivery_receipt", "experiment_assigned",
           # who may use the service: `arrears users add/rotate/revoke` (serving.access.principals), by whom
           "principal_added", "token_rotated", "principal_revoked",
           # privacy rights (serving.privacy): an erasure, a restriction made or lifted, a subject access export, a
           # retention run; each with counts per store and table, never the id erased
           "tenancy_erased", "processing_restricted", "restriction_lifted", "subject_access_export",
           "retention_applied",
           # cash application (serving.income): a receipt in suspense allocated to a tenancy, or a match rejected
           "suspense_allocated", "suspense_rejected")
GENESIS = "0" * 64
TABLE = "audit_log"
COLUMNS = {"seq": "BIGINT", "at": "TEXT", "actor": "TEXT", "role": "TEXT", "action": "TEXT", "tenancy_id": "TEXT",
           "detail": "TEXT", "prev_hash": "TEXT", "hash": "TEXT", "subject": "TEXT"}
#: Keys a detail may never hold: tenants' personal data and protected characteristics.
FORBIDDEN_KEYS = {*PERSONAL_COLUMNS, *MONITORING_ONLY_COLUMNS, "name", "tenant", "contact", "text", "body"}
#: The columns an erasure's update must leave as they are (it may only set `tenancy_id` to the entry's subject).
_KEPT = ("seq", "at", "actor", "role", "action", "detail", "prev_hash", "hash", "subject")
_SQLITE_GUARDS = (
    f"DROP TRIGGER IF EXISTS {TABLE}_no_update",  # made again: before subjects, it refused every UPDATE
    f"CREATE TRIGGER IF NOT EXISTS {TABLE}_no_delete BEFORE DELETE ON {TABLE} "
    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: DELETE refused'); END",
    f"CREATE TRIGGER {TABLE}_no_update BEFORE UPDATE ON {TABLE} WHEN NOT ("
    "OLD.subject IS NOT NULL AND NEW.tenancy_id IS OLD.subject AND "
    + " AND ".join(f"NEW.{c} IS OLD.{c}" for c in _KEPT)
    + ") BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: UPDATE refused'); END",
)
_POSTGRES_GUARDS = (
    f"CREATE OR REPLACE FUNCTION {TABLE}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "IF TG_OP = 'UPDATE' AND OLD.subject IS NOT NULL AND NEW.tenancy_id IS NOT DISTINCT FROM OLD.subject AND "
    f"({', '.join(f'NEW.{c}' for c in _KEPT)}) IS NOT DISTINCT FROM ({', '.join(f'OLD.{c}' for c in _KEPT)}) "
    "THEN RETURN NEW; END IF; "
    f"RAISE EXCEPTION 'the audit log is append-only: % refused', TG_OP; END $$",
    f"CREATE OR REPLACE TRIGGER {TABLE}_no_change BEFORE UPDATE OR DELETE ON {TABLE} FOR EACH ROW "
    f"EXECUTE FUNCTION {TABLE}_append_only()",
    f"CREATE OR REPLACE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE} FOR EACH STATEMENT "
    f"EXECUTE FUNCTION {TABLE}_append_only()",
)


class PersonalData(ValueError):
    """A detail named personal data; the message says which key."""


def canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def entry_hash(prev_hash: str, entry: dict) -> str:
    """The hash an entry must carry: SHA-256 over the previous hash and the entry's fields (detail as its JSON);
    the tenancy as its subject (pseudonym) where the entry has one, else (entries before subjects) as its id."""
    subject = entry.get("subject")
    if isinstance(subject, str):
        fields = {k: entry[k] for k in ("seq", "at", "actor", "role", "action", "detail")} | {"subject": subject}
    else:
        fields = {k: entry[k] for k in ("seq", "at", "actor", "role", "action", "tenancy_id", "detail")}
    return hashlib.sha256(f"{prev_hash}\n{canonical(fields)}".encode()).hexdigest()


def _check_detail(detail, path: str = "detail") -> None:
    if isinstance(detail, dict):
        for key, value in detail.items():
            if str(key).lower() in FORBIDDEN_KEYS:
                raise PersonalData(f"{path}.{key}: the audit trail holds ids, figures and reasons, never a "
                                   "tenant's personal data or protected characteristics (keep text in the case store "
                                   "and record its id or digest)")
            _check_detail(value, f"{path}.{key}")
    elif isinstance(detail, list):
        for i, value in enumerate(detail):
            _check_detail(value, f"{path}[{i}]")
    elif isinstance(detail, str) and len(detail) > 2000:
        raise ValueError(f"{path}: over 2,000 characters; record an id or digest instead")


@dataclass(frozen=True)
class Verdict:
    """What `verify` found: how many entries it checked, and the first that does not hold (None: all hold)."""

    checked: int
    first_bad: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.first_bad is None


class AuditLog:
    """The audit trail in a case store database. Use `casework.store.open_casework(settings)`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def ensure_schema(self) -> None:
        """The table and its append-only triggers (made once; a second process finds them there)."""
        self.db.ensure_tables({TABLE: COLUMNS}, {TABLE: ("seq",)})
        if self.db.backend != "postgres":
            with self.db.transaction():
                for statement in _SQLITE_GUARDS:
                    self.db.execute(statement)
            return
        found = self.db.query("SELECT COUNT(*) AS n FROM pg_trigger WHERE tgrelid = to_regclass(?) AND tgname LIKE ?",
                              [TABLE, f"{TABLE}_no_%"])
        current = self.db.query(
            "SELECT COUNT(*) AS n FROM pg_proc p JOIN pg_namespace s ON s.oid = p.pronamespace WHERE p.proname = ? "
            "AND s.nspname = current_schema() AND p.prosrc LIKE ?", [f"{TABLE}_append_only", "%subject%"])
        if int(found["n"].iloc[0]) < 2 or not int(current["n"].iloc[0]):
            with self.db.transaction():
                for statement in _POSTGRES_GUARDS:
                    self.db.execute(statement)

    def append(self, actor: str, role: str, action: str, tenancy_id: str | None = None,
               detail: dict | None = None, at: datetime | None = None) -> dict:
        """Append one decision and return the entry as stored. Appends are serialised (the next seq and the hash
        it chains to are read inside the writing transaction)."""
        return self.append_many(actor, role, action, [(tenancy_id, detail or {})], at)[0]

    def append_many(self, actor: str, role: str, action: str, items: Sequence[tuple[str | None, dict]],
                    at: datetime | None = None) -> list[dict]:
        """Append several decisions of one kind, in order, in one transaction (a run's thousands of experiment
        assignments): the entries `append` would write one by one."""
        if action not in ACTIONS:
            raise ValueError(f"Unknown audit action {action!r}: one of {', '.join(ACTIONS)}")
        for _, detail in items:
            _check_detail(detail)
        when = (at or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds")
        if not items:
            return []
        with self.db.transaction():
            if self.db.backend == "postgres":
                self.db.execute(f"LOCK TABLE {TABLE} IN SHARE ROW EXCLUSIVE MODE")
            last = self.db.query(f"SELECT seq, hash FROM {TABLE} ORDER BY seq DESC LIMIT 1")
            seq, prev = (int(last["seq"].iloc[0]), str(last["hash"].iloc[0])) if len(last) else (0, GENESIS)
            entries = []
            for tenancy_id, detail in items:
                seq += 1
                entry = {"seq": seq, "at": when, "actor": actor, "role": role, "action": action,
                         "tenancy_id": tenancy_id, "detail": canonical(detail), "prev_hash": prev,
                         "subject": pseudonym(tenancy_id) if tenancy_id else None}
                entry["hash"] = prev = entry_hash(prev, entry)
                entries.append(entry)
            self.db.append(TABLE, pd.DataFrame(entries), list(COLUMNS))
        return entries

    def entries(self, tenancy_id: str | None = None, since_seq: int = 0, limit: int | None = None,
                action: str | None = None) -> pd.DataFrame:
        """Entries in order (of one tenancy, or all; of one action, or all), with `detail` parsed."""
        sql, params = f"SELECT * FROM {TABLE} WHERE seq > ?", [since_seq]
        if tenancy_id is not None:
            sql, params = sql + " AND tenancy_id = ?", [*params, tenancy_id]
        if action is not None:
            sql, params = sql + " AND action = ?", [*params, action]
        frame = self.db.query(sql + " ORDER BY seq" + (f" LIMIT {int(limit)}" if limit else ""), params)
        frame["detail"] = frame["detail"].map(json.loads)
        return frame

    def count(self, action: str) -> int:
        """How many entries of one action the trail holds."""
        return int(self.db.query(f"SELECT COUNT(*) AS n FROM {TABLE} WHERE action = ?", [action])["n"].iloc[0])

    def latest(self, action: str, **match) -> dict | None:
        """The detail of the latest `action` entry whose detail holds every `match` value (None: there is none)."""
        found = self.db.query(f"SELECT detail FROM {TABLE} WHERE action = ? ORDER BY seq DESC", [action])
        for text in found["detail"]:
            detail = json.loads(text)
            if all(detail.get(k) == v for k, v in match.items()):
                return detail
        return None

    def head(self) -> tuple[int, str]:
        """The last entry's seq and hash (0 and the genesis hash for an empty log): an anchor to keep elsewhere."""
        last = self.db.query(f"SELECT seq, hash FROM {TABLE} ORDER BY seq DESC LIMIT 1")
        return (int(last["seq"].iloc[0]), str(last["hash"].iloc[0])) if len(last) else (0, GENESIS)

    def verify(self, head: tuple[int, str] | None = None, batch: int = 50_000) -> Verdict:
        """Walk the chain from the first entry: each must sit at the next seq, chain to the hash before it, and
        carry the hash of its own content. With `head` (an anchor kept elsewhere), the log must still hold that
        entry with that hash. Reads `batch` entries at a time."""
        prev, expected, checked = GENESIS, 1, 0
        while True:
            rows = self.db.query(f"SELECT * FROM {TABLE} WHERE seq >= ? ORDER BY seq LIMIT {int(batch)}", [expected])
            for row in rows.to_dict("records"):
                problem = _problem(row, expected, prev)
                if problem:
                    return Verdict(checked, problem[0], problem[1])
                prev, expected, checked = row["hash"], expected + 1, checked + 1
                if head is not None and row["seq"] == head[0] and row["hash"] != head[1]:
                    return Verdict(checked, head[0], f"entry {head[0]} is not the entry anchored (its hash differs "
                                                     "from the head kept): the log was rewritten from there back")
            if len(rows) < batch:
                break
        earlier = self.db.query(f"SELECT COUNT(*) AS n FROM {TABLE} WHERE seq < 1")["n"].iloc[0]
        if earlier:
            return Verdict(checked, 0, "entries with a seq below 1 were added before the first")
        if head is not None and head[0] > checked:
            return Verdict(checked, checked + 1, f"the log ends at entry {checked} but entry {head[0]} was anchored: "
                                                 f"entries {checked + 1} to {head[0]} were cut off")
        return Verdict(checked)


def _problem(row: dict, expected: int, prev: str) -> tuple[int, str] | None:
    """Why `row`, read where entry `expected` should be, breaks the chain (None: it holds)."""
    seq = int(row["seq"])
    if seq != expected:
        return expected, f"entry {expected} is missing: the log goes from entry {expected - 1} to entry {seq}"
    if row["prev_hash"] != prev:
        return seq, (f"entry {seq} does not follow entry {seq - 1}: it chains to another hash (an entry before it "
                     "was inserted, deleted, moved or edited with its hash recomputed)")
    if entry_hash(prev, row) != row["hash"]:
        return seq, f"entry {seq} was changed after it was written: its content does not match its hash"
    subject, tenancy_id = row.get("subject"), row.get("tenancy_id")
    if isinstance(subject, str) and isinstance(tenancy_id, str) and pseudonym(tenancy_id) != subject:
        return seq, f"entry {seq} was moved to another tenancy: its tenancy id is not the one its subject stands for"
    return None
