"""The BentoML service: online features from Feast + the champion model from the MLflow registry → scores, and the
recorded worklist runs → ranked, explained worklists with readiness states and what changed since the last run.

Run it with `arrears serve --port 3000` (or `bentoml serve serving.api.service:ArrearsWorklist`). The model and the
feature store are loaded once per worker, in `__init__`, never at import time; the work is `serving.runs.worklist`'s.
"""

from __future__ import annotations

import logging
from datetime import date
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Literal

import bentoml
import bentoml.exceptions
from bentoml.validators import ContentType
from pydantic import Field

from casework.cases import CHANNELS as ACTION_CHANNELS
from casework.cases import OUTCOMES, REFERRALS, OfficerAction
from serving.access import observe
from serving.access.door import AccessGuard
from serving.access.principals import OPEN, Forbidden, Principal
from serving.runs.schemas import (
    ApprovalQueue,
    CaseAction,
    CaseFile,
    CashForecastResponse,
    ChangesResponse,
    CollectionKpis,
    Draft,
    ForecastWeek,
    KpiRow,
    MonitoringStatus,
    Outbox,
    ScoreResponse,
    WorklistResponse,
)
from serving.web.app import app as web_app

TenancyIds = Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]],
                      Field(min_length=1, max_length=1000, description="1 to 1,000 tenancy ids")]
Top = Annotated[int, Field(strict=True, ge=1, le=10_000, description="How many cases (1-10,000)")]
Days = Annotated[int, Field(strict=True, ge=1, le=3660, description="Alerts of the last this many days (1-3,660)")]
Weeks = Annotated[int, Field(strict=True, ge=1, le=26, description="Weeks ahead to forecast (1-26)")]
Patch = Annotated[str | None, Field(max_length=100, description="One patch (the portfolio is always included)")]
Months = Annotated[int, Field(strict=True, ge=1, le=240, description="The last this many calendar months")]
AsOf = Annotated[date | None, Field(description="Forecast from an earlier date (default: the latest data)")]

TenancyId = Annotated[str, Field(min_length=1, max_length=64, description="A tenancy id")]
DraftId = Annotated[str, Field(min_length=1, max_length=64, description="A draft's id")]
Channel = Literal["letter", "sms", "email"]
Language = Annotated[str, Field(pattern=r"^[a-z]{2}$", description="A language code of the templates (en)")]
ActionKind = Literal["contact_attempted", "contact_made", "promise_to_pay", "arrangement_agreed", "hold", "referral",
                     "note", "dismiss", "review_cleared"]
ActionChannel = Literal[ACTION_CHANNELS]  # type: ignore[valid-type]
ActionOutcome = Literal[OUTCOMES]  # type: ignore[valid-type]
Referral = Literal[REFERRALS]  # type: ignore[valid-type]
ReasonCode = Annotated[str, Field(min_length=1, max_length=40, description="A reason code (docs/casework.md)")]
DraftText = Annotated[str, Field(min_length=1, max_length=20_000, description="The approver's edited text")]

ReadinessState = Literal["ready", "hold", "review", "disputed", "recent_payment", "payment_plan", "ambiguous_balance",
                         "blocked"]
States = Annotated[list[ReadinessState], Field(min_length=1, max_length=8, description="Readiness states to list")]


def _principal(ctx: bentoml.Context) -> Principal:
    """Who is asking: set by `serving.access.door.AccessGuard` before the endpoint runs (OPEN when auth is open)."""
    return getattr(ctx.request.state, "principal", OPEN)


def _scope(ctx: bentoml.Context, patch: str | None) -> tuple[str, ...] | None:
    try:
        return _principal(ctx).patch_scope(patch)
    except Forbidden as exc:  # the guard refuses these first; this keeps the endpoint safe on its own
        raise bentoml.exceptions.BentoMLException(str(exc), error_code=HTTPStatus.FORBIDDEN) from exc


@bentoml.service(name="arrears_worklist", traffic={"timeout": 300})
class ArrearsWorklist:
    def __init__(self) -> None:
        from serving.runs.worklist import Worklister
        from serving.settings import get_settings

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
    def score(self, ctx: bentoml.Context, tenancy_ids: TenancyIds) -> ScoreResponse:
        """Risk score and reasons for the given tenancies, from the online store. A tenancy the caller does not see
        (another patch's) is listed as unknown, like one that does not exist."""
        if self.worklister.reload_if_promoted(every_seconds=60):
            observe.serving_model(self.worklister.model.version)
        answer = self.worklister.score(tenancy_ids, _principal(ctx).patches)
        observe.served("/score", len(answer.scores), len(answer.unknown))
        return answer

    @bentoml.api
    def worklist(self, ctx: bentoml.Context, top: Top = 50, patch: Patch = None,
                 states: States = ["ready"]) -> WorklistResponse:  # noqa: B006 (a request default)
        """The `top` highest-risk cases in the given readiness states (default: ready), of one patch or of every
        patch the caller sees, each patch capped at its capacity, with reasons, readiness and next action; from
        the latest recorded run."""
        scope = _scope(ctx, patch)
        answer = self._from_runs(lambda: self.worklister.worklist(top, patch if patch else scope, states))
        observe.served("/worklist", len(answer.rows))
        observe.POPULATION.set(answer.population)
        if answer.generation_seconds is not None:
            observe.GENERATION.set(answer.generation_seconds)
        return answer

    @bentoml.api
    def worklist_changes(self, ctx: bentoml.Context, patch: Patch = None) -> ChangesResponse:
        """What changed since the previous worklist run (in one patch, or every patch the caller sees): cases that
        entered or left the ready list, readiness state changes, big score moves, and the payments in between."""
        scope = _scope(ctx, patch)
        return self._from_runs(lambda: self.worklister.changes(patch if patch else scope))

    @bentoml.api
    def monitoring_status(self, days: Days = 30) -> MonitoringStatus:
        """The scheduled jobs' latest runs (status, outputs, error) and the alerts of the last `days` days, as
        `arrears monitor status --json` shows them."""
        from serving.runs.jobs import monitoring_status

        return monitoring_status(self.worklister.settings, days)

    @bentoml.api
    def cash_forecast(self, weeks: Weeks = 13, patch: Patch = None, as_of: AsOf = None) -> CashForecastResponse:
        """Expected receipts per week for treasury: P10/P50/P90 and mean, portfolio-wide and per patch (or one
        patch), from the recorded forecast for that date and champion payment-date model (made and recorded now
        if there is none). Covers the tenancies live on as_of only (the `covers` field says so)."""
        rows, header = self._forecast(weeks, patch, as_of)
        return CashForecastResponse(**header, rows=[ForecastWeek(**r) for r in rows.to_dict("records")])

    @bentoml.api
    def cash_forecast_csv(self, ctx: bentoml.Context, weeks: Weeks = 13, patch: Patch = None,
                          as_of: AsOf = None) -> Annotated[Path, ContentType("text/csv")]:
        """The same forecast as CSV (one row per scope and week, with as_of and model_version on every row)."""
        from serving.treasury.forecast import forecast_csv

        rows, header = self._forecast(weeks, patch, as_of)
        path = Path(ctx.temp_dir) / f"cash_forecast_{header['as_of']}.csv"
        forecast_csv(rows, header).to_csv(path, index=False)
        return path

    @bentoml.api
    def collection_kpis(self, months: Months = 12, patch: Patch = None) -> CollectionKpis:
        """Collection KPIs by calendar month, for the portfolio and each patch (or one): rent due and collected,
        collection rate, current arrears against the annual rent roll, former arrears, write-offs and days' rent
        outstanding (docs/treasury.md defines each)."""
        table = self._kpis(months, patch)
        rows = [KpiRow(**{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()})
                for r in table.to_dict("records")]
        return CollectionKpis(as_of=str(table.attrs["as_of"]), definitions="docs/treasury.md", rows=rows)

    @bentoml.api
    def collection_kpis_csv(self, ctx: bentoml.Context, months: Months = 12,
                            patch: Patch = None) -> Annotated[Path, ContentType("text/csv")]:
        """The same KPIs as CSV."""
        table = self._kpis(months, patch)
        path = Path(ctx.temp_dir) / f"collection_kpis_{table.attrs['as_of']}.csv"
        table.round(4).to_csv(path, index=False)
        return path

    def _kpis(self, months: int, patch: str | None):
        from serving.treasury.kpis import kpis_now

        try:
            return kpis_now(self.worklister.settings, patch, months)
        except LookupError as exc:
            raise bentoml.exceptions.NotFound(str(exc)) from exc

    def _forecast(self, weeks: int, patch: str | None, as_of: date | None):
        from serving.treasury.forecast import served_forecast
        from training.registry import NoChampion

        try:
            rows, header = served_forecast(self.worklister.settings, weeks, patch, as_of)
        except NoChampion as exc:  # before LookupError, which it is
            raise bentoml.exceptions.ServiceUnavailable(str(exc)) from exc
        except LookupError as exc:
            raise bentoml.exceptions.NotFound(str(exc)) from exc
        except ValueError as exc:
            raise bentoml.exceptions.InvalidArgument(str(exc)) from exc
        return rows.assign(week_start=rows["week_start"].dt.strftime("%Y-%m-%d")), header

    # -- casework (docs/casework.md; the work is serving.runs.requests's) -------------------------------------------
    @bentoml.api
    def case_file(self, ctx: bentoml.Context, tenancy_id: TenancyId) -> CaseFile:
        """A case's file: who owns its next action, the officers' actions, its drafts (every version) and every
        decision about it in the audit trail."""
        return _casework(lambda api: api.case_file(self.worklister.settings, _principal(ctx), tenancy_id))

    @bentoml.api
    def case_action(self, ctx: bentoml.Context, tenancy_id: TenancyId, kind: ActionKind,
                    happened_on: date | None = None, channel: ActionChannel | None = None,
                    outcome: ActionOutcome | None = None,
                    amount: Annotated[float | None, Field(ge=0.01, le=100_000)] = None, due_on: date | None = None,
                    instalments: Annotated[int | None, Field(ge=1, le=520)] = None,
                    every_days: Annotated[int | None, Field(ge=1, le=31)] = None, until_on: date | None = None,
                    reason: ReasonCode | None = None, referral: Referral | None = None,
                    note: Annotated[str | None, Field(max_length=4000)] = None) -> CaseAction:
        """Record what an officer did or decided: a contact (channel, outcome), a promise to pay (amount, due_on),
        an arrangement (amount of each instalment, instalments, every_days, first due_on), a hold (until_on,
        reason), a referral, a note, a dismissal (reason), or, a supervisor's, clearing a vulnerable tenant's case for
        contact (reason). The next worklist run judges it (docs/casework.md)."""
        given = {"kind": kind, "happened_on": happened_on, "channel": channel, "outcome": outcome, "amount": amount,
                 "due_on": due_on, "instalments": instalments, "every_days": every_days, "until_on": until_on,
                 "reason": reason, "referral": referral, "note": note}
        return _casework(lambda api: api.record_action(self.worklister.settings, _principal(ctx), tenancy_id,
                                                       OfficerAction(**given)))

    @bentoml.api
    def case_reassign(self, ctx: bentoml.Context, tenancy_id: TenancyId,
                      to: Annotated[str, Field(min_length=1, max_length=100)], reason: ReasonCode) -> CaseFile:
        """Give a case to another officer of its patch (a supervisor's decision, with a reason code)."""
        return _casework(lambda api: api.reassign(self.worklister.settings, _principal(ctx), tenancy_id, to, reason))

    @bentoml.api
    def draft(self, ctx: bentoml.Context, tenancy_id: TenancyId, channel: Channel = "letter",
              language: Language = "en") -> Draft:
        """Write an outreach draft for a ready case, from the template of its stage; it waits for approval."""
        return _casework(lambda api: api.write_draft(self.worklister.settings, _principal(ctx), tenancy_id, channel,
                                                     language))

    @bentoml.api
    def approval_queue(self, ctx: bentoml.Context, patch: Patch = None) -> ApprovalQueue:
        """Drafts waiting for a decision or for release, in the caller's patches (or one)."""
        return _casework(lambda api: api.approval_queue(self.worklister.settings, _principal(ctx), patch))

    @bentoml.api
    def draft_decision(self, ctx: bentoml.Context, draft_id: DraftId, decision: Literal["approve", "reject"],
                       text: DraftText | None = None, reason: ReasonCode | None = None) -> Draft:
        """Approve a draft (as written, or with `text` as edited: the original is kept) or reject it with a
        reason. Someone other than its writer decides."""
        return _casework(lambda api: api.decide(self.worklister.settings, _principal(ctx), draft_id, decision, text,
                                                reason))

    @bentoml.api
    def draft_release(self, ctx: bentoml.Context, draft_id: DraftId) -> Draft:
        """Release an approved draft to the outbox, or suppress it (a payment since, a change of state, the
        contact limit): the answer's status and reason say which."""
        return _casework(lambda api: api.release(self.worklister.settings, _principal(ctx), draft_id))

    @bentoml.api
    def outbox(self, since: Annotated[str | None, Field(max_length=40, description="Released after (ISO time)")]
               = None) -> Outbox:
        """The released messages, for the landlord's own sending system (nothing here sends them)."""
        return _casework(lambda api: api.outbox(self.worklister.settings, since))

    @staticmethod
    def _from_runs(answer):
        """Lists come from recorded runs: before the first is recorded, say so (503) rather than fail."""
        from serving.runs.store import NoRun

        try:
            return answer()
        except NoRun as exc:
            raise bentoml.exceptions.ServiceUnavailable(str(exc)) from exc
        except LookupError as exc:
            raise bentoml.exceptions.NotFound(str(exc)) from exc


def _casework(work):
    """Run a casework endpoint's work; its refusals as HTTP answers that say what to do."""
    from casework.drafts import DraftRefused
    from serving.runs import requests as casework_api
    from serving.runs.store import NoRun

    try:
        return work(casework_api)
    except (casework_api.NotVisible, NoRun) as exc:
        raise bentoml.exceptions.NotFound(str(exc)) from exc
    except Forbidden as exc:
        raise bentoml.exceptions.BentoMLException(str(exc), error_code=HTTPStatus.FORBIDDEN) from exc
    except DraftRefused as exc:
        raise bentoml.exceptions.BentoMLException(str(exc), error_code=HTTPStatus.CONFLICT) from exc
    except (LookupError, ValueError) as exc:
        raise bentoml.exceptions.InvalidArgument(str(exc)) from exc


ArrearsWorklist.add_asgi_middleware(AccessGuard)
ArrearsWorklist.mount_asgi_app(web_app, path="/app")  # the pages people use (serving/web/app.py)
