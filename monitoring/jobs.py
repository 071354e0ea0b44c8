"""Monitoring jobs: read what training and the feature stage wrote, write reports under `reports_dir`."""

from __future__ import annotations

import pandas as pd

from serving.settings import ServingSettings
from features.store.offline import live_tenancies
from monitoring.drift import DriftResult, drift_report
from training import registry


def feature_drift(settings: ServingSettings) -> DriftResult:
    """Drift of the champion's features: its training reference versus the current snapshot being served."""
    champion = registry.model_by_alias(settings, registry.RISK_MODEL, registry.CHAMPION)
    reference = registry.load_reference(settings, champion.version)
    current = live_tenancies(settings)  # what is being served: every live tenancy as of the ledger's latest date
    return drift_report(reference, current, list(reference.columns), settings.reports_dir, name="feature_drift")
