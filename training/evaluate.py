"""Evaluation metrics for ranking models and the baselines a housing team actually uses."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score


def precision_at_capacity(frame: pd.DataFrame, score: str, label: str = "label", capacity: float = 0.1) -> float:
    """Mean, over as_of dates, of the label rate among the top `capacity` share of cases by `score`.

    This is what an officer team experiences: each week they can work the top k cases; how many of those
    were going to get worse?
    """
    rates = []
    for _, week in frame.groupby("event_timestamp"):
        k = max(1, int(round(len(week) * capacity)))
        top = week.sort_values([score, "tenancy_id"], ascending=[False, True]).head(k)
        rates.append(top[label].mean())
    return float(np.mean(rates))


def ranking_metrics(frame: pd.DataFrame, score: str, label: str = "label", capacity: float = 0.1) -> dict[str, float]:
    y, p = frame[label].to_numpy(), frame[score].to_numpy()
    return {
        "auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "precision_at_capacity": precision_at_capacity(frame, score, label, capacity),
    }


def probability_metrics(frame: pd.DataFrame, probability: str, label: str = "label", bins: int = 10) -> dict[str, float]:
    y, p = frame[label].to_numpy(), frame[probability].to_numpy()
    edges = np.quantile(p, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    ece = sum(abs(y[which == b].mean() - p[which == b].mean()) * (which == b).mean()
              for b in range(bins) if (which == b).any())
    return {"brier": float(brier_score_loss(y, p)), "calibration_error": float(ece)}
