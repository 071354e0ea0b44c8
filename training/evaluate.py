"""Evaluation metrics for the models and for the baselines a housing team actually uses.

Ranking baselines, each a score where higher means "work this case first":
- `balance_first`: highest balance first;
- `rule_stage`: the classic stage list: arrears over two weeks of rent, oldest arrears first; nobody else flagged;
- `fifo`: first in, first out: every case in arrears, in the order it went into arrears (oldest first).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from features.catalogue import concept_matrix

#: Ranking baselines: name → the feature columns its score needs.
RANKING_BASELINES: dict[str, tuple[str, ...]] = {
    "balance": ("balance",),
    "rule": ("arrears_weeks", "weeks_since_clear"),
    "fifo": ("balance", "weeks_since_clear"),
}


def baseline_scores(frame: pd.DataFrame) -> pd.DataFrame:
    """The score of every ranking baseline for each row (higher = earlier on the list)."""
    out = pd.DataFrame(index=frame.index)
    out["balance"] = frame["balance"].fillna(0.0)
    age = frame["weeks_since_clear"].fillna(frame["weeks_since_clear"].max()).fillna(0.0)
    # Flagged cases first (a large offset), the oldest first among them; the unflagged after, all tied.
    out["rule"] = np.where(frame["arrears_weeks"].fillna(0) > 2.0, 1e6 + age, 0.0)
    out["fifo"] = np.where(frame["balance"].fillna(0) > 0, 1e6 + age, 0.0)
    return out


def _top_k(week: pd.DataFrame, score: str, capacity: float) -> pd.DataFrame:
    k = max(1, int(round(len(week) * capacity)))
    return week.sort_values([score, "tenancy_id"], ascending=[False, True]).head(k)


def at_capacity(frame: pd.DataFrame, score: str, label: str = "label", capacity: float = 0.1) -> tuple[float, float]:
    """(precision, captured) at officer capacity, averaged over as_of dates.

    Each week officers can work the top `capacity` share of the caseload (at least one case; ties broken by
    tenancy id): precision is how many of those were going to get worse; captured is the share of all who got worse
    that week that were on the list. One sort for all weeks: the lift plot asks this for eight capacities.
    """
    ordered = frame.sort_values(["event_timestamp", score, "tenancy_id"], ascending=[True, False, True])
    weeks = ordered.groupby("event_timestamp", sort=False)[label]
    k = np.maximum(1, np.round(weeks.transform("size").to_numpy() * capacity).astype(int))
    top = ordered[ordered.groupby("event_timestamp", sort=False).cumcount().to_numpy() < k]
    taken = top.groupby("event_timestamp", sort=False)[label]
    positives = weeks.sum()
    captured = (taken.sum() / positives)[positives > 0]
    return float(taken.mean().mean()), float(captured.mean()) if len(captured) else float("nan")


def ranking_metrics(frame: pd.DataFrame, score: str, label: str = "label", capacity: float = 0.1) -> dict[str, float]:
    y, p = frame[label].to_numpy(), frame[score].to_numpy()
    precision, captured = at_capacity(frame, score, label, capacity)
    single_class = len(np.unique(y)) < 2
    return {
        "auc": float("nan") if single_class else float(roc_auc_score(y, p)),
        "pr_auc": float("nan") if single_class else float(average_precision_score(y, p)),
        "precision_at_capacity": precision,
        "captured_at_capacity": captured,
    }


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Mean predicted vs observed rate in equal-count bins of the prediction."""
    edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(len(edges) - 2, 0))
    frame = pd.DataFrame({"bin": which, "y": y, "p": p})
    return frame.groupby("bin").agg(predicted=("p", "mean"), observed=("y", "mean"), n=("y", "size"))


def probability_metrics(frame: pd.DataFrame, probability: str, label: str = "label",
                        bins: int = 10) -> dict[str, float]:
    y, p = frame[label].to_numpy(), frame[probability].to_numpy()
    table = calibration_table(y, p, bins)
    ece = float((abs(table["observed"] - table["predicted"]) * table["n"]).sum() / table["n"].sum())
    return {"brier": float(brier_score_loss(y, p)), "calibration_error": ece}


def risk_metrics(frame: pd.DataFrame, capacity: float, rank: str = "risk_rank",
                 probability: str = "risk_score") -> dict[str, float]:
    """Everything logged for a risk model on a test frame with `label`, its ranking score, its probability and the
    baseline inputs; every ranking baseline is measured on the same rows."""
    metrics = ranking_metrics(frame, rank, capacity=capacity)
    metrics |= probability_metrics(frame, probability)
    scored = frame.join(baseline_scores(frame).add_prefix("baseline_"))
    for name in RANKING_BASELINES:
        base = ranking_metrics(scored, f"baseline_{name}", capacity=capacity)
        for metric in ("precision_at_capacity", "captured_at_capacity", "auc", "pr_auc"):
            metrics[f"{metric}_{name}_baseline"] = base[metric]
    metrics["base_rate"] = float(frame["label"].mean())
    return metrics


def auc_standard_error(auc: float, positives: float, negatives: float) -> float:
    """Hanley & McNeil (1982) standard error of an AUC from the number of positive and negative cases."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)) / (
        positives * negatives)
    return float(np.sqrt(max(variance, 0.0)))


def group_metrics(frame: pd.DataFrame, groups: pd.DataFrame, capacity: float, min_rows: int = 200,
                  min_positives: int = 20) -> pd.DataFrame:
    """Risk-model quality per group of each monitoring-only attribute (the bias gate's input).

    One row per (attribute, group): rows, base rate, mean predicted risk, AUC, share of the group put on the
    officers' list (flag rate), precision there. Groups too small to judge are reported with `judged` False.
    """
    joined = frame.merge(groups, on="tenancy_id", how="left")
    rows = []
    for attribute in groups.columns.drop("tenancy_id"):
        flagged = set()
        for _, week in joined.groupby("event_timestamp"):
            flagged.update(_top_k(week, "risk_score", capacity).index)
        for group, part in joined.groupby(joined[attribute].fillna("unknown")):
            y = part["label"].to_numpy()
            judged = len(part) >= min_rows and y.sum() >= min_positives and (1 - y).sum() >= min_positives
            on_list = part.index.isin(list(flagged))
            # Rows repeat each tenancy week after week: judge uncertainty on the number of tenancies, not rows.
            share = part["tenancy_id"].nunique() / len(part)
            auc = float(roc_auc_score(y, part["risk_score"])) if judged else float("nan")
            rows.append({
                "attribute": attribute, "group": str(group), "rows": len(part), "base_rate": float(y.mean()),
                "mean_risk": float(part["risk_score"].mean()),
                "tenancies": int(part["tenancy_id"].nunique()),
                "auc": auc,
                "auc_se": auc_standard_error(auc, y.sum() * share, (1 - y).sum() * share) if judged else float("nan"),
                "base_rate_se": float(np.sqrt(y.mean() * (1 - y.mean()) / max(part["tenancy_id"].nunique(), 1))),
                "flag_rate": float(on_list.mean()),
                "precision_flagged": float(y[on_list].mean()) if on_list.any() else float("nan"),
                "judged": bool(judged),
            })
    return pd.DataFrame(rows)


def bias_metrics(groups: pd.DataFrame, overall_auc: float) -> dict[str, float]:
    """The worst gaps across judged groups, as measured and as surely as the group's size allows.

    `bias_max_auc_gap`: how far the worst group's AUC is below the overall AUC. `..._lower_bound` subtracts 1.96
    standard errors (Hanley & McNeil, on tenancies rather than repeated weekly rows): the gap we are 97.5% sure of.
    Likewise for calibration: mean predicted risk versus the group's observed rate.
    """
    judged = groups[groups["judged"]]
    if judged.empty:
        return {"bias_groups_judged": 0.0}
    auc_gap = overall_auc - judged["auc"]
    calibration_gap = (judged["mean_risk"] - judged["base_rate"]).abs()
    return {
        "bias_groups_judged": float(len(judged)),
        "bias_max_auc_gap": float(auc_gap.max()),
        "bias_max_auc_gap_lower_bound": float((auc_gap - 1.96 * judged["auc_se"]).max()),
        "bias_max_calibration_gap": float(calibration_gap.max()),
        "bias_max_calibration_gap_lower_bound": float((calibration_gap - 1.96 * judged["base_rate_se"]).max()),
    }


def reason_coverage(shap_values: np.ndarray, names: list[str], n_reasons: int = 3) -> dict[str, float]:
    """Share of each row's |SHAP| mass the shown reasons cover (mean over rows): the `n_reasons` largest single
    features, against the `n_reasons` largest concepts (every member feature of a shown concept counts)."""
    mass = np.abs(shap_values).sum(axis=1)
    top_features = -np.sort(-np.abs(shap_values), axis=1)[:, :n_reasons].sum(axis=1)
    _, membership = concept_matrix(names)
    chosen = np.argsort(-np.abs(shap_values @ membership), axis=1, kind="stable")[:, :n_reasons]
    shown = membership[:, chosen].transpose(1, 0, 2).max(axis=2)  # rows × features: 1 if in a shown concept
    covered = (np.abs(shap_values) * shown).sum(axis=1)
    ok = mass > 0
    return {"features": float(np.mean(top_features[ok] / mass[ok])), "concepts": float(np.mean(covered[ok] / mass[ok]))}
