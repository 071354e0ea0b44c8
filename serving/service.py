"""The BentoML service: online features from Feast + the champion model from the MLflow registry → scores, and the
recorded worklist runs → ranked, explained worklists with readiness states and what changed since the last run.

Run it with `arrears serve --port 3000` (or `bentoml serve serving.service:ArrearsWorklist`). The model and the
feature store are loaded once per worker, in `__init__`, never at import time; the work is `serving.worklist`'s.
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

from serving import observe
from serving.access import OPEN, Forbidden, Principal
from serving.guard import AccessGuard
from serving.schemas import (
    CashForecastResponse,
    ChangesResponse,
    CollectionKpis,
    ForecastWeek,
    KpiRow,
    MonitoringStatus,
    ScoreResponse,
    WorklistResponse,
)
from serving.web import app as web_app

TenancyIds = Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]],
                      Field(min_length=1, max_length=1000, description="1 to 1,000 tenancy ids")]
Top = Annotated[int, Field(strict=True, ge=1, le=10_000, description="How many cases (1-10,000)")]
Days = Annotated[int, Field(strict=True, ge=1, le=3660, description="Alerts of the last this many days (1-3,660)")]
Weeks = Annotated[int, Field(strict=True, ge=1, le=26, description="Weeks ahead to forecast (1-26)")]
Patch = Annotated[str | None, Field(max_length=100, description="One patch (the portfolio is always included)")]
Months = Annotated[int, Field(strict=True, ge=1, le=240, description="The last this many calendar months")]
AsOf = Annotated[date | None, Field(description="Forecast from an earlier date (default: the latest data)")]

ReadinessState = Literal["ready", "hold", "review", "disputed", "recent_payment", "payment_plan", "ambiguous_balance",
                         "blocked"]
States = Annotated[list[ReadinessState], Field(min_length=1, max_length=8, description="Readiness states to list")]


def _principal(ctx: bentoml.Context) -> Principal:
    """Who is asking: set by `serving.guard.AccessGuard` before the endpoint runs (OPEN when auth is open)."""
    return getattr(ctx.request.state, "principal", OPEN)


def _scope(ctx: bentoml.Context, patch: str | None) -> tuple[str, ...] | None:
    try:
        return _principal(ctx).patch_scope(patch)
    except Forbidden as exc:  # the guard refuses these first; this keeps the endpoint safe on its own
        raise bentoml.exceptions.BentoMLException(str(exc), error_code=HTTPStatus.FORBIDDEN) from exc


@bentoml.service(name="arrears_worklist", traffic={"timeout": 300})
class ArrearsWorklist:
    def __init__(self) -> None:
        from serving.settings import get_settings
        from serving.worklist import Worklister

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
        from serving.job_runs import monitoring_status

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
        from serving.cash_forecast import forecast_csv

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
        from serving.kpis import kpis_now

        try:
            return kpis_now(self.worklister.settings, patch, months)
        except LookupError as exc:
            raise bentoml.exceptions.NotFound(str(exc)) from exc

    def _forecast(self, weeks: int, patch: str | None, as_of: date | None):
        from serving.cash_forecast import served_forecast
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

    @staticmethod
    def _from_runs(answer):
        """Lists come from recorded runs: before the first is recorded, say so (503) rather than fail."""
        from serving.runs import NoRun

        try:
            return answer()
        except NoRun as exc:
            raise bentoml.exceptions.ServiceUnavailable(str(exc)) from exc
        except LookupError as exc:
            raise bentoml.exceptions.NotFound(str(exc)) from exc


ArrearsWorklist.add_asgi_middleware(AccessGuard)
ArrearsWorklist.mount_asgi_app(web_app, path="/app")  # the pages people use (serving/web.py)
