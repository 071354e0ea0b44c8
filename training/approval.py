"""A person's decision on a waiting challenger: approve it (it becomes `champion` only if its gates pass too) or
refuse it, with a reason.

The scheduled retrain leaves each challenger that passes its gates waiting (`promotion.hold`); a data scientist
decides with `arrears promote --approve/--refuse` or on the models page, both through `approve` and `refuse` here.
Each decision is recorded in MLflow (the version's tags, the `promotions` experiment) and in the audit trail the
caller opens and gives (`casework.store.open_audit`: training does not import casework): who, in which role, which
model and version, why.

The service's models page reaches the gates through this module, never `training.promotion` itself: approving is a
person's decision on a version already trained, not a training run.
"""

from __future__ import annotations

from training import registry
from training.promotion import WAITING, PromotionDecision, promote
from training.promotion import refuse as refuse_version
from training.settings import TrainingSettings

#: The headline test figures an approval is recorded with.
FIGURES = ("auc", "precision_at_capacity", "mae_days", "p10_p90_coverage")


def figures(decision: PromotionDecision) -> dict:
    """The headline test figures the decision was made on."""
    return {"metrics": {k: round(float(decision.metrics[k]), 6) for k in FIGURES if k in decision.metrics}}


def is_waiting(challenger: registry.ModelRef, champion: str | None) -> bool:
    """Whether `challenger` waits for a person: not champion, and neither refused by its gates nor by a person (a
    version `arrears train` registered has not met its gates yet: approving it runs them)."""
    return challenger.version != champion and challenger.tags.get("promotion", "") in ("", WAITING)


def waiting(settings: TrainingSettings, model: str) -> registry.ModelRef | None:
    """The challenger of `model` that waits for a person's decision (None: none waits)."""
    try:
        challenger = registry.model_by_alias(settings, model, registry.CHALLENGER)
    except registry.NoChampion:
        return None
    try:
        champion = registry.model_by_alias(settings, model, registry.CHAMPION).version
    except registry.NoChampion:
        champion = None
    return challenger if is_waiting(challenger, champion) else None


def _waiting(settings: TrainingSettings, model: str, version: str | None) -> registry.ModelRef:
    """The waiting challenger, which must be `version` when one is named (the one the person looked at)."""
    if model not in (registry.RISK_MODEL, registry.PAYMENT_MODEL):
        raise LookupError(f"No model {model!r}: one of {registry.RISK_MODEL}, {registry.PAYMENT_MODEL}")
    found = waiting(settings, model)
    if found is None:
        try:
            ref = registry.model_by_alias(settings, model, registry.CHALLENGER)
        except registry.NoChampion:
            raise LookupError(f"{model} has no challenger: `arrears train` (or the monthly retrain) makes "
                              "one") from None
        state = ref.tags.get("promotion") or "champion already"
        raise ValueError(f"{model} version {ref.version} does not wait for a decision ({state}): a new challenger "
                         "(`arrears train`, or the monthly retrain) can be decided")
    if version is not None and str(version) != found.version:
        raise LookupError(f"{model} version {version} is not the waiting challenger (version {found.version} is): "
                          "look again before deciding")
    return found


def approve(settings: TrainingSettings, log, model: str, actor: str, role: str, version: str | None = None,
            reason: str = "") -> PromotionDecision:
    """A person approves the waiting challenger of `model`: it becomes champion if its gates pass as well (they run
    again now, against the champion of now); if they do not, it is refused and the decision names the gates. Either
    way the decision goes in `log` (an `AuditLog`) with who approved it and why."""
    found = _waiting(settings, model, version)
    decision = promote(settings, model, decided_by=actor, reason=reason, version=found.version)
    detail = {"model": model, "version": decision.version, "reason": reason, "approved_by_person": True}
    if decision.promoted:
        log.append(actor, role, "model_promoted", detail=detail | figures(decision))
    else:
        log.append(actor, role, "promotion_refused", detail=detail | {"failed_gates": decision.failed_gates})
    return decision


def refuse(settings: TrainingSettings, log, model: str, actor: str, role: str, reason: str,
           version: str | None = None) -> str:
    """A person refuses the waiting challenger of `model` (a reason is required): the champion stays, and no later
    approval or `arrears promote` moves it to this version. Recorded in MLflow and in `log`. Returns the version."""
    if not reason.strip():
        raise ValueError("A refusal needs a reason (what the challenger got wrong, or what to look at first)")
    found = _waiting(settings, model, version)
    refuse_version(settings, model, found.version, actor, reason.strip())
    log.append(actor, role, "promotion_refused", detail={"model": model, "version": found.version,
                                                         "reason": reason.strip(), "failed_gates": [],
                                                         "refused_by_person": True})
    return found.version

