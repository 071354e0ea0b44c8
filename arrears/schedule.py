"""The schedule of jobs: one config file of cron times (`schedule.yaml`), one long-running scheduler, one way to
run a job once. The only place that knows cron times.

- `arrears schedule` runs APScheduler with its job store in the project database (the serving database: SQLite by
  default, Postgres in production). Jobs are coalesced and never dropped for lateness, so a run missed while the
  scheduler was down is made once when it comes back, not lost and not repeated for every missed time.
- `arrears schedule run NAME` runs one job now, for cron or a Kubernetes CronJob instead of the scheduler.
- Every run is recorded (`serving.runs.jobs`): a scheduled run is keyed by its slot (the cron time it stands for),
  so two schedulers started at once run it once; a job runs one at a time across processes; a run killed half-way
  is recorded as failed by the next run, and the schedule goes on.
- What a job finds beyond the thresholds in the file's `alerts:` section becomes an alert (recorded, shown by
  `arrears monitor status`, POSTed to the webhook if one is set); so does a failed job and a job that did not run.
"""

from __future__ import annotations

import hashlib
import importlib
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import yaml
from apscheduler.triggers.cron import CronTrigger
from pydantic import Field

from features.settings import load_settings
from monitoring.findings import JobResult, Thresholds
from serving.runs.jobs import JobLog, open_job_log
from serving.settings import ServingSettings

# The CLI imports this module for every command (`arrears monitor status`, `arrears schedule`), so what only the
# long-running scheduler and alert delivery need is imported where they use it: APScheduler's scheduler with its
# SQLAlchemy job store (0.9 s, 150 modules) and httpx (0.3 s, 140 modules).

SCHEDULE_FILE = Path(__file__).resolve().with_name("schedule.yaml")
#: What each named job runs (a job in the file may name its own `call: module:function` instead).
JOB_CALLS = {name: f"arrears.jobs:{name}"
             for name in ("refresh", "drift", "bias", "performance", "experiments", "retrain", "retention")}


class ScheduleSettings(ServingSettings):
    schedule_file: Path | None = Field(default=None, description="The schedule of jobs and alert thresholds (YAML). "
                                       "Default: arrears/schedule.yaml shipped with the code.")
    alert_webhook: str | None = Field(default=None, description="URL each alert is POSTed to as JSON (overrides "
                                      "the schedule file's alerts.webhook).")


def schedule_settings() -> tuple[ScheduleSettings, Schedule]:
    """This process's settings and schedule, read from the environment (ARREARS_SCHEDULE_FILE, …) on each call."""
    settings = load_settings(ScheduleSettings)
    return settings, load_schedule(settings.schedule_file, settings.alert_webhook)


class ScheduleError(ValueError):
    """The schedule file cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class JobSpec:
    name: str
    cron: str
    description: str
    call: str


@dataclass(frozen=True)
class Schedule:
    timezone: str
    jobs: dict[str, JobSpec]
    thresholds: Thresholds
    overdue_hours: float = 6.0
    webhook: str | None = None
    path: Path | None = None

    def trigger(self, name: str):
        return CronTrigger.from_crontab(self.jobs[name].cron, timezone=self.timezone)

    def latest_slot(self, name: str, now: datetime) -> datetime | None:
        """The latest time on or before `now` the job was due (None if never within the last 40 days)."""
        trigger, start = self.trigger(name), now - timedelta(days=40)
        latest, due = None, trigger.get_next_fire_time(None, start)
        while due is not None and due <= now:
            latest, due = due, trigger.get_next_fire_time(due, due + timedelta(seconds=1))
        return latest

    def next_due(self, name: str, now: datetime) -> datetime | None:
        return self.trigger(name).get_next_fire_time(None, now)


def load_schedule(path: Path | None = None, webhook: str | None = None) -> Schedule:
    """Read and check a schedule file (default: the one shipped beside this module)."""
    path = Path(path) if path else SCHEDULE_FILE
    if not path.exists():
        raise ScheduleError(f"No schedule file at {path}: copy {SCHEDULE_FILE} there, or unset ARREARS_SCHEDULE_FILE")
    raw = yaml.safe_load(path.read_text()) or {}
    timezone = str(raw.get("timezone", "UTC"))
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"{path}: unknown timezone {timezone!r}; use a name like Europe/London or UTC") from exc
    jobs = {}
    for name, spec in (raw.get("jobs") or {}).items():
        spec = spec or {}
        call = spec.get("call") or JOB_CALLS.get(name)
        if call is None:
            raise ScheduleError(f"{path}: job {name!r} is not one of {', '.join(JOB_CALLS)}; give it a "
                                "`call: module:function` to run, or remove it")
        jobs[name] = JobSpec(name, str(spec.get("cron", "")), str(spec.get("description", "")), call)
    alerts = dict(raw.get("alerts") or {})
    known = {f.name for f in fields(Thresholds)}
    thresholds = Thresholds(**{k: tuple(str(x) for x in ([v] if isinstance(v, str) else v or []))
                               if k == "drift_segments" else float(v) for k, v in alerts.items() if k in known})
    schedule = Schedule(timezone, jobs, thresholds,
                        float(alerts.get("overdue_hours", 6.0)), webhook or alerts.get("webhook"), path)
    for name, job in jobs.items():
        try:
            schedule.trigger(name)
        except ValueError as exc:
            raise ScheduleError(f"{path}: job {name!r} has cron {job.cron!r}: {exc}. Use five fields: minute hour "
                                "day-of-month month day-of-week, e.g. \"30 2 * * *\" for 02:30 every day") from exc
    return schedule


def _target(call: str) -> Callable[[ServingSettings, Schedule], JobResult]:
    module, _, function = call.partition(":")
    return getattr(importlib.import_module(module), function)


# -- running one job ---------------------------------------------------------------------------------------------
def deliver(log: JobLog, alert: dict, webhook: str | None) -> None:
    """POST an alert to the webhook as JSON (if one is set); the outcome is recorded with the alert."""
    if not webhook:
        return
    import httpx

    body = {k: (str(v) if isinstance(v, pd.Timestamp | datetime) else v) for k, v in alert.items()}
    try:
        answer = httpx.post(webhook, json=body, timeout=10.0)
        how = f"webhook {answer.status_code}"
    except httpx.HTTPError as exc:
        how = f"webhook failed: {exc}"
    log.mark_delivered(alert["alert_id"], how[:500])


def run_job(settings: ServingSettings, schedule: Schedule, name: str, slot: str | None = None,
            started_by: str = "manual") -> dict:
    """Run job `name` once, recorded; returns the run's record (status skipped when another run holds it)."""
    if name not in schedule.jobs:
        raise ScheduleError(f"No job {name!r} in {schedule.path}: the jobs are {', '.join(schedule.jobs)}")
    with open_job_log(settings) as log:
        claim = log.claim(name, slot, started_by)
    if claim.run_id is None:
        return {"job": name, "status": "skipped", "reason": claim.reason}
    status, outputs, error, breaches = "succeeded", {}, None, []
    try:
        result = _target(schedule.jobs[name].call)(settings, schedule)
        outputs, breaches = result.outputs, list(result.breaches)
    except Exception as exc:  # noqa: BLE001 - any failure of a job is recorded, alerted, and the schedule goes on
        status, error = "failed", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"
    except BaseException:  # interrupted (Ctrl-C, shutdown): recorded as failed, then the interruption goes on
        with open_job_log(settings) as log:
            log.finish(name, claim.run_id, "failed", error="interrupted")
        raise
    with open_job_log(settings) as log:
        log.finish(name, claim.run_id, status, outputs, error)
        raised = [log.raise_alert(name, claim.run_id, b.kind, b.message, b.value, b.threshold) for b in breaches]
        if status == "failed":
            raised.append(log.raise_alert(name, claim.run_id, "job_failed", f"{name} failed: {error.splitlines()[0]}",
                                          severity="error"))
        for alert in raised:
            deliver(log, alert, schedule.webhook)
    return {"job": name, "run_id": claim.run_id, "status": status, "outputs": outputs, "error": error,
            "alerts": [a["message"] for a in raised], "alert_kinds": [a["kind"] for a in raised]}


def check_overdue(settings: ServingSettings, schedule: Schedule, now: datetime | None = None) -> list[dict]:
    """Alert (once per missed time) for each job whose latest due time is more than `overdue_hours` ago with no
    run since; also records runs whose process has gone as failed. Times before the first recorded run of any job
    do not count: a schedule that has never run anything (a new installation) owes nothing yet."""
    now = now or datetime.now(tz=_zone(schedule))
    raised = []
    with open_job_log(settings) as log:
        log.break_abandoned()
        runs = log.runs()
        if runs.empty:
            return raised
        started = pd.to_datetime(runs["started_at"])
        for name in schedule.jobs:
            due = schedule.latest_slot(name, now - timedelta(hours=schedule.overdue_hours))
            due_utc = None if due is None else pd.Timestamp(due).tz_convert("UTC").tz_localize(None)
            if due_utc is None or due_utc < started.min() or (started[runs["job"] == name] >= due_utc).any():
                continue
            alert_id = hashlib.sha256(f"overdue|{name}|{due.isoformat()}".encode()).hexdigest()[:16]
            alert = log.raise_alert(name, None, "job_overdue", f"{name} was due at {due:%Y-%m-%d %H:%M %Z} and has "
                                    "not run: is `arrears schedule` running?", severity="error", alert_id=alert_id)
            if alert is not None:
                deliver(log, alert, schedule.webhook)
                raised.append(alert)
    return raised


# -- the long-running scheduler ----------------------------------------------------------------------------------
def _zone(schedule: Schedule):
    return ZoneInfo(schedule.timezone)


def scheduled_entry(name: str) -> None:
    """What APScheduler calls (by reference, so the job store can hold it): run `name` for its latest slot."""
    settings, schedule = schedule_settings()
    slot = schedule.latest_slot(name, datetime.now(tz=_zone(schedule)))
    run_job(settings, schedule, name, slot.isoformat() if slot else None, started_by="schedule")


def job_store_url(settings: ServingSettings) -> str:
    """The project database as an SQLAlchemy URL (psycopg 3 for Postgres)."""
    url = settings.runs_database
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def sync_jobs(scheduler, schedule: Schedule) -> None:
    """Make the stored jobs match the file: keep a stored job whose trigger is unchanged (so a time missed while
    down is still due), replace changed ones, remove those no longer in the file."""
    for name in schedule.jobs:
        trigger, stored = schedule.trigger(name), scheduler.get_job(name)
        if stored is not None and str(stored.trigger) == str(trigger) and \
                str(stored.trigger.timezone) == str(trigger.timezone):
            continue
        scheduler.add_job("arrears.schedule:scheduled_entry", trigger, args=[name], id=name, name=name,
                          replace_existing=True)
    for stored in scheduler.get_jobs():
        if stored.id not in schedule.jobs:
            scheduler.remove_job(stored.id)


def start_scheduler(settings: ServingSettings, schedule: Schedule, paused: bool = False):
    """A started APScheduler BackgroundScheduler holding the schedule's jobs (the caller shuts it down); `paused`
    leaves it holding them without running any."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    with open_job_log(settings) as log:  # creates the database (and its folder) the job store lives in
        log.break_abandoned()
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(url=job_store_url(settings), tablename="scheduled_jobs")},
        executors={"default": ThreadPoolExecutor(max_workers=max(1, len(schedule.jobs)))},
        job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
        timezone=_zone(schedule))
    scheduler.start(paused=True)
    sync_jobs(scheduler, schedule)
    if not paused:
        scheduler.resume()
    return scheduler


def run_scheduler(settings: ServingSettings, schedule: Schedule, stop: threading.Event,
                  poll_seconds: float = 60.0, on_start: Callable[[object], None] | None = None) -> None:
    """Run the schedule until `stop` is set, checking for overdue jobs every `poll_seconds`."""
    scheduler = start_scheduler(settings, schedule)
    try:
        if on_start is not None:
            on_start(scheduler)
        while not stop.is_set():
            check_overdue(settings, schedule)
            stop.wait(poll_seconds)
    finally:
        scheduler.shutdown(wait=True)
