"""Verbs for the models: `train` and `promote` (the gates alone, or a person's approval or refusal of a waiting
challenger)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from arrears.cli.serving import record_worklist_run
from arrears.decisions import approve_recorded, promote_recorded, refuse_recorded
from arrears.render import console, fail, metrics_table, out
from features.store.offline import FeatureStageError
from serving.settings import get_settings
from training.dataset import MissingFeatures
from training.labels import read_outcomes
from training.promotion import GATES, TRAINED
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
    baselines (and backtest the cash forecast), log everything to MLflow and register each as `challenger`. The
    risk model learns only from outcomes the service's own contacts did not cause (held-out tenancies stand for
    the contacted: docs/experiments.md)."""
    from serving.runs.interventions import interventions
    from training.train import train_payment_model, train_risk_model

    if model not in MODELS:
        fail(f"--model must be all, risk or payment_date, not {model!r}")
    settings = get_settings()
    steps = {"risk": ("arrears_risk", "Training the arrears-risk model…",
                      lambda: train_risk_model(settings, outcomes=read_outcomes(outcomes) if outcomes else None,
                                               truth=truth,
                                               interventions=None if outcomes else interventions(settings))),
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


def promote(
    model: Annotated[str | None, typer.Option(help="Only this model (arrears_risk or payment_date); needed with "
                                                   "--approve and --refuse.")] = None,
    approve: Annotated[bool, typer.Option("--approve", help="Approve the model's challenger that waits for a "
                                                            "person (the monthly retrain leaves each one waiting): "
                                                            "it becomes champion if its gates pass too.")] = False,
    refuse: Annotated[bool, typer.Option("--refuse", help="Refuse the model's waiting challenger (needs --reason): "
                                                          "the champion stays, and the version is never "
                                                          "promoted.")] = False,
    reason: Annotated[str | None, typer.Option(help="Why: recorded with the decision in MLflow and the audit "
                                                    "trail (required with --refuse).")] = None,
    version: Annotated[str | None, typer.Option(help="The challenger version you looked at: the decision is "
                                                     "refused if another version waits instead.")] = None,
) -> None:
    """Decide on each model's `challenger`. Without --approve or --refuse: move `champion` to it if the gates pass
    (quality floors, the baselines, no regression against the champion on the same test weeks, bias), otherwise
    name the failing gate; exits 1 if any model was refused. With --approve or --refuse: your decision on the
    challenger the monthly retrain left waiting (`arrears schedule`; the models page shows it too); approving still
    runs the gates. Every decision is recorded in MLflow (experiment `promotions`) and in the audit trail, with who
    decided (you, at this shell) and why."""
    if model is not None and model not in GATES:
        fail(f"--model must be one of {', '.join(GATES)}, not {model!r}")
    if approve or refuse:
        _decide(model, approve, refuse, reason, version)
        return
    refused = []
    for name in [model] if model else TRAINED:
        try:
            decision = promote_recorded(get_settings(), name)
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


def _decide(model: str | None, approve: bool, refuse: bool, reason: str | None, version: str | None) -> None:
    """`promote --approve` or `--refuse`: a person's decision on the waiting challenger of one model."""
    if approve == refuse:
        fail("--approve or --refuse, not both")
    if model is None:
        fail(f"--model is needed with --{'approve' if approve else 'refuse'}: one of {', '.join(GATES)}")
    settings = get_settings()
    try:
        if refuse:
            refused = refuse_recorded(settings, model, reason or "", version)
            out.print(f"{model} version {refused} refused: the champion stays.")
            return
        decision = approve_recorded(settings, model, version, reason or "")
    except (LookupError, ValueError) as exc:
        fail(str(exc))
    if not decision.promoted:
        fail(f"{model} version {decision.version} approved but not promoted, its gates failed: "
             + "; ".join(decision.failed_gates), 1)
    out.print(f"{model} version {decision.version} approved: it is now champion.")
    record_worklist_run(settings)  # a new champion ranks differently: the served list follows it
