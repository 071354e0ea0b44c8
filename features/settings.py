"""The feature layer's settings: where a portfolio's state lives and which stores hold its features.

Settings come in layers, each package reading its own and extending the one below: `FeatureSettings` here,
`training.settings.TrainingSettings` (MLflow), `serving.settings.ServingSettings` (reports, the service). All read
the environment (and `.env`) with the one prefix `ARREARS_`, on first use and never at import time.

Every verb works under one directory, `ARREARS_HOME` (default `./data`), so two portfolios never mix and a test can
point the whole application at a temporary folder. The production profile swaps the embedded ledger for Postgres
(`ARREARS_LEDGER_URL`) and the local feature store for Postgres and Redis (`ARREARS_FEAST_PROFILE=production`).
"""

from __future__ import annotations

import json
import os
from datetime import date
from functools import cache
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import parse_qs, unquote, urlencode, urlparse, urlsplit, urlunsplit

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The Feast repository (declarations only) shipped with the code.
FEATURE_REPO = Path(__file__).resolve().parent / "repo"


class FeatureSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ARREARS_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path("data"), description="Directory holding all state of one portfolio.")
    ledger_url: str | None = Field(
        default=None,
        description="Ledger database. Default: an embedded DuckDB file under home. "
        "Production: postgresql://user@host:5432/db",
    )
    protected_url: str | None = Field(
        default=None,
        description="Database of the protected characteristics (bias monitoring only; features.protected). "
        "Default: protected.sqlite beside an embedded ledger (owner-only), or the `<schema>_protected` schema of a "
        "Postgres ledger's database. Production: a database or role only the bias job and admins hold.",
    )
    feast_profile: Literal["local", "production"] = Field(
        default="local",
        description="Feature store profile. local: Parquet offline store, SQLite online store, file registry under "
        "home. production: Postgres registry and offline store, Redis online store.",
    )
    feast_postgres_url: str | None = Field(
        default=None,
        description="Production profile: Postgres database of the Feast registry and offline store "
        "(postgresql://user:password@host:5432/db, optional ?options=-csearch_path%3Dschema). "
        "Default: the ledger's URL when the ledger is on Postgres.",
    )
    redis_url: str = Field(default="redis://127.0.0.1:6379/0",
                           description="Production profile: Redis online store, redis://host:port/db")
    feast_project: str = Field(default="arrears", pattern=r"^[a-z][a-z0-9_]*$",
                               description="Feast project name (keeps two portfolios apart on a shared Redis).")
    dask_scheduler: str | None = Field(
        default=None,
        description="Build features on a Dask cluster: a scheduler address (tcp://host:8786) or 'local' for a "
        "LocalCluster on this machine. Default: one process.",
    )
    today: date | None = Field(
        default=None, description="The date ingestion takes as today (default: the system date): postings and events "
        "dated later than today plus the tolerance are quarantined. Set it to replay a backfill.")
    future_tolerance_days: int = Field(
        default=1, ge=0, description="How many days past today a posting or event may be dated (a source system a "
        "time zone ahead) before it is quarantined as dated in the future.")
    ingest_memory: str = Field(
        default="2GB", pattern=r"^\d+(\.\d+)?\s*(MB|GB|MiB|GiB)$",
        description="Memory ingestion's DuckDB may hold while it reads and checks a delivery (e.g. 2GB, 500MB); "
        "beyond it, work spills to disk. The ingest process peaks at about this plus 0.3 GB.")
    partition_tenancies: int = Field(
        default=20_000, gt=0,
        description="Tenancies per partition of the feature build: bounds its memory (about 3.5 GB per 10,000 "
        "tenancies over 3 years) and is the unit of work on a Dask cluster.")

    def model_post_init(self, __context: object) -> None:
        # Resolve once so that child processes (feast, bentoml) see the same absolute home.
        object.__setattr__(self, "home", self.home.expanduser().resolve())

    @property
    def ledger(self) -> str:
        return self.ledger_url or f"duckdb:///{self.home / 'ledger.duckdb'}"

    @property
    def protected_database(self) -> str:
        return self.protected_url or default_protected_url(self.ledger)

    @property
    def quarantine_dir(self) -> Path:
        return self.home / "quarantine"

    @property
    def feeds_dir(self) -> Path:
        return self.home / "feeds"

    @property
    def offline_dir(self) -> Path:
        return self.home / "offline"

    @property
    def feast_dir(self) -> Path:
        return self.home / "feast"

    @property
    def feature_repo(self) -> Path:
        return FEATURE_REPO

    @property
    def feature_store_yaml(self) -> Path:
        """The Feast configuration of the chosen profile (both live in the repo, `${VAR}`s filled from here)."""
        name = "feature_store.yaml" if self.feast_profile == "local" else "feature_store.production.yaml"
        return FEATURE_REPO / name

    @property
    def feast_postgres(self) -> str:
        url = self.feast_postgres_url or (self.ledger_url if self.ledger_url and
                                          self.ledger_url.startswith(("postgresql://", "postgres://")) else None)
        if not url:
            raise ValueError("The production feature store needs a Postgres database: set ARREARS_FEAST_POSTGRES_URL "
                             "(or put the ledger on Postgres with ARREARS_LEDGER_URL).")
        return url

    def feast_variables(self) -> dict[str, str]:
        """The `${VARIABLES}` of feature_store*.yaml and of the repo's declarations, filled from these settings.

        They are handed to Feast directly (`features.store.feast.open_store`) or to the `feast apply` child process;
        this process's environment is never changed.
        """
        variables = {"ARREARS_HOME": str(self.home), "ARREARS_FEAST_PROJECT": self.feast_project,
                     "ARREARS_FEAST_OFFLINE": "file" if self.feast_profile == "local" else "postgres"}
        if self.feast_profile == "local":
            return variables
        return variables | _postgres_variables(self.feast_postgres) | {"ARREARS_FEAST_REDIS": _redis_connection(
            self.redis_url)}

    def child_env(self) -> dict[str, str]:
        """`ARREARS_*` variables that make a child process (feast, bentoml) read these same settings, whichever
        layer they come from: every field that is set."""
        env = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):  # a secret as itself (str() of one is asterisks)
                value = value.get_secret_value()
            if isinstance(value, list | tuple | dict):  # read back as JSON (str() of a list is Python's text)
                value = json.dumps(list(value) if isinstance(value, tuple) else value)
            if value is not None:
                env[f"ARREARS_{name.upper()}"] = str(value)
        return env

    def child_process_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The whole environment of a child process: this one's, these settings (`child_env`), then `extra`."""
        return {**os.environ, **self.child_env(), **(extra or {})}


def default_protected_url(ledger_url: str) -> str:
    """Where the store is unless `ARREARS_PROTECTED_URL` says: an SQLite file beside an embedded ledger, a schema
    of its own (the ledger's schema + `_protected`, else `protected`) in a Postgres ledger's database."""
    if ledger_url.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(ledger_url)
        query = parse_qs(parts.query)
        options = unquote(query.pop("options", [""])[0])
        path = options.split("search_path=", 1)[1].split(",")[0].strip() if "search_path=" in options else ""
        query["options"] = [f"-csearch_path={path}_protected" if path else "-csearch_path=protected"]
        return urlunsplit(parts._replace(query=urlencode(query, doseq=True)))
    path = Path(ledger_url.split(":///", 1)[1])
    return f"sqlite:///{path.parent / 'protected.sqlite'}"


def _postgres_variables(url: str) -> dict[str, str]:
    pg = urlparse(url)
    query = parse_qs(pg.query)
    options = unquote(query.get("options", [""])[0])
    schema = options.split("search_path=", 1)[1].split(",")[0].strip() if "search_path=" in options else "public"
    return {
        "ARREARS_FEAST_PG_HOST": pg.hostname or "127.0.0.1",
        "ARREARS_FEAST_PG_PORT": str(pg.port or 5432),
        "ARREARS_FEAST_PG_DATABASE": pg.path.lstrip("/") or "postgres",
        "ARREARS_FEAST_PG_USER": unquote(pg.username or "postgres"),
        "ARREARS_FEAST_PG_PASSWORD": unquote(pg.password or ""),
        "ARREARS_FEAST_PG_SCHEMA": schema,
        "ARREARS_FEAST_PG_SSLMODE": query.get("sslmode", ["prefer"])[0],
        "ARREARS_FEAST_REGISTRY_URL": "postgresql+psycopg://" + url.split("://", 1)[1],
    }


def _redis_connection(url: str) -> str:
    redis = urlparse(url)
    connection = f"{redis.hostname or '127.0.0.1'}:{redis.port or 6379},db={(redis.path or '/0').lstrip('/') or '0'}"
    return connection + (f",password={unquote(redis.password)}" if redis.password else "")


AnySettings = TypeVar("AnySettings", bound=FeatureSettings)


@cache
def load_settings(kind: type[AnySettings] = FeatureSettings) -> AnySettings:
    """The settings of one layer, read once (`load_settings.cache_clear()` forgets every layer's)."""
    return kind()


def get_settings() -> FeatureSettings:
    return load_settings(FeatureSettings)
