"""Evidence logged with every model version: plots (PNG) and a model card (Markdown), written to a folder that the
training run then logs to MLflow as artefacts. No tenant identifiers or personal data go into any of them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def roc_plot(test: pd.DataFrame, scores: dict[str, str], path: Path) -> Path:
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    for label, column in scores.items():
        fpr, tpr, _ = roc_curve(test["label"], test[column])
        ax.plot(fpr, tpr, label=f"{label} (AUC {roc_auc_score(test['label'], test[column]):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC on the test weeks")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def calibration_plot(table: pd.DataFrame, path: Path, title: str = "Calibration on the test weeks") -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.plot(table["predicted"], table["observed"], marker="o")
    ax.set(xlabel="predicted probability (bin mean)", ylabel="observed rate", title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def lift_plot(test: pd.DataFrame, scores: dict[str, str], path: Path) -> Path:
    """Precision among the top k% each week, for k from 2% to 50%: the model against every baseline."""
    from training.evaluate import at_capacity

    plt = _pyplot()
    shares = np.array([0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5])
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, column in scores.items():
        ax.plot(shares * 100, [at_capacity(test, column, capacity=s)[0] for s in shares], marker="o", label=label)
    ax.axhline(test["label"].mean(), color="grey", linestyle=":", label="base rate")
    ax.set(xlabel="officer capacity: top % of caseload worked each week", ylabel="share whose arrears grew",
           title="Lift versus the baselines")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def shap_summary_plot(booster, features: pd.DataFrame, path: Path, rows: int = 2000) -> Path:
    import shap

    plt = _pyplot()
    sample = features.sample(n=min(rows, len(features)), random_state=0)
    contrib = booster.predict(sample.to_numpy(dtype=float), pred_contrib=True)[:, :-1]
    shap.summary_plot(contrib, sample, show=False, max_display=15)
    fig = plt.gcf()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def forecast_plot(forecast: pd.DataFrame, path: Path, actual: pd.Series | None = None,
                  title: str = "Expected receipts by week") -> Path:
    plt = _pyplot()
    portfolio = forecast[forecast["scope"] == "portfolio"]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.fill_between(portfolio["week"], portfolio["p10"], portfolio["p90"], alpha=0.3, label="P10–P90")
    ax.plot(portfolio["week"], portfolio["p50"], marker="o", label="P50")
    if actual is not None:
        ax.plot(actual.index, actual.values, marker="x", color="black", label="actual")
    ax.set(xlabel="week ahead", ylabel="receipts (£)", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def metrics_table(metrics: dict[str, float], rows: list[tuple[str, str]]) -> str:
    """A Markdown table: model versus each baseline, metric by metric."""
    lines = ["| metric | " + " | ".join(name for name, _ in rows) + " |",
             "|---|" + "---|" * len(rows)]
    for metric in ("auc", "pr_auc", "precision_at_capacity", "captured_at_capacity"):
        cells = []
        for _, suffix in rows:
            value = metrics.get(f"{metric}{suffix}")
            cells.append("" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.3f}")
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def model_card(path: Path, *, title: str, sections: dict[str, str]) -> Path:
    text = [f"# {title}", ""]
    for heading, body in sections.items():
        text += [f"## {heading}", "", body.strip(), ""]
    path.write_text("\n".join(text))
    return path
