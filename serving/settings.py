"""Serving's settings: training's (the registry the champion comes from), plus where served outputs are written."""

from __future__ import annotations

from pathlib import Path

from features.settings import load_settings
from training.settings import TrainingSettings


class ServingSettings(TrainingSettings):
    @property
    def reports_dir(self) -> Path:
        """Worklists, cash forecasts and monitoring reports, as files a person can open."""
        return self.home / "reports"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"


def get_settings() -> ServingSettings:
    return load_settings(ServingSettings)
