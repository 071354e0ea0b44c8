"""The BentoML service: online features from Feast + the champion model from the MLflow registry → scores, and the
recorded worklist runs → ranked, explained worklists with readiness states and what changed since the last run.

Run it with `arrears serve --port 3000` (or `bentoml serve serving.service:ArrearsWorklist`). The model and the
feature store are loaded once per worker, in `__init__`, never at import time; the work is `serving.worklist`'s.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Literal

import bentoml
import bentoml.exceptions
from bentoml.validators import ContentType
from pydantic import Field

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

Weeks = Annotated[int, Field(ge=1, le=26, description="Weeks ahead to forecast (1-26)")]
Patch = Annotated[str | None, Field(max_length=100, description="One patch (the portfolio is always included)")]
Months = Annotated[int, Field(ge=1, le=240, description="The last this many calendar months")]
AsOf = Annotated[date | None, Field(description="Forecast from an earlier date (default: the latest data)")]

ReadinessState = Literal["ready", "hold", "review", "disputed", "recent_payment", "payment_plan", "ambiguous_balance",
                         "blocked"]


@bentoml.service(name="arrears_worklist", traffic={"timeout": 300})
class ArrearsWorklist:
    def __init__(self) -> None:
        from serving.settings import get_settings
        from serving.worklist import Worklister

        self.worklister = Worklister(get_settings()).warm()

    @bentoml.api
    def score(self, tenancy_ids: list[str]) -> ScoreResponse:
        """Risk score and reasons for the given tenancies, from the online store."""
        return self.worklister.score(tenancy_ids)

    @bentoml.api
    def worklist(self, top: int = 50, patch: str | None = None,
                 states: list[ReadinessState] = ["ready"]) -> WorklistResponse:  # noqa: B006 (a request default)
        """The `top` highest-risk cases in the given readiness states (default: ready), optionally of one patch,
        each patch capped at its capacity, with reasons, readiness and next action; from the latest recorded run."""
        return self._from_runs(lambda: self.worklister.worklist(top, patch, states))

    @bentoml.api
    def worklist_changes(self, patch: str | None = None) -> ChangesResponse:
        """What changed since the previous worklist run: cases that entered or left the ready list, readiness state
        changes, big score moves, and the payments that arrived in between."""
        return self._from_runs(lambda: self.worklister.changes(patch))

    @bentoml.api
    def monitoring_status(self, days: int = 30) -> MonitoringStatus:
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
        rows, header = self._forecast(weeks, patch, as_of)
        path = Path(ctx.temp_dir) / f"cash_forecast_{header['as_of']}.csv"
        rows.assign(as_of=header["as_of"], model_version=header["model_version"]).round(2).to_csv(path, index=False)
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
