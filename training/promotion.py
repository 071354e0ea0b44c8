"""Quality gates and promotion: a version registered as `challenger` becomes `champion` only when its gates pass.

Every decision, promoted or refused, is tagged on the version and recorded as a run of its own in the `promotions`
experiment (which model and version, the previous champion, who decided, which gates failed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from training import registry
from training.config import load_params
from training.settings import TrainingSettings


@dataclass(frozen=True)
class PromotionDecision:
    model: str
    version: str
    promoted: bool
    failed_gates: list[str]
    metrics: dict[str, float]


def risk_gates(metrics: dict[str, float], gates: dict) -> list[str]:
    """The gates a risk-model version must pass; each failure is named with its figures."""
    failed = []
    if metrics["auc"] < gates["min_auc"]:
        failed.append(f"quality floor: auc {metrics['auc']:.3f} is below {gates['min_auc']}")
    for baseline in ("balance", "rule"):
        lift = metrics["precision_at_capacity"] - metrics[f"precision_at_capacity_{baseline}_baseline"]
        if lift < gates["min_lift_over_baselines"]:
            failed.append(f"baseline: precision_at_capacity does not beat the {baseline} baseline (lift {lift:+.3f})")
    if "champion_auc_same_window" in metrics:
        drop = metrics["champion_auc_same_window"] - metrics["auc"]
        if drop > gates["max_auc_regression"]:
            failed.append(f"regression: auc {metrics['auc']:.3f} is {drop:.3f} below the champion's "
                          f"{metrics['champion_auc_same_window']:.3f} on the same test weeks")
    return failed + bias_gates(metrics, gates)


def bias_gates(metrics: dict[str, float], gates: dict) -> list[str]:
    """A gap counts when we are sure of it (its lower bound, given the group's size) and it is material."""
    failed = []
    if metrics.get("bias_max_auc_gap_lower_bound", 0.0) > gates["max_group_auc_gap"]:
        failed.append(f"bias: a monitored group's auc is at least {metrics['bias_max_auc_gap_lower_bound']:.3f} "
                      f"below the overall auc (limit {gates['max_group_auc_gap']}); see evidence/group_metrics.csv")
    if metrics.get("bias_max_calibration_gap_lower_bound", 0.0) > gates["max_group_calibration_gap"]:
        failed.append(f"bias: a monitored group's mean predicted risk is at least "
                      f"{metrics['bias_max_calibration_gap_lower_bound']:.3f} from its observed rate (limit "
                      f"{gates['max_group_calibration_gap']}); see evidence/group_metrics.csv")
    return failed


def payment_gates(metrics: dict[str, float], gates: dict) -> list[str]:
    """The payment-date model's gates: a calibrated P10–P90 and a P50 better than each tenant's own habit."""
    failed = []
    coverage = metrics["p10_p90_coverage"]
    if not gates["min_coverage"] <= coverage <= gates["max_coverage"]:
        failed.append(f"calibration: P10–P90 holds {coverage:.1%} of outcomes, outside "
                      f"{gates['min_coverage']:.0%}–{gates['max_coverage']:.0%}")
    ratio = metrics["mae_days"] / max(metrics["mae_days_naive_baseline"], 1e-9)
    if ratio > gates["max_mae_ratio_to_baseline"]:
        failed.append(f"baseline: mae_days {metrics['mae_days']:.2f} is not better than the tenant's own habit "
                      f"({metrics['mae_days_naive_baseline']:.2f})")
    return failed


#: Each registered model: its parameters file and its gates.
GATES: dict[str, tuple[str, Callable[[dict[str, float], dict], list[str]]]] = {
    registry.RISK_MODEL: ("arrears_risk", risk_gates),
    registry.PAYMENT_MODEL: ("payment_date", payment_gates),
}


def record_promotion(settings: TrainingSettings, model: str, version: str, previous: str | None, promoted: bool,
                     failed: list[str]) -> str:
    """Every promotion decision becomes a run of its own in the `promotions` experiment (who, what, why)."""
    import getpass

    import mlflow

    registry.configure(settings)
    with mlflow.start_run(experiment_id=registry.experiment(settings, registry.PROMOTIONS),
                          run_name=f"{model} v{version}") as run:
        mlflow.set_tags({"model": model, "version": version, "previous_champion": previous or "",
                         "decision": "promoted" if promoted else "refused", "decided_by": getpass.getuser(),
                         "failed_gates": "; ".join(failed)})
    return run.info.run_id


def promote(settings: TrainingSettings, model: str, params: dict | None = None) -> PromotionDecision:
    """Move `champion` of `model` to its challenger if its gates name no failure; record the decision (a tag on the
    version and a run in the `promotions` experiment) either way."""
    params_file, gates = GATES[model]
    params = params or load_params(params_file)
    client = registry.configure(settings)
    challenger = registry.model_by_alias(settings, model, registry.CHALLENGER)
    metrics = client.get_run(challenger.run_id).data.metrics
    failed = gates(metrics, params["gates"])
    try:
        previous = registry.model_by_alias(settings, model, registry.CHAMPION).version
    except registry.NoChampion:
        previous = None
    if not failed:
        client.set_registered_model_alias(model, registry.CHAMPION, challenger.version)
    client.set_model_version_tag(model, challenger.version, "promotion",
                                 "refused: " + "; ".join(failed) if failed else "promoted")
    record_promotion(settings, model, challenger.version, previous, not failed, failed)
    return PromotionDecision(model, challenger.version, not failed, failed, dict(metrics))
