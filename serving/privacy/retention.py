"""The retention schedule applied: what `retention.yaml` says is past its time is deleted or pseudonymised, and what
was done (rows per store and table) is returned and recorded in the audit trail (the scheduled `retention` job,
`arrears privacy retention [--dry-run]`).

A limit means "older than": a record exactly at its limit stays, one a moment older goes. Times are compared in
Python after reading each table's keys and stamps, so the rule is the same on SQLite, DuckDB and Postgres whatever
type a store keeps its stamps in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import yaml

from casework.store import open_audit, open_casework
from casework.subjects import is_pseudonym
from features.db import Database, and_in
from features.ledger import open_ledger
from serving.privacy.access_log import TABLE as ACCESS_TABLE
from serving.privacy.access_log import open_access_log
from serving.privacy.holdings import erase
from serving.runs.store import open_runs
from serving.settings import ServingSettings

SCHEDULE_FILE = Path(__file__).with_name("retention.yaml")
#: Draft statuses that never reached a tenant.
UNSENT = ("rejected", "suppressed", "edited")


class RetentionError(ValueError):
    """The schedule file is not what it should be; the message says what to change."""


@dataclass(frozen=True)
class Retention:
    version: str
    ended_after_years: int
    runs_after_days: int
    keep_latest_runs: int
    drafts_after_days: int
    access_after_days: int
    logs_after_days: int
    payer_after_days: int = 730


def load_retention(path: Path | None = None) -> Retention:
    path = path or SCHEDULE_FILE
    raw = yaml.safe_load(path.read_text()) or {}
    try:
        return Retention(
            version=str(raw["version"]), ended_after_years=int(raw["ended_tenancies"]["after_years"]),
            runs_after_days=int(raw["worklist_runs"]["after_days"]),
            keep_latest_runs=int(raw["worklist_runs"].get("keep_latest", 2)),
            drafts_after_days=int(raw["drafts"]["after_days"]), access_after_days=int(raw["access_log"]["after_days"]),
            logs_after_days=int(raw["logs"]["after_days"]), payer_after_days=int(raw["suspense_payer"]["after_days"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise RetentionError(f"{path}: {exc!r} is missing or not a number (serving/privacy/retention.yaml shows "
                             "every entry)") from exc


def _older(stamps: pd.Series, cutoff: datetime) -> pd.Series:
    """Which stamps are older than the cutoff (naive stamps are UTC, as every store writes them)."""
    parsed = pd.to_datetime(stamps.astype(str), utc=True, format="ISO8601")
    return parsed < pd.Timestamp(cutoff)


def _delete(db: Database, table: str, column: str, keys: list, dry_run: bool) -> int:
    if keys and not dry_run:
        for start in range(0, len(keys), 500):
            db.execute(*and_in(f"DELETE FROM {table} WHERE 1 = 1", [], column, keys[start:start + 500]))
    return len(keys)


def _old_runs(settings: ServingSettings, schedule: Retention, now: datetime, dry_run: bool) -> dict[str, int]:
    """Recorded runs past their time deleted (but the latest `keep_latest_runs`), with their rows and payments."""
    counts = {}
    with open_runs(settings) as store, store.db.transaction():
        runs = store.db.query("SELECT run_id, run_seq, recorded_at FROM worklist_runs ORDER BY run_seq DESC")
        old = runs.iloc[schedule.keep_latest_runs:]
        old = old.loc[_older(old["recorded_at"], now - timedelta(days=schedule.runs_after_days)), "run_id"]
        old = old.astype(str).tolist()
        for table in ("worklist_rows", "worklist_payments"):
            sql, params = and_in(f"SELECT COUNT(*) AS n FROM {table} WHERE 1 = 1", [], "run_id", old)
            counts[f"runs/{table}"] = int(store.db.query(sql, params)["n"].iloc[0])
            _delete(store.db, table, "run_id", old, dry_run)
        counts["runs/worklist_runs"] = _delete(store.db, "worklist_runs", "run_id", old, dry_run)
    return counts


def _old_payers(settings: ServingSettings, received_before, dry_run: bool) -> int:
    """Payer text blanked on receipts in suspense received before the day (every version of each: an open
    receipt names no tenancy, so erasure cannot reach its payer's name). Receipts counted, not versions."""
    with open_ledger(settings.ledger) as ledger:
        if not ledger.columns_of("suspense"):
            return 0
        where = "FROM suspense WHERE payer IS NOT NULL AND received_date < ?"
        n = int(ledger.query(f"SELECT COUNT(DISTINCT receipt_id) AS n {where}", [received_before])["n"].iloc[0])
        if n and not dry_run:
            ledger.execute("UPDATE suspense SET payer = NULL WHERE payer IS NOT NULL AND received_date < ?",
                           [received_before])
    return n


def apply_retention(settings: ServingSettings, schedule: Retention | None = None, dry_run: bool = False,
                    now: datetime | None = None, actor: str = "scheduler", role: str = "system") -> dict:
    """Apply the schedule; what it did (or, dry, would do): rows per `store/table`, ended tenancies erased."""
    schedule = schedule or load_retention()
    now = (now or datetime.now(UTC)).astimezone(UTC)
    today = settings.today or now.date()
    counts: dict[str, int] = {}
    ended_before = (pd.Timestamp(today) - pd.DateOffset(years=schedule.ended_after_years)).date()
    with open_ledger(settings.ledger) as ledger:
        register = ledger.query("SELECT tenancy_id, end_date FROM tenancy_register WHERE end_date IS NOT NULL")
    ended = register[pd.to_datetime(register["end_date"]).dt.date < ended_before]
    ended = sorted(t for t in ended["tenancy_id"].astype(str) if not is_pseudonym(t))
    counts["tenancies erased"] = len(ended)
    for tenancy_id in [] if dry_run else ended:
        for name, n in erase(settings, tenancy_id, actor, role).items():
            counts[name] = counts.get(name, 0) + n

    counts |= _old_runs(settings, schedule, now, dry_run)
    counts["ledger/suspense payer"] = _old_payers(settings, today - timedelta(days=schedule.payer_after_days),
                                                  dry_run)

    with open_casework(settings) as db, db.transaction():
        drafts = db.query(*and_in("SELECT draft_id, created_at FROM drafts WHERE 1 = 1", [], "status", UNSENT))
        gone = drafts.loc[_older(drafts["created_at"], now - timedelta(days=schedule.drafts_after_days)),
                          "draft_id"].astype(str).tolist()
        counts["casework/drafts"] = _delete(db, "drafts", "draft_id", gone, dry_run)

    with open_access_log(settings) as log, log.db.transaction():
        reads = log.db.query(f"SELECT access_id, at FROM {ACCESS_TABLE}")
        gone = reads.loc[_older(reads["at"], now - timedelta(days=schedule.access_after_days)),
                         "access_id"].astype(str).tolist()
        counts[f"runs/{ACCESS_TABLE}"] = _delete(log.db, ACCESS_TABLE, "access_id", gone, dry_run)

    logs_cutoff = (now - timedelta(days=schedule.logs_after_days)).timestamp()
    old_logs = [p for p in settings.logs_dir.rglob("*") if p.is_file() and p.stat().st_mtime < logs_cutoff] \
        if settings.logs_dir.exists() else []
    for path in [] if dry_run else old_logs:
        path.unlink(missing_ok=True)
    counts["files/logs"] = len(old_logs)

    outcome = {"schedule_version": schedule.version, "dry_run": dry_run, "at": now.isoformat(timespec="seconds"),
               "ended_before": str(ended_before), "counts": counts}
    if not dry_run:
        with open_audit(settings) as audit:
            audit.append(actor, role, "retention_applied", detail={
                "schedule_version": schedule.version, "counts": counts})
    return outcome
