"""Training's settings: the feature layer's, plus where MLflow tracks runs and registers models."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from features.settings import FeatureSettings, load_settings


class TrainingSettings(FeatureSettings):
    mlflow_tracking_uri: str | None = Field(
        default=None, description="MLflow tracking/registry URI. Default: a SQLite store under home.")

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
