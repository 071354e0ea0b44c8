"""Shared fixtures (a throwaway ARREARS_HOME, ledgers on both backends) and the tiers.

Tests live in one folder per tier, and each test is marked with its tier: `unit` (tiny inline frames, no servers,
seconds: `make test-fast`), `data` (feeds, ledger, feature store, simulator), `model` (training and the registry),
`service` (HTTP through a real `bentoml serve`) and `e2e` (the CLI's verbs and the demo as a user runs them).
`postgres` and `redis` mark what needs those servers (127.0.0.1:5432 and :6379).

The suite runs on every core (pytest-xdist, `--dist loadgroup`): each module's tests stay on one worker, so a
module-scoped fixture is built once, and every test of the shared `pipeline` runs on the same worker, so the
session's costliest fixture is built once too. `pytest -n 0` runs everything in one process.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from features.settings import load_settings
from tests.support.homes import isolated_home
from tests.support.pipeline import build_pipeline
from tests.support.postgres import create_schema, drop_schema

TIERS = ("unit", "data", "model", "service", "e2e")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    root = Path(__file__).resolve().parent
    for item in items:
        tier = item.path.resolve().relative_to(root).parts[0]
        if tier not in TIERS:
            raise pytest.UsageError(f"{item.nodeid}: tests live in one of the tier folders {', '.join(TIERS)}")
        item.add_marker(getattr(pytest.mark, tier))
        group = "pipeline" if "pipeline" in getattr(item, "fixturenames", ()) else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))


def pytest_collection_finish(session: pytest.Session) -> None:
    # On an xdist worker the groups show as an "@group" suffix of each node id; without it every test would be
    # scheduled on its own and each shared fixture built once per worker (pytest-dev/pytest-xdist#1386).
    if getattr(session.config.option, "loadgroup", False) and session.items and "@" not in session.items[0].nodeid:
        raise pytest.UsageError("pytest-xdist's --dist=loadgroup is not grouping tests with this pytest: install the "
                                "locked versions (uv sync --frozen) or run with -n 0")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """Point the whole application at a fresh ARREARS_HOME for one test."""
    path = tmp_path / "home"
    with isolated_home(path):
        yield path
    load_settings.cache_clear()


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty ledger on each backend: an embedded DuckDB file, and a new schema on the real Postgres."""
    if request.param == "duckdb":
        yield f"duckdb:///{tmp_path / 'ledger.duckdb'}"
        return
    url, schema = create_schema()
    yield url
    drop_schema(schema)


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One portfolio through ingest, features, train, promote and a real `bentoml serve` (tests/support/pipeline.py),
    built once for the service and e2e tiers."""
    return build_pipeline(tmp_path_factory.mktemp("pipeline"))


@pytest.fixture
def in_pipeline_home(pipeline: dict) -> dict:
    """The pipeline's ARREARS_HOME for one test, so the CLI's verbs act on it."""
    with isolated_home(pipeline["home"]):
        yield pipeline
