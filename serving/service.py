"""The BentoML service: online features from Feast + the champion model from the MLflow registry → scores, and the
recorded worklist runs → ranked, explained worklists with readiness states and what changed since the last run.

Run it with `arrears serve --port 3000` (or `bentoml serve serving.service:ArrearsWorklist`). The model and the
feature store are loaded once per worker, in `__init__`, never at import time; the work is `serving.worklist`'s.
"""

from __future__ import annotations

from typing import Literal

import bentoml
import bentoml.exceptions

from serving.schemas import ChangesResponse, MonitoringStatus, ScoreResponse, WorklistResponse

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

    @staticmethod
    def _from_runs(answer):
        """Lists come from recorded runs: before the first is recorded, say so (503) rather than fail."""
        from serving.runs import NoRun

        try:
            return answer()
        except NoRun as exc:
            raise bentoml.exceptions.ServiceUnavailable(str(exc)) from exc
