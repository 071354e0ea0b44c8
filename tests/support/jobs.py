"""Jobs for the scheduler's tests: a schedule file may name any `module:function`, as a provider's own job would."""

from __future__ import annotations

import os
import time

from monitoring.jobs import Breach, JobResult


def sleepy(settings, schedule) -> JobResult:
    """Append this process's id to `sleepy_runs.txt` under home, sleep ARREARS_TEST_JOB_SECONDS, and report a
    breach when ARREARS_TEST_JOB_BREACH is set."""
    with open(settings.home / "sleepy_runs.txt", "a") as marker:
        marker.write(f"{os.getpid()}\n")
    seconds = float(os.environ.get("ARREARS_TEST_JOB_SECONDS", "0"))
    time.sleep(seconds)
    breaches = [Breach("test_breach", "the test job found something", 2.0, 1.0)] \
        if os.environ.get("ARREARS_TEST_JOB_BREACH") else []
    return JobResult({"slept": seconds}, breaches)


def failing(settings, schedule) -> JobResult:
    raise RuntimeError("the test job fails on purpose")
