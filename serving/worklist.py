"""The ranked, explained worklist: the champion risk model and the online features of every live tenancy → the
cases to work first, each with the reasons in words.

`Worklister` loads the champion and opens the feature store once; the BentoML service (`serving.service`) holds
one per worker, and `arrears worklist` makes one for a single list, so both give the same rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.store.feast import online_features, open_store
from features.store.offline import live_tenancies
from serving.explain import raw_scores, score_cases
from serving.schemas import ScoredCase, ScoreResponse, WorklistResponse, WorklistRow
from serving.settings import ServingSettings
from training.registry import RISK_MODEL, load_champion


def top_cases(features: pd.DataFrame, booster: lgb.Booster, top: int, n_reasons: int = 3,
              calibration=None) -> list[WorklistRow]:
    """The `top` highest-risk rows, ranked and explained: everyone is scored (cheap), only the rows on the list
    are explained (exact TreeSHAP costs about a millisecond a row, a minute and a half for 100k tenancies)."""
    if features.empty or top <= 0:
        return []
    raw = raw_scores(features, booster)
    ids = features["tenancy_id"].astype(str).to_numpy()
    order = np.lexsort((ids, -raw))[:top]  # highest raw score first, ties by tenancy_id (as `rank`)
    return rank(score_cases(features.iloc[order], booster, n_reasons, calibration), top)


def rank(cases: list[ScoredCase], top: int) -> list[WorklistRow]:
    """Highest raw score first (the calibrated probability follows it); ties broken by tenancy_id."""
    ordered = sorted(cases, key=lambda c: (-c.raw_score, c.tenancy_id))[:top]
    return [WorklistRow(rank=i + 1, **case.model_dump()) for i, case in enumerate(ordered)]


def worklist_frame(rows: list[WorklistRow]) -> pd.DataFrame:
    """Flat table for CSV: one row per case with its reasons as text columns."""
    records = []
    for row in rows:
        record = {"rank": row.rank, "tenancy_id": row.tenancy_id, "patch": row.patch,
                  "risk_score": round(row.risk_score, 4)}
        for k, reason in enumerate(row.reasons, start=1):
            record[f"reason_{k}"] = reason.text
        records.append(record)
    return pd.DataFrame(records)


@dataclass(frozen=True)
class WorklistFiles:
    json: Path
    csv: Path


def write_worklist(response: WorklistResponse, out_dir: Path) -> WorklistFiles:
    """The list as JSON (everything, as served) and CSV (one row per case, reasons in words)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = WorklistFiles(out_dir / "worklist.json", out_dir / "worklist.csv")
    files.json.write_text(json.dumps(response.model_dump(), indent=2))
    worklist_frame(response.rows).to_csv(files.csv, index=False)
    return files


class Worklister:
    """The champion risk model and the feature store, loaded once; each list reads the live file afresh (every
    ingest refreshes it), once."""

    def __init__(self, settings: ServingSettings) -> None:
        champion = load_champion(settings, RISK_MODEL)
        self.settings = settings
        self.booster, self.model, self.calibration = champion.booster, champion.ref, champion.calibration
        self.store = open_store(settings)

    def _live(self) -> tuple[pd.DataFrame, pd.Timestamp]:
        """Live tenancies and the date features are wanted for: the ledger's latest posting date."""
        live = live_tenancies(self.settings)
        return live, pd.Timestamp(live["event_timestamp"].max())

    def _online(self, tenancy_ids: list[str], today: pd.Timestamp) -> tuple[pd.DataFrame, list[str]]:
        """Online features of the tenancies that have them, and the ids of those that have none."""
        frame = online_features(self.store, self.model.feature_service, tenancy_ids, today)
        found = frame[self.booster.feature_name()].notna().any(axis=1)
        return frame[found], frame.loc[~found, "tenancy_id"].tolist()

    def score(self, tenancy_ids: list[str]) -> ScoreResponse:
        """Risk score and SHAP reasons for the given tenancies."""
        _, today = self._live()
        features, unknown = self._online(list(dict.fromkeys(tenancy_ids)), today)
        return ScoreResponse(model_version=self.model.version, feature_service=self.model.feature_service,
                             scores=score_cases(features, self.booster, calibration=self.calibration),
                             unknown=unknown)

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
