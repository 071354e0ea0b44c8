"""A case as a person works it, over HTTP, on a page or from the CLI (the endpoints in serving/api/service.py, the
pages in serving/web/casework.py and `arrears case` keep thin): a case's file, officers' actions,
reassignment, drafts, the approval queue, release and the outbox, each under the caller's patches. A case in a
patch the caller does not see is answered as not found, like one that does not exist."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from casework import cases, drafts, receipts
from casework.audit import AuditLog
from casework.settings import service_day
from casework.store import open_casework
from serving.access.principals import Forbidden, Principal
from serving.runs.casework import draft_from_run, judge_now, latest_row, release_draft, roster
from serving.runs.experiments import experiment_fields
from serving.runs.schemas import (
    ApprovalQueue,
    AuditEntry,
    CaseAction,
    CaseFile,
    CaseNow,
    DeliveryReceipt,
    Draft,
    Outbox,
    OutboxMessage,
)
from serving.runs.store import NoRun, open_runs
from serving.settings import ServingSettings


class NotVisible(LookupError):
    """No such case (or draft) in the caller's patches."""


def _row(settings: ServingSettings, tenancy_id: str, patches: Sequence[str] | None) -> dict:
    """The tenancy's row in the latest run, if the caller sees its patch."""
    try:
        found = latest_row(settings, tenancy_id)
    except NoRun:
        raise
    except LookupError:
        found = None
    if found is None or (patches is not None and found["patch"] not in set(patches)):
        raise NotVisible("No such case in the patches you see")  # no id: messages reach the service's log
    return found


def _clean(record: dict) -> dict:
    return {k: (None if not isinstance(v, (list, dict)) and pd.isna(v) else v) for k, v in record.items()}


def _action(row: dict) -> CaseAction:
    row = _clean(row)
    amount = None if row["amount_pence"] is None else int(row["amount_pence"]) / 100
    counts = {k: None if row.get(k) is None else int(row[k]) for k in ("instalments", "every_days")}
    return CaseAction(**{k: row[k] for k in CaseAction.model_fields if k in row and k not in ("amount", *counts)},
                      amount=amount, **counts)


def _draft(row: dict, delivery: list[str] | None = None) -> Draft:
    row = _clean(row)
    return Draft(**{k: row[k] for k in Draft.model_fields if k in row} | {"version": int(row["version"]),
                                                                          "delivery": delivery or []})


def case_file(settings: ServingSettings, principal: Principal, tenancy_id: str) -> CaseFile:
    row = _row(settings, tenancy_id, principal.patches)
    with open_casework(settings) as db:
        owner = cases.owners(db, [tenancy_id])
        recorded = cases.actions(db, [tenancy_id])
        written = drafts.drafts(db, [tenancy_id])
        delivered = receipts.receipts(db, [tenancy_id]).groupby("message_id")["status"].agg(list).to_dict()
        trail = AuditLog(db).entries(tenancy_id=tenancy_id)
    who = None if owner.empty else str(owner["owner"].iloc[0])
    note = (f"{who} owns the next action" if who else "Nobody yet: a case gets an owner when it is ready and an "
            f"officer of patch {row['patch']} has room (ARREARS_OFFICER_CAPACITY)")
    return CaseFile(tenancy_id=tenancy_id, patch=row["patch"], readiness_state=row["readiness_state"], owner=who,
                    owner_note=note, now=_now(settings, tenancy_id, recorded), **experiment_fields(row),
                    actions=[_action(r) for r in recorded.to_dict("records")],
                    drafts=[_draft(r, delivered.get(r["draft_id"])) for r in written.to_dict("records")],
                    audit=[AuditEntry(**{k: e[k] for k in AuditEntry.model_fields}) for e in
                           trail.to_dict("records")])


def _now(settings: ServingSettings, tenancy_id: str, recorded: pd.DataFrame) -> CaseNow | None:
    """The case judged now (`judge_now`), or None when the ledger cannot say (a tenancy no longer live)."""
    try:
        judged, facts, as_of = judge_now(settings, tenancy_id, recorded)
    except (LookupError, IndexError, KeyError):
        return None
    return CaseNow(as_of=str(as_of.date()), readiness_state=judged["readiness_state"],
                   protocol_step=judged["protocol_step"], next_action=str(judged["next_action"]),
                   reasons=[text for _, text in judged["state_reasons"]],
                   contacts_recent=int(facts["attempts_recent"].iloc[0]))


def record_action(settings: ServingSettings, principal: Principal, tenancy_id: str,
                  action: cases.OfficerAction) -> CaseAction:
    """Record an officer's action (undated: on the service's day); a supervisor's kinds only by a supervisor."""
    _row(settings, tenancy_id, principal.patches)
    if action.kind in cases.SUPERVISOR_ACTIONS and principal.role not in ("supervisor", "admin", "cli"):
        raise Forbidden(f"{principal.role} may not record {action.kind}: a supervisor decides it (clearing a "
                        "vulnerable tenant's case for contact, serving a notice)")
    with open_casework(settings) as db:
        return _action(cases.record_action(db, AuditLog(db), tenancy_id, action, principal.name, principal.role,
                                           service_day(settings)))


def reassign(settings: ServingSettings, principal: Principal, tenancy_id: str, to: str, reason: str) -> CaseFile:

    row = _row(settings, tenancy_id, principal.patches)
    officers = roster(settings).get(row["patch"], [])
    if to not in officers:
        raise ValueError(f"{to!r} is not an officer of patch {row['patch']}: one of {', '.join(officers) or 'none'}")
    with open_casework(settings) as db:
        cases.reassign(db, AuditLog(db), tenancy_id, to, principal.name, principal.role, reason, row["patch"])
    return case_file(settings, principal, tenancy_id)


def write_draft(settings: ServingSettings, principal: Principal, tenancy_id: str, channel: str | None,
                language: str | None) -> Draft:
    """A draft for the case (by the register's channel and language unless others are asked for)."""

    _row(settings, tenancy_id, principal.patches)
    return _draft(draft_from_run(settings, tenancy_id, channel, language, principal.name, principal.role))


def _visible_draft(settings: ServingSettings, principal: Principal, draft_id: str) -> dict:
    with open_casework(settings) as db:
        try:
            found = drafts.draft(db, draft_id)
        except LookupError as exc:
            raise NotVisible("No such draft in the patches you see") from exc
    try:
        _row(settings, str(found["tenancy_id"]), principal.patches)
    except NotVisible as exc:
        raise NotVisible("No such draft in the patches you see") from exc
    return found


def approval_queue(settings: ServingSettings, principal: Principal, patch: str | None) -> ApprovalQueue:
    scope = principal.patch_scope(patch)
    with open_casework(settings) as db:
        waiting = drafts.drafts(db, statuses=("pending", "approved"))
    if scope is not None and len(waiting):
        with open_runs(settings) as store:
            patch_of = store.patches_of(store.latest()["run_id"], waiting["tenancy_id"].tolist())
        waiting = waiting[waiting["tenancy_id"].map(patch_of).isin(set(scope))]
    return ApprovalQueue(drafts=[_draft(r) for r in waiting.to_dict("records")])


def decide(settings: ServingSettings, principal: Principal, draft_id: str, decision: str, text: str | None,
           reason: str | None) -> Draft:
    _visible_draft(settings, principal, draft_id)
    with open_casework(settings) as db:
        log = AuditLog(db)
        if decision == "approve":
            return _draft(drafts.approve(db, log, draft_id, principal.name, principal.role, text))
        return _draft(drafts.reject(db, log, draft_id, principal.name, principal.role, reason or ""))


def release(settings: ServingSettings, principal: Principal, draft_id: str) -> Draft:

    _visible_draft(settings, principal, draft_id)
    return _draft(release_draft(settings, draft_id, principal.name, principal.role))


def outbox(settings: ServingSettings, after_seq: int = 0, limit: int = drafts.OUTBOX_PAGE) -> Outbox:
    """The messages after sequence number `after_seq`, in order (docs/casework.md)."""
    with open_casework(settings) as db:
        messages = drafts.outbox(db, after_seq, limit)
    found = [OutboxMessage(**_clean(m) | {"seq": int(m["seq"]), "message_id": str(m["draft_id"])})
             for m in messages.to_dict("records")]
    return Outbox(messages=found, next_after_seq=found[-1].seq if found else after_seq)


def delivery_receipt(settings: ServingSettings, principal: Principal, message_id: str, status: str,
                     reported_at=None, reason: str | None = None) -> DeliveryReceipt:
    """Keep the sending system's receipt for a released message, once (docs/delivery.md); a message that did not
    arrive is no contact, and its case waits for its contact details to be checked."""
    with open_casework(settings) as db:
        try:
            kept = receipts.record(db, AuditLog(db), message_id, status, principal.name, principal.role,
                                   reported_at, reason, service_day(settings))
        except LookupError as exc:
            raise NotVisible("No such message in the outbox") from exc
    return DeliveryReceipt(**_clean(kept))
