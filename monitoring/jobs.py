"""Monitoring jobs: read what training and the feature stage wrote, write reports under `reports_dir`."""

from __future__ import annotations

from monitoring.datasets import champion_drift_inputs
from monitoring.drift import DriftResult, drift_report
from serving.settings import ServingSettings


def feature_drift(settings: ServingSettings) -> DriftResult:
    """Drift of the champion's features: its training reference versus the current snapshot being served."""
    inputs = champion_drift_inputs(settings)
    return drift_report(inputs.reference, inputs.current, inputs.columns, settings.reports_dir, name="feature_drift")
