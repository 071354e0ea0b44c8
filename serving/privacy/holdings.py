"""Everything held about one tenancy, store by store: the one inventory the subject access export reads and
erasure pseudonymises (docs/privacy.md lists the same stores and says why each is held).

Stores: the ledger (`ARREARS_LEDGER_URL`: the feeds' rows and quarantine), the runs database (recorded worklist rows,
payments seen, experiment assignments, the access log), the case store (owners, officers' actions, drafts and
letters, the outbox, delivery receipts, restrictions, dead letters, the audit trail), the offline feature store
(weekly snapshots, and the live file the worklist ranks) and the protected characteristics' own store
(`ARREARS_PROTECTED_URL`, `features.protected`: read here for the export and pseudonymised by erasure, never
otherwise by serving). Erasure replaces the tenancy id by its keyed pseudonym
(`casework.subjects`) in every one of them, texts that quote it included; the audit trail is chained over that
pseudonym already, so it still verifies. Each store is changed in its own transaction: an erasure cut short is
finished by running it again (what was done before no longer matches the old id).
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from casework.store import open_audit, open_casework
from casework.subjects import pseudonym
from features.db import Database
from features.ledger import open_ledger
from features.protected import TABLE as PROTECTED_TABLE
from features.protected import open_protected
from features.store.offline import SNAPSHOT_TABLE, live_path, snapshot_path
from serving.privacy.access_log import open_access_log
from serving.runs.store import open_runs
from serving.settings import ServingSettings


@dataclass(frozen=True)
class Holding:
    """A table holding tenancies' rows: its store, its tenancy column, and text columns that may quote the id
    (with the key their rows are updated by)."""

    store: str
    table: str
    column: str = "tenancy_id"
    texts: tuple[str, ...] = ()
    key: str | None = None

    @property
    def name(self) -> str:
        return f"{self.store}/{self.table}"


HOLDINGS: tuple[Holding, ...] = (
    Holding("ledger", "tenancies"), Holding("ledger", "transactions"), Holding("ledger", "events"),
    Holding("ledger", "outcomes"),
    # Receipts in suspense cleared to the tenancy (their payer text may name a person: erasure blanks it) and the
    # DWP's schedule lines naming it; the income team's decisions on its candidate matches;
    Holding("ledger", "suspense", column="cleared_tenancy_id"),
    Holding("ledger", "dwp_schedules", column="tenancy_reference"),
    Holding("runs", "suspense_decisions"),
    # each delivery's scored candidates (their reasons may quote the id)
    Holding("runs", "suspense_candidates", texts=("reasons",), key="candidate_key"),
    Holding("runs", "worklist_rows"), Holding("runs", "worklist_payments"), Holding("runs", "experiment_assignments"),
    Holding("runs", "access_log"),
    Holding("casework", "case_owners"), Holding("casework", "case_actions"),
    Holding("casework", "drafts", texts=("text", "facts"), key="draft_id"),
    Holding("casework", "outbox", texts=("text",), key="draft_id"),
    Holding("casework", "delivery_receipts"), Holding("casework", "privacy_restrictions"),
    Holding("casework", "audit_log"),
    Holding("protected", PROTECTED_TABLE),
)
#: Held elsewhere, and not by this service's stores: what the export's manifest says of them.
NOT_HERE = {
    "online feature store": "Feast's online store holds the current features of live tenancies only, keyed by id; "
                            "it is rebuilt from the live file (arrears features --full).",
    "report files": "worklist and forecast CSVs under ARREARS_HOME/reports are copies of recorded runs; the "
                    "retention job's schedule ages them.",
}


@contextmanager
def opened(settings: ServingSettings) -> Iterator[dict[str, Database]]:
    """Each store's database, its schema made sure of."""
    with open_ledger(settings.ledger) as ledger, open_runs(settings) as runs, open_casework(settings) as casework, \
            open_access_log(settings), open_protected(settings.protected_database) as protected:
        yield {"ledger": ledger, "runs": runs.db, "casework": casework, "protected": protected.db}


def _has(db: Database, table: str) -> bool:
    return bool(db.columns_of(table))


# -- the subject access export ---------------------------------------------------------------------------------------
def held(settings: ServingSettings, tenancy_id: str) -> dict[str, pd.DataFrame]:
    """Every row held about the tenancy, by `store/table`."""
    found: dict[str, pd.DataFrame] = {}
    with opened(settings) as dbs:
        for holding in HOLDINGS:
            db = dbs[holding.store]
            if _has(db, holding.table):
                found[holding.name] = db.query(f"SELECT * FROM {holding.table} WHERE {holding.column} = ?",
                                               [tenancy_id])
        found["ledger/quarantine"] = dbs["ledger"].query(
            "SELECT q.* FROM quarantine q JOIN (SELECT DISTINCT delivery_seq, feed, file, line FROM quarantine "
            "WHERE value = ?) m ON q.delivery_seq = m.delivery_seq AND q.feed = m.feed AND q.file = m.file AND "
            "q.line = m.line ORDER BY q.delivery_seq, q.line, q.column_name", [tenancy_id])
        if _has(dbs["casework"], "relay_dead_letters"):
            found["casework/relay_dead_letters"] = dbs["casework"].query(
                "SELECT * FROM relay_dead_letters WHERE draft_id IN (SELECT draft_id FROM drafts WHERE "
                "tenancy_id = ?)", [tenancy_id])
    found["features/offline_snapshots"] = _snapshots(settings, tenancy_id)
    found["features/live"] = _parquet_rows(live_path(settings), tenancy_id)
    return found


def _parquet_rows(path: Path, tenancy_id: str) -> pd.DataFrame:
    if not path.exists():
        return pd.DataFrame()
    return pd.read_parquet(path, filters=[("tenancy_id", "==", tenancy_id)])


def _snapshots(settings: ServingSettings, tenancy_id: str) -> pd.DataFrame:
    if settings.feast_profile == "local":
        return _parquet_rows(snapshot_path(settings), tenancy_id)
    with Database(settings.feast_postgres) as db:
        if not _has(db, SNAPSHOT_TABLE):
            return pd.DataFrame()
        return db.query(f"SELECT * FROM {SNAPSHOT_TABLE} WHERE tenancy_id = ? ORDER BY event_timestamp",
                        [tenancy_id])


def archive(settings: ServingSettings, tenancy_id: str, actor: str, role: str) -> tuple[bytes, dict]:
    """The subject access export as one zip (a CSV per store and table, and `manifest.json` saying what each
    holds), and the manifest. Recorded in the audit trail (counts only) and the access log."""
    found = held(settings, tenancy_id)
    made_at = datetime.now(UTC).isoformat(timespec="seconds")
    manifest = {"tenancy_id": tenancy_id, "made_at": made_at, "made_by": actor,
                "files": {f"{name}.csv": {"store": name.split("/")[0], "table": name.split("/")[1],
                                          "rows": len(frame)} for name, frame in found.items()},
                "not_held_here": NOT_HERE, "about": "docs/privacy.md: what each store holds and why"}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("manifest.json", json.dumps(manifest, indent=2))
        for name, frame in found.items():
            out.writestr(f"{name}.csv", frame.to_csv(index=False))
    with open_audit(settings) as log:
        log.append(actor, role, "subject_access_export", tenancy_id,
                   {"rows": {name: len(frame) for name, frame in found.items()}})
    with open_access_log(settings) as access:
        access.record(actor, role, [tenancy_id], "export")
    return buffer.getvalue(), manifest


def read_archive(data: bytes) -> dict[str, pd.DataFrame]:
    """An export's tables by `store/table` (what a test or the data-protection officer reads back)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zipped:
        return {name.removesuffix(".csv"): (pd.read_csv(zipped.open(name), dtype=str, keep_default_na=False)
                                            if zipped.getinfo(name).file_size > 1 else pd.DataFrame())
                for name in zipped.namelist() if name.endswith(".csv")}


# -- erasure ---------------------------------------------------------------------------------------------------------
def _quoting(tenancy_id: str) -> re.Pattern:
    """The id where a text quotes it whole (not inside a longer id)."""
    return re.compile(rf"(?<![A-Za-z0-9_-]){re.escape(tenancy_id)}(?![A-Za-z0-9_-])")


def erase(settings: ServingSettings, tenancy_id: str, actor: str, role: str) -> dict[str, int]:
    """Replace the tenancy's id by its pseudonym everywhere it is stored: rows changed by `store/table`. The audit
    trail's entries keep their place and hash (the chain is over the pseudonym); an entry written before subjects
    existed hashes the id itself and keeps it (counted as `casework/audit_log kept`)."""
    new = pseudonym(tenancy_id)
    counts: dict[str, int] = {}
    with opened(settings) as dbs:
        for store, db in dbs.items():
            with db.transaction():
                for holding in [h for h in HOLDINGS if h.store == store and _has(db, h.table)]:
                    counts[holding.name] = _erase_in(db, holding, tenancy_id, new)
                if store == "ledger":
                    counts["ledger/quarantine"] = _update(db, "UPDATE quarantine SET value = ? WHERE value = ?",
                                                          "SELECT COUNT(*) AS n FROM quarantine WHERE value = ?",
                                                          [new, tenancy_id])
    counts["features/offline_snapshots"] = _erase_snapshots(settings, tenancy_id, new)
    counts["features/live"] = _erase_parquet(live_path(settings), tenancy_id, new)
    with open_audit(settings) as log:
        kept = int(log.db.query("SELECT COUNT(*) AS n FROM audit_log WHERE tenancy_id = ?", [tenancy_id])["n"].iloc[0])
        if kept:
            counts["casework/audit_log kept"] = kept
        log.append(actor, role, "tenancy_erased", new, {"rows": counts})
    return counts


def _count(db: Database, sql: str, params: list) -> int:
    return int(db.query(sql, params)["n"].iloc[0])


def _update(db: Database, update: str, count: str, params: list) -> int:
    n = _count(db, count, params[1:])
    if n:
        db.execute(update, params)
    return n


def _erase_in(db: Database, holding: Holding, old: str, new: str) -> int:
    if holding.table == "audit_log":  # the one change its triggers allow: the id becomes the entry's subject
        return _erase_audit(db, old, new)
    n = _update(db, f"UPDATE {holding.table} SET {holding.column} = ? WHERE {holding.column} = ?",
                f"SELECT COUNT(*) AS n FROM {holding.table} WHERE {holding.column} = ?", [new, old])
    if holding.table == "suspense" and n:  # a payer text is a name: gone with the id, not kept beside a pseudonym
        db.execute("UPDATE suspense SET payer = NULL WHERE cleared_tenancy_id = ?", [new])
    if holding.texts and n:
        quoted = _quoting(old)
        rows = db.query(f"SELECT {holding.key}, {', '.join(holding.texts)} FROM {holding.table} "
                        f"WHERE {holding.column} = ?", [new])
        for row in rows.to_dict("records"):
            values = [quoted.sub(new, v) if isinstance(v, str) else v for v in (row[c] for c in holding.texts)]
            db.execute(f"UPDATE {holding.table} SET {', '.join(f'{c} = ?' for c in holding.texts)} "
                       f"WHERE {holding.key} = ?", [*values, row[holding.key]])
    return n


def _erase_audit(db: Database, old: str, new: str) -> int:
    n = _count(db, "SELECT COUNT(*) AS n FROM audit_log WHERE tenancy_id = ? AND subject = ?", [old, new])
    if n:
        db.execute("UPDATE audit_log SET tenancy_id = subject WHERE tenancy_id = ? AND subject = ?", [old, new])
    return n


def _erase_parquet(path: Path, old: str, new: str) -> int:
    """The file rewritten whole (readers see the old or the new one) with the id replaced, its schema kept."""
    if not path.exists():
        return 0
    table = pq.read_table(path)
    column = table.column("tenancy_id")
    hit = pc.equal(column, old)
    n = int(pc.sum(hit).as_py() or 0)
    if n:
        table = table.set_column(table.schema.get_field_index("tenancy_id"), "tenancy_id",
                                 pc.if_else(hit, pa.scalar(new, column.type), column))
        tmp = path.with_suffix(".parquet.erasing")
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    return n


def _erase_snapshots(settings: ServingSettings, old: str, new: str) -> int:
    if settings.feast_profile == "local":
        return _erase_parquet(snapshot_path(settings), old, new)
    with Database(settings.feast_postgres) as db:
        if not _has(db, SNAPSHOT_TABLE):
            return 0
        return _update(db, f"UPDATE {SNAPSHOT_TABLE} SET tenancy_id = ? WHERE tenancy_id = ?",
                       f"SELECT COUNT(*) AS n FROM {SNAPSHOT_TABLE} WHERE tenancy_id = ?", [new, old])
