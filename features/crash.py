"""Crash points for the crash-safety tests.

`ARREARS_CRASH_AT=<name>` kills the process with SIGKILL when it reaches the point of that name, as the OOM killer
or a lost machine would, between two steps whose order matters (a database commit and the files that follow it, a
model registered and its alias). Nothing happens unless the variable names the point. `tests/e2e/test_crash.py`
kills each verb at each of its points and checks that running the verb again leaves what one uninterrupted run
leaves.
"""

from __future__ import annotations

import os
import signal

VARIABLE = "ARREARS_CRASH_AT"


def crash_point(name: str) -> None:
    if os.environ.get(VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)
