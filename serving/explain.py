"""Scores and their explanations: pure functions from a feature frame and a LightGBM booster to scored cases.

Explanations are exact TreeSHAP values computed by LightGBM itself (`pred_contrib=True`, the same path-dependent
algorithm as `shap.TreeExplainer`, in C++ and multi-threaded). They explain the model's raw score (log-odds):
`base_value + sum(all contributions) == raw_score` exactly, and each case carries its top reasons plus the sum of
the rest so that identity can be checked. They cost about a millisecond a row, so a worklist explains only the
rows it lists (`serving.worklist.top_cases`).
"""

from __future__ import annotations

import math

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.catalogue import reason_text
from serving.schemas import Reason, ScoredCase


def _clean(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def raw_scores(features: pd.DataFrame, booster: lgb.Booster) -> np.ndarray:
    """The model's raw score (log-odds) of each row: what the worklist ranks by."""
    return booster.predict(features[booster.feature_name()].astype(float).to_numpy(), raw_score=True)


def score_cases(
    features: pd.DataFrame, booster: lgb.Booster, n_reasons: int = 3, calibration=None
) -> list[ScoredCase]:
    """Score and explain each row of `features` (tenancy_id, optional patch, and the booster's features).

    `calibration` maps the raw score to the probability shown (the model's Platt scaling); without it the plain
    sigmoid of the raw score is shown. Either way the list is ranked by the raw score.
    """
    if features.empty:
        return []
    names = booster.feature_name()
    matrix = features[names].astype(float).to_numpy()
    raw = booster.predict(matrix, raw_score=True)
    contrib = booster.predict(matrix, pred_contrib=True)
    shap_values, base = contrib[:, :-1], contrib[:, -1]
    probability = calibration(raw) if calibration is not None else 1.0 / (1.0 + np.exp(-raw))
    order = np.argsort(-np.abs(shap_values), axis=1, kind="stable")[:, :n_reasons]
    patches = features["patch"].to_numpy() if "patch" in features else [None] * len(features)
    cases = []
    for i, tenancy_id in enumerate(features["tenancy_id"].to_numpy()):
        top = order[i]
        reasons = [
            Reason(feature=names[j], value=_clean(matrix[i, j]), contribution=float(shap_values[i, j]),
                   text=reason_text(names[j], _clean(matrix[i, j]), float(shap_values[i, j])))
            for j in top
        ]
        cases.append(ScoredCase(
            tenancy_id=str(tenancy_id), patch=None if patches[i] is None else str(patches[i]),
            risk_score=float(probability[i]), raw_score=float(raw[i]), base_value=float(base[i]),
            reasons=reasons, other_contribution=float(shap_values[i].sum() - shap_values[i, top].sum()),
        ))
    return cases
