"""Monitoring jobs: read what training and the feature stage wrote, write reports under `reports_dir`."""

from __future__ import annotations

import pandas as pd

from features.settings import Settings
from features.store import read_offline
from monitoring.drift import DriftResult, drift_report
from training import registry
from training.risk import reference_path


def feature_drift(settings: Settings) -> DriftResult:
    """Drift of the champion's features: its training reference versus the latest weekly snapshot."""
    champion = registry.model_by_alias(settings, registry.RISK_MODEL, registry.CHAMPION)
    reference = pd.read_parquet(reference_path(settings, champion.version))
    snapshots = read_offline(settings)
    current = snapshots[snapshots["event_timestamp"] == snapshots["event_timestamp"].max()]
    return drift_report(reference, current, list(reference.columns), settings.reports_dir, name="feature_drift")
