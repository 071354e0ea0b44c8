"""The BentoML service: online features from Feast + the champion model from the MLflow registry → scores, and the
recorded worklist runs → ranked, explained worklists with readiness states and what changed since the last run.

Run it with `arrears serve --port 3000` (or `bentoml serve serving.api.service:ArrearsWorklist`). The model and the
feature store are loaded once per worker, in `__init__`, never at import time; the work is the rooms' (`serving.runs`,
`serving.treasury`). Each endpoint declares the roles that may call it (`@endpoint`, `serving.access.declared`): the
door in front refuses anything undeclared, and a domain refusal becomes the status `serving.runs.answers` gives it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import bentoml
import bentoml.exceptions
from bentoml.validators import ContentType
from pydantic import Field

from casework.cases import OfficerAction
from casework.policy import QUEUES
from serving.access import observe
from serving.access.declared import PAGE_ROOT, endpoint
from serving.access.door import AccessGuard
from serving.access.principals import (
    ADMIN,
    AGGREGATES,
    CASEWORK,
    INCOME,
    MODELLING,
    SENDING,
    SUPERVISING,
    Principal,
)
from serving.api.errors import FaultAnswer
from serving.api.openapi import OpenApiTruth
from serving.income import allocation
from serving.income.schemas import SuspenseDecision, SuspenseQueueAnswer, queue_answer
from serving.income.store import queue_now
from serving.privacy.access_log import open_access_log, record_reads
from serving.privacy.holdings import archive
from serving.runs import casefile, mycases
from serving.runs.answers import status_of
from serving.runs.jobs import monitoring_status
from serving.runs.schemas import (
    AccessLogAnswer,
    AccessRead,
    ActionKind,
    ApprovalQueue,
    CaseAction,
    CaseFile,
    ChangesResponse,
    ContactChannel,
    ContactOutcome,
    DeliveryReceipt,
    DeliveryStatus,
    Draft,
    DraftChannel,
    MonitoringStatus,
    MyCases,
    Outbox,
    ReadinessState,
    Referral,
    ScoreResponse,
    WorklistResponse,
)
from serving.runs.worklist import Worklister
from serving.settings import get_settings
from serving.treasury.forecast import forecast_csv, served_forecast
from serving.treasury.kpis import kpis_now
from serving.treasury.schemas import CashForecastResponse, CollectionKpis, ForecastWeek, KpiRow
from serving.web.app import app as web_app

TenancyIds = Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]],
                      Field(min_length=1, max_length=1000, description="1 to 1,000 tenancy ids")]
Top = Annotated[int, Field(strict=True, ge=1, le=10_000, description="How many cases (1-10,000)")]
Days = Annotated[int, Field(strict=True, ge=1, le=3660, description="Alerts of the last this many days (1-3,660)")]
Weeks = Annotated[int, Field(strict=True, ge=1, le=26, description="Weeks ahead to forecast (1-26)")]
Patch = Annotated[str | None, Field(max_length=100, description="One patch (the portfolio is always included)")]
Months = Annotated[int, Field(strict=True, ge=1, le=240, description="The last this many calendar months")]
AsOf = Annotated[date | None, Field(description="Forecast from an earlier date (default: the latest data)")]
RentChange = Annotated[float, Field(ge=-50, le=50, description="A scenario: payments from the first Monday of April "
                                    "changed by this percentage (0: none; a scenario is never recorded)")]

TenancyId = Annotated[str, Field(min_length=1, max_length=64, description="A tenancy id")]
DraftId = Annotated[str, Field(min_length=1, max_length=64, description="A draft's id")]
Language = Annotated[str, Field(pattern=r"^[a-z]{2}$", description="A language code of the templates (en)")]
ReasonCode = Annotated[str, Field(min_length=1, max_length=40, description="A reason code (docs/casework.md)")]
DraftText = Annotated[str, Field(min_length=1, max_length=20_000, description="The approver's edited text")]
States = Annotated[list[ReadinessState], Field(min_length=1, max_length=len(QUEUES),
                                               description="Readiness states to list")]
Order = Annotated[Literal["risk", "gain"], Field(
    description="risk (default): ready cases highest risk first; gain: ready cases highest expected gain first (£ a "
    "contact brings in over 4 weeks, from the uplift champion), each patch's list still capped at its capacity")]
SuspenseTop = Annotated[int, Field(strict=True, ge=1, le=10_000, description="How many receipts (1-10,000)")]
ReceiptId = Annotated[str, Field(min_length=1, max_length=64, description="A receipt in suspense's id")]
T = TypeVar("T")


def _principal(ctx: bentoml.Context) -> Principal:
    """Who is asking, as the door (`serving.access.door.AccessGuard`) let them in: `OPEN` only when auth is open.
    A request the door did not see has nobody, and is refused: nothing falls back to an open principal."""
    principal = getattr(ctx.request.state, "principal", None)
    if principal is None:
        raise bentoml.exceptions.BentoMLException("Nobody is signed in: this endpoint is behind the door",
                                                  error_code=HTTPStatus.UNAUTHORIZED)
    return principal


def _answer(work: Callable[[], T]) -> T:
    """Run an endpoint's work; a domain refusal becomes the HTTP answer `serving.runs.answers` gives it."""
    try:
        return work()
    except Exception as exc:
        status = status_of(exc)
        if status is None:
            raise
        raise bentoml.exceptions.BentoMLException(str(exc), error_code=status) from exc


def _probability(settings, receipt_id: str, tenancy_id: str) -> float | None:
    """The match probability the queue showed for this match (kept with the decision), if it still shows it."""
    try:
        shown = queue_now(settings).candidates
    except Exception:  # noqa: BLE001 - the decision stands without it
        return None
    found = shown[(shown["receipt_id"] == receipt_id) & (shown["tenancy_id"] == tenancy_id)]["probability"]
    return float(found.iloc[0]) if len(found) else None


def _scope(ctx: bentoml.Context, patch: str | None) -> tuple[str, ...] | None:
    """The patches an answer may hold (the door refuses another patch first; this keeps the endpoint safe alone)."""
    return _answer(lambda: _principal(ctx).patch_scope(patch))


@bentoml.service(name="arrears_worklist", traffic={"timeout": 300})
class ArrearsWorklist:
    def __init__(self) -> None:

        settings = get_settings()
        if not settings.auth_required:
            logging.getLogger("arrears.access").warning(
                "Auth is OPEN: anyone who can reach this port reads every patch. Set ARREARS_AUTH=required and "
                "make tokens with `arrears users add` before real tenants' data is served.")
        self.worklister = Worklister(settings).warm()
        observe.serving_model(self.worklister.model.version)

    def __is_ready__(self) -> bool:
        """`/readyz`: ready when the champion is in the registry (a newly promoted one is loaded here, so a
        promotion reaches a running service within one readiness probe), the online feature store answers a lookup
        and the runs database opens."""
        try:
            if self.worklister.reload_if_promoted():
                observe.serving_model(self.worklister.model.version)
            self.worklister.check_stores()
        except Exception:  # noqa: BLE001 - not ready, whatever the reason; the log says which
            logging.getLogger("arrears.service").exception("not ready")
            return False
        return True

    @bentoml.api
    @endpoint(*CASEWORK)
    def score(self, ctx: bentoml.Context, tenancy_ids: TenancyIds) -> ScoreResponse:
        """Risk score and reasons for the given tenancies, from the online store. A tenancy the caller does not see
        (another patch's) is listed as unknown, like one that does not exist."""
        if self.worklister.reload_if_promoted(every_seconds=60):
            observe.serving_model(self.worklister.model.version)
        principal = _principal(ctx)
        answer = self.worklister.score(tenancy_ids, principal.patches)
        observe.served("/score", len(answer.scores), len(answer.unknown))
        record_reads(self.worklister.settings, principal, [s.tenancy_id for s in answer.scores], "score")
        return answer

    @bentoml.api
    @endpoint(*CASEWORK)
    def worklist(self, ctx: bentoml.Context, top: Top = 50, patch: Patch = None,
                 states: States = ["ready"], order: Order = "risk") -> WorklistResponse:  # noqa: B006 (a request default)
        """The `top` highest-risk cases in the given readiness states (default: ready), of one patch or of every
        patch the caller sees, each patch capped at its capacity, with reasons, readiness and next action; from
        the latest recorded run."""
        scope = _scope(ctx, patch)
        answer = _answer(lambda: self.worklister.worklist(top, patch if patch else scope, states, order))
        observe.served("/worklist", len(answer.rows))
        observe.POPULATION.set(answer.population)
        if answer.generation_seconds is not None:
            observe.GENERATION.set(answer.generation_seconds)
        return answer

    @bentoml.api
    @endpoint(*CASEWORK)
    def worklist_changes(self, ctx: bentoml.Context, patch: Patch = None) -> ChangesResponse:
        """What changed since the previous worklist run (in one patch, or every patch the caller sees): cases that
        entered or left the ready list, readiness state changes, big score moves, and the payments in between."""
        scope = _scope(ctx, patch)
        return _answer(lambda: self.worklister.changes(patch if patch else scope))

    @bentoml.api
    @endpoint(*MODELLING)
    def monitoring_status(self, days: Days = 30) -> MonitoringStatus:
        """The scheduled jobs' latest runs (status, outputs, error) and the alerts of the last `days` days, as
        `arrears monitor status --json` shows them."""
        return monitoring_status(self.worklister.settings, days)

    @bentoml.api
    @endpoint(*AGGREGATES)
    def cash_forecast(self, weeks: Weeks = 13, patch: Patch = None, as_of: AsOf = None,
                      rent_change_pct: RentChange = 0.0) -> CashForecastResponse:
        """Expected receipts per week for treasury: P10/P50/P90 and mean, portfolio-wide and per patch (or one
        patch), from the recorded forecast for that date and champion payment-date model (made and recorded now
        if there is none); beside them 12 calendar months, the rent years they touch, the DWP's scheduled share
        and the blend's weights. Covers the tenancies live on as_of only (the `covers` field says so)."""
        rows, header = self._forecast(weeks, patch, as_of, rent_change_pct)
        return CashForecastResponse(**header, rows=[ForecastWeek(**r) for r in rows.to_dict("records")])

    @bentoml.api
    @endpoint(*AGGREGATES)
    def cash_forecast_csv(self, ctx: bentoml.Context, weeks: Weeks = 13, patch: Patch = None, as_of: AsOf = None,
                          rent_change_pct: RentChange = 0.0) -> Annotated[Path, ContentType("text/csv")]:
        """The same forecast as CSV (one row per scope and week, with as_of and model_version on every row)."""
        rows, header = self._forecast(weeks, patch, as_of, rent_change_pct)
        path = Path(ctx.temp_dir) / f"cash_forecast_{header['as_of']}.csv"
        forecast_csv(rows, header).to_csv(path, index=False)
        return path

    @bentoml.api
    @endpoint(*AGGREGATES)
    def collection_kpis(self, months: Months = 12, patch: Patch = None) -> CollectionKpis:
        """Collection KPIs by calendar month, for the portfolio and each patch (or one): rent due and collected,
        collection rate, current arrears against the annual rent roll, former arrears, write-offs and days' rent
        outstanding (docs/treasury.md defines each)."""
        table = self._kpis(months, patch)
        rows = [KpiRow(**{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()})
                for r in table.to_dict("records")]
        return CollectionKpis(as_of=str(table.attrs["as_of"]), definitions="docs/treasury.md", rows=rows)

    @bentoml.api
    @endpoint(*AGGREGATES)
    def collection_kpis_csv(self, ctx: bentoml.Context, months: Months = 12,
                            patch: Patch = None) -> Annotated[Path, ContentType("text/csv")]:
        """The same KPIs as CSV."""
        table = self._kpis(months, patch)
        path = Path(ctx.temp_dir) / f"collection_kpis_{table.attrs['as_of']}.csv"
        table.round(4).to_csv(path, index=False)
        return path

    def _kpis(self, months: int, patch: str | None):
        return _answer(lambda: kpis_now(self.worklister.settings, patch, months))

    def _forecast(self, weeks: int, patch: str | None, as_of: date | None, rent_change_pct: float = 0.0):
        rows, header = _answer(lambda: served_forecast(self.worklister.settings, weeks, patch, as_of,
                                                       rent_change_pct))
        return rows.assign(week_start=rows["week_start"].dt.strftime("%Y-%m-%d")), header

    # -- income (docs/income.md; the work is serving.income's) ---------------------------------------------------------
    @bentoml.api
    @endpoint(*INCOME)
    def suspense_queue(self, top: SuspenseTop = 500) -> SuspenseQueueAnswer:
        """The receipts in suspense (credits not matched to a tenancy), proposed matches first: each with its
        ranked candidate tenancies, their match probabilities and the reasons in plain words."""
        settings = self.worklister.settings
        return queue_answer(_answer(lambda: queue_now(settings)), settings.suspense_propose_at, top)

    @bentoml.api
    @endpoint(*INCOME)
    def suspense_decide(self, ctx: bentoml.Context, receipt_id: ReceiptId, tenancy_id: TenancyId,
                        decision: Literal["approve", "reject"]) -> SuspenseDecision:
        """A person's decision on a match: approve allocates the receipt to the tenancy (a ledger delivery of its
        own, in the audit trail; approving again is safe), reject takes the tenancy off the receipt's candidates.
        The next worklist run judges the tenancy without the receipt."""
        principal, settings = _principal(ctx), self.worklister.settings
        work = allocation.approve if decision == "approve" else allocation.reject
        found = _answer(lambda: work(settings, receipt_id, tenancy_id, principal.name, principal.role,
                                     _probability(settings, receipt_id, tenancy_id)))
        return SuspenseDecision(**found.__dict__)

    # -- casework (docs/casework.md; the work is serving.runs.casefile's) -------------------------------------------
    @bentoml.api
    @endpoint(*CASEWORK)
    def case_file(self, ctx: bentoml.Context, tenancy_id: TenancyId) -> CaseFile:
        """A case's file: who owns its next action, the officers' actions, its drafts (every version) and every
        decision about it in the audit trail."""
        principal = _principal(ctx)
        found = _answer(lambda: casefile.case_file(self.worklister.settings, principal, tenancy_id))
        record_reads(self.worklister.settings, principal, [found.tenancy_id], "case_file")
        return found

    # -- privacy (docs/privacy.md; the work is serving.privacy's) ------------------------------------------------------
    @bentoml.api
    @endpoint(*ADMIN)
    def subject_access(self, ctx: bentoml.Context, tenancy_id: TenancyId) -> Annotated[Path, ContentType(
            "application/zip")]:
        """A subject access export: everything held about one tenancy in every store (ledger rows, events,
        quarantine, features, each recorded run's scores and reasons, readiness, drafts and letters, officers'
        actions, delivery receipts, audit entries) as one zip of CSV files with `manifest.json` saying what each
        holds. Admins only; recorded in the audit trail and the access log."""
        principal = _principal(ctx)
        data, manifest = _answer(lambda: archive(self.worklister.settings, tenancy_id, principal.name,
                                                 principal.role))
        if not any(entry["rows"] for entry in manifest["files"].values()):
            raise bentoml.exceptions.BentoMLException(
                f"Nothing is held about tenancy {tenancy_id!r} (check the id; an erased tenancy is held under its "
                "pseudonym)", error_code=HTTPStatus.NOT_FOUND)
        path = Path(ctx.temp_dir) / f"subject_access_{manifest['made_at'][:10]}.zip"
        path.write_bytes(data)
        return path

    @bentoml.api
    @endpoint(*ADMIN)
    def access_log(self, ctx: bentoml.Context, tenancy_id: TenancyId) -> AccessLogAnswer:
        """Who looked at one tenancy's data: every read of its case page, case file, score or export, with who,
        their role, what and when (admins only; itself a read, recorded)."""
        principal = _principal(ctx)
        with open_access_log(self.worklister.settings) as log:
            rows = log.entries(tenancy_id)
            log.record(principal.name, principal.role, [tenancy_id], "access_log")
        return AccessLogAnswer(tenancy_id=tenancy_id, reads=[AccessRead(**r) for r in rows.drop(
            columns="tenancy_id").to_dict("records")])

    @bentoml.api
    @endpoint(*CASEWORK)
    def case_action(self, ctx: bentoml.Context, tenancy_id: TenancyId, kind: ActionKind,
                    happened_on: date | None = None, channel: ContactChannel | None = None,
                    outcome: ContactOutcome | None = None,
                    amount: Annotated[float | None, Field(ge=0.01, le=100_000)] = None, due_on: date | None = None,
                    instalments: Annotated[int | None, Field(ge=1, le=520)] = None,
                    every_days: Annotated[int | None, Field(ge=1, le=31)] = None, until_on: date | None = None,
                    reason: ReasonCode | None = None, referral: Referral | None = None,
                    note: Annotated[str | None, Field(max_length=4000)] = None) -> CaseAction:
        """Record what an officer did or decided: a contact (channel, outcome), a promise to pay (amount, due_on),
        an arrangement (amount of each instalment, instalments, every_days, first due_on; no more a week than the
        latest income and expenditure found affordable), a hold (until_on, reason), a referral, a note, a dismissal
        (reason); the protocol's steps: a dispute opened or resolved (reason), a rent statement or a warning sent
        (channel), income and expenditure taken (amount: affordable pounds a week), help with a benefit claim; or, a
        supervisor's, clearing a vulnerable tenant's case for contact (reason) or a notice served. The case file
        shows at once what it implies; the next worklist run records the same (docs/casework.md)."""
        given = {"kind": kind, "happened_on": happened_on, "channel": channel, "outcome": outcome, "amount": amount,
                 "due_on": due_on, "instalments": instalments, "every_days": every_days, "until_on": until_on,
                 "reason": reason, "referral": referral, "note": note}
        return _answer(lambda: casefile.record_action(self.worklister.settings, _principal(ctx), tenancy_id,
                                                       OfficerAction(**given)))

    @bentoml.api
    @endpoint(*CASEWORK)
    def my_cases(self, ctx: bentoml.Context, officer: Annotated[str | None, Field(
            min_length=1, max_length=100, description="Another officer's list (supervisors and admins only)")]
            = None) -> MyCases:
        """The caller's own cases that want something today, in their patches: ready ones, ones a missed promise or
        instalment returned, and promises and instalments due on the service's day (ARREARS_TODAY, else the
        system date); each with why, the amount due and its state and protocol step in the latest run."""
        return _answer(lambda: mycases.my_cases(self.worklister.settings, _principal(ctx), officer))

    @bentoml.api
    @endpoint(*SUPERVISING)
    def case_reassign(self, ctx: bentoml.Context, tenancy_id: TenancyId,
                      to: Annotated[str, Field(min_length=1, max_length=100)], reason: ReasonCode) -> CaseFile:
        """Give a case to another officer of its patch (a supervisor's decision, with a reason code)."""
        return _answer(lambda: casefile.reassign(self.worklister.settings, _principal(ctx), tenancy_id, to, reason))

    @bentoml.api
    @endpoint(*CASEWORK)
    def draft(self, ctx: bentoml.Context, tenancy_id: TenancyId, channel: DraftChannel | None = None,
              language: Language | None = None) -> Draft:
        """Write an outreach draft for a ready case with arrears, from the template of its stage, by the tenant's
        preferred channel and in their language unless others are given (a language without templates: an English
        draft marked `needs_translation`); it waits for approval. Refused, with the reason, for a case not ready, in
        credit, at no arrears step or under the stage's threshold."""
        return _answer(lambda: casefile.write_draft(self.worklister.settings, _principal(ctx), tenancy_id, channel,
                                                     language))

    @bentoml.api
    @endpoint(*SUPERVISING)
    def approval_queue(self, ctx: bentoml.Context, patch: Patch = None) -> ApprovalQueue:
        """Drafts waiting for a decision or for release, in the caller's patches (or one)."""
        return _answer(lambda: casefile.approval_queue(self.worklister.settings, _principal(ctx), patch))

    @bentoml.api
    @endpoint(*SUPERVISING)
    def draft_decision(self, ctx: bentoml.Context, draft_id: DraftId, decision: Literal["approve", "reject"],
                       text: DraftText | None = None, reason: ReasonCode | None = None) -> Draft:
        """Approve a draft (as written, or with `text` as edited: the original is kept) or reject it with a
        reason. Someone other than its writer decides."""
        return _answer(lambda: casefile.decide(self.worklister.settings, _principal(ctx), draft_id, decision, text,
                                                reason))

    @bentoml.api
    @endpoint(*SUPERVISING)
    def draft_release(self, ctx: bentoml.Context, draft_id: DraftId) -> Draft:
        """Release an approved draft to the outbox, or suppress it (a payment since, a change of state, the
        contact limit): the answer's status and reason say which."""
        return _answer(lambda: casefile.release(self.worklister.settings, _principal(ctx), draft_id))

    @bentoml.api
    @endpoint(*SENDING)
    def outbox(self, after_seq: Annotated[int, Field(strict=True, ge=0, description="The last sequence number read "
                                                     "(0: from the first message)")] = 0,
               limit: Annotated[int, Field(strict=True, ge=1, le=1000, description="At most this many messages")]
               = 1000) -> Outbox:
        """The released messages after `after_seq`, in sequence order, for the landlord's own sending system
        (nothing here sends them): keep `next_after_seq` and ask with it next; drop a repeat by `message_id`."""
        return _answer(lambda: casefile.outbox(self.worklister.settings, after_seq, limit))

    @bentoml.api
    @endpoint(*SENDING)
    def delivery_receipt(self, ctx: bentoml.Context, message_id: DraftId, status: DeliveryStatus,
                         reported_at: datetime | None = None,
                         reason: Annotated[str | None, Field(max_length=40, description="The sending system's code")]
                         = None) -> DeliveryReceipt:
        """The sending system reports what became of a message: sent, failed, bounced or returned. Idempotent: a
        repeat is answered with the receipt kept before. A message that failed, bounced or came back was no
        contact: its case goes to review until its contact details are checked (docs/delivery.md)."""
        return _answer(lambda: casefile.delivery_receipt(self.worklister.settings, _principal(ctx), message_id,
                                                          status, reported_at, reason))


# BentoML wraps the app in the middlewares in the order added: the door first (outermost), so nothing it refuses
# reaches the document and error-body rewriting, nor the endpoints and pages behind them.
ArrearsWorklist.add_asgi_middleware(FaultAnswer)  # outermost: a request id, a 500 for any fault, a bounded stop
ArrearsWorklist.add_asgi_middleware(AccessGuard)
ArrearsWorklist.add_asgi_middleware(OpenApiTruth)
ArrearsWorklist.mount_asgi_app(web_app, path=PAGE_ROOT)  # the pages people use (serving/web/app.py)
