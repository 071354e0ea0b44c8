"""Cases: who owns each ready case's next action, and what officers did about it.

Ownership: each ready case of a worklist run gets an owner among the officers of its patch (the roster, given by
the caller: the service reads it from its principals), the one with the fewest open cases under their capacity; a
case whose patch's officers are all full waits, and says so. A supervisor can reassign a case. Every assignment is
in the audit trail.

Officer actions (`ACTION_KINDS`) are kept in the case store and become facts the readiness policy judges at the next
run (`as_events`): a contact attempt counts towards the contact limit, a promise to pay or an arrangement is an
arrangement in force, a hold or a dismissal holds the case until its date. A promise whose date has passed without
the promised amount received, or an arrangement whose instalments fall behind, is found by `settle_commitments` and
puts the case back on the list with that reason.
Free text (an officer's note) stays in the case store; the audit trail gets its digest.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, date, datetime
from typing import Literal

import pandas as pd
from pydantic import BaseModel, Field, model_validator

from casework.audit import AuditLog
from features.db import Database, and_in

TABLES: dict[str, dict[str, str]] = {
    "case_owners": {"tenancy_id": "TEXT", "patch": "TEXT", "owner": "TEXT", "assigned_at": "TEXT",
                    "assigned_by": "TEXT", "run_id": "TEXT"},
    "case_actions": {"action_id": "TEXT", "tenancy_id": "TEXT", "kind": "TEXT", "recorded_at": "TEXT",
                     "happened_on": "TEXT", "actor": "TEXT", "channel": "TEXT", "outcome": "TEXT",
                     "amount_pence": "BIGINT", "due_on": "TEXT", "instalments": "BIGINT", "until_on": "TEXT",
                     "every_days": "BIGINT", "reason": "TEXT", "referral": "TEXT", "note": "TEXT",
                     "settled_on": "TEXT", "settled_as": "TEXT", "draft_id": "TEXT"},
}
PRIMARY_KEYS = {"case_owners": ("tenancy_id",), "case_actions": ("action_id",)}
INDEXES = ("CREATE INDEX IF NOT EXISTS case_actions_tenancy ON case_actions (tenancy_id, happened_on)",
           "CREATE INDEX IF NOT EXISTS case_owners_owner ON case_owners (owner)")
CONTACT_CHANNELS = ("phone", "sms", "email", "letter", "visit", "in_person")
OUTCOMES = ("spoke_to_tenant", "left_message", "no_answer", "wrong_number", "tenant_refused")
HOLD_REASONS = ("awaiting_benefit", "hospital", "bereavement", "awaiting_advice", "complaint", "other")
DISMISS_REASONS = ("paid_elsewhere", "balance_wrong", "not_our_tenant", "duplicate", "other")
REFERRALS = ("money_advice", "benefits_advice", "tenancy_sustainment", "safeguarding")
REVIEW_REASONS = ("approach_agreed", "support_in_place", "advocate_involved")
DISPUTE_REASONS = ("rent_charge", "payment_missing", "service_charge", "repairs", "benefit_deduction", "other")
RESOLUTIONS = ("balance_corrected", "charge_confirmed", "withdrawn", "other")
#: How long a supervisor's clearance of a vulnerable tenant's case for contact lasts before it is reviewed again.
REVIEW_DAYS = 90
#: Actions only a supervisor (or an admin) may record: clearing a vulnerable tenant's case for contact, and serving a
#: notice of seeking possession (the protocol offers it for a supervisor to decide).
SUPERVISOR_ACTIONS = ("review_cleared", "notice_served")
#: Each action kind and the fields it needs. The protocol's own steps (a dispute opened or resolved, a rent statement
#: or a warning sent, a notice served, an income and expenditure assessment, help with a benefit claim) are recorded
#: by officers as they happen, not only read from the housing system's events feed.
ACTION_KINDS: dict[str, tuple[str, ...]] = {
    "contact_attempted": ("channel",), "contact_made": ("channel", "outcome"),
    "promise_to_pay": ("amount", "due_on"), "arrangement_agreed": ("amount", "instalments"),
    "hold": ("until_on", "reason"), "referral": ("referral",), "note": ("note",), "dismiss": ("reason",),
    "review_cleared": ("reason",), "dispute_opened": ("reason",), "dispute_resolved": ("reason",),
    "rent_statement_sent": ("channel",), "notice_served": (), "warning_sent": ("channel",),
    "income_expenditure": ("amount",), "benefit_claim_help": (), "contact_details_checked": (),
}
#: Kinds the service records itself, never an officer: a message the sending system could not deliver
#: (`casework.receipts`).
SYSTEM_KINDS = ("delivery_failed",)
#: The events feed's type each action is judged as (casework.facts), where it is one. An officer's notice is its own
#: type: the feed counts legal steps, and the housing system delivering the same notice later must not count twice.
AS_EVENT = {"contact_attempted": "contact_attempted", "contact_made": "contact_made",
            "promise_to_pay": "arrangement_agreed", "arrangement_agreed": "arrangement_agreed",
            "dispute_opened": "dispute_opened", "dispute_resolved": "dispute_resolved",
            "rent_statement_sent": "rent_statement_sent", "notice_served": "notice_served",
            "warning_sent": "proceedings_warning_sent", "benefit_claim_help": "benefit_claim_made",
            "delivery_failed": "contact_undelivered", "contact_details_checked": "contact_details_checked"}
#: Each action's reason codes, where it has them.
REASONS = {"hold": HOLD_REASONS, "dismiss": DISMISS_REASONS, "review_cleared": REVIEW_REASONS,
           "dispute_opened": DISPUTE_REASONS, "dispute_resolved": RESOLUTIONS}
#: How long an income and expenditure assessment's affordable amount stands before it is taken again.
ASSESSMENT_DAYS = 180
DISMISS_DAYS = 28


class OfficerAction(BaseModel):
    """One thing an officer did or decided about a case."""

    kind: Literal[tuple(ACTION_KINDS)]  # type: ignore[valid-type]
    happened_on: date | None = Field(default=None, description="The day it happened (default: today)")
    channel: Literal[CONTACT_CHANNELS] | None = None  # type: ignore[valid-type]
    outcome: Literal[OUTCOMES] | None = None  # type: ignore[valid-type]
    amount: float | None = Field(default=None, gt=0, le=100_000, description="Pounds promised, or each instalment "
                                 "(everything the tenant agreed to pay in it, rent included), or what an income and "
                                 "expenditure assessment found the tenant can afford a week")
    due_on: date | None = Field(default=None, description="A promise's date")
    instalments: int | None = Field(default=None, ge=1, le=520, description="An arrangement's number of payments")
    every_days: int | None = Field(default=None, ge=1, le=31, description="Days between an arrangement's payments "
                                   "(default 7); the first is due on due_on, or every_days after it was agreed")
    until_on: date | None = Field(default=None, description="A hold's last day")
    reason: str | None = Field(default=None, description="A hold's, a dismissal's, a dispute's or its resolution's "
                               "reason (a code)")
    referral: Literal[REFERRALS] | None = None  # type: ignore[valid-type]
    note: str | None = Field(default=None, max_length=4000, description="Free text: kept in the case store only")

    @model_validator(mode="after")
    def _complete(self) -> OfficerAction:
        missing = [name for name in ACTION_KINDS[self.kind] if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a {self.kind} needs {', '.join(missing)}")
        allowed = REASONS.get(self.kind)
        if allowed and self.reason not in allowed:
            raise ValueError(f"a {self.kind}'s reason is one of {', '.join(allowed)}")
        return self


def ensure_schema(db: Database) -> None:
    db.ensure_tables(TABLES, PRIMARY_KEYS, INDEXES)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _of_tenancies(db: Database, table: str, tenancy_ids: list[str] | None, order: str = "") -> pd.DataFrame:
    """A case-store table's rows (of the given tenancies, or all)."""
    sql, params = and_in(f"SELECT * FROM {table} WHERE 1 = 1", [], "tenancy_id", tenancy_ids)
    return db.query(sql + order, params)


def owners(db: Database, tenancy_ids: list[str] | None = None) -> pd.DataFrame:
    """The owner of each case (of the given tenancies, or all)."""
    return _of_tenancies(db, "case_owners", tenancy_ids)


def assign(db: Database, log: AuditLog, ready: pd.DataFrame, roster: dict[str, list[str]], capacity: int,
           run_id: str) -> pd.DataFrame:
    """Give each unowned case of `ready` (tenancy_id, patch; highest risk first) an owner among its patch's officers
    in `roster`, the one with the fewest open cases (cases of `ready` they own) while under `capacity`. Returns the
    assignments made (tenancy_id, patch, owner); each is in the audit trail."""
    with db.transaction():
        held = owners(db)
        open_cases = held[held["tenancy_id"].isin(set(ready["tenancy_id"]))]["owner"].value_counts().to_dict()
        taken = set(held["tenancy_id"])
        made = []
        for case in ready.itertuples():
            free = [o for o in sorted(roster.get(case.patch, [])) if open_cases.get(o, 0) < capacity]
            if case.tenancy_id in taken or not free:
                continue
            owner = min(free, key=lambda o: open_cases.get(o, 0))
            open_cases[owner] = open_cases.get(owner, 0) + 1
            made.append({"tenancy_id": case.tenancy_id, "patch": case.patch, "owner": owner, "assigned_at": _now(),
                         "assigned_by": "arrears", "run_id": run_id})
        assigned = pd.DataFrame(made, columns=list(TABLES["case_owners"]))
        db.append("case_owners", assigned, list(TABLES["case_owners"]))
    for row in made:
        log.append("arrears", "system", "case_assigned", row["tenancy_id"],
                   {"owner": row["owner"], "patch": row["patch"], "run_id": run_id, "capacity": capacity})
    return assigned[["tenancy_id", "patch", "owner"]]


def reassign(db: Database, log: AuditLog, tenancy_id: str, to: str, actor: str, role: str, reason: str,
             patch: str | None = None) -> dict:
    """Give a case another owner, or a first one (a supervisor's decision, recorded with its reason code)."""
    with db.transaction():
        held = owners(db, [tenancy_id])
        before = None if held.empty else str(held["owner"].iloc[0])
        if before is None:
            db.append("case_owners", pd.DataFrame([{"tenancy_id": tenancy_id, "patch": patch, "owner": to,
                                                    "assigned_at": _now(), "assigned_by": actor, "run_id": None}]),
                      list(TABLES["case_owners"]))
        else:
            db.execute("UPDATE case_owners SET owner = ?, assigned_at = ?, assigned_by = ? WHERE tenancy_id = ?",
                       [to, _now(), actor, tenancy_id])
    log.append(actor, role, "case_reassigned", tenancy_id, {"from": before, "to": to, "reason": reason})
    return {"tenancy_id": tenancy_id, "owner": to, "before": before}


class Unaffordable(ValueError):
    """An arrangement asks more a week than the tenant's latest income and expenditure assessment found affordable."""


def record_action(db: Database, log: AuditLog, tenancy_id: str, action: OfficerAction, actor: str, role: str,
                  day: date | None = None) -> dict:
    """Keep an officer's action and put it in the audit trail (its note as a digest). Undated, it happened on `day`
    (the service's day; default today). An arrangement above the affordable amount of the latest income and
    expenditure assessment is refused (protocol 2.2: affordable sums)."""
    happened = action.happened_on or day or date.today()
    if action.kind == "arrangement_agreed":
        _check_affordable(db, tenancy_id, action, happened)
    row = _action_row(tenancy_id, action.model_dump() | {"happened_on": happened}, actor)
    db.append("case_actions", pd.DataFrame([row]), list(TABLES["case_actions"]))
    detail = {k: v for k, v in row.items() if v is not None and k not in ("tenancy_id", "actor", "note",
                                                                            "recorded_at", "settled_on",
                                                                            "settled_as")}
    if action.note:
        detail["note_sha256"] = hashlib.sha256(action.note.encode()).hexdigest()
    log.append(actor, role, "action_recorded", tenancy_id, detail)
    return row


def _action_row(tenancy_id: str, given: dict, actor: str) -> dict:
    amount = given.get("amount")
    row = {"action_id": uuid.uuid4().hex[:16], "tenancy_id": tenancy_id, "recorded_at": _now(), "actor": actor,
           "amount_pence": None if amount is None else round(amount * 100), "settled_on": None, "settled_as": None}
    for name in ("kind", "happened_on", "channel", "outcome", "due_on", "instalments", "every_days", "until_on",
                 "reason", "referral", "note", "draft_id"):
        row[name] = given.get(name)
    for name in ("happened_on", "due_on", "until_on"):
        row[name] = _text(row[name])
    return row


def affordable(recorded: pd.DataFrame, as_of: date) -> float | None:
    """Pounds a week the latest income and expenditure assessment (within `ASSESSMENT_DAYS` of `as_of`) found the
    tenant can afford, or None without one."""
    taken = recorded[recorded["kind"] == "income_expenditure"]
    on = pd.to_datetime(taken["happened_on"])
    taken = taken[(on <= pd.Timestamp(as_of)) & (on > pd.Timestamp(as_of) - pd.Timedelta(days=ASSESSMENT_DAYS))]
    return None if taken.empty else int(taken.sort_values("happened_on")["amount_pence"].iloc[-1]) / 100


def _check_affordable(db: Database, tenancy_id: str, action: OfficerAction, day: date) -> None:
    weekly_cap = affordable(actions(db, [tenancy_id]), day)
    weekly = (action.amount or 0) * 7 / (action.every_days or 7)
    if weekly_cap is not None and weekly > weekly_cap + 0.005:
        raise Unaffordable(f"The arrangement asks £{weekly:,.2f} a week; the income and expenditure assessment "
                           f"found £{weekly_cap:,.2f} a week affordable: agree a lower amount, or take the "
                           "assessment again if the tenant's circumstances have changed")


def release_contacts(draft: dict, day: date, actor: str, carries: tuple[str, ...]) -> pd.DataFrame:
    """The case actions a released draft is: a contact attempt by its channel, and each protocol step it `carries`
    (a statement of arrears: `rent_statement_sent`; a warning of proceedings: `warning_sent`), dated `day`."""
    kinds = ("contact_attempted", *carries)
    return pd.DataFrame([_action_row(str(draft["tenancy_id"]), {
        "kind": kind, "happened_on": day, "channel": draft["channel"], "draft_id": draft["draft_id"],
        "reason": "draft_released"}, actor) for kind in kinds], columns=list(TABLES["case_actions"]))


def _text(value) -> str | None:
    return None if value is None else str(value)


def actions(db: Database, tenancy_ids: list[str] | None = None) -> pd.DataFrame:
    """Recorded actions (of the given tenancies, or all), oldest first."""
    return _of_tenancies(db, "case_actions", tenancy_ids, " ORDER BY happened_on, recorded_at")


def as_events(recorded: pd.DataFrame) -> pd.DataFrame:
    """Officer actions as the events the readiness policy reads (tenancy_id, event_date, type): contacts, promises
    and arrangements as they are; a settled promise as its arrangement completed (kept) or broken (missed) on the
    day it was settled."""
    judged = recorded[recorded["kind"].isin(AS_EVENT) & (recorded["settled_as"] != "undelivered")]
    events = pd.DataFrame({"tenancy_id": judged["tenancy_id"], "event_date": pd.to_datetime(judged["happened_on"]),
                           "type": judged["kind"].map(AS_EVENT)})
    settled = recorded[recorded["settled_on"].notna() & recorded["settled_as"].isin(["kept", "missed"])]
    ends = pd.DataFrame({"tenancy_id": settled["tenancy_id"], "event_date": pd.to_datetime(settled["settled_on"]),
                         "type": settled["settled_as"].map({"kept": "arrangement_completed",
                                                            "missed": "arrangement_broken"})})
    return pd.concat([events, ends], ignore_index=True)


def holds(recorded: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """The officer holds and dismissals in force on `as_of`: tenancy_id, until (the last day held), reason."""
    held = recorded[recorded["kind"].isin(["hold", "dismiss"])].copy()
    held["until"] = pd.to_datetime(held["until_on"]).fillna(
        pd.to_datetime(held["happened_on"]) + pd.Timedelta(days=DISMISS_DAYS))
    held = held[(pd.to_datetime(held["happened_on"]) <= as_of) & (held["until"] >= as_of)]
    held["reason"] = held["kind"] + ": " + held["reason"].fillna("")
    return held.sort_values("until").groupby("tenancy_id").tail(1)[["tenancy_id", "until", "reason"]]


def instalments_passed(first_due: pd.Timestamp, every_days: int, count: int, as_of: pd.Timestamp) -> int:
    """How many of `count` instalments, due every `every_days` from `first_due`, fell due before `as_of` (an
    instalment due on `as_of` itself still has the day)."""
    days = (pd.Timestamp(as_of) - pd.Timestamp(first_due)).days
    return 0 if days <= 0 else min(count, -(-days // every_days))


def judge_commitment(paid_pence: int, amount_pence: int, passed: int, count: int) -> str | None:
    """A promise's or an arrangement's outcome so far: kept once everything agreed has arrived, missed once less
    has arrived than the instalments already due, else still running (None)."""
    if paid_pence >= count * amount_pence:
        return "kept"
    return "missed" if paid_pence < passed * amount_pence else None


def _terms(action: dict) -> tuple[pd.Timestamp, int, int]:
    """A commitment's first due day, days between instalments and number of instalments (a promise: one)."""
    every = int(action["every_days"]) if action.get("every_days") and not pd.isna(action["every_days"]) else 7
    if action["kind"] == "promise_to_pay":
        return pd.Timestamp(action["due_on"]), every, 1
    first = (pd.Timestamp(action["due_on"]) if action.get("due_on")
             else pd.Timestamp(action["happened_on"]) + pd.Timedelta(days=every))
    return first, every, int(action["instalments"])


def reviews(recorded: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """The supervisors' clearances of vulnerable tenants' cases for contact still in force on `as_of`
    (`REVIEW_DAYS`): tenancy_id, reviewed_on (the latest)."""
    cleared = recorded[recorded["kind"] == "review_cleared"]
    on = pd.to_datetime(cleared["happened_on"])
    cleared = cleared[(on <= as_of) & (on > as_of - pd.Timedelta(days=REVIEW_DAYS))]
    return (cleared.assign(reviewed_on=pd.to_datetime(cleared["happened_on"])).groupby("tenancy_id", as_index=False)
            ["reviewed_on"].max())


def settle_commitments(db: Database, log: AuditLog, received: pd.DataFrame,
                       as_of: pd.Timestamp) -> dict[str, list]:
    """Settle each open promise and arrangement against the receipts (`received`: tenancy_id, posted_date,
    amount_pence negative; from the oldest open one's day): kept once everything agreed has arrived since it was
    made; missed once less has arrived than what fell due before `as_of` (a promise's one payment, an
    arrangement's instalments so far). A missed one puts the case back: the audit trail records the return with
    its reason (`missed_promise`, `missed_instalment`), and the next run judges the arrangement broken. Returns the
    tenancies whose commitment was kept, and missed."""
    day = str(pd.Timestamp(as_of).date())
    open_ones = db.query("SELECT * FROM case_actions WHERE kind IN ('promise_to_pay', 'arrangement_agreed') "
                         "AND settled_on IS NULL AND happened_on <= ?", [day])
    settled: dict[str, list] = {"kept": [], "missed": []}
    for action in open_ones.to_dict("records"):
        mine = received[(received["tenancy_id"] == action["tenancy_id"])
                        & (received["posted_date"] >= pd.Timestamp(action["happened_on"]))
                        & (received["posted_date"] <= pd.Timestamp(as_of))]
        paid, amount = -int(mine["amount_pence"].sum()), int(action["amount_pence"])
        first, every, count = _terms(action)
        passed = instalments_passed(first, every, count, as_of)
        outcome = judge_commitment(paid, amount, passed, count)
        if outcome is None:
            continue
        db.execute("UPDATE case_actions SET settled_on = ?, settled_as = ? WHERE action_id = ?",
                   [day, outcome, action["action_id"]])
        if outcome == "missed":
            promise = action["kind"] == "promise_to_pay"
            log.append("arrears", "system", "case_returned", action["tenancy_id"], {
                "reason": "missed_promise" if promise else "missed_instalment", "action_id": action["action_id"],
                "due_on": str(first.date()) if promise else str((first + pd.Timedelta(days=every * (passed - 1)))
                                                                .date()),
                "expected_pence": passed * amount, "received_pence": paid})
        settled[outcome].append(action["tenancy_id"])
    return settled
