"""Model promotions as decisions: the gates decide (`training.promotion`), a person approves or refuses a waiting
challenger (`training.approval`), and the audit trail records each decision beside MLflow's record of it
(`casework.audit`)."""

from __future__ import annotations

import getpass

from casework.store import open_audit
from serving.settings import ServingSettings
from training import approval
from training.promotion import PromotionDecision, hold, promote


def promote_recorded(settings: ServingSettings, model: str, actor: str | None = None, role: str = "cli"):
    """`training.promotion.promote`, then the decision in the audit trail: a refusal each time one is made, a
    promotion once per version (a re-run that finds the version already champion, perhaps after a crash before
    it was recorded here, records it if it is missing)."""
    decision = promote(settings, model, decided_by=actor)
    detail = {"model": decision.model, "version": decision.version}
    with open_audit(settings) as log:
        if not decision.promoted:
            log.append(actor or getpass.getuser(), role, "promotion_refused",
                       detail=detail | {"failed_gates": decision.failed_gates})
        elif (log.latest("model_promoted", model=decision.model) or {}).get("version") != decision.version:
            log.append(actor or getpass.getuser(), role, "model_promoted", detail=detail | approval.figures(decision))
    return decision


def hold_recorded(settings: ServingSettings, model: str, actor: str = "scheduler",
                  role: str = "system") -> PromotionDecision:
    """`training.promotion.hold`: the challenger's gates run and it waits for a person's approval; a refusal by the
    gates goes in the audit trail as `promote_recorded` records one (waiting is not a decision, so not recorded)."""
    decision = hold(settings, model, decided_by=actor)
    if not decision.promoted and not decision.waiting:
        with open_audit(settings) as log:
            log.append(actor, role, "promotion_refused", detail={"model": decision.model, "version": decision.version,
                                                                 "failed_gates": decision.failed_gates})
    return decision


def approve_recorded(settings: ServingSettings, model: str, version: str | None = None, reason: str = "",
                     actor: str | None = None, role: str = "cli") -> PromotionDecision:
    """`training.approval.approve` with this home's audit trail: the person (default: the user at the shell)
    approves the waiting challenger, and it becomes champion if its gates pass too."""
    with open_audit(settings) as log:
        return approval.approve(settings, log, model, actor or getpass.getuser(), role, version, reason)


def refuse_recorded(settings: ServingSettings, model: str, reason: str, version: str | None = None,
                    actor: str | None = None, role: str = "cli") -> str:
    """`training.approval.refuse` with this home's audit trail; returns the version refused."""
    with open_audit(settings) as log:
        return approval.refuse(settings, log, model, actor or getpass.getuser(), role, reason, version)
