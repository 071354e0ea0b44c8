"""What monitoring compares, read from what the other stages wrote (never recomputed here): the training
reference sample of the champion risk model and the current snapshot being served."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from features.store.offline import live_tenancies
from serving.settings import ServingSettings
from training import registry


@dataclass(frozen=True)
class DriftInputs:
    reference: pd.DataFrame  #: the features the champion learnt from (a fixed-seed sample of its training rows)
    current: pd.DataFrame  #: every live tenancy as of the ledger's latest date: what is being served
    columns: list[str]  #: the model's features
    model_version: str


def champion_drift_inputs(settings: ServingSettings) -> DriftInputs:
    champion = registry.model_by_alias(settings, registry.RISK_MODEL, registry.CHAMPION)
    reference = registry.load_reference(settings, champion.version)
    return DriftInputs(reference, live_tenancies(settings), list(reference.columns), champion.version)
