"""The scheduler as an operator runs it: real processes, a real job store, killed runs, two schedulers at once.

Jobs here are the test jobs of `tests.support.jobs` (a schedule file may name any `module:function`), so what is
tested is the scheduling, recording, locking and alerting; the monitoring jobs have tests of their own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml

from arrears.schedule import check_overdue, load_schedule, run_job, start_scheduler
from serving.runs.jobs import open_job_log
from serving.settings import get_settings
from tests.support.cli import ok
from tests.support.postgres import create_schema, drop_schema


def _schedule_file(folder: Path, cron: str = "0 3 * * *", webhook: str | None = None) -> Path:
    path = folder / "schedule.yaml"
    path.write_text(yaml.safe_dump({
        "timezone": "UTC",
        "jobs": {"sleepy": {"cron": cron, "call": "tests.support.jobs:sleepy"},
                 "failing": {"cron": cron, "call": "tests.support.jobs:failing"}},
        "alerts": {"overdue_hours": 1, "webhook": webhook},
    }))
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sched_home(request, home: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """A home whose job log (and job store) is SQLite, or a fresh schema on the real Postgres."""
    schema = None
    if request.param == "postgres":
        url, schema = create_schema("sched")
        monkeypatch.setenv("ARREARS_RUNS_URL", url)
    home.mkdir(parents=True, exist_ok=True)
    path = _schedule_file(home)
    monkeypatch.setenv("ARREARS_SCHEDULE_FILE", str(path))
    from features.settings import load_settings

    load_settings.cache_clear()
    yield {"home": home, "schedule": path, "env": {**os.environ}}
    drop_schema(schema)


def _arrears(*args: str, env: dict, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "arrears.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def _runs(job: str = "sleepy"):
    with open_job_log(get_settings()) as log:
        return log.runs(job)


def _wait_for(condition, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError("timed out waiting")


class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (the http.server name)
        _Hook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_runs_are_recorded_with_outputs_errors_and_alerts(sched_home: dict, monkeypatch) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    schedule = load_schedule(sched_home["schedule"], webhook=f"http://127.0.0.1:{server.server_port}/alerts")
    settings = get_settings()
    monkeypatch.setenv("ARREARS_TEST_JOB_BREACH", "1")
    _Hook.received.clear()
    done = run_job(settings, schedule, "sleepy")
    failed = run_job(settings, schedule, "failing")
    server.shutdown()
    assert done["status"] == "succeeded" and done["outputs"] == {"slept": 0.0}
    assert failed["status"] == "failed" and "fails on purpose" in failed["error"]
    with open_job_log(settings) as log:
        runs, alerts = log.runs(), log.alerts()
    assert set(runs["status"]) == {"succeeded", "failed"} and runs["finished_at"].notna().all()
    assert sorted(alerts["kind"]) == ["job_failed", "test_breach"]
    assert sorted(a["kind"] for a in _Hook.received) == ["job_failed", "test_breach"]  # each alert, as JSON
    assert set(alerts["delivered"]) == {"webhook 204"}
    status = json.loads(ok("monitor", "status", "--json").stdout)
    assert {j["job"]: j["last_run"]["status"] for j in status["jobs"]} == {"sleepy": "succeeded", "failing": "failed"}


def test_one_run_of_a_job_at_a_time_and_each_slot_once(sched_home: dict) -> None:
    with open_job_log(get_settings()) as log:
        first = log.claim("sleepy", "2026-12-01T03:00:00+00:00", "schedule")
        assert first.run_id is not None
        assert "already running" in log.claim("sleepy", None, "manual").reason
        log.finish("sleepy", first.run_id, "succeeded")
        assert "already ran" in log.claim("sleepy", "2026-12-01T03:00:00+00:00", "schedule").reason
        again = log.claim("sleepy", None, "manual")
        assert again.run_id is not None  # the lock was released with the finished run
        log.finish("sleepy", again.run_id, "succeeded")


@pytest.mark.parametrize("sched_home", ["sqlite"], indirect=True)
def test_a_run_killed_half_way_is_failed_and_the_next_run_happens(sched_home: dict) -> None:
    env = {**sched_home["env"], "ARREARS_TEST_JOB_SECONDS": "60"}
    victim = _arrears("schedule", "run", "sleepy", env=env)
    _wait_for(lambda: len(_runs()) == 1)
    blocked = subprocess.run([sys.executable, "-m", "arrears.cli", "schedule", "run", "sleepy"], env=env,
                             capture_output=True, text=True, timeout=120)
    assert blocked.returncode == 3, blocked.stderr  # one run of a job at a time, across processes
    assert "already running" in " ".join(blocked.stderr.split())
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    again = subprocess.run([sys.executable, "-m", "arrears.cli", "schedule", "run", "sleepy", "--json"],
                           env={**env, "ARREARS_TEST_JOB_SECONDS": "0"}, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["status"] == "succeeded"
    runs = _runs().set_index("status")
    assert sorted(runs.index) == ["failed", "succeeded"]
    assert "ended without finishing" in runs.loc["failed", "error"]


def _missed_while_down(settings, schedule, days: int = 3) -> None:
    """Store the jobs as a scheduler does, due `days` ago, as if the machine went down before they ran."""
    scheduler = start_scheduler(settings, schedule, paused=True)
    for job in scheduler.get_jobs():
        scheduler.modify_job(job.id, next_run_time=datetime.now(tz=job.next_run_time.tzinfo) - timedelta(days=days))
    scheduler.remove_jobstore("default")  # stop holding the store, so shutting down runs nothing here
    scheduler.shutdown(wait=True)


@pytest.mark.parametrize("sched_home", ["sqlite"], indirect=True)  # Postgres: the slot rule is tested in-process
def test_missed_runs_are_made_once_and_two_schedulers_run_each_once(sched_home: dict) -> None:
    settings, schedule = get_settings(), load_schedule(sched_home["schedule"])
    _missed_while_down(settings, schedule)
    env = {**sched_home["env"], "ARREARS_TEST_JOB_SECONDS": "2"}
    schedulers = [_arrears("schedule", "--poll", "1", env=env) for _ in range(2)]
    try:
        _wait_for(lambda: (_runs()["status"] == "succeeded").any() and len(_runs("failing")) > 0, seconds=90)
        time.sleep(6)  # time for a second run, were there to be one
    finally:
        for process in schedulers:
            process.send_signal(signal.SIGTERM)
        for process in schedulers:
            process.wait(timeout=60)
    runs = _runs()
    assert len(runs) == 1 and runs["started_by"].iloc[0] == "schedule", runs
    assert (sched_home["home"] / "sleepy_runs.txt").read_text().count("\n") == 1
    assert len(_runs("failing")) == 1 and _runs("failing")["status"].iloc[0] == "failed"
    assert all(p.returncode == 0 for p in schedulers), [p.stderr.read() for p in schedulers]


def test_a_job_that_did_not_run_is_an_alert_once(sched_home: dict) -> None:
    settings, schedule = get_settings(), load_schedule(sched_home["schedule"])
    assert check_overdue(settings, schedule) == []  # nothing has ever run: a new installation owes nothing
    run_job(settings, schedule, "sleepy")
    assert check_overdue(settings, schedule) == []  # today's time was before the first run
    later = datetime.now().astimezone() + timedelta(days=2)
    first = check_overdue(settings, schedule, now=later)
    assert sorted(a["job"] for a in first) == ["failing", "sleepy"]  # tomorrow's time passed with no run
    assert check_overdue(settings, schedule, now=later) == []  # once per missed time
    run_job(settings, schedule, "failing")  # a failed run is a run (its failure is an alert of its own)
    assert check_overdue(settings, schedule) == []
