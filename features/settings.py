"""Where the state lives, read from the environment (and `.env`) on first use, never at import time.

Every verb works under one directory, `ARREARS_HOME` (default `./data`), so two portfolios never mix and a test can
point the whole application at a temporary folder. The production profile swaps the embedded ledger for Postgres
(`ARREARS_LEDGER_URL`) and the MLflow file store for a tracking server (`ARREARS_MLFLOW_TRACKING_URI`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The Feast repository (declarations only) shipped with the code.
FEATURE_REPO = Path(__file__).resolve().parent / "repo"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ARREARS_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path("data"), description="Directory holding all state of one portfolio.")
    ledger_url: str | None = Field(
        default=None,
        description="Ledger database. Default: an embedded DuckDB file under home. "
        "Production: postgresql://user@host:5432/db",
    )
    mlflow_tracking_uri: str | None = Field(
        default=None, description="MLflow tracking/registry URI. Default: a SQLite store under home."
    )

    def model_post_init(self, __context: object) -> None:
        # Resolve once so that subprocesses (feast, bentoml) see the same absolute home.
        object.__setattr__(self, "home", self.home.expanduser().resolve())

    @property
    def ledger(self) -> str:
        return self.ledger_url or f"duckdb:///{self.home / 'ledger.duckdb'}"

    @property
    def quarantine_dir(self) -> Path:
        return self.home / "quarantine"

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
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.home / 'mlflow' / 'mlflow.db'}"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return self.home / "mlflow" / "artifacts"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def feeds_dir(self) -> Path:
        return self.home / "feeds"

    def subprocess_env(self) -> dict[str, str]:
        """Environment variables that make a child process (feast, bentoml) see this same state."""
        env = {"ARREARS_HOME": str(self.home)}
        if self.ledger_url:
            env["ARREARS_LEDGER_URL"] = self.ledger_url
        if self.mlflow_tracking_uri:
            env["ARREARS_MLFLOW_TRACKING_URI"] = self.mlflow_tracking_uri
        return env


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
