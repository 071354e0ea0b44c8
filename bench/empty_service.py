"""The floor of the worklist benchmarks: a BentoML service that does nothing but answer, measured in the same run
as the real one (`python -m bench --suite worklist`)."""

from __future__ import annotations

import bentoml
from pydantic import BaseModel


class Echo(BaseModel):
    count: int


@bentoml.service(name="empty")
class Empty:
    @bentoml.api
    def score(self, tenancy_ids: list[str]) -> Echo:
        return Echo(count=len(tenancy_ids))
