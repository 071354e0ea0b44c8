"""Scheduled job runs and alerts, recorded in the project's serving database beside the worklist runs.

Every run of a scheduled job (`arrears schedule`, `arrears schedule run NAME`) is a row here: job, the slot it ran
for, start, end, status (running, succeeded, failed, skipped), its outputs (JSON) and its error. Every threshold a
job's result breaches is an alert row. The service's status endpoint and `arrears monitor status` read them.

Two guarantees are kept by the database, not by one process's memory, so they hold across processes and hosts:

- **each scheduled slot runs once**: a scheduled run is keyed by (job, slot), the cron time it stands for; a
  second scheduler that fires the same slot finds the row taken and does nothing;
- **one run of a job at a time**: a run holds the job's row in `job_locks` while it works. A lock whose process
  has gone (killed half-way, a machine that restarted) is broken by the next run, which records the old run as
  failed with the reason, so a crash never blocks the schedule and never passes for success.

SQLite by default (WAL: the service reads while a job writes), Postgres in the production profile.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass

import pandas as pd

from features.db import Database, open_store
from serving.runs.schemas import Alert, JobRun, MonitoringStatus
from serving.settings import ServingSettings

TABLES: dict[str, dict[str, str]] = {
    "job_runs": {"run_id": "TEXT", "job": "TEXT", "slot": "TEXT", "started_by": "TEXT", "started_at": "TIMESTAMP",
                 "finished_at": "TIMESTAMP", "status": "TEXT", "outputs": "TEXT", "error": "TEXT", "host": "TEXT",
                 "pid": "BIGINT"},
    "job_locks": {"job": "TEXT", "run_id": "TEXT", "host": "TEXT", "pid": "BIGINT", "acquired_at": "TIMESTAMP"},
    "alerts": {"alert_id": "TEXT", "raised_at": "TIMESTAMP", "job": "TEXT", "run_id": "TEXT", "kind": "TEXT",
               "severity": "TEXT", "message": "TEXT", "value": "DOUBLE PRECISION", "threshold": "DOUBLE PRECISION",
               "delivered": "TEXT"},
}
PRIMARY_KEYS = {"job_runs": ("run_id",), "job_locks": ("job",), "alerts": ("alert_id",)}
INDEXES = ("CREATE UNIQUE INDEX IF NOT EXISTS job_runs_slot ON job_runs (job, slot)",
           "CREATE INDEX IF NOT EXISTS alerts_time ON alerts (raised_at)")
#: A lock held by a process on another host is taken as abandoned after this long.
FOREIGN_LOCK_HOURS = 12.0


@dataclass(frozen=True)
class Claim:
    """The outcome of asking to run a job: `run_id` when this process may run it, else why not."""

    run_id: str | None
    reason: str = ""


def _now() -> str:
    """Now, in UTC without a zone, to the second, as ISO text: stored as given by SQLite and cast by Postgres. (Not
    a datetime: a library loaded in the same process may register its own SQLite adapter for datetimes, and
    Feast's stores them as epoch integers.)"""
    return pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d %H:%M:%S")


def _alive(host: str, pid: int, acquired_at: pd.Timestamp) -> bool:
    """Is the process holding a lock still there? Known for this host; guessed by age for another."""
    if host != socket.gethostname():
        return (pd.Timestamp(_now()) - pd.Timestamp(acquired_at)) < pd.Timedelta(hours=FOREIGN_LOCK_HOURS)
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _number(value: float | None) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _unique_violation(exc: Exception) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return "unique" in text or "duplicate key" in text or "integrity" in text


class JobLog:
    """Job runs, locks and alerts. Use `open_job_log(settings)`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def ensure_schema(self) -> None:
        self.db.ensure_tables(TABLES, PRIMARY_KEYS, INDEXES)

    # -- claiming and finishing a run ---------------------------------------------------------------------------
    def claim(self, job: str, slot: str | None, started_by: str) -> Claim:
        """Record a run of `job` as running and take the job's lock, or say why not: the slot already ran (or is
        running) elsewhere, or another run of the job holds the lock. A lock whose process has gone is broken
        first, and the run it belonged to is recorded as failed."""
        run_id = uuid.uuid4().hex[:16]
        host, pid, now = socket.gethostname(), os.getpid(), _now()
        self.break_abandoned(job)
        try:
            self.db.execute("INSERT INTO job_locks (job, run_id, host, pid, acquired_at) VALUES (?, ?, ?, ?, ?)",
                            [job, run_id, host, pid, now])
        except Exception as exc:  # noqa: BLE001 - the driver's own IntegrityError type differs per backend
            if not _unique_violation(exc):
                raise
            holder = self.db.query("SELECT run_id FROM job_locks WHERE job = ?", [job])
            held_by = holder["run_id"].iloc[0] if len(holder) else "another run"
            return Claim(None, f"{job} is already running (run {held_by})")
        try:
            self.db.execute(
                "INSERT INTO job_runs (run_id, job, slot, started_by, started_at, status, host, pid) "
                "VALUES (?, ?, ?, ?, ?, 'running', ?, ?)",
                [run_id, job, slot if slot is not None else f"manual:{run_id}", started_by, now, host, pid])
        except Exception as exc:  # noqa: BLE001
            self.db.execute("DELETE FROM job_locks WHERE job = ? AND run_id = ?", [job, run_id])
            if not _unique_violation(exc):
                raise
            return Claim(None, f"{job} already ran for {slot}")
        return Claim(run_id)

    def finish(self, job: str, run_id: str, status: str, outputs: dict | None = None, error: str | None = None) -> None:
        """Close a run with its status and outputs, and release the job's lock."""
        self.db.execute("UPDATE job_runs SET finished_at = ?, status = ?, outputs = ?, error = ? WHERE run_id = ?",
                        [_now(), status, json.dumps(outputs or {}, default=str), error, run_id])
        self.db.execute("DELETE FROM job_locks WHERE job = ? AND run_id = ?", [job, run_id])

    def break_abandoned(self, job: str | None = None) -> list[str]:
        """Record as failed every running run whose process has gone, and free its lock; returns their run ids."""
        sql, params = "SELECT * FROM job_runs WHERE status = 'running'", []
        if job is not None:
            sql, params = sql + " AND job = ?", [job]
        broken = []
        for run in self.db.query(sql, params).to_dict("records"):
            if _alive(str(run["host"]), int(run["pid"]), run["started_at"]):
                continue
            self.db.execute(
                "UPDATE job_runs SET finished_at = ?, status = 'failed', error = ? WHERE run_id = ? "
                "AND status = 'running'",
                [_now(), f"the process running it (pid {run['pid']} on {run['host']}) ended without finishing: "
                 "killed, or the machine stopped", run["run_id"]])
            self.db.execute("DELETE FROM job_locks WHERE job = ? AND run_id = ?", [run["job"], run["run_id"]])
            broken.append(str(run["run_id"]))
        return broken

    # -- alerts -------------------------------------------------------------------------------------------------
    def raise_alert(self, job: str, run_id: str | None, kind: str, message: str, value: float | None = None,
                    threshold: float | None = None, severity: str = "warning",
                    alert_id: str | None = None) -> dict | None:
        """Record an alert; with an `alert_id` chosen by the caller, one already recorded under it is not
        repeated (None is returned)."""
        alert = {"alert_id": alert_id or uuid.uuid4().hex[:16], "raised_at": _now(), "job": job, "run_id": run_id,
                 "kind": kind, "severity": severity, "message": message, "value": _number(value),
                 "threshold": _number(threshold), "delivered": None}
        columns = list(TABLES["alerts"])
        try:
            self.db.insert("alerts", {c: alert[c] for c in columns})
        except Exception as exc:  # noqa: BLE001
            if alert_id is None or not _unique_violation(exc):
                raise
            return None
        return alert

    def mark_delivered(self, alert_id: str, how: str) -> None:
        self.db.execute("UPDATE alerts SET delivered = ? WHERE alert_id = ?", [how, alert_id])

    # -- reading ------------------------------------------------------------------------------------------------
    def runs(self, job: str | None = None, limit: int | None = None) -> pd.DataFrame:
        sql, params = "SELECT * FROM job_runs", []
        if job is not None:
            sql, params = sql + " WHERE job = ?", [job]
        sql += " ORDER BY started_at DESC, run_id" + (f" LIMIT {int(limit)}" if limit else "")
        frame = self.db.query(sql, params)
        frame["outputs"] = frame["outputs"].map(lambda t: json.loads(t) if isinstance(t, str) else {})
        return frame

    def alerts(self, since: pd.Timestamp | None = None) -> pd.DataFrame:
        sql, params = "SELECT * FROM alerts", []
        if since is not None:
            sql, params = sql + " WHERE raised_at >= ?", [pd.Timestamp(since).strftime("%Y-%m-%d %H:%M:%S")]
        return self.db.query(sql + " ORDER BY raised_at DESC, alert_id", params)


def open_job_log(settings: ServingSettings) -> AbstractContextManager[JobLog]:
    return open_store(settings.runs_database, JobLog)


def _text(value) -> str | None:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def monitoring_status(settings: ServingSettings, days: int = 30) -> MonitoringStatus:
    """Each job's latest run and the alerts of the last `days` days (the service's `/monitoring_status`)."""
    since = pd.Timestamp(_now()) - pd.Timedelta(days=max(0, int(days)))
    with open_job_log(settings) as log:
        log.break_abandoned()
        runs, alerts = log.runs(), log.alerts(since=since)
    latest = runs.drop_duplicates("job") if len(runs) else runs
    return MonitoringStatus(
        latest_runs=[JobRun(run_id=r["run_id"], job=r["job"], status=r["status"], started_by=r["started_by"],
                            started_at=_text(r["started_at"]), finished_at=_text(r["finished_at"]),
                            outputs=r["outputs"], error=(_text(r["error"]) or "").split("\n")[0] or None)
                     for r in latest.to_dict("records")],
        alerts=[Alert(raised_at=_text(a["raised_at"]), job=a["job"], kind=a["kind"], severity=a["severity"],
                      message=a["message"], value=a["value"] if pd.notna(a["value"]) else None,
                      threshold=a["threshold"] if pd.notna(a["threshold"]) else None)
                for a in alerts.to_dict("records")])
