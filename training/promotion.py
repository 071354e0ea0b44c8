"""Quality gates and promotion: a version registered as `challenger` becomes `champion` only when its gates pass.

Every decision, promoted or refused, is tagged on the version and recorded as a run of its own in the `promotions`
experiment (which model and version, the previous champion, who decided, which gates failed, a person's reason).
`hold` runs the gates without moving `champion`: a challenger that passes them waits for a person's approval
(`training.approval`), one that fails is refused as `promote` refuses it.
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

#: The `promotion` tag of a challenger that passed its gates and waits for a person's approval.
WAITING = "waiting for approval"
#: The `promotion` tag of a challenger a person refused begins with this (then who, and why).
REFUSED_BY = "refused by "


@dataclass(frozen=True)
class PromotionDecision:
    model: str
    version: str
    promoted: bool
    failed_gates: list[str]
    metrics: dict[str, float]
    waiting: bool = False  #: passed its gates and waits for a person's approval (`hold`)


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


def uplift_gates(metrics: dict[str, float], gates: dict) -> list[str]:
    """The contact-uplift model's gates, on held-out randomised rows (`training.uplift.holdout_metrics`): a Qini
    coefficient clear of zero by a margin, and more incremental pounds at capacity than the risk-like order and than
    random targeting."""
    failed = []
    if metrics["qini_coefficient"] < gates["min_qini_coefficient"]:
        failed.append(f"quality floor: qini coefficient £{metrics['qini_coefficient']:.1f} per treated tenancy is "
                      f"below £{gates['min_qini_coefficient']}")
    for baseline in ("risk_order", "random"):
        gain = metrics["incremental_at_capacity"] - metrics[f"incremental_at_capacity_{baseline}"]
        if gain <= gates[f"min_gain_over_{baseline}"]:
            failed.append(f"baseline: incremental_at_capacity does not beat the {baseline.replace('_', ' ')} "
                          f"(£{gain:+,.0f})")
    return failed


#: Each registered model: its parameters file and its gates.
GATES: dict[str, tuple[str, Callable[[dict[str, float], dict], list[str]]]] = {
    registry.RISK_MODEL: ("arrears_risk", risk_gates),
    registry.PAYMENT_MODEL: ("payment_date", payment_gates),
    registry.UPLIFT_MODEL: ("contact_uplift", uplift_gates),
}
#: The models `arrears train` and the `retrain` job make, promoted together when no model is named. The uplift
#: model is learnt from a randomised pilot, not from the ledger's outcomes, and is promoted by name.
TRAINED: tuple[str, ...] = (registry.RISK_MODEL, registry.PAYMENT_MODEL)


def record_promotion(settings: TrainingSettings, model: str, version: str, previous: str | None, promoted: bool,
                     failed: list[str], decided_by: str | None = None, reason: str = "") -> str:
    """Every promotion decision becomes a run of its own in the `promotions` experiment (who, what, why)."""
    import mlflow  # see the note at the imports

    registry.configure(settings)
    with mlflow.start_run(experiment_id=registry.experiment(settings, registry.PROMOTIONS),
                          run_name=f"{model} v{version}") as run:
        mlflow.set_tags({"model": model, "version": version, "previous_champion": previous or "",
                         "decision": "promoted" if promoted else "refused",
                         "decided_by": decided_by or getpass.getuser(), "failed_gates": "; ".join(failed),
                         "reason": reason})
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


def _judged(settings: TrainingSettings, model: str, params: dict | None):
    """The client, the challenger, its test metrics, the champion now (None: none yet) and the gates it fails."""
    params_file, gates = GATES[model]
    params = params or load_params(params_file)
    client = registry.configure(settings)
    challenger = registry.model_by_alias(settings, model, registry.CHALLENGER)
    metrics = client.get_run(challenger.run_id).data.metrics
    try:
        previous = registry.model_by_alias(settings, model, registry.CHAMPION).version
    except registry.NoChampion:
        previous = None
    return client, challenger, metrics, previous, gates(metrics, params["gates"])


def promote(settings: TrainingSettings, model: str, params: dict | None = None, decided_by: str | None = None,
            reason: str = "", version: str | None = None) -> PromotionDecision:
    """Move `champion` of `model` to its challenger if its gates name no failure; record the decision (a tag on the
    version and a run in the `promotions` experiment) either way. A challenger a person refused stays refused.

    Safe to run again, also after a crash part-way: a challenger that is already champion is not decided again; its
    promotion is recorded once, with the champion before it (kept on the version before the alias moved). With
    `version`, only that version is decided: a LookupError if another has become the challenger meanwhile."""
    client, challenger, metrics, previous, failed = _judged(settings, model, params)
    if version is not None and challenger.version != str(version):
        raise LookupError(f"{model} version {version} is no longer the challenger (version {challenger.version} is)")
    if challenger.tags.get("promotion", "").startswith(REFUSED_BY):  # a person's refusal is not the gates' to undo
        return PromotionDecision(model, challenger.version, False, [challenger.tags["promotion"]], dict(metrics))
    if previous == challenger.version:  # promoted already (by an earlier run, perhaps one killed before recording)
        previous, failed = challenger.tags.get("previous_champion") or None, []
    elif not failed:
        client.set_model_version_tag(model, challenger.version, "previous_champion", previous or "")
        crash_point("promote:tagged")
        client.set_registered_model_alias(model, registry.CHAMPION, challenger.version)
        crash_point("promote:aliased")
    client.set_model_version_tag(model, challenger.version, "promotion",
                                 "refused: " + "; ".join(failed) if failed else "promoted")
    if failed or not _recorded_promotion(settings, model, challenger.version):
        record_promotion(settings, model, challenger.version, previous, not failed, failed, decided_by, reason)
    return PromotionDecision(model, challenger.version, not failed, failed, dict(metrics))


def hold(settings: TrainingSettings, model: str, params: dict | None = None,
         decided_by: str | None = None) -> PromotionDecision:
    """Run the challenger's gates without moving `champion`: one that passes waits for a person's approval (tagged
    `WAITING`); one that fails is refused and recorded as `promote` refuses it. A challenger that is already
    champion, or already decided by a person, is left as it is."""
    client, challenger, metrics, previous, failed = _judged(settings, model, params)
    tag = challenger.tags.get("promotion", "")
    if previous == challenger.version or tag.startswith(REFUSED_BY):
        return PromotionDecision(model, challenger.version, previous == challenger.version,
                                 [] if previous == challenger.version else [tag], dict(metrics))
    client.set_model_version_tag(model, challenger.version, "promotion",
                                 "refused: " + "; ".join(failed) if failed else WAITING)
    if failed:
        record_promotion(settings, model, challenger.version, previous, False, failed, decided_by)
    return PromotionDecision(model, challenger.version, False, failed, dict(metrics), waiting=not failed)


def refuse(settings: TrainingSettings, model: str, version: str, decided_by: str, reason: str) -> None:
    """A person refuses challenger `version` of `model`: tagged on the version (so no later `promote` or approval
    moves `champion` to it) and recorded in the `promotions` experiment with the reason."""
    client = registry.configure(settings)
    try:
        previous = registry.model_by_alias(settings, model, registry.CHAMPION).version
    except registry.NoChampion:
        previous = None
    client.set_model_version_tag(model, version, "promotion", f"{REFUSED_BY}{decided_by}: {reason}")
    record_promotion(settings, model, version, previous, False, [], decided_by, reason)
