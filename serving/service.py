"""The BentoML service: online features from Feast + the champion model from the MLflow registry → scores and a
ranked, explained worklist over HTTP.

Run it with `arrears serve --port 3000` (or `bentoml serve serving.service:ArrearsWorklist`). The model and the
feature store are loaded once per worker, in `__init__`, never at import time; the work is `serving.worklist`'s.
"""

from __future__ import annotations

import bentoml

from serving.schemas import ScoreResponse, WorklistResponse


@bentoml.service(name="arrears_worklist", traffic={"timeout": 300})
class ArrearsWorklist:
    def __init__(self) -> None:
        from serving.settings import get_settings
        from serving.worklist import Worklister

        self.worklister = Worklister(get_settings())

    @bentoml.api
    def score(self, tenancy_ids: list[str]) -> ScoreResponse:
        """Risk score and SHAP reasons for the given tenancies."""
        return self.worklister.score(tenancy_ids)

    @bentoml.api
    def worklist(self, top: int = 50, patch: str | None = None) -> WorklistResponse:
        """The `top` highest-risk live tenancies (optionally of one patch), each with its reasons."""
        return self.worklister.worklist(top, patch)
