"""Scores and their explanations: pure functions from a feature frame and a LightGBM booster to scored cases.

Explanations are exact TreeSHAP values computed by LightGBM itself (`pred_contrib=True`, the same path-dependent
algorithm as `shap.TreeExplainer`, in C++ and multi-threaded). They explain the model's raw score (log-odds).

Reasons are officer concepts (`features.catalogue.CONCEPTS`: arrears, recent change, payment pattern,
circumstances, tenancy), each the sum of its features' contributions: four correlated measures of the arrears are
one reason, not four that crowd out everything else, so the few reasons shown carry most of the score. Still exact:
`base_value + sum(reason contributions) + other_contribution == raw_score`. They cost about a millisecond a row, so
a worklist explains only the rows it can list.
"""

from __future__ import annotations

import math

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.catalogue import CONCEPTS, concept_matrix, effect_text, fact_text
from serving.runs.schemas import Reason, ReasonFeature, ScoredCase

#: Facts quoted in a reason's text (the concept's largest contributions pushing its way).
FACTS_PER_REASON = 2
#: Features listed under a reason (its largest contributions); its contribution is always its whole concept's.
FEATURES_PER_REASON = 3
#: Below this many rows LightGBM predicts on one thread: waking a thread pool costs more than a few rows (measured:
#: one row's SHAP values 0.55 ms on one thread, 6.9 ms on two).
FEW_ROWS = 2_000


def predict(booster: lgb.Booster, matrix: np.ndarray, **kwargs) -> np.ndarray:
    """LightGBM's prediction, on one thread for a few rows, on all for many."""
    if len(matrix) < FEW_ROWS:
        kwargs["num_threads"] = 1
    return booster.predict(matrix, **kwargs)


def _clean(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def raw_scores(features: pd.DataFrame, booster: lgb.Booster) -> np.ndarray:
    """The model's raw score (log-odds) of each row: what the worklist ranks by."""
    return predict(booster, features[booster.feature_name()].astype(float).to_numpy(), raw_score=True)


def _reason(concept: str, names: list[str], members: np.ndarray, values: np.ndarray, contrib: np.ndarray,
            total: float) -> Reason:
    order = members[np.argsort(-np.abs(contrib[members]), kind="stable")][:FEATURES_PER_REASON]
    # Built with model_construct: the values are ours and already typed, and validating ~70k of them costs seconds.
    features = [ReasonFeature.model_construct(feature=names[j], value=_clean(values[j]), contribution=float(contrib[j]),
                                              text=fact_text(names[j], _clean(values[j]))) for j in order]
    pushing = [f.text for f in features if np.sign(f.contribution) == np.sign(total)][:FACTS_PER_REASON]
    label = CONCEPTS.get(concept, concept)
    return Reason.model_construct(concept=concept, label=label, contribution=total, features=features,
                                  text=f"{label}: {'; '.join(pushing or [features[0].text])} ({effect_text(total)})")


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
    raw = predict(booster, matrix, raw_score=True)
    contrib = predict(booster, matrix, pred_contrib=True)
    shap_values, base = contrib[:, :-1], contrib[:, -1]
    probability = calibration(raw) if calibration is not None else 1.0 / (1.0 + np.exp(-raw))
    concepts, membership = concept_matrix(names)
    sums = shap_values @ membership
    chosen = np.argsort(-np.abs(sums), axis=1, kind="stable")[:, :n_reasons]
    patches = features["patch"].to_numpy() if "patch" in features else [None] * len(features)
    cases = []
    for i, tenancy_id in enumerate(features["tenancy_id"].to_numpy()):
        reasons = [_reason(concepts[k], names, np.flatnonzero(membership[:, k]), matrix[i], shap_values[i],
                           float(sums[i, k])) for k in chosen[i]]
        cases.append(ScoredCase(
            tenancy_id=str(tenancy_id), patch=None if patches[i] is None else str(patches[i]),
            risk_score=float(probability[i]), raw_score=float(raw[i]), base_value=float(base[i]),
            reasons=reasons, other_contribution=float(shap_values[i].sum() - sums[i, chosen[i]].sum()),
        ))
    return cases
