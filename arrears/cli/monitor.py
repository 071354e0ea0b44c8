"""Monitoring verbs: `monitor status` (scheduled job runs and alerts) and `monitor drift` (one report now)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import pandas as pd
import typer

from arrears.render import console, fail, out, print_json, table
from arrears.schedule import ScheduleError, _zone, check_overdue, schedule_settings
from serving.runs.jobs import open_job_log
from serving.settings import get_settings

# Lazy on purpose: `monitor drift` imports monitoring.jobs inside. At the top (the models' stack, through
# monitoring.datasets and .performance) it made every command, `arrears --help` included, take 12.9 s instead of
# 5.7 s (1,811 modules loaded, not 931): `uv run --frozen arrears --help`, median of 5 on 2 shared cores.

monitor_app = typer.Typer(help="Monitoring: the scheduled jobs' runs and alerts; drift reports (Evidently).",
                          no_args_is_help=True)


def status_report(days: int = 30) -> dict:
    """Each job's schedule and latest run, and the alerts of the last `days` days (overdue jobs checked first)."""
    settings, schedule = schedule_settings()
    check_overdue(settings, schedule)
    now = datetime.now(tz=_zone(schedule))
    jobs = []
    with open_job_log(settings) as log:
        for name, job in schedule.jobs.items():
            runs = log.runs(name, limit=1)
            last = runs.iloc[0].to_dict() if len(runs) else None
            jobs.append({"job": name, "cron": job.cron, "next_due": schedule.next_due(name, now),
                         "last_run": None if last is None else {
                             k: last[k] for k in ("run_id", "status", "started_at", "finished_at", "started_by",
                                                  "outputs", "error")}})
        alerts = log.alerts(since=pd.Timestamp.now(tz="UTC").tz_localize(None) - pd.Timedelta(days=days))
    return {"schedule": str(schedule.path), "timezone": schedule.timezone, "jobs": jobs,
            "alerts": alerts.to_dict("records")}


@monitor_app.command("status")
def monitor_status(
    days: Annotated[int, typer.Option(help="Show the alerts of this many days.")] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (as POST /monitoring_status answers).")] = False,
) -> None:
    """Each scheduled job's latest run (status, when, what it wrote or why it failed) and the recent alerts."""
    try:
        report = status_report(days)
    except ScheduleError as exc:
        fail(str(exc))
    if as_json:
        print_json(report)
        return
    rows = []
    for job in report["jobs"]:
        last = job["last_run"] or {}
        rows.append([job["job"], job["cron"], f"{job['next_due']:%Y-%m-%d %H:%M}", str(last.get("status", "never")),
                     str(last.get("started_at", "")), (last.get("error") or "").split("\n")[0][:60]])
    table(f"Scheduled jobs ({report['timezone']})", ["job", "cron", "next due", "last run", "started", "error"], rows)
    alerts = report["alerts"]
    if not alerts:
        out.print(f"No alerts in the last {days} days.")
        return
    table(f"Alerts, last {days} days", ["raised", "job", "kind", "message"],
          [[str(a["raised_at"]), a["job"], a["kind"], a["message"]] for a in alerts])


@monitor_app.command("drift")
def monitor_drift(
    against: Annotated[str, typer.Option(help="like: the served date against the same weekday 4-7 weeks earlier "
                                         "(what the weekly job runs); training: against the champion's training "
                                         "sample.")] = "like",
    as_of: Annotated[datetime | None, typer.Option(
        "--as-of", formats=["%Y-%m-%d"], help="Judge an earlier day instead of the served one (YYYY-MM-DD; like "
        "with like only): when did a change begin?")] = None,
) -> None:
    """Evidently drift report of the champion's features (and score) now (HTML and JSON under reports/), for the
    portfolio and within each group of the schedule file's `drift_segments`; the alerts it would raise are listed
    but not recorded (the weekly `drift` job records them)."""
    from monitoring.jobs import drift_job, feature_drift

    if against not in ("like", "training"):
        fail("--against must be like or training")
    with console.status("Computing drift…"):
        if against == "training":
            result = feature_drift(get_settings())
            console.print(f"Drifted share of features: {result.drifted_share:.0%} "
                          f"({', '.join(result.drifted_columns) or 'none'})")
            out.print(str(result.html), soft_wrap=True)
            return
        settings, schedule = schedule_settings()
        try:
            found = drift_job(settings, schedule.thresholds, as_of=None if as_of is None else pd.Timestamp(as_of))
        except ValueError as exc:
            fail(str(exc))
    o = found.outputs
    console.print(f"As of {o['as_of']} against {', '.join(o['reference_dates'])}: {o['drifted_share']:.0%} of "
                  f"features drifted ({', '.join(o['drifted_columns']) or 'none'}); score PSI {o['score_psi']:.3f}")
    for group in o["segments"]:
        console.print(f"  {group['segment']} ({group['rows']} tenancies): " + (
            f"{group['drifted_share']:.0%} drifted, score PSI {group['score_psi']:.3f}" if group["can_alert"]
            else group["note"]))
    for breach in found.breaches:
        console.print(f"[bold red]{breach.kind}[/]: {breach.message}")
    out.print(o["html"], soft_wrap=True)
