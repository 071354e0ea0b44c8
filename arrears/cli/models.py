"""Verbs for the models: `train` and `promote`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from arrears.cli.serving import record_worklist_run
from arrears.decisions import promote_recorded
from arrears.render import console, fail, metrics_table, out
from features.store.offline import FeatureStageError
from serving.settings import get_settings
from training.dataset import MissingFeatures
from training.labels import read_outcomes
from training.promotion import GATES
from training.registry import NoChampion

# Lazy on purpose: `train` imports training.train inside. At the top (LightGBM, scikit-learn, SciPy, holidays) it
# made every command, `arrears --help` included, take 17.2 s instead of 5.7 s (1,833 modules loaded, not 931):
# `uv run --frozen arrears --help`, median of 5 on 2 shared cores.

MODELS = ("all", "risk", "payment_date")


def train(
    outcomes: Annotated[Path | None, typer.Option(help="CSV of your own labels (tenancy_id, as_of_date, "
                                                     "outcome 0/1) to train the risk model on instead.")] = None,
    model: Annotated[str, typer.Option(help="Which model to train: all, risk or payment_date.")] = "all",
    truth: Annotated[Path | None, typer.Option(help="A simulated portfolio's hidden truth (the DIR_truth folder "
                                                    "`arrears simulate` writes): also measure the ceiling, what "
                                                    "a model knowing that truth reaches.")] = None,
) -> None:
    """Train the arrears-risk and payment-date models through their FeatureServices, evaluate them against the
    baselines (and backtest the cash forecast), log everything to MLflow and register each as `challenger`."""
    from training.train import train_payment_model, train_risk_model

    if model not in MODELS:
        fail(f"--model must be all, risk or payment_date, not {model!r}")
    settings = get_settings()
    steps = {"risk": ("arrears_risk", "Training the arrears-risk model…",
                      lambda: train_risk_model(settings, outcomes=read_outcomes(outcomes) if outcomes else None,
                                               truth=truth)),
             "payment_date": ("payment_date", "Training the payment-date model and backtesting the cash forecast…",
                              lambda: train_payment_model(settings, truth=truth))}
    for name, (registered, status, run) in steps.items():
        if model not in ("all", name):
            continue
        try:
            with console.status(status):
                result = run()
        except (MissingFeatures, FeatureStageError, ValueError) as exc:
            if model == "all" and name == "payment_date":  # the risk model stands on its own: keep it
                console.print(f"[yellow]warning:[/] {registered} not trained: {exc}")
                continue
            fail(f"{registered} not trained: {exc}")
        for note in result.notes:
            console.print(f"[yellow]note:[/] {note}")
        metrics_table(f"{registered} version {result.version} (challenger)", result.metrics)


def promote() -> None:
    """Move each model's `champion` to its `challenger` if the gates pass (quality floors, the baselines, no
    regression against the champion on the same test weeks, bias); otherwise name the failing gate. Exits 1 if any
    model was refused. Every decision is recorded in MLflow (experiment `promotions`)."""
    refused = []
    for model in GATES:
        try:
            decision = promote_recorded(get_settings(), model)
        except NoChampion as exc:
            fail(str(exc))
        if decision.promoted:
            out.print(f"{decision.model} version {decision.version} is now champion.")
        else:
            refused.append(f"{decision.model} version {decision.version} not promoted: "
                           + "; ".join(decision.failed_gates))
    record_worklist_run(get_settings())  # a new champion ranks differently: the served list follows it
    if refused:
        fail("\n".join(refused), 1)
