"""Model promotions as decisions: the gates decide (`training.promotion`), and the audit trail records the decision
beside MLflow's record of it (`casework.audit`)."""

from __future__ import annotations

import getpass

from casework.store import open_audit
from serving.settings import ServingSettings
from training.promotion import promote


def promote_recorded(settings: ServingSettings, model: str, actor: str | None = None, role: str = "cli"):
    """`training.promotion.promote`, then the decision in the audit trail: a refusal each time one is made, a
    promotion once per version (a re-run that finds the version already champion, perhaps after a crash before
    it was recorded here, records it if it is missing)."""
    decision = promote(settings, model)
    detail = {"model": decision.model, "version": decision.version}
    with open_audit(settings) as log:
        if not decision.promoted:
            log.append(actor or getpass.getuser(), role, "promotion_refused",
                       detail=detail | {"failed_gates": decision.failed_gates})
        elif (log.latest("model_promoted", model=decision.model) or {}).get("version") != decision.version:
            log.append(actor or getpass.getuser(), role, "model_promoted", detail=detail | _figures(decision))
    return decision


def _figures(decision) -> dict:
    """The headline test figures the decision was made on."""
    wanted = ("auc", "precision_at_capacity", "mae_days", "p10_p90_coverage")
    return {"metrics": {k: round(float(decision.metrics[k]), 6) for k in wanted if k in decision.metrics}}
