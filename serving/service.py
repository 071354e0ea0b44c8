"""The BentoML service: online features from Feast + the champion model from the MLflow registry → scores and a
ranked, explained worklist over HTTP.

Run it with `arrears serve --port 3000` (or `bentoml serve serving.service:ArrearsWorklist`). The model and the
feature store are loaded once per worker, in `__init__`, never at import time.
"""

from __future__ import annotations

import bentoml
import pandas as pd
from pydantic import BaseModel, Field

from serving.worklist import ScoredCase, WorklistRow, score_cases, top_cases


class ScoreResponse(BaseModel):
    model_version: str
    feature_service: str
    scores: list[ScoredCase]
    unknown: list[str] = Field(description="Requested tenancy_ids with no online features (not scored)")


class WorklistResponse(BaseModel):
    model_version: str
    feature_service: str
    as_of: str = Field(description="Date the features are as of: the ledger's latest posting date")
    population: int = Field(description="Live tenancies considered (after the patch filter)")
    rows: list[WorklistRow]
    unscored: list[str] = Field(description="Live tenancies with no online features: need review, not a score")


@bentoml.service(name="arrears_worklist", traffic={"timeout": 300})
class ArrearsWorklist:
    def __init__(self) -> None:
        from serving.settings import get_settings
        from features.store.feast import open_store
        from training.registry import RISK_MODEL, load_champion

        self.settings = get_settings()
        champion = load_champion(self.settings, RISK_MODEL)
        self.booster, self.model, self.calibration = champion.booster, champion.ref, champion.calibration
        self.store = open_store(self.settings)
        self.feature_service = self.store.get_feature_service(self.model.feature_service)

    def _live(self) -> tuple[pd.DataFrame, pd.Timestamp]:
        """Live tenancies and the date features are wanted for: the ledger's latest posting date (both refreshed
        by every ingest, so read per request, once)."""
        from features.store.offline import live_tenancies

        live = live_tenancies(self.settings)
        return live, pd.Timestamp(live["event_timestamp"].max())

    def _online(self, tenancy_ids: list[str], today: pd.Timestamp) -> pd.DataFrame:
        rows = [{"tenancy_id": t, "as_of": today.to_pydatetime()} for t in tenancy_ids]
        frame = self.store.get_online_features(features=self.feature_service, entity_rows=rows).to_df()
        names = self.booster.feature_name()
        found = frame[names].notna().any(axis=1)
        return frame[found], frame.loc[~found, "tenancy_id"].tolist()

    @bentoml.api
    def score(self, tenancy_ids: list[str]) -> ScoreResponse:
        """Risk score and SHAP reasons for the given tenancies."""
        _, today = self._live()
        features, unknown = self._online(list(dict.fromkeys(tenancy_ids)), today)
        return ScoreResponse(model_version=self.model.version, feature_service=self.model.feature_service,
                             scores=score_cases(features, self.booster, calibration=self.calibration), unknown=unknown)

    @bentoml.api
    def worklist(self, top: int = 50, patch: str | None = None) -> WorklistResponse:
        """The `top` highest-risk live tenancies (optionally of one patch), each with its reasons."""
        live, today = self._live()
        if patch is not None:
            live = live[live["patch"] == patch]
        features, unscored = self._online(live["tenancy_id"].tolist(), today)
        features = features.merge(live[["tenancy_id", "patch"]], on="tenancy_id", how="left")
        return WorklistResponse(
            model_version=self.model.version, feature_service=self.model.feature_service, as_of=str(today.date()),
            population=len(live), unscored=unscored,
            rows=top_cases(features, self.booster, max(0, top), calibration=self.calibration),
        )
