"""Quality gates and promotion: a version registered as `challenger` becomes `champion` only when its gates pass.

Every decision, promoted or refused, is tagged on the version and recorded as a run of its own in the `promotions`
experiment (which model and version, the previous champion, who decided, which gates failed).
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from dataclasses import dataclass

from features.crash import crash_point
from training import registry
from training.config import load_params
from training.settings import TrainingSettings

# mlflow (5-6 s to import) is imported where a decision is recorded: `arrears promote`'s module imports this one
# (for GATES) at start-up, like every other command.


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
    import mlflow  # see the note at the imports

    registry.configure(settings)
    with mlflow.start_run(experiment_id=registry.experiment(settings, registry.PROMOTIONS),
                          run_name=f"{model} v{version}") as run:
        mlflow.set_tags({"model": model, "version": version, "previous_champion": previous or "",
                         "decision": "promoted" if promoted else "refused", "decided_by": getpass.getuser(),
                         "failed_gates": "; ".join(failed)})
        crash_point("promote:recording")
    return run.info.run_id


def _recorded_promotion(settings: TrainingSettings, model: str, version: str) -> bool:
    """Whether the promotion of `model` `version` is recorded (a finished run); a record a killed process left
    unfinished is marked KILLED, so the audit shows the attempt and is not mistaken for the decision."""
    client = registry.configure(settings)
    runs = client.search_runs([registry.experiment(settings, registry.PROMOTIONS)],
                              f"tags.model = '{model}' AND tags.version = '{version}' AND tags.decision = 'promoted'")
    for run in runs:
        if run.info.status == "RUNNING":
            client.set_terminated(run.info.run_id, "KILLED")
    return any(run.info.status == "FINISHED" for run in runs)


def promote(settings: TrainingSettings, model: str, params: dict | None = None) -> PromotionDecision:
    """Move `champion` of `model` to its challenger if its gates name no failure; record the decision (a tag on the
    version and a run in the `promotions` experiment) either way.

    Safe to run again, also after a crash part-way: a challenger that is already champion is not decided again; its
    promotion is recorded once, with the champion before it (kept on the version before the alias moved)."""
    params_file, gates = GATES[model]
    params = params or load_params(params_file)
    client = registry.configure(settings)
    challenger = registry.model_by_alias(settings, model, registry.CHALLENGER)
    metrics = client.get_run(challenger.run_id).data.metrics
    try:
        previous = registry.model_by_alias(settings, model, registry.CHAMPION).version
    except registry.NoChampion:
        previous = None
    if previous == challenger.version:  # promoted already (by an earlier run, perhaps one killed before recording)
        previous, failed = challenger.tags.get("previous_champion") or None, []
    else:
        failed = gates(metrics, params["gates"])
        if not failed:
            client.set_model_version_tag(model, challenger.version, "previous_champion", previous or "")
            crash_point("promote:tagged")
            client.set_registered_model_alias(model, registry.CHAMPION, challenger.version)
            crash_point("promote:aliased")
    client.set_model_version_tag(model, challenger.version, "promotion",
                                 "refused: " + "; ".join(failed) if failed else "promoted")
    if failed or not _recorded_promotion(settings, model, challenger.version):
        record_promotion(settings, model, challenger.version, previous, not failed, failed)
    return PromotionDecision(model, challenger.version, not failed, failed, dict(metrics))
