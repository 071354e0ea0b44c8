"""An isolated ARREARS_HOME (and profile) for a module-scoped fixture, as a user's environment would set it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from features.settings import load_settings

#: Variables a test's home must not inherit from the developer's shell.
STATE_VARIABLES = ("ARREARS_LEDGER_URL", "ARREARS_MLFLOW_TRACKING_URI", "ARREARS_FEAST_PROFILE",
                   "ARREARS_FEAST_POSTGRES_URL", "ARREARS_FEAST_PROJECT", "ARREARS_DASK_SCHEDULER")


@contextmanager
def isolated_home(home: Path, **variables: str) -> Iterator[pytest.MonkeyPatch]:
    """ARREARS_HOME=home and the given ARREARS_* variables for the block; every layer's settings read afresh."""
    patch = pytest.MonkeyPatch()
    patch.setenv("ARREARS_HOME", str(home))
    for name in STATE_VARIABLES:
        patch.delenv(name, raising=False)
    for name, value in variables.items():
        patch.setenv(name, value)
    load_settings.cache_clear()
    try:
        yield patch
    finally:
        patch.undo()
        load_settings.cache_clear()
