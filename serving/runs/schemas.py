"""What worklist runs, casework and the job log answer, typed, so the service's OpenAPI spec (`/docs.json`) is real
and can be fuzzed. The vocabularies (readiness states, action kinds, channels, stages) are the casework package's,
each defined once there; the treasury's answers are in `serving.treasury.schemas`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from casework.cases import ACTION_KINDS, CONTACT_CHANNELS, OUTCOMES, REFERRALS, SYSTEM_KINDS
from casework.drafts import DRAFT_CHANNELS, REJECT_REASONS, STAGES
from casework.policy import QUEUES
from casework.receipts import STATUSES
from serving.runs.experiments import ARMS

ReadinessState = Literal[QUEUES]  # type: ignore[valid-type]
ActionKind = Literal[tuple(ACTION_KINDS)]  # type: ignore[valid-type]
RecordedKind = Literal[(*ACTION_KINDS, *SYSTEM_KINDS)]  # type: ignore[valid-type]
DeliveryStatus = Literal[STATUSES]  # type: ignore[valid-type]
ContactChannel = Literal[CONTACT_CHANNELS]  # type: ignore[valid-type]
ContactOutcome = Literal[OUTCOMES]  # type: ignore[valid-type]
Referral = Literal[REFERRALS]  # type: ignore[valid-type]
DraftChannel = Literal[DRAFT_CHANNELS]  # type: ignore[valid-type]
Stage = Literal[STAGES]  # type: ignore[valid-type]
RejectReason = Literal[REJECT_REASONS]  # type: ignore[valid-type]
Arm = Literal[ARMS]  # type: ignore[valid-type]


class ReasonFeature(BaseModel):
    feature: str = Field(description="Model feature name")
    value: float | None = Field(description="The tenancy's value of the feature (null when unknown)")
    contribution: float = Field(description="SHAP contribution to the raw score (log-odds); positive raises risk")
    text: str = Field(description="The fact in words")


class Reason(BaseModel):
    concept: str = Field(description="Officer concept: arrears, change, payments, circumstances or tenancy")
    label: str = Field(description="The concept in words")
    contribution: float = Field(description="Sum of all its features' SHAP contributions (log-odds)")
    text: str = Field(description="What an officer reads: the concept, its strongest facts, and which way it pushed")
    features: list[ReasonFeature] = Field(description="The concept's largest contributions (up to 3), largest first")


class ScoredCase(BaseModel):
    tenancy_id: str
    patch: str | None = None
    risk_score: float = Field(description="Calibrated probability that arrears grow within the label horizon")
    raw_score: float = Field(description="Model raw score (log-odds) = base_value + all contributions")
    base_value: float = Field(description="SHAP expected value of the raw score over the training data")
    reasons: list[Reason]
    other_contribution: float = Field(description="Sum of the contributions of the concepts not listed in reasons")


class StateReason(BaseModel):
    rule: str = Field(description="The policy rule that fired")
    text: str


class ExpectedPayment(BaseModel):
    p10_days: float | None = Field(description="Days from as_of by which the tenant pays with 10% probability")
    p50_days: float | None = Field(description="... 50% (null: not within the model's 56-day horizon)")
    p90_days: float | None = Field(description="... 90%")
    p50_date: str | None = Field(description="as_of + P50, the expected payment date")


class WorklistRow(ScoredCase):
    rank: int = Field(description="Position in this list")
    readiness_state: ReadinessState = Field(description="The case's readiness state (docs/policy.md)")
    state_reasons: list[StateReason] = Field(description="Every policy rule that fired for this case")
    next_action: str
    protocol_step: str | None = Field(description="For a ready case: its pre-action protocol step")
    hold_until: str | None = Field(description="For a hold or blocked case: the date it ends, when known")
    policy_version: str
    expected_payment: ExpectedPayment | None = Field(description="From the payment-date model, when there is one")
    owner: str | None = Field(default=None, description="Who owns the case's next action (null: nobody yet)")
    experiment: str | None = Field(default=None, description="The experiment this run assigned the case to "
                                   "(docs/experiments.md; null: none)")
    arm: Arm | None = Field(default=None, description="Its arm: treatment, or holdout (no proactive contact of the "
                            "held-out kind; statutory steps go ahead)")
    experiment_note: str | None = Field(default=None, description="What an officer reads on a held-out case: "
                                        "'no proactive contact this week (experiment ...)'")
    expected_gain: float | None = Field(default=None, description="For a ready case, when an uplift model is "
                                        "champion: the pounds a contact is expected to bring in over 4 weeks")


class ScoreResponse(BaseModel):
    model_version: str
    feature_service: str
    as_of: str = Field(description="Date the features are as of: the ledger's latest posting date")
    scores: list[ScoredCase]
    unknown: list[str] = Field(description="Requested tenancy_ids with no online features (not scored)")


class WorklistResponse(BaseModel):
    run_id: str = Field(description="The recorded worklist run this list comes from")
    model_version: str
    feature_service: str
    policy_version: str
    as_of: str = Field(description="Date the features are as of: the ledger's latest posting date")
    population: int = Field(description="Live tenancies considered (after the patch filter)")
    states: list[str] = Field(description="The readiness states listed")
    order: str = Field(default="risk", description="risk: highest risk first; gain: highest expected gain first")
    state_counts: dict[str, int] = Field(description="Cases in every readiness state (after the patch filter)")
    waiting: dict[str, int] = Field(description="Per patch: cases in the listed states beyond its capacity")
    generation_seconds: float | None = Field(
        default=None, description="Seconds the run took to generate: score everyone, judge readiness, explain "
        "every listable case, record (null for runs recorded before this was measured)")
    rows: list[WorklistRow]


class StateChange(BaseModel):
    tenancy_id: str
    patch: str | None
    before: str | None = Field(description="Readiness state in the previous run (null: not live then)")
    after: str | None = Field(description="Readiness state now (null: no longer live)")


class ScoreMove(BaseModel):
    tenancy_id: str
    patch: str | None
    before: float
    after: float


class Payment(BaseModel):
    tenancy_id: str
    transaction_id: str
    posted_date: str
    amount: float = Field(description="Pounds received (positive)")


class ChangesResponse(BaseModel):
    run_id: str
    as_of: str
    previous_run_id: str | None
    previous_as_of: str | None
    entered: list[str] = Field(description="Tenancies on the ready list now that were not on it before")
    left: list[str] = Field(description="Tenancies on the ready list before that are not on it now")
    state_changes: list[StateChange]
    score_moves: list[ScoreMove] = Field(description="Risk scores that moved by at least the configured amount")
    payments: list[Payment] = Field(description="Receipts that arrived between the two runs")


class JobRun(BaseModel):
    run_id: str = Field(description="The job run's id")
    job: str = Field(description="refresh, drift, bias, performance, retrain, or a job the schedule file adds")
    status: str = Field(description="running, succeeded or failed")
    started_by: str = Field(description="schedule (the scheduler, for its slot) or manual (`arrears schedule run`)")
    started_at: str = Field(description="UTC")
    finished_at: str | None = Field(description="UTC; null while running")
    outputs: dict = Field(description="What the run wrote and found (report paths, headline figures)")
    error: str | None = Field(description="Why it failed (first line of the error)")


class Alert(BaseModel):
    raised_at: str = Field(description="UTC")
    job: str = Field(description="The job whose run raised it")
    kind: str = Field(description="feature_drift, segment_drift, score_drift, bias, performance_drop, "
                      "precision_shortfall, promotion_refused, "
                      "job_failed, job_overdue… (docs/monitoring.md says what each means and what to do)")
    severity: str = Field(description="warning or error")
    message: str = Field(description="What was found, in words")
    value: float | None = Field(description="The figure that breached")
    threshold: float | None = Field(description="The threshold it breached")


class MonitoringStatus(BaseModel):
    latest_runs: list[JobRun] = Field(description="Each job's latest run")
    alerts: list[Alert] = Field(description="Alerts raised in the last `days` days, newest first")


# -- casework (docs/casework.md) -----------------------------------------------------------------------------------
class CaseAction(BaseModel):
    action_id: str
    kind: RecordedKind = Field(description="What was done or decided (docs/casework.md)")
    happened_on: str
    actor: str
    channel: ContactChannel | None = None
    outcome: ContactOutcome | None = None
    amount: float | None = Field(default=None, description="Pounds promised, or per instalment")
    due_on: str | None = None
    instalments: int | None = None
    every_days: int | None = None
    until_on: str | None = None
    reason: str | None = None
    referral: Referral | None = None
    note: str | None = None
    settled_as: str | None = Field(default=None, description="A promise: kept or missed, once settled; a release's "
                                   "contact: undelivered, once a receipt said it did not arrive")
    draft_id: str | None = Field(default=None, description="The released draft this contact (or step) is")


class Draft(BaseModel):
    draft_id: str
    tenancy_id: str
    version: int = Field(description="1: as generated; 2: as edited by its approver (the original is kept)")
    parent_id: str | None = Field(description="The draft this version edits")
    stage: Stage
    language: str
    channel: DraftChannel
    template: str
    template_version: str
    text: str
    status: str = Field(description="pending, edited, approved, rejected, released or suppressed")
    created_by: str
    created_at: str
    decided_by: str | None = None
    reason: str | None = Field(default=None, description="Why it was rejected or suppressed")
    needs_translation: str | None = Field(default=None, description="The tenant's language, when it has no "
                                          "templates: the text is English and must be translated before it goes")
    delivery: list[DeliveryStatus] = Field(default_factory=list, description="A released draft's delivery receipts, "
                                           "in the order they came (sent, failed, bounced, returned)")


class AuditEntry(BaseModel):
    seq: int
    at: str
    actor: str
    role: str
    action: str
    tenancy_id: str | None
    detail: dict


class CaseNow(BaseModel):
    as_of: str = Field(description="The day it is judged on: the later of the ledger's latest day and today")
    readiness_state: ReadinessState
    protocol_step: str | None = Field(description="A ready case's next step of the pre-action protocol")
    next_action: str
    reasons: list[str] = Field(description="Every rule that fired, in words")
    contacts_recent: int = Field(description="Contacts in the contact limit's window (releases included)")


class CaseFile(BaseModel):
    tenancy_id: str
    patch: str | None
    readiness_state: ReadinessState | None = Field(description="In the latest worklist run")
    owner: str | None = Field(description="Who owns the next action (null: nobody yet; see owner_note)")
    owner_note: str
    now: CaseNow | None = Field(default=None, description="The case as the policy judges it now, with every action "
                                "recorded and every letter released since the run (the next run records the same)")
    experiment: str | None = Field(default=None, description="The experiment the latest run assigned it to (null: "
                                   "none)")
    arm: Arm | None = Field(default=None, description="Its arm in the latest run: treatment or holdout")
    experiment_note: str | None = Field(default=None, description="A held-out case: 'no proactive contact this week "
                                        "(experiment ...)'; its statutory steps still go ahead")
    actions: list[CaseAction]
    drafts: list[Draft]
    audit: list[AuditEntry] = Field(description="Every decision about this case, oldest first")


class ApprovalQueue(BaseModel):
    drafts: list[Draft] = Field(description="Drafts waiting for a decision (pending) or for release (approved)")


class OutboxMessage(BaseModel):
    seq: int = Field(description="The message's sequence number: ask for what follows the last one read")
    message_id: str = Field(description="Stable across every delivery of it: drop a repeat by this id")
    draft_id: str
    tenancy_id: str
    channel: DraftChannel
    language: str
    text: str
    released_at: str
    released_by: str


class Outbox(BaseModel):
    messages: list[OutboxMessage] = Field(description="Released drafts for the landlord's sending system, in sequence "
                                          "order")
    next_after_seq: int = Field(description="The after_seq to ask with next (the last message's seq, or the one "
                                "asked with when there is nothing new)")


# -- an officer's day: my cases (serving/runs/mycases.py) -----------------------------------------------------------
MyCaseCode = Literal["returned", "promise_due", "instalment_due", "ready"]


class MyCaseReason(BaseModel):
    code: MyCaseCode = Field(description="returned (a missed promise or instalment put it back), promise_due or "
                             "instalment_due (due on the service's day), ready (ready in the latest run)")
    text: str = Field(description="Why it is on the list, in words")
    due_on: str | None = Field(default=None, description="The day the payment was (or is) due")
    amount_due: float | None = Field(default=None, description="Pounds due (a shortfall, a promise, an instalment)")


class MyCase(BaseModel):
    tenancy_id: str
    patch: str | None
    readiness_state: ReadinessState | None = Field(description="In the latest worklist run (null: not in it)")
    protocol_step: str | None = Field(description="Its pre-action protocol step in the latest run")
    why: list[MyCaseReason] = Field(description="Every reason it is on the list, the most pressing first")
    amount_due: float | None = Field(description="The most pressing reason's amount, where there is one")


class MyCases(BaseModel):
    officer: str = Field(description="Whose cases these are")
    day: str = Field(description="The service's day (ARREARS_TODAY, else the system date): what 'today' means")
    run_id: str = Field(description="The latest worklist run, that the states and steps come from")
    as_of: str = Field(description="The run's data date")
    cases: list[MyCase] = Field(description="Returned cases first, then payments due today, then ready cases "
                                "(highest risk first)")


class DeliveryReceipt(BaseModel):
    message_id: str
    status: DeliveryStatus
    tenancy_id: str
    channel: str
    reported_at: str
    received_at: str
    reason: str | None = None
    repeat: bool = Field(description="True: this receipt was kept before; nothing changed")


class AccessRead(BaseModel):
    at: str = Field(description="When (UTC)")
    principal: str = Field(description="Who read it (a member of staff or a system; never a tenant)")
    role: str
    what: str = Field(description="What was read: case_page, case_file, score, export or access_log")


class AccessLogAnswer(BaseModel):
    tenancy_id: str
    reads: list[AccessRead] = Field(description="Every recorded read of this tenancy's data, oldest first")
