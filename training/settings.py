"""Training's settings: the feature layer's, plus where MLflow tracks runs and registers models."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from features.settings import FeatureSettings, load_settings


class TrainingSettings(FeatureSettings):
    mlflow_tracking_uri: str | None = Field(
        default=None, description="MLflow tracking/registry URI. Default: a SQLite store under home.")
    max_missing_feature_share: float = Field(
        default=0.01, ge=0.0, le=1.0,
        description="Training refuses when more than this share of its (tenancy, date) rows have no features "
        "(dated outside the ledger, unknown tenancy, not live that day); below it, those rows are left out and "
        "counted in the run.")

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.home / 'mlflow' / 'mlflow.db'}"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return self.home / "mlflow" / "artifacts"

    @property
    def reference_dir(self) -> Path:
        """Feature samples each model version learnt from: what drift is measured against."""
        return self.home / "reference"


def get_settings() -> TrainingSettings:
    return load_settings(TrainingSettings)
