"""`arrears schedule`: run the job schedule (refresh, drift, bias, performance, retrain), or one job once."""

from __future__ import annotations

import signal
import threading
from datetime import datetime
from typing import Annotated

import typer

from arrears.render import console, fail, out, print_json, table
from arrears.schedule import ScheduleError, _zone, run_job, run_scheduler, schedule_settings

schedule_app = typer.Typer(
    help="The schedule of jobs (cron times in ARREARS_SCHEDULE_FILE, default arrears/schedule.yaml). With no "
    "subcommand: run the scheduler in the foreground until Ctrl-C or SIGTERM. Missed runs are made once on start; "
    "each job runs one at a time across processes; every run is recorded (`arrears monitor status`).",
    invoke_without_command=True)


def _load():

    try:
        return schedule_settings()
    except ScheduleError as exc:
        fail(str(exc))


@schedule_app.callback()
def schedule_main(
    ctx: typer.Context,
    poll: Annotated[float, typer.Option(help="Seconds between checks for overdue jobs and abandoned runs.")] = 60.0,
) -> None:
    if ctx.invoked_subcommand is not None:
        return

    settings, schedule = _load()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if settings.alert_webhook is None and schedule.webhook is None:
        console.print("[dim]No alert webhook set: alerts are recorded and shown by `arrears monitor status`.[/dim]")

    def started(scheduler) -> None:
        for job in scheduler.get_jobs():
            console.print(f"{job.id:<12} next {job.next_run_time:%Y-%m-%d %H:%M %Z}  ({schedule.jobs[job.id].cron})")
        console.print(f"Scheduler running ({schedule.path}); Ctrl-C to stop.")

    run_scheduler(settings, schedule, stop, poll_seconds=poll, on_start=started)
    console.print("Scheduler stopped.")


@schedule_app.command("run")
def schedule_run(
    name: Annotated[str, typer.Argument(help="The job: refresh, drift, bias, performance, retrain (or one the "
                                        "schedule file adds).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the run's record as JSON.")] = False,
) -> None:
    """Run one job now, recorded like a scheduled run (for cron or a Kubernetes CronJob instead of the scheduler).
    Exits 1 if the job failed, 3 if it was skipped because another run of it holds the lock."""
    settings, schedule = _load()
    try:
        with console.status(f"Running {name}…"):
            record = run_job(settings, schedule, name)
    except ScheduleError as exc:
        fail(str(exc))
    if as_json:
        print_json(record)
    elif record["status"] == "skipped":
        console.print(f"[yellow]skipped:[/] {record['reason']}")
    else:
        console.print(f"{name} {record['status']} (run {record['run_id']})")
        for key, value in record["outputs"].items():
            out.print(f"  {key}: {value}")
        for message in record["alerts"]:
            console.print(f"[bold yellow]alert:[/] {message}")
        if record["error"]:
            console.print(f"[red]{record['error']}[/red]")
    raise typer.Exit({"failed": 1, "skipped": 3}.get(record["status"], 0))


@schedule_app.command("list")
def schedule_list() -> None:
    """The jobs of the schedule file: cron, next time due, what each does."""
    _, schedule = _load()
    now = datetime.now(tz=_zone(schedule))
    table(f"Schedule ({schedule.path}, {schedule.timezone})", ["job", "cron", "next due", "what it does"],
          [[j.name, j.cron, f"{schedule.next_due(j.name, now):%Y-%m-%d %H:%M}", j.description]
           for j in schedule.jobs.values()])
